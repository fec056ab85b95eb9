// The database restore engine against a real PostgreSQL 15: equivalence with
// psql/pg_restore in every format, the staging/swap/rollback cycle, and
// failures that must leave the live database untouched and no staging behind.
#include "agent/database/database_restore.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/common/failpoint.h"
#include "agent/common/status_macros.h"
#include "agent/database/load_role.h"
#include "agent/database/load_scheduler.h"
#include "agent/database/local_cluster.h"
#include "agent/database/pg_connection.h"
#include "agent/database/target_ops.h"
#include "agent/dump/archive_script.h"
#include "agent/inventory/inspector.h"
#include "tests/harness/restore_fixture.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::RestoreFixture;
using ::mastodon_restore::testing::StatusIs;
using ::mastodon_restore::testing::TestPostgres;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
namespace v1 = ::mastodon::restore::v1;

const std::string kDir = MR_FIXTURE_DIR;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class DatabaseRestoreTest : public RestoreFixture {
 protected:
  DatabaseRestoreTest() : RestoreFixture(kDir) {}

  // The same with the rows of each COPY block sorted: a table's rows, not
  // their physical order (which a parallel load of chunks may change).
  std::string DumpRowsSorted(const std::string& db) { return SortCopyRows(Dump(db)); }

  static std::string SortCopyRows(const std::string& dump) {
    std::vector<std::string> lines = absl::StrSplit(dump, '\n');
    std::string out;
    for (size_t i = 0; i < lines.size(); ++i) {
      out += lines[i] + "\n";
      if (lines[i].rfind("COPY ", 0) != 0) continue;
      size_t end = i + 1;
      while (end < lines.size() && lines[end] != "\\.") ++end;
      std::vector<std::string> rows(lines.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                                    lines.begin() + static_cast<std::ptrdiff_t>(end));
      std::sort(rows.begin(), rows.end());
      for (const std::string& r : rows) out += r + "\n";
      i = end - 1;
    }
    return out;
  }

  std::vector<std::string> Databases() {
    auto conn = PgConnection::Connect(pg_->ConnInfo());
    EXPECT_OK(conn);
    auto rows = (*conn)->Query("SELECT datname FROM pg_database ORDER BY 1");
    std::vector<std::string> out;
    for (const auto& row : rows->rows) out.push_back(*row[0]);
    return out;
  }

  std::vector<std::string> StagingLeft() {
    std::vector<std::string> out;
    for (const std::string& db : Databases()) {
      if (db.find("__restore_") != std::string::npos) out.push_back(db);
    }
    return out;
  }
};

TEST_F(DatabaseRestoreTest, EquivalentToPsqlAndPgRestoreInEveryFormat) {
  // Reference: what psql makes of the plain dump.
  ASSERT_OK(pg_->Exec("CREATE DATABASE reference"));
  Tool({"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg_->ConnInfo("reference"), "-f",
        kDir + "/hard/plain.sql"});
  const std::string expected = Dump("reference");
  ASSERT_THAT(expected, HasSubstr("COPY public.toots"));

  // And what pg_restore makes of the custom archive is the same.
  ASSERT_OK(pg_->Exec("CREATE DATABASE reference_pg_restore"));
  Tool({"pg_restore", "-d", pg_->ConnInfo("reference_pg_restore"), kDir + "/hard/custom.dump"});
  EXPECT_EQ(Dump("reference_pg_restore"), expected);

  struct Case {
    std::string source;
    std::string member;
    std::string source_db;
  };
  const Case cases[] = {
      {kDir + "/nested_archives.tar.gz", "custom.dump", ""},
      {kDir + "/nested_archives.tar.gz", "tar.tar", ""},
      {kDir + "/hard/plain.sql", "", ""},
      {kDir + "/hard/custom.dump", "", ""},
      {kDir + "/hard/dirdump", "", ""},
      {kDir + "/hard/tar.tar", "", ""},
      {kDir + "/cluster.sql.gz", "", "hard"},
  };
  // The serial load, and parallel loads with COPY chunks small enough that
  // every table's rows are loaded by several connections at once.
  const std::string expected_rows = SortCopyRows(expected);
  int n = 0;
  for (int jobs : {1, 2, 4}) {
    for (const Case& c : cases) {
      SCOPED_TRACE(absl::StrCat(c.source, " with ", jobs, " jobs"));
      DatabaseRestoreRequest r = Request(c.source, absl::StrCat("restored_", n++));
      r.jobs = jobs;
      r.chunk_bytes = 4096;
      auto result = Restore(r, c.member, c.source_db);
      ASSERT_OK(result);
      EXPECT_TRUE(result->verification.passed());
      EXPECT_EQ(result->previous_database, "");
      EXPECT_EQ(result->load.table_rows.at("public.toots"), 2000);
      EXPECT_EQ(result->load.schema_version, "20260611150940");
      EXPECT_EQ(result->load.jobs, jobs);
      if (jobs == 1) {
        EXPECT_EQ(Dump(r.database), expected);  // the serial load keeps the row order
      } else {
        EXPECT_EQ(DumpRowsSorted(r.database), expected_rows);
        EXPECT_GT(result->load.parallel_jobs, 10);
        EXPECT_GE(result->load.max_concurrency, 2);
      }
    }
  }
  EXPECT_THAT(StagingLeft(), IsEmpty());
}

// A seekable archive (a custom file with data offsets, a directory, a tar
// file as pg_dump writes it) has each table's data read and decompressed by
// the worker that loads it, frozen, or big tables shared with idle workers
// in chunks when not; a custom archive without offsets (pg_dump to a pipe),
// a tar file packed otherwise, or an archive read as a stream from another
// container loads front to back. Each gives what psql makes of the plain
// dump.
TEST_F(DatabaseRestoreTest, SeekableArchivesHaveTheirTablesReadByTheWorkers) {
  ASSERT_OK(pg_->Exec("CREATE DATABASE reference"));
  Tool({"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg_->ConnInfo("reference"), "-f",
        kDir + "/hard/plain.sql"});
  const std::string expected = DumpRowsSorted("reference");
  // pg_dump to a pipe: no data offsets in the TOC.
  const std::string piped = work_ + "/piped.dump";
  {
    std::ofstream out(piped, std::ios::binary);
    out << Tool({"pg_dump", "-Fc", "-d", pg_->ConnInfo("reference")});
  }
  // The tar archive as GNU tar's pax format packs the same members again
  // (an extended header before each): not laid out as pg_dump writes it,
  // so read front to back.
  const std::string pax = work_ + "/pax.tar";
  {
    const std::string unpacked = work_ + "/unpacked";
    ASSERT_EQ(::mkdir(unpacked.c_str(), 0700), 0);
    Tool({"/usr/bin/tar", "-C", unpacked, "-xf", kDir + "/hard/tar.tar"});
    std::vector<std::string> argv = {"/usr/bin/tar", "--format=pax", "-C", unpacked, "-cf", pax};
    for (absl::string_view m : absl::StrSplit(Tool({"/usr/bin/tar", "-tf", kDir + "/hard/tar.tar"}),
                                              '\n', absl::SkipEmpty())) {
      argv.emplace_back(m);  // (in the archive's order: toc.dat first)
    }
    Tool(argv);
  }
  struct Case {
    std::string source, member;
    bool apart;
  };
  const Case cases[] = {
      {kDir + "/hard/custom.dump", "", true},
      {kDir + "/hard/dirdump", "", true},
      {kDir + "/hard/tar.tar", "", true},
      {piped, "", false},
      {pax, "", false},
      {kDir + "/nested_archives.tar.gz", "custom.dump", false},
      {kDir + "/nested_archives.tar.gz", "tar.tar", false},
  };
  int n = 0;
  for (const Case& c : cases) {
    for (int64_t chunk : {int64_t{4096}, int64_t{8} << 20}) {
      // (Without freezing, the tables read apart share their rows.)
      const bool freeze = chunk > 4096;
      SCOPED_TRACE(absl::StrCat(c.source, " chunks of ", chunk, freeze ? "" : ", not frozen"));
      DatabaseRestoreRequest r = Request(c.source, absl::StrCat("apart_", n++));
      r.jobs = 3;
      r.chunk_bytes = chunk;
      r.freeze = freeze;
      auto result = Restore(r, c.member);
      ASSERT_OK(result);
      EXPECT_TRUE(result->verification.passed());
      EXPECT_EQ(result->load.table_rows.at("public.toots"), 2000);
      EXPECT_EQ(result->load.schema_version, "20260611150940");
      if (c.apart) {
        // Every table with data (the fixture's three).
        EXPECT_EQ(result->load.tables_read_apart,
                  static_cast<int64_t>(result->load.table_rows.size()));
        EXPECT_EQ(result->load.tables_read_apart, 3);
        EXPECT_EQ(result->load.tables_frozen, freeze ? 3 : 0);
      } else {
        EXPECT_EQ(result->load.tables_read_apart, 0);
        EXPECT_EQ(result->load.tables_frozen, 0);
      }
      EXPECT_GE(result->load.max_concurrency, 2);
      EXPECT_EQ(DumpRowsSorted(r.database), expected);
      if (c.apart) {
        // Frozen: every page of toots all-visible and frozen as loaded.
        ASSERT_OK(pg_->Exec("CREATE EXTENSION pg_visibility", r.database));
        EXPECT_EQ(*pg_->QueryValue("SELECT (all_frozen = pg_relation_size('toots') / "
                                   "current_setting('block_size')::int)::text "
                                   "FROM pg_visibility_map_summary('toots')",
                                   r.database),
                  freeze ? "true" : "false");
      }
    }
  }
  EXPECT_THAT(StagingLeft(), IsEmpty());
}

