#include "agent/dump/archive_script.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/archive/archive_reader.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"
#include "agent/dump/decompress.h"

namespace mastodon_restore {

// Where the TOC and the data of an archive come from.
class ArchiveScript::Source {
 public:
  virtual ~Source() = default;
  // Reads the header and the TOC (called once, first).
  virtual absl::Status ReadToc(ArchiveHeader* header, std::vector<TocItem>* toc) = 0;
  // The decompressed data of the TABLE DATA-like `item`; valid until the
  // next call. Entries are asked for in TOC order.
  virtual absl::StatusOr<ByteStream*> OpenData(const TocItem& item) = 0;
  // The next large object of the BLOBS `item` (its OID and data, valid
  // until the next call); false after the last.
  virtual absl::StatusOr<bool> NextBlob(const TocItem& item, uint32_t* oid, ByteStream** data) = 0;
  // Whether the data of `item` can be read apart from the order above, by
  // OpenApart (thread-safe, independent of OpenData's position); its size
  // in the archive (compressed), roughly. Sources read front to back only
  // (a pipe, a tar stream) keep these: OpenApart is then a caller's error.
  virtual bool CanOpenApart(const TocItem&) const { return false; }
  virtual absl::StatusOr<std::unique_ptr<ByteStream>> OpenApart(const TocItem& item) const {
    return absl::FailedPreconditionError(
        absl::StrCat("entry ", item.dump_id, " is read in archive order only (no data offset)"));
  }
  virtual int64_t SizeInArchive(const TocItem&) const { return 0; }
};

namespace {

constexpr int kSectionPreData = 2;
constexpr size_t kLoBufSize = 16384;  // LOBBUFSIZE: bytes per lowrite()

absl::Status Malformed(const std::string& name, const std::string& why) {
  return UnableTo(absl::StatusCode::kInvalidArgument, "read archive", name, why);
}

// Keywords that fmtId quotes (reserved, type/function-name and column-name
// keywords of PostgreSQL 9.6-18).
const std::set<std::string>& QuotedKeywords() {
  static const auto* words = new std::set<std::string>{"all",
                                                       "analyse",
                                                       "analyze",
                                                       "and",
                                                       "any",
                                                       "array",
                                                       "as",
                                                       "asc",
                                                       "asymmetric",
                                                       "authorization",
                                                       "between",
                                                       "bigint",
                                                       "binary",
                                                       "bit",
                                                       "boolean",
                                                       "both",
                                                       "case",
                                                       "cast",
                                                       "char",
                                                       "character",
                                                       "check",
                                                       "coalesce",
                                                       "collate",
                                                       "collation",
                                                       "column",
                                                       "concurrently",
                                                       "constraint",
                                                       "create",
                                                       "cross",
                                                       "current_catalog",
                                                       "current_date",
                                                       "current_role",
                                                       "current_schema",
                                                       "current_time",
                                                       "current_timestamp",
                                                       "current_user",
                                                       "dec",
                                                       "decimal",
                                                       "default",
                                                       "deferrable",
                                                       "desc",
                                                       "distinct",
                                                       "do",
                                                       "else",
                                                       "end",
                                                       "except",
                                                       "exists",
                                                       "extract",
                                                       "false",
                                                       "fetch",
                                                       "float",
                                                       "for",
                                                       "foreign",
                                                       "freeze",
                                                       "from",
                                                       "full",
                                                       "grant",
                                                       "greatest",
                                                       "group",
                                                       "grouping",
                                                       "having",
                                                       "ilike",
                                                       "in",
                                                       "initially",
                                                       "inner",
                                                       "inout",
                                                       "int",
                                                       "integer",
                                                       "intersect",
                                                       "interval",
                                                       "into",
                                                       "is",
                                                       "isnull",
                                                       "join",
                                                       "json",
                                                       "json_array",
                                                       "json_arrayagg",
                                                       "json_exists",
                                                       "json_object",
                                                       "json_objectagg",
                                                       "json_query",
                                                       "json_scalar",
                                                       "json_serialize",
                                                       "json_table",
                                                       "json_value",
                                                       "lateral",
                                                       "leading",
                                                       "least",
                                                       "left",
                                                       "like",
                                                       "limit",
                                                       "localtime",
                                                       "localtimestamp",
                                                       "merge_action",
                                                       "national",
                                                       "natural",
                                                       "nchar",
                                                       "none",
                                                       "normalize",
                                                       "not",
                                                       "notnull",
                                                       "null",
                                                       "nullif",
                                                       "numeric",
                                                       "offset",
                                                       "on",
                                                       "only",
                                                       "or",
                                                       "order",
                                                       "out",
                                                       "outer",
                                                       "overlaps",
                                                       "overlay",
                                                       "placing",
                                                       "position",
                                                       "precision",
                                                       "primary",
                                                       "real",
                                                       "references",
                                                       "returning",
                                                       "right",
                                                       "row",
                                                       "select",
                                                       "session_user",
                                                       "setof",
                                                       "similar",
                                                       "smallint",
                                                       "some",
                                                       "substring",
                                                       "symmetric",
                                                       "system_user",
                                                       "table",
                                                       "tablesample",
                                                       "then",
                                                       "time",
                                                       "timestamp",
                                                       "to",
                                                       "trailing",
                                                       "treat",
                                                       "trim",
                                                       "true",
                                                       "union",
                                                       "unique",
                                                       "user",
                                                       "using",
                                                       "values",
                                                       "varchar",
                                                       "variadic",
                                                       "verbose",
                                                       "when",
                                                       "where",
                                                       "window",
                                                       "with",
                                                       "xmlattributes",
                                                       "xmlconcat",
                                                       "xmlelement",
                                                       "xmlexists",
                                                       "xmlforest",
                                                       "xmlnamespaces",
                                                       "xmlparse",
                                                       "xmlpi",
                                                       "xmlroot",
                                                       "xmlserialize",
                                                       "xmltable"};
  return *words;
}

// Replaces newlines by blanks, as pg_restore's sanitize_line ("-" for an
// empty value when `hyphen`).
std::string SanitizeLine(const std::string& s, bool hyphen) {
  if (s.empty() && hyphen) return "-";
  std::string out = s;
  for (char& c : out) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

bool IsPlainFileName(const std::string& name) {
  if (name.empty() || name[0] == '.' || name.size() > 255) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.') return false;
  }
  return true;
}

// A decompressing stream that owns its file.
class OwningStream : public ByteStream {
 public:
  OwningStream(std::unique_ptr<ByteStream> file, Codec codec)
      : file_(std::move(file)), top_(NewDecompressingStream(file_.get(), codec)) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override { return top_->Read(buf, n); }
  const std::string& name() const override { return file_->name(); }

