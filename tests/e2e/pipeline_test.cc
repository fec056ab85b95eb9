// End-to-end: the whole restore, through each runtime (snap, systemd,
// compose; the compose one against a real PostgreSQL 14, as Mastodon's
// compose file runs), against the recording fakes and the real PostgreSQL: order of the
// app's commands, failures and cancellation after the swap, a crash during
// the media, resuming a watch.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/app/runtime.h"
#include "agent/common/subprocess.h"
#include "mastodon/restore/v1/agent_service.pb.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/fake_host.h"
#include "tests/harness/restore_fixture.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"

namespace mastodon_restore {
namespace e2e {
namespace {

namespace v1 = mastodon::restore::v1;
using ::mastodon_restore::testing::WithoutRestrictKeys;
using ::testing::HasSubstr;

// The whole restore, through each runtime, against the recording fakes and
// the real PostgreSQL.
class PipelineCliTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    RequireDumpFixtures();
    StartPostgres();
    CreateSnapHost();
  }

  // The tools and first arguments the fakes saw, in order ("snap stop",
  // "mastodon-server.tootctl media refresh", ...).
  std::vector<std::string> CallSummary() {
    std::vector<std::string> out;
    for (const testing::FakeCall& c : host_->Calls()) {
      if (c.tool == "tootctl" || c.tool == "bundle") continue;  // run by the wrappers
      std::string line = c.tool;
      for (size_t i = 0; i < c.argv.size() && i < 2; ++i) line += " " + c.argv[i];
      out.push_back(line);
    }
    return out;
  }

  // pg_dump of a database without schema_migrations' rows (migrations add
  // some) and the per-run \restrict keys.
  std::string DumpWithoutMigrations(const std::string& db) {
    CommandSpec spec;
    spec.argv = {pg_->bin_dir() + "/pg_dump", "--exclude-table-data=schema_migrations", "-d",
                 pg_->ConnInfo(db)};
    spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    if (!r.ok()) return "";
    EXPECT_EQ(r->exit_code, 0) << r->stderr_text;
    return WithoutRestrictKeys(r->stdout_text);
  }

  // What psql makes of the plain dump of the same database.
  std::string ReferenceDump() {
    EXPECT_OK(pg_->Exec("CREATE DATABASE reference"));
    CommandSpec spec;
    spec.argv = {pg_->bin_dir() + "/psql",
                 "-X",
                 "-q",
                 "-v",
                 "ON_ERROR_STOP=1",
                 "-d",
                 pg_->ConnInfo("reference"),
                 "-f",
                 Fixture("plain.sql")};
    spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    return DumpWithoutMigrations("reference");
  }

