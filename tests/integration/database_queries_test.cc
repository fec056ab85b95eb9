// The named queries of database/ (server_queries.h, app_queries.h) and the
// real PgConnector against the real PostgreSQL 15 the harness starts: the
// SQL the unit tests script is the SQL the server answers as expected.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/app/app_tasks.h"
#include "agent/database/app_queries.h"
#include "agent/database/pg_connection.h"
#include "agent/database/server_queries.h"
#include "agent/database/verify.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

class DatabaseQueriesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pg = TestPostgres::Start();
    ASSERT_OK(pg);
    pg_ = std::move(*pg);
    ASSERT_OK(pg_->Exec("CREATE DATABASE app"));
  }
  std::unique_ptr<PgSession> Connect(const std::string& dbname) {
    auto session = connector_.Connect(pg_->ConnInfo(), dbname);
    EXPECT_OK(session);
    return session.ok() ? std::move(*session) : nullptr;
  }

  std::unique_ptr<TestPostgres> pg_;
  LibpqConnector connector_;
};

TEST_F(DatabaseQueriesTest, LibpqConnectorOpensASessionOnTheNamedDatabase) {
  auto session = Connect("app");
  ASSERT_NE(session, nullptr);
  auto db = session->Query("SELECT current_database()");
  ASSERT_OK(db);
  EXPECT_EQ(db->Scalar(), "app");
  EXPECT_EQ(session->server_version() / 10000, 15);
  auto missing = connector_.Connect(pg_->ConnInfo(), "no_such_db");
  EXPECT_THAT(missing, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no_such_db")));
  EXPECT_THAT(std::string(missing.status().message()), Not(HasSubstr(pg_->ConnInfo())));
}

TEST_F(DatabaseQueriesTest, RoleMayCreateDatabasesAndServerDataDirectoryFollowTheRole) {
  ASSERT_OK(pg_->Exec("CREATE ROLE plain LOGIN; CREATE ROLE creator LOGIN CREATEDB"));
  auto session = Connect("postgres");
  ASSERT_NE(session, nullptr);
  auto superuser = RoleMayCreateDatabases(session.get());
  ASSERT_OK(superuser);
  EXPECT_TRUE(*superuser);
  auto dir = ServerDataDirectory(session.get());
  ASSERT_OK(dir);
  EXPECT_EQ(*dir, *pg_->QueryValue("SHOW data_directory"));
  EXPECT_FALSE(dir->empty());

  ASSERT_OK(session->Exec("SET ROLE creator"));
  auto creator = RoleMayCreateDatabases(session.get());
  ASSERT_OK(creator);
  EXPECT_TRUE(*creator);

  ASSERT_OK(session->Exec("SET ROLE plain"));
  auto plain = RoleMayCreateDatabases(session.get());
  ASSERT_OK(plain);
  EXPECT_FALSE(*plain);
  // Hidden from roles without pg_read_all_settings.
  auto hidden = ServerDataDirectory(session.get());
  ASSERT_OK(hidden);
  EXPECT_EQ(*hidden, "");
}

TEST_F(DatabaseQueriesTest, SchemaMigrations) {
  auto session = Connect("app");
  ASSERT_NE(session, nullptr);
  auto none = AppliedMigrations(session.get());
  ASSERT_OK(none);
  EXPECT_THAT(*none, IsEmpty());
  ASSERT_OK(
      pg_->Exec("CREATE TABLE schema_migrations (version varchar PRIMARY KEY);"
                "INSERT INTO schema_migrations VALUES ('20240101000000'), "
                "('20250101000000'), ('20230101000000'), ('9')",
                "app"));
  auto applied = AppliedMigrations(session.get());
  ASSERT_OK(applied);
  EXPECT_THAT(*applied, ElementsAre("20230101000000", "20240101000000", "20250101000000", "9"));
  auto version = ReadSchemaVersion(session.get());
  ASSERT_OK(version);
  EXPECT_EQ(*version, "20250101000000");

  // The same through app_tasks with the real connector (the default).
  AppDatabase db;
  db.conninfo = pg_->ConnInfo();
  db.database = "app";
  auto read = ReadSchemaVersion(db);
  ASSERT_OK(read);
  EXPECT_EQ(*read, "20250101000000");
}

TEST_F(DatabaseQueriesTest, NewestStatusAgeDays) {
  auto session = Connect("app");
  ASSERT_NE(session, nullptr);
  EXPECT_THAT(NewestStatusAgeDays(session.get()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("statuses")));
  ASSERT_OK(
      pg_->Exec("CREATE TABLE statuses (id bigint PRIMARY KEY, created_at timestamp NOT "
                "NULL)",
                "app"));
  auto empty = NewestStatusAgeDays(session.get());
  ASSERT_OK(empty);
  EXPECT_EQ(*empty, -1);
  ASSERT_OK(
      pg_->Exec("INSERT INTO statuses VALUES (1, now() - interval '10 days'), "
                "(2, now() - interval '3 days 2 hours')",
                "app"));
  auto days = NewestStatusAgeDays(session.get());
  ASSERT_OK(days);
  EXPECT_EQ(*days, 3);
}

TEST_F(DatabaseQueriesTest, MediaAttachments) {
  auto session = Connect("app");
  ASSERT_NE(session, nullptr);
  auto absent = MediaAttachmentsTableExists(session.get());
  ASSERT_OK(absent);
  EXPECT_FALSE(*absent);
  EXPECT_THAT(LocalMediaReferences(session.get(), false),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("media_attachments")));

  // An odd schema without remote_url first.
  ASSERT_OK(
      pg_->Exec("CREATE TABLE media_attachments (id bigint PRIMARY KEY, file_file_name "
                "varchar);"
                "INSERT INTO media_attachments VALUES (20, 'b.png'), (3, 'a.png'), "
                "(4, NULL)",
                "app"));
  auto exists = MediaAttachmentsTableExists(session.get());
  ASSERT_OK(exists);
  EXPECT_TRUE(*exists);
  auto no_remote = MediaAttachmentsHasRemoteUrl(session.get());
  ASSERT_OK(no_remote);
  EXPECT_FALSE(*no_remote);
  auto all = LocalMediaReferences(session.get(), false);
  ASSERT_OK(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].id, 3);
  EXPECT_EQ((*all)[0].file_file_name, "a.png");
  EXPECT_EQ((*all)[1].id, 20);
  EXPECT_EQ((*all)[1].file_file_name, "b.png");

  ASSERT_OK(
      pg_->Exec("ALTER TABLE media_attachments ADD COLUMN remote_url varchar;"
                "INSERT INTO media_attachments VALUES (30, 'r.png', 'https://x/r.png'), "
                "(31, 'e.png', '')",
                "app"));
  auto has_remote = MediaAttachmentsHasRemoteUrl(session.get());
  ASSERT_OK(has_remote);
  EXPECT_TRUE(*has_remote);
  auto local = LocalMediaReferences(session.get(), true);
  ASSERT_OK(local);
  std::vector<int64_t> ids;
  for (const MediaReference& ref : *local) ids.push_back(ref.id);
  EXPECT_THAT(ids, ElementsAre(3, 20, 31));
}

}  // namespace

