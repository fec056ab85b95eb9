// The CLI's documented exit codes (README "Exit codes"). Scripts rely on them:
// never renumber.
#ifndef MR_CLI_EXIT_CODES_H_
#define MR_CLI_EXIT_CODES_H_

#include <grpcpp/support/status.h>

namespace mastodon_restore {

enum ExitCode {
  kExitOk = 0,
  // The operation ran and failed, a check failed, or an internal error.
  kExitFailed = 1,
  // Bad command line.
  kExitUsage = 2,
  // The agent cannot be reached, did not answer in time, or is not serving.
  kExitUnreachable = 3,
  // The input was refused: bad argument, missing file, corrupt backup.
  kExitInvalidInput = 4,
  // The host is not ready: services running, tools missing, another operation
  // holds the target, no space.
  kExitPrecondition = 5,
  // The operation was cancelled.
  kExitCancelled = 6,
  // Not allowed: path outside the allowed roots, missing token or scope.
  kExitDenied = 7,
  // The agent does not offer this capability.
  kExitUnsupported = 8,
};

// The exit code for a failed call with `code`.
ExitCode ExitCodeFor(grpc::StatusCode code);

}  // namespace mastodon_restore

#endif  // MR_CLI_EXIT_CODES_H_
