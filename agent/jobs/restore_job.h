// The whole restore of an instance, as one operation: RestoreJob::Run reads
// as the design's steps (pgBackRest's cmdRestore is the model), and one step
// table (restore_job.cc) drives both the plan and the run:
//
//    1 open           read the source once (decryption, archives): the env
//                     file, every dump, the media tree
//    2 inventory      what the backup holds, its warnings; the dump to load
//    3 detect         that dump, read no further than its head
//    4 preflight      runtime, PostgreSQL reachable and recent enough, roles,
//                     disk space, secrets
//    5 stop_services  the app's services (nobody writes what will be replaced)
//    6 load           into a staging database (+ ANALYZE)
//    7 verify         the staging database against the dump
//      checks         before the swap: duplicates under the dump's unique
//                     indexes (repaired with --repair-duplicates), amcheck
//      secrets        the env the restored app will run with decrypts the
//                     staging database's encrypted columns (else refused
//                     unless --accept-secret-mismatch)
//    8 swap           staging in, live kept as <db>__previous_<time>
//    9 media          staged, then moved into place; unchanged files skipped
//      config         the backup's env file (with --restore-config)
//      redis          the backup's Redis dump in place of the runtime's
//   10 migrate        the app's db:migrate, checked in schema_migrations
//   11 cleanup        tootctl preview_cards remove, media remove
//   12 refresh        tootctl media refresh, accounts refresh, feeds build
//      search         tootctl search deploy when the app's env enables it
//      media_check    the files the database references that the media
//                     directory lacks: local ones lost (listed), remote ones
//                     fetched again with --refetch-missing-remote-media
//   13 start_services the app's services again (also after a failure)
//      app_checks     the app answers: web /health, streaming health,
//                     sidekiq runs (a failure fails the restore; the report
//                     names the rollback)
//   14 report         what was restored, versions, warnings, durations
//
// Steps not asked for, or that do not apply (no runtime, a restore beside
// the live database, a backup without media), are SKIPPED with the reason.
// A failure before the swap leaves the live database and media untouched;
// after it, the report names what to run again.
#ifndef MR_AGENT_JOBS_RESTORE_JOB_H_
#define MR_AGENT_JOBS_RESTORE_JOB_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/app/app_checks.h"
#include "agent/app/app_tasks.h"
#include "agent/app/env_install.h"
#include "agent/app/redis_restore.h"
#include "agent/app/runtime.h"
#include "agent/archive/source_walker.h"
#include "agent/common/object_store.h"
#include "agent/common/rate_limiter.h"
#include "agent/database/database_restore.h"
#include "agent/database/local_cluster.h"
#include "agent/inventory/inspector.h"
#include "agent/jobs/job_env.h"
#include "agent/jobs/scan.h"
#include "agent/jobs/targets.h"
#include "agent/media/media_restore.h"
#include "agent/media/missing_media.h"
#include "agent/operations/operation.h"
#include "agent/operations/operation_manager.h"
#include "mastodon/restore/v1/operation.pb.h"
#include "mastodon/restore/v1/restore.pb.h"

