// The dump's statement classifier: the tokenizer's quoting forms, every kind
// pg_dump and pg_dumpall write passes, every refused kind is refused with
// its reason, and PASSWORD clauses are found whatever their quoting.
#include "agent/dump/statement_classifier.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mastodon_restore {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> Texts(absl::string_view sql, bool scs = true) {
  std::vector<std::string> out;
  for (const SqlToken& t : TokenizeSql(sql, scs).tokens) out.push_back(t.text);
  return out;
}

TEST(TokenizeSqlTest, QuotingForms) {
  EXPECT_THAT(Texts("SELECT 'it''s', E'a\\'b', $$x;'y$$, $f$ $$ $f$, \"Mixed \"\"Q\"\"\""),
              ::testing::ElementsAre("select", "it's", ",", "a'b", ",", "x;'y", ",", " $$ ", ",",
                                     "Mixed \"Q\""));
  // A backslash is an ordinary character with standard_conforming_strings,
  // an escape without.
  EXPECT_THAT(Texts("'a\\' x"), ::testing::ElementsAre("a\\", "x"));
  EXPECT_THAT(Texts("'a\\'' x", /*scs=*/false), ::testing::ElementsAre("a'", "x"));
  // Comments, nested block comments; $1 is a parameter, a$b a word.
  EXPECT_THAT(Texts("a -- pg_read_file\n/* x /* y */ pg_ls_dir */ b $1 a$b"),
              ::testing::ElementsAre("a", "b", "$1", "a$b"));
  EXPECT_THAT(Texts("x::int[] U&'d\\0061' B'101'"),
              ::testing::ElementsAre("x", "::", "int", "[", "]", "d\\0061", "101"));
  EXPECT_FALSE(TokenizeSql("SELECT 'abc").complete);
  EXPECT_FALSE(TokenizeSql("SELECT $x$ abc").complete);
  EXPECT_FALSE(TokenizeSql("SELECT /* /* */").complete);
  EXPECT_FALSE(TokenizeSql("SELECT \"abc").complete);
  EXPECT_TRUE(TokenizeSql("SELECT 1 /* a */ -- b").complete);
}

StatementClass Db(absl::string_view sql) { return ClassifyStatement(sql, ClassifyOptions()); }
StatementClass Globals(absl::string_view sql, bool privileged = false) {
  ClassifyOptions o;
  o.context = StatementContext::kGlobals;
  o.allow_privileged_roles = privileged;
  return ClassifyStatement(sql, o);
}

