// The checks after the swap (agent/app/app_checks.h) with a fake HTTP
// prober and a fake clock (no time passes but the clock's), and where each
// runtime says the app answers and whether sidekiq runs, with a FakeEnv and
// a FakeCommandRunner. The same checks against fake app processes serving
// real HTTP are in tests/e2e/after_swap_test.cc.
#include "agent/app/app_checks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>

#include "agent/app/runtime.h"
#include "agent/common/http_probe.h"
#include "tests/harness/fake_command_runner.h"
#include "tests/harness/fake_env.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace {

namespace v1 = ::mastodon::restore::v1;
using ::mastodon_restore::testing::FakeCommandRunner;
using ::mastodon_restore::testing::FakeEnv;
using ::mastodon_restore::testing::FakeReply;
using ::mastodon_restore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Answers from a script per path; the last answer repeats.
class FakeProber : public HttpProber {
 public:
  std::map<std::string, std::deque<absl::StatusOr<HttpAnswer>>> answers;
  std::vector<std::string> asked;
  absl::StatusOr<HttpAnswer> Get(const std::string& host, int port, const std::string& path,
                                 absl::Duration) override {
    asked.push_back(absl::StrCat(host, ":", port, path));
    auto& q = answers[path];
    if (q.empty()) return absl::UnavailableError("connection refused");
    absl::StatusOr<HttpAnswer> a = q.front();
    if (q.size() > 1) q.pop_front();
    return a;
  }
};

HttpAnswer Answer(int status, const std::string& reason) { return HttpAnswer{status, reason, ""}; }

// A runtime whose endpoints and sidekiq state are set by the test.
class CheckedRuntime : public Runtime {
 public:
  absl::StatusOr<std::vector<HealthEndpoint>> endpoints = std::vector<HealthEndpoint>{
      {"web", "127.0.0.1", 3000, "/health", "test"},
      {"streaming", "127.0.0.1", 4000, "/api/v1/streaming/health", "test"}};
  mutable std::deque<absl::Status> sidekiq = {absl::OkStatus()};

  v1::RuntimeKind kind() const override { return v1::RUNTIME_KIND_SYSTEMD; }
  std::string name() const override { return "test"; }
  absl::StatusOr<AppDatabase> Database() const override { return AppDatabase(); }
  absl::StatusOr<MediaLocation> Media() const override { return MediaLocation(); }
  std::vector<std::string> Services() const override { return {"web"}; }
  std::vector<CommandSpec> ServiceCommands(bool) const override { return {}; }
  absl::StatusOr<CommandSpec> Tootctl(const std::vector<std::string>&) const override {
    return CommandSpec();
  }
  absl::StatusOr<CommandSpec> DbMigrate(bool) const override { return CommandSpec(); }
  std::string EnvFilePath() const override { return ""; }
  std::string MastodonVersion() const override { return ""; }
  std::string CodeDir() const override { return ""; }
  absl::StatusOr<std::vector<HealthEndpoint>> HealthEndpoints() const override { return endpoints; }
  absl::Status SidekiqRunning() const override {
    absl::Status s = sidekiq.front();
    if (sidekiq.size() > 1) sidekiq.pop_front();
    return s;
  }
};

class AppChecksTest : public ::testing::Test {
 protected:
  AppChecksTest() {
    options_.timeout = absl::Seconds(10);
    options_.interval = absl::Seconds(2);
    options_.sleep = [this](absl::Duration d) {
      env_.now += d;
      ++sleeps_;
    };
  }
  std::vector<v1::AfterSwapCheck> Check(const CancelToken* cancel = nullptr) {
    return CheckAppAnswers(runtime_, &prober_, &env_, cancel, options_);
  }

  FakeEnv env_;
  FakeProber prober_;
  CheckedRuntime runtime_;
  AppCheckOptions options_;
  int sleeps_ = 0;
};

