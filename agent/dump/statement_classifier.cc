#include "agent/dump/statement_classifier.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace mastodon_restore {

const char* const kDefaultExtensions[] = {
    "plpgsql",         "pg_stat_statements", "btree_gin", "btree_gist", "citext",    "cube",
    "dict_int",        "fuzzystrmatch",      "hstore",    "intarray",   "isn",       "lo",
    "ltree",           "pgcrypto",           "pg_trgm",   "seg",        "tablefunc", "tcn",
    "tsm_system_rows", "tsm_system_time",    "unaccent",  "uuid-ossp",  nullptr};

const char* const kAllowedSetSettings[] = {"statement_timeout",
                                           "lock_timeout",
                                           "idle_in_transaction_session_timeout",
                                           "transaction_timeout",
                                           "client_encoding",
                                           "standard_conforming_strings",
                                           "check_function_bodies",
                                           "xmloption",
                                           "client_min_messages",
                                           "row_security",
                                           "default_tablespace",
                                           "default_table_access_method",
                                           "default_toast_compression",
                                           "default_with_oids",
                                           "search_path",
                                           "escape_string_warning",
                                           "default_transaction_read_only",
                                           "datestyle",
                                           "intervalstyle",
                                           "timezone",
                                           "extra_float_digits",
                                           nullptr};

namespace {

using Type = SqlToken::Type;

bool IsIdentStart(unsigned char c) { return std::isalpha(c) || c == '_' || c >= 0x80; }
bool IsIdentChar(unsigned char c) { return IsIdentStart(c) || std::isdigit(c) || c == '$'; }
bool IsOperatorChar(char c) { return std::strchr("+-*/<>=~!@#%^&|`?", c) != nullptr; }

// Functions that reach the server's files, programs, other servers or other
// sessions, or change the session's identity or settings: refused wherever
// they are named.
const char* const kDeniedFunctions[] = {"lo_import",
                                        "lo_export",
                                        "pg_read_file",
                                        "pg_read_binary_file",
                                        "pg_ls_dir",
                                        "pg_stat_file",
                                        "pg_ls_logdir",
                                        "pg_ls_waldir",
                                        "pg_ls_tmpdir",
                                        "pg_ls_archive_statusdir",
                                        "pg_ls_logicalsnapdir",
                                        "pg_ls_logicalmapdir",
                                        "pg_ls_replslotdir",
                                        "pg_ls_summariesdir",
                                        "pg_file_write",
                                        "pg_file_rename",
                                        "pg_file_unlink",
                                        "pg_file_sync",
                                        "pg_logdir_ls",
                                        "pg_reload_conf",
                                        "pg_rotate_logfile",
                                        "pg_terminate_backend",
                                        "pg_cancel_backend",
                                        "pg_signal_backend",
                                        "pg_promote",
                                        "pg_switch_wal",
                                        "pg_create_restore_point",
                                        "pg_start_backup",
                                        "pg_stop_backup",
                                        "pg_backup_start",
                                        "pg_backup_stop",
                                        "pg_create_physical_replication_slot",
                                        "pg_create_logical_replication_slot",
                                        "pg_drop_replication_slot",
                                        "pg_replication_origin_create",
                                        "pg_log_backend_memory_contexts",
                                        "dblink",
                                        "dblink_exec",
                                        "dblink_connect",
                                        "dblink_connect_u",
                                        "dblink_open",
                                        "dblink_send_query",
                                        "set_config",
                                        "pg_sleep",
                                        "pg_sleep_for",
                                        "pg_sleep_until",
                                        nullptr};

// Settings that make the server load a shared library.
const char* const kLibrarySettings[] = {"session_preload_libraries",
                                        "local_preload_libraries",
                                        "shared_preload_libraries",
                                        "dynamic_library_path",
                                        "jit_provider",
                                        nullptr};

// Languages whose functions run outside the database's sandbox.
const char* const kUntrustedLanguages[] = {"c",          "internal",   "plperlu", "plpythonu",
                                           "plpython2u", "plpython3u", "pltclu",  "plsh",
                                           "plrubyu",    "pljavau",    nullptr};

// Predefined roles that reach the server's files or programs.
bool InList(const char* const* list, absl::string_view s) {
  for (; *list != nullptr; ++list) {
    if (s == *list) return true;
  }
  return false;
}

// Reads a '...' string starting at the quote `i`; `backslash`: backslash
// escapes. Returns false when unterminated.
bool ReadString(absl::string_view sql, size_t* i, bool backslash, std::string* out) {
  size_t n = sql.size();
  size_t j = *i + 1;
  while (j < n) {
    char c = sql[j];
    if (backslash && c == '\\' && j + 1 < n) {
      char e = sql[j + 1];
      out->push_back(e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e);
      j += 2;
      continue;
    }
    if (c == '\'') {
      if (j + 1 < n && sql[j + 1] == '\'') {
        out->push_back('\'');
        j += 2;
        continue;
      }
      *i = j + 1;
      return true;
    }
    out->push_back(c);
    ++j;
  }
  *i = n;
  return false;
}

bool ReadQuoted(absl::string_view sql, size_t* i, std::string* out) {
  size_t n = sql.size();
  size_t j = *i + 1;
  while (j < n) {
    if (sql[j] == '"') {
      if (j + 1 < n && sql[j + 1] == '"') {
        out->push_back('"');
        j += 2;
        continue;
      }
      *i = j + 1;
      return true;
    }
    out->push_back(sql[j]);
    ++j;
  }
  *i = n;
  return false;
}

}  // namespace