// What pg_dump 9.6-18 and pg_dumpall write for an ordinary schema.
const char* const kPgDumpStatements[] = {
    "SET statement_timeout = 0;",
    "SET lock_timeout = 0;",
    "SET idle_in_transaction_session_timeout = 0;",
    "SET transaction_timeout = 0;",
    "SET client_encoding = 'UTF8';",
    "SET standard_conforming_strings = on;",
    "SELECT pg_catalog.set_config('search_path', '', false);",
    "SET search_path = public, pg_catalog;",
    "SET check_function_bodies = false;",
    "SET xmloption = content;",
    "SET client_min_messages = warning;",
    "SET row_security = off;",
    "SET default_tablespace = '';",
    "SET default_table_access_method = heap;",
    "SET default_with_oids = false;",
    "CREATE SCHEMA extra;",
    "ALTER SCHEMA extra OWNER TO mastodon;",
    "CREATE EXTENSION IF NOT EXISTS plpgsql WITH SCHEMA pg_catalog;",
    "COMMENT ON EXTENSION plpgsql IS 'PL/pgSQL procedural language';",
    "CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;",
    "CREATE OR REPLACE PROCEDURAL LANGUAGE plpgsql;",
    "CREATE FUNCTION public.timestamp_id(table_name text) RETURNS bigint\n"
    "    LANGUAGE plpgsql\n    AS $$\n  DECLARE\n    time_part bigint;\n  BEGIN\n"
    "    time_part := (date_part('epoch', now()) * 1000)::bigint << 16;\n"
    "    RETURN time_part | (nextval(table_name || '_id_seq') % 65536);\n  END\n$$;",
    "ALTER FUNCTION public.timestamp_id(table_name text) OWNER TO mastodon;",
    "CREATE TYPE public.mood AS ENUM (\n    'sad',\n    'ok'\n);",
    "CREATE TABLE public.accounts (\n    id bigint DEFAULT public.timestamp_id('accounts'::text) "
    "NOT NULL,\n    username character varying DEFAULT ''::character varying NOT NULL\n);",
    "CREATE UNLOGGED TABLE public.cache (k text);",
    "ALTER TABLE public.accounts OWNER TO mastodon;",
    "CREATE SEQUENCE public.accounts_id_seq\n    START WITH 1\n    INCREMENT BY 1\n    NO "
    "MINVALUE\n"
    "    NO MAXVALUE\n    CACHE 1;",
    "ALTER SEQUENCE public.accounts_id_seq OWNED BY public.accounts.id;",
    "ALTER TABLE ONLY public.statuses ALTER COLUMN id SET DEFAULT "
    "nextval('public.statuses_id_seq'::regclass);",
    "CREATE VIEW public.v AS\n SELECT accounts.id\n   FROM public.accounts;",
    "CREATE MATERIALIZED VIEW public.mv AS\n SELECT 1 AS x\n  WITH NO DATA;",
    "REFRESH MATERIALIZED VIEW public.mv;",
    "COPY public.accounts (id, username) FROM stdin;",
    "COPY public.accounts (id, username) WITH OIDS FROM stdin;",
    "INSERT INTO public.accounts VALUES (1, 'a''b', NULL, true, -1.5e3);",
    "INSERT INTO public.accounts (id, username) OVERRIDING SYSTEM VALUE VALUES (1, 'x'), (2, 'y');",
    "SELECT pg_catalog.setval('public.accounts_id_seq', 42, true);",
    "SELECT pg_catalog.lo_create('16403');",
    "SELECT pg_catalog.lo_open('16403', 131072);",
    "SELECT pg_catalog.lowrite(0, '\\x48656c6c6f');",
    "SELECT pg_catalog.lo_close(0);",
    "SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata WHERE oid = "
    "'16403';",
    "ALTER LARGE OBJECT 16403 OWNER TO mastodon;",
    "BEGIN;",
    "COMMIT;",
    "SELECT * FROM pg_catalog.pg_restore_relation_stats(\n\t'version', '180000'::integer,\n"
    "\t'schemaname', 'public',\n\t'relname', 'accounts',\n\t'relpages', '0'::integer,\n"
    "\t'reltuples', '-1'::real,\n\t'relallvisible', '0'::integer\n);",
    "SELECT * FROM pg_catalog.pg_restore_attribute_stats(\n\t'version', '180000'::integer,\n"
    "\t'schemaname', 'public',\n\t'relname', 'accounts',\n\t'attname', 'id',\n"
    "\t'inherited', 'f'::boolean,\n\t'null_frac', '0'::real,\n"
    "\t'most_common_freqs', '{0.5}'::real[]\n);",
    "ALTER TABLE ONLY public.accounts\n    ADD CONSTRAINT accounts_pkey PRIMARY KEY (id);",
    "CREATE UNIQUE INDEX index_accounts_on_username ON public.accounts USING btree "
    "(lower((username)::text));",
    "CREATE INDEX CONCURRENTLY i ON public.accounts (id);",
    "ALTER TABLE ONLY public.statuses\n    ADD CONSTRAINT fk_rails_1 FOREIGN KEY (account_id) "
    "REFERENCES public.accounts(id) ON DELETE CASCADE;",
    "CREATE TRIGGER t BEFORE INSERT ON public.accounts FOR EACH ROW EXECUTE FUNCTION "
    "public.timestamp_id();",
    "CREATE CONSTRAINT TRIGGER t AFTER INSERT ON public.a DEFERRABLE FOR EACH ROW EXECUTE "
    "PROCEDURE public.f();",
    "CREATE RULE r AS ON INSERT TO public.v DO INSTEAD (INSERT INTO public.a VALUES (1); "
    "DELETE FROM public.b);",
    "CREATE POLICY p ON public.accounts USING (true);",
    "ALTER TABLE public.accounts ENABLE ROW LEVEL SECURITY;",
    "CREATE PUBLICATION pub FOR TABLE public.accounts;",
    "ALTER PUBLICATION pub ADD TABLE ONLY public.statuses;",
    "CREATE STATISTICS public.s ON id, username FROM public.accounts;",
    "CREATE AGGREGATE public.agg(integer) (SFUNC = int4pl, STYPE = integer);",
    "CREATE COLLATION public.c (provider = icu, locale = 'und');",
    "CREATE TEXT SEARCH CONFIGURATION public.t (PARSER = pg_catalog.\"default\");",
    "ALTER DEFAULT PRIVILEGES FOR ROLE mastodon IN SCHEMA public GRANT SELECT ON TABLES TO r;",
    "COMMENT ON TABLE public.accounts IS 'the accounts; with ''quotes''';",
    "COMMENT ON COLUMN public.accounts.id IS E'line\\nbreak';",
    "SECURITY LABEL FOR selinux ON TABLE public.accounts IS 'label';",
    "GRANT ALL ON SCHEMA public TO PUBLIC;",
    "REVOKE ALL ON SCHEMA public FROM PUBLIC;",
    "GRANT SELECT,INSERT ON TABLE public.accounts TO reader;",
    "REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC;",
    "GRANT SELECT ON LARGE OBJECT 16403 TO reader;",
    "CREATE DATABASE mastodon WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = "
    "libc LOCALE = 'C.UTF-8';",
    "ALTER DATABASE mastodon OWNER TO mastodon;",
    "ALTER DATABASE mastodon SET search_path TO 'public';",
    "COMMENT ON DATABASE mastodon IS 'x';",
    "REVOKE CONNECT,TEMPORARY ON DATABASE mastodon FROM PUBLIC;",
    "ALTER ROLE mastodon IN DATABASE mastodon SET work_mem TO '64MB';",
    "DROP DATABASE mastodon;",
    "DROP TABLE IF EXISTS public.accounts;",
    "DROP SCHEMA IF EXISTS public;",
    "DROP EXTENSION IF EXISTS plpgsql;",
    "RESET SESSION AUTHORIZATION;",
    "CREATE CAST (text AS public.mood) WITH INOUT AS IMPLICIT;",
    "CREATE DOMAIN public.d AS integer CHECK ((VALUE > 0));",
    "ALTER INDEX public.p_idx ATTACH PARTITION public.c_idx;",
    "ALTER TABLE ONLY public.p ATTACH PARTITION public.c FOR VALUES FROM (1) TO (2);",
    ";",
};

