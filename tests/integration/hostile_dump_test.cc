// A corpus of hostile dumps against a real PostgreSQL 15: each case puts
// one statement pg_dump never writes into a real dump (plain, cluster, or
// archive) and asserts that the restore is refused at the statement's line
// and that nothing outside changed: the live database's content, the
// databases and roles of the server, postgresql.auto.conf, and the file
// system. Also: every statement of the fixture dumps passes the classifier.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <regex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/common/status_macros.h"
#include "agent/database/database_restore.h"
#include "agent/database/local_cluster.h"
#include "agent/database/pg_connection.h"
#include "agent/database/sql_splitter.h"
#include "agent/dump/statement_classifier.h"
#include "agent/inventory/inspector.h"
#include "tests/harness/restore_fixture.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::RestoreFixture;
using ::mastodon_restore::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

const std::string kDir = MR_FIXTURE_DIR;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// Every statement of the fixture dumps (pg_dump and pg_dumpall 15 of a
// Mastodon-shaped database) is allowed, in its context.
TEST(FixtureDumpsTest, EveryStatementPassesTheClassifier) {
  ASSERT_TRUE(std::ifstream(kDir + "/READY").good()) << "fixtures missing";
  for (const char* name : {"plain.sql", "plain_create.sql", "hard/plain.sql", "cluster.sql",
                           "globals.sql", "snap/database.sql"}) {
    SCOPED_TRACE(name);
    std::string text = ReadFile(kDir + "/" + name);
    ASSERT_FALSE(text.empty());
    const bool cluster = text.find("PostgreSQL database cluster dump") != std::string::npos;
    SqlSplitter splitter;
    std::vector<SqlItem> items;
    int64_t line_no = 0;
    bool in_copy = false;
    bool globals = cluster;
    int checked = 0;
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      absl::string_view line(text.data() + pos, nl - pos);
      pos = nl + 1;
      ++line_no;
      if (in_copy) {
        if (line == "\\.") in_copy = false;
        continue;
      }
      if (cluster && absl::StartsWith(line, "-- Database \"")) globals = false;
      items.clear();
      splitter.FeedLine(line, line_no, &items);
      for (const SqlItem& item : items) {
        if (item.kind != SqlItem::Kind::kStatement) continue;
        ClassifyOptions options;
        options.context = globals ? StatementContext::kGlobals : StatementContext::kDatabase;
        // The loader checks role attributes only for the roles it creates
        // (pg_dumpall always holds the bootstrap superuser).
        options.allow_privileged_roles = globals;
        StatementClass c = ClassifyStatement(item.text, options);
        EXPECT_TRUE(c.allowed) << "line " << item.line << ": " << item.text
                               << "\n  refused: " << c.refusal;
        ++checked;
        if (c.kind == "COPY FROM stdin") in_copy = true;
      }
    }
    EXPECT_GT(checked, 3);
  }
}

class HostileDumpTest : public RestoreFixture {
 protected:
  HostileDumpTest() : RestoreFixture(kDir) {}

  void SetUp() override {
    RestoreFixture::SetUp();
    if (HasFatalFailure()) return;
    ::chmod(work_.c_str(), 0777);  // the server may write here if a statement escapes
    ASSERT_OK(Restore(Request(kDir + "/plain.sql", "mastodon_production")));
    ASSERT_OK(
        pg_->Exec("INSERT INTO accounts VALUES (99, 'live-marker', NULL)", "mastodon_production"));
    live_before_ = Dump("mastodon_production");
    roles_before_ = Roles();
    databases_before_ = Databases();
    auto_conf_before_ = ReadFile(AutoConf());
    ASSERT_FALSE(auto_conf_before_.empty());
    plain_ = ReadFile(kDir + "/plain.sql");
    ASSERT_FALSE(plain_.empty());
  }
  std::string AutoConf() { return pg_->cluster()->data_dir() + "/postgresql.auto.conf"; }

