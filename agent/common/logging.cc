#include "agent/common/logging.h"

#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/common/terminal_text.h"

namespace mastodon_restore {
namespace {

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

// sd-daemon(3) priorities.
int SyslogPriority(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return 7;
    case LogLevel::kInfo:
      return 6;
    case LogLevel::kWarning:
      return 4;
    case LogLevel::kError:
      return 3;
  }
  return 6;
}

void WriteStderr(const std::string& line) {
  std::string out = line + "\n";
  const char* p = out.data();
  size_t left = out.size();
  while (left > 0) {
    ssize_t n = ::write(STDERR_FILENO, p, left);
    if (n <= 0) return;
    p += n;
    left -= static_cast<size_t>(n);
  }
}

}  // namespace

bool ParseLogLevel(absl::string_view text, LogLevel* level) {
  std::string t = absl::AsciiStrToLower(text);
  if (t == "debug") {
    *level = LogLevel::kDebug;
  } else if (t == "info") {
    *level = LogLevel::kInfo;
  } else if (t == "warning" || t == "warn") {
    *level = LogLevel::kWarning;
  } else if (t == "error") {
    *level = LogLevel::kError;
  } else {
    return false;
  }
  return true;
}

std::string LogfmtValue(absl::string_view value) {
  bool quote = value.empty() || NeedsTerminalEscape(value);
  for (char c : value) quote = quote || c == ' ' || c == '"' || c == '=' || c == '\\';
  if (!quote) return std::string(value);
  std::string escaped;
  for (char c : value) {
    if (c == '"' || c == '\\') escaped += '\\';
    escaped += c;
  }
  // Control characters (and bytes that are not UTF-8) shown escaped: the
  // record stays on one line and a name from a backup cannot drive the
  // terminal that shows the log.
  return absl::StrCat("\"", TerminalSafe(escaped), "\"");
}

Logger::Logger(LogLevel min_level, bool journald) : Logger(min_level, journald, WriteStderr) {}

Logger::Logger(LogLevel min_level, bool journald, Sink sink)
    : min_level_(min_level), journald_(journald), sink_(std::move(sink)) {}

std::string Logger::Format(LogLevel level, absl::string_view msg,
                           const std::vector<LogField>& fields, absl::string_view timestamp) const {
  std::string line;
  if (journald_) {
    absl::StrAppend(&line, "<", SyslogPriority(level), ">");
  } else {
    absl::StrAppend(&line, "ts=", timestamp, " ");
  }
  absl::StrAppend(&line, "level=", LevelName(level), " msg=", LogfmtValue(msg));
  for (const LogField& f : fields) {
    absl::StrAppend(&line, " ", f.first, "=", LogfmtValue(f.second));
  }
  return line;
}

void Logger::Log(LogLevel level, absl::string_view msg, const std::vector<LogField>& fields) {
  if (static_cast<int>(level) < static_cast<int>(min_level_)) return;
  std::string ts;
  if (!journald_) {
    ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  }
  std::string line = Format(level, msg, fields, ts);
  std::lock_guard<std::mutex> lock(mu_);
  sink_(line);
}

}  // namespace mastodon_restore