TEST(ClassifyStatementTest, EverythingPgDumpWritesPasses) {
  for (const char* sql : kPgDumpStatements) {
    StatementClass c = Db(sql);
    EXPECT_TRUE(c.allowed) << sql << "\n  refused: " << c.refusal;
  }
}

TEST(ClassifyStatementTest, GlobalsOfPgDumpallPass) {
  const char* const kGlobals[] = {
      "SET default_transaction_read_only = off;",
      "CREATE ROLE mastodon;",
      "ALTER ROLE mastodon WITH NOSUPERUSER INHERIT NOCREATEROLE CREATEDB LOGIN NOREPLICATION "
      "NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:abc';",
      "COMMENT ON ROLE mastodon IS 'app';",
      "GRANT reader TO mastodon WITH INHERIT TRUE GRANTED BY postgres;",
      "CREATE TABLESPACE fast OWNER postgres LOCATION '/srv/fast';",
      "GRANT SET ON PARAMETER work_mem TO mastodon;",
      "DROP ROLE IF EXISTS mastodon;",
      "DROP DATABASE IF EXISTS other;",
      "CREATE DATABASE other WITH TEMPLATE = template0;",
      "ALTER ROLE mastodon SET search_path TO 'public';",
  };
  for (const char* sql : kGlobals) {
    StatementClass c = Globals(sql);
    EXPECT_TRUE(c.allowed) << sql << "\n  refused: " << c.refusal;
  }
  EXPECT_EQ(Globals("CREATE ROLE \"Odd Name\";").role, "Odd Name");
  EXPECT_TRUE(Globals("ALTER ROLE postgres WITH SUPERUSER LOGIN;", /*privileged=*/true).allowed);
}

