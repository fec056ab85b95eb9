#include "agent/database/local_cluster.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

std::vector<std::string> ServerEnv() {
  return {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C.UTF-8", "LANG=C.UTF-8", "TZ=UTC"};
}

}  // namespace

absl::Status RunAsUnprivilegedUserIfRoot(LocalClusterOptions* options, const std::string& user) {
  if (::geteuid() != 0) return absl::OkStatus();
  struct passwd pw;
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("unable to run PostgreSQL as root and there is no '", user,
                     "' user to run it as (install postgresql-15)"));
  }
  options->uid = pw.pw_uid;
  options->gid = pw.pw_gid;
  return absl::OkStatus();
}

absl::StatusOr<std::string> CreateClusterBaseDir(const std::string& parent,
                                                 const std::string& prefix,
                                                 const LocalClusterOptions& options) {
  std::string templ = absl::StrCat(parent, "/", prefix, "XXXXXX");
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) return ErrnoError(errno, "create directory", templ);
  std::string dir = buf.data();
  if (::chmod(dir.c_str(), 0755) != 0) return ErrnoError(errno, "set mode of", dir);
  if (options.uid.has_value() &&
      ::chown(dir.c_str(), *options.uid, options.gid.value_or(static_cast<gid_t>(-1))) != 0) {
    return ErrnoError(errno, "change owner of", dir);
  }
  return dir;
}

std::string ConnInfoQuote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  out += "'";
  return out;
}

std::vector<int> InstalledPostgresVersions(Env* env, const std::string& root,
                                           const std::string& program) {
  std::vector<int> versions;
  auto names = env->ListDir(root);
  if (!names.ok()) return versions;
  for (const std::string& name : *names) {
    int major = 0;
    if (!absl::SimpleAtoi(name, &major)) continue;
    if (env->IsExecutable(absl::StrCat(root, "/", name, "/bin/", program))) {
      versions.push_back(major);
    }
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

absl::StatusOr<int> PickFreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError(errno, "create socket for", "127.0.0.1:0");
  struct sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoError(err, "bind", "127.0.0.1:0");
  }
  int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

LocalCluster::LocalCluster(LocalClusterOptions options, CommandRunner* runner, Env* env)
    : options_(std::move(options)), runner_(runner), env_(env) {
  data_dir_ = absl::StrCat(options_.base_dir, "/data");
  socket_dir_ = options_.socket_dir.empty() ? absl::StrCat(options_.base_dir, "/sockets")
                                            : options_.socket_dir;
  log_file_ = absl::StrCat(options_.base_dir, "/postgres.log");
}

LocalCluster::~LocalCluster() { Stop().IgnoreError(); }

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(
    const LocalClusterOptions& options, CommandRunner* runner, Env* env) {
  if (options.base_dir.empty() || options.base_dir[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("unable to start PostgreSQL in '",
                                                   options.base_dir, "': not an absolute path"));
  }
  if (!env->Exists(options.base_dir)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "unable to start PostgreSQL in '", options.base_dir, "': the directory does not exist"));
  }
  LocalClusterOptions opts = options;
  if (opts.bin_dir.empty()) {
    std::vector<int> versions = InstalledPostgresVersions(env, kDefaultPostgresRoot, "postgres");
    if (versions.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("unable to start PostgreSQL: no server binaries under ",
                       kDefaultPostgresRoot, " (install postgresql-15)"));
    }
    opts.bin_dir = absl::StrCat(kDefaultPostgresRoot, "/", versions.back(), "/bin");
  }
  if (::geteuid() == 0 && !opts.uid.has_value()) {
    return absl::InvalidArgumentError(
        "unable to start PostgreSQL as root: give an unprivileged user to run it as");
  }
  std::unique_ptr<LocalCluster> cluster(new LocalCluster(opts, runner, env));
  // The major version from the binaries' PG_VERSION-like output.
  CommandSpec version_cmd;
  version_cmd.argv = {absl::StrCat(opts.bin_dir, "/postgres"), "--version"};
  version_cmd.env = ServerEnv();
  version_cmd.timeout = absl::Seconds(10);
  ASSIGN_OR_RETURN(CommandResult version, runner->Run(version_cmd, nullptr));
  // "postgres (PostgreSQL) 15.18 (Debian ...)"
  absl::string_view text = version.stdout_text;
  size_t paren = text.find(") ");
  if (!version.success() || paren == absl::string_view::npos ||
      !absl::SimpleAtoi(text.substr(paren + 2, text.find('.', paren) - paren - 2),
                        &cluster->major_version_)) {
    return absl::FailedPreconditionError(
        absl::StrCat("unable to run '", version_cmd.argv[0], " --version': ", version.Describe(),
                     " ", absl::StripAsciiWhitespace(version.stdout_text + version.stderr_text)));
  }
  RETURN_IF_ERROR(env->CreateDirs(cluster->socket_dir_, 0755, false));
  if (opts.uid.has_value()) {
    if (::chown(cluster->socket_dir_.c_str(), *opts.uid, opts.gid.value_or(-1)) != 0) {
      return ErrnoError(errno, "change owner of", cluster->socket_dir_);
    }
  }
  if (!env->Exists(absl::StrCat(cluster->data_dir_, "/PG_VERSION"))) {
    RETURN_IF_ERROR(cluster->InitDb());
  }
  // A server left running by a previous owner (an agent that was killed) is
  // adopted: with a fixed port its socket answers.
  if (opts.port != 0) {
    cluster->port_ = opts.port;
    auto pid_file = env->ReadFile(absl::StrCat(cluster->data_dir_, "/postmaster.pid"));
    if (pid_file.ok() &&
        PQping(absl::StrCat(cluster->ConnInfo(), " connect_timeout=2").c_str()) == PQPING_OK) {
      int pid = 0;
      if (absl::SimpleAtoi(pid_file->substr(0, pid_file->find('\n')), &pid) && pid > 0) {
        cluster->adopted_pid_ = pid;
        return cluster;
      }
    }
  }
  absl::Status started;
  for (int attempt = 0; attempt < 5; ++attempt) {
    started = cluster->StartServer();
    // Another process may take a picked port between the pick and the bind.
    if (started.ok() || opts.port != 0 ||
        cluster->LogTail().find("could not bind") == std::string::npos) {
      break;
    }
  }
  RETURN_IF_ERROR(started);
  return cluster;
}

