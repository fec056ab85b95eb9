// End-to-end: the agent's lifecycle, the real mastodon-restore-agent binary
// on a temp socket driven by the real mastodon-restore CLI: health and info,
// signals, a second agent, flags, the config file, systemd notification.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/common/subprocess.h"
#include "mastodon/restore/v1/agent_service.pb.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"

namespace mastodon_restore {
namespace e2e {
namespace {

namespace v1 = mastodon::restore::v1;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST_F(DaemonCliTest, HealthSaysServing) {
  StartAgent();
  CommandResult r = CliOnSocket({"health"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "SERVING\n");
  r = CliOnSocket({"--json", "health"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.stdout_text, HasSubstr("\"status\": \"SERVING\""));
}

TEST_F(DaemonCliTest, InfoJsonUsesProtoFieldNamesAndRealFacts) {
  StartAgent();
  CommandResult r = CliOnSocket({"--json", "info"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("\"state_dir_free_bytes\""));
  EXPECT_THAT(r.stdout_text, HasSubstr("\"pg_restore_versions\""));
  v1::GetAgentInfoResponse info;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.stdout_text, &info).ok())
      << r.stdout_text;
  EXPECT_EQ(info.build().version(), MR_VERSION_STRING);
  EXPECT_EQ(info.host().state_dir(), dir_ + "/state");
  EXPECT_GT(info.host().state_dir_free_bytes(), 0);
  EXPECT_EQ(info.host().allowed_roots(0), dir_ + "/backups");
  EXPECT_EQ(info.runtime().kind(), v1::RUNTIME_KIND_NONE);
  EXPECT_THAT(info.postgres().client_version(), StartsWith("15."));
}

TEST_F(DaemonCliTest, InfoHumanOutput) {
  StartAgent({"--runtime", "embedded"});
  CommandResult r = CliOnSocket({"info"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("agent          " MR_VERSION_STRING));
  EXPECT_THAT(r.stdout_text, HasSubstr("state dir      " + dir_ + "/state"));
  EXPECT_THAT(r.stdout_text, HasSubstr("runtime        embedded (requested: embedded)"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("cluster owned by the agent in " + dir_ + "/state.postgres"));
  EXPECT_THAT(r.stdout_text, HasSubstr("target server  15."));
  EXPECT_THAT(r.stdout_text, HasSubstr("pg_restore majors: "));
}

TEST_F(DaemonCliTest, SigtermStopsCleanlyAndRemovesTheSocket) {
  StartAgent();
  struct stat st;
  ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0660);
  agent_->Signal(SIGTERM);
  auto ended = agent_->Wait(absl::Seconds(20));
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->exit_code, 0) << ended->Describe();
  agent_.reset();
  EXPECT_NE(::stat(socket_.c_str(), &st), 0) << "socket left behind";
  EXPECT_THAT(ReadFileOrEmpty(log_file()), HasSubstr("msg=\"agent stopped\""));
  // With the agent gone, the CLI says so with exit code 3.
  CommandResult r = CliOnSocket({"--timeout", "3s", "health"});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.stderr_text, HasSubstr("is the agent running"));
}

TEST_F(DaemonCliTest, SigintAlsoStopsCleanly) {
  StartAgent();
  agent_->Signal(SIGINT);
  auto ended = agent_->Wait(absl::Seconds(20));
  ASSERT_TRUE(ended.has_value());
  EXPECT_EQ(ended->exit_code, 0);
  agent_.reset();
}

TEST_F(DaemonCliTest, SecondAgentOnTheSameSocketRefusesToStart) {
  StartAgent();
  CommandSpec spec;
  spec.argv = BaseAgentArgs();
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.timeout = absl::Seconds(30);
  auto second = runner_->Run(spec, nullptr);
  ASSERT_OK(second);
  EXPECT_EQ(second->exit_code, 1);
  EXPECT_THAT(second->stderr_text, HasSubstr("another process is listening"));
  EXPECT_EQ(CliOnSocket({"health"}).exit_code, 0);
}

TEST_F(DaemonCliTest, AgentRefusesPlaintextTcpAndBadFlags) {
  CommandSpec spec;
  spec.argv = BaseAgentArgs();
  spec.argv.insert(spec.argv.end(), {"--listen", "0.0.0.0:0"});
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.timeout = absl::Seconds(30);
  auto r = runner_->Run(spec, nullptr);
  ASSERT_OK(r);
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_THAT(r->stderr_text, HasSubstr("without TLS"));
  spec.argv = {MR_AGENT_BIN, "--no-such-flag"};
  r = runner_->Run(spec, nullptr);
  ASSERT_OK(r);
  EXPECT_EQ(r->exit_code, 2);
  EXPECT_THAT(r->stderr_text, HasSubstr("unknown flag '--no-such-flag'"));
}

TEST_F(DaemonCliTest, VersionAndHelp) {
  CommandSpec spec;
  spec.argv = {MR_AGENT_BIN, "--version"};
  auto r = runner_->Run(spec, nullptr);
  ASSERT_OK(r);
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_THAT(r->stdout_text, StartsWith("mastodon-restore-agent " MR_VERSION_STRING));
  spec.argv = {MR_AGENT_BIN, "--help"};
  r = runner_->Run(spec, nullptr);
  ASSERT_OK(r);
  EXPECT_THAT(r->stdout_text, HasSubstr("--allowed-root DIR"));
}

TEST_F(DaemonCliTest, ConfigFileSetsTheSocket) {
  std::string other_socket = dir_ + "/other/agent.sock";
  std::ofstream(dir_ + "/agent.conf")
      << "# test config\nsocket = " << other_socket << "\nruntime = none\n";
  socket_ = other_socket;
  CommandSpec spec;
  spec.argv = {MR_AGENT_BIN, "--config", dir_ + "/agent.conf", "--state-dir", dir_ + "/state"};
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.output_file = log_file();
  auto process = runner_->Start(spec);
  ASSERT_OK(process);
  agent_ = std::move(*process);
  CommandResult r;
  for (int i = 0; i < 200; ++i) {
    r = Cli({"--agent", other_socket, "--timeout", "2s", "info"});
    if (r.exit_code == 0) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text << ReadFileOrEmpty(log_file());
  EXPECT_THAT(r.stdout_text, HasSubstr("(requested: none)"));
}

// systemd Type=notify: the agent says READY=1 once it serves, STOPPING=1 on
// SIGTERM (what systemd's NOTIFY_SOCKET receives).
TEST_F(DaemonCliTest, TellsTheServiceManagerWhenReadyAndWhenStopping) {
  const std::string notify = dir_ + "/notify.sock";
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", notify.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  timeval tv = {20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  CommandSpec spec;
  spec.argv = BaseAgentArgs();
  spec.env = {"PATH=/usr/bin:/bin", "NOTIFY_SOCKET=" + notify};
  spec.output_file = log_file();
  auto process = runner_->Start(spec);
  ASSERT_OK(process);
  agent_ = std::move(*process);
  char buf[512];
  ssize_t n = ::recv(fd, buf, sizeof(buf) - 1, 0);
  ASSERT_GT(n, 0) << ReadFileOrEmpty(log_file());
  std::string ready(buf, n);
  EXPECT_THAT(ready, HasSubstr("READY=1"));
  EXPECT_THAT(ready, HasSubstr("STATUS=serving on " + socket_));
  // Ready means serving.
  EXPECT_EQ(CliOnSocket({"health"}).exit_code, 0);
  agent_->Signal(SIGTERM);
  n = ::recv(fd, buf, sizeof(buf) - 1, 0);
  ASSERT_GT(n, 0);
  EXPECT_THAT(std::string(buf, n), HasSubstr("STOPPING=1"));
  ASSERT_TRUE(agent_->Wait(absl::Seconds(30)).has_value());
  agent_.reset();
  ::close(fd);
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
