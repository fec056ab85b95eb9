#include "cli/terminal.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mastodon_restore {
namespace {

std::atomic<int> g_winch_generation{0};
void OnWinch(int) { g_winch_generation.fetch_add(1); }

void InstallWinchHandler() {
  static const bool installed = [] {
    struct sigaction sa = {};
    sa.sa_handler = OnWinch;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGWINCH, &sa, nullptr);
    return true;
  }();
  (void)installed;
}

bool IsWide(uint32_t c) {
  return (c >= 0x1100 && c <= 0x115F) || (c >= 0x2E80 && c <= 0xA4CF && c != 0x303F) ||
         (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0xF900 && c <= 0xFAFF) ||
         (c >= 0xFE30 && c <= 0xFE4F) || (c >= 0xFF00 && c <= 0xFF60) ||
         (c >= 0xFFE0 && c <= 0xFFE6) || (c >= 0x1F300 && c <= 0x1F64F) ||
         (c >= 0x1F900 && c <= 0x1F9FF) || (c >= 0x20000 && c <= 0x3FFFD);
}

// The length of the UTF-8 sequence starting at `s[i]` (1 for a stray byte)
// and its code point.
size_t DecodeAt(absl::string_view s, size_t i, uint32_t* c) {
  const unsigned char b = static_cast<unsigned char>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
  if (i + n > s.size()) n = 1;
  uint32_t v = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
  for (size_t k = 1; k < n; ++k) v = (v << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  *c = v;
  return n;
}

// The length of the escape sequence at `s[i]` (ESC [ params letter), 0 when
// there is none.
size_t EscapeAt(absl::string_view s, size_t i) {
  if (s[i] != '\033' || i + 1 >= s.size() || s[i + 1] != '[') return 0;
  size_t j = i + 2;
  while (j < s.size() && !((s[j] >= '@' && s[j] <= '~'))) ++j;
  return j < s.size() ? j - i + 1 : 0;
}

}  // namespace

int TerminalColumns(int fd) {
  struct winsize ws = {};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0) return 0;
  return ws.ws_col;
}

TerminalWidth::TerminalWidth(int fd) : fd_(fd) { InstallWinchHandler(); }

int TerminalWidth::Columns() {
  const int generation = g_winch_generation.load();
  if (generation != seen_generation_) {
    seen_generation_ = generation;
    columns_ = TerminalColumns(fd_);
  }
  return columns_;
}

int DisplayColumns(absl::string_view text) {
  int columns = 0;
  for (size_t i = 0; i < text.size();) {
    if (size_t esc = EscapeAt(text, i); esc > 0) {
      i += esc;
      continue;
    }
    uint32_t c = 0;
    i += DecodeAt(text, i, &c);
    columns += IsWide(c) ? 2 : 1;
  }
  return columns;
}

int UsableColumns(int columns) { return columns > 1 ? columns - 1 : 0; }

std::string FitToWidth(absl::string_view text, int columns) {
  if (columns <= 0 || DisplayColumns(text) <= columns) return std::string(text);
  std::string out;
  bool coloured = false;
  int used = 0;
  for (size_t i = 0; i < text.size();) {
    if (size_t esc = EscapeAt(text, i); esc > 0) {
      out.append(text.data() + i, esc);
      coloured = text.substr(i, esc) != "\033[0m";
      i += esc;
      continue;
    }
    uint32_t c = 0;
    const size_t n = DecodeAt(text, i, &c);
    const int w = IsWide(c) ? 2 : 1;
    if (used + w > columns) break;
    out.append(text.data() + i, n);
    used += w;
    i += n;
  }
  if (coloured) out += "\033[0m";
  return out;
}

