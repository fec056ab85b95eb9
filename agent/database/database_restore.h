// Restores one database from a backup source into a PostgreSQL server without
// endangering the live database: given the detected dump, create a staging database, load it
// (the native loader for plain SQL; for custom, tar and directory archives
// the agent's archive reader, dump/archive_script.h, renders the SQL for the
// same loader: no pg_restore needed), ANALYZE, verify against what
// the dump held, then swap it in (the previous live database is kept). Any
// failure or cancellation before the swap drops the staging database and
// leaves the live one untouched.
#ifndef MR_AGENT_DATABASE_DATABASE_RESTORE_H_
#define MR_AGENT_DATABASE_DATABASE_RESTORE_H_

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/archive/source_walker.h"
#include "agent/common/cancel_token.h"
#include "agent/common/env.h"
#include "agent/common/subprocess.h"
#include "agent/database/local_cluster.h"
#include "agent/database/plain_loader.h"
#include "mastodon/restore/v1/dump.pb.h"
#include "mastodon/restore/v1/operation.pb.h"
#include "mastodon/restore/v1/prechecks.pb.h"

namespace mastodon_restore {

// Updates the operation's database journal with `update` and saves it
// durably before returning (see OperationRecord.database_journal). An error
// stops what was about to happen.
using DatabaseJournalUpdate = std::function<absl::Status(
    const std::function<void(mastodon::restore::v1::DatabaseJournal*)>& update)>;

struct DatabaseRestoreRequest {
  // The source (resolved inside the allowed roots) and its secrets.
  std::string source_path;
  SourceOptions source;
  // The dump, as inventory/ detected it (DetectDumpToRestore), and for a
  // pg_dumpall dump the database of the cluster to restore.
  mastodon::restore::v1::DumpInfo dump;
  std::string cluster_database;
  // The target server (libpq conninfo; may carry a password: never logged).
  std::string conninfo;
  // Name of the live database to replace (or to create).
  std::string database;
  // Owner of the restored database when there is no live one to take it
  // from (e.g. DB_USER of the backup); ignored when the role is missing.
  std::string owner;
  // Identifier of the operation (names the staging database).
  std::string operation_id;
  bool keep_owners = false;
  bool with_role_passwords = false;
  // Widen the dump's statement allow-list (LoadOptions): role attributes
  // SUPERUSER/REPLICATION/BYPASSRLS, extensions beside the default ones.
  bool allow_privileged_roles = false;
  std::set<std::string> extra_extensions;
  // Load as the connecting superuser when the server accepts no password
  // login for the temporary load role (load_role.h); reported as a warning.
  bool allow_superuser_load = false;
  bool drop_previous = false;
  // When the dump's data violates its own unique indexes: apply
  // fix-duplicates' rules in the staging database (duplicates.h) and create
  // them again; otherwise (and for tables no rule covers) the swap is
  // refused (CheckStagedBeforeSwap).
  bool repair_duplicates = false;
  // Connections loading in parallel (0: one per core; 1: the serial load),
  // and the size of the COPY chunks they load (0: the loader's default).
  int jobs = 0;
  int64_t chunk_bytes = 0;
  // Bounds on a plain dump's statements, lines and COPY rows (load_options.h).
  LoadBounds bounds;
  // ANALYZE the restored tables before handing the database over (the app's
  // first queries get plans from statistics). Off only for callers that
  // analyze later themselves (the benchmark's equal-work comparison).
  bool analyze = true;
  // Load the tables of a seekable archive frozen where they allow it
  // (LoadOptions::freeze). Off only for the benchmark's comparison.
  bool freeze = true;
  const CancelToken* cancel = nullptr;
  // Progress of the steps ("load", "analyze", "verify", "swap").
  std::function<void(const std::string& step, const LoadProgress& progress)> progress;
  // Directory holding pg_restore binaries (normally /usr/lib/postgresql),
  // and, optionally, a pg_restore binary to render an archive-format dump
  // instead of the agent's own reader ("", the default: the agent's reader;
  // used by the equivalence tests and the benchmark).
  std::string postgres_root = kDefaultPostgresRoot;
  std::string pg_restore;
  // The crash-recovery journal (null: none): the staging database's name
  // before it is created and its OID, the swap's phase with the names and
  // OIDs, each saved before the side effect.
  DatabaseJournalUpdate journal;
};

struct DatabaseRestoreResult {
  std::string database;
  std::string previous_database;  // "" when there was no live database
  std::string staging_database;
  uint32_t staging_oid = 0;
  mastodon::restore::v1::DumpInfo dump;
  LoadStats load;
  mastodon::restore::v1::VerifyResult verification;
  // Duplicates under the dump's unique indexes (StageDatabase), amcheck
  // (CheckStagedBeforeSwap).
  mastodon::restore::v1::PreSwapChecks pre_swap;
  std::string target_server_version;
  std::vector<std::string> warnings;
};

// The pg_restore binary for an archive-format `dump`: the oldest installed
// major (under `postgres_root`) that reads it. FAILED_PRECONDITION naming
// the package to install when none does.
absl::StatusOr<std::string> PickPgRestore(const std::string& postgres_root,
                                          const mastodon::restore::v1::DumpInfo& dump, Env* env);
// The same choice among `installed` majors (InstalledPostgresVersions's).
absl::StatusOr<std::string> PickPgRestoreOf(const std::string& postgres_root,
                                            const std::vector<int>& installed,
                                            const mastodon::restore::v1::DumpInfo& dump);

// StageDatabase, VerifyStaged, CheckStagedBeforeSwap, then SwapInStaged.
absl::StatusOr<DatabaseRestoreResult> RestoreDatabase(const DatabaseRestoreRequest& request,
                                                      CommandRunner* runner, Env* env);

// The first part: detect, create the staging database, load and ANALYZE
// ("detect", "load", "analyze" progress). On success the staging database
// (result.staging_database) holds the copy and the live database is
// untouched; on any failure the staging database is dropped.
absl::StatusOr<DatabaseRestoreResult> StageDatabase(const DatabaseRestoreRequest& request,
                                                    CommandRunner* runner, Env* env);

// The second: checks the staging database against what the dump held
// ("verify" progress; result->verification). DATA_LOSS naming the failed
// checks, and the staging database dropped, when one fails.
absl::Status VerifyStaged(const DatabaseRestoreRequest& request, DatabaseRestoreResult* result);

// Then the checks before the swap ("checks" progress): amcheck's
// bt_index_check of the btree indexes where the server has it
// (index_check.h), and the duplicates StageDatabase found under the dump's
// unique indexes (result->pre_swap). FAILED_PRECONDITION naming each
// violated index (or failed check), and the staging database dropped,
// when one refuses the swap; result->pre_swap.passed() otherwise.
absl::Status CheckStagedBeforeSwap(const DatabaseRestoreRequest& request,
                                   DatabaseRestoreResult* result);

// Why `checks` refuse the swap (FAILED_PRECONDITION), or OK.
absl::Status PreSwapRefusal(const mastodon::restore::v1::PreSwapChecks& checks);

// The third: swaps the staged database in ("swap" progress), keeping
// the live one as <db>__previous_<time>, or <db>__previous_<time>_<n> when
// that name is taken (see PreviousDatabaseName; dropped with drop_previous). Fills
// result->database and previous_database. On failure before the rename the
// staging database is dropped and the live one is as it was.
absl::Status SwapInStaged(const DatabaseRestoreRequest& request, Env* env,
                          DatabaseRestoreResult* result);

// Drops a staging database that will not be swapped in, when the database
// of that name has `staging_oid` (0: when it exists at all: only before its
// OID is known). True when dropped; best effort.
bool DropStaged(const std::string& conninfo, const std::string& staging_database,
                uint32_t staging_oid);

// Drops roles a failed restore created (LoadStats::created_roles: they did
// not exist before it), after its staging database is gone. Best effort.
void DropCreatedRoles(const std::string& conninfo, const std::vector<std::string>& roles);

// Brings `previous` (empty: the newest of TargetDatabases::ListPrevious) back:
// the current live database is kept as "<database>__replaced_<time>[_<n>]".
absl::StatusOr<mastodon::restore::v1::RollbackResult> RollbackDatabase(const std::string& conninfo,
                                                                       const std::string& database,
                                                                       const std::string& previous,
                                                                       absl::Time now);

// What startup (or the end of a restore) does with a database journal whose
// operation stopped mid-way, on the server `conninfo`: everything is found
// by the OIDs the journal holds, never by names or comments alone.
//   swap committed (the staging OID is named like the live database): the
//     swap is complete; both databases accept connections;
//   otherwise: the live database (by its OID) accepts connections again and
//     the staging database is dropped when its OID still bears the staging
//     name (before the OID was recorded, PostgreSQL < 15: by its name).
// Idempotent. Returns what it did, one phrase per action ("" none).
// `*swapped` (when given) is set to whether the swap had committed.
absl::StatusOr<std::vector<std::string>> RecoverDatabaseJournal(
    const std::string& conninfo, const mastodon::restore::v1::DatabaseJournal& journal,
    bool* swapped = nullptr);

// `conninfo` without its password (for a record); sets `*had_password`.
std::string ConnInfoForRecord(const std::string& conninfo, bool* had_password);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_DATABASE_RESTORE_H_
