#include "agent/media/missing_media.h"

#include <sys/stat.h>

#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/common/dir.h"
#include "agent/common/status_macros.h"
#include "agent/media/media_restore.h"

namespace mastodon_restore {

namespace v1 = ::mastodon::restore::v1;

namespace {

constexpr MediaFileKind kKinds[] = {MediaFileKind::kMediaAttachment, MediaFileKind::kAvatar,
                                    MediaFileKind::kHeader, MediaFileKind::kCustomEmoji};

const char* ClassAndAttachment(MediaFileKind kind) {
  switch (kind) {
    case MediaFileKind::kMediaAttachment:
      return "media_attachments/files";
    case MediaFileKind::kAvatar:
      return "accounts/avatars";
    case MediaFileKind::kHeader:
      return "accounts/headers";
    case MediaFileKind::kCustomEmoji:
      return "custom_emojis/images";
  }
  return "";
}

std::string RecordDir(MediaFileKind kind, const MediaFileRow& row) {
  return absl::StrCat(row.remote && row.storage_schema_version >= 1 ? "cache/" : "",
                      ClassAndAttachment(kind), "/", IdPartition(row.id), "/original");
}

// Looks files up below the media directory, keeping the last record
// directory open (rows come by id: neighbours share their directories).
class FileLookup {
 public:
  explicit FileLookup(Dir media) : media_(std::move(media)) {}

  // True for a regular file at `dir`/`name`; false when anything in the way
  // is missing or is not a directory (or the file not a regular file). An
  // unexpected error (EACCES, EMFILE) is returned.
  absl::StatusOr<bool> IsRegularFile(const std::string& dir, const std::string& name) {
    if (dir != open_path_) {
      open_path_ = dir;
      absl::StatusOr<Dir> opened = media_.OpenDir(dir);
      if (opened.ok()) {
        open_ = std::move(*opened);
      } else if (absl::IsNotFound(opened.status()) || absl::IsFailedPrecondition(opened.status())) {
        open_.reset();
      } else {
        open_path_.clear();
        return opened.status();
      }
    }
    if (!open_.has_value()) return false;
    absl::StatusOr<struct stat> st = open_->Stat(name);
    if (absl::IsNotFound(st.status())) return false;
    if (!st.ok()) return st.status();
    return S_ISREG(st->st_mode);
  }

