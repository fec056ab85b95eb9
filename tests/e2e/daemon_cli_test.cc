// End-to-end: the real mastodon-restore-agent binary on a temp socket, driven
// by the real mastodon-restore CLI (and buf curl), asserting output and exit
// codes.
#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/app/app_tasks.h"
#include "agent/common/subprocess.h"
#include "agent/service/auth.h"
#include "mastodon/restore/v1/agent_service.pb.h"
#include "tests/harness/fake_host.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

// The tootctl --concurrency the agent picks on this machine (by its cores).
std::string AgentConcurrency() { return absl::StrCat(DefaultConcurrency(NewPosixEnv()->Cpus())); }

namespace v1 = mastodon::restore::v1;
using ::mastodon_restore::testing::MakeTempDir;
using ::mastodon_restore::testing::RemoveTree;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class DaemonCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = MakeTempDir("mr-e2e-");
    ASSERT_OK(dir);
    dir_ = *dir;
    socket_ = dir_ + "/run/agent.sock";
  }
  void TearDown() override {
    if (agent_ != nullptr) {
      // Gracefully, so that an embedded PostgreSQL is stopped too.
      agent_->Signal(SIGTERM);
      if (!agent_->Wait(absl::Seconds(30)).has_value()) {
        agent_->Signal(SIGKILL);
        agent_->Wait(absl::Seconds(10));
      }
    }
    RemoveTree(dir_);
  }

  std::vector<std::string> BaseAgentArgs() {
    return {MR_AGENT_BIN,      "--socket",         socket_,
            "--state-dir",     dir_ + "/state",    "--allowed-root",
            dir_ + "/backups", "--shutdown-grace", "2s"};
  }

  // Starts the agent and waits until its log says it listens (or it exits).
  void StartAgent(std::vector<std::string> extra = {}) {
    CommandSpec spec;
    spec.argv = BaseAgentArgs();
    spec.argv.insert(spec.argv.end(), extra.begin(), extra.end());
    spec.env = {"PATH=/usr/bin:/bin"};
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

  CommandResult Cli(std::vector<std::string> args) {
    CommandSpec spec;
    spec.argv = {MR_CLI_BIN};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.timeout = absl::Seconds(60);
    auto result = runner_->Run(spec, nullptr);
    EXPECT_OK(result);
    return result.ok() ? *result : CommandResult();
  }

  CommandResult CliOnSocket(std::vector<std::string> args) {
    args.insert(args.begin(), {"--agent", socket_});
    return Cli(std::move(args));
  }

  // The TCP port the agent logged for its first listener.
  int LoggedPort() {
    std::smatch m;
    std::string log = ReadFileOrEmpty(log_file());
    int port = 0;
    if (std::regex_search(log, m, std::regex("agent listening on TCP.* port=(\\d+)"))) {
      absl::SimpleAtoi(m[1].str(), &port);
    }
    return port;
  }

  std::string log_file() const { return dir_ + "/agent.log"; }

  std::string dir_;
  std::string socket_;
  std::unique_ptr<CommandRunner> runner_ = NewPosixCommandRunner();
  std::unique_ptr<Process> agent_;
};

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

  StartAgent({"--listen", "127.0.0.1:0", "--tls-cert", dir_ + "/cert.pem", "--tls-key",
              dir_ + "/key.pem"});
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
}  // namespace mastodon_restore

namespace mastodon_restore {
namespace {

// detect and inspect through the real agent and CLI on the dump fixtures.
class DetectCliTest : public DaemonCliTest {
 protected:
  void SetUp() override {
    DaemonCliTest::SetUp();
    std::ifstream ready(std::string(MR_FIXTURE_DIR) + "/READY");
    ASSERT_TRUE(ready.good()) << "fixtures missing: DumpFixtures.Generate must run first";
  }
  std::string Fixture(const std::string& name) { return std::string(MR_FIXTURE_DIR) + "/" + name; }
  void StartWithFixtures() { StartAgent({"--allowed-root", MR_FIXTURE_DIR}); }
  CommandResult CliWithStdin(std::vector<std::string> args, const std::string& input) {
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
};

TEST_F(DetectCliTest, DetectJsonOfAClusterDump) {
  StartWithFixtures();
  CommandResult r = CliOnSocket({"--json", "detect", "--deep", Fixture("cluster.sql.gz")});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  v1::DetectDumpResponse response;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.stdout_text, &response).ok());
  EXPECT_EQ(response.dump().kind(), v1::DUMP_KIND_CLUSTER);
  EXPECT_EQ(response.dump().mastodon_database(), "mastodon_production");
  EXPECT_EQ(response.dump().databases_size(), 5);
  EXPECT_THAT(r.stdout_text, HasSubstr("\"outer_compression\": [\n   \"COMPRESSION_GZIP\""));
}

TEST_F(DetectCliTest, InspectHumanOutputOfASourceInstallBackup) {
  StartWithFixtures();
  CommandResult r = CliOnSocket({"inspect", Fixture("source_install.tar.gz")});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("layout         source install"));
  EXPECT_THAT(r.stdout_text, HasSubstr("containers     gzip > tar"));
  EXPECT_THAT(r.stdout_text, HasSubstr("SECRET_KEY_BASE: present ("));
  EXPECT_THAT(r.stdout_text, HasSubstr("media          public/system: 3 files"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("format         plain, one database (pg_dump), compressed with xz"));
  EXPECT_EQ(r.stdout_text.find("canary"), std::string::npos);
  EXPECT_EQ(ReadFileOrEmpty(log_file()).find("canary"), std::string::npos);
}

TEST_F(DetectCliTest, PasswordsByFileAndStdinNeverOnArgv) {
  StartWithFixtures();
  CommandResult r =
      CliOnSocket({"inspect", "--password-file", Fixture("password.txt"), Fixture("secret.zip")});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  r = CliWithStdin({"inspect", "--password-stdin", Fixture("aes.zip")}, "zip-pass\n");
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  r = CliWithStdin({"inspect", "--password-stdin", Fixture("aes.zip")}, "wrong\n");
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.stderr_text, HasSubstr("wrong password"));
  r = CliOnSocket({"inspect", Fixture("aes.zip")});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_THAT(r.stderr_text, HasSubstr("password"));
  EXPECT_EQ(ReadFileOrEmpty(log_file()).find("zip-pass"), std::string::npos);
}