  // Each restore a new operation, one connection (the order statements run in
  // is the dump's).
  DatabaseRestoreRequest Request(const std::string& source, const std::string& database) {
    DatabaseRestoreRequest r = RestoreFixture::Request(source, database);
    r.operation_id = absl::StrCat("op", ++operations_);
    r.jobs = 1;
    return r;
  }

  std::vector<std::string> Column(const std::string& sql) {
    auto conn = PgConnection::Connect(pg_->ConnInfo());
    EXPECT_OK(conn);
    std::vector<std::string> out;
    if (!conn.ok()) return out;
    auto rows = (*conn)->Query(sql);
    EXPECT_OK(rows);
    if (!rows.ok()) return out;
    for (const auto& row : rows->rows) out.push_back(row[0].value_or("NULL"));
    return out;
  }
  std::vector<std::string> Roles() {
    return Column(
        "SELECT rolname || ' ' || rolsuper || rolreplication || rolbypassrls || "
        "coalesce(rolpassword, '-') || coalesce(array_to_string(setconfig, ','), '') "
        "FROM pg_authid LEFT JOIN pg_db_role_setting ON setrole = pg_authid.oid AND "
        "setdatabase = 0 ORDER BY 1");
  }
  std::vector<std::string> Databases() {
    return Column(
        "SELECT datname || ' ' || datallowconn || coalesce(array_to_string(setconfig, ','), '') "
        "FROM pg_database LEFT JOIN pg_db_role_setting ON setdatabase = pg_database.oid "
        "ORDER BY 1");
  }

  // Nothing outside changed.
  void ExpectNothingChanged() {
    EXPECT_EQ(Dump("mastodon_production"), live_before_);
    EXPECT_EQ(Roles(), roles_before_);
    EXPECT_EQ(Databases(), databases_before_);
    EXPECT_EQ(ReadFile(AutoConf()), auto_conf_before_);
    EXPECT_FALSE(Exists(Pwned())) << Pwned();
  }

  // A file a hostile statement tries to create.
  std::string Pwned() { return work_ + "/pwned"; }

  // plain.sql with `sql` inserted before its completion trailer (every
  // table exists and is loaded by then), written to the work directory;
  // `*line`: the line of the statement `sql` ends with.
  std::string WithStatement(const std::string& name, const std::string& sql, int* line) {
    std::string text = plain_;
    size_t at = text.find("\n--\n-- PostgreSQL database dump complete");
    EXPECT_NE(at, std::string::npos);
    text.insert(at + 1, sql + "\n");
    *line = 2 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n')) +
            static_cast<int>(std::count(sql.begin(), sql.end(), '\n'));
    return Write(name, text);
  }
  std::string Write(const std::string& name, const std::string& text) {
    std::string path = work_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }

  // Restores `path` (as the live database's replacement) and expects it
  // refused at `line`, naming `what`, with nothing changed.
  void ExpectRefused(const std::string& path, int line, const std::string& what,
                     const std::string& source_db = "") {
    auto r = Restore(Request(path, "mastodon_production"), "", source_db);
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                            AllOf(HasSubstr(absl::StrCat("at line ", line)),
                                  HasSubstr("statement refused"), HasSubstr(what))));
    ExpectNothingChanged();
  }

  void ExpectPlainRefused(const std::string& sql, const std::string& what) {
    SCOPED_TRACE(sql);
    int line = 0;
    std::string path = WithStatement(absl::StrCat("case", ++cases_, ".sql"), sql, &line);
    ExpectRefused(path, line, what);
  }

  std::string plain_;
  std::string live_before_;
  std::vector<std::string> roles_before_;
  std::vector<std::string> databases_before_;
  std::string auto_conf_before_;
  int operations_ = 0;
  int cases_ = 0;
};

TEST_F(HostileDumpTest, CopyFromProgram) {
  ExpectPlainRefused(absl::StrCat("COPY public.accounts FROM PROGRAM 'touch ", Pwned(), "';"),
                     "COPY FROM PROGRAM");
}

