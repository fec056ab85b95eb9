// End-to-end: a live migration through the real agent and CLI, from a real
// PostgreSQL 15 (the old host's, wal_level = logical) into a real 18 where
// the mastodon-server snap runs (recording fakes for snap and its wrappers),
// while a writer plays the old app: the migration follows until the
// cut-over, refuses it while the old app is still connected, then loses
// none of the writer's rows. A cancel while following, and the agent killed
// while following, leave both hosts as they were.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "agent/database/pg_connection.h"
#include "agent/service/auth.h"
#include "mastodon/restore/v1/agent_service.pb.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/fake_host.h"
#include "tests/harness/ports.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/tcp_proxy.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace e2e {
namespace {

namespace v1 = ::mastodon::restore::v1;
using ::mastodon_restore::testing::TestPostgres;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kOldDb[] = "mastodon_production";
constexpr char kPassword[] = "s3cret-migration-password";

// The old host's database: Mastodon-shaped (ids from sequences, a join
// table without a primary key, schema_migrations at the old app's version).
constexpr char kOldSchema[] = R"sql(
CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
INSERT INTO schema_migrations VALUES ('20240101000000');
CREATE TABLE accounts (id bigserial PRIMARY KEY, username text NOT NULL UNIQUE, note text);
CREATE TABLE statuses (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts,
                       text text NOT NULL);
CREATE TABLE accounts_tags (account_id bigint NOT NULL, tag_id bigint NOT NULL);
INSERT INTO accounts (username) SELECT 'user' || i FROM generate_series(1, 200) i;
INSERT INTO statuses (account_id, text) SELECT 1 + i % 200, 'toot ' || i FROM generate_series(1, 3000) i;
INSERT INTO accounts_tags SELECT a, 1 FROM generate_series(1, 200) a;
)sql";

class MigrateCliTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    StartPostgres(18);
    CreateSnapHost();
    auto old_pg = TestPostgres::Start(15, {"wal_level=logical"});
    ASSERT_OK(old_pg);
    old_ = std::move(*old_pg);
    ASSERT_OK(old_->Exec(absl::StrCat("ALTER ROLE postgres PASSWORD '", kPassword,
                                      "'; CREATE ROLE mastodon LOGIN")));
    ASSERT_OK(old_->Exec(absl::StrCat("CREATE DATABASE ", kOldDb, " OWNER mastodon")));
    ASSERT_OK(old_->Exec(absl::StrCat("SET ROLE mastodon;", kOldSchema), kOldDb));
    // This host's snap has a fresh install's database, and newer code: one
    // migration the old app never ran.
    ASSERT_OK(pg_->Exec("CREATE DATABASE mastodon OWNER mastodon"));
    ASSERT_OK(pg_->Exec("CREATE TABLE fresh_install (id int)", "mastodon"));
    testing::FakeHost::AddMigrations(
        host_->snap_app_dir(), {"20240101000000_create_everything", "20250301000000_add_newer"},
        {});
    password_file_ = dir_ + "/old-password";
    std::ofstream(password_file_) << kPassword << "\n";
  }

  void StartSnapAgent(std::vector<std::string> extra = {}) {
    HostLayout layout = host_->Layout();
    std::vector<std::string> args = {"--runtime",       "snap",
                                     "--snap-bin-dir",  layout.snap_bin_dir,
                                     "--snap-app-dir",  layout.snap_app_dir,
                                     "--snap-postgres", pg_->ConnInfo(""),
                                     "--host-path",     layout.host_path};
    args.insert(args.end(), extra.begin(), extra.end());
    StartAgent(args);
  }

  // Starts the migration, detached; its operation id.
  std::string StartMigration(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {
        "migrate",
        "--detach",
        "--from",
        absl::StrCat("host=127.0.0.1 port=", old_->cluster()->port(), " user=postgres"),
        "--from-password-file",
        password_file_,
        "--from-db",
        kOldDb};
    args.insert(args.end(), extra.begin(), extra.end());
    CommandResult r = CliOnSocket(args);
    EXPECT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
    return OperationId(r.stdout_text);
  }

  v1::Operation Show(const std::string& id) {
    CommandResult r = CliOnSocket({"--json", "ops", "show", id});
    v1::GetOperationResponse response;
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.stdout_text, &response, options).ok())
        << r.stdout_text << r.stderr_text;
    return response.operation();
  }

  // Polls until the operation is in `state` (fails the test after 120 s).
  v1::Operation WaitForState(const std::string& id, v1::OperationState state) {
    v1::Operation op;
    for (absl::Time end = absl::Now() + absl::Seconds(120); absl::Now() < end;) {
      op = Show(id);
      if (op.state() == state) return op;
      if (op.state() == v1::OPERATION_STATE_FAILED) break;
      absl::SleepFor(absl::Milliseconds(200));
    }
    ADD_FAILURE() << "operation " << id << " is " << v1::OperationState_Name(op.state()) << ", not "
                  << v1::OperationState_Name(state) << ": " << op.error().message();
    return op;
  }

  std::string Old(const std::string& sql, const std::string& db = kOldDb) {
    auto v = old_->QueryValue(sql, db);
    EXPECT_OK(v);
    return v.ok() ? *v : "";
  }
  std::string New(const std::string& sql, const std::string& db = "mastodon") {
    auto v = pg_->QueryValue(sql, db);
    EXPECT_OK(v);
    return v.ok() ? *v : "";
  }

  // Plays the old app on the old database, as the role mastodon under
  // `application`: inserts a status (then, with `touch_tags`, updates the
  // keyless accounts_tags) while `running()` holds, a pause after each.
  // The ids committed go to *committed (read it after the join); *written
  // counts them as they commit.
  std::thread OldApp(const std::string& application, std::function<bool()> running,
                     std::vector<std::string>* committed, std::atomic<int>* written,
                     bool touch_tags, absl::Duration pause) {
    return std::thread([=] {
      auto w = PgConnection::ConnectParams({{"host", old_->cluster()->socket_dir()},
                                            {"port", absl::StrCat(old_->cluster()->port())},
                                            {"user", "mastodon"},
                                            {"dbname", kOldDb},
                                            {"application_name", application}});
      ASSERT_OK(w);
      for (int i = 0; running(); ++i) {
        auto id =
            (*w)->Query("INSERT INTO statuses (account_id, text) VALUES ($1, $2) RETURNING id",
                        {absl::StrCat(1 + i % 200), absl::StrCat("live ", i)});
        ASSERT_OK(id);
        committed->push_back(id->Scalar());
        if (written != nullptr) ++*written;
        if (touch_tags) {
          ASSERT_OK((*w)->Exec(absl::StrCat(
              "UPDATE accounts_tags SET tag_id = tag_id + 1 WHERE account_id = ", 1 + i % 200)));
        }
        absl::SleepFor(pause);
      }
    });
  }

  // The old server holds nothing of a migration.
  void ExpectOldServerClean() {
    EXPECT_EQ(Old("SELECT count(*) FROM pg_replication_slots"), "0");
    EXPECT_EQ(Old("SELECT count(*) FROM pg_publication"), "0");
    EXPECT_EQ(Old("SELECT relreplident FROM pg_class WHERE relname = 'accounts_tags'"), "d");
  }

  // Every row the old app committed is in the database at `conninfo`,
  // once, and no other row it could have written.
  void ExpectEveryRowOnce(const std::string& conninfo, const std::vector<std::string>& committed) {
    auto rows = PgConnection::Connect(conninfo);
    ASSERT_OK(rows);
    auto live = (*rows)->Query("SELECT id FROM statuses WHERE text LIKE 'live %'");
    ASSERT_OK(live);
    std::multiset<std::string> ids;
    for (const auto& row : live->rows) ids.insert(row[0].value_or(""));
    EXPECT_EQ(ids, std::multiset<std::string>(committed.begin(), committed.end()));
  }

  // Waits (30 s at most) until the old app has committed `n` rows.
  static void WaitForWrites(const std::atomic<int>& written, int n) {
    for (int i = 0; i < 1500 && written.load() < n; ++i) absl::SleepFor(absl::Milliseconds(20));
  }

  // Everything the agent keeps on disk and says in its log.
  std::string AgentFiles() {
    std::string all = ReadFileOrEmpty(log_file());
    CommandSpec spec;
    spec.argv = {"/usr/bin/grep", "-r", "-l", kPassword, dir_ + "/state"};
    auto r = runner_->Run(spec, nullptr);
    if (r.ok()) all += r->stdout_text;
    return all;
  }

  std::unique_ptr<TestPostgres> old_;
  std::string password_file_;
};