namespace mastodon_restore {

// Everything the job needs, resolved and checked before it starts.
struct RestoreJobInput {
  // The request; its secrets stay in `source`.
  mastodon::restore::v1::RestoreOptions options;
  // The source, resolved inside the allowed roots, and its secrets.
  std::string source_path;
  SourceOptions source;
  // pg_restore majors installed on the host (what archive versions the
  // inventory can read).
  std::vector<int> pg_restore_majors;
  // The runtime (null: none). App steps run only when it is set, runs an
  // app, and `database` is its live database.
  const Runtime* runtime = nullptr;
  // The database: the server, the live name and the owner ("" keeps the
  // live database's or the dump's).
  bool restore_database = true;
  std::string conninfo;
  std::string database;
  std::string owner;
  // The media directory ("" when there is none to restore into) and the
  // owner of what is written there.
  bool restore_media = true;
  std::string media_dir;
  // Free space a restore leaves on the media filesystem and, when the
  // server's data directory is on this host, on the server's filesystem
  // while the load runs.
  SpaceFloor space_floor;
  std::optional<uid_t> media_uid;
  std::optional<gid_t> media_gid;
  // tootctl --concurrency when the request gives none.
  int default_concurrency = 5;
  // pg_restore binaries (normally /usr/lib/postgresql).
  std::string postgres_root = kDefaultPostgresRoot;
  // How recovery reaches `conninfo` (OperationRecord.database_journal).
  JournalTarget journal;
  // The agent's --target-conninfo (recovery at the end of the job).
  std::string agent_target_conninfo;
  // The agent's --allowed-s3-endpoint: the media check looks in the app's
  // bucket (S3_ENABLED) only at one of these.
  std::vector<std::string> allowed_s3_endpoints;
  // Where the media come from when not from the source (options'
  // media_source, resolved): its path ("s3://bucket/prefix/" for a
  // bucket) and options.
  std::string media_source_path;
  std::optional<SourceOptions> media_source;
  // The request's bandwidth_limit, shared by every object-storage client
  // of the job (null: none).
  std::shared_ptr<RateLimiter> rate_limit;
};

// One step of the plan.
struct PlannedStep {
  std::string name;
  std::string description;
  // Empty when the step runs; why not otherwise.
  std::string skip_reason;
};

// The steps of a restore and which of them run (the whole plan; --plan
// shows it without running anything).
std::vector<PlannedStep> PlanRestore(const RestoreJobInput& input);

// What the target server is, as preflight sees it.
struct ServerFacts {
  std::string version;  // "15.18"
  int major = 0;
  std::string user;  // the role the agent connects as
  bool may_create_databases = false;
  std::string data_directory;  // "" unless the role may read it
};

// What the steps do to the world, behind one seam so that the narrative is
// unit-tested with a fake; NewRestoreActions's calls inventory/, database/,
// media/ and app/. Every call honours the cancel token of the options or
// task context it is given.
class RestoreActions {
 public:
  virtual ~RestoreActions() = default;
  // inventory/: one walk of the source.
  virtual absl::StatusOr<OpenedBackup> Open(const std::string& path, const SourceOptions& source,
                                            const InspectOptions& options) = 0;
  // inventory/: the dump's database of a cluster dump, when the head did not
  // name it (a deep scan).
  virtual absl::StatusOr<std::string> ClusterDatabase(const mastodon::restore::v1::DumpInfo& dump,
                                                      const std::string& source_db,
                                                      const std::string& path,
                                                      const SourceOptions& source,
                                                      const InspectOptions& options) = 0;
  // database/.
  virtual absl::StatusOr<ServerFacts> ProbeServer(const std::string& conninfo) = 0;
  virtual absl::StatusOr<DatabaseRestoreResult> Stage(const DatabaseRestoreRequest& request) = 0;
  virtual absl::Status Verify(const DatabaseRestoreRequest& request,
                              DatabaseRestoreResult* result) = 0;
  // The checks before the swap (CheckStagedBeforeSwap): refuses it, the
  // staging database dropped, when the dump's data violates its unique
  // indexes or an index fails amcheck.
  virtual absl::Status CheckBeforeSwap(const DatabaseRestoreRequest& request,
                                       DatabaseRestoreResult* result) = 0;
  virtual absl::Status Swap(const DatabaseRestoreRequest& request,
                            DatabaseRestoreResult* result) = 0;
  virtual void DropStaging(const std::string& conninfo, const std::string& staging_database,
                           uint32_t staging_oid) = 0;
  // app/secrets_check.h on `database` of `conninfo`'s server, with the env
  // file `env_text` (null: none).
  virtual absl::StatusOr<mastodon::restore::v1::SecretsCheck> CheckSecrets(
      const std::string& conninfo, const std::string& database, const std::string* env_text,
      const std::string& env_source) = 0;
  // media/.
  virtual absl::StatusOr<MediaRestoreResult> RestoreMedia(const MediaRestoreOptions& options) = 0;
  // media/missing_media.h on `database` of `conninfo`'s server: the files
  // its records reference that the media directory lacks, and the scopes of
  // tootctl commands that fetch the remote ones again.
  virtual absl::StatusOr<MissingMediaScan> ScanMedia(const std::string& conninfo,
                                                     const std::string& database,
                                                     const MissingMediaOptions& options) = 0;
  virtual absl::StatusOr<RefetchPlan> PlanMediaRefetch(
      const std::string& conninfo, const std::string& database,
      const std::vector<MissingRemoteFile>& missing, const RefetchLimits& limits) = 0;
  // app/.
  virtual absl::Status ControlServices(const Runtime& runtime, bool start,
                                       const TaskContext& ctx) = 0;
  virtual absl::StatusOr<EnvInstallResult> InstallEnv(
      const Runtime& runtime, const std::string& backup_env, const std::string& tag,
      const std::function<absl::Status(const EnvInstallJournal&)>& journal) = 0;
  virtual absl::StatusOr<mastodon::restore::v1::DbMigrateResult> Migrate(
      const Runtime& runtime, const AppDatabase& db, const TaskContext& ctx) = 0;
  virtual absl::StatusOr<mastodon::restore::v1::TootctlResult> Tootctl(
      const Runtime& runtime, const std::vector<std::string>& args, const TaskContext& ctx) = 0;
  // app/: after start_services, whether the app answers (app_checks.h).
  virtual std::vector<mastodon::restore::v1::AfterSwapCheck> CheckApp(
      const Runtime& runtime, const AppCheckOptions& options, const TaskContext& ctx) = 0;
  // app/: the backup's Redis dump in place of the runtime's (redis_restore.h).
  virtual absl::StatusOr<mastodon::restore::v1::RedisRestore> RestoreRedis(
      const Runtime& runtime, const RedisRestoreOptions& options, const TaskContext& ctx) = 0;
};

// The real actions, with `env`'s runner and Env (which must outlive them).
std::unique_ptr<RestoreActions> NewRestoreActions(const JobEnv& env);

class RestoreJob {
 public:
  // `op` receives progress, events and the report; its steps must be
  // PlanRestore(input)'s. `actions` and `env` must outlive the job.
  RestoreJob(RestoreJobInput input, Operation* op, RestoreActions* actions, Env* env);
  ~RestoreJob();

