#include "agent/database/sql_splitter.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace mastodon_restore {
namespace {

bool IsIdentStart(char c) { return absl::ascii_isalpha(c) || c == '_' || (c & 0x80); }
bool IsIdentChar(char c) { return IsIdentStart(c) || absl::ascii_isdigit(c) || c == '$'; }

}  // namespace

void SqlSplitter::FeedLine(absl::string_view line, int64_t line_no, std::vector<SqlItem>* out) {
  if (buffer_.empty() && state_ == State::kNormal) {
    absl::string_view stripped = absl::StripLeadingAsciiWhitespace(line);
    if (!stripped.empty() && stripped[0] == '\\') {
      out->push_back(SqlItem{SqlItem::Kind::kMetaCommand,
                             std::string(absl::StripTrailingAsciiWhitespace(stripped)), line_no});
      return;
    }
  }
  size_t i = 0;
  const size_t n = line.size();
  // Start of the part of `line` not yet copied into buffer_.
  size_t copied = 0;
  auto flush_to = [&](size_t end) {
    if (end > copied) {
      if (buffer_.empty()) start_line_ = line_no;
      buffer_.append(line.data() + copied, end - copied);
    }
    copied = end;
  };
  while (i < n) {
    const char c = line[i];
    switch (state_) {
      case State::kNormal: {
        if (buffer_.empty() && copied == i && absl::ascii_isspace(c)) {
          ++i;
          copied = i;  // leading blanks are not part of a statement
          continue;
        }
        if (c == '-' && i + 1 < n && line[i + 1] == '-') {
          // A line comment: keep it only inside a statement.
          if (buffer_.empty() && copied == i) {
            i = n;
            copied = n;
          } else {
            flush_to(n);
            i = n;
          }
          continue;
        }
        if (c == '/' && i + 1 < n && line[i + 1] == '*') {
          state_ = State::kBlockComment;
          comment_depth_ = 1;
          i += 2;
          continue;
        }
        if (c == '\'') {
          bool escape = i > 0 && (line[i - 1] == 'E' || line[i - 1] == 'e') &&
                        (i < 2 || !IsIdentChar(line[i - 2]));
          state_ = escape ? State::kEscapeString : State::kSingle;
          ++i;
          continue;
        }
        if (c == '"') {
          state_ = State::kDouble;
          ++i;
          continue;
        }
        if (c == '$' && (i == 0 || !IsIdentChar(line[i - 1]))) {
          size_t j = i + 1;
          if (j < n && IsIdentStart(line[j]) && line[j] != '$') {
            while (j < n && IsIdentChar(line[j]) && line[j] != '$') ++j;
          }
          if (j < n && line[j] == '$') {
            dollar_tag_ = std::string(line.substr(i, j - i + 1));
            state_ = State::kDollar;
            i = j + 1;
            continue;
          }
          ++i;
          continue;
        }
        if (c == '(') {
          ++paren_depth_;
        } else if (c == ')') {
          if (paren_depth_ > 0) --paren_depth_;
        } else if (c == ';' && paren_depth_ == 0) {
          flush_to(i + 1);
          out->push_back(SqlItem{SqlItem::Kind::kStatement, std::move(buffer_), start_line_});
          buffer_.clear();
          ++i;
          copied = i;
          continue;
        }
        ++i;
        continue;
      }
      case State::kSingle:
      case State::kEscapeString:
        // Backslash escapes only in E'' strings (standard_conforming_strings).
        if (c == '\\' && state_ == State::kEscapeString) {
          i += 2;
          continue;
        }
        if (c == '\'') {
          if (i + 1 < n && line[i + 1] == '\'') {
            i += 2;
            continue;
          }
          state_ = State::kNormal;
        }
        ++i;
        continue;
      case State::kDouble:
        if (c == '"') state_ = State::kNormal;  // "" re-enters at once
        ++i;
        continue;
      case State::kDollar:
        if (c == '$' && line.substr(i, dollar_tag_.size()) == dollar_tag_) {
          i += dollar_tag_.size();
          state_ = State::kNormal;
          continue;
        }
        ++i;
        continue;
      case State::kBlockComment:
        if (c == '*' && i + 1 < n && line[i + 1] == '/') {
          i += 2;
          if (--comment_depth_ == 0) state_ = State::kNormal;
          continue;
        }
        if (c == '/' && i + 1 < n && line[i + 1] == '*') {
          ++comment_depth_;
          i += 2;
          continue;
        }
        ++i;
        continue;
    }
  }
  // The rest of the line belongs to the statement, if one is open (a comment
  // or quote spanning lines keeps its text too).
  if (!buffer_.empty() || copied < n || state_ != State::kNormal) {
    flush_to(n);
    if (!buffer_.empty()) buffer_ += '\n';
  }
}

