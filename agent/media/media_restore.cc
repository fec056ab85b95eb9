#include "agent/media/media_restore.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/common/errors.h"
#include "agent/common/failpoint.h"
#include "agent/common/sha256.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace v1 = ::mastodon::restore::v1;
namespace {

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);
  return 0;
}

void RemoveTree(const std::string& path) {
  if (!path.empty() && path != "/") ::nftw(path.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
}

std::string Parent(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Creates the directories of `rel` below `base` without following symlinks
// (an existing symlink on the way is refused).
absl::Status MakeDirs(const std::string& base, const std::string& rel, std::optional<uid_t> uid,
                      std::optional<gid_t> gid) {
  std::string path = base;
  for (absl::string_view part : absl::StrSplit(rel, '/', absl::SkipEmpty())) {
    path = absl::StrCat(path, "/", part);
    struct stat st;
    if (::lstat(path.c_str(), &st) == 0) {
      if (S_ISLNK(st.st_mode)) {
        return UnableTo(absl::StatusCode::kFailedPrecondition, "write into", path,
                        "it is a symlink in the media directory (refusing to follow it)");
      }
      if (!S_ISDIR(st.st_mode)) {
        return UnableTo(absl::StatusCode::kFailedPrecondition, "create directory", path,
                        "a file is in the way");
      }
      continue;
    }
    // Directories never take their mode from the source: 0755 (less the
    // umask), never writable by others.
    if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoError(errno, "create directory", path);
    }
    if ((uid.has_value() || gid.has_value()) &&
        ::lchown(path.c_str(), uid.value_or(static_cast<uid_t>(-1)),
                 gid.value_or(static_cast<gid_t>(-1))) != 0) {
      return ErrnoError(errno, "set the owner of", path);
    }
  }
  return absl::OkStatus();
}

// The mode a media file gets from the mode its source recorded (0: none):
// the owner's and the group's bits are kept, but never write for others and
// never setuid, setgid or sticky, whatever the archive says; the owner may
// always read it.
mode_t MediaFileMode(uint32_t source_mode) {
  if (source_mode == 0) return 0644;
  return static_cast<mode_t>((source_mode & 0775) | 0400);
}

std::string HashFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return "";
  Sha256 hash;
  char buf[1 << 16];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof(buf))) > 0) hash.Update(buf, static_cast<size_t>(n));
  ::close(fd);
  return hash.Final();
}

class MediaVisitor : public SourceVisitor {
 public:
  MediaVisitor(const MediaRestoreOptions& options, std::string root, std::string staging,
               int64_t total_files, int64_t total_bytes, MediaRestoreResult* result)
      : o_(options),
        root_(std::move(root)),
        staging_(std::move(staging)),
        total_files_(total_files),
        total_bytes_(total_bytes),
        result_(result) {}

  // The path below the media root, or nullopt for files outside it.
  std::optional<std::string> Relative(const std::string& path) const {
    if (root_.empty()) return path;
    if (!absl::StartsWith(path, root_ + "/")) return std::nullopt;
    return path.substr(root_.size() + 1);
  }

  Action OnFile(const SourceFile& file, ContentKind kind) override {
    if (IsArchive(kind)) {
      // Enter archives that may hold the media tree (media.tar.gz).
      return absl::StartsWith(root_, file.path + "/") || root_ == file.path ? Action::kDescend
                                                                            : Action::kSkip;
    }
    auto rel = Relative(file.path);
    if (!rel.has_value()) return Action::kSkip;
    if (o_.exclude_cache && (absl::StartsWith(*rel, "cache/") || *rel == "cache")) {
      ++result_->cache_files_excluded;
      return Action::kSkip;
    }
    return Action::kRead;
  }

