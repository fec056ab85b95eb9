#include "agent/common/subprocess.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/common/byte_stream.h"
#include "agent/common/env.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class SubprocessTest : public ::testing::Test {
 protected:
  std::unique_ptr<CommandRunner> runner_ = NewPosixCommandRunner();
};

TEST_F(SubprocessTest, CapturesOutputExitCodeAndLines) {
  CommandSpec spec;
  spec.argv = {"printf", "one\ntwo\npartial"};
  std::vector<std::string> lines;
  spec.on_line = [&](absl::string_view line, bool from_stderr) {
    lines.push_back(std::string(from_stderr ? "E:" : "O:") + std::string(line));
  };
  auto result = runner_->Run(spec, nullptr);
  ASSERT_OK(result);
  EXPECT_TRUE(result->success());
  EXPECT_EQ(result->stdout_text, "one\ntwo\npartial");
  EXPECT_THAT(lines, ElementsAre("O:one", "O:two", "O:partial"));
}

TEST_F(SubprocessTest, EnvironmentIsExactlyTheGivenOne) {
  setenv("MR_LEAK_CHECK", "leaked", 1);
  CommandSpec spec;
  spec.argv = {"env"};
  spec.env = {"ONLY=this", "PATH=/usr/bin:/bin"};
  auto result = runner_->Run(spec, nullptr);
  ASSERT_OK(result);
  EXPECT_EQ(result->stdout_text, "ONLY=this\nPATH=/usr/bin:/bin\n");
}

TEST_F(SubprocessTest, FeedsStdinAndReportsExitStatus) {
  CommandSpec spec;
  spec.argv = {"sh", "-c", "read line; echo \"got $line\" >&2; exit 3"};
  spec.stdin_data = "secret-from-stdin\n";
  auto result = runner_->Run(spec, nullptr);
  ASSERT_OK(result);
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_EQ(result->stderr_text, "got secret-from-stdin\n");
  EXPECT_EQ(result->Describe(), "exited with status 3");
}

TEST_F(SubprocessTest, LargeStdinDoesNotDeadlock) {
  CommandSpec spec;
  spec.argv = {"wc", "-c"};
  spec.stdin_data = std::string(4 << 20, 'x');
  auto result = runner_->Run(spec, nullptr);
  ASSERT_OK(result);
  EXPECT_EQ(result->stdout_text, "4194304\n");
}

TEST_F(SubprocessTest, TimeoutKillsTheProcessGroup) {
  CommandSpec spec;
  spec.argv = {"sleep", "30"};
  spec.timeout = absl::Milliseconds(200);
  absl::Time start = absl::Now();
  auto result = runner_->Run(spec, nullptr);
  ASSERT_OK(result);
  EXPECT_TRUE(result->timed_out);
  EXPECT_EQ(result->term_signal, SIGTERM);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  EXPECT_THAT(result->Describe(), HasSubstr("(timeout)"));
}

TEST_F(SubprocessTest, CancellationEscalatesToSigkill) {
  CommandSpec spec;
  // Ignores SIGTERM: must be killed after the grace period.
  spec.argv = {"sh", "-c", "trap '' TERM; sleep 30 & wait; sleep 30"};
  spec.kill_grace = absl::Milliseconds(200);
  CancelToken cancel;
  std::thread canceller([&] {
    absl::SleepFor(absl::Milliseconds(200));
    cancel.Cancel();
  });
  auto result = runner_->Run(spec, &cancel);
  canceller.join();
  ASSERT_OK(result);
  EXPECT_TRUE(result->cancelled);
  EXPECT_EQ(result->term_signal, SIGKILL);
}

TEST_F(SubprocessTest, MissingProgramIsNotFound) {
  CommandSpec spec;
  spec.argv = {"no-such-program-mr"};
  EXPECT_THAT(runner_->Run(spec, nullptr),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no-such-program-mr")));
  spec.argv = {"/nonexistent/prog"};
  EXPECT_THAT(runner_->Run(spec, nullptr),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/prog")));
}

TEST_F(SubprocessTest, BadWorkingDirectoryIsReported) {
  CommandSpec spec;
  spec.argv = {"true"};
  spec.cwd = "/nonexistent-dir-mr";
  EXPECT_THAT(runner_->Run(spec, nullptr),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("change directory")));
}

TEST_F(SubprocessTest, DropsPrivilegesWhenRoot) {
  if (geteuid() != 0) {
    // As a normal user, asking for another uid must fail cleanly.
    CommandSpec spec;
    spec.argv = {"id", "-u"};
    spec.uid = 0;
    EXPECT_THAT(runner_->Run(spec, nullptr),
                StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("drop privileges")));
    return;
  }
  CommandSpec spec;
  spec.argv = {"id", "-u"};
  spec.uid = 65534;
  spec.gid = 65534;
  auto result = runner_->Run(spec, nullptr);
  ASSERT_OK(result);
  EXPECT_EQ(result->stdout_text, "65534\n");
}

