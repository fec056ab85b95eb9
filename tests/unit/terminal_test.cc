// The CLI in a terminal: lines cut to the width, colour, the load's phases
// and the live progress line.
#include "cli/terminal.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "agent/jobs/load_progress.h"
#include "cli/follow.h"

namespace mastodon_restore {
namespace {

namespace v1 = ::mastodon::restore::v1;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(TerminalTest, FitToWidthCutsToDisplayColumns) {
  EXPECT_EQ(FitToWidth("abcdef", 4), "abcd");
  EXPECT_EQ(FitToWidth("abc", 4), "abc");
  EXPECT_EQ(FitToWidth("abcdef", 0), "abcdef");  // unknown width: not cut
  // Escape sequences take no column; a cut inside colour resets it.
  EXPECT_EQ(FitToWidth("\033[32mabcdef\033[0m", 3), "\033[32mabc\033[0m");
  EXPECT_EQ(DisplayColumns("\033[1;31mab\033[0m"), 2);
  // UTF-8 code points are one column, wide ones two, never cut in half.
  EXPECT_EQ(FitToWidth("h\xc3\xa9llo", 2), "h\xc3\xa9");
  EXPECT_EQ(DisplayColumns("\xe6\x97\xa5\xe6\x9c\xac"), 4);  // two CJK ideographs
  EXPECT_EQ(FitToWidth("\xe6\x97\xa5\xe6\x9c\xac", 3), "\xe6\x97\xa5");
}

TEST(TerminalTest, WrapToWidthFoldsLinesAtSpacesAndKeepsEveryCharacter) {
  // A report line: continuation under its value, after the label's padding.
  EXPECT_EQ(WrapToWidth("warning  the backup has no env file\nok\n", 20),
            "warning  the backup\n         has no env\n         file\nok\n");
  // A painted label with its padding inside the colour.
  EXPECT_EQ(WrapToWidth("\033[33mwarning  \033[0m the backup has", 20),
            "\033[33mwarning  \033[0m the backup\n          has");
  // A step line: four columns deeper than its own indentation.
  EXPECT_EQ(WrapToWidth("    load succeeded: 900000 rows", 20),
            "    load succeeded:\n        900000 rows");
  // A word wider than the room is broken where the room ends.
  EXPECT_EQ(WrapToWidth("id op-20261204-042714-12d1\n", 12),
            "id\n    op-20261\n    204-0427\n    14-12d1\n");
  // Lines that fit, an unknown width, and colours (no column, never split).
  EXPECT_EQ(WrapToWidth("short\n", 20), "short\n");
  EXPECT_EQ(WrapToWidth("a b c d e f", 0), "a b c d e f");
  EXPECT_EQ(WrapToWidth("    load \033[32msucceeded\033[0m: 900000 rows", 20),
            "    load \033[32msucceeded\033[0m:\n        900000 rows");
  // Nothing is lost, and no line is wider than asked.
  const std::string text =
      "warning        as superuser: created the staging database "
      "'shaped_copy__restore_op-20261204-042714-12d1'; the dump loads as the temporary role\n";
  const std::string wrapped = WrapToWidth(text, 40);
  for (absl::string_view line : absl::StrSplit(wrapped, '\n')) {
    EXPECT_LE(DisplayColumns(line), 40) << line;
  }
  EXPECT_EQ(absl::StrReplaceAll(wrapped, {{" ", ""}, {"\n", ""}}),
            absl::StrReplaceAll(text, {{" ", ""}, {"\n", ""}}));
}

TEST(TerminalTest, WidthIsTheTerminalsAndFollowsSigwinch) {
  int master = -1;
  int slave = -1;
  struct winsize ws = {};
  ws.ws_col = 100;
  ws.ws_row = 30;
  ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, &ws), 0);
  TerminalWidth width(slave);
  EXPECT_EQ(width.Columns(), 100);
  ws.ws_col = 60;
  ASSERT_EQ(::ioctl(master, TIOCSWINSZ, &ws), 0);
  EXPECT_EQ(width.Columns(), 100);  // read again on the signal only
  ::raise(SIGWINCH);
  EXPECT_EQ(width.Columns(), 60);
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  EXPECT_EQ(TerminalColumns(pipe_fds[1]), 0);  // not a terminal
  for (int fd : {master, slave, pipe_fds[0], pipe_fds[1]}) ::close(fd);
}

TEST(TerminalTest, ColourFollowsTheFlagNoColorAndTheTerminal) {
  EXPECT_TRUE(UseColor(ColorMode::kAuto, true, nullptr));
  EXPECT_TRUE(UseColor(ColorMode::kAuto, true, ""));  // set but empty: ignored
  EXPECT_FALSE(UseColor(ColorMode::kAuto, true, "1"));
  EXPECT_FALSE(UseColor(ColorMode::kAuto, false, nullptr));
  EXPECT_TRUE(UseColor(ColorMode::kAlways, false, "1"));
  EXPECT_FALSE(UseColor(ColorMode::kNever, true, nullptr));
  EXPECT_FALSE(ParseColorMode("sometimes").ok());
  EXPECT_EQ(*ParseColorMode("never"), ColorMode::kNever);
  EXPECT_EQ(Paint("failed", Color::kRed, true), "\033[1;31mfailed\033[0m");
  EXPECT_EQ(Paint("failed", Color::kRed, false), "failed");
}

