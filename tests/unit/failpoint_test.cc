// The failpoint registry: off by default, configured from a spec, each
// action, the n-th hit, and the table matching the sites in the sources.
#include "agent/common/failpoint.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::StatusIs;
using ::testing::HasSubstr;

class FailpointTest : public ::testing::Test {
 protected:
  void TearDown() override { ClearFailpoints(); }
};

TEST_F(FailpointTest, OffByDefault) {
  for (const std::string& name : AllFailpoints()) EXPECT_OK(MR_FAILPOINT(name));
}

TEST_F(FailpointTest, ErrorFiresAtTheNthHitOnly) {
  ASSERT_OK(ConfigureFailpoints("swap.after_commit=error@2", ""));
  EXPECT_OK(MR_FAILPOINT("swap.after_commit"));
  EXPECT_THAT(MR_FAILPOINT("swap.after_commit"),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("failpoint swap.after_commit")));
  EXPECT_OK(MR_FAILPOINT("swap.after_commit"));
  EXPECT_OK(MR_FAILPOINT("swap.before_commit"));  // not enabled
  EXPECT_EQ(FailpointHits("swap.after_commit"), 3);
}

TEST_F(FailpointTest, BadSpecsAreRefusedAndEnableNothing) {
  EXPECT_THAT(ConfigureFailpoints("swap.after_commit=error;nope=kill", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no failpoint 'nope'")));
  EXPECT_OK(MR_FAILPOINT("swap.after_commit"));
  EXPECT_THAT(ConfigureFailpoints("swap.after_commit=explode", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("explode")));
  EXPECT_THAT(ConfigureFailpoints("swap.after_commit", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("name=action")));
  EXPECT_THAT(ConfigureFailpoints("swap.after_commit=error@0", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("hit number")));
  EXPECT_THAT(ConfigureFailpoints("swap.after_commit=pause", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("MR_FAILPOINT_DIR")));
}

TEST_F(FailpointTest, PauseSignalsAndWaitsForTheContinueFile) {
  auto dir = testing::MakeTempDir("mr-fp-");
  ASSERT_OK(dir);
  ASSERT_OK(ConfigureFailpoints("media.before_move=pause", *dir));
  std::atomic<bool> passed{false};
  std::thread site([&] {
    EXPECT_OK(MR_FAILPOINT("media.before_move"));
    passed = true;
  });
  const std::string reached = *dir + "/media.before_move.reached";
  while (!std::filesystem::exists(reached)) std::this_thread::yield();
  EXPECT_FALSE(passed.load());  // waits: nothing has told it to continue
  std::ofstream(*dir + "/media.before_move.continue") << "";
  site.join();
  EXPECT_TRUE(passed.load());
  testing::RemoveTree(*dir);
}

TEST_F(FailpointTest, KillEndsTheProcessWithSigkill) {
  EXPECT_EXIT(
      {
        SetFailpoint("swap.before_begin", FailpointAction::kKill).IgnoreError();
        MR_FAILPOINT("swap.before_begin").IgnoreError();
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGKILL), "");
}

// Every MR_FAILPOINT("...") of the sources is in the table, and every name
// of the table has its site (restore.step.<step>: a step of the restore
// job's table), so --list-failpoints lists exactly what exists.
TEST_F(FailpointTest, TheTableListsExactlyTheSitesOfTheSources) {
  std::set<std::string> sites;
  std::string restore_job;
  // (target_ops.cc's swap calls them through a local `failpoint(...)`.)
  const std::regex site("\\b(?:MR_FAILPOINT|failpoint)\\(\"([^\"]+)\"\\)");
  for (const auto& e :
       std::filesystem::recursive_directory_iterator(std::string(MR_SOURCE_DIR) + "/agent")) {
    const std::string path = e.path().string();
    if (!absl::EndsWith(path, ".cc")) continue;
    std::ifstream in(path);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (absl::EndsWith(path, "jobs/restore_job.cc")) restore_job = text;
    for (std::sregex_iterator it(text.begin(), text.end(), site), end; it != end; ++it) {
      sites.insert((*it)[1].str());
    }
  }
  const std::vector<std::string>& all = AllFailpoints();
  const std::set<std::string> table(all.begin(), all.end());
  EXPECT_EQ(table.size(), all.size()) << "a name is listed twice";
  for (const std::string& s : sites) EXPECT_TRUE(table.count(s) > 0) << s << " is not in the table";
  ASSERT_THAT(restore_job, HasSubstr("MR_FAILPOINT(absl::StrCat(\"restore.step.\", name))"));
  for (const std::string& name : all) {
    if (absl::StartsWith(name, "restore.step.")) {
      EXPECT_THAT(restore_job, HasSubstr("{\"" + name.substr(13) + "\"")) << name;
    } else {
      EXPECT_TRUE(sites.count(name) > 0) << name << " has no site";
    }
  }
}

}  // namespace
}  // namespace mastodon_restore
