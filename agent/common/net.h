// Network address helpers shared by the agent and the CLI.
#ifndef MR_AGENT_COMMON_NET_H_
#define MR_AGENT_COMMON_NET_H_

#include <string>

#include "absl/status/status.h"

namespace mastodon_restore {

// True when `host` is "localhost" or a loopback IPv4/IPv6 address.
bool IsLoopbackHost(const std::string& host);

// Splits "HOST:PORT" / "[V6]:PORT". INVALID_ARGUMENT naming the address when
// malformed.
absl::Status SplitHostPort(const std::string& address, std::string* host, int* port);

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_NET_H_
