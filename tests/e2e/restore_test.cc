// End-to-end: restore (database and media), rollback, verify and ops through
// the real agent and CLI, against a real PostgreSQL 15 or the agent's
// embedded one; crashes and cancellation mid-load.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/common/subprocess.h"
#include "mastodon/restore/v1/agent_service.pb.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"
#include "tests/harness/test_s3.h"

namespace mastodon_restore {
namespace e2e {
namespace {

namespace v1 = mastodon::restore::v1;
using ::mastodon_restore::testing::TestS3;
using ::testing::HasSubstr;
using ::testing::Not;

// restore --db-only, rollback, verify and ops through the real agent and CLI,
// against a real PostgreSQL 15.
class RestoreCliTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    RequireDumpFixtures();
    StartPostgres();
  }
};

TEST_F(RestoreCliTest, RestoreRollbackVerifyAndOps) {
  StartRestoreAgent();
  CommandResult r = CliOnSocket({"--timeout", "120s", "restore", "--db-only", "--jobs", "3",
                                 "--target-db", "mastodon_production", Fixture("plain.sql.xz")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("==> load: load the dump into a staging database"));
  EXPECT_THAT(r.stdout_text, HasSubstr("loaded by      3 connections in parallel"));
  EXPECT_THAT(r.stdout_text, HasSubstr("restored       mastodon_production"));
  EXPECT_THAT(r.stdout_text, HasSubstr("verification   passed"));
  EXPECT_THAT(r.stdout_text, HasSubstr("(none: the database was new)"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM statuses", "mastodon_production"), "1000");

  ASSERT_OK(
      pg_->Exec("INSERT INTO accounts VALUES (99, 'live-marker', NULL)", "mastodon_production"));
  r = CliOnSocket({"--timeout", "120s", "restore", "--db-only", "--target-db",
                   "mastodon_production", Fixture("custom.dump")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("mastodon-restore rollback --database mastodon_production"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM accounts WHERE id = 99", "mastodon_production"),
            "0");

  r = CliOnSocket({"rollback", "--database", "mastodon_production"});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM accounts WHERE id = 99", "mastodon_production"),
            "1");

  r = CliOnSocket(
      {"verify", "--database", "mastodon_production", "--expected", Fixture("plain.sql")});
  // The rolled-back database has the marker row: one row more than the dump.
  EXPECT_EQ(r.exit_code, 1) << r.stdout_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("FAIL row_count:public.accounts: expected 3 rows, found 4"));
  ASSERT_OK(pg_->Exec("DELETE FROM accounts WHERE id = 99", "mastodon_production"));
  r = CliOnSocket(
      {"verify", "--database", "mastodon_production", "--expected", Fixture("plain.sql")});
  EXPECT_EQ(r.exit_code, 0) << r.stdout_text;
  r = CliOnSocket({"verify", "--database", "mastodon_production", "--max-age", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.stdout_text, HasSubstr("FAIL max_age: newest status is"));

  r = CliOnSocket({"ops", "list"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(std::count(r.stdout_text.begin(), r.stdout_text.end(), '\n'), 6);
  EXPECT_THAT(r.stdout_text, HasSubstr("rollback"));
  std::string id = OperationId(r.stdout_text);
  r = CliOnSocket({"ops", "show", id});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.stdout_text, HasSubstr("operation      " + id));
}

TEST_F(RestoreCliTest, MediaOnlyIntoTheAgentsMediaDir) {
  const std::string media = dir_ + "/live/public/system";
  StartAgent({"--allowed-root", MR_FIXTURE_DIR, "--media-dir", media});
  CommandResult r =
      CliOnSocket({"restore", "--media-only", "--exclude-cache", Fixture("source_install.tar.gz")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("media          2 files written"));
  struct stat st;
  EXPECT_EQ(::stat((media + "/media_attachments/files/109/000/001/original/cat.jpg").c_str(), &st),
            0);
  EXPECT_NE(::stat((media + "/cache").c_str(), &st), 0);
  r = CliOnSocket({"restore", "--media-only", "--exclude-cache", Fixture("source_install.tar.gz")});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.stdout_text, HasSubstr("0 files written (0 B), 2 unchanged"));
  // Only the agent's media directory may be written.
  r = CliOnSocket(
      {"restore", "--media-only", "--media-dir", "/etc", Fixture("source_install.tar.gz")});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_THAT(r.stderr_text, HasSubstr("is not the agent's media directory"));
  r = CliOnSocket({"restore", "--media-only", "--media-dir", media + "/../../../x",
                   Fixture("source_install.tar.gz")});
  EXPECT_EQ(r.exit_code, 7);
}

// The hosting seed's own archive: `tar -cvf my-instance.tar .env.production
// database.sql.xz system/public/`: the media tree sits under a prefix no
// fixed rule knows, and is found by the shape of its Paperclip paths.
TEST_F(RestoreCliTest, MediaTreesAreFoundByTheirShapeWhereverTheArchivePutsThem) {
  const std::string seed = dir_ + "/seed";
  auto write = [&](const std::string& rel, const std::string& content) {
    std::filesystem::create_directories(std::filesystem::path(seed + "/" + rel).parent_path());
    std::ofstream(seed + "/" + rel) << content;
  };
  write(".env.production", "LOCAL_DOMAIN=seed.example\n");
  write("system/public/media_attachments/files/000/000/001/original/a.png", "a-png");
  write("system/public/accounts/avatars/000/000/001/original/me.png", "me-png");
  write("system/public/cache/media_attachments/files/000/000/002/original/r.png", "r-png");
  // Not media: a folder named like one, without Paperclip's shape.
  write("notes/accounts/list.txt", "alice");
  auto tar = [&](const std::string& name, const std::vector<std::string>& members) {
    CommandSpec spec;
    spec.argv = {"tar", "-cf", dir_ + "/" + name, "-C", seed};
    spec.argv.insert(spec.argv.end(), members.begin(), members.end());
    auto r = runner_->Run(spec, nullptr);
    ASSERT_OK(r);
    ASSERT_EQ(r->exit_code, 0) << r->stderr_text;
  };
  tar("my-instance.tar", {".env.production", "notes", "system/public/"});
  const std::string media = dir_ + "/live/public/system";
  StartAgent({"--allowed-root", dir_, "--media-dir", media});

  CommandResult r = CliOnSocket({"inspect", dir_ + "/my-instance.tar"});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("media          system/public: 3 files"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("the only tree of Mastodon's media folders (accounts/, cache/, "
                        "media_attachments/) under system/public/, recognised by the shape"));
  EXPECT_THAT(r.stdout_text, HasSubstr("notes/accounts/list.txt"));  // unknown
  r = CliOnSocket({"restore", "--media-only", dir_ + "/my-instance.tar"});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("media          3 files written"));
  EXPECT_EQ(ReadFileOrEmpty(media + "/media_attachments/files/000/000/001/original/a.png"),
            "a-png");
  EXPECT_EQ(ReadFileOrEmpty(media + "/cache/media_attachments/files/000/000/002/original/r.png"),
            "r-png");

  // Two trees: neither is guessed.
  write("old/public/system/accounts/avatars/000/000/001/original/old.png", "old-png");
  tar("two-trees.tar", {".env.production", "system/public/", "old/"});
  r = CliOnSocket({"inspect", dir_ + "/two-trees.tar"});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text,
              HasSubstr("NOT TAKEN: the backup holds several media trees: system/public (3 "
                        "files), old/public/system (1 files): name one with --media-tree"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("  tree         old/public/system: 1 files, 7 B (accounts)"));
  r = CliOnSocket({"restore", "--media-only", dir_ + "/two-trees.tar"});
  EXPECT_EQ(r.exit_code, 4) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text + r.stderr_text, HasSubstr("name one with --media-tree"));
  EXPECT_FALSE(std::filesystem::exists(media + "/accounts/avatars/000/000/001/original/old.png"));
  r = CliOnSocket(
      {"restore", "--media-only", "--media-tree", "old/public/system", dir_ + "/two-trees.tar"});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("media          1 files written"));
  EXPECT_EQ(ReadFileOrEmpty(media + "/accounts/avatars/000/000/001/original/old.png"), "old-png");
  r = CliOnSocket(
      {"restore", "--media-only", "--media-tree", "elsewhere", dir_ + "/two-trees.tar"});
  EXPECT_EQ(r.exit_code, 4) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text + r.stderr_text, HasSubstr("no media tree at 'elsewhere'"));

  // No media at all: a media restore fails instead of writing nothing.
  tar("no-media.tar", {".env.production", "notes"});
  r = CliOnSocket({"restore", "--media-only", dir_ + "/no-media.tar"});
  EXPECT_EQ(r.exit_code, 4) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text + r.stderr_text,
              HasSubstr("holds no tree of Mastodon's media folders"));
}

// A bucket as the media source, through the agent and the CLI: only an
// endpoint the agent allows is reached, the secret comes from a file the
// agent reads, a wrong one fails with exit 4 and is never shown.
TEST_F(RestoreCliTest, MediaFromABucket) {
  auto s3 = TestS3::Start(dir_ + "/s3");
  ASSERT_OK(s3);
  ASSERT_OK((*s3)->CreateBucket("media"));
  ASSERT_OK(
      (*s3)->Put("media", "instance/media_attachments/files/000/000/001/original/a.png", "a-png"));
  ASSERT_OK((*s3)->Put("media", "instance/accounts/avatars/000/000/001/original/me.png", "me-png"));
  std::ofstream(dir_ + "/s3-secret") << TestS3::kSecret << "\n";
  std::ofstream(dir_ + "/wrong-secret") << "not-the-secret-value\n";
  const std::string media = dir_ + "/live/public/system";
  StartAgent(
      {"--allowed-root", dir_, "--media-dir", media, "--allowed-s3-endpoint", (*s3)->endpoint()});
  auto with = [&](std::vector<std::string> args, const std::string& secret_file,
                  const std::string& endpoint) {
    for (const std::string& flag :
         {std::string("--s3-endpoint"), endpoint, std::string("--s3-path-style"),
          std::string("--s3-access-key-id"), std::string(TestS3::kAccessKeyId),
          std::string("--s3-secret-file"), secret_file}) {
      args.push_back(flag);
    }
    return CliOnSocket(args);
  };
  const std::string secret = dir_ + "/s3-secret";
  CommandResult r = with({"inspect", "s3://media/instance"}, secret, (*s3)->endpoint());
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("2 files"));
  EXPECT_THAT(r.stdout_text, HasSubstr("accounts/, media_attachments/"));

