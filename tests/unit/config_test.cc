#include "agent/service/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/common/net.h"
#include "tests/harness/fake_env.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::FakeEnv;
using ::mastodon_restore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(AgentConfigTest, DefaultsAreTheDocumentedOnes) {
  FakeEnv env;
  auto cl = ParseAgentCommandLine({}, &env);
  ASSERT_OK(cl);
  const AgentConfig& c = cl->config;
  EXPECT_EQ(c.socket_path, "/run/mastodon-restore/agent.sock");
  EXPECT_EQ(c.state_dir, "/var/lib/mastodon-restore");
  EXPECT_THAT(c.allowed_roots, ElementsAre("/var/backups/mastodon"));
  EXPECT_EQ(c.runtime, "auto");
  EXPECT_TRUE(c.listen.empty());
  EXPECT_EQ(c.shutdown_grace, absl::Seconds(10));
  EXPECT_EQ(c.log_level, LogLevel::kInfo);
}

TEST(AgentConfigTest, FlagsOverrideTheConfigFile) {
  FakeEnv env;
  env.files["/etc/mr.conf"] =
      "socket = /run/file.sock\nstate-dir = /srv/state\nallowed-root = /a\n"
      "allowed-root = /b\nruntime = snap\nlog-level = debug\n";
  auto cl = ParseAgentCommandLine(
      {"--config", "/etc/mr.conf", "--socket", "/run/flag.sock", "--shutdown-grace=3s"}, &env);
  ASSERT_OK(cl);
  EXPECT_EQ(cl->config.socket_path, "/run/flag.sock");
  EXPECT_EQ(cl->config.state_dir, "/srv/state");
  EXPECT_THAT(cl->config.allowed_roots, ElementsAre("/a", "/b"));
  EXPECT_EQ(cl->config.runtime, "snap");
  EXPECT_EQ(cl->config.log_level, LogLevel::kDebug);
  EXPECT_EQ(cl->config.shutdown_grace, absl::Seconds(3));
  EXPECT_EQ(cl->config.config_file, "/etc/mr.conf");
}

TEST(AgentConfigTest, MissingOrBadConfigFileIsAnError) {
  FakeEnv env;
  EXPECT_THAT(ParseAgentCommandLine({"--config", "/nope.conf"}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("/nope.conf")));
  env.files["/bad.conf"] = "config = /other\n";
  EXPECT_THAT(ParseAgentCommandLine({"--config", "/bad.conf"}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("command-line only")));
}