// Only a tar file laid out as pg_dump writes it has its members indexed for
// reading apart; one whose headers do not add up (a bad checksum, a member
// past the end of the file) is read front to back, where libarchive says
// what is wrong.
TEST(TarFileTest, OnlyATarLaidOutAsPgDumpWritesItIsReadApart) {
  const std::string tar = ReadFile(kDir + "/hard/tar.tar");
  ASSERT_GT(tar.size(), 2048u);
  char dir_template[] = "/tmp/mr-tar-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  auto open = [&](const std::string& name, const std::string& bytes) {
    const std::string path = absl::StrCat(dir, "/", name);
    std::ofstream(path, std::ios::binary) << bytes;
    return ArchiveScript::OpenTarFile(path);
  };
  auto whole = open("whole.tar", tar);
  ASSERT_OK(whole);
  EXPECT_TRUE((*whole)->can_defer_data());
  // The second header (the first data member's) with its checksum off.
  std::string bad_sum = tar;
  const size_t toc_size = std::stoul(tar.substr(124, 11), nullptr, 8);
  const size_t second = 512 + (toc_size + 511) / 512 * 512;
  bad_sum[second + 150] = bad_sum[second + 150] == '1' ? '2' : '1';
  auto summed = open("bad_sum.tar", bad_sum);
  ASSERT_OK(summed);  // (the TOC comes before the damage)
  EXPECT_FALSE((*summed)->can_defer_data());
  // Cut in the middle: the member there runs past the end.
  auto cut = open("cut.tar", tar.substr(0, tar.size() / 2));
  ASSERT_OK(cut);
  EXPECT_FALSE((*cut)->can_defer_data());
  std::string script;
  char buf[4096];
  absl::StatusOr<size_t> got;
  while ((got = (*cut)->Read(buf, sizeof(buf))).ok() && *got > 0) script.append(buf, *got);
  EXPECT_FALSE(got.ok());
  std::filesystem::remove_all(dir);
}

// The parallel load on what pg_dump writes for the less common objects:
// partitioned tables (keys attached per partition, a foreign key on and to a
// partitioned table), a self-referencing key, constraints the dump keeps NOT
// VALID, a quoted table name with a space, CLUSTER ON, large objects, a
// materialized view with an index, and an --inserts dump. Each must come out
// as psql makes it, with 1, 2 and 4 connections.
TEST_F(DatabaseRestoreTest, ParallelLoadOfUnusualObjectsEqualsPsql) {
  ASSERT_OK(pg_->Exec("CREATE DATABASE odd"));
  ASSERT_OK(pg_->Exec(R"sql(
CREATE TABLE accounts (id bigint PRIMARY KEY, username text NOT NULL);
CREATE TABLE events (id bigint, at date NOT NULL, account_id bigint, parent_id bigint,
                     PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE INDEX events_account ON events (account_id);
ALTER TABLE events ADD CONSTRAINT events_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id);
CREATE TABLE "odd name" (id int PRIMARY KEY, event_id bigint, event_at date, note text,
  parent int REFERENCES "odd name" (id));
ALTER TABLE "odd name" ADD CONSTRAINT odd_event_fk FOREIGN KEY (event_id, event_at)
  REFERENCES events (id, at);
CREATE INDEX odd_note ON "odd name" (note);
ALTER TABLE "odd name" CLUSTER ON odd_note;
INSERT INTO accounts SELECT g, 'user' || g FROM generate_series(1, 3000) g;
INSERT INTO events SELECT g, DATE '2025-06-01' + (g % 400), 1 + g % 3000, NULL
  FROM generate_series(1, 5000) g;
INSERT INTO "odd name" SELECT g, g, DATE '2025-06-01' + (g % 400), repeat('n', g % 50),
  CASE WHEN g > 1 THEN g - 1 END FROM generate_series(1, 2000) g;
ALTER TABLE "odd name" DROP CONSTRAINT "odd name_parent_fkey";
INSERT INTO "odd name" VALUES (99999, NULL, NULL, 'orphan', 424242);
ALTER TABLE "odd name" ADD CONSTRAINT odd_parent_fk FOREIGN KEY (parent) REFERENCES "odd name" (id) NOT VALID;
ALTER TABLE accounts ADD CONSTRAINT short_name CHECK (length(username) < 20) NOT VALID;
CREATE MATERIALIZED VIEW busy AS SELECT account_id, count(*) AS n FROM events GROUP BY account_id;
CREATE UNIQUE INDEX busy_account ON busy (account_id);
SELECT lo_from_bytea(0, 'large object bytes');
)sql",
                      "odd"));
  struct Form {
    std::string name;
    std::vector<std::string> flags;
  };
  for (const Form& form : {Form{"copy", {}}, Form{"inserts", {"--inserts"}}}) {
    SCOPED_TRACE(form.name);
    const std::string path = absl::StrCat(work_, "/odd_", form.name, ".sql");
    std::vector<std::string> argv = {"pg_dump", "-d", pg_->ConnInfo("odd"), "-f", path};
    argv.insert(argv.end(), form.flags.begin(), form.flags.end());
    Tool(argv);
    const std::string reference = absl::StrCat("odd_ref_", form.name);
    ASSERT_OK(pg_->Exec(absl::StrCat("CREATE DATABASE ", reference)));
    Tool({"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", pg_->ConnInfo(reference), "-f", path});
    const std::string expected = DumpRowsSorted(reference);
    ASSERT_THAT(expected, HasSubstr("odd_parent_fk"));
    for (int jobs : {1, 2, 4}) {
      SCOPED_TRACE(absl::StrCat(jobs, " jobs"));
      DatabaseRestoreRequest r = Request(path, absl::StrCat("odd_", form.name, "_", jobs));
      r.jobs = jobs;
      r.chunk_bytes = 1024;
      auto result = Restore(r);
      ASSERT_OK(result);
      EXPECT_TRUE(result->verification.passed());
      EXPECT_EQ(DumpRowsSorted(r.database), expected);
    }
  }
  EXPECT_THAT(StagingLeft(), IsEmpty());
}

TEST_F(DatabaseRestoreTest, JobsBeyondTheServersFreeConnectionsAreCappedWithAWarning) {
  DatabaseRestoreRequest r = Request(kDir + "/hard/plain.sql", "capped");
  r.jobs = 5000;
  auto result = Restore(r);
  ASSERT_OK(result);
  EXPECT_TRUE(result->verification.passed());
  EXPECT_GE(result->load.jobs, 2);
  EXPECT_LT(result->load.jobs, 5000);
  EXPECT_THAT(result->warnings,
              ::testing::Contains(AllOf(HasSubstr(absl::StrCat("loading with ", result->load.jobs,
                                                               " connections instead of 5000")),
                                        HasSubstr("free (max_connections)"))));
}

TEST_F(DatabaseRestoreTest, ClusterDumpCreatesMissingRolesWithoutPasswords) {
  ASSERT_OK(pg_->Exec("DROP ROLE mastodon"));
  auto result = Restore(Request(kDir + "/snap", "mastodon"));  // database.sql is a pg_dumpall
  ASSERT_OK(result);
  EXPECT_THAT(result->load.created_roles, ::testing::Contains("mastodon"));
  EXPECT_EQ(
      *pg_->QueryValue("SELECT rolpassword IS NULL FROM pg_authid WHERE rolname = 'mastodon'"),
      "t");
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM statuses", "mastodon"), "1000");
  EXPECT_EQ(*pg_->QueryValue("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = "
                             "'mastodon'"),
            "mastodon");
  EXPECT_TRUE(result->verification.passed());
}

TEST_F(DatabaseRestoreTest, SwapKeepsThePreviousDatabaseAndRollbackSwapsBack) {
  ASSERT_OK(Restore(Request(kDir + "/plain.sql.xz", "mastodon_production")));
  ASSERT_OK(
      pg_->Exec("INSERT INTO accounts VALUES (99, 'live-marker', NULL)", "mastodon_production"));
  // A session of the app is connected to the live database.
  auto app = PgConnection::Connect(pg_->ConnInfo("mastodon_production"));
  ASSERT_OK(app);

  DatabaseRestoreRequest second = Request(kDir + "/custom.dump", "mastodon_production");
  second.operation_id = "op2";
  auto result = Restore(second);
  ASSERT_OK(result);
  ASSERT_THAT(result->previous_database, ::testing::StartsWith("mastodon_production__previous_"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM accounts WHERE username = 'live-marker'",
                             "mastodon_production"),
            "0");
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM accounts WHERE username = 'live-marker'",
                             result->previous_database),
            "1");
  // The app's session was ended by the swap.
  EXPECT_FALSE((*app)->Query("SELECT 1").ok());

  auto rolled = RollbackDatabase(pg_->ConnInfo(), "mastodon_production", "", absl::Now());
  ASSERT_OK(rolled);
  EXPECT_EQ(rolled->restored_database(), result->previous_database);
  EXPECT_THAT(rolled->replaced_database_renamed_to(),
              ::testing::StartsWith("mastodon_production__replaced_"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM accounts WHERE username = 'live-marker'",
                             "mastodon_production"),
            "1");
  EXPECT_THAT(StagingLeft(), IsEmpty());
}

