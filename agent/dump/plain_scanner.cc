#include "agent/dump/plain_scanner.h"

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace mastodon_restore {
namespace {

constexpr absl::string_view kDumpHeader = "-- PostgreSQL database dump";
constexpr absl::string_view kClusterHeader = "-- PostgreSQL database cluster dump";
constexpr absl::string_view kDumpComplete = "-- PostgreSQL database dump complete";
constexpr absl::string_view kClusterComplete = "-- PostgreSQL database cluster dump complete";

// Reads an identifier at the start of `s` (quoted or not); advances `s`.
std::string TakeIdentifier(absl::string_view* s) {
  absl::string_view in = *s;
  std::string out;
  if (!in.empty() && in[0] == '"') {
    size_t i = 1;
    while (i < in.size()) {
      if (in[i] == '"') {
        if (i + 1 < in.size() && in[i + 1] == '"') {
          out += '"';
          i += 2;
          continue;
        }
        ++i;
        break;
      }
      out += in[i++];
    }
    *s = in.substr(i);
    return out;
  }
  size_t end = 0;
  while (end < in.size() && in[end] != ' ' && in[end] != ';' && in[end] != '\t') ++end;
  out = std::string(in.substr(0, end));
  *s = in.substr(end);
  return out;
}

// Value of `key = 'value'` (quoted) or `key = value` (bare) in an option list.
std::string OptionValue(absl::string_view line, absl::string_view key) {
  std::string needle = absl::StrCat(" ", key, " = ");
  size_t at = line.find(needle);
  if (at == absl::string_view::npos) return "";
  absl::string_view rest = line.substr(at + needle.size());
  if (!rest.empty() && rest[0] == '\'') {
    std::string out;
    for (size_t i = 1; i < rest.size(); ++i) {
      if (rest[i] == '\'') {
        if (i + 1 < rest.size() && rest[i + 1] == '\'') {
          out += '\'';
          ++i;
          continue;
        }
        break;
      }
      out += rest[i];
    }
    return out;
  }
  size_t end = rest.find_first_of(" ;");
  return std::string(rest.substr(0, end));
}

bool EndsWithTableName(absl::string_view qualified, absl::string_view table) {
  if (qualified == table) return true;
  return absl::EndsWith(qualified, absl::StrCat(".", table)) ||
         absl::EndsWith(qualified, absl::StrCat(".\"", table, "\""));
}

}  // namespace

bool SchemaVersionLess(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return a.size() < b.size();
  return a < b;
}

std::string UnquoteIdentifier(absl::string_view ident) {
  absl::string_view s = ident;
  return TakeIdentifier(&s);
}

std::string ParseConnectTarget(absl::string_view line) {
  if (!absl::ConsumePrefix(&line, "\\connect ")) return "";
  line = absl::StripAsciiWhitespace(line);
  if (absl::ConsumePrefix(&line, "-reuse-previous=on ")) {
    // "dbname='name'" with ' doubled and " doubled by the shell-style quoting.
    std::string conn = TakeIdentifier(&line);
    absl::string_view c = conn;
    if (!absl::ConsumePrefix(&c, "dbname=")) return "";
    if (c.empty() || c[0] != '\'') return std::string(c);
    std::string out;
    for (size_t i = 1; i < c.size(); ++i) {
      if (c[i] == '\\' && i + 1 < c.size()) {
        out += c[++i];
        continue;
      }
      if (c[i] == '\'') {
        if (i + 1 < c.size() && c[i + 1] == '\'') {
          out += '\'';
          ++i;
          continue;
        }
        break;
      }
      out += c[i];
    }
    return out;
  }
  std::string target = TakeIdentifier(&line);
  if (target == "-") return "";
  return target;
}

DumpSection& PlainScanner::Current() {
  if (facts_.sections.empty()) facts_.sections.emplace_back();
  return facts_.sections.back();
}

void PlainScanner::StartSection(const std::string& name, int64_t begin) {
  if (facts_.sections.size() >= kMaxListed) {
    if (facts_.limit_error.empty()) {
      facts_.limit_error =
          absl::StrCat("more than ", kMaxListed, " database sections (line ", facts_.lines, ")");
    }
    return;
  }
  if (!facts_.sections.empty() && facts_.sections.back().end_offset < 0) {
    facts_.sections.back().end_offset = begin;
  }
  DumpSection section;
  auto created = created_.find(name);
  if (created != created_.end()) section = created->second;
  section.name = name;
  section.begin_offset = begin;
  section.end_offset = -1;
  facts_.sections.push_back(std::move(section));
}

void PlainScanner::AddRisky(const std::string& setting) {
  for (const std::string& s : facts_.risky_settings) {
    if (s == setting) return;
  }
  facts_.risky_settings.push_back(setting);
}

void PlainScanner::AddRole(const std::string& role) {
  if (role_set_.count(role) != 0) return;
  if (role_set_.size() >= kMaxListed) {
    ++facts_.unlisted_roles;
    return;
  }
  role_set_.insert(role);
  facts_.roles.push_back(role);
}

void PlainScanner::Feed(absl::string_view chunk) {
  const char* p = chunk.data();
  const char* end = p + chunk.size();
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
    if (nl == nullptr) {
      size_t n = end - p;
      if (carry_.empty() && !carry_truncated_) {
        carry_offset_ = offset_;
        carry_length_ = 0;
      }
      carry_length_ += static_cast<int64_t>(n);
      size_t room = kMaxLineBytes > carry_.size() ? kMaxLineBytes - carry_.size() : 0;
      if (n > room) carry_truncated_ = true;
      carry_.append(p, std::min(n, room));
      offset_ += static_cast<int64_t>(n);
      break;
    }
    size_t n = nl - p;
    if (carry_.empty() && !carry_truncated_) {
      HandleLine(absl::string_view(p, n), offset_, static_cast<int64_t>(n));
    } else {
      size_t room = kMaxLineBytes > carry_.size() ? kMaxLineBytes - carry_.size() : 0;
      carry_.append(p, std::min(n, room));
      HandleLine(carry_, carry_offset_, carry_length_ + static_cast<int64_t>(n));
      carry_.clear();
      carry_truncated_ = false;
    }
    offset_ += static_cast<int64_t>(n) + 1;
    p = nl + 1;
  }
  facts_.bytes = offset_;
}

