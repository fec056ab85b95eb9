#include "agent/common/dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/random.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

std::atomic<bool> force_component_walk{false};

// Deeper trees are refused by RemoveTree (a bound on descriptors held).
constexpr int kMaxTreeDepth = 256;

absl::Status SymlinkRefused(absl::string_view verb, const std::string& shown) {
  return UnableTo(absl::StatusCode::kFailedPrecondition, verb, shown,
                  "a component is a symlink or not a directory (symlinks are not followed)");
}

// open of `rel` below `dirfd` (AT_FDCWD with an absolute `rel`: from "/")
// following no symlink and, with `beneath`, never leaving `dirfd`. -1 and
// errno on failure: ELOOP for a symlink met, EXDEV for a way out.
int OpenNoSymlinks(int dirfd, absl::string_view rel, int flags, bool beneath) {
  const std::string path(rel);
  if (!force_component_walk.load(std::memory_order_relaxed)) {
    struct open_how how = {};
    how.flags = static_cast<uint64_t>(flags | O_NOFOLLOW | O_CLOEXEC);
    how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | (beneath ? RESOLVE_BENEATH : 0);
    int fd = static_cast<int>(::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof(how)));
    if (fd >= 0 || errno != ENOSYS) return fd;
  }
  // One component at a time, each opened O_NOFOLLOW below the one before.
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(rel, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      errno = EXDEV;
      return -1;
    }
    parts.emplace_back(part);
  }
  int cur = -1;
  if (!path.empty() && path[0] == '/') {
    if (beneath) {
      errno = EXDEV;
      return -1;
    }
    cur = ::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  } else {
    cur = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
  }
  if (cur < 0) return -1;
  if (parts.empty()) {
    // "" or "/": the starting directory itself, reopened with `flags`.
    int fd = ::openat(cur, ".", flags | O_CLOEXEC);
    int err = errno;
    ::close(cur);
    errno = err;
    return fd;
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    const bool last = i + 1 == parts.size();
    int next = ::openat(cur, parts[i].c_str(),
                        last ? (flags | O_NOFOLLOW | O_CLOEXEC)
                             : (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    int err = errno;
    ::close(cur);
    if (next < 0) {
      // O_DIRECTORY|O_NOFOLLOW on a symlink is ENOTDIR on some kernels.
      errno = err;
      return -1;
    }
    cur = next;
  }
  return cur;
}

absl::Status OpenError(int err, absl::string_view verb, const std::string& shown) {
  if (err == ELOOP || err == ENOTDIR) return SymlinkRefused(verb, shown);
  if (err == EXDEV) {
    return UnableTo(absl::StatusCode::kInvalidArgument, verb, shown,
                    "the path leads outside the directory it is relative to");
  }
  return ErrnoError(err, verb, shown);
}

absl::StatusOr<std::string> RandomHex() {
  uint64_t r = 0;
  ssize_t got;
  do {
    got = ::getrandom(&r, sizeof(r), 0);
  } while (got < 0 && errno == EINTR);
  if (got != static_cast<ssize_t>(sizeof(r))) {
    return ErrnoError(got < 0 ? errno : EIO, "draw", "a random temp file name");
  }
  return absl::StrCat(absl::Hex(r, absl::kZeroPad16));
}

absl::Status CheckRelative(absl::string_view rel) {
  if (!rel.empty() && rel[0] == '/') {
    return UnableTo(absl::StatusCode::kInvalidArgument, "use", rel, "not a relative path");
  }
  for (absl::string_view part : absl::StrSplit(rel, '/', absl::SkipEmpty())) {
    if (part == "..") {
      return UnableTo(absl::StatusCode::kInvalidArgument, "use", rel, "it holds '..'");
    }
  }
  return absl::OkStatus();
}

}  // namespace

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = std::exchange(other.fd_, -1);
  }
  return *this;
}

UniqueFd::~UniqueFd() { Close(); }

int UniqueFd::Close() {
  if (fd_ < 0) return 0;
  int r = ::close(fd_);
  fd_ = -1;
  return r == 0 ? 0 : errno;
}

