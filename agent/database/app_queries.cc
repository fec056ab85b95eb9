#include "agent/database/app_queries.h"

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

}  // namespace mastodon_restore