 private:
  std::unique_ptr<ByteStream> file_;
  std::unique_ptr<ByteStream> top_;
};

// A data file of a directory archive: `base` as written in the TOC, found
// as pg_restore does with the suffix of its compression (none, .gz, .lz4,
// .zst).
absl::StatusOr<std::unique_ptr<ByteStream>> OpenDataFile(const std::string& dir,
                                                         const std::string& base) {
  if (!IsPlainFileName(base)) {
    return Malformed(dir, absl::StrCat("data file name '", SanitizeLine(base, false),
                                       "' is not a plain file name"));
  }
  const std::string path = absl::StrCat(dir, "/", base);
  auto plain = FileStream::Open(path);
  if (plain.ok()) return std::unique_ptr<ByteStream>(std::move(*plain));
  const std::pair<const char*, Codec> suffixes[] = {
      {".gz", Codec::kZlibOrGzip}, {".lz4", Codec::kLz4}, {".zst", Codec::kZstd}};
  for (const auto& [suffix, codec] : suffixes) {
    auto file = FileStream::Open(absl::StrCat(path, suffix));
    if (!file.ok()) continue;
    return std::unique_ptr<ByteStream>(new OwningStream(std::move(*file), codec));
  }
  return UnableTo(absl::StatusCode::kNotFound, "open", path,
                  "no such data file (nor .gz, .lz4, .zst) in the directory archive");
}

absl::Status ReadHeaderAndToc(ByteStream* in, ArchiveHeader* header, std::vector<TocItem>* toc) {
  ArchiveStructureReader reader(in);
  ASSIGN_OR_RETURN(*header, reader.ReadHeader());
  ASSIGN_OR_RETURN(*toc, reader.ReadToc(*header));
  return absl::OkStatus();
}

// Reads another stream in blocks of kBufferSize (the archive structures
// are read a few bytes at a time).
class BufferedStream : public ByteStream {
 public:
  static constexpr size_t kBufferSize = 256 << 10;
  explicit BufferedStream(std::unique_ptr<ByteStream> in) : in_(std::move(in)), buf_(kBufferSize) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (n == 0) return 0;
    if (pos_ == len_) {
      if (n >= buf_.size()) return in_->Read(buf, n);
      ASSIGN_OR_RETURN(len_, in_->Read(buf_.data(), buf_.size()));
      pos_ = 0;
      if (len_ == 0) return 0;
    }
    const size_t k = std::min(n, len_ - pos_);
    std::memcpy(buf, buf_.data() + pos_, k);
    pos_ += k;
    return k;
  }
  const std::string& name() const override { return in_->name(); }
  int64_t raw_bytes_read() const override {
    const int64_t raw = in_->raw_bytes_read();
    return raw < 0 ? raw : raw - static_cast<int64_t>(len_ - pos_);
  }

 private:
  std::unique_ptr<ByteStream> in_;
  std::vector<char> buf_;
  size_t pos_ = 0, len_ = 0;
};

// The data of one entry of a custom archive file, read from its own
// descriptor at the entry's offset.
class CustomEntryStream : public ByteStream {
 public:
  static absl::StatusOr<std::unique_ptr<ByteStream>> Open(const std::string& path,
                                                          const ArchiveHeader& header,
                                                          const TocItem& item) {
    ASSIGN_OR_RETURN(std::unique_ptr<FileStream> file, FileStream::Open(path));
    if (item.data_offset <= 0 || ::lseek(file->fd(), item.data_offset, SEEK_SET) < 0) {
      return Malformed(path, absl::StrCat("data offset ", item.data_offset, " of entry ",
                                          item.dump_id, " is outside the file"));
    }
    std::unique_ptr<CustomEntryStream> s(new CustomEntryStream(std::move(file)));
    int type = 0, id = 0;
    ASSIGN_OR_RETURN(bool found, s->reader_.ReadBlockHeader(header, &type, &id));
    if (!found || id != item.dump_id || type != 1) {
      return Malformed(path, absl::StrCat("no data block of entry ", item.dump_id, " at offset ",
                                          item.data_offset));
    }
    s->data_ = NewBlockDataStream(&s->reader_, header,
                                  absl::StrCat(path, " (data of entry ", item.dump_id, ")"));
    return std::unique_ptr<ByteStream>(std::move(s));
  }
  absl::StatusOr<size_t> Read(char* buf, size_t n) override { return data_->Read(buf, n); }
  const std::string& name() const override { return data_->name(); }

 private:
  explicit CustomEntryStream(std::unique_ptr<FileStream> file)
      : in_(std::move(file)), reader_(&in_) {}
  BufferedStream in_;
  ArchiveStructureReader reader_;
  std::unique_ptr<BlockData> data_;
};

// Custom format, read front to back.
class CustomSource : public ArchiveScript::Source {
 public:
  explicit CustomSource(ByteStream* in) : in_(in), reader_(in) {}
  // A regular file, opened and buffered here: its entries' data can also
  // be read apart (OpenApart) when the TOC has every data offset.
  explicit CustomSource(std::unique_ptr<ByteStream> file, std::string path)
      : owned_(std::move(file)), in_(owned_.get()), reader_(in_), path_(std::move(path)) {}

  bool CanOpenApart(const TocItem& item) const override {
    return seekable_ && item.data_state == kOffsetSet && item.data_offset > 0;
  }
  absl::StatusOr<std::unique_ptr<ByteStream>> OpenApart(const TocItem& item) const override {
    return CustomEntryStream::Open(path_, header_, item);
  }
  int64_t SizeInArchive(const TocItem& item) const override {
    auto it = sizes_.find(item.dump_id);
    return it == sizes_.end() ? 0 : it->second;
  }

  absl::Status ReadToc(ArchiveHeader* header, std::vector<TocItem>* toc) override {
    ASSIGN_OR_RETURN(header_, reader_.ReadHeader());
    if (header_.format != kArchCustom) {
      return Malformed(in_->name(), absl::StrCat("archive format byte ", header_.format,
                                                 " is not the custom format's"));
    }
    ASSIGN_OR_RETURN(*toc, reader_.ReadToc(header_));
    *header = header_;
    if (!path_.empty()) FindOffsets(*toc);
    return absl::OkStatus();
  }