TEST_F(DatabaseRestoreTest, OwnerComesFromTheLiveDatabaseElseTheRequest) {
  DatabaseRestoreRequest first = Request(kDir + "/plain.sql", "mastodon_production");
  first.owner = "mastodon";  // e.g. DB_USER of the backup
  ASSERT_OK(Restore(first));
  const std::string owner_sql =
      "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'mastodon_production'";
  EXPECT_EQ(*pg_->QueryValue(owner_sql), "mastodon");
  // The app role can create tables (PostgreSQL 15: public belongs to the owner).
  ASSERT_OK(pg_->Exec("SET ROLE mastodon; CREATE TABLE public.created_by_app (id int)",
                      "mastodon_production"));
  // A later restore takes the live database's owner.
  DatabaseRestoreRequest second = Request(kDir + "/plain.sql", "mastodon_production");
  second.operation_id = "op2";
  ASSERT_OK(Restore(second));
  EXPECT_EQ(*pg_->QueryValue(owner_sql), "mastodon");
  // A missing role is reported, not fatal.
  DatabaseRestoreRequest third = Request(kDir + "/plain.sql", "other");
  third.owner = "nobody_here";
  auto result = Restore(third);
  ASSERT_OK(result);
  EXPECT_THAT(result->warnings, ::testing::Contains(HasSubstr("'nobody_here' does not exist")));
}

TEST_F(DatabaseRestoreTest, DropPreviousAfterASuccessfulSwap) {
  ASSERT_OK(Restore(Request(kDir + "/plain.sql", "mastodon_production")));
  DatabaseRestoreRequest r = Request(kDir + "/plain.sql", "mastodon_production");
  r.operation_id = "op2";
  r.drop_previous = true;
  auto result = Restore(r);
  ASSERT_OK(result);
  EXPECT_EQ(result->previous_database, "");
  for (const std::string& db : Databases()) EXPECT_EQ(db.find("__previous_"), std::string::npos);
}

// The real host with a clock that stands still: every swap "in the same
// second".
class StoppedClockEnv : public Env {
 public:
  explicit StoppedClockEnv(absl::Time now) : now_(now) {}
  absl::Time Now() override { return now_; }
  std::string Hostname() override { return base_->Hostname(); }
  int Cpus() override { return base_->Cpus(); }
  MemoryInfo Memory() override { return base_->Memory(); }
  absl::StatusOr<int64_t> FreeBytes(const std::string& path) override {
    return base_->FreeBytes(path);
  }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override {
    return base_->ListDir(dir);
  }
  bool IsExecutable(const std::string& path) override { return base_->IsExecutable(path); }
  bool Exists(const std::string& path) override { return base_->Exists(path); }
  absl::Status CreateDirs(const std::string& dir, mode_t mode, bool enforce_mode) override {
    return base_->CreateDirs(dir, mode, enforce_mode);
  }
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    return base_->ReadFile(path);
  }
  absl::StatusOr<FileOwner> OwnerOf(const std::string& path) override {
    return base_->OwnerOf(path);
  }
  absl::Status RemoveFile(const std::string& path) override { return base_->RemoveFile(path); }
  absl::Status SetOwner(const std::string& path, uid_t uid, gid_t gid) override {
    return base_->SetOwner(path, uid, gid);
  }
  absl::StatusOr<uid_t> UserId(const std::string& name) override { return base_->UserId(name); }
  absl::Status WriteFileAtomic(const std::string& path, const std::string& data,
                               mode_t mode) override {
    return base_->WriteFileAtomic(path, data, mode);
  }

 private:
  const absl::Time now_;
  std::unique_ptr<Env> base_ = NewPosixEnv();
};

class SameSecondTest : public DatabaseRestoreTest {
 protected:
  const absl::Time now_ =
      absl::FromCivil(absl::CivilSecond(2026, 12, 3, 14, 0, 0), absl::UTCTimeZone());
  void SetUp() override {
    DatabaseRestoreTest::SetUp();
    env_ = std::make_unique<StoppedClockEnv>(now_);
  }

  std::string Accounts(const std::string& db) {
    auto v = pg_->QueryValue(
        "SELECT coalesce(string_agg(username, ',' ORDER BY id), '') FROM accounts "
        "WHERE username LIKE 'marker-%'",
        db);
    EXPECT_OK(v);
    return v.ok() ? *v : "";
  }

  // Three restores of `db` in one second, a marker row added to the live
  // database after each of the first two; then two rollbacks in one second.
  void SwapTwiceThenRollBackTwice(const std::string& db) {
    ASSERT_OK(Restore(Request(kDir + "/plain.sql", db)));
    ASSERT_OK(pg_->Exec("INSERT INTO accounts VALUES (98, 'marker-1', NULL)", db));
    DatabaseRestoreRequest second = Request(kDir + "/plain.sql", db);
    second.operation_id = "op2";
    auto older = Restore(second);
    ASSERT_OK(older);
    ASSERT_OK(pg_->Exec("INSERT INTO accounts VALUES (99, 'marker-2', NULL)", db));
    DatabaseRestoreRequest third = Request(kDir + "/plain.sql", db);
    third.operation_id = "op3";
    auto newer = Restore(third);
    ASSERT_OK(newer);

    EXPECT_EQ(older->previous_database, PreviousDatabaseName(db, now_));
    EXPECT_EQ(newer->previous_database, PreviousDatabaseName(db, now_, 2));
    EXPECT_NE(older->previous_database, newer->previous_database);
    EXPECT_LE(older->previous_database.size(), kMaxIdentifierBytes);
    EXPECT_LE(newer->previous_database.size(), kMaxIdentifierBytes);
    EXPECT_THAT(Databases(),
                ::testing::IsSupersetOf({db, older->previous_database, newer->previous_database}));
    EXPECT_EQ(Accounts(older->previous_database), "marker-1");
    EXPECT_EQ(Accounts(newer->previous_database), "marker-2");
    EXPECT_EQ(Accounts(db), "");

    // The newest previous database comes back first, then the older one.
    auto rolled = RollbackDatabase(pg_->ConnInfo(), db, "", now_);
    ASSERT_OK(rolled);
    EXPECT_EQ(rolled->restored_database(), newer->previous_database);
    EXPECT_EQ(rolled->replaced_database_renamed_to(), ReplacedDatabaseName(db, now_));
    EXPECT_EQ(Accounts(db), "marker-2");
    auto again = RollbackDatabase(pg_->ConnInfo(), db, "", now_);
    ASSERT_OK(again);
    EXPECT_EQ(again->restored_database(), older->previous_database);
    EXPECT_EQ(again->replaced_database_renamed_to(), ReplacedDatabaseName(db, now_, 2));
    EXPECT_EQ(Accounts(db), "marker-1");
    EXPECT_THAT(StagingLeft(), IsEmpty());
  }
};

TEST_F(SameSecondTest, TwoSwapsInOneSecondKeepBothAndRollbackTakesTheNewest) {
  SwapTwiceThenRollBackTwice("mastodon_production");
}

TEST_F(SameSecondTest, ADatabaseNameOf63Bytes) {
  const std::string db = "mastodon_production_" + std::string(43, 'x');
  ASSERT_EQ(db.size(), kMaxIdentifierBytes);
  // Another long name with the same beginning keeps previous databases of its
  // own, which are never taken for this one's.
  const std::string sibling = "mastodon_production_" + std::string(42, 'x') + "y";
  ASSERT_OK(Restore(Request(kDir + "/plain.sql", sibling)));
  DatabaseRestoreRequest sibling_again = Request(kDir + "/plain.sql", sibling);
  sibling_again.operation_id = "op-sibling";
  auto kept = Restore(sibling_again);
  ASSERT_OK(kept);
  ASSERT_NE(kept->previous_database, "");
  EXPECT_NE(PreviousDatabasePrefix(db), PreviousDatabasePrefix(sibling));

  SwapTwiceThenRollBackTwice(db);
  // The third rollback finds nothing of its own to bring back.
  EXPECT_THAT(RollbackDatabase(pg_->ConnInfo(), db, "", now_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("no '")));
  EXPECT_THAT(Databases(), ::testing::Contains(kept->previous_database));
}

