#include "agent/database/host_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/common/dir.h"
#include "agent/common/errors.h"
#include "agent/common/failpoint.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

// What is read of a pid, proc or configuration file at most.
constexpr size_t kSmallFile = 1 << 20;

// The configuration files a cluster may keep in its data directory.
constexpr const char* kConfigFiles[] = {"postgresql.conf", "pg_hba.conf", "pg_ident.conf",
                                        "postgresql.auto.conf"};

// "/var/lib/postgresql/15/main" -> {"/var/lib/postgresql/15", "main"}.
absl::StatusOr<std::pair<std::string, std::string>> SplitDataDir(const std::string& data_dir) {
  std::string dir = data_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  const size_t slash = dir.rfind('/');
  if (dir.empty() || dir[0] != '/' || slash == std::string::npos || slash + 1 == dir.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", data_dir, "' is not an absolute data directory path"));
  }
  std::string parent = slash == 0 ? "/" : dir.substr(0, slash);
  std::string base = dir.substr(slash + 1);
  RETURN_IF_ERROR(CheckComponent(base));
  return std::make_pair(parent, base);
}

// True while process `pid` runs (a zombie, exited but not yet waited for
// by its parent, does not).
bool Alive(pid_t pid) {
  if (::kill(pid, 0) != 0) return false;
  auto proc = Dir::OpenPath("/proc");
  if (!proc.ok()) return true;
  auto stat = proc->ReadFile(absl::StrCat(pid, "/stat"), kSmallFile);
  if (!stat.ok()) return false;
  // "pid (comm) S ...": the state follows the last ')'.
  const size_t paren = stat->rfind(')');
  return paren == std::string::npos || paren + 2 >= stat->size() || (*stat)[paren + 2] != 'Z';
}

// The pid of the postmaster running on `data` (in `copy`), if one is.
std::optional<pid_t> RunningPostmaster(const Dir& copy) {
  auto text = copy.ReadFile("data/postmaster.pid", kSmallFile);
  if (!text.ok()) return std::nullopt;
  int pid = 0;
  if (!absl::SimpleAtoi(text->substr(0, text->find('\n')), &pid) || pid <= 1) return std::nullopt;
  if (!Alive(pid)) return std::nullopt;
  // Only a postgres process is signalled, never whatever took the pid.
  auto dir = Dir::OpenPath("/proc");
  if (!dir.ok()) return std::nullopt;
  auto comm = dir->ReadFile(absl::StrCat(pid, "/comm"), kSmallFile);
  if (!comm.ok() || absl::StripAsciiWhitespace(*comm) != "postgres") return std::nullopt;
  return pid;
}

absl::Status StopPostmaster(const Dir& copy) {
  std::optional<pid_t> pid = RunningPostmaster(copy);
  if (!pid.has_value()) return absl::OkStatus();
  ::kill(*pid, SIGINT);  // fast shutdown
  for (int i = 0; i < 300 && Alive(*pid); ++i) absl::SleepFor(absl::Milliseconds(100));
  if (Alive(*pid)) {
    ::kill(*pid, SIGQUIT);  // immediate shutdown
    for (int i = 0; i < 100 && Alive(*pid); ++i) absl::SleepFor(absl::Milliseconds(100));
  }
  if (Alive(*pid)) {
    return absl::UnavailableError(
        absl::StrCat("the server on ", copy.PathOf("data"), " (pid ", *pid, ") does not stop"));
  }
  return absl::OkStatus();
}

// This host's configuration files replace the copy's (see the header).
absl::Status CarryConfig(const Dir& previous, const Dir& live) {
  for (const char* name : kConfigFiles) {
    auto st = previous.Stat(name);
    if (absl::IsNotFound(st.status())) {
      RETURN_IF_ERROR(live.Unlink(name));
      continue;
    }
    RETURN_IF_ERROR(st.status());
    ASSIGN_OR_RETURN(std::string data, previous.ReadFile(name, kSmallFile));
    RETURN_IF_ERROR(live.WriteFile(name, data, st->st_mode & 07777, st->st_uid, st->st_gid));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DebianCluster> ParseDebianCluster(const std::string& cluster_name) {
  const size_t slash = cluster_name.find('/');
  DebianCluster c;
  int major = 0;
  if (slash != std::string::npos) {
    c.version = cluster_name.substr(0, slash);
    c.name = cluster_name.substr(slash + 1);
  }
  bool name_ok = !c.name.empty() && c.name[0] != '-' && c.name[0] != '.';
  for (char ch : c.name) {
    name_ok = name_ok &&
              (std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.');
  }
  if (!absl::SimpleAtoi(c.version, &major) || major < 9 || !name_ok) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster_name '", cluster_name,
                     "' names no Debian cluster (VERSION/NAME, as pg_createcluster sets it)"));
  }
  return c;
}