TEST_F(AppChecksTest, AnAppThatAnswersAtOncePassesEveryCheckWithoutWaiting) {
  prober_.answers["/health"] = {Answer(200, "OK")};
  prober_.answers["/api/v1/streaming/health"] = {Answer(200, "OK")};
  std::vector<v1::AfterSwapCheck> checks = Check();
  ASSERT_EQ(checks.size(), 3u);
  EXPECT_EQ(checks[0].name(), "web");
  EXPECT_TRUE(checks[0].passed());
  EXPECT_EQ(checks[0].detail(), "GET http://127.0.0.1:3000/health (test): 200 OK");
  EXPECT_EQ(checks[1].name(), "streaming");
  EXPECT_TRUE(checks[1].passed());
  EXPECT_EQ(checks[2].name(), "sidekiq");
  EXPECT_TRUE(checks[2].passed());
  EXPECT_TRUE(AllPassed(checks));
  EXPECT_EQ(sleeps_, 0);
}

TEST_F(AppChecksTest, ABootingAppIsAskedAgainUntilItAnswers) {
  // Refused while puma boots, then 502 from a proxy, then OK.
  prober_.answers["/health"] = {absl::UnavailableError("connection refused"),
                                Answer(502, "Bad Gateway"), Answer(200, "OK")};
  prober_.answers["/api/v1/streaming/health"] = {Answer(200, "OK")};
  std::vector<std::string> logged;
  options_.log = [&](const std::string& line) { logged.push_back(line); };
  std::vector<v1::AfterSwapCheck> checks = Check();
  EXPECT_TRUE(AllPassed(checks));
  EXPECT_EQ(checks[0].detail(),
            "GET http://127.0.0.1:3000/health (test): 200 OK (after 3 tries, 4s)");
  EXPECT_THAT(logged, ElementsAre("web: connection refused", "web: answered 502 Bad Gateway"));
}

TEST_F(AppChecksTest, AnEndpointThatNeverAnswersOkFailsAfterTheTimeoutAndTheOthersAreStillChecked) {
  prober_.answers["/health"] = {Answer(503, "Service Unavailable")};
  prober_.answers["/api/v1/streaming/health"] = {Answer(200, "OK")};
  std::vector<v1::AfterSwapCheck> checks = Check();
  ASSERT_EQ(checks.size(), 3u);
  EXPECT_FALSE(checks[0].passed());
  // Tries at 0, 2, 4, 6, 8 s: the next would be past 10 s.
  EXPECT_EQ(checks[0].detail(),
            "GET http://127.0.0.1:3000/health (test): answered 503 Service Unavailable (5 tries "
            "in 8s)");
  EXPECT_TRUE(checks[1].passed());
  EXPECT_TRUE(checks[2].passed());
  EXPECT_FALSE(AllPassed(checks));
}

TEST_F(AppChecksTest, SidekiqNotRunningIsAFailedCheckNamingWhatIsDown) {
  prober_.answers["/health"] = {Answer(200, "OK")};
  prober_.answers["/api/v1/streaming/health"] = {Answer(200, "OK")};
  runtime_.sidekiq = {absl::FailedPreconditionError("mastodon-sidekiq is failed")};
  std::vector<v1::AfterSwapCheck> checks = Check();
  EXPECT_FALSE(checks[2].passed());
  EXPECT_THAT(checks[2].detail(), HasSubstr("sidekiq processes: mastodon-sidekiq is failed"));
}

TEST_F(AppChecksTest, ARuntimeThatCannotTellWhereTheAppAnswersFailsTheWebCheck) {
  runtime_.endpoints = absl::FailedPreconditionError("docker compose port web 3000 printed ''");
  std::vector<v1::AfterSwapCheck> checks = Check();
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[0].name(), "web");
  EXPECT_FALSE(checks[0].passed());
  EXPECT_THAT(checks[0].detail(), HasSubstr("unable to tell where the app answers"));
  EXPECT_TRUE(prober_.asked.empty());
}

