#include "agent/dump/custom_archive.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"
#include "agent/dump/decompress.h"

namespace mastodon_restore {
namespace {

constexpr int64_t kMaxStrBytes = 256LL << 20;
constexpr int64_t kMaxDependencies = 1 << 20;

// The concatenated chunk payloads of one data block: Int length + bytes,
// ended by a zero length.
class ChunkStream : public ByteStream {
 public:
  ChunkStream(ArchiveStructureReader* reader, int int_size, std::string name)
      : reader_(reader), int_size_(int_size), name_(std::move(name)) {}

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (ended_) return 0;
    if (remaining_ == 0) {
      ASSIGN_OR_RETURN(int64_t len, reader_->ReadInt(int_size_));
      if (len == 0) {
        ended_ = true;
        return 0;
      }
      if (len < 0 || len > kMaxStrBytes) {
        return UnableTo(
            absl::StatusCode::kInvalidArgument, "read", name_,
            absl::StrCat("invalid data chunk length ", len, " at offset ", reader_->offset()));
      }
      remaining_ = len;
    }
    size_t k = static_cast<size_t>(std::min<int64_t>(remaining_, static_cast<int64_t>(n)));
    RETURN_IF_ERROR(reader_->ReadBytes(buf, k));
    remaining_ -= static_cast<int64_t>(k);
    return k;
  }
  const std::string& name() const override { return name_; }

  // Skips what is left of the block without decompressing it.
  absl::Status Drain() {
    while (!ended_) {
      if (remaining_ > 0) {
        RETURN_IF_ERROR(reader_->Skip(remaining_));
        remaining_ = 0;
      }
      ASSIGN_OR_RETURN(int64_t len, reader_->ReadInt(int_size_));
      if (len == 0) {
        ended_ = true;
      } else if (len < 0 || len > kMaxStrBytes) {
        return UnableTo(absl::StatusCode::kInvalidArgument, "read", name_,
                        absl::StrCat("invalid data chunk length ", len));
      } else {
        remaining_ = len;
      }
    }
    return absl::OkStatus();
  }

 private:
  ArchiveStructureReader* reader_;
  int int_size_;
  std::string name_;
  int64_t remaining_ = 0;
  bool ended_ = false;
};

// Owns the chunk stream and the decompressor on top of it.
class BlockDataStream : public BlockData {
 public:
  BlockDataStream(ArchiveStructureReader* reader, const ArchiveHeader& header, std::string name)
      : chunks_(reader, header.int_size, name), name_(std::move(name)) {
    Codec codec = Codec::kNone;
    if (header.VersionNumber() < 11500) {
      if (header.compression_level != 0) codec = Codec::kZlibOrGzip;
    } else if (header.compression == ArchiveCompression::kGzip) {
      codec = Codec::kZlibOrGzip;
    } else if (header.compression == ArchiveCompression::kLz4) {
      codec = Codec::kLz4;
    } else if (header.compression == ArchiveCompression::kZstd) {
      codec = Codec::kZstd;
    }
    top_ = NewDecompressingStream(&chunks_, codec);
  }
  absl::StatusOr<size_t> Read(char* buf, size_t n) override { return top_->Read(buf, n); }
  const std::string& name() const override { return name_; }
  absl::Status Drain() override { return chunks_.Drain(); }

 private:
  ChunkStream chunks_;
  std::string name_;
  std::unique_ptr<ByteStream> top_;
};

}  // namespace

std::string ArchiveHeader::VersionString() const { return absl::StrCat(vmaj, ".", vmin); }

absl::Status ArchiveStructureReader::Bad(const std::string& why) const {
  return UnableTo(absl::StatusCode::kInvalidArgument, "read archive", in_->name(),
                  absl::StrCat(why, " at offset ", offset_));
}

absl::Status ArchiveStructureReader::ReadBytes(char* buf, size_t n) {
  absl::Status s = ReadExactly(in_, buf, n);
  if (!s.ok()) {
    if (s.code() == absl::StatusCode::kInvalidArgument) {
      return Bad(absl::StrCat("truncated: needed ", n, " more bytes"));
    }
    return s;
  }
  offset_ += static_cast<int64_t>(n);
  return absl::OkStatus();
}

absl::Status ArchiveStructureReader::Skip(int64_t n) {
  char buf[65536];
  while (n > 0) {
    size_t k = static_cast<size_t>(std::min<int64_t>(n, sizeof(buf)));
    RETURN_IF_ERROR(ReadBytes(buf, k));
    n -= static_cast<int64_t>(k);
  }
  return absl::OkStatus();
}

absl::StatusOr<int> ArchiveStructureReader::ReadByte() {
  char c;
  RETURN_IF_ERROR(ReadBytes(&c, 1));
  return static_cast<unsigned char>(c);
}

