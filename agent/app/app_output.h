// Reading what Mastodon's commands print: tootctl's progress bars, per-item
// errors and summary lines, and Rails' migration lines. Pure functions: the
// runners feed them one line at a time (a pseudo-terminal's redraws arrive
// as separate lines).
#ifndef MR_AGENT_APP_APP_OUTPUT_H_
#define MR_AGENT_APP_APP_OUTPUT_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace mastodon_restore {

// `line` without ANSI escape sequences (Thor's colours, cursor movements).
std::string StripAnsi(absl::string_view line);

// A ruby-progressbar count: "12/345 |====   | ETA: 00:01:02", optionally
// after a title ("Importing 3/10 |"). `total` is -1 when the bar shows "??".
struct ProgressCount {
  int64_t done = 0;
  int64_t total = -1;
};
std::optional<ProgressCount> ParseProgressLine(absl::string_view line);

// True for tootctl's per-item failure lines ("Error processing 123: ...",
// search deploy's "Error while importing AccountsIndex: ..."), which do not
// change its exit code.
bool IsItemErrorLine(absl::string_view line);

// A tootctl summary line and the count it reports:
//   Downloaded 12 media attachments (approx. 3.4 MB)
//   Removed 5 media attachments (approx. 1 MB)
//   Removed media from 7 preview cards (approx. 2 MB)   (4.6)
//   Removed 7 preview cards                              (before 4.6)
//   Refreshed 40 accounts
//   Regenerated feeds for 3 accounts
//   Indexed 100 records, de-indexed 2
// A dry run's " (DRY RUN)" suffix is kept in `text`.
struct SummaryLine {
  std::string text;
  int64_t count = 0;
  bool dry_run = false;
};
std::optional<SummaryLine> ParseSummaryLine(absl::string_view line);

// A Rails migration line: "== 20240307180905 MigrateDeviseTwoFactorSecrets:
// migrating ====" (done=false) or "...: migrated (0.0123s) ===" (done=true).
struct MigrationLine {
  std::string version;
  std::string name;
  bool done = false;
};
std::optional<MigrationLine> ParseMigrationLine(absl::string_view line);

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_APP_OUTPUT_H_
