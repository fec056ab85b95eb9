// A gtest fixture running the agent's Daemon in the test process: a scratch
// directory with the socket, the state directory and an allowed root
// (backups/, not created), the POSIX Env and CommandRunner, and a logger
// that keeps every line for the test to read.
#ifndef MR_TESTS_HARNESS_DAEMON_FIXTURE_H_
#define MR_TESTS_HARNESS_DAEMON_FIXTURE_H_

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/common/env.h"
#include "agent/common/logging.h"
#include "agent/common/subprocess.h"
#include "agent/daemon.h"

namespace mastodon_restore {
namespace testing {

class DaemonFixture : public ::testing::Test {
 protected:
  // Makes the scratch directory and the config (socket under run/, state
  // under state/, backups/ the only allowed root, a 1 s shutdown grace).
  // A subclass that overrides SetUp calls this first.
  void SetUp() override;
  // Stops the daemon, then removes the scratch directory.
  void TearDown() override;

  // Starts the daemon with config_ as the test has set it.
  void StartDaemon();
  // A channel to the daemon's Unix socket.
  std::shared_ptr<grpc::Channel> Channel();
  // Every line logged so far, newline-terminated.
  std::string AllLogs();

  std::string dir_;
  AgentConfig config_;
  std::unique_ptr<Env> env_ = NewPosixEnv();
  std::unique_ptr<CommandRunner> runner_ = NewPosixCommandRunner();
  std::mutex log_mu_;
  std::vector<std::string> log_lines_;
  Logger logger_{LogLevel::kDebug, false, [this](const std::string& l) {
                   std::lock_guard<std::mutex> lock(log_mu_);
                   log_lines_.push_back(l);
                 }};
  std::unique_ptr<Daemon> daemon_;
};

}  // namespace testing
}  // namespace mastodon_restore

#endif  // MR_TESTS_HARNESS_DAEMON_FIXTURE_H_