  void StartSnapPipelineAgent() {
    HostLayout layout = host_->Layout();
    std::filesystem::create_directories(host_->dir() + "/common");
    std::ofstream(host_->dir() + "/common/mastodon.conf")
        << "LOCAL_DOMAIN=snap.example\nSECRET_KEY_BASE=host-secret\nOTP_SECRET=snap-otp\n"
           "DB_HOST=/tmp/sockets/pgbouncer\nDB_PASS=local-pass\n";
    StartAgent({"--runtime", "snap", "--snap-bin-dir", layout.snap_bin_dir, "--snap-app-dir",
                layout.snap_app_dir, "--snap-common-dir", host_->dir() + "/common",
                "--snap-postgres", pg_->ConnInfo(""), "--host-path", layout.host_path,
                "--allowed-root", MR_FIXTURE_DIR});
    // The installed snap ships two migrations the backup does not have.
    testing::FakeHost::AddMigrations(host_->snap_app_dir(), {"20200209000000", "20260701000000"},
                                     {"20260801000000"});
  }
};

TEST_F(PipelineCliTest, SnapExportRestoredWholeInOrder) {
  const std::string expected = ReferenceDump();
  ASSERT_THAT(expected, HasSubstr("COPY public.statuses"));
  // A live database to be replaced (and kept).
  ASSERT_OK(pg_->Exec("CREATE DATABASE mastodon OWNER mastodon"));
  ASSERT_OK(pg_->Exec("CREATE TABLE live_marker (x int)", "mastodon"));
  StartSnapPipelineAgent();

  CommandResult r =
      CliOnSocket({"--timeout", "120s", "restore", "--restore-config", Fixture("snap")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;

  // The database: the backup's Mastodon database, as psql would load it,
  // migrated, under the snap's name; the old one kept.
  EXPECT_THAT(r.stdout_text, HasSubstr("restored       mastodon\n"));
  EXPECT_THAT(r.stdout_text, HasSubstr("previous       mastodon__previous_"));
  EXPECT_EQ(DumpWithoutMigrations("mastodon"), expected);
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM schema_migrations", "mastodon"), "502");
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE "
                             "'mastodon__previous_%'"),
            "1");
  // The media, owned as the snap wants.
  struct stat st;
  ASSERT_EQ(::stat((host_->dir() + "/media/media_attachments/files/1/b.png").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 4321);
  EXPECT_EQ(st.st_uid, 584788u);
  EXPECT_EQ(st.st_gid, 0u);
  // The config: the backup's secrets, this host's database settings.
  std::string conf = ReadFileOrEmpty(host_->dir() + "/common/mastodon.conf");
  EXPECT_THAT(conf, HasSubstr("SECRET_KEY_BASE=snap-secret\n"));
  EXPECT_THAT(conf, HasSubstr("DB_PASS=local-pass\n"));
  EXPECT_THAT(conf, ::testing::Not(HasSubstr("DB_NAME=mastodon_production")));
  // The app's commands, in order, between stopping and starting the app.
  EXPECT_THAT(
      CallSummary(),
      ::testing::ElementsAre(
          "snap get mastodon-server", "snap stop mastodon-server.backend",
          "mastodon-server.db-migrate", "mastodon-server.tootctl preview_cards remove",
          "mastodon-server.tootctl media remove", "mastodon-server.tootctl media refresh",
          "mastodon-server.tootctl accounts refresh", "mastodon-server.tootctl feeds build",
          "snap start mastodon-server.sidekiq-pull", "snap services mastodon-server.sidekiq-push"));
  std::vector<testing::FakeCall> tootctl = host_->Calls("mastodon-server.tootctl");
  ASSERT_EQ(tootctl.size(), 5u);
  EXPECT_THAT(tootctl[2].argv, ::testing::ElementsAre("media", "refresh", "--days", "1", "--force",
                                                      "--concurrency", AgentConcurrency()));
  // The report.
  EXPECT_THAT(r.stdout_text, HasSubstr("migrate      succeeded"));
  EXPECT_THAT(r.stdout_text, HasSubstr("Regenerated feeds for 5 accounts"));
  r = CliOnSocket({"--json", "ops", "list"});
  const std::string id = OperationId(r.stdout_text);
  r = CliOnSocket({"--json", "ops", "show", id});
  std::string json = std::regex_replace(r.stdout_text, std::regex("\\s+"), "");
  EXPECT_THAT(json, HasSubstr("\"secrets_differing\":[\"SECRET_KEY_BASE\""));
  EXPECT_THAT(json, HasSubstr("\"media_files\":\"2\""));
  EXPECT_THAT(json, HasSubstr("\"schema_version\":\"20260801000000\""));
  EXPECT_THAT(json, HasSubstr("\"durations\":[{\"step\":\"open\""));
}

TEST_F(PipelineCliTest, ATootctlFailureAfterTheSwapSaysWhatToRunAgain) {
  StartSnapPipelineAgent();
  host_->Set("TOOTCTL_FAIL", "media remove");
  CommandResult r = CliOnSocket({"--timeout", "120s", "restore", Fixture("snap")});
  EXPECT_EQ(r.exit_code, 1) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("Redis::CannotConnectError"));
  EXPECT_THAT(r.stdout_text, HasSubstr("(step cleanup)"));
  // The database was swapped in and stays; the app runs again.
  EXPECT_THAT(r.stdout_text, HasSubstr("restored       mastodon\n"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM statuses", "mastodon"), "1000");
  EXPECT_EQ(CallSummary().back(), "snap start mastodon-server.sidekiq-pull");
  EXPECT_THAT(r.stdout_text, HasSubstr("next           mastodon-restore cleanup --days 1"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("next           mastodon-restore media-refresh --days 1 --force "
                        "--accounts --feeds"));
}

TEST_F(PipelineCliTest, CancelledDuringTheLoadLeavesTheLiveDatabaseAndRestartsTheApp) {
  // A big enough dump to cancel mid-load.
  ASSERT_OK(pg_->Exec("CREATE DATABASE big"));
  ASSERT_OK(
      pg_->Exec("CREATE TABLE t (id bigint, s text); INSERT INTO t SELECT i, "
                "repeat(md5(i::text), 8) FROM generate_series(1, 1500000) i",
                "big"));
  CommandSpec dump;
  dump.argv = {pg_->bin_dir() + "/pg_dump", "-d", pg_->ConnInfo("big"), "-f", dir_ + "/big.sql"};
  dump.env = {"PATH=/usr/bin:/bin"};
  ASSERT_OK(runner_->Run(dump, nullptr));
  ASSERT_OK(pg_->Exec("CREATE DATABASE mastodon"));
  ASSERT_OK(pg_->Exec("CREATE TABLE live_marker (x int); INSERT INTO live_marker VALUES (7)",
                      "mastodon"));
  HostLayout layout = host_->Layout();
  StartAgent({"--runtime", "snap", "--snap-bin-dir", layout.snap_bin_dir, "--snap-app-dir",
              layout.snap_app_dir, "--snap-postgres", pg_->ConnInfo(""), "--host-path",
              layout.host_path, "--allowed-root", dir_});
  CommandResult r = CliOnSocket({"restore", "--detach", dir_ + "/big.sql"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const std::string id = OperationId(r.stdout_text);
  bool loading = false;
  for (int i = 0; i < 400 && !loading; ++i) {
    loading = CliOnSocket({"ops", "show", id}).stdout_text.find("  load         running") !=
              std::string::npos;
    if (!loading) absl::SleepFor(absl::Milliseconds(25));
  }
  ASSERT_TRUE(loading);
  EXPECT_EQ(CliOnSocket({"ops", "cancel", id}).exit_code, 0);
  r = CliOnSocket({"--timeout", "60s", "ops", "watch", id});
  EXPECT_EQ(r.exit_code, 6) << r.stdout_text;
  r = CliOnSocket({"ops", "show", id});
  EXPECT_THAT(r.stdout_text, HasSubstr("state          cancelled"));
  EXPECT_THAT(r.stdout_text, HasSubstr("start_services succeeded"));
  EXPECT_EQ(*pg_->QueryValue("SELECT x FROM live_marker", "mastodon"), "7");
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE '%__restore_%'"),
            "0");
  EXPECT_EQ(CallSummary().back(), "snap start mastodon-server.sidekiq-pull");
}

TEST_F(PipelineCliTest, SourceInstallThroughSystemdAndCompose) {
  for (const std::string runtime : {"systemd", "compose"}) {
    SCOPED_TRACE(runtime);
    if (runtime == "compose") {
      // Mastodon's docker-compose file runs postgres:14-alpine.
      pg_.reset();
      StartPostgres(14);
      ASSERT_EQ(pg_->major(), 14);
    }
    auto host = testing::FakeHost::Create();
    ASSERT_OK(host);
    host_ = std::move(*host);
    const std::string db = "mastodon_" + runtime;
    const int port = pg_->cluster()->port();
    const std::string env_file =
        runtime == "systemd"
            ? absl::StrCat("DB_HOST=", pg_->cluster()->socket_dir(), "\nDB_PORT=", port,
                           "\nDB_USER=postgres\nDB_NAME=", db, "\nSECRET_KEY_BASE=x\n")
            : absl::StrCat("DB_HOST=db\nDB_PORT=", port, "\nDB_USER=postgres\nDB_NAME=", db,
                           "\nSECRET_KEY_BASE=x\n");
    if (runtime == "systemd") {
      host_->InstallSystemd(env_file);
      testing::FakeHost::AddMigrations(host_->app_dir(), {"20260701000000"}, {});
    } else {
      host_->InstallCompose(env_file);
      host_->Set("DOCKER_DB_IP", "127.0.0.1");
      host_->Set("DOCKER_DB_HOST", "127.0.0.1");
      host_->Set("DOCKER_DB_PORT", absl::StrCat(port));
      testing::FakeHost::AddMigrations(host_->compose_app_dir(), {"20260701000000"}, {});
    }
    HostLayout layout = host_->Layout();
    StartAgent({"--runtime", runtime, "--app-dir", layout.app_dir, "--systemd-unit-dir",
                layout.systemd_unit_dir, "--host-path", layout.host_path, "--allowed-root",
                MR_FIXTURE_DIR});
    CommandResult r =
        CliOnSocket({"--timeout", "120s", "restore", Fixture("source_install.tar.gz")});
    ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
    EXPECT_THAT(r.stdout_text, HasSubstr("restored       " + db + "\n"));
    EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM statuses", db), "1000");
    EXPECT_EQ(*pg_->QueryValue("SELECT max(version) FROM schema_migrations", db), "20260701000000");
    struct stat st;
    EXPECT_EQ(::stat((host_->app_dir() + "/public/system/media_attachments/files/109/000/001/"
                                         "original/cat.jpg")
                         .c_str(),
                     &st),
              0);
    std::vector<std::string> calls = CallSummary();
    if (runtime == "systemd") {
      EXPECT_THAT(
          calls, ::testing::ElementsAre("systemctl stop mastodon-web", "runuser -u mastodon",
                                        "runuser -u mastodon", "runuser -u mastodon",
                                        "runuser -u mastodon", "runuser -u mastodon",
                                        "runuser -u mastodon", "systemctl start mastodon-streaming",
                                        "systemctl is-active mastodon-sidekiq"));
      EXPECT_THAT(
          host_->Calls("runuser")[1].argv,
          ::testing::ElementsAre("-u", "mastodon", "--", "bin/tootctl", "preview_cards", "remove",
                                 "--days", "1", "--concurrency", AgentConcurrency()));
    } else {
      // (ps and inspect find the db container: "docker compose -f" and
      // "docker inspect --format".) Stop, the app's commands, start.
      std::vector<std::string> app;
      for (const testing::FakeCall& c : host_->Calls("docker")) {
        if (c.argv[0] == "compose" && c.argv[3] != "ps")
          app.push_back(c.argv[3] + " " + c.argv.back());
      }
      const std::string run = "run " + AgentConcurrency();
      // Then where web and streaming answer (the checks after the swap).
      EXPECT_THAT(app, ::testing::ElementsAre("stop sidekiq", "run db:migrate", run, run, run, run,
                                              run, "start sidekiq", "port 3000", "port 4000"));
      EXPECT_EQ(st.st_uid, 991u);
    }
    agent_->Signal(SIGTERM);
    agent_->Wait(absl::Seconds(30));
    agent_.reset();
  }
}

TEST_F(PipelineCliTest, AgentKilledDuringMediaLeavesTheMediaDirAsItWasAndTheNextRunGoesOn) {
  // A media tree big enough to kill the agent while it is extracted.
  const std::string src = dir_ + "/bigmedia";
  for (int i = 0; i < 6000; ++i) {
    const std::string sub = absl::StrCat(src, "/public/system/media_attachments/files/", i / 500);
    if (i % 500 == 0) std::filesystem::create_directories(sub);
    std::ofstream(absl::StrCat(sub, "/", i, ".png")) << std::string(2048, 'a' + i % 26);
  }
  const std::string media = host_->dir() + "/media";
  std::filesystem::create_directories(media + "/accounts");
  std::ofstream(media + "/accounts/kept.png") << "old";
  HostLayout layout = host_->Layout();
  auto start = [&] {
    StartAgent({"--runtime", "snap", "--snap-bin-dir", layout.snap_bin_dir, "--snap-postgres",
                pg_->ConnInfo(""), "--host-path", layout.host_path, "--allowed-root", dir_});
  };
  start();
  CommandResult r = CliOnSocket({"restore", "--media-only", "--detach", src});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const std::string id = OperationId(r.stdout_text);
  const std::string staging = host_->dir() + "/.media.mastodon-restore-" + id;
  bool extracting = false;
  // (Up to a minute: on a loaded machine the first 1,500 files can take
  // longer than the ten seconds this used to allow.)
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (!extracting && absl::Now() < deadline) {
    extracting = std::filesystem::exists(staging + "/media_attachments/files/3");
    if (!extracting) absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(extracting) << CliOnSocket({"ops", "show", id}).stdout_text;
  agent_->Signal(SIGKILL);
  agent_->Wait(absl::Seconds(10));
  agent_.reset();
  ASSERT_TRUE(std::filesystem::exists(staging));

  start();
  r = CliOnSocket({"ops", "show", id});
  EXPECT_THAT(r.stdout_text, HasSubstr("state          interrupted"));
  // The media directory is as it was: nothing half-restored reached it.
  EXPECT_EQ(ReadFileOrEmpty(media + "/accounts/kept.png"), "old");
  EXPECT_FALSE(std::filesystem::exists(media + "/media_attachments"));
  // What was staged is kept for the next restore, which takes it over.
  EXPECT_TRUE(std::filesystem::exists(staging));
  EXPECT_THAT(ReadFileOrEmpty(log_file()), HasSubstr("kept the media staging directory"));
  r = CliOnSocket({"--timeout", "120s", "restore", "--media-only", src});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("media succeeded: 6000 files written ("));
  EXPECT_THAT(r.stdout_text, HasSubstr("staged by an earlier restore that stopped)"));
  EXPECT_FALSE(std::filesystem::exists(staging));
  EXPECT_EQ(ReadFileOrEmpty(media + "/media_attachments/files/11/5999.png"),
            std::string(2048, 'a' + 5999 % 26));
  EXPECT_EQ(ReadFileOrEmpty(media + "/accounts/kept.png"), "old");
}

TEST_F(PipelineCliTest, CancelledDuringTheRefreshAfterTheSwapAndAWatcherResumingMidway) {
  StartSnapPipelineAgent();
  host_->Set("TOOTCTL_ITEMS", "100");
  host_->Set("TOOTCTL_SLEEP", "0.2");
  host_->Set("TOOTCTL_SLOW", "media refresh");
  CommandResult r = CliOnSocket({"restore", "--detach", Fixture("snap")});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const std::string id = OperationId(r.stdout_text);
  bool refreshing = false;
  for (int i = 0; i < 1200 && !refreshing; ++i) {
    refreshing = CliOnSocket({"ops", "show", id}).stdout_text.find("  refresh      running") !=
                 std::string::npos;
    if (!refreshing) absl::SleepFor(absl::Milliseconds(25));
  }
  ASSERT_TRUE(refreshing) << CliOnSocket({"ops", "show", id}).stdout_text;
  // A controller that reconnects asks for the events from where it was:
  // the old ones are replayed, then the live ones follow, without gaps.
  CommandResult watched;
  std::thread watcher([&] {
    watched = CliOnSocket({"--timeout", "120s", "--json", "ops", "watch", id, "--from", "3"});
  });
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(CliOnSocket({"ops", "cancel", id}).exit_code, 0);
  watcher.join();
  EXPECT_EQ(watched.exit_code, 6) << watched.stderr_text;
  std::vector<std::string> lines = absl::StrSplit(watched.stdout_text, '\n', absl::SkipEmpty());
  ASSERT_GT(lines.size(), 10u);
  int64_t expected = 3;
  for (const std::string& line : lines) {
    v1::WatchOperationResponse event;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &event).ok()) << line;
    EXPECT_EQ(event.event().sequence(), expected++);
  }
  r = CliOnSocket({"ops", "show", id});
  EXPECT_THAT(r.stdout_text, HasSubstr("state          cancelled"));
  EXPECT_THAT(r.stdout_text, HasSubstr("refresh      cancelled"));
  EXPECT_THAT(r.stdout_text, HasSubstr("start_services succeeded"));
  // The swap had happened: the restored database stays live, and the report
  // says what is left to do.
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM statuses", "mastodon"), "1000");
  EXPECT_THAT(r.stdout_text, HasSubstr("next           mastodon-restore media-refresh"));
  EXPECT_EQ(CallSummary().back(), "snap start mastodon-server.sidekiq-pull");
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
