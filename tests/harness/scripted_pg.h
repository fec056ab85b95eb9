// A scripted PostgreSQL for unit tests, in the spirit of pgBackRest's
// scripted libpq harness: the test writes, in order, what the code under
// test must do (connect to a database, run this SQL with these parameters)
// and what the server answers (rows, or an error). The fake PgConnector and
// PgSession play the script back:
//   - anything not next in the script (other SQL, other parameters, a Query
//     where an Exec is due, a connection to another database, anything
//     after the end) fails the running test (ADD_FAILURE) and returns
//     INTERNAL, so code that ignores an error still fails the test;
//   - a script destroyed with steps left fails the test;
//   - ran() records what ran, in order.
// Integration tests keep running the same code against the real server
// (test_postgres.h).
#ifndef MR_TESTS_HARNESS_SCRIPTED_PG_H_
#define MR_TESTS_HARNESS_SCRIPTED_PG_H_

#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/database/pg_session.h"

namespace mastodon_restore {
namespace testing {

// Rows with `columns` and `rows`.
PgRows Rows(std::vector<std::string> columns,
            std::vector<std::vector<std::optional<std::string>>> rows);
// One row of one column ("?column?") holding `value`.
PgRows ScalarRow(std::optional<std::string> value);

// What a test expects, step by step. Thread-safe. Must outlive the
// connectors and sessions that play it.
class PgScript {
 public:
  PgScript() = default;
  // Fails the running test when steps are left.
  ~PgScript();
  PgScript(const PgScript&) = delete;
  PgScript& operator=(const PgScript&) = delete;

  // A connection to `dbname` (the dbname argument of Connect); a non-OK
  // `status` makes the connection fail with it.
  PgScript& Connect(const std::string& dbname, absl::Status status = absl::OkStatus());
  // Query(`sql`, `params`), answered with `rows`.
  PgScript& Query(const std::string& sql, PgRows rows, std::vector<std::string> params = {});
  // Exec(`sql`), succeeding.
  PgScript& Exec(const std::string& sql);
  // Query or Exec of `sql` with `params`, failing with `status`; `error`
  // becomes the session's last_error().
  PgScript& Fail(const std::string& sql, absl::Status status, PgError error = PgError(),
                 std::vector<std::string> params = {});

  // What the sessions report as their role and server version.
  PgScript& set_user(std::string user);
  PgScript& set_server_version(int version);

  // What ran, in order: "connect <dbname>" and the SQL of each Query and
  // Exec (with " -- $1=<value> ..." when it had parameters), also the
  // unexpected ones.
  std::vector<std::string> ran() const;
  // True when every step ran.
  bool done() const;

  // For the fakes below.
  absl::Status PlayConnect(const std::string& dbname);
  absl::StatusOr<PgRows> PlaySql(bool query, const std::string& sql,
                                 const std::vector<std::string>& params, PgError* error);
  std::string user() const;
  int server_version() const;

 private:
  enum class Kind { kConnect, kQuery, kExec, kFail };
  struct Step {
    Kind kind;
    std::string text;  // dbname or SQL
    std::vector<std::string> params;
    PgRows rows;
    absl::Status status;
    PgError error;
  };
  static std::string Describe(const Step& step);

  mutable std::mutex mu_;
  std::deque<Step> steps_;
  std::vector<std::string> ran_;
  std::string user_ = "mastodon";
  int server_version_ = 150000;
};

// A session that plays `script`.
class ScriptedPgSession : public PgSession {
 public:
  explicit ScriptedPgSession(PgScript* script) : script_(script) {}

  absl::Status Exec(const std::string& sql) override;
  using PgSession::Query;
  absl::StatusOr<PgRows> Query(const std::string& sql,
                               const std::vector<std::string>& params) override;
  const PgError& last_error() const override { return last_error_; }
  int server_version() const override { return script_->server_version(); }
  std::string current_user() override { return script_->user(); }
  // Double quotes (identifiers) and single quotes (literals), doubled inside.
  std::string QuoteIdentifier(absl::string_view name) const override;
  std::string QuoteLiteral(absl::string_view value) const override;

 private:
  PgScript* script_;
  PgError last_error_;
};

// A connector whose connections play `script` (each Connect is a step).
class ScriptedPgConnector : public PgConnector {
 public:
  explicit ScriptedPgConnector(PgScript* script) : script_(script) {}
  absl::StatusOr<std::unique_ptr<PgSession>> Connect(const std::string& conninfo,
                                                     const std::string& dbname) override;

 private:
  PgScript* script_;
};

}  // namespace testing
}  // namespace mastodon_restore

#endif  // MR_TESTS_HARNESS_SCRIPTED_PG_H_
