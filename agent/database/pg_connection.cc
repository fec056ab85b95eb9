#include "agent/database/pg_connection.h"

#include <libpq-fe.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace mastodon_restore {
namespace {

void NoticeReceiver(void* arg, const PGresult* result) {
  auto* notices = static_cast<std::vector<std::string>*>(arg);
  const char* msg = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  const char* severity = PQresultErrorField(result, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (msg != nullptr && notices->size() < 1000) {
    notices->push_back(absl::StrCat(severity != nullptr ? severity : "NOTICE", ": ", msg));
  }
}

std::string Field(const PGresult* r, int code) {
  const char* v = PQresultErrorField(r, code);
  return v != nullptr ? v : "";
}

}  // namespace

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ConnInfoParams(
    const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    std::string message = error != nullptr ? error : "out of memory";
    if (error != nullptr) PQfreemem(error);
    return absl::InvalidArgumentError(absl::StrCat("invalid PostgreSQL connection string: ",
                                                   absl::StripAsciiWhitespace(message)));
  }
  std::vector<std::pair<std::string, std::string>> params;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val != nullptr && o->val[0] != '\0') params.emplace_back(o->keyword, o->val);
  }
  PQconninfoFree(options);
  return params;
}

bool ConnInfoHasPassword(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    if (error != nullptr) PQfreemem(error);
    return true;
  }
  bool has = false;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (std::string(o->keyword) == "password" && o->val != nullptr && o->val[0] != '\0') has = true;
  }
  PQconninfoFree(options);
  return has;
}

absl::StatusOr<std::string> CallerConnInfo(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    if (error != nullptr) PQfreemem(error);
    return absl::InvalidArgumentError(
        "the request's conninfo is not a libpq connection string or URI");
  }
  std::vector<std::string> parts;
  bool has_password = false;
  absl::Status refused;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const std::string keyword = o->keyword;
    const std::string value = o->val;
    const bool names_a_file =
        keyword == "passfile" || keyword == "service" || keyword == "servicefile" ||
        keyword == "sslcert" || keyword == "sslkey" || keyword == "sslcrl" ||
        keyword == "sslcrldir" || (keyword == "sslrootcert" && value != "system");
    if (names_a_file) {
      refused = absl::InvalidArgumentError(
          absl::StrCat("the request's conninfo may not set '", keyword,
                       "': it names a file on the agent's host (give the settings themselves)"));
      break;
    }
    if (keyword == "password" && !value.empty()) has_password = true;
    std::string quoted;
    for (char c : value) {
      if (c == '\\' || c == '\'') quoted += '\\';
      quoted += c;
    }
    parts.push_back(absl::StrCat(keyword, "='", quoted, "'"));
  }
  PQconninfoFree(options);
  if (!refused.ok()) return refused;
  if (!has_password) parts.push_back("password=''");
  parts.push_back(absl::StrCat("passfile='", kNoPassFile, "'"));
  return absl::StrJoin(parts, " ");
}

