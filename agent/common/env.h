// The host as the agent sees it: filesystem facts, memory, clock. Code takes
// an Env* so that tests can substitute a fake (leveldb's Env pattern).
#ifndef MR_AGENT_COMMON_ENV_H_
#define MR_AGENT_COMMON_ENV_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace mastodon_restore {

struct FileOwner {
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t mode = 0;  // permission bits
};

struct MemoryInfo {
  int64_t total_bytes = 0;
  int64_t available_bytes = 0;
};

class Env {
 public:
  virtual ~Env() = default;

  virtual absl::Time Now() = 0;
  virtual std::string Hostname() = 0;
  // Cores this process may run on.
  virtual int Cpus() = 0;
  virtual MemoryInfo Memory() = 0;
  // Bytes available to unprivileged writers on the filesystem holding `path`.
  virtual absl::StatusOr<int64_t> FreeBytes(const std::string& path) = 0;
  // Names of the entries of `dir` (without "." and ".."), sorted.
  virtual absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) = 0;
  virtual bool IsExecutable(const std::string& path) = 0;
  virtual bool Exists(const std::string& path) = 0;
  // Creates `dir` and missing parents. A created `dir` gets `mode` exactly
  // (umask ignored); an existing one keeps its mode unless `enforce_mode`.
  virtual absl::Status CreateDirs(const std::string& dir, mode_t mode, bool enforce_mode) = 0;
  virtual absl::StatusOr<std::string> ReadFile(const std::string& path) = 0;
  // Owner of `path` (symlinks followed); NOT_FOUND when it does not exist.
  virtual absl::StatusOr<FileOwner> OwnerOf(const std::string& path) = 0;
  // Removes the file `path`; OK when it does not exist.
  virtual absl::Status RemoveFile(const std::string& path) = 0;
  // Changes the owner of `path` (symlinks not followed).
  virtual absl::Status SetOwner(const std::string& path, uid_t uid, gid_t gid) = 0;
  // The uid of user `name` in the host's user database, or NOT_FOUND.
  virtual absl::StatusOr<uid_t> UserId(const std::string& name) = 0;
  // Writes `data` to `path` atomically with `mode` (exactly, umask ignored):
  // a temp file with an unpredictable name is created exclusively in the
  // directory of `path` (O_EXCL|O_NOFOLLOW, nothing planted there is
  // followed), synced, renamed over `path` and the directory synced; on any
  // failure the temp file is removed and `path` is as it was. Safe in a
  // directory that others can write. FAILED_PRECONDITION, nothing written,
  // when `path` is a symlink or the last component of its directory is one.
  virtual absl::Status WriteFileAtomic(const std::string& path, const std::string& data,
                                       mode_t mode) = 0;
  // WriteFileAtomic through the temp file `temp_name` in the same directory
  // (created O_EXCL|O_NOFOLLOW: a planted name fails the write), which the
  // caller has drawn with UnpredictableTempName and recorded, so that a crash
  // before the rename leaves only a file its record names. (Fakes may ignore
  // the name.)
  virtual absl::Status WriteFileAtomicVia(const std::string& path, const std::string& temp_name,
                                          const std::string& data, mode_t mode) {
    (void)temp_name;
    return WriteFileAtomic(path, data, mode);
  }
};

// ".<name>.<16 random hex digits>.tmp".
absl::StatusOr<std::string> UnpredictableTempName(const std::string& name);

// Names of the entries of `dir` (without "." and ".."), sorted.
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir);

// ListDirectory of a path the caller resolved and checked: a symlink that
// appeared in any of its components since is INVALID_ARGUMENT, not followed.
absl::StatusOr<std::vector<std::string>> ListResolvedDirectory(const std::string& dir);

// The real host. Thread-safe.
std::unique_ptr<Env> NewPosixEnv();

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_ENV_H_
