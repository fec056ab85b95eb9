// Minimal facts about a PostgreSQL server, for compatibility verdicts.
#ifndef MR_AGENT_DATABASE_PG_PROBE_H_
#define MR_AGENT_DATABASE_PG_PROBE_H_

#include <string>

#include "absl/status/statusor.h"

namespace mastodon_restore {

// server_version_num of the server `conninfo` points at (e.g. 150018).
// UNAVAILABLE with libpq's message when it cannot connect; the message never
// holds the conninfo (it may carry a password).
absl::StatusOr<int> ProbeServerVersion(const std::string& conninfo);

// What a restore must know of its target server before it touches anything.
struct RestoreServerFacts {
  int server_version = 0;  // server_version_num
  std::string user;        // the role the connection uses
  // The role is a superuser or has CREATEDB.
  bool may_create_databases = false;
  // The data directory, when the role may read it ("" otherwise).
  std::string data_directory;
};
// Connects to the maintenance database of the server `conninfo` points at
// and reads them. UNAVAILABLE when it cannot connect (as PgConnection::Connect).
absl::StatusOr<RestoreServerFacts> ReadRestoreServerFacts(const std::string& conninfo);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_PG_PROBE_H_
