// The real Env's atomic write: root writes files into directories the app
// user can write (the env file), so nothing planted there may be followed.
#include "agent/common/env.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/app/env_install.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::MakeTempDir;
using ::mastodon_restore::testing::RemoveTree;
using ::mastodon_restore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void Spit(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

class WriteFileAtomicTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = MakeTempDir("mr-env-test-");
    ASSERT_OK(dir);
    root_ = *dir;
    dir_ = root_ + "/app";          // the directory the app user can write
    other_ = root_ + "/elsewhere";  // where a planted symlink points
    ASSERT_EQ(::mkdir(dir_.c_str(), 0777), 0);
    ASSERT_EQ(::mkdir(other_.c_str(), 0755), 0);
    victim_ = other_ + "/victim";
    Spit(victim_, "precious");
  }
  void TearDown() override { RemoveTree(root_); }

  std::vector<std::string> Entries(const std::string& dir) {
    auto names = ListDirectory(dir);
    EXPECT_OK(names);
    return names.ok() ? *names : std::vector<std::string>{};
  }

  std::unique_ptr<Env> env_ = NewPosixEnv();
  std::string root_, dir_, other_, victim_;
};

TEST_F(WriteFileAtomicTest, ReplacesAnExistingFileWithTheExactMode) {
  const std::string path = dir_ + "/.env.production";
  Spit(path, "old");
  struct stat before;
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  const mode_t umask_was = ::umask(022);
  absl::Status s = env_->WriteFileAtomic(path, "new contents", 0664);
  ::umask(umask_was);
  ASSERT_OK(s);
  EXPECT_EQ(Slurp(path), "new contents");
  struct stat after;
  ASSERT_EQ(::lstat(path.c_str(), &after), 0);
  EXPECT_TRUE(S_ISREG(after.st_mode));
  EXPECT_EQ(after.st_mode & 07777, 0664u);  // not 0644: the umask is not applied
  EXPECT_NE(after.st_ino, before.st_ino);   // a new file renamed in, not rewritten in place
  EXPECT_THAT(Entries(dir_), ElementsAre(".env.production"));
}

TEST_F(WriteFileAtomicTest, CreatesANewFile) {
  const std::string path = dir_ + "/record.pb";
  ASSERT_OK(env_->WriteFileAtomic(path, "data", 0600));
  EXPECT_EQ(Slurp(path), "data");
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_THAT(Entries(dir_), ElementsAre("record.pb"));
}

