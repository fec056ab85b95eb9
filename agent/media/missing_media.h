// The files a restored Mastodon database references that its media
// directory lacks: media attachments, account avatars and headers, custom
// emoji, each at the path Mastodon's Paperclip configuration
// (config/initializers/paperclip.rb) gives its original file:
//
//   :prefix_path:class/:attachment/:id_partition/original/:filename
//
// where :prefix_path is "cache/" for a record that is not the instance's
// own (an attachment with a remote_url, a remote account's avatar or header,
// a remote emoji) once its *_storage_schema_version is at least 1, else "".
// Local files missing are lost; remote ones are copies the origin servers
// still have, which PlanRefetch scopes `tootctl` commands to.
//
// The lookups are read-only and go through descriptors: the media
// directory is opened refusing symlinks, each record's directory below it
// with RESOLVE_BENEATH and no symlink, the file itself lstat'ed; a symlink,
// a directory or a device counts as missing. File names come from the
// (untrusted) dump: a name that is not one path component is counted as
// invalid and never looked up.
#ifndef MR_AGENT_MEDIA_MISSING_MEDIA_H_
#define MR_AGENT_MEDIA_MISSING_MEDIA_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/common/cancel_token.h"
#include "agent/common/object_store.h"
#include "agent/database/app_queries.h"
#include "agent/database/pg_session.h"
#include "mastodon/restore/v1/operation.pb.h"

namespace mastodon_restore {

// The original file's path below the media directory, e.g.
// "cache/accounts/avatars/000/000/009/original/remote.png".
std::string MediaFilePath(MediaFileKind kind, const MediaFileRow& row);

// "media_attachment", "avatar", "header", "custom_emoji".
const char* MediaFileKindName(MediaFileKind kind);

struct MissingMediaOptions {
  // The media directory (absolute; "public/system" of a source install,
  // the snap's and compose's equivalents).
  std::string media_dir;
  // The bucket the app keeps its media in (S3_ENABLED=true): the files are
  // looked up among its keys, at the same paths, instead of below
  // `media_dir`. The keys under Mastodon's four folders are listed once (a
  // request per 1,000 keys, not one per file; held in memory meanwhile).
  std::shared_ptr<const ObjectStore> bucket;
  // Files listed in the report, of the local and of the remote ones each.
  int max_listed = 100;
  // Rows read per query.
  int page = 5000;
  const CancelToken* cancel = nullptr;
};

// A remote file found missing, as the refetch needs it.
struct MissingRemoteFile {
  MediaFileKind kind = MediaFileKind::kMediaAttachment;
  int64_t id = 0;
  int64_t account_id = 0;
  int64_t status_id = 0;
};

struct MissingMediaScan {
  mastodon::restore::v1::MissingMedia report;  // summary left empty
  std::vector<MissingRemoteFile> remote;       // every remote file missing
};

// Reads every record naming a file (in pages of `page` rows) from `db` and
// looks each file up below `media_dir` (or in `bucket`). FAILED_PRECONDITION
// when the media directory cannot be opened (missing, or a symlink in its
// path); the bucket's listing error as is; CANCELLED when cancelled; a
// query error as is.
absl::StatusOr<MissingMediaScan> ScanMissingMedia(PgSession* db,
                                                  const MissingMediaOptions& options);

// What fetches the missing remote files again, for app/'s tootctl
// commands: `media refresh --status ID --force` per status; `media refresh
// --account HANDLE --force` for an account with attachments outside a
// status or with more than `statuses_per_account` statuses concerned
// (--force downloads that account's present files again too); `accounts
// refresh HANDLE...` for the accounts whose avatar or header is missing.
struct RefetchPlan {
  std::vector<int64_t> statuses;
  std::vector<std::string> media_accounts;
  std::vector<std::string> profile_accounts;
  // Files no command fetches again: remote custom emoji (fetched again when
  // a post uses them), files of accounts the database does not hold as
  // remote or whose handle could not be passed to tootctl safely.
  int64_t not_refetchable = 0;
  // Files left out because the commands would exceed `max_commands`.
  int64_t left_by_cap = 0;
};

struct RefetchLimits {
  int statuses_per_account = 5;
  // media refresh commands, at most.
  int max_commands = 100;
  // Handles per accounts refresh command.
  int accounts_per_command = 50;
};

// Groups `missing` into the scopes above, reading the accounts' handles
// from `db` (only when accounts is an ordinary table without row-level
// security; else every scope is a status). A query error is returned as
// is.
absl::StatusOr<RefetchPlan> PlanRefetch(PgSession* db,
                                        const std::vector<MissingRemoteFile>& missing,
                                        const RefetchLimits& limits);

// "username@domain" fit for tootctl's argv: neither part empty or starting
// with '-', no whitespace, control characters, '/' or a second '@'.
bool SafeAccountHandle(const std::string& handle);

}  // namespace mastodon_restore

#endif  // MR_AGENT_MEDIA_MISSING_MEDIA_H_