  absl::StatusOr<ByteStream*> OpenData(const TocItem& item) override {
    RETURN_IF_ERROR(FindBlock(item, 1));
    current_ = NewBlockDataStream(&reader_, header_,
                                  absl::StrCat(in_->name(), " (data of entry ", item.dump_id, ")"));
    return current_.get();
  }

  absl::StatusOr<bool> NextBlob(const TocItem& item, uint32_t* oid, ByteStream** data) override {
    if (blobs_of_ != item.dump_id) {
      RETURN_IF_ERROR(FindBlock(item, 3));
      blobs_of_ = item.dump_id;
    } else if (current_ != nullptr) {
      RETURN_IF_ERROR(current_->Drain());
      current_.reset();
    }
    ASSIGN_OR_RETURN(int64_t id, reader_.ReadInt(header_.int_size));
    if (id == 0) {
      blobs_of_ = 0;
      return false;
    }
    if (id < 0 || id > UINT32_MAX) {
      return Malformed(in_->name(), absl::StrCat("large object OID ", id));
    }
    *oid = static_cast<uint32_t>(id);
    current_ = NewBlockDataStream(&reader_, header_,
                                  absl::StrCat(in_->name(), " (large object ", id, ")"));
    *data = current_.get();
    return true;
  }

 private:
  // Moves to the block of `item` (of `type`), skipping others.
  absl::Status FindBlock(const TocItem& item, int type) {
    if (current_ != nullptr) {
      RETURN_IF_ERROR(current_->Drain());
      current_.reset();
      if (blobs_of_ != 0) {
        // The rest of an unfinished blobs block.
        RETURN_IF_ERROR(reader_.SkipBlock(header_, 3));
        blobs_of_ = 0;
      }
    }
    while (true) {
      int block_type = 0, id = 0;
      ASSIGN_OR_RETURN(bool more, reader_.ReadBlockHeader(header_, &block_type, &id));
      if (!more) {
        return Malformed(in_->name(),
                         absl::StrCat("could not find the data of entry ", item.dump_id, " (",
                                      item.desc, " ", SanitizeLine(item.tag, false),
                                      "): the archive is truncated or out of order"));
      }
      if (id == item.dump_id) {
        if (block_type != type) {
          return Malformed(in_->name(), absl::StrCat("data block of entry ", id, " has type ",
                                                     block_type, ", expected ", type));
        }
        return absl::OkStatus();
      }
      RETURN_IF_ERROR(reader_.SkipBlock(header_, block_type));
    }
  }

  // K_OFFSET_POS_SET: the entry's data offset is known.
  static constexpr int kOffsetSet = 2;

  // Seekable when every entry with data has its offset (pg_dump to a file);
  // each one's size is up to the next offset (or the end of the file).
  void FindOffsets(const std::vector<TocItem>& toc) {
    std::vector<std::pair<int64_t, int>> offsets;
    for (const TocItem& t : toc) {
      if (t.data_state == kOffsetSet && t.data_offset > 0) {
        offsets.emplace_back(t.data_offset, t.dump_id);
      } else if (t.had_dumper && t.data_state != 3) {
        return;  // data somewhere, offset unknown: read front to back only
      }
    }
    int64_t end = -1;
    struct stat st;
    if (::stat(path_.c_str(), &st) == 0) end = st.st_size;
    std::sort(offsets.begin(), offsets.end());
    for (size_t i = 0; i < offsets.size(); ++i) {
      const int64_t next = i + 1 < offsets.size() ? offsets[i + 1].first : end;
      sizes_[offsets[i].second] = std::max<int64_t>(0, next - offsets[i].first);
    }
    seekable_ = true;
  }

  std::unique_ptr<ByteStream> owned_;
  ByteStream* in_;
  ArchiveStructureReader reader_;
  std::string path_;  // a file's (else read front to back only)
  bool seekable_ = false;
  std::map<int, int64_t> sizes_;
  ArchiveHeader header_;
  std::unique_ptr<BlockData> current_;
  int blobs_of_ = 0;
};

// Where a member's content lies in a tar file.
struct TarMember {
  int64_t offset = 0;
  int64_t size = 0;
};

// The value of a tar header's numeric field: octal digits (blank- or
// NUL-padded), or base-256 when the first byte's high bit is set (GNU, for
// sizes of 8 GiB and more). -1 when it is neither.
int64_t TarNumber(absl::string_view field) {
  if (!field.empty() && (static_cast<unsigned char>(field[0]) & 0x80) != 0) {
    if ((static_cast<unsigned char>(field[0]) & 0x7f) != 0) return -1;  // (negative or huge)
    int64_t v = 0;
    for (size_t i = 1; i < field.size(); ++i) {
      if (v > (INT64_MAX >> 8)) return -1;
      v = (v << 8) | static_cast<unsigned char>(field[i]);
    }
    return v;
  }
  int64_t v = 0;
  bool digits = false;
  for (char c : field) {
    if (c >= '0' && c <= '7') {
      if (v > (INT64_MAX >> 3)) return -1;
      v = (v << 3) | (c - '0');
      digits = true;
    } else if (c == ' ' || c == '\0') {
      if (digits) break;
    } else {
      return -1;
    }
  }
  return digits ? v : -1;
}

// The members of the tar file `file` as pg_dump -Ft writes it (plain
// ustar headers of regular files with short names), but for the large
// objects' (blob_<oid>.dat: read in archive order, and there may be
// millions). Empty when the file holds anything else (an extension header,
// a long name, a bad checksum, a name twice, a member past the end of the
// file) or too many members: such a file is read front to back only, by
// libarchive.
std::map<std::string, TarMember> IndexTarMembers(const FileStream& file) {
  constexpr int64_t kBlock = 512;
  constexpr size_t kMaxMembers = 1 << 16;
  std::map<std::string, TarMember> members;
  absl::StatusOr<int64_t> file_size = file.Size();
  if (!file_size.ok()) return {};
  int64_t at = 0;
  while (true) {
    if (at + kBlock > *file_size) return {};  // no end-of-archive block
    absl::StatusOr<std::string> h = file.ReadAt(at, kBlock);
    if (!h.ok() || h->size() != kBlock) return {};
    if (h->find_first_not_of('\0') == std::string::npos) return members;
    int64_t sum = 0;
    for (int64_t i = 0; i < kBlock; ++i) {
      sum += (i >= 148 && i < 156) ? ' ' : static_cast<unsigned char>((*h)[i]);
    }
    const absl::string_view view(*h);
    const char type = (*h)[156];
    if (TarNumber(view.substr(148, 8)) != sum || (type != '0' && type != '\0') ||
        (*h)[345] != '\0') {
      return {};
    }
    const std::string name(view.substr(0, std::min<size_t>(100, h->find('\0'))));
    const int64_t size = TarNumber(view.substr(124, 12));
    const int64_t data = at + kBlock;
    if (name.empty() || size < 0 || size > *file_size - data) return {};
    if (!absl::StartsWith(name, "blob_") &&
        (members.size() >= kMaxMembers || !members.emplace(name, TarMember{data, size}).second)) {
      return {};
    }
    at = data + (size + kBlock - 1) / kBlock * kBlock;
  }
}

// `size` bytes of an open file from `offset` on, read with pread (the
// descriptor's position is not used: it may be shared).
class FileRangeStream : public ByteStream {
 public:
  FileRangeStream(std::unique_ptr<FileStream> file, int64_t offset, int64_t size, std::string name)
      : file_(std::move(file)), at_(offset), left_(size), name_(std::move(name)) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (left_ == 0 || n == 0) return 0;
    const size_t want = static_cast<size_t>(std::min<int64_t>(left_, static_cast<int64_t>(n)));
    ssize_t got;
    do {
      got = ::pread(file_->fd(), buf, want, at_);
    } while (got < 0 && errno == EINTR);
    if (got < 0) return ErrnoError(errno, "read", name_);
    if (got == 0) return Malformed(name_, "the file ends inside the member");
    at_ += got;
    left_ -= got;
    return static_cast<size_t>(got);
  }
  const std::string& name() const override { return name_; }