absl::Status WriteAllToFd(int fd, absl::string_view data, const std::string& shown) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "write", shown);
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status CheckComponent(absl::string_view name) {
  if (name.empty() || name == "." || name == ".." || name.find('/') != absl::string_view::npos ||
      name.find('\0') != absl::string_view::npos) {
    return UnableTo(absl::StatusCode::kInvalidArgument, "use", name, "not a single file name");
  }
  return absl::OkStatus();
}

void Dir::ForceComponentWalkForTesting(bool force) { force_component_walk = force; }

std::string Dir::PathOf(absl::string_view rel) const {
  if (rel.empty()) return path_;
  return path_ == "/" ? absl::StrCat("/", rel) : absl::StrCat(path_, "/", rel);
}

absl::StatusOr<Dir> Dir::OpenPath(const std::string& path) {
  if (path.empty() || path[0] != '/') {
    return UnableTo(absl::StatusCode::kInvalidArgument, "open directory", path,
                    "not an absolute path");
  }
  int fd = OpenNoSymlinks(AT_FDCWD, path, O_RDONLY | O_DIRECTORY, /*beneath=*/false);
  if (fd < 0) return OpenError(errno, "open directory", path);
  return Dir(UniqueFd(fd), path);
}

absl::StatusOr<Dir> Dir::OpenDir(absl::string_view rel) const {
  const std::string shown = PathOf(rel);
  if (absl::Status s = CheckRelative(rel); !s.ok()) return s;
  int fd = OpenNoSymlinks(fd_.get(), rel.empty() ? "." : rel, O_RDONLY | O_DIRECTORY, true);
  if (fd < 0) return OpenError(errno, "open directory", shown);
  return Dir(UniqueFd(fd), shown);
}

absl::StatusOr<Dir> Dir::MakeDir(absl::string_view name, mode_t mode, std::optional<uid_t> uid,
                                 std::optional<gid_t> gid, bool allow_existing) const {
  if (absl::Status s = CheckComponent(name); !s.ok()) return s;
  const std::string n(name);
  const std::string shown = PathOf(name);
  bool created = ::mkdirat(fd_.get(), n.c_str(), 0700) == 0;
  if (!created && errno != EEXIST) return ErrnoError(errno, "create directory", shown);
  if (!created && !allow_existing) {
    return UnableTo(absl::StatusCode::kAlreadyExists, "create directory", shown,
                    "it already exists");
  }
  // Whatever is at the name now is opened without following it: a symlink
  // swapped in since mkdirat is refused.
  int fd = ::openat(fd_.get(), n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ELOOP || err == ENOTDIR) {
      return UnableTo(absl::StatusCode::kFailedPrecondition, "create directory", shown,
                      "something other than a directory is in the way (a symlink is not "
                      "followed)");
    }
    return ErrnoError(err, "open directory", shown);
  }
  Dir dir(UniqueFd(fd), shown);
  if (created) {
    // Created 0700: nobody else could enter it before its owner and mode
    // are set, here, through its own descriptor.
    if ((uid.has_value() || gid.has_value()) &&
        ::fchown(fd, uid.value_or(static_cast<uid_t>(-1)), gid.value_or(static_cast<gid_t>(-1))) !=
            0) {
      return ErrnoError(errno, "set the owner of", shown);
    }
    if (::fchmod(fd, mode) != 0) return ErrnoError(errno, "set the mode of", shown);
  }
  return dir;
}

absl::StatusOr<Dir> Dir::MakeDirs(absl::string_view rel, mode_t mode, std::optional<uid_t> uid,
                                  std::optional<gid_t> gid) const {
  if (absl::Status s = CheckRelative(rel); !s.ok()) return s;
  absl::StatusOr<Dir> cur = OpenDir("");
  for (absl::string_view part : absl::StrSplit(rel, '/', absl::SkipEmpty())) {
    if (!cur.ok()) return cur.status();
    if (part == ".") continue;
    cur = cur->MakeDir(part, mode, uid, gid, /*allow_existing=*/true);
  }
  return cur;
}