TEST_F(DetectCliTest, RefusesPathsOutsideTheAllowedRootsAndBadInput) {
  StartWithFixtures();
  CommandResult r = CliOnSocket({"detect", "/etc/hostname"});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_THAT(r.stderr_text, HasSubstr("outside the allowed roots"));
  r = CliOnSocket({"detect", Fixture("bad/random.bin")});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.stderr_text, HasSubstr("random.bin"));
  r = CliOnSocket({"detect", Fixture("no-such.sql")});
  EXPECT_EQ(r.exit_code, 4);
  r = CliOnSocket({"detect", "--deep", Fixture("bad/truncated.sql.xz")});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.stderr_text, HasSubstr("truncated.sql.xz"));
}

TEST_F(DetectCliTest, CompatibilityAgainstATargetServer) {
  auto pg = testing::TestPostgres::Start();
  ASSERT_OK(pg);
  StartWithFixtures();
  CommandResult r = CliOnSocket(
      {"--json", "detect", "--target-conninfo", (*pg)->ConnInfo(), Fixture("custom.dump")});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("pg_restore 15 can read it"));
  r = CliOnSocket(
      {"detect", "--target-conninfo", "host=/nonexistent port=1", Fixture("custom.dump")});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.stderr_text, HasSubstr("unable to connect to the target server"));
}

}  // namespace
}  // namespace mastodon_restore

