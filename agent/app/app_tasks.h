// The app's own commands, run through the runtime: tootctl (cleanup, media
// and account refresh, feeds) and rails db:migrate. Each runs under a
// pseudo-terminal (tootctl prints its N/M counts only on a terminal), with
// the runtime's user, directory and environment, a timeout and
// cancellation; every output line becomes a log event, progress bars become
// progress, and the outcome is judged by what the command printed and by
// the database, not by its exit code alone (tootctl exits 0 when items fail;
// the snap's helpers exit 0 when they refuse to run).
#ifndef MR_AGENT_APP_APP_TASKS_H_
#define MR_AGENT_APP_APP_TASKS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/app/runtime.h"
#include "agent/common/cancel_token.h"
#include "agent/common/env.h"
#include "agent/common/subprocess.h"
#include "agent/database/pg_session.h"
#include "agent/media/missing_media.h"
#include "agent/operations/operation.h"
#include "mastodon/restore/v1/operation.pb.h"
#include "mastodon/restore/v1/restore.pb.h"

namespace mastodon_restore {

// Where a task reports and what bounds it.
struct TaskContext {
  CommandRunner* runner = nullptr;
  Env* env = nullptr;
  const CancelToken* cancel = nullptr;
  // Receives the step's progress and one log event per output line.
  ProgressReporter* reporter = nullptr;
  // The step name the events carry ("cleanup", "refresh", "migrate").
  std::string step;
  // Per command.
  absl::Duration timeout = absl::Hours(24);
  // Opens the sessions to the app's database; nullptr: a LibpqConnector
  // (the real server). Must outlive the task.
  PgConnector* pg = nullptr;
};

// Default tootctl --concurrency for `cpus` cores, as the snap's cleanup
// timer picks it: 1 below 2 cores, 5 below 16, else 8.
int DefaultConcurrency(int cpus);

// The tootctl argument lists (without "tootctl") for a cleanup:
// "preview_cards remove --days N" and "media remove --days N [...]".
// INVALID_ARGUMENT for negative days or concurrency.
absl::StatusOr<std::vector<std::vector<std::string>>> CleanupCommands(
    const mastodon::restore::v1::CleanupOptions& options, int default_concurrency);

// The tootctl argument lists for a refresh: "media refresh" with its source
// (days, account, domain or status; INVALID_ARGUMENT without one, as tootctl
// itself refuses), then "accounts refresh --all" and "feeds build --all"
// when asked.
absl::StatusOr<std::vector<std::vector<std::string>>> MediaRefreshCommands(
    const mastodon::restore::v1::MediaRefreshOptions& options, int default_concurrency);

// The tootctl argument list that (re)builds the search indices from the
// database: "search deploy --concurrency N". Its "Error while importing"
// lines are item errors (exit 0); a search server that does not answer
// exits 1 ("There was an issue connecting to the search server").
std::vector<std::string> SearchDeployCommand(int default_concurrency);

// The tootctl argument lists that fetch again what `plan` scopes
// (media/missing_media.h): "media refresh --status ID --force" per status
// and "media refresh --account HANDLE --force" per account (--force: tootctl
// skips an attachment whose file name is set, which is the case of a file
// missing on disk), then "accounts refresh HANDLE..." with at most
// `accounts_per_command` handles each (one unknown handle fails the whole
// command, as tootctl stops at "No such account"). The media refresh lists
// are MediaRefreshCommands'; its INVALID_ARGUMENT is returned as is.
absl::StatusOr<std::vector<std::vector<std::string>>> RefetchCommands(const RefetchPlan& plan,
                                                                      int accounts_per_command,
                                                                      int default_concurrency);

// Runs `tootctl ARGS` through `runtime`. A non-zero exit is UNKNOWN with the
// command and its last output lines; a cancellation is CANCELLED. Item
// errors are counted in the result and logged as warnings, not failures.
absl::StatusOr<mastodon::restore::v1::TootctlResult> RunTootctl(
    const Runtime& runtime, const std::vector<std::string>& args, const TaskContext& ctx);

// Runs the app's db:migrate for `phase` against `db` and checks the result
// in schema_migrations (read through a session ctx.pg opens on `db`):
//   - every migration the output announced is recorded;
//   - when the app's code is readable (Runtime::CodeDir), no migration of
//     the phase is pending afterwards (pre-deployment ones for
//     PRE_DEPLOYMENT, all otherwise).
// POST_DEPLOYMENT refuses (FAILED_PRECONDITION) while pre-deployment
// migrations are pending. A command that exits 0 without migrating what is
// pending is FAILED_PRECONDITION naming the first pending version.
absl::StatusOr<mastodon::restore::v1::DbMigrateResult> RunDbMigrate(
    const Runtime& runtime, mastodon::restore::v1::MigrationPhase phase, const AppDatabase& db,
    const TaskContext& ctx);

// The newest version in the database's schema_migrations ("" when it has
// none or no such table), over a session `connector` opens on `db`
// (nullptr: a LibpqConnector).
absl::StatusOr<std::string> ReadSchemaVersion(const AppDatabase& db,
                                              PgConnector* connector = nullptr);

// Runs the runtime's stop (start) commands for its services. A failure is
// UNKNOWN naming the command and its error output. Not cancellable.
absl::Status ControlServices(const Runtime& runtime, bool start, const TaskContext& ctx);

// Stops the app's services, runs `work`, and starts them again, also when
// `work` fails (its error is returned, not a start failure's) unless
// `keep_stopped_on_failure`. Runtimes without services just run `work`.
absl::Status WithServicesStopped(const Runtime& runtime, const TaskContext& ctx,
                                 bool keep_stopped_on_failure,
                                 const std::function<absl::Status()>& work);

// The migration versions the code in `code_dir` ships: db/migrate (pre) and
// db/post_migrate (post), each sorted.
struct KnownMigrations {
  std::vector<std::string> pre;
  std::vector<std::string> post;
};
absl::StatusOr<KnownMigrations> ListMigrations(const std::string& code_dir, Env* env);

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_APP_TASKS_H_
