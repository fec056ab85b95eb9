// A database followed by logical replication from a real PostgreSQL 15 into
// a real PostgreSQL 18 while a writer inserts, updates and deletes on the
// old one: the schema goes through the agent's own loader, the rows through
// a subscription, the sequences at cut-over. After cut-over every row the
// writer committed is on the new server, no row twice, every sequence ahead
// of its ids, and the old server has no publication, slot or changed
// replica identity left.
#include "agent/database/logical_follow.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/common/status_macros.h"
#include "agent/database/database_restore.h"
#include "agent/database/pg_connection.h"
#include "agent/inventory/inspector.h"
#include "tests/harness/db_snapshot.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::DatabaseSnapshot;
using ::mastodon_restore::testing::MakeTempDir;
using ::mastodon_restore::testing::RemoveTree;
using ::mastodon_restore::testing::StatusIs;
using ::mastodon_restore::testing::TestPostgres;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kDb[] = "mastodon_production";

// A Mastodon-shaped database: ids from sequences, a foreign key, and a join
// table with no primary key (as Mastodon's accounts_tags).
constexpr char kSchema[] = R"sql(
CREATE TABLE accounts (id bigserial PRIMARY KEY, username text NOT NULL UNIQUE, note text);
CREATE TABLE statuses (id bigserial PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts,
                       text text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX index_statuses_on_account_id ON statuses (account_id);
CREATE TABLE tags (id bigserial PRIMARY KEY, name text NOT NULL);
CREATE TABLE accounts_tags (account_id bigint NOT NULL, tag_id bigint NOT NULL);
CREATE UNIQUE INDEX index_accounts_tags_on_tag_id_and_account_id ON accounts_tags (tag_id, account_id);
CREATE SEQUENCE never_used_seq;
INSERT INTO accounts (username, note) SELECT 'user' || i, 'note ' || i FROM generate_series(1, 300) i;
INSERT INTO tags (name) SELECT 'tag' || i FROM generate_series(1, 20) i;
INSERT INTO statuses (account_id, text) SELECT 1 + i % 300, repeat('toot ', 1 + i % 9) || i
  FROM generate_series(1, 5000) i;
INSERT INTO accounts_tags SELECT a, t FROM generate_series(1, 300) a, generate_series(1, 3) t;
)sql";

class LogicalFollowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto old_pg = TestPostgres::Start(15, {"wal_level=logical"});
    ASSERT_OK(old_pg);
    old_ = std::move(*old_pg);
    auto new_pg = TestPostgres::Start(18);
    ASSERT_OK(new_pg);
    new_ = std::move(*new_pg);
    for (TestPostgres* pg : {old_.get(), new_.get()}) {
      ASSERT_OK(pg->Exec("CREATE ROLE mastodon LOGIN"));
    }
    ASSERT_OK(old_->Exec(absl::StrCat("CREATE DATABASE ", kDb, " OWNER mastodon")));
    ASSERT_OK(old_->Exec(absl::StrCat("SET ROLE mastodon;", kSchema), kDb));
    auto dir = MakeTempDir("mr-follow");
    ASSERT_OK(dir);
    dir_ = *dir;
    runner_ = NewPosixCommandRunner();
    env_ = NewPosixEnv();
  }
  void TearDown() override { RemoveTree(dir_); }

  std::unique_ptr<PgConnection> Connect(TestPostgres* pg, const std::string& db) {
    auto c = PgConnection::Connect(pg->ConnInfo(db));
    EXPECT_OK(c);
    return c.ok() ? std::move(*c) : nullptr;
  }

  // The old database's schema through the agent's loader into a staging
  // database on the new server: pg_dump 15 of the old server, no
  // publications or subscriptions.
  absl::StatusOr<DatabaseRestoreResult> StageSchema(DatabaseRestoreRequest* r) {
    const std::string schema = dir_ + "/schema.sql";
    CommandSpec spec;
    spec.argv = {old_->bin_dir() + "/pg_dump",
                 "--schema-only",
                 "--no-publications",
                 "--no-subscriptions",
                 "-f",
                 schema,
                 "-d",
                 old_->ConnInfo(kDb)};
    spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
    spec.timeout = absl::Minutes(2);
    ASSIGN_OR_RETURN(CommandResult dumped, runner_->Run(spec, nullptr));
    if (dumped.exit_code != 0) return absl::InternalError(dumped.stderr_text);
    r->source_path = schema;
    r->source.allowed_roots = {dir_};
    r->conninfo = new_->ConnInfo();
    r->database = kDb;
    r->owner = "mastodon";
    r->operation_id = "mig1";
    ASSIGN_OR_RETURN(DumpToRestore dump, DetectDumpToRestore(schema, "", "", r->source,
                                                             InspectOptions(), runner_.get()));
    r->dump = dump.dump;
    return StageDatabase(*r, runner_.get(), env_.get());
  }

  // Polls until `done` holds for the follow's progress (or fails the test
  // after `timeout`).
  FollowProgress WaitFor(PgSession* source, PgSession* target, const std::string& name,
                         const std::function<bool(const FollowProgress&)>& done,
                         absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    FollowProgress p;
    while (absl::Now() < deadline) {
      auto read = ReadFollowProgress(source, target, name);
      EXPECT_OK(read);
      if (!read.ok()) break;
      p = *read;
      EXPECT_EQ(p.errors, 0);
      if (done(p)) return p;
      absl::SleepFor(absl::Milliseconds(50));
    }
    ADD_FAILURE() << "the follow did not get there: " << p.tables_ready << "/" << p.tables
                  << " tables, lag " << p.lag_bytes << " bytes";
    return p;
  }

  std::unique_ptr<TestPostgres> old_;
  std::unique_ptr<TestPostgres> new_;
  std::string dir_;
  std::unique_ptr<CommandRunner> runner_;
  std::unique_ptr<Env> env_;
};

