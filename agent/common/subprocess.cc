#include "agent/common/subprocess.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

constexpr char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Everything the child needs, prepared before fork() so that the child only
// makes async-signal-safe calls.
struct ExecPlan {
  std::string program;
  std::vector<std::string> argv_storage;
  std::vector<std::string> env_storage;
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::vector<gid_t> groups;
  bool drop_privileges = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

absl::StatusOr<ExecPlan> MakePlan(const CommandSpec& spec) {
  if (spec.argv.empty() || spec.argv[0].empty()) {
    return absl::InvalidArgumentError("unable to run a command: empty argv");
  }
  ExecPlan plan;
  std::string path = kDefaultPath;
  for (const std::string& kv : spec.env) {
    if (kv.rfind("PATH=", 0) == 0) path = kv.substr(5);
  }
  auto program = FindProgram(spec.argv[0], path);
  if (!program.ok()) return program.status();
  plan.program = *program;
  plan.argv_storage = spec.argv;
  plan.env_storage = spec.env;
  for (std::string& s : plan.argv_storage) plan.argv.push_back(s.data());
  plan.argv.push_back(nullptr);
  for (std::string& s : plan.env_storage) plan.envp.push_back(s.data());
  plan.envp.push_back(nullptr);
  if (spec.uid.has_value() || spec.gid.has_value()) {
    plan.drop_privileges = true;
    plan.uid = spec.uid.value_or(::getuid());
    plan.gid = spec.gid.value_or(::getgid());
    struct passwd pw;
    struct passwd* found = nullptr;
    std::vector<char> buf(16384);
    if (::getpwuid_r(plan.uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) {
      int n = 64;
      std::vector<gid_t> groups(n);
      if (::getgrouplist(pw.pw_name, plan.gid, groups.data(), &n) < 0) {
        groups.resize(n);
        ::getgrouplist(pw.pw_name, plan.gid, groups.data(), &n);
      }
      groups.resize(n);
      plan.groups = groups;
    } else {
      plan.groups = {plan.gid};
    }
  }
  return plan;
}

// Child side of fork(): async-signal-safe calls only.
[[noreturn]] void ExecChild(const ExecPlan& plan, const CommandSpec& spec, int stdin_fd,
                            int stdout_fd, int stderr_fd, int error_pipe) {
  auto fail = [&error_pipe](int stage) {
    int payload[2] = {stage, errno};
    ssize_t ignored = ::write(error_pipe, payload, sizeof(payload));
    (void)ignored;
    ::_exit(127);
  };
  // Signals: default dispositions and an empty mask (a daemon blocks
  // SIGTERM/SIGINT for sigwait and ignores SIGPIPE; exec would keep both).
  sigset_t empty;
  sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  ::signal(SIGPIPE, SIG_DFL);
  ::setsid();
  // Passed descriptors: first copied above 3 + n (F_DUPFD never replaces an
  // open descriptor), the error pipe too, then each put at 3 + i, so that
  // no copy overwrites a descriptor still to be copied.
  const int passed = static_cast<int>(spec.pass_fds.size());
  int copies[64];
  if (passed > 64) fail(1);
  for (int i = 0; i < passed; ++i) {
    copies[i] = ::fcntl(spec.pass_fds[static_cast<size_t>(i)], F_DUPFD_CLOEXEC, 3 + passed);
    if (copies[i] < 0) fail(1);
  }
  if (passed > 0) {
    int moved = ::fcntl(error_pipe, F_DUPFD_CLOEXEC, 3 + passed);
    if (moved < 0) fail(1);
    error_pipe = moved;
  }
  if (::dup2(stdin_fd, 0) < 0 || ::dup2(stdout_fd, 1) < 0 || ::dup2(stderr_fd, 2) < 0) {
    fail(1);
  }
  // A terminal becomes the controlling one of the new session.
  if (spec.use_pty && ::ioctl(0, TIOCSCTTY, 0) != 0) fail(1);
  if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) fail(2);
  if (plan.drop_privileges) {
    if (::setgroups(plan.groups.size(), plan.groups.data()) != 0) fail(3);
    if (::setgid(plan.gid) != 0) fail(3);
    if (::setuid(plan.uid) != 0) fail(3);
  }
  if (spec.parent_death_signal != 0) {
    ::prctl(PR_SET_PDEATHSIG, spec.parent_death_signal);
  }
  for (int i = 0; i < passed; ++i) {
    if (::dup2(copies[i], 3 + i) < 0) fail(1);  // without close-on-exec
  }
  // Close every other descriptor (error_pipe is close-on-exec).
  ::syscall(SYS_close_range, 3 + passed, error_pipe - 1, 0);
  ::syscall(SYS_close_range, error_pipe + 1, ~0U, 0);
  ::execve(plan.program.c_str(), plan.argv.data(), plan.envp.data());
  fail(4);
  ::_exit(127);  // not reached
}

// Creates close-on-exec pipes; on failure none is left open.
absl::Status CreatePipes(const std::string& program, std::initializer_list<int*> pipes) {
  std::vector<int*> made;
  for (int* p : pipes) {
    if (::pipe2(p, O_CLOEXEC) != 0) {
      int err = errno;
      for (int* m : made) {
        ::close(m[0]);
        ::close(m[1]);
      }
      return ErrnoError(err, "create pipe for", program);
    }
    made.push_back(p);
  }
  return absl::OkStatus();
}

// Forks and execs; returns the pid once exec succeeded (or the exec error).
absl::StatusOr<pid_t> Spawn(const ExecPlan& plan, const CommandSpec& spec, int stdin_fd,
                            int stdout_fd, int stderr_fd) {
  int error_pipe[2];
  if (::pipe2(error_pipe, O_CLOEXEC) != 0) {
    return ErrnoError(errno, "create pipe for", plan.program);
  }
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(error_pipe[0]);
    ::close(error_pipe[1]);
    return ErrnoError(err, "fork for", plan.program);
  }
  if (pid == 0) {
    ::close(error_pipe[0]);
    ExecChild(plan, spec, stdin_fd, stdout_fd, stderr_fd, error_pipe[1]);
  }
  ::close(error_pipe[1]);
  int payload[2];
  ssize_t n;
  do {
    n = ::read(error_pipe[0], payload, sizeof(payload));
  } while (n < 0 && errno == EINTR);
  ::close(error_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof(payload))) {
    int status;
    ::waitpid(pid, &status, 0);
    const char* stage = payload[0] == 2   ? "change directory for"
                        : payload[0] == 3 ? "drop privileges for"
                        : payload[0] == 4 ? "execute"
                                          : "set up";
    return ErrnoError(payload[1], stage, plan.program);
  }
  return pid;
}

