// The database restore engine against a real PostgreSQL 15: equivalence with
// psql/pg_restore in every format, the staging/swap/rollback cycle, and
// failures that must leave the live database untouched and no staging behind.
#include "agent/database/database_restore.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/database/pg_connection.h"
#include "agent/database/target_ops.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::MakeTempDir;
using ::mastodon_restore::testing::RemoveTree;
using ::mastodon_restore::testing::StatusIs;
using ::mastodon_restore::testing::TestPostgres;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const std::string kDir = MR_FIXTURE_DIR;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class DatabaseRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::ifstream(kDir + "/READY").good()) << "fixtures missing";
    auto pg = TestPostgres::Start();
    ASSERT_OK(pg);
    pg_ = std::move(*pg);
    ASSERT_OK(pg_->Exec("CREATE ROLE mastodon LOGIN"));
    auto dir = MakeTempDir("mr-restore-test-");
    ASSERT_OK(dir);
    work_ = *dir;
  }
  void TearDown() override { RemoveTree(work_); }

  DatabaseRestoreRequest Request(const std::string& source, const std::string& database) {
    DatabaseRestoreRequest r;
    r.source_path = source;
    r.source.allowed_roots = {kDir, work_};
    r.conninfo = pg_->ConnInfo();
    r.database = database;
    r.operation_id = "op1";
    return r;
  }

  absl::StatusOr<DatabaseRestoreResult> Restore(const DatabaseRestoreRequest& r) {
    return RestoreDatabase(r, runner_.get(), env_.get());
  }

  // Runs a tool of the server's version; fails the test when it fails.
  std::string Tool(std::vector<std::string> argv, const std::string& stdin_data = "") {
    argv[0] = pg_->bin_dir() + "/" + argv[0];
    CommandSpec spec;
    spec.argv = argv;
    spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
    spec.stdin_data = stdin_data;
    spec.timeout = absl::Minutes(5);
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    if (!r.ok()) return "";
    EXPECT_EQ(r->exit_code, 0) << argv[0] << ": " << r->stderr_text;
    return r->stdout_text;
  }

  // pg_dump of a database, with the per-run \restrict keys removed.
  std::string Dump(const std::string& db) {
    std::string out = Tool({"pg_dump", "-d", pg_->ConnInfo(db)});
    return std::regex_replace(out, std::regex("\\\\(un)?restrict [A-Za-z0-9]+\\n"), "");
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

  std::unique_ptr<TestPostgres> pg_;
  std::string work_;
  std::unique_ptr<Env> env_ = NewPosixEnv();
  std::unique_ptr<CommandRunner> runner_ = NewPosixCommandRunner();
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
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.source);
    DatabaseRestoreRequest r = Request(c.source, absl::StrCat("restored_", n++));
    r.source_db = c.source_db;
    r.member = c.member;
    auto result = Restore(r);
    ASSERT_OK(result);
    EXPECT_TRUE(result->verification.passed());
    EXPECT_EQ(result->previous_database, "");
    EXPECT_EQ(result->load.table_rows.at("public.toots"), 2000);
    EXPECT_EQ(result->load.schema_version, "20260611150940");
    EXPECT_EQ(Dump(r.database), expected);
  }
  EXPECT_THAT(StagingLeft(), IsEmpty());
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
}

TEST_F(DatabaseRestoreTest, LeftoverStagingFromACrashIsDropped) {
  auto admin = PgConnection::Connect(pg_->ConnInfo());
  ASSERT_OK(admin);
  TargetDatabases targets(admin->get());
  std::vector<std::string> warnings;
  ASSERT_OK(targets.CreateStaging("mastodon_production__restore_crashed", "UTF8", "C.UTF-8", "",
                                  &warnings));
  ASSERT_OK(pg_->Exec("CREATE DATABASE unrelated"));
  auto dropped = DropLeftoverStaging(pg_->ConnInfo());
  ASSERT_OK(dropped);
  EXPECT_THAT(*dropped, ::testing::ElementsAre("mastodon_production__restore_crashed"));
  EXPECT_THAT(StagingLeft(), IsEmpty());
  EXPECT_THAT(Databases(), ::testing::Contains("unrelated"));
}

TEST_F(DatabaseRestoreTest, MissingLocaleFallsBackToCUtf8) {
  auto admin = PgConnection::Connect(pg_->ConnInfo());
  ASSERT_OK(admin);
  TargetDatabases targets(admin->get());
  std::vector<std::string> warnings;
  ASSERT_OK(targets.CreateStaging("x__restore_1", "UTF8", "xx_XX.UTF-8", "", &warnings));
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_THAT(warnings[0], HasSubstr("xx_XX.UTF-8"));
  EXPECT_EQ(*pg_->QueryValue("SELECT datcollate FROM pg_database WHERE datname = 'x__restore_1'"),
            "C.UTF-8");
}

TEST(TargetNamesTest, FitThePostgresIdentifierLimit) {
  EXPECT_EQ(StagingDatabaseName("mastodon_production", "op-1"),
            "mastodon_production__restore_op-1");
  std::string long_name(80, 'x');
  EXPECT_EQ(StagingDatabaseName(long_name, "op-1").size(), 63u);
  EXPECT_EQ(PreviousDatabaseName("db", absl::FromUnixSeconds(0)), "db__previous_19700101000000");
}

}  // namespace
}  // namespace mastodon_restore