absl::StatusOr<int64_t> ArchiveStructureReader::ReadInt(int int_size) {
  char buf[9];
  RETURN_IF_ERROR(ReadBytes(buf, static_cast<size_t>(int_size) + 1));
  uint64_t v = 0;
  for (int i = int_size; i >= 1; --i) v = (v << 8) | static_cast<unsigned char>(buf[i]);
  if (v > static_cast<uint64_t>(INT64_MAX)) return Bad("integer out of range");
  int64_t value = static_cast<int64_t>(v);
  return buf[0] != 0 ? -value : value;
}

absl::Status ArchiveStructureReader::ReadStr(int int_size, std::string* out, bool* is_null) {
  return ReadBoundedStr(int_size, kMaxStrBytes, "string", out, is_null);
}

absl::Status ArchiveStructureReader::ReadBoundedStr(int int_size, int64_t max_bytes,
                                                    const std::string& what, std::string* out,
                                                    bool* is_null) {
  ASSIGN_OR_RETURN(int64_t len, ReadInt(int_size));
  if (out != nullptr) out->clear();
  if (len < 0) {
    if (is_null != nullptr) *is_null = true;
    return absl::OkStatus();
  }
  if (is_null != nullptr) *is_null = false;
  if (len > max_bytes) {
    return Bad(
        absl::StrCat(what, " of ", len, " bytes exceeds the limit of ", max_bytes, " bytes"));
  }
  if (out == nullptr) return Skip(len);
  // Grow with the data actually read, so that a hostile length in a short
  // file fails as truncated before it allocates.
  constexpr int64_t kStep = 1 << 20;
  for (int64_t done = 0; done < len;) {
    int64_t n = std::min(kStep, len - done);
    out->resize(static_cast<size_t>(done + n));
    RETURN_IF_ERROR(ReadBytes(out->data() + done, static_cast<size_t>(n)));
    done += n;
  }
  return absl::OkStatus();
}

absl::StatusOr<ArchiveHeader> ArchiveStructureReader::ReadHeader() {
  ArchiveHeader h;
  char magic[5];
  RETURN_IF_ERROR(ReadBytes(magic, 5));
  if (std::memcmp(magic, "PGDMP", 5) != 0) return Bad("not a pg_dump archive (no PGDMP magic)");
  ASSIGN_OR_RETURN(h.vmaj, ReadByte());
  ASSIGN_OR_RETURN(h.vmin, ReadByte());
  if (h.vmaj > 1 || (h.vmaj == 1 && h.vmin > 0)) {
    ASSIGN_OR_RETURN(h.vrev, ReadByte());
  }
  if (h.vmaj != 1) {
    return UnableTo(absl::StatusCode::kInvalidArgument, "read archive", in_->name(),
                    absl::StrCat("unsupported version (", h.vmaj, ".", h.vmin, ") in file header"));
  }
  if (h.vmin > kMaxArchiveMinor) {
    return UnableTo(absl::StatusCode::kFailedPrecondition, "read archive", in_->name(),
                    absl::StrCat("unsupported version (", h.vmaj, ".", h.vmin,
                                 ") in file header: newer than any known pg_dump"));
  }
  const int v = h.VersionNumber();
  ASSIGN_OR_RETURN(h.int_size, ReadByte());
  if (h.int_size < 1 || h.int_size > 8) {
    return Bad(absl::StrCat("sanity check on integer size failed (", h.int_size, ")"));
  }
  h.off_size = h.int_size;
  if (v >= 10700) {
    ASSIGN_OR_RETURN(h.off_size, ReadByte());
    if (h.off_size < 1 || h.off_size > 8) return Bad(absl::StrCat("bad offset size ", h.off_size));
  }
  ASSIGN_OR_RETURN(h.format, ReadByte());
  if (h.format != kArchCustom && h.format != kArchTar && h.format != kArchNull &&
      h.format != kArchDirectory) {
    return Bad(absl::StrCat("unknown archive format byte ", h.format));
  }
  if (v >= 11500) {
    ASSIGN_OR_RETURN(int algo, ReadByte());
    if (algo > 3) return Bad(absl::StrCat("unknown compression algorithm ", algo));
    h.compression = static_cast<ArchiveCompression>(algo);
  } else if (v >= 10200) {
    int64_t level = 0;
    if (v < 10400) {
      ASSIGN_OR_RETURN(level, ReadByte());
    } else {
      ASSIGN_OR_RETURN(level, ReadInt(h.int_size));
    }
    h.compression_level = static_cast<int>(level);
    h.compression = level != 0 ? ArchiveCompression::kGzip : ArchiveCompression::kNone;
  }
  if (v >= 10400) {
    int* fields[] = {&h.tm_sec, &h.tm_min,  &h.tm_hour, &h.tm_mday,
                     &h.tm_mon, &h.tm_year, &h.tm_isdst};
    for (int* f : fields) {
      ASSIGN_OR_RETURN(int64_t x, ReadInt(h.int_size));
      *f = static_cast<int>(x);
    }
    RETURN_IF_ERROR(ReadStr(h.int_size, &h.dbname, nullptr));
  }
  if (v >= 11000) {
    RETURN_IF_ERROR(ReadStr(h.int_size, &h.server_version, nullptr));
    RETURN_IF_ERROR(ReadStr(h.int_size, &h.dumper_version, nullptr));
  }
  return h;
}

