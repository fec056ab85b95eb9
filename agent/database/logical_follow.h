// A database followed by logical replication, for a live migration between
// servers whose majors or collation rules differ: a publication of every
// table on the source, a subscription with an initial copy on the target,
// the lag read from both ends, the sequences carried over at cut-over
// (logical replication does not replicate them), and everything taken down
// again. Like the rest of database/, each function runs the SQL its
// contract states and nothing else; the waiting, the clock and the order
// belong to the job that calls them.
//
// One name (FollowName) names the publication, the subscription and the
// replication slot of one migration, so that any of them can be found and
// removed again after a crash.
#ifndef MR_AGENT_DATABASE_LOGICAL_FOLLOW_H_
#define MR_AGENT_DATABASE_LOGICAL_FOLLOW_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/common/subprocess.h"
#include "agent/database/pg_session.h"

namespace mastodon_restore {

// The publication, subscription and slot name of the migration
// `operation_id`: "mastodon_restore_" and the id's letters and digits in
// lower case ('_' for anything else), at most 63 bytes.
std::string FollowName(const std::string& operation_id);

// What a logical follow needs of the source server, read on a session on
// the database to move.
struct LogicalSourceFacts {
  int server_version = 0;  // server_version_num
  std::string wal_level;
  int max_replication_slots = 0;
  int used_replication_slots = 0;
  int max_wal_senders = 0;
  // The session's role is a superuser (a publication FOR ALL TABLES needs
  // one).
  bool superuser = false;
  int64_t database_bytes = 0;
  // The database's collation and, from 15 on, its collation version.
  std::string collation;
  std::string collation_version;
  // Tables (schema-qualified, quoted) whose UPDATE and DELETE cannot be
  // published as they are: no primary key and the default replica
  // identity, or REPLICA IDENTITY NOTHING.
  std::vector<std::string> tables_without_identity;
  // Tables a publication never carries (unlogged) and the number of large
  // objects (not replicated either).
  std::vector<std::string> unlogged_tables;
  int64_t large_objects = 0;
};
absl::StatusOr<LogicalSourceFacts> ReadLogicalSourceFacts(PgSession* source);

// OK when the source can be followed without losing anything; otherwise
// FAILED_PRECONDITION listing every reason with what to change (wal_level
// and the slot and sender limits need a restart of the old server).
absl::Status CheckLogicalSource(const LogicalSourceFacts& facts);

// Sets REPLICA IDENTITY FULL on `tables` (LogicalSourceFacts's
// tables_without_identity), so that the old app's UPDATE and DELETE on
// them are published instead of failing. Each ALTER takes the table's
// lock for a moment. Undone by RestoreReplicaIdentity.
absl::Status SetReplicaIdentityFull(PgSession* source, const std::vector<std::string>& tables);
// Puts back the default replica identity of `tables`; a table gone since
// is skipped. The first error is returned after trying every table.
absl::Status RestoreReplicaIdentity(PgSession* source, const std::vector<std::string>& tables);

// CREATE PUBLICATION `name` FOR ALL TABLES on the source; an existing one
// of that name (left by an interrupted attempt) is kept.
absl::Status CreateFollowPublication(PgSession* source, const std::string& name);
// Drops the publication `name` when it exists.
absl::Status DropFollowPublication(PgSession* source, const std::string& name);

// CREATE SUBSCRIPTION `name` on the target session's database: the
// database `source_database` of the server at `source_conninfo` (as the
// target server must reach it; it may carry a password, which the target
// keeps in pg_subscription, readable by superusers only, until
// DropFollowSubscription), the publication and a replication slot of the
// same name, the tables' rows copied first. Errors never carry the
// conninfo.
absl::Status CreateFollowSubscription(PgSession* target, const std::string& name,
                                      const std::string& source_conninfo,
                                      const std::string& source_database);

// How far the follow is: read on the source and on the target.
struct FollowProgress {
  // Tables of the subscription and those whose initial copy is done and
  // that are followed (state ready).
  int tables = 0;
  int tables_ready = 0;
  // Errors of the apply and table-copy workers so far (targets 15 and
  // newer; 0 on 14).
  int64_t errors = 0;
  // The source's WAL position and the slot's confirmed position, in bytes
  // from 0/0; lag_bytes is their difference (-1 while the slot does not
  // exist yet).
  int64_t source_lsn = 0;
  int64_t confirmed_lsn = 0;
  int64_t lag_bytes = -1;
  // The walsender's replay lag in seconds (-1 when the source has none to
  // report, e.g. while nothing is written).
  double lag_seconds = -1;
  bool initial_copy_done() const { return tables > 0 && tables_ready == tables; }
};
absl::StatusOr<FollowProgress> ReadFollowProgress(PgSession* source, PgSession* target,
                                                  const std::string& name);

// The source's current WAL insert position in bytes from 0/0 (the end of
// the last record written, whether or not flushed yet): what the target
// must have confirmed (FollowProgress::confirmed_lsn), or a standby
// replayed, before the cut-over.
absl::StatusOr<int64_t> SourceWalPosition(PgSession* source);

// Sets every sequence of the target to the source's value (pg_sequences;
// a sequence never used on the source is left as the schema made it).
// Returns how many were set. NOT_FOUND naming the first source sequence
// the target lacks, before any is set.
absl::StatusOr<int> CopySequences(PgSession* source, PgSession* target);

// Stops and drops the subscription `name` on the target's database (no-op
// when it does not exist). With the source reachable the slot on the
// source goes with it; when dropping it fails, the subscription is
// detached from its slot and dropped anyway, and *slot_left says that the
// slot `name` still holds WAL on the source (DropFollowSlot removes it).
absl::Status DropFollowSubscription(PgSession* target, const std::string& name, bool* slot_left);
// Drops the replication slot `name` on the source when it exists.
// FAILED_PRECONDITION while a walsender still uses it.
absl::Status DropFollowSlot(PgSession* source, const std::string& name);

// The environment that gives a libpq client program (`program`, named in
// errors) the connection settings of `conninfo` but its dbname: PGHOST,
// PGUSER, PGPASSWORD, ... INVALID_ARGUMENT naming a setting that has no
// environment variable (or when the conninfo does not parse).
absl::StatusOr<std::vector<std::string>> ConnInfoEnvironment(const std::string& conninfo,
                                                             const std::string& program);

// The pg_dump run that writes the schema of `database` on the server at
// `conninfo` (no publications, subscriptions, or data) to `out`: the
// connection settings go in the child's environment (PGHOST, PGUSER,
// PGPASSWORD, ...), never on its argv. INVALID_ARGUMENT naming a setting
// that has no environment variable (or when the conninfo does not parse).
absl::StatusOr<CommandSpec> SchemaDumpCommand(const std::string& pg_dump,
                                              const std::string& conninfo,
                                              const std::string& database, const std::string& out);

// Client sessions on the session's database other than its own, by role
// and application: "mastodon (puma: cluster worker 0): 5". Walsenders,
// autovacuum and other background processes are not counted. At cut-over
// they are the old app still connected.
absl::StatusOr<std::vector<std::string>> OtherSessions(PgSession* session);

// The exact row count of every ordinary table of the session's database
// outside the system schemas, by quoted schema-qualified name.
absl::StatusOr<std::map<std::string, int64_t>> TableRowCounts(PgSession* session);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_LOGICAL_FOLLOW_H_
