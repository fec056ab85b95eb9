// What the CLI knows of the terminal it writes to: its width (followed
// through SIGWINCH), lines cut to it, and colour.
#ifndef MR_CLI_TERMINAL_H_
#define MR_CLI_TERMINAL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mastodon_restore {

// The columns of the terminal on `fd` (TIOCGWINSZ); 0 when `fd` is not a
// terminal or it does not say.
int TerminalColumns(int fd);

// The width of `fd`'s terminal, read again after each SIGWINCH. Start()
// installs the handler (once per process; it only sets a flag).
class TerminalWidth {
 public:
  explicit TerminalWidth(int fd);
  // The columns now (0: unknown), re-read when the window changed since
  // the last call.
  int Columns();

 private:
  const int fd_;
  int columns_ = 0;
  int seen_generation_ = -1;
};

// The columns a line may take on a terminal of `columns` (one short: a
// line filling the last column leaves some terminals about to wrap); 0
// when the width is unknown (0).
int UsableColumns(int columns);

// `text` cut to at most `columns` display columns (0: not cut). Escape
// sequences (ESC [ ... letter) take no column and are kept whole; a cut
// line ends with the sequence that resets colours when it held one. Wide
// characters (CJK, emoji) take two columns; other code points one.
std::string FitToWidth(absl::string_view text, int columns);

// `text` (lines ending in '\n') with every line longer than `columns`
// display columns (0: none) folded at spaces into lines of at most that
// many, nothing cut: the continuation lines are indented to where the
// line's value starts (after a label and its run of two or more spaces, as
// in "warning        ..."), else four columns deeper than the line. A word
// wider than the room left is broken where the room ends. Escape sequences
// take no column and are never split.
std::string WrapToWidth(absl::string_view text, int columns);

// Display columns of `text` as FitToWidth counts them.
int DisplayColumns(absl::string_view text);

// --color: "auto" (a terminal, unless NO_COLOR is set and not empty),
// "always", "never".
enum class ColorMode { kAuto, kAlways, kNever };
absl::StatusOr<ColorMode> ParseColorMode(absl::string_view value);
// Whether to colour: `no_color` is $NO_COLOR (nullptr when unset).
bool UseColor(ColorMode mode, bool terminal, const char* no_color);

// The colours of states.
enum class Color { kGreen, kRed, kYellow, kBold, kDim };
// `text` in `color` when `enabled`, else `text`.
std::string Paint(absl::string_view text, Color color, bool enabled);

}  // namespace mastodon_restore

#endif  // MR_CLI_TERMINAL_H_