 private:
  std::unique_ptr<FileStream> file_;
  int64_t at_;
  int64_t left_;
  std::string name_;
};

// Tar format: toc.dat, then the data members in TOC order.
class TarSource : public ArchiveScript::Source {
 public:
  explicit TarSource(ByteStream* in) : in_(in) {}
  // A regular file (owned here): when it is laid out as pg_dump writes it,
  // its tables' data can also be read apart (OpenApart), each member
  // through a descriptor of its own on the same open file.
  explicit TarSource(std::unique_ptr<FileStream> file) : file_(std::move(file)), in_(file_.get()) {}

  bool CanOpenApart(const TocItem& item) const override {
    return members_.count(item.filename) > 0;
  }
  absl::StatusOr<std::unique_ptr<ByteStream>> OpenApart(const TocItem& item) const override {
    auto it = members_.find(item.filename);
    if (it == members_.end()) return Source::OpenApart(item);
    const int fd = ::fcntl(file_->fd(), F_DUPFD_CLOEXEC, 0);
    if (fd < 0) return ErrnoError(errno, "duplicate the descriptor of", file_->name());
    auto dup = std::make_unique<FileStream>(fd, file_->name());
    return std::unique_ptr<ByteStream>(std::make_unique<FileRangeStream>(
        std::move(dup), it->second.offset, it->second.size,
        absl::StrCat(file_->name(), " (member ", SanitizeLine(item.filename, false), ")")));
  }
  int64_t SizeInArchive(const TocItem& item) const override {
    auto it = members_.find(item.filename);
    return it == members_.end() ? 0 : it->second.size;
  }

  absl::Status ReadToc(ArchiveHeader* header, std::vector<TocItem>* toc) override {
    ASSIGN_OR_RETURN(tar_, ArchiveReader::OpenStream(in_, "", /*allow_raw=*/false));
    ASSIGN_OR_RETURN(auto first, tar_->Next());
    if (!first.has_value() || first->path != "toc.dat") {
      return Malformed(in_->name(), "a pg_dump tar archive starts with toc.dat");
    }
    RETURN_IF_ERROR(ReadHeaderAndToc(tar_->data(), header, toc));
    if (file_ != nullptr) members_ = IndexTarMembers(*file_);
    return absl::OkStatus();
  }

  absl::StatusOr<ByteStream*> OpenData(const TocItem& item) override {
    while (true) {
      ASSIGN_OR_RETURN(auto entry, tar_->Next());
      if (!entry.has_value()) {
        return Malformed(
            in_->name(),
            absl::StrCat("no member '", SanitizeLine(item.filename, false), "' (data of entry ",
                         item.dump_id, ") after the previous data"));
      }
      if (entry->path == item.filename) return tar_->data();
    }
  }

  absl::StatusOr<bool> NextBlob(const TocItem& item, uint32_t* oid, ByteStream** data) override {
    if (blobs_of_ != item.dump_id) {
      blobs_of_ = item.dump_id;
      found_blob_ = false;
    }
    while (true) {
      ASSIGN_OR_RETURN(auto entry, tar_->Next());
      if (!entry.has_value()) {
        if (found_blob_) return false;
        return Malformed(in_->name(), absl::StrCat("no large objects for entry ", item.dump_id));
      }
      const std::string& path = entry->path;
      uint32_t value = 0;
      if (absl::StartsWith(path, "blob_") && absl::EndsWith(path, ".dat") &&
          absl::SimpleAtoi(absl::string_view(path).substr(5, path.size() - 9), &value) &&
          value != 0) {
        found_blob_ = true;
        *oid = value;
        *data = tar_->data();
        return true;
      }
      // The first member after the large objects is their blobs.toc.
      if (found_blob_) {
        blobs_of_ = 0;
        return false;
      }
    }
  }

 private:
  std::unique_ptr<FileStream> file_;  // a file's (else read front to back only)
  ByteStream* in_;
  std::map<std::string, TarMember> members_;  // a file's, laid out as pg_dump writes
  std::unique_ptr<ArchiveReader> tar_;
  int blobs_of_ = 0;
  bool found_blob_ = false;
};

// Directory format: toc.dat and one file per entry.
class DirectorySource : public ArchiveScript::Source {
 public:
  explicit DirectorySource(std::string dir) : dir_(std::move(dir)) {}

  absl::Status ReadToc(ArchiveHeader* header, std::vector<TocItem>* toc) override {
    ASSIGN_OR_RETURN(auto file, FileStream::Open(absl::StrCat(dir_, "/toc.dat")));
    return ReadHeaderAndToc(file.get(), header, toc);
  }