TEST_F(HostileDumpTest, CopyToProgramAndToAServerFile) {
  ExpectPlainRefused(absl::StrCat("COPY public.accounts TO PROGRAM 'tee ", Pwned(), "';"),
                     "COPY TO PROGRAM");
  ExpectPlainRefused(absl::StrCat("COPY public.accounts TO '", Pwned(), "';"),
                     "COPY TO a server file");
  ExpectPlainRefused("COPY public.accounts FROM '/etc/passwd';", "COPY FROM a server file");
}

TEST_F(HostileDumpTest, AlterSystem) {
  ExpectPlainRefused("ALTER SYSTEM SET work_mem = '77MB';", "ALTER SYSTEM");
}

TEST_F(HostileDumpTest, DropTheLiveDatabase) {
  ExpectPlainRefused("DROP DATABASE mastodon_production WITH (FORCE);", "DROP DATABASE");
  ExpectPlainRefused("DROP DATABASE mastodon_production;", "DROP DATABASE mastodon_production");
}

TEST_F(HostileDumpTest, StatementsOnAnotherDatabase) {
  // plain_create.sql names its own database; others are refused.
  std::string text = ReadFile(kDir + "/plain_create.sql");
  size_t at = text.find("\nCREATE TABLE ");
  ASSERT_NE(at, std::string::npos);
  text.insert(at + 1, "ALTER DATABASE postgres SET work_mem = '77MB';\n");
  int line = 2 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
  ExpectRefused(Write("other_db.sql", text), line, "on another database ('postgres')");
}

// Settings of the restored database would apply to the agent's own
// superuser sessions in it: reported, never applied.
TEST_F(HostileDumpTest, DatabaseAndRoleSettingsAreNotApplied) {
  int line = 0;
  std::string path = WithStatement(
      "settings.sql",
      "CREATE SCHEMA evil;\nALTER DATABASE mastodon_production SET search_path = evil, "
      "pg_catalog;\nALTER ROLE postgres IN DATABASE mastodon_production SET search_path = evil;",
      &line);
  auto r = Restore(Request(path, "mastodon_production"));
  ASSERT_OK(r);
  EXPECT_THAT(r->warnings, ::testing::Contains(HasSubstr("not applied: ALTER DATABASE")));
  EXPECT_THAT(r->warnings, ::testing::Contains(HasSubstr("not applied: ALTER ROLE postgres")));
  EXPECT_THAT(Column("SELECT count(*) FROM pg_db_role_setting"), ::testing::ElementsAre("0"));
  EXPECT_EQ(ReadFile(AutoConf()), auto_conf_before_);
  EXPECT_EQ(Roles(), roles_before_);
}

TEST_F(HostileDumpTest, LargeObjectFileFunctions) {
  ExpectPlainRefused("SELECT pg_catalog.lo_import('/etc/passwd');", "lo_import");
  ExpectPlainRefused(absl::StrCat("SELECT pg_catalog.lo_export(1, '", Pwned(), "');"), "lo_export");
}

TEST_F(HostileDumpTest, ServerFileFunctionInAViewOrADefault) {
  ExpectPlainRefused(
      "CREATE VIEW public.leak AS SELECT pg_catalog.pg_read_file('/etc/passwd') AS x;",
      "function pg_read_file");
  ExpectPlainRefused("CREATE TABLE public.leak (x text DEFAULT pg_ls_dir('.'));",
                     "function pg_ls_dir");
}

TEST_F(HostileDumpTest, LoadAndLibrarySettings) {
  ExpectPlainRefused("LOAD 'auto_explain';", "LOAD");
  ExpectPlainRefused("SET session_preload_libraries = 'auto_explain';",
                     "session_preload_libraries");
  ExpectPlainRefused("ALTER DATABASE mastodon_production SET local_preload_libraries = 'x';",
                     "local_preload_libraries");
}

TEST_F(HostileDumpTest, DoBlockAndArbitrarySelect) {
  ExpectPlainRefused(
      absl::StrCat("DO $$BEGIN EXECUTE 'COPY (SELECT 1) TO ''", Pwned(), "'''; END$$;"),
      "DO block");
  ExpectPlainRefused("SELECT count(*) FROM pg_authid;", "SELECT");
}

