// The named queries on a Mastodon database against the scripted PostgreSQL:
// the SQL each runs and how each reads the answer.
#include "agent/database/app_queries.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/harness/scripted_pg.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kMigrationsTableSql[] = "SELECT to_regclass('public.schema_migrations') IS NOT NULL";
constexpr char kMigrationsSql[] = "SELECT version FROM public.schema_migrations";
constexpr char kStatusAgeSql[] =
    "SELECT coalesce(extract(epoch FROM now() - max(created_at))::bigint / 86400, -1) FROM "
    "statuses";
constexpr char kMediaTableSql[] = "SELECT to_regclass('public.media_attachments') IS NOT NULL";
constexpr char kRemoteUrlSql[] =
    "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND "
    "table_name = 'media_attachments' AND column_name = 'remote_url'";
constexpr char kLocalMediaSql[] =
    "SELECT id, file_file_name FROM public.media_attachments WHERE file_file_name IS NOT NULL "
    "AND coalesce(remote_url, '') = '' ORDER BY id";
constexpr char kAllMediaSql[] =
    "SELECT id, file_file_name FROM public.media_attachments WHERE file_file_name IS NOT NULL "
    "ORDER BY id";

TEST(AppQueriesTest, AppliedMigrationsReadsTheVersionsLeavingNullsOut) {
  PgScript script;
  script.Query(kMigrationsTableSql, ScalarRow("t"))
      .Query(kMigrationsSql,
             Rows({"version"}, {{"20240101000000"}, {std::nullopt}, {"20230101000000"}}));
  ScriptedPgSession session(&script);
  auto applied = AppliedMigrations(&session);
  ASSERT_OK(applied);
  EXPECT_THAT(*applied, ElementsAre("20230101000000", "20240101000000"));
}

TEST(AppQueriesTest, AppliedMigrationsWithoutTheTableIsEmpty) {
  PgScript script;
  // Only the existence check runs.
  script.Query(kMigrationsTableSql, ScalarRow("f"));
  ScriptedPgSession session(&script);
  auto applied = AppliedMigrations(&session);
  ASSERT_OK(applied);
  EXPECT_THAT(*applied, IsEmpty());
  EXPECT_THAT(script.ran(), ElementsAre(kMigrationsTableSql));
}

TEST(AppQueriesTest, AppliedMigrationsReturnsTheQueryError) {
  PgScript script;
  script.Query(kMigrationsTableSql, ScalarRow("t"))
      .Fail(kMigrationsSql, absl::InvalidArgumentError("ERROR: permission denied"));
  ScriptedPgSession session(&script);
  EXPECT_THAT(AppliedMigrations(&session),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("permission denied")));
}

TEST(AppQueriesTest, NewestMigrationVersionPrefersLongerThenLarger) {
  EXPECT_EQ(NewestMigrationVersion({}), "");
  EXPECT_EQ(NewestMigrationVersion({"20230101000000", "20240101000000", "99"}), "20240101000000");
  EXPECT_EQ(NewestMigrationVersion({"9", "10"}), "10");
}

TEST(AppQueriesTest, ReadSchemaVersionIsTheNewestApplied) {
  PgScript script;
  script.Query(kMigrationsTableSql, ScalarRow("t"))
      .Query(kMigrationsSql, Rows({"version"}, {{"20250101000000"}, {"20240101000000"}}))
      .Query(kMigrationsTableSql, ScalarRow("f"));
  ScriptedPgSession session(&script);
  auto version = ReadSchemaVersion(&session);
  ASSERT_OK(version);
  EXPECT_EQ(*version, "20250101000000");
  auto none = ReadSchemaVersion(&session);
  ASSERT_OK(none);
  EXPECT_EQ(*none, "");
}