namespace {

// Where the continuation lines of `line` start: after the first run of two
// or more spaces that follows the line's text (a label's padding), else four
// columns deeper than its own indentation; never more than half the width.
int HangingIndent(absl::string_view line, int columns) {
  size_t lead = 0;
  while (lead < line.size() && line[lead] == ' ') ++lead;
  int indent = static_cast<int>(lead) + 4;
  const size_t gap = line.find("  ", lead);
  if (gap != absl::string_view::npos) {
    // Past the padding, and the colour sequences around it (a label is
    // painted with or without its padding).
    size_t value = gap;
    while (value < line.size()) {
      const size_t esc = EscapeAt(line, value);
      if (esc == 0 && line[value] != ' ') break;
      value += esc > 0 ? esc : 1;
    }
    if (value < line.size()) indent = DisplayColumns(line.substr(0, value));
  }
  return std::min(indent, columns / 2);
}

// One line (no '\n') folded as WrapToWidth says, onto `out`.
void WrapLine(absl::string_view line, int columns, std::string* out) {
  const std::string pad(static_cast<size_t>(HangingIndent(line, columns)), ' ');
  bool first = true;
  while (true) {
    const int room = columns - (first ? 0 : static_cast<int>(pad.size()));
    // The byte after the last code point that fits, and after the last
    // space that does.
    size_t fit = 0;
    size_t space = absl::string_view::npos;
    int used = 0;
    for (size_t i = 0; i < line.size();) {
      if (size_t esc = EscapeAt(line, i); esc > 0) {
        i += esc;
        fit = i;
        continue;
      }
      uint32_t c = 0;
      const size_t n = DecodeAt(line, i, &c);
      const int w = IsWide(c) ? 2 : 1;
      if (used + w > room) break;
      if (c == ' ') space = i;
      used += w;
      i += n;
      fit = i;
    }
    if (fit < line.size() && line[fit] == ' ') space = fit;  // a word ends at the room's end
    if (!first) out->append(pad);
    if (fit >= line.size()) {
      out->append(line.data(), line.size());
      out->push_back('\n');
      return;
    }
    // Break at the last space when it leaves something on this line.
    size_t cut = fit;
    size_t next = fit;
    if (space != absl::string_view::npos && space > 0 && line.find_first_not_of(' ') < space) {
      cut = space;
      next = space + 1;
    }
    if (cut == 0) cut = next = std::max<size_t>(fit, 1);  // no room at all
    out->append(line.data(), cut);
    out->push_back('\n');
    line.remove_prefix(next);
    while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
    if (line.empty()) return;
    first = false;
  }
}

}  // namespace

std::string WrapToWidth(absl::string_view text, int columns) {
  if (columns <= 0) return std::string(text);
  std::string out;
  for (absl::string_view rest = text; !rest.empty();) {
    const size_t nl = rest.find('\n');
    const absl::string_view line = rest.substr(0, nl);
    if (DisplayColumns(line) <= columns) {
      out.append(line.data(), line.size());
      if (nl != absl::string_view::npos) out.push_back('\n');
    } else {
      WrapLine(line, columns, &out);
      if (nl == absl::string_view::npos) out.pop_back();  // it had no newline
    }
    if (nl == absl::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  return out;
}

absl::StatusOr<ColorMode> ParseColorMode(absl::string_view value) {
  if (value == "auto") return ColorMode::kAuto;
  if (value == "always") return ColorMode::kAlways;
  if (value == "never") return ColorMode::kNever;
  return absl::InvalidArgumentError(
      absl::StrCat("invalid --color '", value, "': expected auto, always or never"));
}

bool UseColor(ColorMode mode, bool terminal, const char* no_color) {
  switch (mode) {
    case ColorMode::kAlways:
      return true;
    case ColorMode::kNever:
      return false;
    case ColorMode::kAuto:
      break;
  }
  return terminal && (no_color == nullptr || *no_color == '\0');
}

std::string Paint(absl::string_view text, Color color, bool enabled) {
  if (!enabled || text.empty()) return std::string(text);
  const char* code = "";
  switch (color) {
    case Color::kGreen:
      code = "\033[32m";
      break;
    case Color::kRed:
      code = "\033[1;31m";
      break;
    case Color::kYellow:
      code = "\033[33m";
      break;
    case Color::kBold:
      code = "\033[1m";
      break;
    case Color::kDim:
      code = "\033[2m";
      break;
  }
  return absl::StrCat(code, text, "\033[0m");
}

}  // namespace mastodon_restore