TEST_F(LogicalFollowTest, AWriterOnTheOldServerLosesNothingAcrossTheCutOver) {
  auto source = Connect(old_.get(), kDb);
  ASSERT_NE(source, nullptr);

  // Preflight: the old server qualifies; the new one (wal_level replica)
  // would not, and says what to change.
  auto facts = ReadLogicalSourceFacts(source.get());
  ASSERT_OK(facts);
  EXPECT_OK(CheckLogicalSource(*facts));
  EXPECT_EQ(facts->wal_level, "logical");
  EXPECT_TRUE(facts->superuser);
  EXPECT_GT(facts->database_bytes, 0);
  EXPECT_EQ(facts->collation, "C.UTF-8");
  EXPECT_THAT(facts->tables_without_identity, ElementsAre("public.accounts_tags"));
  auto new_postgres = Connect(new_.get(), "postgres");
  auto new_facts = ReadLogicalSourceFacts(new_postgres.get());
  ASSERT_OK(new_facts);
  EXPECT_THAT(CheckLogicalSource(*new_facts),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("set wal_level = logical and restart the old server")));

  // The schema through the agent's loader into a staging database.
  DatabaseRestoreRequest request;
  auto staged = StageSchema(&request);
  ASSERT_OK(staged);
  auto target = Connect(new_.get(), staged->staging_database);
  ASSERT_NE(target, nullptr);

  // Publication (idempotent), identity for the table without a key,
  // subscription with the initial copy.
  const std::string name = FollowName("op-Mig/1");
  EXPECT_EQ(name, "mastodon_restore_op_mig_1");
  ASSERT_OK(SetReplicaIdentityFull(source.get(), facts->tables_without_identity));
  ASSERT_OK(CreateFollowPublication(source.get(), name));
  ASSERT_OK(CreateFollowPublication(source.get(), name));
  ASSERT_OK(CreateFollowSubscription(target.get(), name, old_->TcpConnInfo(), kDb));

  // The old app writes all along: new statuses, edited notes, tags moved
  // (UPDATE and DELETE on the table without a primary key).
  std::atomic<bool> stop{false};
  std::vector<std::string> committed;
  std::thread writer([&] {
    auto w = PgConnection::Connect(old_->ConnInfo(kDb));
    ASSERT_OK(w);
    for (int i = 0; !stop.load(); ++i) {
      auto id =
          (*w)->Query("INSERT INTO statuses (account_id, text) VALUES ($1, $2) RETURNING id",
                      {absl::StrCat(1 + i % 300), absl::StrCat("written while following ", i)});
      ASSERT_OK(id);
      committed.push_back(id->Scalar());
      ASSERT_OK((*w)->Exec(
          absl::StrCat("UPDATE accounts SET note = 'edited ", i, "' WHERE id = ", 1 + i % 300)));
      if (i < 150) {
        ASSERT_OK((*w)->Exec(absl::StrCat("DELETE FROM accounts_tags WHERE account_id = ", 1 + i,
                                          " AND tag_id = 3")));
        ASSERT_OK((*w)->Exec(absl::StrCat(
            "UPDATE accounts_tags SET tag_id = 4 WHERE account_id = ", 1 + i, " AND tag_id = 2")));
      }
    }
  });

  FollowProgress copied = WaitFor(
      source.get(), target.get(), name,
      [](const FollowProgress& p) { return p.initial_copy_done(); }, absl::Seconds(90));
  EXPECT_EQ(copied.tables, 4);
  EXPECT_GE(copied.lag_bytes, 0);
  EXPECT_GT(copied.source_lsn, 0);
  absl::SleepFor(absl::Seconds(1));  // following while the writer goes on

  // Cut-over: the app stops, the new server confirms everything the old one
  // wrote, the sequences come over, the follow is taken down.
  stop = true;
  writer.join();
  ASSERT_GT(committed.size(), 150u);
  auto end = SourceWalPosition(source.get());
  ASSERT_OK(end);
  FollowProgress caught = WaitFor(
      source.get(), target.get(), name,
      [&](const FollowProgress& p) { return p.confirmed_lsn >= *end; }, absl::Seconds(60));
  EXPECT_EQ(caught.lag_bytes, caught.source_lsn - caught.confirmed_lsn);
  auto sequences = CopySequences(source.get(), target.get());
  ASSERT_OK(sequences);
  EXPECT_EQ(*sequences, 3);  // accounts, statuses, tags; never_used_seq stays as it was
  bool slot_left = true;
  ASSERT_OK(DropFollowSubscription(target.get(), name, &slot_left));
  EXPECT_FALSE(slot_left);
  ASSERT_OK(DropFollowPublication(source.get(), name));
  ASSERT_OK(RestoreReplicaIdentity(source.get(), facts->tables_without_identity));

  // Every committed row is there once; the sequences are ahead of the ids.
  auto old_snapshot = DatabaseSnapshot(old_->ConnInfo(kDb));
  auto new_snapshot = DatabaseSnapshot(new_->ConnInfo(staged->staging_database));
  ASSERT_OK(old_snapshot);
  ASSERT_OK(new_snapshot);
  EXPECT_EQ(*new_snapshot, *old_snapshot);
  std::set<std::string> ids;
  auto rows = target->Query("SELECT id FROM statuses WHERE text LIKE 'written while following %'");
  ASSERT_OK(rows);
  for (const auto& row : rows->rows) ids.insert(row[0].value_or(""));
  EXPECT_EQ(ids.size(), committed.size());
  EXPECT_EQ(ids, std::set<std::string>(committed.begin(), committed.end()));
  auto ahead = target->Query(
      "SELECT nextval('statuses_id_seq') > (SELECT max(id) FROM statuses)"
      " AND nextval('accounts_id_seq') > (SELECT max(id) FROM accounts)");
  ASSERT_OK(ahead);
  EXPECT_EQ(ahead->Scalar(), "t");
  auto pairs = target->Query(
      "SELECT count(*) = count(DISTINCT (account_id, tag_id)) AND count(*) = 300 * 3 - 150"
      " FROM accounts_tags");
  ASSERT_OK(pairs);
  EXPECT_EQ(pairs->Scalar(), "t");

  // Nothing of the follow is left on the old server.
  EXPECT_EQ(*old_->QueryValue("SELECT count(*) FROM pg_replication_slots"), "0");
  EXPECT_EQ(*old_->QueryValue("SELECT count(*) FROM pg_publication", kDb), "0");
  EXPECT_EQ(
      *old_->QueryValue("SELECT relreplident FROM pg_class WHERE relname = 'accounts_tags'", kDb),
      "d");
  EXPECT_EQ(*new_->QueryValue("SELECT count(*) FROM pg_subscription"), "0");

  // And the staging database swaps in as the live one.
  ASSERT_OK(SwapInStaged(request, env_.get(), &*staged));
  EXPECT_EQ(*new_->QueryValue("SELECT count(*) FROM statuses", kDb),
            *old_->QueryValue("SELECT count(*) FROM statuses", kDb));
}