absl::Status LocalCluster::InitDb() {
  CommandSpec cmd;
  cmd.argv = {absl::StrCat(options_.bin_dir, "/initdb"),
              "-D",
              data_dir_,
              "-U",
              options_.superuser,
              "-A",
              "trust",
              "-E",
              "UTF8",
              absl::StrCat("--locale=", options_.locale)};
  if (options_.fast_unsafe) cmd.argv.push_back("--no-sync");
  cmd.env = ServerEnv();
  cmd.uid = options_.uid;
  cmd.gid = options_.gid;
  cmd.cwd = options_.base_dir;
  cmd.timeout = absl::Minutes(5);
  ASSIGN_OR_RETURN(CommandResult result, runner_->Run(cmd, nullptr));
  if (!result.success()) {
    return absl::FailedPreconditionError(
        absl::StrCat("unable to initialise PostgreSQL cluster '", data_dir_, "': initdb ",
                     result.Describe(), ": ", absl::StripAsciiWhitespace(result.stderr_text)));
  }
  return absl::OkStatus();
}

absl::Status LocalCluster::StartServer() {
  if (options_.port != 0) {
    port_ = options_.port;
  } else {
    ASSIGN_OR_RETURN(port_, PickFreePort());
  }
  CommandSpec cmd;
  cmd.argv = {absl::StrCat(options_.bin_dir, "/postgres"),
              "-D",
              data_dir_,
              "-k",
              socket_dir_,
              "-p",
              absl::StrCat(port_),
              "-c",
              absl::StrCat("listen_addresses=", options_.listen_tcp ? "127.0.0.1" : ""),
              "-c",
              "logging_collector=off",
              "-c",
              "log_min_messages=warning"};
  if (options_.fast_unsafe) {
    for (const char* s : {"fsync=off", "synchronous_commit=off", "full_page_writes=off",
                          "max_wal_size=4GB", "checkpoint_timeout=30min"}) {
      cmd.argv.push_back("-c");
      cmd.argv.push_back(s);
    }
  }
  for (const std::string& s : options_.settings) {
    cmd.argv.push_back("-c");
    cmd.argv.push_back(s);
  }
  cmd.env = ServerEnv();
  cmd.uid = options_.uid;
  cmd.gid = options_.gid;
  cmd.cwd = options_.base_dir;
  cmd.output_file = log_file_;
  if (options_.stop_with_parent) cmd.parent_death_signal = SIGQUIT;
  ASSIGN_OR_RETURN(server_, runner_->Start(cmd));

  const std::string conninfo = absl::StrCat(ConnInfo(), " connect_timeout=2");
  const absl::Time deadline = absl::Now() + options_.start_timeout;
  while (true) {
    if (PQping(conninfo.c_str()) == PQPING_OK) return absl::OkStatus();
    if (auto ended = server_->Wait(absl::ZeroDuration()); ended.has_value()) {
      server_.reset();
      return absl::FailedPreconditionError(
          absl::StrCat("unable to start PostgreSQL in '", data_dir_, "': postgres ",
                       ended->Describe(), "; log: ", LogTail(2000)));
    }
    if (absl::Now() >= deadline) {
      Stop().IgnoreError();
      return absl::DeadlineExceededError(absl::StrCat(
          "unable to start PostgreSQL in '", data_dir_, "': not accepting connections after ",
          absl::FormatDuration(options_.start_timeout), "; log: ", LogTail(2000)));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

absl::Status LocalCluster::Stop() {
  if (adopted_pid_ > 0) {
    // Not our child: signal it and wait for it to go.
    ::kill(adopted_pid_, SIGINT);
    for (int i = 0; i < 300 && ::kill(adopted_pid_, 0) == 0; ++i) {
      absl::SleepFor(absl::Milliseconds(100));
    }
    adopted_pid_ = 0;
    return absl::OkStatus();
  }
  if (server_ == nullptr) return absl::OkStatus();
  server_->Signal(SIGINT);  // fast shutdown
  auto ended = server_->Wait(absl::Seconds(30));
  if (!ended.has_value()) {
    server_->Signal(SIGQUIT);  // immediate shutdown
    ended = server_->Wait(absl::Seconds(10));
  }
  if (!ended.has_value()) {
    server_->SignalGroup(SIGKILL);
    server_->Wait(absl::Seconds(10));
  }
  server_.reset();
  return absl::OkStatus();
}

absl::Status LocalCluster::Restart() {
  RETURN_IF_ERROR(Stop());
  options_.port = port_;  // the same port, not a new free one
  return StartServer();
}

std::string LocalCluster::ConnInfo(const std::string& dbname) const {
  return absl::StrCat("host=", ConnInfoQuote(socket_dir_), " port=", port_,
                      " user=", ConnInfoQuote(options_.superuser),
                      " dbname=", ConnInfoQuote(dbname));
}

std::string LocalCluster::TcpConnInfo(const std::string& dbname) const {
  return absl::StrCat("host=127.0.0.1 port=", port_, " user=", ConnInfoQuote(options_.superuser),
                      " dbname=", ConnInfoQuote(dbname));
}

std::string LocalCluster::LogTail(size_t max_bytes) const {
  auto data = env_->ReadFile(log_file_);
  if (!data.ok()) return "(no log)";
  std::string text = *data;
  if (text.size() > max_bytes) text = text.substr(text.size() - max_bytes);
  return std::string(absl::StripAsciiWhitespace(text));
}

}  // namespace mastodon_restore