namespace mastodon_restore {
namespace {

// restore --db-only, rollback, verify and ops through the real agent and CLI,
// against a real PostgreSQL 15.
class RestoreCliTest : public DetectCliTest {
 protected:
  void SetUp() override {
    DetectCliTest::SetUp();
    auto pg = testing::TestPostgres::Start();
    ASSERT_OK(pg);
    pg_ = std::move(*pg);
    ASSERT_OK(pg_->Exec("CREATE ROLE mastodon LOGIN"));
  }
  void StartRestoreAgent() {
    StartAgent({"--allowed-root", MR_FIXTURE_DIR, "--allowed-root", dir_, "--target-conninfo",
                pg_->ConnInfo()});
  }
  std::string OperationId(const std::string& text) {
    std::smatch m;
    return std::regex_search(text, m, std::regex("(op-[0-9]{8}-[0-9]{6}-[0-9a-f]{4})")) ? m[1].str()
                                                                                        : "";
  }
  std::unique_ptr<testing::TestPostgres> pg_;
};

TEST_F(RestoreCliTest, RestoreRollbackVerifyAndOps) {
  StartRestoreAgent();
  CommandResult r = CliOnSocket({"--timeout", "120s", "restore", "--db-only", "--jobs", "3",
                                 "--target-db", "mastodon_production", Fixture("plain.sql.xz")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("==> load: load the dump into a staging database"));
  EXPECT_THAT(r.stdout_text, HasSubstr("loaded by      3 connections in parallel"));
  EXPECT_THAT(r.stdout_text, HasSubstr("restored       mastodon_production"));
  EXPECT_THAT(r.stdout_text, HasSubstr("verification   passed"));
  EXPECT_THAT(r.stdout_text, HasSubstr("(none: the database was new)"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM statuses", "mastodon_production"), "1000");

  ASSERT_OK(
      pg_->Exec("INSERT INTO accounts VALUES (99, 'live-marker', NULL)", "mastodon_production"));
  r = CliOnSocket({"--timeout", "120s", "restore", "--db-only", "--target-db",
                   "mastodon_production", Fixture("custom.dump")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("mastodon-restore rollback --database mastodon_production"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM accounts WHERE id = 99", "mastodon_production"),
            "0");

  r = CliOnSocket({"rollback", "--database", "mastodon_production"});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM accounts WHERE id = 99", "mastodon_production"),
            "1");

  r = CliOnSocket(
      {"verify", "--database", "mastodon_production", "--expected", Fixture("plain.sql")});
  // The rolled-back database has the marker row: one row more than the dump.
  EXPECT_EQ(r.exit_code, 1) << r.stdout_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("FAIL row_count:public.accounts: expected 3 rows, found 4"));
  ASSERT_OK(pg_->Exec("DELETE FROM accounts WHERE id = 99", "mastodon_production"));
  r = CliOnSocket(
      {"verify", "--database", "mastodon_production", "--expected", Fixture("plain.sql")});
  EXPECT_EQ(r.exit_code, 0) << r.stdout_text;
  r = CliOnSocket({"verify", "--database", "mastodon_production", "--max-age", "1"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.stdout_text, HasSubstr("FAIL max_age: newest status is"));

  r = CliOnSocket({"ops", "list"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(std::count(r.stdout_text.begin(), r.stdout_text.end(), '\n'), 6);
  EXPECT_THAT(r.stdout_text, HasSubstr("rollback"));
  std::string id = OperationId(r.stdout_text);
  r = CliOnSocket({"ops", "show", id});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.stdout_text, HasSubstr("operation      " + id));
}

TEST_F(RestoreCliTest, MediaOnlyIntoTheAgentsMediaDir) {
  const std::string media = dir_ + "/live/public/system";
  StartAgent({"--allowed-root", MR_FIXTURE_DIR, "--media-dir", media});
  CommandResult r =
      CliOnSocket({"restore", "--media-only", "--exclude-cache", Fixture("source_install.tar.gz")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("media          2 files written"));
  struct stat st;
  EXPECT_EQ(::stat((media + "/media_attachments/files/109/000/001/original/cat.jpg").c_str(), &st),
            0);
  EXPECT_NE(::stat((media + "/cache").c_str(), &st), 0);
  r = CliOnSocket({"restore", "--media-only", "--exclude-cache", Fixture("source_install.tar.gz")});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.stdout_text, HasSubstr("0 files written (0 B), 2 unchanged"));
  // Only the agent's media directory may be written.
  r = CliOnSocket(
      {"restore", "--media-only", "--media-dir", "/etc", Fixture("source_install.tar.gz")});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_THAT(r.stderr_text, HasSubstr("is not the agent's media directory"));
  r = CliOnSocket({"restore", "--media-only", "--media-dir", media + "/../../../x",
                   Fixture("source_install.tar.gz")});
  EXPECT_EQ(r.exit_code, 7);
}

TEST_F(DetectCliTest, EmbeddedRuntimeRestoresWithoutAnyServerSetUp) {
  StartAgent({"--runtime", "embedded", "--allowed-root", MR_FIXTURE_DIR});
  CommandResult r = CliOnSocket({"--timeout", "120s", "restore", "--db-only", "--target-db",
                                 "mastodon_production", Fixture("plain.sql.zst")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("verification   passed"));
  const std::string socket = dir_ + "/state.postgres/sockets/.s.PGSQL.5432";
  struct stat st;
  ASSERT_EQ(::stat(socket.c_str(), &st), 0);
  // SIGTERM stops the agent's PostgreSQL too.
  agent_->Signal(SIGTERM);
  ASSERT_TRUE(agent_->Wait(absl::Seconds(60)).has_value());
  agent_.reset();
  EXPECT_NE(::stat(socket.c_str(), &st), 0);
  // A restarted agent finds its data again; after a SIGKILL it adopts the
  // server still running.
  StartAgent({"--runtime", "embedded", "--allowed-root", MR_FIXTURE_DIR});
  r = CliOnSocket(
      {"verify", "--database", "mastodon_production", "--expected", Fixture("plain.sql")});
  EXPECT_EQ(r.exit_code, 0) << r.stdout_text;
  agent_->Signal(SIGKILL);
  agent_->Wait(absl::Seconds(10));
  agent_.reset();
  StartAgent({"--runtime", "embedded", "--allowed-root", MR_FIXTURE_DIR});
  r = CliOnSocket({"verify", "--database", "mastodon_production"});
  EXPECT_EQ(r.exit_code, 0) << r.stdout_text;
  agent_->Signal(SIGTERM);
  ASSERT_TRUE(agent_->Wait(absl::Seconds(60)).has_value());
  agent_.reset();
  EXPECT_NE(::stat(socket.c_str(), &st), 0);
}

TEST_F(RestoreCliTest, JsonEventsAndABrokenDump) {
  StartRestoreAgent();
  CommandResult r = CliOnSocket(
      {"--json", "restore", "--db-only", "--jobs", "1", "--target-db", "m", Fixture("plain.sql")});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  std::vector<std::string> lines = absl::StrSplit(r.stdout_text, '\n', absl::SkipEmpty());
  ASSERT_GT(lines.size(), 5u);
  v1::WatchOperationResponse last;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines.back(), &last).ok());
  EXPECT_EQ(last.operation().state(), v1::OPERATION_STATE_SUCCEEDED);
  EXPECT_EQ(last.operation().restore_report().rows(), 1503);
  EXPECT_EQ(last.operation().restore_report().load_connections(), 1);
  ASSERT_EQ(last.operation().restore_report().dump().tables_size(), 3);
  EXPECT_EQ(last.operation().restore_report().dump().tables(2).table(), "public.statuses");
  EXPECT_EQ(last.operation().restore_report().dump().tables(2).rows(), 1000);
  EXPECT_EQ(last.event().sequence(), static_cast<int64_t>(lines.size()));

  r = CliOnSocket({"restore", "--db-only", "--target-db", "m", Fixture("bad/cut_mid_copy.sql")});
  EXPECT_EQ(r.exit_code, 4) << r.stdout_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("operation failed"));
  EXPECT_THAT(r.stdout_text, HasSubstr("(truncated?) (step load)"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM statuses", "m"), "1000");
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE '%__restore_%'"),
            "0");

  // The whole restore's plan, without running anything: no runtime here, so
  // the app steps are skipped, saying why.
  r = CliOnSocket({"restore", "--plan", "--target-db", "planned", Fixture("plain.sql")});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("plan of the restore into database:planned (nothing was "
                                       "started):\n   1 open            open the source"));
  EXPECT_THAT(r.stdout_text, HasSubstr("   7 swap            swap the staging database in as "
                                       "'planned'; keep the previous one\n"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("   - media           skipped: no media directory on this host\n"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("   - migrate         skipped: no Mastodon runtime on this host\n"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname = 'planned'"), "0");
}

TEST_F(RestoreCliTest, AgentKilledMidLoadLeavesNothingAfterRestart) {
  ASSERT_OK(pg_->Exec("CREATE DATABASE big"));
  ASSERT_OK(pg_->Exec(
      "CREATE TABLE t (id bigint, s text); INSERT INTO t SELECT i, repeat(md5(i::text), 8) "
      "FROM generate_series(1, 1500000) i",
      "big"));
  CommandSpec dump;
  dump.argv = {pg_->bin_dir() + "/pg_dump", "-d", pg_->ConnInfo("big"), "-f", dir_ + "/big.sql"};
  dump.env = {"PATH=/usr/bin:/bin"};
  auto dumped = runner_->Run(dump, nullptr);
  ASSERT_OK(dumped);
  ASSERT_EQ(dumped->exit_code, 0) << dumped->stderr_text;

  // The target comes with the request (no password in it): the agent keeps
  // where the staging database lives and drops it after a crash.
  StartAgent({"--allowed-root", dir_});
  CommandResult r = CliOnSocket({"restore", "--db-only", "--detach", "--target-db", "big_copy",
                                 "--target-conninfo", pg_->ConnInfo(), dir_ + "/big.sql"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const std::string id = OperationId(r.stdout_text);
  ASSERT_FALSE(id.empty()) << r.stdout_text;
  // Wait until the load runs into the staging database, then kill the agent.
  bool loading = false;
  for (int i = 0; i < 400 && !loading; ++i) {
    r = CliOnSocket({"ops", "show", id});
    loading = r.stdout_text.find("  load         running") != std::string::npos &&
              *pg_->QueryValue(
                  "SELECT count(*) FROM pg_database WHERE datname LIKE "
                  "'big_copy__restore_%'") == "1";
    if (!loading) absl::SleepFor(absl::Milliseconds(25));
  }
  ASSERT_TRUE(loading) << r.stdout_text;
  agent_->Signal(SIGKILL);
  agent_->Wait(absl::Seconds(10));
  agent_.reset();
  EXPECT_EQ(
      *pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE 'big_copy__restore_%'"),
      "1");

  StartAgent({"--allowed-root", dir_});
  r = CliOnSocket({"ops", "show", id});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.stdout_text, HasSubstr("state          interrupted"));
  // The record holds no secret: the request's conninfo had no password.
  EXPECT_EQ(ReadFileOrEmpty(dir_ + "/state/operations/" + id + ".pb").find("password"),
            std::string::npos);
  // The leftover is dropped in the background after the agent started.
  for (int i = 0; i < 400; ++i) {
    if (ReadFileOrEmpty(log_file()).find("dropped a staging database") != std::string::npos) break;
    absl::SleepFor(absl::Milliseconds(25));
  }
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE 'big_copy%'"),
            "0");
  EXPECT_THAT(ReadFileOrEmpty(log_file()), HasSubstr("dropped a staging database"));
}

TEST_F(RestoreCliTest, OneRestorePerDatabaseAndIdempotentRequestIds) {
  ASSERT_OK(pg_->Exec("CREATE DATABASE big"));
  ASSERT_OK(pg_->Exec(
      "CREATE TABLE t (id bigint, s text); INSERT INTO t SELECT i, repeat(md5(i::text), 8) "
      "FROM generate_series(1, 1000000) i",
      "big"));
  CommandSpec dump;
  dump.argv = {pg_->bin_dir() + "/pg_dump", "-d", pg_->ConnInfo("big"), "-f", dir_ + "/big.sql"};
  dump.env = {"PATH=/usr/bin:/bin"};
  ASSERT_OK(runner_->Run(dump, nullptr));
  StartRestoreAgent();
  CommandResult first = CliOnSocket({"restore", "--db-only", "--detach", "--request-id", "req-1",
                                     "--target-db", "copy", dir_ + "/big.sql"});
  ASSERT_EQ(first.exit_code, 0) << first.stderr_text;
  CommandResult again = CliOnSocket({"restore", "--db-only", "--detach", "--request-id", "req-1",
                                     "--target-db", "copy", dir_ + "/big.sql"});
  EXPECT_EQ(again.stdout_text, first.stdout_text);  // the same operation
  CommandResult other = CliOnSocket({"restore", "--db-only", "--detach", "--request-id", "req-2",
                                     "--target-db", "copy", dir_ + "/big.sql"});
  EXPECT_EQ(other.exit_code, 5) << other.stdout_text;
  EXPECT_THAT(other.stderr_text, HasSubstr("is running on database:copy"));
  // Cancel the first one; it ends CANCELLED and leaves nothing.
  const std::string id = OperationId(first.stdout_text);
  EXPECT_EQ(CliOnSocket({"ops", "cancel", id}).exit_code, 0);
  CommandResult watched = CliOnSocket({"ops", "watch", id});
  EXPECT_EQ(watched.exit_code, 6) << watched.stdout_text;
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE 'copy%'"), "0");
}

}  // namespace
}  // namespace mastodon_restore

namespace mastodon_restore {
namespace {

// TLS, mutual TLS, tokens and scopes, audit, hostile input, secrecy.
class SecurityCliTest : public RestoreCliTest {
 protected:
  void SetUp() override {
    RestoreCliTest::SetUp();
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

using ::testing::Not;

// The agent on a host where the mastodon-server snap runs (recording fakes
// for snap and its wrappers, the real PostgreSQL as the snap's).
class SnapRuntimeCliTest : public RestoreCliTest {
 protected:
  void SetUp() override {
    RestoreCliTest::SetUp();
    auto host = testing::FakeHost::Create();
    ASSERT_OK(host);
    host_ = std::move(*host);
    host_->InstallSnap(pg_->ConnInfo("mastodon"));
    host_->Set("SNAP_MEDIA_DIR", host_->dir() + "/media");
  }
  void StartSnapAgent() {
    HostLayout layout = host_->Layout();
    StartAgent({"--runtime", "snap", "--snap-bin-dir", layout.snap_bin_dir, "--snap-app-dir",
                layout.snap_app_dir, "--snap-postgres", pg_->ConnInfo(""), "--host-path",
                layout.host_path, "--allowed-root", MR_FIXTURE_DIR});
  }
  std::unique_ptr<testing::FakeHost> host_;
};

TEST_F(SnapRuntimeCliTest, RestoreMigrateCleanupAndRefreshThroughTheSnap) {
  StartSnapAgent();
  CommandResult r = CliOnSocket({"info"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("snap"));
  EXPECT_THAT(r.stdout_text, HasSubstr("mastodon-server.tootctl is installed"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("media dir      " + host_->dir() + "/media, owner snap_daemon:root"));

  // The database goes to the snap's own: "mastodon", owned by mastodon.
  r = CliOnSocket({"--timeout", "120s", "restore", "--db-only", Fixture("snap")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("restored       mastodon\n"));
  EXPECT_EQ(*pg_->QueryValue("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = "
                             "'mastodon'"),
            "mastodon");
  // The media go to the snap's media.dir, owned by snap_daemon:root.
  r = CliOnSocket({"--timeout", "60s", "restore", "--media-only", Fixture("snap")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  struct stat st;
  ASSERT_EQ(::stat((host_->dir() + "/media/accounts/avatars/1/a.png").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 584788u);
  EXPECT_EQ(st.st_gid, 0u);

  // Two migrations of the installed snap are not in the backup yet.
  testing::FakeHost::AddMigrations(host_->snap_app_dir(),
                                   {"20200206000000", "20200209000000", "20260701000000"},
                                   {"20260801000000"});
  r = CliOnSocket({"--timeout", "60s", "db-migrate"});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("20200209000000 -> 20260801000000"));
  EXPECT_THAT(r.stdout_text, HasSubstr("2 ran, 0 pending"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM schema_migrations", "mastodon"), "502");
  EXPECT_THAT(host_->Calls("mastodon-server.db-migrate")[0].stdin_lines,
              ::testing::ElementsAre("y"));
  // info reads the code's version and the live schema.
  std::filesystem::create_directories(host_->snap_app_dir() + "/lib/mastodon");
  std::ofstream(host_->snap_app_dir() + "/lib/mastodon/version.rb")
      << "module Mastodon\n  module Version\n    module_function\n\n    def major\n      4\n"
         "    end\n\n    def minor\n      6\n    end\n\n    def patch\n      1\n    end\n";
  r = CliOnSocket({"info"});
  EXPECT_THAT(r.stdout_text, HasSubstr("mastodon       4.6.1, schema 20260801000000"));

  host_->Set("TOOTCTL_ITEM_ERRORS", "1");
  r = CliOnSocket({"--timeout", "60s", "cleanup", "--days", "3"});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text,
              HasSubstr("preview_cards remove --days 3 --concurrency " + AgentConcurrency() +
                        ": Removed media from 5 "
                        "preview cards (approx. 320 KB) (1 item errors)"));
  EXPECT_THAT(r.stdout_text, HasSubstr("media remove --days 3 --concurrency " + AgentConcurrency() +
                                       ": Removed 5 media"));

  r = CliOnSocket(
      {"--timeout", "60s", "--json", "media-refresh", "--days", "1", "--force", "--accounts"});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("\"summary_count\":\"5\""));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("accounts refresh --all --concurrency " + AgentConcurrency()));

  // Refused before anything runs: no source, as tootctl itself would.
  r = CliOnSocket({"media-refresh"});
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.stderr_text, HasSubstr("needs a source"));
  // A tootctl failure fails the operation with its message.
  host_->Set("TOOTCTL_FAIL", "media remove");
  r = CliOnSocket({"--timeout", "60s", "cleanup"});
  EXPECT_EQ(r.exit_code, 1) << r.stdout_text;
  EXPECT_THAT(r.stdout_text + r.stderr_text, HasSubstr("Redis::CannotConnectError"));
  // Every call the snap saw, and nothing else.
  for (const testing::FakeCall& c : host_->Calls()) {
    EXPECT_THAT(c.tool, ::testing::AnyOf("snap", "mastodon-server.tootctl",
                                         "mastodon-server.db-migrate", "tootctl"));
  }
}

TEST_F(SnapRuntimeCliTest, AnExplicitRuntimeThatIsNotInstalledStopsTheAgentAtStart) {
  CommandSpec spec;
  spec.argv = BaseAgentArgs();
  for (const char* a : {"--runtime", "systemd", "--app-dir"}) spec.argv.push_back(a);
  spec.argv.push_back(host_->dir() + "/nothing");
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.timeout = absl::Seconds(30);
  auto result = runner_->Run(spec, nullptr);
  ASSERT_OK(result);
  EXPECT_EQ(result->exit_code, 1);
  EXPECT_THAT(result->stderr_text, HasSubstr("unable to use the systemd runtime"));
}

// The whole restore, through each runtime, against the recording fakes and
// the real PostgreSQL.
class PipelineCliTest : public SnapRuntimeCliTest {
 protected:
  // The tools and first arguments the fakes saw, in order ("snap stop",
  // "mastodon-server.tootctl media refresh", ...).
  std::vector<std::string> CallSummary() {
    std::vector<std::string> out;
    for (const testing::FakeCall& c : host_->Calls()) {
      if (c.tool == "tootctl" || c.tool == "bundle") continue;  // run by the wrappers
      std::string line = c.tool;
      for (size_t i = 0; i < c.argv.size() && i < 2; ++i) line += " " + c.argv[i];
      out.push_back(line);
    }
    return out;
  }

  // pg_dump of a database without schema_migrations' rows (migrations add
  // some) and the per-run \restrict keys.
  std::string DumpWithoutMigrations(const std::string& db) {
    CommandSpec spec;
    spec.argv = {pg_->bin_dir() + "/pg_dump", "--exclude-table-data=schema_migrations", "-d",
                 pg_->ConnInfo(db)};
    spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    if (!r.ok()) return "";
    EXPECT_EQ(r->exit_code, 0) << r->stderr_text;
    return std::regex_replace(r->stdout_text, std::regex("\\\\(un)?restrict [A-Za-z0-9]+\\n"), "");
  }

  // What psql makes of the plain dump of the same database.
  std::string ReferenceDump() {
    EXPECT_OK(pg_->Exec("CREATE DATABASE reference"));
    CommandSpec spec;
    spec.argv = {pg_->bin_dir() + "/psql",
                 "-X",
                 "-q",
                 "-v",
                 "ON_ERROR_STOP=1",
                 "-d",
                 pg_->ConnInfo("reference"),
                 "-f",
                 Fixture("plain.sql")};
    spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    return DumpWithoutMigrations("reference");
  }

  void StartSnapPipelineAgent() {
    HostLayout layout = host_->Layout();
    std::filesystem::create_directories(host_->dir() + "/common");
    std::ofstream(host_->dir() + "/common/mastodon.conf")
        << "LOCAL_DOMAIN=snap.example\nSECRET_KEY_BASE=host-secret\nOTP_SECRET=snap-otp\n"
           "DB_HOST=/tmp/sockets/pgbouncer\nDB_PASS=local-pass\n";
    StartAgent({"--runtime", "snap", "--snap-bin-dir", layout.snap_bin_dir, "--snap-app-dir",
                layout.snap_app_dir, "--snap-common-dir", host_->dir() + "/common",
                "--snap-postgres", pg_->ConnInfo(""), "--host-path", layout.host_path,
                "--allowed-root", MR_FIXTURE_DIR});
    // The installed snap ships two migrations the backup does not have.
    testing::FakeHost::AddMigrations(host_->snap_app_dir(), {"20200209000000", "20260701000000"},
                                     {"20260801000000"});
  }
};

TEST_F(PipelineCliTest, SnapExportRestoredWholeInOrder) {
  const std::string expected = ReferenceDump();
  ASSERT_THAT(expected, HasSubstr("COPY public.statuses"));
  // A live database to be replaced (and kept).
  ASSERT_OK(pg_->Exec("CREATE DATABASE mastodon OWNER mastodon"));
  ASSERT_OK(pg_->Exec("CREATE TABLE live_marker (x int)", "mastodon"));
  StartSnapPipelineAgent();

  CommandResult r =
      CliOnSocket({"--timeout", "120s", "restore", "--restore-config", Fixture("snap")});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;

  // The database: the backup's Mastodon database, as psql would load it,
  // migrated, under the snap's name; the old one kept.
  EXPECT_THAT(r.stdout_text, HasSubstr("restored       mastodon\n"));
  EXPECT_THAT(r.stdout_text, HasSubstr("previous       mastodon__previous_"));
  EXPECT_EQ(DumpWithoutMigrations("mastodon"), expected);
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM schema_migrations", "mastodon"), "502");
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE "
                             "'mastodon__previous_%'"),
            "1");
  // The media, owned as the snap wants.
  struct stat st;
  ASSERT_EQ(::stat((host_->dir() + "/media/media_attachments/files/1/b.png").c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 4321);
  EXPECT_EQ(st.st_uid, 584788u);
  EXPECT_EQ(st.st_gid, 0u);
  // The config: the backup's secrets, this host's database settings.
  std::string conf = ReadFileOrEmpty(host_->dir() + "/common/mastodon.conf");
  EXPECT_THAT(conf, HasSubstr("SECRET_KEY_BASE=snap-secret\n"));
  EXPECT_THAT(conf, HasSubstr("DB_PASS=local-pass\n"));
  EXPECT_THAT(conf, ::testing::Not(HasSubstr("DB_NAME=mastodon_production")));
  // The app's commands, in order, between stopping and starting the app.
  EXPECT_THAT(CallSummary(),
              ::testing::ElementsAre(
                  "snap get mastodon-server", "snap stop mastodon-server.backend",
                  "mastodon-server.db-migrate", "mastodon-server.tootctl preview_cards remove",
                  "mastodon-server.tootctl media remove", "mastodon-server.tootctl media refresh",
                  "mastodon-server.tootctl accounts refresh", "mastodon-server.tootctl feeds build",
                  "snap start mastodon-server.sidekiq-pull"));
  std::vector<testing::FakeCall> tootctl = host_->Calls("mastodon-server.tootctl");
  ASSERT_EQ(tootctl.size(), 5u);
  EXPECT_THAT(tootctl[2].argv, ::testing::ElementsAre("media", "refresh", "--days", "1", "--force",
                                                      "--concurrency", AgentConcurrency()));
  // The report.
  EXPECT_THAT(r.stdout_text, HasSubstr("migrate      succeeded"));
  EXPECT_THAT(r.stdout_text, HasSubstr("Regenerated feeds for 5 accounts"));
  r = CliOnSocket({"--json", "ops", "list"});
  const std::string id = OperationId(r.stdout_text);
  r = CliOnSocket({"--json", "ops", "show", id});
  std::string json = std::regex_replace(r.stdout_text, std::regex("\\s+"), "");
  EXPECT_THAT(json, HasSubstr("\"secrets_differing\":[\"SECRET_KEY_BASE\""));
  EXPECT_THAT(json, HasSubstr("\"media_files\":\"2\""));
  EXPECT_THAT(json, HasSubstr("\"schema_version\":\"20260801000000\""));
  EXPECT_THAT(json, HasSubstr("\"durations\":[{\"step\":\"open\""));
}

TEST_F(PipelineCliTest, ATootctlFailureAfterTheSwapSaysWhatToRunAgain) {
  StartSnapPipelineAgent();
  host_->Set("TOOTCTL_FAIL", "media remove");
  CommandResult r = CliOnSocket({"--timeout", "120s", "restore", Fixture("snap")});
  EXPECT_EQ(r.exit_code, 1) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("Redis::CannotConnectError"));
  EXPECT_THAT(r.stdout_text, HasSubstr("(step cleanup)"));
  // The database was swapped in and stays; the app runs again.
  EXPECT_THAT(r.stdout_text, HasSubstr("restored       mastodon\n"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM statuses", "mastodon"), "1000");
  EXPECT_EQ(CallSummary().back(), "snap start mastodon-server.sidekiq-pull");
  EXPECT_THAT(r.stdout_text, HasSubstr("next           mastodon-restore cleanup --days 1"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("next           mastodon-restore media-refresh --days 1 --force "
                        "--accounts --feeds"));
}

TEST_F(PipelineCliTest, CancelledDuringTheLoadLeavesTheLiveDatabaseAndRestartsTheApp) {
  // A big enough dump to cancel mid-load.
  ASSERT_OK(pg_->Exec("CREATE DATABASE big"));
  ASSERT_OK(
      pg_->Exec("CREATE TABLE t (id bigint, s text); INSERT INTO t SELECT i, "
                "repeat(md5(i::text), 8) FROM generate_series(1, 1500000) i",
                "big"));
  CommandSpec dump;
  dump.argv = {pg_->bin_dir() + "/pg_dump", "-d", pg_->ConnInfo("big"), "-f", dir_ + "/big.sql"};
  dump.env = {"PATH=/usr/bin:/bin"};
  ASSERT_OK(runner_->Run(dump, nullptr));
  ASSERT_OK(pg_->Exec("CREATE DATABASE mastodon"));
  ASSERT_OK(pg_->Exec("CREATE TABLE live_marker (x int); INSERT INTO live_marker VALUES (7)",
                      "mastodon"));
  HostLayout layout = host_->Layout();
  StartAgent({"--runtime", "snap", "--snap-bin-dir", layout.snap_bin_dir, "--snap-app-dir",
              layout.snap_app_dir, "--snap-postgres", pg_->ConnInfo(""), "--host-path",
              layout.host_path, "--allowed-root", dir_});
  CommandResult r = CliOnSocket({"restore", "--detach", dir_ + "/big.sql"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const std::string id = OperationId(r.stdout_text);
  bool loading = false;
  for (int i = 0; i < 400 && !loading; ++i) {
    loading = CliOnSocket({"ops", "show", id}).stdout_text.find("  load         running") !=
              std::string::npos;
    if (!loading) absl::SleepFor(absl::Milliseconds(25));
  }
  ASSERT_TRUE(loading);
  EXPECT_EQ(CliOnSocket({"ops", "cancel", id}).exit_code, 0);
  r = CliOnSocket({"--timeout", "60s", "ops", "watch", id});
  EXPECT_EQ(r.exit_code, 6) << r.stdout_text;
  r = CliOnSocket({"ops", "show", id});
  EXPECT_THAT(r.stdout_text, HasSubstr("state          cancelled"));
  EXPECT_THAT(r.stdout_text, HasSubstr("start_services succeeded"));
  EXPECT_EQ(*pg_->QueryValue("SELECT x FROM live_marker", "mastodon"), "7");
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE '%__restore_%'"),
            "0");
  EXPECT_EQ(CallSummary().back(), "snap start mastodon-server.sidekiq-pull");
}

TEST_F(PipelineCliTest, SourceInstallThroughSystemdAndCompose) {
  for (const std::string runtime : {"systemd", "compose"}) {
    SCOPED_TRACE(runtime);
    auto host = testing::FakeHost::Create();
    ASSERT_OK(host);
    host_ = std::move(*host);
    const std::string db = "mastodon_" + runtime;
    const int port = pg_->cluster()->port();
    const std::string env_file =
        runtime == "systemd"
            ? absl::StrCat("DB_HOST=", pg_->cluster()->socket_dir(), "\nDB_PORT=", port,
                           "\nDB_USER=postgres\nDB_NAME=", db, "\nSECRET_KEY_BASE=x\n")
            : absl::StrCat("DB_HOST=db\nDB_PORT=", port, "\nDB_USER=postgres\nDB_NAME=", db,
                           "\nSECRET_KEY_BASE=x\n");
    if (runtime == "systemd") {
      host_->InstallSystemd(env_file);
      testing::FakeHost::AddMigrations(host_->app_dir(), {"20260701000000"}, {});
    } else {
      host_->InstallCompose(env_file);
      host_->Set("DOCKER_DB_IP", "127.0.0.1");
      host_->Set("DOCKER_DB_HOST", "127.0.0.1");
      host_->Set("DOCKER_DB_PORT", absl::StrCat(port));
      testing::FakeHost::AddMigrations(host_->compose_app_dir(), {"20260701000000"}, {});
    }
    HostLayout layout = host_->Layout();
    StartAgent({"--runtime", runtime, "--app-dir", layout.app_dir, "--systemd-unit-dir",
                layout.systemd_unit_dir, "--host-path", layout.host_path, "--allowed-root",
                MR_FIXTURE_DIR});
    CommandResult r =
        CliOnSocket({"--timeout", "120s", "restore", Fixture("source_install.tar.gz")});
    ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
    EXPECT_THAT(r.stdout_text, HasSubstr("restored       " + db + "\n"));
    EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM statuses", db), "1000");
    EXPECT_EQ(*pg_->QueryValue("SELECT max(version) FROM schema_migrations", db), "20260701000000");
    struct stat st;
    EXPECT_EQ(::stat((host_->app_dir() + "/public/system/media_attachments/files/109/000/001/"
                                         "original/cat.jpg")
                         .c_str(),
                     &st),
              0);
    std::vector<std::string> calls = CallSummary();
    if (runtime == "systemd") {
      EXPECT_THAT(calls, ::testing::ElementsAre("systemctl stop mastodon-web",
                                                "runuser -u mastodon", "runuser -u mastodon",
                                                "runuser -u mastodon", "runuser -u mastodon",
                                                "runuser -u mastodon", "runuser -u mastodon",
                                                "systemctl start mastodon-streaming"));
      EXPECT_THAT(
          host_->Calls("runuser")[1].argv,
          ::testing::ElementsAre("-u", "mastodon", "--", "bin/tootctl", "preview_cards", "remove",
                                 "--days", "1", "--concurrency", AgentConcurrency()));
    } else {
      // (ps and inspect find the db container: "docker compose -f" and
      // "docker inspect --format".) Stop, the app's commands, start.
      std::vector<std::string> app;
      for (const testing::FakeCall& c : host_->Calls("docker")) {
        if (c.argv[0] == "compose" && c.argv[3] != "ps")
          app.push_back(c.argv[3] + " " + c.argv.back());
      }
      const std::string run = "run " + AgentConcurrency();
      EXPECT_THAT(app, ::testing::ElementsAre("stop sidekiq", "run db:migrate", run, run, run, run,
                                              run, "start sidekiq"));
      EXPECT_EQ(st.st_uid, 991u);
    }
    agent_->Signal(SIGTERM);
    agent_->Wait(absl::Seconds(30));
    agent_.reset();
  }
}

TEST_F(PipelineCliTest, AgentKilledDuringMediaLeavesTheMediaDirAsItWas) {
  // A media tree big enough to kill the agent while it is extracted.
  const std::string src = dir_ + "/bigmedia";
  for (int i = 0; i < 6000; ++i) {
    const std::string sub = absl::StrCat(src, "/public/system/media_attachments/files/", i / 500);
    if (i % 500 == 0) std::filesystem::create_directories(sub);
    std::ofstream(absl::StrCat(sub, "/", i, ".png")) << std::string(2048, 'a' + i % 26);
  }
  const std::string media = host_->dir() + "/media";
  std::filesystem::create_directories(media + "/accounts");
  std::ofstream(media + "/accounts/kept.png") << "old";
  HostLayout layout = host_->Layout();
  auto start = [&] {
    StartAgent({"--runtime", "snap", "--snap-bin-dir", layout.snap_bin_dir, "--snap-postgres",
                pg_->ConnInfo(""), "--host-path", layout.host_path, "--allowed-root", dir_});
  };
  start();
  CommandResult r = CliOnSocket({"restore", "--media-only", "--detach", src});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const std::string id = OperationId(r.stdout_text);
  const std::string staging = host_->dir() + "/.media.mastodon-restore-" + id;
  bool extracting = false;
  for (int i = 0; i < 2000 && !extracting; ++i) {
    extracting = std::filesystem::exists(staging + "/media_attachments/files/3");
    if (!extracting) absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_TRUE(extracting) << CliOnSocket({"ops", "show", id}).stdout_text;
  agent_->Signal(SIGKILL);
  agent_->Wait(absl::Seconds(10));
  agent_.reset();
  ASSERT_TRUE(std::filesystem::exists(staging));

  start();
  r = CliOnSocket({"ops", "show", id});
  EXPECT_THAT(r.stdout_text, HasSubstr("state          interrupted"));
  EXPECT_FALSE(std::filesystem::exists(staging));
  EXPECT_THAT(ReadFileOrEmpty(log_file()), HasSubstr("removed the media staging directory"));
  // The media directory is as it was: nothing half-restored reached it.
  EXPECT_EQ(ReadFileOrEmpty(media + "/accounts/kept.png"), "old");
  EXPECT_FALSE(std::filesystem::exists(media + "/media_attachments"));
}

TEST_F(PipelineCliTest, CancelledDuringTheRefreshAfterTheSwapAndAWatcherResumingMidway) {
  StartSnapPipelineAgent();
  host_->Set("TOOTCTL_ITEMS", "100");
  host_->Set("TOOTCTL_SLEEP", "0.2");
  host_->Set("TOOTCTL_SLOW", "media refresh");
  CommandResult r = CliOnSocket({"restore", "--detach", Fixture("snap")});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  const std::string id = OperationId(r.stdout_text);
  bool refreshing = false;
  for (int i = 0; i < 1200 && !refreshing; ++i) {
    refreshing = CliOnSocket({"ops", "show", id}).stdout_text.find("  refresh      running") !=
                 std::string::npos;
    if (!refreshing) absl::SleepFor(absl::Milliseconds(25));
  }
  ASSERT_TRUE(refreshing) << CliOnSocket({"ops", "show", id}).stdout_text;
  // A controller that reconnects asks for the events from where it was:
  // the old ones are replayed, then the live ones follow, without gaps.
  CommandResult watched;
  std::thread watcher([&] {
    watched = CliOnSocket({"--timeout", "120s", "--json", "ops", "watch", id, "--from", "3"});
  });
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_EQ(CliOnSocket({"ops", "cancel", id}).exit_code, 0);
  watcher.join();
  EXPECT_EQ(watched.exit_code, 6) << watched.stderr_text;
  std::vector<std::string> lines = absl::StrSplit(watched.stdout_text, '\n', absl::SkipEmpty());
  ASSERT_GT(lines.size(), 10u);
  int64_t expected = 3;
  for (const std::string& line : lines) {
    v1::WatchOperationResponse event;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &event).ok()) << line;
    EXPECT_EQ(event.event().sequence(), expected++);
  }
  r = CliOnSocket({"ops", "show", id});
  EXPECT_THAT(r.stdout_text, HasSubstr("state          cancelled"));
  EXPECT_THAT(r.stdout_text, HasSubstr("refresh      cancelled"));
  EXPECT_THAT(r.stdout_text, HasSubstr("start_services succeeded"));
  // The swap had happened: the restored database stays live, and the report
  // says what is left to do.
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM statuses", "mastodon"), "1000");
  EXPECT_THAT(r.stdout_text, HasSubstr("next           mastodon-restore media-refresh"));
  EXPECT_EQ(CallSummary().back(), "snap start mastodon-server.sidekiq-pull");
}

// verify-backup as docs/ci.md runs it: no agent beforehand, a private one
// with its own PostgreSQL, a JUnit report.
class VerifyBackupCliTest : public RestoreCliTest {
 protected:
  void Run(const std::vector<std::string>& argv, const std::string& cwd = "") {
    CommandSpec spec;
    spec.argv = argv;
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.cwd = cwd;
    spec.timeout = absl::Minutes(2);
    auto r = runner_->Run(spec, nullptr);
    ASSERT_OK(r);
    ASSERT_EQ(r->exit_code, 0) << absl::StrJoin(argv, " ") << ": " << r->stderr_text;
  }

  // A backup whose media_attachments rows reference files of its media tree.
  void MakeBackup(const std::string& name, bool with_b_jpg, bool truncate_dump) {
    const std::string dir = dir_ + "/" + name;
    const std::string files = dir + "/public/system/media_attachments/files/";
    std::filesystem::create_directories(files + "000/000/001/original");
    std::ofstream(files + "000/000/001/original/a.png") << std::string(1000, 'a');
    if (with_b_jpg) {
      std::filesystem::create_directories(files + "109/123/456/789/012/345/original");
      std::ofstream(files + "109/123/456/789/012/345/original/b.jpg") << std::string(2000, 'b');
    }
    std::ofstream(dir + "/.env.production") << "LOCAL_DOMAIN=ci.example\nDB_NAME=src\n";
    Run({pg_->bin_dir() + "/pg_dump", "-d", pg_->ConnInfo("src"), "-f", dir + "/database.sql"});
    if (truncate_dump) {
      std::filesystem::resize_file(dir + "/database.sql",
                                   std::filesystem::file_size(dir + "/database.sql") / 2);
    }
    Run({"tar", "-czf", dir_ + "/" + name + ".tar.gz", "-C", dir, "."});
  }

  CommandResult VerifyBackup(std::vector<std::string> args) {
    args.insert(args.begin(), "verify-backup");
    CommandSpec spec;
    spec.argv = {MR_CLI_BIN};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.timeout = absl::Minutes(3);
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    return r.ok() ? *r : CommandResult();
  }
};

TEST_F(VerifyBackupCliTest, GoodAndBrokenBackupsAsCiSeesThem) {
  ASSERT_OK(pg_->Exec("CREATE DATABASE src"));
  ASSERT_OK(pg_->Exec(
      "CREATE TABLE schema_migrations (version varchar PRIMARY KEY);"
      "INSERT INTO schema_migrations VALUES ('20260611150940');"
      "CREATE TABLE statuses (id bigserial PRIMARY KEY, text text, created_at timestamptz "
      "DEFAULT now());"
      "INSERT INTO statuses (text) SELECT 'toot ' || i FROM generate_series(1, 100) i;"
      "CREATE TABLE media_attachments (id bigint PRIMARY KEY, file_file_name varchar, "
      "remote_url varchar);"
      "INSERT INTO media_attachments VALUES (1, 'a.png', ''), (109123456789012345, 'b.jpg', "
      "NULL), (7, 'remote.png', 'https://remote.example/remote.png');",
      "src"));
  MakeBackup("good", true, false);
  MakeBackup("missing_media", false, false);
  MakeBackup("truncated", true, true);

  // A good backup: exit 0, every check in the JUnit report.
  CommandResult r = VerifyBackup(
      {"--local", "--max-age", "1", "--junit", dir_ + "/good.xml", dir_ + "/good.tar.gz"});
  EXPECT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("backup OK: " + dir_ +
                                       "/good.tar.gz restores, all 9 "
                                       "checks passed"));
  std::string xml = ReadFileOrEmpty(dir_ + "/good.xml");
  EXPECT_THAT(xml, HasSubstr("tests=\"10\" failures=\"0\""));
  EXPECT_THAT(xml, HasSubstr("name=\"media_files\""));
  EXPECT_THAT(xml, HasSubstr("2 local media files referenced, all present and readable"));
  EXPECT_THAT(xml, HasSubstr("name=\"max_age\""));

  // A media file the database references is not in the backup.
  r = VerifyBackup({"--local", "--junit", dir_ + "/missing.xml", dir_ + "/missing_media.tar.gz"});
  EXPECT_EQ(r.exit_code, 1) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("1 of 8 checks failed"));
  xml = ReadFileOrEmpty(dir_ + "/missing.xml");
  EXPECT_THAT(xml, HasSubstr("failures=\"1\""));
  EXPECT_THAT(xml, HasSubstr("media_attachments/files/109/123/456/789/012/345/original/b.jpg "
                             "missing"));

  // A truncated dump does not restore.
  r = VerifyBackup({"--local", "--junit", dir_ + "/truncated.xml", dir_ + "/truncated.tar.gz"});
  EXPECT_EQ(r.exit_code, 4) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("does not restore"));
  EXPECT_THAT(ReadFileOrEmpty(dir_ + "/truncated.xml"),
              HasSubstr("<testcase classname=\"verify-backup\" name=\"restore\""));
  EXPECT_THAT(ReadFileOrEmpty(dir_ + "/truncated.xml"), HasSubstr("<failure message="));

  // Stale data: the newest status is older than allowed.
  r = VerifyBackup({"--local", "--max-age", "1", Fixture("source_install.tar.gz")});
  EXPECT_EQ(r.exit_code, 1) << r.stdout_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("FAIL max_age"));

  // A wrong password, and the machine report.
  r = VerifyBackup(
      {"--local", "--password-file", Fixture("wrong-password.txt"), Fixture("secret.zip")});
  EXPECT_EQ(r.exit_code, 4) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text + r.stderr_text, HasSubstr("wrong password"));
  CommandSpec json;
  json.argv = {MR_CLI_BIN, "--json", "verify-backup", "--local", dir_ + "/good.tar.gz"};
  json.env = {"PATH=/usr/bin:/bin"};
  json.timeout = absl::Minutes(3);
  auto j = runner_->Run(json, nullptr);
  ASSERT_OK(j);
  EXPECT_EQ(j->exit_code, 0);
  EXPECT_THAT(j->stdout_text, HasSubstr("\"passed\":true"));
  EXPECT_THAT(j->stdout_text, HasSubstr("\"verify_result\""));
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
}  // namespace mastodon_restore
