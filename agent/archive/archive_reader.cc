#include "agent/archive/archive_reader.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/common/errors.h"

namespace mastodon_restore {

// The data of the current entry.
class ArchiveReader::EntryStream : public ByteStream {
 public:
  EntryStream(ArchiveReader* reader, std::string name, int64_t declared)
      : reader_(reader), name_(std::move(name)), declared_(declared) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    la_ssize_t r = archive_read_data(reader_->a_, buf, n);
    if (r >= 0) {
      bytes_ += r;
      if (declared_ >= 0 && bytes_ > declared_) {
        return UnableTo(absl::StatusCode::kInvalidArgument, "read", name_,
                        absl::StrCat("the entry holds more than the ", declared_,
                                     " bytes its header declares"));
      }
      return static_cast<size_t>(r);
    }
    std::string why =
        archive_error_string(reader_->a_) ? archive_error_string(reader_->a_) : "read error";
    if (!reader_->input_error_.empty()) why = reader_->input_error_;
    absl::StatusCode code = absl::StatusCode::kInvalidArgument;
    if (absl::StrContains(why, "Passphrase required") ||
        absl::StrContains(why, "passphrase is required")) {
      code = absl::StatusCode::kFailedPrecondition;
      why += " (give the backup's password)";
    } else if (absl::StrContains(why, "Incorrect passphrase")) {
      why = "wrong password (Incorrect passphrase)";
    } else if (reader_->current_encrypted_ && reader_->has_passphrase_) {
      why = absl::StrCat("wrong password or corrupt encrypted data (", why, ")");
    }
    return UnableTo(code, "read", name_, why);
  }
  const std::string& name() const override { return name_; }
  int64_t raw_bytes_read() const override { return archive_filter_bytes(reader_->a_, -1); }

 private:
  ArchiveReader* reader_;
  std::string name_;
  const int64_t declared_;  // -1: unknown
  int64_t bytes_ = 0;
};

namespace {

constexpr size_t kBufferSize = 1 << 20;

void SupportFormats(struct archive* a, const std::string& passphrase, bool allow_raw) {
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  archive_read_support_format_zip(a);
  archive_read_support_format_7zip(a);
  if (allow_raw) archive_read_support_format_raw(a);
  if (!passphrase.empty()) archive_read_add_passphrase(a, passphrase.c_str());
}

}  // namespace

ArchiveReader::ArchiveReader(struct archive* a, std::string name) : a_(a), name_(std::move(name)) {}

ArchiveReader::~ArchiveReader() {
  if (a_ != nullptr) archive_read_free(a_);
  if (own_fd_ >= 0) ::close(own_fd_);
}

absl::Status ArchiveReader::Error(const char* verb) const {
  std::string why = archive_error_string(a_) ? archive_error_string(a_) : "unknown error";
  if (!input_error_.empty()) why = input_error_;
  return UnableTo(absl::StatusCode::kInvalidArgument, verb, name_, why);
}

absl::StatusOr<std::unique_ptr<ArchiveReader>> ArchiveReader::OpenStream(
    ByteStream* input, const std::string& passphrase, bool allow_raw) {
  struct archive* a = archive_read_new();
  SupportFormats(a, passphrase, allow_raw);
  std::unique_ptr<ArchiveReader> reader(new ArchiveReader(a, input->name()));
  reader->input_ = input;
  reader->has_passphrase_ = !passphrase.empty();
  reader->buffer_.resize(kBufferSize);
  auto read_cb = [](struct archive*, void* client, const void** buf) -> la_ssize_t {
    auto* self = static_cast<ArchiveReader*>(client);
    auto n = self->input_->Read(self->buffer_.data(), self->buffer_.size());
    if (!n.ok()) {
      self->input_error_ = std::string(n.status().message());
      return -1;
    }
    *buf = self->buffer_.data();
    return static_cast<la_ssize_t>(*n);
  };
  if (archive_read_open(a, reader.get(), nullptr, read_cb, nullptr) != ARCHIVE_OK) {
    return reader->Error("open archive");
  }
  return reader;
}

