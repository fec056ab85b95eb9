// Crash at any instruction: for every failpoint the agent lists
// (--list-failpoints), a whole restore (database, media, env file, the
// app's steps) over a live database, media directory and env file with known
// contents, with the failpoint killing the agent (then restarted) or
// returning an error. After each: the live database exists, accepts
// connections and is exactly the old or exactly the new one (when new, the
// previous is kept and exactly old); no staging database, media staging
// directory or temp file is left; every media file and the env file is old
// or new; the snap's Redis (a real redis-server) answers with the old or the
// new keys, never none; the app is not left stopped; an interrupted
// operation says what its recovery did. DISABLED_ChaosRandomKills (make chaos) does the same
// with SIGKILLs at random times.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/app/runtime.h"
#include "agent/database/local_cluster.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"
#include "tests/harness/test_redis.h"

namespace mastodon_restore {
namespace e2e {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::map<std::string, std::string> Tree(const std::string& dir) {
  std::map<std::string, std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) {
      out[fs::relative(e.path(), dir).string()] = ReadFileOrEmpty(e.path().string());
    }
  }
  return out;
}

class CrashTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    RequireDumpFixtures();
    StartPostgres();
    CreateSnapHost();
    media_ = host_->dir() + "/media";
    common_ = host_->dir() + "/common";
    // The snap's Redis: a real redis-server on $SNAP_DATA/redis/data.
    redis_data_ = host_->dir() + "/redis/data";
    auto port = PickFreePort();
    ASSERT_OK(port);
    redis_port_ = *port;
    host_->Set("FAKE_REDIS_PORT", absl::StrCat(redis_port_));
    host_->Set("FAKE_REDIS_DIR", redis_data_);
    host_->Set("FAKE_REDIS_FILE", "redis.rdb");
    host_->Set("FAKE_REDIS_PASSWORD", "crash-redis-pw");
  }

  void TearDown() override {
    KillAgent();
    SnapRedis("stop");
    E2eTest::TearDown();
  }

  // `snap start|stop mastodon-server.redis` through the fake snap.
  void SnapRedis(const std::string& verb) {
    ASSERT_OK(host_->RunTool({"snap", verb, "mastodon-server.redis"}));
  }

  std::string RedisCli(const std::vector<std::string>& args) {
    return testing::RedisCli(redis_port_, "crash-redis-pw", args);
  }

  // The names in Redis's data directory, sorted, comma-separated.
  std::string RedisFiles() {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(redis_data_)) {
      names.push_back(e.path().filename().string());
    }
    std::sort(names.begin(), names.end());
    return absl::StrJoin(names, ",");
  }

  // "old" (the host's own keys), "new" (the backup's), or what it holds.
  std::string RedisState() {
    const std::string size = RedisCli({"DBSIZE"});
    const std::string host_key = RedisCli({"GET", "host:only"});
    if (host_key == "old-redis\n" && size == "2\n") return "old";
    if (host_key == "\n" && size == "7\n") return "new";
    return absl::StrCat("DBSIZE ", size, " host:only ", host_key);
  }

  // The failpoints, from the agent itself.
  std::vector<std::string> Failpoints() {
    CommandSpec spec;
    spec.argv = {MR_AGENT_BIN, "--list-failpoints"};
    spec.env = {"PATH=/usr/bin:/bin"};
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    if (!r.ok()) return {};
    std::vector<std::string> all = absl::StrSplit(r->stdout_text, '\n', absl::SkipEmpty());
    // A migration's sites are no restore's (the migrate tests use them).
    all.erase(std::remove_if(all.begin(), all.end(),
                             [](const std::string& name) {
                               return absl::StartsWith(name, "cluster_swap.") ||
                                      absl::StartsWith(name, "migrate.");
                             }),
              all.end());
    return all;
  }

  void KillAgent() {
    if (agent_ == nullptr) return;
    agent_->Signal(SIGKILL);
    agent_->Wait(absl::Seconds(10));
    agent_.reset();
  }

  void StartSnapAgent(const std::string& failpoints) {
    agent_env_.clear();
    if (!failpoints.empty()) agent_env_.push_back("MR_FAILPOINTS=" + failpoints);
    HostLayout layout = host_->Layout();
    StartAgent({"--runtime", "snap", "--snap-bin-dir", layout.snap_bin_dir, "--snap-app-dir",
                layout.snap_app_dir, "--snap-common-dir", common_, "--snap-postgres",
                pg_->ConnInfo(""), "--host-path", layout.host_path, "--allowed-root",
                MR_FIXTURE_DIR});
  }

  // The old world: a live database, media and env file with known contents,
  // a fresh state directory.
  void Reset() {
    KillAgent();
    auto dbs = pg_->QueryValue(
        "SELECT string_agg(quote_ident(datname), ' ') FROM pg_database WHERE datname NOT IN "
        "('postgres', 'template0', 'template1')");
    ASSERT_OK(dbs);
    for (absl::string_view db : absl::StrSplit(*dbs, ' ', absl::SkipEmpty())) {
      ASSERT_OK(pg_->Exec(absl::StrCat("DROP DATABASE ", db, " WITH (FORCE)")));
    }
    ASSERT_OK(pg_->Exec("CREATE DATABASE mastodon OWNER mastodon"));
    ASSERT_OK(pg_->Exec("CREATE TABLE live_marker (x int); INSERT INTO live_marker VALUES (7)",
                        "mastodon"));
    fs::remove_all(dir_ + "/state");
    for (const auto& e : fs::directory_iterator(host_->dir())) {
      if (absl::StartsWith(e.path().filename().string(), ".media.")) fs::remove_all(e.path());
    }
    fs::remove_all(media_);
    fs::remove_all(common_);
    fs::create_directories(media_ + "/accounts/avatars/1");
    fs::create_directories(media_ + "/media_attachments/files/1");
    fs::create_directories(common_);
    std::ofstream(media_ + "/accounts/avatars/1/a.png") << "old-a";
    std::ofstream(media_ + "/media_attachments/files/1/b.png") << "old-b";
    std::ofstream(media_ + "/accounts/kept.png") << "kept";
    std::ofstream(common_ + "/mastodon.conf")
        << "LOCAL_DOMAIN=snap.example\nSECRET_KEY_BASE=host-secret\nOTP_SECRET=snap-otp\n"
           "DB_HOST=/tmp/sockets/pgbouncer\nDB_PASS=local-pass\n"
        << "REDIS_URL=redis://:crash-redis-pw@localhost:" << redis_port_ << "\n";
    // Redis: two keys of the host's own, saved in its file (left as it is
    // when the last run left it so).
    if (!fs::exists(redis_data_) || RedisState() != "old" || RedisFiles() != "redis.rdb") {
      SnapRedis("stop");
      fs::remove_all(redis_data_);
      fs::create_directories(redis_data_);
      SnapRedis("start");
      ASSERT_EQ(RedisCli({"SET", "host:only", "old-redis"}), "OK\n");
      ASSERT_EQ(RedisCli({"SET", "host:other", "x"}), "OK\n");
      ASSERT_EQ(RedisCli({"SAVE"}), "OK\n");
      ASSERT_EQ(RedisState(), "old");
    }
    old_media_ = Tree(media_);
    old_env_ = ReadFileOrEmpty(common_ + "/mastodon.conf");
    calls_before_ = host_->Calls("snap").size();
  }

  // The tables of `db` with their rows (schema_migrations, which the
  // migrate step adds to, by presence only).
  std::string Fingerprint(const std::string& db) {
    auto tables = pg_->QueryValue(
        "SELECT string_agg(format('%I.%I', schemaname, relname), ',' ORDER BY schemaname, "
        "relname) FROM pg_stat_user_tables",
        db);
    if (!tables.ok()) return "unreachable: " + std::string(tables.status().message());
    std::string out;
    for (absl::string_view t : absl::StrSplit(*tables, ',', absl::SkipEmpty())) {
      absl::StrAppend(&out, t);
      if (t != "public.schema_migrations") {
        auto n = pg_->QueryValue(absl::StrCat("SELECT count(*) FROM ", t), db);
        absl::StrAppend(&out, "=", n.ok() ? *n : "?");
      }
      out += ";";
    }
    return out;
  }

  // Runs a restore to its end (no failpoint): the new world.
  void Baseline() {
    Reset();
    old_db_ = Fingerprint("mastodon");
    StartSnapAgent("");
    const absl::Time start = absl::Now();
    CommandResult r =
        CliOnSocket({"--timeout", "120s", "restore", "--restore-config", Fixture("snap")});
    restore_time_ = absl::Now() - start;
    ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
    new_db_ = Fingerprint("mastodon");
    new_media_ = Tree(media_);
    new_env_ = ReadFileOrEmpty(common_ + "/mastodon.conf");
    ASSERT_EQ(RedisState(), "new") << r.stdout_text;
    ASSERT_NE(new_db_, old_db_);
    ASSERT_NE(new_media_, old_media_);
    ASSERT_NE(new_env_, old_env_);
    KillAgent();
  }

  // The events of the ended operation `id`, as JSON lines.
  std::string Events(const std::string& id) {
    return CliOnSocket({"--timeout", "30s", "--json", "ops", "watch", id, "--from", "1"})
        .stdout_text;
  }

  std::string OnlyOperation() {
    CommandResult r = CliOnSocket({"--json", "ops", "list"});
    return OperationId(r.stdout_text);
  }

  // The invariants after a kill (and restart) or an error.
  // `app_may_stay_stopped`: starting the app is what failed.
  void ExpectWhole(const std::string& what, bool app_may_stay_stopped = false) {
    SCOPED_TRACE(what);
    auto live =
        pg_->QueryValue("SELECT datallowconn::text FROM pg_database WHERE datname = 'mastodon'");
    ASSERT_OK(live);
    EXPECT_EQ(*live, "true");
    const std::string db = Fingerprint("mastodon");
    const bool is_new = db == new_db_;
    EXPECT_TRUE(db == old_db_ || is_new) << db;
    auto previous = pg_->QueryValue(
        "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE "
        "'mastodon\\_\\_previous\\_%'");
    ASSERT_OK(previous);
    if (is_new) {
      EXPECT_FALSE(previous->empty());
      if (!previous->empty()) {
        EXPECT_EQ(*pg_->QueryValue(absl::StrCat("SELECT datallowconn::text FROM pg_database "
                                                "WHERE datname = '",
                                                *previous, "'")),
                  "true");
        EXPECT_EQ(Fingerprint(*previous), old_db_);
      }
    } else {
      EXPECT_EQ(*previous, "");
    }
    EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE "
                               "'%\\_\\_restore\\_%'"),
              "0");
    // A media staging directory may be kept (stopped before its move: the
    // next media restore takes it over), root's own and closed to others.
    for (const auto& e : fs::directory_iterator(host_->dir())) {
      if (!absl::StartsWith(e.path().filename().string(), ".media.")) continue;
      struct stat st;
      ASSERT_EQ(::lstat(e.path().c_str(), &st), 0);
      EXPECT_TRUE(S_ISDIR(st.st_mode) && st.st_uid == 0 && (st.st_mode & 077) == 0)
          << "media staging left open: " << e.path();
    }
    const auto media = Tree(media_);
    for (const auto& [file, content] : media) {
      auto o = old_media_.find(file);
      auto n = new_media_.find(file);
      EXPECT_TRUE((o != old_media_.end() && o->second == content) ||
                  (n != new_media_.end() && n->second == content))
          << file << " is neither old nor new";
    }
    for (const auto& [file, content] : old_media_) {
      EXPECT_TRUE(media.count(file) > 0) << file << " lost";
    }
    const std::string env = ReadFileOrEmpty(common_ + "/mastodon.conf");
    EXPECT_TRUE(env == old_env_ || env == new_env_) << env;
    for (const auto& e : fs::directory_iterator(common_)) {
      EXPECT_FALSE(absl::EndsWith(e.path().filename().string(), ".tmp"))
          << "temp file left: " << e.path();
    }
    // Redis runs, on the old file or the new (only after the swap), and no
    // staged file is left beside it.
    const std::string redis = RedisState();
    EXPECT_TRUE(redis == "old" || redis == "new") << redis;
    if (redis == "new") {
      EXPECT_TRUE(is_new) << "Redis is the backup's, the database is not";
    }
    EXPECT_TRUE(fs::exists(redis_data_ + "/redis.rdb"));
    for (const auto& e : fs::directory_iterator(redis_data_)) {
      const std::string name = e.path().filename().string();
      EXPECT_FALSE(absl::EndsWith(name, ".tmp")) << "staged Redis dump left: " << e.path();
      if (absl::StartsWith(name, "redis.rdb.before-restore-")) {
        EXPECT_EQ(redis, "new") << "the old Redis file is kept aside yet Redis runs on it";
      }
    }
    // The app is not left stopped.
    std::vector<testing::FakeCall> calls = host_->Calls("snap");
    std::string last;
    for (size_t i = 0; i < calls.size(); ++i) {
      if (i < calls_before_ || calls[i].argv.size() < 2) continue;
      if (calls[i].argv[1] == "mastodon-server.redis") continue;
      if (calls[i].argv[0] == "stop" || calls[i].argv[0] == "start") last = calls[i].argv[0];
    }
    if (!app_may_stay_stopped) {
      EXPECT_NE(last, "stop") << "the app was left stopped";
    }
  }

  // When a media staging directory was kept, the next restore takes it
  // over: it completes, saying so, and leaves none.
  void ExpectKeptStagingTakenOver() {
    bool kept = false;
    for (const auto& e : fs::directory_iterator(host_->dir())) {
      kept = kept || absl::StartsWith(e.path().filename().string(), ".media.");
    }
    if (!kept) return;
    KillAgent();
    StartSnapAgent("");
    CommandResult r =
        CliOnSocket({"--timeout", "120s", "restore", "--restore-config", Fixture("snap")});
    EXPECT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
    EXPECT_THAT(r.stdout_text, HasSubstr("staged by an earlier restore that stopped"));
    for (const auto& e : fs::directory_iterator(host_->dir())) {
      EXPECT_FALSE(absl::StartsWith(e.path().filename().string(), ".media."))
          << "media staging left after the next restore: " << e.path();
    }
  }

  std::string media_, common_, redis_data_;
  int redis_port_ = 0;
  std::map<std::string, std::string> old_media_, new_media_;
  std::string old_env_, new_env_, old_db_, new_db_;
  size_t calls_before_ = 0;
  absl::Duration restore_time_;
};