  absl::StatusOr<ByteStream*> OpenData(const TocItem& item) override {
    current_.reset();
    ASSIGN_OR_RETURN(current_, OpenDataFile(dir_, item.filename));
    return current_.get();
  }

  bool CanOpenApart(const TocItem& item) const override { return !item.filename.empty(); }
  absl::StatusOr<std::unique_ptr<ByteStream>> OpenApart(const TocItem& item) const override {
    return OpenDataFile(dir_, item.filename);
  }
  int64_t SizeInArchive(const TocItem& item) const override {
    if (!IsPlainFileName(item.filename)) return 0;
    struct stat st;
    for (const char* suffix : {"", ".gz", ".lz4", ".zst"}) {
      if (::stat(absl::StrCat(dir_, "/", item.filename, suffix).c_str(), &st) == 0) {
        return st.st_size;
      }
    }
    return 0;
  }

  absl::StatusOr<bool> NextBlob(const TocItem& item, uint32_t* oid, ByteStream** data) override {
    current_.reset();
    if (blobs_of_ != item.dump_id) {
      blobs_of_ = item.dump_id;
      blobs_.clear();
      ASSIGN_OR_RETURN(std::unique_ptr<ByteStream> toc, OpenDataFile(dir_, item.filename));
      std::string text;
      char buf[65536];
      while (true) {
        ASSIGN_OR_RETURN(size_t got, toc->Read(buf, sizeof(buf)));
        if (got == 0) break;
        text.append(buf, got);
        if (text.size() > (256u << 20)) return Malformed(dir_, "large-object TOC too long");
      }
      for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
        std::vector<std::string> parts = absl::StrSplit(line, ' ');
        uint32_t value = 0;
        if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &value) || value == 0) {
          return Malformed(absl::StrCat(dir_, "/", item.filename),
                           absl::StrCat("invalid line: ", SanitizeLine(std::string(line), false)));
        }
        blobs_.emplace_back(value, parts[1]);
      }
    }
    if (blobs_.empty()) {
      blobs_of_ = 0;
      return false;
    }
    auto [value, file] = blobs_.front();
    blobs_.pop_front();
    ASSIGN_OR_RETURN(current_, OpenDataFile(dir_, file));
    *oid = value;
    *data = current_.get();
    return true;
  }

 private:
  std::string dir_;
  std::unique_ptr<ByteStream> current_;
  int blobs_of_ = 0;
  std::deque<std::pair<uint32_t, std::string>> blobs_;
};

bool IsAcl(const TocItem& t) {
  return t.desc == "ACL" || t.desc == "ACL LANGUAGE" || t.desc == "DEFAULT ACL";
}

// pg_restore's _tocEntryRestorePass: 0 main, 1 ACLs, 2 after the ACLs.
int RestorePass(const TocItem& t) {
  if (IsAcl(t)) return 1;
  if (t.desc == "EVENT TRIGGER" || t.desc == "MATERIALIZED VIEW DATA") return 2;
  if (t.desc == "COMMENT" && absl::StartsWith(t.tag, "EVENT TRIGGER ")) return 2;
  return 0;
}

constexpr int kReqSchema = 1;
constexpr int kReqData = 2;

// pg_restore's _tocEntryRequired with its default options (`statistics`:
// pg_restore 18's default, else --no-statistics).
int Required(const TocItem& t, int section, bool statistics) {
  const std::string& d = t.desc;
  if (d == "ENCODING" || d == "STDSTRINGS" || d == "SEARCHPATH") return 0;  // handled apart
  if (d == "DATABASE" || d == "DATABASE PROPERTIES") return 0;              // no --create
  if (d == "STATISTICS DATA" && !statistics) return 0;  // the restore runs ANALYZE
  if ((d == "ACL" || d == "COMMENT" || d == "SECURITY LABEL") &&
      absl::StartsWith(t.tag, "DATABASE ")) {
    return 0;
  }
  if (section < 2 || section > 4) return 0;
  int res = kReqSchema | kReqData;
  if (!t.had_dumper) {
    const bool lo_meta = absl::StartsWith(t.tag, "LARGE OBJECT") &&
                         (d == "ACL" || d == "COMMENT" || d == "SECURITY LABEL");
    if (d == "SEQUENCE SET" || d == "BLOB" || d == "BLOB METADATA" || lo_meta) {
      res &= kReqData;
    } else {
      res &= ~kReqData;
    }
  }
  if (t.defn.empty() || absl::StartsWith(t.defn, "-- load via partition root ")) {
    res &= ~kReqSchema;
  }
  if (d == "<Init>" && t.tag == "Max OID") return 0;
  return res;
}

// What _getObjectDescription gives for ALTER ... OWNER TO ("" for none).
std::string ObjectDescription(const TocItem& t) {
  static const auto* plain = new std::set<std::string>{"COLLATION",
                                                       "CONVERSION",
                                                       "DOMAIN",
                                                       "FOREIGN TABLE",
                                                       "MATERIALIZED VIEW",
                                                       "SEQUENCE",
                                                       "STATISTICS",
                                                       "TABLE",
                                                       "TEXT SEARCH DICTIONARY",
                                                       "TEXT SEARCH CONFIGURATION",
                                                       "TYPE",
                                                       "VIEW",
                                                       "DATABASE",
                                                       "PROCEDURAL LANGUAGE",
                                                       "SCHEMA",
                                                       "EVENT TRIGGER",
                                                       "FOREIGN DATA WRAPPER",
                                                       "SERVER",
                                                       "PUBLICATION",
                                                       "SUBSCRIPTION"};
  static const auto* from_drop = new std::set<std::string>{
      "AGGREGATE", "FUNCTION", "OPERATOR", "OPERATOR CLASS", "OPERATOR FAMILY", "PROCEDURE"};
  if (plain->count(t.desc) > 0) {
    std::string out = absl::StrCat(t.desc, " ");
    if (!t.namespace_name.empty()) absl::StrAppend(&out, QuoteArchiveIdent(t.namespace_name), ".");
    absl::StrAppend(&out, QuoteArchiveIdent(t.tag));
    return out;
  }
  if (t.desc == "BLOB") return absl::StrCat("LARGE OBJECT ", t.tag);
  if (from_drop->count(t.desc) > 0 && absl::StartsWith(t.drop_stmt, "DROP ")) {
    std::string first = t.drop_stmt.substr(5);
    while (!first.empty() && (first.back() == '\n' || first.back() == ';')) first.pop_back();
    return first;
  }
  return "";
}

