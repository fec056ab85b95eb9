// The directory-descriptor seam (common/dir.h), the free-space guard
// (common/space_guard.h) and descriptors passed to programs: root never
// follows a symlink someone else planted, never replaces what appeared at a
// new name, and names its temp files unpredictably. Both ways of opening
// are tested: openat2 and the O_NOFOLLOW component walk kept for kernels
// without it.
#include "agent/common/dir.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/common/space_guard.h"
#include "agent/common/subprocess.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

// `lhs = *expr`, failing the test when `expr` is not OK.
#define DIR_TEST_CONCAT_(a, b) a##b
#define DIR_TEST_CONCAT(a, b) DIR_TEST_CONCAT_(a, b)
#define ASSERT_OK_AND_ASSIGN(lhs, expr) \
  ASSERT_OK_AND_ASSIGN_IMPL_(DIR_TEST_CONCAT(or_, __LINE__), lhs, expr)
#define ASSERT_OK_AND_ASSIGN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  ASSERT_OK(tmp);                                  \
  lhs = std::move(*tmp)

namespace mastodon_restore {
namespace {

namespace fs = std::filesystem;
using ::mastodon_restore::testing::MakeTempDir;
using ::mastodon_restore::testing::RemoveTree;
using ::mastodon_restore::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Parameter: true takes the O_NOFOLLOW component walk instead of openat2.
class DirTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    Dir::ForceComponentWalkForTesting(GetParam());
    auto dir = MakeTempDir("mr-dir-");
    ASSERT_OK(dir);
    base_ = *dir;
    outside_ = base_ + "/outside";
    fs::create_directories(outside_);
    std::ofstream(outside_ + "/secret") << "untouched";
  }
  void TearDown() override {
    Dir::ForceComponentWalkForTesting(false);
    RemoveTree(base_);
  }
  // The outside directory holds only its one file, unchanged.
  void ExpectOutsideUntouched() {
    std::set<std::string> names;
    for (const auto& e : fs::directory_iterator(outside_)) names.insert(e.path().filename());
    EXPECT_EQ(names, std::set<std::string>{"secret"});
    EXPECT_EQ(Slurp(outside_ + "/secret"), "untouched");
  }

  std::string base_;
  std::string outside_;
};

TEST_P(DirTest, OpenPathRefusesASymlinkAtEachComponent) {
  const std::vector<std::string> parts = {"a", "b", "c"};
  for (size_t swapped = 0; swapped < parts.size(); ++swapped) {
    const std::string root = absl::StrCat(base_, "/t", swapped);
    fs::create_directories(root + "/a/b/c");
    ASSERT_OK(Dir::OpenPath(root + "/a/b/c"));
    // The component becomes a symlink to a real directory of the same shape.
    std::string prefix = root;
    for (size_t i = 0; i <= swapped; ++i) prefix += "/" + parts[i];
    const std::string real = prefix + ".real";
    fs::rename(prefix, real);
    fs::create_directory_symlink(real, prefix);
    EXPECT_THAT(Dir::OpenPath(root + "/a/b/c"),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("symlink")))
        << "symlink at component " << swapped;
    ASSERT_OK_AND_ASSIGN(Dir top, Dir::OpenPath(root));
    EXPECT_THAT(top.OpenDir("a/b/c"), StatusIs(absl::StatusCode::kFailedPrecondition))
        << "symlink at component " << swapped;
  }
}