absl::Status ArchiveStructureReader::ForEachTocItem(
    const ArchiveHeader& h, const TocLimits& limits,
    const std::function<bool(const std::string& desc)>& keep_sql, const TocVisitor& visit) {
  const int v = h.VersionNumber();
  const int is = h.int_size;
  ASSIGN_OR_RETURN(int64_t count, ReadInt(is));
  if (count < 0) return Bad(absl::StrCat("invalid TOC entry count ", count));
  if (count > limits.max_entries) {
    return Bad(absl::StrCat("TOC of ", count, " entries exceeds the limit of ", limits.max_entries,
                            " entries"));
  }
  TocItem t;
  for (int64_t i = 0; i < count; ++i) {
    t = TocItem();
    const std::string entry = absl::StrCat("TOC entry ", i + 1, " of ", count, ": ");
    auto name = [&](const char* field, std::string* out) {
      return ReadBoundedStr(is, limits.max_name_bytes, absl::StrCat(entry, field), out, nullptr);
    };
    ASSIGN_OR_RETURN(int64_t dump_id, ReadInt(is));
    if (dump_id <= 0 || dump_id > INT32_MAX) {
      return Bad(absl::StrCat("entry ID ", dump_id, " out of range"));
    }
    t.dump_id = static_cast<int>(dump_id);
    ASSIGN_OR_RETURN(int64_t had_dumper, ReadInt(is));
    t.had_dumper = had_dumper != 0;
    if (v >= 10800) RETURN_IF_ERROR(name("tableoid", &t.tableoid));
    RETURN_IF_ERROR(name("oid", &t.oid));
    RETURN_IF_ERROR(name("tag", &t.tag));
    RETURN_IF_ERROR(name("desc", &t.desc));
    if (v >= 11100) {
      ASSIGN_OR_RETURN(int64_t section, ReadInt(is));
      if (section < 1 || section > 4) return Bad(absl::StrCat("invalid section ", section));
      t.section = static_cast<int>(section);
    }
    const bool keep = !keep_sql || keep_sql(t.desc);
    auto sql = [&](const char* field, std::string* out) {
      return ReadBoundedStr(is, limits.max_sql_bytes, absl::StrCat(entry, field),
                            keep ? out : nullptr, nullptr);
    };
    RETURN_IF_ERROR(sql("defn", &t.defn));
    RETURN_IF_ERROR(sql("drop_stmt", &t.drop_stmt));
    if (v >= 10300) RETURN_IF_ERROR(sql("copy_stmt", &t.copy_stmt));
    if (v >= 10600) RETURN_IF_ERROR(name("namespace", &t.namespace_name));
    if (v >= 11000) {
      bool null_tablespace = true;
      RETURN_IF_ERROR(ReadBoundedStr(is, limits.max_name_bytes, absl::StrCat(entry, "tablespace"),
                                     &t.tablespace, &null_tablespace));
      t.has_tablespace = !null_tablespace;
    }
    if (v >= 11400) RETURN_IF_ERROR(name("tableam", &t.tableam));
    if (v >= 11600) {
      ASSIGN_OR_RETURN(int64_t relkind, ReadInt(is));
      t.relkind = static_cast<int>(relkind);
    }
    RETURN_IF_ERROR(name("owner", &t.owner));
    if (v >= 10900) RETURN_IF_ERROR(name("with_oids", nullptr));
    if (v >= 10500) {
      for (int64_t d = 0;; ++d) {
        if (d > kMaxDependencies) return Bad("too many dependencies");
        std::string dep;
        bool is_null = false;
        RETURN_IF_ERROR(ReadBoundedStr(is, 16, absl::StrCat(entry, "dependency"), &dep, &is_null));
        if (is_null) break;
        int id = 0;
        for (char c : dep) {
          if (c < '0' || c > '9' || id > 100000000) return Bad("invalid dependency id");
          id = id * 10 + (c - '0');
        }
        t.dependencies.push_back(id);
      }
    }
    if (h.format == kArchCustom) {
      if (v < 10700) {
        ASSIGN_OR_RETURN(int64_t pos, ReadInt(is));
        t.data_offset = pos;
        t.data_state = pos > 0 ? 2 : 1;
      } else {
        ASSIGN_OR_RETURN(int flag, ReadByte());
        uint64_t off = 0;
        char buf[8];
        RETURN_IF_ERROR(ReadBytes(buf, static_cast<size_t>(h.off_size)));
        for (int b = h.off_size - 1; b >= 0; --b)
          off = (off << 8) | static_cast<unsigned char>(buf[b]);
        if (flag < 1 || flag > 3) return Bad(absl::StrCat("bad data offset flag ", flag));
        t.data_state = flag;
        t.data_offset = static_cast<int64_t>(off);
      }
    } else if (h.format == kArchTar || h.format == kArchDirectory) {
      RETURN_IF_ERROR(name("filename", &t.filename));
    }
    RETURN_IF_ERROR(visit(t, count));
  }
  return absl::OkStatus();
}

