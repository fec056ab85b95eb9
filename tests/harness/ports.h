// Ports for the servers tests start.
#ifndef MR_TESTS_HARNESS_PORTS_H_
#define MR_TESTS_HARNESS_PORTS_H_

#include "absl/status/statusor.h"

namespace mastodon_restore {
namespace testing {

// A loopback port free now, below the range the kernel picks local ports
// of outgoing connections from: for a server that stops and starts again
// on its port while others connect to it. (A port from that range can be
// taken meanwhile by any outgoing connection, even by a client connecting
// to the stopped server itself, which then talks to itself.)
absl::StatusOr<int> FreeServerPort();

}  // namespace testing
}  // namespace mastodon_restore

#endif  // MR_TESTS_HARNESS_PORTS_H_
