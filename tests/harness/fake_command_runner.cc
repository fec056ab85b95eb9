#include "tests/harness/fake_command_runner.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace mastodon_restore {
namespace testing {
namespace {

constexpr char kDefaultPath[] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::string Quoted(const std::vector<std::string>& argv) {
  return absl::StrCat("'", absl::StrJoin(argv, " "), "'");
}

bool Matches(const std::vector<std::string>& pattern, bool prefix,
             const std::vector<std::string>& argv) {
  if (prefix) {
    return argv.size() >= pattern.size() &&
           std::equal(pattern.begin(), pattern.end(), argv.begin());
  }
  return argv == pattern;
}

}  // namespace

FakeReply FakeReply::Missing() {
  FakeReply reply;
  reply.missing = true;
  return reply;
}

FakeReply FakeReply::Output(std::vector<std::string> lines) {
  FakeReply reply;
  reply.stdout_lines = std::move(lines);
  return reply;
}

FakeReply FakeReply::Fails(int code, std::string stderr_text) {
  FakeReply reply;
  reply.exit_code = code;
  reply.stderr_text = std::move(stderr_text);
  return reply;
}

std::string FakeCommand::Env(const std::string& key) const {
  std::string value;
  for (const std::string& kv : spec.env) {
    if (absl::StartsWith(kv, key + "=")) value = kv.substr(key.size() + 1);
  }
  return value;
}

bool FakeCommand::HasEnv(const std::string& key) const {
  return std::any_of(spec.env.begin(), spec.env.end(),
                     [&](const std::string& kv) { return absl::StartsWith(kv, key + "="); });
}

CommandResult FakeResult(const FakeReply& reply, const CommandSpec& spec,
                         const CancelToken* cancel) {
  CommandResult result;
  bool killed = false;
  if (reply.until_cancelled) {
    if (cancel == nullptr && spec.timeout == absl::InfiniteDuration()) {
      ADD_FAILURE() << "FakeCommandRunner: " << Quoted(spec.argv)
                    << " would run forever: no CancelToken and no timeout";
    }
    if (cancel != nullptr && cancel->WaitFor(spec.timeout)) {
      result.cancelled = true;
    } else {
      result.timed_out = true;
    }
    killed = true;
  } else if (reply.duration > spec.timeout) {
    result.timed_out = true;
    killed = true;
  } else if (cancel != nullptr && cancel->cancelled()) {
    // Cancelled before it could finish.
    result.cancelled = true;
    killed = true;
  }
  auto emit = [&](absl::string_view line, bool from_stderr) {
    if (spec.on_line) spec.on_line(line, from_stderr && !spec.use_pty);
  };
  // Under a pty the child's streams are one: everything is "stdout".
  for (const std::string& line : reply.stdout_lines) {
    emit(line, false);
    absl::StrAppend(&result.stdout_text, line, "\n");
  }
  if (!reply.stderr_text.empty()) {
    for (absl::string_view line : absl::StrSplit(reply.stderr_text, '\n', absl::SkipEmpty())) {
      emit(line, true);
    }
    absl::StrAppend(spec.use_pty ? &result.stdout_text : &result.stderr_text, reply.stderr_text);
  }
  if (killed) {
    result.exit_code = -1;
    result.term_signal = SIGTERM;
  } else if (reply.term_signal != 0) {
    result.exit_code = -1;
    result.term_signal = reply.term_signal;
  } else {
    result.exit_code = reply.exit_code;
  }
  return result;
}

// A process from Start(): ended at once with the scripted result, or (until
// cancelled) running until it is signalled.
class FakeProcess : public Process {
 public:
  FakeProcess(FakeCommandRunner* runner, pid_t pid, FakeReply reply, CommandSpec spec)
      : runner_(runner), pid_(pid), reply_(std::move(reply)), spec_(std::move(spec)) {}

  pid_t pid() const override { return pid_; }
  void Signal(int sig) override {
    runner_->RecordSignal(pid_, sig);
    if (signal_ == 0) signal_ = sig;
  }
  void SignalGroup(int sig) override { Signal(sig); }
  std::optional<CommandResult> Wait(absl::Duration) override {
    if (!reply_.until_cancelled) {
      FakeReply ended = reply_;
      ended.duration = absl::ZeroDuration();
      return FakeResult(ended, spec_, nullptr);
    }
    if (signal_ == 0) return std::nullopt;
    CommandResult result;
    result.exit_code = -1;
    result.term_signal = signal_;
    return result;
  }

 private:
  FakeCommandRunner* const runner_;
  const pid_t pid_;
  const FakeReply reply_;
  const CommandSpec spec_;
  int signal_ = 0;
};

namespace {

// StartReading()'s stream: the scripted stdout, then the exit as the real
// runner reports it.
class FakeOutputStream : public ByteStream {
 public:
  FakeOutputStream(CommandResult result, std::string name, std::string what, std::string program)
      : result_(std::move(result)),
        name_(std::move(name)),
        what_(std::move(what)),
        program_(std::move(program)) {}

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (offset_ < result_.stdout_text.size()) {
      size_t k = std::min(n, result_.stdout_text.size() - offset_);
      std::copy_n(result_.stdout_text.data() + offset_, k, buf);
      offset_ += k;
      return k;
    }
    if (result_.success()) return 0;
    std::string err(result_.stderr_text);
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    return absl::InvalidArgumentError(absl::StrCat("unable to ", what_, " '", name_,
                                                   "': ", program_, " ", result_.Describe(),
                                                   err.empty() ? "" : ": ", err));
  }
  const std::string& name() const override { return name_; }