int64_t KeptBytes(const TocItem& t) {
  return 64 + static_cast<int64_t>(t.tableoid.size() + t.oid.size() + t.tag.size() + t.desc.size() +
                                   t.defn.size() + t.drop_stmt.size() + t.copy_stmt.size() +
                                   t.namespace_name.size() + t.tablespace.size() +
                                   t.tableam.size() + t.owner.size() + t.filename.size() +
                                   t.dependencies.size() * sizeof(int));
}

absl::StatusOr<std::vector<TocItem>> ArchiveStructureReader::ReadToc(const ArchiveHeader& h,
                                                                     const TocLimits& limits) {
  std::vector<TocItem> items;
  int64_t kept = 0;
  RETURN_IF_ERROR(ForEachTocItem(h, limits, nullptr, [&](const TocItem& t, int64_t count) {
    kept += KeptBytes(t);
    if (kept > limits.max_kept_bytes) {
      return Bad(absl::StrCat("TOC entries 1-", items.size() + 1, " of ", count,
                              " exceed the limit of ", limits.max_kept_bytes, " bytes held"));
    }
    if (items.empty()) items.reserve(static_cast<size_t>(std::min<int64_t>(count, 100000)));
    items.push_back(t);
    return absl::OkStatus();
  }));
  return items;
}

std::unique_ptr<BlockData> NewBlockDataStream(ArchiveStructureReader* reader,
                                              const ArchiveHeader& header, std::string name) {
  return std::make_unique<BlockDataStream>(reader, header, std::move(name));
}

absl::StatusOr<bool> ArchiveStructureReader::ReadBlockHeader(const ArchiveHeader& header, int* type,
                                                             int* dump_id) {
  char type_byte;
  ASSIGN_OR_RETURN(size_t got, in_->Read(&type_byte, 1));
  if (got == 0) return false;
  ++offset_;
  *type = static_cast<unsigned char>(type_byte);
  if (*type != 1 && *type != 3) return Bad(absl::StrCat("unrecognized data block type ", *type));
  ASSIGN_OR_RETURN(int64_t id, ReadInt(header.int_size));
  if (id <= 0 || id > INT32_MAX) return Bad(absl::StrCat("data block of entry ID ", id));
  *dump_id = static_cast<int>(id);
  return true;
}

absl::Status ArchiveStructureReader::SkipBlock(const ArchiveHeader& header, int type) {
  if (type == 1) {
    ChunkStream chunks(this, header.int_size, in_->name());
    return chunks.Drain();
  }
  while (true) {
    ASSIGN_OR_RETURN(int64_t oid, ReadInt(header.int_size));
    if (oid == 0) return absl::OkStatus();
    ChunkStream chunks(this, header.int_size, in_->name());
    RETURN_IF_ERROR(chunks.Drain());
  }
}

absl::Status ArchiveStructureReader::ForEachDataBlock(const ArchiveHeader& header,
                                                      const BlockVisitor& visit) {
  while (true) {
    char type_byte;
    ASSIGN_OR_RETURN(size_t got, in_->Read(&type_byte, 1));
    if (got == 0) return absl::OkStatus();  // end of the archive
    ++offset_;
    int type = static_cast<unsigned char>(type_byte);
    ASSIGN_OR_RETURN(int64_t dump_id, ReadInt(header.int_size));
    if (type == 1) {
      BlockDataStream data(this, header,
                           absl::StrCat(in_->name(), " (data of entry ", dump_id, ")"));
      RETURN_IF_ERROR(visit(static_cast<int>(dump_id), type, &data));
      RETURN_IF_ERROR(data.Drain());
    } else if (type == 3) {
      RETURN_IF_ERROR(visit(static_cast<int>(dump_id), type, nullptr));
      while (true) {
        ASSIGN_OR_RETURN(int64_t oid, ReadInt(header.int_size));
        if (oid == 0) break;
        ChunkStream chunks(this, header.int_size, in_->name());
        RETURN_IF_ERROR(chunks.Drain());
      }
    } else {
      return Bad(absl::StrCat("unrecognized data block type ", type));
    }
  }
}

}  // namespace mastodon_restore
