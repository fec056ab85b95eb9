// The statement classifier of the dump loader: a dump is code written by
// somebody else, and only the statement kinds pg_dump and pg_dumpall emit
// are run from it. Pure text, no I/O: a PostgreSQL tokenizer (quotes, escape
// strings, dollar quotes, quoted identifiers, nested comments) and an
// allow-list over its tokens.
//
// Contract: ClassifyStatement(sql, options) returns the statement's kind and
// whether the allow-list admits it; a refused statement carries the reason
// (the kind of what was refused, e.g. "COPY FROM PROGRAM"). Every statement
// pg_dump and pg_dumpall 9.6-18 emit for an ordinary schema (tables, views,
// functions in trusted languages, sequences, indexes, constraints, triggers,
// policies, publications, large objects, statistics, comments, privileges,
// roles and memberships in the globals) is allowed; anything else is refused,
// among it:
//   COPY from/to a program or a server file, COPY ... TO STDOUT, COPY (query);
//   ALTER SYSTEM; LOAD; DO; CALL; arbitrary SELECT, INSERT ... SELECT,
//   UPDATE, DELETE, TRUNCATE and other utility commands;
//   DROP/CREATE DATABASE (the loader handles its own database's);
//   role statements outside the globals of a pg_dumpall dump (except ALTER
//   ROLE ... IN DATABASE ... SET), role attributes SUPERUSER, REPLICATION,
//   BYPASSRLS (unless options.allow_privileged_roles), membership in the
//   predefined pg_* roles;
//   server-file and server-control functions anywhere in a statement
//   (lo_import, lo_export, pg_read_file, pg_ls_dir, dblink, ...), set_config
//   except pg_dump's SELECT pg_catalog.set_config('search_path', ...);
//   settings that load libraries (session_preload_libraries, ...) anywhere;
//   SET of settings pg_dump does not emit; SET ROLE, SET SESSION
//   AUTHORIZATION; CREATE/ALTER SUBSCRIPTION, CREATE SERVER, USER MAPPING,
//   CREATE/ALTER EVENT TRIGGER, CREATE TABLESPACE outside the globals;
//   CREATE FUNCTION in LANGUAGE c or internal; CREATE EXTENSION of an
//   extension not in the allow-list (kDefaultExtensions plus
//   options.extra_extensions).
// A function body is a string: names in it are looked for too (a call of
// pg_read_file in a PL/pgSQL body is refused), which cannot see names built
// at run time; the load's role is what bounds those.
#ifndef MR_AGENT_DUMP_STATEMENT_CLASSIFIER_H_
#define MR_AGENT_DUMP_STATEMENT_CLASSIFIER_H_

#include <cstddef>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace mastodon_restore {

struct SqlToken {
  enum class Type {
    kWord,          // keyword or unquoted identifier; text lower-cased
    kQuotedIdent,   // "..." (U&"..."); text unquoted, case kept
    kString,        // '...', E'...', B'...', X'...', N'...', U&'...'; text unescaped
    kDollarString,  // $tag$...$tag$; text is the body
    kNumber,
    kParam,  // $1
    kPunct,  // ( ) [ ] , ; . ::
    kOperator,
  };
  Type type = Type::kWord;
  std::string text;
  // Byte span in the statement (quotes and prefixes included).
  size_t begin = 0;
  size_t end = 0;
};

struct TokenizeResult {
  std::vector<SqlToken> tokens;
  // False when the text ends inside a string, quoted identifier, dollar
  // quote or comment.
  bool complete = true;
};

// Tokenizes `sql`. `standard_conforming_strings`: whether a backslash in a
// plain '...' string is an ordinary character (the default since 9.1 and
// what pg_dump sets); E'...' strings always take backslash escapes.
TokenizeResult TokenizeSql(absl::string_view sql, bool standard_conforming_strings = true);

enum class StatementContext {
  kDatabase,  // a database's dump (pg_dump, or a section of pg_dumpall)
  kGlobals,   // the globals of a pg_dumpall dump (roles, tablespaces)
};

struct ClassifyOptions {
  StatementContext context = StatementContext::kDatabase;
  bool standard_conforming_strings = true;
  // Allow the role attributes SUPERUSER, REPLICATION and BYPASSRLS.
  bool allow_privileged_roles = false;
  // Extensions allowed beside kDefaultExtensions.
  std::set<std::string> extra_extensions;
};

// The extensions CREATE EXTENSION may install: PostgreSQL's trusted
// extensions (installable by a database owner since 13), plpgsql and
// pg_stat_statements.
extern const char* const kDefaultExtensions[];

// The settings SET may change (those pg_dump and pg_dumpall emit).
extern const char* const kAllowedSetSettings[];

struct StatementClass {
  // The statement's kind as its leading keywords say ("CREATE TABLE",
  // "COPY FROM stdin", "SELECT pg_catalog.setval", "SET client_encoding").
  std::string kind;
  bool allowed = false;
  // When refused: what ("COPY FROM PROGRAM", "ALTER SYSTEM", "role attribute
  // SUPERUSER", "function pg_read_file", ...).
  std::string refusal;
  // Database statements (CREATE/ALTER/DROP/COMMENT ON DATABASE, GRANT/REVOKE
  // ... ON DATABASE, ALTER ROLE ... IN DATABASE): the database named.
  std::string database;
  // CREATE/ALTER ROLE (or USER/GROUP): the role.
  std::string role;
  // CREATE/ALTER ROLE: the privileged attributes it gives (SUPERUSER,
  // REPLICATION, BYPASSRLS), whether or not options allowed them.
  std::vector<std::string> privileged_attributes;
  // Byte spans of "[ENCRYPTED|UNENCRYPTED] PASSWORD <value|NULL>" clauses.
  std::vector<std::pair<size_t, size_t>> password_spans;
};

// Classifies one complete statement (its final ';' optional).
StatementClass ClassifyStatement(absl::string_view sql, const ClassifyOptions& options);

// The statements of `sql` (several, each with its ';'), split where the
// tokenizer finds a ';' outside parentheses; text after the last ';' is the
// final statement when it holds a token (or an unterminated quote or
// comment): comments alone are no statement.
std::vector<std::string> SplitStatements(absl::string_view sql);

// Removes the PASSWORD clauses ClassifyStatement found (password_spans) from
// `*sql`; false when there were none.
bool StripPasswordClauses(const StatementClass& c, std::string* sql);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DUMP_STATEMENT_CLASSIFIER_H_