TEST_F(LogicalFollowTest, TheOldServerUnreachableLeavesItsSlotNamedForLater) {
  auto source = Connect(old_.get(), kDb);
  DatabaseRestoreRequest request;
  auto staged = StageSchema(&request);
  ASSERT_OK(staged);
  auto target = Connect(new_.get(), staged->staging_database);
  const std::string name = FollowName("op2");
  ASSERT_OK(CreateFollowPublication(source.get(), name));
  ASSERT_OK(CreateFollowSubscription(target.get(), name, old_->TcpConnInfo(), kDb));
  WaitFor(
      source.get(), target.get(), name,
      [](const FollowProgress& p) { return p.initial_copy_done(); }, absl::Seconds(90));

  // The subscription can no longer reach the old server: dropping it keeps
  // the slot there and says so; the slot is dropped from the old side once
  // its walsender has gone.
  ASSERT_OK(target->Exec(
      absl::StrCat("ALTER SUBSCRIPTION ", name, " CONNECTION 'host=127.0.0.1 port=1'")));
  bool slot_left = false;
  ASSERT_OK(DropFollowSubscription(target.get(), name, &slot_left));
  EXPECT_TRUE(slot_left);
  EXPECT_EQ(*new_->QueryValue("SELECT count(*) FROM pg_subscription"), "0");
  EXPECT_EQ(*old_->QueryValue("SELECT count(*) FROM pg_replication_slots"), "1");
  absl::Status dropped;
  for (int i = 0; i < 100; ++i) {
    dropped = DropFollowSlot(source.get(), name);
    if (dropped.code() != absl::StatusCode::kFailedPrecondition) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_OK(dropped);
  EXPECT_EQ(*old_->QueryValue("SELECT count(*) FROM pg_replication_slots"), "0");
  ASSERT_OK(DropFollowSlot(source.get(), name));  // none left: nothing to do
  ASSERT_OK(DropFollowPublication(source.get(), name));
  bool again = true;
  ASSERT_OK(DropFollowSubscription(target.get(), name, &again));
  EXPECT_FALSE(again);

  // A source without a slot to spare, or with data a publication never
  // carries, is refused before anything is created.
  LogicalSourceFacts full;
  full.server_version = 150000;
  full.wal_level = "logical";
  full.max_replication_slots = 2;
  full.used_replication_slots = 2;
  full.max_wal_senders = 10;
  full.superuser = true;
  full.unlogged_tables = {"public.cache"};
  full.large_objects = 2;
  absl::Status refused = CheckLogicalSource(full);
  EXPECT_THAT(refused, StatusIs(absl::StatusCode::kFailedPrecondition,
                                HasSubstr("no free replication slot (2 of")));
  EXPECT_THAT(refused.message(), HasSubstr("unlogged tables are never replicated: public.cache"));
  EXPECT_THAT(refused.message(), HasSubstr("2 large objects"));
  full.server_version = 90624;
  EXPECT_THAT(CheckLogicalSource(full),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("PostgreSQL 9,")));
}

}  // namespace
}  // namespace mastodon_restore