TokenizeResult TokenizeSql(absl::string_view sql, bool standard_conforming_strings) {
  TokenizeResult r;
  const size_t n = sql.size();
  size_t i = 0;
  auto push = [&](Type type, std::string text, size_t begin, size_t end) {
    SqlToken t;
    t.type = type;
    t.text = std::move(text);
    t.begin = begin;
    t.end = end;
    r.tokens.push_back(std::move(t));
  };
  auto next = [&](size_t k) -> char { return k < n ? sql[k] : '\0'; };
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(sql[i]);
    const size_t begin = i;
    if (std::isspace(c)) {
      ++i;
      continue;
    }
    if (c == '-' && next(i + 1) == '-') {
      while (i < n && sql[i] != '\n') ++i;
      continue;
    }
    if (c == '/' && next(i + 1) == '*') {
      int depth = 0;
      while (i < n) {
        if (sql[i] == '/' && next(i + 1) == '*') {
          ++depth;
          i += 2;
        } else if (sql[i] == '*' && next(i + 1) == '/') {
          i += 2;
          if (--depth == 0) break;
        } else {
          ++i;
        }
      }
      if (depth != 0) r.complete = false;
      continue;
    }
    const char c1 = next(i + 1);
    if ((c == 'e' || c == 'E') && c1 == '\'') {
      std::string text;
      i += 1;
      if (!ReadString(sql, &i, /*backslash=*/true, &text)) r.complete = false;
      push(Type::kString, std::move(text), begin, i);
      continue;
    }
    if (std::strchr("bBxXnN", c) != nullptr && c1 == '\'') {
      std::string text;
      i += 1;
      if (!ReadString(sql, &i, !standard_conforming_strings, &text)) r.complete = false;
      push(Type::kString, std::move(text), begin, i);
      continue;
    }
    if ((c == 'u' || c == 'U') && c1 == '&' && (next(i + 2) == '\'' || next(i + 2) == '"')) {
      std::string text;
      i += 2;
      bool quoted_ident = sql[i] == '"';
      bool ok = quoted_ident ? ReadQuoted(sql, &i, &text)
                             : ReadString(sql, &i, !standard_conforming_strings, &text);
      if (!ok) r.complete = false;
      push(quoted_ident ? Type::kQuotedIdent : Type::kString, std::move(text), begin, i);
      continue;
    }
    if (c == '\'') {
      std::string text;
      if (!ReadString(sql, &i, !standard_conforming_strings, &text)) r.complete = false;
      push(Type::kString, std::move(text), begin, i);
      continue;
    }
    if (c == '"') {
      std::string text;
      if (!ReadQuoted(sql, &i, &text)) r.complete = false;
      push(Type::kQuotedIdent, std::move(text), begin, i);
      continue;
    }
    if (c == '$') {
      if (std::isdigit(static_cast<unsigned char>(c1))) {
        size_t j = i + 1;
        while (j < n && std::isdigit(static_cast<unsigned char>(sql[j]))) ++j;
        push(Type::kParam, std::string(sql.substr(i, j - i)), begin, j);
        i = j;
        continue;
      }
      size_t j = i + 1;
      if (j < n && IsIdentStart(static_cast<unsigned char>(sql[j]))) {
        while (j < n && IsIdentChar(static_cast<unsigned char>(sql[j])) && sql[j] != '$') ++j;
      }
      if (j < n && sql[j] == '$') {
        absl::string_view tag = sql.substr(i, j + 1 - i);
        size_t body = j + 1;
        size_t close = sql.find(tag, body);
        if (close == absl::string_view::npos) {
          r.complete = false;
          push(Type::kDollarString, std::string(sql.substr(body)), begin, n);
          i = n;
        } else {
          push(Type::kDollarString, std::string(sql.substr(body, close - body)), begin,
               close + tag.size());
          i = close + tag.size();
        }
        continue;
      }
      push(Type::kOperator, "$", begin, i + 1);
      ++i;
      continue;
    }
    if (IsIdentStart(c)) {
      size_t j = i;
      while (j < n && IsIdentChar(static_cast<unsigned char>(sql[j]))) ++j;
      push(Type::kWord, absl::AsciiStrToLower(sql.substr(i, j - i)), begin, j);
      i = j;
      continue;
    }
    if (std::isdigit(c) || (c == '.' && std::isdigit(static_cast<unsigned char>(c1)))) {
      size_t j = i;
      while (j < n) {
        const unsigned char d = static_cast<unsigned char>(sql[j]);
        if (std::isalnum(d) || d == '_' || (d == '.' && next(j + 1) != '.')) {
          ++j;
        } else if ((d == '+' || d == '-') && j > i && (sql[j - 1] == 'e' || sql[j - 1] == 'E')) {
          ++j;
        } else {
          break;
        }
      }
      push(Type::kNumber, std::string(sql.substr(i, j - i)), begin, j);
      i = j;
      continue;
    }
    if (c == ':' && c1 == ':') {
      push(Type::kPunct, "::", begin, i + 2);
      i += 2;
      continue;
    }
    if (std::strchr("()[],;.:", c) != nullptr) {
      push(Type::kPunct, std::string(1, static_cast<char>(c)), begin, i + 1);
      ++i;
      continue;
    }
    if (IsOperatorChar(static_cast<char>(c))) {
      size_t j = i;
      while (j < n && IsOperatorChar(sql[j]) && !(sql[j] == '-' && next(j + 1) == '-') &&
             !(sql[j] == '/' && next(j + 1) == '*')) {
        ++j;
      }
      if (j == i) j = i + 1;
      push(Type::kOperator, std::string(sql.substr(i, j - i)), begin, j);
      i = j;
      continue;
    }
    // Anything else (a stray byte): one operator token, refused by shape.
    push(Type::kOperator, std::string(1, static_cast<char>(c)), begin, i + 1);
    ++i;
  }
  return r;
}

