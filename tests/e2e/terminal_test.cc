// End-to-end: what a person sees in a terminal. The real CLI runs in a real
// pseudo-terminal of a fixed width (forkpty) during a restore that takes
// several seconds; a small screen emulator interprets what it writes (text,
// \r, \n, erase-line, cursor-up, colours) and the test asserts from the
// screen and from the frames of the live line.
#include "cli/terminal.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"

namespace mastodon_restore {
namespace e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A terminal screen of `width` columns: rows of cells (one code point
// each), the cursor, and how often text ran past the last column (the
// terminal wrapped it onto the next row).
class Screen {
 public:
  explicit Screen(int width) : width_(width) {}

  void Feed(const std::string& bytes) {
    for (char ch : bytes) FeedByte(ch);
  }

  int wraps() const { return wraps_; }
  // Every row, trailing blanks removed.
  std::vector<std::string> Rows() const {
    std::vector<std::string> out;
    for (const auto& row : rows_) {
      std::string s = absl::StrJoin(row, "");
      while (!s.empty() && s.back() == ' ') s.pop_back();
      out.push_back(s);
    }
    return out;
  }
  // The frames of the live line: each text of a row as it stood when a
  // '\r' or '\n' came (escape sequences left out).
  const std::vector<std::string>& frames() const { return frames_; }

 private:
  void Row() {
    if (static_cast<int>(rows_.size()) <= row_) rows_.resize(row_ + 1);
  }
  void EndFrame() {
    Row();
    std::string s = absl::StrJoin(rows_[row_], "");
    while (!s.empty() && s.back() == ' ') s.pop_back();
    if (!s.empty()) frames_.push_back(s);
  }
  void FeedByte(char ch) {
    const unsigned char b = static_cast<unsigned char>(ch);
    if (!escape_.empty()) {
      escape_ += ch;
      if (escape_.size() == 2 && ch != '[') {
        escape_.clear();  // not a CSI sequence: dropped
      } else if (escape_.size() > 2 && b >= '@' && b <= '~') {
        Csi(escape_.substr(2, escape_.size() - 3), ch);
        escape_.clear();
      }
      return;
    }
    if (ch == '\033') {
      escape_ = "\033";
      return;
    }
    if (!pending_.empty()) {
      pending_ += ch;
      if ((b & 0xC0) == 0x80 && pending_.size() < pending_len_) return;
      Put(pending_);
      pending_.clear();
      return;
    }
    if (ch == '\r') {
      EndFrame();
      col_ = 0;
    } else if (ch == '\n') {
      EndFrame();
      ++row_;
      Row();
    } else if (b >= 0xC0) {
      pending_ = std::string(1, ch);
      pending_len_ = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
    } else if (b >= 0x20) {
      Put(std::string(1, ch));
    }
  }
  void Put(const std::string& cell) {
    if (col_ >= width_) {  // auto-wrap
      ++wraps_;
      ++row_;
      col_ = 0;
    }
    Row();
    if (static_cast<int>(rows_[row_].size()) <= col_) rows_[row_].resize(col_ + 1, " ");
    rows_[row_][col_] = cell;
    ++col_;
  }
  void Csi(const std::string& params, char final) {
    int n = 0;
    if (!absl::SimpleAtoi(params, &n)) n = 0;
    Row();
    switch (final) {
      case 'K':  // erase in line: 0 to the end, 1 to the cursor, 2 all
        if (n == 0 && static_cast<int>(rows_[row_].size()) > col_) rows_[row_].resize(col_);
        if (n == 2) rows_[row_].clear();
        if (n == 1) {
          for (int i = 0; i <= col_ && i < static_cast<int>(rows_[row_].size()); ++i) {
            rows_[row_][i] = " ";
          }
        }
        break;
      case 'A':  // cursor up
        row_ = std::max(0, row_ - std::max(1, n));
        break;
      default:  // colours and the rest: no effect on the text
        break;
    }
  }

  const int width_;
  std::vector<std::vector<std::string>> rows_;
  int row_ = 0;
  int col_ = 0;
  int wraps_ = 0;
  std::string escape_;
  std::string pending_;
  size_t pending_len_ = 0;
  std::vector<std::string> frames_;
};

struct PtyRun {
  int exit_code = -1;
  std::string output;  // every byte the program wrote
};

// Runs `argv` with `env` on a new pseudo-terminal of `columns` x 40 and
// collects its output until it exits (at most `timeout`).
PtyRun RunInPty(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                int columns, absl::Duration timeout) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  struct winsize ws = {};
  ws.ws_col = static_cast<unsigned short>(columns);
  ws.ws_row = 40;
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, &ws);
  PtyRun run;
  if (pid < 0) {
    ADD_FAILURE() << "forkpty failed";
    return run;
  }
  if (pid == 0) {
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  const absl::Time deadline = absl::Now() + timeout;
  char buf[4096];
  while (absl::Now() < deadline) {
    struct pollfd p = {master, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    const ssize_t n = ::read(master, buf, sizeof(buf));
    if (n <= 0) break;  // EIO: the program and its terminal are gone
    run.output.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  if (absl::Now() >= deadline) {
    ADD_FAILURE() << "timed out";
    ::kill(pid, SIGKILL);
  }
  ::waitpid(pid, &status, 0);
  ::close(master);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

// The percentage of a live line's bar ("[####....]  42%"), -1 without one.
int BarPercent(const std::string& frame) {
  const size_t close = frame.find("] ");
  if (close == std::string::npos) return -1;
  const size_t percent = frame.find('%', close);
  if (percent == std::string::npos) return -1;
  int value = -1;
  std::string digits(frame.substr(close + 2, percent - close - 2));
  while (!digits.empty() && digits[0] == ' ') digits.erase(0, 1);
  return absl::SimpleAtoi(digits, &value) ? value : -1;
}

class TerminalCliTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    StartPostgres();
  }

  // A database shaped like Mastodon's biggest tables (accounts and their
  // statuses, with the indexes and the foreign key), dumped as plain SQL:
  // its load reads data for a few seconds, then builds for a few more.
  std::string MakeShapedDump() {
    EXPECT_OK(pg_->Exec("CREATE DATABASE shaped"));
    EXPECT_OK(pg_->Exec(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, username text NOT NULL, note text);"
        "INSERT INTO accounts SELECT i, 'user' || i, repeat(md5(i::text), 2) "
        "FROM generate_series(1, 100000) i;"
        "CREATE TABLE statuses (id bigint PRIMARY KEY, account_id bigint NOT NULL "
        "REFERENCES accounts, text text, created_at timestamptz, reblogs int);"
        "INSERT INTO statuses SELECT i, 1 + i % 100000, md5(i::text) || md5((i * 7)::text), "
        "timestamptz '2026-01-01' + i * interval '1 second', i % 97 "
        "FROM generate_series(1, 800000) i;"
        "CREATE INDEX statuses_account ON statuses (account_id, created_at);"
        "CREATE INDEX statuses_text ON statuses (text);"
        "CREATE INDEX statuses_created ON statuses (created_at);"
        "CREATE INDEX statuses_reblogs ON statuses (reblogs, id);"
        "CREATE INDEX accounts_username ON accounts (username);",
        "shaped"));
    CommandSpec dump;
    dump.argv = {pg_->bin_dir() + "/pg_dump", "-d", pg_->ConnInfo("shaped"), "-f",
                 dir_ + "/shaped.sql"};
    dump.env = {"PATH=/usr/bin:/bin"};
    auto dumped = runner_->Run(dump, nullptr);
    EXPECT_OK(dumped);
    if (dumped.ok()) {
      EXPECT_EQ(dumped->exit_code, 0) << dumped->stderr_text;
    }
    return dir_ + "/shaped.sql";
  }
};

TEST_F(TerminalCliTest, ARestoreInAnEightyColumnTerminal) {
  const std::string dump = MakeShapedDump();
  StartAgent({"--allowed-root", dir_});
  constexpr int kColumns = 80;
  PtyRun run = RunInPty(
      {MR_CLI_BIN, "--agent", socket_, "--timeout", "300s", "restore", "--db-only", "--jobs", "2",
       "--target-db", "shaped_copy", "--target-conninfo", pg_->ConnInfo(), dump},
      {"PATH=/usr/bin:/bin", "TERM=xterm", "LC_ALL=C.UTF-8"}, kColumns, absl::Seconds(280));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  Screen screen(kColumns);
  screen.Feed(run.output);
  const std::vector<std::string> rows = screen.Rows();
  const std::string text = absl::StrJoin(rows, "\n");
  std::cout << "The screen after the restore (" << kColumns << " columns):\n" << text << "\n";

  // Nothing ran past the last column: no line wrapped.
  EXPECT_EQ(screen.wraps(), 0) << text;
  for (const std::string& row : rows) EXPECT_LE(DisplayColumns(row), kColumns) << row;

  // The live line was redrawn in place: no progress line stays on the
  // screen, and no line is there twice.
  std::map<std::string, int> seen;
  for (const std::string& row : rows) {
    if (!row.empty()) ++seen[row];
    EXPECT_EQ(BarPercent(row), -1) << "a progress line left on the screen: " << row;
  }
  for (const auto& [row, count] : seen) EXPECT_EQ(count, 1) << row;

  // The load's frames: its phases named, the bar never going back, and
  // below 100% while builds remain.
  int data_frames = 0;
  int build_frames = 0;
  int last_percent = -1;
  std::string mid_load;
  for (const std::string& frame : screen.frames()) {
    // The live line: "    load 6/17  [###...". ("    load succeeded: ..."
    // is the step's result, a line of its own.)
    if (!absl::StartsWith(frame, "    load ") || frame.size() < 10 ||
        !absl::ascii_isdigit(static_cast<unsigned char>(frame[9]))) {
      continue;
    }
    const int percent = BarPercent(frame);
    ASSERT_GE(percent, 0) << frame;
    EXPECT_GE(percent, last_percent) << frame;
    last_percent = percent;
    EXPECT_THAT(frame, ::testing::ContainsRegex("^    load [0-9]+/[0-9]+ "));  // its place
    if (absl::StrContains(frame, " data ")) ++data_frames;
    if (absl::StrContains(frame, " building ")) {
      ++build_frames;
      EXPECT_LT(percent, 100) << frame;
      if (mid_load.empty()) mid_load = frame;
    }
  }
  EXPECT_GT(data_frames, 0) << absl::StrJoin(screen.frames(), "\n");
  EXPECT_GT(build_frames, 0) << absl::StrJoin(screen.frames(), "\n");
  std::cout << "A frame of the live line while building:\n" << mid_load << "\n";

  EXPECT_THAT(text, HasSubstr("    load succeeded"));
  EXPECT_THAT(text, HasSubstr("restored       shaped_copy"));
  // On a terminal, the states are in colour; not with NO_COLOR or
  // --color=never; forced with --color=always on a pipe.
  EXPECT_THAT(run.output, HasSubstr("\033[32msucceeded\033[0m"));
  const std::string id = OperationId(run.output);
  ASSERT_FALSE(id.empty()) << run.output;
  const std::vector<std::string> term = {"PATH=/usr/bin:/bin", "TERM=xterm"};
  PtyRun show =
      RunInPty({MR_CLI_BIN, "--agent", socket_, "ops", "show", id},
               {"PATH=/usr/bin:/bin", "TERM=xterm", "NO_COLOR=1"}, kColumns, absl::Seconds(60));
  EXPECT_EQ(show.exit_code, 0) << show.output;
  EXPECT_THAT(show.output, HasSubstr("succeeded"));
  EXPECT_THAT(show.output, Not(HasSubstr("\033[")));
  show = RunInPty({MR_CLI_BIN, "--agent", socket_, "--color=never", "ops", "show", id}, term,
                  kColumns, absl::Seconds(60));
  EXPECT_THAT(show.output, Not(HasSubstr("\033[")));
  show = RunInPty({MR_CLI_BIN, "--agent", socket_, "ops", "show", id}, term, kColumns,
                  absl::Seconds(60));
  EXPECT_THAT(show.output, HasSubstr("\033[32msucceeded\033[0m"));
  CommandResult piped = CliOnSocket({"ops", "show", id});
  EXPECT_THAT(piped.stdout_text, Not(HasSubstr("\033[")));
  piped = CliOnSocket({"--color=always", "ops", "show", id});
  EXPECT_THAT(piped.stdout_text, HasSubstr("\033[32msucceeded\033[0m"));
  piped = CliOnSocket({"--color=sometimes", "ops", "show", id});
  EXPECT_EQ(piped.exit_code, 2);
  EXPECT_THAT(piped.stderr_text, HasSubstr("expected auto, always or never"));
}

TEST_F(TerminalCliTest, AnUnreachableAgentSaysHowToStartIt) {
  CommandResult r = Cli({"--agent", dir_ + "/nobody.sock", "--timeout", "2s", "info"});
  EXPECT_EQ(r.exit_code, 3);
  // How it is started depends on what this host has installed.
  EXPECT_THAT(r.stderr_text,
              ::testing::ContainsRegex("start it on this host: sudo (systemctl|snap) start "
                                       "mastodon-restore[.-]agent"));
  EXPECT_THAT(r.stderr_text,
              HasSubstr("or check a backup without an agent: mastodon-restore verify-backup "
                        "--local SOURCE"));
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
