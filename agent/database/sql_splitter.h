// Splits the SQL text of a plain dump into statements and psql meta-commands,
// the way psql's lexer does for pg_dump output: a statement ends at a ';'
// outside quotes ('...', E'...', "..."), dollar quotes ($tag$...$tag$),
// comments (-- and nested /* */) and parentheses; a line starting with a
// backslash between statements is a meta-command. COPY data is not the
// splitter's business: the loader reads it raw after a COPY ... FROM stdin.
#ifndef MR_AGENT_DATABASE_SQL_SPLITTER_H_
#define MR_AGENT_DATABASE_SQL_SPLITTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace mastodon_restore {

struct SqlItem {
  enum class Kind { kStatement, kMetaCommand };
  Kind kind = Kind::kStatement;
  // The statement with its final ';' (leading comments and blank lines
  // dropped), or the meta-command line.
  std::string text;
  // Line where it starts (1-based).
  int64_t line = 0;
};

class SqlSplitter {
 public:
  // Feeds one line (without its '\n') numbered `line_no`; appends the items
  // it completes to `out`.
  void FeedLine(absl::string_view line, int64_t line_no, std::vector<SqlItem>* out);
  // True while a statement has started and not ended.
  bool in_statement() const { return !buffer_.empty(); }
  // Bytes of the unfinished statement held, and the line it starts on.
  size_t buffered_bytes() const { return buffer_.size(); }
  int64_t start_line() const { return start_line_; }
  // The unfinished statement at the end of the input ("" when none).
  std::string TakeUnfinished();

 private:
  enum class State { kNormal, kSingle, kEscapeString, kDouble, kDollar, kBlockComment };
  State state_ = State::kNormal;
  std::string buffer_;
  int64_t start_line_ = 0;
  int paren_depth_ = 0;
  int comment_depth_ = 0;
  std::string dollar_tag_;
};

// The possibly schema-qualified, possibly quoted name at `*pos` of `sql`
// ("public.statuses", "public.\"Odd name\""), as written; *pos moves past
// it. "" when there is none.
std::string ScanQualifiedName(absl::string_view sql, size_t* pos);

// What a post-data statement of pg_dump works on, for the parallel load:
// "CREATE [UNIQUE] INDEX i ON [ONLY] t ..." is an index build on t;
// "ALTER TABLE [ONLY] t ADD CONSTRAINT c ..." a constraint on t, and a
// foreign key "... FOREIGN KEY (...) REFERENCES r(...)" also on r. Names as
// written in the dump. False for anything else.
struct PostDataTarget {
  std::vector<std::string> tables;
  bool index = false;  // a CREATE INDEX (else an ALTER TABLE)
  // ALTER TABLE: the constraint's name as written, and for a foreign key
  // the referenced table (also in `tables` unless it is the same table).
  std::string constraint;
  std::string referenced;
  bool only = false;       // ALTER TABLE ONLY (not a partitioned table)
  bool not_valid = false;  // ends in NOT VALID
  // A CREATE UNIQUE INDEX, or an ADD CONSTRAINT ... PRIMARY KEY / UNIQUE:
  // its creation checks the rows' uniqueness.
  bool unique = false;
  // CREATE INDEX: the index's name as written.
  std::string index_name;
};
bool ParsePostDataStatement(absl::string_view sql, PostDataTarget* target);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_SQL_SPLITTER_H_
