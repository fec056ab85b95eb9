// Backup inspection and dump detection over any source: one streaming pass
// through the source (see source_walker.h) that recognises the layout, reads
// the env file, detects every dump and takes the media inventory.
#ifndef MR_AGENT_ARCHIVE_INSPECTOR_H_
#define MR_AGENT_ARCHIVE_INSPECTOR_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/archive/source_walker.h"
#include "agent/common/subprocess.h"
#include "mastodon/restore/v1/backup.pb.h"
#include "mastodon/restore/v1/dump.pb.h"

namespace mastodon_restore {

struct InspectOptions {
  // Deep-scan the dumps (row counts, schema version, complete database list).
  bool deep = false;
  // Major version of the target server for compatibility notes (0: none).
  int target_major = 0;
  // pg_restore majors installed on the host.
  std::vector<int> pg_restore_majors;
  // Called during deep scans with bytes read.
  std::function<void(int64_t)> progress;
};

// Inventory of the source at `path` (already resolved inside the allowed
// roots). Unknown files are listed, not fatal.
absl::StatusOr<mastodon::restore::v1::BackupManifest> InspectBackup(const std::string& path,
                                                                    const SourceOptions& source,
                                                                    const InspectOptions& options,
                                                                    CommandRunner* runner);

// Detection of one dump in the source at `path`: the file named `member`
// (a path inside the source, compression suffixes optional), or, when
// `member` is empty, the source itself or the only dump it holds.
// INVALID_ARGUMENT when the source holds no dump, or when `member` is not one.
// Database settings of the backup's env file.
struct BackupEnvFacts {
  std::string db_name;  // DB_NAME
  std::string db_user;  // DB_USER
};

// `env` (optional) receives the backup env file's database settings.
absl::StatusOr<mastodon::restore::v1::DumpInfo> DetectDumpInSource(
    const std::string& path, const std::string& member, const SourceOptions& source,
    const InspectOptions& options, CommandRunner* runner, BackupEnvFacts* env = nullptr);

// The content of the small file `member` (a path inside the source, as
// BackupManifest names it, e.g. env_file.path) of the source at `path`.
// NOT_FOUND when the source has no such file; INVALID_ARGUMENT when it is
// larger than `max_bytes`.
absl::StatusOr<std::string> ReadFileInSource(const std::string& path, const std::string& member,
                                             const SourceOptions& source, CommandRunner* runner,
                                             size_t max_bytes = 1 << 20);

}  // namespace mastodon_restore

#endif  // MR_AGENT_ARCHIVE_INSPECTOR_H_
