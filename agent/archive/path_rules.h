// Which paths a request may reach, and what archive entry names are safe.
#ifndef MR_AGENT_ARCHIVE_PATH_RULES_H_
#define MR_AGENT_ARCHIVE_PATH_RULES_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mastodon_restore {

// True when `path` is `root` or below it (both absolute, normalised).
bool IsWithin(absl::string_view path, absl::string_view root);

// realpath() of the longest existing prefix of absolute `path`, with the
// missing rest appended lexically ("." dropped, ".." popping). Lets a
// missing path be judged against the roots, or serve as a lock key, without
// following anything that does not exist.
std::string ResolveExistingPrefix(const std::string& path);

// Resolves `path` (symlinks followed) and checks that the result lies inside
// one of `roots` (also resolved). INVALID_ARGUMENT for a relative path,
// NOT_FOUND when it does not exist, PERMISSION_DENIED naming the allowed
// roots when it is outside them.
absl::StatusOr<std::string> ResolveAllowedPath(const std::string& path,
                                               const std::vector<std::string>& roots);

// Resolves `path` as far as it exists (symlinks followed; a missing rest
// appended lexically) and returns the result when it lies inside one of
// `roots` (each resolved too); nullopt when it does not, or when `path` is
// not absolute. For write locations read from files others can write.
std::optional<std::string> ResolveInsideRoots(const std::string& path,
                                              const std::vector<std::string>& roots);

// Normalises an archive entry name: strips "./" and duplicate slashes.
// INVALID_ARGUMENT for an absolute path, a ".." component or an empty name.
absl::StatusOr<std::string> NormalizeEntryPath(absl::string_view name);

}  // namespace mastodon_restore

#endif  // MR_AGENT_ARCHIVE_PATH_RULES_H_