namespace {

class Classifier {
 public:
  Classifier(absl::string_view sql, const ClassifyOptions& options)
      : sql_(sql), options_(options) {}

  StatementClass Run() {
    TokenizeResult tr = TokenizeSql(sql_, options_.standard_conforming_strings);
    if (!tr.complete) return Refuse("statement", "unterminated string, identifier or comment");
    t_ = std::move(tr.tokens);
    while (!t_.empty() && t_.back().type == Type::kPunct && t_.back().text == ";") t_.pop_back();
    if (t_.empty()) {
      c_.kind = "empty statement";
      c_.allowed = true;
      return c_;
    }
    int depth = 0;
    for (const SqlToken& tok : t_) {
      if (tok.type != Type::kPunct) continue;
      if (tok.text == "(") ++depth;
      if (tok.text == ")") --depth;
      if (tok.text == ";" && depth <= 0) return Refuse("statement", "several statements in one");
    }
    Dispatch();
    if (c_.allowed) ScanNames();
    return c_;
  }

 private:
  bool IsW(size_t k, absl::string_view word) const {
    return k < t_.size() && t_[k].type == Type::kWord && t_[k].text == word;
  }
  bool IsP(size_t k, absl::string_view p) const {
    return k < t_.size() && t_[k].type == Type::kPunct && t_[k].text == p;
  }
  // The word at k ("" for another token).
  std::string W(size_t k) const {
    return k < t_.size() && t_[k].type == Type::kWord ? t_[k].text : "";
  }
  // An identifier (word or quoted) at k, as PostgreSQL folds it.
  std::string Ident(size_t k) const {
    if (k >= t_.size()) return "";
    if (t_[k].type == Type::kWord || t_[k].type == Type::kQuotedIdent) return t_[k].text;
    return "";
  }
  // An identifier or a string (role names of SET SESSION AUTHORIZATION,
  // language names) at k.
  std::string IdentOrString(size_t k) const {
    if (k < t_.size() && t_[k].type == Type::kString) return t_[k].text;
    return Ident(k);
  }

  StatementClass& Refuse(std::string kind, std::string why) {
    if (c_.kind.empty()) c_.kind = std::move(kind);
    c_.allowed = false;
    c_.refusal = std::move(why);
    return c_;
  }
  void Allow(std::string kind) {
    c_.kind = std::move(kind);
    c_.allowed = true;
  }
  bool Globals() const { return options_.context == StatementContext::kGlobals; }

