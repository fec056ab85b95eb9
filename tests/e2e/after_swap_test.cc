// End-to-end: the checks after the swap, with the real agent and CLI, a
// real PostgreSQL, and the recording fakes of the host's service managers,
// which start fake app processes answering real HTTP
// (tests/harness/fake_app_server.py):
//   - a snap restore ends with one verdict line per check, all ok;
//   - an app whose health endpoint fails makes the operation fail after the
//     swap, naming the rollback, which then works;
//   - through systemd (the units' PORT), a sidekiq that does not stay up;
//   - search deploy, run when the app's env enables Elasticsearch, its
//     failure naming what to run again;
//   - a snap export's redis.rdb restored into the snap's Redis (a real
//     redis-server the fake snap stops and starts).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/app/runtime.h"
#include "agent/database/local_cluster.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/fake_host.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"
#include "tests/harness/test_redis.h"

namespace mastodon_restore {
namespace e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

class AfterSwapCliTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    RequireDumpFixtures();
    StartPostgres();
    CreateSnapHost();
  }

  // `env` is added to the host's mastodon.conf.
  void StartSnapAgent(const std::string& env = "") {
    HostLayout layout = host_->Layout();
    std::filesystem::create_directories(host_->dir() + "/common");
    std::ofstream(host_->dir() + "/common/mastodon.conf")
        << "LOCAL_DOMAIN=snap.example\nSECRET_KEY_BASE=host-secret\n"
        << env;
    // (StartAgent adds --app-web-address and --app-streaming-address: the
    // fake app's ports.)
    StartAgent({"--runtime", "snap", "--snap-bin-dir", layout.snap_bin_dir, "--snap-app-dir",
                layout.snap_app_dir, "--snap-common-dir", host_->dir() + "/common",
                "--snap-postgres", pg_->ConnInfo(""), "--host-path", layout.host_path,
                "--allowed-root", MR_FIXTURE_DIR});
  }

  // The lines of `text` that start with "check".
  static std::vector<std::string> CheckLines(const std::string& text) {
    std::vector<std::string> out;
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (absl::StartsWith(line, "check ")) out.push_back(std::string(line));
    }
    return out;
  }
  // The last non-empty line of `text`.
  static std::string LastLine(const std::string& text) {
    std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
    return lines.empty() ? "" : lines.back();
  }
};

TEST_F(AfterSwapCliTest, ASnapRestoreEndsWithAVerdictPerCheckOfTheStartedApp) {
  StartSnapAgent();
  CommandResult r = CliOnSocket({"--timeout", "120s", "restore", "--no-refresh", Fixture("snap")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  const std::string web = absl::StrCat("127.0.0.1:", host_->web_port());
  const std::string streaming = absl::StrCat("127.0.0.1:", host_->streaming_port());
  EXPECT_THAT(
      CheckLines(r.stdout_text),
      ::testing::ElementsAre("check          ok     web: GET http://" + web +
                                 "/health (the agent's configuration): 200 OK",
                             "check          ok     streaming: GET http://" + streaming +
                                 "/api/v1/streaming/health (the agent's configuration): 200 OK",
                             "check          ok     sidekiq: sidekiq processes: running"));
  EXPECT_THAT(LastLine(r.stdout_text), StartsWith("check          ok     sidekiq"));
  // The app's env does not enable Elasticsearch: no search deploy.
  EXPECT_THAT(r.stdout_text,
              HasSubstr("the app does not use a search server (ES_ENABLED is not true in the "
                        "host's env file"));
  // The service manager was asked about sidekiq after the start.
  std::vector<testing::FakeCall> snap = host_->Calls("snap");
  ASSERT_FALSE(snap.empty());
  EXPECT_THAT(snap.back().argv, ::testing::ElementsAre("services", "mastodon-server.sidekiq-push",
                                                       "mastodon-server.sidekiq-pull"));
}

TEST_F(AfterSwapCliTest, AnAppWhoseHealthFailsFailsTheRestoreAfterTheSwapNamingTheRollback) {
  ASSERT_OK(pg_->Exec("CREATE DATABASE mastodon OWNER mastodon"));
  ASSERT_OK(pg_->Exec("CREATE TABLE live_marker (x int)", "mastodon"));
  host_->Set("FAKE_HEALTH_FAIL", "web");
  StartSnapAgent();
  CommandResult r = CliOnSocket({"--timeout", "120s", "restore", "--no-refresh",
                                 "--app-check-timeout", "3", Fixture("snap")});
  EXPECT_NE(r.exit_code, 0) << r.stdout_text;
  EXPECT_THAT(r.stdout_text + r.stderr_text, HasSubstr("the restored app does not answer"));
  std::vector<std::string> checks = CheckLines(r.stdout_text);
  ASSERT_EQ(checks.size(), 3u) << r.stdout_text;
  EXPECT_THAT(checks[0], StartsWith("check          FAILED web: GET http://127.0.0.1:"));
  EXPECT_THAT(checks[0], HasSubstr("answered 503 Service Unavailable"));
  EXPECT_THAT(checks[1], StartsWith("check          ok     streaming"));
  EXPECT_THAT(checks[2], StartsWith("check          ok     sidekiq"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("next           mastodon-restore rollback --database mastodon   (the app "
                        "does not answer"));
  // The swap happened: the restored database is live, the previous kept.
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_tables WHERE tablename = 'live_marker'",
                             "mastodon"),
            "0");
  // The rollback the report names brings the previous database back.
  r = CliOnSocket({"--timeout", "60s", "rollback", "--database", "mastodon"});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_tables WHERE tablename = 'live_marker'",
                             "mastodon"),
            "1");
}

