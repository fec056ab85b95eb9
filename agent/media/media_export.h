// This host's media directory as a migration's new host reads it
// (ListMedia, ReadMedia): its regular files, listed page by page in a
// stable order, and read in ranges. Everything goes through directory
// descriptors opened without following a symlink (common/dir.h): the app
// user, who can write the media directory, can hide files from the
// listing or make a read fail, but cannot make the agent read anything
// outside the directory. Symlinks and special files are left out.
#ifndef MR_AGENT_MEDIA_MEDIA_EXPORT_H_
#define MR_AGENT_MEDIA_MEDIA_EXPORT_H_

#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "mastodon/restore/v1/agent_service.pb.h"

namespace mastodon_restore {

// Compares "a/b/c" paths component by component (the order the listing
// walks in): <0, 0, >0.
int CompareMediaPaths(const std::string& a, const std::string& b);

// What tells that a file changed: its size, mtime and ctime (to the
// nanosecond).
struct MediaFileState {
  int64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;

  static MediaFileState Of(const struct stat& st);
  bool operator==(const MediaFileState& o) const {
    return size == o.size && mtime_ns == o.mtime_ns && ctime_ns == o.ctime_ns;
  }
};

// The SHA-256s of files already hashed, by inode, each kept while the
// file's size, mtime and ctime stay what they were when it was hashed (the
// app user can set a file's mtime back, never its ctime). Held in memory
// for the agent's life, at most `max_entries` of them, about 80 bytes each
// (beyond: hashed again each time). Thread-safe.
class MediaHashCache {
 public:
  explicit MediaHashCache(size_t max_entries = size_t{2} << 20) : max_entries_(max_entries) {}

  // The raw SHA-256 of `st`'s file as recorded, or "" when not known for
  // the file as it is now.
  std::string Find(const struct stat& st) const;
  // Records the raw `sha256` (32 bytes) for the file as `st` describes it.
  void Add(const struct stat& st, const std::string& sha256);
  // Bytes hashed by the listings that used this cache (for tests and
  // figures).
  int64_t hashed_bytes() const;
  void CountHashed(int64_t bytes);

 private:
  struct Entry {
    MediaFileState state;
    std::array<char, 32> sha256;  // raw
  };
  const size_t max_entries_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::pair<dev_t, ino_t>, Entry> entries_ ABSL_GUARDED_BY(mu_);
  int64_t hashed_bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

// How a listing hashes the files it lists.
struct MediaHashing {
  // Null: no hashes.
  MediaHashCache* cache = nullptr;
  // A page ends once it has hashed this many bytes (after the file that
  // crossed it).
  int64_t page_budget = int64_t{1} << 30;
};

// The files below `media_dir` whose paths start with `prefix`, after
// `after` (a path a previous page ended with; "": from the first), at most
// `limit` of them; next_page_token is the last path when more follow.
// Directories that hold only paths before `after` are not entered. With
// `hashing.cache`, each file carries its SHA-256, but for one that changed
// while it was hashed: that one is listed as it was before, without.
absl::StatusOr<mastodon::restore::v1::ListMediaResponse> ListHostMedia(
    const std::string& media_dir, const std::string& prefix, const std::string& after, int limit,
    const MediaHashing& hashing = MediaHashing());

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