TEST(LoadProgressModelTest, DataThenBuildsOneBarBelowTheTotalWhileBuildsRemain) {
  LoadProgressModel model(1000);
  LoadProgress p;
  p.rows = 10;
  LoadProgressModel::Report r = model.Update(p, 500);
  EXPECT_EQ(r.phase.name, "data");
  EXPECT_EQ(r.phase.done, 500);
  EXPECT_EQ(r.phase.total, 1000);
  EXPECT_EQ(r.phase.unit, "bytes");
  EXPECT_EQ(r.done, LoadProgressModel::kWorkTotal / 4);
  // The whole dump read: half the bar (the builds are still to come).
  r = model.Update(p, 1000);
  EXPECT_EQ(r.done, LoadProgressModel::kWorkTotal / 2);
  p.building = true;
  p.builds_total = 4;
  p.build_work_total = 400;
  int64_t last = r.done;
  for (int done = 0; done < 4; ++done) {
    p.builds_done = done;
    p.build_work_done = done * 100;
    r = model.Update(p, 1000);
    EXPECT_EQ(r.phase.name, "build");
    EXPECT_EQ(r.phase.done, done);
    EXPECT_EQ(r.phase.total, 4);
    EXPECT_EQ(r.phase.unit, "builds");
    EXPECT_GE(r.done, last);
    EXPECT_LT(r.done, LoadProgressModel::kWorkTotal) << done << " of 4 builds done";
    last = r.done;
  }
  EXPECT_EQ(r.done, LoadProgressModel::kWorkTotal / 2 + 3 * LoadProgressModel::kWorkTotal / 8);
  // The work estimate says all is done but a build is still running: not
  // the total yet.
  p.build_work_done = 400;
  EXPECT_LT(model.Update(p, 1000).done, LoadProgressModel::kWorkTotal);
  p.builds_done = 4;
  EXPECT_EQ(model.Update(p, 1000).done, LoadProgressModel::kWorkTotal);
}

TEST(LoadProgressModelTest, BuildsStartFromWhereTheDataLeftTheBar) {
  LoadProgressModel model(1000);
  LoadProgress p;
  model.Update(p, 300);  // the dump was smaller than its size said
  p.building = true;
  p.builds_total = 2;
  p.build_work_total = 200;
  const int64_t start = LoadProgressModel::kWorkTotal * 3 / 20;
  EXPECT_EQ(model.Update(p, 300).done, start);
  p.builds_done = 1;
  p.build_work_done = 100;
  EXPECT_EQ(model.Update(p, 300).done, start + (LoadProgressModel::kWorkTotal - start) / 2);
}

v1::OperationEvent LoadEvent(const std::string& phase, int64_t phase_done, int64_t phase_total,
                             const std::string& unit, int64_t done) {
  v1::OperationEvent e;
  e.set_type(v1::EVENT_TYPE_STEP_PROGRESS);
  e.set_step("load");
  e.set_message("TABLE DATA public.statuses, 2269390 rows");
  v1::Progress* p = e.mutable_progress();
  p->set_done(done);
  p->set_total(LoadProgressModel::kWorkTotal);
  p->set_unit("work");
  p->set_eta_seconds(95);
  p->set_phase(phase);
  p->set_phase_done(phase_done);
  p->set_phase_total(phase_total);
  p->set_phase_unit(unit);
  p->set_step_number(5);
  p->set_step_count(9);
  p->set_elapsed_seconds(3725);
  return e;
}

TEST(ProgressLineTest, NamesTheStepItsPlaceThePhaseAndTheTimes) {
  std::string line = RenderProgressLine(LoadEvent("data", 300 << 20, 700 << 20, "bytes", 2142));
  EXPECT_THAT(line, HasSubstr("load 5/9"));
  EXPECT_THAT(line, HasSubstr(" 21%"));
  EXPECT_THAT(line, HasSubstr("data 300.0 MiB of 700.0 MiB"));
  EXPECT_THAT(line, HasSubstr("elapsed 1:02:05, ETA 1:35"));
  EXPECT_THAT(line, HasSubstr("TABLE DATA public.statuses"));
  line = RenderProgressLine(LoadEvent("build", 45, 189, "builds", 9999));
  EXPECT_THAT(line, HasSubstr("building 45/189"));
  EXPECT_THAT(line, HasSubstr(" 99%"));
  EXPECT_THAT(line, Not(HasSubstr("100%")));
  EXPECT_THAT(line, Not(HasSubstr("work")));
  const std::string text = RenderProgressText(LoadEvent("build", 45, 189, "builds", 9999));
  EXPECT_THAT(text, HasSubstr("    load 5/9: building 45/189, 99%, elapsed 1:02:05, ETA 1:35"));
}

TEST(ProgressLineTest, AStepWithoutPhasesShowsItsCount) {
  v1::OperationEvent e;
  e.set_type(v1::EVENT_TYPE_STEP_PROGRESS);
  e.set_step("media");
  e.mutable_progress()->set_done(3);
  e.mutable_progress()->set_total(12);
  e.mutable_progress()->set_unit("files");
  EXPECT_THAT(RenderProgressLine(e), HasSubstr("3/12 files"));
  EXPECT_THAT(RenderProgressLine(e), HasSubstr(" 25%"));
}

}  // namespace
}  // namespace mastodon_restore
