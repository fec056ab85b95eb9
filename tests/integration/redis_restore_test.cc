// A backup's Redis dump restored into a real redis-server (Debian's) that
// the fake host's systemctl stops and starts as the real unit does (a stop
// saves the dataset into the file first), through the systemd runtime and
// its redis.conf, and through the compose runtime (the fake docker runs the
// real server for the redis service and the real redis-cli for exec); and
// the RESP prober against a real server.
#include "agent/app/redis_restore.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "agent/common/failpoint.h"
#include "agent/common/redis_probe.h"
#include "agent/database/local_cluster.h"
#include "agent/inventory/inspector.h"
#include "tests/harness/fake_host.h"
#include "tests/harness/recording_reporter.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"
#include "tests/harness/test_redis.h"

namespace mastodon_restore {
namespace {

namespace v1 = ::mastodon::restore::v1;
using ::mastodon_restore::testing::StatusIs;
using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(RedisProbeTest, InfoOfARealServerWithItsPassword) {
  auto dir = testing::MakeTempDir("mr-redis-");
  ASSERT_OK(dir);
  {
    auto redis = testing::TestRedis::Start(*dir, "dump.rdb", "s3cret");
    ASSERT_OK(redis);
    (*redis)->Cli({"SET", "a", "1"});
    (*redis)->Cli({"-n", "2", "SET", "b", "2"});
    std::unique_ptr<RedisProber> prober = NewTcpRedisProber();
    RedisAddress address{"127.0.0.1", (*redis)->port(), "", "s3cret"};
    auto info = prober->Info(address, absl::Seconds(5));
    ASSERT_OK(info);
    EXPECT_FALSE(info->version.empty());
    EXPECT_FALSE(info->loading);
    EXPECT_EQ(info->keys, 2);
    EXPECT_EQ(info->keys_by_db.at(2), 1);
    address.password = "wrong";
    EXPECT_THAT(prober->Info(address, absl::Seconds(5)),
                StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("refused the password")));
    address.password = "";
    EXPECT_THAT(prober->Info(address, absl::Seconds(5)),
                StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("wants a password")));
  }
  auto port = PickFreePort();
  ASSERT_OK(port);
  EXPECT_THAT(NewTcpRedisProber()->Info({"127.0.0.1", *port, "", ""}, absl::Seconds(5)),
              StatusIs(absl::StatusCode::kUnavailable));
  testing::RemoveTree(*dir);
}

// A backup directory holding dump.rdb written by another real Redis (7 keys
// in db 0, 2 in db 1, one expiring in an hour), and its inventory's
// account of it.
// The entry names of `dir`, sorted.
std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

v1::RedisDumpInfo WriteRedisBackup(const std::string& backup, CommandRunner* runner) {
  std::filesystem::create_directories(backup);
  auto source = testing::TestRedis::Start(backup);
  EXPECT_OK(source);
  if (!source.ok()) return {};
  for (int i = 0; i < 7; ++i) (*source)->Cli({"SET", absl::StrCat("feed:", i), "v"});
  (*source)->Cli({"EXPIRE", "feed:0", "3600"});
  (*source)->Cli({"-n", "1", "LPUSH", "queue:default", "job1", "job2"});
  (*source)->Cli({"-n", "1", "SET", "sidekiq:stat", "9"});
  EXPECT_EQ((*source)->Cli({"SAVE"}), "OK\n");
  source->reset();
  std::filesystem::remove(backup + "/redis-server.log");
  InspectOptions options;
  options.now = absl::Now();
  auto manifest = InspectBackup(backup, SourceOptions(), options, runner);
  EXPECT_OK(manifest);
  return manifest.ok() ? manifest->redis() : v1::RedisDumpInfo();
}

class RedisRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto host = testing::FakeHost::Create();
    ASSERT_OK(host);
    host_ = std::move(*host);
    auto port = PickFreePort();
    ASSERT_OK(port);
    port_ = *port;
    data_dir_ = host_->dir() + "/var/lib/redis";
    std::filesystem::create_directories(data_dir_);
    ::chmod(data_dir_.c_str(), 0750);
    // Debian's configuration, as far as the runtime reads it.
    std::ofstream(host_->dir() + "/redis.conf")
        << "# comment\nbind 127.0.0.1\nport " << port_ << "\ndir " << data_dir_
        << "\ndbfilename \"dump.rdb\"\nappendonly no\n";
    host_->InstallSystemd(absl::StrCat("REDIS_HOST=127.0.0.1\nREDIS_PORT=", port_,
                                       "\nREDIS_PASSWORD=host-redis-pw\n"));
    host_->Set("FAKE_REDIS_PORT", absl::StrCat(port_));
    host_->Set("FAKE_REDIS_DIR", data_dir_);
    host_->Set("FAKE_REDIS_PASSWORD", "host-redis-pw");
    HostLayout layout = host_->Layout();
    layout.redis_conf = host_->dir() + "/redis.conf";
    std::vector<std::string> checked;
    auto runtime = DetectRuntime("systemd", layout, runner_.get(), env_.get(), &checked);
    ASSERT_OK(runtime);
    runtime_ = std::move(*runtime);
    // The host's Redis runs, with keys of its own.
    Systemctl("start");
    ASSERT_EQ(HostCli({"SET", "host:only", "x"}), "OK\n");
  }
  void TearDown() override { Systemctl("stop"); }

  void Systemctl(const std::string& verb) {
    ASSERT_OK(host_->RunTool({"systemctl", verb, "redis-server"}));
  }
  std::string HostCli(const std::vector<std::string>& args) {
    return testing::RedisCli(port_, "host-redis-pw", args);
  }

  v1::RedisDumpInfo MakeBackup() {
    backup_ = host_->dir() + "/backup";
    return WriteRedisBackup(backup_, runner_.get());
  }

  RedisRestoreOptions Options(const v1::RedisDumpInfo& dump) {
    RedisRestoreOptions o;
    o.source_path = backup_;
    o.dump = dump;
    o.operation_id = "op1";
    o.interval = absl::Milliseconds(50);
    o.load_timeout = absl::Seconds(20);
    return o;
  }
  TaskContext Context() {
    return TaskContext{runner_.get(), env_.get(), nullptr, &reporter_, "redis"};
  }

  std::unique_ptr<testing::FakeHost> host_;
  std::unique_ptr<CommandRunner> runner_ = NewPosixCommandRunner();
  std::unique_ptr<Env> env_ = NewPosixEnv();
  std::unique_ptr<Runtime> runtime_;
  testing::RecordingReporter reporter_;
  int port_ = 0;
  std::string data_dir_;
  std::string backup_;
};