std::string HexLiteral(const char* data, size_t n, bool std_strings) {
  static const char kHex[] = "0123456789abcdef";
  std::string out = std_strings ? "'\\x" : "E'\\\\x";
  out.reserve(out.size() + 2 * n + 1);
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(data[i]);
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  out.push_back('\'');
  return out;
}

}  // namespace

std::string QuoteArchiveIdent(const std::string& name) {
  bool plain =
      !name.empty() && (absl::ascii_islower(static_cast<unsigned char>(name[0])) || name[0] == '_');
  for (char c : name) {
    if (!absl::ascii_islower(static_cast<unsigned char>(c)) &&
        !absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '_') {
      plain = false;
    }
  }
  if (plain && QuotedKeywords().count(name) == 0) return name;
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// The script, produced step by step as the reader pulls it.
class ArchiveScript::Renderer {
 public:
  Renderer(Source* source, std::string name) : source_(source), name_(std::move(name)) {}

  absl::Status Init() {
    RETURN_IF_ERROR(source_->ReadToc(&header_, &toc_));
    if (header_.VersionNumber() < 11200) {
      return UnableTo(absl::StatusCode::kFailedPrecondition, "restore", name_,
                      absl::StrCat("archive version ", header_.VersionString(),
                                   " (pg_dump before 9.0) is not supported"));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<size_t> Read(char* buf, size_t n) {
    if (!planned_) {
      planned_ = true;
      Plan();
    }
    while (true) {
      if (pos_ < out_.size()) {
        size_t k = std::min(n, out_.size() - pos_);
        std::memcpy(buf, out_.data() + pos_, k);
        pos_ += k;
        return k;
      }
      out_.clear();
      pos_ = 0;
      if (data_ != nullptr) {
        // Table data goes straight to the caller.
        ASSIGN_OR_RETURN(size_t got, data_->Read(buf, n));
        if (got > 0) return got;
        data_ = nullptr;
        continue;
      }
      if (blob_ != nullptr) {
        RETURN_IF_ERROR(BlobChunk());
        continue;
      }
      if (blobs_item_ != nullptr) {
        RETURN_IF_ERROR(NextBlob());
        continue;
      }
      if (next_step_ >= steps_.size()) return 0;
      const Step& step = steps_[next_step_++];
      switch (step.kind) {
        case Step::kText:
          out_ = step.text;
          break;
        case Step::kData: {
          if (defer_ && !step.text.empty() && step.item->desc == "TABLE DATA" &&
              source_->CanOpenApart(*step.item)) {
            // Left to the caller: the script pauses here.
            ArchiveScript::DeferredData d;
            d.item = step.item;
            d.copy_stmt = step.text;
            d.size_hint = source_->SizeInArchive(*step.item);
            const Source* source = source_;
            const TocItem* item = step.item;
            d.open = [source, item]() { return source->OpenApart(*item); };
            deferred_ = std::move(d);
            return 0;
          }
          out_ = step.text;
          ASSIGN_OR_RETURN(data_, source_->OpenData(*step.item));
          break;
        }
        case Step::kBlobs:
          blobs_item_ = step.item;
          break;
      }
    }
  }

  const ArchiveHeader& header() const { return header_; }
  const std::vector<TocItem>& toc() const { return toc_; }

  bool can_defer() const {
    for (const TocItem& t : toc_) {
      if (t.desc == "TABLE DATA" && source_->CanOpenApart(t)) return true;
    }
    return false;
  }
  void Defer() { defer_ = true; }
  void KeepStatistics() { statistics_ = true; }
  std::optional<ArchiveScript::DeferredData> TakeDeferred() {
    std::optional<ArchiveScript::DeferredData> d = std::move(deferred_);
    deferred_.reset();
    return d;
  }

 private:
  struct Step {
    enum Kind { kText, kData, kBlobs } kind = kText;
    std::string text;
    const TocItem* item = nullptr;
  };

  void Text(std::string text) {
    if (!steps_.empty() && steps_.back().kind == Step::kText) {
      steps_.back().text.append(text);
    } else {
      Step s;
      s.text = std::move(text);
      steps_.push_back(std::move(s));
    }
  }

  // pg_restore's RestoreArchive, rendered ahead (the data comes later).
  void Plan() {
    std::string encoding = "UTF8";
    bool std_strings = true;
    for (const TocItem& t : toc_) {
      if (t.desc == "ENCODING") {
        size_t a = t.defn.find('\''), b = std::string::npos;
        if (a != std::string::npos) b = t.defn.find('\'', a + 1);
        if (b != std::string::npos) encoding = t.defn.substr(a + 1, b - a - 1);
      } else if (t.desc == "STDSTRINGS") {
        size_t a = t.defn.find('\'');
        std_strings = a == std::string::npos || t.defn.compare(a, 4, "'on'") == 0;
      } else if (t.desc == "SEARCHPATH") {
        search_path_ = t.defn;
        has_search_path_ = true;
      }
    }
    std_strings_ = std_strings;
    std::string head = "--\n-- PostgreSQL database dump\n--\n\n";
    if (!header_.server_version.empty()) {
      absl::StrAppend(&head, "-- Dumped from database version ",
                      SanitizeLine(header_.server_version, false), "\n");
    }
    if (!header_.dumper_version.empty()) {
      absl::StrAppend(&head, "-- Dumped by pg_dump version ",
                      SanitizeLine(header_.dumper_version, false), "\n");
    }
    absl::StrAppend(&head, "\n");
    // _doSetFixedOutputState.
    absl::StrAppend(&head,
                    "SET statement_timeout = 0;\nSET lock_timeout = 0;\n"
                    "SET idle_in_transaction_session_timeout = 0;\n"
                    "SET transaction_timeout = 0;\n");
    if (IsPlainFileName(encoding)) {
      absl::StrAppend(&head, "SET client_encoding = '", encoding, "';\n");
    }
    absl::StrAppend(&head, "SET standard_conforming_strings = ", std_strings ? "on" : "off", ";\n");
    if (has_search_path_) absl::StrAppend(&head, search_path_);
    absl::StrAppend(&head,
                    "SET check_function_bodies = false;\nSET xmloption = content;\n"
                    "SET client_min_messages = warning;\n");
    if (!std_strings) absl::StrAppend(&head, "SET escape_string_warning = off;\n");
    absl::StrAppend(&head, "SET row_security = off;\n\n");
    Text(std::move(head));

    std::vector<int> reqs(toc_.size());
    int section = kSectionPreData;
    for (size_t i = 0; i < toc_.size(); ++i) {
      if (toc_[i].section != 1 && toc_[i].section != 0) section = toc_[i].section;
      reqs[i] = Required(toc_[i], section, statistics_);
      by_id_[toc_[i].dump_id] = &toc_[i];
    }
    for (int pass = 0; pass < 3; ++pass) {
      for (size_t i = 0; i < toc_.size(); ++i) {
        if (reqs[i] != 0 && RestorePass(toc_[i]) == pass) Entry(toc_[i], reqs[i]);
      }
    }
    Text("--\n-- PostgreSQL database dump complete\n--\n\n");
  }

  // restore_toc_entry.
  void Entry(const TocItem& t, int reqs) {
    bool defn_dumped = false;
    if ((reqs & kReqSchema) != 0) {
      PrintEntry(t, false);
      defn_dumped = true;
    }
    if ((reqs & kReqData) == 0) return;
    if (t.had_dumper) {
      if (t.desc == "BLOB COMMENTS") {
        return;  // pre-9.0 archives only
      }
      if (t.data_state == 3) return;  // custom format: entry without data
      PrintEntry(t, true);
      if (t.desc == "BLOBS") {
        SelectSchema("pg_catalog");
        Text("BEGIN;\n\n");
        Step s;
        s.kind = Step::kBlobs;
        s.item = &t;
        steps_.push_back(std::move(s));
        Text("COMMIT;\n\n");
        return;
      }
      SelectSchema(t.namespace_name);
      Step s;
      s.kind = Step::kData;
      s.text = t.copy_stmt;
      s.item = &t;
      steps_.push_back(std::move(s));
    } else if (!defn_dumped) {
      PrintEntry(t, false);
    }
  }

  // _selectOutputSchema: only for archives without a SEARCHPATH entry.
  void SelectSchema(const std::string& schema) {
    if (has_search_path_ || schema.empty() || schema == current_schema_) return;
    std::string q = absl::StrCat("SET search_path = ", QuoteArchiveIdent(schema));
    if (schema != "pg_catalog") absl::StrAppend(&q, ", pg_catalog");
    Text(absl::StrCat(q, ";\n\n"));
    current_schema_ = schema;
  }

  // The OIDs listed in a BLOB METADATA entry's definition.
  static std::vector<std::string> BlobOids(const TocItem& t) {
    std::vector<std::string> oids;
    for (absl::string_view line : absl::StrSplit(t.defn, '\n', absl::SkipEmpty())) {
      uint32_t v = 0;
      if (absl::SimpleAtoi(line, &v)) oids.push_back(absl::StrCat(v));
    }
    return oids;
  }

  // IssueACLPerBlob: the entry's GRANT/REVOKE commands for the first large
  // object, applied to every large object of its BLOB METADATA entry.
  void AclPerBlob(const TocItem& t) {
    const TocItem* blobs = nullptr;
    if (!t.dependencies.empty()) {
      auto it = by_id_.find(t.dependencies[0]);
      if (it != by_id_.end()) blobs = it->second;
    }
    if (blobs == nullptr || blobs->desc != "BLOB METADATA") {
      Text(absl::StrCat(t.defn, "\n\n"));
      return;
    }
    const std::vector<std::string> oids = BlobOids(*blobs);
    const std::string& s = t.defn;
    bool quoted = false;
    size_t start = 0, second = std::string::npos, first_end = 0;
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '"') quoted = !quoted;
      if (quoted) continue;
      if (s.compare(i, 13, "LARGE OBJECT ") == 0) {
        first_end = i + 13;
        size_t j = first_end;
        while (j < s.size() && absl::ascii_isdigit(static_cast<unsigned char>(s[j]))) ++j;
        second = j;
        i = j - 1;
      } else if (s[i] == ';' && second != std::string::npos) {
        const std::string a = s.substr(start, first_end - start);
        const std::string b = s.substr(second, i - second);
        for (const std::string& oid : oids) absl::StrAppend(&out, a, oid, b, ";\n");
        absl::StrAppend(&out, "\n");
        size_t k = i + 1;
        while (k < s.size() && absl::ascii_isspace(static_cast<unsigned char>(s[k]))) ++k;
        start = k;
        second = std::string::npos;
        i = k - 1;
      }
    }
    Text(std::move(out));
  }

  // _printTocEntry (pg_restore's defaults: owners by ALTER ... OWNER TO).
  void PrintEntry(const TocItem& t, bool is_data) {
    SelectSchema(t.namespace_name);
    if (t.has_tablespace) SelectTablespace(t);
    if (t.relkind != 'p' && !t.tableam.empty() && t.tableam != current_tableam_) {
      Text(absl::StrCat("SET default_table_access_method = ", QuoteArchiveIdent(t.tableam),
                        ";\n\n"));
      current_tableam_ = t.tableam;
    }
    std::string head = absl::StrCat(
        "--\n-- ", is_data ? "Data for " : "", "Name: ", SanitizeLine(t.tag, false),
        "; Type: ", SanitizeLine(t.desc, false), "; Schema: ", SanitizeLine(t.namespace_name, true),
        "; Owner: ", SanitizeLine(t.owner, true));
    if (!t.tablespace.empty()) {
      absl::StrAppend(&head, "; Tablespace: ", SanitizeLine(t.tablespace, false));
    }
    absl::StrAppend(&head, "\n--\n\n");
    Text(std::move(head));
    if (t.desc == "BLOB METADATA") {
      std::string out;
      for (const std::string& oid : BlobOids(t)) {
        absl::StrAppend(&out, "SELECT pg_catalog.lo_create('", oid, "');\n");
      }
      Text(absl::StrCat(out, "\n"));
    } else if (t.desc == "ACL" && absl::StartsWith(t.tag, "LARGE OBJECTS")) {
      AclPerBlob(t);
    } else if (!t.defn.empty()) {
      Text(absl::StrCat(t.defn, "\n\n"));
    }
    if (!t.owner.empty() && !t.drop_stmt.empty()) {
      if (t.desc == "BLOB METADATA") {
        std::string out;
        for (const std::string& oid : BlobOids(t)) {
          absl::StrAppend(&out, "ALTER LARGE OBJECT ", oid, " OWNER TO ",
                          QuoteArchiveIdent(t.owner), ";\n");
        }
        Text(absl::StrCat(out, "\n"));
      } else {
        std::string what = ObjectDescription(t);
        if (!what.empty()) {
          Text(absl::StrCat("ALTER ", what, " OWNER TO ", QuoteArchiveIdent(t.owner), ";\n\n"));
        }
      }
    }
    if (t.relkind == 'p' && !t.tableam.empty()) {
      std::string qualified =
          t.namespace_name.empty()
              ? QuoteArchiveIdent(t.tag)
              : absl::StrCat(QuoteArchiveIdent(t.namespace_name), ".", QuoteArchiveIdent(t.tag));
      Text(absl::StrCat("ALTER TABLE ", qualified, " SET ACCESS METHOD ",
                        QuoteArchiveIdent(t.tableam), ";\n\n"));
    }
  }

  // _selectTablespace: entries of relations carry their tablespace ("" the
  // database default); others none.
  void SelectTablespace(const TocItem& t) {
    if (current_tablespace_set_ && t.tablespace == current_tablespace_) return;
    if (t.tablespace.empty()) {
      Text("SET default_tablespace = '';\n\n");
    } else {
      Text(absl::StrCat("SET default_tablespace = ", QuoteArchiveIdent(t.tablespace), ";\n\n"));
    }
    current_tablespace_ = t.tablespace;
    current_tablespace_set_ = true;
  }

  // Opens the next large object of blobs_item_ (or ends the entry).
  absl::Status NextBlob() {
    uint32_t oid = 0;
    ByteStream* data = nullptr;
    ASSIGN_OR_RETURN(bool more, source_->NextBlob(*blobs_item_, &oid, &data));
    if (!more) {
      blobs_item_ = nullptr;
      return absl::OkStatus();
    }
    // StartRestoreLO (archives 1.12+: the object exists already).
    out_ = absl::StrCat("SELECT pg_catalog.lo_open('", oid, "', 131072);\n");
    blob_ = data;
    return absl::OkStatus();
  }

  // One lowrite() of the current large object, or its lo_close().
  absl::Status BlobChunk() {
    std::string chunk(kLoBufSize, '\0');
    size_t have = 0;
    while (have < chunk.size()) {
      ASSIGN_OR_RETURN(size_t got, blob_->Read(chunk.data() + have, chunk.size() - have));
      if (got == 0) break;
      have += got;
    }
    if (have > 0) {
      out_ = absl::StrCat("SELECT pg_catalog.lowrite(0, ",
                          HexLiteral(chunk.data(), have, std_strings_), ");\n");
    }
    if (have < chunk.size()) {
      absl::StrAppend(&out_, "SELECT pg_catalog.lo_close(0);\n\n");
      blob_ = nullptr;
    }
    return absl::OkStatus();
  }

  Source* source_;
  std::string name_;
  ArchiveHeader header_;
  std::vector<TocItem> toc_;
  std::map<int, const TocItem*> by_id_;
  std::string search_path_;
  bool has_search_path_ = false;
  bool std_strings_ = true;
  std::string current_schema_;
  std::string current_tablespace_;
  bool current_tablespace_set_ = false;
  std::string current_tableam_;

  std::vector<Step> steps_;
  size_t next_step_ = 0;
  std::string out_;
  size_t pos_ = 0;
  ByteStream* data_ = nullptr;
  const TocItem* blobs_item_ = nullptr;
  ByteStream* blob_ = nullptr;
  bool defer_ = false;
  bool statistics_ = false;
  bool planned_ = false;  // (at the first Read, after DeferData/KeepStatistics)
  std::optional<ArchiveScript::DeferredData> deferred_;
};

ArchiveScript::ArchiveScript(std::string name, std::unique_ptr<Source> source)
    : name_(std::move(name)), source_(std::move(source)) {}

ArchiveScript::~ArchiveScript() = default;

absl::Status ArchiveScript::Init() {
  renderer_ = std::make_unique<Renderer>(source_.get(), name_);
  return renderer_->Init();
}

absl::StatusOr<size_t> ArchiveScript::Read(char* buf, size_t n) { return renderer_->Read(buf, n); }

const ArchiveHeader& ArchiveScript::header() const { return renderer_->header(); }
const std::vector<TocItem>& ArchiveScript::toc() const { return renderer_->toc(); }

absl::StatusOr<std::unique_ptr<ArchiveScript>> ArchiveScript::OpenCustom(ByteStream* in) {
  std::unique_ptr<ArchiveScript> script(
      new ArchiveScript(in->name(), std::make_unique<CustomSource>(in)));
  RETURN_IF_ERROR(script->Init());
  return script;
}

absl::StatusOr<std::unique_ptr<ArchiveScript>> ArchiveScript::OpenCustomFile(
    const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<FileStream> file, FileStream::Open(path));
  std::unique_ptr<ArchiveScript> script(new ArchiveScript(
      path,
      std::make_unique<CustomSource>(std::make_unique<BufferedStream>(std::move(file)), path)));
  RETURN_IF_ERROR(script->Init());
  return script;
}