absl::Status ControlCluster(const DebianCluster& cluster, bool start, const std::string& path,
                            CommandRunner* runner) {
  CommandSpec spec;
  spec.argv = {"pg_ctlcluster", cluster.version, cluster.name, start ? "start" : "stop"};
  if (!start) spec.argv.insert(spec.argv.end(), {"--mode", "fast"});
  spec.env = {absl::StrCat("PATH=", path), "LC_ALL=C.UTF-8"};
  spec.timeout = absl::Minutes(5);
  ASSIGN_OR_RETURN(CommandResult r, runner->Run(spec, nullptr));
  // 2: already running (start), not running (stop).
  if (r.exit_code == 0 || r.exit_code == 2) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("unable to ", start ? "start" : "stop",
                   " this host's PostgreSQL (pg_ctlcluster ", cluster.ToString(), " ", r.Describe(),
                   "): ", absl::StripAsciiWhitespace(r.stderr_text + r.stdout_text)));
}

std::string ClusterCopyDir(const std::string& data_dir, const std::string& operation_id) {
  auto split = SplitDataDir(data_dir);
  if (!split.ok()) return "";
  return absl::StrCat(split->first == "/" ? "" : split->first, "/.", split->second,
                      ".mastodon-restore-", operation_id);
}

std::string PreviousClusterName(const std::string& data_dir, const std::string& operation_id) {
  auto split = SplitDataDir(data_dir);
  return split.ok() ? absl::StrCat(split->second, ".previous-", operation_id) : "";
}

absl::Status CreateClusterCopyDir(const std::string& copy_dir, uid_t uid, gid_t gid,
                                  const std::string& hba) {
  ASSIGN_OR_RETURN(auto split, SplitDataDir(copy_dir));
  ASSIGN_OR_RETURN(Dir parent, Dir::OpenPath(split.first));
  ASSIGN_OR_RETURN(Dir copy, parent.MakeDir(split.second, 0700, uid, gid, false));
  return copy.WriteFile("standby-hba.conf", hba, 0600, uid, gid);
}

absl::Status PrepareClusterCopy(const std::string& copy_dir) {
  ASSIGN_OR_RETURN(Dir data, Dir::OpenPath(copy_dir + "/data"));
  if (data.Stat("postgresql.conf").ok()) return absl::OkStatus();
  ASSIGN_OR_RETURN(struct stat self, data.StatSelf());
  return data.WriteFile("postgresql.conf", "", 0600, self.st_uid, self.st_gid);
}

absl::StatusOr<std::string> CreateStandbySocketDir(const std::string& operation_id, uid_t uid,
                                                   gid_t gid) {
  RETURN_IF_ERROR(CheckComponent(operation_id));
  std::string templ = absl::StrCat("/tmp/mr-standby-", operation_id, "-XXXXXX");
  if (::mkdtemp(templ.data()) == nullptr) return ErrnoError(errno, "create directory", templ);
  ASSIGN_OR_RETURN(Dir dir, Dir::OpenPath(templ));
  if (::fchmod(dir.fd(), 0700) != 0) return ErrnoError(errno, "set the mode of", templ);
  if (::fchown(dir.fd(), uid, gid) != 0) return ErrnoError(errno, "change the owner of", templ);
  return templ;
}

absl::Status RemoveStandbySocketDirs(const std::string& operation_id) {
  RETURN_IF_ERROR(CheckComponent(operation_id));
  ASSIGN_OR_RETURN(Dir tmp, Dir::OpenPath("/tmp"));
  ASSIGN_OR_RETURN(std::vector<std::string> names, tmp.List());
  const std::string prefix = absl::StrCat("mr-standby-", operation_id, "-");
  absl::Status first;
  for (const std::string& name : names) {
    if (name.size() == prefix.size() + 6 && name.compare(0, prefix.size(), prefix) == 0) {
      first.Update(tmp.RemoveTree(name));
    }
  }
  return first;
}