absl::StatusOr<UniqueFd> Dir::OpenFile(absl::string_view rel) const {
  const std::string shown = PathOf(rel);
  if (absl::Status s = CheckRelative(rel); !s.ok()) return s;
  int fd = OpenNoSymlinks(fd_.get(), rel, O_RDONLY | O_NONBLOCK, true);
  if (fd < 0) return OpenError(errno, "open", shown);
  UniqueFd file(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError(errno, "stat", shown);
  if (!S_ISREG(st.st_mode)) {
    return UnableTo(absl::StatusCode::kFailedPrecondition, "open", shown, "not a regular file");
  }
  // Reads block as usual.
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return file;
}

absl::StatusOr<UniqueFd> Dir::CreateFile(absl::string_view name, mode_t mode) const {
  if (absl::Status s = CheckComponent(name); !s.ok()) return s;
  const std::string n(name);
  int fd = ::openat(fd_.get(), n.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    mode & 0700);
  if (fd < 0) return ErrnoError(errno, "create", PathOf(name));
  UniqueFd file(fd);
  // openat applied the umask; set the exact mode.
  if (::fchmod(fd, mode) != 0) return ErrnoError(errno, "set the mode of", PathOf(name));
  return file;
}

absl::StatusOr<std::string> Dir::ReadFile(absl::string_view rel, size_t max_bytes) const {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(rel));
  std::string out;
  char buf[8192];
  while (out.size() < max_bytes) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError(errno, "read", PathOf(rel));
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

absl::Status Dir::WriteFile(absl::string_view name, absl::string_view data, mode_t mode, uid_t uid,
                            gid_t gid) const {
  ASSIGN_OR_RETURN(TempFile temp, CreateTemp(name, mode));
  absl::Status written = WriteAllToFd(temp.fd.get(), data, PathOf(name));
  if (written.ok() && ::fsync(temp.fd.get()) != 0)
    written = ErrnoError(errno, "sync", PathOf(name));
  if (written.ok() && ::fchown(temp.fd.get(), uid, gid) != 0) {
    written = ErrnoError(errno, "change the owner of", PathOf(name));
  }
  if (written.ok()) written = Rename(temp.name, *this, name, /*no_replace=*/false);
  if (!written.ok()) Unlink(temp.name).IgnoreError();
  return written;
}

absl::StatusOr<TempFile> Dir::CreateTemp(absl::string_view prefix, mode_t mode) const {
  for (int attempt = 0; attempt < 8; ++attempt) {
    absl::StatusOr<std::string> hex = RandomHex();
    if (!hex.ok()) return hex.status();
    std::string name = absl::StrCat(".", prefix, ".", *hex, ".tmp");
    absl::StatusOr<UniqueFd> fd = CreateFile(name, mode);
    if (fd.ok()) return TempFile{*std::move(fd), std::move(name)};
    if (fd.status().code() != absl::StatusCode::kAlreadyExists) return fd.status();
  }
  return UnableTo(absl::StatusCode::kAlreadyExists, "create a temp file in", path_,
                  "eight random names were all taken");
}

absl::StatusOr<struct stat> Dir::Stat(absl::string_view name) const {
  if (absl::Status s = CheckComponent(name); !s.ok()) return s;
  struct stat st;
  if (::fstatat(fd_.get(), std::string(name).c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoError(errno, "stat", PathOf(name));
  }
  return st;
}

absl::StatusOr<struct stat> Dir::StatSelf() const {
  struct stat st;
  if (::fstat(fd_.get(), &st) != 0) return ErrnoError(errno, "stat", path_);
  return st;
}

absl::Status Dir::Rename(absl::string_view name, const Dir& to, absl::string_view to_name,
                         bool no_replace) const {
  if (absl::Status s = CheckComponent(name); !s.ok()) return s;
  if (absl::Status s = CheckComponent(to_name); !s.ok()) return s;
  const std::string from(name), dest(to_name);
  int r = ::syscall(SYS_renameat2, fd_.get(), from.c_str(), to.fd(), dest.c_str(),
                    no_replace ? RENAME_NOREPLACE : 0);
  if (r != 0 && errno == ENOSYS && !no_replace) {
    r = ::renameat(fd_.get(), from.c_str(), to.fd(), dest.c_str());
  }
  if (r != 0) {
    if (errno == EEXIST) {
      return UnableTo(absl::StatusCode::kAlreadyExists, "move into place", to.PathOf(to_name),
                      "something appeared at that name (not replaced)");
    }
    return ErrnoError(errno, "move into place", to.PathOf(to_name));
  }
  return absl::OkStatus();
}

absl::Status Dir::Unlink(absl::string_view name) const {
  if (absl::Status s = CheckComponent(name); !s.ok()) return s;
  if (::unlinkat(fd_.get(), std::string(name).c_str(), 0) != 0 && errno != ENOENT) {
    return ErrnoError(errno, "remove", PathOf(name));
  }
  return absl::OkStatus();
}

absl::Status Dir::RemoveTree(absl::string_view name) const {
  if (absl::Status s = CheckComponent(name); !s.ok()) return s;
  return RemoveTreeAt(fd_.get(), std::string(name), PathOf(name), 0);
}

absl::Status Dir::RemoveTreeAt(int parent, const std::string& name, const std::string& shown,
                               int depth) const {
  if (::unlinkat(parent, name.c_str(), 0) == 0 || errno == ENOENT) return absl::OkStatus();
  if (errno != EISDIR && errno != EPERM) return ErrnoError(errno, "remove", shown);
  if (depth > kMaxTreeDepth) {
    return UnableTo(absl::StatusCode::kFailedPrecondition, "remove", shown,
                    "directories nested too deep");
  }
  int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return OpenError(errno, "remove", shown);
  }
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    int err = errno;
    ::close(fd);
    return ErrnoError(err, "list", shown);
  }
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string child = e->d_name;
    if (child != "." && child != "..") names.push_back(child);
  }
  absl::Status status;
  for (const std::string& child : names) {
    absl::Status s = RemoveTreeAt(::dirfd(d), child, absl::StrCat(shown, "/", child), depth + 1);
    if (status.ok()) status = s;
  }
  ::closedir(d);
  if (!status.ok()) return status;
  if (::unlinkat(parent, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return ErrnoError(errno, "remove", shown);
  }
  return absl::OkStatus();
}