TEST_F(SubprocessTest, StartedProcessCanBeSignalledAndWaited) {
  CommandSpec spec;
  spec.argv = {"sleep", "30"};
  auto process = runner_->Start(spec);
  ASSERT_OK(process);
  EXPECT_FALSE((*process)->Wait(absl::Milliseconds(50)).has_value());
  (*process)->Signal(SIGTERM);
  auto ended = (*process)->Wait(absl::Seconds(10));
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->term_signal, SIGTERM);
}

TEST_F(SubprocessTest, StartAppendsToTheOutputFileButNeverThroughASymlink) {
  char tmpl[] = "/tmp/mr-subprocess-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string victim = dir + "/victim";
  const std::string log = dir + "/postgres.log";
  std::ofstream(victim) << "precious\n";
  ASSERT_EQ(::symlink(victim.c_str(), log.c_str()), 0);
  CommandSpec spec;
  spec.argv = {"echo", "planted"};
  spec.output_file = log;
  EXPECT_THAT(runner_->Start(spec),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("symlink")));
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  EXPECT_EQ(read(victim), "precious\n");

  // A regular file is appended to.
  ASSERT_EQ(::unlink(log.c_str()), 0);
  std::ofstream(log) << "before\n";
  auto process = runner_->Start(spec);
  ASSERT_OK(process);
  auto ended = (*process)->Wait(absl::Seconds(10));
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(read(log), "before\nplanted\n");
  std::filesystem::remove_all(dir);
}

TEST_F(SubprocessTest, PseudoTerminalShowsATerminalAndSplitsProgressRedraws) {
  CommandSpec spec;
  // A program that prints progress only on a terminal and asks a question.
  spec.argv = {"sh", "-c",
               "test -t 0 && test -t 1 && test -t 2 || exit 9; "
               "printf '0/3 |   |\\r1/3 |=  |\\r3/3 |===|\\n'; "
               "printf 'continue? [y/N] '; read answer; echo \"answer=$answer\"; "
               "echo oops >&2; stty size; exit 3"};
  spec.use_pty = true;
  spec.stdin_data = "y\n";
  spec.timeout = absl::Seconds(20);
  std::vector<std::string> lines;
  spec.on_line = [&](absl::string_view line, bool from_stderr) {
    lines.push_back(std::string(from_stderr ? "E:" : "O:") + std::string(line));
  };
  auto result = runner_->Run(spec, nullptr);
  ASSERT_OK(result);
  EXPECT_EQ(result->exit_code, 3) << result->stdout_text;
  // Each redraw is a line; the typed answer is not echoed back; stderr
  // shares the terminal; the terminal is 200 columns wide.
  EXPECT_THAT(lines, ElementsAre("O:0/3 |   |", "O:1/3 |=  |", "O:3/3 |===|",
                                 "O:continue? [y/N] answer=y", "O:oops", "O:50 200"));
}

TEST_F(SubprocessTest, PseudoTerminalHonoursCancellation) {
  CommandSpec spec;
  spec.argv = {"sleep", "60"};
  spec.use_pty = true;
  spec.kill_grace = absl::Milliseconds(200);
  CancelToken cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel.Cancel();
  });
  auto result = runner_->Run(spec, &cancel);
  canceller.join();
  ASSERT_OK(result);
  EXPECT_TRUE(result->cancelled);
  EXPECT_EQ(result->term_signal, SIGTERM);
}

TEST(FindProgramTest, SearchesPath) {
  auto found = FindProgram("sh", "/nonexistent:/bin:/usr/bin");
  ASSERT_OK(found);
  EXPECT_THAT(*found, HasSubstr("/sh"));
  EXPECT_THAT(FindProgram("sh", "/nonexistent"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("not in PATH")));
}

}  // namespace
}  // namespace mastodon_restore

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::StatusIs;
using ::testing::HasSubstr;

// A path checked, then a component swapped for a symlink before the open:
// refused, never followed.
TEST(FileStreamTest, OpenResolvedRefusesASymlinkInAnyComponent) {
  char tmpl[] = "/tmp/mr-open-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  ASSERT_EQ(::mkdir((dir + "/real").c_str(), 0755), 0);
  { std::ofstream(dir + "/real/file") << "data"; }
  ASSERT_EQ(::symlink((dir + "/real").c_str(), (dir + "/link").c_str()), 0);
  ASSERT_EQ(::symlink((dir + "/real/file").c_str(), (dir + "/filelink").c_str()), 0);

  EXPECT_OK(FileStream::OpenResolved(dir + "/real/file"));
  EXPECT_THAT(FileStream::OpenResolved(dir + "/link/file"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("a symlink appeared")));
  EXPECT_THAT(FileStream::OpenResolved(dir + "/filelink"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("a symlink appeared")));
  EXPECT_OK(ListResolvedDirectory(dir + "/real"));
  EXPECT_THAT(ListResolvedDirectory(dir + "/link"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("a symlink appeared")));
  // The ordinary open follows (for paths nobody checked).
  EXPECT_OK(FileStream::Open(dir + "/link/file"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mastodon_restore