std::string ScrubCredentialFiles(absl::string_view message) {
  std::vector<std::string> kept;
  bool removed = false;
  for (absl::string_view line : absl::StrSplit(message, '\n')) {
    if (absl::StrContains(line, "password file") || absl::StrContains(line, "pgpass") ||
        absl::StrContains(line, "passfile") || absl::StrContains(line, "retrieved from file")) {
      removed = true;
      continue;
    }
    kept.emplace_back(line);
  }
  std::string out = absl::StrJoin(kept, "\n");
  if (removed) {
    absl::StrAppend(&out, out.empty() ? "" : " ", "(the agent's password file was used)");
  }
  return out;
}

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Connect(const std::string& conninfo,
                                                                    const std::string& dbname) {
  const char* keys[] = {"dbname", "dbname", "connect_timeout", "application_name", nullptr};
  const char* values[] = {conninfo.c_str(), dbname.empty() ? nullptr : dbname.c_str(), "15",
                          "mastodon-restore", nullptr};
  if (dbname.empty()) {
    keys[1] = "connect_timeout";
    values[1] = "15";
    keys[2] = "application_name";
    values[2] = "mastodon-restore";
    keys[3] = nullptr;
    values[3] = nullptr;
  }
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string error = ScrubCredentialFiles(absl::StripAsciiWhitespace(PQerrorMessage(conn)));
    PQfinish(conn);
    return absl::UnavailableError(
        absl::StrCat("unable to connect to PostgreSQL",
                     dbname.empty() ? "" : absl::StrCat(" database '", dbname, "'"), ": ", error));
  }
  std::unique_ptr<PgConnection> c(new PgConnection(conn));
  PQsetNoticeReceiver(conn, NoticeReceiver, &c->notices_);
  return c;
}

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::ConnectParams(
    const std::vector<std::pair<std::string, std::string>>& params) {
  std::vector<const char*> keys, values;
  std::string dbname;
  for (const auto& [key, value] : params) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
    if (key == "dbname") dbname = value;
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* conn = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/0);
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string error = std::string(absl::StripAsciiWhitespace(PQerrorMessage(conn)));
    PQfinish(conn);
    return absl::UnavailableError(
        absl::StrCat("unable to connect to PostgreSQL",
                     dbname.empty() ? "" : absl::StrCat(" database '", dbname, "'"), ": ", error));
  }
  std::unique_ptr<PgConnection> c(new PgConnection(conn));
  PQsetNoticeReceiver(conn, NoticeReceiver, &c->notices_);
  return c;
}

PgConnection::PgConnection(PGconn* conn) : conn_(conn) { cancel_ = PQgetCancel(conn_); }

PgConnection::~PgConnection() {
  {
    std::lock_guard<std::mutex> lock(cancel_mu_);
    if (cancel_ != nullptr) PQfreeCancel(cancel_);
    cancel_ = nullptr;
  }
  PQfinish(conn_);
}

void PgConnection::Cancel() {
  std::lock_guard<std::mutex> lock(cancel_mu_);
  cancel_requested_ = true;
  if (cancel_ == nullptr) return;
  char err[256];
  PQcancel(cancel_, err, sizeof(err));
}

absl::Status PgConnection::ResultStatus(PGresult* result, bool* copy_in) {
  ExecStatusType st = PQresultStatus(result);
  if (copy_in != nullptr) *copy_in = st == PGRES_COPY_IN;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_COPY_IN ||
      st == PGRES_EMPTY_QUERY) {
    return absl::OkStatus();
  }
  last_error_.sqlstate = Field(result, PG_DIAG_SQLSTATE);
  last_error_.message = Field(result, PG_DIAG_MESSAGE_PRIMARY);
  last_error_.detail = Field(result, PG_DIAG_MESSAGE_DETAIL);
  last_error_.hint = Field(result, PG_DIAG_MESSAGE_HINT);
  if (last_error_.message.empty()) {
    last_error_.message = std::string(absl::StripAsciiWhitespace(PQerrorMessage(conn_)));
  }
  std::string text =
      absl::StrCat("ERROR: ", last_error_.message,
                   last_error_.detail.empty() ? "" : " (" + last_error_.detail + ")");
  if (PQstatus(conn_) != CONNECTION_OK) return absl::UnavailableError(text);
  if (last_error_.sqlstate == "57014") {
    std::lock_guard<std::mutex> lock(cancel_mu_);
    if (cancel_requested_) return absl::CancelledError(text);
  }
  return absl::InvalidArgumentError(text);
}

absl::Status PgConnection::RefuseCopyOut() {
  // The server is told to stop; what it sent before it heard is read and
  // dropped, so the connection leaves the copy state (libpq would otherwise
  // answer every PQgetResult with the copy again).
  {
    std::lock_guard<std::mutex> lock(cancel_mu_);
    char err[256];
    if (cancel_ != nullptr) PQcancel(cancel_, err, sizeof(err));
  }
  char* data = nullptr;
  while (PQgetCopyData(conn_, &data, /*async=*/0) > 0) {
    PQfreemem(data);
    data = nullptr;
  }
  last_error_ = PgError();
  last_error_.sqlstate = "0A000";  // feature_not_supported
  last_error_.message =
      "COPY ... TO STDOUT sends data to the client, which a restore never reads: refused";
  return absl::InvalidArgumentError(absl::StrCat("ERROR: ", last_error_.message));
}