TEST_F(MigrateCliTest, FollowsUntilTheCutOverAndLosesNoRowTheOldAppWrote) {
  StartSnapAgent();
  // The old app writes all along, as the role mastodon.
  std::atomic<bool> stop{false};
  std::vector<std::string> committed;
  std::thread writer = OldApp(
      "puma", [&] { return !stop.load(); }, &committed, nullptr, /*touch_tags=*/true,
      absl::Milliseconds(2));

  const std::string id = StartMigration();
  ASSERT_FALSE(id.empty());
  v1::Operation following = WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  EXPECT_EQ(following.kind(), v1::OPERATION_KIND_MIGRATE);
  // This host's live database is untouched while following; the old
  // server has the publication and the identity of the keyless table.
  EXPECT_EQ(New("SELECT count(*) FROM fresh_install"), "0");
  EXPECT_EQ(Old("SELECT count(*) FROM pg_publication"), "1");
  EXPECT_EQ(Old("SELECT relreplident FROM pg_class WHERE relname = 'accounts_tags'"), "f");

  // The old app is still connected: the cut-over is refused, the
  // migration goes on following.
  CommandResult r = CliOnSocket({"ops", "cutover", id});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  for (int i = 0; i < 100; ++i) {
    r = CliOnSocket({"--json", "ops", "show", id});
    if (absl::StrContains(r.stdout_text, "cut-over refused")) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_THAT(r.stdout_text, HasSubstr("cut-over refused: the old app still has sessions"));
  EXPECT_THAT(r.stdout_text, HasSubstr("mastodon (puma): 1"));
  EXPECT_EQ(Show(id).state(), v1::OPERATION_STATE_FOLLOWING);

  // The old app stops; now the cut-over goes through.
  absl::SleepFor(absl::Milliseconds(500));
  stop = true;
  writer.join();
  ASSERT_GT(committed.size(), 20u);
  r = CliOnSocket({"ops", "cutover", id});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  r = CliOnSocket({"--timeout", "180s", "ops", "watch", id});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  v1::Operation done = Show(id);
  ASSERT_EQ(done.state(), v1::OPERATION_STATE_SUCCEEDED) << done.error().message();
  const v1::MigrateResult& m = done.migrate_result();
  EXPECT_EQ(m.database(), "mastodon");
  EXPECT_THAT(m.previous_database(), ::testing::StartsWith("mastodon__previous_"));
  EXPECT_EQ(m.tables(), 4);
  EXPECT_EQ(m.sequences(), 2);
  EXPECT_THAT(m.replica_identity_full(), ::testing::ElementsAre("public.accounts_tags"));
  EXPECT_GT(m.downtime_seconds(), 0);
  EXPECT_GE(m.downtime_seconds(), m.catch_up_seconds());
  EXPECT_EQ(m.source_server_version().substr(0, 3), "15.");
  EXPECT_EQ(m.target_server_version().substr(0, 3), "18.");

  // Every row the old app committed is here once; the sequences are ahead;
  // the newer app's migration ran; the fresh install is kept aside.
  ExpectEveryRowOnce(pg_->ConnInfo("mastodon"), committed);
  EXPECT_EQ(New("SELECT count(*) FROM statuses"), Old("SELECT count(*) FROM statuses"));
  EXPECT_EQ(New("SELECT string_agg(account_id || ':' || tag_id, ',' ORDER BY account_id)"
                " FROM accounts_tags"),
            Old("SELECT string_agg(account_id || ':' || tag_id, ',' ORDER BY account_id)"
                " FROM accounts_tags"));
  EXPECT_EQ(New("SELECT nextval('statuses_id_seq') > max(id) FROM statuses"), "t");
  EXPECT_EQ(New("SELECT max(version) FROM schema_migrations"), "20250301000000");
  EXPECT_EQ(
      New("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'mastodon'", "postgres"),
      "mastodon");
  EXPECT_EQ(New(absl::StrCat("SELECT count(*) FROM fresh_install"), m.previous_database()), "0");
  EXPECT_EQ(New("SELECT count(*) FROM pg_subscription", "postgres"), "0");
  ExpectOldServerClean();

  // Through the snap: stopped, migrated, feeds built, started, answering.
  std::vector<std::string> calls;
  for (const auto& c : host_->Calls()) calls.push_back(absl::StrJoin(c.argv, " "));
  const std::string joined = absl::StrJoin(calls, "\n");
  EXPECT_THAT(joined, HasSubstr("feeds build --all --concurrency"));
  EXPECT_LT(joined.find("stop mastodon-server"), joined.find("feeds build"));
  EXPECT_LT(joined.find("feeds build"), joined.rfind("start mastodon-server"));
  EXPECT_THAT(done.steps(),
              ::testing::Contains(::testing::Property(&v1::Step::name, "app_checks")));
  // Every step ran but the media's: without the old host's agent there
  // are none to copy.
  for (const v1::Step& s : done.steps()) {
    if (absl::StartsWith(s.name(), "media")) {
      EXPECT_EQ(s.state(), v1::STEP_STATE_SKIPPED) << s.name();
      continue;
    }
    EXPECT_EQ(s.state(), v1::STEP_STATE_SUCCEEDED) << s.name() << ": " << s.message();
  }
  // The old server's password is in no record and no log.
  EXPECT_THAT(AgentFiles(), Not(HasSubstr(kPassword)));
}

TEST_F(MigrateCliTest, ACancelWhileFollowingLeavesBothHostsAsTheyWere) {
  StartSnapAgent();
  const std::string id = StartMigration();
  WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  CommandResult r = CliOnSocket({"ops", "cancel", id});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  v1::Operation op = WaitForState(id, v1::OPERATION_STATE_CANCELLED);
  EXPECT_EQ(New("SELECT count(*) FROM fresh_install"), "0");
  EXPECT_EQ(New("SELECT count(*) FROM pg_database WHERE datname LIKE '%restore%'", "postgres"),
            "0");
  EXPECT_EQ(New("SELECT count(*) FROM pg_subscription", "postgres"), "0");
  ExpectOldServerClean();
  // The snap's app was never stopped.
  for (const auto& c : host_->Calls("snap")) {
    EXPECT_THAT(absl::StrJoin(c.argv, " "), Not(HasSubstr("stop")));
  }
  // A cut-over of an operation that has ended, or of one that is not a
  // migration, is refused.
  r = CliOnSocket({"ops", "cutover", id});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.stderr_text, HasSubstr("has already ended"));
}

