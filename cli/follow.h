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
  // Redraw a progress line in place (a terminal), cut to the width of the
  // terminal on `terminal_fd` (followed through SIGWINCH; -1: `out`'s).
  bool tty = false;
  int terminal_fd = -1;
  // Colour the states (succeeded, failed, skipped, warnings).
  bool color = false;
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

// Human summary of an operation (state, steps, result); states coloured
// with `color`.
std::string RenderOperation(const mastodon::restore::v1::Operation& op, bool color = false);

// The live line of a progress event: the step and its place ("load 3/9"), a
// bar, the phase ("data 312.0 MiB of 700.0 MiB", "building 45/189"), the
// operation's elapsed time, the ETA and the message. Not cut to a width.
std::string RenderProgressLine(const mastodon::restore::v1::OperationEvent& e);

// The same facts on one plain line (not a terminal): "    load 3/9: ...".
std::string RenderProgressText(const mastodon::restore::v1::OperationEvent& e);

// One line per operation for listings.
std::string RenderOperationLine(const mastodon::restore::v1::Operation& op);

// The exit code of an ended operation.
int ExitCodeForOperation(const mastodon::restore::v1::Operation& op);

}  // namespace mastodon_restore

#endif  // MR_CLI_FOLLOW_H_