TEST(AppQueriesTest, NewestStatusAgeDays) {
  PgScript script;
  script.Query(kStatusAgeSql, ScalarRow("3"))
      .Query(kStatusAgeSql, ScalarRow("-1"))
      .Query(kStatusAgeSql, ScalarRow("soon"))
      .Fail(kStatusAgeSql,
            absl::InvalidArgumentError("ERROR: relation \"statuses\" does not exist"));
  ScriptedPgSession session(&script);
  auto days = NewestStatusAgeDays(&session);
  ASSERT_OK(days);
  EXPECT_EQ(*days, 3);
  auto empty = NewestStatusAgeDays(&session);
  ASSERT_OK(empty);
  EXPECT_EQ(*empty, -1);
  EXPECT_THAT(NewestStatusAgeDays(&session),
              StatusIs(absl::StatusCode::kInternal, HasSubstr("'soon'")));
  EXPECT_THAT(NewestStatusAgeDays(&session),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not exist")));
}

TEST(AppQueriesTest, MediaAttachmentsTableExists) {
  PgScript script;
  script.Query(kMediaTableSql, ScalarRow("t"))
      .Query(kMediaTableSql, ScalarRow("f"))
      .Fail(kMediaTableSql, absl::UnavailableError("ERROR: connection lost"));
  ScriptedPgSession session(&script);
  auto exists = MediaAttachmentsTableExists(&session);
  ASSERT_OK(exists);
  EXPECT_TRUE(*exists);
  auto missing = MediaAttachmentsTableExists(&session);
  ASSERT_OK(missing);
  EXPECT_FALSE(*missing);
  EXPECT_THAT(MediaAttachmentsTableExists(&session), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(AppQueriesTest, MediaAttachmentsHasRemoteUrl) {
  PgScript script;
  script.Query(kRemoteUrlSql, ScalarRow("1"))
      .Query(kRemoteUrlSql, ScalarRow("0"))
      .Fail(kRemoteUrlSql, absl::UnavailableError("ERROR: connection lost"));
  ScriptedPgSession session(&script);
  auto has = MediaAttachmentsHasRemoteUrl(&session);
  ASSERT_OK(has);
  EXPECT_TRUE(*has);
  auto lacks = MediaAttachmentsHasRemoteUrl(&session);
  ASSERT_OK(lacks);
  EXPECT_FALSE(*lacks);
  EXPECT_THAT(MediaAttachmentsHasRemoteUrl(&session), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(AppQueriesTest, LocalMediaReferencesLeavesRemoteRowsOutWhenItCan) {
  PgScript script;
  script
      .Query(kLocalMediaSql,
             Rows({"id", "file_file_name"},
                  {{"109", "a.png"}, {std::nullopt, "b.png"}, {"x", "c.png"}, {"110", "d.mp4"}}))
      .Query(kAllMediaSql, Rows({"id", "file_file_name"}, {{"7", "e.jpg"}}));
  ScriptedPgSession session(&script);
  auto local = LocalMediaReferences(&session, /*has_remote_url=*/true);
  ASSERT_OK(local);
  ASSERT_EQ(local->size(), 2u);
  EXPECT_EQ((*local)[0].id, 109);
  EXPECT_EQ((*local)[0].file_file_name, "a.png");
  EXPECT_EQ((*local)[1].id, 110);
  EXPECT_EQ((*local)[1].file_file_name, "d.mp4");
  auto all = LocalMediaReferences(&session, /*has_remote_url=*/false);
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].id, 7);
  EXPECT_EQ((*all)[0].file_file_name, "e.jpg");
}

TEST(AppQueriesTest, LocalMediaReferencesReturnsTheQueryError) {
  PgScript script;
  script.Fail(kLocalMediaSql, absl::InvalidArgumentError(
                                  "ERROR: relation \"public.media_attachments\" does not exist"));
  ScriptedPgSession session(&script);
  EXPECT_THAT(LocalMediaReferences(&session, true),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("does not exist")));
}

}  // namespace
}  // namespace testing
}  // namespace mastodon_restore
