// Error builders with the project's one message shape:
//   unable to <verb> '<object>': <cause>
#ifndef MR_AGENT_COMMON_ERRORS_H_
#define MR_AGENT_COMMON_ERRORS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace mastodon_restore {

// "unable to <verb> '<object>': <cause>" with `code`.
absl::Status UnableTo(absl::StatusCode code, absl::string_view verb, absl::string_view object,
                      absl::string_view cause);

// UnableTo() with the cause taken from errno value `err` and the code chosen
// from it: ENOENT -> NOT_FOUND, EACCES/EPERM -> PERMISSION_DENIED,
// ENOSPC/EDQUOT -> RESOURCE_EXHAUSTED, EEXIST -> ALREADY_EXISTS, otherwise
// INTERNAL.
absl::Status ErrnoError(int err, absl::string_view verb, absl::string_view object);

// Returns `status` with "<context>: " prefixed to its message (same code).
// OK stays OK.
absl::Status Annotate(const absl::Status& status, absl::string_view context);

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_ERRORS_H_
