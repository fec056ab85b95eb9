// The shared fixture of the end-to-end tests: the real mastodon-restore-agent
// binary on a socket in a temp directory, driven by the real mastodon-restore
// CLI, plus the parts some suites add in their SetUp (the dump fixtures, a
// real PostgreSQL 15, a fake host where the mastodon-server snap runs).
//
// Every suite's fixture derives from E2eTest directly: it says what it needs
// by calling RequireDumpFixtures(), StartPostgres() and CreateSnapHost() after
// E2eTest::SetUp(), and keeps its own helpers in its test file.
#ifndef MR_TESTS_E2E_E2E_FIXTURE_H_
#define MR_TESTS_E2E_E2E_FIXTURE_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "agent/common/subprocess.h"
#include "tests/harness/fake_host.h"
#include "tests/harness/test_paths.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace e2e {

// The tootctl --concurrency the agent picks on this machine (by its cores).
std::string AgentConcurrency();

// The contents of the file at `path`, or "" if it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

// The path of the dump fixture `name` (made by DumpFixtures.Generate).
std::string Fixture(const std::string& name);

// The first operation id ("op-YYYYMMDD-HHMMSS-xxxx") in `text`, or "".
std::string OperationId(const std::string& text);

// A temp directory per test (dir_, removed at TearDown), the agent started
// on dir_/run/agent.sock by StartAgent() and stopped at TearDown (SIGTERM so
// that an embedded PostgreSQL stops too, SIGKILL after 30 s), the CLI run as
// a subprocess. A test may stop the agent itself and reset agent_.
class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // The agent's argv: socket_, dir_/state, allowed root dir_/backups, a 2 s
  // shutdown grace.
  std::vector<std::string> BaseAgentArgs();

  // Starts the agent with BaseAgentArgs() and `extra`, and waits until its
  // log says it listens; fails the test if it exits or takes over 20 s. A
  // restarted agent appends to the same log. With host_ set and "--runtime
  // snap" in `extra`, the agent also gets host_->AppAddressArgs() (the
  // snap's app answers on fixed ports; the fake app on the host's).
  void StartAgent(std::vector<std::string> extra = {});

  // StartAgent with the fixtures and dir_ as allowed roots and pg_ as the
  // target server. Needs StartPostgres().
  void StartRestoreAgent();

  // Runs the CLI with `args` (60 s timeout); a default CommandResult (exit
  // code -1, no output) and a failed expectation if it could not be run.
  CommandResult Cli(std::vector<std::string> args);

  // Cli on the agent's socket.
  CommandResult CliOnSocket(std::vector<std::string> args);

  // CliOnSocket with `input` on the CLI's stdin.
  CommandResult CliWithStdin(std::vector<std::string> args, const std::string& input);

  // The TCP port the agent logged for its first listener, 0 if none.
  int LoggedPort();

  // The agent's log (stdout and stderr).
  std::string log_file() const { return dir_ + "/agent.log"; }

  // Parts of a fixture's SetUp, each after E2eTest::SetUp().
  // Fails the test unless DumpFixtures.Generate has made the fixtures.
  void RequireDumpFixtures();
  // Starts pg_, a real PostgreSQL of `major` (TestPostgres::Start) with a
  // login role "mastodon".
  void StartPostgres(int major = 15);
  // Creates host_ with the mastodon-server snap installed, whose database is
  // pg_'s "mastodon" and media dir host_->dir() + "/media". Needs
  // StartPostgres().
  void CreateSnapHost();

  std::string dir_;
  std::string socket_;
  absl::Time started_;  // SetUp
  // Added to the agent's environment by StartAgent (e.g. MR_FAILPOINTS).
  std::vector<std::string> agent_env_;
  std::unique_ptr<CommandRunner> runner_ = NewPosixCommandRunner();
  std::unique_ptr<Process> agent_;
  std::unique_ptr<testing::TestPostgres> pg_;  // set by StartPostgres()
  std::unique_ptr<testing::FakeHost> host_;    // set by CreateSnapHost()
};

// The agent's lifecycle, listeners and local socket (no fixtures needed).
class DaemonCliTest : public E2eTest {};

// detect and inspect (and a restore) through the real agent and CLI on the
// dump fixtures.
class DetectCliTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    RequireDumpFixtures();
  }
  void StartWithFixtures() { StartAgent({"--allowed-root", MR_FIXTURE_DIR}); }
};

}  // namespace e2e
}  // namespace mastodon_restore

#endif  // MR_TESTS_E2E_E2E_FIXTURE_H_
