#include "agent/common/byte_stream.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/common/errors.h"

namespace mastodon_restore {

absl::Status ReadUpTo(ByteStream* stream, size_t n, std::string* out) {
  size_t start = out->size();
  out->resize(start + n);
  size_t got = 0;
  while (got < n) {
    auto r = stream->Read(&(*out)[start + got], n - got);
    if (!r.ok()) {
      out->resize(start + got);
      return r.status();
    }
    if (*r == 0) break;
    got += *r;
  }
  out->resize(start + got);
  return absl::OkStatus();
}

absl::Status ReadExactly(ByteStream* stream, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    auto r = stream->Read(buf + got, n - got);
    if (!r.ok()) return r.status();
    if (*r == 0) {
      return UnableTo(absl::StatusCode::kInvalidArgument, "read", stream->name(),
                      absl::StrCat("truncated: ended ", n - got, " bytes early"));
    }
    got += *r;
  }
  return absl::OkStatus();
}

int OpenWithoutSymlinks(const std::string& path, int flags) {
  struct open_how how = {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, path.c_str(), &how, sizeof(how)));
  if (fd < 0 && errno == ENOSYS) fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NOFOLLOW);
  return fd;
}

absl::StatusOr<std::unique_ptr<FileStream>> FileStream::OpenResolved(const std::string& path) {
  int fd = OpenWithoutSymlinks(path, O_RDONLY);
  if (fd < 0) {
    if (errno == ELOOP) {
      return UnableTo(absl::StatusCode::kInvalidArgument, "open", path,
                      "a symlink appeared in its path after it was checked");
    }
    return ErrnoError(errno, "open", path);
  }
  return FromDescriptor(fd, path);
}

absl::StatusOr<std::unique_ptr<FileStream>> FileStream::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open", path);
  return FromDescriptor(fd, path);
}

absl::StatusOr<std::unique_ptr<FileStream>> FileStream::FromDescriptor(int fd,
                                                                       const std::string& path) {
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoError(err, "stat", path);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return UnableTo(absl::StatusCode::kInvalidArgument, "read", path, "not a regular file");
  }
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return std::make_unique<FileStream>(fd, path);
}

FileStream::FileStream(int fd, std::string name) : fd_(fd), name_(std::move(name)) {}

FileStream::~FileStream() {
  if (fd_ >= 0) ::close(fd_);
}

absl::StatusOr<size_t> FileStream::Read(char* buf, size_t n) {
  while (true) {
    ssize_t r = ::read(fd_, buf, n);
    if (r >= 0) {
      offset_ += r;
      return static_cast<size_t>(r);
    }
    if (errno != EINTR) return ErrnoError(errno, "read", name_);
  }
}

absl::StatusOr<int64_t> FileStream::Size() const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return ErrnoError(errno, "stat", name_);
  return static_cast<int64_t>(st.st_size);
}

absl::StatusOr<std::string> FileStream::ReadAt(int64_t offset, size_t n) const {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd_, &out[got], n - got, offset + static_cast<int64_t>(got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoError(errno, "read", name_);
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

absl::StatusOr<size_t> StringStream::Read(char* buf, size_t n) {
  size_t k = std::min(n, data_.size() - pos_);
  std::memcpy(buf, data_.data() + pos_, k);
  pos_ += k;
  return k;
}

absl::StatusOr<size_t> ReplayStream::Read(char* buf, size_t n) {
  if (pos_ < head_.size()) {
    size_t k = std::min(n, head_.size() - pos_);
    std::memcpy(buf, head_.data() + pos_, k);
    pos_ += k;
    if (pos_ == head_.size()) {
      head_.clear();
      head_.shrink_to_fit();
      pos_ = 1;  // head_ is empty now; keep pos_ > size to stay past it
    }
    return k;
  }
  return rest_->Read(buf, n);
}

absl::StatusOr<size_t> CountingStream::Read(char* buf, size_t n) {
  auto r = inner_->Read(buf, n);
  if (r.ok()) count_ += static_cast<int64_t>(*r);
  return r;
}

PrefetchStream::PrefetchStream(ByteStream* inner, size_t block, size_t depth)
    : inner_(inner), block_(std::max<size_t>(block, 1)), depth_(std::max<size_t>(depth, 1)) {
  raw_bytes_read_ = inner_->raw_bytes_read();
  thread_ = std::thread([this] { Fill(); });
}

PrefetchStream::~PrefetchStream() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void PrefetchStream::Fill() {
  // Whole blocks (a pipe gives at most 64 KiB a read), read into one buffer
  // and copied once into a block of the size read.
  std::vector<char> buf(block_);
  while (true) {
    size_t filled = 0;
    absl::Status error;
    while (filled < buf.size()) {
      absl::StatusOr<size_t> n = inner_->Read(buf.data() + filled, buf.size() - filled);
      if (!n.ok()) {
        error = n.status();
        break;
      }
      if (*n == 0) break;
      filled += *n;
    }
    Block b;
    b.data.assign(buf.data(), filled);
    b.raw_bytes_read = inner_->raw_bytes_read();
    const bool last = filled < buf.size();  // the end, or an error
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return stopping_ || blocks_.size() < depth_; });
    if (stopping_) return;
    if (filled > 0) blocks_.push_back(std::move(b));
    if (last) {
      error_ = error;
      done_ = true;
    }
    cv_.notify_all();
    if (last) return;
  }
}

absl::StatusOr<size_t> PrefetchStream::Read(char* buf, size_t n) {
  if (n == 0) return 0;
  if (current_pos_ >= current_.data.size()) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !blocks_.empty() || done_; });
    if (blocks_.empty()) {
      if (!error_.ok()) return error_;
      return 0;
    }
    current_ = std::move(blocks_.front());
    blocks_.pop_front();
    current_pos_ = 0;
    raw_bytes_read_ = current_.raw_bytes_read;
    cv_.notify_all();
  }
  size_t take = std::min(n, current_.data.size() - current_pos_);
  std::memcpy(buf, current_.data.data() + current_pos_, take);
  current_pos_ += take;
  return take;
}

}  // namespace mastodon_restore
