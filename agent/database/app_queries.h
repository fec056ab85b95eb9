// What the agent asks of a Mastodon database (its schema_migrations,
// statuses and media_attachments), as named queries over a PgSession
// connected to it. Like pgBackRest's db.h there is no general-purpose query
// function: each function runs the SQL its contract states and nothing else,
// and the modules above database/ call these instead of writing SQL.
#ifndef MR_AGENT_DATABASE_APP_QUERIES_H_
#define MR_AGENT_DATABASE_APP_QUERIES_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/database/pg_session.h"

namespace mastodon_restore {

// The versions recorded in public.schema_migrations; empty when the table
// does not exist. NULL versions are left out. A query error is returned as
// is.
absl::StatusOr<std::set<std::string>> AppliedMigrations(PgSession* session);

// The newest of `versions` ("" when empty). Versions are 14-digit
// timestamps: the longest wins, then the largest.
std::string NewestMigrationVersion(const std::set<std::string>& versions);

// NewestMigrationVersion(AppliedMigrations(session)): the database's schema
// version, "" when it has no migrations or no schema_migrations table.
absl::StatusOr<std::string> ReadSchemaVersion(PgSession* session);

// Whole days since the newest row of `statuses` was created (seconds
// divided by 86400, rounded toward zero); -1 when the table is empty. A
// newest status dated more than a day ahead gives a negative age. A query
// error (e.g. no statuses table) is returned as is.
absl::StatusOr<int64_t> NewestStatusAgeDays(PgSession* session);

// True when the table public.media_attachments exists. A query error is
// returned as is.
absl::StatusOr<bool> MediaAttachmentsTableExists(PgSession* session);

// True when public.media_attachments has a remote_url column (every
// Mastodon version does; the check keeps odd schemas readable). A query
// error is returned as is.
absl::StatusOr<bool> MediaAttachmentsHasRemoteUrl(PgSession* session);

// A media_attachments row whose original file lives in the instance's own
// media tree (media_attachments/files/<id partition>/original/<file>).
struct MediaReference {
  int64_t id = 0;
  std::string file_file_name;
};

// The rows of public.media_attachments that name a file, ordered by id.
// With `has_remote_url` (MediaAttachmentsHasRemoteUrl) rows with a non-empty
// remote_url are left out: their files are the remote server's, cached or
// not. Rows whose id is not an integer are left out. A query error (e.g. no
// such table) is returned as is.
absl::StatusOr<std::vector<MediaReference>> LocalMediaReferences(PgSession* session,
                                                                 bool has_remote_url);

// The attachments whose original files a Mastodon instance keeps in its
// media directory.
enum class MediaFileKind {
  kMediaAttachment,  // media_attachments.file
  kAvatar,           // accounts.avatar
  kHeader,           // accounts.header
  kCustomEmoji,      // custom_emojis.image
};

// Which of the tables holding them can be read, and their optional
// columns. A table counts only as an ordinary table without row-level
// security (as for ReadUsersOtpColumns: the database is a loaded dump).
struct MediaFileTables {
  bool media_attachments = false;
  bool accounts = false;
  bool custom_emojis = false;
  // <attachment>_storage_schema_version (Mastodon 3.2 and later): from 1,
  // remote records' files live under cache/.
  bool media_schema_version = false;
  bool avatar_schema_version = false;
  bool header_schema_version = false;
  bool emoji_schema_version = false;
  bool media_remote_url = false;
  bool media_status_id = false;
};

// A query error is returned as is.
absl::StatusOr<MediaFileTables> ReadMediaFileTables(PgSession* session);

// One record naming a file of `kind`.
struct MediaFileRow {
  int64_t id = 0;
  std::string file_name;
  // Not the instance's own: an attachment with a remote_url, a remote
  // account's avatar or header, a remote custom emoji.
  bool remote = false;
  int32_t storage_schema_version = 0;
  int64_t account_id = 0;  // attachments: their account; accounts: the id
  int64_t status_id = 0;   // attachments attached to a status, else 0
};

// Up to `limit` records of `kind` with a non-empty file name and an id
// above `after_id`, by id (keyset pages over any table size). Empty when
// `tables` says the table cannot be read. Rows whose id is not an integer
// are left out. A query error is returned as is.
absl::StatusOr<std::vector<MediaFileRow>> MediaFileRows(PgSession* session,
                                                        const MediaFileTables& tables,
                                                        MediaFileKind kind, int64_t after_id,
                                                        int limit);

// "username@domain" of the remote accounts among `ids` (local or unknown
// ids are absent). A query error is returned as is.
absl::StatusOr<std::map<int64_t, std::string>> RemoteAccountHandles(
    PgSession* session, const std::vector<int64_t>& ids);

// The two-factor columns public.users has: Mastodon before 4.3 keeps the
// secret in encrypted_otp_secret (with _iv and _salt), 4.3 adds otp_secret
// (Active Record encryption) and later versions drop the old trio.
struct UsersOtpColumns {
  bool users_table = false;
  bool otp_secret = false;
  bool legacy = false;        // encrypted_otp_secret, _iv and _salt, all three
  bool otp_required = false;  // otp_required_for_login
};

// Which of those columns exist. `users_table` only for an ordinary table
// without row-level security: the database is a loaded dump, and reading
// a view or a policy would run the dump's functions as the agent's role.
// A query error is returned as is.
absl::StatusOr<UsersOtpColumns> ReadUsersOtpColumns(PgSession* session);

// A users row holding a two-factor secret, as stored (never logged).
struct UserOtpSecret {
  int64_t id = 0;
  bool two_factor = false;  // otp_required_for_login
  std::optional<std::string> otp_secret;
  std::optional<std::string> encrypted_otp_secret;
  std::optional<std::string> encrypted_otp_secret_iv;
  std::optional<std::string> encrypted_otp_secret_salt;
};

struct UserOtpSample {
  int64_t otp_secret_rows = 0;  // rows with otp_secret set
  int64_t legacy_rows = 0;      // rows with encrypted_otp_secret set
  int64_t two_factor_users = 0;
  // At most `limit` rows with a secret: users with two-factor login first,
  // then by id.
  std::vector<UserOtpSecret> rows;
};

// The counts and the sample, reading only the columns `columns` says
// exist (the others are NULL). Empty without a users table. A query error
// is returned as is.
absl::StatusOr<UserOtpSample> SampleUserOtpSecrets(PgSession* session,
                                                   const UsersOtpColumns& columns, int limit);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_APP_QUERIES_H_
