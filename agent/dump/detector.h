// Dump detection: from the (decompressed) bytes of a dump to a DumpInfo.
//
// Shallow detection reads a bounded head (kHeadBytes of text, or the header
// and TOC of a binary archive) whatever the dump's size; deep detection
// streams the whole dump with bounded memory for row counts, the Mastodon
// schema version, the complete database list and the trailer.
#ifndef MR_AGENT_DUMP_DETECTOR_H_
#define MR_AGENT_DUMP_DETECTOR_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/common/byte_stream.h"
#include "agent/common/cancel_token.h"
#include "agent/dump/custom_archive.h"
#include "agent/dump/plain_scanner.h"
#include "mastodon/restore/v1/dump.pb.h"

namespace mastodon_restore {

struct DetectOptions {
  // Stream the whole dump.
  bool deep = false;
  // DB_NAME from the backup's env file: names Mastodon's database in a
  // cluster dump.
  std::string mastodon_db_name;
  // Called now and then during a deep scan with the bytes read so far.
  std::function<void(int64_t bytes)> progress;
  // Checked during a deep scan; a cancelled scan returns CANCELLED.
  const CancelToken* cancel = nullptr;
  // Bounds on an archive's TOC (custom_archive.h). Detection reads the TOC
  // one entry at a time and keeps only its facts, the TABLE DATA entries and
  // (deep) the first 100000 entries' names.
  TocLimits toc_limits;
};

// Bytes of text a shallow detection of a plain dump reads.
constexpr size_t kHeadBytes = 64 * 1024;

// Detects a plain SQL dump (pg_dump, pg_dumpall, tar restore.sql). `stream`
// is positioned at its first byte. When the dump is an uncompressed file,
// `tail` holds its last bytes (for the completion trailer in a shallow
// detection); otherwise pass "" and `tail_known` false.
absl::StatusOr<mastodon::restore::v1::DumpInfo> DetectPlainDump(ByteStream* stream,
                                                                const DetectOptions& options,
                                                                bool tail_known,
                                                                const std::string& tail);

// Detects a custom-format archive (PGDMP, format byte 1) from its stream.
absl::StatusOr<mastodon::restore::v1::DumpInfo> DetectCustomDump(ByteStream* stream,
                                                                 const DetectOptions& options);

// Assembles a tar- or directory-format dump from its parts as they are met
// in any order: toc.dat, then (deep) the data files.
class SplitDumpAssembler {
 public:
  explicit SplitDumpAssembler(const DetectOptions& options) : options_(options) {}
  // Reads toc.dat (header and TOC).
  absl::Status AddTocDat(ByteStream* toc);
  // Counts the COPY rows of data file `filename` ("3361.dat", "3361.dat.gz";
  // the stream is already decompressed).
  absl::Status AddDataFile(const std::string& filename, ByteStream* data);
  // Notes that restore.sql was seen (tar format).
  void SawRestoreScript() { saw_restore_script_ = true; }
  bool has_toc() const { return has_toc_; }
  // The DumpInfo (format TAR when restore.sql was seen, else DIRECTORY).
  absl::StatusOr<mastodon::restore::v1::DumpInfo> Finish(const std::string& path,
                                                         const std::string& data_suffix);

 private:
  DetectOptions options_;
  bool has_toc_ = false;
  bool saw_restore_script_ = false;
  // What the TOC of toc.dat said (DumpInfo fields, the listed entries) and
  // its TABLE DATA entries with a data file.
  struct DataFile {
    std::string filename;
    std::string table;
    bool migrations = false;
  };
  mastodon::restore::v1::DumpInfo toc_info_;
  std::vector<DataFile> data_entries_;
  ArchiveCompression compression_ = ArchiveCompression::kNone;
  std::map<std::string, CopyTable> data_counts_;
  std::map<std::string, std::string> schema_versions_;
};

// Counts COPY rows in `data` up to the "\." line (or the end). With
// `max_version`, tracks the highest first-column value (schema_migrations).
absl::Status CountCopyRows(ByteStream* data, CopyTable* out, std::string* max_version,
                           const CancelToken* cancel);

// Adds compatibility verdicts for a target server of major `target_major`
// (0: unknown). Archive versions 1.12-1.16 are read by the agent itself;
// `pg_restore_majors` no longer matters (kept for callers).
void AddCompatibilityNotes(int target_major, const std::vector<int>& pg_restore_majors,
                           mastodon::restore::v1::DumpInfo* info);

// Major version of a version string ("15.18 (Debian ...)" -> 15,
// "9.6.24" -> 9); 0 when unparsable.
int MajorVersionOf(const std::string& version);

// pg_restore major needed for an archive version ("1.16" -> 17).
int PgRestoreMajorForArchive(int vmin);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DUMP_DETECTOR_H_
