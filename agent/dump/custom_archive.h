// Reader of pg_dump's binary archive structures: the header and TOC shared by
// the custom format and toc.dat (tar and directory formats), and the data
// blocks of the custom format. Layouts follow pg_backup_archiver.c
// (ReadHead/ReadToc) for archive versions 1.12-1.16.
//
// The input is hostile until checked: every count and length is bounded, and
// malformed data is INVALID_ARGUMENT naming the stream and the offset.
#ifndef MR_AGENT_DUMP_CUSTOM_ARCHIVE_H_
#define MR_AGENT_DUMP_CUSTOM_ARCHIVE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/common/byte_stream.h"

namespace mastodon_restore {

// Format byte values (pg_backup.h ArchiveFormat).
constexpr int kArchCustom = 1;
constexpr int kArchTar = 3;
constexpr int kArchNull = 4;
constexpr int kArchDirectory = 5;

// Compression algorithms (common/compression.h) as stored by 1.15+.
enum class ArchiveCompression { kNone = 0, kGzip = 1, kLz4 = 2, kZstd = 3 };

struct ArchiveHeader {
  int vmaj = 0, vmin = 0, vrev = 0;
  int int_size = 4;
  int off_size = 8;
  int format = 0;
  ArchiveCompression compression = ArchiveCompression::kNone;
  // zlib level for archives before 1.15 (-1 default, 0 none).
  int compression_level = 0;
  // Creation time fields as written (local time).
  int tm_sec = 0, tm_min = 0, tm_hour = 0, tm_mday = 0, tm_mon = 0, tm_year = 0, tm_isdst = 0;
  std::string dbname;
  std::string server_version;
  std::string dumper_version;
  // "1.14"
  std::string VersionString() const;
  // Version as a comparable number: 1.14.0 -> 11400.
  int VersionNumber() const { return vmaj * 10000 + vmin * 100 + vrev; }
};

struct TocItem {
  int dump_id = 0;
  bool had_dumper = false;
  std::string tableoid;
  std::string oid;
  std::string tag;
  std::string desc;
  int section = 0;
  std::string defn;
  std::string drop_stmt;
  std::string copy_stmt;
  std::string namespace_name;
  std::string tablespace;
  bool has_tablespace = false;  // false: NULL (the object has none)
  std::string tableam;
  int relkind = 0;
  std::string owner;
  std::vector<int> dependencies;
  // Custom format: data state (1 not set, 2 set, 3 no data) and offset.
  int data_state = 0;
  int64_t data_offset = 0;
  // Tar/directory formats: the data file name ("3361.dat").
  std::string filename;
};

// Highest archive minor version this reader understands (1.16).
constexpr int kMaxArchiveMinor = 16;

class ArchiveStructureReader {
 public:
  // `in` is positioned at the start of the archive ("PGDMP").
  explicit ArchiveStructureReader(ByteStream* in) : in_(in) {}

  // Reads the header. INVALID_ARGUMENT for a bad magic, an impossible integer
  // size, or a version outside 1.0-1.16 (newer versions are reported as
  // FAILED_PRECONDITION "unsupported version").
  absl::StatusOr<ArchiveHeader> ReadHeader();

  // Reads the TOC that follows the header. `max_items` bounds the count.
  absl::StatusOr<std::vector<TocItem>> ReadToc(const ArchiveHeader& header,
                                               int64_t max_items = 10000000);

  // Custom format only, after ReadToc: visits every data block in file order
  // with its dump id, block type (1 data, 3 blobs) and the decompressed data as
  // a stream. `visit` may read as much of the data as it wants; the rest is
  // skipped.
  using BlockVisitor = std::function<absl::Status(int dump_id, int block_type, ByteStream* data)>;
  absl::Status ForEachDataBlock(const ArchiveHeader& header, const BlockVisitor& visit);

  // Custom format, block by block (what ForEachDataBlock does, for a
  // caller that wants the blocks of chosen entries in its own order): reads
  // the next block's type (1 data, 3 blobs) and dump id; false at the end of
  // the archive.
  absl::StatusOr<bool> ReadBlockHeader(const ArchiveHeader& header, int* type, int* dump_id);
  // Skips the rest of a block whose header was just read (its data stream,
  // if one was opened, must not be read any more).
  absl::Status SkipBlock(const ArchiveHeader& header, int type);

  // Bytes read so far.
  int64_t offset() const { return offset_; }

  // Low-level readers (exposed for the data-block streams).
  absl::StatusOr<int64_t> ReadInt(int int_size);
  absl::StatusOr<int> ReadByte();
  absl::Status ReadStr(int int_size, std::string* out, bool* is_null);
  absl::Status ReadBytes(char* buf, size_t n);
  absl::Status Skip(int64_t n);

 private:
  absl::Status Bad(const std::string& why) const;

  ByteStream* in_;
  int64_t offset_ = 0;
};

// The data chunks of one custom-format block (or of one large object in a
// blobs block): Int length + bytes, ended by a zero length, decompressed per
// `header`.
class BlockData : public ByteStream {
 public:
  // Skips what is left of the chunks without decompressing them.
  virtual absl::Status Drain() = 0;
};
std::unique_ptr<BlockData> NewBlockDataStream(ArchiveStructureReader* reader,
                                              const ArchiveHeader& header, std::string name);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DUMP_CUSTOM_ARCHIVE_H_
