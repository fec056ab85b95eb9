#include "agent/database/sql_splitter.h"

#include "absl/strings/ascii.h"

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

}  // namespace mastodon_restore