void FillResult(int status, CommandResult* result) {
  if (WIFEXITED(status)) {
    result->exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result->exit_code = -1;
    result->term_signal = WTERMSIG(status);
  }
}

// Waits for `pid` up to `timeout`. Returns true and fills `status` if it ended.
bool WaitPid(pid_t pid, absl::Duration timeout, int* status) {
  absl::Time deadline = absl::Now() + timeout;
  absl::Duration sleep = absl::Milliseconds(1);
  while (true) {
    pid_t r = ::waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) {
      *status = 0;
      return true;  // already reaped elsewhere; treat as ended
    }
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(std::min(sleep, deadline - absl::Now()));
    sleep = std::min(sleep * 2, absl::Milliseconds(50));
  }
}

// Appends `data` to `capture`, keeping only its last `max` bytes.
void Capture(absl::string_view data, size_t max, std::string* capture) {
  capture->append(data.data(), data.size());
  if (capture->size() > max) capture->erase(0, capture->size() - max);
}

// Opens a pseudo-terminal pair: the master (close-on-exec, for the agent)
// and the slave (for the child), 200x50, echo off so typed answers do not
// come back as output.
absl::Status OpenPty(const std::string& program, int* master, int* slave) {
  *master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (*master < 0) return ErrnoError(errno, "open a pseudo-terminal for", program);
  char name[128];
  if (::grantpt(*master) != 0 || ::unlockpt(*master) != 0 ||
      ::ptsname_r(*master, name, sizeof(name)) != 0) {
    int err = errno;
    ::close(*master);
    return ErrnoError(err, "set up a pseudo-terminal for", program);
  }
  *slave = ::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (*slave < 0) {
    int err = errno;
    ::close(*master);
    return ErrnoError(err, "open", name);
  }
  struct termios tio;
  if (::tcgetattr(*slave, &tio) == 0) {
    tio.c_lflag &= ~(ECHO | ECHOE | ECHOK | ECHONL);
    ::tcsetattr(*slave, TCSANOW, &tio);
  }
  struct winsize ws = {};
  ws.ws_row = 50;
  ws.ws_col = 200;
  ::ioctl(*slave, TIOCSWINSZ, &ws);
  return absl::OkStatus();
}