absl::Status RemoveClusterCopy(const std::string& copy_dir) {
  ASSIGN_OR_RETURN(auto split, SplitDataDir(copy_dir));
  ASSIGN_OR_RETURN(Dir parent, Dir::OpenPath(split.first));
  auto copy = parent.OpenDir(split.second);
  if (absl::IsNotFound(copy.status())) return absl::OkStatus();
  RETURN_IF_ERROR(copy.status());
  RETURN_IF_ERROR(StopPostmaster(*copy));
  RETURN_IF_ERROR(parent.RemoveTree(split.second));
  return parent.Sync();
}

absl::Status SwapInClusterCopy(const std::string& data_dir, const std::string& copy_dir,
                               const std::string& previous_name) {
  ASSIGN_OR_RETURN(auto live, SplitDataDir(data_dir));
  ASSIGN_OR_RETURN(auto copy, SplitDataDir(copy_dir));
  RETURN_IF_ERROR(CheckComponent(previous_name));
  if (copy.first != live.first) {
    return absl::InvalidArgumentError(
        absl::StrCat("the copy ", copy_dir, " is not beside the data directory ", data_dir));
  }
  ASSIGN_OR_RETURN(Dir parent, Dir::OpenPath(live.first));
  ASSIGN_OR_RETURN(Dir copy_dir_fd, parent.OpenDir(copy.second));
  if (RunningPostmaster(copy_dir_fd).has_value()) {
    return absl::FailedPreconditionError(absl::StrCat("a server still runs on ", copy_dir));
  }
  RETURN_IF_ERROR(parent.Rename(live.second, parent, previous_name, /*no_replace=*/true));
  absl::Status moved = MR_FAILPOINT("cluster_swap.between_renames");
  if (moved.ok()) moved = copy_dir_fd.Rename("data", parent, live.second, /*no_replace=*/true);
  if (!moved.ok()) {
    parent.Rename(previous_name, parent, live.second, true).IgnoreError();
    return moved;
  }
  RETURN_IF_ERROR(parent.Sync());
  ASSIGN_OR_RETURN(Dir previous, parent.OpenDir(previous_name));
  ASSIGN_OR_RETURN(Dir now_live, parent.OpenDir(live.second));
  RETURN_IF_ERROR(CarryConfig(previous, now_live));
  RETURN_IF_ERROR(parent.RemoveTree(copy.second));
  return parent.Sync();
}

absl::StatusOr<bool> SettleClusterSwap(const std::string& data_dir, const std::string& copy_dir,
                                       const std::string& previous_name) {
  ASSIGN_OR_RETURN(auto live, SplitDataDir(data_dir));
  ASSIGN_OR_RETURN(auto copy, SplitDataDir(copy_dir));
  RETURN_IF_ERROR(CheckComponent(previous_name));
  ASSIGN_OR_RETURN(Dir parent, Dir::OpenPath(live.first));
  const bool has_live = parent.Stat(live.second).ok();
  const bool has_previous = parent.Stat(previous_name).ok();
  auto copy_fd = parent.OpenDir(copy.second);
  const bool copy_has_data = copy_fd.ok() && copy_fd->Stat("data").ok();
  if (has_live && has_previous && !copy_has_data) {
    // Both renames were done: complete the swap.
    ASSIGN_OR_RETURN(Dir previous, parent.OpenDir(previous_name));
    ASSIGN_OR_RETURN(Dir now_live, parent.OpenDir(live.second));
    RETURN_IF_ERROR(CarryConfig(previous, now_live));
    RETURN_IF_ERROR(parent.RemoveTree(copy.second));
    RETURN_IF_ERROR(parent.Sync());
    return true;
  }
  if (!has_live && has_previous) {
    RETURN_IF_ERROR(parent.Rename(previous_name, parent, live.second, /*no_replace=*/true));
  } else if (!has_live) {
    return absl::DataLossError(
        absl::StrCat("neither ", data_dir, " nor ", parent.PathOf(previous_name), " exists"));
  }
  RETURN_IF_ERROR(RemoveClusterCopy(copy_dir));
  RETURN_IF_ERROR(parent.Sync());
  return false;
}

}  // namespace mastodon_restore
