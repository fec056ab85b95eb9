// Following a long-running operation from the CLI: live progress, the final
// report, and the exit code of its outcome.
#ifndef MR_CLI_FOLLOW_H_
#define MR_CLI_FOLLOW_H_

#include <cstdio>
#include <functional>
#include <memory>
#include <string>

#include "mastodon/restore/v1/agent_service.grpc.pb.h"

namespace mastodon_restore {

struct FollowOptions {
  std::FILE* out = stdout;
  std::FILE* err = stderr;
  // One JSON object (WatchOperationResponse) per line instead of text.
  bool json = false;
  // Redraw a progress line in place (a terminal).
  bool tty = false;
  // Watch from this event on (0: all).
  int64_t from_sequence = 0;
  // Ctrl-C asks the agent to cancel; a second one detaches.
  bool handle_interrupt = true;
  // Adds credentials (the bearer token) to each call.
  std::function<void(grpc::ClientContext*)> prepare;
};

// Streams the operation's events until it ends (reconnecting from the last
// sequence seen if the stream breaks), prints the outcome, and returns the
// exit code: 0 succeeded, 6 cancelled, the code of its error when it failed,
// 1 when interrupted.
int FollowOperation(mastodon::restore::v1::RestoreAgentService::StubInterface* stub,
                    const std::string& id, const FollowOptions& options);

// Human summary of an operation (state, steps, result).
std::string RenderOperation(const mastodon::restore::v1::Operation& op);

// One line per operation for listings.
std::string RenderOperationLine(const mastodon::restore::v1::Operation& op);

// The exit code of an ended operation.
int ExitCodeForOperation(const mastodon::restore::v1::Operation& op);

}  // namespace mastodon_restore

#endif  // MR_CLI_FOLLOW_H_
