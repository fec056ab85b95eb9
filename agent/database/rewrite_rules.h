// The rewrite rules of the dump loader: pure functions from one statement of
// a dump (and what is known about the target) to what is run instead. No
// connection, no state: the loader keeps what it learns (the source
// database's name) and reports the rewrites.
#ifndef MR_AGENT_DATABASE_REWRITE_RULES_H_
#define MR_AGENT_DATABASE_REWRITE_RULES_H_

#include <string>

#include "absl/strings/string_view.h"

namespace mastodon_restore {

// The upper-cased first `n` bytes of a statement with newlines and tabs as
// blanks, for classification ("ALTER TABLE ONLY PUBLIC.X ...").
std::string StatementHead(absl::string_view sql, size_t n = 96);

struct RewriteContext {
  // Major version of the target server; 0: unknown (no version rewrites).
  int target_major = 0;
  // The connected role is a superuser.
  bool superuser = true;
  // The dump's own database name; "" until known (then the first database
  // a statement names is taken as it, see RewriteResult::source_db).
  std::string source_db;
  // The database loaded into, already quoted as an SQL identifier.
  std::string quoted_target_db;
};

struct RewriteResult {
  // kRun: run the (possibly rewritten) statement; kSkip: drop it.
  enum class Action { kRun, kSkip };
  Action action = Action::kRun;
  // The rewrite to report ("" when none), e.g. "removed SET
  // transaction_timeout (target PostgreSQL 15)".
  std::string note;
  // Set when the context had no source_db and the statement names the
  // database (CREATE/ALTER/COMMENT ON/GRANT ... ON DATABASE): the name, as
  // the dump's own database from now on.
  std::string source_db;
};

// Applies the rules to the statement `*sql` (as split from the dump):
// - SET transaction_timeout (target <= 16), default_table_access_method
//   (<= 11) and idle_in_transaction_session_timeout (< 10) are dropped;
// - CREATE DATABASE is dropped (the target database exists);
// - ALTER DATABASE, COMMENT ON DATABASE and GRANT/REVOKE ... ON DATABASE of
//   the source database, and ALTER ROLE ... IN DATABASE of it, are rewritten
//   to the target database (those naming other databases are left as they
//   are: the loader refuses them);
// - COMMENT ON EXTENSION is dropped when the role is not a superuser.
// Anything else runs unchanged.
RewriteResult RewriteStatement(const RewriteContext& context, std::string* sql);

// A statement of the globals of a pg_dumpall dump, as the loader treats it.
struct GlobalStatement {
  enum class Kind {
    kCreateRole,  // created when missing (without its attributes)
    kAlterRole,   // applied to roles the load created only
    kSet,         // session setting: run
    kTablespace,  // CREATE TABLESPACE: not created (warned)
    kIgnore,      // anything else (database creation, settings of databases)
  };
  Kind kind = Kind::kIgnore;
  std::string role;  // kCreateRole, kAlterRole: the role's name, unquoted
};
GlobalStatement ClassifyGlobalStatement(absl::string_view sql);

// Removes the PASSWORD clauses ("[ENCRYPTED] PASSWORD <string>|NULL", in
// any quoting: '...', E'...', $$...$$) from a role statement, found by the
// statement classifier's tokenizer; false when it has none.
bool StripRolePassword(std::string* sql);

// A TOC comment of pg_dump, "Name: X; Type: T; Schema: S; Owner: O" or
// "Data for Name: ..." (without the leading "-- "): sets `*entry` to
// "T S.X" ("T X" without a schema) and `*type` to "T"; false, leaving
// them, for any other comment.
bool ParseTocComment(absl::string_view comment, std::string* entry, std::string* type);

// The role of "ALTER ... OWNER TO <role>;" (unquoted; "" for any other
// statement).
std::string OwnerToRole(absl::string_view sql);

// The role of "ALTER DEFAULT PRIVILEGES FOR ROLE|USER <role> ..." (unquoted;
// "" for any other statement, and for one naming several roles).
std::string DefaultPrivilegesRole(absl::string_view sql);

// The table of "COPY <table> (...) FROM stdin;" as the dump writes it.
std::string CopyTarget(absl::string_view sql);

// A key of \restrict or \unrestrict: alphanumeric, or "(null)".
bool ValidRestrictKey(absl::string_view key);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_REWRITE_RULES_H_