TEST_F(AppChecksTest, ACancelledOperationStopsAskingAtOnce) {
  CancelToken cancel;
  cancel.Cancel();
  std::vector<v1::AfterSwapCheck> checks = Check(&cancel);
  EXPECT_FALSE(checks[0].passed());
  EXPECT_THAT(checks[0].detail(), HasSubstr("cancelled; last: connection refused"));
  EXPECT_EQ(sleeps_, 0);
}

TEST(HttpAnswerTest, TheStatusLineAndBodyAreParsedAndAnythingElseIsNotHttp) {
  HttpAnswer a;
  ASSERT_OK(ParseHttpAnswer("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nOK", &a));
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.reason, "OK");
  EXPECT_EQ(a.body, "OK");
  ASSERT_OK(ParseHttpAnswer("HTTP/1.0 503 Service Unavailable\r\n\r\n", &a));
  EXPECT_EQ(a.status, 503);
  EXPECT_EQ(a.reason, "Service Unavailable");
  EXPECT_THAT(ParseHttpAnswer("SSH-2.0-OpenSSH_9.2\r\n", &a),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(ParseHttpAnswer("", &a), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(ParseHttpAnswer("HTTP/1.1 2000 OK\r\n\r\n", &a),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(TcpHttpProberTest, NothingListeningIsUnavailableAndANameIsRefused) {
  std::unique_ptr<HttpProber> prober = NewTcpHttpProber();
  // Port 1 on loopback: nothing listens there in a test environment.
  EXPECT_THAT(prober->Get("127.0.0.1", 1, "/health", absl::Seconds(5)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(prober->Get("example.org", 80, "/health", absl::Seconds(5)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// ------------------------------------------------------------ the runtimes

class RuntimeEndpointsTest : public ::testing::Test {
 protected:
  std::unique_ptr<Runtime> Detect(const std::string& requested) {
    std::vector<std::string> checked;
    auto runtime = DetectRuntime(requested, layout_, &runner_, &env_, &checked);
    EXPECT_OK(runtime);
    return runtime.ok() ? std::move(*runtime) : nullptr;
  }
  void InstallSystemd(const std::string& web_unit, const std::string& env_file) {
    env_.files["/home/mastodon/live/.env.production"] = env_file;
    env_.executables.insert("/home/mastodon/live/bin/tootctl");
    env_.files["/etc/systemd/system/mastodon-web.service"] = web_unit;
    env_.files["/etc/systemd/system/mastodon-sidekiq.service"] = "[Service]\n";
    env_.files["/etc/systemd/system/mastodon-streaming.service"] =
        "[Service]\nEnvironment=\"NODE_ENV=production\"\nEnvironment=\"PORT=4100\"\n";
  }

  HostLayout layout_;
  FakeEnv env_;
  FakeCommandRunner runner_;
};

TEST_F(RuntimeEndpointsTest, SystemdTakesEachUnitsPortThenTheEnvFileThenTheDefaults) {
  InstallSystemd("[Service]\nEnvironment=\"RAILS_ENV=production\"\nEnvironment=\"PORT=3100\"\n",
                 "LOCAL_DOMAIN=example.social\n");
  std::unique_ptr<Runtime> r = Detect("systemd");
  ASSERT_NE(r, nullptr);
  auto e = r->HealthEndpoints();
  ASSERT_OK(e);
  ASSERT_EQ(e->size(), 2u);
  EXPECT_EQ((*e)[0].name, "web");
  EXPECT_EQ((*e)[0].port, 3100);
  EXPECT_EQ((*e)[0].host, "127.0.0.1");
  EXPECT_EQ((*e)[0].source, "PORT in mastodon-web.service");
  EXPECT_EQ((*e)[1].port, 4100);
  EXPECT_EQ((*e)[1].path, "/api/v1/streaming/health");

  InstallSystemd("[Service]\n", "PORT=3200\nBIND=0.0.0.0\n");
  env_.files["/etc/systemd/system/mastodon-streaming.service"] = "[Service]\n";
  e = r->HealthEndpoints();
  ASSERT_OK(e);
  EXPECT_EQ((*e)[0].port, 3200);
  EXPECT_EQ((*e)[0].host, "127.0.0.1");
  EXPECT_EQ((*e)[0].source, "PORT in /home/mastodon/live/.env.production");
  EXPECT_EQ((*e)[1].port, 4000);
  EXPECT_EQ((*e)[1].source, "Mastodon's default streaming port");

  InstallSystemd("[Service]\nEnvironment=PORT=web\n", "");
  EXPECT_THAT(r->HealthEndpoints(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(RuntimeEndpointsTest, SystemdAsksSystemctlWhetherEverySidekiqUnitIsActive) {
  InstallSystemd("[Service]\n", "");
  std::unique_ptr<Runtime> r = Detect("systemd");
  ASSERT_NE(r, nullptr);
  runner_.On({"systemctl", "is-active", "mastodon-sidekiq"}, FakeReply::Output({"active"}));
  EXPECT_OK(r->SidekiqRunning());
  FakeReply failed = FakeReply::Output({"failed"});
  failed.exit_code = 3;
  runner_.On({"systemctl", "is-active", "mastodon-sidekiq"}, failed);
  EXPECT_THAT(r->SidekiqRunning(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                            HasSubstr("mastodon-sidekiq is failed")));
}

TEST_F(RuntimeEndpointsTest, TheSnapAnswersOnItsBackendAndStreamingPortsUnlessConfigured) {
  env_.executables.insert("/snap/bin/mastodon-server.tootctl");
  std::unique_ptr<Runtime> r = Detect("snap");
  ASSERT_NE(r, nullptr);
  auto e = r->HealthEndpoints();
  ASSERT_OK(e);
  EXPECT_EQ((*e)[0].port, 3000);
  EXPECT_EQ((*e)[1].port, 4000);
  layout_.app_web_address = "[::1]:8080";
  r = Detect("snap");
  e = r->HealthEndpoints();
  ASSERT_OK(e);
  EXPECT_EQ((*e)[0].host, "::1");
  EXPECT_EQ((*e)[0].port, 8080);
  EXPECT_EQ((*e)[0].source, "the agent's configuration");

  runner_.On({"snap", "services", "mastodon-server.sidekiq-push", "mastodon-server.sidekiq-pull"},
             FakeReply::Output({"Service                       Startup  Current   Notes",
                                "mastodon-server.sidekiq-pull  enabled  active    -",
                                "mastodon-server.sidekiq-push  enabled  inactive  -"}));
  EXPECT_THAT(r->SidekiqRunning(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                            HasSubstr("mastodon-server.sidekiq-push is inactive")));
}

TEST_F(RuntimeEndpointsTest, ComposeAsksWherePortsArePublishedAndWhichServicesRun) {
  layout_.app_dir = "/opt/live";
  env_.files["/opt/live/docker-compose.yml"] = "image: ghcr.io/mastodon/mastodon:v4.6.5\n";
  std::unique_ptr<Runtime> r = Detect("compose");
  ASSERT_NE(r, nullptr);
  const std::vector<std::string> compose = {"docker", "compose", "-f",
                                            "/opt/live/docker-compose.yml"};
  auto with = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = compose;
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  };
  runner_.On(with({"port", "web", "3000"}), FakeReply::Output({"127.0.0.1:3000"}));
  runner_.On(with({"port", "streaming", "4000"}), FakeReply::Output({"0.0.0.0:4001"}));
  auto e = r->HealthEndpoints();
  ASSERT_OK(e);
  EXPECT_EQ((*e)[0].port, 3000);
  EXPECT_EQ((*e)[1].host, "127.0.0.1");
  EXPECT_EQ((*e)[1].port, 4001);
  EXPECT_EQ((*e)[1].source, "docker compose port streaming 4000");
  runner_.On(with({"port", "streaming", "4000"}), FakeReply::Fails(1, "no port 4000 published"));
  EXPECT_FALSE(r->HealthEndpoints().ok());

  runner_.On(with({"ps", "--status", "running", "--services"}),
             FakeReply::Output({"db", "redis", "web", "streaming"}));
  EXPECT_THAT(r->SidekiqRunning(), StatusIs(absl::StatusCode::kFailedPrecondition));
  runner_.On(with({"ps", "--status", "running", "--services"}),
             FakeReply::Output({"db", "redis", "sidekiq", "web"}));
  EXPECT_OK(r->SidekiqRunning());
}

}  // namespace
}  // namespace mastodon_restore

namespace mastodon_restore {
namespace {

// ------------------------------------------------------------ Redis

TEST(RedisInfoTest, LoadingAndKeysByDatabaseFromInfosText) {
  auto info = ParseRedisInfo(
      "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r\n\r\n"
      "# Persistence\r\nloading:1\r\nrdb_changes_since_last_save:0\r\n\r\n"
      "# Keyspace\r\ndb0:keys=12,expires=1,avg_ttl=0\r\ndb3:keys=2,expires=0,avg_ttl=0\r\n");
  ASSERT_OK(info);
  EXPECT_EQ(info->version, "7.0.15");
  EXPECT_TRUE(info->loading);
  EXPECT_EQ(info->keys, 14);
  EXPECT_EQ(info->keys_by_db.at(3), 2);
  // redis-cli's output has no \r; an empty Redis lists no database.
  info = ParseRedisInfo("redis_version:8.0.3\nloading:0\n# Keyspace\n");
  ASSERT_OK(info);
  EXPECT_FALSE(info->loading);
  EXPECT_EQ(info->keys, 0);
  EXPECT_THAT(ParseRedisInfo("-ERR unknown command"), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(RedisAddressTest, RedisUrlThenTheSeparateKeysThenTheFallback) {
  RedisAddress fallback{"127.0.0.1", 6380, "", ""};
  RedisAddress a =
      RedisAddressOf(ParseEnvFile("REDIS_URL=redis://:p%40w@localhost:6390/1\n"), fallback);
  EXPECT_EQ(a.host, "localhost");
  EXPECT_EQ(a.port, 6390);
  EXPECT_EQ(a.username, "");
  EXPECT_EQ(a.password, "p@w");  // percent-decoded, as redis-rb does
  a = RedisAddressOf(ParseEnvFile("REDIS_URL=redis://mastodon:s@10.0.0.5\n"), fallback);
  EXPECT_EQ(a.host, "10.0.0.5");
  EXPECT_EQ(a.port, 6380);
  EXPECT_EQ(a.username, "mastodon");
  a = RedisAddressOf(ParseEnvFile("REDIS_HOST=127.0.0.2\nREDIS_PORT=7000\nREDIS_PASSWORD=x\n"),
                     fallback);
  EXPECT_EQ(a.host, "127.0.0.2");
  EXPECT_EQ(a.port, 7000);
  EXPECT_EQ(a.password, "x");
  a = RedisAddressOf(ParseEnvFile("LOCAL_DOMAIN=x\n"), fallback);
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 6380);
}

class RuntimeRedisTest : public RuntimeEndpointsTest {};

TEST_F(RuntimeRedisTest, TheSnapsRedisServiceAndDataDirectory) {
  env_.executables.insert("/snap/bin/mastodon-server.tootctl");
  std::unique_ptr<Runtime> r = Detect("snap");
  ASSERT_NE(r, nullptr);
  EXPECT_THAT(r->Redis(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                   HasSubstr("no Redis data directory at "
                                             "/var/snap/mastodon-server/current/redis/data")));
  env_.dirs.insert("/var/snap/mastodon-server/current/redis/data");
  env_.files["/var/snap/mastodon-server/current/server.conf"] =
      "DB_HOST=/tmp/sockets/pgbouncer\nREDIS_URL=redis://localhost:6380\n";
  auto store = r->Redis();
  ASSERT_OK(store);
  EXPECT_EQ(store->file_name, "redis.rdb");
  ASSERT_EQ(store->stop.size(), 1u);
  EXPECT_THAT(store->stop[0].argv, ElementsAre("snap", "stop", "mastodon-server.redis"));
  EXPECT_THAT(store->start[0].argv, ElementsAre("snap", "start", "mastodon-server.redis"));
  EXPECT_EQ(store->address.host, "localhost");
  EXPECT_EQ(store->address.port, 6380);
  EXPECT_FALSE(store->info_command.has_value());
}

TEST_F(RuntimeRedisTest, SystemdReadsRedisConfAndRefusesAnAppendOnlyRedis) {
  InstallSystemd("[Service]\n", "REDIS_HOST=127.0.0.1\nREDIS_PORT=6379\nREDIS_PASSWORD=pw\n");
  env_.dirs.insert("/srv/redis");
  env_.files["/etc/redis/redis.conf"] =
      "# dir ./\ndir /srv/redis\ndbfilename \"mastodon.rdb\"\nappendonly no\n";
  env_.owners["/etc/redis/redis.conf"] = FileOwner{0, 0, 0644};
  std::unique_ptr<Runtime> r = Detect("systemd");
  ASSERT_NE(r, nullptr);
  auto store = r->Redis();
  ASSERT_OK(store);
  EXPECT_EQ(store->data_dir, "/srv/redis");
  EXPECT_EQ(store->file_name, "mastodon.rdb");
  EXPECT_THAT(store->stop[0].argv, ElementsAre("systemctl", "stop", "redis-server"));
  EXPECT_EQ(store->address.password, "pw");
  // A dir from a redis.conf the redis user can write (Debian's owner) is
  // not where root writes.
  env_.owners["/etc/redis/redis.conf"] = FileOwner{110, 115, 0640};
  EXPECT_THAT(r->Redis(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("'dir /srv/redis' of /etc/redis/redis.conf is not used")));
  env_.owners["/etc/redis/redis.conf"] = FileOwner{0, 0, 0664};
  EXPECT_THAT(r->Redis(), StatusIs(absl::StatusCode::kFailedPrecondition));
  env_.owners["/etc/redis/redis.conf"] = FileOwner{0, 0, 0644};
  env_.files["/etc/redis/redis.conf"] += "appendonly yes\n";
  EXPECT_THAT(r->Redis(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("appendonly yes")));
}

TEST_F(RuntimeRedisTest, ComposeAsksRedisCliInItsContainer) {
  layout_.app_dir = "/opt/live";
  env_.files["/opt/live/docker-compose.yml"] = "image: ghcr.io/mastodon/mastodon:v4.6.5\n";
  std::unique_ptr<Runtime> r = Detect("compose");
  ASSERT_NE(r, nullptr);
  EXPECT_THAT(r->Redis(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                   HasSubstr("no Redis volume at /opt/live/redis")));
  env_.dirs.insert("/opt/live/redis");
  auto store = r->Redis();
  ASSERT_OK(store);
  EXPECT_EQ(store->file_name, "dump.rdb");
  ASSERT_TRUE(store->info_command.has_value());
  EXPECT_THAT(store->info_command->argv,
              ElementsAre("docker", "compose", "-f", "/opt/live/docker-compose.yml", "exec", "-T",
                          "redis", "redis-cli", "INFO"));
  EXPECT_THAT(store->stop[0].argv, ElementsAre("docker", "compose", "-f",
                                               "/opt/live/docker-compose.yml", "stop", "redis"));
}

}  // namespace
}  // namespace mastodon_restore