  // Index after a possibly qualified name at k (name[.name[.name]]).
  size_t SkipName(size_t k) const {
    if (Ident(k).empty()) return k;
    ++k;
    while (IsP(k, ".") && !Ident(k + 1).empty()) k += 2;
    return k;
  }
  // The index of the matching ')' of the '(' at k; t_.size() when none.
  size_t Close(size_t k) const {
    int depth = 0;
    for (size_t j = k; j < t_.size(); ++j) {
      if (IsP(j, "(")) ++depth;
      if (IsP(j, ")") && --depth == 0) return j;
    }
    return t_.size();
  }
  // Tokens [from, to) hold literals only: strings, numbers, NULL/TRUE/FALSE/
  // DEFAULT, signs, commas, parentheses, casts to type names, array brackets.
  bool LiteralsOnly(size_t from, size_t to) const {
    for (size_t k = from; k < to; ++k) {
      const SqlToken& tok = t_[k];
      switch (tok.type) {
        case Type::kString:
        case Type::kNumber:
          break;
        case Type::kPunct:
          if (tok.text == "::") {
            // The type: words (double precision), then possibly [].
            size_t j = k + 1;
            if (W(j).empty()) return false;
            while (j < to && !W(j).empty()) ++j;
            if (IsP(j, "(")) return false;
            k = j - 1;
          } else if (tok.text == ";" || tok.text == ".") {
            return false;
          }
          break;
        case Type::kOperator:
          if (tok.text != "-" && tok.text != "+") return false;
          break;
        case Type::kWord:
          if (tok.text != "null" && tok.text != "true" && tok.text != "false" &&
              tok.text != "default") {
            return false;
          }
          break;
        default:
          return false;
      }
    }
    return true;
  }

  void Dispatch() {
    const std::string first = W(0);
    if (first == "set") return Set(1);
    if (first == "reset") return Reset();
    if (first == "select") return Select();
    if (first == "copy") return Copy();
    if (first == "insert") return Insert();
    if (first == "create") return Create();
    if (first == "alter") return Alter();
    if (first == "drop") return Drop();
    if (first == "comment") return CommentOrLabel("COMMENT ON", 2);
    if (first == "security" && IsW(1, "label")) {
      size_t k = 2;
      if (IsW(k, "for")) k += 2;
      return CommentOrLabel("SECURITY LABEL", k + 1);
    }
    if (first == "grant" || first == "revoke") return GrantRevoke();
    if (first == "begin" && t_.size() == 1) return Allow("BEGIN");
    if (first == "commit" && t_.size() == 1) return Allow("COMMIT");
    if (first == "refresh" && IsW(1, "materialized") && IsW(2, "view")) {
      return Allow("REFRESH MATERIALIZED VIEW");
    }
    if (first == "load") return (void)Refuse("LOAD", "LOAD (loads a library)");
    if (first == "do") return (void)Refuse("DO", "DO block");
    std::string kind = first.empty() ? std::string("statement") : absl::AsciiStrToUpper(first);
    Refuse(kind, absl::StrCat(kind, " (not a statement pg_dump writes)"));
  }

  void Set(size_t k) {
    if (IsW(k, "local") || (IsW(k, "session") && !IsW(k + 1, "authorization"))) ++k;
    if (IsW(k, "session") && IsW(k + 1, "authorization")) {
      return (void)Refuse("SET SESSION AUTHORIZATION", "SET SESSION AUTHORIZATION");
    }
    if (IsW(k, "role")) return (void)Refuse("SET ROLE", "SET ROLE");
    const std::string name = absl::AsciiStrToLower(Ident(k));
    if (name.empty()) return (void)Refuse("SET", "SET of an unknown form");
    if (IsP(k + 1, ".")) {
      return (void)Refuse(absl::StrCat("SET ", name), "SET of a custom setting");
    }
    const std::string kind = absl::StrCat("SET ", name);
    if (InList(kAllowedSetSettings, name)) return Allow(kind);
    if (name == "time" && IsW(k + 1, "zone")) return Allow("SET TIME ZONE");
    Refuse(kind, absl::StrCat("SET ", name, " (a setting pg_dump does not write)"));
  }

  void Reset() {
    if (IsW(1, "session") && IsW(2, "authorization") && t_.size() == 3) {
      return Allow("RESET SESSION AUTHORIZATION");
    }
    if (IsW(1, "role") && t_.size() == 2) return Allow("RESET ROLE");
    const std::string name = Ident(1);
    if (t_.size() == 2 && InList(kAllowedSetSettings, name)) {
      return Allow(absl::StrCat("RESET ", name));
    }
    Refuse("RESET", "RESET of a setting pg_dump does not write");
  }