TEST_F(HostileDumpTest, FunctionEscapingThroughSetConfig) {
  ExpectPlainRefused(
      "CREATE FUNCTION public.esc() RETURNS text LANGUAGE plpgsql AS $f$ BEGIN PERFORM "
      "set_config('session_authorization', 'postgres', false); RETURN ''; END $f$;",
      "function body naming set_config");
  ExpectPlainRefused("SELECT pg_catalog.set_config('session_authorization', 'postgres', false);",
                     "set_config of a setting other than search_path");
}

TEST_F(HostileDumpTest, UntrustedLanguagesAndExtensions) {
  ExpectPlainRefused(
      "CREATE FUNCTION public.sys(cstring) RETURNS int LANGUAGE c AS '/lib/x86_64-linux-gnu/"
      "libc.so.6', 'system';",
      "LANGUAGE c");
  ExpectPlainRefused("CREATE EXTENSION IF NOT EXISTS dblink WITH SCHEMA public;",
                     "CREATE EXTENSION dblink");
}

TEST_F(HostileDumpTest, SubscriptionServerAndEventTrigger) {
  ExpectPlainRefused(
      "CREATE SUBSCRIPTION s CONNECTION 'host=127.0.0.1 dbname=postgres' PUBLICATION p WITH "
      "(connect = false);",
      "CREATE SUBSCRIPTION");
  ExpectPlainRefused("CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw;", "CREATE SERVER");
  ExpectPlainRefused(
      "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION pg_catalog.now();",
      "CREATE EVENT TRIGGER");
}

TEST_F(HostileDumpTest, RolesInADatabaseDump) {
  ExpectPlainRefused("CREATE ROLE evil SUPERUSER LOGIN PASSWORD 'x';", "CREATE ROLE");
  ExpectPlainRefused("ALTER ROLE mastodon SUPERUSER;", "ALTER ROLE");
  ExpectPlainRefused("GRANT pg_execute_server_program TO mastodon;",
                     "predefined role pg_execute_server_program");
  ExpectPlainRefused("SET ROLE postgres;", "SET ROLE");
  ExpectPlainRefused("SET SESSION AUTHORIZATION postgres;", "SET SESSION AUTHORIZATION");
}

TEST_F(HostileDumpTest, StatementHiddenBehindQuoting) {
  // The splitter and the classifier agree on where strings end: a COPY
  // after a string holding a quote and a semicolon is still seen.
  ExpectPlainRefused(
      absl::StrCat("COMMENT ON TABLE public.accounts IS E'it\\'s; fine';\nCOPY public.accounts ",
                   "TO PROGRAM $$touch ", Pwned(), "$$;"),
      "COPY TO PROGRAM");
}

// Cluster dumps: the globals create missing roles; privileged attributes,
// whatever the password's quoting, are refused and the roles created before
// are dropped again.
class HostileClusterDumpTest : public HostileDumpTest {
 protected:
  // cluster.sql with `sql` after its CREATE ROLE mastodon (globals).
  std::string WithGlobals(const std::string& sql, int* line) {
    std::string text = ReadFile(kDir + "/cluster.sql");
    size_t at = text.find("CREATE ROLE mastodon;\n");
    EXPECT_NE(at, std::string::npos);
    at = text.find('\n', at) + 1;
    text.insert(at, sql + "\n");
    *line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
    return Write(absl::StrCat("cluster", ++cases_, ".sql"), text);
  }
  void ExpectGlobalsRefused(const std::string& sql, const std::string& what) {
    SCOPED_TRACE(sql);
    int line = 0;
    std::string path = WithGlobals(sql, &line);
    // The statement at `line`: the last one inserted.
    line += static_cast<int>(std::count(sql.begin(), sql.end(), '\n'));
    ExpectRefused(path, line, what, "mastodon_production");
  }
};

