#include "agent/common/errors.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace mastodon_restore {

absl::Status UnableTo(absl::StatusCode code, absl::string_view verb, absl::string_view object,
                      absl::string_view cause) {
  return absl::Status(code, absl::StrCat("unable to ", verb, " '", object, "': ", cause));
}

absl::Status ErrnoError(int err, absl::string_view verb, absl::string_view object) {
  absl::StatusCode code;
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      code = absl::StatusCode::kNotFound;
      break;
    case EACCES:
    case EPERM:
      code = absl::StatusCode::kPermissionDenied;
      break;
    case ENOSPC:
    case EDQUOT:
      code = absl::StatusCode::kResourceExhausted;
      break;
    case EEXIST:
      code = absl::StatusCode::kAlreadyExists;
      break;
    default:
      code = absl::StatusCode::kInternal;
  }
  return UnableTo(code, verb, object, std::strerror(err));
}

absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

}  // namespace mastodon_restore
