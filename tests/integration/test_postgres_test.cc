// The real-PostgreSQL harness itself: it must give every integration test a
// working, isolated server, and fail loudly when it cannot.
#include "tests/harness/test_postgres.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <sys/stat.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(TestPostgresTest, StartsAPostgres15ServerWithASuperuser) {
  auto pg = TestPostgres::Start();
  ASSERT_OK(pg);
  auto version = (*pg)->QueryValue("SHOW server_version_num");
  ASSERT_OK(version);
  EXPECT_THAT(*version, StartsWith("15"));
  EXPECT_EQ(*(*pg)->QueryValue("SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user"),
            "true");
  // Fast settings for throwaway servers.
  EXPECT_EQ(*(*pg)->QueryValue("SHOW fsync"), "off");
}

TEST(TestPostgresTest, ReachableOverSocketAndTcp) {
  auto pg = TestPostgres::Start();
  ASSERT_OK(pg);
  EXPECT_EQ(PQping((*pg)->ConnInfo().c_str()), PQPING_OK);
  EXPECT_EQ(PQping((*pg)->TcpConnInfo().c_str()), PQPING_OK);
  EXPECT_THAT((*pg)->TcpConnInfo(), HasSubstr("host=127.0.0.1"));
}

TEST(TestPostgresTest, ClustersAreIsolatedAndStopWhenDestroyed) {
  auto a = TestPostgres::Start();
  auto b = TestPostgres::Start();
  ASSERT_OK(a);
  ASSERT_OK(b);
  EXPECT_NE((*a)->cluster()->port(), (*b)->cluster()->port());
  ASSERT_OK((*a)->Exec("CREATE DATABASE only_in_a"));
  EXPECT_EQ(*(*a)->QueryValue("SELECT count(*) FROM pg_database WHERE datname = 'only_in_a'"), "1");
  EXPECT_EQ(*(*b)->QueryValue("SELECT count(*) FROM pg_database WHERE datname = 'only_in_a'"), "0");

  std::string conninfo = (*a)->ConnInfo();
  std::string base = (*a)->base_dir();
  a->reset();
  EXPECT_EQ(PQping(absl::StrCat(conninfo, " connect_timeout=2").c_str()), PQPING_NO_RESPONSE);
  struct stat st;
  EXPECT_NE(::stat(base.c_str(), &st), 0) << "temp dir left behind: " << base;
}

TEST(TestPostgresTest, RealDumpToolsWorkAgainstIt) {
  auto pg = TestPostgres::Start();
  ASSERT_OK(pg);
  ASSERT_OK((*pg)->Exec("CREATE DATABASE fixture"));
  ASSERT_OK(
      (*pg)->Exec("CREATE TABLE t (id int primary key, s text); "
                  "INSERT INTO t VALUES (1, 'a\tb'), (2, NULL)",
                  "fixture"));
  auto runner = NewPosixCommandRunner();
  CommandSpec spec;
  spec.argv = {absl::StrCat((*pg)->bin_dir(), "/pg_dump"), "-d", (*pg)->ConnInfo("fixture")};
  spec.env = {"PATH=/usr/bin:/bin"};
  auto result = runner->Run(spec, nullptr);
  ASSERT_OK(result);
  ASSERT_TRUE(result->success()) << result->stderr_text;
  EXPECT_THAT(result->stdout_text, StartsWith("--\n-- PostgreSQL database dump\n--\n\n"));
  EXPECT_THAT(result->stdout_text,
              HasSubstr("COPY public.t (id, s) FROM stdin;\n1\ta\\tb\n2\t\\N\n\\.\n"));
}

// Every major the suite restores into starts, as the version asked for.
class EveryMajorTest : public ::testing::TestWithParam<int> {};

TEST_P(EveryMajorTest, StartsTheRequestedMajor) {
  auto pg = TestPostgres::Start(GetParam());
  ASSERT_OK(pg);
  EXPECT_EQ((*pg)->major(), GetParam());
  auto version = (*pg)->QueryValue("SELECT current_setting('server_version_num')::int / 10000");
  ASSERT_OK(version);
  EXPECT_EQ(*version, absl::StrCat(GetParam()));
  EXPECT_EQ(*(*pg)->QueryValue("SHOW fsync"), "off");
  ASSERT_OK((*pg)->Exec("CREATE DATABASE d"));
  ASSERT_OK((*pg)->Exec("CREATE TABLE t AS SELECT g FROM generate_series(1, 10) g", "d"));
  EXPECT_EQ(*(*pg)->QueryValue("SELECT sum(g) FROM t", "d"), "55");
}

INSTANTIATE_TEST_SUITE_P(Majors, EveryMajorTest, ::testing::ValuesIn(TestPostgres::AllMajors()),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return absl::StrCat("PostgreSQL", info.param);
                         });

TEST(TestPostgresTest, AMajorThatIsNotInstalledFailsWithTheInstallCommand) {
  auto pg = TestPostgres::Start(12);
  ASSERT_FALSE(pg.ok());
  EXPECT_EQ(pg.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(pg.status().message(), HasSubstr("scripts/install-postgres 12"));
}

TEST(TestPostgresTest, FailsWithTheReasonWhenTheServerCannotStart) {
  auto env = NewPosixEnv();
  auto runner = NewPosixCommandRunner();
  LocalClusterOptions options;
  options.base_dir = "/nonexistent/mr-no-such-dir";
  options.uid = ::geteuid() == 0 ? std::optional<uid_t>(65534) : std::nullopt;
  auto cluster = LocalCluster::Start(options, runner.get(), env.get());
  EXPECT_FALSE(cluster.ok());
  EXPECT_THAT(cluster.status().message(), HasSubstr("/nonexistent/mr-no-such-dir"));

  options.base_dir = "/tmp";
  options.bin_dir = "/nonexistent/bin";
  cluster = LocalCluster::Start(options, runner.get(), env.get());
  EXPECT_FALSE(cluster.ok());
  EXPECT_THAT(cluster.status().message(), HasSubstr("/nonexistent/bin/postgres"));
}

}  // namespace
}  // namespace testing
}  // namespace mastodon_restore
