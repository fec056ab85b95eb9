// Backup inspection and dump detection over any source: one streaming pass
// through the source (see source_walker.h) that recognises the layout, reads
// the env file, detects every dump and takes the media inventory.
#ifndef MR_AGENT_INVENTORY_INSPECTOR_H_
#define MR_AGENT_INVENTORY_INSPECTOR_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
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
  // Judges the expiry times of a Redis dump's keys (Env::Now() of the
  // caller); the epoch counts none as expired.
  absl::Time now = absl::UnixEpoch();
  // The media tree to take when the source holds several (a root as the
  // manifest shows it; "." for the top). "": the only one.
  std::string media_tree;
};

// Inventory of the source at `path` (already resolved inside the allowed
// roots). Unknown files are listed, not fatal.
absl::StatusOr<mastodon::restore::v1::BackupManifest> InspectBackup(const std::string& path,
                                                                    const SourceOptions& source,
                                                                    const InspectOptions& options,
                                                                    CommandRunner* runner);

// A backup source read once: its inventory (every dump detected from its
// head, the media tree, warnings) and the text of its env file ("" when it
// has none, or one larger than 1 MiB).
struct OpenedBackup {
  mastodon::restore::v1::BackupManifest manifest;
  std::string env_text;
};
absl::StatusOr<OpenedBackup> OpenBackup(const std::string& path, const SourceOptions& source,
                                        const InspectOptions& options, CommandRunner* runner);

// The dump of `manifest` (of the source at `path`) named `member`
// (compression suffixes optional), or the only one when `member` is empty.
// INVALID_ARGUMENT, as DetectDumpInSource, when there is no such dump, none,
// or several and no member.
absl::StatusOr<mastodon::restore::v1::DumpInfo> PickDump(
    const mastodon::restore::v1::BackupManifest& manifest, const std::string& member,
    const std::string& path);

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

// The database of the pg_dumpall dump `dump` (found in the source at `path`)
// to restore: `source_db` when given, else the one holding Mastodon's schema,
// by a deep scan of the dump when its head does not tell. "" for the dump of
// one database. FAILED_PRECONDITION when no database of the cluster holds
// Mastodon's schema.
absl::StatusOr<std::string> ClusterDatabaseToRestore(const mastodon::restore::v1::DumpInfo& dump,
                                                     const std::string& source_db,
                                                     const std::string& path,
                                                     const SourceOptions& source,
                                                     const InspectOptions& options,
                                                     CommandRunner* runner);

// A dump to restore: its detection and, for a pg_dumpall dump, the database
// of the cluster to take (DatabaseRestoreRequest's `dump` and
// `cluster_database`).
struct DumpToRestore {
  mastodon::restore::v1::DumpInfo dump;
  std::string cluster_database;
};

// DetectDumpInSource(path, member), then ClusterDatabaseToRestore.
absl::StatusOr<DumpToRestore> DetectDumpToRestore(
    const std::string& path, const std::string& member, const std::string& source_db,
    const SourceOptions& source, const InspectOptions& options, CommandRunner* runner);

// The files of a backup's media tree, read to the end.
struct MediaListing {
  std::string root;                     // as walked ("media.tar.gz/media")
  std::set<std::string> files;          // paths below the root, readable
  std::vector<std::string> unreadable;  // "path: cause"
};
// The files of the media tree `media` (the manifest's) of the source at
// `path`. NOT_FOUND when the source has no media tree.
absl::StatusOr<MediaListing> ListMediaFiles(const std::string& path,
                                            const mastodon::restore::v1::MediaInventory& media,
                                            const SourceOptions& source, CommandRunner* runner);

}  // namespace mastodon_restore

#endif  // MR_AGENT_INVENTORY_INSPECTOR_H_
