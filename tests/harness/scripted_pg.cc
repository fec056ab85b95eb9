#include "tests/harness/scripted_pg.h"

#include <gtest/gtest.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace mastodon_restore {
namespace testing {
namespace {

std::string WithParams(const std::string& sql, const std::vector<std::string>& params) {
  std::string out = sql;
  for (size_t i = 0; i < params.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? " --" : "", " $", i + 1, "=", params[i]);
  }
  return out;
}

}  // namespace

PgRows Rows(std::vector<std::string> columns,
            std::vector<std::vector<std::optional<std::string>>> rows) {
  PgRows out;
  out.columns = std::move(columns);
  out.rows = std::move(rows);
  return out;
}

PgRows ScalarRow(std::optional<std::string> value) {
  return Rows({"?column?"}, {{std::move(value)}});
}

PgScript::~PgScript() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!steps_.empty()) {
    ADD_FAILURE() << "scripted PostgreSQL: " << steps_.size()
                  << " step(s) never ran, the first: " << Describe(steps_.front())
                  << "\nwhat ran:\n  " << absl::StrJoin(ran_, "\n  ");
  }
}

PgScript& PgScript::Connect(const std::string& dbname, absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  steps_.push_back(Step{Kind::kConnect, dbname, {}, {}, std::move(status), {}});
  return *this;
}

PgScript& PgScript::Query(const std::string& sql, PgRows rows, std::vector<std::string> params) {
  std::lock_guard<std::mutex> lock(mu_);
  steps_.push_back(Step{Kind::kQuery, sql, std::move(params), std::move(rows), {}, {}});
  return *this;
}

PgScript& PgScript::Exec(const std::string& sql) {
  std::lock_guard<std::mutex> lock(mu_);
  steps_.push_back(Step{Kind::kExec, sql, {}, {}, {}, {}});
  return *this;
}

PgScript& PgScript::Fail(const std::string& sql, absl::Status status, PgError error,
                         std::vector<std::string> params) {
  std::lock_guard<std::mutex> lock(mu_);
  steps_.push_back(
      Step{Kind::kFail, sql, std::move(params), {}, std::move(status), std::move(error)});
  return *this;
}

PgScript& PgScript::set_user(std::string user) {
  std::lock_guard<std::mutex> lock(mu_);
  user_ = std::move(user);
  return *this;
}

PgScript& PgScript::set_server_version(int version) {
  std::lock_guard<std::mutex> lock(mu_);
  server_version_ = version;
  return *this;
}

std::vector<std::string> PgScript::ran() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ran_;
}

bool PgScript::done() const {
  std::lock_guard<std::mutex> lock(mu_);
  return steps_.empty();
}

std::string PgScript::user() const {
  std::lock_guard<std::mutex> lock(mu_);
  return user_;
}

int PgScript::server_version() const {
  std::lock_guard<std::mutex> lock(mu_);
  return server_version_;
}

std::string PgScript::Describe(const Step& step) {
  switch (step.kind) {
    case Kind::kConnect:
      return absl::StrCat("connect ", step.text);
    case Kind::kQuery:
      return absl::StrCat("query: ", WithParams(step.text, step.params));
    case Kind::kExec:
      return absl::StrCat("exec: ", step.text);
    case Kind::kFail:
      return absl::StrCat("failing SQL: ", WithParams(step.text, step.params));
  }
  return "";
}

absl::Status PgScript::PlayConnect(const std::string& dbname) {
  std::lock_guard<std::mutex> lock(mu_);
  ran_.push_back(absl::StrCat("connect ", dbname));
  if (steps_.empty() || steps_.front().kind != Kind::kConnect || steps_.front().text != dbname) {
    std::string expected = steps_.empty() ? "the end of the script" : Describe(steps_.front());
    ADD_FAILURE() << "scripted PostgreSQL: unexpected connection to '" << dbname << "'; expected "
                  << expected;
    return absl::InternalError(absl::StrCat("scripted PostgreSQL: unexpected connection to '",
                                            dbname, "' (expected ", expected, ")"));
  }
  absl::Status status = steps_.front().status;
  steps_.pop_front();
  return status;
}

absl::StatusOr<PgRows> PgScript::PlaySql(bool query, const std::string& sql,
                                         const std::vector<std::string>& params, PgError* error) {
  std::lock_guard<std::mutex> lock(mu_);
  ran_.push_back(WithParams(sql, params));
  *error = PgError();
  bool matches = !steps_.empty() && steps_.front().text == sql;
  if (matches) {
    const Step& step = steps_.front();
    matches = step.kind == Kind::kFail ? step.params == params
              : query                  ? step.kind == Kind::kQuery && step.params == params
                                       : step.kind == Kind::kExec && params.empty();
  }
  if (!matches) {
    std::string expected = steps_.empty() ? "the end of the script" : Describe(steps_.front());
    ADD_FAILURE() << "scripted PostgreSQL: unexpected " << (query ? "query: " : "exec: ")
                  << WithParams(sql, params) << "\nexpected " << expected;
    error->message = "unexpected SQL";
    return absl::InternalError(absl::StrCat("scripted PostgreSQL: unexpected SQL: ",
                                            WithParams(sql, params), " (expected ", expected, ")"));
  }
  Step step = std::move(steps_.front());
  steps_.pop_front();
  if (step.kind == Kind::kFail) {
    *error = step.error;
    return step.status;
  }
  return step.rows;
}

absl::Status ScriptedPgSession::Exec(const std::string& sql) {
  return script_->PlaySql(false, sql, {}, &last_error_).status();
}

absl::StatusOr<PgRows> ScriptedPgSession::Query(const std::string& sql,
                                                const std::vector<std::string>& params) {
  return script_->PlaySql(true, sql, params, &last_error_);
}

std::string ScriptedPgSession::QuoteIdentifier(absl::string_view name) const {
  return absl::StrCat("\"", absl::StrReplaceAll(name, {{"\"", "\"\""}}), "\"");
}

std::string ScriptedPgSession::QuoteLiteral(absl::string_view value) const {
  return absl::StrCat("'", absl::StrReplaceAll(value, {{"'", "''"}}), "'");
}

absl::StatusOr<std::unique_ptr<PgSession>> ScriptedPgConnector::Connect(
    const std::string& /*conninfo*/, const std::string& dbname) {
  absl::Status connected = script_->PlayConnect(dbname);
  if (!connected.ok()) return connected;
  return std::unique_ptr<PgSession>(new ScriptedPgSession(script_));
}

}  // namespace testing
}  // namespace mastodon_restore
