#include "agent/database/app_queries.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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
  ASSIGN_OR_RETURN(
      PgRows rows,
      session->Query(absl::StrCat("SELECT id::text, ", required, ", ", otp, ", ", enc, ", ", iv,
                                  ", ", salt, " FROM public.users WHERE ", otp, " IS NOT NULL OR ",
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