class PosixProcess : public Process {
 public:
  explicit PosixProcess(pid_t pid) : pid_(pid) {}
  ~PosixProcess() override {
    if (!reaped_) {
      SignalGroup(SIGKILL);
      int status;
      WaitPid(pid_, absl::Seconds(5), &status);
    }
  }
  pid_t pid() const override { return pid_; }
  void Signal(int sig) override {
    if (!reaped_) ::kill(pid_, sig);
  }
  void SignalGroup(int sig) override {
    if (!reaped_) ::kill(-pid_, sig);
  }
  std::optional<CommandResult> Wait(absl::Duration timeout) override {
    if (reaped_) return result_;
    int status;
    if (!WaitPid(pid_, timeout, &status)) return std::nullopt;
    reaped_ = true;
    FillResult(status, &result_);
    return result_;
  }

 private:
  const pid_t pid_;
  bool reaped_ = false;
  CommandResult result_;
};

// stdout of a running process; stderr collects in an anonymous memory file.
class PipedOutputStream : public ByteStream {
 public:
  // Streams `input` into `stdin_fd` on a thread until it ends or fails.
  void Feed(ByteStream* input, int stdin_fd) {
    feeder_ = std::thread([this, input, stdin_fd]() {
      // A child that exits early must not kill us with SIGPIPE: write()
      // returns EPIPE instead.
      sigset_t pipe_set;
      sigemptyset(&pipe_set);
      sigaddset(&pipe_set, SIGPIPE);
      ::pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
      std::vector<char> buf(1 << 16);
      while (true) {
        auto n = input->Read(buf.data(), buf.size());
        if (!n.ok()) {
          feed_error_ = n.status();
          break;
        }
        if (*n == 0) break;
        size_t off = 0;
        while (off < *n) {
          ssize_t w = ::write(stdin_fd, buf.data() + off, *n - off);
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) {
            off = *n;  // the child closed its stdin (it exited): stop
            break;
          }
          off += static_cast<size_t>(w);
        }
        if (off < *n) break;
      }
      ::close(stdin_fd);
    });
  }

  PipedOutputStream(pid_t pid, int out_fd, int err_fd, std::string name, std::string what,
                    std::string program, absl::Duration kill_grace)
      : pid_(pid),
        out_fd_(out_fd),
        err_fd_(err_fd),
        name_(std::move(name)),
        what_(std::move(what)),
        program_(std::move(program)),
        kill_grace_(kill_grace) {}

  ~PipedOutputStream() override {
    if (out_fd_ >= 0) ::close(out_fd_);
    if (!reaped_) ::kill(-pid_, SIGTERM);
    if (feeder_.joinable()) feeder_.join();
    if (!reaped_) {
      ::kill(-pid_, SIGTERM);
      int status;
      if (!WaitPid(pid_, kill_grace_, &status)) {
        ::kill(-pid_, SIGKILL);
        WaitPid(pid_, absl::Seconds(10), &status);
      }
    }
    if (err_fd_ >= 0) ::close(err_fd_);
  }

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (!final_status_.ok()) return final_status_;
    if (out_fd_ < 0) return 0;
    while (true) {
      ssize_t r = ::read(out_fd_, buf, n);
      if (r > 0) return static_cast<size_t>(r);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return ErrnoError(errno, "read output of", program_);
      break;
    }
    ::close(out_fd_);
    out_fd_ = -1;
    int status = 0;
    WaitPid(pid_, absl::InfiniteDuration(), &status);
    reaped_ = true;
    if (feeder_.joinable()) feeder_.join();
    if (!feed_error_.ok()) {
      final_status_ = feed_error_;
      return final_status_;
    }
    CommandResult result;
    FillResult(status, &result);
    if (result.success()) return 0;
    std::string err;
    char chunk[4096];
    ::lseek(err_fd_, 0, SEEK_SET);
    ssize_t k;
    while ((k = ::read(err_fd_, chunk, sizeof(chunk))) > 0) {
      Capture(absl::string_view(chunk, k), 2000, &err);
    }
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    final_status_ = absl::InvalidArgumentError(absl::StrCat("unable to ", what_, " '", name_,
                                                            "': ", program_, " ", result.Describe(),
                                                            err.empty() ? "" : ": ", err));
    return final_status_;
  }

  const std::string& name() const override { return name_; }

 private:
  pid_t pid_;
  int out_fd_;
  int err_fd_;
  std::string name_;
  std::string what_;
  std::string program_;
  absl::Duration kill_grace_;
  bool reaped_ = false;
  absl::Status final_status_;
  std::thread feeder_;
  absl::Status feed_error_;
};