  r = with({"restore", "--media-only", "s3://media/instance"}, secret, (*s3)->endpoint());
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("media          2 files written"));
  EXPECT_EQ(ReadFileOrEmpty(media + "/media_attachments/files/000/000/001/original/a.png"),
            "a-png");
  EXPECT_EQ(ReadFileOrEmpty(media + "/accounts/avatars/000/000/001/original/me.png"), "me-png");
  r = with({"restore", "--media-only", "s3://media/instance"}, secret, (*s3)->endpoint());
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("media          0 files written"));

  r = with({"restore", "--media-only", "s3://media/instance"}, dir_ + "/wrong-secret",
           (*s3)->endpoint());
  EXPECT_EQ(r.exit_code, 4) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text + r.stderr_text, HasSubstr("SignatureDoesNotMatch"));
  EXPECT_THAT(r.stdout_text + r.stderr_text, Not(HasSubstr("not-the-secret-value")));
  // An endpoint the agent was not configured with is never reached.
  r = with({"inspect", "s3://media/instance"}, secret, "http://127.0.0.1:9");
  EXPECT_EQ(r.exit_code, 7) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text + r.stderr_text,
              HasSubstr("is not one of the agent's allowed S3 endpoints"));
  // The secret is in no record the agent keeps.
  CommandSpec grep;
  grep.argv = {"grep", "-r", "-l", "-a", TestS3::kSecret, dir_ + "/state"};
  auto found = runner_->Run(grep, nullptr);
  ASSERT_OK(found);
  EXPECT_EQ(found->stdout_text, "");
}