// Every failure leaves the live database as it was and no staging database.
class RestoreFailureTest : public DatabaseRestoreTest {
 protected:
  void SetUp() override {
    DatabaseRestoreTest::SetUp();
    ASSERT_OK(Restore(Request(kDir + "/plain.sql", "mastodon_production")));
    ASSERT_OK(
        pg_->Exec("INSERT INTO accounts VALUES (99, 'live-marker', NULL)", "mastodon_production"));
    before_ = Dump("mastodon_production");
  }
  void ExpectLiveUntouched() {
    EXPECT_EQ(Dump("mastodon_production"), before_);
    EXPECT_THAT(StagingLeft(), IsEmpty());
    for (const std::string& db : Databases()) EXPECT_EQ(db.find("__previous_"), std::string::npos);
  }
  DatabaseRestoreRequest Second(const std::string& source) {
    DatabaseRestoreRequest r = Request(source, "mastodon_production");
    r.operation_id = "op2";
    return r;
  }
  std::string WriteDump(const std::string& name, const std::string& text) {
    std::string path = work_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::string before_;
};

TEST_F(RestoreFailureTest, TruncatedPlainDumpMidCopy) {
  auto r = Restore(Second(kDir + "/bad/cut_mid_copy.sql"));
  EXPECT_THAT(
      r, StatusIs(absl::StatusCode::kInvalidArgument,
                  AllOf(HasSubstr("cut_mid_copy.sql"), HasSubstr("COPY data of public.statuses"),
                        HasSubstr("truncated"))));
  ExpectLiveUntouched();
}

// A dump that asks the server to send rows to the client (COPY ... TO
// STDOUT) fails the restore at once; before, libpq's copy state was never
// left and the agent spun at 100% CPU for ever.
TEST_F(RestoreFailureTest, CopyToStdoutInTheDumpFailsTheRestoreInsteadOfHanging) {
  std::string plain = ReadFile(kDir + "/plain.sql");
  size_t at = plain.find("\nCREATE TABLE ");
  ASSERT_NE(at, std::string::npos);
  // Rows streamed as they are joined, about 10^10 of them: only the
  // server's cancellation ends it.
  plain.insert(at + 1,
               "COPY (SELECT a.oid FROM pg_class a, pg_class b, pg_class c, pg_class d) "
               "TO STDOUT;\n");
  for (int jobs : {1, 2}) {
    SCOPED_TRACE(absl::StrCat(jobs, " jobs"));
    DatabaseRestoreRequest r = Second(WriteDump("copy_to_stdout.sql", plain));
    r.jobs = jobs;
    r.operation_id = absl::StrCat("op", jobs + 2);
    EXPECT_THAT(Restore(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                     AllOf(HasSubstr("TO STDOUT"), HasSubstr("refused"))));
    ExpectLiveUntouched();
  }
}

TEST_F(RestoreFailureTest, SqlErrorInPostDataNamesLineAndTocEntry) {
  std::string plain = ReadFile(kDir + "/plain.sql");
  size_t at = plain.find("--\n-- Name: statuses statuses_pkey;");
  ASSERT_NE(at, std::string::npos);
  plain.insert(at,
               "--\n-- Name: broken; Type: INDEX; Schema: public; Owner: mastodon\n--\n\n"
               "CREATE INDEX broken ON public.no_such_table (id);\n\n");
  int line = 1 + static_cast<int>(std::count(plain.begin(), plain.begin() + at, '\n')) + 4;
  auto r = Restore(Second(WriteDump("post_data_error.sql", plain)));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                          AllOf(HasSubstr(absl::StrCat("at line ", line, " (INDEX public.broken)")),
                                HasSubstr("relation \"public.no_such_table\" does not exist"))));
  ExpectLiveUntouched();
}

TEST_F(RestoreFailureTest, BadRowInOneParallelChunkFailsTheWholeLoad) {
  std::string plain = ReadFile(kDir + "/plain.sql");
  size_t copy = plain.find("COPY public.statuses");
  ASSERT_NE(copy, std::string::npos);
  // A row far into the table, so other chunks of it load at the same time.
  size_t row = copy;
  for (int i = 0; i < 150; ++i) row = plain.find('\n', row) + 1;
  plain.insert(row, "not-a-number\t1\tbroken\t2026-01-01 00:00:00+00\n");
  DatabaseRestoreRequest r = Second(WriteDump("bad_row.sql", plain));
  r.jobs = 4;
  r.chunk_bytes = 2048;
  EXPECT_THAT(Restore(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                   AllOf(HasSubstr("bad_row.sql' at line "),
                                         HasSubstr("(TABLE DATA public.statuses)"),
                                         HasSubstr("COPY public.statuses"),
                                         HasSubstr("invalid input syntax for type bigint"))));
  ExpectLiveUntouched();
}

TEST_F(RestoreFailureTest, MissingRoleWithKeepOwners) {
  ASSERT_OK(pg_->Exec("CREATE DATABASE scratch OWNER mastodon"));
  std::string plain = ReadFile(kDir + "/plain.sql");
  std::string renamed =
      std::regex_replace(plain, std::regex("OWNER TO mastodon"), "OWNER TO ghost");
  std::string path = WriteDump("ghost.sql", renamed);
  DatabaseRestoreRequest r = Second(path);
  r.keep_owners = true;
  EXPECT_THAT(Restore(r), StatusIs(absl::StatusCode::kFailedPrecondition,
                                   AllOf(HasSubstr("role \"ghost\" does not exist"),
                                         HasSubstr("--keep-owners"))));
  ExpectLiveUntouched();
  // Without --keep-owners the restore goes through and says what it skipped.
  DatabaseRestoreRequest lenient = Second(path);
  lenient.operation_id = "op3";
  auto ok = Restore(lenient);
  ASSERT_OK(ok);
  EXPECT_THAT(ok->load.missing_roles, ::testing::ElementsAre("ghost"));
  EXPECT_THAT(ok->warnings, ::testing::Contains(HasSubstr("role \"ghost\" does not exist")));
}

TEST_F(RestoreFailureTest, UnknownMetaCommand) {
  std::string plain = ReadFile(kDir + "/plain.sql");
  std::string key_line = plain.substr(plain.find("\\unrestrict "));
  key_line = key_line.substr(0, key_line.find('\n') + 1);
  plain.insert(plain.find("SET statement_timeout"), key_line + "\\! touch /tmp/pwned\n");
  auto r = Restore(Second(WriteDump("meta.sql", plain)));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("meta-command not allowed in a dump: \\! touch /tmp/pwned")));
  ExpectLiveUntouched();
}

TEST_F(RestoreFailureTest, RestrictedModeRefusesMetaCommands) {
  std::string plain = ReadFile(kDir + "/plain.sql");
  plain.insert(plain.find("SET statement_timeout"), "\\connect mastodon_production\n");
  auto r = Restore(Second(WriteDump("restricted.sql", plain)));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                          HasSubstr("backslash commands are restricted")));
  ExpectLiveUntouched();
}

TEST_F(RestoreFailureTest, CancellationMidCopy) {
  // A dump big enough to be cancelled in the middle of its data.
  ASSERT_OK(pg_->Exec("CREATE DATABASE big"));
  ASSERT_OK(
      pg_->Exec("CREATE TABLE t (id bigint, s text); INSERT INTO t SELECT i, md5(i::text) "
                "|| md5((i*7)::text) FROM generate_series(1, 400000) i",
                "big"));
  std::string path = work_ + "/big.sql";
  Tool({"pg_dump", "-d", pg_->ConnInfo("big"), "-f", path});
  CancelToken cancel;
  DatabaseRestoreRequest r = Second(path);
  r.cancel = &cancel;
  bool cancelled_mid_copy = false;
  r.progress = [&](const std::string& step, const LoadProgress& p) {
    if (step == "load" && p.bytes > 0 && !cancel.cancelled()) {
      cancelled_mid_copy = p.toc_entry == "TABLE DATA public.t";
      cancel.Cancel();
    }
  };
  absl::Time start = absl::Now();
  EXPECT_THAT(Restore(r), StatusIs(absl::StatusCode::kCancelled, HasSubstr("cancelled")));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_TRUE(cancelled_mid_copy);
  ExpectLiveUntouched();
  // The temporary load role is gone with the staging database.
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'mr\\_load\\_%'"),
            "0");
}

// Hostile plain dumps that expand hugely (issue 15, finding 7: a 459 KiB
// .sql.xz with an unterminated string reached 6.3 GB). Each is about half a
// MiB of xz made by the real xz at test time: the head, then one compressed
// 16 MiB block repeated (xz reads concatenated streams as one), to 3 GiB.
class OversizedDumpTest : public RestoreFailureTest {
 protected:
  std::string Xz(const std::string& text) {
    CommandSpec spec;
    spec.argv = {"xz", "-1", "-T1", "-c"};
    spec.stdin_data = text;
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    EXPECT_TRUE(r.ok() && r->success()) << (r.ok() ? r->Describe() : "");
    return r.ok() ? r->stdout_text : "";
  }
  // plain.sql up to its first CREATE TABLE, then `statement_start`, then
  // `block` up to 3 GiB. Sets *line to the line where statement_start is.
  std::string WriteHostile(const std::string& name, const std::string& statement_start,
                           const std::string& block, int64_t* line) {
    std::string plain = ReadFile(kDir + "/plain.sql");
    size_t at = plain.find("\nCREATE TABLE ");
    EXPECT_NE(at, std::string::npos);
    std::string head = plain.substr(0, at + 1) + statement_start;
    *line = 1 + std::count(head.begin(), head.begin() + at + 1, '\n');
    std::string one = Xz(block);
    std::string xz = Xz(head);
    for (int64_t i = 0; i < (3LL << 30) / static_cast<int64_t>(block.size()); ++i) xz += one;
    std::cout << name << ": " << xz.size() / 1024 << " KiB of xz, 3 GiB expanded\n";
    EXPECT_LT(xz.size(), 1u << 20);
    return WriteDump(name, xz);
  }
  // Peak resident memory of this process (MiB) grown during `f`.
  template <typename F>
  static int64_t PeakGrowthMiB(F f) {
    struct rusage before {
    }, after{};
    getrusage(RUSAGE_SELF, &before);
    f();
    getrusage(RUSAGE_SELF, &after);
    return (after.ru_maxrss - before.ru_maxrss) / 1024;
  }
};

