// A thin libpq wrapper (pgBackRest's "client", not a general-purpose
// driver): connect, run commands and queries, stream COPY data, cancel from
// another thread. It is the real PgSession and LibpqConnector the real
// PgConnector (pg_session.h). It writes no SQL of its own beyond
// current_user: all SQL the agent runs lives in database/, in named
// functions with contracts; no other module writes SQL.
#ifndef MR_AGENT_DATABASE_PG_CONNECTION_H_
#define MR_AGENT_DATABASE_PG_CONNECTION_H_

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/database/pg_session.h"

typedef struct pg_conn PGconn;
typedef struct pg_cancel PGcancel;
typedef struct pg_result PGresult;

namespace mastodon_restore {

// True when `conninfo` (string or URI) sets a password; such a conninfo is a
// secret and is never persisted. Unparsable conninfo counts as secret.
bool ConnInfoHasPassword(const std::string& conninfo);

// A conninfo a caller sent (a request's target.conninfo) as the agent may
// use it: the same settings, in keyword form, with passfile=kNoPassFile and,
// when it sets no password, password='' so that nothing stored on the
// agent's host is sent to a server the caller chose (not ~/.pgpass, not
// PGPASSFILE, not PGPASSWORD, not a service file's password). Settings that
// name files on the agent's host (passfile, service, sslcert, sslkey,
// sslrootcert other than "system", sslcrl, sslcrldir) are refused:
// INVALID_ARGUMENT naming the setting. A conninfo libpq cannot parse is
// INVALID_ARGUMENT without its text (it may hold a password).
absl::StatusOr<std::string> CallerConnInfo(const std::string& conninfo);
// The password file of callers' conninfo: a path that cannot exist (below a
// device), so that libpq finds no file and says nothing (with /dev/null
// itself it warns on stderr that the file is not a plain file).
inline constexpr char kNoPassFile[] = "/dev/null/no-passfile";

// `message` (libpq's, or a client tool's) without the lines that name a
// password file: libpq says where it read a password from and warns about
// the file's mode, and those paths are not for callers.
std::string ScrubCredentialFiles(absl::string_view message);

// The keyword/value pairs `conninfo` (string or URI) sets, in libpq's order.
// INVALID_ARGUMENT with libpq's message (never the conninfo) when it does not
// parse.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ConnInfoParams(
    const std::string& conninfo);

class PgConnection : public PgSession {
 public:
  // Connects with `conninfo` (conninfo string or URI). When `dbname` is not
  // empty it replaces the database of `conninfo`. UNAVAILABLE with libpq's
  // message on failure; the message never contains the conninfo.
  static absl::StatusOr<std::unique_ptr<PgConnection>> Connect(const std::string& conninfo,
                                                               const std::string& dbname = "");
  // Connects with explicit keyword/value pairs (no conninfo expansion): for
  // credentials that must not pass through a conninfo string. Same errors.
  static absl::StatusOr<std::unique_ptr<PgConnection>> ConnectParams(
      const std::vector<std::pair<std::string, std::string>>& params);
  ~PgConnection() override;
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // PgSession.
  absl::Status Exec(const std::string& sql) override;
  using PgSession::Query;
  absl::StatusOr<PgRows> Query(const std::string& sql,
                               const std::vector<std::string>& params) override;
  const PgError& last_error() const override { return last_error_; }
  int server_version() const override;
  std::string current_user() override;
  std::string QuoteIdentifier(absl::string_view name) const override;
  std::string QuoteLiteral(absl::string_view value) const override;

  // COPY FROM STDIN: Exec() of the COPY statement returns OK and leaves the
  // connection in copy mode when the server accepts it (in_copy() true).
  bool in_copy() const { return in_copy_; }
  absl::Status PutCopyData(absl::string_view data);
  // Ends the COPY; with `error` non-empty the COPY is aborted with it.
  absl::Status EndCopy(const std::string& error = "");

  // Asks the server to cancel the running command. Thread-safe; may be called
  // from any thread while another runs a command.
  void Cancel();

  // Notices (warnings) the server sent since the last call.
  std::vector<std::string> TakeNotices();

 private:
  explicit PgConnection(PGconn* conn);
  absl::Status ResultStatus(PGresult* result, bool* copy_in);
  // Ends a COPY TO STDOUT (or a replication stream) the server started:
  // INVALID_ARGUMENT, and the connection usable again.
  absl::Status RefuseCopyOut();

  PGconn* conn_;
  std::mutex cancel_mu_;
  PGcancel* cancel_ = nullptr;
  bool in_copy_ = false;
  bool cancel_requested_ = false;
  PgError last_error_;
  std::vector<std::string> notices_;
};

// The real PgConnector: PgConnection::Connect. Stateless.
class LibpqConnector : public PgConnector {
 public:
  absl::StatusOr<std::unique_ptr<PgSession>> Connect(const std::string& conninfo,
                                                     const std::string& dbname) override;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_PG_CONNECTION_H_
