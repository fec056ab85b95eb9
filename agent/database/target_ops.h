// Database-level operations on the target server, over a maintenance
// connection (to the "postgres" database): staging databases, the swap that
// puts a restored database live while keeping the previous one, rollback,
// and cleanup of staging leftovers. Every name reaching SQL is quoted by
// libpq.
#ifndef MR_AGENT_DATABASE_TARGET_OPS_H_
#define MR_AGENT_DATABASE_TARGET_OPS_H_

#include <cstdint>
#include <functional>
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

// The comment a staging database carries: a hint for people only. Nothing
// in the agent recognises staging databases by it (a dump can write any
// comment): cleanup goes by the OID the operation's record holds.
constexpr char kStagingComment[] = "mastodon-restore staging database";

// Called with the staging database's OID before CREATE DATABASE when the
// server takes a chosen OID (PostgreSQL 15+; `planned`), else right after it
// (`planned` false). An error stops the creation (before it, nothing is
// created; after it, the caller drops the database by name and OID).
using StagingOidJournal = std::function<absl::Status(uint32_t oid, bool planned)>;

// Called once the swap's names and OIDs are known, before its transaction:
// `live_oid` 0 when there is no live database.
using SwapJournal = std::function<absl::Status(uint32_t live_oid, uint32_t staging_oid)>;

// How a database sorts and classifies text, as the dump's CREATE DATABASE
// says it; empty fields are the server's defaults.
struct DatabaseLocale {
  std::string encoding;
  // LOCALE: libc's LC_COLLATE and LC_CTYPE.
  std::string locale;
  // "libc", "icu" or "builtin"; empty is libc.
  std::string provider;
  // ICU_LOCALE or BUILTIN_LOCALE.
  std::string provider_locale;
};

class TargetDatabases {
 public:
  // `admin` is connected to a maintenance database as a role that may create,
  // rename and drop databases. It must outlive this object.
  explicit TargetDatabases(PgSession* admin) : admin_(admin) {}

  absl::StatusOr<bool> Exists(const std::string& name);
  // The OID of database `name`; 0 when there is none.
  absl::StatusOr<uint32_t> OidOf(const std::string& name);
  // The name of the database with `oid`; "" when there is none.
  absl::StatusOr<std::string> NameOf(uint32_t oid);
  // Whether the database `name` accepts connections (false when missing).
  absl::StatusOr<bool> AllowsConnections(const std::string& name);
  // Ends the sessions (of a stopped agent) still running CREATE DATABASE
  // `name`, and waits until they are gone: after a crash the server may
  // still be creating the staging database (up to `timeout`).
  absl::Status EndCreatesOf(const std::string& name, absl::Duration timeout);
  // ALTER DATABASE ... WITH ALLOW_CONNECTIONS.
  absl::Status SetAllowConnections(const std::string& name, bool allow);

  // Creates `name` from template0 with `locale` (its empty fields: the
  // server's defaults), owned by `owner` (empty: the connected role), tells
  // `journal` its OID (see StagingOidJournal; may be null), and comments it
  // as staging (a hint). A provider the server lacks (builtin before 17,
  // icu before 15 or in a build without ICU) or a locale it does not know
  // falls back to the libc locale (C.UTF-8 when the dump's does not exist)
  // and appends a warning naming what was asked. Returns the OID.
  absl::StatusOr<uint32_t> CreateStaging(const std::string& name, const DatabaseLocale& locale,
                                         const std::string& owner,
                                         std::vector<std::string>* warnings,
                                         const StagingOidJournal& journal = nullptr);

  // Drop(name) when the database `name` has `oid` (0: any OID); true when
  // it was dropped.
  absl::StatusOr<bool> DropIfOid(const std::string& name, uint32_t oid);

  // Terminates the sessions of `name` and drops it (if it exists).
  absl::Status Drop(const std::string& name);

  // Puts `staging` live under the name `live`, keeping a live database as
  // `previous`, in one transaction (with a lock_timeout): the sessions of
  // both are terminated, both renames and the removal of the staging comment
  // commit together or not at all; retried while the server says a database
  // is being accessed by other users (a session that connected in between).
  // `journal` (may be null) is called before the transaction. Returns the
  // name the old live database now has, or "" when there was none. On
  // failure nothing is renamed and every database accepts connections as
  // before.
  absl::StatusOr<std::string> SwapIn(const std::string& live, const std::string& staging,
                                     const std::string& previous,
                                     const SwapJournal& journal = nullptr);

  // The first PreviousDatabaseName(live, when, n), n = 1, 2, ..., that no
  // database has (so two swaps in the same second do not collide);
  // FAILED_PRECONDITION when all kMaxKeptPerSecond are taken.
  absl::StatusOr<std::string> UnusedPreviousName(const std::string& live, absl::Time when);
  // The same for ReplacedDatabaseName.
  absl::StatusOr<std::string> UnusedReplacedName(const std::string& live, absl::Time when);

  // The databases PreviousDatabaseName(live, ...) names, newest first.
  absl::StatusOr<std::vector<std::string>> ListPrevious(const std::string& live);

 private:
  absl::Status TerminateSessions(const std::string& name, absl::Duration timeout);
  absl::StatusOr<std::string> UnusedName(const std::string& live, absl::Time when,
                                         std::string (*name)(const std::string& live,
                                                             absl::Time when, int n));

  PgSession* admin_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_TARGET_OPS_H_
