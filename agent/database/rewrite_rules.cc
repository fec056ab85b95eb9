#include "agent/database/rewrite_rules.h"

#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/database/sql_splitter.h"
#include "agent/dump/archive_script.h"
#include "agent/dump/plain_scanner.h"
#include "agent/dump/statement_classifier.h"

namespace mastodon_restore {
namespace {

// The span of the database identifier after `marker` (found in `upper`,
// the statement's head); false when the head has no `marker`.
bool FindDatabaseName(const std::string& sql, const std::string& upper, const std::string& marker,
                      size_t* begin, size_t* end) {
  size_t at = upper.find(marker);
  if (at == std::string::npos) return false;
  size_t i = at + marker.size();
  if (i >= sql.size()) return false;
  *begin = i;
  if (ScanQualifiedName(sql, &i).empty()) {
    while (i < sql.size() && sql[i] != ' ' && sql[i] != ';' && sql[i] != '\n') ++i;
  }
  *end = i;
  return true;
}

// Replaces the database identifier after `marker` with the target's when it
// names the source database.
void RenameDatabase(const RewriteContext& context, const std::string& upper,
                    const std::string& marker, std::string* sql, RewriteResult* result) {
  size_t begin, end;
  if (!FindDatabaseName(*sql, upper, marker, &begin, &end)) return;
  std::string name = UnquoteIdentifier(sql->substr(begin, end - begin));
  if (context.source_db.empty()) result->source_db = name;
  if (name != (context.source_db.empty() ? name : context.source_db)) return;
  sql->replace(begin, end - begin, context.quoted_target_db);
}

RewriteResult Skip(std::string note) {
  RewriteResult r;
  r.action = RewriteResult::Action::kSkip;
  r.note = std::move(note);
  return r;
}

std::string RoleAfter(absl::string_view sql, size_t prefix) {
  absl::string_view rest = sql.substr(prefix);
  return UnquoteIdentifier(rest.substr(0, rest.find_first_of(" ;")));
}

RewriteResult Refuse(std::string reason) {
  RewriteResult r;
  r.action = RewriteResult::Action::kRefuse;
  r.note = std::move(reason);
  return r;
}

RewriteResult Rewritten(std::string note) {
  RewriteResult r;
  r.note = std::move(note);
  return r;
}

// The tokens of a statement, with helpers to match keywords.
class Tokens {
 public:
  explicit Tokens(absl::string_view sql) : t_(TokenizeSql(sql).tokens) {}
  size_t size() const { return t_.size(); }
  const SqlToken& operator[](size_t i) const { return t_[i]; }
  bool W(size_t i, absl::string_view word) const {
    return i < t_.size() && t_[i].type == SqlToken::Type::kWord && t_[i].text == word;
  }
  bool P(size_t i, absl::string_view punct) const {
    return i < t_.size() && t_[i].type == SqlToken::Type::kPunct && t_[i].text == punct;
  }
  // The index of the ')' closing the '(' at `open` (size() when unbalanced).
  size_t Close(size_t open) const {
    int depth = 0;
    for (size_t i = open; i < t_.size(); ++i) {
      if (P(i, "(")) ++depth;
      if (P(i, ")") && --depth == 0) return i;
    }
    return t_.size();
  }
  // Past a possibly qualified name starting at `i`.
  size_t SkipName(size_t i) const {
    while (i < t_.size() &&
           (t_[i].type == SqlToken::Type::kWord || t_[i].type == SqlToken::Type::kQuotedIdent)) {
      if (!P(i + 1, ".")) return i + 1;
      i += 2;
    }
    return i;
  }
  // The source text of tokens [from, to).
  std::string Text(absl::string_view sql, size_t from, size_t to) const {
    if (from >= to || to > t_.size()) return "";
    return std::string(sql.substr(t_[from].begin, t_[to - 1].end - t_[from].begin));
  }

