#include "agent/media/media_restore.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/archive/media_tree.h"
#include "agent/common/digest.h"
#include "agent/common/dir.h"
#include "agent/common/errors.h"
#include "agent/common/failpoint.h"
#include "agent/common/status_macros.h"
#include "agent/common/work_queue.h"

namespace mastodon_restore {
namespace v1 = ::mastodon::restore::v1;
namespace {

std::string Parent(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string Basename(const std::string& path) { return path.substr(path.find_last_of('/') + 1); }

// "a/b/c.png" -> {"a/b", "c.png"}.
std::pair<std::string, std::string> SplitRel(const std::string& rel) {
  size_t slash = rel.find_last_of('/');
  if (slash == std::string::npos) return {"", rel};
  return {rel.substr(0, slash), rel.substr(slash + 1)};
}

// Removes the staging directory `staging` (open, named `name` in `parent`):
// its content through its own descriptor, then the name, only while it is
// still this directory (something swapped in at the name is left alone).
void RemoveStaging(const Dir& parent, const std::string& name, const Dir& staging) {
  if (auto names = staging.List(); names.ok()) {
    for (const std::string& n : *names) staging.RemoveTree(n).IgnoreError();
  }
  auto self = staging.StatSelf();
  auto at_name = parent.Stat(name);
  if (self.ok() && at_name.ok() && self->st_dev == at_name->st_dev &&
      self->st_ino == at_name->st_ino) {
    ::unlinkat(parent.fd(), name.c_str(), AT_REMOVEDIR);
  }
}

// The mode a media file gets from the mode its source recorded (0: none):
// the owner's and the group's bits are kept, but never write for others and
// never setuid, setgid or sticky, whatever the archive says; the owner may
// always read it.
mode_t MediaFileMode(uint32_t source_mode) {
  if (source_mode == 0) return 0644;
  return static_cast<mode_t>((source_mode & 0775) | 0400);
}

std::string HashFile(const Dir& dir, const std::string& rel) {
  absl::StatusOr<UniqueFd> fd = dir.OpenFile(rel);
  if (!fd.ok()) return "";
  return Sha256OfFd(fd->get());
}

// Where a media file's SHA-256 is recorded by the agent that wrote or
// hashed it, with the size and mtime the file had then ("<size>
// <sec>.<nsec> <hex>"): in the trusted namespace, which only root reads
// or writes. A file changed since (its size or mtime) is hashed again.
constexpr char kHashXattr[] = "trusted.mastodon-restore.sha256";

std::string HashRecordPrefix(const struct stat& st) {
  return absl::StrFormat("%d %d.%09d ", st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

// Records the hex SHA-256 of the file open as `fd` (best effort: on a
// filesystem without extended attributes it is hashed again when needed).
void RecordContentHash(int fd, const std::string& hex) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return;
  const std::string value = HashRecordPrefix(st) + hex;
  ::fsetxattr(fd, kHashXattr, value.data(), value.size(), 0);
}

// The hex SHA-256 of the regular file `name` of `dir`: the recorded one
// while the file keeps the size and mtime it had then, else hashed (and
// recorded); "" when it cannot be read.
std::string ContentHash(const Dir& dir, const std::string& name) {
  absl::StatusOr<UniqueFd> fd = dir.OpenFile(name);
  struct stat st;
  if (!fd.ok() || ::fstat(fd->get(), &st) != 0) return "";
  char value[256];
  const ssize_t n = ::fgetxattr(fd->get(), kHashXattr, value, sizeof(value));
  const std::string prefix = HashRecordPrefix(st);
  if (n > 0 && absl::StartsWith(absl::string_view(value, n), prefix)) {
    return std::string(value + prefix.size(), n - prefix.size());
  }
  const std::string hex = HexOf(Sha256OfFd(fd->get()));
  if (!hex.empty()) RecordContentHash(fd->get(), hex);
  return hex;
}

// What both media restores share: which files belong to the media tree
// (rooted at `root`, MediaPlaceOf's), the cache left out when asked,
// hostile entries refusing the restore, progress. Subclasses say whether a
// file of the tree is skipped before it is read (Unchanged) and where its
// bytes go (OnData).
class MediaTreeVisitor : public SourceVisitor {
 public:
  MediaTreeVisitor(const MediaRestoreOptions& options, std::string root, int64_t total_files,
                   int64_t total_bytes, MediaRestoreResult* result)
      : o_(options),
        root_(std::move(root)),
        total_files_(total_files),
        total_bytes_(total_bytes),
        result_(result) {}

  // The path below the media root, or nullopt for files outside the tree
  // (anything but Mastodon's media folders: a backup's env file or dump
  // beside them never reaches the web-served media directory).
  std::optional<std::string> Relative(const std::string& path) const {
    return PathInMediaTree(path, root_);
  }

  Action OnFile(const SourceFile& file, ContentKind kind) final {
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
    // Present and unchanged: not even read (a bucket's object is then never
    // fetched).
    if (const std::optional<int64_t> size = Unchanged(file, *rel); size.has_value()) {
      Skipped(*size);
      return Action::kSkip;
    }
    return Copied(file, *rel) ? Action::kSkip : Action::kRead;
  }

  void OnOther(const SourceFile& file, const std::string& what) final {
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
  bool RawFile(const SourceFile& file) const final { return Relative(file.path).has_value(); }
  const absl::Status& hostile() const { return hostile_; }

 protected:
  // The size of what the target holds at `rel` when it is `file` already;
  // nullopt when the file is to be read.
  virtual std::optional<int64_t> Unchanged(const SourceFile& file, const std::string& rel) const {
    (void)file;
    (void)rel;
    return std::nullopt;
  }
  // Whether the file went to the target without being read (the target
  // counts it).
  virtual bool Copied(const SourceFile& file, const std::string& rel) {
    (void)file;
    (void)rel;
    return false;
  }
  absl::Status CheckCancelled() const {
    if (o_.cancel != nullptr && o_.cancel->cancelled()) {
      return absl::CancelledError("media restore cancelled");
    }
    return absl::OkStatus();
  }
  // (From any thread.)
  void Skipped(int64_t bytes) {
    std::lock_guard<std::mutex> lock(counts_mu_);
    ++result_->files_skipped;
    result_->bytes_skipped += bytes;
    Report();
  }
  void Written(int64_t bytes) {
    std::lock_guard<std::mutex> lock(counts_mu_);
    ++result_->files_written;
    result_->bytes_written += bytes;
    Report();
  }

  const MediaRestoreOptions& o_;

 private:
  void Report() {
    if (o_.progress) {
      o_.progress(result_->files_written + result_->files_skipped,
                  result_->bytes_written + result_->bytes_skipped, total_files_, total_bytes_);
    }
  }

  const std::string root_;
  const int64_t total_files_;
  const int64_t total_bytes_;
  std::mutex counts_mu_;
  MediaRestoreResult* result_;
  absl::Status hostile_;
};

// Extracts the media tree into the staging directory, below its
// descriptor, skipping what the media directory holds unchanged.
class MediaVisitor : public MediaTreeVisitor {
 public:
  MediaVisitor(const MediaRestoreOptions& options, std::string root, const Dir* media,
               const Dir* staging, SpaceGuard* space, int64_t total_files, int64_t total_bytes,
               MediaRestoreResult* result)
      : MediaTreeVisitor(options, std::move(root), total_files, total_bytes, result),
        media_(media),
        staging_(staging),
        space_(space) {}

  absl::Status OnData(const SourceFile& file, ContentKind, ByteStream* data) override {
    RETURN_IF_ERROR(CheckCancelled());
    const std::string rel = *Relative(file.path);
    const auto [dir_rel, name] = SplitRel(rel);
    // What is present, looked at below the media directory's descriptor: a
    // symlink on the way fails the restore here, before anything is moved.
    bool present = false;
    struct stat st {};
    absl::StatusOr<Dir> target_dir = media_->OpenDir(dir_rel);
    if (target_dir.ok()) {
      absl::StatusOr<struct stat> found = target_dir->Stat(name);
      if (found.ok()) {
        st = *found;
        present = S_ISREG(st.st_mode);
      } else if (found.status().code() != absl::StatusCode::kNotFound) {
        return found.status();
      }
    } else if (target_dir.status().code() != absl::StatusCode::kNotFound) {
      return target_dir.status();
    }
    // Write below the staging directory's descriptor, hashing on the way
    // (over what an earlier restore left half-written there).
    ASSIGN_OR_RETURN(Dir staged_dir, staging_->MakeDirs(dir_rel, 0755, o_.uid, o_.gid));
    const std::string staged = staged_dir.PathOf(name);
    if (resuming_) RETURN_IF_ERROR(staged_dir.Unlink(name));
    ASSIGN_OR_RETURN(UniqueFd fd, staged_dir.CreateFile(name, 0600));
    staged_.insert(rel);
    // Hashed on the way to check it against the listing's hash, or to
    // compare it with what is present (verify_hash).
    const bool hashing = o_.verify_hash || !file.sha256.empty();
    Sha256 hash;
    // One buffer for every file (files come one at a time): a fresh one per
    // file costs its zeroing and page faults, more than a small file's copy.
    std::vector<char>& buf = buffer_;
    if (buf.empty()) buf.resize(1 << 20);
    int64_t written = 0;
    absl::Status s;
    while (true) {
      auto n = data->Read(buf.data(), buf.size());
      if (!n.ok()) {
        s = n.status();
        break;
      }
      if (*n == 0) break;
      // Free space on real bytes, whatever size the source declared.
      s = space_->Reserve(static_cast<int64_t>(*n));
      if (!s.ok()) break;
      if (hashing) hash.Update(buf.data(), *n);
      size_t off = 0;
      while (off < *n) {
        ssize_t w = ::write(fd.get(), buf.data() + off, *n - off);
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
    const std::string digest = hashing ? hash.Final() : std::string();
    const std::string hex = HexOf(digest);
    if (s.ok() && !file.sha256.empty() && hex != file.sha256) {
      s = absl::AbortedError(absl::StrCat(
          "the media file '", file.display, "' read back with the SHA-256 ", hex, ", not the ",
          file.sha256, " of its listing: it changed since, or was damaged on the way"));
      staged_dir.Unlink(name).IgnoreError();
    }
    if (s.ok()) {
      const mode_t mode = MediaFileMode(file.mode);
      if (::fchmod(fd.get(), mode) != 0) s = ErrnoError(errno, "set the mode of", staged);
      if (s.ok() && (o_.uid.has_value() || o_.gid.has_value()) &&
          ::fchown(fd.get(), o_.uid.value_or(static_cast<uid_t>(-1)),
                   o_.gid.value_or(static_cast<gid_t>(-1))) != 0) {
        s = ErrnoError(errno, "set the owner of", staged);
      }
      if (s.ok() && file.mtime != 0) {
        struct timespec times[2] = {{file.mtime, 0}, {file.mtime, 0}};
        ::futimens(fd.get(), times);
      }
      if (s.ok() && hashing) RecordContentHash(fd.get(), hex);
    }
    if (int err = fd.Close(); s.ok() && err != 0) s = ErrnoError(err, "close", staged);
    RETURN_IF_ERROR(s);
    if (present && o_.verify_hash && target_dir.ok()) {
      if (HashFile(*target_dir, name) == digest) {
        RETURN_IF_ERROR(staged_dir.Unlink(name));
        Skipped(written);
        return absl::OkStatus();
      }
    }
    Written(written);
    if (o_.step_hook) o_.step_hook("staged", rel);
    return absl::OkStatus();
  }

 protected:
  // The size of the regular file at `rel` in the media directory when it
  // holds `file`'s content (SameContent); nullopt when it differs, is
  // missing or cannot be looked at (the file is then read, and OnData says
  // why it cannot be written).
  std::optional<int64_t> Unchanged(const SourceFile& file, const std::string& rel) const override {
    if (!SameContent(*media_, file, rel)) return std::nullopt;
    return file.stored_size;
  }

  // Staged by the earlier restore this one took over, complete (its mtime
  // and its hash are set last) and still the source's file: moved in as it
  // is.
  bool Copied(const SourceFile& file, const std::string& rel) override {
    if (!resuming_ || !SameContent(*staging_, file, rel)) return false;
    staged_.insert(rel);
    ++resumed_;
    resumed_bytes_ += file.stored_size;
    Written(file.stored_size);
    return true;
  }

  // Whether the regular file at `rel` below `root` holds `file`'s content:
  // with the listing's SHA-256, when its content has that hash (the one
  // recorded for it while it keeps its size and mtime; with verify_hash,
  // hashed again), whatever its mtime; without, when it has the same size
  // and mtime (never with verify_hash: then only the content read tells).
  bool SameContent(const Dir& root, const SourceFile& file, const std::string& rel) const {
    if (file.stored_size < 0) return false;
    if (file.sha256.empty() && (o_.verify_hash || file.mtime == 0)) return false;
    const auto [dir_rel, name] = SplitRel(rel);
    absl::StatusOr<Dir> dir = root.OpenDir(dir_rel);
    if (!dir.ok()) return false;
    absl::StatusOr<struct stat> st = dir->Stat(name);
    if (!st.ok() || !S_ISREG(st->st_mode) || st->st_size != file.stored_size) return false;
    if (file.sha256.empty()) return st->st_mtime == file.mtime;
    const std::string hex = o_.verify_hash ? HexOf(HashFile(*dir, name)) : ContentHash(*dir, name);
    return hex == file.sha256;
  }

 public:
  // Whether the staging directory holds an earlier restore's files.
  void set_resuming(bool resuming) { resuming_ = resuming; }
  int64_t resumed() const { return resumed_; }
  int64_t resumed_bytes() const { return resumed_bytes_; }
  // The files below the staging directory staged or taken over by this run.
  const std::set<std::string>& staged() const { return staged_; }

 private:
  const Dir* media_;
  const Dir* staging_;
  SpaceGuard* space_;
  bool resuming_ = false;
  int64_t resumed_ = 0;
  int64_t resumed_bytes_ = 0;
  std::set<std::string> staged_;
  std::vector<char> buffer_;
};

// Removes below `dir` (the staging directory's `rel`) every file that is
// not in `keep` (what an earlier restore staged that this one's source no
// longer has, or holds unchanged in the media directory already), and the
// directories that leaves empty.
absl::Status PruneStaging(const Dir& dir, const std::string& rel,
                          const std::set<std::string>& keep) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, dir.List());
  for (const std::string& name : names) {
    const std::string child = rel.empty() ? name : absl::StrCat(rel, "/", name);
    ASSIGN_OR_RETURN(struct stat st, dir.Stat(name));
    if (S_ISDIR(st.st_mode)) {
      ASSIGN_OR_RETURN(Dir sub, dir.OpenDir(name));
      RETURN_IF_ERROR(PruneStaging(sub, child, keep));
      // (A directory left empty would be made in the media directory.)
      ASSIGN_OR_RETURN(std::vector<std::string> left, sub.List());
      if (left.empty()) RETURN_IF_ERROR(dir.RemoveTree(name));
    } else if (keep.count(child) == 0) {
      RETURN_IF_ERROR(dir.Unlink(name));
    }
  }
  return absl::OkStatus();
}

// Takes over the staging directory an earlier restore into the media
// directory `media_name` left in `parent` (the newest, when several):
// renamed to `staging_name` and opened, when it is still root's own
// (mode 0700, owned by this process's user: nobody else could have put
// anything in it); the others, and one that is not, are removed. nullopt
// when there is none.
std::optional<Dir> TakeOverStaging(const Dir& parent, const std::string& media_name,
                                   const std::string& staging_name) {
  const std::string prefix = absl::StrCat(".", media_name, ".mastodon-restore-op-");
  absl::StatusOr<std::vector<std::string>> names = parent.List();
  if (!names.ok()) return std::nullopt;
  std::vector<std::string> left;
  for (const std::string& name : *names) {
    if (absl::StartsWith(name, prefix) && name != staging_name) left.push_back(name);
  }
  if (left.empty()) return std::nullopt;
  // Operation ids sort by their start time.
  std::sort(left.begin(), left.end());
  for (size_t i = 0; i + 1 < left.size(); ++i) parent.RemoveTree(left[i]).IgnoreError();
  if (!parent.Rename(left.back(), parent, staging_name, /*no_replace=*/true).ok()) {
    parent.RemoveTree(left.back()).IgnoreError();
    return std::nullopt;
  }
  // Looked at through its descriptor, after the rename (whatever was at
  // the name before).
  absl::StatusOr<Dir> staging = parent.OpenDir(staging_name);
  absl::StatusOr<struct stat> st =
      staging.ok() ? staging->StatSelf() : absl::StatusOr<struct stat>(staging.status());
  if (!st.ok() || st->st_uid != ::geteuid() || (st->st_mode & 077) != 0) {
    parent.RemoveTree(staging_name).IgnoreError();
    return std::nullopt;
  }
  return std::move(*staging);
}

// Writes the media tree's files into a bucket (MediaRestoreOptions's
// target_bucket), several at once (BoundedWorkQueue: while one is sent the
// next is read). A file is skipped, never read, when the bucket holds an
// object of its size with the source object's ETag (a bucket source) or,
// for a big one, with its mtime in the x-amz-meta-mtime metadata this
// restore (and rclone) writes. Otherwise a file up to kPartSize is read
// whole and skipped when its MD5 is the object's ETag; a bigger one is
// written in parts of kPartSize (more for a file of over 10,000 parts),
// with verify_hash the upload abandoned at the end when the content proves
// to be the object's already.
class BucketUploadVisitor : public MediaTreeVisitor {
 public:
  static constexpr int64_t kPartSize = 16 << 20;
  static constexpr int64_t kHeldBytes = 64 << 20;
  static constexpr int64_t kCopyHeld = 64 << 10;

  BucketUploadVisitor(const MediaRestoreOptions& options, std::string root,
                      std::map<std::string, StoredObject> present, int64_t total_files,
                      int64_t total_bytes, MediaRestoreResult* result)
      : MediaTreeVisitor(options, std::move(root), total_files, total_bytes, result),
        present_(std::move(present)),
        copy_(options.source.bucket != nullptr &&
              options.target_bucket->CanCopyFrom(*options.source.bucket)),
        queue_(std::max(1, options.upload_parallel), kHeldBytes) {}

  absl::Status OnData(const SourceFile& file, ContentKind, ByteStream* data) override {
    RETURN_IF_ERROR(CheckCancelled());
    const std::string key = *Relative(file.path);
    // As much as the source declares (and one byte to see whether there is
    // more), so that a small file holds no part-sized buffer while queued.
    const size_t part = static_cast<size_t>(kPartSize) + 1;
    size_t want = part;
    if (file.stored_size >= 0 && file.stored_size < kPartSize) {
      want = static_cast<size_t>(file.stored_size) + 1;
    }
    std::string content;
    RETURN_IF_ERROR(ReadUpTo(data, want, &content));
    if (content.size() == want && want < part) {
      RETURN_IF_ERROR(ReadUpTo(data, part - want, &content));  // more than it said
    }
    if (static_cast<int64_t>(content.size()) > kPartSize) {
      return UploadInParts(file, key, std::move(content), data);
    }
    content.shrink_to_fit();
    const int64_t size = static_cast<int64_t>(content.size());
    if (SameObject(key, size, HexOf(Md5Of(content)), "")) {
      Skipped(size);
      return absl::OkStatus();
    }
    auto shared = std::make_shared<const std::string>(std::move(content));
    return queue_.Submit(size, [this, key, shared, headers = Headers(file, key)] {
      RETURN_IF_ERROR(o_.target_bucket->Put(key, *shared, headers).status());
      return Uploaded(key, static_cast<int64_t>(shared->size()));
    });
  }

  // Waits for the writes still under way; the first error.
  absl::Status Finish() { return queue_.Wait(); }

  bool Done() const override { return MediaTreeVisitor::Done() || !copy_error_.ok(); }

 protected:
  std::optional<int64_t> Unchanged(const SourceFile& file, const std::string& rel) const override {
    auto it = present_.find(rel);
    if (it == present_.end() || file.stored_size < 0 || it->second.size != file.stored_size) {
      return std::nullopt;
    }
    if (!file.etag.empty() && file.etag == it->second.etag) return file.stored_size;
    if (o_.verify_hash || file.stored_size <= kPartSize || file.mtime == 0) return std::nullopt;
    absl::StatusOr<StoredObject> head = o_.target_bucket->Head(rel);
    if (!head.ok()) return std::nullopt;
    auto mtime = head->metadata.find("mtime");
    if (mtime == head->metadata.end() || mtime->second != absl::StrCat(file.mtime)) {
      return std::nullopt;
    }
    return file.stored_size;
  }

  // From a bucket of the same service: the service copies the object itself
  // (several copies under way at once; each counts as kCopyHeld bytes, so
  // that at most a thousand or so wait while the listing goes on).
  bool Copied(const SourceFile& file, const std::string& rel) override {
    if (!copy_ || file.stored_size < 0 || file.stored_size > (int64_t{5} << 30)) return false;
    StoredObject object;
    object.key = o_.source.bucket_prefix + file.path;
    object.size = file.stored_size;
    object.etag = file.etag;
    copy_error_ = queue_.Submit(kCopyHeld, [this, object, rel, headers = Headers(file, rel)] {
      RETURN_IF_ERROR(o_.target_bucket->Copy(*o_.source.bucket, object, rel, headers).status());
      return Uploaded(rel, object.size);
    });
    return true;
  }

 private:
  // Sends `first` and the rest of `data` as the parts of `key`'s object.
  absl::Status UploadInParts(const SourceFile& file, const std::string& key, std::string first,
                             ByteStream* data) {
    int64_t part_size = kPartSize;
    if (file.stored_size > part_size * ObjectUpload::kMaxParts) {
      const int64_t mib = 1 << 20;
      part_size = (file.stored_size / ObjectUpload::kMaxParts / mib + 1) * mib;
    }
    std::shared_ptr<ObjectUpload> upload;
    {
      ASSIGN_OR_RETURN(std::unique_ptr<ObjectUpload> started,
                       o_.target_bucket->StartUpload(key, Headers(file, key)));
      upload = std::move(started);
    }
    // Both ETags the object may have if it holds these bytes: the MD5 of
    // the whole (a store that does not tell parts apart), and AWS's MD5 of
    // the parts' MD5s with their count.
    Md5 whole;
    Md5 of_parts;
    int64_t size = 0;
    int number = 0;
    std::string pending = std::move(first);
    for (bool end = false; !end;) {
      RETURN_IF_ERROR(CheckCancelled());
      const size_t want = static_cast<size_t>(part_size) + 1;
      if (pending.size() < want) {
        RETURN_IF_ERROR(ReadUpTo(data, want, &pending));
        end = pending.size() < want;
      }
      if (++number > ObjectUpload::kMaxParts) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unable to restore '", file.display, "' into the bucket: more than ",
            ObjectUpload::kMaxParts, " parts of ", part_size, " bytes (larger than it said)"));
      }
      const size_t take = end ? pending.size() : static_cast<size_t>(part_size);
      auto part = std::make_shared<const std::string>(pending.substr(0, take));
      pending.erase(0, take);
      whole.Update(*part);
      of_parts.Update(Md5Of(*part));
      size += static_cast<int64_t>(part->size());
      RETURN_IF_ERROR(queue_.Submit(static_cast<int64_t>(part->size()), [upload, part, number] {
        return upload->PutPart(number, *part);
      }));
    }
    RETURN_IF_ERROR(queue_.Wait());
    // Compared by content (verify_hash): the same object is kept as it is.
    // Otherwise it is replaced all the same, so that its x-amz-meta-mtime
    // lets the next run skip it without sending it.
    if (o_.verify_hash && SameObject(key, size, HexOf(whole.Final()),
                                     absl::StrCat(HexOf(of_parts.Final()), "-", number))) {
      upload->Abort();
      Skipped(size);
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(upload->Complete().status());
    return Uploaded(key, size);
  }

  // Whether the bucket holds `key` with `size` and one of the ETags.
  bool SameObject(const std::string& key, int64_t size, const std::string& etag,
                  const std::string& parts_etag) const {
    auto it = present_.find(key);
    return it != present_.end() && it->second.size == size &&
           (it->second.etag == etag || (!parts_etag.empty() && it->second.etag == parts_etag));
  }

  std::vector<std::string> Headers(const SourceFile& file, const std::string& key) const {
    std::vector<std::string> headers = o_.upload_headers;
    headers.push_back("Content-Type: " + MediaContentType(key));
    if (file.mtime != 0) headers.push_back(absl::StrCat("x-amz-meta-mtime: ", file.mtime));
    return headers;
  }

  absl::Status Uploaded(const std::string& key, int64_t size) {
    Written(size);
    if (o_.step_hook) o_.step_hook("uploaded", key);
    return absl::OkStatus();
  }

  static std::string Md5Of(const std::string& data) {
    Md5 md5;
    md5.Update(data);
    return md5.Final();
  }

  const std::map<std::string, StoredObject> present_;
  // Whether objects are copied by the service (a bucket source on the
  // target's service), and the first failure to queue a copy.
  const bool copy_;
  absl::Status copy_error_;
  BoundedWorkQueue queue_;
};

// Moves every staged file below `from` into the same place below `to`
// (same filesystem: renameat between the two descriptors; nothing is
// resolved by path). Directories are created below `to` as needed; a
// symlink or anything but a regular file at a file's name in `to` is
// FAILED_PRECONDITION, never followed or replaced; something that appears
// at a new file's name just before its rename is ALREADY_EXISTS.
// `rel` is `from`'s path below the staging root (for o.step_hook); `moved`
// (when given) counts the files moved.
absl::Status MoveIntoPlace(const Dir& from, const Dir& to, const std::string& rel,
                           const MediaRestoreOptions& o, int64_t* moved = nullptr) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, from.List());
  for (const std::string& name : names) {
    const std::string child_rel = rel.empty() ? name : absl::StrCat(rel, "/", name);
    ASSIGN_OR_RETURN(struct stat st, from.Stat(name));
    if (S_ISDIR(st.st_mode)) {
      ASSIGN_OR_RETURN(Dir from_sub, from.OpenDir(name));
      ASSIGN_OR_RETURN(Dir to_sub, to.MakeDir(name, 0755, o.uid, o.gid, /*allow_existing=*/true));
      RETURN_IF_ERROR(MoveIntoPlace(from_sub, to_sub, child_rel, o, moved));
      continue;
    }
    absl::StatusOr<struct stat> existing = to.Stat(name);
    if (existing.ok() && !S_ISREG(existing->st_mode)) {
      return UnableTo(absl::StatusCode::kFailedPrecondition, "replace", to.PathOf(name),
                      "it is not a regular file (a symlink is not followed)");
    }
    if (!existing.ok() && existing.status().code() != absl::StatusCode::kNotFound) {
      return existing.status();
    }
    if (o.step_hook) o.step_hook("move", child_rel);
    // A new file never replaces what appeared at its name since.
    RETURN_IF_ERROR(from.Rename(name, to, name, /*no_replace=*/!existing.ok()));
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
  const std::string name = Basename(staging_dir);
  if (staging_dir.find("/.") == std::string::npos || name.empty() || name[0] != '.' ||
      name.find(".mastodon-restore-op-") == std::string::npos) {
    return;
  }
  absl::StatusOr<Dir> parent = Dir::OpenPath(Parent(staging_dir));
  if (parent.ok()) parent->RemoveTree(name).IgnoreError();
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
  // Through descriptors, as the restore itself moves (nothing followed).
  ASSIGN_OR_RETURN(Dir parent, Dir::OpenPath(Parent(target_dir)));
  absl::StatusOr<Dir> staging = parent.OpenDir(Basename(staging_dir));
  if (!staging.ok()) {
    if (staging.status().code() == absl::StatusCode::kNotFound) return 0;
    return staging.status();
  }
  ASSIGN_OR_RETURN(Dir media_dir, parent.OpenDir(Basename(target_dir)));
  MediaRestoreOptions o;
  o.uid = uid;
  o.gid = gid;
  int64_t moved = 0;
  RETURN_IF_ERROR(MoveIntoPlace(*staging, media_dir, "", o, &moved));
  RETURN_IF_ERROR(parent.RemoveTree(Basename(staging_dir)));
  return moved;
}

std::string IdPartition(int64_t id) {
  std::string digits = absl::StrFormat("%09d", id);
  std::vector<std::string> groups;
  for (size_t i = 0; i + 3 <= digits.size(); i += 3) groups.push_back(digits.substr(i, 3));
  return absl::StrJoin(groups, "/");
}

absl::StatusOr<std::map<std::string, StoredObject>> ListMediaObjects(const ObjectStore& bucket,
                                                                     const CancelToken* cancel) {
  std::map<std::string, StoredObject> objects;
  for (const char* folder : {"accounts/", "cache/", "custom_emojis/", "media_attachments/"}) {
    std::string page;
    do {
      if (cancel != nullptr && cancel->cancelled()) {
        return absl::CancelledError("listing the bucket cancelled");
      }
      ASSIGN_OR_RETURN(ObjectPage listed, bucket.List(folder, page));
      for (StoredObject& object : listed.objects) {
        if (object.key.empty() || object.key.back() == '/') continue;
        std::string key = object.key;
        objects.emplace(std::move(key), std::move(object));
      }
      page = listed.next;
    } while (!page.empty());
  }
  return objects;
}

std::string MediaContentType(const std::string& path) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {".png", "image/png"},   {".jpg", "image/jpeg"},      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},   {".webp", "image/webp"},     {".avif", "image/avif"},
      {".heic", "image/heic"}, {".mp4", "video/mp4"},       {".m4v", "video/mp4"},
      {".webm", "video/webm"}, {".mov", "video/quicktime"}, {".mp3", "audio/mpeg"},
      {".ogg", "audio/ogg"},   {".oga", "audio/ogg"},       {".m4a", "audio/mp4"},
      {".wav", "audio/wav"},   {".flac", "audio/flac"},     {".opus", "audio/ogg"},
  };
  const std::string lower = absl::AsciiStrToLower(path);
  for (const auto& [ext, type] : kTypes) {
    if (absl::EndsWith(lower, ext)) return type;
  }
  return "application/octet-stream";
}