class PosixCommandRunner : public CommandRunner {
 public:
  absl::StatusOr<CommandResult> Run(const CommandSpec& spec, const CancelToken* cancel) override;
  // Feeds stdin (when stdin_fd >= 0), reads the output streams (either may be
  // -1), honours timeout and cancellation, reaps the child; closes the fds.
  static absl::StatusOr<CommandResult> Collect(const CommandSpec& spec, const CancelToken* cancel,
                                               pid_t child, int stdin_fd, int out_fd, int err_fd);
  absl::StatusOr<std::unique_ptr<Process>> Start(const CommandSpec& spec) override;
  absl::StatusOr<std::unique_ptr<ByteStream>> StartReading(const CommandSpec& spec,
                                                           const std::string& what) override;
};

absl::StatusOr<std::unique_ptr<ByteStream>> PosixCommandRunner::StartReading(
    const CommandSpec& spec, const std::string& what) {
  if (spec.stdin_data.size() > 65536) {
    return absl::InvalidArgumentError("unable to start a reader process: stdin data over 64 KiB");
  }
  auto plan = MakePlan(spec);
  if (!plan.ok()) return plan.status();
  int in_pipe[2], out_pipe[2];
  RETURN_IF_ERROR(CreatePipes(plan->program, {in_pipe, out_pipe}));
  int err_fd = ::memfd_create("stderr", MFD_CLOEXEC);
  if (err_fd < 0) {
    int err = errno;
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) ::close(fd);
    return ErrnoError(err, "create stderr buffer for", plan->program);
  }
  // The password fits the pipe buffer: write it before the child runs.
  const bool stream_stdin = spec.stdin_stream != nullptr;
  size_t off = 0;
  while (off < spec.stdin_data.size()) {
    ssize_t w = ::write(in_pipe[1], spec.stdin_data.data() + off, spec.stdin_data.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) break;
    off += static_cast<size_t>(w);
  }
  if (!stream_stdin) ::close(in_pipe[1]);
  auto pid = Spawn(*plan, spec, in_pipe[0], out_pipe[1], err_fd);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  if (!pid.ok()) {
    ::close(out_pipe[0]);
    ::close(err_fd);
    if (stream_stdin) ::close(in_pipe[1]);
    return pid.status();
  }
  auto stream = std::make_unique<PipedOutputStream>(*pid, out_pipe[0], err_fd, spec.argv.back(),
                                                    what, spec.argv[0], spec.kill_grace);
  if (stream_stdin) stream->Feed(spec.stdin_stream, in_pipe[1]);
  return std::unique_ptr<ByteStream>(std::move(stream));
}

