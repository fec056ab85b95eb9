// libarchive behind a small interface: archives (tar, zip, 7z) and lone
// compressed streams (gzip, bzip2, xz, zstd, lz4), read as streams.
#ifndef MR_AGENT_ARCHIVE_ARCHIVE_READER_H_
#define MR_AGENT_ARCHIVE_ARCHIVE_READER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/common/byte_stream.h"

struct archive;

namespace mastodon_restore {

// One entry of an archive.
struct ArchiveEntry {
  std::string path;  // as stored (not normalised)
  int64_t size = 0;
  bool size_known = true;
  bool is_regular = false;
  bool is_dir = false;
  bool is_symlink = false;
  bool is_hardlink = false;
  bool is_special = false;  // device, fifo, socket
  std::string link_target;
  uint32_t mode = 0;
  int64_t mtime = 0;
  bool encrypted = false;
};

class ArchiveReader {
 public:
  // Reads `input` (not seekable) as tar or zip, possibly compressed, or, with
  // `allow_raw`, as a lone compressed stream (a single entry named after the
  // stream). `passphrase` opens encrypted zip entries ("" for none).
  // `input` must outlive the reader.
  static absl::StatusOr<std::unique_ptr<ArchiveReader>> OpenStream(ByteStream* input,
                                                                   const std::string& passphrase,
                                                                   bool allow_raw);
  // Reads the open regular file `fd` from its start (seekable: 7z works
  // too) through a descriptor of its own (a fresh open of the same file via
  // /proc/self/fd, so `fd`'s offset is left alone); nothing is resolved by
  // path. `name` is for messages.
  static absl::StatusOr<std::unique_ptr<ArchiveReader>> OpenDescriptor(
      int fd, const std::string& name, const std::string& passphrase, bool allow_raw);
  ~ArchiveReader();
  ArchiveReader(const ArchiveReader&) = delete;
  ArchiveReader& operator=(const ArchiveReader&) = delete;

  // Advances to the next entry; nullopt at the end. Errors (corrupt or
  // truncated data) are INVALID_ARGUMENT naming the archive.
  absl::StatusOr<std::optional<ArchiveEntry>> Next();

  // The current entry's data; valid until Next(). Reading a wrongly or not
  // decrypted entry fails with INVALID_ARGUMENT / FAILED_PRECONDITION; an
  // entry that produces more bytes than its header declared fails with
  // INVALID_ARGUMENT (a hostile size is never trusted to bound the data).
  ByteStream* data();

  // True when the input was a lone compressed stream (format "raw").
  bool is_raw() const;
  // Compression filters, outermost first (e.g. {"xz"}); empty for none.
  std::vector<std::string> filters() const;
  // libarchive's name of the format ("GNU tar format", "ZIP 2.0 (deflation)").
  std::string format_name() const;
  const std::string& name() const { return name_; }

 private:
  class EntryStream;
  ArchiveReader(struct archive* a, std::string name);
  absl::Status Error(const char* verb) const;

  struct archive* a_;
  std::string name_;
  std::unique_ptr<EntryStream> data_;
  std::string current_path_;
  // Descriptor OpenDescriptor reads (closed with the reader), or -1.
  int own_fd_ = -1;
  // Read buffer for OpenStream.
  std::vector<char> buffer_;
  ByteStream* input_ = nullptr;
  std::string input_error_;
  // The current entry is encrypted and a password was given: a data error
  // most likely means a wrong password (ZipCrypto checks only one byte of it).
  bool current_encrypted_ = false;
  bool has_passphrase_ = false;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_ARCHIVE_ARCHIVE_READER_H_