TEST_F(AfterSwapCliTest, ThroughSystemdTheUnitsPortsAreAskedAndADeadSidekiqFailsTheRestore) {
  const int port = pg_->cluster()->port();
  host_->InstallSystemd(absl::StrCat("DB_HOST=", pg_->cluster()->socket_dir(), "\nDB_PORT=", port,
                                     "\nDB_USER=postgres\nDB_NAME=mastodon_systemd\n"
                                     "SECRET_KEY_BASE=x\n"));
  host_->Set("FAKE_DEAD_SERVICES", "sidekiq");
  HostLayout layout = host_->Layout();
  StartAgent({"--runtime", "systemd", "--app-dir", layout.app_dir, "--systemd-unit-dir",
              layout.systemd_unit_dir, "--host-path", layout.host_path, "--allowed-root",
              MR_FIXTURE_DIR});
  CommandResult r = CliOnSocket({"--timeout", "120s", "restore", "--no-refresh", "--no-cleanup",
                                 "--app-check-timeout", "2", Fixture("source_install.tar.gz")});
  EXPECT_NE(r.exit_code, 0) << r.stdout_text;
  std::vector<std::string> checks = CheckLines(r.stdout_text);
  ASSERT_EQ(checks.size(), 3u) << r.stdout_text;
  EXPECT_EQ(checks[0],
            absl::StrCat("check          ok     web: GET http://127.0.0.1:", host_->web_port(),
                         "/health (PORT in mastodon-web.service): 200 OK"));
  EXPECT_THAT(checks[1], HasSubstr("(PORT in mastodon-streaming.service): 200 OK"));
  EXPECT_THAT(checks[2],
              StartsWith("check          FAILED sidekiq: sidekiq processes: mastodon-sidekiq is "
                         "failed"));
  // A new database (none was live): no rollback to name, the report says so.
  EXPECT_THAT(r.stdout_text, HasSubstr("no previous database to roll back to"));
}