 private:
  Dir media_;
  std::string open_path_;
  std::optional<Dir> open_;
};

v1::MissingMediaFile Listed(MediaFileKind kind, const MediaFileRow& row, const std::string& path) {
  v1::MissingMediaFile f;
  f.set_kind(MediaFileKindName(kind));
  f.set_id(row.id);
  f.set_path(path);
  f.set_account_id(row.account_id);
  f.set_status_id(row.status_id);
  return f;
}

}  // namespace

const char* MediaFileKindName(MediaFileKind kind) {
  switch (kind) {
    case MediaFileKind::kMediaAttachment:
      return "media_attachment";
    case MediaFileKind::kAvatar:
      return "avatar";
    case MediaFileKind::kHeader:
      return "header";
    case MediaFileKind::kCustomEmoji:
      return "custom_emoji";
  }
  return "";
}

std::string MediaFilePath(MediaFileKind kind, const MediaFileRow& row) {
  return absl::StrCat(RecordDir(kind, row), "/", row.file_name);
}

absl::StatusOr<MissingMediaScan> ScanMissingMedia(PgSession* db, const MissingMediaOptions& o) {
  // Where the files are looked up: the media directory, or the bucket.
  std::optional<FileLookup> files;
  std::map<std::string, StoredObject> keys;
  if (o.bucket != nullptr) {
    ASSIGN_OR_RETURN(keys, ListMediaObjects(*o.bucket, o.cancel));
  } else {
    absl::StatusOr<Dir> media = Dir::OpenPath(o.media_dir);
    if (!media.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the media directory cannot be opened: ", media.status().message()));
    }
    files.emplace(std::move(*media));
  }
  auto present_at = [&](const std::string& dir, const std::string& name) -> absl::StatusOr<bool> {
    if (files.has_value()) return files->IsRegularFile(dir, name);
    return keys.count(absl::StrCat(dir, "/", name)) != 0;
  };
  ASSIGN_OR_RETURN(MediaFileTables tables, ReadMediaFileTables(db));
  MissingMediaScan scan;
  v1::MissingMedia& r = scan.report;
  r.set_media_dir(o.bucket != nullptr ? o.bucket->Describe("") : o.media_dir);
  for (MediaFileKind kind : kKinds) {
    int64_t after = 0;
    for (;;) {
      if (o.cancel != nullptr && o.cancel->cancelled()) {
        return absl::CancelledError("media check cancelled");
      }
      ASSIGN_OR_RETURN(std::vector<MediaFileRow> rows,
                       MediaFileRows(db, tables, kind, after, o.page));
      for (const MediaFileRow& row : rows) {
        after = row.id;
        r.set_referenced(r.referenced() + 1);
        if (!CheckComponent(row.file_name).ok()) {
          r.set_invalid_names(r.invalid_names() + 1);
          continue;
        }
        ASSIGN_OR_RETURN(bool present, present_at(RecordDir(kind, row), row.file_name));
        if (present) {
          r.set_present(r.present() + 1);
        } else if (row.remote) {
          r.set_remote_missing(r.remote_missing() + 1);
          if (r.remote_files_size() < o.max_listed) {
            *r.add_remote_files() = Listed(kind, row, MediaFilePath(kind, row));
          }
          scan.remote.push_back({kind, row.id, row.account_id, row.status_id});
        } else {
          r.set_local_missing(r.local_missing() + 1);
          if (r.local_files_size() < o.max_listed) {
            *r.add_local_files() = Listed(kind, row, MediaFilePath(kind, row));
          }
        }
      }
      if (static_cast<int>(rows.size()) < o.page) break;
    }
  }
  return scan;
}

bool SafeAccountHandle(const std::string& handle) {
  const size_t at = handle.find('@');
  if (at == std::string::npos || at == 0 || at + 1 >= handle.size()) return false;
  if (handle.find('@', at + 1) != std::string::npos) return false;
  if (handle[0] == '-' || handle[at + 1] == '-') return false;
  for (unsigned char c : handle) {
    if (c <= ' ' || c == 0x7f || c == '/') return false;
  }
  return true;
}

absl::StatusOr<RefetchPlan> PlanRefetch(PgSession* db,
                                        const std::vector<MissingRemoteFile>& missing,
                                        const RefetchLimits& limits) {
  RefetchPlan plan;
  // Attachments by account: the statuses concerned, and the files outside
  // any status; accounts whose avatar or header is missing.
  struct AccountMedia {
    std::map<int64_t, int64_t> statuses;  // status id -> files
    int64_t files = 0;
    int64_t unattached = 0;
  };
  std::map<int64_t, AccountMedia> media;
  std::map<int64_t, int64_t> profiles;  // account id -> files
  std::set<int64_t> account_ids;
  for (const MissingRemoteFile& f : missing) {
    switch (f.kind) {
      case MediaFileKind::kMediaAttachment: {
        AccountMedia& a = media[f.account_id];
        ++a.files;
        if (f.status_id != 0) {
          ++a.statuses[f.status_id];
        } else {
          ++a.unattached;
        }
        account_ids.insert(f.account_id);
        break;
      }
      case MediaFileKind::kAvatar:
      case MediaFileKind::kHeader:
        ++profiles[f.id];
        account_ids.insert(f.id);
        break;
      case MediaFileKind::kCustomEmoji:
        ++plan.not_refetchable;
        break;
    }
  }
  account_ids.erase(0);
  // Handles only from an ordinary accounts table (a dump's view or policy
  // would run its functions as the agent's role): else by status only.
  ASSIGN_OR_RETURN(MediaFileTables tables, ReadMediaFileTables(db));
  if (!tables.accounts) account_ids.clear();
  const std::vector<int64_t> ids(account_ids.begin(), account_ids.end());
  absl::StatusOr<std::map<int64_t, std::string>> found = RemoteAccountHandles(db, ids);
  if (!found.ok()) return found.status();
  const std::map<int64_t, std::string>& handles = *found;
  auto handle_of = [&](int64_t id) -> std::string {
    auto it = handles.find(id);
    return it != handles.end() && SafeAccountHandle(it->second) ? it->second : std::string();
  };
  int commands = 0;
  for (const auto& [account_id, a] : media) {
    const std::string handle = handle_of(account_id);
    const bool by_account =
        !handle.empty() &&
        (a.unattached > 0 || static_cast<int>(a.statuses.size()) > limits.statuses_per_account);
    if (by_account) {
      if (commands >= limits.max_commands) {
        plan.left_by_cap += a.files;
        continue;
      }
      ++commands;
      plan.media_accounts.push_back(handle);
      continue;
    }
    // By status; files outside a status whose account has no usable handle
    // cannot be scoped.
    plan.not_refetchable += a.unattached;
    for (const auto& [status, files] : a.statuses) {
      if (commands >= limits.max_commands) {
        plan.left_by_cap += files;
        continue;
      }
      ++commands;
      plan.statuses.push_back(status);
    }
  }
  for (const auto& [account_id, files] : profiles) {
    const std::string handle = handle_of(account_id);
    if (handle.empty()) {
      plan.not_refetchable += files;
    } else {
      plan.profile_accounts.push_back(handle);
    }
  }
  return plan;
}

}  // namespace mastodon_restore
