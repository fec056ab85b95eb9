// Builds the GetAgentInfo answer from the config and the host.
#ifndef MR_AGENT_SERVICE_AGENT_INFO_H_
#define MR_AGENT_SERVICE_AGENT_INFO_H_

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "agent/common/env.h"
#include "agent/jobs/job_env.h"
#include "agent/service/config.h"
#include "mastodon/restore/v1/agent_service.pb.h"

namespace mastodon_restore {

// Capabilities this agent build offers (names of the RPC families backed by
// real code).
const std::vector<std::string>& AgentCapabilities();

// "15.18" for libpq 150018; "9.6.24" style for versions before 10.
std::string FormatPostgresVersion(int version_num);

// Fills every field GetAgentInfo returns. Reads host facts through `env`.
// `runtime` (optional) is the runtime in use; none when null.
mastodon::restore::v1::GetAgentInfoResponse BuildAgentInfo(
    const AgentConfig& config, Env* env, absl::Time start_time,
    const mastodon::restore::v1::RuntimeInfo* runtime = nullptr);

// BuildAgentInfo with what is found live: the runtime in use (or what
// detection checked), the version of the server restores go to by default
// (or why it cannot be reached) and the schema version of the runtime's
// database.
mastodon::restore::v1::GetAgentInfoResponse DescribeAgent(const AgentConfig& config,
                                                          const JobEnv& jobs,
                                                          absl::Time start_time);

}  // namespace mastodon_restore

#endif  // MR_AGENT_SERVICE_AGENT_INFO_H_
