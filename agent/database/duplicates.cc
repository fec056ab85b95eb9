#include "agent/database/duplicates.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/common/status_macros.h"
#include "agent/database/load_scheduler.h"
#include "agent/database/sql_splitter.h"

namespace mastodon_restore {
namespace {

namespace v1 = ::mastodon::restore::v1;

bool IsNameChar(char c) { return absl::ascii_isalnum(c) || c == '_' || c == '$' || c == '.'; }

// The end of the quoted text ('...' or "...") starting at `pos`, or npos.
size_t SkipQuoted(absl::string_view s, size_t pos) {
  const char q = s[pos];
  for (size_t i = pos + 1; i < s.size(); ++i) {
    if (s[i] == q) {
      if (i + 1 < s.size() && s[i + 1] == q) {
        ++i;
        continue;
      }
      return i + 1;
    }
  }
  return absl::string_view::npos;
}

// The position after the parenthesis matching the one at `open`, or npos.
size_t MatchParen(absl::string_view s, size_t open) {
  int depth = 0;
  for (size_t i = open; i < s.size();) {
    const char c = s[i];
    if (c == '\'' || c == '"') {
      i = SkipQuoted(s, i);
      if (i == absl::string_view::npos) return i;
      continue;
    }
    if (c == '(') ++depth;
    if (c == ')' && --depth == 0) return i + 1;
    ++i;
  }
  return absl::string_view::npos;
}

// Splits `list` at its top-level commas.
std::vector<std::string> SplitTopLevel(absl::string_view list) {
  std::vector<std::string> out;
  size_t start = 0;
  int depth = 0;
  for (size_t i = 0; i < list.size();) {
    const char c = list[i];
    if (c == '\'' || c == '"') {
      size_t end = SkipQuoted(list, i);
      i = end == absl::string_view::npos ? list.size() : end;
      continue;
    }
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (c == ',' && depth == 0) {
      out.emplace_back(absl::StripAsciiWhitespace(list.substr(start, i - start)));
      start = i + 1;
    }
    ++i;
  }
  out.emplace_back(absl::StripAsciiWhitespace(list.substr(start)));
  return out;
}

// A name (quoted parts included) at `pos`; "" when there is none.
std::string ScanName(absl::string_view s, size_t* pos) {
  const size_t start = *pos;
  size_t i = start;
  while (i < s.size()) {
    if (s[i] == '"') {
      size_t end = SkipQuoted(s, i);
      if (end == absl::string_view::npos) break;
      i = end;
    } else if (IsNameChar(s[i])) {
      ++i;
    } else {
      break;
    }
  }
  *pos = i;
  return std::string(s.substr(start, i - start));
}

void SkipBlanks(absl::string_view s, size_t* pos) {
  while (*pos < s.size() && absl::ascii_isspace(s[*pos])) ++*pos;
}

// Consumes `word` (upper case) at `pos` when it is there as a whole word.
bool Word(absl::string_view s, size_t* pos, absl::string_view word) {
  SkipBlanks(s, pos);
  if (s.size() - *pos < word.size()) return false;
  if (!absl::EqualsIgnoreCase(s.substr(*pos, word.size()), word)) return false;
  const size_t end = *pos + word.size();
  if (end < s.size() && IsNameChar(s[end])) return false;
  *pos = end;
  SkipBlanks(s, pos);
  return true;
}

// One element of an index's key list, without its operator class,
// ordering and NULLS placement: the column, function call or parenthesized
// expression, with its COLLATE.
std::string KeyExpression(absl::string_view element) {
  size_t pos = 0;
  std::string expr;
  if (!element.empty() && element[0] == '(') {
    const size_t end = MatchParen(element, 0);
    if (end == absl::string_view::npos) return std::string(element);
    expr = std::string(element.substr(0, end));
    pos = end;
  } else {
    expr = ScanName(element, &pos);
    if (pos < element.size() && element[pos] == '(') {
      const size_t end = MatchParen(element, pos);
      if (end == absl::string_view::npos) return std::string(element);
      expr += std::string(element.substr(pos, end - pos));
      pos = end;
    }
  }
  size_t at = pos;
  if (Word(element, &at, "COLLATE")) {
    absl::StrAppend(&expr, " COLLATE ", ScanName(element, &at));
  }
  return expr;
}

// The key list "(...)" at `pos` (after blanks), split and cleaned.
absl::StatusOr<std::vector<std::string>> KeyList(absl::string_view sql, size_t* pos) {
  SkipBlanks(sql, pos);
  if (*pos >= sql.size() || sql[*pos] != '(') {
    return absl::InvalidArgumentError("no key list");
  }
  const size_t end = MatchParen(sql, *pos);
  if (end == absl::string_view::npos) return absl::InvalidArgumentError("unbalanced key list");
  std::vector<std::string> out;
  for (const std::string& e : SplitTopLevel(sql.substr(*pos + 1, end - *pos - 2))) {
    out.push_back(KeyExpression(e));
  }
  *pos = end;
  return out;
}

// NULLS [NOT] DISTINCT at `pos`, when there.
void NullsDistinct(absl::string_view sql, size_t* pos, UniqueKey* key) {
  size_t at = *pos;
  if (!Word(sql, &at, "NULLS")) return;
  key->nulls_not_distinct = Word(sql, &at, "NOT");
  if (Word(sql, &at, "DISTINCT")) *pos = at;
}

std::string Unquoted(absl::string_view name) {
  std::string out;
  for (char c : name) {
    if (c != '"') out.push_back(c);
  }
  return out;
}

// The name without schema and quotes ("public.accounts" -> "accounts").
std::string BareName(const std::string& name) {
  std::string s = Unquoted(name);
  const size_t dot = s.rfind('.');
  return dot == std::string::npos ? s : s.substr(dot + 1);
}

// A key column or expression reduced for comparison with maintenance.rb's
// indexes: lower case, no blanks, quotes, parentheses or text casts.
std::string Normalized(const std::string& column) {
  std::string s = absl::AsciiStrToLower(column);
  for (const char* cast : {"::charactervarying", "::character varying", "::text"}) {
    s = absl::StrReplaceAll(s, {{cast, ""}});
  }
  std::string out;
  for (char c : s) {
    if (!absl::ascii_isspace(c) && c != '"' && c != '(' && c != ')') out.push_back(c);
  }
  return out;
}

// Key values of secret-looking columns are not reported (records are kept).
bool SecretColumn(const std::string& column) {
  const std::string c = absl::AsciiStrToLower(column);
  for (const char* word : {"token", "secret", "password", "otp", "session_id", "private_key",
                           "encrypted", "external_id"}) {
    if (absl::StrContains(c, word)) return true;
  }
  return false;
}

std::string Truncated(const std::string& value) {
  if (value.size() <= kMaxKeyValueBytes) return value;
  size_t cut = kMaxKeyValueBytes;
  while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(value.substr(0, cut), "...");
}

// The WHERE of the rows a unique key constrains: not NULL in any key
// (unless NULLS NOT DISTINCT), within a partial index's predicate.
std::string KeyRowsCondition(const UniqueKey& key) {
  std::vector<std::string> terms;
  if (!key.nulls_not_distinct) {
    for (const std::string& c : key.columns) terms.push_back(absl::StrCat("(", c, ") IS NOT NULL"));
  }
  if (!key.predicate.empty()) terms.push_back(absl::StrCat("(", key.predicate, ")"));
  return terms.empty() ? std::string("true") : absl::StrJoin(terms, " AND ");
}

absl::StatusOr<bool> ColumnExists(PgSession* conn, const std::string& table,
                                  const std::string& column) {
  ASSIGN_OR_RETURN(PgRows r, conn->Query("SELECT count(*) FROM pg_attribute WHERE attrelid = "
                                         "to_regclass($1) AND attname = $2 AND attnum > 0 AND "
                                         "NOT attisdropped",
                                         {table, column}));
  return r.Scalar() != "0";
}

// The expression naming a row of `table` in reports: its id, else its ctid.
absl::StatusOr<std::string> RowIdExpression(PgSession* conn, const std::string& table) {
  ASSIGN_OR_RETURN(bool has_id, ColumnExists(conn, table, "id"));
  return has_id ? std::string("id") : std::string("ctid");
}

}  // namespace

absl::StatusOr<UniqueKey> ParseUniqueKey(absl::string_view sql) {
  UniqueKey key;
  size_t pos = 0;
  auto bad = [&]() {
    return absl::InvalidArgumentError(
        absl::StrCat("not a unique index or constraint: ", sql.substr(0, 200)));
  };
  if (Word(sql, &pos, "CREATE")) {
    if (!Word(sql, &pos, "UNIQUE") || !Word(sql, &pos, "INDEX")) return bad();
    key.name = ScanName(sql, &pos);
    if (!Word(sql, &pos, "ON")) return bad();
    Word(sql, &pos, "ONLY");
    key.table = ScanName(sql, &pos);
    if (Word(sql, &pos, "USING")) ScanName(sql, &pos);
    ASSIGN_OR_RETURN(key.columns, KeyList(sql, &pos));
    if (Word(sql, &pos, "INCLUDE")) {
      RETURN_IF_ERROR(KeyList(sql, &pos).status());
    }
    NullsDistinct(sql, &pos, &key);
    if (Word(sql, &pos, "WITH")) {
      if (pos >= sql.size() || sql[pos] != '(') return bad();
      pos = MatchParen(sql, pos);
      if (pos == absl::string_view::npos) return bad();
    }
    if (Word(sql, &pos, "TABLESPACE")) ScanName(sql, &pos);
    if (Word(sql, &pos, "WHERE")) {
      absl::string_view rest = absl::StripAsciiWhitespace(sql.substr(pos));
      absl::ConsumeSuffix(&rest, ";");
      key.predicate = std::string(absl::StripAsciiWhitespace(rest));
    }
  } else if (Word(sql, &pos, "ALTER") && Word(sql, &pos, "TABLE")) {
    Word(sql, &pos, "ONLY");
    key.table = ScanName(sql, &pos);
    if (!Word(sql, &pos, "ADD") || !Word(sql, &pos, "CONSTRAINT")) return bad();
    key.name = ScanName(sql, &pos);
    if (Word(sql, &pos, "PRIMARY")) {
      if (!Word(sql, &pos, "KEY")) return bad();
      // A primary key's columns are NOT NULL: NULLs cannot hide duplicates.
    } else if (Word(sql, &pos, "UNIQUE")) {
      NullsDistinct(sql, &pos, &key);
    } else {
      return bad();
    }
    ASSIGN_OR_RETURN(key.columns, KeyList(sql, &pos));
  } else {
    return bad();
  }
  if (key.table.empty() || key.columns.empty()) return bad();
  return key;
}

absl::StatusOr<v1::DuplicateFinding> FindDuplicates(PgSession* conn, const FailedBuild& failed) {
  v1::DuplicateFinding f;
  f.set_statement(failed.sql.substr(0, 1000));
  f.set_line(failed.line);
  f.set_toc_entry(failed.toc_entry);
  f.set_error(failed.error);
  absl::StatusOr<UniqueKey> key = ParseUniqueKey(failed.sql);
  if (!key.ok()) {
    f.set_index(failed.name);
    f.set_table(failed.tables.empty() ? "" : failed.tables.front());
    return f;
  }
  const std::string schema_of_table = key->table.find('.') == std::string::npos
                                          ? std::string()
                                          : key->table.substr(0, key->table.find('.') + 1);
  f.set_index(absl::StrCat(schema_of_table, key->name));
  f.set_table(key->table);
  for (const std::string& c : key->columns) f.add_key(c);
  f.set_predicate(key->predicate);
  f.set_repair_rule(RepairRuleFor(BareName(key->table), key->columns));
  // The rows by id, unless the id is what is duplicated (a primary key).
  std::string row_id = "ctid";
  if (std::find(key->columns.begin(), key->columns.end(), "id") == key->columns.end()) {
    ASSIGN_OR_RETURN(row_id, RowIdExpression(conn, key->table));
  }
  const std::string columns = absl::StrJoin(key->columns, ", ");
  const std::string where = KeyRowsCondition(*key);
  ASSIGN_OR_RETURN(PgRows totals,
                   conn->Query(absl::StrCat("SELECT count(*), coalesce(sum(n), 0) FROM (SELECT "
                                            "count(*) AS n FROM ",
                                            key->table, " WHERE ", where, " GROUP BY ", columns,
                                            " HAVING count(*) > 1) AS d")));
  int64_t n = 0;
  if (!totals.rows.empty()) {
    if (absl::SimpleAtoi(totals.rows[0][0].value_or("0"), &n)) f.set_duplicate_keys(n);
    if (absl::SimpleAtoi(totals.rows[0][1].value_or("0"), &n)) f.set_duplicate_rows(n);
  }
  std::vector<std::string> shown;
  for (const std::string& c : key->columns) shown.push_back(absl::StrCat("(", c, ")::text"));
  ASSIGN_OR_RETURN(
      PgRows top, conn->Query(absl::StrCat(
                      "SELECT count(*), array_to_string((array_agg(", row_id, "::text ORDER BY ",
                      row_id, "))[1:", kMaxDuplicateRowIds, "], ' '), ", absl::StrJoin(shown, ", "),
                      " FROM ", key->table, " WHERE ", where, " GROUP BY ", columns,
                      " HAVING count(*) > 1 ORDER BY 1 DESC, 2 LIMIT ", kMaxDuplicateKeys)));
  for (const auto& row : top.rows) {
    v1::DuplicateKey* k = f.add_keys();
    if (absl::SimpleAtoi(row[0].value_or("0"), &n)) k->set_rows(n);
    for (absl::string_view id : absl::StrSplit(row[1].value_or(""), ' ', absl::SkipEmpty())) {
      k->add_row_ids(std::string(id));
    }
    for (size_t i = 0; i < key->columns.size() && i + 2 < row.size(); ++i) {
      const auto& v = row[i + 2];
      k->add_values(SecretColumn(key->columns[i]) ? std::string("(redacted)")
                    : v.has_value()               ? Truncated(*v)
                                                  : std::string("NULL"));
    }
  }
  return f;
}

namespace {

// One rule of maintenance.rb: the table and key it covers, what it does.
struct Rule {
  const char* table;
  // The key's normalized columns (Normalized); a trailing '*' matches a
  // prefix.
  std::vector<const char*> columns;
  const char* description;
  // Applies the rule to one group of duplicates (ids ascending) in `table`.
  absl::Status (*apply)(PgSession* conn, const std::string& table,
                        const std::vector<std::string>& ids, DuplicatesOutcome* out);
};

void Repaired(DuplicatesOutcome* out, const std::string& table, const std::string& id,
              const std::string& action) {
  ++out->repaired_row_count;
  if (out->repaired_rows.size() >= kMaxRepairedRows) return;
  v1::RepairedRow r;
  r.set_table(table);
  r.set_id(id);
  r.set_action(action);
  out->repaired_rows.push_back(std::move(r));
}

std::string IdArray(const std::vector<std::string>& ids) {
  return absl::StrCat("{", absl::StrJoin(ids, ","), "}");
}

absl::Status DeleteRows(PgSession* conn, const std::string& table,
                        const std::vector<std::string>& ids, DuplicatesOutcome* out) {
  if (ids.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(conn->Query(absl::StrCat("DELETE FROM ", table, " WHERE id = ANY($1::bigint[])"),
                              {IdArray(ids)})
                      .status());
  for (const std::string& id : ids) Repaired(out, BareName(table), id, "removed");
  return absl::OkStatus();
}

// Moves the rows of public.`table` whose `column` is `from` to `to`, one
// row at a time as maintenance.rb's find_each does: a row whose move would
// violate a unique index stays (RecordNotUnique: next). `extra`: a further
// condition. Nothing when the table or column does not exist.
absl::Status MoveRows(PgSession* conn, const std::string& table, const std::string& column,
                      const std::string& from, const std::string& to, DuplicatesOutcome* out,
                      const std::string& extra = "") {
  const std::string qualified = absl::StrCat("public.", table);
  ASSIGN_OR_RETURN(bool has_column, ColumnExists(conn, qualified, column));
  ASSIGN_OR_RETURN(bool has_id, ColumnExists(conn, qualified, "id"));
  if (!has_column || !has_id) return absl::OkStatus();
  ASSIGN_OR_RETURN(PgRows rows,
                   conn->Query(absl::StrCat("SELECT id::text FROM ", qualified, " WHERE ", column,
                                            " = $1::bigint", extra, " ORDER BY id"),
                               {from}));
  int64_t moved = 0;
  for (const auto& row : rows.rows) {
    RETURN_IF_ERROR(conn->Exec("SAVEPOINT mr_move"));
    absl::Status s = conn->Query(absl::StrCat("UPDATE ", qualified, " SET ", column,
                                              " = $1::bigint WHERE id = $2::bigint"),
                                 {to, row[0].value_or("")})
                         .status();
    if (!s.ok() && conn->last_error().sqlstate != "23505") return s;
    RETURN_IF_ERROR(conn->Exec(s.ok()
                                   ? "RELEASE SAVEPOINT mr_move"
                                   : "ROLLBACK TO SAVEPOINT mr_move; RELEASE SAVEPOINT mr_move"));
    if (s.ok()) ++moved;
  }
  if (moved > 0) {
    Repaired(out, table, from, absl::StrCat(moved, " ", table, ".", column, " moved to ", to));
  }
  return absl::OkStatus();
}

// Keeps the highest id, removes the others (sort_by(&:id).reverse.drop(1)).
absl::Status KeepNewest(PgSession* conn, const std::string& table,
                        const std::vector<std::string>& ids, DuplicatesOutcome* out) {
  return DeleteRows(conn, table, std::vector<std::string>(ids.begin(), ids.end() - 1), out);
}

// Keeps one (the lowest id: maintenance.rb keeps string_agg's first, in no
// defined order), removes the others.
absl::Status KeepFirst(PgSession* conn, const std::string& table,
                       const std::vector<std::string>& ids, DuplicatesOutcome* out) {
  return DeleteRows(conn, table, std::vector<std::string>(ids.begin() + 1, ids.end()), out);
}

absl::Status ClearShortcodes(PgSession* conn, const std::string& table,
                             const std::vector<std::string>& ids, DuplicatesOutcome* out) {
  std::vector<std::string> rest(ids.begin() + 1, ids.end());
  RETURN_IF_ERROR(conn->Query(absl::StrCat("UPDATE ", table,
                                           " SET shortcode = NULL WHERE id = ANY($1::bigint[])"),
                              {IdArray(rest)})
                      .status());
  for (const std::string& id : rest) Repaired(out, BareName(table), id, "shortcode cleared");
  return absl::OkStatus();
}

// Keeps the highest id after moving `column` of `referencing` to it.
absl::Status MergeIntoNewest(PgSession* conn, const std::string& table,
                             const std::vector<std::string>& ids, DuplicatesOutcome* out,
                             const std::string& referencing, const std::string& column) {
  const std::string& keep = ids.back();
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    RETURN_IF_ERROR(MoveRows(conn, referencing, column, ids[i], keep, out));
  }
  return KeepNewest(conn, table, ids, out);
}

absl::Status MergeEmojis(PgSession* conn, const std::string& table,
                         const std::vector<std::string>& ids, DuplicatesOutcome* out) {
  return MergeIntoNewest(conn, table, ids, out, "announcement_reactions", "custom_emoji_id");
}

absl::Status MergeEmojiCategories(PgSession* conn, const std::string& table,
                                  const std::vector<std::string>& ids, DuplicatesOutcome* out) {
  return MergeIntoNewest(conn, table, ids, out, "custom_emojis", "category_id");
}

// Rows of `table` `ids` with `columns` (as text), ordered by `order`.
absl::StatusOr<PgRows> RowsOf(PgSession* conn, const std::string& table,
                              const std::vector<std::string>& ids, const std::string& columns,
                              const std::string& order) {
  return conn->Query(absl::StrCat("SELECT id::text, ", columns, " FROM ", table,
                                  " WHERE id = ANY($1::bigint[]) ORDER BY ", order),
                     {IdArray(ids)});
}

// Statuses: the lowest id is kept; a duplicate of the same account has its
// favourites, mentions, polls, bookmarks, pin, replies and reblogs moved to
// it; every duplicate is removed.
absl::Status MergeStatuses(PgSession* conn, const std::string& table,
                           const std::vector<std::string>& ids, DuplicatesOutcome* out) {
  ASSIGN_OR_RETURN(PgRows rows, RowsOf(conn, table, ids, "account_id::text", "id"));
  if (rows.rows.empty()) return absl::OkStatus();
  const std::string keep = rows.rows[0][0].value_or("");
  const std::string account = rows.rows[0][1].value_or("");
  std::vector<std::string> removed;
  for (size_t i = 1; i < rows.rows.size(); ++i) {
    const std::string other = rows.rows[i][0].value_or("");
    if (rows.rows[i][1].value_or("") == account) {
      for (const char* owned : {"favourites", "mentions", "polls", "bookmarks"}) {
        RETURN_IF_ERROR(MoveRows(conn, owned, "status_id", other, keep, out));
      }
      RETURN_IF_ERROR(
          MoveRows(conn, "status_pins", "status_id", other, keep, out,
                   absl::StrCat(" AND account_id = ", conn->QuoteLiteral(account), "::bigint")));
      RETURN_IF_ERROR(MoveRows(conn, "statuses", "in_reply_to_id", other, keep, out));
      RETURN_IF_ERROR(MoveRows(conn, "statuses", "reblog_of_id", other, keep, out));
    }
    removed.push_back(other);
  }
  return DeleteRows(conn, table, removed, out);
}

// Tags: the one with the fewest of usable/trendable/listable false is kept
// (then the lowest id); featured tags move to it; the others are removed.
absl::Status MergeTags(PgSession* conn, const std::string& table,
                       const std::vector<std::string>& ids, DuplicatesOutcome* out) {
  std::vector<std::string> falses;
  for (const char* c : {"usable", "trendable", "listable"}) {
    ASSIGN_OR_RETURN(bool has, ColumnExists(conn, table, c));
    if (has) falses.push_back(absl::StrCat("(", c, " IS FALSE)::int"));
  }
  const std::string order =
      falses.empty() ? std::string("id") : absl::StrCat(absl::StrJoin(falses, " + "), ", id");
  ASSIGN_OR_RETURN(PgRows rows, RowsOf(conn, table, ids, "1", order));
  if (rows.rows.empty()) return absl::OkStatus();
  const std::string keep = rows.rows[0][0].value_or("");
  std::vector<std::string> removed;
  for (size_t i = 1; i < rows.rows.size(); ++i) {
    const std::string other = rows.rows[i][0].value_or("");
    RETURN_IF_ERROR(MoveRows(conn, "featured_tags", "tag_id", other, keep, out));
    removed.push_back(other);
  }
  return DeleteRows(conn, table, removed, out);
}

// Users sharing an email: the most recently updated keeps it; the others
// get "<n> <email>" (n from 0).
absl::Status RenameEmails(PgSession* conn, const std::string& table,
                          const std::vector<std::string>& ids, DuplicatesOutcome* out) {
  ASSIGN_OR_RETURN(PgRows rows, RowsOf(conn, table, ids, "1", "updated_at DESC, id DESC"));
  for (size_t i = 1; i < rows.rows.size(); ++i) {
    const std::string id = rows.rows[i][0].value_or("");
    RETURN_IF_ERROR(
        conn->Query(absl::StrCat("UPDATE ", table,
                                 " SET email = $1 || ' ' || email WHERE id = $2::bigint"),
                    {absl::StrCat(i - 1), id})
            .status());
    Repaired(out, BareName(table), id, absl::StrCat("email prefixed with \"", i - 1, " \""));
  }
  return absl::OkStatus();
}

// Users sharing a token: all but the newest (by `order`) lose it.
absl::Status ClearToken(PgSession* conn, const std::string& table,
                        const std::vector<std::string>& ids, DuplicatesOutcome* out,
                        const std::string& column, const std::string& order) {
  ASSIGN_OR_RETURN(PgRows rows, RowsOf(conn, table, ids, "1", order));
  for (size_t i = 1; i < rows.rows.size(); ++i) {
    const std::string id = rows.rows[i][0].value_or("");
    RETURN_IF_ERROR(conn->Query(absl::StrCat("UPDATE ", table, " SET ", column,
                                             " = NULL WHERE id = $1::bigint"),
                                {id})
                        .status());
    Repaired(out, BareName(table), id, absl::StrCat(column, " cleared"));
  }
  return absl::OkStatus();
}

absl::Status ClearConfirmationToken(PgSession* conn, const std::string& table,
                                    const std::vector<std::string>& ids, DuplicatesOutcome* out) {
  return ClearToken(conn, table, ids, out, "confirmation_token", "created_at DESC, id DESC");
}
absl::Status ClearResetPasswordToken(PgSession* conn, const std::string& table,
                                     const std::vector<std::string>& ids, DuplicatesOutcome* out) {
  return ClearToken(conn, table, ids, out, "reset_password_token", "updated_at DESC, id DESC");
}
absl::Status ClearRememberToken(PgSession* conn, const std::string& table,
                                const std::vector<std::string>& ids, DuplicatesOutcome* out) {
  return ClearToken(conn, table, ids, out, "remember_token", "updated_at DESC, id DESC");
}

// Accounts: local ones keep the highest id unchanged (fix-duplicates' default
// answer) and the others are renamed "<username>_<n>" with the first n
// no local account has; remote ones keep the most recently updated, and a
// duplicate with the same public key has its content and relationships
// moved to it (Account#merge_with!) before it is removed.
absl::Status MergeAccounts(PgSession* conn, const std::string& table,
                           const std::vector<std::string>& ids, DuplicatesOutcome* out) {
  ASSIGN_OR_RETURN(PgRows rows, RowsOf(conn, table, ids,
                                       "username, (domain IS NULL)::text, "
                                       "coalesce(public_key, '')",
                                       "id DESC"));
  if (rows.rows.empty()) return absl::OkStatus();
  if (rows.rows[0][2].value_or("") == "true") {
    for (size_t i = 1, n = 0; i < rows.rows.size(); ++i) {
      const std::string id = rows.rows[i][0].value_or("");
      const std::string username = rows.rows[i][1].value_or("");
      std::string renamed;
      while (true) {
        renamed = absl::StrCat(username, "_", ++n);
        ASSIGN_OR_RETURN(PgRows taken,
                         conn->Query(absl::StrCat("SELECT count(*) FROM ", table,
                                                  " WHERE domain IS NULL AND username = $1"),
                                     {renamed}));
        if (taken.Scalar() == "0") break;
      }
      RETURN_IF_ERROR(
          conn->Query(absl::StrCat("UPDATE ", table, " SET username = $1 WHERE id = $2::bigint"),
                      {renamed, id})
              .status());
      Repaired(out, BareName(table), id, absl::StrCat("renamed to ", renamed));
    }
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(
      rows, RowsOf(conn, table, ids, "coalesce(public_key, '')", "updated_at DESC, id DESC"));
  const std::string keep = rows.rows[0][0].value_or("");
  const std::string key = rows.rows[0][1].value_or("");
  std::vector<std::string> removed;
  for (size_t i = 1; i < rows.rows.size(); ++i) {
    const std::string other = rows.rows[i][0].value_or("");
    if (rows.rows[i][1].value_or("") == key) {
      for (const char* owned : {"statuses",
                                "status_pins",
                                "media_attachments",
                                "polls",
                                "reports",
                                "tombstones",
                                "favourites",
                                "follows",
                                "follow_requests",
                                "blocks",
                                "mutes",
                                "account_moderation_notes",
                                "account_pins",
                                "account_stats",
                                "list_accounts",
                                "poll_votes",
                                "mentions",
                                "account_deletion_requests",
                                "account_notes",
                                "follow_recommendation_suppressions",
                                "account_identity_proofs",
                                "appeals",
                                "bulk_imports"}) {
        RETURN_IF_ERROR(MoveRows(conn, owned, "account_id", other, keep, out));
      }
      for (const char* target : {"follows", "follow_requests", "blocks", "mutes",
                                 "account_moderation_notes", "account_pins", "account_notes"}) {
        RETURN_IF_ERROR(MoveRows(conn, target, "target_account_id", other, keep, out));
      }
      RETURN_IF_ERROR(
          MoveRows(conn, "canonical_email_blocks", "reference_account_id", other, keep, out));
    }
    removed.push_back(other);
  }
  return DeleteRows(conn, table, removed, out);
}

const std::vector<Rule>& Rules() {
  static const std::vector<Rule> rules = {
      {"users",
       {"email"},
       "the most recently updated keeps the email, the others get \"<n> <email>\"",
       RenameEmails},
      {"users",
       {"confirmation_token"},
       "the newest keeps the token, the others' is cleared",
       ClearConfirmationToken},
      {"users",
       {"reset_password_token"},
       "the most recently updated keeps the token, the others' is cleared",
       ClearResetPasswordToken},
      {"users",
       {"remember_token"},
       "the most recently updated keeps the token, the others' is cleared",
       ClearRememberToken},
      {"account_domain_blocks",
       {"account_id", "domain"},
       "one is kept (the lowest id), the others removed",
       KeepFirst},
      {"account_identity_proofs",
       {"account_id", "provider", "provider_username"},
       "the highest id is kept, the others removed",
       KeepNewest},
      {"announcement_reactions",
       {"account_id", "announcement_id", "name"},
       "the highest id is kept, the others removed",
       KeepNewest},
      {"custom_emojis",
       {"shortcode", "domain"},
       "the highest id is kept, announcement reactions moved to it, the others removed",
       MergeEmojis},
      {"custom_emoji_categories",
       {"name"},
       "the highest id is kept, emojis moved to it, the others removed",
       MergeEmojiCategories},
      {"domain_allows", {"domain"}, "the highest id is kept, the others removed", KeepNewest},
      {"unavailable_domains", {"domain"}, "the highest id is kept, the others removed", KeepNewest},
      {"media_attachments",
       {"shortcode"},
       "one keeps the shortcode (the lowest id), the others' is cleared",
       ClearShortcodes},
      {"preview_cards", {"url"}, "the highest id is kept, the others removed", KeepNewest},
      {"statuses",
       {"uri"},
       "the lowest id is kept; duplicates of the same account have their favourites, mentions, "
       "polls, bookmarks, pins, replies and reblogs moved to it; the others removed",
       MergeStatuses},
      {"accounts",
       {"lowerusername", "coalescelowerdomain*"},
       "local: the highest id keeps its username, the others are renamed <username>_<n>; remote: "
       "the most recently updated is kept, duplicates with its public key merged into it, the "
       "others removed",
       MergeAccounts},
      {"accounts", {"lowerusername", "lowerdomain"}, "as above", MergeAccounts},
      {"tags",
       {"lowername"},
       "the tag with the fewest of usable/trendable/listable false is kept, featured tags moved "
       "to it, the others removed",
       MergeTags},
      {"webauthn_credentials",
       {"external_id"},
       "the highest id is kept, the others removed",
       KeepNewest},
      {"webhooks", {"url"}, "the highest id is kept, the others removed", KeepNewest},
  };
  return rules;
}

const Rule* FindRule(const std::string& table, const std::vector<std::string>& columns) {
  for (const Rule& rule : Rules()) {
    if (table != rule.table || columns.size() != rule.columns.size()) continue;
    bool match = true;
    for (size_t i = 0; i < columns.size() && match; ++i) {
      const std::string c = Normalized(columns[i]);
      absl::string_view want = rule.columns[i];
      match = absl::ConsumeSuffix(&want, "*") ? absl::StartsWith(c, want) : c == want;
    }
    if (match) return &rule;
  }
  return nullptr;
}

// Every group of duplicates under `key` (the row ids, ascending).
absl::StatusOr<std::vector<std::vector<std::string>>> DuplicateGroups(PgSession* conn,
                                                                      const UniqueKey& key) {
  ASSIGN_OR_RETURN(PgRows rows,
                   conn->Query(absl::StrCat("SELECT array_to_string(array_agg(id::text ORDER BY "
                                            "id), ' ') FROM ",
                                            key.table, " WHERE ", KeyRowsCondition(key),
                                            " GROUP BY ", absl::StrJoin(key.columns, ", "),
                                            " HAVING count(*) > 1 ORDER BY min(id)")));
  std::vector<std::vector<std::string>> groups;
  for (const auto& row : rows.rows) {
    std::vector<std::string> ids = absl::StrSplit(row[0].value_or(""), ' ', absl::SkipEmpty());
    groups.push_back(std::move(ids));
  }
  return groups;
}

// Applies `rule` to every group under `key` and runs `sql` (the build) in
// one transaction: false (and nothing changed) when the build still fails.
// The rows deleted so far per table, as the server counts them for this
// session: pg_stat_xact_user_tables, which from PostgreSQL 15 on also holds
// the counts of earlier transactions not yet reported to the statistics
// system. Only a difference taken inside one transaction is that
// transaction's.
absl::StatusOr<std::map<std::string, int64_t>> RowsDeletedSoFar(PgSession* conn) {
  ASSIGN_OR_RETURN(PgRows rows,
                   conn->Query("SELECT format('%I.%I', schemaname, relname), n_tup_del::text FROM "
                               "pg_catalog.pg_stat_xact_user_tables WHERE n_tup_del > 0"));
  std::map<std::string, int64_t> deleted;
  for (const auto& row : rows.rows) {
    int64_t n = 0;
    if (absl::SimpleAtoi(row[1].value_or("0"), &n)) deleted[row[0].value_or("")] = n;
  }
  return deleted;
}

absl::StatusOr<bool> RepairAndBuild(PgSession* conn, const Rule& rule, const UniqueKey& key,
                                    const std::string& sql, DuplicatesOutcome* out,
                                    std::string* error) {
  DuplicatesOutcome changes;
  RETURN_IF_ERROR(conn->Exec("BEGIN"));
  std::map<std::string, int64_t> deleted_before;
  absl::Status s = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(deleted_before, RowsDeletedSoFar(conn));
    ASSIGN_OR_RETURN(auto groups, DuplicateGroups(conn, key));
    for (const auto& ids : groups) {
      if (ids.size() > 1) RETURN_IF_ERROR(rule.apply(conn, key.table, ids, &changes));
    }
    return conn->Exec(sql);
  }();
  if (!s.ok()) {
    // Still duplicated, or the rule could not be applied (e.g. a row it
    // removes is referenced by a foreign key that cascades nowhere): the
    // index stays refused, with what happened.
    *error = conn->last_error().sqlstate == "23505"
                 ? BuildErrorText(conn->last_error())
                 : absl::StrCat("the repair failed: ", s.message());
    conn->Exec("ROLLBACK").IgnoreError();
    if (s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kCancelled) {
      return s;
    }
    return false;
  }
  // The rows this transaction deleted, cascades included.
  ASSIGN_OR_RETURN(auto deleted_after, RowsDeletedSoFar(conn));
  RETURN_IF_ERROR(conn->Exec("COMMIT"));
  for (const auto& [table, n] : deleted_after) {
    const int64_t mine = n - deleted_before[table];
    if (mine > 0) out->deleted_rows[table] += mine;
  }
  for (auto& r : changes.repaired_rows) {
    if (out->repaired_rows.size() < kMaxRepairedRows) out->repaired_rows.push_back(std::move(r));
  }
  out->repaired_row_count += changes.repaired_row_count;
  return true;
}

}  // namespace

std::string RepairRuleFor(const std::string& table, const std::vector<std::string>& columns) {
  const Rule* rule = FindRule(table, columns);
  return rule == nullptr ? std::string() : std::string(rule->description);
}

absl::StatusOr<DuplicatesOutcome> ResolveDuplicates(PgSession* conn,
                                                    const std::vector<FailedBuild>& failed,
                                                    bool repair) {
  DuplicatesOutcome out;
  // The unique builds in dump order, then their dependents.
  std::vector<const FailedBuild*> builds, dependents;
  for (const FailedBuild& f : failed) {
    (f.unique_violation ? builds : dependents).push_back(&f);
  }
  auto by_line = [](const FailedBuild* a, const FailedBuild* b) { return a->line < b->line; };
  // Repairs in fix-duplicates' order (users, ..., statuses, accounts, tags,
  // ...: the order of Rules()), uncovered builds last.
  auto rule_rank = [](const FailedBuild* f) -> size_t {
    absl::StatusOr<UniqueKey> key = ParseUniqueKey(f->sql);
    const Rule* rule = key.ok() ? FindRule(BareName(key->table), key->columns) : nullptr;
    return rule == nullptr ? Rules().size() : static_cast<size_t>(rule - Rules().data());
  };
  std::stable_sort(builds.begin(), builds.end(), by_line);
  if (repair) {
    std::stable_sort(builds.begin(), builds.end(), [&](const FailedBuild* a, const FailedBuild* b) {
      return rule_rank(a) < rule_rank(b);
    });
  }
  std::stable_sort(dependents.begin(), dependents.end(), by_line);
  std::set<std::string> still_failing;  // tables
  for (const FailedBuild* f : builds) {
    bool built = false;
    std::string error = f->error;
    if (repair) {
      absl::StatusOr<UniqueKey> key = ParseUniqueKey(f->sql);
      const Rule* rule = key.ok() ? FindRule(BareName(key->table), key->columns) : nullptr;
      if (rule != nullptr) {
        ASSIGN_OR_RETURN(built, RepairAndBuild(conn, *rule, *key, f->sql, &out, &error));
      }
    }
    if (built) continue;
    FailedBuild now = *f;
    now.error = error;
    ASSIGN_OR_RETURN(v1::DuplicateFinding finding, FindDuplicates(conn, now));
    out.findings.push_back(std::move(finding));
    for (const std::string& t : f->tables) still_failing.insert(t);
  }
  for (const FailedBuild* f : dependents) {
    bool blocked = false;
    for (const std::string& t : f->tables) blocked = blocked || still_failing.count(t) > 0;
    if (blocked) {
      out.dependent_statements.push_back(
          absl::StrCat(f->toc_entry.empty() ? "" : f->toc_entry + ": ", f->sql.substr(0, 300)));
      continue;
    }
    absl::Status s = conn->Exec(f->sql);
    if (!s.ok()) {
      return absl::Status(
          s.code(), absl::StrCat("unable to run '", f->sql.substr(0, 200), "' (line ", f->line,
                                 ") after the repair: ", s.message()));
    }
  }
  return out;
}

}  // namespace mastodon_restore
