// The C++ fake CommandRunner itself: what the runtime tests rely on.
#include "tests/harness/fake_command_runner.h"

#include <gmock/gmock.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::FakeCommandRunner;
using ::mastodon_restore::testing::FakeReply;
using ::mastodon_restore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::Pair;
using ::testing::SizeIs;

CommandSpec Spec(std::vector<std::string> argv) {
  CommandSpec spec;
  spec.argv = std::move(argv);
  spec.env = {"PATH=/bin", "LANG=C.UTF-8"};
  return spec;
}

TEST(FakeCommandRunnerTest, AnUnexpectedCommandFailsTheTestAndIsRecorded) {
  FakeCommandRunner runner;
  runner.On({"snap", "get"}, FakeReply());
  absl::StatusOr<CommandResult> result;
  EXPECT_NONFATAL_FAILURE(result = runner.Run(Spec({"snap", "get", "x"}), nullptr),
                          "unexpected command 'snap get x'");
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kInternal));
  EXPECT_THAT(runner.argvs(), ElementsAre(ElementsAre("snap", "get", "x")));
}

TEST(FakeCommandRunnerTest, TheNewestMatchingScriptWins) {
  FakeCommandRunner runner;
  runner.OnPrefix({"a"}, FakeReply::Output({"old prefix"}));
  runner.On({"a", "b"}, FakeReply::Output({"exact"}));
  EXPECT_EQ(runner.Run(Spec({"a", "b"}), nullptr)->stdout_text, "exact\n");
  EXPECT_EQ(runner.Run(Spec({"a", "c"}), nullptr)->stdout_text, "old prefix\n");
  // A newer prefix overrides the exact script (the program is gone).
  runner.OnPrefix({"a"}, FakeReply::Missing());
  EXPECT_THAT(
      runner.Run(Spec({"a", "b"}), nullptr),
      StatusIs(absl::StatusCode::kNotFound, "unable to find program 'a': not in PATH (/bin)"));
  EXPECT_EQ(runner.commands()[0].Env("LANG"), "C.UTF-8");
  EXPECT_FALSE(runner.commands()[0].HasEnv("HOME"));
  EXPECT_THAT(runner.argvs(), SizeIs(3));
}

TEST(FakeCommandRunnerTest, OutputGoesToOnLineAndIsOneStreamUnderAPty) {
  FakeCommandRunner runner;
  FakeReply reply = FakeReply::Fails(2, "err1\nerr2\n");
  reply.stdout_lines = {"out"};
  runner.OnPrefix({"x"}, reply);
  std::vector<std::pair<std::string, bool>> lines;
  CommandSpec spec = Spec({"x"});
  spec.on_line = [&](absl::string_view line, bool from_stderr) {
    lines.emplace_back(std::string(line), from_stderr);
  };
  auto result = runner.Run(spec, nullptr);
  ASSERT_OK(result);
  EXPECT_EQ(result->exit_code, 2);
  EXPECT_EQ(result->stderr_text, "err1\nerr2\n");
  EXPECT_THAT(lines, ElementsAre(Pair("out", false), Pair("err1", true), Pair("err2", true)));
  lines.clear();
  spec.use_pty = true;
  result = runner.Run(spec, nullptr);
  EXPECT_EQ(result->stdout_text, "out\nerr1\nerr2\n");
  EXPECT_EQ(result->stderr_text, "");
  EXPECT_THAT(lines, ElementsAre(Pair("out", false), Pair("err1", false), Pair("err2", false)));
}

TEST(FakeCommandRunnerTest, StartReadingEndsWithTheExitAsTheRealRunnerSaysIt) {
  FakeCommandRunner runner;
  FakeReply reply = FakeReply::Fails(2, "gpg: decryption failed: Bad session key\n");
  reply.stdout_lines = {"partial"};
  runner.OnPrefix({"gpg"}, reply);
  auto stream = runner.StartReading(Spec({"gpg", "--decrypt", "backup.tar.gpg"}), "decrypt");
  ASSERT_OK(stream);
  std::string data;
  EXPECT_THAT(ReadUpTo(stream->get(), 1000, &data),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "unable to decrypt 'backup.tar.gpg': gpg exited with status 2: gpg: "
                       "decryption failed: Bad session key"));
  EXPECT_EQ(data, "partial\n");
}

}  // namespace
}  // namespace mastodon_restore