struct RefusedCase {
  const char* sql;
  const char* kind;
  const char* refusal;
};

const RefusedCase kRefused[] = {
    {"COPY public.t FROM PROGRAM 'id > /tmp/x';", "COPY FROM PROGRAM", "COPY FROM PROGRAM"},
    {"copy t from program $$touch /tmp/x$$;", "COPY FROM PROGRAM", "COPY FROM PROGRAM"},
    {"COPY public.t (a) FROM '/etc/passwd';", "COPY FROM", "server file"},
    {"COPY public.t TO '/tmp/out';", "COPY TO", "server file"},
    {"COPY public.t TO PROGRAM 'x';", "COPY TO PROGRAM", "COPY TO PROGRAM"},
    {"COPY (SELECT 1) TO STDOUT;", "COPY (query) TO STDOUT", "COPY (query) TO STDOUT"},
    {"COPY (SELECT 1) TO '/tmp/x';", "COPY (query)", "COPY (query)"},
    {"COPY public.t TO STDOUT;", "COPY TO STDOUT", "COPY TO STDOUT"},
    {"COPY public.t FROM stdin WITH (FORMAT binary);", "COPY FROM stdin", "options"},
    {"ALTER SYSTEM SET archive_command = 'x';", "ALTER SYSTEM", "ALTER SYSTEM"},
    {"alter  system reset all;", "ALTER SYSTEM", "ALTER SYSTEM"},
    {"LOAD '/tmp/evil.so';", "LOAD", "LOAD"},
    {"DO $$BEGIN PERFORM 1; END$$;", "DO", "DO block"},
    {"SELECT pg_read_file('/etc/passwd');", "SELECT", "SELECT"},
    {"SELECT 1;", "SELECT", "SELECT"},
    {"SELECT pg_catalog.setval('s', (SELECT count(*) FROM pg_authid), true);",
     "SELECT pg_catalog.setval", "query pg_dump does not write"},
    {"SELECT pg_catalog.set_config('session_authorization', 'postgres', false);",
     "SELECT pg_catalog.set_config", "other than search_path"},
    {"SELECT pg_catalog.lo_import('/etc/passwd');", "SELECT pg_catalog.lo_import", "lo_import"},
    {"SELECT pg_catalog.lo_export(16403, '/tmp/x');", "SELECT pg_catalog.lo_export", "lo_export"},
    {"CREATE VIEW public.v AS SELECT pg_read_file('/etc/passwd') AS x;", "CREATE VIEW",
     "function pg_read_file"},
    {"CREATE TABLE public.t (x text DEFAULT pg_catalog.pg_read_binary_file('/x'));", "CREATE TABLE",
     "function pg_read_binary_file"},
    {"CREATE TABLE public.t (x text DEFAULT \"pg_ls_dir\"('/'));", "CREATE TABLE",
     "function pg_ls_dir"},
    {"CREATE FUNCTION public.f() RETURNS void LANGUAGE plpgsql AS $b$ BEGIN PERFORM "
     "set_config('session_authorization', 'postgres', false); END $b$;",
     "CREATE FUNCTION", "function body naming set_config"},
    {"CREATE FUNCTION public.f() RETURNS text LANGUAGE sql AS 'SELECT PG_STAT_FILE(''/'')::text';",
     "CREATE FUNCTION", "pg_stat_file"},
    {"CREATE FUNCTION public.f() RETURNS void LANGUAGE c AS '/tmp/evil.so', 'f';",
     "CREATE FUNCTION", "LANGUAGE c"},
    {"CREATE FUNCTION public.f() RETURNS void AS 'system' LANGUAGE internal;", "CREATE FUNCTION",
     "LANGUAGE internal"},
    {"CREATE FUNCTION public.f() RETURNS int LANGUAGE plpython3u AS $$return 1$$;",
     "CREATE FUNCTION", "LANGUAGE plpython3u"},
    {"SET session_preload_libraries = 'evil';", "SET session_preload_libraries", "SET"},
    {"SET local_preload_libraries TO 'evil';", "SET local_preload_libraries", "SET"},
    {"ALTER DATABASE mastodon SET session_preload_libraries = 'evil';", "ALTER DATABASE SET",
     "setting session_preload_libraries"},
    {"ALTER FUNCTION public.f() SET \"local_preload_libraries\" = 'evil';", "ALTER FUNCTION",
     "setting local_preload_libraries"},
    {"SET work_mem = '1GB';", "SET work_mem", "setting pg_dump does not write"},
    {"SET my.var = 'x';", "SET my", "custom setting"},
    {"SET ROLE postgres;", "SET ROLE", "SET ROLE"},
    {"SET SESSION AUTHORIZATION 'postgres';", "SET SESSION AUTHORIZATION",
     "SET SESSION AUTHORIZATION"},
    {"CREATE SUBSCRIPTION s CONNECTION 'host=evil' PUBLICATION p;", "CREATE SUBSCRIPTION",
     "other servers"},
    {"ALTER SUBSCRIPTION s ENABLE;", "ALTER SUBSCRIPTION", "other servers"},
    {"CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw;", "CREATE SERVER", "other servers"},
    {"CREATE USER MAPPING FOR PUBLIC SERVER s OPTIONS (user 'x');", "CREATE USER MAPPING",
     "other servers"},
    {"CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION public.f();",
     "CREATE EVENT TRIGGER", "CREATE EVENT TRIGGER"},
    {"CREATE EXTENSION adminpack;", "CREATE EXTENSION adminpack", "not in the allowed"},
    {"CREATE EXTENSION IF NOT EXISTS dblink WITH SCHEMA public;", "CREATE EXTENSION dblink",
     "not in the allowed"},
    {"CREATE EXTENSION pg_trgm CASCADE;", "CREATE EXTENSION pg_trgm", "CASCADE"},
    {"CREATE LANGUAGE plperlu;", "CREATE LANGUAGE", "plperlu"},
    {"CREATE ROLE evil SUPERUSER LOGIN PASSWORD 'x';", "CREATE ROLE", "outside the globals"},
    {"ALTER ROLE postgres PASSWORD 'x';", "ALTER ROLE", "outside the globals"},
    {"DROP ROLE mastodon;", "DROP ROLE", "outside the globals"},
    {"GRANT pg_execute_server_program TO mastodon;", "GRANT role", "pg_execute_server_program"},
    {"GRANT mastodon TO evil;", "GRANT role", "outside the globals"},
    {"CREATE TABLESPACE t LOCATION '/tmp';", "CREATE TABLESPACE", "outside the globals"},
    {"GRANT SET ON PARAMETER work_mem TO PUBLIC;", "GRANT ON PARAMETER", "outside the globals"},
    {"COMMENT ON ROLE postgres IS 'x';", "COMMENT ON ROLE", "outside the globals"},
    {"ALTER DATABASE mastodon RENAME TO x;", "ALTER DATABASE", "RENAME"},
    {"DROP DATABASE mastodon WITH (FORCE);", "DROP DATABASE", "with options"},
    {"CREATE TABLE public.t AS SELECT * FROM pg_authid;", "CREATE TABLE AS", "runs a query"},
    {"INSERT INTO public.t SELECT * FROM pg_authid;", "INSERT", "something else than VALUES"},
    {"INSERT INTO public.t VALUES (now());", "INSERT INTO ... VALUES", "not literals"},
    {"UPDATE pg_authid SET rolsuper = true;", "UPDATE", "not a statement pg_dump writes"},
    {"DELETE FROM public.t;", "DELETE", "not a statement pg_dump writes"},
    {"TRUNCATE public.t;", "TRUNCATE", "not a statement pg_dump writes"},
    {"CALL public.p();", "CALL", "not a statement pg_dump writes"},
    {"CHECKPOINT;", "CHECKPOINT", "not a statement pg_dump writes"},
    {"VACUUM FULL;", "VACUUM", "not a statement pg_dump writes"},
    {"WITH x AS (SELECT 1) SELECT * FROM x;", "WITH", "not a statement pg_dump writes"},
    {"ROLLBACK;", "ROLLBACK", "not a statement pg_dump writes"},
    {"SET standard_conforming_strings = on; SELECT 1;", "statement", "several statements"},
    {"SELECT 'unterminated", "statement", "unterminated"},
    {"CREATE TEMP TABLE t (x int);", "CREATE TEMP", "TEMPORARY"},
    {"IMPORT FOREIGN SCHEMA s FROM SERVER x INTO public;", "IMPORT", "not a statement"},
    {"SELECT pg_catalog.binary_upgrade_set_next_pg_type_oid('1'::pg_catalog.oid);",
     "SELECT pg_catalog.binary_upgrade_set_next_pg_type_oid", "query pg_dump does not write"},
};