absl::Status PgConnection::Exec(const std::string& sql) {
  last_error_ = PgError();
  if (!PQsendQuery(conn_, sql.c_str())) {
    last_error_.message = std::string(absl::StripAsciiWhitespace(PQerrorMessage(conn_)));
    return absl::UnavailableError(absl::StrCat("ERROR: ", last_error_.message));
  }
  absl::Status status;
  while (PGresult* r = PQgetResult(conn_)) {
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
      PQclear(r);
      absl::Status refused = RefuseCopyOut();
      if (status.ok()) status = refused;
      continue;
    }
    bool copy_in = false;
    absl::Status s = ResultStatus(r, &copy_in);
    PQclear(r);
    if (!s.ok() && status.ok()) status = s;
    if (copy_in) {
      in_copy_ = true;
      return status;
    }
  }
  return status;
}

absl::StatusOr<PgRows> PgConnection::Query(const std::string& sql,
                                           const std::vector<std::string>& params) {
  last_error_ = PgError();
  std::vector<const char*> values;
  for (const std::string& p : params) values.push_back(p.c_str());
  PGresult* r = PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                             values.data(), nullptr, nullptr, 0);
  absl::Status s = ResultStatus(r, nullptr);
  if (!s.ok()) {
    PQclear(r);
    return s;
  }
  PgRows rows;
  int nf = PQnfields(r), nt = PQntuples(r);
  for (int f = 0; f < nf; ++f) rows.columns.push_back(PQfname(r, f));
  rows.rows.reserve(nt);
  for (int t = 0; t < nt; ++t) {
    std::vector<std::optional<std::string>> row;
    for (int f = 0; f < nf; ++f) {
      if (PQgetisnull(r, t, f)) {
        row.push_back(std::nullopt);
      } else {
        row.push_back(std::string(PQgetvalue(r, t, f), PQgetlength(r, t, f)));
      }
    }
    rows.rows.push_back(std::move(row));
  }
  PQclear(r);
  return rows;
}

absl::Status PgConnection::PutCopyData(absl::string_view data) {
  if (PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) != 1) {
    return absl::UnavailableError(absl::StrCat("unable to send COPY data: ",
                                               absl::StripAsciiWhitespace(PQerrorMessage(conn_))));
  }
  return absl::OkStatus();
}

absl::Status PgConnection::EndCopy(const std::string& error) {
  in_copy_ = false;
  if (PQputCopyEnd(conn_, error.empty() ? nullptr : error.c_str()) != 1) {
    return absl::UnavailableError(
        absl::StrCat("unable to end COPY: ", absl::StripAsciiWhitespace(PQerrorMessage(conn_))));
  }
  absl::Status status;
  while (PGresult* r = PQgetResult(conn_)) {
    absl::Status s = ResultStatus(r, nullptr);
    PQclear(r);
    if (!s.ok() && status.ok()) status = s;
  }
  return status;
}

int PgConnection::server_version() const { return PQserverVersion(conn_); }

std::string PgConnection::current_user() {
  auto rows = Query("SELECT current_user");
  return rows.ok() ? rows->Scalar() : "";
}

std::string PgConnection::QuoteIdentifier(absl::string_view name) const {
  char* q = PQescapeIdentifier(conn_, name.data(), name.size());
  std::string out = q != nullptr ? q : "";
  PQfreemem(q);
  return out;
}

std::string PgConnection::QuoteLiteral(absl::string_view value) const {
  char* q = PQescapeLiteral(conn_, value.data(), value.size());
  std::string out = q != nullptr ? q : "";
  PQfreemem(q);
  return out;
}

std::vector<std::string> PgConnection::TakeNotices() {
  std::vector<std::string> out;
  out.swap(notices_);
  return out;
}

absl::StatusOr<std::unique_ptr<PgSession>> LibpqConnector::Connect(const std::string& conninfo,
                                                                   const std::string& dbname) {
  auto conn = PgConnection::Connect(conninfo, dbname);
  if (!conn.ok()) return conn.status();
  return std::unique_ptr<PgSession>(std::move(*conn));
}

}  // namespace mastodon_restore