 private:
  const CommandResult result_;
  const std::string name_;
  const std::string what_;
  const std::string program_;
  size_t offset_ = 0;
};

}  // namespace

FakeCommandRunner::~FakeCommandRunner() = default;

void FakeCommandRunner::On(std::vector<std::string> argv, FakeReply reply) {
  absl::MutexLock lock(&mu_);
  scripts_.push_back(Script{std::move(argv), false, std::move(reply)});
}

void FakeCommandRunner::OnPrefix(std::vector<std::string> prefix, FakeReply reply) {
  absl::MutexLock lock(&mu_);
  scripts_.push_back(Script{std::move(prefix), true, std::move(reply)});
}

std::vector<FakeCommand> FakeCommandRunner::commands() const {
  absl::MutexLock lock(&mu_);
  return commands_;
}

std::vector<std::vector<std::string>> FakeCommandRunner::argvs() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::vector<std::string>> out;
  for (const FakeCommand& c : commands_) out.push_back(c.spec.argv);
  return out;
}

void FakeCommandRunner::ClearCommands() {
  absl::MutexLock lock(&mu_);
  commands_.clear();
}

std::vector<std::string> FakeCommandRunner::signals() const {
  absl::MutexLock lock(&mu_);
  return signals_;
}

void FakeCommandRunner::RecordSignal(pid_t pid, int sig) {
  absl::MutexLock lock(&mu_);
  signals_.push_back(absl::StrCat(pid, ":", sig));
}

absl::StatusOr<FakeReply> FakeCommandRunner::Record(FakeCommand command) {
  absl::MutexLock lock(&mu_);
  const std::vector<std::string> argv = command.spec.argv;
  std::string path = kDefaultPath;
  for (const std::string& kv : command.spec.env) {
    if (absl::StartsWith(kv, "PATH=")) path = kv.substr(5);
  }
  commands_.push_back(std::move(command));
  if (argv.empty() || argv[0].empty()) {
    return absl::InvalidArgumentError("unable to run a command: empty argv");
  }
  // The newest matching script, exact or prefix.
  const Script* found = nullptr;
  for (auto it = scripts_.rbegin(); it != scripts_.rend() && found == nullptr; ++it) {
    if (Matches(it->argv, it->prefix, argv)) found = &*it;
  }
  if (found == nullptr) {
    ADD_FAILURE() << "FakeCommandRunner: unexpected command " << Quoted(argv);
    return absl::InternalError(
        absl::StrCat("FakeCommandRunner: unexpected command ", Quoted(argv)));
  }
  FakeReply reply = found->reply;
  if (reply.missing) {
    // The real runner's words for a missing program (FindProgram's).
    reply.start_error = argv[0].find('/') != std::string::npos
                            ? absl::NotFoundError(absl::StrCat("unable to execute '", argv[0],
                                                               "': No such file or directory"))
                            : absl::NotFoundError(absl::StrCat("unable to find program '", argv[0],
                                                               "': not in PATH (", path, ")"));
  }
  return reply;
}

absl::StatusOr<CommandResult> FakeCommandRunner::Run(const CommandSpec& spec,
                                                     const CancelToken* cancel) {
  FakeCommand command;
  command.via = FakeCommand::Via::kRun;
  command.spec = spec;
  command.cancellable = cancel != nullptr;
  absl::StatusOr<FakeReply> reply = Record(std::move(command));
  if (!reply.ok()) return reply.status();
  if (!reply->start_error.ok()) return reply->start_error;
  return FakeResult(*reply, spec, cancel);
}

absl::StatusOr<std::unique_ptr<Process>> FakeCommandRunner::Start(const CommandSpec& spec) {
  FakeCommand command;
  command.via = FakeCommand::Via::kStart;
  command.spec = spec;
  absl::StatusOr<FakeReply> reply = Record(std::move(command));
  if (!reply.ok()) return reply.status();
  if (!reply->start_error.ok()) return reply->start_error;
  pid_t pid;
  {
    absl::MutexLock lock(&mu_);
    pid = next_pid_++;
  }
  return std::unique_ptr<Process>(new FakeProcess(this, pid, *std::move(reply), spec));
}

absl::StatusOr<std::unique_ptr<ByteStream>> FakeCommandRunner::StartReading(
    const CommandSpec& spec, const std::string& what) {
  FakeCommand command;
  command.via = FakeCommand::Via::kStartReading;
  command.spec = spec;
  command.what = what;
  absl::StatusOr<FakeReply> reply = Record(std::move(command));
  if (!reply.ok()) return reply.status();
  if (!reply->start_error.ok()) return reply->start_error;
  return std::unique_ptr<ByteStream>(new FakeOutputStream(FakeResult(*reply, spec, nullptr),
                                                          spec.argv.back(), what, spec.argv[0]));
}

}  // namespace testing
}  // namespace mastodon_restore