TEST(ClassifyStatementTest, RefusedKinds) {
  for (const RefusedCase& r : kRefused) {
    StatementClass c = Db(r.sql);
    EXPECT_FALSE(c.allowed) << r.sql;
    EXPECT_EQ(c.kind, r.kind) << r.sql;
    EXPECT_THAT(c.refusal, HasSubstr(r.refusal)) << r.sql;
  }
}

TEST(ClassifyStatementTest, PrivilegedRoleAttributesNeedTheOption) {
  for (const char* attr : {"SUPERUSER", "REPLICATION", "BYPASSRLS"}) {
    std::string sql = std::string("ALTER ROLE evil WITH ") + attr + " LOGIN;";
    StatementClass c = Globals(sql);
    EXPECT_FALSE(c.allowed) << sql;
    EXPECT_EQ(c.refusal, std::string("role attribute ") + attr);
    EXPECT_TRUE(Globals(sql, /*privileged=*/true).allowed) << sql;
  }
  EXPECT_TRUE(Globals("ALTER ROLE m WITH NOSUPERUSER NOREPLICATION NOBYPASSRLS;").allowed);
  EXPECT_FALSE(Globals("CREATE ROLE evil WITH SUPERUSER;").allowed);
  // Membership in the predefined roles is refused in the globals too.
  EXPECT_FALSE(Globals("GRANT pg_read_server_files TO m;").allowed);
  EXPECT_FALSE(Globals("GRANT \"pg_write_server_files\" TO m;").allowed);
}

