// A cluster followed by physical replication from a real PostgreSQL 15: a
// slot, a base backup by the real pg_basebackup (as postgres, the
// connection settings in its environment), the copy run as a standby
// beside the data directory it would replace, rows written on the old
// server replayed, the promotion (which removes the primary's password
// from the copy's configuration), the slot dropped and the copy removed
// with its server still running. And what decides whether a physical
// follow may be used at all.
#include "agent/database/physical_follow.h"

#include <gmock/gmock.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <pwd.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/database/host_cluster.h"
#include "agent/database/local_cluster.h"
#include "agent/database/pg_connection.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::MakeTempDir;
using ::mastodon_restore::testing::RemoveTree;
using ::mastodon_restore::testing::StatusIs;
using ::mastodon_restore::testing::TestPostgres;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kDb[] = "mastodon_production";
constexpr char kPassword[] = "physical-secret-pw";

std::string Read(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class PhysicalFollowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto old_pg = TestPostgres::Start(15);
    ASSERT_OK(old_pg);
    old_ = std::move(*old_pg);
    ASSERT_OK(old_->Exec("CREATE ROLE mastodon LOGIN"));
    ASSERT_OK(old_->Exec(absl::StrCat("CREATE DATABASE ", kDb, " OWNER mastodon")));
    ASSERT_OK(old_->Exec(
        "CREATE TABLE statuses (id bigserial PRIMARY KEY, text text NOT NULL);"
        "INSERT INTO statuses (text) SELECT 'toot ' || i FROM generate_series(1, 2000) i",
        kDb));
    const struct passwd* pw = ::getpwnam("postgres");
    ASSERT_NE(pw, nullptr);
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
    auto dir = MakeTempDir("mr-physical", static_cast<int>(uid_), static_cast<int>(gid_));
    ASSERT_OK(dir);
    dir_ = *dir;
    runner_ = NewPosixCommandRunner();
    env_ = NewPosixEnv();
  }
  void TearDown() override {
    standby_.reset();
    RemoveTree(dir_);
  }

  std::unique_ptr<PgConnection> Connect(const std::string& conninfo) {
    auto c = PgConnection::Connect(conninfo);
    EXPECT_OK(c);
    return c.ok() ? std::move(*c) : nullptr;
  }

  std::unique_ptr<TestPostgres> old_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  std::string dir_;
  std::unique_ptr<CommandRunner> runner_;
  std::unique_ptr<Env> env_;
  std::unique_ptr<LocalCluster> standby_;
};

TEST_F(PhysicalFollowTest, ReadsWhatAPhysicalFollowNeeds) {
  auto source = Connect(old_->ConnInfo(kDb));
  auto facts = ReadPhysicalFacts(source.get());
  ASSERT_OK(facts);
  EXPECT_EQ(facts->server_version / 10000, 15);
  EXPECT_EQ(facts->wal_level, "replica");
  EXPECT_TRUE(facts->replication);
  EXPECT_GE(facts->max_wal_senders, 2);
  EXPECT_GT(facts->cluster_bytes, 1000000);
  EXPECT_TRUE(facts->tablespaces.empty());
  EXPECT_THAT(facts->databases, ::testing::ElementsAre(kDb, "postgres"));
  EXPECT_EQ(facts->collation_provider, "libc");
  EXPECT_EQ(facts->collation_locale, "C.UTF-8");
  EXPECT_NE(facts->collation_version, "?");
  EXPECT_EQ(facts->data_directory, old_->cluster()->data_dir());
  EXPECT_EQ(facts->bootstrap_superuser, "postgres");
  EXPECT_OK(CheckPhysicalFollow(*facts, *facts, facts->collation_version));
  // A locale the server does not know is NOT_FOUND, and the look leaves
  // nothing behind: the session goes on.
  EXPECT_THAT(CollationLibraryVersion(source.get(), "libc", "xx_NOWHERE.UTF-8"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("xx_NOWHERE.UTF-8")));
  EXPECT_THAT(CollationLibraryVersion(source.get(), "libc", "C"),
              ::mastodon_restore::testing::IsOkAndHolds(""));
  auto left = source->Query("SELECT count(*) FROM pg_collation WHERE collname LIKE 'mastodon%'");
  ASSERT_OK(left);
  EXPECT_EQ(left->Scalar(), "0");
}

