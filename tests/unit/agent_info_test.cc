#include "agent/service/agent_info.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/common/build_info.h"
#include "tests/harness/fake_env.h"

namespace mastodon_restore {
namespace {

namespace v1 = mastodon::restore::v1;
using ::mastodon_restore::testing::FakeEnv;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(AgentInfoTest, FormatsPostgresVersions) {
  EXPECT_EQ(FormatPostgresVersion(150018), "15.18");
  EXPECT_EQ(FormatPostgresVersion(180004), "18.4");
  EXPECT_EQ(FormatPostgresVersion(90624), "9.6.24");
}

TEST(AgentInfoTest, ReportsBuildHostRuntimeAndPostgres) {
  FakeEnv env;
  env.free_bytes["/var/lib/mr"] = 123456789;
  env.dirs.insert("/usr/lib/postgresql");
  env.executables.insert("/usr/lib/postgresql/15/bin/pg_restore");
  env.executables.insert("/usr/lib/postgresql/17/bin/pg_restore");
  env.dirs.insert("/usr/lib/postgresql/16/bin");  // client without pg_restore
  AgentConfig config;
  config.state_dir = "/var/lib/mr";
  config.allowed_roots = {"/var/backups/mastodon", "/srv/b"};
  config.runtime = "snap";

  v1::GetAgentInfoResponse info = BuildAgentInfo(config, &env, absl::FromUnixSeconds(1795000000));

  EXPECT_EQ(info.build().version(), MR_VERSION);
  EXPECT_THAT(info.build().grpc_version(), HasSubstr("1.51"));
  EXPECT_THAT(info.build().protobuf_version(), HasSubstr("3.21"));
  EXPECT_THAT(info.build().libarchive_version(), HasSubstr("libarchive 3.6"));
  // The compression libraries it reads dumps with (Debian builds all of them).
  EXPECT_THAT(info.build().libarchive_version(),
              AllOf(HasSubstr(" zlib/"), HasSubstr(" liblz4/"), HasSubstr(" libzstd/")));
  EXPECT_EQ(info.host().hostname(), "fakehost");
  EXPECT_EQ(info.host().state_dir(), "/var/lib/mr");
  EXPECT_EQ(info.host().state_dir_free_bytes(), 123456789);
  EXPECT_EQ(info.host().cpus(), 2);
  EXPECT_EQ(info.host().memory_total_bytes(), 24LL << 30);
  EXPECT_THAT(info.host().allowed_roots(), ElementsAre("/var/backups/mastodon", "/srv/b"));
  EXPECT_EQ(info.runtime().kind(), v1::RUNTIME_KIND_NONE);
  EXPECT_EQ(info.runtime().requested(), "snap");
  EXPECT_THAT(info.postgres().client_version(), HasSubstr("15."));
  EXPECT_THAT(info.postgres().pg_restore_versions(), ElementsAre(15, 17));
  EXPECT_THAT(
      info.capabilities(),
      ElementsAre("agent_info", "health", "reflection", "detect", "inspect", "restore_database",
                  "restore_media", "rollback", "verify", "operations", "db_migrate",
                  "media_refresh", "cleanup", "migrate", "app_hold", "media_export"));
  EXPECT_EQ(info.start_time().seconds(), 1795000000);
}

TEST(AgentInfoTest, MissingStateDirLeavesFreeBytesZero) {
  FakeEnv env;
  AgentConfig config;
  v1::GetAgentInfoResponse info = BuildAgentInfo(config, &env, absl::Now());
  EXPECT_EQ(info.host().state_dir_free_bytes(), 0);
  EXPECT_TRUE(info.postgres().pg_restore_versions().empty());
}

}  // namespace
}  // namespace mastodon_restore
