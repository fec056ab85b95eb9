#include "cli/exit_codes.h"

#include "absl/strings/str_cat.h"

namespace mastodon_restore {

const char* ExitCodeMeaning(ExitCode code) {
  // No default: -Wswitch (an error with -Werror) names a code left out.
  switch (code) {
    case kExitOk:
      return "ok";
    case kExitFailed:
      return "failed";
    case kExitUsage:
      return "usage";
    case kExitUnreachable:
      return "agent unreachable";
    case kExitInvalidInput:
      return "invalid input";
    case kExitPrecondition:
      return "failed precondition";
    case kExitCancelled:
      return "cancelled";
    case kExitDenied:
      return "permission denied";
    case kExitUnsupported:
      return "unsupported";
    case kExitCodeEnd:
      return nullptr;
  }
  return nullptr;
}

std::string ExitCodeHelp() {
  std::string text;
  std::string line = "Exit codes:";
  for (int c = kExitOk; c < kExitCodeEnd; ++c) {
    const char* meaning = ExitCodeMeaning(static_cast<ExitCode>(c));
    std::string item = absl::StrCat(" ", c, " ", meaning != nullptr ? meaning : "?",
                                    c + 1 < kExitCodeEnd ? "," : ".");
    if (line.size() + item.size() > 80) {
      absl::StrAppend(&text, line, "\n");
      item.erase(0, 1);
      line.clear();
    }
    absl::StrAppend(&line, item);
  }
  absl::StrAppend(&text, line, "\n");
  return text;
}

ExitCode ExitCodeFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitUnreachable;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::ALREADY_EXISTS:
      return kExitInvalidInput;
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return kExitPrecondition;
    case grpc::StatusCode::CANCELLED:
      return kExitCancelled;
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return kExitDenied;
    case grpc::StatusCode::UNIMPLEMENTED:
      return kExitUnsupported;
    default:
      return kExitFailed;
  }
}

}  // namespace mastodon_restore
