#include "cli/local_agent.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/common/errors.h"

namespace mastodon_restore {
namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

absl::StatusOr<std::string> FindAgentBinary() {
  char self[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string dir = std::filesystem::path(self).parent_path().string();
    for (const std::string& candidate :
         {dir + "/mastodon-restore-agent", dir + "/../agent/mastodon-restore-agent",
          dir + "/../sbin/mastodon-restore-agent"}) {
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  const char* path = std::getenv("PATH");
  return FindProgram("mastodon-restore-agent",
                     path != nullptr ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin");
}

absl::StatusOr<std::unique_ptr<LocalAgent>> LocalAgent::Start(
    const std::vector<std::string>& allowed_roots, CommandRunner* runner) {
  auto binary = FindAgentBinary();
  if (!binary.ok()) {
    return absl::NotFoundError(
        absl::StrCat("no agent to talk to and no mastodon-restore-agent to start one: ",
                     binary.status().message()));
  }
  std::unique_ptr<LocalAgent> agent(new LocalAgent());
  char tmpl[] = "/tmp/mastodon-restore-verify.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr)
    return ErrnoError(errno, "create", "/tmp/mastodon-restore-verify.*");
  agent->dir_ = tmpl;
  // The embedded PostgreSQL runs as the postgres user when we are root: it
  // must reach its directory.
  ::chmod(agent->dir_.c_str(), 0755);
  agent->socket_ = agent->dir_ + "/agent.sock";
  CommandSpec spec;
  spec.argv = {*binary,
               "--socket",
               agent->socket_,
               "--state-dir",
               agent->dir_ + "/state",
               "--runtime",
               "embedded",
               "--embedded-postgres",
               agent->dir_ + "/postgres",
               "--log-level",
               "warning",
               "--shutdown-grace",
               "5s"};
  for (const std::string& root : allowed_roots) {
    spec.argv.push_back("--allowed-root");
    spec.argv.push_back(root);
  }
  // Readiness the way systemd learns it: the agent sends READY=1 to
  // NOTIFY_SOCKET once it serves (the socket file alone appears before the
  // server listens).
  const std::string notify = agent->dir_ + "/notify.sock";
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError(errno, "create", notify);
  struct CloseFd {
    int fd;
    ~CloseFd() { ::close(fd); }
  } close_fd{fd};
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", notify.c_str());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return ErrnoError(errno, "bind", notify);
  }
  spec.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
              "NOTIFY_SOCKET=" + notify};
  spec.output_file = agent->dir_ + "/agent.log";
  auto process = runner->Start(spec);
  if (!process.ok()) return process.status();
  agent->process_ = std::move(*process);
  const absl::Time deadline = absl::Now() + absl::Minutes(2);
  while (absl::Now() < deadline) {
    pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) {
      char buf[512];
      ssize_t n = ::recv(fd, buf, sizeof(buf) - 1, 0);
      if (n > 0 && std::string(buf, static_cast<size_t>(n)).find("READY=1") != std::string::npos) {
        return agent;
      }
    }
    if (auto ended = agent->process_->Wait(absl::ZeroDuration()); ended.has_value()) {
      return absl::UnavailableError(absl::StrCat("the private agent did not start (",
                                                 ended->Describe(), "): ", agent->LogTail()));
    }
  }
  return absl::DeadlineExceededError(
      absl::StrCat("the private agent did not listen within 2 minutes: ", agent->LogTail()));
}

LocalAgent::~LocalAgent() {
  if (process_ != nullptr) {
    process_->Signal(SIGTERM);
    if (!process_->Wait(absl::Seconds(60)).has_value()) {
      process_->SignalGroup(SIGKILL);
      process_->Wait(absl::Seconds(10));
    }
  }
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::string LocalAgent::LogTail() const {
  std::string log = ReadText(dir_ + "/agent.log");
  return log.size() > 2000 ? log.substr(log.size() - 2000) : log;
}

}  // namespace mastodon_restore
