// A database followed by physical replication, for a live migration between
// servers of one major whose collation rules agree: a replication slot on
// the source, a base backup of its whole cluster (pg_basebackup -X stream
// -R) run here as a streaming standby, its replay position compared with
// the source's, and the promotion at the cut-over. As in the rest of
// database/, each function runs the SQL (or builds the command) its
// contract states and nothing else; the copy's directories and the swap
// of this host's cluster are host_cluster.h's, the waiting and the order
// the job's.
#ifndef MR_AGENT_DATABASE_PHYSICAL_FOLLOW_H_
#define MR_AGENT_DATABASE_PHYSICAL_FOLLOW_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/common/subprocess.h"
#include "agent/database/logical_follow.h"
#include "agent/database/pg_session.h"

namespace mastodon_restore {

// What a physical follow needs of a server, read on a session on the
// database to move (the source) or on any database (this host's server).
struct PhysicalFacts {
  int server_version = 0;  // server_version_num
  std::string wal_level;
  int max_replication_slots = 0;
  int used_replication_slots = 0;
  int max_wal_senders = 0;
  int used_wal_senders = 0;
  // The session's role may stream WAL (REPLICATION or SUPERUSER).
  bool replication = false;
  // The whole cluster's size (a base backup copies every database).
  int64_t cluster_bytes = 0;
  // Tablespaces besides pg_default and pg_global (their directories are
  // outside the data directory: not supported).
  std::vector<std::string> tablespaces;
  // The databases besides template0 and template1, sorted.
  std::vector<std::string> databases;
  // The session database's default collation: its provider ("libc" or
  // "icu"), locale, and the version the server's library gives that locale
  // now ("" for C and POSIX, which have none; "?" when it cannot be told).
  std::string collation_provider;
  std::string collation_locale;
  std::string collation_version;
  // The server's data directory and cluster_name ("" when the role may not
  // read them).
  std::string data_directory;
  std::string cluster_name;
  // The bootstrap superuser's name (the role initdb made).
  std::string bootstrap_superuser;
};
absl::StatusOr<PhysicalFacts> ReadPhysicalFacts(PgSession* session);

// The version the server's collation library gives `locale` of `provider`
// ("libc" or "icu") now, read from a collation created for the look in a
// transaction that is rolled back (nothing is left): "" for C and POSIX;
// NOT_FOUND when the server does not know the locale.
absl::StatusOr<std::string> CollationLibraryVersion(PgSession* session, const std::string& provider,
                                                    const std::string& locale);

// OK when `source` can be followed physically into a server with
// `target`'s facts; otherwise FAILED_PRECONDITION listing every reason,
// each with what to do (or to migrate by logical replication).
// `target_collation_version` is CollationLibraryVersion on the target of
// the source's provider and locale.
absl::Status CheckPhysicalFollow(const PhysicalFacts& source, const PhysicalFacts& target,
                                 const std::string& target_collation_version);

// Creates the physical replication slot `name` on the source, its WAL
// reserved from now on; an existing slot of that name (an interrupted
// attempt's) is kept.
absl::Status CreatePhysicalSlot(PgSession* source, const std::string& name);

// The pg_basebackup run that copies the server at `conninfo` into the new
// directory `out` through the slot `slot`, WAL streamed alongside (-X
// stream), with a standby configuration (-R) and a progress line per
// second (-P -v on stderr). The connection settings go in the child's
// environment, never on its argv (ConnInfoEnvironment); pg_basebackup
// writes them, password included, into the copy's postgresql.auto.conf,
// where the standby reads them (ForgetPrimary removes them).
absl::StatusOr<CommandSpec> BaseBackupCommand(const std::string& pg_basebackup,
                                              const std::string& conninfo, const std::string& slot,
                                              const std::string& out);

// "  1234/56789 kB (2%), 0/1 tablespace": the kB copied and in all (false
// for any other line).
bool ParseBaseBackupProgress(const std::string& line, int64_t* done_kb, int64_t* total_kb);

// How far the standby is: the source's WAL position and the standby's
// replay position, in bytes from 0/0. lag_seconds is the source's
// replay_lag of the walsender that streams through the slot `slot` (-1
// when there is none to report, e.g. while nothing is written); streaming
// says the standby's WAL receiver is connected.
struct StandbyProgress {
  int64_t source_lsn = 0;
  int64_t replay_lsn = 0;
  int64_t lag_bytes = 0;
  double lag_seconds = -1;
  bool streaming = false;
};
absl::StatusOr<StandbyProgress> ReadStandbyProgress(PgSession* source, PgSession* standby,
                                                    const std::string& slot);

// Promotes the standby (pg_promote, waiting up to 60 s) and removes the
// primary connection (its password included) and slot from its
// configuration (ALTER SYSTEM RESET). FAILED_PRECONDITION when the server
// is no standby or did not finish promoting in time.
absl::Status PromoteStandby(PgSession* standby);

// The pg_hba.conf the standby runs with while it follows: local
// connections only (its socket directory is private to the server's user
// and root), each trusted.
std::string StandbyHbaConf();

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_PHYSICAL_FOLLOW_H_
