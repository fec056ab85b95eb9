// What a load of a dump is told (LoadOptions), reports while it runs
// (LoadProgress) and returns (LoadStats): shared by the plain SQL loader
// (plain_loader.h) and the statement executor (sql_executor.h).
#ifndef MR_AGENT_DATABASE_LOAD_OPTIONS_H_
#define MR_AGENT_DATABASE_LOAD_OPTIONS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/common/cancel_token.h"
#include "agent/database/pg_connection.h"
#include "agent/dump/plain_scanner.h"

namespace mastodon_restore {

struct LoadProgress {
  int64_t bytes = 0;       // uncompressed bytes of the dump consumed
  int64_t raw_bytes = -1;  // bytes of the underlying file (compressed), -1 unknown
  int64_t statements = 0;
  int64_t rows = 0;
  std::string toc_entry;  // e.g. "TABLE DATA public.statuses"
  // A parallel load once the dump is read: the builds (indexes,
  // constraints, validations, ANALYZE) done and submitted, counted and by
  // their work estimate (LoadScheduler::BuildCounts).
  bool building = false;
  int64_t builds_done = 0;
  int64_t builds_total = 0;
  int64_t build_work_done = 0;
  int64_t build_work_total = 0;
};

// Bounds on what the loader holds of a plain dump; a dump over one fails
// with INVALID_ARGUMENT naming the line and the limit, before anything
// more is read. PostgreSQL's own limit is 1 GB for a value, a COPY row
// (COPY TO builds a row in one buffer of at most 1 GB, so pg_dump cannot
// write a longer one, and COPY FROM cannot read one) and a query string.
// COPY rows are streamed (held only by the parallel load, whose chunks end
// at row boundaries): the row bound is PostgreSQL's. A statement is held
// whole (its lines, then the statement, then its rewrite): 256 MiB holds
// any function body and any --inserts row of a Mastodon database (its
// largest values are statuses and media descriptions of a few KiB); raise
// both statement and line bounds for --inserts dumps of larger values.
// Defaults in dump/plain_scanner.h (detection warns about a dump over them).
// A line of SQL is held until its newline (a COPY row line is bounded by
// the row bound).
struct LoadBounds {
  int64_t max_statement_bytes = kDefaultMaxStatementBytes;
  int64_t max_line_bytes = kDefaultMaxLineBytes;
  int64_t max_copy_row_bytes = kDefaultMaxCopyRowBytes;
};

// A post-data statement of the dump that did not run: a unique index,
// primary key or unique constraint the dump's data violates (SQLSTATE
// 23505), or a statement that depends on one (a foreign key referencing its
// columns, a statement naming it). With LoadOptions::collect_failed_builds
// the load goes on without them.
struct FailedBuild {
  // The dump's statement (run again after a repair; "" for a step of the
  // agent's own that the statement's rerun covers, e.g. a VALIDATE of a
  // foreign key added NOT VALID).
  std::string sql;
  int64_t line = 0;
  std::string toc_entry;
  // The tables it touches as the dump names them ("public.accounts").
  std::vector<std::string> tables;
  // The server's message and detail ("could not create unique index ...
  // Key (lower((username)::text))=(alice) is duplicated.").
  std::string error;
  // True for the unique build itself; false for a dependent statement.
  bool unique_violation = false;
  // The index or constraint it builds, unqualified as the dump writes it
  // ("index_accounts_on_username"; "" when it builds none).
  std::string name;
};

struct LoadOptions {
  // Load only bytes [begin_offset, end_offset) of the stream (a pg_dumpall
  // section); end_offset -1: to the end.
  int64_t begin_offset = 0;
  int64_t end_offset = -1;
  // The database name the dump's CREATE DATABASE / \connect / ALTER DATABASE
  // statements use; they are applied to `target_db` instead.
  std::string source_db;
  // The database the connection is to (the staging database).
  std::string target_db;
  // For a pg_dumpall dump: load only the section of this database (its
  // range as the dump scanner finds it in the stream, see section_filter.h:
  // from its "-- Database" marker, or its \connect in pre-11 dumps, to the
  // next section or the trailer); the globals before the first section
  // create missing roles; other sections are skipped, and the load stops at
  // the section's end. Empty: the whole stream is one database's dump.
  std::string cluster_section;
  // With cluster_section: give created roles their password hashes
  // (otherwise PASSWORD clauses are removed, whatever their quoting).
  bool with_role_passwords = false;
  // Every statement is classified first (dump/statement_classifier.h) and
  // the load fails on one the allow-list refuses. Widening it: the role
  // attributes SUPERUSER, REPLICATION and BYPASSRLS, and extensions beside
  // the default ones.
  bool allow_privileged_roles = false;
  std::set<std::string> extra_extensions;
  // Roles the load created (from a cluster dump's globals), appended as
  // they are created, so a caller can drop them when the load fails.
  std::vector<std::string>* roles_created = nullptr;
  // Major version of the target server (rewrites for older servers).
  int target_major = 0;
  // Require the dump's owner roles; otherwise ownership and privileges on
  // missing roles are skipped with a warning (like --no-owner
  // --no-privileges for those roles).
  bool keep_owners = false;
  // The connected role is a superuser.
  bool superuser = true;
  // Loading as a role without superuser rights (load_role.h): a superuser
  // connection to the target database for what needs one (creating the
  // roles of a cluster dump's globals; CREATE EXTENSION of an allow-listed
  // extension the role may not create, reported as a warning), and what
  // becomes of "ALTER ... OWNER TO <role>" and "ALTER DEFAULT PRIVILEGES FOR
  // ROLE <role>" statements (the loading role is never a member of another
  // role): run as they are (a missing role: the
  // usual missing-role handling), deferred (the caller runs them as
  // superuser after the load), or skipped with a warning (the object stays
  // the loading role's). Null: everything runs on the load's connection.
  PgConnection* privileged = nullptr;
  enum class OwnerAction { kRun, kDefer, kSkip };
  std::function<absl::StatusOr<OwnerAction>(const std::string& sql, const std::string& role)>
      owner_statement;
  // Called every `progress_every_bytes` and at the end.
  std::function<void(const LoadProgress&)> progress;
  int64_t progress_every_bytes = 8 << 20;
  const CancelToken* cancel = nullptr;
  // Name of the dump in messages.
  std::string dump_name = "dump";
  // Parallel load: with jobs >= 2 and `connect`, pre-data runs on `conn` in
  // dump order; COPY data is cut into chunks of about `chunk_bytes` (at row
  // boundaries) loaded by `jobs` other connections from `connect` (opened
  // with the same settings as `conn`), and indexes, primary/unique and
  // foreign key constraints run on them as soon as their tables are loaded
  // (see load_scheduler.h); anything else after the data runs on `conn`
  // once everything before it is done. Rows of one table may land in a
  // different physical order than in the dump. jobs <= 1: everything on
  // `conn`, in dump order.
  // A foreign key "ALTER TABLE ONLY t ADD CONSTRAINT c FOREIGN KEY ..." is
  // added NOT VALID and validated afterwards (ALTER TABLE ONLY t VALIDATE
  // CONSTRAINT c), so the checks of keys referencing one table run at once;
  // the result is the same valid constraint.
  int jobs = 1;
  std::function<absl::StatusOr<std::unique_ptr<PgConnection>>()> connect;
  int64_t chunk_bytes = 8 << 20;
  // Parallel load: ANALYZE each table that received rows as soon as its
  // builds are done (LoadStats::analyzed), but for those whose column
  // statistics the dump carried (LoadStats::statistics_imported).
  bool analyze = false;
  // The target database is the loader's own until the load ends (a staging
  // database): autovacuum is kept off each plain table from its first rows
  // to the end of the load (ALTER TABLE ... SET (autovacuum_enabled = off),
  // then RESET; tables whose dump sets the option are left alone), so it
  // neither competes for the cores nor holds locks the index builds wait for.
  bool hold_autovacuum = false;
  // The target database is the loader's own, as for hold_autovacuum (frozen
  // rows are visible to every snapshot at once): a table whose rows a
  // worker reads itself from a seekable archive loads frozen when it allows
  // it (LoadJob::freeze: empty, ordinary, no triggers, not referenced).
  bool freeze = false;
  LoadBounds bounds;
  // A unique index, primary key or unique constraint that fails with
  // unique_violation, and the post-data statements that then fail on its
  // tables (foreign keys, statements naming it: invalid_foreign_key,
  // undefined object or relation), are collected in
  // LoadStats::failed_builds instead of failing the load, which finishes
  // everything else. Any other failure still stops the load.
  bool collect_failed_builds = false;
};

struct LoadStats {
  int64_t bytes = 0;
  int64_t lines = 0;
  int64_t statements = 0;
  int64_t rows = 0;
  // COPY rows per table as written in the dump ("public.statuses").
  std::map<std::string, int64_t> table_rows;
  // Rewrites applied ("removed SET transaction_timeout (target PostgreSQL 15)").
  std::vector<std::string> rewrites;
  std::vector<std::string> warnings;
  // Roles that owned objects or had privileges but do not exist on the target.
  std::vector<std::string> missing_roles;
  // Roles created from the globals of a cluster dump.
  std::vector<std::string> created_roles;
  // Highest schema_migrations version loaded ("" when none).
  std::string schema_version;
  // With cluster_section: whether the section was found.
  bool section_found = false;
  // Parallel load: worker connections, jobs they ran, most at once.
  int jobs = 1;
  int64_t parallel_jobs = 0;
  int max_concurrency = 1;
  // Tables whose rows the workers read from the archive themselves
  // (LoadArchiveScript), each on its own, decompressing it there.
  int64_t tables_read_apart = 0;
  // Of them, those loaded frozen (options.freeze).
  int64_t tables_frozen = 0;
  // Seconds from the start until the last table data was in (-1: no data
  // or serial load), and until the end of the load.
  double data_seconds = -1;
  double seconds = 0;
  // Tables analyzed by the load (options.analyze), as the dump names them.
  std::vector<std::string> analyzed;
  // Relations whose column statistics the dump carried and the target
  // imported (pg_dump 18 --statistics into PostgreSQL 18+: tables,
  // materialized views, expression indexes), as the dump names them: the
  // load does not analyze them, and neither does the restore after it.
  std::vector<std::string> statistics_imported;
  // Parallel load: the jobs the workers ran (the first 100000), seconds
  // from the start of the load, for a timeline.
  struct JobSpan {
    std::string what;
    int worker = 0;
    double start = 0, end = 0;
  };
  std::vector<JobSpan> timeline;
  // With options.collect_failed_builds: the statements that did not run,
  // in the order they failed.
  std::vector<FailedBuild> failed_builds;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_LOAD_OPTIONS_H_