TEST_F(HostileClusterDumpTest, SuperuserRoleWithEachPasswordQuoting) {
  for (const char* password : {"PASSWORD 'x'", "PASSWORD  'x'", "PASSWORD $$x$$",
                               "PASSWORD $p$x$p$", "ENCRYPTED PASSWORD E'x'", "PASSWORD NULL"}) {
    ExpectGlobalsRefused(
        absl::StrCat("CREATE ROLE evil;\nALTER ROLE evil WITH SUPERUSER LOGIN ", password, ";"),
        "role attribute SUPERUSER");
  }
  ExpectGlobalsRefused("CREATE ROLE evil;\nALTER ROLE evil WITH REPLICATION LOGIN;",
                       "role attribute REPLICATION");
  ExpectGlobalsRefused("CREATE ROLE evil;\nALTER ROLE evil WITH BYPASSRLS LOGIN;",
                       "role attribute BYPASSRLS");
}

TEST_F(HostileClusterDumpTest, PredefinedRoleGrantAndLibrarySettingInTheGlobals) {
  ExpectGlobalsRefused("CREATE ROLE evil;\nGRANT pg_execute_server_program TO evil;",
                       "pg_execute_server_program");
  ExpectGlobalsRefused("CREATE ROLE evil;\nALTER ROLE evil SET session_preload_libraries = 'x';",
                       "session_preload_libraries");
  ExpectGlobalsRefused("SET session_preload_libraries = 'x';", "session_preload_libraries");
}

TEST_F(HostileClusterDumpTest, RolesCreatedByAFailedRestoreAreDropped) {
  // The globals create a role; the database section then holds a COPY FROM
  // PROGRAM: the restore fails and the role is gone again.
  int line = 0;
  std::string text = ReadFile(WithGlobals("CREATE ROLE newcomer;", &line));
  size_t section = text.find("-- Database \"mastodon_production\" dump");
  ASSERT_NE(section, std::string::npos);
  size_t at = text.find("\nCREATE TABLE ", section);
  ASSERT_NE(at, std::string::npos);
  text.insert(at + 1, absl::StrCat("COPY public.accounts FROM PROGRAM 'touch ", Pwned(), "';\n"));
  int copy_line = 2 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
  ExpectRefused(Write("cluster_late.sql", text), copy_line, "COPY FROM PROGRAM",
                "mastodon_production");
}

TEST_F(HostileClusterDumpTest, PasswordsInAnyQuotingAreStripped) {
  // A role without privileged attributes is created, but without the
  // password the dump gives it, whatever the quoting.
  int line = 0;
  std::string path = WithGlobals(
      "CREATE ROLE quiet;\nALTER ROLE quiet WITH LOGIN PASSWORD  $q$secret$q$;\n"
      "CREATE ROLE quieter;\nALTER ROLE quieter WITH LOGIN ENCRYPTED PASSWORD E'se\\'cret';",
      &line);
  ASSERT_OK(Restore(Request(path, "mastodon_production"), "", "mastodon_production"));
  EXPECT_THAT(Column("SELECT rolname || ' ' || rolcanlogin || coalesce(rolpassword, '-') FROM "
                     "pg_authid WHERE rolname IN ('quiet', 'quieter') ORDER BY 1"),
              ::testing::ElementsAre("quiet true-", "quieter true-"));
}

// Archives: the TOC is read and classified before the staging database is
// created, in the custom and the directory format; the error names the
// entry.
TEST_F(HostileDumpTest, HostileEntryOfAnArchive) {
  ASSERT_OK(pg_->Exec("CREATE DATABASE evil"));
  ASSERT_OK(pg_->Exec("CREATE TABLE t (a int)", "evil"));
  ASSERT_OK(pg_->Exec(
      absl::StrCat("CREATE VIEW v AS SELECT pg_read_file('", work_, "/nothing') AS x"), "evil"));
  std::string path = work_ + "/evil.dump";
  Tool({"pg_dump", "-Fc", "-d", pg_->ConnInfo("evil"), "-f", path});
  std::string dir = work_ + "/evil_dir";
  Tool({"pg_dump", "-Fd", "-d", pg_->ConnInfo("evil"), "-f", dir});
  ASSERT_OK(pg_->Exec("DROP DATABASE evil"));
  databases_before_ = Databases();
  for (const std::string& source : {path, dir}) {
    SCOPED_TRACE(source);
    auto r = Restore(Request(source, "mastodon_production"));
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                            AllOf(HasSubstr("TOC entry "), HasSubstr("(VIEW public.v)"),
                                  HasSubstr("statement refused: function pg_read_file"))));
    ExpectNothingChanged();
  }
}

}  // namespace
}  // namespace mastodon_restore