// 16 MiB of 1 KiB lines of `c` (a string's or a row's body).
std::string Lines(char c) {
  std::string line(1023, c);
  line += '\n';
  std::string block;
  for (int i = 0; i < 16 * 1024; ++i) block += line;
  return block;
}

TEST_F(OversizedDumpTest, UnterminatedStringStopsAtTheStatementBound) {
  int64_t line = 0;
  std::string path =
      WriteHostile("unterminated.sql.xz", "SELECT 'never closed\n", Lines('s'), &line);
  absl::StatusOr<DatabaseRestoreResult> r;
  int64_t grew = PeakGrowthMiB([&] { r = Restore(Second(path)); });
  std::cout << "unterminated string, default bounds: peak grew by " << grew << " MiB\n";
  EXPECT_THAT(
      r, StatusIs(absl::StatusCode::kInvalidArgument,
                  AllOf(HasSubstr("'unterminated.sql'"), HasSubstr(absl::StrCat("at line ", line)),
                        HasSubstr("a statement (unterminated?) longer than the limit of "
                                  "268435456 bytes"))));
  EXPECT_LT(grew, 2048);  // 256 MiB held, at most twice while it grows
  ExpectLiveUntouched();
}

TEST_F(OversizedDumpTest, EndlessLineStopsAtTheLineBound) {
  int64_t line = 0;
  std::string path = WriteHostile("endless.sql.xz", "SELECT 1 ", std::string(16 << 20, ' '), &line);
  DatabaseRestoreRequest request = Second(path);
  request.bounds.max_line_bytes = 32 << 20;
  absl::StatusOr<DatabaseRestoreResult> r;
  int64_t grew = PeakGrowthMiB([&] { r = Restore(request); });
  std::cout << "endless line, 32 MiB bound: peak grew by " << grew << " MiB\n";
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                          AllOf(HasSubstr(absl::StrCat("at line ", line)),
                                HasSubstr("a line longer than the limit of 33554432 bytes"))));
  EXPECT_LT(grew, 512);
  ExpectLiveUntouched();
}

TEST_F(OversizedDumpTest, HugeCopyRowStopsAtTheRowBound) {
  for (int jobs : {1, 2}) {
    SCOPED_TRACE(absl::StrCat(jobs, " jobs"));
    int64_t line = 0;
    std::string path = WriteHostile(absl::StrCat("row", jobs, ".sql.xz"),
                                    "CREATE TABLE public.hostile (a text);\n"
                                    "COPY public.hostile (a) FROM stdin;\n",
                                    std::string(16 << 20, 'r'), &line);
    DatabaseRestoreRequest request = Second(path);
    request.operation_id = absl::StrCat("op", jobs + 2);
    request.jobs = jobs;
    request.bounds.max_copy_row_bytes = 32 << 20;
    absl::StatusOr<DatabaseRestoreResult> r;
    int64_t grew = PeakGrowthMiB([&] { r = Restore(request); });
    std::cout << "huge COPY row, " << jobs << " jobs, 32 MiB bound: peak grew by " << grew
              << " MiB\n";
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                            AllOf(HasSubstr(absl::StrCat("at line ", line + 2)),
                                  HasSubstr("a COPY row of public.hostile longer than the limit "
                                            "of 33554432 bytes"))));
    EXPECT_LT(grew, 512);
    ExpectLiveUntouched();
  }
}

TEST_F(DatabaseRestoreTest, RecoveryDropsOnlyTheStagingDatabaseItsRecordNamesByOid) {
  auto admin = PgConnection::Connect(pg_->ConnInfo());
  ASSERT_OK(admin);
  TargetDatabases targets(admin->get());
  std::vector<std::string> warnings;
  v1::DatabaseJournal journal;
  journal.set_staging_database("mastodon_production__restore_crashed");
  auto oid = targets.CreateStaging(journal.staging_database(), {"UTF8", "C.UTF-8", "", ""}, "",
                                   &warnings, [&](uint32_t o, bool planned) {
                                     EXPECT_TRUE(planned);  // PostgreSQL 15: chosen first
                                     journal.set_staging_oid(o);
                                     return absl::OkStatus();
                                   });
  ASSERT_OK(oid);
  EXPECT_EQ(*oid, journal.staging_oid());
  // A database a dump labelled as staging, and one named like ours but
  // recreated (another OID): neither is this record's.
  ASSERT_OK(pg_->Exec("CREATE DATABASE labelled"));
  ASSERT_OK(pg_->Exec(absl::StrCat("COMMENT ON DATABASE labelled IS '", kStagingComment, "'")));
  auto dropped = RecoverDatabaseJournal(pg_->ConnInfo(), journal);
  ASSERT_OK(dropped);
  EXPECT_THAT(*dropped, ::testing::ElementsAre(HasSubstr("dropped a staging database")));
  EXPECT_THAT(StagingLeft(), IsEmpty());
  EXPECT_THAT(Databases(), ::testing::Contains("labelled"));
  ASSERT_OK(pg_->Exec("CREATE DATABASE mastodon_production__restore_crashed"));
  dropped = RecoverDatabaseJournal(pg_->ConnInfo(), journal);  // idempotent
  ASSERT_OK(dropped);
  EXPECT_THAT(*dropped, IsEmpty());
  EXPECT_THAT(Databases(), ::testing::Contains("mastodon_production__restore_crashed"));
}

// A crash during the load leaves the staging database owned by its load
// role (load_role.h): recovery drops both.
TEST_F(DatabaseRestoreTest, RecoveryDropsTheLoadRoleOfTheStagingDatabase) {
  auto admin = PgConnection::Connect(pg_->ConnInfo());
  ASSERT_OK(admin);
  TargetDatabases targets(admin->get());
  std::vector<std::string> warnings;
  v1::DatabaseJournal journal;
  journal.set_staging_database("mastodon_production__restore_crashed");
  const std::string load_role = LoadRoleName(journal.staging_database());
  ASSERT_OK(pg_->Exec(absl::StrCat("CREATE ROLE ", load_role, " LOGIN")));
  auto oid = targets.CreateStaging(journal.staging_database(), {"UTF8", "C.UTF-8", "", ""},
                                   load_role, &warnings);
  ASSERT_OK(oid);
  journal.set_staging_oid(*oid);
  auto done = RecoverDatabaseJournal(pg_->ConnInfo(), journal);
  ASSERT_OK(done);
  EXPECT_THAT(StagingLeft(), IsEmpty());
  EXPECT_EQ(*pg_->QueryValue(
                absl::StrCat("SELECT count(*) FROM pg_roles WHERE rolname = '", load_role, "'")),
            "0");
}