  // Runs the plan. CANCELLED when cancelled (the step under way stops and
  // cleans up; the services are started again).
  absl::Status Run();

 private:
  // The plan is the step table's, evaluated for an input.
  friend std::vector<PlannedStep> PlanRestore(const RestoreJobInput& input);

  // The steps, in the order of the table. Each returns the one-line message
  // of its StepFinished event and keeps what it learns in the typed members
  // below, which later steps read.
  absl::StatusOr<std::string> OpenSource();
  absl::StatusOr<std::string> TakeInventory();
  absl::StatusOr<std::string> DetectDump();
  absl::StatusOr<std::string> Preflight();
  absl::StatusOr<std::string> StopServices();
  absl::StatusOr<std::string> LoadIntoStaging();
  absl::StatusOr<std::string> VerifyStaging();
  absl::StatusOr<std::string> CheckBeforeSwap();
  absl::StatusOr<std::string> CheckStagingSecrets();
  absl::StatusOr<std::string> SwapIn();
  absl::StatusOr<std::string> RestoreMediaFiles();
  absl::StatusOr<std::string> InstallConfig();
  absl::StatusOr<std::string> Migrate();
  absl::StatusOr<std::string> Cleanup();
  absl::StatusOr<std::string> Refresh();
  absl::StatusOr<std::string> DeploySearch();
  absl::StatusOr<std::string> RestoreRedisDump();
  absl::StatusOr<std::string> CheckMissingMedia();
  // Why the media directory is not checked after all ("" when it is).
  std::string MediaNotToCheck() const;
  // The bucket the restored app keeps its media in (S3_ENABLED in its env)
  // when its endpoint is one the agent allows; null otherwise, with `why`
  // saying why it cannot be checked ("" when the app keeps its media in
  // its media directory).
  // Worked out once per job.
  std::shared_ptr<const ObjectStore> AppMediaBucket(std::string* why) const;
  // The backup the media come from (the media source's, or the source's),
  // and how to name it.
  const OpenedBackup& MediaBackup() const;
  const std::string& MediaSourcePath() const;
  // Why the backup's Redis dump is not restored after all ("" when it is).
  std::string RedisNotToRestore() const;
  // Why search deploy does not run after all ("" when the app's env sets
  // ES_ENABLED=true).
  std::string SearchNotEnabled() const;
  // The text of the env the restored app will run with, and in `source`
  // which file that is ("" and "" when there is none).
  std::string AppEnvText(std::string* source) const;
  // Whether that env sets `key` to true (any case); `source` as above.
  bool AppEnvEnables(const char* key, std::string* source) const;
  absl::StatusOr<std::string> StartServices();
  absl::StatusOr<std::string> CheckAppAnswers();
  // Why the app is not checked after all ("" when app_checks runs).
  std::string AppNotToCheck() const;
  // Why the app stays down after all ("" when start_services runs).
  std::string ServicesStillDown() const;
  void Report(const absl::Status& outcome);