absl::StatusOr<CommandResult> PosixCommandRunner::Run(const CommandSpec& spec,
                                                      const CancelToken* cancel) {
  auto plan = MakePlan(spec);
  if (!plan.ok()) return plan.status();
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (spec.use_pty) {
    if (spec.stdin_data.size() > 4096) {
      return absl::InvalidArgumentError(
          absl::StrCat("unable to run '", plan->program, "': terminal input over 4 KiB"));
    }
    int master = -1, slave = -1;
    RETURN_IF_ERROR(OpenPty(plan->program, &master, &slave));
    // The answer waits in the terminal's input queue until the child reads.
    size_t off = 0;
    while (off < spec.stdin_data.size()) {
      ssize_t w = ::write(master, spec.stdin_data.data() + off, spec.stdin_data.size() - off);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) break;
      off += static_cast<size_t>(w);
    }
    auto pid = Spawn(*plan, spec, slave, slave, slave);
    ::close(slave);
    if (!pid.ok()) {
      ::close(master);
      return pid.status();
    }
    // Nothing more to write; the master is the child's only output.
    in_pipe[1] = -1;
    out_pipe[0] = master;
    err_pipe[0] = -1;
    return Collect(spec, cancel, *pid, in_pipe[1], out_pipe[0], err_pipe[0]);
  }
  RETURN_IF_ERROR(CreatePipes(plan->program, {in_pipe, out_pipe, err_pipe}));
  auto pid = Spawn(*plan, spec, in_pipe[0], out_pipe[1], err_pipe[1]);
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (!pid.ok()) {
    for (int fd : {in_pipe[1], out_pipe[0], err_pipe[0]}) ::close(fd);
    return pid.status();
  }
  if (spec.stdin_data.empty()) {
    ::close(in_pipe[1]);
    in_pipe[1] = -1;
  }
  return Collect(spec, cancel, *pid, in_pipe[1], out_pipe[0], err_pipe[0]);
}

absl::StatusOr<CommandResult> PosixCommandRunner::Collect(const CommandSpec& spec,
                                                          const CancelToken* cancel, pid_t child,
                                                          int stdin_fd, int out_fd, int err_fd) {
  const pid_t* pid = &child;
  CommandResult result;
  size_t stdin_written = 0;
  if (stdin_fd >= 0) ::fcntl(stdin_fd, F_SETFL, O_NONBLOCK);
  int fds[2] = {out_fd, err_fd};
  std::string pending[2];
  std::string* captures[2] = {&result.stdout_text, &result.stderr_text};
  auto emit_lines = [&](int stream, bool flush) {
    std::string& buf = pending[stream];
    size_t start = 0;
    while (true) {
      size_t nl = buf.find_first_of(spec.use_pty ? "\r\n" : "\n", start);
      if (nl == std::string::npos) break;
      if (spec.on_line && !(spec.use_pty && nl == start)) {
        spec.on_line(absl::string_view(buf).substr(start, nl - start), stream == 1);
      }
      start = nl + 1;
    }
    buf.erase(0, start);
    if (flush && !buf.empty()) {
      if (spec.on_line) spec.on_line(buf, stream == 1);
      buf.clear();
    }
  };

  const absl::Time deadline = spec.timeout == absl::InfiniteDuration() ? absl::InfiniteFuture()
                                                                       : absl::Now() + spec.timeout;
  absl::Time kill_at = absl::InfiniteFuture();
  bool term_sent = false;
  char buf[65536];
  while (fds[0] >= 0 || fds[1] >= 0) {
    if (!term_sent) {
      bool cancelled = cancel != nullptr && cancel->cancelled();
      bool timed_out = absl::Now() >= deadline;
      if (cancelled || timed_out) {
        result.cancelled = cancelled;
        result.timed_out = !cancelled && timed_out;
        ::kill(-*pid, SIGTERM);
        term_sent = true;
        kill_at = absl::Now() + spec.kill_grace;
      }
    } else if (absl::Now() >= kill_at) {
      ::kill(-*pid, SIGKILL);
      kill_at = absl::InfiniteFuture();
    }
    struct pollfd pfds[3];
    int nfds = 0;
    int index_of[3];
    for (int s = 0; s < 2; ++s) {
      if (fds[s] >= 0) {
        pfds[nfds] = {fds[s], POLLIN, 0};
        index_of[nfds++] = s;
      }
    }
    if (stdin_fd >= 0) {
      pfds[nfds] = {stdin_fd, POLLOUT, 0};
      index_of[nfds++] = 2;
    }
    int r = ::poll(pfds, nfds, 100);
    if (r < 0 && errno != EINTR) break;
    for (int i = 0; i < nfds && r > 0; ++i) {
      if (pfds[i].revents == 0) continue;
      int s = index_of[i];
      if (s == 2) {
        if (pfds[i].revents & (POLLERR | POLLHUP)) {
          ::close(stdin_fd);
          stdin_fd = -1;
          continue;
        }
        ssize_t n = ::write(stdin_fd, spec.stdin_data.data() + stdin_written,
                            spec.stdin_data.size() - stdin_written);
        if (n > 0) stdin_written += static_cast<size_t>(n);
        if ((n < 0 && errno != EAGAIN && errno != EINTR) ||
            stdin_written == spec.stdin_data.size()) {
          ::close(stdin_fd);
          stdin_fd = -1;
        }
        continue;
      }
      ssize_t n = ::read(fds[s], buf, sizeof(buf));
      if (n > 0) {
        Capture(absl::string_view(buf, n), spec.max_capture_bytes, captures[s]);
        pending[s].append(buf, n);
        emit_lines(s, false);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        // (EIO on a terminal master: the child side is closed.)
        emit_lines(s, true);
        ::close(fds[s]);
        fds[s] = -1;
      }
    }
  }
  if (stdin_fd >= 0) ::close(stdin_fd);
  // Output closed; the process may still run (it closed its streams, or a
  // grandchild keeps them). Keep honouring timeout and cancellation.
  int status = 0;
  while (!WaitPid(*pid, absl::Milliseconds(100), &status)) {
    if (!term_sent && ((cancel != nullptr && cancel->cancelled()) || absl::Now() >= deadline)) {
      result.cancelled = cancel != nullptr && cancel->cancelled();
      result.timed_out = !result.cancelled;
      ::kill(-*pid, SIGTERM);
      term_sent = true;
      kill_at = absl::Now() + spec.kill_grace;
    } else if (term_sent && absl::Now() >= kill_at) {
      ::kill(-*pid, SIGKILL);
      kill_at = absl::InfiniteFuture();
    }
  }
  FillResult(status, &result);
  return result;
}

