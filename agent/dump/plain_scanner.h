// Scans the text of a plain SQL dump (pg_dump, pg_dumpall, or the restore.sql
// of a pg_dump tar archive) and collects what it says about itself: versions,
// \restrict markers, risky SET lines, roles, database sections with their byte
// ranges, CREATE DATABASE encoding and locale, COPY row counts, the Mastodon
// schema version, and the completion trailer.
//
// The only parser of the pg_dumpall layout: detection reads the section
// ranges from it, and the loader (database/section_filter.h) runs it over the
// stream it loads to find them as it goes.
//
// Memory is bounded whatever the input: lines longer than kMaxLineBytes are
// examined by their first kMaxLineBytes only, and the lists are capped
// (kMaxListed databases, roles, tables; a dump with more databases than that
// sets facts().limit_error, since its sections cannot be told apart).
#ifndef MR_AGENT_DUMP_PLAIN_SCANNER_H_
#define MR_AGENT_DUMP_PLAIN_SCANNER_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace mastodon_restore {

// The loader's default bounds on a plain dump (database/load_options.h says
// why), here so that detection can tell a dump that exceeds them.
constexpr int64_t kDefaultMaxStatementBytes = 256LL << 20;
constexpr int64_t kDefaultMaxLineBytes = 256LL << 20;
constexpr int64_t kDefaultMaxCopyRowBytes = 1LL << 30;

enum class PlainKind { kUnknown, kDump, kDumpall, kTarRestoreScript };

struct CopyTable {
  std::string table;  // as written after COPY, e.g. "public.statuses"
  int64_t rows = 0;
  int64_t bytes = 0;
};

// One database's part of the dump: the whole file for pg_dump, a section for
// pg_dumpall.
struct DumpSection {
  std::string name;
  // The section's first byte: the "--" line before its "-- Database \"x\"
  // dump" marker (the marker's own line without one), or a pre-11 dump's
  // \connect; its end is where the next section or the completion trailer
  // (its "--" line) starts, or the end of the dump.
  int64_t begin_offset = 0;
  int64_t end_offset = -1;  // -1 until known
  std::string encoding;
  std::string locale;
  std::string locale_provider;
  // BUILTIN_LOCALE or ICU_LOCALE of CREATE DATABASE.
  std::string provider_locale;
  bool has_schema_migrations = false;
  bool has_statuses = false;
  // Highest schema_migrations version seen in its COPY data.
  std::string schema_version;
  std::vector<CopyTable> tables;
};

struct PlainDumpFacts {
  PlainKind kind = PlainKind::kUnknown;
  std::string dumper_version;
  std::string server_version;
  int restrict_lines = 0;
  bool null_restrict_key = false;
  // Settings a target may reject ("transaction_timeout", ...), in order.
  std::vector<std::string> risky_settings;
  // Roles the dump creates or alters (cluster dumps), in order.
  std::vector<std::string> roles;
  // pg_dump: one section (named by CREATE DATABASE when --create was used).
  // pg_dumpall: one per database (template1, postgres, then the others).
  std::vector<DumpSection> sections;
  bool complete = false;
  int64_t bytes = 0;
  int64_t lines = 0;
  // Statements that are not COPY data, for progress.
  std::vector<std::string> warnings;
  // True when the dump loads data with COPY ... FROM '$$PATH$$/NNNN.dat'.
  bool uses_path_placeholders = false;
  // Meta-commands other than \connect, \restrict, \unrestrict (first few).
  std::vector<std::string> other_meta_commands;
  // The longest line of SQL and the longest COPY row (bytes without the
  // newline) and the line numbers where they are.
  int64_t longest_line = 0, longest_line_no = 0;
  int64_t longest_row = 0, longest_row_no = 0;
  // Tables (COPY blocks) and roles not listed: over kMaxListed.
  int64_t unlisted_tables = 0;
  int64_t unlisted_roles = 0;
  // Set when the dump exceeds what the scanner can track (more than
  // kMaxListed database sections); facts() are then incomplete.
  std::string limit_error;
};

class PlainScanner {
 public:
  static constexpr size_t kMaxLineBytes = 64 * 1024;
  static constexpr size_t kMaxListed = 100000;

  // With `count_rows`, COPY rows are counted per table (deep scan).
  explicit PlainScanner(bool count_rows) : count_rows_(count_rows) {}

  // Feeds the next bytes of the dump, cut anywhere. A line is handled as
  // soon as its newline is fed: facts() are then up to date to there (a
  // section it starts or ends is in facts().sections).
  void Feed(absl::string_view chunk);
  // Ends the input: a final line without newline is processed, and the last
  // section's end is set when the input ended at `end_of_dump`.
  void Finish(bool end_of_dump);

  const PlainDumpFacts& facts() const { return facts_; }

 private:
  void HandleLine(absl::string_view line, int64_t offset, int64_t full_length);
  void HandleCopyLine(absl::string_view line);
  void HandleSqlLine(absl::string_view line, int64_t offset);
  void StartSection(const std::string& name, int64_t begin);
  DumpSection& Current();
  void AddRisky(const std::string& setting);
  void AddRole(const std::string& role);

  const bool count_rows_;
  PlainDumpFacts facts_;
  std::string carry_;
  bool carry_truncated_ = false;
  int64_t carry_offset_ = 0;
  int64_t carry_length_ = 0;  // of the whole line so far, truncated or not
  std::set<std::string> role_set_;
  int64_t listed_tables_ = 0;
  int64_t offset_ = 0;
  bool in_copy_ = false;
  bool copy_is_schema_migrations_ = false;
  CopyTable* copy_table_ = nullptr;
  bool saw_database_creation_ = false;  // pre-11 pg_dumpall layout
  std::string previous_line_;
  int64_t previous_line_offset_ = 0;
  // CREATE DATABASE facts by name (pre-11 dumps list them in the globals).
  std::map<std::string, DumpSection> created_;
  bool first_line_ = true;
};

// Compares two schema_migrations versions (digit strings) numerically.
bool SchemaVersionLess(absl::string_view a, absl::string_view b);

// Parses the database name of a \connect line ("\connect db",
// "\connect -reuse-previous=on \"dbname='We''ird'\""); empty when unparsable.
std::string ParseConnectTarget(absl::string_view line);

// Unquotes an SQL identifier ("a""b" -> a"b); returns plain names as they are.
std::string UnquoteIdentifier(absl::string_view ident);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DUMP_PLAIN_SCANNER_H_