  struct StepDef;
  static const std::vector<StepDef>& Steps();
  // Runs the step when the plan has it, reporting start and end.
  absl::Status RunStep(const StepDef& step);
  bool Planned(const std::string& name) const;
  std::string SkipReason(const std::string& name) const;
  absl::Status CheckCancelled() const;
  // Runs tootctl argument lists one after the other into the report.
  absl::StatusOr<std::string> RunTootctlCommands(
      const std::vector<std::vector<std::string>>& commands, const std::string& step);
  TaskContext Task(const std::string& step, bool cancellable) const;

  const RestoreJobInput input_;
  Operation* const op_;
  RestoreActions* const actions_;
  Env* const env_;
  SourceOptions source_;                       // input_.source, cancelled with the operation
  std::optional<SourceOptions> media_source_;  // input_.media_source, likewise
  std::vector<PlannedStep> plan_;

  // What the steps learned, by the step that learned it.
  OpenedBackup backup_;        // open
  OpenedBackup media_backup_;  // open (media_source)
  // AppMediaBucket's answer, once worked out.
  mutable std::optional<std::pair<std::shared_ptr<const ObjectStore>, std::string>> app_bucket_;
  std::optional<mastodon::restore::v1::DumpInfo> dump_;        // inventory, detect
  std::string cluster_database_;                               // detect
  ServerFacts server_;                                         // open (probed), preflight, load
  std::string pg_restore_;                                     // preflight: for an archive
  absl::Status server_error_;                                  // open: why the probe failed
  std::vector<std::string> secrets_differing_;                 // preflight
  bool services_stopped_ = false;                              // stop_services, start_services
  DatabaseRestoreRequest db_request_;                          // load (verify and swap use it)
  DatabaseRestoreResult db_;                                   // load, verify, swap
  mastodon::restore::v1::SecretsCheck secrets_;                // secrets
  bool swapped_ = false;                                       // swap
  MediaRestoreResult media_;                                   // media
  mastodon::restore::v1::DbMigrateResult migrate_;             // migrate
  std::vector<mastodon::restore::v1::TootctlResult> tootctl_;  // cleanup, refresh
  std::vector<mastodon::restore::v1::AfterSwapCheck> after_swap_checks_;  // app_checks
  std::optional<mastodon::restore::v1::RedisRestore> redis_;              // redis
  std::optional<mastodon::restore::v1::MissingMedia> missing_media_;      // media_check
  std::vector<std::string> warnings_;                                     // any
  absl::Status outcome_;                                                  // of the steps so far
};

// A restore ready to start: the operation to launch, and the plan as a
// plan_only request returns it (an operation without an id).
struct PreparedRestore {
  OperationSpec spec;
  mastodon::restore::v1::Operation plan;
};

// What a restore reads, resolved: the backup, where the media come from
// when not from it (options' media_source), and the bandwidth cap the
// object-storage clients share (null: none).
struct RestoreSources {
  ScanSetup backup;
  std::optional<ScanSetup> media;
  std::shared_ptr<RateLimiter> rate_limit;
};

// Resolves the restore's targets (jobs/targets.h; reads the dump's head only
// when nothing else names the database), plans it, and returns the
// operation whose work runs a RestoreJob with the real actions.
absl::StatusOr<PreparedRestore> PrepareRestore(const std::string& request_id,
                                               const mastodon::restore::v1::RestoreOptions& options,
                                               const RestoreSources& sources, const JobEnv& env);

}  // namespace mastodon_restore

#endif  // MR_AGENT_JOBS_RESTORE_JOB_H_