// The swap stopped at each of its failpoints (an error there rolls the
// transaction back as a killed connection does), then repaired from the
// journal the swap wrote: the live database is the old one (and the staging
// database is dropped) or the new one (and the old one kept), every one of
// them accepting connections.
TEST_F(DatabaseRestoreTest, ASwapStoppedAtEachPhaseIsRepairedFromTheRecord) {
  for (const char* fp : {"swap.before_begin", "swap.after_terminate", "swap.after_rename_live",
                         "swap.before_commit", "swap.after_commit"}) {
    SCOPED_TRACE(fp);
    ASSERT_OK(pg_->Exec("DROP DATABASE IF EXISTS live WITH (FORCE)"));
    ASSERT_OK(pg_->Exec("DROP DATABASE IF EXISTS live__prev WITH (FORCE)"));
    ASSERT_OK(pg_->Exec("DROP DATABASE IF EXISTS live__restore_x WITH (FORCE)"));
    ASSERT_OK(pg_->Exec("CREATE DATABASE live"));
    ASSERT_OK(pg_->Exec("CREATE TABLE old_one (x int)", "live"));
    auto admin = PgConnection::Connect(pg_->ConnInfo());
    ASSERT_OK(admin);
    TargetDatabases targets(admin->get());
    std::vector<std::string> warnings;
    v1::DatabaseJournal journal;
    journal.set_staging_database("live__restore_x");
    auto oid = targets.CreateStaging("live__restore_x", {"UTF8", "C.UTF-8", "", ""}, "", &warnings);
    ASSERT_OK(oid);
    journal.set_staging_oid(*oid);
    ASSERT_OK(pg_->Exec("CREATE TABLE new_one (x int)", "live__restore_x"));
    // A session on the live database: the swap ends it.
    auto session = PgConnection::Connect(pg_->ConnInfo("live"));
    ASSERT_OK(session);
    ASSERT_OK(SetFailpoint(fp, FailpointAction::kError));
    auto swapped = targets.SwapIn("live", "live__restore_x", "live__prev",
                                  [&](uint32_t live_oid, uint32_t staging_oid) {
                                    journal.set_swap_phase(v1::SWAP_PHASE_STARTED);
                                    journal.set_live_database("live");
                                    journal.set_live_oid(live_oid);
                                    journal.set_staging_oid(staging_oid);
                                    journal.set_previous_database("live__prev");
                                    return absl::OkStatus();
                                  });
    ClearFailpoints();
    EXPECT_THAT(swapped, StatusIs(absl::StatusCode::kUnavailable, HasSubstr(fp)));
    // As an agent killed earlier would have left it (see issue 22).
    ASSERT_OK(pg_->Exec("ALTER DATABASE live WITH ALLOW_CONNECTIONS false"));
    auto done = RecoverDatabaseJournal(pg_->ConnInfo(), journal);
    ASSERT_OK(done);
    const bool committed = std::string(fp) == "swap.after_commit";
    const std::string joined = absl::StrJoin(*done, "; ");
    if (committed) {
      EXPECT_THAT(joined, HasSubstr("the swap had committed"));
      EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_class WHERE relname = 'new_one'", "live"),
                "1");
      EXPECT_EQ(
          *pg_->QueryValue("SELECT count(*) FROM pg_class WHERE relname = 'old_one'", "live__prev"),
          "1");
      EXPECT_THAT(Databases(), ::testing::Not(::testing::Contains("live__restore_x")));
    } else {
      EXPECT_THAT(joined, HasSubstr("the swap had not committed"));
      EXPECT_THAT(joined, HasSubstr("dropped a staging database 'live__restore_x'"));
      EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_class WHERE relname = 'old_one'", "live"),
                "1");
      EXPECT_THAT(Databases(), ::testing::Not(::testing::Contains("live__restore_x")));
      EXPECT_THAT(Databases(), ::testing::Not(::testing::Contains("live__prev")));
    }
    EXPECT_EQ(*pg_->QueryValue("SELECT bool_and(datallowconn)::text FROM pg_database WHERE "
                               "datname LIKE 'live%'"),
              "true");
    EXPECT_OK(PgConnection::Connect(pg_->ConnInfo("live")).status());
    // Again: nothing more to do.
    done = RecoverDatabaseJournal(pg_->ConnInfo(), journal);
    ASSERT_OK(done);
    if (committed) {
      EXPECT_THAT(*done, ::testing::ElementsAre(HasSubstr("the swap had committed")));
    } else {
      EXPECT_THAT(*done, ::testing::ElementsAre(HasSubstr("the swap had not committed")));
    }
  }
}

TEST_F(DatabaseRestoreTest, AStagingDatabaseCreatedBeforeItsOidWasRecordedIsDroppedByName) {
  ASSERT_OK(pg_->Exec("CREATE DATABASE mastodon_production__restore_op1"));
  v1::DatabaseJournal journal;
  journal.set_staging_database("mastodon_production__restore_op1");
  auto done = RecoverDatabaseJournal(pg_->ConnInfo(), journal);
  ASSERT_OK(done);
  EXPECT_THAT(*done, ::testing::ElementsAre(HasSubstr("before its OID was recorded")));
  EXPECT_THAT(StagingLeft(), IsEmpty());
}

TEST_F(DatabaseRestoreTest, TheRecordKeepsNoPassword) {
  bool had = false;
  std::string kept = ConnInfoForRecord("host=db port=5433 user=u password=secret dbname=x", &had);
  EXPECT_TRUE(had);
  EXPECT_THAT(kept, ::testing::Not(HasSubstr("secret")));
  EXPECT_THAT(kept, HasSubstr("host='db'"));
  EXPECT_THAT(kept, HasSubstr("port='5433'"));
  kept = ConnInfoForRecord("postgresql://u:pw@db/x", &had);
  EXPECT_TRUE(had);
  EXPECT_THAT(kept, ::testing::Not(HasSubstr("pw")));
  EXPECT_THAT(kept, HasSubstr("user='u'"));
  EXPECT_EQ(ConnInfoForRecord("host=/run/o'k", &had), "host='/run/o\\'k'");
  EXPECT_FALSE(had);
}

TEST_F(DatabaseRestoreTest, MissingLocaleFallsBackToCUtf8) {
  auto admin = PgConnection::Connect(pg_->ConnInfo());
  ASSERT_OK(admin);
  TargetDatabases targets(admin->get());
  std::vector<std::string> warnings;
  ASSERT_OK(targets.CreateStaging("x__restore_1", {"UTF8", "xx_XX.UTF-8", "", ""}, "", &warnings));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("xx_XX.UTF-8"));
  EXPECT_EQ(*pg_->QueryValue("SELECT datcollate FROM pg_database WHERE datname = 'x__restore_1'"),
            "C.UTF-8");
}

// Gives its bytes a few at a time, so rows and the "\." end marker arrive
// cut at every place.
class TrickleStream : public ByteStream {
 public:
  TrickleStream(std::string data, size_t step) : data_(std::move(data)), step_(step) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    const size_t k = std::min({n, step_, data_.size() - pos_});
    std::memcpy(buf, data_.data() + pos_, k);
    pos_ += k;
    return k;
  }
  const std::string& name() const override { return name_; }

 private:
  std::string data_;
  size_t step_;
  size_t pos_ = 0;
  std::string name_ = "rows.dat";
};

// The scheduler of the parallel load on real connections: what waits for
// what, session settings on every connection, the first failure cancels the
// rest.
class LoadSchedulerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pg = TestPostgres::Start();
    ASSERT_OK(pg);
    pg_ = std::move(*pg);
    ASSERT_OK(pg_->Exec("CREATE DATABASE sched"));
    ASSERT_OK(pg_->Exec("CREATE TABLE log (tag text, setting text, at timestamptz)", "sched"));
  }

  std::unique_ptr<LoadScheduler> Start(int jobs, const CancelToken* cancel = nullptr) {
    LoadSchedulerOptions o;
    o.jobs = jobs;
    o.connect = [this]() { return PgConnection::Connect(pg_->ConnInfo("sched")); };
    o.dump_name = "test.sql";
    o.cancel = cancel;
    auto s = LoadScheduler::Start(o);
    EXPECT_OK(s);
    return s.ok() ? std::move(*s) : nullptr;
  }

  // A job that logs its start and end around a sleep.
  static LoadJob Job(const std::string& tag, std::vector<std::string> tables, LoadJob::Lock lock,
                     double sleep = 0.3) {
    LoadJob j;
    j.tables = std::move(tables);
    j.lock = lock;
    j.sql = absl::StrCat("INSERT INTO log VALUES ('", tag,
                         "-start', current_setting('application_name'), "
                         "clock_timestamp()); SELECT pg_sleep(",
                         sleep, "); INSERT INTO log VALUES ('", tag,
                         "-end', current_setting('application_name'), clock_timestamp())");
    j.line = 7;
    j.toc_entry = absl::StrCat("TEST ", tag);
    return j;
  }

  // A data job into `table` (id int, body text) that reads `data` itself,
  // `step` bytes at a time.
  static LoadJob StreamedCopy(const std::string& table, const std::string& data,
                              size_t step = 4096) {
    LoadJob j;
    j.tables = {table};
    j.lock = LoadJob::Lock::kData;
    j.sql = absl::StrCat("COPY ", table, " (id, body) FROM stdin;");
    j.open_copy_data = [data, step]() -> absl::StatusOr<std::unique_ptr<ByteStream>> {
      return std::make_unique<TrickleStream>(data, step);
    };
    j.size_hint = static_cast<int64_t>(data.size());
    j.toc_entry = absl::StrCat("TABLE DATA ", table);
    return j;
  }

  // Tag -> time, and the settings the jobs saw.
  std::map<std::string, std::string> Log(std::set<std::string>* settings) {
    auto conn = PgConnection::Connect(pg_->ConnInfo("sched"));
    EXPECT_OK(conn);
    auto rows =
        (*conn)->Query("SELECT tag, setting, to_char(at, 'YYYY-MM-DD HH24:MI:SS.US') FROM log");
    EXPECT_OK(rows);
    std::map<std::string, std::string> out;
    for (const auto& row : rows->rows) {
      out[*row[0]] = *row[2];
      if (settings != nullptr) settings->insert(*row[1]);
    }
    return out;
  }

  std::unique_ptr<TestPostgres> pg_;
};