std::string SqlSplitter::TakeUnfinished() {
  std::string out = std::string(absl::StripAsciiWhitespace(buffer_));
  buffer_.clear();
  state_ = State::kNormal;
  paren_depth_ = 0;
  return out;
}

namespace {

// Skips ASCII whitespace.
void SkipSpace(absl::string_view s, size_t* pos) {
  while (*pos < s.size() && absl::ascii_isspace(s[*pos])) ++*pos;
}

// Consumes `word` (upper case) and the whitespace after it, case-insensitively.
bool ConsumeWord(absl::string_view s, size_t* pos, absl::string_view word) {
  if (s.size() - *pos < word.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (absl::ascii_toupper(s[*pos + i]) != word[i]) return false;
  }
  const size_t end = *pos + word.size();
  if (end < s.size() && IsIdentChar(s[end]) && IsIdentChar(word.back())) return false;
  *pos = end;
  SkipSpace(s, pos);
  return true;
}

}  // namespace

std::string ScanQualifiedName(absl::string_view sql, size_t* pos) {
  const size_t start = *pos;
  size_t i = start;
  while (true) {
    if (i < sql.size() && sql[i] == '"') {
      ++i;
      while (i < sql.size()) {
        if (sql[i] == '"') {
          if (i + 1 < sql.size() && sql[i + 1] == '"') {
            i += 2;
            continue;
          }
          break;
        }
        ++i;
      }
      if (i >= sql.size()) return "";
      ++i;
    } else {
      const size_t part = i;
      while (i < sql.size() && IsIdentChar(sql[i])) ++i;
      if (i == part) return "";
    }
    if (i < sql.size() && sql[i] == '.') {
      ++i;
      continue;
    }
    break;
  }
  *pos = i;
  return std::string(sql.substr(start, i - start));
}

bool ParsePostDataStatement(absl::string_view sql, PostDataTarget* target) {
  *target = PostDataTarget();
  size_t pos = 0;
  SkipSpace(sql, &pos);
  if (ConsumeWord(sql, &pos, "CREATE")) {
    target->unique = ConsumeWord(sql, &pos, "UNIQUE");
    if (!ConsumeWord(sql, &pos, "INDEX")) return false;
    target->index_name = ScanQualifiedName(sql, &pos);
    if (target->index_name.empty()) return false;
    SkipSpace(sql, &pos);
    if (!ConsumeWord(sql, &pos, "ON")) return false;
    ConsumeWord(sql, &pos, "ONLY");
    std::string table = ScanQualifiedName(sql, &pos);
    if (table.empty()) return false;
    target->tables.push_back(table);
    target->index = true;
    return true;
  }
  if (!ConsumeWord(sql, &pos, "ALTER") || !ConsumeWord(sql, &pos, "TABLE")) return false;
  target->only = ConsumeWord(sql, &pos, "ONLY");
  std::string table = ScanQualifiedName(sql, &pos);
  if (table.empty()) return false;
  SkipSpace(sql, &pos);
  if (!ConsumeWord(sql, &pos, "ADD") || !ConsumeWord(sql, &pos, "CONSTRAINT")) return false;
  target->constraint = ScanQualifiedName(sql, &pos);
  if (target->constraint.empty()) return false;
  SkipSpace(sql, &pos);
  target->tables.push_back(table);
  target->index = false;
  absl::string_view tail = absl::StripTrailingAsciiWhitespace(sql);
  absl::ConsumeSuffix(&tail, ";");
  tail = absl::StripTrailingAsciiWhitespace(tail);
  target->not_valid =
      tail.size() >= 10 && absl::EqualsIgnoreCase(tail.substr(tail.size() - 10), " NOT VALID");
  {
    size_t at = pos;
    target->unique = ConsumeWord(sql, &at, "UNIQUE") ||
                     (ConsumeWord(sql, &at, "PRIMARY") && ConsumeWord(sql, &at, "KEY"));
  }
  if (!ConsumeWord(sql, &pos, "FOREIGN")) return true;
  if (!ConsumeWord(sql, &pos, "KEY") || pos >= sql.size() || sql[pos] != '(') return false;
  // The referencing columns, quoted names included.
  bool quoted = false;
  for (++pos; pos < sql.size(); ++pos) {
    if (sql[pos] == '"') quoted = !quoted;
    if (!quoted && sql[pos] == ')') break;
  }
  if (pos >= sql.size()) return false;
  ++pos;
  SkipSpace(sql, &pos);
  if (!ConsumeWord(sql, &pos, "REFERENCES")) return false;
  std::string referenced = ScanQualifiedName(sql, &pos);
  if (referenced.empty()) return false;
  target->referenced = referenced;
  if (referenced != table) target->tables.push_back(referenced);
  return true;
}

}  // namespace mastodon_restore