TEST(CheckPhysicalFollowTest, RefusesWhatACopyCannotCarry) {
  PhysicalFacts source;
  source.server_version = 150010;
  source.wal_level = "replica";
  source.max_replication_slots = 10;
  source.max_wal_senders = 10;
  source.replication = true;
  source.collation_provider = "libc";
  source.collation_locale = "en_US.UTF-8";
  source.collation_version = "2.36";
  PhysicalFacts target = source;
  EXPECT_OK(CheckPhysicalFollow(source, target, "2.36"));
  // Another glibc here: the copied text indexes would be corrupt.
  EXPECT_THAT(CheckPhysicalFollow(source, target, "2.41"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("is version '2.36' on the old host and '2.41' here")));
  EXPECT_THAT(CheckPhysicalFollow(source, target, "?").message(), HasSubstr("cannot be told"));
  // Another major; no room; no right to stream; a tablespace: each named.
  target.server_version = 180001;
  source.wal_level = "minimal";
  source.used_replication_slots = 10;
  source.used_wal_senders = 9;
  source.replication = false;
  source.tablespaces = {"fast_ssd"};
  const std::string all = std::string(CheckPhysicalFollow(source, target, "2.36").message());
  EXPECT_THAT(all, HasSubstr("the old server is PostgreSQL 15 and this one 18"));
  EXPECT_THAT(all, HasSubstr("wal_level is 'minimal'"));
  EXPECT_THAT(all, HasSubstr("no free replication slot (10 of 10 used)"));
  EXPECT_THAT(all, HasSubstr("fewer than 2 free WAL senders (9 of 10 used)"));
  EXPECT_THAT(all, HasSubstr("may not stream WAL"));
  EXPECT_THAT(all, HasSubstr("tablespaces outside its data directory (fast_ssd)"));
  // Before 12 there is no pg_promote.
  source.server_version = 110020;
  EXPECT_THAT(CheckPhysicalFollow(source, target, "2.36").message(), HasSubstr("12 or newer"));
}

TEST(BaseBackupTest, ParsesProgressAndKeepsTheConnectionOffTheCommandLine) {
  int64_t done = 0, total = 0;
  EXPECT_TRUE(ParseBaseBackupProgress("  1234/56789 kB (2%), 0/1 tablespace", &done, &total));
  EXPECT_EQ(done, 1234);
  EXPECT_EQ(total, 56789);
  EXPECT_FALSE(ParseBaseBackupProgress("pg_basebackup: checkpoint completed", &done, &total));
  auto spec = BaseBackupCommand("/usr/lib/postgresql/15/bin/pg_basebackup",
                                "host=old.example user=postgres password=pw", "slot1", "/x/data");
  ASSERT_OK(spec);
  for (const std::string& a : spec->argv) EXPECT_THAT(a, Not(HasSubstr("pw")));
  EXPECT_THAT(spec->argv, Contains("--slot=slot1"));
  EXPECT_THAT(spec->env, Contains("PGPASSWORD=pw"));
  EXPECT_THAT(spec->env, Contains("PGHOST=old.example"));
}

