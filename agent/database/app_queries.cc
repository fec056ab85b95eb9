#include "agent/database/app_queries.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {

absl::StatusOr<std::set<std::string>> AppliedMigrations(PgSession* session) {
  ASSIGN_OR_RETURN(PgRows exists,
                   session->Query("SELECT to_regclass('public.schema_migrations') IS NOT NULL"));
  std::set<std::string> applied;
  if (exists.Scalar() != "t") return applied;
  ASSIGN_OR_RETURN(PgRows rows, session->Query("SELECT version FROM public.schema_migrations"));
  for (const auto& row : rows.rows) {
    if (!row.empty() && row[0].has_value()) applied.insert(*row[0]);
  }
  return applied;
}

std::string NewestMigrationVersion(const std::set<std::string>& versions) {
  std::string best;
  for (const std::string& v : versions) {
    if (v.size() > best.size() || (v.size() == best.size() && v > best)) best = v;
  }
  return best;
}

absl::StatusOr<std::string> ReadSchemaVersion(PgSession* session) {
  ASSIGN_OR_RETURN(std::set<std::string> applied, AppliedMigrations(session));
  return NewestMigrationVersion(applied);
}

absl::StatusOr<int64_t> NewestStatusAgeDays(PgSession* session) {
  ASSIGN_OR_RETURN(
      PgRows newest,
      session->Query("SELECT coalesce(extract(epoch FROM now() - max(created_at))::bigint / 86400, "
                     "-1) FROM statuses"));
  const std::string value = newest.Scalar();
  int64_t days = -1;
  if (!value.empty() && !absl::SimpleAtoi(value, &days)) {
    return absl::InternalError(absl::StrCat("unexpected age of the newest status: '", value, "'"));
  }
  return days;
}

absl::StatusOr<bool> MediaAttachmentsTableExists(PgSession* session) {
  ASSIGN_OR_RETURN(PgRows table,
                   session->Query("SELECT to_regclass('public.media_attachments') IS NOT NULL"));
  return table.Scalar() == "t";
}

absl::StatusOr<bool> MediaAttachmentsHasRemoteUrl(PgSession* session) {
  ASSIGN_OR_RETURN(
      PgRows count,
      session->Query("SELECT count(*) FROM information_schema.columns WHERE table_schema = "
                     "'public' AND table_name = 'media_attachments' AND column_name = "
                     "'remote_url'"));
  return count.Scalar() != "0";
}

absl::StatusOr<std::vector<MediaReference>> LocalMediaReferences(PgSession* session,
                                                                 bool has_remote_url) {
  ASSIGN_OR_RETURN(PgRows rows, session->Query(absl::StrCat(
                                    "SELECT id, file_file_name FROM public.media_attachments WHERE "
                                    "file_file_name IS NOT NULL",
                                    has_remote_url ? " AND coalesce(remote_url, '') = ''" : "",
                                    " ORDER BY id")));
  std::vector<MediaReference> refs;
  refs.reserve(rows.rows.size());
  for (const auto& row : rows.rows) {
    MediaReference ref;
    if (row.size() < 2 || !row[0].has_value() || !absl::SimpleAtoi(*row[0], &ref.id)) continue;
    ref.file_file_name = row[1].value_or("");
    refs.push_back(std::move(ref));
  }
  return refs;
}

absl::StatusOr<MediaFileTables> ReadMediaFileTables(PgSession* session) {
  ASSIGN_OR_RETURN(
      PgRows rows,
      session->Query(
          "SELECT c.relname::text, (SELECT string_agg(a.attname::text, ',') FROM "
          "pg_catalog.pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT "
          "a.attisdropped) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = "
          "c.relnamespace WHERE n.nspname = 'public' AND c.relname IN ('media_attachments', "
          "'accounts', 'custom_emojis') AND c.relkind IN ('r', 'p') AND NOT c.relrowsecurity"));
  MediaFileTables t;
  for (const auto& row : rows.rows) {
    if (row.size() < 2 || !row[0].has_value()) continue;
    const std::string columns = absl::StrCat(",", row[1].value_or(""), ",");
    auto has = [&](const char* name) {
      return absl::StrContains(columns, absl::StrCat(",", name, ","));
    };
    if (*row[0] == "media_attachments" && has("id") && has("file_file_name")) {
      t.media_attachments = true;
      t.media_schema_version = has("file_storage_schema_version");
      t.media_remote_url = has("remote_url");
      t.media_status_id = has("status_id") && has("account_id");
    } else if (*row[0] == "accounts" && has("id") && has("avatar_file_name") &&
               has("header_file_name") && has("domain")) {
      t.accounts = true;
      t.avatar_schema_version = has("avatar_storage_schema_version");
      t.header_schema_version = has("header_storage_schema_version");
    } else if (*row[0] == "custom_emojis" && has("id") && has("image_file_name") && has("domain")) {
      t.custom_emojis = true;
      t.emoji_schema_version = has("image_storage_schema_version");
    }
  }
  return t;
}

