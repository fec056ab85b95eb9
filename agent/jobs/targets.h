// Where a job acts: the planning policy that turns a request and the agent's
// defaults into a server, a database, an owner and a media directory. Pure
// but for what it is handed (the runtime, the Env for file owners, a reader
// of the dump's head), so it is unit-tested with fakes; nothing here
// connects to PostgreSQL or walks a source by itself.
#ifndef MR_AGENT_JOBS_TARGETS_H_
#define MR_AGENT_JOBS_TARGETS_H_

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/app/runtime.h"
#include "agent/inventory/inspector.h"
#include "agent/jobs/job_env.h"
#include "mastodon/restore/v1/common.pb.h"
#include "mastodon/restore/v1/operation.pb.h"
#include "mastodon/restore/v1/restore.pb.h"

namespace mastodon_restore {

// The target server of a request: its own conninfo, else the agent's
// --target-conninfo, else the runtime's database server.
// FAILED_PRECONDITION when there is none.
absl::StatusOr<std::string> TargetConnInfo(const mastodon::restore::v1::DatabaseTarget& target,
                                           const JobEnv& env);

// The runtime's database when it is the target (neither the request nor the
// agent names a server); nullopt otherwise.
std::optional<AppDatabase> RuntimeDatabaseFor(const mastodon::restore::v1::DatabaseTarget& target,
                                              const JobEnv& env);

// A named database on the target server, for operations that act on one
// that exists (rollback, verify). INVALID_ARGUMENT, naming `verb`, when the
// request gives no database. (The service has checked the name's form.)
struct NamedTarget {
  std::string conninfo;
  std::string database;
};
absl::StatusOr<NamedTarget> ResolveNamedTarget(const mastodon::restore::v1::DatabaseTarget& target,
                                               absl::string_view verb, const JobEnv& env);

// The head of the dump a restore would load, read only when the request and
// the runtime leave the database or its owner open.
struct DumpHead {
  mastodon::restore::v1::DumpInfo dump;
  BackupEnvFacts env;  // DB_NAME and DB_USER of the backup's env file
};
using DumpHeadReader = std::function<absl::StatusOr<DumpHead>()>;

// A restore's database: the server, the live database and the owner of the
// restored objects ("" keeps the live database's or the dump's).
struct RestoreDatabaseTarget {
  std::string conninfo;
  std::string database;
  std::string owner;
};
// The live database is the one asked for (target_db, target.database), else
// the runtime's, else the dump's own name (for a pg_dumpall dump source_db
// or Mastodon's database), else DB_NAME of the backup's env file. The owner
// is the runtime's database user, else the backup's DB_USER.
// FAILED_PRECONDITION when nothing names the database.
absl::StatusOr<RestoreDatabaseTarget> ResolveRestoreDatabase(
    const mastodon::restore::v1::RestoreOptions& options, const JobEnv& env,
    const DumpHeadReader& read_head);

// A restore's media directory and the owner of what is written there.
struct RestoreMediaTarget {
  std::string dir;  // "" when the host has none (the media step is skipped)
  // `dir` with symlinks resolved (ResolveExistingPrefix): the operation's
  // lock key, so that two requests naming one directory differently
  // conflict.
  std::string resolved_dir;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
};
// The media root is the agent's --media-dir, else the runtime's media
// directory; a requested media_dir must lie inside it. New files belong to
// the runtime's app user, else to the owner of the directory (or of its
// parent). PERMISSION_DENIED for a directory outside the root, also when
// its symlinks resolve outside the resolved root;
// FAILED_PRECONDITION for a media-only restore on a host without one.
absl::StatusOr<RestoreMediaTarget> ResolveRestoreMedia(
    const mastodon::restore::v1::RestoreOptions& options, const JobEnv& env);

// How recovery reaches a job's server (OperationRecord.database_journal):
// the request's conninfo without its password, the agent's
// --target-conninfo, or the runtime's server, as TargetConnInfo chose.
struct JournalTarget {
  mastodon::restore::v1::JournalConnection connection =
      mastodon::restore::v1::JOURNAL_CONNECTION_UNSPECIFIED;
  std::string conninfo;
  bool password_omitted = false;
  // Writes them into `journal`.
  void Fill(mastodon::restore::v1::DatabaseJournal* journal) const;
};
JournalTarget JournalTargetFor(const mastodon::restore::v1::DatabaseTarget& target,
                               const JobEnv& env);

// The runtime for an app task; FAILED_PRECONDITION naming `task` and what
// detection checked when there is none.
absl::StatusOr<const Runtime*> AppRuntime(absl::string_view task, const JobEnv& env);

}  // namespace mastodon_restore

#endif  // MR_AGENT_JOBS_TARGETS_H_
