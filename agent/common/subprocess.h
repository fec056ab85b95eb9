// Running external programs: argv exec only (never a shell), an explicit
// environment, optional privilege drop, a timeout, cancellation (SIGTERM, then
// SIGKILL after a grace period) and output captured line by line.
#ifndef MR_AGENT_COMMON_SUBPROCESS_H_
#define MR_AGENT_COMMON_SUBPROCESS_H_

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/byte_stream.h"
#include "agent/common/cancel_token.h"

namespace mastodon_restore {

// What to run and how.
struct CommandSpec {
  // Program and arguments. A program name without '/' is looked up in the PATH
  // of `env` (or a standard PATH when `env` has none).
  std::vector<std::string> argv;
  // The child's whole environment ("KEY=VALUE"); nothing is inherited.
  std::vector<std::string> env;
  // Working directory; empty: the agent's.
  std::string cwd;
  // Run as this user and group (the caller must be root); supplementary
  // groups become those of `uid`'s user.
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  // Written to the child's stdin, which is then closed. Secrets go here or in
  // files, never on argv.
  std::string stdin_data;
  // StartReading only: streamed to the child's stdin by a feeder thread
  // (instead of stdin_data). Must outlive the returned stream.
  ByteStream* stdin_stream = nullptr;
  // Open descriptors the child gets as its fds 3, 4, ... in this order (every
  // other descriptor is closed): a file the agent opened and checked is
  // handed over as PassedFdPath(i) ("/proc/self/fd/3"), never as a path the
  // program would resolve again. The caller keeps them open until the
  // child has started.
  std::vector<int> pass_fds;
  // Killed (SIGTERM, then SIGKILL) when it runs longer. Default: no limit.
  absl::Duration timeout = absl::InfiniteDuration();
  // Time between SIGTERM and SIGKILL on timeout or cancellation.
  absl::Duration kill_grace = absl::Seconds(5);
  // Signal the child receives when the thread that started it exits (0: none).
  // Used for servers owned by a test process.
  int parent_death_signal = 0;
  // Run() only: the child gets a pseudo-terminal as its controlling terminal,
  // stdin, stdout and stderr (so programs that print progress only on a
  // terminal do so), 200 columns wide, without echo. Its output is all
  // "stdout"; stdin_data (at most 4 KiB, e.g. a "y" answer) is typed into
  // the terminal, which stays open until the child exits.
  bool use_pty = false;
  // Called for every complete output line (without the newline; a trailing
  // '\r' is kept so progress bars can be told apart). With use_pty, output
  // is split at '\r' as well as '\n' (each progress bar redraw is a line,
  // without the '\r') and empty pieces are dropped. Called on the thread
  // that runs the command.
  std::function<void(absl::string_view line, bool from_stderr)> on_line;
  // For Start(): file that receives stdout and stderr (appended); empty:
  // /dev/null. A symlink there is refused (FAILED_PRECONDITION), never
  // followed.
  std::string output_file;
  // Bytes of each stream kept in CommandResult (the tail).
  size_t max_capture_bytes = 1 << 20;
};

// How a command ended.
struct CommandResult {
  // Exit status when the program exited; -1 when it was killed by a signal.
  int exit_code = -1;
  // The signal that killed it, or 0.
  int term_signal = 0;
  bool timed_out = false;
  bool cancelled = false;
  // Tail of stdout and stderr (at most max_capture_bytes each).
  std::string stdout_text;
  std::string stderr_text;

  bool success() const { return exit_code == 0; }
  // "exited with status 3", "killed by signal 9 (timeout)", ...
  std::string Describe() const;
};

// A started, long-running process.
class Process {
 public:
  virtual ~Process() = default;
  virtual pid_t pid() const = 0;
  // Sends `sig` to the process (not to its children).
  virtual void Signal(int sig) = 0;
  // Sends `sig` to the process group (the process and its children).
  virtual void SignalGroup(int sig) = 0;
  // Waits up to `timeout` for the process to end; nullopt if still running.
  virtual std::optional<CommandResult> Wait(absl::Duration timeout) = 0;
};

// Runs programs. The real implementation forks and execs; tests use fakes.
class CommandRunner {
 public:
  virtual ~CommandRunner() = default;

  // Runs `spec` to completion. Returns an error only when the program could
  // not be started (not found, not executable, fork failure); a non-zero exit
  // is a CommandResult. `cancel` may be null.
  virtual absl::StatusOr<CommandResult> Run(const CommandSpec& spec, const CancelToken* cancel) = 0;

  // Starts `spec` and returns at once; stdin is /dev/null and the output goes
  // to spec.output_file. The returned Process must be waited for.
  virtual absl::StatusOr<std::unique_ptr<Process>> Start(const CommandSpec& spec) = 0;

  // Starts `spec` and returns its stdout as a stream (for decryptors and
  // extractors). spec.stdin_data (at most 64 KiB: a password) is written and
  // stdin closed before this returns. At the end of the output the process is
  // waited for; a non-zero exit turns the final Read() into an error carrying
  // the tail of its stderr, prefixed with `what` ("decrypt"). Destroying the
  // stream early terminates the process (SIGTERM, then SIGKILL).
  virtual absl::StatusOr<std::unique_ptr<ByteStream>> StartReading(const CommandSpec& spec,
                                                                   const std::string& what) = 0;
};

// The path under which a child sees CommandSpec::pass_fds[index]
// ("/proc/self/fd/<3 + index>").
std::string PassedFdPath(size_t index);

// The fork/exec implementation. Thread-safe.
std::unique_ptr<CommandRunner> NewPosixCommandRunner();

// Looks `program` up in `path` (colon-separated); returns it unchanged when it
// contains '/'. NOT_FOUND when no executable file matches.
absl::StatusOr<std::string> FindProgram(absl::string_view program, absl::string_view path);

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_SUBPROCESS_H_