absl::StatusOr<std::vector<MediaFileRow>> MediaFileRows(PgSession* session,
                                                        const MediaFileTables& t,
                                                        MediaFileKind kind, int64_t after_id,
                                                        int limit) {
  // id, file name, remote, storage schema version, account id, status id.
  std::string sql;
  auto version = [](bool has, const char* column) {
    return has ? absl::StrCat("coalesce(", column, ", 0)::text") : std::string("'0'");
  };
  switch (kind) {
    case MediaFileKind::kMediaAttachment:
      if (!t.media_attachments) return std::vector<MediaFileRow>();
      sql = absl::StrCat(
          "SELECT id::text AS record_id, file_file_name::text, ",
          t.media_remote_url ? "coalesce(remote_url::text, '') <> ''" : "false", ", ",
          version(t.media_schema_version, "file_storage_schema_version"), ", ",
          t.media_status_id ? "account_id::text, status_id::text" : "NULL, NULL",
          " FROM public.media_attachments WHERE coalesce(file_file_name::text, '') <> ''");
      break;
    case MediaFileKind::kAvatar:
    case MediaFileKind::kHeader: {
      if (!t.accounts) return std::vector<MediaFileRow>();
      const bool avatar = kind == MediaFileKind::kAvatar;
      const char* name = avatar ? "avatar_file_name" : "header_file_name";
      sql = absl::StrCat("SELECT id::text AS record_id, ", name, "::text, domain IS NOT NULL, ",
                         avatar ? version(t.avatar_schema_version, "avatar_storage_schema_version")
                                : version(t.header_schema_version, "header_storage_schema_version"),
                         ", id::text AS account_id, NULL FROM public.accounts WHERE coalesce(",
                         name, "::text, '') <> ''");
      break;
    }
    case MediaFileKind::kCustomEmoji:
      if (!t.custom_emojis) return std::vector<MediaFileRow>();
      sql =
          absl::StrCat("SELECT id::text AS record_id, image_file_name::text, domain IS NOT NULL, ",
                       version(t.emoji_schema_version, "image_storage_schema_version"),
                       ", NULL, NULL FROM public.custom_emojis WHERE "
                       "coalesce(image_file_name::text, '') <> ''");
      break;
  }
  // Every output column is named apart from id: ORDER BY id would take an
  // output column of that name (text: "10" before "9") over the table's.
  absl::StrAppend(&sql, " AND id > $1::bigint ORDER BY id LIMIT $2");
  ASSIGN_OR_RETURN(PgRows rows, session->Query(sql, {absl::StrCat(after_id), absl::StrCat(limit)}));
  std::vector<MediaFileRow> out;
  out.reserve(rows.rows.size());
  for (const auto& row : rows.rows) {
    MediaFileRow r;
    if (row.size() < 6 || !row[0].has_value() || !absl::SimpleAtoi(*row[0], &r.id)) continue;
    r.file_name = row[1].value_or("");
    r.remote = row[2].value_or("") == "t";
    if (!absl::SimpleAtoi(row[3].value_or("0"), &r.storage_schema_version)) {
      r.storage_schema_version = 0;
    }
    if (!row[4].has_value() || !absl::SimpleAtoi(*row[4], &r.account_id)) r.account_id = 0;
    if (!row[5].has_value() || !absl::SimpleAtoi(*row[5], &r.status_id)) r.status_id = 0;
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::map<int64_t, std::string>> RemoteAccountHandles(
    PgSession* session, const std::vector<int64_t>& ids) {
  std::map<int64_t, std::string> handles;
  if (ids.empty()) return handles;
  ASSIGN_OR_RETURN(
      PgRows rows,
      session->Query("SELECT id::text, username::text, domain::text FROM public.accounts WHERE "
                     "domain IS NOT NULL AND id = ANY ($1::bigint[])",
                     {absl::StrCat("{", absl::StrJoin(ids, ","), "}")}));
  for (const auto& row : rows.rows) {
    int64_t id = 0;
    if (row.size() < 3 || !row[0].has_value() || !absl::SimpleAtoi(*row[0], &id)) continue;
    handles[id] = absl::StrCat(row[1].value_or(""), "@", row[2].value_or(""));
  }
  return handles;
}

absl::StatusOr<UsersOtpColumns> ReadUsersOtpColumns(PgSession* session) {
  ASSIGN_OR_RETURN(
      PgRows rows,
      session->Query("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN "
                     "pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = "
                     "'public' AND c.relname = 'users' AND c.relkind IN ('r', 'p') AND NOT "
                     "c.relrowsecurity), "
                     "(SELECT string_agg(column_name::text, ',') FROM information_schema.columns "
                     "WHERE table_schema = 'public' AND table_name = 'users' AND column_name IN "
                     "('otp_secret', 'encrypted_otp_secret', 'encrypted_otp_secret_iv', "
                     "'encrypted_otp_secret_salt', 'otp_required_for_login'))"));
  UsersOtpColumns c;
  if (rows.rows.empty() || rows.rows[0].size() < 2) return c;
  c.users_table = rows.rows[0][0].value_or("") == "t";
  const std::string names = absl::StrCat(",", rows.rows[0][1].value_or(""), ",");
  auto has = [&](const char* name) {
    return absl::StrContains(names, absl::StrCat(",", name, ","));
  };
  c.otp_secret = has("otp_secret");
  c.legacy = has("encrypted_otp_secret") && has("encrypted_otp_secret_iv") &&
             has("encrypted_otp_secret_salt");
  c.otp_required = has("otp_required_for_login");
  return c;
}

absl::StatusOr<UserOtpSample> SampleUserOtpSecrets(PgSession* session,
                                                   const UsersOtpColumns& columns, int limit) {
  UserOtpSample sample;
  if (!columns.users_table || (!columns.otp_secret && !columns.legacy)) return sample;
  const std::string otp = columns.otp_secret ? "otp_secret::text" : "NULL::text";
  const std::string enc = columns.legacy ? "encrypted_otp_secret::text" : "NULL::text";
  const std::string iv = columns.legacy ? "encrypted_otp_secret_iv::text" : "NULL::text";
  const std::string salt = columns.legacy ? "encrypted_otp_secret_salt::text" : "NULL::text";
  const std::string required =
      columns.otp_required ? "coalesce(otp_required_for_login, false)" : "false";
  ASSIGN_OR_RETURN(PgRows counts, session->Query(absl::StrCat("SELECT count(", otp, "), count(",
                                                              enc, "), count(*) FILTER (WHERE ",
                                                              required, ") FROM public.users")));
  if (!counts.rows.empty() && counts.rows[0].size() == 3) {
    int64_t* into[] = {&sample.otp_secret_rows, &sample.legacy_rows, &sample.two_factor_users};
    for (size_t i = 0; i < 3; ++i) {
      if (!absl::SimpleAtoi(counts.rows[0][i].value_or("0"), into[i])) *into[i] = 0;
    }
  }
  ASSIGN_OR_RETURN(PgRows rows,
                   session->Query(absl::StrCat("SELECT id::text AS user_id, ", required, ", ", otp,
                                               ", ", enc, ", ", iv, ", ", salt,
                                               " FROM public.users WHERE ", otp, " IS NOT NULL OR ",
                                               enc, " IS NOT NULL ORDER BY 2 DESC, id LIMIT $1"),
                                  {absl::StrCat(limit)}));
  for (const auto& row : rows.rows) {
    UserOtpSecret s;
    if (row.size() < 6 || !row[0].has_value() || !absl::SimpleAtoi(*row[0], &s.id)) continue;
    s.two_factor = row[1].value_or("") == "t";
    s.otp_secret = row[2];
    s.encrypted_otp_secret = row[3];
    s.encrypted_otp_secret_iv = row[4];
    s.encrypted_otp_secret_salt = row[5];
    sample.rows.push_back(std::move(s));
  }
  return sample;
}

}  // namespace mastodon_restore