TEST_F(LoadSchedulerTest, BuildsWaitForTheirTablesDataAndConflictingBuilds) {
  auto s = Start(3);
  ASSERT_NE(s, nullptr);
  s->AddSessionStatement("SET application_name = 'restore-load'");
  using L = LoadJob::Lock;
  ASSERT_OK(s->Submit(Job("a-data1", {"a"}, L::kData)));
  ASSERT_OK(s->Submit(Job("a-data2", {"a"}, L::kData)));
  ASSERT_OK(s->Submit(Job("b-data", {"b"}, L::kData, 0.6)));
  ASSERT_OK(s->Submit(Job("a-idx1", {"a"}, L::kShared)));
  ASSERT_OK(s->Submit(Job("a-idx2", {"a"}, L::kShared)));
  ASSERT_OK(s->Submit(Job("fk-b-a", {"b", "a"}, L::kExclusive, 0.1)));
  ASSERT_OK(s->Submit(Job("c-idx", {"c"}, L::kShared, 0.1)));
  ASSERT_OK(s->WaitIdle());
  EXPECT_EQ(s->jobs_done(), 7);
  EXPECT_EQ(s->max_concurrency(), 3);
  std::set<std::string> settings;
  std::map<std::string, std::string> at = Log(&settings);
  ASSERT_EQ(at.size(), 14u);
  EXPECT_THAT(settings, ::testing::ElementsAre("restore-load"));
  for (const char* idx : {"a-idx1-start", "a-idx2-start"}) {
    EXPECT_GE(at[idx], at["a-data1-end"]) << idx;
    EXPECT_GE(at[idx], at["a-data2-end"]) << idx;
  }
  for (const char* before : {"a-idx1-end", "a-idx2-end", "b-data-end", "a-data1-end"}) {
    EXPECT_GE(at["fk-b-a-start"], at[before]) << before;
  }
  // The two chunks of a's data ran side by side, and c's index did not wait.
  EXPECT_LT(at["a-data2-start"], at["a-data1-end"]);
  EXPECT_LT(at["c-idx-start"], at["fk-b-a-start"]);
}

TEST_F(LoadSchedulerTest, FinishedChunksLendTheirMemoryToTheNextOnes) {
  auto s = Start(2);
  ASSERT_NE(s, nullptr);
  ASSERT_OK(pg_->Exec("CREATE TABLE rows (id int, s text)", "sched"));
  std::set<const char*> lent;
  for (int i = 0; i < 3; ++i) {
    LoadJob j;
    j.tables = {"rows"};
    j.lock = LoadJob::Lock::kData;
    j.sql = "COPY rows (id, s) FROM stdin";
    j.copy_data = s->TakeBuffer(1 << 20);
    EXPECT_GE(j.copy_data.capacity(), size_t{1} << 20);
    EXPECT_TRUE(j.copy_data.empty());
    lent.insert(j.copy_data.data());
    j.copy_data.append(absl::StrCat(i, "\tchunk ", i, "\n"));
    ASSERT_OK(s->Submit(std::move(j)));
  }
  ASSERT_OK(s->WaitIdle());
  EXPECT_EQ(*pg_->QueryValue("SELECT string_agg(s, ',' ORDER BY id) FROM rows", "sched"),
            "chunk 0,chunk 1,chunk 2");
  // At most kSpareBuffers are kept; taken again, they are the same memory,
  // empty, with the room asked for.
  std::vector<std::string> again;
  for (size_t i = 0; i < LoadScheduler::kSpareBuffers; ++i) {
    again.push_back(s->TakeBuffer(1 << 20));
    EXPECT_TRUE(again.back().empty());
    EXPECT_EQ(lent.count(again.back().data()), 1u) << i;
  }
  EXPECT_GE(s->TakeBuffer(1 << 20).capacity(), size_t{1} << 20);  // none left: a new one
}

TEST_F(LoadSchedulerTest, WaitIdleForSaysWhatIsLeft) {
  auto s = Start(1);
  ASSERT_NE(s, nullptr);
  ASSERT_OK(s->Submit(Job("slow", {"a"}, LoadJob::Lock::kData, 0.5)));
  ASSERT_OK(s->Submit(Job("next", {"a"}, LoadJob::Lock::kShared, 0)));
  auto idle = s->WaitIdleFor(absl::Milliseconds(50));
  ASSERT_OK(idle);
  EXPECT_FALSE(*idle);
  EXPECT_EQ(s->pending(), 2);
  idle = s->WaitIdleFor(absl::Seconds(30));
  ASSERT_OK(idle);
  EXPECT_TRUE(*idle);
  EXPECT_EQ(s->pending(), 0);
  EXPECT_EQ(s->jobs_done(), 2);
}

TEST_F(LoadSchedulerTest, TheFirstFailureCancelsTheOthersAndIsReported) {
  auto s = Start(2);
  ASSERT_NE(s, nullptr);
  ASSERT_OK(s->Submit(Job("long", {"a"}, LoadJob::Lock::kData, 120)));
  LoadJob bad;
  bad.tables = {"b"};
  bad.lock = LoadJob::Lock::kShared;
  bad.sql = "CREATE INDEX broken ON no_such_table (id)";
  bad.line = 42;
  bad.toc_entry = "INDEX public.broken";
  ASSERT_OK(s->Submit(bad));
  absl::Time start = absl::Now();
  EXPECT_THAT(s->WaitIdle(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("unable to load 'test.sql' at line 42 (INDEX "
                                       "public.broken)"),
                             HasSubstr("relation \"no_such_table\" does not exist"))));
  // Nothing more is accepted, and the two-minute job was cancelled on the
  // server rather than waited for.
  EXPECT_FALSE(s->Submit(Job("late", {"c"}, LoadJob::Lock::kData)).ok());
  s.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(60));
  std::map<std::string, std::string> at = Log(nullptr);
  EXPECT_EQ(at.count("long-end"), 0u);
  EXPECT_EQ(at.count("late-start"), 0u);
}

TEST_F(LoadSchedulerTest, CancellationStopsTheRunningJobs) {
  CancelToken cancel;
  auto s = Start(2, &cancel);
  ASSERT_NE(s, nullptr);
  ASSERT_OK(s->Submit(Job("long", {"a"}, LoadJob::Lock::kData, 120)));
  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(300));
    cancel.Cancel();
  });
  EXPECT_THAT(s->WaitIdle(),
              StatusIs(absl::StatusCode::kCancelled, HasSubstr("load of 'test.sql' cancelled")));
  canceller.join();
  s.reset();
  EXPECT_EQ(Log(nullptr).count("long-end"), 0u);
}

// A data job that reads its own rows (a seekable archive's table): rows
// counted up to the "\." row, the greatest first field kept, and chunks of
// whole rows handed to the workers that have nothing else to do, all
// before the table's index build.
TEST_F(LoadSchedulerTest, AJobReadingItsOwnRowsCountsThemAndSharesThemWithIdleWorkers) {
  ASSERT_OK(pg_->Exec("CREATE TABLE t (id int, body text)", "sched"));
  std::string rows;
  // Several of the stream's read-ahead blocks (256 KiB), so that the job
  // decides at more than one read whether to hand rows off.
  for (int i = 1; i <= 200000; ++i) absl::StrAppend(&rows, i, "\tline\\n ", i, "\n");
  for (size_t step : {size_t{4096}, size_t{7}}) {
    SCOPED_TRACE(step);
    ASSERT_OK(pg_->Exec("TRUNCATE t; DROP INDEX IF EXISTS t_id", "sched"));
    LoadSchedulerOptions o;
    o.jobs = 3;
    o.connect = [this]() { return PgConnection::Connect(pg_->ConnInfo("sched")); };
    o.dump_name = "test.dump";
    o.chunk_bytes = 16 << 10;
    auto s = LoadScheduler::Start(o);
    ASSERT_OK(s);
    LoadJob j = StreamedCopy("t", rows + "\\.\n\n\n", step);
    j.track_first_field = true;
    j.result = std::make_shared<CopyStreamResult>();
    auto result = j.result;
    ASSERT_OK((*s)->Submit(std::move(j)));
    LoadJob index;
    index.tables = {"t"};
    index.lock = LoadJob::Lock::kShared;
    index.sql = "CREATE UNIQUE INDEX t_id ON t (id)";
    ASSERT_OK((*s)->Submit(std::move(index)));
    ASSERT_OK((*s)->WaitIdle());
    EXPECT_EQ(result->rows, 200000);
    EXPECT_EQ(result->bytes, static_cast<int64_t>(rows.size()));
    EXPECT_EQ(result->max_first_field, "200000");
    EXPECT_EQ(*pg_->QueryValue("SELECT count(*) || ' ' || sum(id) || ' ' || "
                               "count(*) FILTER (WHERE body = E'line\\n ' || id) FROM t",
                               "sched"),
              "200000 20000100000 200000");
    // Chunks went to other connections; the index came after all of them.
    EXPECT_GT((*s)->jobs_done(), 3);
    EXPECT_GE((*s)->max_concurrency(), 2);
  }
}

