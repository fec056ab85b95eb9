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

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_PG_PROBE_H_