TEST_F(DatabaseQueriesTest, VerifyChecksTheSequencesColumnsDrawFrom) {
  // Mastodon's statuses: timestamp ids far above the owned statuses_id_seq
  // they mix in; a serial table whose sequence is behind; an identity one.
  ASSERT_OK(pg_->Exec(
      "CREATE SEQUENCE statuses_id_seq;"
      "CREATE TABLE statuses (id bigint NOT NULL PRIMARY KEY DEFAULT"
      " ((extract(epoch FROM now()) * 1000)::bigint << 16) | (nextval('statuses_id_seq') & 65535));"
      "ALTER SEQUENCE statuses_id_seq OWNED BY statuses.id;"
      "INSERT INTO statuses SELECT FROM generate_series(1, 3);"
      "CREATE TABLE follows (id bigserial PRIMARY KEY);"
      "INSERT INTO follows SELECT FROM generate_series(1, 5);"
      "SELECT setval('follows_id_seq', 2);"
      "CREATE TABLE tags (id int GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY);"
      "INSERT INTO tags VALUES (40);",
      "app"));
  auto session = Connect("app");
  auto result = VerifyDatabase(session.get(), "app", VerifyExpectations());
  ASSERT_OK(result);
  std::string sequences;
  for (const auto& c : result->checks()) {
    if (c.name() == "sequences") sequences = c.message();
  }
  EXPECT_EQ(sequences, "behind their column: follows_id_seq, tags_id_seq");
  ASSERT_OK(
      pg_->Exec("SELECT setval('follows_id_seq', 5); SELECT setval('tags_id_seq', 40)", "app"));
  result = VerifyDatabase(session.get(), "app", VerifyExpectations());
  ASSERT_OK(result);
  for (const auto& c : result->checks()) {
    if (c.name() == "sequences") {
      EXPECT_EQ(c.message(), "2 owned sequences up to date");
    }
  }
}

}  // namespace testing
}  // namespace mastodon_restore
