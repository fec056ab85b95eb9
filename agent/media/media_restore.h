// Restores a backup's media tree into a media directory without ever leaving
// it half-written: files are extracted into a staging directory on the same
// filesystem, then moved into place. Every write goes through directory
// descriptors (common/dir.h): the staging directory is root's, mode 0700,
// and each file is created below its descriptor; moving in renames from it
// into descriptors of the media directory's subdirectories, opened without
// following symlinks. Whoever can write the media directory or its parent
// (the app user) can make a restore fail, but cannot make it write anywhere
// else, whatever they swap in while it runs. Incremental: a file already present
// with the same size and mtime (or the same SHA-256 with verify_hash) is
// skipped, so a second run after a progressive pre-transfer only moves what
// changed. A source whose listing gives each file's SHA-256 (another
// agent's media) has what it sends checked against it, and a file present
// with that content is skipped whatever its mtime; the hashes the restore
// computes are recorded on the files (trusted.mastodon-restore.sha256,
// root's only) so that a later pass does not read them again. Hostile
// entries (absolute paths, "..", symlinks, hard links, devices) fail the
// restore before anything is moved.
#ifndef MR_AGENT_MEDIA_MEDIA_RESTORE_H_
#define MR_AGENT_MEDIA_MEDIA_RESTORE_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/archive/source_walker.h"
#include "agent/common/cancel_token.h"
#include "agent/common/env.h"
#include "agent/common/object_store.h"
#include "agent/common/space_guard.h"
#include "agent/common/subprocess.h"
#include "mastodon/restore/v1/backup.pb.h"

namespace mastodon_restore {

struct MediaRestoreOptions {
  // The source (resolved inside the allowed roots) and its secrets.
  std::string source_path;
  SourceOptions source;
  // The media tree inside the source ("public/system", "media.tar.gz/media";
  // see MediaPlaceOf); "": the inventory's.
  std::string media_root;
  // The source's media inventory (inventory/'s InspectBackup, its
  // manifest.media()): the tree's root and its totals.
  mastodon::restore::v1::MediaInventory inventory;
  // The media directory to restore into (created if missing).
  std::string target_dir;
  // Or the bucket the app keeps its media in (S3_ENABLED): each file of the
  // tree is written as the object at its path below the root, with
  // `upload_headers` ("x-amz-acl: public-read", Paperclip's S3_PERMISSION),
  // a Content-Type from its extension and its mtime as x-amz-meta-mtime
  // (as rclone writes it); files over 16 MiB in parts. An object already
  // there is kept when it has the file's size and MD5 (its ETag, or the
  // source object's ETag from a bucket), or for a big file its mtime.
  // Nothing is ever deleted from the bucket. `target_dir`, the owner and
  // the journal are then unused.
  std::shared_ptr<const ObjectStore> target_bucket;
  std::vector<std::string> upload_headers;
  // Objects written to the bucket at once.
  int upload_parallel = 8;
  // Owner of everything written (e.g. 991:991, snap_daemon:root, mastodon).
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  // Skip cache/ (remote media that tootctl media refresh can fetch again).
  bool exclude_cache = false;
  // Compare present files by SHA-256 instead of size and mtime.
  bool verify_hash = false;
  // Names the staging directory.
  std::string operation_id = "media";
  // Stage only: the staging directory is completed (and pruned of what the
  // source no longer has) but not moved in; the next restore into the same
  // directory takes it over and reads only what changed since (a
  // migration's passes), or CompleteMediaMove moves it in.
  bool stage_only = false;
  // Free space kept on the target filesystem beyond what is written.
  int64_t free_space_margin = 64 << 20;
  // Free space is looked at again as the bytes arrive (whatever the sizes
  // the source declared): the restore stops with RESOURCE_EXHAUSTED before
  // the target filesystem falls below this floor.
  SpaceFloor space_floor;
  // Tests (a paused step for racing the app user): called with "staged"
  // after each file is staged, and with "move" just before each staged
  // file is renamed into its (already open) directory, with the file's
  // path below the media root.
  std::function<void(const std::string& step, const std::string& rel)> step_hook;
  const CancelToken* cancel = nullptr;
  // Files and bytes done so far, and the totals of the media tree.
  std::function<void(int64_t files, int64_t bytes, int64_t total_files, int64_t total_bytes)>
      progress;
  // The crash-recovery journal (null: none), saved durably before the
  // staging directory is created (`moving` false: recovery removes it) and
  // before the first staged file is moved in (`moving` true: recovery
  // completes the move). An error stops the restore there.
  std::function<absl::Status(bool moving)> journal;
};

struct MediaRestoreResult {
  std::string media_root;  // as found in the source
  int64_t files_written = 0;
  int64_t bytes_written = 0;
  // Of those, staged by an earlier restore into the same directory that
  // stopped before its move (taken over, not read again).
  int64_t files_resumed = 0;
  int64_t bytes_resumed = 0;
  int64_t files_skipped = 0;  // present and unchanged
  int64_t bytes_skipped = 0;
  int64_t cache_files_excluded = 0;
  std::vector<std::string> warnings;
};

// The objects of `bucket` under Mastodon's media folders (accounts/,
// media_attachments/, custom_emojis/, cache/), by key, listed once (folder
// markers left out).
absl::StatusOr<std::map<std::string, StoredObject>> ListMediaObjects(const ObjectStore& bucket,
                                                                     const CancelToken* cancel);

// The Content-Type a media file is served with, from its extension
// ("application/octet-stream" for an unknown one).
std::string MediaContentType(const std::string& path);

// Paperclip's :id_partition of a record id ("109/000/001/234/567/890",
// "000/000/042").
std::string IdPartition(int64_t id);

// The staging directory of a media restore: beside `target_dir`, on the
// same filesystem (".<name>.mastodon-restore-<operation_id>").
std::string MediaStagingDir(const std::string& target_dir, const std::string& operation_id);

// Removes a staging directory a stopped agent left behind (only a path
// MediaStagingDir could have made; through descriptors, following no
// symlink). Best effort.
void RemoveMediaStaging(const std::string& staging_dir);

// Recovery of a media restore stopped while moving staged files in: moves
// what is left in `staging_dir` (a MediaStagingDir name) into `target_dir`
// (directories created with `uid`/`gid`), then removes `staging_dir`.
// Returns the number of files moved; nothing when `staging_dir` is gone.
absl::StatusOr<int64_t> CompleteMediaMove(const std::string& staging_dir,
                                          const std::string& target_dir, std::optional<uid_t> uid,
                                          std::optional<gid_t> gid);

// INVALID_ARGUMENT naming the entry for hostile entries, RESOURCE_EXHAUSTED
// when the target filesystem lacks space (up front, or as the data arrives),
// FAILED_PRECONDITION when the source holds no media tree or a symlink is
// met in the media directory's path or inside it (never followed: give the
// resolved path). Errors before the move-in leave the media directory as it
// was. The staging directory of a restore that stopped before its move
// (the source unreachable or changing: UNAVAILABLE, ABORTED; a cancel; the
// agent killed) is kept, and the next restore into the same directory
// takes it over: a staged file whose size and mtime are the source file's
// is not read again. On any other error it is removed.
absl::StatusOr<MediaRestoreResult> RestoreMedia(const MediaRestoreOptions& options,
                                                CommandRunner* runner, Env* env);

}  // namespace mastodon_restore

#endif  // MR_AGENT_MEDIA_MEDIA_RESTORE_H_
