// End-to-end: the agent's security through the real agent and CLI: TLS,
// mutual TLS, tokens and scopes, audit, the local socket's permissions,
// hostile input, secrecy.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "agent/common/subprocess.h"
#include "agent/service/auth.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"

namespace mastodon_restore {
namespace e2e {
namespace {

using ::testing::HasSubstr;

// TLS, mutual TLS, tokens and scopes, audit, hostile input, secrecy.
class SecurityCliTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    RequireDumpFixtures();
    StartPostgres();
    // A CA, a server certificate for 127.0.0.1, a client certificate, and a
    // client certificate from another CA; made with the real openssl.
    Openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=test-ca"});
    Openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other-ca.key", "-out",
             "other-ca.pem", "-days", "2", "-subj", "/CN=other-ca"});
    std::ofstream(dir_ + "/server.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
    Signed("server", "localhost", "ca", "server.ext");
    Signed("client", "controller-1", "ca", "");
    Signed("stranger", "stranger", "other-ca", "");
    Signed("expired", "controller-expired", "ca", "", "-1");
    Signed("expired-server", "localhost", "ca", "server.ext", "-1");
    std::ofstream(dir_ + "/tokens")
        << "# name scopes sha256\n"
        << "reader read " << TokenHash("reader-secret-token") << "\n"
        << "ops read,operate " << TokenHash("operator-secret-token") << "\n";
    std::ofstream(dir_ + "/reader.token") << "reader-secret-token\n";
    std::ofstream(dir_ + "/ops.token") << "operator-secret-token\n";
    std::ofstream(dir_ + "/wrong.token") << "guessed-token\n";
  }

  void Openssl(std::vector<std::string> args) {
    CommandSpec spec;
    spec.argv = {"openssl"};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.cwd = dir_;
    spec.timeout = absl::Seconds(60);
    auto r = runner_->Run(spec, nullptr);
    ASSERT_OK(r);
    ASSERT_EQ(r->exit_code, 0) << r->stderr_text;
  }
  // `days` -1 makes a certificate that expired when it was made.
  void Signed(const std::string& name, const std::string& cn, const std::string& ca,
              const std::string& ext, const std::string& days = "1") {
    Openssl({"req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key", "-out",
             name + ".csr", "-subj", "/CN=" + cn});
    std::vector<std::string> sign = {
        "x509",        "-req",   "-in",       name + ".csr",     "-CA",
        ca + ".pem",   "-CAkey", ca + ".key", "-CAcreateserial", "-out",
        name + ".pem", "-days",  days};
    if (!ext.empty()) {
      sign.push_back("-extfile");
      sign.push_back(ext);
    }
    Openssl(sign);
  }

  void StartSecureAgent() {
    StartAgent({"--listen", "127.0.0.1:0", "--tls-cert", dir_ + "/server.pem", "--tls-key",
                dir_ + "/server.key", "--tls-client-ca", dir_ + "/ca.pem", "--tokens",
                dir_ + "/tokens", "--allowed-root", MR_FIXTURE_DIR, "--target-conninfo",
                pg_->ConnInfo()});
    port_ = LoggedPort();
    ASSERT_GT(port_, 0);
  }

  // The CLI over mTLS with `cert` as client certificate and `token`.
  CommandResult Tcp(const std::string& cert, const std::string& token,
                    std::vector<std::string> args) {
    std::vector<std::string> all = {"--agent",   absl::StrCat("127.0.0.1:", port_),
                                    "--tls-ca",  dir_ + "/ca.pem",
                                    "--timeout", "60s"};
    if (!cert.empty()) {
      all.insert(all.end(), {"--tls-cert", dir_ + "/" + cert + ".pem", "--tls-key",
                             dir_ + "/" + cert + ".key"});
    }
    if (!token.empty()) all.insert(all.end(), {"--token-file", dir_ + "/" + token + ".token"});
    all.insert(all.end(), args.begin(), args.end());
    return Cli(all);
  }

  int port_ = 0;
};

