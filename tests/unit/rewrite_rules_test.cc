// The loader's rewrite rules, statement by statement: what runs on the
// target instead of what the dump says.
#include "agent/database/rewrite_rules.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace mastodon_restore
