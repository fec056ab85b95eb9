// End-to-end: the agent on a host where the mastodon-server snap runs
// (recording fakes for snap and its wrappers, a real PostgreSQL 18 as the
// snap's, the version the snap ships): info, restore, db-migrate, cleanup and
// media-refresh through the snap; a runtime that is not installed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/time/time.h"
#include "agent/app/runtime.h"
#include "agent/common/subprocess.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/fake_host.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"

namespace mastodon_restore {
namespace e2e {
namespace {

using ::testing::HasSubstr;

// The agent on a host where the mastodon-server snap runs (recording fakes
// for snap and its wrappers, a real PostgreSQL 18 as the snap's: the snap
// ships 18).
class SnapRuntimeCliTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    RequireDumpFixtures();
    StartPostgres(18);
    CreateSnapHost();
  }
  void StartSnapAgent() {
    HostLayout layout = host_->Layout();
    StartAgent({"--runtime", "snap", "--snap-bin-dir", layout.snap_bin_dir, "--snap-app-dir",
                layout.snap_app_dir, "--snap-postgres", pg_->ConnInfo(""), "--host-path",
                layout.host_path, "--allowed-root", MR_FIXTURE_DIR});
  }
};

TEST_F(SnapRuntimeCliTest, RestoreMigrateCleanupAndRefreshThroughTheSnap) {
  StartSnapAgent();
  CommandResult r = CliOnSocket({"info"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("snap"));
  EXPECT_THAT(r.stdout_text, HasSubstr("mastodon-server.tootctl is installed"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("media dir      " + host_->dir() + "/media, owner snap_daemon:root"));

  // The database goes to the snap's own: "mastodon", owned by mastodon.
  r = CliOnSocket({"--timeout", "120s", "restore", "--db-only", Fixture("snap")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("restored       mastodon\n"));
  EXPECT_EQ(*pg_->QueryValue("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = "
                             "'mastodon'"),
            "mastodon");
  // The media go to the snap's media.dir, owned by snap_daemon:root.
  r = CliOnSocket({"--timeout", "60s", "restore", "--media-only", Fixture("snap")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  struct stat st;
  ASSERT_EQ(::stat((host_->dir() + "/media/accounts/avatars/1/a.png").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 584788u);
  EXPECT_EQ(st.st_gid, 0u);

  // Two migrations of the installed snap are not in the backup yet.
  testing::FakeHost::AddMigrations(host_->snap_app_dir(),
                                   {"20200206000000", "20200209000000", "20260701000000"},
                                   {"20260801000000"});
  r = CliOnSocket({"--timeout", "60s", "db-migrate"});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("20200209000000 -> 20260801000000"));
  EXPECT_THAT(r.stdout_text, HasSubstr("2 ran, 0 pending"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM schema_migrations", "mastodon"), "502");
  EXPECT_THAT(host_->Calls("mastodon-server.db-migrate")[0].stdin_lines,
              ::testing::ElementsAre("y"));
  // info reads the code's version and the live schema.
  std::filesystem::create_directories(host_->snap_app_dir() + "/lib/mastodon");
  std::ofstream(host_->snap_app_dir() + "/lib/mastodon/version.rb")
      << "module Mastodon\n  module Version\n    module_function\n\n    def major\n      4\n"
         "    end\n\n    def minor\n      6\n    end\n\n    def patch\n      1\n    end\n";
  r = CliOnSocket({"info"});
  EXPECT_THAT(r.stdout_text, HasSubstr("mastodon       4.6.1, schema 20260801000000"));

  host_->Set("TOOTCTL_ITEM_ERRORS", "1");
  r = CliOnSocket({"--timeout", "60s", "cleanup", "--days", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text,
              HasSubstr("preview_cards remove --days 3 --concurrency " + AgentConcurrency() +
                        ": Removed media from 5 "
                        "preview cards (approx. 320 KB) (1 item errors)"));
  EXPECT_THAT(r.stdout_text, HasSubstr("media remove --days 3 --concurrency " + AgentConcurrency() +
                                       ": Removed 5 media"));

  r = CliOnSocket(
      {"--timeout", "60s", "--json", "media-refresh", "--days", "1", "--force", "--accounts"});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("\"summary_count\":\"5\""));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("accounts refresh --all --concurrency " + AgentConcurrency()));

  // Refused before anything runs: no source, as tootctl itself would.
  r = CliOnSocket({"media-refresh"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.stderr_text, HasSubstr("needs a source"));
  // A tootctl failure fails the operation with its message.
  host_->Set("TOOTCTL_FAIL", "media remove");
  r = CliOnSocket({"--timeout", "60s", "cleanup"});
  EXPECT_EQ(r.exit_code, 1) << r.stdout_text;
  EXPECT_THAT(r.stdout_text + r.stderr_text, HasSubstr("Redis::CannotConnectError"));
  // Every call the snap saw, and nothing else.
  for (const testing::FakeCall& c : host_->Calls()) {
    EXPECT_THAT(c.tool, ::testing::AnyOf("snap", "mastodon-server.tootctl",
                                         "mastodon-server.db-migrate", "tootctl"));
  }
}

TEST_F(SnapRuntimeCliTest, AnExplicitRuntimeThatIsNotInstalledStopsTheAgentAtStart) {
  CommandSpec spec;
  spec.argv = BaseAgentArgs();
  for (const char* a : {"--runtime", "systemd", "--app-dir"}) spec.argv.push_back(a);
  spec.argv.push_back(host_->dir() + "/nothing");
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.timeout = absl::Seconds(30);
  auto result = runner_->Run(spec, nullptr);
  ASSERT_OK(result);
  EXPECT_EQ(result->exit_code, 1);
  EXPECT_THAT(result->stderr_text, HasSubstr("unable to use the systemd runtime"));
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