TEST(AgentConfigTest, RejectsRelativePathsUnknownRuntimeAndPositionals) {
  FakeEnv env;
  EXPECT_THAT(ParseAgentCommandLine({"--socket", "agent.sock"}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute path")));
  EXPECT_THAT(ParseAgentCommandLine({"--allowed-root", "backups"}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--allowed-root")));
  EXPECT_THAT(ParseAgentCommandLine({"--runtime", "kubernetes"}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--runtime 'kubernetes'")));
  EXPECT_THAT(ParseAgentCommandLine({"serve"}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unexpected argument")));
  EXPECT_THAT(ParseAgentCommandLine({"--log-level", "loud"}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--log-level")));
  EXPECT_THAT(ParseAgentCommandLine({"--socket", "/" + std::string(120, 'x')}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("107 bytes")));
  EXPECT_THAT(ParseAgentCommandLine({"--keep-operations", "0"}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--keep-operations")));
  EXPECT_THAT(ParseAgentCommandLine({"--keep-operations-for", "forever"}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--keep-operations-for")));
  EXPECT_THAT(ParseAgentCommandLine({"--app-dir", "live"}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--app-dir")));
  auto ok = ParseAgentCommandLine(
      {"--keep-operations", "5", "--keep-operations-for", "48h", "--runtime", "none"}, &env);
  ASSERT_OK(ok);
  EXPECT_EQ(ok->config.keep_operations, 5);
  EXPECT_EQ(ok->config.keep_operations_for, absl::Hours(48));
  EXPECT_EQ(ok->config.runtime, "none");
}

TEST(AgentConfigTest, TcpNeedsTlsUnlessLoopbackTestMode) {
  FakeEnv env;
  EXPECT_THAT(ParseAgentCommandLine({"--listen", "0.0.0.0:7443"}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("without TLS")));
  EXPECT_THAT(ParseAgentCommandLine({"--listen", "0.0.0.0:7443", "--insecure-loopback-tcp"}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("loopback addresses only")));
  EXPECT_OK(ParseAgentCommandLine({"--listen", "127.0.0.1:0", "--insecure-loopback-tcp"}, &env));
  EXPECT_OK(ParseAgentCommandLine({"--listen", "[::1]:7443", "--insecure-loopback-tcp"}, &env));
  EXPECT_OK(ParseAgentCommandLine({"--listen", "0.0.0.0:7443", "--tls-cert", "/c.pem", "--tls-key",
                                   "/k.pem", "--tokens", "/tokens"},
                                  &env));
  EXPECT_OK(ParseAgentCommandLine({"--listen", "0.0.0.0:7443", "--tls-cert", "/c.pem", "--tls-key",
                                   "/k.pem", "--tls-client-ca", "/ca.pem"},
                                  &env));
  EXPECT_THAT(ParseAgentCommandLine({"--tls-cert", "/c.pem"}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("go together")));
  EXPECT_THAT(ParseAgentCommandLine({"--tls-client-ca", "/ca.pem"}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-client-ca")));
  EXPECT_THAT(ParseAgentCommandLine({"--listen", "nohost"}, &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("expected HOST:PORT")));
}

TEST(AgentConfigTest, TlsAloneDoesNotMakeACallerKnown) {
  FakeEnv env;
  // TLS without tokens or a client CA: anyone who reaches the port could
  // operate the agent.
  auto r = ParseAgentCommandLine(
      {"--listen", "0.0.0.0:7443", "--tls-cert", "/c.pem", "--tls-key", "/k.pem"}, &env);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tokens FILE")));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-client-ca FILE")));
  // Also on loopback without the test flag.
  EXPECT_THAT(
      ParseAgentCommandLine(
          {"--listen", "127.0.0.1:7443", "--tls-cert", "/c.pem", "--tls-key", "/k.pem"}, &env),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("caller authentication")));
  // The loopback test mode keeps TLS-only listeners on loopback, not elsewhere.
  EXPECT_OK(ParseAgentCommandLine({"--listen", "127.0.0.1:0", "--tls-cert", "/c.pem", "--tls-key",
                                   "/k.pem", "--insecure-loopback-tcp"},
                                  &env));
  EXPECT_THAT(ParseAgentCommandLine({"--listen", "192.0.2.1:7443", "--tls-cert", "/c.pem",
                                     "--tls-key", "/k.pem", "--insecure-loopback-tcp"},
                                    &env),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("loopback addresses only")));
  // The daemon's own check gives the same answer for a config built in code.
  AgentConfig config;
  config.listen = {"0.0.0.0:7443"};
  config.tls_cert = "/c.pem";
  config.tls_key = "/k.pem";
  EXPECT_THAT(ValidateListeners(config), StatusIs(absl::StatusCode::kInvalidArgument));
  config.tokens_file = "/tokens";
  EXPECT_OK(ValidateListeners(config));
}

TEST(AgentConfigTest, CapsHaveDefaultsAndMustBePositive) {
  FakeEnv env;
  auto d = ParseAgentCommandLine({}, &env);
  ASSERT_OK(d);
  EXPECT_EQ(d->config.max_unary_calls, 64);
  EXPECT_EQ(d->config.max_running_operations, 8);
  EXPECT_EQ(d->config.max_watchers, 4096);
  auto set = ParseAgentCommandLine(
      {"--max-unary-calls", "3", "--max-running-operations", "2", "--max-watchers", "5"}, &env);
  ASSERT_OK(set);
  EXPECT_EQ(set->config.max_unary_calls, 3);
  EXPECT_EQ(set->config.max_running_operations, 2);
  EXPECT_EQ(set->config.max_watchers, 5);
  for (const char* flag : {"--max-unary-calls", "--max-running-operations", "--max-watchers"}) {
    EXPECT_THAT(ParseAgentCommandLine({flag, "0"}, &env),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at least 1")));
    EXPECT_THAT(ParseAgentCommandLine({flag, "many"}, &env),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(flag)));
  }
}

TEST(AgentConfigTest, HelpAndVersionNeedNoValidConfig) {
  FakeEnv env;
  auto cl = ParseAgentCommandLine({"--version"}, &env);
  ASSERT_OK(cl);
  EXPECT_TRUE(cl->version);
  cl = ParseAgentCommandLine({"-h"}, &env);
  ASSERT_OK(cl);
  EXPECT_TRUE(cl->help);
  EXPECT_THAT(AgentUsage(), HasSubstr("--allowed-root DIR"));
}

TEST(NetTest, LoopbackHosts) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.8.9.10"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.1"));
  EXPECT_FALSE(IsLoopbackHost("example.org"));
}

TEST(NetTest, SplitHostPort) {
  std::string host;
  int port = -1;
  ASSERT_OK(SplitHostPort("[::1]:50051", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 50051);
  ASSERT_OK(SplitHostPort("agent.example:443", &host, &port));
  EXPECT_EQ(host, "agent.example");
  EXPECT_THAT(SplitHostPort("::1:80", &host, &port),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("brackets")));
  EXPECT_THAT(SplitHostPort("h:99999", &host, &port),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("port")));
}

}  // namespace
}  // namespace mastodon_restore