namespace mastodon_restore {
namespace {

// The dump loads as a temporary role without superuser rights: what a
// function of the dump builds at run time (beyond the classifier's sight)
// meets the role's bounds. Each case is a column default or a trigger that
// runs during COPY.
class LoadRoleTest : public HostileDumpTest {
 protected:
  // plain.sql plus a function running `body` (plpgsql), called by a
  // column default (`trigger` false) or a BEFORE INSERT trigger while
  // COPY loads a row.
  std::string WithTrap(const std::string& body, bool trigger) {
    std::string sql =
        absl::StrCat("CREATE FUNCTION public.trap() RETURNS ", trigger ? "trigger" : "text",
                     " LANGUAGE plpgsql AS $f$ BEGIN ", body, "; RETURN ", trigger ? "NEW" : "''",
                     "; END $f$;\nCREATE TABLE public.trapped (a int",
                     trigger ? "" : ", b text DEFAULT public.trap()", ");\n");
    if (trigger) {
      absl::StrAppend(&sql,
                      "CREATE TRIGGER t BEFORE INSERT ON public.trapped FOR EACH ROW "
                      "EXECUTE FUNCTION public.trap();\n");
    }
    absl::StrAppend(&sql, "COPY public.trapped (a) FROM stdin;\n1\n\\.\n");
    int line = 0;
    return WithStatement(absl::StrCat("trap", ++cases_, ".sql"), sql, &line);
  }
  void ExpectEscapeFails(const std::string& body, bool trigger) {
    SCOPED_TRACE(body);
    auto r = Restore(Request(WithTrap(body, trigger), "mastodon_production"));
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                            ::testing::AnyOf(HasSubstr("permission denied"),
                                             HasSubstr("must be superuser"))));
    ExpectNothingChanged();
    EXPECT_EQ(LoadRoles(), "0");
  }
  std::string LoadRoles() {
    auto v = pg_->QueryValue("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'mr\\_load\\_%'");
    return v.ok() ? *v : v.status().ToString();
  }
  // plain.sql with `statements` at its end, restored into a new database
  // `fresh` owned by the app's role.
  absl::StatusOr<DatabaseRestoreResult> RestoreFreshWith(const std::string& name,
                                                         const std::string& statements) {
    std::string text = plain_;
    size_t at = text.find("\n--\n-- PostgreSQL database dump complete");
    if (at == std::string::npos) return absl::InternalError("plain.sql has no end marker");
    text.insert(at + 1, statements);
    DatabaseRestoreRequest r = Request(Write(name, text), "fresh");
    r.owner = "mastodon";
    return Restore(r);
  }
};

TEST_F(LoadRoleTest, SessionAuthorizationBuiltAtRunTimeIsDenied) {
  const std::string touch = absl::StrCat("EXECUTE format('COPY (SELECT 1) TO ' || 'PROGRAM %L', ",
                                         "'touch ", Pwned(), "')");
  // The name of the superuser, and the statement, built at run time.
  ExpectEscapeFails(absl::StrCat("EXECUTE 'SET SESSION ' || 'AUTHORIZATION ' || "
                                 "quote_ident(chr(112) || 'ostgres'); ",
                                 touch),
                    /*trigger=*/false);
  ExpectEscapeFails(absl::StrCat("EXECUTE format('SELECT %s(%L, %L, false)', 'set_' || 'config', "
                                 "'session_' || 'authorization', chr(112) || 'ostgres'); ",
                                 touch),
                    /*trigger=*/true);
  ExpectEscapeFails("EXECUTE 'SET ROLE ' || quote_ident(chr(112) || 'ostgres')", true);
  // Nor the role the objects are given to: the load role is a member of
  // no role (it could change that role's password).
  ExpectEscapeFails("EXECUTE 'SET ROLE ' || 'mastodon'", false);
}