void PlainScanner::Finish(bool end_of_dump) {
  if (!carry_.empty() || carry_truncated_) {
    HandleLine(carry_, carry_offset_, carry_length_);
    carry_.clear();
    carry_truncated_ = false;
  }
  facts_.bytes = offset_;
  if (end_of_dump && !facts_.sections.empty() && facts_.sections.back().end_offset < 0) {
    facts_.sections.back().end_offset = offset_;
  }
}

void PlainScanner::HandleLine(absl::string_view line, int64_t offset, int64_t full_length) {
  ++facts_.lines;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  int64_t& longest = in_copy_ ? facts_.longest_row : facts_.longest_line;
  if (full_length > longest) {
    longest = full_length;
    (in_copy_ ? facts_.longest_row_no : facts_.longest_line_no) = facts_.lines;
  }
  if (in_copy_) {
    HandleCopyLine(line);
  } else {
    HandleSqlLine(line, offset);
  }
  if (line == "--") {
    previous_line_ = "--";
    previous_line_offset_ = offset;
  } else if (!previous_line_.empty()) {
    previous_line_.clear();
  }
}

void PlainScanner::HandleCopyLine(absl::string_view line) {
  if (line.size() == 2 && line[0] == '\\' && line[1] == '.') {
    in_copy_ = false;
    copy_table_ = nullptr;
    return;
  }
  if (copy_table_ != nullptr) {
    ++copy_table_->rows;
    copy_table_->bytes += static_cast<int64_t>(line.size()) + 1;
  }
  if (copy_is_schema_migrations_) {
    absl::string_view version = line.substr(0, line.find('\t'));
    DumpSection& s = Current();
    if (SchemaVersionLess(s.schema_version, version)) s.schema_version = std::string(version);
  }
}

