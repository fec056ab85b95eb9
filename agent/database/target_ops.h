// Database-level operations on the target server, over a maintenance
// connection (to the "postgres" database): staging databases, the swap that
// puts a restored database live while keeping the previous one, rollback,
// and cleanup of staging leftovers. Every name reaching SQL is quoted by
// libpq.
#ifndef MR_AGENT_DATABASE_TARGET_OPS_H_
#define MR_AGENT_DATABASE_TARGET_OPS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/database/pg_session.h"

namespace mastodon_restore {

// PostgreSQL's identifier limit (NAMEDATALEN - 1).
constexpr size_t kMaxIdentifierBytes = 63;

// "<live>__restore_<op>", shortened to fit 63 bytes.
std::string StagingDatabaseName(const std::string& live, const std::string& operation_id);

// How many databases of one live database may be kept in the same second
// (the largest `n` of the two names below).
constexpr int kMaxKeptPerSecond = 99;

// "<live>__previous_<YYYYMMDDHHMMSS>" (UTC) for the first database kept in
// that second, "<live>__previous_<YYYYMMDDHHMMSS>_<NN>" for the n-th
// (2 <= n <= kMaxKeptPerSecond, two digits). Never longer than 63 bytes: a
// live name too long for every such name is cut at a UTF-8 boundary and
// followed by "_" and 8 hex digits of its SHA-256 (two long names with the
// same beginning stay apart); the suffix is never cut. Names of one live
// database sort bytewise in the order of (when, n).
std::string PreviousDatabaseName(const std::string& live, absl::Time when, int n = 1);
// "<live>__replaced_<...>" the same way, for the database a rollback replaces.
std::string ReplacedDatabaseName(const std::string& live, absl::Time when, int n = 1);
// What every PreviousDatabaseName(live, ...) begins with.
std::string PreviousDatabasePrefix(const std::string& live);

// The comment that marks a staging database, so that leftovers can be found.
constexpr char kStagingComment[] = "mastodon-restore staging database";

class TargetDatabases {
 public:
  // `admin` is connected to a maintenance database as a role that may create,
  // rename and drop databases. It must outlive this object.
  explicit TargetDatabases(PgSession* admin) : admin_(admin) {}

  absl::StatusOr<bool> Exists(const std::string& name);

  // Creates `name` from template0 with `encoding` and `locale` (empty: the
  // server's defaults), owned by `owner` (empty: the connected role), and
  // marks it as staging. When the locale does not exist on the server, falls
  // back to C.UTF-8 and appends a warning.
  absl::Status CreateStaging(const std::string& name, const std::string& encoding,
                             const std::string& locale, const std::string& owner,
                             std::vector<std::string>* warnings);

  // Terminates the sessions of `name` and drops it (if it exists).
  absl::Status Drop(const std::string& name);

  // Puts `staging` live under the name `live` in one transaction. A live
  // database is kept as `previous` (connections refused and sessions
  // terminated first). Returns the name the old live database now has, or ""
  // when there was none. On failure nothing is renamed.
  absl::StatusOr<std::string> SwapIn(const std::string& live, const std::string& staging,
                                     const std::string& previous);

  // The first PreviousDatabaseName(live, when, n), n = 1, 2, ..., that no
  // database has (so two swaps in the same second do not collide);
  // FAILED_PRECONDITION when all kMaxKeptPerSecond are taken.
  absl::StatusOr<std::string> UnusedPreviousName(const std::string& live, absl::Time when);
  // The same for ReplacedDatabaseName.
  absl::StatusOr<std::string> UnusedReplacedName(const std::string& live, absl::Time when);

  // The databases PreviousDatabaseName(live, ...) names, newest first.
  absl::StatusOr<std::vector<std::string>> ListPrevious(const std::string& live);

  // Staging databases (marked with kStagingComment) other than `keep`.
  absl::StatusOr<std::vector<std::string>> ListStaging();

 private:
  absl::Status TerminateSessions(const std::string& name, absl::Duration timeout);
  absl::Status SetAllowConnections(const std::string& name, bool allow);
  absl::StatusOr<std::string> UnusedName(const std::string& live, absl::Time when,
                                         std::string (*name)(const std::string& live,
                                                             absl::Time when, int n));

  PgSession* admin_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_TARGET_OPS_H_