  // SELECT pg_catalog.f(literals) and the other forms pg_dump writes.
  void Select() {
    // SELECT * FROM pg_catalog.pg_restore_{relation,attribute}_stats(...)
    if (t_.size() > 1 && t_[1].type == Type::kOperator && t_[1].text == "*") {
      if (IsW(2, "from") && IsW(3, "pg_catalog") && IsP(4, ".") && IsP(6, "(")) {
        const std::string f = W(5);
        size_t close = Close(6);
        if ((f == "pg_restore_relation_stats" || f == "pg_restore_attribute_stats") &&
            close == t_.size() - 1 && LiteralsOnly(7, close)) {
          return Allow(absl::StrCat("SELECT pg_catalog.", f));
        }
      }
      return (void)Refuse("SELECT", "SELECT (a query pg_dump does not write)");
    }
    if (!(IsW(1, "pg_catalog") && IsP(2, ".") && IsP(4, "("))) {
      return (void)Refuse("SELECT", "SELECT (a query pg_dump does not write)");
    }
    const std::string f = W(3);
    const std::string kind = absl::StrCat("SELECT pg_catalog.", f);
    const size_t close = Close(4);
    if (f == "lo_unlink" && IsW(5, "oid") && close == 6 && IsW(7, "from") && IsW(8, "pg_catalog") &&
        IsP(9, ".") && IsW(10, "pg_largeobject_metadata") && IsW(11, "where") && IsW(12, "oid") &&
        t_.size() == 15 && t_[13].type == Type::kOperator && t_[13].text == "=" &&
        LiteralsOnly(14, 15)) {
      return Allow(kind);
    }
    if (close != t_.size() - 1) {
      return (void)Refuse(kind, "SELECT (a query pg_dump does not write)");
    }
    if (f == "set_config") {
      if (close == 10 && t_[5].type == Type::kString && t_[5].text == "search_path" &&
          IsP(6, ",") && t_[7].type == Type::kString && IsP(8, ",") && IsW(9, "false")) {
        set_config_search_path_ = true;
        return Allow("SELECT pg_catalog.set_config('search_path')");
      }
      return (void)Refuse(kind, "set_config of a setting other than search_path");
    }
    static const char* const kFunctions[] = {"setval",   "lo_create", "lo_open", "lowrite",
                                             "lo_close", "lo_unlink", nullptr};
    if (InList(kFunctions, f) && LiteralsOnly(5, close)) return Allow(kind);
    Refuse(kind, absl::StrCat("SELECT ", f.empty() ? "of a function" : f,
                              " (a query pg_dump does not write)"));
  }

  // COPY name [(cols)] [WITH OIDS] FROM stdin
  void Copy() {
    if (IsP(1, "(")) {
      const size_t k = Close(1) + 1;
      if (IsW(k, "to") && IsW(k + 1, "stdout")) {
        return (void)Refuse("COPY (query) TO STDOUT", "COPY (query) TO STDOUT");
      }
      return (void)Refuse("COPY (query)", "COPY (query)");
    }
    size_t k = SkipName(1);
    if (k == 1) return (void)Refuse("COPY", "COPY of an unknown form");
    if (IsP(k, "(")) k = Close(k) + 1;
    if (IsW(k, "with") && IsW(k + 1, "oids")) k += 2;
    if (IsW(k, "to")) {
      if (IsW(k + 1, "stdout")) return (void)Refuse("COPY TO STDOUT", "COPY TO STDOUT");
      if (IsW(k + 1, "program")) return (void)Refuse("COPY TO PROGRAM", "COPY TO PROGRAM");
      return (void)Refuse("COPY TO", "COPY TO a server file");
    }
    if (!IsW(k, "from")) return (void)Refuse("COPY", "COPY of an unknown form");
    if (IsW(k + 1, "program")) return (void)Refuse("COPY FROM PROGRAM", "COPY FROM PROGRAM");
    if (!IsW(k + 1, "stdin")) return (void)Refuse("COPY FROM", "COPY FROM a server file");
    if (k + 2 != t_.size()) return (void)Refuse("COPY FROM stdin", "COPY with options");
    Allow("COPY FROM stdin");
  }

  // INSERT INTO name [(cols)] [OVERRIDING ... VALUE] VALUES (literals), ...
  void Insert() {
    if (!IsW(1, "into")) return (void)Refuse("INSERT", "INSERT of an unknown form");
    size_t k = SkipName(2);
    if (k == 2) return (void)Refuse("INSERT", "INSERT of an unknown form");
    if (IsP(k, "(")) {
      size_t close = Close(k);
      for (size_t j = k + 1; j < close; ++j) {
        if (Ident(j).empty() && !IsP(j, ",")) {
          return (void)Refuse("INSERT", "INSERT of an unknown form");
        }
      }
      k = close + 1;
    }
    if (IsW(k, "overriding") && (IsW(k + 1, "system") || IsW(k + 1, "user")) &&
        IsW(k + 2, "value")) {
      k += 3;
    }
    if (!IsW(k, "values") || !IsP(k + 1, "(")) {
      return (void)Refuse("INSERT", "INSERT of something else than VALUES");
    }
    if (!LiteralsOnly(k + 1, t_.size())) {
      return (void)Refuse("INSERT INTO ... VALUES", "INSERT of values that are not literals");
    }
    Allow("INSERT INTO ... VALUES");
  }