void PlainScanner::HandleSqlLine(absl::string_view line, int64_t offset) {
  if (first_line_) {
    first_line_ = false;
    // The header's first line is "--"; the kind is on line 2. Set in the
    // second call below.
  }
  if (line.empty()) return;
  if (facts_.lines <= 3) {
    if (line == kDumpHeader && facts_.kind == PlainKind::kUnknown) {
      facts_.kind = PlainKind::kDump;
      StartSection("", 0);
    } else if (line == kClusterHeader && facts_.kind == PlainKind::kUnknown) {
      facts_.kind = PlainKind::kDumpall;
    } else if (line == "-- NOTE:" && facts_.kind == PlainKind::kUnknown) {
      facts_.kind = PlainKind::kTarRestoreScript;
      StartSection("", 0);
    }
  }
  const char first = line[0];
  if (first == '-') {
    if (!absl::StartsWith(line, "-- ")) return;
    absl::string_view rest = line.substr(3);
    if (absl::ConsumePrefix(&rest, "Dumped from database version ")) {
      if (facts_.server_version.empty()) facts_.server_version = std::string(rest);
    } else if (absl::ConsumePrefix(&rest, "Dumped by pg_dump version ") ||
               absl::ConsumePrefix(&rest, "Dumped by pg_dumpall version ")) {
      if (facts_.dumper_version.empty()) facts_.dumper_version = std::string(rest);
    } else if (absl::StartsWith(rest, "Database \"") && absl::EndsWith(rest, "\" dump")) {
      std::string name(rest.substr(10, rest.size() - 10 - 6));
      int64_t begin = previous_line_ == "--" ? previous_line_offset_ : offset;
      StartSection(name, begin);
    } else if (rest == "Database creation") {
      saw_database_creation_ = true;
    } else if (line == kClusterComplete) {
      facts_.complete = true;
      if (!facts_.sections.empty() && facts_.sections.back().end_offset < 0) {
        facts_.sections.back().end_offset = previous_line_ == "--" ? previous_line_offset_ : offset;
      }
    } else if (line == kDumpComplete && facts_.kind != PlainKind::kDumpall) {
      facts_.complete = true;
    } else if (absl::StartsWith(rest, "CREATE ROLE ")) {
      // The snap's export comments out roles that exist on every install.
      absl::string_view r = rest.substr(12);
      AddRole(TakeIdentifier(&r));
    }
    return;
  }
  if (first == '\\') {
    if (absl::StartsWith(line, "\\restrict ")) {
      ++facts_.restrict_lines;
      if (absl::StripAsciiWhitespace(line.substr(10)) == "(null)") facts_.null_restrict_key = true;
    } else if (absl::StartsWith(line, "\\unrestrict ")) {
      if (absl::StripAsciiWhitespace(line.substr(12)) == "(null)") facts_.null_restrict_key = true;
    } else if (absl::StartsWith(line, "\\connect ")) {
      std::string target = ParseConnectTarget(line);
      if (facts_.kind == PlainKind::kDumpall && saw_database_creation_ && !target.empty() &&
          (facts_.sections.empty() || facts_.sections.back().name != target)) {
        // Pre-11 pg_dumpall: no per-database markers; sections start here.
        StartSection(target, offset);
      }
    } else if (absl::StartsWith(line, "\\encoding ") || line == "\\encoding") {
      // pg_dump emits it after a reconnect to reset the client encoding.
    } else if (facts_.other_meta_commands.size() < 5) {
      facts_.other_meta_commands.push_back(std::string(line.substr(0, 80)));
    }
    return;
  }
  switch (first) {
    case 'C': {
      absl::string_view rest = line;
      if (absl::ConsumePrefix(&rest, "COPY ")) {
        size_t name_end = rest.find(' ');
        absl::string_view table = rest.substr(0, name_end);
        if (absl::EndsWith(line, " FROM stdin;")) {
          in_copy_ = true;
          copy_is_schema_migrations_ = EndsWithTableName(table, "schema_migrations");
          copy_table_ = nullptr;
          if (count_rows_ && listed_tables_ >= static_cast<int64_t>(kMaxListed)) {
            ++facts_.unlisted_tables;
          } else if (count_rows_) {
            ++listed_tables_;
            DumpSection& s = Current();
            s.tables.push_back(CopyTable{std::string(table), 0, 0});
            copy_table_ = &s.tables.back();
          }
        } else if (line.find("$$PATH$$") != absl::string_view::npos) {
          facts_.uses_path_placeholders = true;
        }
      } else if (absl::ConsumePrefix(&rest, "CREATE TABLE ")) {
        absl::string_view name = rest.substr(0, rest.find(' '));
        if (EndsWithTableName(name, "schema_migrations")) Current().has_schema_migrations = true;
        if (EndsWithTableName(name, "statuses")) Current().has_statuses = true;
      } else if (absl::ConsumePrefix(&rest, "CREATE DATABASE ")) {
        DumpSection facts;
        facts.name = TakeIdentifier(&rest);
        facts.encoding = OptionValue(line, "ENCODING");
        facts.locale = OptionValue(line, "LOCALE");
        if (facts.locale.empty()) facts.locale = OptionValue(line, "LC_COLLATE");
        facts.locale_provider = OptionValue(line, "LOCALE_PROVIDER");
        facts.provider_locale = OptionValue(line, "BUILTIN_LOCALE");
        if (facts.provider_locale.empty()) facts.provider_locale = OptionValue(line, "ICU_LOCALE");
        if (!facts.locale_provider.empty()) AddRisky("CREATE DATABASE LOCALE_PROVIDER");
        if (!OptionValue(line, "BUILTIN_LOCALE").empty())
          AddRisky("CREATE DATABASE BUILTIN_LOCALE");
        if (!OptionValue(line, "ICU_RULES").empty()) AddRisky("CREATE DATABASE ICU_RULES");
        if (!OptionValue(line, "LOCALE").empty()) AddRisky("CREATE DATABASE LOCALE");
        if (created_.size() < kMaxListed) created_[facts.name] = facts;
        if (facts_.kind == PlainKind::kDump || facts_.kind == PlainKind::kTarRestoreScript ||
            (!facts_.sections.empty() && facts_.sections.back().name == facts.name)) {
          DumpSection& s = Current();
          if (s.name.empty()) s.name = facts.name;
          if (s.name == facts.name) {
            s.encoding = facts.encoding;
            s.locale = facts.locale;
            s.locale_provider = facts.locale_provider;
            s.provider_locale = facts.provider_locale;
          }
        }
      } else if (absl::ConsumePrefix(&rest, "CREATE ROLE ")) {
        AddRole(TakeIdentifier(&rest));
      }
      break;
    }
    case 'A': {
      absl::string_view rest = line;
      if (absl::ConsumePrefix(&rest, "ALTER ROLE ") && facts_.kind == PlainKind::kDumpall &&
          facts_.sections.empty()) {
        AddRole(TakeIdentifier(&rest));
      }
      break;
    }
    case 'S': {
      absl::string_view rest = line;
      if (absl::ConsumePrefix(&rest, "SET ")) {
        if (absl::StartsWith(rest, "transaction_timeout ")) {
          AddRisky("transaction_timeout");
        } else if (absl::StartsWith(rest, "default_table_access_method ")) {
          AddRisky("default_table_access_method");
        } else if (absl::StartsWith(rest, "default_with_oids ")) {
          AddRisky("default_with_oids");
        }
      }
      break;
    }
    default:
      break;
  }
}

}  // namespace mastodon_restore