absl::StatusOr<MediaRestoreResult> RestoreMedia(const MediaRestoreOptions& o, CommandRunner* runner,
                                                Env* env) {
  MediaRestoreResult result;
  if (o.target_bucket == nullptr && (o.target_dir.empty() || o.target_dir[0] != '/')) {
    return absl::InvalidArgumentError("the media directory must be an absolute path");
  }
  // 1. The media tree and its size, from the caller's inventory.
  const v1::MediaInventory& media = o.inventory;
  std::string root = o.media_root;
  if (root.empty()) {
    if (media.files() == 0) {
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

  // Into a bucket: what it holds, then each file written unless it is there.
  if (o.target_bucket != nullptr) {
    ASSIGN_OR_RETURN(auto present, ListMediaObjects(*o.target_bucket, o.cancel));
    BucketUploadVisitor visitor(o, root, std::move(present), total_files, total_bytes, &result);
    absl::Status walked = WalkSource(o.source_path, o.source, runner, &visitor);
    absl::Status finished = visitor.Finish();
    RETURN_IF_ERROR(walked);
    RETURN_IF_ERROR(finished);
    RETURN_IF_ERROR(visitor.hostile());
    if (o.cancel != nullptr && o.cancel->cancelled()) {
      return absl::CancelledError("media restore cancelled");
    }
    return result;
  }

  // 2. The media directory and its parent, opened once (no symlink in any
  //    component) and used through their descriptors from here on.
  ASSIGN_OR_RETURN(Dir host_root, Dir::OpenPath("/"));
  const std::string parent_path = Parent(o.target_dir);
  const std::string media_name = Basename(o.target_dir);
  ASSIGN_OR_RETURN(Dir parent,
                   host_root.MakeDirs(parent_path.substr(1), 0755, std::nullopt, std::nullopt));
  ASSIGN_OR_RETURN(Dir media_dir, parent.MakeDir(media_name, 0755, o.uid, o.gid,
                                                 /*allow_existing=*/true));

  // 3. Room for it (what is already present may be skipped, but is not
  //    counted on); looked at again as the bytes arrive.
  ASSIGN_OR_RETURN(int64_t free_bytes, env->FreeBytes(parent_path));
  if (free_bytes < total_bytes + o.free_space_margin) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "unable to restore media into '", o.target_dir, "': ", total_bytes,
        " bytes needed (plus a margin of ", o.free_space_margin, "), ", free_bytes, " free"));
  }

  // 4. Extract into a staging directory beside the media directory: root's,
  //    mode 0700, so nobody else can enter it, and reached only through its
  //    descriptor (renaming it away or swapping a symlink in at its name
  //    changes nothing for the restore).
  //    What an earlier restore into this directory staged before it
  //    stopped is taken over.
  const std::string staging_name = Basename(MediaStagingDir(o.target_dir, o.operation_id));
  if (o.journal) RETURN_IF_ERROR(o.journal(false));
  RETURN_IF_ERROR(parent.RemoveTree(staging_name));
  std::optional<Dir> taken_over = TakeOverStaging(parent, media_name, staging_name);
  const bool resuming = taken_over.has_value();
  if (!resuming) {
    ASSIGN_OR_RETURN(Dir made, parent.MakeDir(staging_name, 0700, std::nullopt, std::nullopt,
                                              /*allow_existing=*/false));
    taken_over = std::move(made);
  }
  const Dir& staging = *taken_over;
  SpaceGuard space = SpaceGuard::ForDir(&staging, o.space_floor);
  MediaVisitor visitor(o, root, &media_dir, &staging, &space, total_files, total_bytes, &result);
  visitor.set_resuming(resuming);
  absl::Status walked = WalkSource(o.source_path, o.source, runner, &visitor);
  const bool hostile = !visitor.hostile().ok();
  if (walked.ok()) walked = visitor.hostile();
  if (walked.ok() && o.cancel != nullptr && o.cancel->cancelled()) {
    walked = absl::CancelledError("media restore cancelled");
  }
  result.files_resumed = visitor.resumed();
  result.bytes_resumed = visitor.resumed_bytes();
  // What the earlier restore staged that this source does not have (or the
  // media directory holds unchanged) stays out.
  if (walked.ok() && resuming) walked = PruneStaging(staging, "", visitor.staged());
  // 5. Only a complete extraction is moved into place.
  if (walked.ok()) walked = MR_FAILPOINT("media.after_extract");
  // Stopped by something the next run may not meet (the source unreachable
  // or changing, a cancel): what was staged is kept for the next restore
  // into this directory to take over. Hostile input, a full disk, any other
  // refusal: removed.
  const absl::StatusCode code = walked.code();
  if (!hostile &&
      (code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kCancelled ||
       code == absl::StatusCode::kAborted || code == absl::StatusCode::kDeadlineExceeded)) {
    return walked;
  }
  if (walked.ok() && o.stage_only) return result;
  if (walked.ok() && o.journal) walked = o.journal(true);
  if (walked.ok()) walked = MR_FAILPOINT("media.before_move");
  if (walked.ok()) walked = MoveIntoPlace(staging, media_dir, "", o);
  if (walked.ok()) walked = MR_FAILPOINT("media.after_move");
  RemoveStaging(parent, staging_name, staging);
  RETURN_IF_ERROR(walked);
  return result;
}

}  // namespace mastodon_restore
