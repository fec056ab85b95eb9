#include "agent/archive/path_rules.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/common/errors.h"

namespace mastodon_restore {

bool IsWithin(absl::string_view path, absl::string_view root) {
  if (root == "/") return absl::StartsWith(path, "/");
  if (!absl::StartsWith(path, root)) return false;
  return path.size() == root.size() || path[root.size()] == '/';
}

std::string ResolveExistingPrefix(const std::string& path) {
  std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  for (size_t keep = parts.size(); keep > 0; --keep) {
    std::string prefix = "/" + absl::StrJoin(parts.begin(), parts.begin() + keep, "/");
    char buf[PATH_MAX];
    if (::realpath(prefix.c_str(), buf) == nullptr) continue;
    std::vector<std::string> out = absl::StrSplit(buf, '/', absl::SkipEmpty());
    for (size_t i = keep; i < parts.size(); ++i) {
      if (parts[i] == ".") continue;
      if (parts[i] == "..") {
        if (!out.empty()) out.pop_back();
        continue;
      }
      out.push_back(parts[i]);
    }
    return "/" + absl::StrJoin(out, "/");
  }
  return path;
}

absl::StatusOr<std::string> ResolveAllowedPath(const std::string& path,
                                               const std::vector<std::string>& roots) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("invalid path '", path, "': must be absolute"));
  }
  char buf[PATH_MAX];
  absl::Status missing;
  std::string resolved;
  if (::realpath(path.c_str(), buf) != nullptr) {
    resolved = buf;
  } else if (errno == ELOOP) {
    return UnableTo(absl::StatusCode::kInvalidArgument, "resolve", path, "symlink loop");
  } else {
    // Judge where it would be before saying it is missing: outside the
    // roots the answer is always "denied", so nothing about the rest of
    // the filesystem leaks.
    missing = ErrnoError(errno, "resolve", path);
    resolved = ResolveExistingPrefix(path);
  }
  std::vector<std::string> shown;
  for (const std::string& root : roots) {
    char rbuf[PATH_MAX];
    std::string real_root = ::realpath(root.c_str(), rbuf) != nullptr ? rbuf : root;
    if (IsWithin(resolved, real_root)) {
      if (!missing.ok()) return missing;
      return resolved;
    }
    shown.push_back(root);
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "path '", path, "'", resolved != path ? absl::StrCat(" (resolves to '", resolved, "')") : "",
      " is outside the allowed roots (", shown.empty() ? "none" : absl::StrJoin(shown, ", "),
      "); add --allowed-root to the agent"));
}

std::optional<std::string> ResolveInsideRoots(const std::string& path,
                                              const std::vector<std::string>& roots) {
  if (path.empty() || path[0] != '/') return std::nullopt;
  const std::string resolved = ResolveExistingPrefix(path);
  for (const std::string& root : roots) {
    if (root.empty() || root[0] != '/') continue;
    if (IsWithin(resolved, ResolveExistingPrefix(root))) return resolved;
  }
  return std::nullopt;
}

absl::StatusOr<std::string> NormalizeEntryPath(absl::string_view name) {
  if (absl::StartsWith(name, "/")) {
    return absl::InvalidArgumentError(absl::StrCat("absolute path '", name, "'"));
  }
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(name, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError(absl::StrCat("path '", name, "' escapes with '..'"));
    }
    parts.emplace_back(part);
  }
  if (parts.empty()) return absl::InvalidArgumentError(absl::StrCat("empty path '", name, "'"));
  return absl::StrJoin(parts, "/");
}

}  // namespace mastodon_restore