TEST_F(SecurityCliTest, TokensAndScopesOverMutualTls) {
  StartSecureAgent();
  EXPECT_EQ(Tcp("client", "reader", {"info"}).exit_code, 0);
  CommandResult r = Tcp("client", "", {"info"});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_THAT(r.stderr_text, HasSubstr("missing bearer token"));
  r = Tcp("client", "wrong", {"info"});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_THAT(r.stderr_text, HasSubstr("unknown bearer token"));
  // A read token may not start anything; nothing is done.
  r = Tcp("client", "reader",
          {"restore", "--db-only", "--target-db", "scoped", Fixture("plain.sql")});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_THAT(r.stderr_text, HasSubstr("token 'reader' lacks the 'operate' scope"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE 'scoped%'"), "0");
  // Nor a migration, nor its cut-over.
  r = Tcp("client", "reader", {"migrate", "--from", "host=127.0.0.1 port=1", "--from-db", "old"});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_THAT(r.stderr_text, HasSubstr("token 'reader' lacks the 'operate' scope"));
  r = Tcp("client", "reader", {"ops", "cutover", "op-20260101-000000-0000"});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_THAT(r.stderr_text, HasSubstr("token 'reader' lacks the 'operate' scope"));
  // An operator token may, and the call is audited with who did it.
  r = Tcp("client", "ops", {"restore", "--db-only", "--target-db", "scoped", Fixture("plain.sql")});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text << r.stdout_text;
  std::string log = ReadFileOrEmpty(log_file());
  EXPECT_THAT(log, HasSubstr("msg=audit who=token:ops rpc=StartRestore operation=op-"));
  EXPECT_THAT(log, HasSubstr("msg=audit who=token:reader rpc=StartRestore"));
  // Without a client certificate, or with one from another CA: no connection.
  EXPECT_EQ(Tcp("", "reader", {"--timeout", "5s", "info"}).exit_code, 3);
  EXPECT_EQ(Tcp("stranger", "reader", {"--timeout", "5s", "info"}).exit_code, 3);
  // An expired client certificate from the right CA: no connection either.
  r = Tcp("expired", "ops",
          {"--timeout", "5s", "restore", "--db-only", "--target-db", "late", Fixture("plain.sql")});
  EXPECT_EQ(r.exit_code, 3) << r.stderr_text;
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE 'late%'"), "0");
  // The local socket needs no token.
  EXPECT_EQ(CliOnSocket({"info"}).exit_code, 0);
}

TEST_F(SecurityCliTest, AnExpiredServerCertificateIsRefusedByTheCli) {
  StartAgent({"--listen", "127.0.0.1:0", "--tls-cert", dir_ + "/expired-server.pem", "--tls-key",
              dir_ + "/expired-server.key", "--tls-client-ca", dir_ + "/ca.pem", "--tokens",
              dir_ + "/tokens", "--allowed-root", MR_FIXTURE_DIR, "--target-conninfo",
              pg_->ConnInfo()});
  port_ = LoggedPort();
  ASSERT_GT(port_, 0);
  CommandResult r =
      Tcp("client", "ops",
          {"--timeout", "5s", "restore", "--db-only", "--target-db", "late", Fixture("plain.sql")});
  EXPECT_EQ(r.exit_code, 3) << r.stderr_text;
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE 'late%'"), "0");
  // The same CLI and CA reach the agent once its certificate is renewed.
  std::filesystem::copy_file(dir_ + "/server.pem", dir_ + "/expired-server.pem",
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::copy_file(dir_ + "/server.key", dir_ + "/expired-server.key",
                             std::filesystem::copy_options::overwrite_existing);
  bool reached = false;
  for (int i = 0; i < 40 && !reached; ++i) {  // the watcher re-reads every few seconds
    reached = Tcp("client", "reader", {"--timeout", "5s", "info"}).exit_code == 0;
    if (!reached) std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  EXPECT_TRUE(reached);
}

TEST_F(SecurityCliTest, HostileNamesAndPathsAreRefused) {
  StartRestoreAgent();
  CommandResult r = CliOnSocket({"restore", "--db-only", "--target-db",
                                 "x\"; DROP DATABASE postgres; --", Fixture("plain.sql")});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.stderr_text, HasSubstr("invalid target_db"));
  r = CliOnSocket({"rollback", "--database", "a'b"});
  EXPECT_EQ(r.exit_code, 4);
  // A symlink from an allowed root to /etc, and ../ in a path.
  r = CliOnSocket({"detect", Fixture("escape/etc/hostname")});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_THAT(r.stderr_text, HasSubstr("outside the allowed roots"));
  r = CliOnSocket({"inspect", Fixture("../../../../etc")});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database"), "3");
}

TEST_F(SecurityCliTest, CanarySecretsNeverReachLogsStateOrAnswers) {
  StartRestoreAgent();
  // Secrets: the zip password (on stdin), a password in the target conninfo,
  // and the canary values of the backup's .env.production, through the whole
  // restore (which reads the env file and compares its secrets).
  const std::string conn = pg_->ConnInfo() + " password=canary-conn-pass";
  CommandResult r = CliWithStdin({"restore", "--password-stdin", "--target-db", "canarydb",
                                  "--target-conninfo", conn, Fixture("secret.zip")},
                                 "zip-pass\n");
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text << r.stdout_text;
  CommandResult shown = CliOnSocket({"--json", "ops", "list"});
  CommandResult inspected =
      CliWithStdin({"--json", "inspect", "--password-stdin", Fixture("secret.zip")}, "zip-pass\n");
  ASSERT_EQ(inspected.exit_code, 0);
  std::string everything = r.stdout_text + r.stderr_text + shown.stdout_text +
                           inspected.stdout_text + ReadFileOrEmpty(log_file());
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_ + "/state")) {
    if (entry.is_regular_file()) everything += ReadFileOrEmpty(entry.path().string());
  }
  for (const char* canary : {"zip-pass", "canary-conn-pass", "canary-secret-key-base",
                             "canary-otp-secret", "canary-db-password", "canary-primary"}) {
    EXPECT_EQ(everything.find(canary), std::string::npos) << canary;
  }
  EXPECT_THAT(shown.stdout_text, HasSubstr("canarydb"));  // the search saw the records
}

// The local socket: root and the socket's group get in, any other uid is
// refused by the kernel before gRPC sees anything (mode 0660).
TEST_F(DaemonCliTest, OnlyRootAndTheSocketGroupReachTheLocalSocket) {
  StartAgent({"--socket-group", "staff"});
  auto as = [&](uid_t uid, gid_t gid) {
    CommandSpec spec;
    spec.argv = {MR_CLI_BIN, "--agent", socket_, "--timeout", "5s", "info"};
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.uid = uid;
    spec.gid = gid;
    spec.timeout = absl::Seconds(30);
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    return r.ok() ? *r : CommandResult();
  };
  const std::string before = ReadFileOrEmpty(log_file());
  CommandResult outsider = as(65534, 65534);  // nobody:nogroup
  EXPECT_EQ(outsider.exit_code, 3) << outsider.stdout_text << outsider.stderr_text;
  EXPECT_THAT(outsider.stderr_text, HasSubstr("Permission denied"));
  EXPECT_EQ(ReadFileOrEmpty(log_file()), before);  // the agent saw nothing
  CommandResult member = as(65534, 50);            // nobody with the staff group
  EXPECT_EQ(member.exit_code, 0) << member.stderr_text;
  EXPECT_THAT(member.stdout_text, HasSubstr("agent "));
  EXPECT_EQ(CliOnSocket({"info"}).exit_code, 0);  // root
  // The audit log names the local caller from the socket's peer credentials.
  EXPECT_EQ(CliOnSocket({"rollback", "--database", "nothing_here"}).exit_code, 5);
  EXPECT_THAT(ReadFileOrEmpty(log_file()), HasSubstr("msg=audit who=\"uid:0 gid:0 pid:"));
  // Even if the socket's mode were opened to everyone, the agent itself
  // refuses a peer outside root, its user and the group.
  ASSERT_EQ(::chmod(socket_.c_str(), 0666), 0);
  outsider = as(65534, 65534);
  EXPECT_EQ(outsider.exit_code, 3) << outsider.stdout_text << outsider.stderr_text;
  EXPECT_THAT(ReadFileOrEmpty(log_file()), HasSubstr("who=\"uid:65534 gid:65534 pid:"));
  EXPECT_THAT(ReadFileOrEmpty(log_file()), HasSubstr("refused: not root"));
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