  absl::Status OnData(const SourceFile& file, ContentKind, ByteStream* data) override {
    if (o_.cancel != nullptr && o_.cancel->cancelled()) {
      return absl::CancelledError("media restore cancelled");
    }
    const std::string rel = *Relative(file.path);
    const std::string target = absl::StrCat(o_.target_dir, "/", rel);
    struct stat st;
    const bool present = ::lstat(target.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    if (present && !o_.verify_hash && file.stored_size >= 0 && st.st_size == file.stored_size &&
        file.mtime != 0 && st.st_mtime == file.mtime) {
      ++result_->files_skipped;
      result_->bytes_skipped += st.st_size;
      Report();
      return absl::OkStatus();
    }
    // Write to the staging directory, hashing on the way.
    size_t slash = rel.find_last_of('/');
    RETURN_IF_ERROR(
        MakeDirs(staging_, slash == std::string::npos ? "" : rel.substr(0, slash), o_.uid, o_.gid));
    const std::string staged = absl::StrCat(staging_, "/", rel);
    int fd = ::open(staged.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return ErrnoError(errno, "create", staged);
    Sha256 hash;
    std::vector<char> buf(1 << 20);
    int64_t written = 0;
    absl::Status s;
    while (true) {
      auto n = data->Read(buf.data(), buf.size());
      if (!n.ok()) {
        s = n.status();
        break;
      }
      if (*n == 0) break;
      if (o_.verify_hash) hash.Update(buf.data(), *n);
      size_t off = 0;
      while (off < *n) {
        ssize_t w = ::write(fd, buf.data() + off, *n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          s = ErrnoError(errno, "write", staged);
          break;
        }
        off += static_cast<size_t>(w);
      }
      if (!s.ok()) break;
      written += static_cast<int64_t>(*n);
    }
    if (s.ok()) {
      const mode_t mode = MediaFileMode(file.mode);
      if (::fchmod(fd, mode) != 0) s = ErrnoError(errno, "set the mode of", staged);
      if (s.ok() && (o_.uid.has_value() || o_.gid.has_value()) &&
          ::fchown(fd, o_.uid.value_or(static_cast<uid_t>(-1)),
                   o_.gid.value_or(static_cast<gid_t>(-1))) != 0) {
        s = ErrnoError(errno, "set the owner of", staged);
      }
      if (s.ok() && file.mtime != 0) {
        struct timespec times[2] = {{file.mtime, 0}, {file.mtime, 0}};
        ::futimens(fd, times);
      }
    }
    ::close(fd);
    RETURN_IF_ERROR(s);
    if (present && o_.verify_hash) {
      if (HashFile(target) == hash.Final()) {
        ::unlink(staged.c_str());
        ++result_->files_skipped;
        result_->bytes_skipped += written;
        Report();
        return absl::OkStatus();
      }
    }
    ++result_->files_written;
    result_->bytes_written += written;
    Report();
    return absl::OkStatus();
  }

  void OnOther(const SourceFile& file, const std::string& what) override {
    if (!Relative(file.path).has_value() && !absl::StrContains(what, "unsafe entry name")) return;
    // Inside the media tree (or an unsafe name anywhere): refuse the restore.
    if (hostile_.ok()) {
      hostile_ = absl::InvalidArgumentError(absl::StrCat("unable to restore media from '",
                                                         o_.source_path, "': refusing entry '",
                                                         file.display, "': ", what));
    }
  }

  bool Done() const override { return !hostile_.ok(); }
  // Media are copied byte for byte, whatever they look like.
  bool RawFile(const SourceFile& file) const override { return Relative(file.path).has_value(); }
  const absl::Status& hostile() const { return hostile_; }

 private:
  void Report() {
    if (o_.progress) {
      o_.progress(result_->files_written + result_->files_skipped,
                  result_->bytes_written + result_->bytes_skipped, total_files_, total_bytes_);
    }
  }

  const MediaRestoreOptions& o_;
  const std::string root_;
  const std::string staging_;
  const int64_t total_files_;
  const int64_t total_bytes_;
  MediaRestoreResult* result_;
  absl::Status hostile_;
};

// Moves every staged file into `target` (same filesystem: rename).
absl::Status MoveIntoPlace(const std::string& staging, const std::string& target,
                           const std::string& rel, std::optional<uid_t> uid,
                           std::optional<gid_t> gid, int64_t* moved = nullptr) {
  std::string dir = rel.empty() ? staging : absl::StrCat(staging, "/", rel);
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDirectory(dir));
  for (const std::string& name : names) {
    std::string child_rel = rel.empty() ? name : absl::StrCat(rel, "/", name);
    std::string from = absl::StrCat(staging, "/", child_rel);
    struct stat st;
    if (::lstat(from.c_str(), &st) != 0) return ErrnoError(errno, "stat", from);
    if (S_ISDIR(st.st_mode)) {
      RETURN_IF_ERROR(MakeDirs(target, child_rel, uid, gid));
      RETURN_IF_ERROR(MoveIntoPlace(staging, target, child_rel, uid, gid, moved));
      continue;
    }
    std::string to = absl::StrCat(target, "/", child_rel);
    struct stat existing;
    if (::lstat(to.c_str(), &existing) == 0 && !S_ISREG(existing.st_mode)) {
      return UnableTo(absl::StatusCode::kFailedPrecondition, "replace", to,
                      "it is not a regular file");
    }
    if (::rename(from.c_str(), to.c_str()) != 0) return ErrnoError(errno, "move into place", to);
    if (moved != nullptr) ++*moved;
    RETURN_IF_ERROR(MR_FAILPOINT("media.after_file_moved"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string MediaStagingDir(const std::string& target_dir, const std::string& operation_id) {
  const std::string name = target_dir.substr(target_dir.find_last_of('/') + 1);
  return absl::StrCat(Parent(target_dir), "/.", name, ".mastodon-restore-", operation_id);
}

void RemoveMediaStaging(const std::string& staging_dir) {
  // Only what MediaStagingDir names.
  if (staging_dir.find("/.") == std::string::npos ||
      staging_dir.find(".mastodon-restore-op-") == std::string::npos) {
    return;
  }
  RemoveTree(staging_dir);
}

absl::StatusOr<int64_t> CompleteMediaMove(const std::string& staging_dir,
                                          const std::string& target_dir, std::optional<uid_t> uid,
                                          std::optional<gid_t> gid) {
  // Only what MediaStagingDir names, beside `target_dir`.
  const std::string prefix = MediaStagingDir(target_dir, "op-");
  if (!absl::StartsWith(staging_dir, prefix) ||
      staging_dir.find('/', prefix.size()) != std::string::npos) {
    return UnableTo(absl::StatusCode::kInvalidArgument, "complete the media move from", staging_dir,
                    "not a media staging directory of " + target_dir);
  }
  struct stat st;
  if (::lstat(staging_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
  int64_t moved = 0;
  RETURN_IF_ERROR(MoveIntoPlace(staging_dir, target_dir, "", uid, gid, &moved));
  RemoveMediaStaging(staging_dir);
  return moved;
}

std::string IdPartition(int64_t id) {
  std::string digits = absl::StrFormat("%09d", id);
  std::vector<std::string> groups;
  for (size_t i = 0; i + 3 <= digits.size(); i += 3) groups.push_back(digits.substr(i, 3));
  return absl::StrJoin(groups, "/");
}

absl::StatusOr<MediaRestoreResult> RestoreMedia(const MediaRestoreOptions& o, CommandRunner* runner,
                                                Env* env) {
  MediaRestoreResult result;
  if (o.target_dir.empty() || o.target_dir[0] != '/') {
    return absl::InvalidArgumentError("the media directory must be an absolute path");
  }
  // 1. The media tree and its size, from the caller's inventory.
  const v1::MediaInventory& media = o.inventory;
  std::string root = o.media_root;
  if (root.empty()) {
    if (media.root().empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("unable to restore media: '", o.source_path, "' holds no media tree"));
    }
    root = WalkedPath(media.root());
  }
  result.media_root = root;
  int64_t total_files = media.files(), total_bytes = media.bytes();
  if (o.exclude_cache) {
    total_files -= media.cache_files();
    total_bytes -= media.cache_bytes();
  }

  // 2. Room for it (what is already present may be skipped, but is not
  //    counted on).
  RETURN_IF_ERROR(env->CreateDirs(o.target_dir, 0755, false));
  const std::string parent = Parent(o.target_dir);
  ASSIGN_OR_RETURN(int64_t free_bytes, env->FreeBytes(parent));
  if (free_bytes < total_bytes + o.free_space_margin) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "unable to restore media into '", o.target_dir, "': ", total_bytes,
        " bytes needed (plus a margin of ", o.free_space_margin, "), ", free_bytes, " free"));
  }

  // 3. Extract into a staging directory beside the media directory.
  const std::string staging = MediaStagingDir(o.target_dir, o.operation_id);
  if (o.journal) RETURN_IF_ERROR(o.journal(false));
  RemoveTree(staging);
  if (::mkdir(staging.c_str(), 0700) != 0) return ErrnoError(errno, "create", staging);
  MediaVisitor visitor(o, root, staging, total_files, total_bytes, &result);
  absl::Status walked = WalkSource(o.source_path, o.source, runner, &visitor);
  if (walked.ok()) walked = visitor.hostile();
  if (walked.ok() && o.cancel != nullptr && o.cancel->cancelled()) {
    walked = absl::CancelledError("media restore cancelled");
  }
  // 4. Only a complete extraction is moved into place.
  if (walked.ok()) walked = MR_FAILPOINT("media.after_extract");
  if (walked.ok() && o.journal) walked = o.journal(true);
  if (walked.ok()) walked = MR_FAILPOINT("media.before_move");
  if (walked.ok()) walked = MoveIntoPlace(staging, o.target_dir, "", o.uid, o.gid);
  if (walked.ok()) walked = MR_FAILPOINT("media.after_move");
  RemoveTree(staging);
  RETURN_IF_ERROR(walked);
  return result;
}

}  // namespace mastodon_restore
