#include "agent/media/media_export.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/common/digest.h"
#include "agent/common/dir.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {

namespace v1 = ::mastodon::restore::v1;

int CompareMediaPaths(const std::string& a, const std::string& b) {
  std::vector<absl::string_view> pa = absl::StrSplit(a, '/'), pb = absl::StrSplit(b, '/');
  for (size_t i = 0; i < pa.size() && i < pb.size(); ++i) {
    if (int c = pa[i].compare(pb[i]); c != 0) return c;
  }
  return pa.size() < pb.size() ? -1 : pa.size() > pb.size() ? 1 : 0;
}

namespace {

int64_t Nanos(const struct timespec& t) { return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec; }

}  // namespace

MediaFileState MediaFileState::Of(const struct stat& st) {
  return MediaFileState{st.st_size, Nanos(st.st_mtim), Nanos(st.st_ctim)};
}

std::string MediaHashCache::Find(const struct stat& st) const {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find({st.st_dev, st.st_ino});
  if (it == entries_.end() || !(it->second.state == MediaFileState::Of(st))) return "";
  return std::string(it->second.sha256.data(), it->second.sha256.size());
}

void MediaHashCache::Add(const struct stat& st, const std::string& sha256) {
  absl::MutexLock lock(&mu_);
  auto key = std::make_pair(st.st_dev, st.st_ino);
  if (sha256.size() != 32 || (entries_.size() >= max_entries_ && !entries_.contains(key))) return;
  Entry& e = entries_[key];
  e.state = MediaFileState::Of(st);
  std::copy(sha256.begin(), sha256.end(), e.sha256.begin());
}

int64_t MediaHashCache::hashed_bytes() const {
  absl::MutexLock lock(&mu_);
  return hashed_bytes_;
}

void MediaHashCache::CountHashed(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  hashed_bytes_ += bytes;
}

namespace {

struct Listing {
  std::string prefix;
  std::string after;
  int limit = 0;
  MediaHashing hashing;
  v1::ListMediaResponse* out = nullptr;
  bool full = false;
  int64_t hashed = 0;
};

// Hashes the file `name` of `dir` into `*sha256` (raw) and `*st` (as it
// was when opened); false when it cannot be read as a regular file.
// `*kept` says whether it stayed the same while it was read.
bool HashMediaFile(const Dir& dir, const std::string& name, struct stat* st, std::string* sha256,
                   bool* kept) {
  absl::StatusOr<UniqueFd> fd = dir.OpenFile(name);
  if (!fd.ok() || ::fstat(fd->get(), st) != 0) return false;
  *sha256 = Sha256OfFd(fd->get());
  if (sha256->empty()) return false;
  struct stat after;
  *kept = ::fstat(fd->get(), &after) == 0 && MediaFileState::Of(after) == MediaFileState::Of(*st);
  return true;
}

// Whether a path below the directory `dir` ("a/b") can start with
// `prefix`.
bool MayHoldPrefix(const std::string& dir, const std::string& prefix) {
  const std::string slashed = dir + "/";
  return absl::StartsWith(slashed, prefix) || absl::StartsWith(prefix, slashed);
}

absl::Status Walk(const Dir& dir, const std::string& rel, Listing* l) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, dir.List());
  for (const std::string& name : names) {
    if (l->full) return absl::OkStatus();
    const std::string child = rel.empty() ? name : absl::StrCat(rel, "/", name);
    absl::StatusOr<struct stat> st = dir.Stat(name);
    if (!st.ok()) continue;  // gone meanwhile
    if (S_ISDIR(st->st_mode)) {
      // Entered unless everything below it sorts before `after` (it sorts
      // before and is not on `after`'s path) or cannot match the prefix.
      if (!l->after.empty() && !absl::StartsWith(l->after, child + "/") &&
          CompareMediaPaths(child, l->after) < 0) {
        continue;
      }
      if (!MayHoldPrefix(child, l->prefix)) continue;
      absl::StatusOr<Dir> sub = dir.OpenDir(name);
      if (!sub.ok()) continue;  // replaced by a symlink meanwhile: left out
      RETURN_IF_ERROR(Walk(*sub, child, l));
      continue;
    }
    if (!S_ISREG(st->st_mode)) continue;
    if (!l->after.empty() && CompareMediaPaths(child, l->after) <= 0) continue;
    if (!absl::StartsWith(child, l->prefix)) continue;
    const int listed = l->out->files_size();
    if (listed == l->limit || (listed > 0 && l->hashed >= l->hashing.page_budget)) {
      l->full = true;
      l->out->set_next_page_token(l->out->files(listed - 1).path());
      return absl::OkStatus();
    }
    std::string sha256;
    if (MediaHashCache* cache = l->hashing.cache; cache != nullptr) {
      sha256 = cache->Find(*st);
      if (sha256.empty()) {
        bool kept = false;
        if (!HashMediaFile(dir, name, &*st, &sha256, &kept)) continue;  // gone meanwhile
        l->hashed += st->st_size;
        cache->CountHashed(st->st_size);
        if (kept) {
          cache->Add(*st, sha256);
        } else {
          sha256.clear();  // not the content listed
        }
      }
    }
    v1::HostMediaFile* f = l->out->add_files();
    f->set_path(child);
    f->set_size(st->st_size);
    f->set_mtime(st->st_mtim.tv_sec);
    if (!sha256.empty()) f->set_sha256(HexOf(sha256));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::ListMediaResponse> ListHostMedia(const std::string& media_dir,
                                                    const std::string& prefix,
                                                    const std::string& after, int limit,
                                                    const MediaHashing& hashing) {
  ASSIGN_OR_RETURN(Dir root, Dir::OpenPath(media_dir));
  v1::ListMediaResponse response;
  Listing l{prefix, after, limit > 0 ? limit : 1000, hashing, &response};
  RETURN_IF_ERROR(Walk(root, "", &l));
  return response;
}

absl::StatusOr<v1::ReadMediaResponse> ReadHostMedia(const std::string& media_dir,
                                                    const std::string& path, int64_t offset,
                                                    int64_t length, int64_t size, int64_t mtime) {
  if (path.empty() || path[0] == '/' || offset < 0) {
    return absl::InvalidArgumentError(absl::StrCat("'", path, "' is not a media path"));
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part.empty() || part == "." || part == "..") {
      return absl::InvalidArgumentError(absl::StrCat("'", path, "' is not a media path"));
    }
  }
  ASSIGN_OR_RETURN(Dir root, Dir::OpenPath(media_dir));
  ASSIGN_OR_RETURN(UniqueFd fd, root.OpenFile(path));
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) {
    return absl::InternalError(absl::StrCat("fstat ", path, ": ", std::strerror(errno)));
  }
  if ((size != 0 && st.st_size != size) || (mtime != 0 && st.st_mtim.tv_sec != mtime)) {
    return absl::AbortedError(absl::StrCat("the media file ", path, " changed while it was read"));
  }
  v1::ReadMediaResponse response;
  response.set_size(st.st_size);
  response.set_mtime(st.st_mtim.tv_sec);
  const int64_t n = std::max<int64_t>(0, std::min<int64_t>(length, st.st_size - offset));
  std::string data(n, '\0');
  int64_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd.get(), data.data() + got, n - got, offset + got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      return absl::InternalError(absl::StrCat("read ", path, ": ", std::strerror(errno)));
    }
    if (r == 0) break;  // truncated meanwhile
    got += r;
  }
  data.resize(got);
  *response.mutable_data() = std::move(data);
  return response;
}

}  // namespace mastodon_restore