TEST_F(LoadRoleTest, ServerProgramsFilesAndSettingsAreDenied) {
  ExpectEscapeFails(
      absl::StrCat("EXECUTE format('COPY (SELECT 1) TO ' || 'PROGRAM %L', 'touch ", Pwned(), "')"),
      false);
  ExpectEscapeFails(absl::StrCat("EXECUTE format('COPY (SELECT 1) TO %L', '", Pwned(), "')"), true);
  // (ALTER SYSTEM cannot run in a function at all; every case compares the
  // settings file.)
  ExpectEscapeFails("EXECUTE 'SELECT pg_' || 'read_file(''PG_VERSION'')'", false);
  ExpectEscapeFails("EXECUTE 'CREATE ROLE ' || 'sneaky SUPER' || 'USER'", true);
}

TEST_F(LoadRoleTest, AnOwnerChangeCarryingAnotherActionIsNotRunAsSuperuser) {
  // Owner changes to ordinary roles run as superuser after the load; one
  // that also adds a column whose default calls the dump's function would
  // have the superuser run that function. It runs as the load role instead
  // (and fails there: the role cannot give its objects away).
  int line = 0;
  std::string path = WithStatement(
      "owner-action.sql",
      absl::StrCat("CREATE FUNCTION public.trap() RETURNS text LANGUAGE plpgsql AS $f$ BEGIN "
                   "EXECUTE format('COPY (SELECT 1) TO ' || 'PROGRAM %L', 'touch ",
                   Pwned(),
                   "'); RETURN ''; END $f$;\nCREATE TABLE public.trapped (a int);\n"
                   "COPY public.trapped (a) FROM stdin;\n1\n\\.\n"
                   "ALTER TABLE public.trapped ADD COLUMN b text DEFAULT public.trap(), "
                   "OWNER TO mastodon;"),
      &line);
  auto r = Restore(Request(path, "mastodon_production"));
  EXPECT_THAT(
      r, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(absl::StrCat("at line ", line))));
  ExpectNothingChanged();
  EXPECT_EQ(LoadRoles(), "0");
}

TEST_F(LoadRoleTest, ObjectsBelongToTheOwnerAndTheRoleIsGone) {
  // A new database owned by the app's role; the dump gives one table to
  // the superuser: it goes to the owner instead.
  auto restored = RestoreFreshWith(
      "owners.sql",
      "CREATE TABLE public.extra (a int);\nALTER TABLE public.extra OWNER TO postgres;\n"
      "CREATE TABLE public.mine (a int);\n");
  ASSERT_OK(restored);
  EXPECT_THAT(restored->warnings,
              ::testing::Contains(HasSubstr("objects are not given to role \"postgres\"")));
  EXPECT_THAT(restored->warnings,
              ::testing::Contains(HasSubstr("the dump loads as the temporary role 'mr_load_")));
  EXPECT_EQ(
      *pg_->QueryValue("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'fresh'"),
      "mastodon");
  EXPECT_EQ(*pg_->QueryValue("SELECT string_agg(DISTINCT pg_get_userbyid(relowner), ',') FROM "
                             "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
                             "n.nspname = 'public'",
                             "fresh"),
            "mastodon");
  EXPECT_EQ(LoadRoles(), "0");
}