TEST_F(WriteFileAtomicTest, ASymlinkPlantedAtThePredictableTempNameIsNotFollowed) {
  const std::string path = dir_ + "/.env.production";
  // The name the agent used to write through: "<path>.tmp.<pid>".
  const std::string planted = absl::StrCat(path, ".tmp.", ::getpid());
  ASSERT_EQ(::symlink(victim_.c_str(), planted.c_str()), 0);
  ASSERT_OK(env_->WriteFileAtomic(path, "SECRET_KEY_BASE=x\n", 0640));
  EXPECT_EQ(Slurp(victim_), "precious");
  EXPECT_EQ(Slurp(path), "SECRET_KEY_BASE=x\n");
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  ASSERT_EQ(::lstat(planted.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

TEST_F(WriteFileAtomicTest, ASymlinkAtTheTargetIsRefusedAndNothingIsWritten) {
  const std::string path = dir_ + "/.env.production";
  ASSERT_EQ(::symlink(victim_.c_str(), path.c_str()), 0);
  EXPECT_THAT(env_->WriteFileAtomic(path, "overwritten", 0640),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("symlink")));
  EXPECT_EQ(Slurp(victim_), "precious");
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_THAT(Entries(dir_), ElementsAre(".env.production"));
  EXPECT_THAT(Entries(other_), ElementsAre("victim"));
}

TEST_F(WriteFileAtomicTest, ASymlinkedDirectoryIsRefused) {
  const std::string link = dir_ + "/live";
  ASSERT_EQ(::symlink(other_.c_str(), link.c_str()), 0);
  EXPECT_THAT(env_->WriteFileAtomic(link + "/.env.production", "x", 0640),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("symlink")));
  EXPECT_THAT(Entries(other_), ElementsAre("victim"));
}

TEST_F(WriteFileAtomicTest, NoTempFileRemainsWhenTheRenameFails) {
  // A directory in the way: the temp file is written, the rename fails.
  const std::string path = dir_ + "/taken";
  ASSERT_EQ(::mkdir(path.c_str(), 0755), 0);
  EXPECT_FALSE(env_->WriteFileAtomic(path, "data", 0600).ok());
  EXPECT_THAT(Entries(dir_), ElementsAre("taken"));
}

TEST_F(WriteFileAtomicTest, NoTempFileRemainsWhenTheWriteFails) {
  const std::string path = dir_ + "/big";
  Spit(path, "old");
  // In a child, so that the file size limit stays there.
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit limit = {4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    absl::Status s = NewPosixEnv()->WriteFileAtomic(path, std::string(1 << 20, 'x'), 0600);
    ::_exit(s.ok() ? 1 : 0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the write beyond the size limit succeeded";
  EXPECT_EQ(Slurp(path), "old");
  EXPECT_THAT(Entries(dir_), ElementsAre("big"));
}

TEST_F(WriteFileAtomicTest, NoTempFileRemainsWhenTheDirectoryIsNotWritable) {
  ASSERT_EQ(::chmod(dir_.c_str(), 0755), 0);
  const std::string path = dir_ + "/file";
  // As an unprivileged user (root may write anywhere).
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(2);
    absl::Status s = NewPosixEnv()->WriteFileAtomic(path, "data", 0600);
    ::_exit(s.code() == absl::StatusCode::kPermissionDenied ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_THAT(Entries(dir_), ::testing::IsEmpty());
}

// A runtime with only an env file.
class EnvFileRuntime : public Runtime {
 public:
  explicit EnvFileRuntime(std::string path) : path_(std::move(path)) {}
  mastodon::restore::v1::RuntimeKind kind() const override {
    return mastodon::restore::v1::RUNTIME_KIND_SYSTEMD;
  }
  std::string name() const override { return "systemd"; }
  absl::StatusOr<AppDatabase> Database() const override { return AppDatabase(); }
  absl::StatusOr<MediaLocation> Media() const override { return absl::NotFoundError("no media"); }
  std::vector<std::string> Services() const override { return {}; }
  std::vector<CommandSpec> ServiceCommands(bool) const override { return {}; }
  absl::StatusOr<CommandSpec> Tootctl(const std::vector<std::string>&) const override {
    return CommandSpec();
  }
  absl::StatusOr<CommandSpec> DbMigrate(bool) const override { return CommandSpec(); }
  std::string EnvFilePath() const override { return path_; }
  std::string MastodonVersion() const override { return ""; }
  std::string CodeDir() const override { return ""; }

 private:
  std::string path_;
};

TEST_F(WriteFileAtomicTest, EnvInstallWritesNothingThroughPlantedSymlinks) {
  const std::string path = dir_ + "/.env.production";
  Spit(path, "LOCAL_DOMAIN=old.example\nDB_HOST=/run/postgresql\n");
  // The app user plants symlinks at every name root used to write through.
  const std::string kept = path + ".before-restore-op-1";
  for (const std::string& name :
       {absl::StrCat(path, ".tmp.", ::getpid()), absl::StrCat(kept, ".tmp.", ::getpid())}) {
    ASSERT_EQ(::symlink(victim_.c_str(), name.c_str()), 0) << name;
  }
  EnvFileRuntime runtime(path);
  auto installed = InstallEnvFile(runtime, "LOCAL_DOMAIN=new.example\n", "op-1", env_.get());
  ASSERT_OK(installed);
  EXPECT_EQ(installed->kept_as, kept);
  EXPECT_EQ(Slurp(victim_), "precious");
  EXPECT_THAT(Slurp(path), HasSubstr("LOCAL_DOMAIN=new.example"));
  EXPECT_EQ(Slurp(kept), "LOCAL_DOMAIN=old.example\nDB_HOST=/run/postgresql\n");
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ASSERT_EQ(::lstat(kept.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(WriteFileAtomicTest, EnvInstallRefusesAnEnvFileThatIsASymlink) {
  const std::string path = dir_ + "/.env.production";
  ASSERT_EQ(::symlink(victim_.c_str(), path.c_str()), 0);
  EnvFileRuntime runtime(path);
  EXPECT_THAT(InstallEnvFile(runtime, "LOCAL_DOMAIN=new.example\n", "op-1", env_.get()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("symlink")));
  EXPECT_EQ(Slurp(victim_), "precious");
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

}  // namespace
}  // namespace mastodon_restore
