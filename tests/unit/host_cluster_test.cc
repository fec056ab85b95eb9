// The swap of this host's data directory and a physical migration's copy,
// on plain directories (no server runs on them): the renames, this host's
// configuration kept, the copy's remains removed, a failure between the
// renames undone, and an interrupted swap settled from what the
// directories say.
#include "agent/database/host_cluster.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "agent/common/failpoint.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void Write(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

class HostClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::MakeTempDir("mr-cluster");
    ASSERT_OK(dir);
    parent_ = *dir;
    data_ = parent_ + "/main";
    copy_ = ClusterCopyDir(data_, "op-1");
    previous_ = PreviousClusterName(data_, "op-1");
    // This host's cluster keeps its configuration in its data directory,
    // but for pg_ident.conf.
    Write(data_ + "/PG_VERSION", "15\n");
    Write(data_ + "/base/mine", "this host's rows");
    Write(data_ + "/postgresql.conf", "port = 5432 # this host\n");
    Write(data_ + "/pg_hba.conf", "local all all peer # this host\n");
    Write(data_ + "/postgresql.auto.conf", "work_mem = '8MB'\n");
    ASSERT_EQ(::chmod((data_ + "/pg_hba.conf").c_str(), 0640), 0);
    ASSERT_OK(CreateClusterCopyDir(copy_, ::getuid(), ::getgid(), "local all all trust\n"));
    // The old cluster, as pg_basebackup -R wrote it.
    Write(copy_ + "/data/PG_VERSION", "15\n");
    Write(copy_ + "/data/base/theirs", "the old host's rows");
    Write(copy_ + "/data/postgresql.conf", "shared_buffers = 64GB # the old host\n");
    Write(copy_ + "/data/pg_ident.conf", "# the old host\n");
    Write(copy_ + "/data/postgresql.auto.conf", "primary_conninfo = 'password=secret'\n");
    Write(copy_ + "/postgres.log", "log\n");
  }
  void TearDown() override {
    ClearFailpoints();
    testing::RemoveTree(parent_);
  }

  std::string parent_, data_, copy_, previous_;
};

TEST_F(HostClusterTest, NamesLieBesideTheDataDirectory) {
  EXPECT_EQ(copy_, parent_ + "/.main.mastodon-restore-op-1");
  EXPECT_EQ(previous_, "main.previous-op-1");
  struct stat st;
  ASSERT_EQ(::stat(copy_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(Read(copy_ + "/standby-hba.conf"), "local all all trust\n");
  EXPECT_THAT(CreateClusterCopyDir(copy_, ::getuid(), ::getgid(), ""),
              testing::StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST_F(HostClusterTest, TheSwapPutsTheCopyInPlaceAndKeepsThisHostsConfiguration) {
  ASSERT_OK(SwapInClusterCopy(data_, copy_, previous_));
  EXPECT_EQ(Read(data_ + "/base/theirs"), "the old host's rows");
  EXPECT_FALSE(fs::exists(data_ + "/base/mine"));
  EXPECT_EQ(Read(parent_ + "/" + previous_ + "/base/mine"), "this host's rows");
  // This host's configuration, not the old host's (nor the primary's
  // password); a file this host did not keep there is gone.
  EXPECT_EQ(Read(data_ + "/postgresql.conf"), "port = 5432 # this host\n");
  EXPECT_EQ(Read(data_ + "/pg_hba.conf"), "local all all peer # this host\n");
  EXPECT_EQ(Read(data_ + "/postgresql.auto.conf"), "work_mem = '8MB'\n");
  EXPECT_FALSE(fs::exists(data_ + "/pg_ident.conf"));
  struct stat st;
  ASSERT_EQ(::stat((data_ + "/pg_hba.conf").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_FALSE(fs::exists(copy_));
}

TEST_F(HostClusterTest, AFailureBetweenTheRenamesPutsThisHostsClusterBack) {
  ASSERT_OK(SetFailpoint("cluster_swap.between_renames", FailpointAction::kError));
  EXPECT_THAT(
      SwapInClusterCopy(data_, copy_, previous_),
      testing::StatusIs(absl::StatusCode::kUnavailable, HasSubstr("cluster_swap.between_renames")));
  EXPECT_EQ(Read(data_ + "/base/mine"), "this host's rows");
  EXPECT_FALSE(fs::exists(parent_ + "/" + previous_));
  EXPECT_EQ(Read(copy_ + "/data/base/theirs"), "the old host's rows");
}

TEST_F(HostClusterTest, AnInterruptedSwapIsSettledFromTheDirectories) {
  // Nothing renamed yet: the copy goes.
  auto live = SettleClusterSwap(data_, copy_, previous_);
  ASSERT_OK(live);
  EXPECT_FALSE(*live);
  EXPECT_EQ(Read(data_ + "/base/mine"), "this host's rows");
  EXPECT_FALSE(fs::exists(copy_));
}

TEST_F(HostClusterTest, AnInterruptedSwapAfterTheFirstRenameIsUndone) {
  fs::rename(data_, parent_ + "/" + previous_);
  auto live = SettleClusterSwap(data_, copy_, previous_);
  ASSERT_OK(live);
  EXPECT_FALSE(*live);
  EXPECT_EQ(Read(data_ + "/base/mine"), "this host's rows");
  EXPECT_FALSE(fs::exists(parent_ + "/" + previous_));
  EXPECT_FALSE(fs::exists(copy_));
}

TEST_F(HostClusterTest, AnInterruptedSwapAfterBothRenamesIsCompleted) {
  fs::rename(data_, parent_ + "/" + previous_);
  fs::rename(copy_ + "/data", data_);
  auto live = SettleClusterSwap(data_, copy_, previous_);
  ASSERT_OK(live);
  EXPECT_TRUE(*live);
  EXPECT_EQ(Read(data_ + "/base/theirs"), "the old host's rows");
  EXPECT_EQ(Read(data_ + "/postgresql.auto.conf"), "work_mem = '8MB'\n");
  EXPECT_EQ(Read(parent_ + "/" + previous_ + "/base/mine"), "this host's rows");
  EXPECT_FALSE(fs::exists(copy_));
}

TEST_F(HostClusterTest, RemovingTheCopyLeavesThisHostsClusterAlone) {
  ASSERT_OK(RemoveClusterCopy(copy_));
  EXPECT_FALSE(fs::exists(copy_));
  EXPECT_EQ(Read(data_ + "/base/mine"), "this host's rows");
  ASSERT_OK(RemoveClusterCopy(copy_));  // gone already: OK
}

TEST(DebianClusterTest, ParsesClusterNames) {
  auto c = ParseDebianCluster("15/main");
  ASSERT_OK(c);
  EXPECT_EQ(c->version, "15");
  EXPECT_EQ(c->name, "main");
  EXPECT_EQ(c->ToString(), "15/main");
  for (const char* bad : {"", "main", "15/", "x/main", "15/-m", "15/a b", "15/../x"}) {
    EXPECT_THAT(ParseDebianCluster(bad), testing::StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
  EXPECT_THAT(ParseDebianCluster("mastodon").status().message(), HasSubstr("Debian cluster"));
}

}  // namespace
}  // namespace mastodon_restore