TEST_P(DirTest, OpenDirStaysBeneath) {
  fs::create_directories(base_ + "/in/sub");
  ASSERT_OK_AND_ASSIGN(Dir in, Dir::OpenPath(base_ + "/in"));
  EXPECT_THAT(in.OpenDir("../outside"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(in.OpenDir("sub/../../outside"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(in.OpenDir(outside_), StatusIs(absl::StatusCode::kInvalidArgument));
  fs::create_directory_symlink(outside_, base_ + "/in/link");
  EXPECT_THAT(in.OpenDir("link"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(in.OpenFile("link/secret"), StatusIs(absl::StatusCode::kFailedPrecondition));
  fs::create_symlink(outside_ + "/secret", base_ + "/in/file-link");
  EXPECT_THAT(in.OpenFile("file-link"), StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK(in.OpenDir("sub"));
  ASSERT_OK(in.OpenDir(""));
}

TEST_P(DirTest, MakeDirSetsTheExactModeAndRefusesWhatIsInTheWay) {
  ASSERT_OK_AND_ASSIGN(Dir base, Dir::OpenPath(base_));
  const mode_t old_umask = ::umask(077);
  auto made = base.MakeDir("new", 0755, 1234, 5678, false);
  ::umask(old_umask);
  ASSERT_OK(made);
  struct stat st;
  ASSERT_EQ(::stat((base_ + "/new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_THAT(base.MakeDir("new", 0755, std::nullopt, std::nullopt, false),
              StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_OK(base.MakeDir("new", 0700, std::nullopt, std::nullopt, true));
  ASSERT_EQ(::stat((base_ + "/new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);  // an existing directory keeps its mode

  fs::create_directory_symlink(outside_, base_ + "/planted");
  EXPECT_THAT(base.MakeDir("planted", 0755, std::nullopt, std::nullopt, true),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("symlink")));
  EXPECT_THAT(base.MakeDirs("planted/x/y", 0755, std::nullopt, std::nullopt),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_OK_AND_ASSIGN(Dir deep, base.MakeDirs("m/n/o", 0755, std::nullopt, std::nullopt));
  EXPECT_EQ(deep.path(), base_ + "/m/n/o");
  EXPECT_TRUE(fs::is_directory(base_ + "/m/n/o"));
  EXPECT_THAT(base.MakeDir("a/b", 0755, std::nullopt, std::nullopt, true),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(base.MakeDir("..", 0755, std::nullopt, std::nullopt, true),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ExpectOutsideUntouched();
}

TEST_P(DirTest, CreateFileNeverFollowsAPlantedSymlink) {
  ASSERT_OK_AND_ASSIGN(Dir base, Dir::OpenPath(base_));
  fs::create_symlink(outside_ + "/secret", base_ + "/target");
  fs::create_symlink(outside_ + "/new-file", base_ + "/dangling");
  EXPECT_THAT(base.CreateFile("target", 0644), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(base.CreateFile("dangling", 0644), StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_OK_AND_ASSIGN(UniqueFd fd, base.CreateFile("fresh", 0640));
  struct stat st;
  ASSERT_EQ(::fstat(fd.get(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ExpectOutsideUntouched();
}

TEST_P(DirTest, TempNamesAreUnpredictableAndExclusive) {
  ASSERT_OK_AND_ASSIGN(Dir base, Dir::OpenPath(base_));
  std::set<std::string> names;
  for (int i = 0; i < 16; ++i) {
    ASSERT_OK_AND_ASSIGN(TempFile tmp, base.CreateTemp("media", 0600));
    EXPECT_THAT(tmp.name, MatchesRegex("\\.media\\.[0-9a-f]{16}\\.tmp"));
    names.insert(tmp.name);
    struct stat st;
    ASSERT_EQ(::fstat(tmp.fd.get(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
  }
  EXPECT_EQ(names.size(), 16u);  // never the same name twice
}

TEST_P(DirTest, RenameNoReplaceLeavesWhatAppearedAtTheName) {
  ASSERT_OK_AND_ASSIGN(Dir base, Dir::OpenPath(base_));
  ASSERT_OK_AND_ASSIGN(Dir to, base.MakeDir("to", 0755, std::nullopt, std::nullopt, false));
  std::ofstream(base_ + "/staged") << "new";
  std::ofstream(base_ + "/to/name") << "appeared";
  EXPECT_THAT(base.Rename("staged", to, "name", /*no_replace=*/true),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_EQ(Slurp(base_ + "/to/name"), "appeared");
  EXPECT_TRUE(fs::exists(base_ + "/staged"));
  // A symlink at the name is replaced itself, never written through.
  fs::remove(base_ + "/to/name");
  fs::create_symlink(outside_ + "/secret", base_ + "/to/name");
  ASSERT_OK(base.Rename("staged", to, "name", /*no_replace=*/false));
  EXPECT_FALSE(fs::is_symlink(base_ + "/to/name"));
  EXPECT_EQ(Slurp(base_ + "/to/name"), "new");
  ExpectOutsideUntouched();
}

TEST_P(DirTest, RemoveTreeNeverFollowsSymlinks) {
  fs::create_directories(base_ + "/tree/a/b");
  std::ofstream(base_ + "/tree/a/b/f") << "x";
  fs::create_directory_symlink(outside_, base_ + "/tree/a/dirlink");
  fs::create_symlink(outside_ + "/secret", base_ + "/tree/filelink");
  ASSERT_OK_AND_ASSIGN(Dir base, Dir::OpenPath(base_));
  ASSERT_OK(base.RemoveTree("tree"));
  EXPECT_FALSE(fs::exists(base_ + "/tree"));
  ASSERT_OK(base.RemoveTree("tree"));  // absent: fine
  // A symlink at the name itself is removed, not what it points to.
  fs::create_directory_symlink(outside_, base_ + "/tree");
  ASSERT_OK(base.RemoveTree("tree"));
  EXPECT_FALSE(fs::is_symlink(base_ + "/tree"));
  ExpectOutsideUntouched();
}

TEST_P(DirTest, OwnerAndModeChangesNeverReachASymlinksTarget) {
  ASSERT_OK_AND_ASSIGN(Dir base, Dir::OpenPath(base_));
  fs::create_symlink(outside_ + "/secret", base_ + "/link");
  struct stat before;
  ASSERT_EQ(::stat((outside_ + "/secret").c_str(), &before), 0);
  ASSERT_OK(base.SetOwner("link", 4321, 4321));
  EXPECT_THAT(base.SetMode("link", 0777), StatusIs(absl::StatusCode::kFailedPrecondition));
  struct stat after;
  ASSERT_EQ(::stat((outside_ + "/secret").c_str(), &after), 0);
  EXPECT_EQ(after.st_uid, before.st_uid);
  EXPECT_EQ(after.st_mode, before.st_mode);
  struct stat link;
  ASSERT_EQ(::lstat((base_ + "/link").c_str(), &link), 0);
  EXPECT_EQ(link.st_uid, 4321u);  // the link's own owner
  std::ofstream(base_ + "/plain") << "x";
  ASSERT_OK(base.SetMode("plain", 0604));
  ASSERT_EQ(::stat((base_ + "/plain").c_str(), &after), 0);
  EXPECT_EQ(after.st_mode & 07777, 0604u);
}

INSTANTIATE_TEST_SUITE_P(OpenModes, DirTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("ComponentWalk")
                                             : std::string("Openat2");
                         });

TEST(SpaceGuardTest, LooksEveryStretchAndStopsAboveTheFloor) {
  int64_t available = 100 << 20;
  int probes = 0;
  SpaceFloor floor;
  floor.min_free_bytes = 10 << 20;
  floor.min_free_percent = 50;
  floor.check_every_bytes = 1 << 20;
  SpaceGuard guard(
      [&]() -> absl::StatusOr<FsSpace> {
        ++probes;
        return FsSpace{available, int64_t{1} << 30};
      },
      floor, "/media");
  ASSERT_OK(guard.Reserve(100));  // the first write looks
  EXPECT_EQ(probes, 1);
  ASSERT_OK(guard.Reserve(512 << 10));
  EXPECT_EQ(probes, 1);
  ASSERT_OK(guard.Reserve(512 << 10));  // a whole stretch since: looks again
  EXPECT_EQ(probes, 2);
  // Floor: min(10 MiB, 50% of 1 GiB); a stretch more must stay free.
  available = (10 << 20) + (1 << 20) - 1;
  EXPECT_THAT(guard.Reserve(1 << 20),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("nearly full")));
  EXPECT_EQ(FloorBytes(floor, int64_t{1} << 30), 10 << 20);
  EXPECT_EQ(FloorBytes(floor, 4 << 20), 2 << 20);  // small filesystems: the percentage
}

TEST(SpaceGuardTest, ProbesARealFilesystemThroughTheDirectory) {
  ASSERT_OK_AND_ASSIGN(Dir root, Dir::OpenPath("/"));
  ASSERT_OK_AND_ASSIGN(FsSpace space, root.Space());
  EXPECT_GT(space.total_bytes, 0);
  SpaceFloor impossible;
  impossible.min_free_bytes = space.total_bytes;
  impossible.min_free_percent = 100;
  SpaceGuard guard = SpaceGuard::ForDir(&root, impossible);
  EXPECT_THAT(guard.Reserve(1), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(PassFdsTest, AProgramReadsTheDescriptorNotThePath) {
  auto dir = MakeTempDir("mr-passfd-");
  ASSERT_OK(dir);
  const std::string path = *dir + "/source";
  std::ofstream(path) << "the checked file";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ::lseek(fd, 4, SEEK_SET);  // the program opens the file afresh, from its start
  // The path now names something else: the program still gets the file
  // that was opened and checked.
  ASSERT_EQ(::rename(path.c_str(), (path + ".moved").c_str()), 0);
  std::ofstream(path) << "swapped in later";
  auto runner = NewPosixCommandRunner();
  CommandSpec spec;
  spec.argv = {"cat", PassedFdPath(0)};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.pass_fds = {fd};
  auto result = runner->Run(spec, nullptr);
  ::close(fd);
  RemoveTree(*dir);
  ASSERT_OK(result);
  EXPECT_EQ(result->exit_code, 0) << result->stderr_text;
  EXPECT_EQ(result->stdout_text, "the checked file");
  EXPECT_EQ(PassedFdPath(1), "/proc/self/fd/4");
}

}  // namespace
}  // namespace mastodon_restore
