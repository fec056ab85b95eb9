// This host's media directory as a migration's new host reads it
// (ListMedia, ReadMedia): its regular files, listed page by page in a
// stable order, and read in ranges. Everything goes through directory
// descriptors opened without following a symlink (common/dir.h): the app
// user, who can write the media directory, can hide files from the
// listing or make a read fail, but cannot make the agent read anything
// outside the directory. Symlinks and special files are left out.
#ifndef MR_AGENT_MEDIA_MEDIA_EXPORT_H_
#define MR_AGENT_MEDIA_MEDIA_EXPORT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "mastodon/restore/v1/agent_service.pb.h"

namespace mastodon_restore {

// Compares "a/b/c" paths component by component (the order the listing
// walks in): <0, 0, >0.
int CompareMediaPaths(const std::string& a, const std::string& b);

// The files below `media_dir` whose paths start with `prefix`, after
// `after` (a path a previous page ended with; "": from the first), at most
// `limit` of them; next_page_token is the last path when more follow.
// Directories that hold only paths before `after` are not entered.
absl::StatusOr<mastodon::restore::v1::ListMediaResponse> ListHostMedia(const std::string& media_dir,
                                                                       const std::string& prefix,
                                                                       const std::string& after,
                                                                       int limit);

// Up to `length` bytes of the file `path` below `media_dir` from
// `offset`, with the file's size and mtime. INVALID_ARGUMENT for a path
// with "..", an empty or absolute one; NOT_FOUND when it is gone;
// ABORTED when `size` or `mtime` (when not 0) differ from the file's.
absl::StatusOr<mastodon::restore::v1::ReadMediaResponse> ReadHostMedia(const std::string& media_dir,
                                                                       const std::string& path,
                                                                       int64_t offset,
                                                                       int64_t length, int64_t size,
                                                                       int64_t mtime);

}  // namespace mastodon_restore

#endif  // MR_AGENT_MEDIA_MEDIA_EXPORT_H_