TEST_F(MigrateCliTest, TheAgentKilledWhileFollowingIsCleanedUpAtItsNextStart) {
  StartSnapAgent();
  const std::string id = StartMigration();
  WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  ASSERT_EQ(Old("SELECT count(*) FROM pg_replication_slots WHERE active"), "1");
  agent_->Signal(SIGKILL);
  agent_->Wait(absl::Seconds(30));
  agent_.reset();
  StartSnapAgent();
  v1::Operation op = Show(id);
  EXPECT_EQ(op.state(), v1::OPERATION_STATE_INTERRUPTED);
  // The subscription and the staging database are gone, and the slot with
  // them; the publication and the replica identity are named for the admin.
  EXPECT_EQ(New("SELECT count(*) FROM pg_subscription", "postgres"), "0");
  EXPECT_EQ(New("SELECT count(*) FROM pg_database WHERE datname LIKE '%restore%'", "postgres"),
            "0");
  EXPECT_EQ(New("SELECT count(*) FROM fresh_install"), "0");
  for (int i = 0; i < 50 && Old("SELECT count(*) FROM pg_replication_slots") != "0"; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(Old("SELECT count(*) FROM pg_replication_slots"), "0");
  // (What recovery did is in the operation's events.)
  CommandResult r = CliOnSocket({"--json", "ops", "watch", id});
  EXPECT_THAT(r.stdout_text, HasSubstr("dropped the subscription mastodon_restore_"));
  EXPECT_THAT(r.stdout_text, HasSubstr("the old server may keep the publication"));
  EXPECT_THAT(r.stdout_text, HasSubstr("REPLICA IDENTITY FULL on public.accounts_tags"));
}

TEST_F(MigrateCliTest, ALagThresholdCutsOverByItselfButNeverUnderTheOldAppsFeet) {
  StartSnapAgent();
  // The old app still connected: an unattended cut-over must not lose its
  // writes, so the migration fails and undoes itself.
  auto app = PgConnection::ConnectParams({{"host", old_->cluster()->socket_dir()},
                                          {"port", absl::StrCat(old_->cluster()->port())},
                                          {"user", "mastodon"},
                                          {"dbname", kOldDb},
                                          {"application_name", "sidekiq"}});
  ASSERT_OK(app);
  std::string id = StartMigration({"--cutover-when-lag-below", "100M"});
  v1::Operation op = WaitForState(id, v1::OPERATION_STATE_FAILED);
  EXPECT_THAT(op.error().message(),
              HasSubstr("the old app still has sessions on the old database: mastodon (sidekiq)"));
  ExpectOldServerClean();
  EXPECT_EQ(New("SELECT count(*) FROM fresh_install"), "0");
  // Stopped, it goes through without anyone asking.
  app->reset();
  id = StartMigration({"--cutover-when-lag-below", "100M"});
  CommandResult r = CliOnSocket({"--timeout", "180s", "ops", "watch", id});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_EQ(Show(id).state(), v1::OPERATION_STATE_SUCCEEDED);
  EXPECT_EQ(New("SELECT count(*) FROM statuses"), "3000");
  // The report says what moved and how long the app was down.
  r = CliOnSocket({"ops", "show", id});
  EXPECT_THAT(r.stdout_text, HasSubstr("migrated       mastodon\n"));
  EXPECT_THAT(r.stdout_text, HasSubstr("PostgreSQL 15."));
  EXPECT_THAT(r.stdout_text, HasSubstr(", 4 tables, 2 sequences\n"));
  EXPECT_THAT(r.stdout_text, HasSubstr("downtime       "));
}

TEST_F(MigrateCliTest, NoRoomForTheCopyIsRefusedBeforeAnythingIsCreated) {
  StartSnapAgent({"--free-space-floor", "1125899906842624"});  // 1 PiB must stay free
  const std::string id = StartMigration();
  v1::Operation op = WaitForState(id, v1::OPERATION_STATE_FAILED);
  EXPECT_EQ(op.error().step(), "preflight");
  EXPECT_THAT(op.error().message(), HasSubstr("PostgreSQL data directory"));
  EXPECT_THAT(op.error().message(), HasSubstr("must stay free (--free-space-floor)"));
  EXPECT_EQ(New("SELECT count(*) FROM pg_database WHERE datname LIKE '%restore%'", "postgres"),
            "0");
  ExpectOldServerClean();
}

TEST_F(MigrateCliTest, AnOlderMastodonHereIsRefusedBeforeAnythingIsCreated) {
  // The old app ran a migration this host's code does not ship.
  ASSERT_OK(old_->Exec("INSERT INTO schema_migrations VALUES ('20990101000000')", kOldDb));
  StartSnapAgent();
  const std::string id = StartMigration();
  v1::Operation op = WaitForState(id, v1::OPERATION_STATE_FAILED);
  EXPECT_EQ(op.error().step(), "preflight");
  EXPECT_THAT(op.error().message(),
              HasSubstr("the old database has run migration 20990101000000, newer than any this "
                        "host's Mastodon knows (20250301000000"));
  EXPECT_EQ(New("SELECT count(*) FROM pg_database WHERE datname LIKE '%restore%'", "postgres"),
            "0");
  ExpectOldServerClean();
}

TEST_F(MigrateCliTest, AFailureAtTheSwapLeavesThisHostsDatabaseAndTheOldOneAsTheyWere) {
  agent_env_ = {"MR_FAILPOINTS=swap.before_begin=error"};
  StartSnapAgent();
  const std::string id = StartMigration();
  WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  ASSERT_EQ(CliOnSocket({"ops", "cutover", id}).exit_code, 0);
  v1::Operation op = WaitForState(id, v1::OPERATION_STATE_FAILED);
  EXPECT_THAT(op.error().message(), HasSubstr("swap.before_begin"));
  EXPECT_EQ(op.error().step(), "swap");
  // The follow was taken down before the swap; the staging database is
  // gone; this host's app runs again; the old app may start again.
  EXPECT_EQ(New("SELECT count(*) FROM fresh_install"), "0");
  EXPECT_EQ(New("SELECT count(*) FROM pg_database WHERE datname LIKE '%restore%'", "postgres"),
            "0");
  ExpectOldServerClean();
  const std::vector<testing::FakeCall> snap = host_->Calls("snap");
  ASSERT_FALSE(snap.empty());
  EXPECT_THAT(absl::StrJoin(snap.back().argv, " "), HasSubstr("start"));
  EXPECT_THAT(op.migrate_result().warnings(),
              ::testing::Contains(HasSubstr("start the old host's app again")));
}

TEST_F(MigrateCliTest, TheAgentKilledDuringTheCutOverLeavesThisHostsDatabaseAsItWas) {
  agent_env_ = {"MR_FAILPOINTS=swap.before_begin=kill"};
  StartSnapAgent();
  const std::string id = StartMigration();
  WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  ASSERT_EQ(CliOnSocket({"ops", "cutover", id}).exit_code, 0);
  ASSERT_TRUE(agent_->Wait(absl::Seconds(60)).has_value()) << "the agent did not die";
  agent_.reset();
  agent_env_.clear();
  StartSnapAgent();
  EXPECT_EQ(Show(id).state(), v1::OPERATION_STATE_INTERRUPTED);
  EXPECT_EQ(New("SELECT count(*) FROM fresh_install"), "0");
  EXPECT_EQ(New("SELECT count(*) FROM pg_database WHERE datname LIKE '%restore%'", "postgres"),
            "0");
  ExpectOldServerClean();
}

TEST_F(MigrateCliTest, TheOldServerRestartedWhileFollowingIsFollowedAgain) {
  StartSnapAgent();
  const std::string id = StartMigration();
  WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  ASSERT_OK(old_->cluster()->Stop());
  auto follow_message = [&] {
    const v1::Operation now = Show(id);
    for (const v1::Step& s : now.steps()) {
      if (s.name() == "follow") return s.message();
    }
    return std::string();
  };
  std::string follow;
  for (int i = 0; i < 100 && !absl::StrContains(follow, "unreachable: "); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    follow = follow_message();
  }
  EXPECT_THAT(follow, HasSubstr("unreachable: "));
  // Back, with rows written after the outage: they arrive, and the
  // cut-over goes through.
  ASSERT_OK(old_->cluster()->Restart());
  ASSERT_OK(
      old_->Exec("INSERT INTO statuses (account_id, text) VALUES (1, 'after the outage')", kOldDb));
  for (int i = 0; i < 300 && absl::StrContains(follow, "unreachable: "); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    follow = follow_message();
  }
  EXPECT_THAT(follow, HasSubstr(" behind"));
  ASSERT_EQ(CliOnSocket({"ops", "cutover", id}).exit_code, 0);
  CommandResult r = CliOnSocket({"--timeout", "180s", "ops", "watch", id});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_EQ(Show(id).state(), v1::OPERATION_STATE_SUCCEEDED);
  EXPECT_EQ(New("SELECT count(*) FROM statuses WHERE text = 'after the outage'"), "1");
  EXPECT_EQ(New("SELECT count(*) FROM statuses"), Old("SELECT count(*) FROM statuses"));
  EXPECT_THAT(r.stdout_text, HasSubstr("both servers answer again"));
  ExpectOldServerClean();
}

TEST_F(MigrateCliTest, TheOldServerGoneAtTheCutOverIsReportedWithWhatItKeeps) {
  StartSnapAgent();
  const std::string id = StartMigration();
  WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  ASSERT_OK(old_->cluster()->Stop());
  // An outage does not end the follow: it waits, saying why.
  std::string follow;
  for (int i = 0; i < 100 && !absl::StrContains(follow, "unreachable: "); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    const v1::Operation now = Show(id);
    for (const v1::Step& s : now.steps()) {
      if (s.name() == "follow") follow = s.message();
    }
  }
  EXPECT_THAT(follow, HasSubstr("unreachable: "));
  EXPECT_EQ(Show(id).state(), v1::OPERATION_STATE_FOLLOWING);
  // A cut-over needs the old server: it fails, and everything is undone.
  ASSERT_EQ(CliOnSocket({"ops", "cutover", id}).exit_code, 0);
  v1::Operation op = WaitForState(id, v1::OPERATION_STATE_FAILED);
  EXPECT_THAT(op.error().message(), HasSubstr("unable to cut over: unable to connect"));
  // This host is as it was, nothing of the follow is left here; what the
  // old server keeps is named with how to remove it.
  EXPECT_EQ(New("SELECT count(*) FROM fresh_install"), "0");
  EXPECT_EQ(New("SELECT count(*) FROM pg_subscription", "postgres"), "0");
  EXPECT_EQ(New("SELECT count(*) FROM pg_database WHERE datname LIKE '%restore%'", "postgres"),
            "0");
  const std::string warnings = absl::StrJoin(op.migrate_result().warnings(), "\n");
  EXPECT_THAT(warnings, HasSubstr("keeps the replication slot mastodon_restore_"));
  EXPECT_THAT(warnings, HasSubstr("pg_drop_replication_slot"));
  EXPECT_THAT(warnings, HasSubstr("REPLICA IDENTITY DEFAULT on public.accounts_tags"));
}

// The old host has its own agent (a source install: systemd units, fake
// systemctl), reached over TCP with TLS, a client certificate and a
// token: the new host's agent stops the old app at the cut-over, starts it
// again when the migration is undone, keeps it stopped once it cut over.
class MigrateWithOldAgentTest : public MigrateCliTest {
 protected:
  void SetUp() override {
    MigrateCliTest::SetUp();
    auto host = testing::FakeHost::Create();
    ASSERT_OK(host);
    old_host_ = std::move(*host);
    old_host_->InstallSystemd(absl::StrCat(
        "DB_HOST=", old_->cluster()->socket_dir(), "\nDB_PORT=", old_->cluster()->port(),
        "\nDB_USER=mastodon\nDB_NAME=", kOldDb, "\nSECRET_KEY_BASE=x\n"));
    ASSERT_OK(old_host_->RunTool(
        {"systemctl", "start", "mastodon-streaming", "mastodon-sidekiq", "mastodon-web"}));
    ASSERT_TRUE(OldAppRunning());
    // A server certificate for 127.0.0.1 and a client certificate for the
    // new host's agent, each self-signed (its own CA), by the real openssl.
    MakeCertificate("old", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1");
    MakeCertificate("new", "/CN=new-host", "extendedKeyUsage=clientAuth");
    std::ofstream(dir_ + "/old-tokens")
        << "new-host read,operate " << TokenHash(kPeerToken) << "\n";
    old_dir_ = dir_ + "/old-agent";
    ASSERT_EQ(::mkdir(old_dir_.c_str(), 0700), 0);
  }

  void TearDown() override {
    if (old_agent_ != nullptr) {
      old_agent_->Signal(SIGTERM);
      old_agent_->Wait(absl::Seconds(30));
    }
    MigrateCliTest::TearDown();
  }

  void MakeCertificate(const std::string& name, const std::string& subject,
                       const std::string& extension) {
    CommandSpec gen;
    gen.argv = {"openssl",  "req",
                "-x509",    "-newkey",
                "rsa:2048", "-nodes",
                "-keyout",  dir_ + "/" + name + "-key.pem",
                "-out",     dir_ + "/" + name + ".pem",
                "-days",    "1",
                "-subj",    subject,
                "-addext",  extension};
    gen.env = {"PATH=/usr/bin:/bin"};
    gen.timeout = absl::Seconds(60);
    auto made = runner_->Run(gen, nullptr);
    ASSERT_OK(made);
    ASSERT_EQ(made->exit_code, 0) << made->stderr_text;
  }

  std::string OldLog() const { return old_dir_ + "/agent.log"; }

  // Starts (or restarts, on the same port) the old host's agent.
  void StartOldAgent() {
    if (old_port_ == 0) {
      absl::StatusOr<int> port = testing::FreeServerPort();
      ASSERT_OK(port);
      old_port_ = *port;
    }
    HostLayout layout = old_host_->Layout();
    CommandSpec spec;
    spec.argv = {MR_AGENT_BIN,
                 "--socket",
                 old_dir_ + "/agent.sock",
                 "--state-dir",
                 old_dir_ + "/state",
                 "--shutdown-grace",
                 "2s",
                 "--runtime",
                 "systemd",
                 "--app-dir",
                 layout.app_dir,
                 "--systemd-unit-dir",
                 layout.systemd_unit_dir,
                 "--host-path",
                 layout.host_path,
                 "--listen",
                 absl::StrCat("127.0.0.1:", old_port_),
                 "--tls-cert",
                 dir_ + "/old.pem",
                 "--tls-key",
                 dir_ + "/old-key.pem",
                 "--tls-client-ca",
                 dir_ + "/new.pem",
                 "--tokens",
                 dir_ + "/old-tokens"};
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.output_file = OldLog();
    const size_t skip = ReadFileOrEmpty(OldLog()).size();
    auto process = runner_->Start(spec);
    ASSERT_OK(process);
    old_agent_ = std::move(*process);
    for (absl::Time end = absl::Now() + absl::Seconds(20); absl::Now() < end;) {
      const std::string log = ReadFileOrEmpty(OldLog());
      const size_t at = log.find("agent listening on TCP", skip);
      if (at != std::string::npos) {
        const size_t port = log.find("port=", at);
        ASSERT_NE(port, std::string::npos) << log;
        old_port_ = std::atoi(log.c_str() + port + 5);
        return;
      }
      if (old_agent_->Wait(absl::Milliseconds(20)).has_value()) {
        FAIL() << "the old agent exited:\n" << log;
      }
    }
    FAIL() << "the old agent did not start:\n" << ReadFileOrEmpty(OldLog());
  }

  void KillOldAgent() {
    old_agent_->Signal(SIGKILL);
    old_agent_->Wait(absl::Seconds(30));
    old_agent_.reset();
  }

  // The flags that give the new host's agent the old one as its peer
  // "old-host".
  std::vector<std::string> PeerFlags() {
    const std::string peers = dir_ + "/peers";
    std::ofstream(peers) << "old-host 127.0.0.1:" << (peer_port_ != 0 ? peer_port_ : old_port_)
                         << " " << kPeerToken << "\n";
    EXPECT_EQ(::chmod(peers.c_str(), 0600), 0);
    return {"--peers-file",    peers,        "--peer-ca",          dir_ + "/old.pem", "--peer-cert",
            dir_ + "/new.pem", "--peer-key", dir_ + "/new-key.pem"};
  }

  // The new host's agent (the snap's), with the old one as its peer.
  void StartNewAgent() { StartSnapAgent(PeerFlags()); }

  // Polls the operation until `done` holds (or 60 s pass).
  v1::Operation WaitUntil(const std::string& id,
                          const std::function<bool(const v1::Operation&)>& done) {
    v1::Operation op;
    for (int i = 0; i < 600; ++i) {
      op = Show(id);
      if (done(op)) break;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return op;
  }

  // The cut-over failed and the migration follows again.
  static bool FollowingAgainAfter(int failures, const v1::Operation& op) {
    return op.migrate_result().failed_cutovers() == failures &&
           op.state() == v1::OPERATION_STATE_FOLLOWING;
  }

  // Asks for the cut-over and watches the migration to its end, then joins
  // the old app's writer: the migration must succeed; *done is it then.
  void CutOverToTheEnd(const std::string& id, std::thread* writer, v1::Operation* done) {
    ASSERT_EQ(CliOnSocket({"ops", "cutover", id}).exit_code, 0);
    CommandResult r = CliOnSocket({"--timeout", "180s", "ops", "watch", id});
    writer->join();
    ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text << ReadFileOrEmpty(OldLog());
    *done = Show(id);
    ASSERT_EQ(done->state(), v1::OPERATION_STATE_SUCCEEDED) << done->error().message();
  }

  // The old app as the old host's service manager sees it.
  bool OldAppRunning() const {
    return old_host_->RunTool({"systemctl", "is-active", "mastodon-web"}).ok();
  }

  // The old host's systemctl stop/start calls, in order.
  std::vector<std::string> OldAppControl() const {
    std::vector<std::string> out;
    for (const auto& c : old_host_->Calls("systemctl")) {
      if (!c.argv.empty() && (c.argv[0] == "stop" || c.argv[0] == "start")) {
        out.push_back(c.argv[0]);
      }
    }
    return out;
  }

  // The old agent's holds, as its CLI lists them.
  std::string OldHolds() {
    return Cli({"--agent", old_dir_ + "/agent.sock", "app-hold", "list"}).stdout_text;
  }

  std::string OldMedia() const { return old_host_->app_dir() + "/public/system"; }
  std::string NewMedia() const { return host_->dir() + "/media"; }

  static void WriteMedia(const std::string& root, const std::string& rel, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(root + "/" + rel).parent_path());
    std::ofstream(root + "/" + rel) << text;
  }
  // Every file below `root`, with its content.
  static std::map<std::string, std::string> Tree(const std::string& root) {
    std::map<std::string, std::string> out;
    if (!std::filesystem::exists(root)) return out;
    for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
      if (!e.is_regular_file()) continue;
      out[std::filesystem::relative(e.path(), root).string()] = ReadFileOrEmpty(e.path().string());
    }
    return out;
  }

  static constexpr char kPeerToken[] = "peer-token-0123456789abcdef";
  std::unique_ptr<testing::FakeHost> old_host_;
  std::string old_dir_;
  std::unique_ptr<Process> old_agent_;
  int old_port_ = 0;
  // Where the new agent reaches the old one (0: old_port_).
  int peer_port_ = 0;
};

TEST_F(MigrateWithOldAgentTest, TheOldAgentStopsItsAppAtTheCutOverAndKeepsItStopped) {
  // The old host's media; one file goes away, one changes and one comes
  // after the first pass.
  WriteMedia(OldMedia(), "media_attachments/files/000/000/001/original/a.png", "a");
  WriteMedia(OldMedia(), "accounts/avatars/000/000/001/original/b.png", "bb");
  WriteMedia(OldMedia(), "cache/media_attachments/files/1/c.jpg", "ccc");
  WriteMedia(OldMedia(), "media_attachments/files/000/000/002/original/gone.png", "gone");
  StartOldAgent();
  StartNewAgent();
  old_host_->ClearCalls();
  // The old app writes until its service manager stops it.
  std::atomic<int> written{0};
  std::vector<std::string> committed;
  std::thread writer = OldApp(
      "sidekiq", [&] { return OldAppRunning(); }, &committed, &written, /*touch_tags=*/false,
      absl::ZeroDuration());
  const std::string id = StartMigration(
      {"--from-agent", "old-host", "--media-pass-every", "1s", "--media-bandwidth-limit", "10M"});
  v1::Operation following = WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  // The first pass staged the media; nothing is in this host's media
  // directory before the swap.
  EXPECT_EQ(following.migrate_result().media_files(), 4);
  EXPECT_EQ(Tree(NewMedia()).count("media_attachments/files/000/000/001/original/a.png"), 0u);
  WriteMedia(OldMedia(), "media_attachments/files/000/000/003/original/new.png", "new");
  WriteMedia(OldMedia(), "accounts/avatars/000/000/001/original/b.png", "bbbb");
  std::filesystem::remove(OldMedia() + "/media_attachments/files/000/000/002/original/gone.png");
  // One changed in place, its size and mtime put back: only the content's
  // hash tells.
  const std::string c = OldMedia() + "/cache/media_attachments/files/1/c.jpg";
  struct stat c_before;
  ASSERT_EQ(::stat(c.c_str(), &c_before), 0);
  WriteMedia(OldMedia(), "cache/media_attachments/files/1/c.jpg", "CCC");
  struct timespec c_times[2] = {c_before.st_mtim, c_before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, c.c_str(), c_times, 0), 0);
  // A pass that began after the changes (two passes on) leaves the
  // cut-over's pass nothing to read.
  const int passes = Show(id).migrate_result().media_passes();
  for (int i = 0; i < 300 && Show(id).migrate_result().media_passes() < passes + 2; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_GE(Show(id).migrate_result().media_passes(), passes + 2);
  WaitForWrites(written, 50);
  ASSERT_GE(written.load(), 50) << "the writer does not write";
  v1::Operation done;
  ASSERT_NO_FATAL_FAILURE(CutOverToTheEnd(id, &writer, &done));
  const v1::MigrateResult& m = done.migrate_result();
  EXPECT_EQ(m.source_runtime(), "systemd");
  EXPECT_EQ(m.source_app(), "kept stopped");
  EXPECT_GT(m.downtime_seconds(), m.catch_up_seconds());
  // The media arrived exactly as the old host has them at the cut-over:
  // the new and the changed files read again, the one gone left out.
  EXPECT_EQ(m.media_delta_files(), 0);
  EXPECT_EQ(m.media_delta_bytes(), 0);
  const auto old_tree = Tree(OldMedia());
  EXPECT_EQ(old_tree.size(), 4u);
  EXPECT_EQ(Tree(NewMedia()), old_tree);
  for (const auto& e : std::filesystem::directory_iterator(host_->dir())) {
    EXPECT_THAT(e.path().filename().string(), Not(HasSubstr("mastodon-restore")));
  }

  // Every row the old app committed before its agent stopped it is here.
  ExpectEveryRowOnce(pg_->ConnInfo("mastodon"), committed);
  EXPECT_GT(committed.size(), 50u);
  EXPECT_EQ(New("SELECT nextval('statuses_id_seq') > max(id) FROM statuses"), "t");
  ExpectOldServerClean();

  // The old app was stopped once and never started again; its agent says
  // why and lets the admin's operations run again.
  EXPECT_THAT(OldAppControl(), ::testing::ElementsAre("stop"));
  EXPECT_FALSE(OldAppRunning());
  EXPECT_THAT(OldHolds(), HasSubstr(absl::StrCat(id, ": kept stopped for migration ", id)));
  EXPECT_THAT(OldHolds(), HasSubstr("(token:new-host)"));
  // `ops show` says where the old app was left and what the media passes
  // read.
  const std::string shown = CliOnSocket({"ops", "show", id}).stdout_text;
  EXPECT_THAT(shown, HasSubstr("old host       systemd, Mastodon "));
  EXPECT_THAT(shown, HasSubstr("its app kept stopped"));
  EXPECT_THAT(shown, HasSubstr("media          4 files, "));
  EXPECT_THAT(shown, HasSubstr("; at the cut-over 0 files, "));
  // The way back the report names: the old host's admin releases the hold,
  // and the old app runs again.
  CommandResult back = Cli({"--agent", old_dir_ + "/agent.sock", "app-hold", "release", id});
  EXPECT_EQ(back.exit_code, 0) << back.stderr_text;
  EXPECT_THAT(back.stdout_text, HasSubstr(absl::StrCat(id, ": released")));
  EXPECT_TRUE(OldAppRunning());
  EXPECT_THAT(OldHolds(), HasSubstr("no hold on this host's app"));
  // The token and the old server's password are in no record or log.
  EXPECT_THAT(AgentFiles(), Not(HasSubstr(kPeerToken)));
  EXPECT_THAT(AgentFiles(), Not(HasSubstr(kPassword)));
  EXPECT_THAT(ReadFileOrEmpty(OldLog()), Not(HasSubstr(kPeerToken)));
}

TEST_F(MigrateWithOldAgentTest, TheOldAgentGoneAtTheCutOverKeepsTheFollowAndTheOldAppRunning) {
  WriteMedia(OldMedia(), "media_attachments/files/000/000/001/original/a.png", "a");
  WriteMedia(OldMedia(), "accounts/avatars/000/000/001/original/b.png", "bb");
  WriteMedia(OldMedia(), "media_attachments/files/000/000/002/original/gone.png", "gone");
  StartOldAgent();
  StartNewAgent();
  const std::string id = StartMigration({"--from-agent", "old-host"});
  WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  // The old agent dies while following: the cut-over cannot stop the old
  // app, so it is refused and the follow goes on.
  KillOldAgent();
  ASSERT_EQ(CliOnSocket({"ops", "cutover", id}).exit_code, 0);
  std::string shown;
  for (int i = 0; i < 300 && !absl::StrContains(shown, "unable to stop the old host's app"); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
    shown = CliOnSocket({"--json", "ops", "show", id}).stdout_text;
  }
  EXPECT_THAT(shown, HasSubstr("cut-over refused: unable to stop the old host's app"));
  EXPECT_EQ(Show(id).state(), v1::OPERATION_STATE_FOLLOWING);
  EXPECT_TRUE(OldAppRunning());
  // Back (same port), the media changed meanwhile: the next cut-over goes
  // through, its media pass reads only the new and the changed file.
  WriteMedia(OldMedia(), "media_attachments/files/000/000/003/original/new.png", "new");
  WriteMedia(OldMedia(), "accounts/avatars/000/000/001/original/b.png", "bbbb");
  std::filesystem::remove(OldMedia() + "/media_attachments/files/000/000/002/original/gone.png");
  StartOldAgent();
  ASSERT_EQ(CliOnSocket({"ops", "cutover", id}).exit_code, 0);
  CommandResult r = CliOnSocket({"--timeout", "180s", "ops", "watch", id});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  const v1::MigrateResult m = Show(id).migrate_result();
  EXPECT_EQ(m.source_app(), "kept stopped");
  EXPECT_FALSE(OldAppRunning());
  EXPECT_EQ(m.media_files(), 3);
  EXPECT_EQ(m.media_passes(), 1);
  EXPECT_EQ(m.media_delta_files(), 2);
  EXPECT_EQ(m.media_delta_bytes(), 7);
  EXPECT_EQ(Tree(NewMedia()), Tree(OldMedia()));
  EXPECT_EQ(Tree(NewMedia()).size(), 3u);
}

TEST_F(MigrateWithOldAgentTest, TheNewAgentKilledDuringTheCutOverStartsTheOldAppAgainAtItsStart) {
  StartOldAgent();
  agent_env_ = {"MR_FAILPOINTS=swap.before_begin=kill"};
  StartNewAgent();
  const std::string id = StartMigration({"--from-agent", "old-host"});
  WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  old_host_->ClearCalls();
  ASSERT_EQ(CliOnSocket({"ops", "cutover", id}).exit_code, 0);
  ASSERT_TRUE(agent_->Wait(absl::Seconds(60)).has_value()) << "the agent did not die";
  agent_.reset();
  // Killed before the swap, with the old app held stopped: the old agent
  // keeps it stopped (the holder may have cut over) and refuses to change
  // the instance meanwhile.
  EXPECT_FALSE(OldAppRunning());
  EXPECT_THAT(OldHolds(), HasSubstr(absl::StrCat(id, ": held for migration ")));
  CommandResult refused = Cli({"--agent", old_dir_ + "/agent.sock", "db-migrate"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.stderr_text, HasSubstr("held stopped by migration " + id));
  // The new agent's next start: the swap had not committed, so the old app
  // runs again and this host is as it was.
  agent_env_.clear();
  StartNewAgent();
  EXPECT_EQ(Show(id).state(), v1::OPERATION_STATE_INTERRUPTED);
  EXPECT_THAT(OldAppControl(), ::testing::ElementsAre("stop", "start"));
  EXPECT_TRUE(OldAppRunning());
  EXPECT_THAT(OldHolds(), HasSubstr("no hold on this host's app"));
  EXPECT_EQ(New("SELECT count(*) FROM fresh_install"), "0");
  ExpectOldServerClean();
  CommandResult events = CliOnSocket({"--json", "ops", "watch", id});
  EXPECT_THAT(events.stdout_text,
              HasSubstr("agent 'old-host', hold " + id + ") was started again"));
}

// The connection between the agents cut in the middle of a file (by a
// relay between them): the pass takes the file up at the byte where it
// stopped, over a new connection, and the file arrives whole and checked
// against its listed hash.
TEST_F(MigrateWithOldAgentTest, AConnectionCutMidFileIsTakenUpAtTheByteWhereItStopped) {
  std::string big(16 << 20, '\0');
  uint32_t x = 2463534242u;
  for (char& c : big) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  const std::string rel = "media_attachments/files/000/000/001/original/big.mp4";
  WriteMedia(OldMedia(), rel, big);
  StartOldAgent();
  auto relay = testing::TcpProxy::Start(old_port_);
  ASSERT_OK(relay);
  peer_port_ = (*relay)->port();
  StartNewAgent();
  // Cut once 8 MiB of the old agent's answers went through.
  (*relay)->CutAfter(8 << 20);
  const std::string id = StartMigration({"--from-agent", "old-host"});
  v1::Operation following = WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  EXPECT_EQ((*relay)->cuts(), 1);
  EXPECT_EQ(following.migrate_result().media_files(), 1);
  EXPECT_EQ(following.migrate_result().media_bytes(), 16 << 20);
  // Read once: the 16 MiB, the chunk the cut broke and the other calls;
  // read again from its start, it would take 24 MiB.
  EXPECT_LT((*relay)->bytes_from_target(), (16 << 20) + (3 << 20));
  std::string staged;
  for (const auto& e : std::filesystem::directory_iterator(host_->dir())) {
    const std::string name = e.path().filename().string();
    if (absl::StrContains(name, "mastodon-restore") && absl::StrContains(name, "pass01")) {
      staged = ReadFileOrEmpty(e.path().string() + "/" + rel);
    }
  }
  EXPECT_TRUE(staged == big) << "staged " << staged.size() << " bytes";
  ASSERT_EQ(CliOnSocket({"ops", "cancel", id}).exit_code, 0);
  WaitForState(id, v1::OPERATION_STATE_CANCELLED);
  ExpectOldServerClean();
  EXPECT_TRUE(OldAppRunning());
}

// The old host's media are listed in the preflight: more than this host
// has room for is refused before anything is copied (8 TiB of a sparse
// file here).
TEST_F(MigrateWithOldAgentTest, TheOldHostsMediaWithoutRoomHereAreRefusedBeforeAnyCopy) {
  WriteMedia(OldMedia(), "media_attachments/files/000/000/001/original/a.png", "a");
  WriteMedia(OldMedia(), "media_attachments/files/000/000/002/original/huge.mp4", "");
  std::filesystem::resize_file(
      OldMedia() + "/media_attachments/files/000/000/002/original/huge.mp4", uintmax_t{8} << 40);
  StartOldAgent();
  StartNewAgent();
  old_host_->ClearCalls();
  const std::string id = StartMigration({"--from-agent", "old-host"});
  v1::Operation op = WaitForState(id, v1::OPERATION_STATE_FAILED);
  EXPECT_EQ(op.error().step(), "preflight");
  EXPECT_THAT(op.error().message(),
              HasSubstr(absl::StrCat("this host's media directory ", NewMedia(), " has ")));
  EXPECT_THAT(op.error().message(), HasSubstr("the old host's media are 8388608 MB in 2 files"));
  EXPECT_THAT(op.error().message(), HasSubstr("the database's copy"));
  EXPECT_THAT(op.error().message(), HasSubstr("migrate without the media (skip_media)"));
  // Nothing was created on either side; the old app was never stopped.
  EXPECT_EQ(New("SELECT count(*) FROM pg_database WHERE datname LIKE '%restore%'", "postgres"),
            "0");
  ExpectOldServerClean();
  EXPECT_THAT(OldAppControl(), ::testing::IsEmpty());
  for (const auto& e : std::filesystem::directory_iterator(host_->dir())) {
    EXPECT_THAT(e.path().filename().string(), Not(HasSubstr("mastodon-restore")));
  }
}

// An old app that keeps its media in a bucket: its agent says which (never
// the keys); the migration is refused while this host's app keeps its
// media in files, and copies none when both apps use the bucket.
TEST_F(MigrateWithOldAgentTest, AnOldAppsBucketIsNotCopiedAndThisAppMustUseItToo) {
  const std::string s3 =
      "S3_ENABLED=true\nS3_BUCKET=mastodon-media\nS3_ENDPOINT=http://127.0.0.1:9000/\n"
      "AWS_ACCESS_KEY_ID=key-id\nAWS_SECRET_ACCESS_KEY=bucket-secret-0123\n";
  std::ofstream(old_host_->app_dir() + "/.env.production", std::ios::app) << s3;
  WriteMedia(OldMedia(), "cache/preview_cards/images/1/leftover.png", "x");
  StartOldAgent();
  const std::string common = host_->dir() + "/common";
  std::filesystem::create_directories(common);
  std::ofstream(common + "/mastodon.conf") << "LOCAL_DOMAIN=new.example\n";
  std::vector<std::string> flags = PeerFlags();
  flags.push_back("--snap-common-dir");
  flags.push_back(common);
  StartSnapAgent(flags);
  CommandResult info = Cli({"--agent", old_dir_ + "/agent.sock", "info"});
  EXPECT_THAT(info.stdout_text, HasSubstr("media bucket   http://127.0.0.1:9000/mastodon-media"));
  EXPECT_THAT(info.stdout_text, Not(HasSubstr("bucket-secret")));

  const std::string refused = StartMigration({"--from-agent", "old-host"});
  v1::Operation op = WaitForState(refused, v1::OPERATION_STATE_FAILED);
  EXPECT_EQ(op.error().step(), "preflight");
  EXPECT_THAT(op.error().message(),
              HasSubstr("the old host's app keeps its media in object storage "
                        "(http://127.0.0.1:9000/mastodon-media)"));
  EXPECT_THAT(op.error().message(), HasSubstr("this host's app keeps them in its media directory"));
  EXPECT_THAT(op.error().message(), HasSubstr("give this host's app the old one's S3 settings"));
  EXPECT_EQ(New("SELECT count(*) FROM pg_database WHERE datname LIKE '%restore%'", "postgres"),
            "0");
  ExpectOldServerClean();

  // Both apps on the bucket: nothing to copy (not even what the old
  // media directory holds), and the migration follows.
  std::ofstream(common + "/mastodon.conf", std::ios::app) << s3;
  const std::string id = StartMigration({"--from-agent", "old-host"});
  v1::Operation following = WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  EXPECT_EQ(following.migrate_result().media_bucket(), "http://127.0.0.1:9000/mastodon-media");
  EXPECT_EQ(following.migrate_result().media_passes(), 0);
  for (const v1::Step& s : following.steps()) {
    if (s.name() != "media") continue;
    EXPECT_EQ(s.state(), v1::STEP_STATE_SKIPPED);
    EXPECT_THAT(s.message(), HasSubstr("both apps keep the media in the bucket"));
  }
  EXPECT_THAT(CliOnSocket({"ops", "show", id}).stdout_text,
              HasSubstr("in the bucket http://127.0.0.1:9000/mastodon-media on both hosts"));
  ASSERT_EQ(CliOnSocket({"ops", "cancel", id}).exit_code, 0);
  WaitForState(id, v1::OPERATION_STATE_CANCELLED);
  EXPECT_TRUE(Tree(NewMedia()).empty());
  ExpectOldServerClean();
  EXPECT_THAT(AgentFiles(), Not(HasSubstr("bucket-secret")));
}

// With keep_following, an automatic cut-over that fails just before its
// point of no return (the subscription's drop) starts the old app again
// and follows on; it waits to be asked, and then loses no row the old app
// wrote in between.
TEST_F(MigrateWithOldAgentTest, AFailedCutOverFollowsOnAndWaitsToBeAskedAgainAsAsked) {
  StartOldAgent();
  agent_env_ = {"MR_FAILPOINTS=migrate.before_commit=error"};
  StartNewAgent();
  old_host_->ClearCalls();
  const std::string id = StartMigration(
      {"--from-agent", "old-host", "--keep-following", "--cutover-when-lag-below", "1G"});
  v1::Operation back = WaitUntil(id, [](const v1::Operation& o) {
    return FollowingAgainAfter(1, o) || o.state() == v1::OPERATION_STATE_FAILED;
  });
  ASSERT_TRUE(FollowingAgainAfter(1, back)) << back.DebugString();
  // The old app runs again on the old database, still published and
  // followed; the steps of the cut-over ran up to the failure.
  EXPECT_THAT(OldAppControl(), ::testing::ElementsAre("stop", "start"));
  EXPECT_TRUE(OldAppRunning());
  EXPECT_EQ(Old("SELECT count(*) FROM pg_publication"), "1");
  EXPECT_EQ(New("SELECT count(*) FROM pg_subscription WHERE subenabled"), "1");
  std::map<std::string, v1::StepState> steps;
  for (const v1::Step& s : back.steps()) steps[s.name()] = s.state();
  EXPECT_EQ(steps["verify"], v1::STEP_STATE_SUCCEEDED);
  EXPECT_EQ(steps["unsubscribe"], v1::STEP_STATE_FAILED);
  EXPECT_EQ(steps["swap"], v1::STEP_STATE_PENDING);
  const std::string warnings = absl::StrJoin(back.migrate_result().warnings(), "\n");
  EXPECT_THAT(warnings, HasSubstr("failpoint migrate.before_commit"));
  EXPECT_THAT(warnings, HasSubstr("following the old database again"));
  EXPECT_THAT(warnings, HasSubstr("the automatic cut-over is off"));
  // It does not cut over again by itself, though the lag is below the
  // threshold.
  std::atomic<int> written{0};
  std::vector<std::string> committed;
  std::thread writer = OldApp(
      "sidekiq", [&] { return OldAppRunning(); }, &committed, &written, /*touch_tags=*/true,
      absl::Milliseconds(2));
  WaitForWrites(written, 50);
  absl::SleepFor(absl::Seconds(1));
  EXPECT_TRUE(FollowingAgainAfter(1, Show(id)));
  EXPECT_THAT(OldAppControl(), ::testing::ElementsAre("stop", "start"));
  ASSERT_GE(written.load(), 50) << "the writer does not write";
  // Asked, it goes through; every row the old app wrote after the failed
  // cut-over is here once.
  v1::Operation done;
  ASSERT_NO_FATAL_FAILURE(CutOverToTheEnd(id, &writer, &done));
  EXPECT_EQ(done.migrate_result().failed_cutovers(), 1);
  EXPECT_EQ(done.migrate_result().source_app(), "kept stopped");
  for (const v1::Step& s : done.steps()) {
    EXPECT_THAT(s.state(), ::testing::AnyOf(v1::STEP_STATE_SUCCEEDED, v1::STEP_STATE_SKIPPED))
        << s.name();
  }
  ExpectEveryRowOnce(pg_->ConnInfo("mastodon"), committed);
  EXPECT_EQ(New("SELECT nextval('statuses_id_seq') > max(id) FROM statuses"), "t");
  ExpectOldServerClean();
  EXPECT_THAT(OldAppControl(), ::testing::ElementsAre("stop", "start", "stop"));
  EXPECT_FALSE(OldAppRunning());
  EXPECT_THAT(CliOnSocket({"ops", "show", id}).stdout_text,
              HasSubstr("cut-overs      1 failed and went back to following"));
}

// The old agent killed during the cut-over, once it has stopped its app:
// the cut-over needs it no more and goes through; the old app stays
// stopped (its agent, restarted, keeps the hold), and the report says how
// to end the hold.
TEST_F(MigrateWithOldAgentTest, TheOldAgentKilledDuringTheCutOverKeepsTheOldAppStopped) {
  StartOldAgent();
  const std::string failpoints = dir_ + "/failpoints";
  ASSERT_TRUE(std::filesystem::create_directories(failpoints));
  agent_env_ = {"MR_FAILPOINTS=migrate.before_commit=pause", "MR_FAILPOINT_DIR=" + failpoints};
  StartNewAgent();
  old_host_->ClearCalls();
  const std::string id = StartMigration({"--from-agent", "old-host"});
  WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  ASSERT_EQ(CliOnSocket({"ops", "cutover", id}).exit_code, 0);
  const std::string reached = failpoints + "/migrate.before_commit.reached";
  for (int i = 0; i < 600 && !std::filesystem::exists(reached); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(std::filesystem::exists(reached)) << "the cut-over did not reach its commit";
  EXPECT_FALSE(OldAppRunning());
  KillOldAgent();
  std::ofstream(failpoints + "/migrate.before_commit.continue") << "";
  CommandResult r = CliOnSocket({"--timeout", "180s", "ops", "watch", id});
  EXPECT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  const v1::Operation done = Show(id);
  ASSERT_EQ(done.state(), v1::OPERATION_STATE_SUCCEEDED) << done.error().message();
  EXPECT_EQ(done.migrate_result().source_app(), "");
  EXPECT_THAT(absl::StrJoin(done.migrate_result().warnings(), "\n"),
              HasSubstr(absl::StrCat("the old host's app must stay stopped (")));
  EXPECT_THAT(absl::StrJoin(done.migrate_result().warnings(), "\n"),
              HasSubstr(absl::StrCat("mastodon-restore app-hold release ", id, " --keep-stopped")));
  // The unreachable old agent was asked only once this app answered: its
  // wait is not downtime.
  const std::string events = CliOnSocket({"ops", "watch", id}).stdout_text;
  const size_t answered = events.find("app_checks succeeded");
  ASSERT_NE(answered, std::string::npos) << events;
  EXPECT_GT(events.find("the old host's app must stay stopped"), answered) << events;
  EXPECT_LT(done.migrate_result().downtime_seconds(), 10) << events;
  ExpectOldServerClean();
  // Restarted, the old agent keeps its app stopped under the hold; the
  // admin ends the hold as the report says, and the app stays down.
  StartOldAgent();
  EXPECT_FALSE(OldAppRunning());
  EXPECT_THAT(OldHolds(), HasSubstr(absl::StrCat(id, ": held for migration ")));
  CommandResult end =
      Cli({"--agent", old_dir_ + "/agent.sock", "app-hold", "release", id, "--keep-stopped"});
  EXPECT_EQ(end.exit_code, 0) << end.stderr_text;
  EXPECT_THAT(OldHolds(), HasSubstr(absl::StrCat(id, ": kept stopped for migration ", id)));
  EXPECT_FALSE(OldAppRunning());
  EXPECT_THAT(OldAppControl(), ::testing::ElementsAre("stop"));
}

// A physical migration into a source install on Debian (systemd units and
// pg_ctlcluster faked; the clusters real PostgreSQL 15): the whole old
// cluster copied through a slot beside this host's data directory, run as
// a standby while a writer plays the old app, promoted at the cut-over and
// put in place of this host's cluster, which is kept beside it.
class MigratePhysicalTest : public MigrateWithOldAgentTest {
 protected:
  void SetUp() override {
    MigrateWithOldAgentTest::SetUp();
    auto here = TestPostgres::Start(15, {"cluster_name=15/main"});
    ASSERT_OK(here);
    here_ = std::move(*here);
    ASSERT_OK(here_->Exec("CREATE ROLE mastodon LOGIN"));
    ASSERT_OK(here_->Exec(absl::StrCat("CREATE DATABASE ", kOldDb, " OWNER mastodon")));
    ASSERT_OK(here_->Exec("CREATE TABLE fresh_install (id int)", kOldDb));
    auto host = testing::FakeHost::Create();
    ASSERT_OK(host);
    sys_ = std::move(*host);
    sys_->InstallSystemd(absl::StrCat(
        "DB_HOST=", here_->cluster()->socket_dir(), "\nDB_PORT=", here_->cluster()->port(),
        "\nDB_USER=mastodon\nDB_NAME=", kOldDb, "\nSECRET_KEY_BASE=x\n"));
    testing::FakeHost::AddMigrations(
        sys_->app_dir(), {"20240101000000_create_everything", "20250301000000_add_newer"}, {});
    sys_->InstallDebianCluster(
        "15/main", here_->cluster()->data_dir(), here_->bin_dir(),
        absl::StrCat("-p ", here_->cluster()->port(), " -k ", here_->cluster()->socket_dir(),
                     " -c listen_addresses= -c cluster_name=15/main"),
        here_->base_dir() + "/restarted.log");
    ASSERT_OK(sys_->RunTool(
        {"systemctl", "start", "mastodon-streaming", "mastodon-sidekiq", "mastodon-web"}));
  }

  void TearDown() override {
    // The server pg_ctlcluster started again, if it did.
    if (sys_ != nullptr) sys_->RunTool({"pg_ctlcluster", "15", "main", "stop"}).IgnoreError();
    MigrateWithOldAgentTest::TearDown();
  }

  // This host's agent; `from_agent`: with the old host's agent as its peer.
  void StartSystemdAgent(bool from_agent = false) {
    HostLayout layout = sys_->Layout();
    std::vector<std::string> flags = {"--runtime",           "systemd",
                                      "--app-dir",           layout.app_dir,
                                      "--systemd-unit-dir",  layout.systemd_unit_dir,
                                      "--host-path",         layout.host_path,
                                      "--target-conninfo",   here_->ConnInfo(""),
                                      "--cluster-data-root", here_->base_dir()};
    if (from_agent) {
      for (std::string& f : PeerFlags()) flags.push_back(std::move(f));
    }
    StartAgent(flags);
  }

  std::string Here(const std::string& sql) {
    auto v = here_->QueryValue(sql, kOldDb);
    EXPECT_OK(v);
    return v.ok() ? *v : "";
  }

  std::string CopyDir(const std::string& id) const {
    return absl::StrCat(here_->base_dir(), "/.data.mastodon-restore-", id);
  }
  std::string PreviousDir(const std::string& id) const {
    return absl::StrCat(here_->base_dir(), "/data.previous-", id);
  }

  // The standby's socket directories left in /tmp.
  static int StandbySocketDirs(const std::string& id) {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator("/tmp")) {
      n += absl::StartsWith(e.path().filename().string(), "mr-standby-" + id + "-");
    }
    return n;
  }

  // pg_ctlcluster and systemctl stop/start calls on this host, in order.
  std::vector<std::string> HostControl() const {
    std::vector<std::string> out;
    for (const auto& c : sys_->Calls()) {
      if (c.tool == "pg_ctlcluster" && c.argv.size() >= 3) {
        out.push_back("pg_ctlcluster " + c.argv[2]);
      } else if (c.tool == "systemctl" && !c.argv.empty() &&
                 (c.argv[0] == "stop" || c.argv[0] == "start")) {
        out.push_back("systemctl " + c.argv[0]);
      }
    }
    return out;
  }

  std::unique_ptr<TestPostgres> here_;
  std::unique_ptr<testing::FakeHost> sys_;
};

TEST_F(MigratePhysicalTest, TheCopyOfTheOldClusterReplacesThisOneAndLosesNoRow) {
  StartSystemdAgent();
  sys_->ClearCalls();
  std::atomic<bool> stop{false};
  std::vector<std::string> committed;
  std::thread writer = OldApp(
      "puma", [&] { return !stop.load(); }, &committed, nullptr, /*touch_tags=*/false,
      absl::Milliseconds(2));
  const std::string id = StartMigration({"--physical"});
  ASSERT_FALSE(id.empty());
  WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  // The copy runs beside this host's cluster, which is untouched; its
  // socket is in a directory only postgres and root reach.
  EXPECT_TRUE(std::filesystem::exists(CopyDir(id) + "/data/PG_VERSION"));
  EXPECT_EQ(StandbySocketDirs(id), 1);
  for (const auto& e : std::filesystem::directory_iterator("/tmp")) {
    if (!absl::StartsWith(e.path().filename().string(), "mr-standby-" + id + "-")) continue;
    struct stat st;
    ASSERT_EQ(::stat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
  }
  EXPECT_EQ(Here("SELECT count(*) FROM fresh_install"), "0");
  EXPECT_EQ(
      Old("SELECT count(*) FROM pg_replication_slots WHERE slot_type = 'physical' AND active"),
      "1");
  absl::SleepFor(absl::Milliseconds(500));
  stop = true;
  writer.join();
  ASSERT_GT(committed.size(), 20u);
  ASSERT_EQ(CliOnSocket({"ops", "cutover", id}).exit_code, 0);
  CommandResult r = CliOnSocket({"--timeout", "180s", "ops", "watch", id});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  v1::Operation done = Show(id);
  ASSERT_EQ(done.state(), v1::OPERATION_STATE_SUCCEEDED) << done.error().message();
  const v1::MigrateResult& m = done.migrate_result();
  EXPECT_EQ(m.method(), v1::FOLLOW_METHOD_PHYSICAL);
  EXPECT_GT(m.base_backup_bytes(), 1000000);
  EXPECT_EQ(m.previous_data_directory(), PreviousDir(id));
  EXPECT_GT(m.downtime_seconds(), 0);

  // Every row the old app committed is here once; the sequences came with
  // the copy; this host's own cluster is kept beside it.
  ExpectEveryRowOnce(here_->ConnInfo(kOldDb), committed);
  EXPECT_EQ(Here("SELECT count(*) FROM statuses"), Old("SELECT count(*) FROM statuses"));
  EXPECT_EQ(Here("SELECT nextval('statuses_id_seq') > max(id) FROM statuses"), "t");
  EXPECT_EQ(Here("SELECT to_regclass('fresh_install') IS NULL"), "t");
  EXPECT_EQ(Here("SELECT pg_is_in_recovery()"), "f");
  EXPECT_EQ(Here("SELECT max(version) FROM schema_migrations"), "20250301000000");
  EXPECT_TRUE(std::filesystem::exists(PreviousDir(id) + "/PG_VERSION"));
  EXPECT_FALSE(std::filesystem::exists(CopyDir(id)));
  EXPECT_EQ(StandbySocketDirs(id), 0);
  EXPECT_EQ(Old("SELECT count(*) FROM pg_replication_slots"), "0");
  // The app stopped before this host's cluster, which was started again
  // on the copy before the app.
  EXPECT_THAT(HostControl(), ::testing::ElementsAre("systemctl stop", "pg_ctlcluster stop",
                                                    "pg_ctlcluster start", "systemctl start"));
  // The old server's password is in no record, no log, and no longer in
  // the copy's configuration.
  EXPECT_THAT(AgentFiles(), Not(HasSubstr(kPassword)));
  EXPECT_THAT(ReadFileOrEmpty(here_->cluster()->data_dir() + "/postgresql.auto.conf"),
              Not(HasSubstr(kPassword)));
  r = CliOnSocket({"ops", "show", id});
  EXPECT_THAT(r.stdout_text, HasSubstr("physical: "));
  EXPECT_THAT(r.stdout_text, HasSubstr(PreviousDir(id) + " (this host's cluster before"));
}

TEST_F(MigratePhysicalTest, TheAgentKilledBetweenTheRenamesPutsThisHostsClusterBack) {
  agent_env_ = {"MR_FAILPOINTS=cluster_swap.between_renames=kill"};
  StartSystemdAgent();
  const std::string id = StartMigration({"--physical"});
  WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  ASSERT_EQ(CliOnSocket({"ops", "cutover", id}).exit_code, 0);
  ASSERT_TRUE(agent_->Wait(absl::Seconds(90)).has_value()) << "the agent did not die";
  agent_.reset();
  // Half swapped: this host's data directory renamed away, its server down.
  EXPECT_FALSE(std::filesystem::exists(here_->cluster()->data_dir()));
  agent_env_.clear();
  StartSystemdAgent();
  EXPECT_EQ(Show(id).state(), v1::OPERATION_STATE_INTERRUPTED);
  // This host's cluster is back and runs; the copy is gone; the app runs.
  EXPECT_EQ(Here("SELECT count(*) FROM fresh_install"), "0");
  EXPECT_FALSE(std::filesystem::exists(CopyDir(id)));
  EXPECT_FALSE(std::filesystem::exists(PreviousDir(id)));
  EXPECT_OK(sys_->RunTool({"systemctl", "is-active", "mastodon-web"}));
  // The slot the agent could not drop (recovery has no password for the
  // old server) is named with how to drop it.
  CommandResult events = CliOnSocket({"--json", "ops", "watch", id});
  EXPECT_THAT(events.stdout_text, HasSubstr("put this host's cluster back"));
  EXPECT_THAT(events.stdout_text, HasSubstr("pg_drop_replication_slot"));
  EXPECT_THAT(events.stdout_text, HasSubstr("started this host's PostgreSQL (15/main)"));
}

TEST_F(MigratePhysicalTest, TheAgentKilledWhileFollowingLeavesThisHostsClusterUntouched) {
  StartSystemdAgent();
  sys_->ClearCalls();
  const std::string id = StartMigration({"--physical"});
  WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  agent_->Signal(SIGKILL);
  agent_->Wait(absl::Seconds(30));
  agent_.reset();
  StartSystemdAgent();
  EXPECT_EQ(Show(id).state(), v1::OPERATION_STATE_INTERRUPTED);
  EXPECT_FALSE(std::filesystem::exists(CopyDir(id)));
  EXPECT_EQ(StandbySocketDirs(id), 0);
  EXPECT_EQ(Here("SELECT count(*) FROM fresh_install"), "0");
  EXPECT_THAT(HostControl(), ::testing::IsEmpty());
  CommandResult events = CliOnSocket({"--json", "ops", "watch", id});
  EXPECT_THAT(events.stdout_text, HasSubstr("stopped and removed the copy of the old cluster"));
}

TEST_F(MigratePhysicalTest, AClusterWithOtherDatabasesIsRefusedBeforeAnythingIsCreated) {
  ASSERT_OK(here_->Exec("CREATE DATABASE other_app"));
  StartSystemdAgent();
  const std::string id = StartMigration({"--physical"});
  v1::Operation op = WaitForState(id, v1::OPERATION_STATE_FAILED);
  EXPECT_EQ(op.error().step(), "preflight");
  EXPECT_THAT(op.error().message(), HasSubstr("holds other databases (other_app)"));
  EXPECT_THAT(op.error().message(), HasSubstr("migrate by logical replication"));
  EXPECT_FALSE(std::filesystem::exists(CopyDir(id)));
  EXPECT_EQ(Old("SELECT count(*) FROM pg_replication_slots"), "0");
}

// Driven by the old host's agent, with keep_following: the cut-over that
// fails just before the promotion starts the old app again and leaves the
// copy a standby that follows on; asked again, the cut-over promotes it
// with every row the old app wrote before and after, and the old host's
// media.
TEST_F(MigratePhysicalTest, AFailedCutOverLeavesTheCopyAStandbyThatFollowsOnAsAsked) {
  WriteMedia(OldMedia(), "media_attachments/files/000/000/001/original/a.png", "a");
  StartOldAgent();
  agent_env_ = {"MR_FAILPOINTS=migrate.before_commit=error"};
  StartSystemdAgent(/*from_agent=*/true);
  old_host_->ClearCalls();
  sys_->ClearCalls();
  std::atomic<int> written{0};
  std::vector<std::string> committed;
  std::thread writer = OldApp(
      "sidekiq", [&] { return OldAppRunning(); }, &committed, &written, /*touch_tags=*/false,
      absl::Milliseconds(2));
  const std::string id =
      StartMigration({"--physical", "--from-agent", "old-host", "--keep-following"});
  ASSERT_FALSE(id.empty());
  WaitForState(id, v1::OPERATION_STATE_FOLLOWING);
  WaitForWrites(written, 20);
  ASSERT_EQ(CliOnSocket({"ops", "cutover", id}).exit_code, 0);
  v1::Operation back = WaitUntil(id, [](const v1::Operation& o) {
    return FollowingAgainAfter(1, o) || o.state() == v1::OPERATION_STATE_FAILED;
  });
  writer.join();
  ASSERT_TRUE(FollowingAgainAfter(1, back)) << back.DebugString();
  // The old app runs again; the copy is still a standby streaming through
  // its slot; this host's cluster and app were never touched.
  EXPECT_THAT(OldAppControl(), ::testing::ElementsAre("stop", "start"));
  EXPECT_TRUE(OldAppRunning());
  EXPECT_TRUE(std::filesystem::exists(CopyDir(id) + "/data/standby.signal"));
  EXPECT_EQ(
      Old("SELECT count(*) FROM pg_replication_slots WHERE slot_type = 'physical' AND active"),
      "1");
  EXPECT_THAT(HostControl(), ::testing::IsEmpty());
  EXPECT_EQ(Here("SELECT count(*) FROM fresh_install"), "0");
  std::map<std::string, v1::StepState> steps;
  for (const v1::Step& s : back.steps()) steps[s.name()] = s.state();
  EXPECT_EQ(steps["verify"], v1::STEP_STATE_SUCCEEDED);
  EXPECT_EQ(steps["promote"], v1::STEP_STATE_FAILED);
  // The old app writes on; asked again, the cut-over goes through.
  const size_t before = committed.size();
  ASSERT_GT(before, 10u);
  written = 0;
  writer = OldApp(
      "sidekiq", [&] { return OldAppRunning(); }, &committed, &written, /*touch_tags=*/false,
      absl::Milliseconds(2));
  WaitForWrites(written, 20);
  ASSERT_GE(written.load(), 20) << "the writer does not write again";
  v1::Operation done;
  ASSERT_NO_FATAL_FAILURE(CutOverToTheEnd(id, &writer, &done));
  const v1::MigrateResult& m = done.migrate_result();
  EXPECT_EQ(m.method(), v1::FOLLOW_METHOD_PHYSICAL);
  EXPECT_EQ(m.failed_cutovers(), 1);
  EXPECT_EQ(m.source_runtime(), "systemd");
  EXPECT_EQ(m.source_app(), "kept stopped");
  EXPECT_GT(m.downtime_seconds(), 0);
  EXPECT_GT(committed.size(), before);
  ExpectEveryRowOnce(here_->ConnInfo(kOldDb), committed);
  EXPECT_EQ(Here("SELECT nextval('statuses_id_seq') > max(id) FROM statuses"), "t");
  EXPECT_EQ(Here("SELECT pg_is_in_recovery()"), "f");
  EXPECT_EQ(Old("SELECT count(*) FROM pg_replication_slots"), "0");
  EXPECT_FALSE(std::filesystem::exists(CopyDir(id)));
  EXPECT_EQ(StandbySocketDirs(id), 0);
  EXPECT_EQ(Tree(sys_->app_dir() + "/public/system"), Tree(OldMedia()));
  EXPECT_THAT(OldAppControl(), ::testing::ElementsAre("stop", "start", "stop"));
  EXPECT_FALSE(OldAppRunning());
  EXPECT_THAT(OldHolds(), HasSubstr(absl::StrCat(id, ": kept stopped for migration ", id)));
  EXPECT_THAT(HostControl(), ::testing::ElementsAre("systemctl stop", "pg_ctlcluster stop",
                                                    "pg_ctlcluster start", "systemctl start"));
  EXPECT_THAT(AgentFiles(), Not(HasSubstr(kPassword)));
  EXPECT_THAT(AgentFiles(), Not(HasSubstr(kPeerToken)));
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
