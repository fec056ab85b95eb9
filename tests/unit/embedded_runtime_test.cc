// The embedded runtime against a FakeEnv and a FakeCommandRunner: the
// commands that create and start its PostgreSQL cluster (postgres
// --version, initdb, the server on a private socket without TCP, as the
// postgres user when the agent is root), what it serves once started, its
// refusal of app tasks, and how it takes failures. No process runs: the
// "server" is a thread answering on the cluster's socket the way PQping
// needs. (The real cluster is exercised by the e2e tests.)
#include "agent/app/embedded_runtime.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/app/app_tasks.h"
#include "tests/harness/fake_command_runner.h"
#include "tests/harness/fake_env.h"
#include "tests/harness/recording_reporter.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

namespace v1 = ::mastodon::restore::v1;
using ::mastodon_restore::testing::FakeCommand;
using ::mastodon_restore::testing::FakeCommandRunner;
using ::mastodon_restore::testing::FakeEnv;
using ::mastodon_restore::testing::FakeReply;
using ::mastodon_restore::testing::StatusIs;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr char kBin[] = "/usr/lib/postgresql/15/bin";

// Listens on a PostgreSQL socket path and answers every startup packet with
// an authentication error: enough for PQping to say the server is up.
class FakePostgresSocket {
 public:
  explicit FakePostgresSocket(const std::string& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr = {};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    ok_ = fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
          ::listen(fd_, 8) == 0;
    if (ok_) thread_ = std::thread([this] { Serve(); });
  }
  ~FakePostgresSocket() {
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept()
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  bool ok() const { return ok_; }

 private:
  static bool ReadFull(int fd, char* buf, size_t n) {
    while (n > 0) {
      ssize_t r = ::read(fd, buf, n);
      if (r <= 0) return false;
      buf += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }
  void Serve() {
    for (;;) {
      int conn = ::accept(fd_, nullptr, nullptr);
      if (conn < 0) return;
      for (;;) {
        uint32_t len = 0;
        if (!ReadFull(conn, reinterpret_cast<char*>(&len), 4)) break;
        len = ntohl(len);
        if (len < 8 || len > 10000) break;
        std::string body(len - 4, '\0');
        if (!ReadFull(conn, body.data(), body.size())) break;
        uint32_t code = 0;
        std::memcpy(&code, body.data(), 4);
        code = ntohl(code);
        if (len == 8 && (code == 80877103 || code == 80877104)) {  // SSL or GSS request
          (void)!::write(conn, "N", 1);
          continue;
        }
        std::string fields("SFATAL\0VFATAL\0C28000\0Mfake server\0\0", 35);
        uint32_t n = htonl(static_cast<uint32_t>(fields.size() + 4));
        std::string msg = "E";
        msg.append(reinterpret_cast<const char*>(&n), 4);
        msg += fields;
        (void)!::write(conn, msg.data(), msg.size());
        break;
      }
      ::close(conn);
    }
  }
  int fd_ = -1;
  bool ok_ = false;
  std::thread thread_;
};

using ::mastodon_restore::testing::RecordingReporter;

class EmbeddedRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The directories are real (the runtime hands them to the postgres user
    // with chown(2)); everything else is the FakeEnv's.
    auto dir = testing::MakeTempDir("mr-embedded");
    ASSERT_OK(dir);
    dir_ = *dir;
    std::filesystem::create_directories(dir_ + "/sockets");
    env_.executables.insert(absl::StrCat(kBin, "/postgres"));
    runner_.On({absl::StrCat(kBin, "/postgres"), "--version"},
               FakeReply::Output({"postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"}));
    runner_.OnPrefix({absl::StrCat(kBin, "/initdb")}, FakeReply());
    FakeReply server;
    server.until_cancelled = true;  // runs until signalled
    runner_.OnPrefix({absl::StrCat(kBin, "/postgres"), "-D"}, server);
  }
  void TearDown() override { testing::RemoveTree(dir_); }

  std::string Socket() const { return dir_ + "/sockets/.s.PGSQL.5432"; }

  // The postgres user when the tests run as root (the runtime switches).
  static std::optional<uid_t> ServerUid() {
    if (::geteuid() != 0) return std::nullopt;
    struct passwd* pw = ::getpwnam("postgres");
    return pw == nullptr ? std::nullopt : std::optional<uid_t>(pw->pw_uid);
  }

  std::string dir_;
  FakeEnv env_;
  FakeCommandRunner runner_;
  RecordingReporter reporter_;
};

TEST_F(EmbeddedRuntimeTest, CreatesAndStartsAPrivateClusterAndServesIt) {
  FakePostgresSocket server(Socket());
  ASSERT_TRUE(server.ok());
  std::vector<std::string> signals;
  {
    auto runtime = EmbeddedRuntime::Start(dir_, "/srv/restored-media", &runner_, &env_);
    ASSERT_OK(runtime);
    EXPECT_EQ(env_.created_dirs[dir_], 0700u);

    std::vector<FakeCommand> cmds = runner_.commands();
    ASSERT_THAT(cmds, SizeIs(3));
    EXPECT_THAT(cmds[0].argv(), ElementsAre(absl::StrCat(kBin, "/postgres"), "--version"));
    // No data directory yet: initdb, trusting the private socket only.
    EXPECT_THAT(cmds[1].argv(),
                ElementsAre(absl::StrCat(kBin, "/initdb"), "-D", dir_ + "/data", "-U", "postgres",
                            "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"));
    EXPECT_EQ(cmds[1].spec.uid, ServerUid());
    // The server: port 5432 on the socket in the runtime's directory, no
    // TCP, as the postgres user, started (not run to completion).
    EXPECT_EQ(cmds[2].via, FakeCommand::Via::kStart);
    EXPECT_THAT(cmds[2].argv(),
                ElementsAre(absl::StrCat(kBin, "/postgres"), "-D", dir_ + "/data", "-k",
                            dir_ + "/sockets", "-p", "5432", "-c", "listen_addresses=", "-c",
                            "logging_collector=off", "-c", "log_min_messages=warning"));
    EXPECT_EQ(cmds[2].spec.uid, ServerUid());
    EXPECT_EQ(cmds[2].spec.output_file, dir_ + "/postgres.log");

    const Runtime& r = **runtime;
    EXPECT_EQ(r.kind(), v1::RUNTIME_KIND_EMBEDDED);
    EXPECT_EQ(r.name(), "embedded");
    EXPECT_THAT(r.evidence(), ElementsAre("PostgreSQL 15 cluster owned by the agent in " + dir_,
                                          "socket " + Socket()));
    // The cluster as superuser; no live database and no owner of its own.
    auto db = r.Database();
    ASSERT_OK(db);
    EXPECT_EQ(db->conninfo, absl::StrCat("host='", dir_,
                                         "/sockets' port=5432 user='postgres' dbname='postgres'"));
    EXPECT_EQ(db->database, "");
    EXPECT_EQ(db->owner, "");
    auto media = r.Media();
    ASSERT_OK(media);
    EXPECT_EQ(media->dir, "/srv/restored-media");
    EXPECT_FALSE(media->uid.has_value());
    EXPECT_EQ(r.EnvFilePath(), "");
    EXPECT_EQ(r.CodeDir(), "");
    EXPECT_EQ(r.MastodonVersion(), "");

    // No app: no services (work runs without stopping anything), no tasks.
    EXPECT_THAT(r.Services(), IsEmpty());
    EXPECT_THAT(r.ServiceCommands(false), IsEmpty());
    EXPECT_THAT(r.ServiceCommands(true), IsEmpty());
    runner_.ClearCommands();
    TaskContext ctx{&runner_, &env_, nullptr, &reporter_, "task"};
    bool ran = false;
    EXPECT_OK(WithServicesStopped(r, ctx, false, [&] {
      ran = true;
      return absl::OkStatus();
    }));
    EXPECT_TRUE(ran);
    EXPECT_THAT(r.Tootctl({"media", "remove"}),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         HasSubstr("the embedded runtime runs no Mastodon app")));
    EXPECT_THAT(r.DbMigrate(false), StatusIs(absl::StatusCode::kFailedPrecondition,
                                             HasSubstr("db migrate needs the snap")));
    EXPECT_THAT(RunTootctl(r, {"media", "remove"}, ctx),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_THAT(runner_.commands(), IsEmpty());
    EXPECT_THAT(runner_.signals(), IsEmpty());
  }
  // Destroyed: the server got a fast shutdown (SIGINT) and nothing else.
  EXPECT_THAT(runner_.signals(), ElementsAre(absl::StrCat(40000, ":", SIGINT)));
}

TEST_F(EmbeddedRuntimeTest, AnExistingClusterIsStartedWithoutInitdbAndMediaIsOptional) {
  env_.files[dir_ + "/data/PG_VERSION"] = "15\n";
  FakePostgresSocket server(Socket());
  ASSERT_TRUE(server.ok());
  auto runtime = EmbeddedRuntime::Start(dir_, "", &runner_, &env_);
  ASSERT_OK(runtime);
  std::vector<std::vector<std::string>> argvs = runner_.argvs();
  ASSERT_THAT(argvs, SizeIs(2));
  EXPECT_EQ(argvs[1][1], "-D");
  EXPECT_THAT((*runtime)->Media(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("--media-dir")));
}

TEST_F(EmbeddedRuntimeTest, NoPostgresqlInstalled) {
  env_.executables.clear();
  EXPECT_THAT(EmbeddedRuntime::Start(dir_, "", &runner_, &env_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "embedded runtime: unable to start PostgreSQL: no server binaries under "
                       "/usr/lib/postgresql (install postgresql-15)"));
  EXPECT_THAT(runner_.commands(), IsEmpty());
}

TEST_F(EmbeddedRuntimeTest, ServerBinaryMissingOrBroken) {
  runner_.On({absl::StrCat(kBin, "/postgres"), "--version"}, FakeReply::Missing());
  EXPECT_THAT(EmbeddedRuntime::Start(dir_, "", &runner_, &env_),
              StatusIs(absl::StatusCode::kNotFound,
                       "embedded runtime: unable to execute '/usr/lib/postgresql/15/bin/postgres': "
                       "No such file or directory"));
  runner_.On({absl::StrCat(kBin, "/postgres"), "--version"},
             FakeReply::Fails(127, "error while loading shared libraries: libpq.so.5\n"));
  EXPECT_THAT(EmbeddedRuntime::Start(dir_, "", &runner_, &env_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("--version': exited with status 127 error while loading shared "
                                 "libraries: libpq.so.5")));
}

TEST_F(EmbeddedRuntimeTest, InitdbFails) {
  runner_.OnPrefix({absl::StrCat(kBin, "/initdb")},
                   FakeReply::Fails(1, "initdb: error: invalid locale settings\n"));
  EXPECT_THAT(
      EmbeddedRuntime::Start(dir_, "", &runner_, &env_),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               absl::StrCat("embedded runtime: unable to initialise PostgreSQL cluster '", dir_,
                            "/data': initdb exited with status 1: initdb: error: invalid locale "
                            "settings")));
  // The server was not started.
  EXPECT_THAT(runner_.argvs(), SizeIs(2));
}

TEST_F(EmbeddedRuntimeTest, TheServerExitsAtOnce) {
  runner_.OnPrefix({absl::StrCat(kBin, "/postgres"), "-D"},
                   FakeReply::Fails(1, "FATAL:  could not create lock file\n"));
  env_.files[dir_ + "/postgres.log"] = "FATAL:  could not create lock file\n";
  EXPECT_THAT(EmbeddedRuntime::Start(dir_, "", &runner_, &env_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       absl::StrCat("embedded runtime: unable to start PostgreSQL in '", dir_,
                                    "/data': postgres exited with status 1; log: FATAL:  could "
                                    "not create lock file")));
  EXPECT_THAT(runner_.commands(),
              Contains(::testing::Field(&FakeCommand::via, FakeCommand::Via::kStart)));
}

}  // namespace
}  // namespace mastodon_restore
