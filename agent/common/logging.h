// Structured logging: one logfmt line per record on a sink (stderr by
// default), journald-friendly. Callers never pass secrets as fields.
#ifndef MR_AGENT_COMMON_LOGGING_H_
#define MR_AGENT_COMMON_LOGGING_H_

#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace mastodon_restore {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Parses "debug", "info", "warning"/"warn", "error". Returns false on others.
bool ParseLogLevel(absl::string_view text, LogLevel* level);

// A key/value field of a log record.
using LogField = std::pair<std::string, std::string>;

// Formats and writes log records. Thread-safe.
//
// Line shape: `ts=2026-11-21T05:50:00.123Z level=info msg="..." key=value`.
// With `journald` set, the line starts with the sd-daemon priority prefix
// ("<6>") and carries no timestamp (journald stamps it).
class Logger {
 public:
  // Where formatted lines go (without the trailing newline).
  using Sink = std::function<void(const std::string& line)>;

  // Writes to stderr.
  Logger(LogLevel min_level, bool journald);
  Logger(LogLevel min_level, bool journald, Sink sink);

  Logger(const Logger&) = delete;
  Logger& operator=(const Logger&) = delete;

  void Log(LogLevel level, absl::string_view msg, const std::vector<LogField>& fields = {});
  void Debug(absl::string_view msg, const std::vector<LogField>& fields = {}) {
    Log(LogLevel::kDebug, msg, fields);
  }
  void Info(absl::string_view msg, const std::vector<LogField>& fields = {}) {
    Log(LogLevel::kInfo, msg, fields);
  }
  void Warning(absl::string_view msg, const std::vector<LogField>& fields = {}) {
    Log(LogLevel::kWarning, msg, fields);
  }
  void Error(absl::string_view msg, const std::vector<LogField>& fields = {}) {
    Log(LogLevel::kError, msg, fields);
  }

  // Formats one record (exposed for tests).
  std::string Format(LogLevel level, absl::string_view msg, const std::vector<LogField>& fields,
                     absl::string_view timestamp) const;

 private:
  const LogLevel min_level_;
  const bool journald_;
  Sink sink_;
  std::mutex mu_;
};

// Quotes a logfmt value when it holds spaces, quotes, '=' or control
// characters; control characters are shown escaped (TerminalSafe) so a
// record stays on one line and cannot drive a terminal.
std::string LogfmtValue(absl::string_view value);

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_LOGGING_H_
