// The scripted PostgreSQL itself: it plays the script back, records what
// ran, and fails the test on anything the script does not expect.
#include "tests/harness/scripted_pg.h"

#include <gmock/gmock.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ScriptedPgTest, PlaysTheScriptAndRecordsWhatRan) {
  PgScript script;
  script.set_user("alice")
      .set_server_version(150004)
      .Connect("mastodon")
      .Query("SELECT count(*) FROM pg_database WHERE datname = $1", ScalarRow("1"), {"live"})
      .Exec("DROP DATABASE x");
  ScriptedPgConnector connector(&script);
  auto session = connector.Connect("host=/nowhere", "mastodon");
  ASSERT_OK(session);
  EXPECT_EQ((*session)->current_user(), "alice");
  EXPECT_EQ((*session)->server_version(), 150004);
  EXPECT_FALSE(script.done());
  auto rows = (*session)->Query("SELECT count(*) FROM pg_database WHERE datname = $1", {"live"});
  ASSERT_OK(rows);
  EXPECT_EQ(rows->Scalar(), "1");
  EXPECT_OK((*session)->Exec("DROP DATABASE x"));
  EXPECT_TRUE(script.done());
  EXPECT_THAT(script.ran(),
              ElementsAre("connect mastodon",
                          "SELECT count(*) FROM pg_database WHERE datname = $1 -- $1=live",
                          "DROP DATABASE x"));
}

TEST(ScriptedPgTest, ScriptedErrorsAreReturnedWithTheirServerError) {
  PgError error;
  error.sqlstate = "42P01";
  error.message = "relation \"statuses\" does not exist";
  PgScript script;
  script.Connect("gone", absl::UnavailableError("unable to connect to PostgreSQL"))
      .Fail("SELECT 1 FROM statuses", absl::InvalidArgumentError("ERROR: no statuses"), error);
  ScriptedPgConnector connector(&script);
  EXPECT_THAT(connector.Connect("", "gone"), StatusIs(absl::StatusCode::kUnavailable));
  ScriptedPgSession session(&script);
  EXPECT_THAT(session.Exec("SELECT 1 FROM statuses"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no statuses")));
  EXPECT_EQ(session.last_error().sqlstate, "42P01");
  EXPECT_TRUE(script.done());
}

TEST(ScriptedPgTest, UnexpectedSqlFailsTheTestAndReturnsInternal) {
  PgScript script;
  script.Query("SELECT 1", ScalarRow("1"));
  ScriptedPgSession session(&script);
  absl::StatusOr<PgRows> rows;
  EXPECT_NONFATAL_FAILURE(rows = session.Query("SELECT 2"), "unexpected query: SELECT 2");
  EXPECT_THAT(rows, StatusIs(absl::StatusCode::kInternal, HasSubstr("expected query: SELECT 1")));
  // The expected step is still due.
  EXPECT_OK(session.Query("SELECT 1"));
  EXPECT_NONFATAL_FAILURE(rows = session.Query("SELECT 1"), "the end of the script");
  EXPECT_THAT(rows, StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(script.ran(), ElementsAre("SELECT 2", "SELECT 1", "SELECT 1"));
}

TEST(ScriptedPgTest, OtherParametersOrAnExecWhereAQueryIsDueFail) {
  PgScript script;
  script.Query("SELECT $1", ScalarRow("a"), {"a"});
  ScriptedPgSession session(&script);
  EXPECT_NONFATAL_FAILURE(session.Query("SELECT $1", {"b"}).IgnoreError(), "$1=b");
  EXPECT_NONFATAL_FAILURE(session.Exec("SELECT $1").IgnoreError(), "unexpected exec");
  auto rows = session.Query("SELECT $1", {"a"});
  ASSERT_OK(rows);
  EXPECT_EQ(rows->Scalar(), "a");
}

TEST(ScriptedPgTest, AConnectionToAnotherDatabaseFails) {
  PgScript script;
  script.Connect("mastodon_production");
  ScriptedPgConnector connector(&script);
  absl::StatusOr<std::unique_ptr<PgSession>> session;
  EXPECT_NONFATAL_FAILURE(session = connector.Connect("", "postgres"),
                          "unexpected connection to 'postgres'");
  EXPECT_THAT(session, StatusIs(absl::StatusCode::kInternal));
  EXPECT_OK(connector.Connect("", "mastodon_production"));
}

TEST(ScriptedPgTest, StepsLeftFailTheTest) {
  EXPECT_NONFATAL_FAILURE(
      {
        PgScript script;
        script.Query("SELECT 1", ScalarRow("1")).Exec("SELECT 2");
        ScriptedPgSession session(&script);
        EXPECT_OK(session.Query("SELECT 1"));
      },
      "1 step(s) never ran, the first: exec: SELECT 2");
}

TEST(ScriptedPgTest, QuotesLikeTheServer) {
  PgScript script;
  ScriptedPgSession session(&script);
  EXPECT_EQ(session.QuoteIdentifier("a\"b"), "\"a\"\"b\"");
  EXPECT_EQ(session.QuoteLiteral("it's"), "'it''s'");
}

}  // namespace
}  // namespace testing
}  // namespace mastodon_restore