// LoadJob::freeze: an empty ordinary table is truncated and loaded WITH
// (FREEZE) in one transaction, its rows kept to one connection; any other
// table loads as it would without the flag, and no row put there before is
// lost.
TEST_F(LoadSchedulerTest, AnEmptyTableLoadsFrozenAndNoOtherTableLosesARow) {
  ASSERT_OK(pg_->Exec(
      "CREATE EXTENSION pg_visibility; "
      "CREATE TABLE fresh (id int, body text); "
      "CREATE TABLE \"Odd \"\"name\"\"\" (id int, body text); "
      "CREATE TABLE had_rows (id int, body text); "
      "INSERT INTO had_rows VALUES (0, 'before'); "
      "CREATE TABLE twice (id int, body text); "
      "CREATE TABLE parted (id int, body text) PARTITION BY RANGE (id); "
      "CREATE TABLE parted_all PARTITION OF parted FOR VALUES FROM (MINVALUE) TO (MAXVALUE); "
      "CREATE TABLE referenced (id int PRIMARY KEY, body text); "
      "CREATE TABLE referencing (id int REFERENCES referenced); "
      "CREATE TABLE triggered (id int, body text); "
      "CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS "
      "$$BEGIN INSERT INTO log VALUES ('truncated', '', now()); RETURN NULL; END$$; "
      "CREATE TRIGGER on_truncate AFTER TRUNCATE ON triggered EXECUTE FUNCTION note()",
      "sched"));
  std::string rows;
  for (int i = 1; i <= 20000; ++i) absl::StrAppend(&rows, i, "\trow ", i, "\n");
  LoadSchedulerOptions o;
  o.jobs = 3;
  o.connect = [this]() { return PgConnection::Connect(pg_->ConnInfo("sched")); };
  o.dump_name = "test.dump";
  o.chunk_bytes = 16 << 10;  // (a job that may split hands off many chunks)
  auto s = LoadScheduler::Start(o);
  ASSERT_OK(s);
  const std::vector<std::string> tables = {
      "fresh",  "\"Odd \"\"name\"\"\"", "had_rows", "twice", "twice",
      "parted", "referenced",           "triggered"};
  for (const std::string& table : tables) {
    LoadJob j = StreamedCopy(table, rows + "\\.\n");
    j.sql += "\n";  // (the end of the statement as an archive's TOC has it)
    j.freeze = true;
    ASSERT_OK((*s)->Submit(std::move(j)));
  }
  ASSERT_OK((*s)->WaitIdle());
  // Frozen: the two empty tables and one of the jobs of `twice` (the other
  // waited for its lock, found rows and added its own).
  EXPECT_EQ((*s)->tables_frozen(), 3);
  auto frozen = [&](const std::string& table) {
    return *pg_->QueryValue(
        absl::StrCat(
            "SELECT (all_frozen = pg_relation_size(c.oid) / current_setting('block_size')::int "
            "AND all_frozen > 0)::text || ' ' || "
            "(SELECT count(*) FROM ",
            table,
            ") FROM pg_class c, pg_visibility_map_summary(c.oid) "
            "WHERE c.oid = to_regclass('",
            table, "')"),
        "sched");
  };
  // A frozen table's rows went to no other connection, even with two of
  // them idle throughout (a job that may split hands them chunks: see
  // AJobReadingItsOwnRowsCountsThemAndSharesThemWithIdleWorkers).
  ASSERT_OK(pg_->Exec("CREATE TABLE alone (id int, body text)", "sched"));
  {
    LoadJob j = StreamedCopy("alone", rows);
    j.freeze = true;
    ASSERT_OK((*s)->Submit(std::move(j)));
    ASSERT_OK((*s)->WaitIdle());
  }
  EXPECT_EQ((*s)->tables_frozen(), 4);
  std::set<std::string> chunked;
  for (const auto& t : (*s)->trace()) {
    if (absl::EndsWith(t.what, " (chunk)")) chunked.insert(t.what);
  }
  EXPECT_EQ(chunked.count("TABLE DATA fresh (chunk)"), 0u);
  EXPECT_EQ(chunked.count("TABLE DATA alone (chunk)"), 0u);
  EXPECT_EQ(frozen("alone"), "true 20000");
  EXPECT_EQ(frozen("fresh"), "true 20000");
  EXPECT_EQ(frozen("\"Odd \"\"name\"\"\""), "true 20000");
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) || ' ' || count(*) FILTER (WHERE body = 'before') "
                             "FROM had_rows",
                             "sched"),
            "20001 1");
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) || ' ' || count(DISTINCT id) FROM twice", "sched"),
            "40000 20000");
  for (const char* table : {"parted", "referenced", "triggered"}) {
    EXPECT_EQ(*pg_->QueryValue(absl::StrCat("SELECT count(*) FROM ", table), "sched"), "20000")
        << table;
  }
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM log WHERE tag = 'truncated'", "sched"), "0");
}

TEST_F(LoadSchedulerTest, RowsReadByAJobKeepTheEndMarkerAndTheRowBound) {
  ASSERT_OK(pg_->Exec("CREATE TABLE t (id int, body text)", "sched"));
  struct Case {
    std::string data;
    int64_t max_row;
    std::string error;
  };
  const Case cases[] = {
      {"1\ta\n\\.\nDROP TABLE t;\n", 1 << 20, "more data after the end"},
      {"1\ta\n2\t" + std::string(300, 'x') + "\n", 100, "longer than the limit of 100 bytes"},
      {"1\ta\nnot a number\tb\n", 1 << 20, "invalid input syntax for type integer"},
  };
  for (const Case& c : cases) {
    for (bool freeze : {false, true}) {
      SCOPED_TRACE(absl::StrCat(c.error, freeze ? " (frozen)" : ""));
      auto s = Start(1);  // (one connection: nothing of a failed COPY stays)
      ASSERT_NE(s, nullptr);
      LoadJob j = StreamedCopy("t", c.data, 3);
      j.line = 12;
      j.toc_entry = "TABLE DATA public.t";
      j.max_row_bytes = c.max_row;
      j.freeze = freeze;
      ASSERT_OK(s->Submit(std::move(j)));
      EXPECT_THAT(s->WaitIdle(),
                  StatusIs(absl::StatusCode::kInvalidArgument,
                           AllOf(HasSubstr("unable to load 'test.sql' at line 12 (TABLE DATA "
                                           "public.t)"),
                                 HasSubstr(c.error))));
    }
  }
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM t", "sched"), "0");
}

TEST(TargetNamesTest, FitThePostgresIdentifierLimit) {
  EXPECT_EQ(StagingDatabaseName("mastodon_production", "op-1"),
            "mastodon_production__restore_op-1");
  std::string long_name(80, 'x');
  EXPECT_EQ(StagingDatabaseName(long_name, "op-1").size(), 63u);
  EXPECT_EQ(PreviousDatabaseName("db", absl::FromUnixSeconds(0)), "db__previous_19700101000000");
}

TEST(TargetNamesTest, KeptNamesAreDistinctOrderedAndFitForLongNames) {
  const absl::Time t = absl::FromUnixSeconds(0);
  EXPECT_EQ(PreviousDatabaseName("db", t, 2), "db__previous_19700101000000_02");
  EXPECT_EQ(ReplacedDatabaseName("db", t), "db__replaced_19700101000000");
  EXPECT_EQ(ReplacedDatabaseName("db", t, 12), "db__replaced_19700101000000_12");
  EXPECT_EQ(PreviousDatabasePrefix("db"), "db__previous_");
  // Bytewise order is the order they were made in.
  std::vector<std::string> made = {PreviousDatabaseName("db", t), PreviousDatabaseName("db", t, 2),
                                   PreviousDatabaseName("db", t, 10),
                                   PreviousDatabaseName("db", t, kMaxKeptPerSecond),
                                   PreviousDatabaseName("db", t + absl::Seconds(1))};
  EXPECT_TRUE(std::is_sorted(made.begin(), made.end()));

  // A long live name is cut, never the suffix, and stays distinguishable.
  const std::string a = std::string(63, 'a');
  const std::string b = std::string(62, 'a') + "b";
  for (int n : {1, 2, kMaxKeptPerSecond}) {
    const std::string name = PreviousDatabaseName(a, t, n);
    EXPECT_LE(name.size(), kMaxIdentifierBytes) << name;
    EXPECT_THAT(name, ::testing::StartsWith(PreviousDatabasePrefix(a)));
    EXPECT_THAT(name, ::testing::HasSubstr("__previous_19700101000000"));
    EXPECT_NE(name, PreviousDatabaseName(b, t, n));
  }
  EXPECT_THAT(PreviousDatabaseName(a, t, kMaxKeptPerSecond),
              ::testing::EndsWith("__previous_19700101000000_99"));
  // Cut at a UTF-8 boundary: no half of a two-byte character.
  std::string utf8 = "x";
  for (int i = 0; i < 30; ++i) utf8 += "\xc3\xa9";  // "x" and "é" x 30: 61 bytes
  const std::string prefix = PreviousDatabasePrefix(utf8);
  EXPECT_LE(prefix.size() + 17, kMaxIdentifierBytes);
  const size_t cut = prefix.find('_');
  ASSERT_NE(cut, std::string::npos);
  EXPECT_EQ(cut % 2, 1u) << prefix;  // "x" and whole "é"s
}

}  // namespace
}  // namespace mastodon_restore