  // Role options of CREATE/ALTER ROLE from k: privileged attributes and the
  // PASSWORD clauses.
  void RoleOptions(size_t k) {
    for (size_t j = k; j < t_.size(); ++j) {
      const std::string w = W(j);
      if (w == "superuser" || w == "replication" || w == "bypassrls") {
        c_.privileged_attributes.push_back(absl::AsciiStrToUpper(w));
        if (!options_.allow_privileged_roles && c_.allowed) {
          Refuse(c_.kind, absl::StrCat("role attribute ", absl::AsciiStrToUpper(w)));
        }
        continue;
      }
      if (w == "password") {
        size_t begin = j;
        if (IsW(j - 1, "encrypted") || IsW(j - 1, "unencrypted")) begin = j - 1;
        size_t from = begin > 0 ? t_[begin - 1].end : t_[begin].begin;
        size_t end = t_[j].end;
        if (j + 1 < t_.size() && (t_[j + 1].type == Type::kString ||
                                  t_[j + 1].type == Type::kDollarString || IsW(j + 1, "null"))) {
          end = t_[j + 1].end;
          ++j;
        }
        c_.password_spans.emplace_back(from, end);
      }
    }
  }

  void Create() {
    size_t k = 1;
    if (IsW(k, "or") && IsW(k + 1, "replace")) k += 2;
    while (IsW(k, "unique") || IsW(k, "unlogged") || IsW(k, "trusted") || IsW(k, "procedural") ||
           IsW(k, "default") || IsW(k, "constraint") || IsW(k, "recursive") ||
           IsW(k, "materialized")) {
      ++k;
    }
    const std::string what = W(k);
    std::string kind = absl::StrCat("CREATE ", absl::AsciiStrToUpper(what));
    if (what == "user" && IsW(k + 1, "mapping")) {
      return (void)Refuse("CREATE USER MAPPING", "CREATE USER MAPPING (connects to other servers)");
    }
    if (what == "subscription") {
      return (void)Refuse(kind, "CREATE SUBSCRIPTION (connects to other servers)");
    }
    if (what == "server") return (void)Refuse(kind, "CREATE SERVER (connects to other servers)");
    if (what == "event" && IsW(k + 1, "trigger")) {
      return (void)Refuse("CREATE EVENT TRIGGER", "CREATE EVENT TRIGGER");
    }
    if (what == "temp" || what == "temporary") {
      return (void)Refuse(kind, "CREATE TEMPORARY (not a statement pg_dump writes)");
    }
    if (what == "database") {
      c_.database = Ident(k + 1);
      return Allow("CREATE DATABASE");
    }
    if (what == "role" || what == "user" || what == "group") {
      c_.kind = "CREATE ROLE";
      c_.role = Ident(k + 1);
      if (!Globals())
        return (void)Refuse(c_.kind, "CREATE ROLE outside the globals of a cluster dump");
      Allow("CREATE ROLE");
      return RoleOptions(k + 2);
    }
    if (what == "tablespace") {
      if (!Globals()) return (void)Refuse(kind, "CREATE TABLESPACE outside the globals");
      return Allow(kind);
    }
    if (what == "extension") {
      size_t j = k + 1;
      if (IsW(j, "if") && IsW(j + 1, "not") && IsW(j + 2, "exists")) j += 3;
      const std::string name = Ident(j);
      kind = absl::StrCat("CREATE EXTENSION ", name);
      if (!InList(kDefaultExtensions, name) && options_.extra_extensions.count(name) == 0) {
        return (void)Refuse(
            kind, absl::StrCat("CREATE EXTENSION ", name, " (not in the allowed extensions)"));
      }
      for (size_t m = j + 1; m < t_.size(); ++m) {
        if (IsW(m, "cascade")) return (void)Refuse(kind, "CREATE EXTENSION ... CASCADE");
      }
      return Allow(kind);
    }
    if (what == "language") {
      const std::string name = IdentOrString(k + 1);
      if (name != "plpgsql" || t_.size() != k + 2) {
        return (void)Refuse(kind, absl::StrCat("CREATE LANGUAGE ", name));
      }
      return Allow(kind);
    }
    if (what == "function" || what == "procedure") {
      function_ = true;
      for (size_t j = k + 1; j + 1 < t_.size(); ++j) {
        if (!IsW(j, "language")) continue;
        const std::string lang = absl::AsciiStrToLower(IdentOrString(j + 1));
        if (InList(kUntrustedLanguages, lang)) {
          return (void)Refuse(kind, absl::StrCat("function in LANGUAGE ", lang));
        }
      }
      return Allow(kind);
    }
    if (what == "foreign" && IsW(k + 1, "data")) return Allow("CREATE FOREIGN DATA WRAPPER");
    if (what == "foreign" && IsW(k + 1, "table")) return Allow("CREATE FOREIGN TABLE");
    if (what == "text" && IsW(k + 1, "search")) return Allow("CREATE TEXT SEARCH");
    if (what == "operator" && (IsW(k + 1, "class") || IsW(k + 1, "family"))) {
      return Allow(absl::StrCat("CREATE OPERATOR ", absl::AsciiStrToUpper(W(k + 1))));
    }
    if (what == "access" && IsW(k + 1, "method")) return Allow("CREATE ACCESS METHOD");
    static const char* const kObjects[] = {
        "table",      "view",       "index",       "sequence",  "schema",   "type", "domain",
        "trigger",    "rule",       "policy",      "aggregate", "operator", "cast", "collation",
        "conversion", "statistics", "publication", "transform", nullptr};
    if (InList(kObjects, what)) {
      if (what == "table" && IsW(SkipName(k + 1), "as")) {
        return (void)Refuse("CREATE TABLE AS", "CREATE TABLE AS (runs a query)");
      }
      return Allow(kind);
    }
    Refuse(kind, absl::StrCat(kind, " (not a statement pg_dump writes)"));
  }

