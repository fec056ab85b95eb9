// The restore's actions on the real host: inventory/, database/, media/ and
// app/ with the agent's command runner, Env and PostgreSQL connector.
#include "absl/strings/str_cat.h"
#include "agent/app/app_checks.h"
#include "agent/app/app_tasks.h"
#include "agent/app/env_install.h"
#include "agent/app/secrets_check.h"
#include "agent/common/http_probe.h"
#include "agent/common/status_macros.h"
#include "agent/database/database_restore.h"
#include "agent/database/pg_session.h"
#include "agent/database/server_queries.h"
#include "agent/inventory/inspector.h"
#include "agent/jobs/restore_job.h"
#include "agent/media/media_restore.h"
#include "agent/media/missing_media.h"

namespace mastodon_restore {

namespace v1 = ::mastodon::restore::v1;

namespace {

// The restore's actions on the real host.
class HostRestoreActions : public RestoreActions {
 public:
  explicit HostRestoreActions(const JobEnv& env) : env_(env) {}

  absl::StatusOr<OpenedBackup> Open(const std::string& path, const SourceOptions& source,
                                    const InspectOptions& options) override {
    return OpenBackup(path, source, options, env_.runner);
  }
  absl::StatusOr<std::string> ClusterDatabase(const v1::DumpInfo& dump,
                                              const std::string& source_db, const std::string& path,
                                              const SourceOptions& source,
                                              const InspectOptions& options) override {
    return ClusterDatabaseToRestore(dump, source_db, path, source, options, env_.runner);
  }
  absl::StatusOr<ServerFacts> ProbeServer(const std::string& conninfo) override {
    ASSIGN_OR_RETURN(RestoreServerFacts facts, ReadRestoreServerFacts(env_.pg, conninfo));
    ServerFacts out;
    out.major = facts.server_version / 10000;
    out.version = absl::StrCat(out.major, ".", facts.server_version % 10000);
    out.user = facts.user;
    out.may_create_databases = facts.may_create_databases;
    out.data_directory = facts.data_directory;
    return out;
  }
  absl::StatusOr<DatabaseRestoreResult> Stage(const DatabaseRestoreRequest& request) override {
    return StageDatabase(request, env_.runner, env_.env);
  }
  absl::Status Verify(const DatabaseRestoreRequest& request,
                      DatabaseRestoreResult* result) override {
    return VerifyStaged(request, result);
  }
  absl::Status CheckBeforeSwap(const DatabaseRestoreRequest& request,
                               DatabaseRestoreResult* result) override {
    return CheckStagedBeforeSwap(request, result);
  }
  absl::Status Swap(const DatabaseRestoreRequest& request, DatabaseRestoreResult* result) override {
    return SwapInStaged(request, env_.env, result);
  }
  void DropStaging(const std::string& conninfo, const std::string& staging_database,
                   uint32_t staging_oid) override {
    DropStaged(conninfo, staging_database, staging_oid);
  }
  absl::StatusOr<v1::SecretsCheck> CheckSecrets(const std::string& conninfo,
                                                const std::string& database,
                                                const std::string* env_text,
                                                const std::string& env_source) override {
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> db, env_.pg->Connect(conninfo, database));
    if (env_text == nullptr) return CheckAppSecrets(db.get(), nullptr, env_source);
    const ParsedEnvFile env = ParseEnvFile(*env_text);
    return CheckAppSecrets(db.get(), &env, env_source);
  }
  absl::StatusOr<MediaRestoreResult> RestoreMedia(const MediaRestoreOptions& options) override {
    return ::mastodon_restore::RestoreMedia(options, env_.runner, env_.env);
  }
  absl::StatusOr<MissingMediaScan> ScanMedia(const std::string& conninfo,
                                             const std::string& database,
                                             const MissingMediaOptions& options) override {
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> db, env_.pg->Connect(conninfo, database));
    return ScanMissingMedia(db.get(), options);
  }
  absl::StatusOr<RefetchPlan> PlanMediaRefetch(const std::string& conninfo,
                                               const std::string& database,
                                               const std::vector<MissingRemoteFile>& missing,
                                               const RefetchLimits& limits) override {
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> db, env_.pg->Connect(conninfo, database));
    return PlanRefetch(db.get(), missing, limits);
  }
  absl::Status ControlServices(const Runtime& runtime, bool start,
                               const TaskContext& ctx) override {
    return ::mastodon_restore::ControlServices(runtime, start, WithRunner(ctx));
  }
  absl::StatusOr<EnvInstallResult> InstallEnv(
      const Runtime& runtime, const std::string& backup_env, const std::string& tag,
      const std::function<absl::Status(const EnvInstallJournal&)>& journal) override {
    return InstallEnvFile(runtime, backup_env, tag, env_.env, journal);
  }
  absl::StatusOr<v1::DbMigrateResult> Migrate(const Runtime& runtime, const AppDatabase& db,
                                              const TaskContext& ctx) override {
    return RunDbMigrate(runtime, v1::MIGRATION_PHASE_ALL, db, WithRunner(ctx));
  }
  absl::StatusOr<v1::TootctlResult> Tootctl(const Runtime& runtime,
                                            const std::vector<std::string>& args,
                                            const TaskContext& ctx) override {
    return RunTootctl(runtime, args, WithRunner(ctx));
  }
  std::vector<v1::AfterSwapCheck> CheckApp(const Runtime& runtime, const AppCheckOptions& options,
                                           const TaskContext& ctx) override {
    std::unique_ptr<HttpProber> prober = NewTcpHttpProber();
    return CheckAppAnswers(runtime, prober.get(), env_.env, ctx.cancel, options);
  }
  absl::StatusOr<v1::RedisRestore> RestoreRedis(const Runtime& runtime,
                                                const RedisRestoreOptions& options,
                                                const TaskContext& ctx) override {
    return RestoreRedisDump(runtime, options, WithRunner(ctx));
  }

 private:
  TaskContext WithRunner(TaskContext ctx) const {
    ctx.runner = env_.runner;
    ctx.env = env_.env;
    ctx.pg = env_.pg;
    return ctx;
  }
  const JobEnv env_;
};

}  // namespace

std::unique_ptr<RestoreActions> NewRestoreActions(const JobEnv& env) {
  return std::make_unique<HostRestoreActions>(env);
}

}  // namespace mastodon_restore
