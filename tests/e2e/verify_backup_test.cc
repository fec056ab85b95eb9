// End-to-end: verify-backup as docs/ci.md runs it, through the real CLI with
// no agent beforehand: good, incomplete, truncated, stale and encrypted
// backups, the JUnit and JSON reports.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "agent/common/subprocess.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"
#include "tests/harness/test_s3.h"

namespace mastodon_restore {
namespace e2e {
namespace {

using ::mastodon_restore::testing::TestS3;
using ::testing::HasSubstr;

// verify-backup as docs/ci.md runs it: no agent beforehand, a private one
// with its own PostgreSQL, a JUnit report.
class VerifyBackupCliTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    RequireDumpFixtures();
    StartPostgres();
  }

  void MakeSourceDatabase() {
    ASSERT_OK(pg_->Exec("CREATE DATABASE src"));
    ASSERT_OK(pg_->Exec(
        "CREATE TABLE schema_migrations (version varchar PRIMARY KEY);"
        "INSERT INTO schema_migrations VALUES ('20260611150940');"
        "CREATE TABLE statuses (id bigserial PRIMARY KEY, text text, created_at timestamptz "
        "DEFAULT now());"
        "INSERT INTO statuses (text) SELECT 'toot ' || i FROM generate_series(1, 100) i;"
        "CREATE TABLE media_attachments (id bigint PRIMARY KEY, file_file_name varchar, "
        "remote_url varchar);"
        "INSERT INTO media_attachments VALUES (1, 'a.png', ''), (109123456789012345, 'b.jpg', "
        "NULL), (7, 'remote.png', 'https://remote.example/remote.png');",
        "src"));
  }

  void Run(const std::vector<std::string>& argv, const std::string& cwd = "") {
    CommandSpec spec;
    spec.argv = argv;
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.cwd = cwd;
    spec.timeout = absl::Minutes(2);
    auto r = runner_->Run(spec, nullptr);
    ASSERT_OK(r);
    ASSERT_EQ(r->exit_code, 0) << absl::StrJoin(argv, " ") << ": " << r->stderr_text;
  }

  // A backup whose media_attachments rows reference files of its media tree
  // (none with `env` set: its media live in the bucket `env` names).
  void MakeBackup(const std::string& name, bool with_b_jpg, bool truncate_dump,
                  const std::string& env = "") {
    const std::string dir = dir_ + "/" + name;
    std::filesystem::create_directories(dir);
    const std::string files = dir + "/public/system/media_attachments/files/";
    if (env.empty()) {
      std::filesystem::create_directories(files + "000/000/001/original");
      std::ofstream(files + "000/000/001/original/a.png") << std::string(1000, 'a');
    }
    if (with_b_jpg && env.empty()) {
      std::filesystem::create_directories(files + "109/123/456/789/012/345/original");
      std::ofstream(files + "109/123/456/789/012/345/original/b.jpg") << std::string(2000, 'b');
    }
    std::ofstream(dir + "/.env.production") << "LOCAL_DOMAIN=ci.example\nDB_NAME=src\n" << env;
    Run({pg_->bin_dir() + "/pg_dump", "-d", pg_->ConnInfo("src"), "-f", dir + "/database.sql"});
    if (truncate_dump) {
      std::filesystem::resize_file(dir + "/database.sql",
                                   std::filesystem::file_size(dir + "/database.sql") / 2);
    }
    Run({"tar", "-czf", dir_ + "/" + name + ".tar.gz", "-C", dir, "."});
  }

  CommandResult VerifyBackup(std::vector<std::string> args) {
    args.insert(args.begin(), "verify-backup");
    CommandSpec spec;
    spec.argv = {MR_CLI_BIN};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.timeout = absl::Minutes(3);
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    return r.ok() ? *r : CommandResult();
  }
};

TEST_F(VerifyBackupCliTest, GoodAndBrokenBackupsAsCiSeesThem) {
  MakeSourceDatabase();
  MakeBackup("good", true, false);
  MakeBackup("missing_media", false, false);
  MakeBackup("truncated", true, true);

  // A good backup: exit 0, every check in the JUnit report.
  CommandResult r = VerifyBackup(
      {"--local", "--max-age", "1", "--junit", dir_ + "/good.xml", dir_ + "/good.tar.gz"});
  EXPECT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("backup OK: " + dir_ +
                                       "/good.tar.gz restores, all 10 "
                                       "checks passed"));
  std::string xml = ReadFileOrEmpty(dir_ + "/good.xml");
  EXPECT_THAT(xml, HasSubstr("tests=\"11\" failures=\"0\""));
  EXPECT_THAT(xml, HasSubstr("name=\"media_files\""));
  EXPECT_THAT(xml, HasSubstr("2 local media files referenced, all present and readable"));
  EXPECT_THAT(xml, HasSubstr("name=\"max_age\""));
  // The backup's env file is checked against its database (no users table
  // here: nothing encrypted).
  EXPECT_THAT(xml, HasSubstr("name=\"secrets\""));

