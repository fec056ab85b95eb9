// The CLI's documented exit codes (README "Exit codes"). Scripts rely on them:
// never renumber.
#ifndef MR_CLI_EXIT_CODES_H_
#define MR_CLI_EXIT_CODES_H_

#include <grpcpp/support/status.h>

#include <string>

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
  // One past the last code, not a code. A new code goes above it, numbered
  // next, with its words in ExitCodeMeaning() (the build fails without them).
  kExitCodeEnd,
};

// A few words on `code` for --help ("agent unreachable"); nullptr for
// kExitCodeEnd and values that are no exit code.
const char* ExitCodeMeaning(ExitCode code);

// The exit-code paragraph of --help, generated from every code above:
// "Exit codes: 0 ok, 1 failed, ...", wrapped at 80 columns.
std::string ExitCodeHelp();

// The exit code for a failed call with `code`.
ExitCode ExitCodeFor(grpc::StatusCode code);

}  // namespace mastodon_restore

#endif  // MR_CLI_EXIT_CODES_H_
