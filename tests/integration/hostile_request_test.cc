// Hostile callers and requests against the daemon in-process (issue 15,
// findings 6 and parts of 7 and 8): listeners that would let anyone in,
// caller conninfo that would make root connect anywhere with its stored
// passwords, floods of calls, operations and watchers, one media directory
// named two ways, and names built to drive the terminal. Each case asserts
// what was refused and that nothing happened (no password sent, no
// operation started, no raw control character printed). Calls are held with
// the service's and the operation manager's test hooks, never with sleeps.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/common/subprocess.h"
#include "agent/daemon.h"
#include "agent/database/pg_connection.h"
#include "agent/operations/operation_manager.h"
#include "agent/service/agent_service.h"
#include "agent/service/auth.h"
#include "cli/cli.h"
#include "mastodon/restore/v1/agent_service.grpc.pb.h"
#include "tests/harness/daemon_fixture.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

namespace v1 = mastodon::restore::v1;
using ::mastodon_restore::testing::DaemonFixture;
using ::mastodon_restore::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

// A TCP listener on 127.0.0.1 that speaks the first steps of PostgreSQL's
// protocol: it refuses SSL and GSS encryption, asks for a cleartext
// password, records whether one arrives (and what it is), then fails the
// login the way a server does. A client that has no password hangs up
// after the request, which the trap records as a connection without one.
class PasswordTrap {
 public:
  PasswordTrap() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, 16) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "unable to listen: " << std::strerror(errno);
      return;
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~PasswordTrap() {
    stopping_ = true;
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }

  int port() const { return port_; }
  // "host=127.0.0.1 port=P user=alice dbname=d": where a caller points the
  // agent.
  std::string ConnInfo() const {
    return absl::StrCat("host=127.0.0.1 port=", port_, " user=alice dbname=shop");
  }
  int logins() {
    std::lock_guard<std::mutex> lock(mu_);
    return logins_;
  }
  std::vector<std::string> passwords() {
    std::lock_guard<std::mutex> lock(mu_);
    return passwords_;
  }

 private:
  static bool ReadN(int fd, void* buf, size_t n) {
    size_t got = 0;
    while (got < n) {
      ssize_t r = ::read(fd, static_cast<char*>(buf) + got, n - got);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }
  static void WriteAll(int fd, const std::string& data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t w = ::write(fd, data.data() + done, data.size() - done);
      if (w <= 0) return;
      done += static_cast<size_t>(w);
    }
  }
  static std::string Int32(uint32_t v) {
    uint32_t be = htonl(v);
    return std::string(reinterpret_cast<const char*>(&be), 4);
  }

  void Serve() {
    while (!stopping_) {
      int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) {
        if (stopping_) return;
        continue;
      }
      Handle(conn);
      ::close(conn);
    }
  }

  void Handle(int conn) {
    // The startup phase: SSLRequest and GSSENCRequest get 'N', then the
    // StartupMessage.
    while (true) {
      uint32_t len_be = 0;
      if (!ReadN(conn, &len_be, 4)) return;
      uint32_t len = ntohl(len_be);
      if (len < 8 || len > 10000) return;
      std::string body(len - 4, '\0');
      if (!ReadN(conn, body.data(), body.size())) return;
      uint32_t code_be;
      std::memcpy(&code_be, body.data(), 4);
      uint32_t code = ntohl(code_be);
      if (code == 80877103 || code == 80877104) {
        WriteAll(conn, "N");
        continue;
      }
      break;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++logins_;
    }
    WriteAll(conn, "R" + Int32(8) + Int32(3));  // AuthenticationCleartextPassword
    char type = 0;
    if (!ReadN(conn, &type, 1)) return;  // hung up: no password
    uint32_t len_be = 0;
    if (!ReadN(conn, &len_be, 4)) return;
    uint32_t len = ntohl(len_be);
    if (len < 4 || len > 10000) return;
    std::string body(len - 4, '\0');
    if (!ReadN(conn, body.data(), body.size())) return;
    if (type == 'p') {
      std::lock_guard<std::mutex> lock(mu_);
      passwords_.push_back(std::string(body.c_str()));
    }
    std::string fields = std::string("SFATAL") + '\0' + "C28P01" + '\0' +
                         "Mpassword authentication failed for user \"alice\"" + '\0' + '\0';
    WriteAll(conn, "E" + Int32(static_cast<uint32_t>(4 + fields.size())) + fields);
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  std::mutex mu_;
  int logins_ = 0;
  std::vector<std::string> passwords_;
};