 private:
  std::vector<SqlToken> t_;
};

std::string Target(int t) { return absl::StrCat("PostgreSQL ", t); }

// CREATE COLLATION name (provider = builtin, locale = 'X') on <= 16 (or
// PG_UNICODE_FAST on 17).
RewriteResult BuiltinCollation(int t, std::string* sql) {
  Tokens k(*sql);
  size_t name_end = k.SkipName(2);
  const std::string name = k.Text(*sql, 2, name_end);
  size_t provider = k.size(), locale = k.size();
  for (size_t i = name_end; i + 2 < k.size(); ++i) {
    if (k.W(i, "provider") && k[i + 1].text == "=") provider = i + 2;
    if ((k.W(i, "locale") || k.W(i, "lc_collate")) && k[i + 1].text == "=") locale = i + 2;
  }
  if (provider >= k.size() || !k.W(provider, "builtin")) return RewriteResult();
  const std::string value = locale < k.size() ? k[locale].text : "";
  if (absl::AsciiStrToUpper(value) == "PG_UNICODE_FAST" && t <= 17) {
    return Refuse(absl::StrCat("collation ", name,
                               " uses the builtin provider's PG_UNICODE_FAST locale (PostgreSQL "
                               "18); the target runs ",
                               t));
  }
  if (t >= 17) return RewriteResult();
  if (value != "C") {
    return Refuse(absl::StrCat("collation ", name, " uses the builtin provider (PostgreSQL 17+) ",
                               "with locale '", value, "', which ", Target(t),
                               " has no faithful equivalent of"));
  }
  sql->replace(k[provider].begin, k[provider].end - k[provider].begin, "libc");
  return Rewritten(absl::StrCat(
      "builtin collation locale 'C' created with the libc provider (target ", Target(t), ")"));
}

// PostgreSQL 18 syntax in CREATE TABLE / ALTER TABLE on <= 17.
RewriteResult TableSyntax18(int t, bool create, std::string* sql) {
  Tokens k(*sql);
  size_t name_begin = 2;
  while (create && name_begin < k.size() && !k.W(name_begin - 1, "table")) ++name_begin;
  if (k.W(name_begin, "only")) ++name_begin;
  if (k.W(name_begin, "if") && k.W(name_begin + 1, "not") && k.W(name_begin + 2, "exists")) {
    name_begin += 3;
  }
  const size_t name_end = k.SkipName(name_begin);
  const std::string table = k.Text(*sql, name_begin, name_end);
  int depth = 0;
  std::vector<size_t> stored_after;  // ')' of virtual generated columns
  for (size_t i = 0; i < k.size(); ++i) {
    if (k.P(i, "(")) ++depth;
    if (k.P(i, ")")) --depth;
    if (depth > (create ? 1 : 0)) continue;
    // Column form "NOT NULL NO INHERIT", table form "NOT NULL col NO INHERIT".
    if (k.W(i, "not") && k.W(i + 1, "null") &&
        ((k.W(i + 2, "no") && k.W(i + 3, "inherit")) ||
         (k.W(i + 3, "no") && k.W(i + 4, "inherit")))) {
      return Refuse(absl::StrCat("NOT NULL NO INHERIT constraint on ", table,
                                 " needs PostgreSQL 18; the target runs ", t));
    }
    if (k.W(i, "not") && k.W(i + 1, "enforced")) {
      return Refuse(absl::StrCat("NOT ENFORCED constraint on ", table,
                                 " needs PostgreSQL 18; the target runs ", t));
    }
    if (create && k.W(i, "generated") && k.W(i + 1, "always") && k.W(i + 2, "as") &&
        k.P(i + 3, "(")) {
      const size_t close = k.Close(i + 3);
      if (close < k.size() && !k.W(close + 1, "stored")) stored_after.push_back(close);
    }
  }
  if (!create) {
    // ALTER TABLE [ONLY] t ADD CONSTRAINT c NOT NULL col [NOT VALID]
    const size_t a = name_end;
    if (k.W(a, "add") && k.W(a + 1, "constraint") && k.W(a + 3, "not") && k.W(a + 4, "null") &&
        a + 5 < k.size()) {
      const std::string constraint = k.Text(*sql, a + 2, a + 3);
      if (k.W(a + 6, "not") && k.W(a + 7, "valid")) {
        return Refuse(absl::StrCat("NOT NULL constraint ", constraint, " NOT VALID on ", table,
                                   " needs PostgreSQL 18; the target runs ", t));
      }
      const std::string column = k.Text(*sql, a + 5, a + 6);
      *sql = absl::StrCat(k.Text(*sql, 0, a), " ALTER COLUMN ", column, " SET NOT NULL;");
      return Rewritten(absl::StrCat("NOT NULL constraints added as unnamed SET NOT NULL (target ",
                                    Target(t), ")"));
    }
    return RewriteResult();
  }
  if (stored_after.empty()) return RewriteResult();
  for (auto it = stored_after.rbegin(); it != stored_after.rend(); ++it) {
    sql->insert(k[*it].end, " STORED");
  }
  return Rewritten(absl::StrCat("virtual generated columns created STORED (target ", Target(t),
                                " has no virtual ones; same values)"));
}

// ALTER TABLE [ONLY] t SET ACCESS METHOD am on <= 16.
RewriteResult SetAccessMethod(int t, const std::string& sql) {
  Tokens k(sql);
  size_t name_begin = k.W(2, "only") ? 3 : 2;
  const size_t name_end = k.SkipName(name_begin);
  if (!(k.W(name_end, "set") && k.W(name_end + 1, "access") && k.W(name_end + 2, "method"))) {
    return RewriteResult();
  }
  const std::string method = name_end + 3 < k.size() ? k[name_end + 3].text : "";
  if (method == "heap") {
    return Skip(absl::StrCat("removed ALTER TABLE ... SET ACCESS METHOD heap (target ", Target(t),
                             ": heap is the only one)"));
  }
  return Refuse(absl::StrCat("table ", k.Text(sql, name_begin, name_end), " uses access method ",
                             method, ", which ", Target(t), " cannot set on it"));
}

// GRANT r TO m WITH <options> [GRANTED BY g] of pg_dumpall 16+ (which
// writes INHERIT TRUE or FALSE on every membership) on <= 15, whose
// memberships inherit as their members do (`members_inherit`, see
// RewriteContext::grant_members_inherit).
RewriteResult RoleGrantOptions(int t, std::optional<bool> members_inherit, std::string* sql) {
  Tokens k(*sql);
  size_t with = k.size(), granted_by = k.size(), end = k.size();
  if (k.P(end - 1, ";")) --end;
  for (size_t i = 1; i < end; ++i) {
    if (k.W(i, "with") && with == k.size()) with = i;
    if (k.W(i, "granted") && k.W(i + 1, "by")) granted_by = i;
  }
  if (with == k.size()) return RewriteResult();
  const size_t options_end = std::min(granted_by, end);
  bool admin = false;
  for (size_t i = with + 1; i < options_end; ++i) {
    if (k.P(i, ",")) continue;
    const std::string option = k[i].text;
    const std::string value = i + 1 < options_end ? k[i + 1].text : "";
    ++i;
    const bool on = value == "true" || value == "option" || value == "on";
    if (option == "admin") {
      admin = on;
    } else if (option == "inherit" && on != members_inherit.value_or(true)) {
      return Refuse(absl::StrCat(
          "role membership ", k.Text(*sql, 1, with), " WITH INHERIT ", on ? "TRUE" : "FALSE",
          " needs PostgreSQL 16", members_inherit.has_value() ? " (its member is " : "",
          members_inherit.has_value() ? (*members_inherit ? "INHERIT)" : "NOINHERIT)") : "",
          "; the target runs ", t));
    } else if (option == "set" && !on) {
      return Refuse(absl::StrCat("role membership ", k.Text(*sql, 1, with),
                                 " WITH SET FALSE needs PostgreSQL 16; the target runs ", t));
    } else if (option != "inherit" && option != "set") {
      return Refuse(absl::StrCat("role membership option ", option, " unknown to ", Target(t)));
    }
  }
  std::string out = k.Text(*sql, 0, with);
  if (admin) absl::StrAppend(&out, " WITH ADMIN OPTION");
  if (granted_by < end) absl::StrAppend(&out, " ", k.Text(*sql, granted_by, end));
  *sql = absl::StrCat(out, ";");
  return Rewritten(
      absl::StrCat("role memberships without their INHERIT/SET options (target ", Target(t), ")"));
}

// Dumps of tables with OIDs (pg_dump 9.6-11) on >= 12.
RewriteResult Oids(int t, const std::string& upper, const std::string& sql) {
  if (absl::StartsWith(upper, "SET DEFAULT_WITH_OIDS ")) {
    if (upper.find("FALSE") != std::string::npos || upper.find("OFF") != std::string::npos) {
      return Skip(absl::StrCat("removed SET default_with_oids = false (target ", Target(t),
                               ": tables have no OIDs since PostgreSQL 12)"));
    }
    return Refuse(
        absl::StrCat("the dump creates tables WITH OIDS (PostgreSQL <= 11; SET "
                     "default_with_oids = true before the next table): ",
                     Target(t), " has no table OIDs"));
  }
  Tokens k(sql);
  const bool copy = k.W(0, "copy");
  const bool create = k.W(0, "create") && k.W(1, "table");
  if (!copy && !create) return RewriteResult();
  size_t name_begin = copy ? 1 : 2;
  if (k.W(name_begin, "if") && k.W(name_begin + 1, "not") && k.W(name_begin + 2, "exists")) {
    name_begin += 3;
  }
  const size_t name_end = k.SkipName(name_begin);
  size_t i = name_end;
  if (k.P(i, "(")) i = k.Close(i) + 1;
  for (; i + 1 < k.size(); ++i) {
    if (k.W(i, "with") && k.W(i + 1, "oids")) break;
    if (k.W(i, "with") && k.P(i + 1, "(") && k.W(i + 2, "oids") && i + 4 < k.size() &&
        k[i + 3].text == "=" && (k.W(i + 4, "true") || k.W(i + 4, "on"))) {
      break;
    }
    if (copy) return RewriteResult();  // WITH OIDS comes right after the columns
  }
  if (i + 1 >= k.size()) return RewriteResult();
  return Refuse(absl::StrCat("table ", k.Text(sql, name_begin, name_end),
                             " was dumped WITH OIDS (PostgreSQL <= 11): ", Target(t),
                             " has no table OIDs"));
}

}  // namespace

namespace {

// The version rules of RewriteStatement (rewrite_rules.h); `upper` is the
// statement's head.
RewriteResult RewriteForVersion(const RewriteContext& context, const std::string& upper,
                                std::string* sql) {
  const int t = context.target_major;
  if (t <= 17 && absl::StartsWith(upper, "SELECT * FROM PG_CATALOG.PG_RESTORE_") &&
      (absl::StartsWith(upper.substr(36), "RELATION_STATS(") ||
       absl::StartsWith(upper.substr(36), "ATTRIBUTE_STATS("))) {
    return Skip(absl::StrCat("skipped the dump's planner statistics (target ", Target(t),
                             "; the restore runs ANALYZE)"));
  }
  if (t <= 17 && absl::StartsWith(upper, "CREATE COLLATION ") &&
      absl::StrContains(StatementHead(*sql, sql->size()), "BUILTIN")) {
    return BuiltinCollation(t, sql);
  }
  if (t <= 17 && (absl::StartsWith(upper, "CREATE TABLE ") ||
                  absl::StartsWith(upper, "CREATE UNLOGGED TABLE "))) {
    RewriteResult r = TableSyntax18(t, /*create=*/true, sql);
    if (r.action != RewriteResult::Action::kRun || !r.note.empty()) return r;
  }
  if (t <= 17 && absl::StartsWith(upper, "ALTER TABLE ")) {
    RewriteResult r = TableSyntax18(t, /*create=*/false, sql);
    if (r.action != RewriteResult::Action::kRun || !r.note.empty()) return r;
    if (t <= 16) return SetAccessMethod(t, *sql);
  }
  if (t <= 15 && absl::StartsWith(upper, "GRANT ")) {
    std::vector<std::string> granted, members;
    if (ParseRoleGrant(*sql, &granted, &members)) {
      return RoleGrantOptions(t, context.grant_members_inherit, sql);
    }
  }
  if (t >= 12 && (absl::StartsWith(upper, "SET DEFAULT_WITH_OIDS ") ||
                  absl::StartsWith(upper, "COPY ") || absl::StartsWith(upper, "CREATE TABLE "))) {
    return Oids(t, StatementHead(*sql, sql->size()), *sql);
  }
  return RewriteResult();
}

}  // namespace

std::string StatementHead(absl::string_view sql, size_t n) {
  std::string head(sql.substr(0, n));
  for (char& c : head) {
    c = c == '\n' || c == '\t' || c == '\r' ? ' ' : absl::ascii_toupper(c);
  }
  return head;
}

RewriteResult RewriteStatement(const RewriteContext& context, std::string* sql) {
  const std::string upper = StatementHead(*sql);
  const int t = context.target_major;
  if (t > 0) {
    RewriteResult r = RewriteForVersion(context, upper, sql);
    if (r.action != RewriteResult::Action::kRun || !r.note.empty()) return r;
  }
  if (absl::StartsWith(upper, "SET TRANSACTION_TIMEOUT ") && t > 0 && t <= 16) {
    return Skip(absl::StrCat("removed SET transaction_timeout (target PostgreSQL ", t, ")"));
  }
  if (absl::StartsWith(upper, "SET DEFAULT_TABLE_ACCESS_METHOD ") && t > 0 && t <= 11) {
    return Skip(
        absl::StrCat("removed SET default_table_access_method (target PostgreSQL ", t, ")"));
  }
  if (absl::StartsWith(upper, "SET IDLE_IN_TRANSACTION_SESSION_TIMEOUT ") && t > 0 && t < 10) {
    return Skip("removed SET idle_in_transaction_session_timeout");
  }
  RewriteResult result;
  if (absl::StartsWith(upper, "CREATE DATABASE ")) {
    absl::string_view rest = absl::string_view(*sql).substr(16);
    std::string name = UnquoteIdentifier(rest.substr(0, rest.find_first_of(" ;")));
    result = Skip(absl::StrCat("CREATE DATABASE ", name, " replaced by the staging database"));
    if (context.source_db.empty()) result.source_db = name;
    return result;
  }
  if (absl::StartsWith(upper, "ALTER DATABASE ")) {
    RenameDatabase(context, upper, "ALTER DATABASE ", sql, &result);
  } else if (absl::StartsWith(upper, "COMMENT ON DATABASE ")) {
    RenameDatabase(context, upper, "COMMENT ON DATABASE ", sql, &result);
  } else if ((absl::StartsWith(upper, "GRANT ") || absl::StartsWith(upper, "REVOKE ")) &&
             upper.find(" ON DATABASE ") != std::string::npos) {
    RenameDatabase(context, upper, " ON DATABASE ", sql, &result);
  } else if (absl::StartsWith(upper, "ALTER ROLE ") &&
             upper.find(" IN DATABASE ") != std::string::npos) {
    RenameDatabase(context, upper, " IN DATABASE ", sql, &result);
  } else if (absl::StartsWith(upper, "COMMENT ON EXTENSION ") && !context.superuser) {
    return Skip("skipped COMMENT ON EXTENSION (target role is not a superuser)");
  }
  return result;
}

GlobalStatement ClassifyGlobalStatement(absl::string_view sql) {
  const std::string upper = StatementHead(sql);
  GlobalStatement g;
  if (absl::StartsWith(upper, "CREATE ROLE ")) {
    g.kind = GlobalStatement::Kind::kCreateRole;
    g.role = RoleAfter(sql, 12);
  } else if (absl::StartsWith(upper, "ALTER ROLE ")) {
    g.kind = GlobalStatement::Kind::kAlterRole;
    g.role = RoleAfter(sql, 11);
  } else if (absl::StartsWith(upper, "SET ")) {
    g.kind = GlobalStatement::Kind::kSet;
  } else if (absl::StartsWith(upper, "CREATE TABLESPACE ")) {
    g.kind = GlobalStatement::Kind::kTablespace;
  } else if (absl::StartsWith(upper, "GRANT ")) {
    std::vector<std::string> granted, members;
    if (ParseRoleGrant(sql, &granted, &members)) g.kind = GlobalStatement::Kind::kGrantRole;
  }
  return g;
}

bool ParseRoleGrant(absl::string_view sql, std::vector<std::string>* granted,
                    std::vector<std::string>* members) {
  Tokens k(sql);
  if (!k.W(0, "grant")) return false;
  auto names = [&](size_t i, std::vector<std::string>* out) {
    while (i < k.size() &&
           (k[i].type == SqlToken::Type::kWord || k[i].type == SqlToken::Type::kQuotedIdent)) {
      out->push_back(k[i].text);
      if (!k.P(i + 1, ",")) return i + 1;
      i += 2;
    }
    return size_t{0};
  };
  std::vector<std::string> g, m;
  size_t to = names(1, &g);
  if (to == 0 || !k.W(to, "to") || g.empty()) return false;
  size_t end = names(to + 1, &m);
  if (end == 0 || m.empty()) return false;
  if (end < k.size() && !k.W(end, "with") && !k.W(end, "granted") && !k.P(end, ";")) return false;
  *granted = std::move(g);
  *members = std::move(m);
  return true;
}

bool StripRolePassword(std::string* sql) {
  ClassifyOptions options;
  options.context = StatementContext::kGlobals;
  options.allow_privileged_roles = true;  // only the clauses matter here
  return StripPasswordClauses(ClassifyStatement(*sql, options), sql);
}

bool ParseTocComment(absl::string_view c, std::string* entry, std::string* type) {
  bool data = absl::ConsumePrefix(&c, "Data for Name: ");
  if (!data && !absl::ConsumePrefix(&c, "Name: ")) return false;
  size_t t = c.find("; Type: ");
  size_t s = c.find("; Schema: ");
  size_t o = c.find("; Owner: ");
  if (t == absl::string_view::npos || s == absl::string_view::npos || s < t) return false;
  std::string name(c.substr(0, t));
  std::string kind(c.substr(t + 8, s - t - 8));
  std::string schema(
      c.substr(s + 10, o == absl::string_view::npos ? absl::string_view::npos : o - s - 10));
  *entry = absl::StrCat(kind, " ", schema == "-" ? name : absl::StrCat(schema, ".", name));
  *type = std::move(kind);
  return true;
}

std::string CopyTarget(absl::string_view sql) {
  absl::ConsumePrefix(&sql, "COPY ");
  size_t at = 0;
  std::string table = ScanQualifiedName(sql, &at);
  return table.empty() ? std::string(sql.substr(0, sql.find(' '))) : table;
}

namespace {

// The value of the argument pair "'<key>', '<value>'" of a statistics call
// (a standard-conforming literal, '' for a quote); false when it is not
// there.
bool StatisticsArgument(absl::string_view sql, absl::string_view key, std::string* value) {
  const std::string quoted_key = absl::StrCat("'", key, "',");
  size_t at = sql.find(quoted_key);
  if (at == absl::string_view::npos) return false;
  at += quoted_key.size();
  while (at < sql.size() && absl::ascii_isspace(static_cast<unsigned char>(sql[at]))) ++at;
  if (at >= sql.size() || sql[at] != '\'') return false;
  value->clear();
  for (++at; at < sql.size(); ++at) {
    if (sql[at] != '\'') {
      value->push_back(sql[at]);
    } else if (at + 1 < sql.size() && sql[at + 1] == '\'') {
      value->push_back('\'');
      ++at;
    } else {
      return !value->empty();
    }
  }
  return false;
}

}  // namespace

bool ParseStatisticsImport(absl::string_view sql, std::string* table, bool* attribute) {
  const std::string upper = StatementHead(sql);
  constexpr absl::string_view kPrefix = "SELECT * FROM PG_CATALOG.PG_RESTORE_";
  if (!absl::StartsWith(upper, kPrefix)) return false;
  const absl::string_view rest = absl::string_view(upper).substr(kPrefix.size());
  if (absl::StartsWith(rest, "RELATION_STATS(")) {
    *attribute = false;
  } else if (absl::StartsWith(rest, "ATTRIBUTE_STATS(")) {
    *attribute = true;
  } else {
    return false;
  }
  std::string schema, relation;
  if (!StatisticsArgument(sql, "schemaname", &schema) ||
      !StatisticsArgument(sql, "relname", &relation)) {
    return false;
  }
  *table = absl::StrCat(QuoteArchiveIdent(schema), ".", QuoteArchiveIdent(relation));
  return true;
}

bool ValidRestrictKey(absl::string_view key) {
  if (key == "(null)") return true;
  if (key.empty()) return false;
  for (char c : key) {
    if (!absl::ascii_isalnum(c)) return false;
  }
  return true;
}

namespace {

bool IsWord(const SqlToken& t, absl::string_view word) {
  return t.type == SqlToken::Type::kWord && t.text == word;
}

bool IsName(const SqlToken& t) {
  return t.type == SqlToken::Type::kWord || t.type == SqlToken::Type::kQuotedIdent;
}

// The tokens of a complete statement without its final ';', or nothing when
// it is incomplete or holds a literal (no statement these functions accept
// has one: a literal would be an expression the superuser evaluates).
std::vector<SqlToken> StatementTokens(absl::string_view sql) {
  TokenizeResult r = TokenizeSql(sql);
  if (!r.complete) return {};
  if (!r.tokens.empty() && r.tokens.back().type == SqlToken::Type::kPunct &&
      r.tokens.back().text == ";") {
    r.tokens.pop_back();
  }
  for (const SqlToken& t : r.tokens) {
    if (t.type == SqlToken::Type::kString || t.type == SqlToken::Type::kDollarString ||
        t.type == SqlToken::Type::kParam || (t.type == SqlToken::Type::kPunct && t.text == ";")) {
      return {};
    }
  }
  return std::move(r.tokens);
}

}  // namespace

std::string OwnerToRole(absl::string_view sql) {
  // ALTER <kind> <name> OWNER TO <role>: one action (ALTER TABLE takes
  // several, separated by commas at the top level, and the others could
  // be expressions), the role last.
  const std::vector<SqlToken> t = StatementTokens(sql);
  const size_t n = t.size();
  if (n < 5 || !IsWord(t[0], "alter") || !IsWord(t[n - 3], "owner") || !IsWord(t[n - 2], "to") ||
      !IsName(t[n - 1])) {
    return "";
  }
  int depth = 0;
  for (size_t i = 1; i + 3 < n; ++i) {
    if (t[i].type != SqlToken::Type::kPunct) continue;
    if (t[i].text == "(") ++depth;
    if (t[i].text == ")") --depth;
    if (t[i].text == "," && depth == 0) return "";
  }
  return t[n - 1].text;
}

std::string DefaultPrivilegesRole(absl::string_view sql) {
  // ALTER DEFAULT PRIVILEGES FOR ROLE|USER <role> [IN SCHEMA ...] GRANT|REVOKE
  // ...: privileges and names only.
  const std::vector<SqlToken> t = StatementTokens(sql);
  if (t.size() < 8 || !IsWord(t[0], "alter") || !IsWord(t[1], "default") ||
      !IsWord(t[2], "privileges") || !IsWord(t[3], "for") ||
      !(IsWord(t[4], "role") || IsWord(t[4], "user")) || !IsName(t[5]) ||
      !(IsWord(t[6], "in") || IsWord(t[6], "grant") || IsWord(t[6], "revoke"))) {
    return "";
  }
  return t[5].text;
}

}  // namespace mastodon_restore
