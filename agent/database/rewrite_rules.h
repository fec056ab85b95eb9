// The rewrite rules of the dump loader: pure functions from one statement of
// a dump (and what is known about the target) to what is run instead. No
// connection, no state: the loader keeps what it learns (the source
// database's name) and reports the rewrites.
#ifndef MR_AGENT_DATABASE_REWRITE_RULES_H_
#define MR_AGENT_DATABASE_REWRITE_RULES_H_

#include <optional>
#include <string>
#include <vector>

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
  // For a role membership (GRANT r TO m ...) into a target before 16:
  // whether its members inherit (rolinherit, as the target has them; unset
  // when unknown or when they differ). Before 16 a membership inherits as
  // its member does, so an INHERIT option equal to it is dropped and one
  // that differs is refused. Unknown: INHERIT TRUE (every member's default
  // before 16) is dropped and INHERIT FALSE refused.
  std::optional<bool> grant_members_inherit;
};

struct RewriteResult {
  // kRun: run the (possibly rewritten) statement; kSkip: drop it; kRefuse:
  // the statement cannot be restored faithfully on the target, the load
  // must fail (nothing of it is kept).
  enum class Action { kRun, kSkip, kRefuse };
  Action action = Action::kRun;
  // The rewrite to report ("" when none), e.g. "removed SET
  // transaction_timeout (target PostgreSQL 15)"; for kRefuse, the reason,
  // naming the object ("NOT NULL NO INHERIT constraint on public.t needs
  // PostgreSQL 18; the target runs 16").
  std::string note;
  // Set when the context had no source_db and the statement names the
  // database (CREATE/ALTER/COMMENT ON/GRANT ... ON DATABASE): the name, as
  // the dump's own database from now on.
  std::string source_db;
};

// Applies the rules to the statement `*sql` (as split from the dump). The
// version rules (only when target_major is known), newer dumps into older
// targets:
// - SET transaction_timeout (target <= 16), default_table_access_method
//   (<= 11) and idle_in_transaction_session_timeout (< 10) are dropped;
// - planner statistics of pg_dump 18 (SELECT * FROM
//   pg_catalog.pg_restore_{relation,attribute}_stats(...)) are dropped on
//   <= 17 (the restore runs ANALYZE);
// - CREATE COLLATION with the builtin provider (17+): locale 'C' becomes
//   the libc provider's 'C' on <= 16 (the same byte-order collation);
//   'C.UTF-8' (<= 16) and 'PG_UNICODE_FAST' (<= 17) are refused;
// - ALTER TABLE ... SET ACCESS METHOD (pg_dump 17+ for partitioned
//   tables): dropped on <= 16 for heap (the only access method there),
//   refused for another;
// - PostgreSQL 18 table syntax on <= 17: a virtual generated column
//   (GENERATED ALWAYS AS (e) without STORED) becomes STORED (same values);
//   ALTER TABLE ... ADD CONSTRAINT c NOT NULL col becomes ALTER COLUMN col
//   SET NOT NULL (unnamed before 18); refused: NOT NULL ... NO INHERIT,
//   a NOT NULL constraint NOT VALID, NOT ENFORCED constraints;
// - role memberships of pg_dumpall 16+ (GRANT r TO m WITH ADMIN/INHERIT/SET
//   TRUE|FALSE, ... GRANTED BY g) on <= 15: ADMIN TRUE|OPTION becomes WITH
//   ADMIN OPTION, INHERIT TRUE, SET TRUE and ADMIN FALSE are dropped (the
//   behaviour of 15 when the member role has INHERIT), INHERIT FALSE and SET
//   FALSE are refused;
// older dumps (9.6-11) into newer targets (>= 12, where tables have no OIDs):
// - SET default_with_oids = false is dropped; SET default_with_oids = true,
//   CREATE TABLE ... WITH OIDS and COPY ... WITH OIDS are refused;
// and whatever the versions:
// - CREATE DATABASE is dropped (the target database exists);
// - ALTER DATABASE, COMMENT ON DATABASE and GRANT/REVOKE ... ON DATABASE of
//   the source database, and ALTER ROLE ... IN DATABASE of it, are rewritten
//   to the target database (those naming other databases are left as they
//   are: the loader refuses them);
// - COMMENT ON EXTENSION is dropped when the role is not a superuser.
// Anything else runs unchanged.
RewriteResult RewriteStatement(const RewriteContext& context, std::string* sql);

// The role membership of a pg_dumpall dump's globals ("GRANT r[, ...] TO
// m[, ...] [WITH ...] [GRANTED BY g]"), unquoted; false for any other
// statement (a GRANT of privileges ON an object included).
bool ParseRoleGrant(absl::string_view sql, std::vector<std::string>* granted,
                    std::vector<std::string>* members);

// A statement of the globals of a pg_dumpall dump, as the loader treats it.
struct GlobalStatement {
  enum class Kind {
    kCreateRole,  // created when missing (without its attributes)
    kAlterRole,   // applied to roles the load created only
    kSet,         // session setting: run
    kTablespace,  // CREATE TABLESPACE: not created (warned)
    kGrantRole,   // GRANT r TO m: applied when the load created r and m
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

// pg_dump 18's planner statistics of a relation: "SELECT * FROM
// pg_catalog.pg_restore_relation_stats(..., 'schemaname', 's', 'relname',
// 'r', ...)" or "..._attribute_stats(...)". The relation as the dump names
// tables ("public.statuses", quoted like pg_dump's fmtId) in `*table`, and
// whether it is the attribute (column) form in `*attribute`. False for any
// other statement, and for one without both names.
bool ParseStatisticsImport(absl::string_view sql, std::string* table, bool* attribute);

// A key of \restrict or \unrestrict: alphanumeric, or "(null)".
bool ValidRestrictKey(absl::string_view key);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_REWRITE_RULES_H_
