#include "cli/cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "cli/exit_codes.h"
#include "tests/harness/fake_env.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::FakeEnv;
using ::testing::HasSubstr;

// Runs the CLI in-process and captures its output.
struct CliRun {
  int code = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(std::FILE* f) {
  std::rewind(f);
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) s.append(buf, n);
  std::fclose(f);
  return s;
}

CliRun RunCliCaptured(const std::vector<std::string>& args) {
  FakeEnv env;
  CliStreams streams{std::tmpfile(), std::tmpfile()};
  CliRun run;
  run.code = RunCli(args, &env, streams);
  run.out = ReadAll(streams.out);
  run.err = ReadAll(streams.err);
  return run;
}

TEST(CliTest, HelpListsEveryCommandAndExitCodes) {
  CliRun run = RunCliCaptured({"--help"});
  EXPECT_EQ(run.code, kExitOk);
  EXPECT_THAT(run.out, HasSubstr("health"));
  EXPECT_THAT(run.out, HasSubstr("info"));
  EXPECT_THAT(run.out, HasSubstr("--agent ADDR"));
  EXPECT_THAT(run.out, HasSubstr("3 agent unreachable"));
}

TEST(CliTest, CommandHelpShowsItsFlags) {
  CliRun run = RunCliCaptured({"health", "--help"});
  EXPECT_EQ(run.code, kExitOk);
  EXPECT_THAT(run.out, HasSubstr("usage: mastodon-restore [global flags] health"));
  EXPECT_THAT(run.out, HasSubstr("--service NAME"));
}

TEST(CliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(RunCliCaptured({}).code, kExitUsage);
  CliRun run = RunCliCaptured({"frobnicate"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("unknown command 'frobnicate'"));
  run = RunCliCaptured({"info", "extra"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("info takes no arguments"));
  run = RunCliCaptured({"--timeout", "soon", "info"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("invalid --timeout 'soon'"));
  run = RunCliCaptured({"info", "--bogus"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("unknown flag '--bogus'"));
}

TEST(CliTest, UnreachableAgentExitsThree) {
  CliRun run = RunCliCaptured({"--agent", "/nonexistent/mr-agent.sock", "--timeout", "2s", "info"});
  EXPECT_EQ(run.code, kExitUnreachable);
  EXPECT_THAT(run.err, HasSubstr("is the agent running at '/nonexistent/mr-agent.sock'?"));
}

TEST(CliTest, PlaintextOnlyToLoopback) {
  CliRun run = RunCliCaptured({"--agent", "192.0.2.1:7443", "--plaintext", "info"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("refusing plaintext"));
  run = RunCliCaptured({"--agent", "/run/x.sock", "--tls-ca", "/ca.pem", "info"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("not unix sockets"));
}

TEST(CliTest, VersionPrintsTheVersion) {
  CliRun run = RunCliCaptured({"--version"});
  EXPECT_EQ(run.code, kExitOk);
  EXPECT_THAT(run.out, HasSubstr("mastodon-restore 0."));
}

TEST(ExitCodesTest, MapsEveryCodeFamily) {
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::OK), kExitOk);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::UNAVAILABLE), kExitUnreachable);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::DEADLINE_EXCEEDED), kExitUnreachable);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::INVALID_ARGUMENT), kExitInvalidInput);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::NOT_FOUND), kExitInvalidInput);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::FAILED_PRECONDITION), kExitPrecondition);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::ABORTED), kExitPrecondition);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::CANCELLED), kExitCancelled);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::PERMISSION_DENIED), kExitDenied);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::UNAUTHENTICATED), kExitDenied);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::UNIMPLEMENTED), kExitUnsupported);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::INTERNAL), kExitFailed);
}

}  // namespace
}  // namespace mastodon_restore