TEST_F(RedisRestoreTest, TheDumpReplacesTheHostsDataAndRedisLoadsEveryKey) {
  const v1::RedisDumpInfo dump = MakeBackup();
  EXPECT_EQ(dump.path(), "dump.rdb");
  EXPECT_EQ(dump.keys(), 9);
  EXPECT_EQ(dump.keys_with_expiry(), 1);
  EXPECT_EQ(dump.expired_keys(), 0);
  EXPECT_GT(dump.rdb_version(), 0);
  // The host's dataset is in its file only once Redis has saved it: the
  // stop's save must land in the kept file, not over the restored one.
  auto result = RestoreRedisDump(*runtime_, Options(dump), Context());
  ASSERT_OK(result);
  EXPECT_EQ(result->keys_expected(), 9);
  EXPECT_EQ(result->keys_loaded(), 9);
  EXPECT_EQ(result->data_file(), data_dir_ + "/dump.rdb");
  EXPECT_EQ(result->kept_as(), data_dir_ + "/dump.rdb.before-restore-op1");
  EXPECT_EQ(HostCli({"DBSIZE"}), "7\n");
  EXPECT_EQ(HostCli({"-n", "1", "LLEN", "queue:default"}), "2\n");
  EXPECT_EQ(HostCli({"EXISTS", "host:only"}), "0\n");
  // The kept file holds the host's dataset as the stop saved it.
  EXPECT_NE(ReadAll(result->kept_as()).find("host:only"), std::string::npos);
  // Owner and mode of the replaced file; no temporary file left.
  struct stat st;
  ASSERT_EQ(::stat(result->data_file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  for (const auto& e : std::filesystem::directory_iterator(data_dir_)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
}

TEST_F(RedisRestoreTest, ARedisThatLoadsOtherKeysIsDataLoss) {
  v1::RedisDumpInfo dump = MakeBackup();
  dump.set_keys(12);  // as if the file had lost keys on the way
  EXPECT_THAT(
      RestoreRedisDump(*runtime_, Options(dump), Context()),
      StatusIs(absl::StatusCode::kDataLoss, HasSubstr("Redis loaded 9 keys from " + data_dir_ +
                                                      "/dump.rdb; the dump "
                                                      "holds 12")));
  // Redis runs again all the same.
  EXPECT_EQ(HostCli({"PING"}), "PONG\n");
}

TEST_F(RedisRestoreTest, AWrongPasswordInTheAppsEnvIsSaidAtOnce) {
  const v1::RedisDumpInfo dump = MakeBackup();
  std::ofstream(host_->app_dir() + "/.env.production", std::ios::trunc)
      << "REDIS_HOST=127.0.0.1\nREDIS_PORT=" << port_ << "\nREDIS_PASSWORD=stale\n";
  RedisRestoreOptions options = Options(dump);
  options.load_timeout = absl::Minutes(5);  // not waited for
  int tries = 0;
  options.sleep = [&tries](absl::Duration d) {
    ++tries;
    absl::SleepFor(d);
  };
  EXPECT_THAT(
      RestoreRedisDump(*runtime_, options, Context()),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("cannot be asked what it loaded")));
  EXPECT_LT(tries, 100);  // Redis's start, not the 5 minutes (6000 tries)
  // The dump is in place all the same (Redis loaded it; the app's env is
  // what is wrong).
  EXPECT_EQ(HostCli({"DBSIZE"}), "7\n");
}

// A Redis that says it is loading until the timeout (a multi-GB dump): the
// step fails, naming the file, and the journal is cleared (Redis runs).
class AlwaysLoading : public RedisProber {
 public:
  absl::StatusOr<RedisInfo> Info(const RedisAddress&, absl::Duration) override {
    ++asked;
    RedisInfo info;
    info.version = "7.0.15";
    info.loading = true;
    return info;
  }
  int asked = 0;
};

TEST_F(RedisRestoreTest, ARedisStillLoadingAtTheTimeoutFailsTheStepNamingTheFile) {
  const v1::RedisDumpInfo dump = MakeBackup();
  RedisRestoreOptions options = Options(dump);
  AlwaysLoading prober;
  options.prober = &prober;
  options.load_timeout = absl::Seconds(1);
  options.interval = absl::Milliseconds(400);
  std::vector<absl::Duration> waits;
  options.sleep = [&waits](absl::Duration d) {
    waits.push_back(d);
    absl::SleepFor(d);
  };
  v1::RedisJournal last;
  options.journal = [&](const v1::RedisJournal& j) {
    last = j;
    return absl::OkStatus();
  };
  EXPECT_THAT(RestoreRedisDump(*runtime_, options, Context()),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("Redis did not finish loading " + data_dir_ +
                                 "/dump.rdb within 1s: still loading")));
  // Asked at once, then after 100, 200, 400, 400 ms...
  ASSERT_GE(waits.size(), 3u);
  EXPECT_EQ(waits[0], absl::Milliseconds(100));
  EXPECT_EQ(waits[1], absl::Milliseconds(200));
  EXPECT_EQ(waits[2], absl::Milliseconds(400));
  EXPECT_EQ(prober.asked, static_cast<int>(waits.size()) + 1);
  EXPECT_EQ(last.phase(), v1::REDIS_PHASE_UNSPECIFIED);
  // The dump is in place and the real Redis serves it.
  EXPECT_EQ(HostCli({"DBSIZE"}), "7\n");
}

TEST_F(RedisRestoreTest, AnAppendOnlyRedisIsRefusedBeforeAnythingIsTouched) {
  std::ofstream(host_->dir() + "/redis.conf", std::ios::app) << "appendonly yes\n";
  const v1::RedisDumpInfo dump = MakeBackup();
  EXPECT_THAT(RestoreRedisDump(*runtime_, Options(dump), Context()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("appendonly yes")));
  EXPECT_EQ(HostCli({"EXISTS", "host:only"}), "1\n");
}

TEST_F(RedisRestoreTest, AStopThatFailsLeavesRedisAndItsFileAlone) {
  const v1::RedisDumpInfo dump = MakeBackup();
  host_->Set("SYSTEMCTL_FAIL", "stop");
  EXPECT_THAT(RestoreRedisDump(*runtime_, Options(dump), Context()),
              StatusIs(absl::StatusCode::kUnknown, HasSubstr("unable to stop Redis")));
  host_->Set("SYSTEMCTL_FAIL", "");
  EXPECT_EQ(HostCli({"EXISTS", "host:only"}), "1\n");
  // The staged copy is removed.
  for (const auto& e : std::filesystem::directory_iterator(data_dir_)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
}

TEST_F(RedisRestoreTest, EveryFileIsJournaledBeforeItIsMadeAndTheJournalClearedOnceRedisRuns) {
  const v1::RedisDumpInfo dump = MakeBackup();
  RedisRestoreOptions options = Options(dump);
  std::vector<v1::RedisJournal> journals;
  std::vector<bool> staged_existed, host_keys_there;
  options.journal = [&](const v1::RedisJournal& j) {
    journals.push_back(j);
    staged_existed.push_back(std::filesystem::exists(data_dir_ + "/" + j.staged_name()));
    host_keys_there.push_back(HostCli({"EXISTS", "host:only"}) == "1\n");
    return absl::OkStatus();
  };
  ASSERT_OK(RestoreRedisDump(*runtime_, options, Context()));
  ASSERT_EQ(journals.size(), 3u);
  EXPECT_EQ(journals[0].phase(), v1::REDIS_PHASE_STAGING);
  EXPECT_EQ(journals[1].phase(), v1::REDIS_PHASE_SWAPPING);
  EXPECT_EQ(journals[2].phase(), v1::REDIS_PHASE_UNSPECIFIED);
  EXPECT_EQ(journals[0].data_dir(), data_dir_);
  EXPECT_EQ(journals[0].file_name(), "dump.rdb");
  EXPECT_EQ(journals[0].kept_name(), "dump.rdb.before-restore-op1");
  EXPECT_THAT(journals[0].staged_name(), ::testing::StartsWith(".dump.rdb.restore."));
  EXPECT_THAT(journals[0].staged_name(), ::testing::EndsWith(".tmp"));
  EXPECT_EQ(journals[1].staged_name(), journals[0].staged_name());
  // Named before it was made; whole before Redis was stopped.
  EXPECT_THAT(staged_existed, ::testing::ElementsAre(false, true, false));
  EXPECT_THAT(host_keys_there, ::testing::ElementsAre(true, true, false));
}

TEST_F(RedisRestoreTest, AJournalThatCannotBeSavedStopsTheRestoreBeforeRedisIsStopped) {
  const v1::RedisDumpInfo dump = MakeBackup();
  RedisRestoreOptions options = Options(dump);
  options.journal = [](const v1::RedisJournal& j) {
    return j.phase() == v1::REDIS_PHASE_SWAPPING ? absl::ResourceExhaustedError("disk full")
                                                 : absl::OkStatus();
  };
  host_->ClearCalls();
  EXPECT_THAT(RestoreRedisDump(*runtime_, options, Context()),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("disk full")));
  EXPECT_TRUE(host_->Calls("systemctl").empty());
  EXPECT_EQ(HostCli({"EXISTS", "host:only"}), "1\n");
  for (const auto& e : std::filesystem::directory_iterator(data_dir_)) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
}

TEST_F(RedisRestoreTest, ASwapThatFailsBetweenItsRenamesPutsTheOldFileBack) {
  const v1::RedisDumpInfo dump = MakeBackup();
  RedisRestoreOptions options = Options(dump);
  v1::RedisJournal last;
  options.journal = [&](const v1::RedisJournal& j) {
    last = j;
    return absl::OkStatus();
  };
  ASSERT_OK(ConfigureFailpoints("redis.after_keep=error", ""));
  absl::Cleanup clear = [] { ClearFailpoints(); };
  EXPECT_THAT(RestoreRedisDump(*runtime_, options, Context()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("failpoint redis.after_keep")));
  // Redis runs on its own file again; nothing is left beside it; the
  // journal is cleared.
  EXPECT_EQ(HostCli({"GET", "host:only"}), "x\n");
  EXPECT_THAT(Names(data_dir_), ::testing::ElementsAre("dump.rdb"));
  EXPECT_EQ(last.phase(), v1::REDIS_PHASE_UNSPECIFIED);
}

// Recovery, from each state a crash inside the step can leave: the journal
// alone says what to do.
class RedisRecoveryTest : public RedisRestoreTest {
 protected:
  // The journal of operation op1, staged as `staged` (copied from the
  // backup when `with_staged`).
  v1::RedisJournal Journal(v1::RedisPhase phase, bool with_staged) {
    v1::RedisJournal j;
    j.set_phase(phase);
    j.set_data_dir(data_dir_);
    j.set_file_name("dump.rdb");
    j.set_staged_name(".dump.rdb.restore.0123456789abcdef.tmp");
    j.set_kept_name("dump.rdb.before-restore-op1");
    if (with_staged) {
      std::filesystem::copy_file(backup_ + "/dump.rdb", data_dir_ + "/" + j.staged_name());
    }
    return j;
  }
  absl::StatusOr<std::vector<std::string>> Recover(const v1::RedisJournal& j) {
    return RecoverRedisJournal(j, runtime_.get(), Context());
  }
  std::string Keys() { return HostCli({"DBSIZE"}); }
};

TEST_F(RedisRecoveryTest, StagingRemovesTheStagedFileAndLeavesRedisAlone) {
  MakeBackup();
  const v1::RedisJournal j = Journal(v1::REDIS_PHASE_STAGING, true);
  host_->ClearCalls();
  auto done = Recover(j);
  ASSERT_OK(done);
  EXPECT_THAT(*done, ::testing::ElementsAre(HasSubstr("removed the staged Redis dump")));
  EXPECT_TRUE(host_->Calls("systemctl").empty());
  EXPECT_EQ(HostCli({"EXISTS", "host:only"}), "1\n");
  // Nothing to do the second time; no runtime needed for it.
  auto again = RecoverRedisJournal(j, nullptr, Context());
  ASSERT_OK(again);
  EXPECT_TRUE(again->empty());
}

TEST_F(RedisRecoveryTest, SwappingWithRedisStillRunningStopsItThenCompletesTheSwap) {
  MakeBackup();
  const v1::RedisJournal j = Journal(v1::REDIS_PHASE_SWAPPING, true);
  auto done = Recover(j);
  ASSERT_OK(done);
  EXPECT_THAT(*done,
              ::testing::ElementsAre(HasSubstr("put the backup's Redis dump in place as " +
                                               data_dir_ + "/dump.rdb (the old file kept as " +
                                               data_dir_ + "/dump.rdb.before-restore-op1)"),
                                     HasSubstr("started Redis again")));
  EXPECT_EQ(Keys(), "7\n");
  // The stop saved the host's dataset into the kept file.
  EXPECT_NE(ReadAll(data_dir_ + "/dump.rdb.before-restore-op1").find("host:only"),
            std::string::npos);
  // Idempotent: once more, only a stop and a start.
  ASSERT_OK(Recover(j));
  EXPECT_EQ(Keys(), "7\n");
  EXPECT_THAT(Names(data_dir_), ::testing::ElementsAre("dump.rdb", "dump.rdb.before-restore-op1"));
}

TEST_F(RedisRecoveryTest, SwappingBetweenTheRenamesPutsTheStagedFileIn) {
  MakeBackup();
  Systemctl("stop");
  const v1::RedisJournal j = Journal(v1::REDIS_PHASE_SWAPPING, true);
  std::filesystem::rename(data_dir_ + "/dump.rdb", data_dir_ + "/" + j.kept_name());
  ASSERT_OK(Recover(j));
  EXPECT_EQ(Keys(), "7\n");
  EXPECT_EQ(HostCli({"-n", "1", "LLEN", "queue:default"}), "2\n");
}

TEST_F(RedisRecoveryTest, SwappingWithTheKeptFileAloneBringsItBack) {
  MakeBackup();
  Systemctl("stop");
  const v1::RedisJournal j = Journal(v1::REDIS_PHASE_SWAPPING, false);
  std::filesystem::rename(data_dir_ + "/dump.rdb", data_dir_ + "/" + j.kept_name());
  auto done = Recover(j);
  ASSERT_OK(done);
  EXPECT_THAT(*done, ::testing::Contains(HasSubstr("put the old Redis file back")));
  EXPECT_EQ(HostCli({"GET", "host:only"}), "x\n");
}

TEST_F(RedisRecoveryTest, ADataFileBesideAKeptOneIsNeitherReplacedNorRemoved) {
  MakeBackup();
  Systemctl("stop");
  const v1::RedisJournal j = Journal(v1::REDIS_PHASE_SWAPPING, true);
  std::ofstream(data_dir_ + "/" + j.kept_name()) << "kept";
  EXPECT_THAT(Recover(j), StatusIs(absl::StatusCode::kFailedPrecondition,
                                   HasSubstr("both exist: not replacing either")));
  EXPECT_EQ(ReadAll(data_dir_ + "/" + j.kept_name()), "kept");
  EXPECT_TRUE(std::filesystem::exists(data_dir_ + "/" + j.staged_name()));
  // Without a runtime, Redis cannot be stopped: nothing is touched.
  EXPECT_THAT(RecoverRedisJournal(j, nullptr, Context()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no runtime")));
  Systemctl("start");
}

TEST_F(RedisRecoveryTest, ANameThatIsNotOneComponentIsRefused) {
  MakeBackup();
  v1::RedisJournal j = Journal(v1::REDIS_PHASE_STAGING, false);
  j.set_staged_name("../../etc/passwd");
  EXPECT_THAT(Recover(j), StatusIs(absl::StatusCode::kInvalidArgument));
}

// Mastodon's docker-compose.yml: Redis's volume is ./redis beside the
// compose file, the service is stopped and started by Compose, and asked
// through `docker compose exec -T redis redis-cli INFO` (it publishes no
// port), here the real redis-cli against the real server the fake docker
// runs for the redis service.
TEST(ComposeRedisRestoreTest, TheDumpReplacesTheVolumesFileAndIsCountedThroughExec) {
  auto host = testing::FakeHost::Create();
  ASSERT_OK(host);
  std::unique_ptr<CommandRunner> runner = NewPosixCommandRunner();
  std::unique_ptr<Env> env = NewPosixEnv();
  (*host)->InstallCompose("LOCAL_DOMAIN=compose.example\nREDIS_HOST=redis\n");
  const std::string volume = (*host)->app_dir() + "/redis";
  std::filesystem::create_directories(volume);
  auto port = PickFreePort();
  ASSERT_OK(port);
  (*host)->Set("FAKE_REDIS_PORT", absl::StrCat(*port));
  (*host)->Set("FAKE_REDIS_DIR", volume);
  std::vector<std::string> checked;
  auto runtime = DetectRuntime("compose", (*host)->Layout(), runner.get(), env.get(), &checked);
  ASSERT_OK(runtime);
  auto compose = [&](const std::vector<std::string>& args) {
    CommandSpec spec;
    spec.argv = {(*host)->dir() + "/bin/docker", "compose", "-f",
                 (*host)->app_dir() + "/docker-compose.yml"};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env = {"PATH=" + (*host)->Layout().host_path};
    auto r = runner->Run(spec, nullptr);
    EXPECT_OK(r);
    return r.ok() ? r->stdout_text + r->stderr_text : std::string();
  };
  compose({"start", "redis"});
  absl::Cleanup stop = [&] { compose({"stop", "redis"}); };
  ASSERT_EQ(testing::RedisCli(*port, "", {"SET", "host:only", "x"}), "OK\n");

  const v1::RedisDumpInfo dump = WriteRedisBackup((*host)->dir() + "/backup", runner.get());
  RedisRestoreOptions o;
  o.source_path = (*host)->dir() + "/backup";
  o.dump = dump;
  o.operation_id = "op1";
  o.interval = absl::Milliseconds(50);
  o.load_timeout = absl::Seconds(20);
  testing::RecordingReporter reporter;
  auto result = RestoreRedisDump(**runtime, o,
                                 TaskContext{runner.get(), env.get(), nullptr, &reporter, "redis"});
  ASSERT_OK(result);
  EXPECT_EQ(result->data_file(), volume + "/dump.rdb");
  EXPECT_EQ(result->keys_expected(), 9);
  EXPECT_EQ(result->keys_loaded(), 9);
  EXPECT_EQ(result->kept_as(), volume + "/dump.rdb.before-restore-op1");
  EXPECT_EQ(testing::RedisCli(*port, "", {"DBSIZE"}), "7\n");
  EXPECT_EQ(testing::RedisCli(*port, "", {"EXISTS", "host:only"}), "0\n");
  // Compose was asked, not a port: stop, start, then exec until loaded.
  std::vector<std::string> verbs;
  for (const testing::FakeCall& c : (*host)->Calls("docker")) {
    if (c.argv.size() > 3) verbs.push_back(c.argv[3]);
  }
  EXPECT_THAT(verbs, ::testing::IsSupersetOf({"stop", "start", "exec"}));
  // A Redis that is not running cannot be asked: Compose says so.
  compose({"stop", "redis"});
  EXPECT_THAT(compose({"exec", "-T", "redis", "redis-cli", "INFO"}),
              HasSubstr("service \"redis\" is not running"));
}

}  // namespace
}  // namespace mastodon_restore
