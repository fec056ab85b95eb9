// Sequential byte streams: files, decompressed/decrypted data, archive
// entries. Everything in the agent streams; nothing is read whole.
#ifndef MR_AGENT_COMMON_BYTE_STREAM_H_
#define MR_AGENT_COMMON_BYTE_STREAM_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mastodon_restore {

class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Reads up to `n` bytes into `buf`. Returns 0 at the end of the stream.
  // Errors name the stream ("unable to read '<name>': <cause>").
  virtual absl::StatusOr<size_t> Read(char* buf, size_t n) = 0;
  // Name for messages (a path, or "archive.tar!/member").
  virtual const std::string& name() const = 0;
  // Bytes consumed from the underlying storage so far (compressed bytes for
  // decompressing streams), for progress; -1 when unknown.
  virtual int64_t raw_bytes_read() const { return -1; }
};

// Reads into `out` until it holds `n` bytes or the stream ends.
absl::Status ReadUpTo(ByteStream* stream, size_t n, std::string* out);

// Reads exactly `n` bytes; INVALID_ARGUMENT ("truncated") when the stream ends
// first.
absl::Status ReadExactly(ByteStream* stream, char* buf, size_t n);

// open(2) of a resolved path with no symlink in any component (openat2
// RESOLVE_NO_SYMLINKS; O_NOFOLLOW on kernels without openat2). -1 and errno
// on failure (ELOOP for a symlink met).
int OpenWithoutSymlinks(const std::string& path, int flags);

// A stream over a file descriptor it owns.
class FileStream : public ByteStream {
 public:
  // Opens the regular file `path` read-only.
  static absl::StatusOr<std::unique_ptr<FileStream>> Open(const std::string& path);
  // Opens `path`, a path the caller resolved and checked, refusing any
  // symlink in any of its components at the moment of opening (openat2
  // RESOLVE_NO_SYMLINKS): a component swapped for a symlink between the
  // check and the open is INVALID_ARGUMENT, never followed. The file is then
  // used through this descriptor only.
  static absl::StatusOr<std::unique_ptr<FileStream>> OpenResolved(const std::string& path);
  // Takes ownership of `fd`.
  FileStream(int fd, std::string name);
  // A stream over the open regular file `fd` (closed on error).
  static absl::StatusOr<std::unique_ptr<FileStream>> FromDescriptor(int fd,
                                                                    const std::string& path);
  ~FileStream() override;
  absl::StatusOr<size_t> Read(char* buf, size_t n) override;
  const std::string& name() const override { return name_; }
  int64_t raw_bytes_read() const override { return offset_; }
  int fd() const { return fd_; }
  // Size of the file (fstat).
  absl::StatusOr<int64_t> Size() const;
  // Reads `n` bytes at `offset` without moving the stream (pread).
  absl::StatusOr<std::string> ReadAt(int64_t offset, size_t n) const;

 private:
  int fd_;
  std::string name_;
  int64_t offset_ = 0;
};

// A stream over bytes in memory (tests, fuzzers, small files).
class StringStream : public ByteStream {
 public:
  StringStream(std::string data, std::string name = "<memory>")
      : data_(std::move(data)), name_(std::move(name)) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override;
  const std::string& name() const override { return name_; }
  int64_t raw_bytes_read() const override { return static_cast<int64_t>(pos_); }

 private:
  std::string data_;
  std::string name_;
  size_t pos_ = 0;
};

// Replays `head` (bytes already read for sniffing) before the rest of `rest`.
class ReplayStream : public ByteStream {
 public:
  ReplayStream(std::string head, ByteStream* rest) : head_(std::move(head)), rest_(rest) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override;
  const std::string& name() const override { return rest_->name(); }
  int64_t raw_bytes_read() const override { return rest_->raw_bytes_read(); }

 private:
  std::string head_;
  size_t pos_ = 0;
  ByteStream* rest_;
};

// Counts bytes passing through another stream.
class CountingStream : public ByteStream {
 public:
  explicit CountingStream(ByteStream* inner) : inner_(inner) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override;
  const std::string& name() const override { return inner_->name(); }
  int64_t raw_bytes_read() const override { return inner_->raw_bytes_read(); }
  int64_t count() const { return count_; }

 private:
  ByteStream* inner_;
  int64_t count_ = 0;
};

// Reads `inner` ahead on a thread of its own (where decompression and
// decryption then run) into at most `depth` blocks of `block` bytes, so that
// the consumer's work overlaps the producer's. Bytes, the end and an error
// arrive in the order `inner` gave them. While this exists `inner` is used
// by that thread only; destroying it stops the thread (after the inner read
// in progress returns) and may leave `inner` read further than consumed.
class PrefetchStream : public ByteStream {
 public:
  explicit PrefetchStream(ByteStream* inner, size_t block = 1 << 20, size_t depth = 4);
  ~PrefetchStream() override;
  PrefetchStream(const PrefetchStream&) = delete;
  PrefetchStream& operator=(const PrefetchStream&) = delete;
  absl::StatusOr<size_t> Read(char* buf, size_t n) override;
  const std::string& name() const override { return inner_->name(); }
  // What the inner stream had read when the block being consumed was read.
  int64_t raw_bytes_read() const override { return raw_bytes_read_; }

 private:
  struct Block {
    std::string data;
    int64_t raw_bytes_read = -1;
  };
  void Fill();

  ByteStream* inner_;
  const size_t block_;
  const size_t depth_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Block> blocks_;
  bool done_ = false;      // the producer reached the end or an error
  bool stopping_ = false;  // the consumer is going away
  absl::Status error_;
  Block current_;
  size_t current_pos_ = 0;
  int64_t raw_bytes_read_ = -1;
  std::thread thread_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_BYTE_STREAM_H_