TEST_F(CrashTest, EveryFailpointKilledOrFailingLeavesTheInstanceWhole) {
  const std::vector<std::string> failpoints = Failpoints();
  ASSERT_GT(failpoints.size(), 30u);
  Baseline();
  const absl::Time start = absl::Now();
  for (const std::string& fp : failpoints) {
    // Killed there, restarted.
    {
      SCOPED_TRACE("kill at " + fp);
      Reset();
      StartSnapAgent(fp + "=kill");
      CommandResult r = CliOnSocket({"restore", "--detach", "--restore-config", Fixture("snap")});
      auto ended = agent_->Wait(absl::Seconds(120));
      ASSERT_TRUE(ended.has_value()) << "failpoint " << fp << " never reached: " << r.stdout_text;
      agent_.reset();
      StartSnapAgent("");
      const std::string id = OnlyOperation();
      if (id.empty()) {
        // Killed before the operation's first record: nothing was done.
        EXPECT_EQ(fp, "record.before_write");
      } else {
        CommandResult shown = CliOnSocket({"--json", "ops", "show", id});
        EXPECT_THAT(shown.stdout_text, HasSubstr("OPERATION_STATE_INTERRUPTED"));
        EXPECT_THAT(Events(id), HasSubstr("recovered: "));
      }
      ExpectWhole("after a kill at " + fp);
      ExpectKeptStagingTakenOver();
    }
    // Failing there.
    {
      SCOPED_TRACE("error at " + fp);
      Reset();
      StartSnapAgent(fp + "=error");
      CommandResult r =
          CliOnSocket({"--timeout", "120s", "restore", "--restore-config", Fixture("snap")});
      const bool logged_only = absl::StartsWith(fp, "record.");
      if (logged_only) {
        EXPECT_THAT(ReadFileOrEmpty(log_file()), HasSubstr("failpoint " + fp));
      } else {
        EXPECT_NE(r.exit_code, 0) << r.stdout_text;
        EXPECT_THAT(r.stdout_text + r.stderr_text, HasSubstr("failpoint " + fp));
      }
      ExpectWhole("after an error at " + fp, fp == "restore.step.start_services");
      const std::string id = OnlyOperation();
      CommandResult shown = CliOnSocket({"--json", "ops", "show", id});
      if (!logged_only) {
        EXPECT_THAT(shown.stdout_text, HasSubstr("OPERATION_STATE_FAILED"));
      }
      // Before the swap, the live database is untouched.
      if (fp.find("swap.after_commit") == std::string::npos &&
          fp.find("swap.after_journal_done") == std::string::npos) {
        bool before_swap = true;
        for (const char* later :
             {"restore.step.media", "restore.step.config", "restore.step.migrate",
              "restore.step.redis", "restore.step.cleanup", "restore.step.refresh",
              "restore.step.media_check", "restore.step.start_services", "restore.step.app_checks",
              "restore.before_report", "media.", "env.", "redis.", "record.", "journal."}) {
          if (absl::StartsWith(fp, later)) before_swap = false;
        }
        if (before_swap) {
          EXPECT_EQ(Fingerprint("mastodon"), old_db_);
        }
      }
      ExpectKeptStagingTakenOver();
    }
  }
  KillAgent();
  std::printf("crash proof: %zu failpoints x 2 in %s (a restore: %s)\n", failpoints.size(),
              absl::FormatDuration(absl::Now() - start).c_str(),
              absl::FormatDuration(restore_time_).c_str());
}

