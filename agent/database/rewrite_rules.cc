#include "agent/database/rewrite_rules.h"

#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/database/sql_splitter.h"
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
  }
  return g;
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