TEST_F(LoadRoleTest, DefaultPrivilegesOfAnOrdinaryRoleAreAppliedAfterTheLoad) {
  // pg_dump writes "ALTER DEFAULT PRIVILEGES FOR ROLE <owner>" for the
  // owner's future objects; the load role is no member of it, so the
  // superuser applies it after the load. For a superuser it is refused
  // (what the superuser creates next is not the dump's business).
  ASSERT_OK(pg_->Exec("CREATE ROLE app_reader"));
  auto restored = RestoreFreshWith(
      "defaults.sql",
      "ALTER DEFAULT PRIVILEGES FOR ROLE mastodon IN SCHEMA public GRANT SELECT ON TABLES TO "
      "app_reader;\n"
      "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT ON TABLES TO "
      "app_reader;\n");
  ASSERT_OK(restored);
  EXPECT_THAT(restored->warnings,
              ::testing::Contains(HasSubstr("objects are not given to role \"postgres\"")));
  EXPECT_EQ(*pg_->QueryValue("SELECT string_agg(pg_get_userbyid(defaclrole) || ':' || "
                             "array_to_string(defaclacl, ','), ' ') FROM pg_default_acl",
                             "fresh"),
            "mastodon:app_reader=r/mastodon");
  EXPECT_EQ(LoadRoles(), "0");
}

// A server as Debian configures it: no password login on the socket
// (peer there; here reject, as peer refuses any role without an OS user),
// scram-sha-256 over TCP. The load role logs in over 127.0.0.1; when TCP
// refuses it too the restore fails before anything is created, naming the
// pg_hba line, unless the operator allows the superuser load.
class LoadRoleHbaTest : public LoadRoleTest {
 protected:
  void UseHba(const std::string& host_method) {
    const std::string hba = pg_->cluster()->data_dir() + "/pg_hba.conf";
    std::ofstream(hba, std::ios::trunc) << "local all postgres trust\nlocal all all reject\n"
                                        << "host all all 127.0.0.1/32 " << host_method
                                        << "\nhost all all ::1/128 " << host_method << "\n";
    ASSERT_OK(pg_->QueryValue("SELECT pg_reload_conf()"));
    // The postmaster reloads on SIGHUP: wait until a socket login of
    // another role is refused (bounded; no fixed sleep).
    bool reloaded = false;
    for (int i = 0; i < 2000 && !reloaded; ++i) {
      auto params = ConnInfoParams(pg_->ConnInfo());
      ASSERT_OK(params);
      params->emplace_back("user", "mastodon");
      reloaded = !PgConnection::ConnectParams(*params).ok();
      if (!reloaded) ::usleep(5000);
    }
    ASSERT_TRUE(reloaded);
  }
};

TEST_F(LoadRoleHbaTest, PasswordLoginOverTcpWhenTheSocketRefuses) {
  UseHba("scram-sha-256");
  DatabaseRestoreRequest r = Request(kDir + "/plain.sql", "mastodon_production");
  auto restored = Restore(r);
  ASSERT_OK(restored);
  EXPECT_THAT(restored->warnings, ::testing::Contains(HasSubstr("logged in over 127.0.0.1")));
  EXPECT_EQ(LoadRoles(), "0");
  EXPECT_EQ(*pg_->QueryValue("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = "
                             "'statuses'",
                             "mastodon_production"),
            "mastodon");
}

TEST_F(LoadRoleHbaTest, NoPasswordLoginFailsBeforeAnythingIsCreated) {
  UseHba("reject");
  auto r = Restore(Request(kDir + "/plain.sql", "mastodon_production"));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kFailedPrecondition,
                          AllOf(HasSubstr("host all all 127.0.0.1/32 scram-sha-256"),
                                HasSubstr("--allow-superuser-load"))));
  ExpectNothingChanged();
  EXPECT_EQ(LoadRoles(), "0");

  DatabaseRestoreRequest allowed = Request(kDir + "/plain.sql", "mastodon_production");
  allowed.allow_superuser_load = true;
  auto restored = Restore(allowed);
  ASSERT_OK(restored);
  EXPECT_THAT(restored->warnings,
              ::testing::Contains(HasSubstr("loaded as superuser (--allow-superuser-load)")));
  EXPECT_EQ(LoadRoles(), "0");
}

}  // namespace
}  // namespace mastodon_restore