TEST(ClassifyStatementTest, NamesInCommentsAndStringsOfOtherStatementsAreNotCalls) {
  EXPECT_TRUE(Db("COMMENT ON TABLE public.t IS 'calls pg_read_file';").allowed);
  EXPECT_TRUE(Db("CREATE TABLE public.t (x int) /* pg_ls_dir */; -- lo_import").allowed);
  EXPECT_TRUE(Db("INSERT INTO public.t VALUES ('COPY x FROM PROGRAM ''y''');").allowed);
}

TEST(ClassifyStatementTest, DatabaseNamed) {
  EXPECT_EQ(Db("DROP DATABASE IF EXISTS \"Live\";").database, "Live");
  EXPECT_EQ(Db("ALTER DATABASE other OWNER TO x;").database, "other");
  EXPECT_EQ(Db("GRANT CONNECT ON DATABASE other TO x;").database, "other");
  EXPECT_EQ(Db("COMMENT ON DATABASE other IS 'x';").database, "other");
  EXPECT_EQ(Db("ALTER ROLE r IN DATABASE other SET work_mem = 1;").database, "other");
  EXPECT_EQ(Db("CREATE TABLE public.database (x int);").database, "");
}

struct PasswordCase {
  const char* sql;
  const char* stripped;
};

const PasswordCase kPasswords[] = {
    {"ALTER ROLE m WITH LOGIN PASSWORD 'SCRAM-SHA-256$4096:abc';", "ALTER ROLE m WITH LOGIN;"},
    {"ALTER ROLE m WITH LOGIN PASSWORD  'x';", "ALTER ROLE m WITH LOGIN;"},
    {"ALTER ROLE m LOGIN password\n'x' VALID UNTIL 'infinity';",
     "ALTER ROLE m LOGIN VALID UNTIL 'infinity';"},
    {"ALTER ROLE m WITH LOGIN PASSWORD $$x'y$$;", "ALTER ROLE m WITH LOGIN;"},
    {"ALTER ROLE m WITH LOGIN PASSWORD $p$x$p$;", "ALTER ROLE m WITH LOGIN;"},
    {"ALTER ROLE m WITH LOGIN PASSWORD E'x\\'y';", "ALTER ROLE m WITH LOGIN;"},
    {"ALTER ROLE m WITH LOGIN ENCRYPTED PASSWORD 'md5abc';", "ALTER ROLE m WITH LOGIN;"},
    {"ALTER ROLE m WITH LOGIN UNENCRYPTED PASSWORD 'x';", "ALTER ROLE m WITH LOGIN;"},
    {"ALTER ROLE m WITH PASSWORD NULL LOGIN;", "ALTER ROLE m WITH LOGIN;"},
    {"CREATE ROLE m PASSWORD 'a' LOGIN PASSWORD 'b';", "CREATE ROLE m LOGIN;"},
    {"ALTER ROLE m WITH LOGIN PASSWORD U&'x';", "ALTER ROLE m WITH LOGIN;"},
    {"ALTER ROLE m /* PASSWORD 'x' */ WITH LOGIN;", nullptr},
    {"COMMENT ON ROLE m IS ' PASSWORD ''x''';", nullptr},
};

