// Root writes through directory descriptors. A Dir is an open directory;
// everything below it is reached relative to its descriptor, never by
// re-resolving a path, and no symlink is ever followed: whoever can write a
// directory the agent works in (the app user, in the media directory and its
// parent) can make an operation fail, but cannot make it read or write
// anywhere else. Names given to single-entry calls are one path component
// ("a.png"; not "", ".", ".." nor anything with a '/'); INVALID_ARGUMENT
// otherwise. A symlink met where a directory or file is expected is
// FAILED_PRECONDITION ("... is a symlink (not followed)").
#ifndef MR_AGENT_COMMON_DIR_H_
#define MR_AGENT_COMMON_DIR_H_

#include <sys/stat.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mastodon_restore {

// An owned file descriptor (closed on destruction).
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd();
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Closes now; the close error (errno) or 0.
  int Close();
  // Gives up the descriptor without closing it.
  int Release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

// The sorted entry names (without "." and "..") of the directory open as
// `fd`, which it takes (closed in any case); `path` names it in errors.
absl::StatusOr<std::vector<std::string>> ReadDirectoryNames(UniqueFd fd, const std::string& path);

// Bytes free (to unprivileged writers) and in total on a filesystem.
struct FsSpace {
  int64_t available_bytes = 0;
  int64_t total_bytes = 0;
};

// A file created under an unpredictable name (see Dir::CreateTemp).
struct TempFile {
  UniqueFd fd;
  std::string name;
};

class Dir {
 public:
  // Opens the directory at the absolute `path`, refusing a symlink in any of
  // its components (openat2 RESOLVE_NO_SYMLINKS; a walk from "/" opening one
  // component at a time with O_NOFOLLOW where openat2 is missing). Callers
  // that accept symlinks in a configured path resolve it first (realpath);
  // a component swapped for a symlink since is then refused, not followed.
  static absl::StatusOr<Dir> OpenPath(const std::string& path);

  Dir(Dir&&) = default;
  Dir& operator=(Dir&&) = default;

  // Opens the directory `rel` ("a/b/c", relative, no "..") beneath this one
  // (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or the O_NOFOLLOW walk).
  absl::StatusOr<Dir> OpenDir(absl::string_view rel) const;

  // Creates the directory `name` with exactly `mode` (umask ignored) and,
  // when given, the owner, set on the new directory's descriptor; returns it
  // open. An existing directory is opened (its mode and owner are left) when
  // `allow_existing`, else ALREADY_EXISTS; anything else in the way
  // (a file, a symlink) is FAILED_PRECONDITION.
  absl::StatusOr<Dir> MakeDir(absl::string_view name, mode_t mode, std::optional<uid_t> uid,
                              std::optional<gid_t> gid, bool allow_existing) const;

  // MakeDir(allow_existing) of each component of `rel` in turn, each below
  // the one before; returns the last ("" returns this directory again).
  absl::StatusOr<Dir> MakeDirs(absl::string_view rel, mode_t mode, std::optional<uid_t> uid,
                               std::optional<gid_t> gid) const;

  // Opens the regular file `rel` beneath this directory read-only (no
  // symlink in any component). FAILED_PRECONDITION when not a regular file.
  absl::StatusOr<UniqueFd> OpenFile(absl::string_view rel) const;

  // Creates the new file `name` (O_CREAT|O_EXCL|O_NOFOLLOW) with exactly
  // `mode`; ALREADY_EXISTS when anything has that name (a symlink included).
  absl::StatusOr<UniqueFd> CreateFile(absl::string_view name, mode_t mode) const;

  // The regular file `rel` (OpenFile's rules), read until its end or once
  // `max_bytes` or more are read.
  absl::StatusOr<std::string> ReadFile(absl::string_view rel, size_t max_bytes) const;

  // Replaces `name` with `data`: written to a CreateTemp file, synced, given
  // the owner `uid`:`gid`, renamed over `name` (the temp file removed on
  // failure).
  absl::Status WriteFile(absl::string_view name, absl::string_view data, mode_t mode, uid_t uid,
                         gid_t gid) const;

  // Creates a file ".<prefix>.<16 random hex digits>.tmp" exclusively
  // (O_EXCL|O_NOFOLLOW) with exactly `mode`: a name nobody can predict, so
  // nobody can plant anything there first.
  absl::StatusOr<TempFile> CreateTemp(absl::string_view prefix, mode_t mode) const;

  // lstat of `name` (never follows). NOT_FOUND when absent.
  absl::StatusOr<struct stat> Stat(absl::string_view name) const;
  // fstat of this directory.
  absl::StatusOr<struct stat> StatSelf() const;

  // Renames `name` here to `to_name` in `to` (renameat; both names are one
  // component, so nothing is resolved). With `no_replace`, an existing
  // `to_name` is ALREADY_EXISTS and left alone (renameat2 RENAME_NOREPLACE).
  absl::Status Rename(absl::string_view name, const Dir& to, absl::string_view to_name,
                      bool no_replace) const;

  // Removes the file or symlink `name` (unlinkat); OK when absent.
  absl::Status Unlink(absl::string_view name) const;

  // Removes `name` and, when it is a directory, everything below it, reached
  // through descriptors: a symlink is removed, never followed. OK when absent.
  absl::Status RemoveTree(absl::string_view name) const;

  // The owner of `name` (fchownat AT_SYMLINK_NOFOLLOW: a symlink's own).
  absl::Status SetOwner(absl::string_view name, std::optional<uid_t> uid,
                        std::optional<gid_t> gid) const;
  // The exact mode of the file or directory `name`; a symlink is
  // FAILED_PRECONDITION (set through a descriptor opened O_NOFOLLOW).
  absl::Status SetMode(absl::string_view name, mode_t mode) const;

  // Entry names (without "." and ".."), sorted.
  absl::StatusOr<std::vector<std::string>> List() const;

  // Free and total bytes of the filesystem holding this directory (fstatvfs).
  absl::StatusOr<FsSpace> Space() const;

  // fsync of the directory (makes renames and creations in it durable).
  absl::Status Sync() const;

  int fd() const { return fd_.get(); }
  // For messages only; never used to reach the directory.
  const std::string& path() const { return path_; }
  std::string PathOf(absl::string_view rel) const;

  // Tests: take the O_NOFOLLOW component walk even where openat2 exists.
  static void ForceComponentWalkForTesting(bool force);

 private:
  Dir(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  absl::Status RemoveTreeAt(int parent, const std::string& name, const std::string& shown,
                            int depth) const;

  UniqueFd fd_;
  std::string path_;
};

// Writes all of `data` to `fd` (an interrupted write is retried); the
// error names `shown`.
absl::Status WriteAllToFd(int fd, absl::string_view data, const std::string& shown);

// Checks that `name` is one path component. INVALID_ARGUMENT otherwise.
absl::Status CheckComponent(absl::string_view name);

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_DIR_H_
