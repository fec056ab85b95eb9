// The whole restore of an instance, as one operation: RestoreJob::Run reads
// as the design's steps (pgBackRest's cmdRestore is the model):
//
//    1 open           read the source's containers (decryption, archives)
//    2 inventory      env file, dumps, media tree
//    3 detect         the dump to load
//    4 preflight      runtime, PostgreSQL reachable and recent enough, roles,
//                     disk space, secrets
//    5 stop_services  the app's services (nobody writes what will be replaced)
//    6 load           into a staging database (+ ANALYZE)
//    7 verify         the staging database against the dump
//    8 swap           staging in, live kept as <db>__previous_<time>
//    9 media          staged, then moved into place; unchanged files skipped
//      config         the backup's env file (with --restore-config)
//   10 migrate        the app's db:migrate, checked in schema_migrations
//   11 cleanup        tootctl preview_cards remove, media remove
//   12 refresh        tootctl media refresh, accounts refresh, feeds build
//   13 start_services the app's services again (also after a failure)
//   14 report         what was restored, versions, warnings, durations
//
// Steps not asked for, or that do not apply (no runtime, a restore beside
// the live database, a backup without media), are SKIPPED with the reason.
// A failure before the swap leaves the live database and media untouched;
// after it, the report names what to run again.
#ifndef MR_AGENT_RESTORE_RESTORE_JOB_H_
#define MR_AGENT_RESTORE_RESTORE_JOB_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/app/app_tasks.h"
#include "agent/app/runtime.h"
#include "agent/archive/inspector.h"
#include "agent/archive/source_walker.h"
#include "agent/common/env.h"
#include "agent/common/subprocess.h"
#include "agent/operations/operation.h"
#include "mastodon/restore/v1/operation.pb.h"
#include "mastodon/restore/v1/restore.pb.h"

namespace mastodon_restore {

// Everything the job needs, resolved and checked by the service.
struct RestoreJobInput {
  // The request; its secrets stay in `source`.
  mastodon::restore::v1::RestoreOptions options;
  // The source, resolved inside the allowed roots, and its secrets.
  std::string source_path;
  SourceOptions source;
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
  std::optional<uid_t> media_uid;
  std::optional<gid_t> media_gid;
  // tootctl --concurrency when the request gives none.
  int default_concurrency = 5;
  // pg_restore binaries (normally /usr/lib/postgresql).
  std::string postgres_root = "/usr/lib/postgresql";
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

class RestoreJob {
 public:
  // `op` receives progress, events and the report; its steps must be
  // PlanRestore(input)'s. `runner` and `env` must outlive the job.
  RestoreJob(RestoreJobInput input, Operation* op, CommandRunner* runner, Env* env);
  ~RestoreJob();

  // Runs the plan. CANCELLED when cancelled (the step under way stops and
  // cleans up; the services are started again).
  absl::Status Run();

 private:
  absl::Status OpenSource();
  absl::Status TakeInventory();
  absl::Status DetectDump();
  absl::Status Preflight();
  absl::Status StopServices();
  absl::Status LoadIntoStaging();
  absl::Status VerifyStaging();
  absl::Status SwapIn();
  absl::Status RestoreMediaFiles();
  absl::Status InstallConfig();
  absl::Status Migrate();
  absl::Status Cleanup();
  absl::Status Refresh();
  absl::Status StartServices();
  void Report(const absl::Status& outcome);
  // Runs tootctl argument lists one after the other into the report.
  absl::Status RunTootctlCommands(const std::vector<std::vector<std::string>>& commands,
                                  const TaskContext& ctx);

  // Runs `step` when the plan has it, reporting start and end.
  absl::Status Step(const std::string& name, absl::Status (RestoreJob::*run)());
  bool Planned(const std::string& name) const;
  std::string SkipReason(const std::string& name) const;
  absl::Status CheckCancelled() const;

  struct State;
  const RestoreJobInput input_;
  Operation* const op_;
  CommandRunner* const runner_;
  Env* const env_;
  SourceOptions source_;  // input_.source, cancelled with the operation
  std::vector<PlannedStep> plan_;
  std::unique_ptr<State> state_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_RESTORE_RESTORE_JOB_H_