TEST_F(PhysicalFollowTest, TheCopyFollowsIsPromotedAndForgetsThePrimary) {
  auto source = Connect(old_->ConnInfo(kDb));
  ASSERT_OK(CreatePhysicalSlot(source.get(), "mr_slot"));
  ASSERT_OK(CreatePhysicalSlot(source.get(), "mr_slot"));  // kept
  const std::string copy = ClusterCopyDir(dir_ + "/main", "op-9");
  ASSERT_OK(CreateClusterCopyDir(copy, uid_, gid_, StandbyHbaConf()));
  // The base backup, over TCP with a password in its environment.
  auto spec = BaseBackupCommand(old_->bin_dir() + "/pg_basebackup",
                                absl::StrCat(old_->TcpConnInfo(), " password=", kPassword),
                                "mr_slot", copy + "/data");
  ASSERT_OK(spec);
  spec->uid = uid_;
  spec->gid = gid_;
  spec->cwd = copy;
  int progress_lines = 0;
  spec->on_line = [&](absl::string_view line, bool) {
    int64_t done = 0, total = 0;
    if (ParseBaseBackupProgress(std::string(line), &done, &total)) ++progress_lines;
  };
  auto copied = runner_->Run(*spec, nullptr);
  ASSERT_OK(copied);
  ASSERT_EQ(copied->exit_code, 0) << copied->stderr_text;
  EXPECT_GT(progress_lines, 0) << copied->stderr_text;
  // pg_basebackup -R keeps the connection, password included, for the
  // standby.
  EXPECT_THAT(Read(copy + "/data/postgresql.auto.conf"), HasSubstr(kPassword));
  ASSERT_OK(PrepareClusterCopy(copy));

  LocalClusterOptions o;
  o.bin_dir = old_->bin_dir();
  o.base_dir = copy;
  o.listen_tcp = false;
  o.uid = uid_;
  o.gid = gid_;
  o.settings = {absl::StrCat("hba_file=", copy, "/standby-hba.conf")};
  o.stop_with_parent = true;
  auto standby = LocalCluster::Start(o, runner_.get(), env_.get());
  ASSERT_OK(standby);
  standby_ = std::move(*standby);
  auto replica = Connect(standby_->ConnInfo(kDb));
  ASSERT_NE(replica, nullptr);

  // Rows written on the old server arrive.
  ASSERT_OK(
      old_->Exec("INSERT INTO statuses (text) SELECT 'live ' || i"
                 " FROM generate_series(1, 500) i",
                 kDb));
  // (The test's servers commit without waiting for the flush: the insert
  // position covers what is not flushed yet.)
  auto end = SourceWalPosition(source.get());
  ASSERT_OK(end);
  const int64_t end_lsn = *end;
  StandbyProgress p;
  for (absl::Time until = absl::Now() + absl::Seconds(60); absl::Now() < until;) {
    auto read = ReadStandbyProgress(source.get(), replica.get(), "mr_slot");
    ASSERT_OK(read);
    p = *read;
    if (p.streaming && p.replay_lsn >= end_lsn) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(p.streaming);
  EXPECT_GE(p.replay_lsn, end_lsn);
  EXPECT_GE(p.source_lsn, end_lsn);
  auto count = replica->Query("SELECT count(*) FROM statuses");
  ASSERT_OK(count);
  EXPECT_EQ(count->Scalar(), "2500");

  // Promoted: writable, and the primary's password is gone from its
  // configuration.
  ASSERT_OK(PromoteStandby(replica.get()));
  auto recovery = replica->Query("SELECT pg_is_in_recovery()");
  ASSERT_OK(recovery);
  EXPECT_EQ(recovery->Scalar(), "f");
  EXPECT_THAT(Read(copy + "/data/postgresql.auto.conf"), Not(HasSubstr(kPassword)));
  EXPECT_FALSE(std::filesystem::exists(copy + "/data/standby.signal"));
  // Its sequences carry on past every id (a standby's run ahead by what
  // they logged, as after any failover: a gap, never a reuse).
  auto id = replica->Query("INSERT INTO statuses (text) VALUES ('here') RETURNING id");
  ASSERT_OK(id);
  int64_t next = 0;
  ASSERT_TRUE(absl::SimpleAtoi(id->Scalar(), &next));
  EXPECT_GT(next, 2500);
  EXPECT_THAT(PromoteStandby(replica.get()), StatusIs(absl::StatusCode::kFailedPrecondition));

  // The slot goes once the walsender has; the copy goes with its server.
  absl::Status dropped;
  for (int i = 0; i < 100; ++i) {
    dropped = DropFollowSlot(source.get(), "mr_slot");
    if (dropped.ok()) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_OK(dropped);
  EXPECT_EQ(*old_->QueryValue("SELECT count(*) FROM pg_replication_slots"), "0");
  replica.reset();
  ASSERT_OK(RemoveClusterCopy(copy));
  EXPECT_FALSE(std::filesystem::exists(copy));
  EXPECT_NE(PQping(standby_->ConnInfo().c_str()), PQPING_OK);
}

}  // namespace
}  // namespace mastodon_restore
