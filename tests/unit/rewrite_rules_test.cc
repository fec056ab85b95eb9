// The loader's rewrite rules, statement by statement: what runs on the
// target instead of what the dump says.
#include "agent/database/rewrite_rules.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace mastodon_restore {
namespace {

struct RewriteCase {
  const char* name;
  int target_major;
  bool superuser;
  const char* source_db;
  const char* sql;
  // Expected: skipped, the statement run (when not skipped), the note, the
  // source database learned.
  bool skip;
  const char* run;
  const char* note;
  const char* learned;
};

const RewriteCase kRewriteCases[] = {
    {"transaction_timeout on 15", 15, true, "m", "SET transaction_timeout = 0;", true, "",
     "removed SET transaction_timeout (target PostgreSQL 15)", ""},
    {"transaction_timeout on 16", 16, true, "m", "set transaction_timeout = 0;", true, "",
     "removed SET transaction_timeout (target PostgreSQL 16)", ""},
    {"transaction_timeout on 17", 17, true, "m", "SET transaction_timeout = 0;", false,
     "SET transaction_timeout = 0;", "", ""},
    {"transaction_timeout, version unknown", 0, true, "m", "SET transaction_timeout = 0;", false,
     "SET transaction_timeout = 0;", "", ""},
    {"table access method on 11", 11, true, "m", "SET default_table_access_method = heap;", true,
     "", "removed SET default_table_access_method (target PostgreSQL 11)", ""},
    {"table access method on 12", 12, true, "m", "SET default_table_access_method = heap;", false,
     "SET default_table_access_method = heap;", "", ""},
    {"idle timeout on 9", 9, true, "m", "SET idle_in_transaction_session_timeout = 0;", true, "",
     "removed SET idle_in_transaction_session_timeout", ""},
    {"idle timeout on 10", 10, true, "m", "SET idle_in_transaction_session_timeout = 0;", false,
     "SET idle_in_transaction_session_timeout = 0;", "", ""},
    {"create database", 15, true, "m",
     "CREATE DATABASE \"Mastodon\" WITH TEMPLATE = template0 ENCODING = 'UTF8';", true, "",
     "CREATE DATABASE Mastodon replaced by the staging database", ""},
    {"create database names the source", 15, true, "",
     "CREATE DATABASE mastodon WITH TEMPLATE = template0;", true, "",
     "CREATE DATABASE mastodon replaced by the staging database", "mastodon"},
    {"alter database of the source", 15, true, "mastodon",
     "ALTER DATABASE mastodon SET search_path TO 'public';", false,
     "ALTER DATABASE \"stage\" SET search_path TO 'public';", "", ""},
    {"alter database, quoted", 15, true, "My db", "ALTER DATABASE \"My db\" OWNER TO mastodon;",
     false, "ALTER DATABASE \"stage\" OWNER TO mastodon;", "", ""},
    {"alter database of another", 15, true, "mastodon", "ALTER DATABASE other OWNER TO x;", false,
     "ALTER DATABASE other OWNER TO x;", "", ""},
    {"alter database learns the source", 15, true, "", "ALTER DATABASE first OWNER TO x;", false,
     "ALTER DATABASE \"stage\" OWNER TO x;", "", "first"},
    {"comment on database", 15, true, "mastodon", "COMMENT ON DATABASE mastodon IS 'the app';",
     false, "COMMENT ON DATABASE \"stage\" IS 'the app';", "", ""},
    {"grant on database", 15, true, "mastodon", "GRANT CONNECT ON DATABASE mastodon TO reader;",
     false, "GRANT CONNECT ON DATABASE \"stage\" TO reader;", "", ""},
    {"revoke on database", 15, true, "mastodon", "REVOKE ALL ON DATABASE mastodon FROM PUBLIC;",
     false, "REVOKE ALL ON DATABASE \"stage\" FROM PUBLIC;", "", ""},
    {"grant on a table", 15, true, "mastodon", "GRANT SELECT ON TABLE public.t TO reader;", false,
     "GRANT SELECT ON TABLE public.t TO reader;", "", ""},
    {"comment on extension, superuser", 15, true, "m", "COMMENT ON EXTENSION plpgsql IS 'x';",
     false, "COMMENT ON EXTENSION plpgsql IS 'x';", "", ""},
    {"comment on extension, not superuser", 15, false, "m", "COMMENT ON EXTENSION plpgsql IS 'x';",
     true, "", "skipped COMMENT ON EXTENSION (target role is not a superuser)", ""},
    {"anything else", 15, false, "m", "CREATE TABLE public.t (id bigint);", false,
     "CREATE TABLE public.t (id bigint);", "", ""},
};

TEST(RewriteStatementTest, Table) {
  for (const RewriteCase& c : kRewriteCases) {
    SCOPED_TRACE(c.name);
    RewriteContext context;
    context.target_major = c.target_major;
    context.superuser = c.superuser;
    context.source_db = c.source_db;
    context.quoted_target_db = "\"stage\"";
    std::string sql = c.sql;
    RewriteResult r = RewriteStatement(context, &sql);
    EXPECT_EQ(r.action == RewriteResult::Action::kSkip, c.skip);
    if (!c.skip) {
      EXPECT_EQ(sql, c.run);
    }
    EXPECT_EQ(r.note, c.note);
    EXPECT_EQ(r.source_db, c.learned);
  }
}

// The version rules: what newer pg_dump writes that older targets reject
// (seen in real pg_dump 16-18 output), and what 9.6-11 dumps hold that 12+
// reject. `run` is what runs (kRun), `note` the rewrite's note or the
// refusal's reason.
struct VersionCase {
  const char* name;
  int target_major;
  const char* sql;
  RewriteResult::Action action;
  const char* run;
  const char* note;
};

constexpr auto kRun = RewriteResult::Action::kRun;
constexpr auto kSkip = RewriteResult::Action::kSkip;
constexpr auto kRefuse = RewriteResult::Action::kRefuse;

const VersionCase kVersionCases[] = {
    // pg_dump 18 planner statistics (--statistics).
    {"relation stats on 17", 17,
     "SELECT * FROM pg_catalog.pg_restore_relation_stats(\n\t'version', '180003'::integer,\n\t"
     "'schemaname', 'public',\n\t'relname', 't',\n\t'relpages', '1'::integer);",
     kSkip, "",
     "skipped the dump's planner statistics (target PostgreSQL 17; the restore runs ANALYZE)"},
    {"attribute stats on 14", 14,
     "SELECT * FROM pg_catalog.pg_restore_attribute_stats(\n\t'version', '180003'::integer);",
     kSkip, "",
     "skipped the dump's planner statistics (target PostgreSQL 14; the restore runs ANALYZE)"},
    {"relation stats on 18", 18,
     "SELECT * FROM pg_catalog.pg_restore_relation_stats('version', '180003'::integer);", kRun,
     "SELECT * FROM pg_catalog.pg_restore_relation_stats('version', '180003'::integer);", ""},
    // Builtin collations (17+).
    {"builtin C on 16", 16, "CREATE COLLATION public.bic2 (provider = builtin, locale = 'C');",
     kRun, "CREATE COLLATION public.bic2 (provider = libc, locale = 'C');",
     "builtin collation locale 'C' created with the libc provider (target PostgreSQL 16)"},
    {"builtin C.UTF-8 on 15", 15,
     "CREATE COLLATION public.bic (provider = builtin, locale = 'C.UTF-8');", kRefuse, "",
     "collation public.bic uses the builtin provider (PostgreSQL 17+) with locale 'C.UTF-8', which "
     "PostgreSQL 15 has no faithful equivalent of"},
    {"builtin C.UTF-8 on 17", 17,
     "CREATE COLLATION public.bic (provider = builtin, locale = 'C.UTF-8');", kRun,
     "CREATE COLLATION public.bic (provider = builtin, locale = 'C.UTF-8');", ""},
    {"PG_UNICODE_FAST on 17", 17,
     "CREATE COLLATION public.bif (provider = builtin, locale = 'PG_UNICODE_FAST');", kRefuse, "",
     "collation public.bif uses the builtin provider's PG_UNICODE_FAST locale (PostgreSQL 18); the "
     "target runs 17"},
    {"PG_UNICODE_FAST on 18", 18,
     "CREATE COLLATION public.bif (provider = builtin, locale = 'PG_UNICODE_FAST');", kRun,
     "CREATE COLLATION public.bif (provider = builtin, locale = 'PG_UNICODE_FAST');", ""},
    {"libc collation on 14", 14,
     "CREATE COLLATION public.fr (provider = libc, locale = 'fr_FR.utf8');", kRun,
     "CREATE COLLATION public.fr (provider = libc, locale = 'fr_FR.utf8');", ""},
    // Table access methods of partitioned tables (pg_dump 17+).
    {"set access method heap on 16", 16, "ALTER TABLE public.pa SET ACCESS METHOD heap;", kSkip, "",
     "removed ALTER TABLE ... SET ACCESS METHOD heap (target PostgreSQL 16: heap is the only one)"},
    {"set access method other on 14", 14, "ALTER TABLE public.pa SET ACCESS METHOD columnar;",
     kRefuse, "",
     "table public.pa uses access method columnar, which PostgreSQL 14 cannot set on it"},
    {"set access method on 17", 17, "ALTER TABLE public.pa SET ACCESS METHOD heap;", kRun,
     "ALTER TABLE public.pa SET ACCESS METHOD heap;", ""},
    // PostgreSQL 18 table syntax.
    {"named not null on 17", 17,
     "CREATE TABLE public.events_2025 (\n    id bigint CONSTRAINT events_id_not_null NOT NULL\n);",
     kRun,
     "CREATE TABLE public.events_2025 (\n    id bigint CONSTRAINT events_id_not_null NOT NULL\n);",
     ""},
    {"not null no inherit on 17", 17,
     "CREATE TABLE public.nn (\n    a integer,\n    c integer CONSTRAINT c_ni NOT NULL NO "
     "INHERIT\n);",
     kRefuse, "",
     "NOT NULL NO INHERIT constraint on public.nn needs PostgreSQL 18; the target runs 17"},
    {"not null no inherit on 18", 18, "CREATE TABLE public.nn (c integer NOT NULL NO INHERIT);",
     kRun, "CREATE TABLE public.nn (c integer NOT NULL NO INHERIT);", ""},
    {"check no inherit on 14", 14,
     "CREATE TABLE public.c (\n    a integer,\n    CONSTRAINT ck CHECK ((a > 0)) NO INHERIT\n);",
     kRun,
     "CREATE TABLE public.c (\n    a integer,\n    CONSTRAINT ck CHECK ((a > 0)) NO INHERIT\n);",
     ""},
    {"virtual generated column on 17", 17,
     "CREATE TABLE public.t (\n    id integer NOT NULL,\n    v integer GENERATED ALWAYS AS ((id * "
     "2)),\n"
     "    s integer GENERATED ALWAYS AS ((id * 3)) STORED,\n    w text GENERATED ALWAYS AS "
     "(upper(x))\n);",
     kRun,
     "CREATE TABLE public.t (\n    id integer NOT NULL,\n    v integer GENERATED ALWAYS AS ((id * "
     "2)) STORED,\n"
     "    s integer GENERATED ALWAYS AS ((id * 3)) STORED,\n    w text GENERATED ALWAYS AS "
     "(upper(x)) STORED\n);",
     "virtual generated columns created STORED (target PostgreSQL 17 has no virtual ones; same "
     "values)"},
    {"identity column on 14", 14,
     "CREATE UNLOGGED TABLE public.u (id bigint GENERATED ALWAYS AS IDENTITY);", kRun,
     "CREATE UNLOGGED TABLE public.u (id bigint GENERATED ALWAYS AS IDENTITY);", ""},
    {"virtual generated column on 18", 18,
     "CREATE TABLE public.t (v integer GENERATED ALWAYS AS (1));", kRun,
     "CREATE TABLE public.t (v integer GENERATED ALWAYS AS (1));", ""},
    {"not null constraint on 16", 16,
     "ALTER TABLE ONLY public.nn\n    ADD CONSTRAINT nn_b_nn NOT NULL b;", kRun,
     "ALTER TABLE ONLY public.nn ALTER COLUMN b SET NOT NULL;",
     "NOT NULL constraints added as unnamed SET NOT NULL (target PostgreSQL 16)"},
    {"not null not valid on 17", 17,
     "ALTER TABLE public.nn\n    ADD CONSTRAINT nn_b_nn NOT NULL b NOT VALID;", kRefuse, "",
     "NOT NULL constraint nn_b_nn NOT VALID on public.nn needs PostgreSQL 18; the target runs 17"},
    {"not null not valid on 18", 18,
     "ALTER TABLE public.nn\n    ADD CONSTRAINT nn_b_nn NOT NULL b NOT VALID;", kRun,
     "ALTER TABLE public.nn\n    ADD CONSTRAINT nn_b_nn NOT NULL b NOT VALID;", ""},
    {"check not enforced on 15", 15,
     "ALTER TABLE public.nn\n    ADD CONSTRAINT ck CHECK ((a > 0)) NOT ENFORCED;", kRefuse, "",
     "NOT ENFORCED constraint on public.nn needs PostgreSQL 18; the target runs 15"},
    {"foreign key not enforced on 17", 17,
     "ALTER TABLE ONLY public.fkc\n    ADD CONSTRAINT fkc_id_fkey FOREIGN KEY (id) REFERENCES "
     "public.fkp(id) NOT ENFORCED;",
     kRefuse, "", "NOT ENFORCED constraint on public.fkc needs PostgreSQL 18; the target runs 17"},
    {"not enforced in an expression", 17,
     "ALTER TABLE public.f\n    ADD CONSTRAINT ck CHECK ((NOT enforced));", kRun,
     "ALTER TABLE public.f\n    ADD CONSTRAINT ck CHECK ((NOT enforced));", ""},
    {"foreign key on 14", 14,
     "ALTER TABLE ONLY public.s\n    ADD CONSTRAINT s_fkey FOREIGN KEY (a) REFERENCES "
     "public.a(id);",
     kRun,
     "ALTER TABLE ONLY public.s\n    ADD CONSTRAINT s_fkey FOREIGN KEY (a) REFERENCES "
     "public.a(id);",
     ""},
    // Role memberships of pg_dumpall 16+ (real pg_dumpall 17 output).
    {"grant inherit true on 14", 14,
     "GRANT grp TO reader WITH ADMIN OPTION, INHERIT TRUE GRANTED BY postgres;", kRun,
     "GRANT grp TO reader WITH ADMIN OPTION GRANTED BY postgres;",
     "role memberships without their INHERIT/SET options (target PostgreSQL 14)"},
    {"grant set true, admin true on 15", 15, "GRANT \"Grp\" TO a, b WITH ADMIN TRUE, SET TRUE;",
     kRun, "GRANT \"Grp\" TO a, b WITH ADMIN OPTION;",
     "role memberships without their INHERIT/SET options (target PostgreSQL 15)"},
    {"grant inherit false on 15", 15,
     "GRANT grp TO mastodon WITH INHERIT FALSE GRANTED BY postgres;", kRefuse, "",
     "role membership grp TO mastodon WITH INHERIT FALSE needs PostgreSQL 16; the target runs 15"},
    {"grant set false on 14", 14,
     "GRANT reader TO other WITH INHERIT TRUE, SET FALSE GRANTED BY app_admin;", kRefuse, "",
     "role membership reader TO other WITH SET FALSE needs PostgreSQL 16; the target runs 14"},
    {"grant inherit false on 16", 16,
     "GRANT grp TO mastodon WITH INHERIT FALSE GRANTED BY postgres;", kRun,
     "GRANT grp TO mastodon WITH INHERIT FALSE GRANTED BY postgres;", ""},
    {"grant of pg_dumpall 15 on 14", 14, "GRANT grp TO reader GRANTED BY postgres;", kRun,
     "GRANT grp TO reader GRANTED BY postgres;", ""},
    {"grant of a privilege on 14", 14,
     "GRANT SELECT ON TABLE public.t TO reader WITH GRANT OPTION;", kRun,
     "GRANT SELECT ON TABLE public.t TO reader WITH GRANT OPTION;", ""},
    // Tables with OIDs (pg_dump 9.6-11) on 12+.
    {"default_with_oids false on 12", 12, "SET default_with_oids = false;", kSkip, "",
     "removed SET default_with_oids = false (target PostgreSQL 12: tables have no OIDs since "
     "PostgreSQL 12)"},
    {"default_with_oids false on 11", 11, "SET default_with_oids = false;", kRun,
     "SET default_with_oids = false;", ""},
    {"default_with_oids true on 18", 18, "SET default_with_oids = true;", kRefuse, "",
     "the dump creates tables WITH OIDS (PostgreSQL <= 11; SET default_with_oids = true before the "
     "next table): PostgreSQL 18 has no table OIDs"},
    {"copy with oids on 14", 14, "COPY public.legacy (id, name) WITH OIDS FROM stdin;", kRefuse, "",
     "table public.legacy was dumped WITH OIDS (PostgreSQL <= 11): PostgreSQL 14 has no table "
     "OIDs"},
    {"copy on 14", 14, "COPY public.t (id, \"with\") FROM stdin;", kRun,
     "COPY public.t (id, \"with\") FROM stdin;", ""},
    {"create table with oids on 15", 15, "CREATE TABLE public.legacy (id integer) WITH OIDS;",
     kRefuse, "",
     "table public.legacy was dumped WITH OIDS (PostgreSQL <= 11): PostgreSQL 15 has no table "
     "OIDs"},
    {"create table with (oids=true) on 15", 15,
     "CREATE TABLE public.legacy (id integer) WITH (oids = true);", kRefuse, "",
     "table public.legacy was dumped WITH OIDS (PostgreSQL <= 11): PostgreSQL 15 has no table "
     "OIDs"},
    {"create table with (fillfactor) on 15", 15,
     "CREATE TABLE public.t (id integer) WITH (fillfactor = 70);", kRun,
     "CREATE TABLE public.t (id integer) WITH (fillfactor = 70);", ""},
    {"create table with oids, version unknown", 0,
     "CREATE TABLE public.legacy (id integer) WITH OIDS;", kRun,
     "CREATE TABLE public.legacy (id integer) WITH OIDS;", ""},
};

TEST(RewriteStatementTest, VersionRules) {
  for (const VersionCase& c : kVersionCases) {
    SCOPED_TRACE(c.name);
    RewriteContext context;
    context.target_major = c.target_major;
    context.source_db = "m";
    context.quoted_target_db = "\"stage\"";
    std::string sql = c.sql;
    RewriteResult r = RewriteStatement(context, &sql);
    EXPECT_EQ(static_cast<int>(r.action), static_cast<int>(c.action));
    if (c.action == kRun) {
      EXPECT_EQ(sql, c.run);
    }
    EXPECT_EQ(r.note, c.note);
  }
}

// Before 16 a membership inherits as its member does: pg_dumpall 16+'s
// INHERIT option (written on every membership) is dropped where it agrees
// with the member and refused where it does not.
TEST(RewriteStatementTest, RoleGrantInheritFollowsTheMemberBefore16) {
  struct Case {
    const char* sql;
    std::optional<bool> members_inherit;
    RewriteResult::Action action;
    const char* run;
  };
  const Case cases[] = {
      {"GRANT grp TO watcher WITH INHERIT FALSE GRANTED BY postgres;", false, kRun,
       "GRANT grp TO watcher GRANTED BY postgres;"},
      {"GRANT grp TO watcher WITH INHERIT TRUE GRANTED BY postgres;", false, kRefuse, ""},
      {"GRANT grp TO reader WITH ADMIN OPTION, INHERIT TRUE GRANTED BY postgres;", true, kRun,
       "GRANT grp TO reader WITH ADMIN OPTION GRANTED BY postgres;"},
      {"GRANT grp TO reader WITH INHERIT FALSE GRANTED BY postgres;", true, kRefuse, ""},
      {"GRANT grp TO watcher WITH INHERIT FALSE, SET FALSE;", false, kRefuse, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.sql);
    RewriteContext context;
    context.target_major = 15;
    context.grant_members_inherit = c.members_inherit;
    std::string sql = c.sql;
    RewriteResult r = RewriteStatement(context, &sql);
    EXPECT_EQ(static_cast<int>(r.action), static_cast<int>(c.action)) << r.note;
    if (c.action == kRun) {
      EXPECT_EQ(sql, c.run);
    }
  }
  RewriteContext context;
  context.target_major = 15;
  context.grant_members_inherit = false;
  std::string sql = "GRANT grp TO watcher WITH INHERIT TRUE GRANTED BY postgres;";
  EXPECT_EQ(RewriteStatement(context, &sql).note,
            "role membership grp TO watcher WITH INHERIT TRUE needs PostgreSQL 16 (its member is "
            "NOINHERIT); the target runs 15");
}

TEST(ParseRoleGrantTest, MembershipsOnly) {
  std::vector<std::string> granted, members;
  EXPECT_TRUE(ParseRoleGrant("GRANT a, \"B c\" TO m WITH ADMIN OPTION GRANTED BY postgres;",
                             &granted, &members));
  EXPECT_EQ(granted, (std::vector<std::string>{"a", "B c"}));
  EXPECT_EQ(members, (std::vector<std::string>{"m"}));
  granted.clear();
  members.clear();
  EXPECT_TRUE(ParseRoleGrant("GRANT grp TO x, y;", &granted, &members));
  EXPECT_EQ(members, (std::vector<std::string>{"x", "y"}));
  EXPECT_FALSE(ParseRoleGrant("GRANT SELECT ON TABLE t TO x;", &granted, &members));
  EXPECT_FALSE(ParseRoleGrant("GRANT SELECT(id) ON TABLE t TO x;", &granted, &members));
  EXPECT_FALSE(ParseRoleGrant("GRANT CONNECT, TEMPORARY ON DATABASE d TO x;", &granted, &members));
  EXPECT_FALSE(ParseRoleGrant("REVOKE a FROM b;", &granted, &members));
  EXPECT_EQ(
      ClassifyGlobalStatement("GRANT grp TO reader WITH INHERIT TRUE GRANTED BY postgres;").kind,
      GlobalStatement::Kind::kGrantRole);
}

TEST(StatementHeadTest, UpperCasedWithBlanks) {
  EXPECT_EQ(StatementHead("alter table\n\tonly x"), "ALTER TABLE  ONLY X");
  EXPECT_EQ(StatementHead("select 1", 3), "SEL");
}

TEST(ClassifyGlobalStatementTest, Table) {
  struct Case {
    const char* sql;
    GlobalStatement::Kind kind;
    const char* role;
  };
  const std::vector<Case> cases = {
      {"CREATE ROLE mastodon;", GlobalStatement::Kind::kCreateRole, "mastodon"},
      {"CREATE ROLE \"Odd\"\"role\";", GlobalStatement::Kind::kCreateRole, "Odd\"role"},
      {"ALTER ROLE mastodon WITH NOSUPERUSER LOGIN PASSWORD 'x';",
       GlobalStatement::Kind::kAlterRole, "mastodon"},
      {"SET default_transaction_read_only = off;", GlobalStatement::Kind::kSet, ""},
      {"CREATE TABLESPACE fast OWNER postgres LOCATION '/fast';",
       GlobalStatement::Kind::kTablespace, ""},
      {"CREATE DATABASE mastodon;", GlobalStatement::Kind::kIgnore, ""},
      {"ALTER DATABASE x SET y = z;", GlobalStatement::Kind::kIgnore, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.sql);
    GlobalStatement g = ClassifyGlobalStatement(c.sql);
    EXPECT_EQ(g.kind, c.kind);
    EXPECT_EQ(g.role, c.role);
  }
}

TEST(StripRolePasswordTest, RemovesTheHashOnly) {
  std::string sql = "ALTER ROLE mastodon WITH NOSUPERUSER LOGIN PASSWORD 'SCRAM-SHA-256$4096:abc';";
  EXPECT_TRUE(StripRolePassword(&sql));
  EXPECT_EQ(sql, "ALTER ROLE mastodon WITH NOSUPERUSER LOGIN;");
  std::string none = "ALTER ROLE mastodon WITH LOGIN;";
  EXPECT_FALSE(StripRolePassword(&none));
  EXPECT_EQ(none, "ALTER ROLE mastodon WITH LOGIN;");
  std::string unterminated = "ALTER ROLE m PASSWORD 'abc";
  EXPECT_FALSE(StripRolePassword(&unterminated));
  EXPECT_EQ(unterminated, "ALTER ROLE m PASSWORD 'abc");
}

TEST(ParseTocCommentTest, Table) {
  struct Case {
    const char* comment;
    bool ok;
    const char* entry;
    const char* type;
  };
  const std::vector<Case> cases = {
      {"Name: statuses; Type: TABLE; Schema: public; Owner: mastodon", true,
       "TABLE public.statuses", "TABLE"},
      {"Data for Name: statuses; Type: TABLE DATA; Schema: public; Owner: mastodon", true,
       "TABLE DATA public.statuses", "TABLE DATA"},
      {"Name: plpgsql; Type: EXTENSION; Schema: -; Owner: -", true, "EXTENSION plpgsql",
       "EXTENSION"},
      {"Name: x; Type: ACL; Schema: public", true, "ACL public.x", "ACL"},
      {"PostgreSQL database dump", false, "", ""},
      {"Name: odd; Schema: public; Type: TABLE", false, "", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.comment);
    std::string entry, type;
    EXPECT_EQ(ParseTocComment(c.comment, &entry, &type), c.ok);
    EXPECT_EQ(entry, c.entry);
    EXPECT_EQ(type, c.type);
  }
}

TEST(CopyTargetTest, AsWritten) {
  EXPECT_EQ(CopyTarget("COPY public.statuses (id, text) FROM stdin;"), "public.statuses");
  EXPECT_EQ(CopyTarget("COPY public.\"Odd name\" (a) FROM stdin;"), "public.\"Odd name\"");
}

TEST(ValidRestrictKeyTest, AlphanumericOrNull) {
  EXPECT_TRUE(ValidRestrictKey("abcXYZ019"));
  EXPECT_TRUE(ValidRestrictKey("(null)"));
  EXPECT_FALSE(ValidRestrictKey(""));
  EXPECT_FALSE(ValidRestrictKey("ab-c"));
  EXPECT_FALSE(ValidRestrictKey("ab c"));
}

TEST(OwnerToRoleTest, TheRoleOfAnOwnerChange) {
  EXPECT_EQ(OwnerToRole("ALTER TABLE public.accounts OWNER TO mastodon;"), "mastodon");
  EXPECT_EQ(OwnerToRole("ALTER SCHEMA x OWNER TO Postgres;"), "postgres");
  EXPECT_EQ(OwnerToRole("ALTER FUNCTION public.f() OWNER TO \"We\"\"ird\";"), "We\"ird");
  EXPECT_EQ(OwnerToRole("alter table t\nowner to   app ;"), "app");
  EXPECT_EQ(OwnerToRole("CREATE TABLE t (a int);"), "");
  EXPECT_EQ(OwnerToRole("COMMENT ON TABLE t IS 'x OWNER TO y';"), "");
}

TEST(DefaultPrivilegesRoleTest, TheRoleWhoseFutureObjectsItChanges) {
  EXPECT_EQ(DefaultPrivilegesRole("ALTER DEFAULT PRIVILEGES FOR ROLE mastodon IN SCHEMA public "
                                  "GRANT SELECT ON TABLES TO reader;"),
            "mastodon");
  EXPECT_EQ(DefaultPrivilegesRole("alter default privileges for user \"Odd \"\"One\"\n"
                                  "REVOKE ALL ON FUNCTIONS FROM PUBLIC;"),
            "Odd \"One");
  EXPECT_EQ(DefaultPrivilegesRole("  ALTER DEFAULT PRIVILEGES FOR ROLE App GRANT USAGE ON TYPES "
                                  "TO x;"),
            "app");
  // Several roles, or none named: not one role to decide on.
  EXPECT_EQ(DefaultPrivilegesRole("ALTER DEFAULT PRIVILEGES FOR ROLE a, b GRANT SELECT ON TABLES "
                                  "TO x;"),
            "");
  EXPECT_EQ(DefaultPrivilegesRole("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO x;"), "");
  EXPECT_EQ(DefaultPrivilegesRole("ALTER DEFAULT PRIVILEGES FOR ROLE a GRANT SELECT ON TABLES TO "
                                  "x; SELECT 'y';"),
            "");
  EXPECT_EQ(DefaultPrivilegesRole("ALTER TABLE t OWNER TO a;"), "");
}

TEST(OwnerToRoleTest, OnlyAnOwnerChangeAlone) {
  // Owner changes run as superuser after the load: another action beside
  // it (a default the superuser would evaluate) makes it none.
  EXPECT_EQ(OwnerToRole("ALTER TABLE t ADD COLUMN c text DEFAULT public.trap(), OWNER TO a;"), "");
  EXPECT_EQ(OwnerToRole("ALTER TABLE t ALTER c SET DEFAULT 'x', OWNER TO a;"), "");
  EXPECT_EQ(OwnerToRole("ALTER FUNCTION public.f(integer, text) OWNER TO a;"), "a");
  EXPECT_EQ(OwnerToRole("ALTER OPERATOR public.+ (integer, integer) OWNER TO a;"), "a");
  EXPECT_EQ(OwnerToRole("ALTER TABLE t OWNER TO a, b;"), "");
  EXPECT_EQ(OwnerToRole("ALTER TABLE t OWNER TO a b;"), "");
  EXPECT_EQ(OwnerToRole("ALTER TABLE t OWNER TO \"unterminated;"), "");
}

TEST(ParseStatisticsImportTest, NamesTheRelationAsTheDumpDoes) {
  std::string table;
  bool attribute = true;
  ASSERT_TRUE(ParseStatisticsImport(
      "SELECT * FROM pg_catalog.pg_restore_relation_stats(\n\t'version', '180000'::integer,\n\t"
      "'schemaname', 'public',\n\t'relname', 'statuses',\n\t'relpages', '1'::integer\n);",
      &table, &attribute));
  EXPECT_EQ(table, "public.statuses");
  EXPECT_FALSE(attribute);
  ASSERT_TRUE(ParseStatisticsImport(
      "SELECT * FROM pg_catalog.pg_restore_attribute_stats(\n\t'version', '180000'::integer,\n\t"
      "'schemaname', 'My Schema',\n\t'relname', 'it''s',\n\t'attname', 'id'\n);",
      &table, &attribute));
  EXPECT_EQ(table, "\"My Schema\".\"it's\"");
  EXPECT_TRUE(attribute);
  // Not a statistics call, or one without the names (pg_dump 18 betas
  // named the relation by 'relation').
  EXPECT_FALSE(
      ParseStatisticsImport("SELECT pg_catalog.setval('public.s', 1, true);", &table, &attribute));
  EXPECT_FALSE(ParseStatisticsImport(
      "SELECT * FROM pg_catalog.pg_restore_relation_stats('relation', 'public.t'::regclass);",
      &table, &attribute));
  EXPECT_FALSE(ParseStatisticsImport(
      "SELECT * FROM pg_catalog.pg_restore_relation_stats('schemaname', 'public', "
      "'relname', ''",
      &table, &attribute));
}

}  // namespace
}  // namespace mastodon_restore