TEST_F(AfterSwapCliTest, SearchDeployRunsWhenTheEnvEnablesElasticsearch) {
  host_->Set("TOOTCTL_ITEM_ERRORS", "1");
  StartSnapAgent("ES_ENABLED=true\nES_HOST=localhost\nES_PORT=9200\n");
  CommandResult r = CliOnSocket({"--timeout", "120s", "restore", "--no-refresh", Fixture("snap")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  // After the other tootctl commands, with the agent's concurrency; the
  // fake indexes 5 items in each of the 5 indices.
  std::vector<testing::FakeCall> tootctl = host_->Calls("mastodon-server.tootctl");
  ASSERT_FALSE(tootctl.empty());
  EXPECT_THAT(tootctl.back().argv,
              ::testing::ElementsAre("search", "deploy", "--concurrency", AgentConcurrency()));
  EXPECT_TRUE(tootctl.back().tty);
  EXPECT_THAT(r.stdout_text, HasSubstr("Indexed 25 records, de-indexed 0"));
  // An index's failed batch is a warning (tootctl exits 0).
  EXPECT_THAT(r.stdout_text, HasSubstr("Error while importing StatusesIndex"));
  // --no-search-deploy skips it.
  host_->ClearCalls();
  r = CliOnSocket(
      {"--timeout", "120s", "restore", "--no-refresh", "--no-search-deploy", Fixture("snap")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  for (const testing::FakeCall& c : host_->Calls("mastodon-server.tootctl")) {
    EXPECT_NE(c.argv[0], "search");
  }
  EXPECT_THAT(r.stdout_text, HasSubstr("not asked (--no-search-deploy)"));
}

TEST_F(AfterSwapCliTest, ASearchServerThatDoesNotAnswerFailsTheRestoreAfterTheSwap) {
  host_->Set("SEARCH_DOWN", "1");
  StartSnapAgent("ES_ENABLED=true\n");
  CommandResult r = CliOnSocket({"--timeout", "120s", "restore", "--no-refresh", Fixture("snap")});
  EXPECT_EQ(r.exit_code, 1) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text + r.stderr_text,
              HasSubstr("There was an issue connecting to the search server"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("next           tootctl search deploy, through the runtime, once the "
                        "search server answers"));
  // The app was started again.
  bool started = false;
  for (const testing::FakeCall& c : host_->Calls("snap")) started |= c.argv[0] == "start";
  EXPECT_TRUE(started);
}

TEST_F(AfterSwapCliTest, ASnapExportsRedisDumpIsRestoredIntoTheSnapsRedis) {
  // The snap's Redis: $SNAP_DATA/redis/data/redis.rdb, a real redis-server
  // with a password, holding keys of the host's own.
  auto port = PickFreePort();
  ASSERT_OK(port);
  const std::string data = host_->dir() + "/redis/data";
  std::filesystem::create_directories(data);
  host_->Set("FAKE_REDIS_PORT", absl::StrCat(*port));
  host_->Set("FAKE_REDIS_DIR", data);
  host_->Set("FAKE_REDIS_FILE", "redis.rdb");
  host_->Set("FAKE_REDIS_PASSWORD", "snap-redis-pw");
  auto cli = [&](const std::vector<std::string>& args) {
    return testing::RedisCli(*port, "snap-redis-pw", args);
  };
  auto snap = [&](const std::string& verb) {
    ASSERT_OK(host_->RunTool({"snap", verb, "mastodon-server.redis"}));
  };
  snap("start");
  // The daemonized redis-server is stopped whatever the test's end.
  absl::Cleanup stop_redis = [&] { snap("stop"); };
  ASSERT_EQ(cli({"SET", "host:only", "1"}), "OK\n");
  StartSnapAgent(absl::StrCat("REDIS_URL=redis://:snap-redis-pw@localhost:", *port, "\n"));

  // inspect names the dump and its keys.
  CommandResult r = CliOnSocket({"inspect", Fixture("snap")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("redis.rdb: 9 keys (RDB version "));

  host_->ClearCalls();
  r = CliOnSocket({"--timeout", "120s", "restore", Fixture("snap")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("9 keys loaded from redis.rdb, the old file kept as " +
                                       data + "/redis.rdb.before-restore-"));
  // Home feeds came with the dump: no feeds build.
  for (const testing::FakeCall& c : host_->Calls("mastodon-server.tootctl")) {
    EXPECT_NE(c.argv[0], "feeds");
  }
  // Redis was stopped and started between the app's stop and start.
  std::vector<std::string> snap_calls;
  for (const testing::FakeCall& c : host_->Calls("snap")) {
    if (c.argv[0] == "stop" || c.argv[0] == "start") {
      snap_calls.push_back(c.argv[0] + " " + c.argv[1]);
    }
  }
  EXPECT_THAT(snap_calls, ::testing::ElementsAre(
                              "stop mastodon-server.backend", "stop mastodon-server.redis",
                              "start mastodon-server.redis", "start mastodon-server.sidekiq-pull"));
  // What the snap's Redis loaded: the dump's keys, not the host's.
  EXPECT_EQ(cli({"DBSIZE"}), "7\n");
  EXPECT_EQ(cli({"-n", "1", "GET", "stat:processed"}), "42\n");
  EXPECT_EQ(cli({"EXISTS", "host:only"}), "0\n");
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