absl::StatusOr<std::unique_ptr<Process>> PosixCommandRunner::Start(const CommandSpec& spec) {
  auto plan = MakePlan(spec);
  if (!plan.ok()) return plan.status();
  int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull < 0) return ErrnoError(errno, "open", "/dev/null");
  int out = devnull;
  if (!spec.output_file.empty()) {
    // Not through a symlink: the file may sit in a directory its command's
    // (unprivileged) user owns, e.g. the embedded cluster's postgres.log.
    out = ::open(spec.output_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC,
                 0600);
    if (out < 0) {
      int err = errno;
      ::close(devnull);
      if (err == ELOOP) {
        return UnableTo(absl::StatusCode::kFailedPrecondition, "open", spec.output_file,
                        "it is a symlink (refusing to follow it)");
      }
      return ErrnoError(err, "open", spec.output_file);
    }
  }
  auto pid = Spawn(*plan, spec, devnull, out, out);
  if (out != devnull) ::close(out);
  ::close(devnull);
  if (!pid.ok()) return pid.status();
  return std::unique_ptr<Process>(new PosixProcess(*pid));
}

}  // namespace

std::string CommandResult::Describe() const {
  std::string why = cancelled ? " (cancelled)" : timed_out ? " (timeout)" : "";
  if (term_signal != 0) {
    return absl::StrCat("killed by signal ", term_signal, " (", ::strsignal(term_signal), ")", why);
  }
  return absl::StrCat("exited with status ", exit_code, why);
}

std::string PassedFdPath(size_t index) { return absl::StrCat("/proc/self/fd/", 3 + index); }

absl::StatusOr<std::string> FindProgram(absl::string_view program, absl::string_view path) {
  if (program.find('/') != absl::string_view::npos) {
    std::string p(program);
    if (::access(p.c_str(), X_OK) != 0) return ErrnoError(errno, "execute", p);
    return p;
  }
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", program);
    struct stat st;
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return absl::NotFoundError(
      absl::StrCat("unable to find program '", program, "': not in PATH (", path, ")"));
}

std::unique_ptr<CommandRunner> NewPosixCommandRunner() {
  return std::make_unique<PosixCommandRunner>();
}

}  // namespace mastodon_restore