// Sets an environment variable for one test, and puts it back.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    const char* old = ::getenv(name);
    if (old != nullptr) old_ = old;
    had_ = old != nullptr;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_) {
      ::setenv(name_, old_.c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

// A backup source the agent may read: a plain dump whose file name and
// table name carry escape sequences (a window title, a screen clear, a C1
// CSI). (Fake lines are covered by the rendering tests: a newline cannot
// sit in a COPY line of a plain dump.)
constexpr char kHostileTable[] =
    "ev\x1b]0;owned\x07il\x1b[2J\xc2\x9b"
    "x";
constexpr char kHostileTableShown[] = "ev\\x1b]0;owned\\x07il\\x1b[2J\\u009bx";
std::string HostilePlainDump() {
  return absl::StrCat(
      "--\n-- PostgreSQL database dump\n--\n\n"
      "-- Dumped from database version 15.4\n"
      "-- Dumped by pg_dump version 15.4\n\n"
      "SET statement_timeout = 0;\n"
      "SET client_encoding = 'UTF8';\n\n"
      "CREATE TABLE public.\"",
      kHostileTable,
      "\" (\n    id bigint\n);\n\n"
      "COPY public.\"",
      kHostileTable,
      "\" (id) FROM stdin;\n1\n2\n\\.\n\n"
      "--\n-- PostgreSQL database dump complete\n--\n\n");
}

class HostileRequestTest : public DaemonFixture {
 protected:
  void SetUp() override {
    DaemonFixture::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_EQ(::mkdir((dir_ + "/backups").c_str(), 0755), 0);
    config_.runtime = "none";
    dump_ = dir_ + "/backups/dump\x1b[31m.sql";
    std::ofstream(dump_) << HostilePlainDump();
  }
  void TearDown() override {
    ReleaseHeld();
    DaemonFixture::TearDown();
  }
  std::unique_ptr<v1::RestoreAgentService::Stub> Stub() {
    return v1::RestoreAgentService::NewStub(Channel());
  }

  // Holds every blocking unary call (service hook) until ReleaseHeld().
  void HoldUnaryCalls() {
    daemon_->service()->set_call_hook([this]() { Hold(); });
  }
  // Holds every operation once it runs (manager hook) until ReleaseHeld().
  void HoldOperations() {
    daemon_->operations()->set_run_hook([this](Operation*) { Hold(); });
  }
  void Hold() {
    absl::MutexLock lock(&hold_mu_);
    ++held_;
    hold_mu_.Await(absl::Condition(&released_));
    --held_;
  }
  // Blocks until `n` calls or operations are held (fails after a minute).
  void AwaitHeld(int n) {
    absl::MutexLock lock(&hold_mu_);
    auto enough = [this, n]() ABSL_SHARED_LOCKS_REQUIRED(hold_mu_) { return held_ >= n; };
    ASSERT_TRUE(hold_mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Minutes(1)))
        << "only " << held_ << " of " << n << " held";
  }
  void ReleaseHeld() {
    absl::MutexLock lock(&hold_mu_);
    released_ = true;
  }
  // Runs a TLS listener with the token file `tokens` ("reader" has read,
  // "ops" read and operate); returns a channel to it.
  std::shared_ptr<grpc::Channel> StartTlsWithTokens() {
    CommandSpec gen;
    gen.argv = {
        "openssl",  "req",           "-x509",   "-newkey",
        "rsa:2048", "-nodes",        "-keyout", "key.pem",
        "-out",     "cert.pem",      "-days",   "1",
        "-subj",    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"};
    gen.env = {"PATH=/usr/bin:/bin"};
    gen.cwd = dir_;
    gen.timeout = absl::Seconds(60);
    auto made = runner_->Run(gen, nullptr);
    EXPECT_TRUE(made.ok() && made->exit_code == 0);
    std::ofstream(dir_ + "/tokens") << "reader read " << TokenHash("reader-token") << "\n"
                                    << "ops read,operate " << TokenHash("ops-token") << "\n";
    config_.listen = {"127.0.0.1:0"};
    config_.tls_cert = dir_ + "/cert.pem";
    config_.tls_key = dir_ + "/key.pem";
    config_.tokens_file = dir_ + "/tokens";
    StartDaemon();
    if (daemon_ == nullptr || daemon_->tcp_ports().empty()) return nullptr;
    grpc::SslCredentialsOptions ssl;
    std::ifstream cert(dir_ + "/cert.pem");
    ssl.pem_root_certs.assign(std::istreambuf_iterator<char>(cert), {});
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", daemon_->tcp_ports()[0]),
                               grpc::SslCredentials(ssl));
  }

  v1::DetectDumpRequest DetectWithConnInfo(const std::string& conninfo) {
    v1::DetectDumpRequest request;
    request.mutable_source()->set_path(dump_);
    request.mutable_target()->set_conninfo(conninfo);
    return request;
  }

  std::string dump_;
  absl::Mutex hold_mu_;
  int held_ ABSL_GUARDED_BY(hold_mu_) = 0;
  bool released_ ABSL_GUARDED_BY(hold_mu_) = false;
};

// 1. TLS on a public address with neither tokens nor a client CA would let
// anyone who reaches the port operate the agent: the daemon does not start.
TEST_F(HostileRequestTest, TlsListenerWithoutTokensOrClientCaIsRefusedAtStart) {
  config_.listen = {"0.0.0.0:0"};
  config_.tls_cert = dir_ + "/cert.pem";
  config_.tls_key = dir_ + "/key.pem";
  Daemon daemon(config_, env_.get(), runner_.get(), &logger_);
  absl::Status started = daemon.Start();
  EXPECT_THAT(started, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tokens FILE")));
  EXPECT_THAT(started, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--tls-client-ca")));
  struct stat st;
  EXPECT_NE(::stat(config_.socket_path.c_str(), &st), 0) << "nothing listens";
  EXPECT_NE(::stat(config_.state_dir.c_str(), &st), 0) << "nothing was set up";
}

// 2. The loopback test mode is for loopback only, with or without TLS.
TEST_F(HostileRequestTest, TestModeListenersOffLoopbackAreRefused) {
  config_.insecure_loopback_tcp = true;
  config_.listen = {"0.0.0.0:0"};
  Daemon plain(config_, env_.get(), runner_.get(), &logger_);
  EXPECT_THAT(plain.Start(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("loopback addresses only")));
  config_.tls_cert = dir_ + "/cert.pem";
  config_.tls_key = dir_ + "/key.pem";
  Daemon tls(config_, env_.get(), runner_.get(), &logger_);
  EXPECT_THAT(tls.Start(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("loopback addresses only")));
}

// 3. A read-scope caller may detect and inspect, but not make the agent
// connect to a server of its choice.
TEST_F(HostileRequestTest, ReadScopeCallerNamingAServerIsDenied) {
  PasswordTrap trap;
  auto channel = StartTlsWithTokens();
  ASSERT_NE(channel, nullptr);
  auto stub = v1::RestoreAgentService::NewStub(channel);
  auto call = [&](const std::string& token, const std::string& conninfo, bool inspect) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    if (inspect) {
      v1::InspectBackupRequest request;
      request.mutable_source()->set_path(dump_);
      request.mutable_target()->set_conninfo(conninfo);
      v1::InspectBackupResponse response;
      return stub->InspectBackup(&ctx, request, &response);
    }
    v1::DetectDumpResponse response;
    return stub->DetectDump(&ctx, DetectWithConnInfo(conninfo), &response);
  };
  for (bool inspect : {false, true}) {
    grpc::Status denied = call("reader-token", trap.ConnInfo(), inspect);
    EXPECT_EQ(denied.error_code(), grpc::StatusCode::PERMISSION_DENIED) << inspect;
    EXPECT_THAT(denied.error_message(), HasSubstr("'operate'"));
    EXPECT_THAT(denied.error_message(), HasSubstr("target.conninfo"));
  }
  EXPECT_EQ(trap.logins(), 0) << "the agent connected for a read-scope caller";
  // Without a server the same caller is served.
  grpc::Status plain = call("reader-token", "", false);
  EXPECT_TRUE(plain.ok()) << plain.error_message();
  // An operate-scope caller gets through the scope check (to the trap).
  grpc::Status ops = call("ops-token", trap.ConnInfo(), false);
  EXPECT_NE(ops.error_code(), grpc::StatusCode::PERMISSION_DENIED) << ops.error_message();
  EXPECT_EQ(trap.logins(), 1);
  EXPECT_THAT(AllLogs(), HasSubstr("msg=audit who=token:reader rpc=DetectDump"));
  // Each call is judged by its own token, not by the calls made before it on
  // the same connection: the reader after the operator is denied again, and
  // the audit names the reader.
  for (bool inspect : {false, true}) {
    grpc::Status again = call("reader-token", trap.ConnInfo(), inspect);
    EXPECT_EQ(again.error_code(), grpc::StatusCode::PERMISSION_DENIED) << again.error_message();
    EXPECT_THAT(again.error_message(), HasSubstr("token 'reader' lacks the 'operate' scope"));
  }
  EXPECT_EQ(trap.logins(), 1) << "the reader's call was served with the operator's scope";
}

// 4 and 5. A caller's conninfo whose host matches root's stored password
// (PGPASSFILE, ~/.pgpass, PGPASSWORD) does not send it; the agent's own
// connections still use the password file, and no error names it.
TEST_F(HostileRequestTest, CallerConnInfoNeverSendsAStoredPassword) {
  PasswordTrap trap;
  const std::string home = dir_ + "/home";
  ASSERT_EQ(::mkdir(home.c_str(), 0700), 0);
  const std::string entry = absl::StrCat("127.0.0.1:", trap.port(), ":*:*:pgpass-canary\n");
  std::ofstream(home + "/.pgpass") << entry;
  ::chmod((home + "/.pgpass").c_str(), 0600);
  const std::string passfile = dir_ + "/agent-passfile";
  std::ofstream(passfile) << entry;
  ::chmod(passfile.c_str(), 0600);
  ScopedEnv home_env("HOME", home);
  ScopedEnv passfile_env("PGPASSFILE", passfile);

  // The control: the agent's own conninfo uses the file (the trap works and
  // the password would be found), and the error says nothing about it.
  auto own = PgConnection::Connect(trap.ConnInfo());
  ASSERT_FALSE(own.ok());
  ASSERT_EQ(trap.passwords(), std::vector<std::string>{"pgpass-canary"});
  EXPECT_THAT(std::string(own.status().message()), HasSubstr("password authentication failed"));
  EXPECT_THAT(std::string(own.status().message()), Not(HasSubstr(passfile)));
  EXPECT_THAT(std::string(own.status().message()), Not(HasSubstr("pgpass")));

  // A caller's conninfo to the same address: no password leaves the agent,
  // not even PGPASSWORD's.
  ScopedEnv password_env("PGPASSWORD", "env-canary");
  StartDaemon();
  auto stub = Stub();
  for (const std::string& conninfo :
       {trap.ConnInfo(), absl::StrCat("postgresql://alice@127.0.0.1:", trap.port(), "/shop")}) {
    grpc::ClientContext ctx;
    v1::DetectDumpResponse response;
    grpc::Status status = stub->DetectDump(&ctx, DetectWithConnInfo(conninfo), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
    EXPECT_THAT(status.error_message(), HasSubstr("no password supplied"));
    EXPECT_THAT(status.error_message(), Not(HasSubstr(passfile)));
    EXPECT_THAT(status.error_message(), Not(HasSubstr(home)));
    EXPECT_THAT(status.error_message(), Not(HasSubstr("canary")));
  }
  EXPECT_EQ(trap.logins(), 3);
  EXPECT_EQ(trap.passwords(), std::vector<std::string>{"pgpass-canary"})
      << "a stored password went to the caller's server";
  EXPECT_THAT(AllLogs(), Not(HasSubstr("canary")));
}

// 6. Settings that name files on the agent's host are refused, before any
// connection.
TEST_F(HostileRequestTest, CallerConnInfoNamingAgentFilesIsRefused) {
  PasswordTrap trap;
  StartDaemon();
  auto stub = Stub();
  for (const std::string& setting :
       {std::string("passfile=/root/.pgpass"), std::string("service=prod"),
        std::string("sslkey=/etc/ssl/private/agent.key"), std::string("sslcert=/etc/passwd"),
        std::string("sslrootcert=/etc/shadow")}) {
    grpc::ClientContext ctx;
    v1::DetectDumpResponse response;
    grpc::Status status =
        stub->DetectDump(&ctx, DetectWithConnInfo(trap.ConnInfo() + " " + setting), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << setting;
    EXPECT_THAT(status.error_message(), HasSubstr("names a file on the agent's host")) << setting;
  }
  EXPECT_EQ(trap.logins(), 0);
}

// 7. What the jobs get for a caller's conninfo.
TEST(CallerConnInfoTest, NoStoredPasswordAndNoEcho) {
  auto keyword = CallerConnInfo("host=db.example port=5433 user=o'brien dbname=x");
  ASSERT_OK(keyword);
  EXPECT_THAT(*keyword, HasSubstr("host='db.example'"));
  EXPECT_THAT(*keyword, HasSubstr("user='o\\'brien'"));
  EXPECT_THAT(*keyword, HasSubstr("password=''"));
  EXPECT_THAT(*keyword, HasSubstr(absl::StrCat("passfile='", kNoPassFile, "'")));
  EXPECT_FALSE(ConnInfoHasPassword(*keyword));
  // A password the caller gives is its own: kept, and still no passfile.
  auto uri = CallerConnInfo("postgresql://bob:s3cret@db.example/x?sslmode=require");
  ASSERT_OK(uri);
  EXPECT_THAT(*uri, HasSubstr("password='s3cret'"));
  EXPECT_THAT(*uri, HasSubstr("sslmode='require'"));
  EXPECT_THAT(*uri, HasSubstr(absl::StrCat("passfile='", kNoPassFile, "'")));
  EXPECT_OK(CallerConnInfo("host=h sslrootcert=system"));
  auto bad = CallerConnInfo("host=h password=hunter2 nonsense");
  EXPECT_THAT(bad, StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(std::string(bad.status().message()), Not(HasSubstr("hunter2")));
  EXPECT_EQ(ScrubCredentialFiles("FATAL: password authentication failed\npassword retrieved from "
                                 "file \"/root/.pgpass\""),
            "FATAL: password authentication failed (the agent's password file was used)");
}

// 8. Unary calls past --max-unary-calls are refused at once, not queued on
// new threads.
TEST_F(HostileRequestTest, UnaryCallsOverTheCapAreResourceExhausted) {
  config_.max_unary_calls = 2;
  StartDaemon();
  HoldUnaryCalls();
  auto stub = Stub();
  struct Pending {
    grpc::ClientContext ctx;
    v1::GetAgentInfoRequest request;
    v1::GetAgentInfoResponse response;
    absl::Notification done;
    grpc::Status status;
  };
  std::vector<std::unique_ptr<Pending>> pending;
  for (int i = 0; i < 2; ++i) {
    pending.push_back(std::make_unique<Pending>());
    Pending* p = pending.back().get();
    stub->async()->GetAgentInfo(&p->ctx, &p->request, &p->response, [p](grpc::Status s) {
      p->status = s;
      p->done.Notify();
    });
  }
  AwaitHeld(2);
  for (int i = 0; i < 3; ++i) {  // every further call, detect included
    grpc::ClientContext ctx;
    v1::DetectDumpResponse response;
    v1::DetectDumpRequest request;
    request.mutable_source()->set_path(dump_);
    grpc::Status over = stub->DetectDump(&ctx, request, &response);
    EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(over.error_message(), HasSubstr("--max-unary-calls"));
  }
  ReleaseHeld();
  for (auto& p : pending) {
    p->done.WaitForNotification();
    EXPECT_TRUE(p->status.ok()) << p->status.error_message();
  }
  grpc::ClientContext ctx;
  v1::GetAgentInfoResponse info;
  EXPECT_TRUE(stub->GetAgentInfo(&ctx, {}, &info).ok()) << "slots came back";
}

// A verify of `database` on a server that is never reached (the operation
// is held before it connects).
grpc::Status StartVerify(v1::RestoreAgentService::Stub* stub, const std::string& database,
                         v1::Operation* op) {
  grpc::ClientContext ctx;
  v1::StartVerifyRequest request;
  request.mutable_options()->mutable_target()->set_database(database);
  v1::StartVerifyResponse response;
  grpc::Status status = stub->StartVerify(&ctx, request, &response);
  *op = response.operation();
  return status;
}

// 9. Operations past --max-running-operations are refused.
TEST_F(HostileRequestTest, OperationsOverTheCapAreResourceExhausted) {
  config_.max_running_operations = 2;
  config_.target_conninfo = "host=127.0.0.1 port=1 dbname=unreachable";
  StartDaemon();
  HoldOperations();
  auto stub = Stub();
  v1::Operation a, b, c;
  ASSERT_TRUE(StartVerify(stub.get(), "db_a", &a).ok());
  ASSERT_TRUE(StartVerify(stub.get(), "db_b", &b).ok());
  AwaitHeld(2);
  grpc::Status over = StartVerify(stub.get(), "db_c", &c);
  EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(over.error_message(), HasSubstr("--max-running-operations"));
  grpc::ClientContext ctx;
  v1::ListOperationsResponse listed;
  ASSERT_TRUE(stub->ListOperations(&ctx, {}, &listed).ok());
  EXPECT_EQ(listed.operations_size(), 2) << "the refused one left no record";
}

// 10. Watch streams past --max-watchers are refused.
TEST_F(HostileRequestTest, WatchersOverTheCapAreResourceExhausted) {
  config_.max_watchers = 1;
  config_.target_conninfo = "host=127.0.0.1 port=1 dbname=unreachable";
  StartDaemon();
  HoldOperations();
  auto stub = Stub();
  v1::Operation op;
  ASSERT_TRUE(StartVerify(stub.get(), "db_w", &op).ok());
  AwaitHeld(1);
  v1::WatchOperationRequest request;
  request.set_id(op.id());
  grpc::ClientContext first_ctx;
  auto first = stub->WatchOperation(&first_ctx, request);
  v1::WatchOperationResponse event;
  ASSERT_TRUE(first->Read(&event)) << "the first watcher is served";
  grpc::ClientContext second_ctx;
  auto second = stub->WatchOperation(&second_ctx, request);
  EXPECT_FALSE(second->Read(&event));
  grpc::Status refused = second->Finish();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(refused.error_message(), HasSubstr("--max-watchers"));
  first_ctx.TryCancel();
  first->Finish();
  // The slot comes back when the first stream is done (on gRPC's thread).
  bool served = false;
  for (int i = 0; i < 200 && !served; ++i) {
    grpc::ClientContext ctx;
    auto again = stub->WatchOperation(&ctx, request);
    served = again->Read(&event);
    ctx.TryCancel();
    again->Finish();
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(served);
}

// 11. A whole restore and a media-only restore of one media directory
// conflict, also when the second names it through a symlink; so do two
// media-only restores naming it differently.
TEST_F(HostileRequestTest, OneMediaDirectoryNamedTwoWaysIsOneLock) {
  const std::string media = dir_ + "/media";
  ASSERT_EQ(::mkdir(media.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((media + "/sub").c_str(), 0755), 0);
  ASSERT_EQ(::symlink(media.c_str(), (media + "/sub/again").c_str()), 0);
  config_.media_dir = media;
  config_.target_conninfo = "host=127.0.0.1 port=1 dbname=unreachable";
  StartDaemon();
  HoldOperations();
  auto stub = Stub();
  auto restore = [&](const std::string& media_dir, bool media_only, v1::Operation* op) {
    grpc::ClientContext ctx;
    v1::StartRestoreRequest request;
    v1::RestoreOptions* o = request.mutable_options();
    o->mutable_source()->set_path(dump_);
    o->set_target_db("live");
    o->set_media_only(media_only);
    o->set_media_dir(media_dir);
    v1::StartRestoreResponse response;
    grpc::Status status = stub->StartRestore(&ctx, request, &response);
    *op = response.operation();
    return status;
  };
  v1::Operation whole, other;
  grpc::Status started = restore("", false, &whole);
  ASSERT_TRUE(started.ok()) << started.error_message();
  AwaitHeld(1);
  char real[PATH_MAX];
  ASSERT_NE(::realpath(media.c_str(), real), nullptr);
  // The root itself, through a symlink inside it, with "." and a trailing
  // slash, and a directory inside it: all inside what the whole restore
  // writes.
  for (const std::string& name :
       {media, media + "/sub/again", media + "/./sub/again/", media + "/sub"}) {
    grpc::Status conflict = restore(name, true, &other);
    EXPECT_EQ(conflict.error_code(), grpc::StatusCode::ABORTED) << name;
    EXPECT_THAT(conflict.error_message(), HasSubstr(absl::StrCat("media:", real))) << name;
    EXPECT_THAT(conflict.error_message(), HasSubstr(whole.id())) << name;
  }
}

// 11b. Two media-only restores: the second names the first's directory
// through a symlink.
TEST_F(HostileRequestTest, TwoMediaOnlyRestoresOfOneDirectoryConflict) {
  const std::string media = dir_ + "/media";
  ASSERT_EQ(::mkdir(media.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((media + "/sub").c_str(), 0755), 0);
  ASSERT_EQ(::symlink((media + "/sub").c_str(), (media + "/alias").c_str()), 0);
  config_.media_dir = media;
  StartDaemon();
  HoldOperations();
  auto stub = Stub();
  auto media_only = [&](const std::string& media_dir, v1::Operation* op) {
    grpc::ClientContext ctx;
    v1::StartRestoreRequest request;
    request.mutable_options()->mutable_source()->set_path(dump_);
    request.mutable_options()->set_media_only(true);
    request.mutable_options()->set_media_dir(media_dir);
    v1::StartRestoreResponse response;
    grpc::Status status = stub->StartRestore(&ctx, request, &response);
    *op = response.operation();
    return status;
  };
  char real[PATH_MAX];
  ASSERT_NE(::realpath(media.c_str(), real), nullptr);
  v1::Operation first, second;
  grpc::Status started = media_only(media + "/sub", &first);
  ASSERT_TRUE(started.ok()) << started.error_message();
  EXPECT_EQ(first.target(), absl::StrCat("media:", real, "/sub"));
  AwaitHeld(1);
  grpc::Status conflict = media_only(media + "/alias", &second);
  EXPECT_EQ(conflict.error_code(), grpc::StatusCode::ABORTED) << conflict.error_message();
  EXPECT_THAT(conflict.error_message(), HasSubstr(first.id()));
  // The root holds the directory: a restore of all of it conflicts too.
  conflict = media_only(media, &second);
  EXPECT_EQ(conflict.error_code(), grpc::StatusCode::ABORTED) << conflict.error_message();
}

// 12. Names from a dump reach the terminal escaped: the CLI's detect output,
// and the agent's log.
TEST_F(HostileRequestTest, NamesWithEscapeSequencesArePrintedEscaped) {
  StartDaemon();
  CliStreams streams{std::tmpfile(), std::tmpfile()};
  int code = RunCli({"--agent", "unix:" + config_.socket_path, "detect", "--deep", dump_},
                    env_.get(), streams);
  auto read_all = [](std::FILE* f) {
    std::rewind(f);
    std::string s;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) s.append(buf, n);
    std::fclose(f);
    return s;
  };
  const std::string out = read_all(streams.out);
  const std::string err = read_all(streams.err);
  ASSERT_EQ(code, 0) << err;
  EXPECT_THAT(out, HasSubstr(kHostileTableShown));
  EXPECT_THAT(out, HasSubstr("dump\\x1b[31m.sql"));
  for (const std::string& text : {out, err, AllLogs()}) {
    EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
    EXPECT_EQ(text.find('\x07'), std::string::npos) << text;
    EXPECT_EQ(text.find("\xc2\x9b"), std::string::npos) << text;
  }
  // And as JSON: still valid, the controls escaped.
  streams = CliStreams{std::tmpfile(), std::tmpfile()};
  code = RunCli({"--agent", "unix:" + config_.socket_path, "--json", "detect", "--deep", dump_},
                env_.get(), streams);
  const std::string json = read_all(streams.out);
  read_all(streams.err);
  ASSERT_EQ(code, 0);
  EXPECT_THAT(json, HasSubstr("ev\\u001b]0;owned\\u0007il\\u001b[2J\\u009bx"));
  EXPECT_EQ(json.find('\x1b'), std::string::npos);
  EXPECT_EQ(json.find("\xc2\x9b"), std::string::npos);
}

}  // namespace
}  // namespace mastodon_restore
