#include "agent/service/agent_service.h"

#include <sys/stat.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/app/app_tasks.h"
#include "agent/archive/inspector.h"
#include "agent/archive/path_rules.h"
#include "agent/common/status_macros.h"
#include "agent/database/database_restore.h"
#include "agent/database/local_cluster.h"
#include "agent/database/pg_connection.h"
#include "agent/database/pg_probe.h"
#include "agent/database/target_ops.h"
#include "agent/database/verify.h"
#include "agent/media/media_restore.h"
#include "agent/restore/restore_job.h"
#include "agent/service/agent_info.h"
#include "agent/service/auth.h"
#include "agent/service/redact.h"
#include "agent/service/watch_reactor.h"

namespace mastodon_restore {

namespace v1 = mastodon::restore::v1;

AgentService::AgentService(const AgentConfig* config, Env* env, CommandRunner* runner,
                           Logger* logger, OperationManager* operations,
                           const RuntimeContext* runtime, absl::Time start_time)
    : config_(config),
      env_(env),
      runner_(runner),
      operations_(operations),
      runtime_(runtime),
      logger_(logger),
      start_time_(start_time) {}

AgentService::~AgentService() { workers_.WaitIdle(); }

absl::StatusOr<SourceOptions> AgentService::ResolveSource(const v1::BackupSource& source,
                                                          std::string* path) const {
  if (source.path().empty()) {
    return absl::InvalidArgumentError(
        "source.path is required (an absolute path on the agent host)");
  }
  ASSIGN_OR_RETURN(*path, ResolveAllowedPath(source.path(), config_->allowed_roots));
  SourceOptions options;
  options.allowed_roots = config_->allowed_roots;
  if (source.passphrase().has_value()) {
    options.passphrase = source.passphrase().value();
  } else if (source.passphrase().has_file()) {
    ASSIGN_OR_RETURN(std::string file,
                     ResolveAllowedPath(source.passphrase().file(), config_->allowed_roots));
    ASSIGN_OR_RETURN(std::string secret, env_->ReadFile(file));
    if (secret.size() > 4096) {
      return absl::InvalidArgumentError(
          absl::StrCat("password file '", source.passphrase().file(), "' is larger than 4 KiB"));
    }
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    options.passphrase = secret;
  }
  if (!source.age_identity_file().empty()) {
    ASSIGN_OR_RETURN(options.age_identity_file,
                     ResolveAllowedPath(source.age_identity_file(), config_->allowed_roots));
  }
  if (!source.gpg_key_file().empty()) {
    ASSIGN_OR_RETURN(options.gpg_key_file,
                     ResolveAllowedPath(source.gpg_key_file(), config_->allowed_roots));
  }
  return options;
}

std::function<void(int64_t)> AgentService::ProgressLogger(const std::string& source) const {
  // Called on the handler's thread only: no locking needed.
  auto last = std::make_shared<absl::Time>(env_->Now());
  return [this, source, last](int64_t bytes) {
    absl::Time now = env_->Now();
    if (now - *last < absl::Seconds(5)) return;
    *last = now;
    logger_->Info("deep scan progress", {{"source", source}, {"bytes", absl::StrCat(bytes)}});
  };
}

absl::Status AgentService::PrepareScan(const v1::BackupSource& source_request, bool deep,
                                       const v1::DatabaseTarget& target, const CancelToken& cancel,
                                       ScanSetup* setup) const {
  ASSIGN_OR_RETURN(setup->source, ResolveSource(source_request, &setup->path));
  setup->source.cancel = &cancel;
  setup->options.deep = deep;
  setup->options.progress = ProgressLogger(source_request.path());
  setup->options.pg_restore_majors =
      InstalledPostgresVersions(env_, "/usr/lib/postgresql", "pg_restore");
  if (!target.conninfo().empty()) {
    ASSIGN_OR_RETURN(int version, ProbeServerVersion(target.conninfo()));
    setup->options.target_major = version / 10000;
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AgentService::DetectDump(grpc::CallbackServerContext* context,
                                                   const v1::DetectDumpRequest* request,
                                                   v1::DetectDumpResponse* response) {
  if (grpc::Status denied = RequireScope(context, "read"); !denied.ok()) {
    return Denied(context, "DetectDump", denied);
  }
  logger_->Info("detect dump", {{"source", request->source().path()},
                                {"member", request->member()},
                                {"deep", request->deep() ? "true" : "false"},
                                {"peer", context->peer()}});
  return BlockingUnaryReactor::Start(
      &workers_, [this, request, response](const CancelToken& cancel) {
        ScanSetup setup;
        RETURN_IF_ERROR(
            PrepareScan(request->source(), request->deep(), request->target(), cancel, &setup));
        ASSIGN_OR_RETURN(*response->mutable_dump(),
                         DetectDumpInSource(setup.path, request->member(), setup.source,
                                            setup.options, runner_));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AgentService::InspectBackup(grpc::CallbackServerContext* context,
                                                      const v1::InspectBackupRequest* request,
                                                      v1::InspectBackupResponse* response) {
  if (grpc::Status denied = RequireScope(context, "read"); !denied.ok()) {
    return Denied(context, "InspectBackup", denied);
  }
  logger_->Info("inspect backup", {{"source", request->source().path()},
                                   {"deep", request->deep() ? "true" : "false"},
                                   {"peer", context->peer()}});
  return BlockingUnaryReactor::Start(
      &workers_, [this, request, response](const CancelToken& cancel) {
        ScanSetup setup;
        RETURN_IF_ERROR(
            PrepareScan(request->source(), request->deep(), request->target(), cancel, &setup));
        ASSIGN_OR_RETURN(
            *response->mutable_manifest(),
            ::mastodon_restore::InspectBackup(setup.path, setup.source, setup.options, runner_));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AgentService::GetAgentInfo(grpc::CallbackServerContext* context,
                                                     const v1::GetAgentInfoRequest*,
                                                     v1::GetAgentInfoResponse* response) {
  if (grpc::Status denied = RequireScope(context, "read"); !denied.ok()) {
    return Denied(context, "GetAgentInfo", denied);
  }
  return BlockingUnaryReactor::Start(&workers_, [this, response](const CancelToken&) {
    v1::RuntimeInfo runtime;
    if (runtime_ != nullptr && runtime_->runtime != nullptr) {
      runtime = DescribeRuntime(*runtime_->runtime, runtime_->requested, env_);
    } else {
      runtime.set_kind(v1::RUNTIME_KIND_NONE);
      runtime.set_requested(runtime_ != nullptr ? runtime_->requested : config_->runtime);
      if (runtime_ != nullptr) {
        for (const std::string& c : runtime_->checked) runtime.add_evidence(c);
      }
    }
    *response = BuildAgentInfo(*config_, env_, start_time_, &runtime);
    // The server restores go to by default, if the agent has one.
    auto conninfo = TargetConnInfo(v1::DatabaseTarget());
    if (conninfo.ok()) {
      auto version = ProbeServerVersion(*conninfo);
      v1::PostgresInfo* pg = response->mutable_postgres();
      if (version.ok()) {
        pg->set_server_version(FormatPostgresVersion(*version));
        pg->clear_server_error();
      } else {
        pg->set_server_error(std::string(version.status().message()));
      }
    }
    // The schema version of the live Mastodon database the runtime names.
    if (std::optional<AppDatabase> db = RuntimeDatabaseFor(v1::DatabaseTarget());
        db.has_value() && !db->database.empty()) {
      auto schema = ReadSchemaVersion(*db);
      if (schema.ok()) response->mutable_runtime()->set_schema_version(*schema);
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AgentService::Denied(grpc::CallbackServerContext* context,
                                               const char* rpc, const grpc::Status& status) {
  logger_->Warning("audit", {{"who", CallerIdentity(context, local_peers_)},
                             {"rpc", rpc},
                             {"outcome", status.error_message()}});
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(status);
  return reactor;
}

absl::StatusOr<const Runtime*> AgentService::AppRuntime(absl::string_view task) const {
  const Runtime* runtime = runtime_ != nullptr ? runtime_->runtime : nullptr;
  if (runtime == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        task, " needs a Mastodon runtime and none was found (",
        runtime_ == nullptr || runtime_->checked.empty() ? "runtime none"
                                                         : absl::StrJoin(runtime_->checked, "; "),
        "): start the agent with --runtime snap|compose|systemd"));
  }
  return runtime;
}

grpc::ServerUnaryReactor* AgentService::StartDbMigrate(grpc::CallbackServerContext* context,
                                                       const v1::StartDbMigrateRequest* request,
                                                       v1::StartDbMigrateResponse* response) {
  return StartOperationCall(
      context, "StartDbMigrate", "start db migrate", {{"request_id", request->request_id()}},
      response->mutable_operation(), [this, request, response](const CancelToken&) -> absl::Status {
        const v1::DbMigrateOptions opts = request->options();
        ASSIGN_OR_RETURN(const Runtime* runtime, AppRuntime("db migrate"));
        RETURN_IF_ERROR(runtime->DbMigrate(false).status());
        ASSIGN_OR_RETURN(AppDatabase db, runtime->Database());
        OperationSpec spec;
        spec.kind = v1::OPERATION_KIND_DB_MIGRATE;
        spec.request_id = request->request_id();
        spec.target = absl::StrCat("database:", db.database);
        spec.fill_request = [opts](v1::Operation* op) { *op->mutable_db_migrate_options() = opts; };
        spec.steps = {
            {"migrate", absl::StrCat("run the app's database migrations (", runtime->name(), ")")}};
        spec.work = [this, runtime, db, phase = opts.phase()](Operation* op) -> absl::Status {
          TaskContext ctx{runner_, env_, &op->cancel_token(), op, "migrate"};
          op->StepStarted("migrate");
          auto result = RunDbMigrate(*runtime, phase, db, ctx);
          if (!result.ok()) return result.status();
          op->SetResult([&](v1::Operation* o) { *o->mutable_db_migrate_result() = *result; });
          op->StepFinished("migrate", v1::STEP_STATE_SUCCEEDED,
                           absl::StrCat(result->migrations_size(), " migration(s); schema ",
                                        result->schema_version_after()));
          return absl::OkStatus();
        };
        return Launch(std::move(spec), response->mutable_operation());
      });
}

absl::Status AgentService::LaunchTootctlTasks(
    v1::OperationKind kind, const std::string& request_id, const std::string& step,
    const std::string& description, std::vector<std::vector<std::string>> commands,
    const Runtime* runtime, std::function<void(v1::Operation*)> fill_request, v1::Operation* out) {
  OperationSpec spec;
  spec.kind = kind;
  spec.request_id = request_id;
  spec.target = absl::StrCat("app:", runtime->name());
  spec.fill_request = std::move(fill_request);
  spec.steps = {{step, description}};
  spec.work = [this, runtime, step, commands](Operation* op) -> absl::Status {
    TaskContext ctx{runner_, env_, &op->cancel_token(), op, step};
    op->StepStarted(step);
    v1::TootctlTasksResult results;
    absl::Status status;
    int64_t item_errors = 0;
    for (const auto& args : commands) {
      auto result = RunTootctl(*runtime, args, ctx);
      if (!result.ok()) {
        status = result.status();
        break;
      }
      item_errors += result->item_errors();
      *results.add_commands() = *result;
    }
    // Partial results of a failed run are kept too.
    op->SetResult([&](v1::Operation* o) { *o->mutable_tootctl_tasks_result() = results; });
    if (!status.ok()) return status;
    op->StepFinished(
        step, v1::STEP_STATE_SUCCEEDED,
        absl::StrCat(results.commands_size(), " command(s)",
                     item_errors > 0 ? absl::StrCat(", ", item_errors, " item error(s)") : ""));
    return absl::OkStatus();
  };
  return Launch(std::move(spec), out);
}

grpc::ServerUnaryReactor* AgentService::StartMediaRefresh(
    grpc::CallbackServerContext* context, const v1::StartMediaRefreshRequest* request,
    v1::StartMediaRefreshResponse* response) {
  return StartOperationCall(
      context, "StartMediaRefresh", "start media refresh", {{"request_id", request->request_id()}},
      response->mutable_operation(), [this, request, response](const CancelToken&) -> absl::Status {
        const v1::MediaRefreshOptions opts = request->options();
        ASSIGN_OR_RETURN(auto commands,
                         MediaRefreshCommands(opts, DefaultConcurrency(env_->Cpus())));
        ASSIGN_OR_RETURN(const Runtime* runtime, AppRuntime("media refresh"));
        RETURN_IF_ERROR(runtime->Tootctl({}).status());
        return LaunchTootctlTasks(
            v1::OPERATION_KIND_MEDIA_REFRESH, request->request_id(), "refresh",
            "fetch remote media (and accounts, feeds) again with tootctl", std::move(commands),
            runtime, [opts](v1::Operation* op) { *op->mutable_media_refresh_options() = opts; },
            response->mutable_operation());
      });
}

grpc::ServerUnaryReactor* AgentService::StartCleanup(grpc::CallbackServerContext* context,
                                                     const v1::StartCleanupRequest* request,
                                                     v1::StartCleanupResponse* response) {
  return StartOperationCall(
      context, "StartCleanup", "start cleanup", {{"request_id", request->request_id()}},
      response->mutable_operation(), [this, request, response](const CancelToken&) -> absl::Status {
        const v1::CleanupOptions opts = request->options();
        ASSIGN_OR_RETURN(auto commands, CleanupCommands(opts, DefaultConcurrency(env_->Cpus())));
        ASSIGN_OR_RETURN(const Runtime* runtime, AppRuntime("cleanup"));
        RETURN_IF_ERROR(runtime->Tootctl({}).status());
        return LaunchTootctlTasks(
            v1::OPERATION_KIND_CLEANUP, request->request_id(), "cleanup",
            "remove cached preview cards and remote media with tootctl", std::move(commands),
            runtime, [opts](v1::Operation* op) { *op->mutable_cleanup_options() = opts; },
            response->mutable_operation());
      });
}

namespace {

// A stream that ends at once with a fixed status.
class FinishedWriteReactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit FinishedWriteReactor(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// Maps the engine's steps to operation steps and progress.
}  // namespace

grpc::ServerUnaryReactor* AgentService::StartOperationCall(grpc::CallbackServerContext* context,
                                                           const char* rpc, absl::string_view what,
                                                           const std::vector<LogField>& fields,
                                                           const v1::Operation* operation,
                                                           BlockingUnaryReactor::Work work) {
  if (grpc::Status denied = RequireScope(context, "operate"); !denied.ok()) {
    return Denied(context, rpc, denied);
  }
  std::vector<LogField> logged = fields;
  logged.push_back({"peer", context->peer()});
  logger_->Info(what, logged);
  return BlockingUnaryReactor::Start(&workers_, [this, who = CallerIdentity(context, local_peers_),
                                                 rpc, operation, work = std::move(work)](
                                                    const CancelToken& cancel) {
    absl::Status status = work(cancel);
    logger_->Info("audit", {{"who", who},
                            {"rpc", rpc},
                            {"operation", operation->id()},
                            {"target", operation->target()},
                            {"outcome", status.ok() ? "started" : std::string(status.message())}});
    return status;
  });
}

absl::Status AgentService::Launch(OperationSpec spec, v1::Operation* out) {
  ASSIGN_OR_RETURN(std::shared_ptr<Operation> op, operations_->Start(std::move(spec)));
  *out = op->Snapshot();
  return absl::OkStatus();
}

absl::StatusOr<std::string> AgentService::TargetConnInfo(const v1::DatabaseTarget& target) const {
  if (!target.conninfo().empty()) return target.conninfo();
  if (!config_->target_conninfo.empty()) return config_->target_conninfo;
  if (runtime_ != nullptr && runtime_->runtime != nullptr) {
    ASSIGN_OR_RETURN(AppDatabase db, runtime_->runtime->Database());
    return db.conninfo;
  }
  return absl::FailedPreconditionError(
      "no target PostgreSQL server: give one in the request (--target-conninfo), start the "
      "agent with --target-conninfo, or let it find a Mastodon runtime");
}

std::optional<AppDatabase> AgentService::RuntimeDatabaseFor(
    const v1::DatabaseTarget& target) const {
  if (!target.conninfo().empty() || !config_->target_conninfo.empty()) return std::nullopt;
  if (runtime_ == nullptr || runtime_->runtime == nullptr) return std::nullopt;
  auto db = runtime_->runtime->Database();
  if (!db.ok()) return std::nullopt;
  return *db;
}

absl::StatusOr<AgentService::NamedTarget> AgentService::ResolveNamedTarget(
    const v1::DatabaseTarget& target, absl::string_view verb) const {
  NamedTarget named;
  ASSIGN_OR_RETURN(named.conninfo, TargetConnInfo(target));
  named.database = target.database();
  if (named.database.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(verb, " needs the database name (target.database)"));
  }
  RETURN_IF_ERROR(ValidateDatabaseName(named.database, "target.database"));
  return named;
}

grpc::ServerUnaryReactor* AgentService::StartRestore(grpc::CallbackServerContext* context,
                                                     const v1::StartRestoreRequest* request,
                                                     v1::StartRestoreResponse* response) {
  return StartOperationCall(
      context, "StartRestore", request->options().plan_only() ? "plan restore" : "start restore",
      {{"source", request->options().source().path()}, {"request_id", request->request_id()}},
      response->mutable_operation(),
      [this, request, response](const CancelToken& cancel) -> absl::Status {
        const v1::RestoreOptions& opts = request->options();
        if (!opts.target_db().empty())
          RETURN_IF_ERROR(ValidateDatabaseName(opts.target_db(), "target_db"));
        if (!opts.target().database().empty()) {
          RETURN_IF_ERROR(ValidateDatabaseName(opts.target().database(), "target.database"));
        }
        if (opts.db_only() && opts.media_only()) {
          return absl::InvalidArgumentError("db_only and media_only exclude each other");
        }
        if (opts.refresh_days() < 0) {
          return absl::InvalidArgumentError("refresh_days must not be negative");
        }
        ScanSetup setup;
        RETURN_IF_ERROR(PrepareScan(opts.source(), false, v1::DatabaseTarget(), cancel, &setup));
        RestoreJobInput in;
        in.options = opts;
        in.source_path = setup.path;
        in.source = setup.source;
        in.runtime = runtime_ != nullptr ? runtime_->runtime : nullptr;
        in.default_concurrency = DefaultConcurrency(env_->Cpus());
        in.restore_database = !opts.media_only();
        in.restore_media = !opts.db_only();
        if (in.restore_database) RETURN_IF_ERROR(ResolveRestoreDatabase(opts, setup, &in));
        if (in.restore_media) RETURN_IF_ERROR(ResolveRestoreMedia(opts, &in));

        OperationSpec spec;
        spec.kind = v1::OPERATION_KIND_RESTORE;
        spec.request_id = request->request_id();
        spec.target = in.restore_database ? absl::StrCat("database:", in.database)
                                          : absl::StrCat("media:", in.media_dir);
        spec.fill_request = [opts](v1::Operation* op) {
          *op->mutable_restore_options() = opts;
          RedactSensitive(op->mutable_restore_options());
        };
        for (const PlannedStep& step : PlanRestore(in)) {
          spec.steps.push_back({step.name, step.description});
        }
        if (opts.plan_only()) {
          // Nothing is started or recorded: the plan, as an operation
          // without an id.
          v1::Operation* plan = response->mutable_operation();
          plan->set_kind(spec.kind);
          plan->set_state(v1::OPERATION_STATE_PENDING);
          plan->set_target(spec.target);
          spec.fill_request(plan);
          for (const PlannedStep& step : PlanRestore(in)) {
            v1::Step* s = plan->add_steps();
            s->set_name(step.name);
            s->set_description(step.description);
            s->set_state(step.skip_reason.empty() ? v1::STEP_STATE_PENDING
                                                  : v1::STEP_STATE_SKIPPED);
            s->set_message(step.skip_reason);
          }
          return absl::OkStatus();
        }
        if (in.restore_database) {
          spec.staging_database = [database = in.database](const std::string& id) {
            return StagingDatabaseName(database, id);
          };
          if (!opts.target().conninfo().empty() && !ConnInfoHasPassword(opts.target().conninfo())) {
            spec.cleanup_conninfo = opts.target().conninfo();
          }
        }
        if (in.restore_media && !in.media_dir.empty()) {
          spec.staging_media_dir = [dir = in.media_dir](const std::string& id) {
            return MediaStagingDir(dir, id);
          };
        }
        spec.work = [this, in](Operation* op) {
          RestoreJob job(in, op, runner_, env_);
          return job.Run();
        };
        return Launch(std::move(spec), response->mutable_operation());
      });
}

absl::Status AgentService::ResolveRestoreDatabase(const v1::RestoreOptions& opts,
                                                  const ScanSetup& setup,
                                                  RestoreJobInput* in) const {
  ASSIGN_OR_RETURN(in->conninfo, TargetConnInfo(opts.target()));
  // The live database: asked for, else the runtime's (the host's Mastodon
  // database), else the dump's own name, else DB_NAME of the backup's env
  // file. Only the head of the dump is read here.
  std::optional<AppDatabase> app_db = RuntimeDatabaseFor(opts.target());
  std::string database = !opts.target_db().empty()           ? opts.target_db()
                         : !opts.target().database().empty() ? opts.target().database()
                         : app_db.has_value()                ? app_db->database
                                                             : "";
  BackupEnvFacts env_facts;
  if (database.empty() || !app_db.has_value() || app_db->owner.empty()) {
    ASSIGN_OR_RETURN(v1::DumpInfo dump, DetectDumpInSource(setup.path, opts.member(), setup.source,
                                                           setup.options, runner_, &env_facts));
    if (database.empty()) {
      database = dump.kind() == v1::DUMP_KIND_CLUSTER
                     ? (!opts.source_db().empty() ? opts.source_db() : dump.mastodon_database())
                     : dump.database_name();
    }
    if (database.empty()) database = env_facts.db_name;
    if (database.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the dump '", dump.path(),
                       "' does not name its database and the backup has no DB_NAME: give "
                       "--target-db"));
    }
  }
  if (database.size() > 63 || database.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("invalid database name '", database, "'"));
  }
  in->database = database;
  // Restored objects belong to the role the host's Mastodon uses, else to
  // the backup's DB_USER.
  in->owner = app_db.has_value() && !app_db->owner.empty() ? app_db->owner : env_facts.db_user;
  return absl::OkStatus();
}

absl::Status AgentService::ResolveRestoreMedia(const v1::RestoreOptions& opts,
                                               RestoreJobInput* in) const {
  // The media root: the agent's --media-dir, else the runtime's media
  // directory (with the owner the runtime's app expects).
  std::string root = config_->media_dir;
  std::optional<MediaLocation> app_media;
  if (root.empty() && in->runtime != nullptr) {
    auto media = in->runtime->Media();
    if (media.ok()) {
      app_media = *media;
      root = media->dir;
    }
  }
  if (root.empty()) {
    if (!opts.media_only()) return absl::OkStatus();  // the media step is skipped, saying why
    return absl::FailedPreconditionError(
        "no media directory: start the agent with --media-dir or on a host with a Mastodon "
        "runtime");
  }
  std::string media_dir = opts.media_dir().empty() ? root : opts.media_dir();
  auto normalized = NormalizeEntryPath(media_dir.substr(media_dir[0] == '/' ? 1 : 0));
  if (media_dir[0] != '/' || !normalized.ok() || !IsWithin("/" + *normalized, root)) {
    return absl::PermissionDeniedError(absl::StrCat("media directory '", media_dir,
                                                    "' is not the agent's media directory (", root,
                                                    ") or inside it"));
  }
  in->media_dir = "/" + *normalized;
  // New files belong to the runtime's app user, else to whoever owns the
  // media directory (or its parent).
  if (app_media.has_value() && app_media->uid.has_value()) {
    in->media_uid = app_media->uid;
    in->media_gid = app_media->gid;
  } else {
    auto owner = env_->OwnerOf(in->media_dir);
    if (!owner.ok())
      owner = env_->OwnerOf(in->media_dir.substr(0, in->media_dir.find_last_of('/')));
    if (owner.ok()) {
      in->media_uid = owner->uid;
      in->media_gid = owner->gid;
    }
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AgentService::StartRollback(grpc::CallbackServerContext* context,
                                                      const v1::StartRollbackRequest* request,
                                                      v1::StartRollbackResponse* response) {
  return StartOperationCall(
      context, "StartRollback", "start rollback",
      {{"database", request->options().target().database()}}, response->mutable_operation(),
      [this, request, response](const CancelToken&) -> absl::Status {
        const v1::RollbackOptions& opts = request->options();
        ASSIGN_OR_RETURN(NamedTarget named, ResolveNamedTarget(opts.target(), "rollback"));
        const std::string conninfo = std::move(named.conninfo);
        const std::string database = std::move(named.database);
        if (!opts.previous_database().empty()) {
          RETURN_IF_ERROR(ValidateDatabaseName(opts.previous_database(), "previous_database"));
        }
        OperationSpec spec;
        spec.kind = v1::OPERATION_KIND_ROLLBACK;
        spec.request_id = request->request_id();
        spec.target = absl::StrCat("database:", database);
        spec.fill_request = [opts](v1::Operation* op) {
          *op->mutable_rollback_options() = opts;
          RedactSensitive(op->mutable_rollback_options());
        };
        spec.steps = {{"swap", "swap the previous database back in"}};
        spec.work = [this, conninfo, database,
                     previous = opts.previous_database()](Operation* op) -> absl::Status {
          op->StepStarted("swap");
          ASSIGN_OR_RETURN(v1::RollbackResult result,
                           RollbackDatabase(conninfo, database, previous, env_->Now()));
          op->StepFinished(
              "swap", v1::STEP_STATE_SUCCEEDED,
              absl::StrCat(result.restored_database(), " is live again as ", database));
          op->SetResult([&](v1::Operation* o) { *o->mutable_rollback_result() = result; });
          return absl::OkStatus();
        };
        return Launch(std::move(spec), response->mutable_operation());
      });
}

namespace {

constexpr char kScratchPrefix[] = "mastodon_verify_";

absl::Status DropScratchDatabase(const std::string& conninfo, const std::string& database) {
  ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> admin,
                   PgConnection::Connect(conninfo, "postgres"));
  return TargetDatabases(admin.get()).Drop(database);
}

// The local files media_attachments rows reference, against the backup's
// media tree: present and readable.
v1::VerifyCheck CheckMediaFiles(PgConnection* conn, const std::string& source_path,
                                const SourceOptions& source, CommandRunner* runner) {
  v1::VerifyCheck c;
  c.set_name("media_files");
  auto listing = ListMediaFiles(source_path, source, runner);
  if (!listing.ok()) {
    c.set_passed(absl::IsNotFound(listing.status()));
    c.set_message(absl::IsNotFound(listing.status())
                      ? "the backup holds no media tree: nothing to check"
                      : absl::StrCat("unable to read the media: ", listing.status().message()));
    return c;
  }
  auto table = conn->Query("SELECT to_regclass('public.media_attachments') IS NOT NULL");
  if (table.ok() && table->Scalar() != "t") {
    c.set_passed(true);
    c.set_message(absl::StrCat("no media_attachments table: nothing references the ",
                               listing->files.size(), " media files"));
    return c;
  }
  auto has_remote = conn->Query(
      "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND "
      "table_name = 'media_attachments' AND column_name = 'remote_url'");
  auto rows = conn->Query(absl::StrCat(
      "SELECT id, file_file_name FROM public.media_attachments WHERE file_file_name IS NOT NULL",
      has_remote.ok() && has_remote->Scalar() != "0" ? " AND coalesce(remote_url, '') = ''" : "",
      " ORDER BY id"));
  if (!rows.ok()) {
    c.set_passed(false);
    c.set_message(absl::StrCat("unable to read media_attachments: ", rows.status().message()));
    return c;
  }
  int64_t checked = 0;
  std::vector<std::string> missing;
  for (const auto& row : rows->rows) {
    int64_t id = 0;
    if (!row[0].has_value() || !absl::SimpleAtoi(*row[0], &id)) continue;
    ++checked;
    const std::string path = absl::StrCat("media_attachments/files/", IdPartition(id), "/original/",
                                          row[1].value_or(""));
    if (listing->files.count(path) == 0) missing.push_back(path);
  }
  c.set_passed(missing.empty() && listing->unreadable.empty());
  if (c.passed()) {
    c.set_message(absl::StrCat(checked, " local media files referenced, all present and readable (",
                               listing->files.size(), " files in ", listing->root, ")"));
  } else {
    std::vector<std::string> shown = listing->unreadable;
    for (const std::string& m : missing) {
      if (shown.size() >= 5) break;
      shown.push_back(absl::StrCat(m, " missing"));
    }
    c.set_message(absl::StrCat(missing.size(), " of ", checked, " referenced files missing, ",
                               listing->unreadable.size(),
                               " unreadable: ", absl::StrJoin(shown, "; ")));
  }
  return c;
}

}  // namespace

grpc::ServerUnaryReactor* AgentService::StartVerify(grpc::CallbackServerContext* context,
                                                    const v1::StartVerifyRequest* request,
                                                    v1::StartVerifyResponse* response) {
  return StartOperationCall(
      context, "StartVerify", "start verify",
      {{"database", request->options().target().database()}}, response->mutable_operation(),
      [this, request, response](const CancelToken& cancel) -> absl::Status {
        const v1::VerifyOptions& opts = request->options();
        ASSIGN_OR_RETURN(NamedTarget named, ResolveNamedTarget(opts.target(), "verify"));
        const std::string conninfo = std::move(named.conninfo);
        const std::string database = std::move(named.database);
        if (opts.drop_scratch() && !absl::StartsWith(database, kScratchPrefix)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "drop_scratch: '", database, "' is not a scratch database (", kScratchPrefix, "*)"));
        }
        if (opts.check_media() && opts.expected().path().empty()) {
          return absl::InvalidArgumentError("check_media needs the expected backup");
        }
        std::optional<ScanSetup> expected;
        if (!opts.expected().path().empty()) {
          expected.emplace();
          RETURN_IF_ERROR(
              PrepareScan(opts.expected(), true, v1::DatabaseTarget(), cancel, &*expected));
        }
        OperationSpec spec;
        spec.kind = v1::OPERATION_KIND_VERIFY;
        spec.request_id = request->request_id();
        spec.fill_request = [opts](v1::Operation* op) {
          *op->mutable_verify_options() = opts;
          RedactSensitive(op->mutable_verify_options());
        };
        spec.steps = {{"detect", "read the expected tables and rows from the dump"},
                      {"verify", "run the checks"}};
        spec.work = [this, conninfo, database, expected, max_age = opts.max_age_days(),
                     check_media = opts.check_media(),
                     drop_scratch = opts.drop_scratch()](Operation* op) -> absl::Status {
          absl::Status status = [&]() -> absl::Status {
            VerifyExpectations expectations;
            op->StepStarted("detect");
            if (expected.has_value()) {
              ScanSetup setup = *expected;
              setup.source.cancel = &op->cancel_token();
              ASSIGN_OR_RETURN(v1::DumpInfo dump, DetectDumpInSource(setup.path, "", setup.source,
                                                                     setup.options, runner_));
              const std::string db =
                  dump.kind() == v1::DUMP_KIND_CLUSTER ? dump.mastodon_database() : std::string();
              for (const v1::TableRowCount& t : dump.tables()) {
                if (t.database() == db) expectations.table_rows[t.table()] = t.rows();
              }
              expectations.schema_version = dump.schema_version();
              op->StepFinished("detect", v1::STEP_STATE_SUCCEEDED,
                               absl::StrCat(expectations.table_rows.size(), " tables expected"));
            } else {
              op->StepFinished("detect", v1::STEP_STATE_SKIPPED,
                               "no dump given: structural checks only");
            }
            op->StepStarted("verify");
            ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn,
                             PgConnection::Connect(conninfo, database));
            ASSIGN_OR_RETURN(v1::VerifyResult result,
                             VerifyDatabase(conn.get(), database, expectations));
            if (max_age > 0) {
              auto newest = conn->Query(
                  "SELECT coalesce(extract(epoch FROM now() - max(created_at))::bigint / 86400, "
                  "-1) "
                  "FROM statuses");
              v1::VerifyCheck* c = result.add_checks();
              c->set_name("max_age");
              if (!newest.ok()) {
                c->set_passed(false);
                c->set_message(absl::StrCat("unable to read statuses.created_at: ",
                                            newest.status().message()));
              } else {
                int64_t days = std::stoll(newest->Scalar().empty() ? "-1" : newest->Scalar());
                c->set_passed(days >= 0 && days <= max_age);
                c->set_message(days < 0 ? std::string("no statuses")
                                        : absl::StrCat("newest status is ", days,
                                                       " days old (limit ", max_age, ")"));
              }
              if (!c->passed()) result.set_passed(false);
            }
            if (check_media && expected.has_value()) {
              ScanSetup setup = *expected;
              setup.source.cancel = &op->cancel_token();
              v1::VerifyCheck c = CheckMediaFiles(conn.get(), setup.path, setup.source, runner_);
              if (!c.passed()) result.set_passed(false);
              *result.add_checks() = c;
            }
            op->SetResult([&](v1::Operation* o) { *o->mutable_verify_result() = result; });
            if (!result.passed()) {
              return absl::DataLossError(absl::StrCat("verification of '", database, "' failed"));
            }
            op->StepFinished("verify", v1::STEP_STATE_SUCCEEDED, "every check passed");
            return absl::OkStatus();
          }();
          // A scratch copy goes whatever the checks found.
          if (drop_scratch) {
            absl::Status dropped = DropScratchDatabase(conninfo, database);
            op->Log(dropped.ok() ? v1::SEVERITY_INFO : v1::SEVERITY_ERROR,
                    dropped.ok() ? absl::StrCat("dropped the scratch database '", database, "'")
                                 : std::string(dropped.message()),
                    "verify");
            if (status.ok()) status = dropped;
          }
          return status;
        };
        return Launch(std::move(spec), response->mutable_operation());
      });
}

grpc::ServerUnaryReactor* AgentService::GetOperation(grpc::CallbackServerContext* context,
                                                     const v1::GetOperationRequest* request,
                                                     v1::GetOperationResponse* response) {
  if (grpc::Status denied = RequireScope(context, "read"); !denied.ok()) {
    return Denied(context, "GetOperation", denied);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto op = operations_->Get(request->id());
  if (op.ok()) *response->mutable_operation() = (*op)->Snapshot();
  reactor->Finish(ToGrpcStatus(op.status()));
  return reactor;
}

grpc::ServerUnaryReactor* AgentService::ListOperations(grpc::CallbackServerContext* context,
                                                       const v1::ListOperationsRequest* request,
                                                       v1::ListOperationsResponse* response) {
  if (grpc::Status denied = RequireScope(context, "read"); !denied.ok()) {
    return Denied(context, "ListOperations", denied);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  int offset = 0;
  if (!request->page_token().empty() && !absl::SimpleAtoi(request->page_token(), &offset)) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "invalid page_token"));
    return reactor;
  }
  int size = request->page_size() > 0 ? std::min(request->page_size(), 1000) : 50;
  std::vector<v1::Operation> all;
  for (v1::Operation& op : operations_->List()) {
    bool state_ok = request->states().empty(), kind_ok = request->kinds().empty();
    for (int s : request->states()) state_ok |= op.state() == s;
    for (int k : request->kinds()) kind_ok |= op.kind() == k;
    if (state_ok && kind_ok) all.push_back(std::move(op));
  }
  for (int i = offset; i < static_cast<int>(all.size()) && i < offset + size; ++i) {
    *response->add_operations() = all[i];
  }
  if (offset + size < static_cast<int>(all.size())) {
    response->set_next_page_token(absl::StrCat(offset + size));
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AgentService::CancelOperation(grpc::CallbackServerContext* context,
                                                        const v1::CancelOperationRequest* request,
                                                        v1::CancelOperationResponse* response) {
  if (grpc::Status denied = RequireScope(context, "operate"); !denied.ok()) {
    return Denied(context, "CancelOperation", denied);
  }
  logger_->Info("cancel operation", {{"operation", request->id()}, {"peer", context->peer()}});
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto op = operations_->Cancel(request->id());
  if (op.ok()) *response->mutable_operation() = (*op)->Snapshot();
  logger_->Info("audit", {{"who", CallerIdentity(context, local_peers_)},
                          {"rpc", "CancelOperation"},
                          {"operation", request->id()},
                          {"outcome", op.ok() ? "OK" : std::string(op.status().message())}});
  reactor->Finish(ToGrpcStatus(op.status()));
  return reactor;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* AgentService::WatchOperation(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw_request) {
  if (grpc::Status denied = RequireScope(context, "read"); !denied.ok()) {
    logger_->Warning("audit", {{"who", CallerIdentity(context, local_peers_)},
                               {"rpc", "WatchOperation"},
                               {"outcome", denied.error_message()}});
    return new FinishedWriteReactor(denied);
  }
  v1::WatchOperationRequest request;
  grpc::ByteBuffer bytes = *raw_request;  // Deserialize consumes its buffer
  if (!grpc::SerializationTraits<v1::WatchOperationRequest>::Deserialize(&bytes, &request).ok()) {
    return new FinishedWriteReactor(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed WatchOperationRequest"));
  }
  auto op = operations_->Get(request.id());
  if (!op.ok()) return new FinishedWriteReactor(ToGrpcStatus(op.status()));
  return new WatchReactor(*op, watch_feeds_.For((*op)->id()), request.from_sequence());
}

}  // namespace mastodon_restore
