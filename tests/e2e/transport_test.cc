// End-to-end: the agent's TCP listeners (loopback in test mode, TLS with a
// generated certificate) and gRPC reflection, driven by the real CLI and by
// buf curl.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/common/subprocess.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"

namespace mastodon_restore {
namespace e2e {
namespace {

using ::testing::HasSubstr;

TEST_F(DaemonCliTest, LoopbackTcpInTestMode) {
  StartAgent({"--listen", "127.0.0.1:0", "--insecure-loopback-tcp"});
  int port = LoggedPort();
  ASSERT_GT(port, 0) << ReadFileOrEmpty(log_file());
  CommandResult r = Cli({"--agent", absl::StrCat("127.0.0.1:", port), "--plaintext", "health"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(r.stdout_text, "SERVING\n");
}

TEST_F(DaemonCliTest, TlsListenerWithAGeneratedCertificate) {
  // A self-signed certificate for localhost, made with the real openssl.
  CommandSpec gen;
  gen.argv = {"openssl",  "req",
              "-x509",    "-newkey",
              "rsa:2048", "-nodes",
              "-keyout",  dir_ + "/key.pem",
              "-out",     dir_ + "/cert.pem",
              "-days",    "1",
              "-subj",    "/CN=localhost",
              "-addext",  "subjectAltName=DNS:localhost,IP:127.0.0.1"};
  gen.env = {"PATH=/usr/bin:/bin"};
  gen.timeout = absl::Seconds(60);
  auto made = runner_->Run(gen, nullptr);
  ASSERT_OK(made);
  ASSERT_EQ(made->exit_code, 0) << made->stderr_text;

  // TLS alone (no tokens, no client CA) only in the loopback test mode.
  StartAgent({"--listen", "127.0.0.1:0", "--tls-cert", dir_ + "/cert.pem", "--tls-key",
              dir_ + "/key.pem", "--insecure-loopback-tcp"});
  int port = LoggedPort();
  ASSERT_GT(port, 0) << ReadFileOrEmpty(log_file());
  std::string addr = absl::StrCat("127.0.0.1:", port);
  CommandResult r = Cli({"--agent", addr, "--tls-ca", dir_ + "/cert.pem", "health"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  // Without trusting the certificate the handshake fails: unreachable.
  r = Cli({"--agent", addr, "--timeout", "5s", "health"});
  EXPECT_EQ(r.exit_code, 3);
  // Plaintext to a TLS port fails too.
  r = Cli({"--agent", addr, "--plaintext", "--timeout", "5s", "health"});
  EXPECT_EQ(r.exit_code, 3);
}

TEST_F(DaemonCliTest, BufCurlListsAndCallsServicesThroughReflection) {
  StartAgent();
  CommandSpec spec;
  spec.argv = {MR_BUF_BIN,        "curl", "--unix-socket",           socket_,
               "--protocol",      "grpc", "--http2-prior-knowledge", "--list-services",
               "http://localhost"};
  spec.env = {"PATH=/usr/bin:/bin", "HOME=" + dir_};
  spec.timeout = absl::Seconds(60);
  auto r = runner_->Run(spec, nullptr);
  ASSERT_OK(r);
  ASSERT_EQ(r->exit_code, 0) << r->stderr_text;
  EXPECT_THAT(r->stdout_text, HasSubstr("grpc.health.v1.Health"));
  EXPECT_THAT(r->stdout_text, HasSubstr("mastodon.restore.v1.RestoreAgentService"));
  // The health service is described by reflection (health.pb.cc is linked).
  spec.argv = {MR_BUF_BIN,
               "curl",
               "--unix-socket",
               socket_,
               "--protocol",
               "grpc",
               "--http2-prior-knowledge",
               "-d",
               "{}",
               "http://localhost/grpc.health.v1.Health/Check"};
  r = runner_->Run(spec, nullptr);
  ASSERT_OK(r);
  EXPECT_EQ(r->exit_code, 0) << r->stderr_text;
  EXPECT_THAT(r->stdout_text, HasSubstr("SERVING"));
  spec.argv = {MR_BUF_BIN,
               "curl",
               "--unix-socket",
               socket_,
               "--protocol",
               "grpc",
               "--http2-prior-knowledge",
               "-d",
               "{}",
               "http://localhost/mastodon.restore.v1.RestoreAgentService/GetAgentInfo"};
  r = runner_->Run(spec, nullptr);
  ASSERT_OK(r);
  EXPECT_EQ(r->exit_code, 0) << r->stderr_text;
  EXPECT_THAT(r->stdout_text, HasSubstr("\"stateDir\""));
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