// make chaos: CHAOS_KILLS (default 50) SIGKILLs at random times within a
// whole restore (CHAOS_SEED), each followed by a restart and the checks.
TEST_F(CrashTest, DISABLED_ChaosRandomKills) {
  const char* kills_env = std::getenv("CHAOS_KILLS");
  const char* seed_env = std::getenv("CHAOS_SEED");
  const int kills = kills_env != nullptr ? std::atoi(kills_env) : 50;
  const unsigned seed = seed_env != nullptr ? static_cast<unsigned>(std::atoi(seed_env))
                                            : static_cast<unsigned>(std::random_device{}());
  Baseline();
  std::mt19937 rng(seed);
  const int64_t span_ms = absl::ToInt64Milliseconds(restore_time_) + 200;
  int old_count = 0, new_count = 0, finished = 0;
  for (int i = 0; i < kills; ++i) {
    SCOPED_TRACE(absl::StrCat("kill ", i, " seed ", seed));
    Reset();
    StartSnapAgent("");
    const int64_t at = static_cast<int64_t>(rng() % static_cast<uint64_t>(span_ms));
    CommandResult r = CliOnSocket({"restore", "--detach", "--restore-config", Fixture("snap")});
    ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
    absl::SleepFor(absl::Milliseconds(at));
    KillAgent();
    StartSnapAgent("");
    const std::string id = OnlyOperation();
    CommandResult shown = CliOnSocket({"--json", "ops", "show", id});
    if (absl::StrContains(shown.stdout_text, "OPERATION_STATE_SUCCEEDED")) {
      ++finished;
    } else {
      EXPECT_THAT(shown.stdout_text, HasSubstr("OPERATION_STATE_INTERRUPTED"));
      EXPECT_THAT(Events(id), HasSubstr("recovered: "));
    }
    ExpectWhole(absl::StrCat("after a kill at ", at, " ms"));
    (Fingerprint("mastodon") == new_db_ ? new_count : old_count)++;
  }
  KillAgent();
  std::printf("chaos: %d kills (seed %u) within %lld ms: %d old, %d new (%d had finished)\n", kills,
              seed, static_cast<long long>(span_ms), old_count, new_count, finished);
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
