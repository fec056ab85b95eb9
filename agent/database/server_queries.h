// What the agent asks of the target server itself (not of a database on
// it), as named queries over a PgSession. Like pgBackRest's db.h there is no
// general-purpose query function: each function runs the SQL its contract
// states and nothing else.
#ifndef MR_AGENT_DATABASE_SERVER_QUERIES_H_
#define MR_AGENT_DATABASE_SERVER_QUERIES_H_

#include <string>

#include "absl/status/statusor.h"
#include "agent/database/pg_session.h"

namespace mastodon_restore {

// True when the session's role may create databases: a superuser or a role
// with CREATEDB. A query error is returned as is.
absl::StatusOr<bool> RoleMayCreateDatabases(PgSession* session);

// The server's data directory, "" when the role may not see it (only
// superusers and pg_read_all_settings members may). A query error is
// returned as is.
absl::StatusOr<std::string> ServerDataDirectory(PgSession* session);

// What a restore must know of its target server before it touches anything.
struct RestoreServerFacts {
  int server_version = 0;  // server_version_num
  std::string user;        // the role the session runs as
  // The role is a superuser or has CREATEDB (RoleMayCreateDatabases).
  bool may_create_databases = false;
  // The data directory when the role may read it, "" otherwise
  // (ServerDataDirectory; an error reading it leaves it "").
  std::string data_directory;
};
// Opens a session on the maintenance database of the server `conninfo` points
// at and reads them. UNAVAILABLE when it cannot connect; a query error of the
// role check is returned as is.
absl::StatusOr<RestoreServerFacts> ReadRestoreServerFacts(PgConnector* connector,
                                                          const std::string& conninfo);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_SERVER_QUERIES_H_