// The hosting seed's case: a backup without its attachments, and "access to
// a s3 bucket to transfer from": one restore takes the database from the
// backup and the media from the bucket, under a bandwidth cap.
TEST_F(RestoreCliTest, TheDatabaseFromTheBackupTheMediaFromABucket) {
  auto s3 = TestS3::Start(dir_ + "/s3");
  ASSERT_OK(s3);
  ASSERT_OK((*s3)->CreateBucket("media"));
  ASSERT_OK((*s3)->Put("media", "old/media_attachments/files/000/000/001/original/a.png", "a-png"));
  ASSERT_OK((*s3)->Put("media", "old/accounts/avatars/000/000/001/original/me.png", "me-png"));
  std::ofstream(dir_ + "/s3-secret") << TestS3::kSecret << "\n";
  const std::string media = dir_ + "/live/public/system";
  StartAgent({"--allowed-root", MR_FIXTURE_DIR, "--allowed-root", dir_, "--target-conninfo",
              pg_->ConnInfo(), "--media-dir", media, "--allowed-s3-endpoint", (*s3)->endpoint()});
  CommandResult r =
      CliOnSocket({"--timeout", "120s", "restore", "--target-db", "mastodon_production",
                   "--media-from", "s3://media/old", "--bandwidth-limit", "10M", "--s3-endpoint",
                   (*s3)->endpoint(), "--s3-path-style", "--s3-access-key-id", TestS3::kAccessKeyId,
                   "--s3-secret-file", dir_ + "/s3-secret", Fixture("plain.sql.xz")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("media          2 files written"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM statuses", "mastodon_production"), "1000");
  EXPECT_EQ(ReadFileOrEmpty(media + "/media_attachments/files/000/000/001/original/a.png"),
            "a-png");
  EXPECT_EQ(ReadFileOrEmpty(media + "/accounts/avatars/000/000/001/original/me.png"), "me-png");
  // The operation records where the media came from, not the secret.
  r = CliOnSocket({"--json", "ops", "show", OperationId(CliOnSocket({"ops", "list"}).stdout_text)});
  EXPECT_THAT(r.stdout_text, HasSubstr("\"media_source\""));
  EXPECT_THAT(r.stdout_text, HasSubstr("\"bandwidth_limit\": \"10485760\""));
  EXPECT_THAT(r.stdout_text, Not(HasSubstr(TestS3::kSecret)));

  // A bucket without media, or a rate that is not one: refused up front.
  r = CliOnSocket({"restore", "--target-db", "mastodon_production", "--media-from",
                   "s3://media/none", "--s3-endpoint", (*s3)->endpoint(), "--s3-path-style",
                   "--s3-access-key-id", TestS3::kAccessKeyId, "--s3-secret-file",
                   dir_ + "/s3-secret", Fixture("plain.sql.xz")});
  EXPECT_EQ(r.exit_code, 4) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text + r.stderr_text, HasSubstr("holds no tree of Mastodon's media"));
  r = CliOnSocket({"restore", "--bandwidth-limit", "fast", Fixture("plain.sql.xz")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.stderr_text, HasSubstr("--bandwidth-limit takes bytes per second"));
}

TEST_F(DetectCliTest, EmbeddedRuntimeRestoresWithoutAnyServerSetUp) {
  StartAgent({"--runtime", "embedded", "--allowed-root", MR_FIXTURE_DIR});
  CommandResult r = CliOnSocket({"--timeout", "120s", "restore", "--db-only", "--target-db",
                                 "mastodon_production", Fixture("plain.sql.zst")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("verification   passed"));
  const std::string socket = dir_ + "/state.postgres/sockets/.s.PGSQL.5432";
  struct stat st;
  ASSERT_EQ(::stat(socket.c_str(), &st), 0);
  // SIGTERM stops the agent's PostgreSQL too.
  agent_->Signal(SIGTERM);
  ASSERT_TRUE(agent_->Wait(absl::Seconds(60)).has_value());
  agent_.reset();
  EXPECT_NE(::stat(socket.c_str(), &st), 0);
  // A restarted agent finds its data again; after a SIGKILL it adopts the
  // server still running.
  StartAgent({"--runtime", "embedded", "--allowed-root", MR_FIXTURE_DIR});
  r = CliOnSocket(
      {"verify", "--database", "mastodon_production", "--expected", Fixture("plain.sql")});
  EXPECT_EQ(r.exit_code, 0) << r.stdout_text;
  agent_->Signal(SIGKILL);
  agent_->Wait(absl::Seconds(10));
  agent_.reset();
  StartAgent({"--runtime", "embedded", "--allowed-root", MR_FIXTURE_DIR});
  r = CliOnSocket({"verify", "--database", "mastodon_production"});
  EXPECT_EQ(r.exit_code, 0) << r.stdout_text;
  agent_->Signal(SIGTERM);
  ASSERT_TRUE(agent_->Wait(absl::Seconds(60)).has_value());
  agent_.reset();
  EXPECT_NE(::stat(socket.c_str(), &st), 0);
}

TEST_F(RestoreCliTest, JsonEventsAndABrokenDump) {
  StartRestoreAgent();
  CommandResult r = CliOnSocket(
      {"--json", "restore", "--db-only", "--jobs", "1", "--target-db", "m", Fixture("plain.sql")});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  std::vector<std::string> lines = absl::StrSplit(r.stdout_text, '\n', absl::SkipEmpty());
  ASSERT_GT(lines.size(), 5u);
  v1::WatchOperationResponse last;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines.back(), &last).ok());
  EXPECT_EQ(last.operation().state(), v1::OPERATION_STATE_SUCCEEDED);
  EXPECT_EQ(last.operation().restore_report().rows(), 1503);
  EXPECT_EQ(last.operation().restore_report().load_connections(), 1);
  ASSERT_EQ(last.operation().restore_report().dump().tables_size(), 3);
  EXPECT_EQ(last.operation().restore_report().dump().tables(2).table(), "public.statuses");
  EXPECT_EQ(last.operation().restore_report().dump().tables(2).rows(), 1000);
  EXPECT_EQ(last.event().sequence(), static_cast<int64_t>(lines.size()));

  r = CliOnSocket({"restore", "--db-only", "--target-db", "m", Fixture("bad/cut_mid_copy.sql")});
  EXPECT_EQ(r.exit_code, 4) << r.stdout_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("operation failed"));
  EXPECT_THAT(r.stdout_text, HasSubstr("(truncated?) (step load)"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM statuses", "m"), "1000");
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE '%__restore_%'"),
            "0");

  // The whole restore's plan, without running anything: no runtime here, so
  // the app steps are skipped, saying why.
  r = CliOnSocket({"restore", "--plan", "--target-db", "planned", Fixture("plain.sql")});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("plan of the restore into database:planned (nothing was "
                                       "started):\n   1 open            open the source"));
  EXPECT_THAT(r.stdout_text, HasSubstr("   9 swap            swap the staging database in as "
                                       "'planned'; keep the previous one\n"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("   - media           skipped: no media directory on this host\n"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("   - migrate         skipped: no Mastodon runtime on this host\n"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname = 'planned'"), "0");
}

TEST_F(RestoreCliTest, AgentKilledMidLoadLeavesNothingAfterRestart) {
  ASSERT_OK(pg_->Exec("CREATE DATABASE big"));
  ASSERT_OK(pg_->Exec(
      "CREATE TABLE t (id bigint, s text); INSERT INTO t SELECT i, repeat(md5(i::text), 8) "
      "FROM generate_series(1, 1500000) i",
      "big"));
  CommandSpec dump;
  dump.argv = {pg_->bin_dir() + "/pg_dump", "-d", pg_->ConnInfo("big"), "-f", dir_ + "/big.sql"};
  dump.env = {"PATH=/usr/bin:/bin"};
  auto dumped = runner_->Run(dump, nullptr);
  ASSERT_OK(dumped);
  ASSERT_EQ(dumped->exit_code, 0) << dumped->stderr_text;

  // The target comes with the request (no password in it): the agent keeps
  // where the staging database lives and drops it after a crash.
  StartAgent({"--allowed-root", dir_});
  CommandResult r = CliOnSocket({"restore", "--db-only", "--detach", "--target-db", "big_copy",
                                 "--target-conninfo", pg_->ConnInfo(), dir_ + "/big.sql"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const std::string id = OperationId(r.stdout_text);
  ASSERT_FALSE(id.empty()) << r.stdout_text;
  // Wait until the load runs into the staging database, then kill the agent.
  bool loading = false;
  for (int i = 0; i < 400 && !loading; ++i) {
    r = CliOnSocket({"ops", "show", id});
    loading = r.stdout_text.find("  load         running") != std::string::npos &&
              *pg_->QueryValue(
                  "SELECT count(*) FROM pg_database WHERE datname LIKE "
                  "'big_copy__restore_%'") == "1";
    if (!loading) absl::SleepFor(absl::Milliseconds(25));
  }
  ASSERT_TRUE(loading) << r.stdout_text;
  agent_->Signal(SIGKILL);
  agent_->Wait(absl::Seconds(10));
  agent_.reset();
  EXPECT_EQ(
      *pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE 'big_copy__restore_%'"),
      "1");

  StartAgent({"--allowed-root", dir_});
  r = CliOnSocket({"ops", "show", id});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.stdout_text, HasSubstr("state          interrupted"));
  // The record holds no secret: the request's conninfo had no password (the
  // agent gave it an empty one, so that no stored password is used for it).
  EXPECT_THAT(ReadFileOrEmpty(dir_ + "/state/operations/" + id + ".pb"),
              ::testing::Not(::testing::ContainsRegex("password='[^']")));
  // The leftover is dropped in the background after the agent started.
  for (int i = 0; i < 400; ++i) {
    if (ReadFileOrEmpty(log_file()).find("dropped a staging database") != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(25));
  }
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE 'big_copy%'"),
            "0");
  EXPECT_THAT(ReadFileOrEmpty(log_file()), HasSubstr("dropped a staging database"));
}

TEST_F(RestoreCliTest, OneRestorePerDatabaseAndIdempotentRequestIds) {
  ASSERT_OK(pg_->Exec("CREATE DATABASE big"));
  ASSERT_OK(pg_->Exec(
      "CREATE TABLE t (id bigint, s text); INSERT INTO t SELECT i, repeat(md5(i::text), 8) "
      "FROM generate_series(1, 1000000) i",
      "big"));
  CommandSpec dump;
  dump.argv = {pg_->bin_dir() + "/pg_dump", "-d", pg_->ConnInfo("big"), "-f", dir_ + "/big.sql"};
  dump.env = {"PATH=/usr/bin:/bin"};
  ASSERT_OK(runner_->Run(dump, nullptr));
  StartRestoreAgent();
  CommandResult first = CliOnSocket({"restore", "--db-only", "--detach", "--request-id", "req-1",
                                     "--target-db", "copy", dir_ + "/big.sql"});
  ASSERT_EQ(first.exit_code, 0) << first.stderr_text;
  CommandResult again = CliOnSocket({"restore", "--db-only", "--detach", "--request-id", "req-1",
                                     "--target-db", "copy", dir_ + "/big.sql"});
  EXPECT_EQ(again.stdout_text, first.stdout_text);  // the same operation
  CommandResult other = CliOnSocket({"restore", "--db-only", "--detach", "--request-id", "req-2",
                                     "--target-db", "copy", dir_ + "/big.sql"});
  EXPECT_EQ(other.exit_code, 5) << other.stdout_text;
  EXPECT_THAT(other.stderr_text, HasSubstr("is running on database:copy"));
  // Cancel the first one; it ends CANCELLED and leaves nothing.
  const std::string id = OperationId(first.stdout_text);
  EXPECT_EQ(CliOnSocket({"ops", "cancel", id}).exit_code, 0);
  CommandResult watched = CliOnSocket({"ops", "watch", id});
  EXPECT_EQ(watched.exit_code, 6) << watched.stdout_text;
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE 'copy%'"), "0");
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