bool ArchiveScript::can_defer_data() const { return renderer_->can_defer(); }
void ArchiveScript::DeferData() { renderer_->Defer(); }
void ArchiveScript::KeepStatistics() { renderer_->KeepStatistics(); }
std::optional<ArchiveScript::DeferredData> ArchiveScript::TakeDeferred() {
  return renderer_->TakeDeferred();
}

absl::StatusOr<std::unique_ptr<ArchiveScript>> ArchiveScript::OpenTar(ByteStream* in) {
  std::unique_ptr<ArchiveScript> script(
      new ArchiveScript(in->name(), std::make_unique<TarSource>(in)));
  RETURN_IF_ERROR(script->Init());
  return script;
}

absl::StatusOr<std::unique_ptr<ArchiveScript>> ArchiveScript::OpenTarFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<FileStream> file, FileStream::Open(path));
  std::unique_ptr<ArchiveScript> script(
      new ArchiveScript(path, std::make_unique<TarSource>(std::move(file))));
  RETURN_IF_ERROR(script->Init());
  return script;
}

absl::StatusOr<std::unique_ptr<ArchiveScript>> ArchiveScript::OpenDirectory(
    const std::string& dir) {
  std::unique_ptr<ArchiveScript> script(
      new ArchiveScript(dir, std::make_unique<DirectorySource>(dir)));
  RETURN_IF_ERROR(script->Init());
  return script;
}

}  // namespace mastodon_restore
