// End-to-end: detect and inspect through the real agent and CLI on the dump
// fixtures: human and JSON output, passwords, refused paths, compatibility
// with a target server.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <string>

#include "agent/common/subprocess.h"
#include "mastodon/restore/v1/agent_service.pb.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace e2e {
namespace {

namespace v1 = mastodon::restore::v1;
using ::testing::HasSubstr;

TEST_F(DetectCliTest, DetectJsonOfAClusterDump) {
  StartWithFixtures();
  CommandResult r = CliOnSocket({"--json", "detect", "--deep", Fixture("cluster.sql.gz")});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  v1::DetectDumpResponse response;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.stdout_text, &response).ok());
  EXPECT_EQ(response.dump().kind(), v1::DUMP_KIND_CLUSTER);
  EXPECT_EQ(response.dump().mastodon_database(), "mastodon_production");
  EXPECT_EQ(response.dump().databases_size(), 5);
  EXPECT_THAT(r.stdout_text, HasSubstr("\"outer_compression\": [\n   \"COMPRESSION_GZIP\""));
}

TEST_F(DetectCliTest, InspectHumanOutputOfASourceInstallBackup) {
  StartWithFixtures();
  CommandResult r = CliOnSocket({"inspect", Fixture("source_install.tar.gz")});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("layout         source install"));
  EXPECT_THAT(r.stdout_text, HasSubstr("containers     gzip > tar"));
  EXPECT_THAT(r.stdout_text, HasSubstr("SECRET_KEY_BASE: present ("));
  EXPECT_THAT(r.stdout_text, HasSubstr("media          public/system: 3 files"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("format         plain, one database (pg_dump), compressed with xz"));
  EXPECT_EQ(r.stdout_text.find("canary"), std::string::npos);
  EXPECT_EQ(ReadFileOrEmpty(log_file()).find("canary"), std::string::npos);
}

TEST_F(DetectCliTest, PasswordsByFileAndStdinNeverOnArgv) {
  StartWithFixtures();
  CommandResult r =
      CliOnSocket({"inspect", "--password-file", Fixture("password.txt"), Fixture("secret.zip")});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  r = CliWithStdin({"inspect", "--password-stdin", Fixture("aes.zip")}, "zip-pass\n");
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  r = CliWithStdin({"inspect", "--password-stdin", Fixture("aes.zip")}, "wrong\n");
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.stderr_text, HasSubstr("wrong password"));
  r = CliOnSocket({"inspect", Fixture("aes.zip")});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_THAT(r.stderr_text, HasSubstr("password"));
  EXPECT_EQ(ReadFileOrEmpty(log_file()).find("zip-pass"), std::string::npos);
}

TEST_F(DetectCliTest, RefusesPathsOutsideTheAllowedRootsAndBadInput) {
  StartWithFixtures();
  CommandResult r = CliOnSocket({"detect", "/etc/hostname"});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_THAT(r.stderr_text, HasSubstr("outside the allowed roots"));
  r = CliOnSocket({"detect", Fixture("bad/random.bin")});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.stderr_text, HasSubstr("random.bin"));
  r = CliOnSocket({"detect", Fixture("no-such.sql")});
  EXPECT_EQ(r.exit_code, 4);
  r = CliOnSocket({"detect", "--deep", Fixture("bad/truncated.sql.xz")});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.stderr_text, HasSubstr("truncated.sql.xz"));
}

TEST_F(DetectCliTest, CompatibilityAgainstATargetServer) {
  auto pg = testing::TestPostgres::Start();
  ASSERT_OK(pg);
  StartWithFixtures();
  CommandResult r = CliOnSocket(
      {"--json", "detect", "--target-conninfo", (*pg)->ConnInfo(), Fixture("custom.dump")});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("read by the agent's archive reader"));
  r = CliOnSocket(
      {"detect", "--target-conninfo", "host=/nonexistent port=1", Fixture("custom.dump")});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.stderr_text, HasSubstr("unable to connect to the target server"));
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
