#include "tests/e2e/e2e_fixture.h"

#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/app/app_tasks.h"
#include "agent/common/env.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"

namespace mastodon_restore {
namespace e2e {

using ::mastodon_restore::testing::MakeTempDir;
using ::mastodon_restore::testing::RemoveTree;

std::string AgentConcurrency() { return absl::StrCat(DefaultConcurrency(NewPosixEnv()->Cpus())); }

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string Fixture(const std::string& name) { return std::string(MR_FIXTURE_DIR) + "/" + name; }

std::string OperationId(const std::string& text) {
  std::smatch m;
  return std::regex_search(text, m, std::regex("(op-[0-9]{8}-[0-9]{6}-[0-9a-f]{4})")) ? m[1].str()
                                                                                      : "";
}

// The sanitizer build (make test-sanitize): reports the agent or the CLI
// wrote since `since` (their sanitizer logs go to files, see
// tests/sanitize/sanitizer_defaults.cc); "" when none or not that build.
std::string SanitizerReportsSince(absl::Time since) {
  std::string out;
#ifdef MR_SANITIZER_LOG_DIR
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(MR_SANITIZER_LOG_DIR, ec)) {
    struct stat st;
    if (::stat(entry.path().c_str(), &st) != 0 ||
        absl::FromTimeT(st.st_mtime) < since - absl::Seconds(1))
      continue;
    if (entry.path().filename().string().find("mastodon-restore") == std::string::npos) continue;
    absl::StrAppend(&out, "== ", entry.path().string(), "\n", ReadFileOrEmpty(entry.path()));
  }
#else
  (void)since;
#endif
  return out;
}

void E2eTest::SetUp() {
  started_ = absl::Now();
  auto dir = MakeTempDir("mr-e2e-");
  ASSERT_OK(dir);
  dir_ = *dir;
  socket_ = dir_ + "/run/agent.sock";
}

void E2eTest::TearDown() {
  if (agent_ != nullptr) {
    // Gracefully, so that an embedded PostgreSQL is stopped too.
    agent_->Signal(SIGTERM);
    if (!agent_->Wait(absl::Seconds(30)).has_value()) {
      agent_->Signal(SIGKILL);
      agent_->Wait(absl::Seconds(10));
    }
  }
  const std::string reports = SanitizerReportsSince(started_);
  EXPECT_EQ(reports, "") << "sanitizer reports of the agent or the CLI during this test";
  RemoveTree(dir_);
}

std::vector<std::string> E2eTest::BaseAgentArgs() {
  return {MR_AGENT_BIN,      "--socket",         socket_,
          "--state-dir",     dir_ + "/state",    "--allowed-root",
          dir_ + "/backups", "--shutdown-grace", "2s"};
}

void E2eTest::StartAgent(std::vector<std::string> extra) {
  CommandSpec spec;
  spec.argv = BaseAgentArgs();
  spec.argv.insert(spec.argv.end(), extra.begin(), extra.end());
  // On a fake snap host the app's checks go where the fake app answers.
  for (size_t i = 0; host_ != nullptr && i + 1 < extra.size(); ++i) {
    if (extra[i] == "--runtime" && extra[i + 1] == "snap") {
      for (const std::string& a : host_->AppAddressArgs()) spec.argv.push_back(a);
    }
  }
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.env.insert(spec.env.end(), agent_env_.begin(), agent_env_.end());
  spec.output_file = log_file();
  // A restarted agent appends to the same log: only look past what is there.
  const size_t skip = ReadFileOrEmpty(log_file()).size();
  auto process = runner_->Start(spec);
  ASSERT_OK(process);
  agent_ = std::move(*process);
  absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (absl::Now() < deadline) {
    if (ReadFileOrEmpty(log_file()).find("msg=\"agent listening\"", skip) != std::string::npos) {
      return;
    }
    if (auto ended = agent_->Wait(absl::Milliseconds(20)); ended.has_value()) {
      FAIL() << "agent exited: " << ended->Describe() << "\n" << ReadFileOrEmpty(log_file());
    }
  }
  FAIL() << "agent did not start:\n" << ReadFileOrEmpty(log_file());
}

void E2eTest::StartRestoreAgent() {
  StartAgent({"--allowed-root", MR_FIXTURE_DIR, "--allowed-root", dir_, "--target-conninfo",
              pg_->ConnInfo()});
}

CommandResult E2eTest::Cli(std::vector<std::string> args) {
  CommandSpec spec;
  spec.argv = {MR_CLI_BIN};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.timeout = absl::Seconds(60);
  auto result = runner_->Run(spec, nullptr);
  EXPECT_OK(result);
  return result.ok() ? *result : CommandResult();
}

CommandResult E2eTest::CliOnSocket(std::vector<std::string> args) {
  args.insert(args.begin(), {"--agent", socket_});
  return Cli(std::move(args));
}

CommandResult E2eTest::CliWithStdin(std::vector<std::string> args, const std::string& input) {
  CommandSpec spec;
  spec.argv = {MR_CLI_BIN, "--agent", socket_};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.stdin_data = input;
  spec.timeout = absl::Seconds(60);
  auto r = runner_->Run(spec, nullptr);
  EXPECT_OK(r);
  return r.ok() ? *r : CommandResult();
}

int E2eTest::LoggedPort() {
  std::smatch m;
  std::string log = ReadFileOrEmpty(log_file());
  int port = 0;
  if (std::regex_search(log, m, std::regex("agent listening on TCP.* port=(\\d+)"))) {
    absl::SimpleAtoi(m[1].str(), &port);
  }
  return port;
}

void E2eTest::RequireDumpFixtures() {
  std::ifstream ready(std::string(MR_FIXTURE_DIR) + "/READY");
  ASSERT_TRUE(ready.good()) << "fixtures missing: DumpFixtures.Generate must run first";
}

void E2eTest::StartPostgres(int major) {
  auto pg = testing::TestPostgres::Start(major);
  ASSERT_OK(pg);
  pg_ = std::move(*pg);
  ASSERT_OK(pg_->Exec("CREATE ROLE mastodon LOGIN"));
}

void E2eTest::CreateSnapHost() {
  auto host = testing::FakeHost::Create();
  ASSERT_OK(host);
  host_ = std::move(*host);
  host_->InstallSnap(pg_->ConnInfo("mastodon"));
  host_->Set("SNAP_MEDIA_DIR", host_->dir() + "/media");
}

}  // namespace e2e
}  // namespace mastodon_restore
