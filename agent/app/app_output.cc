#include "agent/app/app_output.h"

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"

namespace mastodon_restore {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads the digits at `*pos`; false when there are none.
bool ReadNumber(absl::string_view s, size_t* pos, int64_t* value) {
  size_t start = *pos;
  while (*pos < s.size() && IsDigit(s[*pos])) ++*pos;
  if (*pos == start || *pos - start > 18) return false;
  return absl::SimpleAtoi(s.substr(start, *pos - start), value);
}

// The first integer in `s` (digits and thousands separators ',').
std::optional<int64_t> FirstNumber(absl::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (!IsDigit(s[i])) continue;
    std::string digits;
    for (;
         i < s.size() && (IsDigit(s[i]) || (s[i] == ',' && i + 1 < s.size() && IsDigit(s[i + 1])));
         ++i) {
      if (s[i] != ',') digits.push_back(s[i]);
    }
    int64_t value;
    if (digits.size() <= 18 && absl::SimpleAtoi(digits, &value)) return value;
    return std::nullopt;
  }
  return std::nullopt;
}

}  // namespace

std::string StripAnsi(absl::string_view line) {
  std::string out;
  out.reserve(line.size());
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] != '\x1b') {
      out.push_back(line[i]);
      continue;
    }
    // ESC [ params final-byte (CSI), or ESC and one more character.
    if (i + 1 < line.size() && line[i + 1] == '[') {
      i += 2;
      while (i < line.size() && !(line[i] >= '@' && line[i] <= '~')) ++i;
    } else {
      ++i;
    }
  }
  return out;
}

std::optional<ProgressCount> ParseProgressLine(absl::string_view raw) {
  std::string line = StripAnsi(raw);
  absl::string_view s = line;
  for (size_t i = 0; i < s.size(); ++i) {
    if (!IsDigit(s[i]) || (i > 0 && IsDigit(s[i - 1]))) continue;
    size_t pos = i;
    ProgressCount count;
    if (!ReadNumber(s, &pos, &count.done) || pos >= s.size() || s[pos] != '/') continue;
    ++pos;
    if (absl::StartsWith(s.substr(pos), "??")) {
      pos += 2;
    } else if (!ReadNumber(s, &pos, &count.total)) {
      continue;
    }
    // The bar follows: " |".
    if (absl::StartsWith(s.substr(pos), " |")) return count;
  }
  return std::nullopt;
}

bool IsItemErrorLine(absl::string_view raw) {
  std::string line = StripAnsi(raw);
  absl::string_view s = absl::StripLeadingAsciiWhitespace(line);
  // "search deploy" logs an index's failed batches the same way:
  // "Error while importing StatusesIndex: ...".
  return absl::StartsWith(s, "Error processing ") || absl::StartsWith(s, "Error while importing ");
}

std::optional<SummaryLine> ParseSummaryLine(absl::string_view raw) {
  std::string line = StripAnsi(raw);
  absl::string_view s = absl::StripAsciiWhitespace(line);
  static constexpr const char* kPrefixes[] = {
      "Downloaded ", "Removed ", "Refreshed ", "Regenerated feeds for ", "Indexed ",
  };
  for (const char* prefix : kPrefixes) {
    if (!absl::StartsWith(s, prefix)) continue;
    absl::string_view rest = s.substr(absl::string_view(prefix).size());
    // "Removed media from 7 preview cards": the count follows the words.
    std::optional<int64_t> count = FirstNumber(rest);
    if (!count.has_value()) return std::nullopt;
    SummaryLine summary;
    summary.text = std::string(s);
    summary.count = *count;
    summary.dry_run = absl::EndsWith(s, "(DRY RUN)");
    return summary;
  }
  return std::nullopt;
}

std::optional<MigrationLine> ParseMigrationLine(absl::string_view raw) {
  std::string line = StripAnsi(raw);
  absl::string_view s = absl::StripAsciiWhitespace(line);
  // Usually at the start; after a prompt answered on a terminal without
  // echo ("Do you want to continue? [y/N] == 2024..."), further in.
  size_t at = 0;
  while (true) {
    at = s.find("== ", at);
    if (at == absl::string_view::npos) return std::nullopt;
    if (at + 3 < s.size() && IsDigit(s[at + 3])) break;
    at += 3;
  }
  s.remove_prefix(at + 3);
  size_t space = s.find(' ');
  if (space == absl::string_view::npos || space < 14) return std::nullopt;
  absl::string_view version = s.substr(0, space);
  for (char c : version) {
    if (!IsDigit(c)) return std::nullopt;
  }
  s.remove_prefix(space + 1);
  size_t colon = s.find(": ");
  if (colon == absl::string_view::npos || colon == 0) return std::nullopt;
  MigrationLine m;
  m.version = std::string(version);
  m.name = std::string(s.substr(0, colon));
  absl::string_view what = s.substr(colon + 2);
  if (absl::StartsWith(what, "migrated")) {
    m.done = true;
  } else if (!absl::StartsWith(what, "migrating")) {
    return std::nullopt;  // "reverting", "reverted": not a forward migration
  }
  return m;
}

}  // namespace mastodon_restore
