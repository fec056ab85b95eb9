// The server-level named queries against the scripted PostgreSQL: the SQL
// each runs and how each reads the answer.
#include "agent/database/server_queries.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/harness/scripted_pg.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace testing {
namespace {

constexpr char kRoleSql[] =
    "SELECT rolsuper OR rolcreatedb FROM pg_roles WHERE rolname = current_user";
constexpr char kDataDirectorySql[] =
    "SELECT setting FROM pg_settings WHERE name = 'data_directory'";

TEST(ServerQueriesTest, RoleMayCreateDatabasesReadsTheRoleFlags) {
  PgScript script;
  script.Query(kRoleSql, ScalarRow("t")).Query(kRoleSql, ScalarRow("f"));
  ScriptedPgSession session(&script);
  auto superuser = RoleMayCreateDatabases(&session);
  ASSERT_OK(superuser);
  EXPECT_TRUE(*superuser);
  auto plain = RoleMayCreateDatabases(&session);
  ASSERT_OK(plain);
  EXPECT_FALSE(*plain);
}

TEST(ServerQueriesTest, RoleMayCreateDatabasesWithoutTheRoleIsFalse) {
  PgScript script;
  script.Query(kRoleSql, Rows({"?column?"}, {}));
  ScriptedPgSession session(&script);
  auto may = RoleMayCreateDatabases(&session);
  ASSERT_OK(may);
  EXPECT_FALSE(*may);
}

TEST(ServerQueriesTest, RoleMayCreateDatabasesReturnsTheQueryError) {
  PgScript script;
  script.Fail(kRoleSql, absl::UnavailableError("ERROR: server closed the connection"));
  ScriptedPgSession session(&script);
  EXPECT_THAT(RoleMayCreateDatabases(&session),
              StatusIs(absl::StatusCode::kUnavailable, ::testing::HasSubstr("server closed")));
}

TEST(ServerQueriesTest, ServerDataDirectoryIsEmptyWhenHidden) {
  PgScript script;
  script.Query(kDataDirectorySql, Rows({"setting"}, {{"/var/lib/postgresql/15/main"}}))
      .Query(kDataDirectorySql, Rows({"setting"}, {}));
  ScriptedPgSession session(&script);
  auto shown = ServerDataDirectory(&session);
  ASSERT_OK(shown);
  EXPECT_EQ(*shown, "/var/lib/postgresql/15/main");
  // Roles without pg_read_all_settings do not see the row.
  auto hidden = ServerDataDirectory(&session);
  ASSERT_OK(hidden);
  EXPECT_EQ(*hidden, "");
}

TEST(ServerQueriesTest, ServerDataDirectoryReturnsTheQueryError) {
  PgScript script;
  script.Fail(kDataDirectorySql, absl::InvalidArgumentError("ERROR: permission denied"));
  ScriptedPgSession session(&script);
  EXPECT_THAT(ServerDataDirectory(&session), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace testing
}  // namespace mastodon_restore