  void Alter() {
    const std::string what = W(1);
    std::string kind = absl::StrCat("ALTER ", absl::AsciiStrToUpper(what));
    if (what == "system") return (void)Refuse("ALTER SYSTEM", "ALTER SYSTEM");
    if (what == "subscription" || what == "server") {
      return (void)Refuse(kind, absl::StrCat(kind, " (connects to other servers)"));
    }
    if (what == "user" && IsW(2, "mapping")) {
      return (void)Refuse("ALTER USER MAPPING", "ALTER USER MAPPING (connects to other servers)");
    }
    if (what == "event" && IsW(2, "trigger")) {
      return (void)Refuse("ALTER EVENT TRIGGER", "ALTER EVENT TRIGGER");
    }
    if (what == "database") {
      c_.database = Ident(2);
      if (IsW(3, "rename")) return (void)Refuse(kind, "ALTER DATABASE ... RENAME");
      if (IsW(3, "set") || IsW(3, "reset")) return Allow("ALTER DATABASE SET");
      return Allow(kind);
    }
    if (what == "role" || what == "user" || what == "group") {
      c_.kind = "ALTER ROLE";
      c_.role = Ident(2);
      if (IsW(3, "rename")) return (void)Refuse(c_.kind, "ALTER ROLE ... RENAME");
      if (IsW(3, "in") && IsW(4, "database")) {
        c_.database = Ident(5);
        return Allow("ALTER ROLE IN DATABASE");
      }
      if (!Globals())
        return (void)Refuse(c_.kind, "ALTER ROLE outside the globals of a cluster dump");
      Allow(c_.kind);
      return RoleOptions(3);
    }
    if (what == "tablespace") {
      if (!Globals()) return (void)Refuse(kind, "ALTER TABLESPACE outside the globals");
      return Allow(kind);
    }
    static const char* const kObjects[] = {
        "table",     "view",         "index",      "sequence",    "schema",    "type",
        "domain",    "trigger",      "rule",       "policy",      "aggregate", "operator",
        "collation", "conversion",   "statistics", "publication", "function",  "procedure",
        "routine",   "materialized", "foreign",    "text",        "default",   "large",
        "extension", "language",     "access",     nullptr};
    if (InList(kObjects, what)) return Allow(kind);
    Refuse(kind, absl::StrCat(kind, " (not a statement pg_dump writes)"));
  }

  void Drop() {
    const std::string what = W(1);
    std::string kind = absl::StrCat("DROP ", absl::AsciiStrToUpper(what));
    if (what == "database") {
      size_t k = 2;
      if (IsW(k, "if") && IsW(k + 1, "exists")) k += 2;
      c_.database = Ident(k);
      if (k + 1 != t_.size()) return (void)Refuse(kind, "DROP DATABASE with options");
      return Allow(kind);
    }
    if (what == "role" || what == "user" || what == "group" || what == "tablespace") {
      if (!Globals()) return (void)Refuse(kind, absl::StrCat(kind, " outside the globals"));
      return Allow(kind);
    }
    if (what.empty()) return (void)Refuse("DROP", "DROP of an unknown form");
    Allow(kind);
  }

  // COMMENT ON / SECURITY LABEL ... ON <object> from `k`.
  void CommentOrLabel(const std::string& kind, size_t k) {
    if (!IsW(k - 1, "on")) return (void)Refuse(kind, absl::StrCat(kind, " of an unknown form"));
    const std::string what = W(k);
    if (what == "database") c_.database = Ident(k + 1);
    if ((what == "role" || what == "tablespace") && !Globals()) {
      return (void)Refuse(
          absl::StrCat(kind, " ", absl::AsciiStrToUpper(what)),
          absl::StrCat(kind, " ", absl::AsciiStrToUpper(what), " outside the globals"));
    }
    Allow(absl::StrCat(kind, " ", absl::AsciiStrToUpper(what)));
  }