TEST(ClassifyStatementTest, PasswordClausesInAnyQuoting) {
  for (const PasswordCase& p : kPasswords) {
    StatementClass c = Globals(p.sql);
    ASSERT_TRUE(c.allowed) << p.sql << ": " << c.refusal;
    std::string sql = p.sql;
    EXPECT_EQ(StripPasswordClauses(c, &sql), p.stripped != nullptr) << p.sql;
    EXPECT_EQ(sql, p.stripped != nullptr ? p.stripped : p.sql);
  }
}

TEST(ClassifyStatementTest, ExtraExtensionsWidenTheList) {
  ClassifyOptions o;
  EXPECT_FALSE(ClassifyStatement("CREATE EXTENSION postgis;", o).allowed);
  o.extra_extensions.insert("postgis");
  EXPECT_TRUE(ClassifyStatement("CREATE EXTENSION postgis;", o).allowed);
}

TEST(ClassifyStatementTest, StandardConformingStringsOffChangesTheTokens) {
  // With standard_conforming_strings off, 'a\' is not a complete string:
  // the quote after the backslash is escaped.
  ClassifyOptions o;
  o.standard_conforming_strings = false;
  StatementClass c = ClassifyStatement("COMMENT ON TABLE t IS 'a\\'; COPY t FROM PROGRAM 'x';", o);
  EXPECT_FALSE(c.allowed);
  EXPECT_EQ(c.refusal, "unterminated string, identifier or comment");
  // And with it on, the same text is two statements in one.
  EXPECT_FALSE(Db("COMMENT ON TABLE t IS 'a\\'; COPY t FROM PROGRAM 'x';").allowed);
}

// pg_dump 17 writes "-- dummy" as the definition (and drop statement) of its
// BLOB METADATA entries: a comment alone is no statement to refuse; text
// after the last ';' that is cut off inside a quote still is one.
TEST(SplitStatementsTest, CommentsAloneAreNoStatement) {
  EXPECT_THAT(SplitStatements("-- dummy"), ::testing::IsEmpty());
  EXPECT_THAT(SplitStatements("SELECT 1;\n/* trailing */ -- note\n"),
              ::testing::ElementsAre("SELECT 1;"));
  EXPECT_THAT(SplitStatements("SELECT 1; LOAD 'x'"),
              ::testing::ElementsAre("SELECT 1;", "LOAD 'x'"));
  EXPECT_THAT(SplitStatements("SELECT 1; COPY x TO PROGRAM 'rm"),
              ::testing::ElementsAre("SELECT 1;", "COPY x TO PROGRAM 'rm"));
}

}  // namespace
}  // namespace mastodon_restore
