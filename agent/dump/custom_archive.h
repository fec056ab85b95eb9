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

// Bounds on a TOC, so that a hostile archive cannot make its reader hold
// more than one entry of bounded size (ForEachTocItem) or a bounded list
// (ReadToc). What pg_dump can legitimately write:
// - entries: one per dumped object; a Mastodon database has a few thousand.
//   pg_dump before 17 writes one entry per large object (Mastodon has none),
//   so a database with more than a million of them needs a higher limit.
// - names (tag, desc, namespace, owner, tablespace, table access method,
//   OIDs, data file name): identifiers are at most 63 bytes; the longest tags
//   ("FUNCTION f(<up to 100 qualified argument types>)", "COMMENT ON ...")
//   stay below 16 KiB.
// - SQL (defn, drop_stmt, copy_stmt): one statement, bounded like a plain
//   dump's statements (LoadOptions::max_statement_bytes): 256 MiB holds any
//   function body or view definition of a real database.
// - kept: what a caller holding entries (ReadToc, detection) keeps in all,
//   counted as the strings it keeps plus 64 bytes an entry; a TOC of a
//   million ordinary entries keeps about 150 MiB.
struct TocLimits {
  int64_t max_entries = 1000000;
  int64_t max_name_bytes = 64 << 10;
  int64_t max_sql_bytes = 256LL << 20;
  int64_t max_kept_bytes = 256LL << 20;
};

// The bytes a caller holding `item` keeps, as TocLimits::max_kept_bytes
// counts them.
int64_t KeptBytes(const TocItem& item);

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

  // Reads the TOC that follows the header, one entry at a time: `visit` gets
  // each entry (valid during the call only) and the declared entry count.
  // With `keep_sql`, the SQL strings (defn, drop_stmt, copy_stmt) of an
  // entry are skipped, never held, unless keep_sql(desc) is true. A count,
  // name or SQL string over `limits` is INVALID_ARGUMENT naming the entry,
  // the limit and the offset; memory stays within one entry whatever the
  // archive declares.
  using TocVisitor = std::function<absl::Status(const TocItem& item, int64_t count)>;
  absl::Status ForEachTocItem(const ArchiveHeader& header, const TocLimits& limits,
                              const std::function<bool(const std::string& desc)>& keep_sql,
                              const TocVisitor& visit);

  // The whole TOC that follows the header (ForEachTocItem keeping every
  // entry's SQL), within limits.max_kept_bytes: for callers that need every
  // entry at once.
  absl::StatusOr<std::vector<TocItem>> ReadToc(const ArchiveHeader& header,
                                               const TocLimits& limits = TocLimits());

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
  // A string of at most `max_bytes` (else INVALID_ARGUMENT naming `what`);
  // with `out` null it is skipped, not held.
  absl::Status ReadBoundedStr(int int_size, int64_t max_bytes, const std::string& what,
                              std::string* out, bool* is_null);
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
