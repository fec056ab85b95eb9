// The seam between the agent and PostgreSQL: a session that runs SQL
// (PgSession) and what opens one (PgConnector). PgConnection and
// LibpqConnector (pg_connection.h) are the real implementations over libpq;
// tests script a fake (tests/harness/scripted_pg.h).
//
// The SQL itself lives in database/ only, in named functions with contracts
// (app_queries.h, server_queries.h, target_ops.h, verify.h, ...); the other
// modules call those functions and never write SQL.
#ifndef MR_AGENT_DATABASE_PG_SESSION_H_
#define MR_AGENT_DATABASE_PG_SESSION_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mastodon_restore {

// Rows of a query; NULL is nullopt.
struct PgRows {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
  // First column of the first row ("" when none or NULL).
  std::string Scalar() const;
  // The first column's values, NULLs left out.
  std::vector<std::string> FirstColumn() const;
};

// A value as a number (0 when NULL or not a number).
int64_t IntOrZero(const std::optional<std::string>& value);

// An error from the server, with its SQLSTATE.
struct PgError {
  std::string sqlstate;
  std::string message;  // primary message
  std::string detail;
  std::string hint;
};

class PgSession;

// `status` of a statement that failed on `session` as "unable to `what`:
// " and the server's message (the status's own when the server gave
// none), with the status's code.
absl::Status SessionError(PgSession* session, const absl::Status& status, const std::string& what);

// One session on one database. Not thread-safe.
class PgSession {
 public:
  virtual ~PgSession() = default;

  // Runs one or more statements. A server error is INVALID_ARGUMENT (or
  // UNAVAILABLE when the connection broke, CANCELLED when cancelled) and is
  // described by last_error().
  virtual absl::Status Exec(const std::string& sql) = 0;
  // Runs a query with text parameters ($1, $2, ...); errors as Exec().
  virtual absl::StatusOr<PgRows> Query(const std::string& sql,
                                       const std::vector<std::string>& params) = 0;
  absl::StatusOr<PgRows> Query(const std::string& sql) { return Query(sql, {}); }

  // The error of the last failed Exec() or Query() (empty after a success).
  virtual const PgError& last_error() const = 0;
  // server_version_num (e.g. 150018).
  virtual int server_version() const = 0;
  // The role the session runs as ("" when it cannot be read).
  virtual std::string current_user() = 0;
  // `name` as an SQL identifier, `value` as an SQL literal, quoted.
  virtual std::string QuoteIdentifier(absl::string_view name) const = 0;
  virtual std::string QuoteLiteral(absl::string_view value) const = 0;
};

// Opens sessions. Implementations must be thread-safe.
class PgConnector {
 public:
  virtual ~PgConnector() = default;

  // Connects with `conninfo` (conninfo string or URI). When `dbname` is not
  // empty it replaces the database of `conninfo`. UNAVAILABLE on failure;
  // the message never contains the conninfo (it may carry a password).
  virtual absl::StatusOr<std::unique_ptr<PgSession>> Connect(const std::string& conninfo,
                                                             const std::string& dbname) = 0;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_PG_SESSION_H_
