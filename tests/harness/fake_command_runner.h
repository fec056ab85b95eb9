// A CommandRunner for unit tests (after ninja's FakeCommandRunner): runs
// nothing, records every command it is given (argv, environment, working
// directory, stdin, user, timeout, pty, whether it could be cancelled) and
// answers with scripted results. A command no script matches fails the
// test (ADD_FAILURE) and is an INTERNAL error to the caller.
//
// Scripts match argv exactly (On) or by its first elements (OnPrefix); the
// newest matching script wins, so a test can change an answer midway. An
// answer can say that the program is missing (the error the real runner
// gives), exit non-zero, die by a signal, print lines (passed to on_line as
// the real runner does, stderr merged into stdout under a pty), run past
// the spec's timeout, or run until cancelled.
//
// Thread-safe: commands may run on several threads.
#ifndef MR_TESTS_HARNESS_FAKE_COMMAND_RUNNER_H_
#define MR_TESTS_HARNESS_FAKE_COMMAND_RUNNER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/common/subprocess.h"

namespace mastodon_restore {
namespace testing {

// What a scripted command does.
struct FakeReply {
  // Exit status (when not killed).
  int exit_code = 0;
  // Output lines, each passed to on_line and kept in stdout_text with a
  // '\n'.
  std::vector<std::string> stdout_lines;
  // Error output, passed to on_line line by line (from_stderr, or as stdout
  // under a pty, where the streams are one) and kept in stderr_text.
  std::string stderr_text;
  // Killed by this signal (exit_code is then -1).
  int term_signal = 0;
  // The program is not installed: Run, Start and StartReading return the
  // real runner's NOT_FOUND for argv[0] (nothing ran; the attempt is
  // recorded).
  bool missing = false;
  // Not OK: the program cannot be started for another reason (returned the
  // same way).
  absl::Status start_error;
  // How long the command "runs" (no real time passes): longer than the
  // spec's timeout makes it a timeout, killed by SIGTERM.
  absl::Duration duration = absl::ZeroDuration();
  // Runs until cancelled (really waits on the CancelToken, up to the spec's
  // timeout; without a token a finite timeout is reached at once, and an
  // infinite one fails the test). Start(): the process runs until
  // signalled.
  bool until_cancelled = false;

  // The program is not installed.
  static FakeReply Missing();
  // Exits 0 printing `lines`.
  static FakeReply Output(std::vector<std::string> lines);
  // Exits `code` with `stderr_text`.
  static FakeReply Fails(int code, std::string stderr_text);
};

// One command the runner was given.
struct FakeCommand {
  enum class Via { kRun, kStart, kStartReading };
  Via via = Via::kRun;
  // The spec as given (on_line and stdin_stream included).
  CommandSpec spec;
  // Run() got a CancelToken.
  bool cancellable = false;
  // StartReading()'s `what`.
  std::string what;

  const std::vector<std::string>& argv() const { return spec.argv; }
  const std::vector<std::string>& env() const { return spec.env; }
  // The value of `key` in spec.env ("" when absent: see HasEnv).
  std::string Env(const std::string& key) const;
  bool HasEnv(const std::string& key) const;
};

class FakeProcess;

class FakeCommandRunner : public CommandRunner {
 public:
  FakeCommandRunner() = default;
  ~FakeCommandRunner() override;
  FakeCommandRunner(const FakeCommandRunner&) = delete;
  FakeCommandRunner& operator=(const FakeCommandRunner&) = delete;

  // Answers commands whose argv is exactly `argv`.
  void On(std::vector<std::string> argv, FakeReply reply);
  // Answers commands whose argv starts with `prefix` (a one-element prefix
  // matches a program with any arguments).
  void OnPrefix(std::vector<std::string> prefix, FakeReply reply);

  // Every command so far, in order.
  std::vector<FakeCommand> commands() const;
  // Their argv.
  std::vector<std::vector<std::string>> argvs() const;
  // Forgets the recorded commands (the scripts stay).
  void ClearCommands();
  // Signals sent to processes from Start(), in order ("pid:signal").
  std::vector<std::string> signals() const;

  absl::StatusOr<CommandResult> Run(const CommandSpec& spec, const CancelToken* cancel) override;
  absl::StatusOr<std::unique_ptr<Process>> Start(const CommandSpec& spec) override;
  absl::StatusOr<std::unique_ptr<ByteStream>> StartReading(const CommandSpec& spec,
                                                           const std::string& what) override;

 private:
  friend class FakeProcess;
  struct Script {
    std::vector<std::string> argv;
    bool prefix = false;
    FakeReply reply;
  };
  // Records the command and returns the reply of its script (INTERNAL when
  // none matches: the test has failed).
  absl::StatusOr<FakeReply> Record(FakeCommand command);
  void RecordSignal(pid_t pid, int sig);

  mutable absl::Mutex mu_;
  std::vector<Script> scripts_ ABSL_GUARDED_BY(mu_);
  std::vector<FakeCommand> commands_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> signals_ ABSL_GUARDED_BY(mu_);
  pid_t next_pid_ ABSL_GUARDED_BY(mu_) = 40000;
};

// The result `reply` gives for `spec` (output through spec.on_line), as
// FakeCommandRunner::Run computes it; `cancel` may be null.
CommandResult FakeResult(const FakeReply& reply, const CommandSpec& spec,
                         const CancelToken* cancel);

}  // namespace testing
}  // namespace mastodon_restore

#endif  // MR_TESTS_HARNESS_FAKE_COMMAND_RUNNER_H_