  void GrantRevoke() {
    const std::string verb = absl::AsciiStrToUpper(W(0));
    // Object privileges: an ON before TO/FROM.
    size_t on = 0;
    for (size_t k = 1; k < t_.size(); ++k) {
      if (IsW(k, "to") || IsW(k, "from")) break;
      if (IsW(k, "on")) {
        on = k;
        break;
      }
    }
    if (on != 0) {
      const std::string what = W(on + 1);
      std::string kind = absl::StrCat(verb, " ON ", absl::AsciiStrToUpper(what));
      if (what == "database") c_.database = Ident(on + 2);
      if ((what == "tablespace" || what == "parameter") && !Globals()) {
        return (void)Refuse(kind, absl::StrCat(kind, " outside the globals"));
      }
      return Allow(kind);
    }
    // Role membership.
    std::string kind = absl::StrCat(verb, " role");
    for (size_t k = 1; k < t_.size(); ++k) {
      if (IsW(k, "to") || IsW(k, "from")) break;
      if (absl::StartsWith(Ident(k), "pg_")) {
        return (void)Refuse(kind, absl::StrCat("membership in the predefined role ", Ident(k)));
      }
    }
    if (!Globals()) return (void)Refuse(kind, absl::StrCat(kind, " outside the globals"));
    Allow(kind);
  }

  // Names refused wherever they appear: server-file functions, library
  // settings (also inside function bodies).
  void ScanNames() {
    for (const SqlToken& tok : t_) {
      if (tok.type == Type::kWord || tok.type == Type::kQuotedIdent) {
        const std::string name = absl::AsciiStrToLower(tok.text);
        if (InList(kDeniedFunctions, name) && !(name == "set_config" && set_config_search_path_)) {
          Refuse(c_.kind, absl::StrCat("function ", name));
          return;
        }
        if (InList(kLibrarySettings, name)) {
          Refuse(c_.kind, absl::StrCat("setting ", name, " (loads libraries)"));
          return;
        }
      } else if (tok.type == Type::kString &&
                 InList(kLibrarySettings, absl::AsciiStrToLower(tok.text))) {
        Refuse(c_.kind, absl::StrCat("setting ", tok.text, " (loads libraries)"));
        return;
      }
      if (function_ && (tok.type == Type::kString || tok.type == Type::kDollarString)) {
        std::string denied = DeniedWordIn(tok.text);
        if (!denied.empty()) {
          Refuse(c_.kind, absl::StrCat("function body naming ", denied));
          return;
        }
      }
    }
  }

  // The first denied function or library setting named as a word in `body`.
  static std::string DeniedWordIn(absl::string_view body) {
    const std::string lower = absl::AsciiStrToLower(body);
    for (const char* const* list : {kDeniedFunctions, kLibrarySettings}) {
      for (const char* const* p = list; *p != nullptr; ++p) {
        const absl::string_view name = *p;
        size_t at = 0;
        while ((at = lower.find(name.data(), at)) != std::string::npos) {
          bool start = at == 0 || !IsIdentChar(static_cast<unsigned char>(lower[at - 1]));
          size_t after = at + name.size();
          bool end =
              after >= lower.size() || !IsIdentChar(static_cast<unsigned char>(lower[after]));
          if (start && end) return std::string(name);
          at = after;
        }
      }
    }
    return "";
  }

  absl::string_view sql_;
  const ClassifyOptions& options_;
  std::vector<SqlToken> t_;
  StatementClass c_;
  bool set_config_search_path_ = false;
  bool function_ = false;
};

}  // namespace

StatementClass ClassifyStatement(absl::string_view sql, const ClassifyOptions& options) {
  return Classifier(sql, options).Run();
}

std::vector<std::string> SplitStatements(absl::string_view sql) {
  std::vector<std::string> out;
  const TokenizeResult tr = TokenizeSql(sql);
  size_t start = 0;
  int depth = 0;
  for (const SqlToken& t : tr.tokens) {
    if (t.type != Type::kPunct) continue;
    if (t.text == "(") ++depth;
    if (t.text == ")") --depth;
    if (t.text == ";" && depth <= 0) {
      out.emplace_back(sql.substr(start, t.end - start));
      start = t.end;
    }
  }
  // What follows the last ';' is a statement only when it holds a token: a
  // comment alone runs nothing (pg_dump 17 writes "-- dummy" as the
  // definition of its BLOB METADATA entries).
  const bool tokens_left = !tr.complete || (!tr.tokens.empty() && tr.tokens.back().begin >= start);
  absl::string_view rest = absl::StripAsciiWhitespace(sql.substr(start));
  if (!rest.empty() && tokens_left) out.emplace_back(rest);
  return out;
}

bool StripPasswordClauses(const StatementClass& c, std::string* sql) {
  if (c.password_spans.empty()) return false;
  for (auto it = c.password_spans.rbegin(); it != c.password_spans.rend(); ++it) {
    if (it->first > it->second || it->second > sql->size()) continue;
    sql->erase(it->first, it->second - it->first);
  }
  return true;
}

}  // namespace mastodon_restore
