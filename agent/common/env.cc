#include "agent/common/env.h"

#include <fcntl.h>
#include <pwd.h>
#include <sched.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/common/byte_stream.h"
#include "agent/common/dir.h"
#include "agent/common/errors.h"
#include "agent/common/failpoint.h"

namespace mastodon_restore {
namespace {

// A temp file name nobody can predict: ".<name>.<16 hex digits>.tmp".
}  // namespace

absl::StatusOr<std::string> UnpredictableTempName(const std::string& name) {
  uint64_t r = 0;
  ssize_t got;
  do {
    got = ::getrandom(&r, sizeof(r), 0);
  } while (got < 0 && errno == EINTR);
  if (got != static_cast<ssize_t>(sizeof(r))) {
    return ErrnoError(got < 0 ? errno : EIO, "draw a temp file name for", name);
  }
  return absl::StrCat(".", name, ".", absl::Hex(r, absl::kZeroPad16), ".tmp");
}

namespace {

// See Env::WriteFileAtomic. Everything happens below one descriptor of the
// directory (opened without following a symlink in its last component), so
// a name planted or swapped by someone who can write the directory is never
// followed: the temp file is created O_EXCL|O_NOFOLLOW under a random name
// and renamed within the directory.
// `fixed_temp`: the temp file's name (in the same directory) chosen by the
// caller, who recorded it; "" draws one.
absl::Status WriteFileAtomically(const std::string& path, const std::string& data, mode_t mode,
                                 const std::string& fixed_temp = "") {
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "."
                          : slash == 0               ? "/"
                                                     : path.substr(0, slash);
  const std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty() || name == "." || name == "..") {
    return UnableTo(absl::StatusCode::kInvalidArgument, "write", path, "not a file name");
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0) {
    if (errno == ELOOP || errno == ENOTDIR) {
      return UnableTo(absl::StatusCode::kFailedPrecondition, "write", path,
                      absl::StrCat("'", dir, "' is not a directory (a symlink is not followed)"));
    }
    return ErrnoError(errno, "open the directory of", path);
  }
  struct stat st;
  if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
    ::close(dfd);
    return UnableTo(absl::StatusCode::kFailedPrecondition, "write", path,
                    "it is a symlink (refusing to replace what it points to)");
  }
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 8 && fd < 0; ++attempt) {
    if (!fixed_temp.empty()) {
      tmp = fixed_temp;
      fd = ::openat(dfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
      break;
    }
    absl::StatusOr<std::string> drawn = UnpredictableTempName(name);
    if (!drawn.ok()) {
      ::close(dfd);
      return drawn.status();
    }
    tmp = *std::move(drawn);
    fd = ::openat(dfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    int err = errno;
    ::close(dfd);
    return ErrnoError(err, "create a temp file for", path);
  }
  const std::string shown_tmp = absl::StrCat(dir, "/", tmp);
  auto fail = [&](int err, absl::string_view verb, const std::string& object) {
    if (fd >= 0) ::close(fd);
    ::unlinkat(dfd, tmp.c_str(), 0);
    ::close(dfd);
    return ErrnoError(err, verb, object);
  };
  if (absl::Status written = WriteAllToFd(fd, data, shown_tmp); !written.ok()) {
    fail(0, "write", shown_tmp).IgnoreError();  // removes the temp file
    return written;
  }
  // openat applied the umask; set the exact mode.
  if (::fchmod(fd, mode) != 0) return fail(errno, "set the mode of", shown_tmp);
  if (::fsync(fd) != 0) return fail(errno, "sync", shown_tmp);
  if (::close(fd) != 0) {
    fd = -1;
    return fail(errno, "close", shown_tmp);
  }
  fd = -1;
  if (!fixed_temp.empty()) {
    if (absl::Status fp = MR_FAILPOINT("env.before_rename"); !fp.ok()) {
      ::unlinkat(dfd, tmp.c_str(), 0);
      ::close(dfd);
      return fp;
    }
  }
  if (::renameat(dfd, tmp.c_str(), dfd, name.c_str()) != 0) {
    return fail(errno, "rename into place", path);
  }
  // Make the rename durable.
  int err = ::fsync(dfd) == 0 ? 0 : errno;
  ::close(dfd);
  if (err != 0) return ErrnoError(err, "sync the directory of", path);
  return absl::OkStatus();
}

class PosixEnvImpl : public Env {
 public:
  absl::Time Now() override { return absl::Now(); }

  std::string Hostname() override {
    char buf[256] = {0};
    if (::gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
    return buf;
  }

  int Cpus() override {
    cpu_set_t set;
    if (::sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
    long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? static_cast<int>(n) : 1;
  }

  MemoryInfo Memory() override {
    MemoryInfo info;
    std::ifstream in("/proc/meminfo");
    std::string line;
    while (std::getline(in, line)) {
      std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (parts.size() < 2) continue;
      int64_t kb = 0;
      if (!absl::SimpleAtoi(parts[1], &kb)) continue;
      if (parts[0] == "MemTotal:") info.total_bytes = kb * 1024;
      if (parts[0] == "MemAvailable:") info.available_bytes = kb * 1024;
    }
    return info;
  }

  absl::StatusOr<int64_t> FreeBytes(const std::string& path) override {
    struct statvfs st;
    if (::statvfs(path.c_str(), &st) != 0) return ErrnoError(errno, "stat filesystem of", path);
    return static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
  }

  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override {
    return ListDirectory(dir);
  }

  bool IsExecutable(const std::string& path) override {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
  }

  bool Exists(const std::string& path) override {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0;
  }

  absl::Status CreateDirs(const std::string& dir, mode_t mode, bool enforce_mode) override {
    if (dir.empty()) return absl::InvalidArgumentError("unable to create directory '': empty path");
    std::string partial;
    std::vector<absl::string_view> parts = absl::StrSplit(dir, '/', absl::SkipEmpty());
    if (dir[0] == '/') partial = "";
    for (size_t i = 0; i < parts.size(); ++i) {
      partial =
          (dir[0] == '/' || i > 0) ? absl::StrCat(partial, "/", parts[i]) : std::string(parts[i]);
      bool last = i + 1 == parts.size();
      struct stat st;
      if (::stat(partial.c_str(), &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
          return UnableTo(absl::StatusCode::kFailedPrecondition, "create directory", dir,
                          absl::StrCat("'", partial, "' exists and is not a directory"));
        }
        if (last && enforce_mode && (st.st_mode & 07777) != mode &&
            ::chmod(partial.c_str(), mode) != 0) {
          return ErrnoError(errno, "set mode of", partial);
        }
        continue;
      }
      if (::mkdir(partial.c_str(), last ? mode : 0755) != 0 && errno != EEXIST) {
        return ErrnoError(errno, "create directory", partial);
      }
      // mkdir applies the umask; set the exact mode.
      if (last && ::chmod(partial.c_str(), mode) != 0) {
        return ErrnoError(errno, "set mode of", partial);
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<FileOwner> OwnerOf(const std::string& path) override {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, "stat", path);
    return FileOwner{st.st_uid, st.st_gid, static_cast<mode_t>(st.st_mode & 07777)};
  }
  absl::Status RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoError(errno, "remove", path);
    return absl::OkStatus();
  }
  absl::Status SetOwner(const std::string& path, uid_t uid, gid_t gid) override {
    if (::lchown(path.c_str(), uid, gid) != 0)
      return ErrnoError(errno, "change the owner of", path);
    return absl::OkStatus();
  }
  absl::StatusOr<uid_t> UserId(const std::string& name) override {
    struct passwd pw;
    struct passwd* found = nullptr;
    std::vector<char> buf(16384);
    if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
      return absl::NotFoundError(absl::StrCat("unable to find user '", name, "'"));
    }
    return pw.pw_uid;
  }
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoError(errno, "open", path);
    std::string data;
    char buf[65536];
    while (true) {
      ssize_t n = ::read(fd, buf, sizeof(buf));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int err = errno;
        ::close(fd);
        return ErrnoError(err, "read", path);
      }
      if (n == 0) break;
      data.append(buf, n);
    }
    ::close(fd);
    return data;
  }

  absl::Status WriteFileAtomic(const std::string& path, const std::string& data,
                               mode_t mode) override {
    return WriteFileAtomically(path, data, mode);
  }
  absl::Status WriteFileAtomicVia(const std::string& path, const std::string& temp_name,
                                  const std::string& data, mode_t mode) override {
    if (temp_name.empty() || temp_name.find('/') != std::string::npos) {
      return UnableTo(absl::StatusCode::kInvalidArgument, "write", path, "bad temp file name");
    }
    return WriteFileAtomically(path, data, mode, temp_name);
  }
};

}  // namespace

absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "list directory", dir);
  return ReadDirectoryNames(UniqueFd(fd), dir);
}

absl::StatusOr<std::vector<std::string>> ListResolvedDirectory(const std::string& dir) {
  int fd = OpenWithoutSymlinks(dir, O_RDONLY | O_DIRECTORY);
  if (fd < 0) {
    if (errno == ELOOP) {
      return UnableTo(absl::StatusCode::kInvalidArgument, "list directory", dir,
                      "a symlink appeared in its path after it was checked");
    }
    return ErrnoError(errno, "list directory", dir);
  }
  return ReadDirectoryNames(UniqueFd(fd), dir);
}

std::unique_ptr<Env> NewPosixEnv() { return std::make_unique<PosixEnvImpl>(); }

}  // namespace mastodon_restore