  // A media file the database references is not in the backup.
  r = VerifyBackup({"--local", "--junit", dir_ + "/missing.xml", dir_ + "/missing_media.tar.gz"});
  EXPECT_EQ(r.exit_code, 1) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("1 of 9 checks failed"));
  xml = ReadFileOrEmpty(dir_ + "/missing.xml");
  EXPECT_THAT(xml, HasSubstr("failures=\"1\""));
  EXPECT_THAT(xml, HasSubstr("media_attachments/files/109/123/456/789/012/345/original/b.jpg "
                             "missing"));

  // Two media trees: which one a restore would take is not guessed.
  const std::string old_tree =
      dir_ + "/good/old/public/system/accounts/avatars/000/000/001/original";
  std::filesystem::create_directories(old_tree);
  std::ofstream(old_tree + "/x.png") << "x";
  Run({"tar", "-czf", dir_ + "/two_trees.tar.gz", "-C", dir_ + "/good", "."});
  r = VerifyBackup({"--local", "--junit", dir_ + "/two.xml", dir_ + "/two_trees.tar.gz"});
  EXPECT_EQ(r.exit_code, 1) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("1 of 9 checks failed"));
  EXPECT_THAT(ReadFileOrEmpty(dir_ + "/two.xml"),
              HasSubstr("a restore of the media would fail: the backup holds several media "
                        "trees: public/system (2 files), old/public/system (1 files)"));

  // A truncated dump does not restore.
  r = VerifyBackup({"--local", "--junit", dir_ + "/truncated.xml", dir_ + "/truncated.tar.gz"});
  EXPECT_EQ(r.exit_code, 4) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("does not restore"));
  EXPECT_THAT(ReadFileOrEmpty(dir_ + "/truncated.xml"),
              HasSubstr("<testcase classname=\"verify-backup\" name=\"restore\""));
  EXPECT_THAT(ReadFileOrEmpty(dir_ + "/truncated.xml"), HasSubstr("<failure message="));

  // Stale data: the newest status is older than allowed.
  r = VerifyBackup({"--local", "--max-age", "1", Fixture("source_install.tar.gz")});
  EXPECT_EQ(r.exit_code, 1) << r.stdout_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("FAIL max_age"));

  // A wrong password, and the machine report.
  r = VerifyBackup(
      {"--local", "--password-file", Fixture("wrong-password.txt"), Fixture("secret.zip")});
  EXPECT_EQ(r.exit_code, 4) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text + r.stderr_text, HasSubstr("wrong password"));
  CommandSpec json;
  json.argv = {MR_CLI_BIN, "--json", "verify-backup", "--local", dir_ + "/good.tar.gz"};
  json.env = {"PATH=/usr/bin:/bin"};
  json.timeout = absl::Minutes(3);
  auto j = runner_->Run(json, nullptr);
  ASSERT_OK(j);
  EXPECT_EQ(j->exit_code, 0);
  EXPECT_THAT(j->stdout_text, HasSubstr("\"passed\":true"));
  EXPECT_THAT(j->stdout_text, HasSubstr("\"verify_result\""));
}

// An instance that keeps its media in a bucket: its backup holds none, and
// verify-backup looks for the files the database references in the bucket
// the backup's env names (when the agent may reach its endpoint).
TEST_F(VerifyBackupCliTest, MediaInTheInstancesBucketAreLookedForThere) {
  auto s3 = TestS3::Start(dir_ + "/s3");
  ASSERT_OK(s3);
  ASSERT_OK((*s3)->CreateBucket("app-media"));
  ASSERT_OK((*s3)->Put("app-media", "media_attachments/files/000/000/001/original/a.png", "a"));
  MakeSourceDatabase();
  MakeBackup("in_bucket", false, false,
             absl::StrCat("S3_ENABLED=true\nS3_BUCKET=app-media\nS3_ENDPOINT=", (*s3)->endpoint(),
                          "\nAWS_ACCESS_KEY_ID=", TestS3::kAccessKeyId,
                          "\nAWS_SECRET_ACCESS_KEY=", TestS3::kSecret, "\n"));
  StartAgent({"--allowed-root", dir_, "--target-conninfo", pg_->ConnInfo(), "--allowed-s3-endpoint",
              (*s3)->endpoint()});
  CommandResult r =
      CliOnSocket({"verify-backup", "--junit", dir_ + "/bucket.xml", dir_ + "/in_bucket.tar.gz"});
  EXPECT_EQ(r.exit_code, 1) << r.stdout_text << r.stderr_text;
  std::string xml = ReadFileOrEmpty(dir_ + "/bucket.xml");
  EXPECT_THAT(xml, HasSubstr("1 of 2 referenced files missing"));
  EXPECT_THAT(xml, HasSubstr("109/123/456/789/012/345/original/b.jpg missing"));

  ASSERT_OK((*s3)->Put("app-media",
                       "media_attachments/files/109/123/456/789/012/345/original/b.jpg", "b"));
  r = CliOnSocket({"verify-backup", "--junit", dir_ + "/bucket.xml", dir_ + "/in_bucket.tar.gz"});
  EXPECT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(ReadFileOrEmpty(dir_ + "/bucket.xml"),
              HasSubstr("2 local media files referenced, all present and readable (2 files in "
                        "s3://app-media/)"));
  // The secret of the backup's env is in no report.
  EXPECT_THAT(r.stdout_text + ReadFileOrEmpty(dir_ + "/bucket.xml"),
              ::testing::Not(HasSubstr(TestS3::kSecret)));
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