absl::Status Dir::SetOwner(absl::string_view name, std::optional<uid_t> uid,
                           std::optional<gid_t> gid) const {
  if (absl::Status s = CheckComponent(name); !s.ok()) return s;
  if (!uid.has_value() && !gid.has_value()) return absl::OkStatus();
  if (::fchownat(fd_.get(), std::string(name).c_str(), uid.value_or(static_cast<uid_t>(-1)),
                 gid.value_or(static_cast<gid_t>(-1)), AT_SYMLINK_NOFOLLOW) != 0) {
    return ErrnoError(errno, "set the owner of", PathOf(name));
  }
  return absl::OkStatus();
}

absl::Status Dir::SetMode(absl::string_view name, mode_t mode) const {
  if (absl::Status s = CheckComponent(name); !s.ok()) return s;
  // fchmodat has no working AT_SYMLINK_NOFOLLOW on older kernels: the entry
  // is opened O_NOFOLLOW (files and directories alike) and fchmod'ed.
  int fd = ::openat(fd_.get(), std::string(name).c_str(),
                    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return OpenError(errno, "set the mode of", PathOf(name));
  UniqueFd file(fd);
  if (::fchmod(fd, mode) != 0) return ErrnoError(errno, "set the mode of", PathOf(name));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ReadDirectoryNames(UniqueFd fd, const std::string& path) {
  DIR* d = ::fdopendir(fd.get());
  if (d == nullptr) return ErrnoError(errno, "list directory", path);
  static_cast<void>(fd.Release());  // closedir closes it
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::vector<std::string>> Dir::List() const {
  int fd = ::openat(fd_.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "list directory", path_);
  return ReadDirectoryNames(UniqueFd(fd), path_);
}

absl::StatusOr<FsSpace> Dir::Space() const {
  struct statvfs st;
  if (::fstatvfs(fd_.get(), &st) != 0) return ErrnoError(errno, "stat the filesystem of", path_);
  FsSpace space;
  space.available_bytes = static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
  space.total_bytes = static_cast<int64_t>(st.f_blocks) * static_cast<int64_t>(st.f_frsize);
  return space;
}

absl::Status Dir::Sync() const {
  if (::fsync(fd_.get()) != 0) return ErrnoError(errno, "sync", path_);
  return absl::OkStatus();
}

}  // namespace mastodon_restore