absl::StatusOr<std::unique_ptr<ArchiveReader>> ArchiveReader::OpenDescriptor(
    int fd, const std::string& name, const std::string& passphrase, bool allow_raw) {
  // A new open file description of the same file (the magic link names the
  // open file itself, not a path), with an offset of its own.
  const std::string self = absl::StrCat("/proc/self/fd/", fd);
  int own = ::open(self.c_str(), O_RDONLY | O_CLOEXEC);
  if (own < 0) return ErrnoError(errno, "reopen", name);
  struct archive* a = archive_read_new();
  SupportFormats(a, passphrase, allow_raw);
  std::unique_ptr<ArchiveReader> reader(new ArchiveReader(a, name));
  reader->own_fd_ = own;
  reader->has_passphrase_ = !passphrase.empty();
  if (archive_read_open_fd(a, own, kBufferSize) != ARCHIVE_OK) {
    return reader->Error("open archive");
  }
  return reader;
}

absl::StatusOr<std::optional<ArchiveEntry>> ArchiveReader::Next() {
  data_.reset();
  struct archive_entry* e = nullptr;
  int r = archive_read_next_header(a_, &e);
  if (r == ARCHIVE_EOF) return std::optional<ArchiveEntry>();
  if (r < ARCHIVE_WARN) {
    std::string why = archive_error_string(a_) ? archive_error_string(a_) : "unknown error";
    if (!input_error_.empty()) why = input_error_;
    if (absl::StrContains(why, "header is encrypted")) {
      return UnableTo(absl::StatusCode::kFailedPrecondition, "read", name_,
                      absl::StrCat(why, " (encrypted 7z: give the password)"));
    }
    return UnableTo(
        absl::StatusCode::kInvalidArgument, "read", name_,
        current_path_.empty() ? why : absl::StrCat(why, " (after '", current_path_, "')"));
  }
  ArchiveEntry entry;
  const char* path = archive_entry_pathname(e);
  entry.path = path != nullptr ? path : "";
  if (is_raw() && (entry.path.empty() || entry.path == "data")) entry.path = "";
  entry.size_known = archive_entry_size_is_set(e) != 0;
  entry.size = archive_entry_size(e);
  mode_t type = archive_entry_filetype(e);
  entry.is_regular = type == AE_IFREG;
  entry.is_dir = type == AE_IFDIR;
  entry.is_symlink = type == AE_IFLNK;
  entry.is_special = type == AE_IFCHR || type == AE_IFBLK || type == AE_IFIFO || type == AE_IFSOCK;
  if (archive_entry_hardlink(e) != nullptr) {
    entry.is_hardlink = true;
    entry.link_target = archive_entry_hardlink(e);
  } else if (entry.is_symlink && archive_entry_symlink(e) != nullptr) {
    entry.link_target = archive_entry_symlink(e);
  }
  entry.mode = archive_entry_perm(e);
  entry.mtime = archive_entry_mtime(e);
  entry.encrypted = archive_entry_is_encrypted(e) != 0;
  current_encrypted_ = entry.encrypted;
  current_path_ = entry.path;
  // Raw streams have no header size; a directory's or link's is 0.
  const int64_t declared =
      entry.size_known && entry.is_regular && !is_raw() && !entry.is_hardlink ? entry.size : -1;
  data_ = std::make_unique<EntryStream>(
      this, entry.path.empty() ? name_ : absl::StrCat(name_, "!/", entry.path), declared);
  return std::optional<ArchiveEntry>(entry);
}

ByteStream* ArchiveReader::data() { return data_.get(); }

bool ArchiveReader::is_raw() const { return archive_format(a_) == ARCHIVE_FORMAT_RAW; }

std::vector<std::string> ArchiveReader::filters() const {
  std::vector<std::string> out;
  int n = archive_filter_count(a_);
  // Filter 0 is the innermost (closest to the format); the last is "none".
  for (int i = n - 1; i >= 0; --i) {
    if (archive_filter_code(a_, i) == ARCHIVE_FILTER_NONE) continue;
    const char* name = archive_filter_name(a_, i);
    out.push_back(name != nullptr ? name : "unknown");
  }
  return out;
}

std::string ArchiveReader::format_name() const {
  const char* n = archive_format_name(a_);
  return n != nullptr ? n : "";
}

}  // namespace mastodon_restore
