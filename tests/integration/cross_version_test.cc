// Dumps of newer PostgreSQL restored into older targets, made by real
// newer tools at test time: pg_dumpall 17 (Debian 13's) of a 17 server whose
// role memberships use the 16+ options (WITH ADMIN/INHERIT/SET ... GRANTED
// BY), and pg_dump 18 (PGlite's) of a database using 18-only syntax
// (virtual generated columns, NOT ENFORCED constraints) and 17+ builtin
// collations; and the other way, a dump as pg_dump 11 writes it (tables
// with OIDs) into 18. What a target can hold faithfully is rewritten and
// equals its source; what it cannot is refused naming the object, and the
// refused restore leaves nothing (no staging database, no created role).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/status_macros.h"
#include "agent/database/database_restore.h"
#include "agent/inventory/inspector.h"
#include "tests/harness/db_snapshot.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::DatabaseSnapshot;
using ::mastodon_restore::testing::MakeTempDir;
using ::mastodon_restore::testing::RemoveTree;
using ::mastodon_restore::testing::TestPostgres;
using ::testing::Contains;
using ::testing::HasSubstr;

const std::string kPgDumpall17 = std::string(MR_PG_CLIENT17_DIR) + "/pg_dumpall";
const std::string kPgliteDir = MR_PGLITE_DIR;
const std::string kPgliteDump = MR_PGLITE_DUMP;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class CrossVersionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = MakeTempDir("mr-xver");
    ASSERT_OK(dir);
    dir_ = *dir;
  }
  void TearDown() override { RemoveTree(dir_); }

  // Runs argv; fails the test when it fails.
  void Run(std::vector<std::string> argv) {
    CommandSpec spec;
    spec.argv = std::move(argv);
    spec.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C.UTF-8", "HOME=/tmp"};
    spec.timeout = absl::Minutes(5);
    auto r = runner_->Run(spec, nullptr);
    ASSERT_OK(r);
    ASSERT_EQ(r->exit_code, 0) << spec.argv[0] << ": " << r->stderr_text;
  }

  // pg_dumpall 17 of `src` into <dir_>/<name>.sql; its path.
  std::string DumpAll17(const TestPostgres& src, const std::string& name) {
    const std::string path = absl::StrCat(dir_, "/", name, ".sql");
    Run({kPgDumpall17, "-d", src.ConnInfo(), "-f", path});
    return path;
  }

  // A plain dump by PGlite's pg_dump 18 of `sql` run in PGlite (roles
  // mastodon and reader exist, the database is mastodon's).
  // `args`: pg_dump's options; `ext`: the dump's file name extension.
  std::string PgliteDump(const std::string& name, const std::string& sql,
                         const std::vector<std::string>& args = {},
                         const std::string& ext = ".sql") {
    const std::string setup = dir_ + "/" + name + "-setup.sql";
    std::ofstream(setup) << "CREATE ROLE mastodon; CREATE ROLE reader;"
                            " ALTER DATABASE postgres OWNER TO mastodon; SET ROLE mastodon;\n"
                         << sql;
    const std::string out = dir_ + "/" + name + ext;
    std::vector<std::string> argv = {"/usr/bin/env",
                                     "PATH=/usr/local/bin:/usr/bin:/bin",
                                     "node",
                                     kPgliteDump,
                                     kPgliteDir,
                                     setup,
                                     out};
    argv.insert(argv.end(), args.begin(), args.end());
    Run(argv);
    return out;
  }

  // Restores the plain dump `path` (for a cluster dump its database
  // `cluster_db`) into `pg` as `database`; no external command may run.
  absl::StatusOr<DatabaseRestoreResult> Restore(TestPostgres* pg, const std::string& path,
                                                const std::string& cluster_db,
                                                const std::string& database) {
    DatabaseRestoreRequest r;
    r.source_path = path;
    r.source.allowed_roots = {dir_};
    r.conninfo = pg->ConnInfo();
    r.database = database;
    r.operation_id = "op1";
    r.postgres_root = "/nonexistent/no-pg_restore-here";
    r.jobs = 2;
    InspectOptions inspect;
    inspect.target_major = pg->major();
    ASSIGN_OR_RETURN(DumpToRestore dump,
                     DetectDumpToRestore(path, "", cluster_db, r.source, inspect, runner_.get()));
    r.dump = dump.dump;
    r.cluster_database = dump.cluster_database;
    auto env = NewPosixEnv();
    return RestoreDatabase(r, runner_.get(), env.get());
  }

  // The cluster dump `path` restored into a fresh PostgreSQL `major` is
  // refused as FAILED_PRECONDITION with `message`, and nothing is left.
  void ExpectRefused(int major, const std::string& path, const std::string& message,
                     const std::vector<std::string>& roles) {
    auto target = TestPostgres::Start(major);
    ASSERT_OK(target);
    auto result = Restore(target->get(), path, "mastodon_production", "mastodon_production");
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(result.status().message()), HasSubstr(message));
    ExpectNothingLeft(target->get(), roles);
  }

  // `query`'s value on a fresh PostgreSQL `major` once the cluster dump
  // `path` is restored there ("" when the restore fails, failing the test).
  std::string ValueAfterRestore(int major, const std::string& path, const std::string& query) {
    auto target = TestPostgres::Start(major);
    EXPECT_OK(target);
    if (!target.ok()) return "";
    auto result = Restore(target->get(), path, "mastodon_production", "mastodon_production");
    EXPECT_OK(result);
    if (!result.ok()) return "";
    auto value = (*target)->QueryValue(query);
    EXPECT_OK(value);
    return value.ok() ? *value : "";
  }

  // Nothing of a refused restore is left on `pg`: no staging database, no
  // load role, none of `roles`.
  void ExpectNothingLeft(TestPostgres* pg, const std::vector<std::string>& roles) {
    auto staging =
        pg->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE '%\\_\\_restore\\_%'");
    ASSERT_OK(staging);
    EXPECT_EQ(*staging, "0");
    auto left = pg->QueryValue(absl::StrCat(
        "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'mr\\_load\\_%' OR rolname IN ('",
        absl::StrJoin(roles, "', '"), "')"));
    ASSERT_OK(left);
    EXPECT_EQ(*left, "0");
  }

  std::string dir_;
  std::unique_ptr<CommandRunner> runner_ = NewPosixCommandRunner();
};

constexpr char kMembershipsQuery[] =
    "SELECT string_agg(r.rolname || '>' || m.rolname || ' admin=' || a.admin_option, ', ' "
    "ORDER BY r.rolname, m.rolname) FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid "
    "JOIN pg_roles m ON m.oid = a.member WHERE r.rolname IN ('grp', 'reader')";

TEST_F(CrossVersionTest, PgDumpall17RoleMembershipsIntoOlderTargets) {
  auto source = TestPostgres::Start(17);
  ASSERT_OK(source);
  TestPostgres& src = **source;
  ASSERT_OK(
      src.Exec("CREATE ROLE mastodon LOGIN; CREATE ROLE grp; CREATE ROLE reader;"
               "GRANT grp TO reader WITH ADMIN OPTION; GRANT grp TO mastodon;"));
  ASSERT_OK(src.Exec("CREATE DATABASE mastodon_production OWNER mastodon"));
  ASSERT_OK(
      src.Exec("SET ROLE mastodon;"
               "CREATE TABLE schema_migrations (version varchar PRIMARY KEY);"
               "INSERT INTO schema_migrations VALUES ('20250101000000'), ('20260611150940');"
               "CREATE TABLE accounts (id bigint PRIMARY KEY, username text NOT NULL);"
               "INSERT INTO accounts SELECT g, 'user' || g FROM generate_series(1, 500) g;"
               "GRANT SELECT ON accounts TO grp;",
               "mastodon_production"));
  const std::string dump = DumpAll17(src, "cluster17");
  // What pg_dumpall 16+ writes, which 14 and 15 reject.
  ASSERT_THAT(
      ReadFile(dump),
      HasSubstr("GRANT grp TO reader WITH ADMIN OPTION, INHERIT TRUE GRANTED BY postgres;"));
  auto expected = DatabaseSnapshot(src.ConnInfo("mastodon_production"));
  ASSERT_OK(expected);
  auto memberships = src.QueryValue(kMembershipsQuery);
  ASSERT_OK(memberships);
  EXPECT_EQ(*memberships, "grp>mastodon admin=false, grp>reader admin=true");

  for (int major : {14, 15, 16}) {
    SCOPED_TRACE(absl::StrCat("into PostgreSQL ", major));
    auto target = TestPostgres::Start(major);
    ASSERT_OK(target);
    auto result = Restore(target->get(), dump, "mastodon_production", "mastodon_production");
    ASSERT_OK(result);
    EXPECT_TRUE(result->verification.passed());
    if (major <= 15) {
      EXPECT_THAT(result->load.rewrites,
                  Contains(absl::StrCat(
                      "role memberships without their INHERIT/SET options (target PostgreSQL ",
                      major, ")")));
    }
    EXPECT_EQ(*(*target)->QueryValue(kMembershipsQuery), *memberships);
    auto restored = DatabaseSnapshot((*target)->ConnInfo("mastodon_production"));
    ASSERT_OK(restored);
    EXPECT_EQ(*restored, *expected);
  }

  // A membership without inheritance has no equivalent before 16: refused,
  // naming it, and nothing is left.
  ASSERT_OK(src.Exec("CREATE ROLE auditor; GRANT grp TO auditor WITH INHERIT FALSE"));
  const std::string noinherit = DumpAll17(src, "cluster17-noinherit");
  ASSERT_THAT(ReadFile(noinherit),
              HasSubstr("GRANT grp TO auditor WITH INHERIT FALSE GRANTED BY postgres;"));
  ExpectRefused(15, noinherit,
                "role membership grp TO auditor WITH INHERIT FALSE needs PostgreSQL 16 (its member "
                "is INHERIT); the target runs 15",
                {"mastodon", "grp", "reader", "auditor"});
  EXPECT_EQ(ValueAfterRestore(16, noinherit,
                              "SELECT a.inherit_option FROM pg_auth_members a JOIN pg_roles m ON "
                              "m.oid = a.member WHERE m.rolname = 'auditor'"),
            "f");

  // Before 16 a membership inherits as its member does. A NOINHERIT
  // member's membership (INHERIT FALSE, its default) is the same on 15;
  // one that inherits all the same (INHERIT TRUE) is not, and is refused.
  ASSERT_OK(src.Exec("DROP ROLE auditor; CREATE ROLE watcher NOINHERIT; GRANT grp TO watcher"));
  const std::string watcher = DumpAll17(src, "cluster17-noinherit-member");
  ASSERT_THAT(ReadFile(watcher),
              HasSubstr("GRANT grp TO watcher WITH INHERIT FALSE GRANTED BY postgres;"));
  EXPECT_EQ(ValueAfterRestore(15, watcher,
                              "SELECT m.rolinherit::text || ' ' || count(a.roleid) FROM pg_roles m "
                              "LEFT JOIN pg_auth_members a ON a.member = m.oid AND a.roleid = "
                              "'grp'::regrole WHERE m.rolname = 'watcher' GROUP BY m.rolinherit"),
            "false 1");
  ASSERT_OK(src.Exec("REVOKE grp FROM watcher; GRANT grp TO watcher WITH INHERIT TRUE"));
  const std::string inheriting = DumpAll17(src, "cluster17-noinherit-member-inheriting");
  ExpectRefused(15, inheriting,
                "role membership grp TO watcher WITH INHERIT TRUE needs PostgreSQL 16 (its member "
                "is NOINHERIT); the target runs 15",
                {"mastodon", "grp", "reader", "watcher"});
}

// A database of the builtin locale provider (17+) keeps its provider on a
// 17+ target; an older one stages it with its libc locale and says so.
TEST_F(CrossVersionTest, BuiltinLocaleProviderDatabase) {
  auto source = TestPostgres::Start(17);
  ASSERT_OK(source);
  TestPostgres& src = **source;
  ASSERT_OK(src.Exec("CREATE ROLE mastodon LOGIN"));
  ASSERT_OK(
      src.Exec("CREATE DATABASE mastodon_production OWNER mastodon TEMPLATE template0 ENCODING "
               "'UTF8' LOCALE 'C.UTF-8' LOCALE_PROVIDER builtin BUILTIN_LOCALE 'C.UTF-8'"));
  ASSERT_OK(
      src.Exec("SET ROLE mastodon;"
               "CREATE TABLE schema_migrations (version varchar PRIMARY KEY);"
               "INSERT INTO schema_migrations VALUES ('20250101000000');"
               "CREATE TABLE statuses (id bigint PRIMARY KEY, text text);"
               "INSERT INTO statuses VALUES (1, 'é'), (2, 'Z'), (3, 'a');",
               "mastodon_production"));
  const std::string dump = DumpAll17(src, "builtin17");
  ASSERT_THAT(ReadFile(dump), HasSubstr("LOCALE_PROVIDER = builtin"));
  auto expected = DatabaseSnapshot(src.ConnInfo("mastodon_production"));
  ASSERT_OK(expected);

  for (int major : {18, 15}) {
    SCOPED_TRACE(absl::StrCat("into PostgreSQL ", major));
    auto target = TestPostgres::Start(major);
    ASSERT_OK(target);
    auto result = Restore(target->get(), dump, "mastodon_production", "mastodon_production");
    ASSERT_OK(result);
    auto provider = (*target)->QueryValue(
        "SELECT datlocprovider::text || ' ' || datcollate FROM pg_database WHERE datname = "
        "'mastodon_production'");
    ASSERT_OK(provider);
    if (major >= 17) {
      EXPECT_EQ(*provider, "b C.UTF-8");
      EXPECT_EQ(*(*target)->QueryValue(
                    "SELECT datlocale FROM pg_database WHERE datname = 'mastodon_production'"),
                "C.UTF-8");
    } else {
      EXPECT_EQ(*provider, "c C.UTF-8");
      EXPECT_THAT(result->warnings,
                  Contains(HasSubstr("the dump's database uses the builtin locale provider "
                                     "('C.UTF-8'), which PostgreSQL 15 lacks: staged with the "
                                     "libc locale 'C.UTF-8'")));
    }
    auto restored = DatabaseSnapshot((*target)->ConnInfo("mastodon_production"));
    ASSERT_OK(restored);
    EXPECT_EQ(*restored, *expected);
  }
}

TEST_F(CrossVersionTest, PgDump18SyntaxIntoOlderTargets) {
  ASSERT_EQ(::access((kPgliteDir + "/pg_dump_factory.mjs").c_str(), R_OK), 0)
      << "no PGlite pg_dump in " << kPgliteDir << ": run scripts/install-pglite (make deps)";
  // Rewritten faithfully for older targets: a virtual generated column
  // (stored there: same values) and a builtin "C" collation (libc's "C").
  const std::string rewritable = PgliteDump("rewritable", R"sql(
    CREATE COLLATION bytes (provider = builtin, locale = 'C');
    CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
    INSERT INTO schema_migrations VALUES ('20260611150940');
    CREATE TABLE t (id int PRIMARY KEY, name text COLLATE bytes,
                    twice int GENERATED ALWAYS AS (id * 2) VIRTUAL);
    INSERT INTO t (id, name) SELECT g, 'n' || g FROM generate_series(1, 300) g;
  )sql");
  const std::string text = ReadFile(rewritable);
  ASSERT_THAT(text, HasSubstr("-- Dumped by pg_dump version 18."));
  ASSERT_THAT(text, HasSubstr("twice integer GENERATED ALWAYS AS ((id * 2))\n"));
  ASSERT_THAT(text, HasSubstr("(provider = builtin, locale = 'C')"));
  for (int major : {14, 16, 17, 18}) {
    SCOPED_TRACE(absl::StrCat("into PostgreSQL ", major));
    auto target = TestPostgres::Start(major);
    ASSERT_OK(target);
    ASSERT_OK((*target)->Exec("CREATE ROLE mastodon; CREATE ROLE reader"));
    auto result = Restore(target->get(), rewritable, "", "restored");
    ASSERT_OK(result);
    EXPECT_TRUE(result->verification.passed());
    EXPECT_EQ(*(*target)->QueryValue("SELECT sum(twice) || ' ' || max(name) FROM t", "restored"),
              "90300 n99");
    EXPECT_EQ(*(*target)->QueryValue(
                  "SELECT attgenerated FROM pg_attribute WHERE attrelid = 't'::regclass AND "
                  "attname = 'twice'",
                  "restored"),
              major >= 18 ? "v" : "s");
    if (major <= 17) {
      EXPECT_THAT(result->load.rewrites,
                  Contains(absl::StrCat("virtual generated columns created STORED (target "
                                        "PostgreSQL ",
                                        major, " has no virtual ones; same values)")));
    }
    if (major <= 16) {
      EXPECT_THAT(result->load.rewrites,
                  Contains(absl::StrCat("builtin collation locale 'C' created with the libc "
                                        "provider (target PostgreSQL ",
                                        major, ")")));
      EXPECT_THAT(result->load.rewrites,
                  Contains(absl::StrCat("removed SET transaction_timeout (target PostgreSQL ",
                                        major, ")")));
    }
  }

  // Not restorable before 18: a NOT ENFORCED constraint (refused, named).
  const std::string refused = PgliteDump("refused", R"sql(
    CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
    CREATE TABLE orders (id int PRIMARY KEY, qty int);
    INSERT INTO orders VALUES (1, -5);
    ALTER TABLE orders ADD CONSTRAINT positive CHECK (qty > 0) NOT ENFORCED;
  )sql");
  {
    auto target = TestPostgres::Start(17);
    ASSERT_OK(target);
    ASSERT_OK((*target)->Exec("CREATE ROLE mastodon; CREATE ROLE reader"));
    auto result = Restore(target->get(), refused, "", "restored");
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(result.status().message()),
                HasSubstr("NOT ENFORCED constraint on public.orders needs PostgreSQL 18; the "
                          "target runs 17"));
    ExpectNothingLeft(target->get(), {});
  }
  {
    auto target = TestPostgres::Start(18);
    ASSERT_OK(target);
    ASSERT_OK((*target)->Exec("CREATE ROLE mastodon; CREATE ROLE reader"));
    ASSERT_OK(Restore(target->get(), refused, "", "restored"));
    EXPECT_EQ(*(*target)->QueryValue("SELECT conenforced FROM pg_constraint WHERE conname = "
                                     "'positive'",
                                     "restored"),
              "f");
  }
}

// A plain dump in the shape pg_dump 11 writes (no pg_dump <= 11 runs here):
// SET default_with_oids before each table, and for a table created WITH
// OIDS its COPY carries them.
std::string Pg11Dump(bool with_oids_table) {
  std::string dump =
      "--\n-- PostgreSQL database dump\n--\n\n"
      "-- Dumped from database version 11.22\n-- Dumped by pg_dump version 11.22\n\n"
      "SET statement_timeout = 0;\nSET lock_timeout = 0;\n"
      "SET idle_in_transaction_session_timeout = 0;\nSET client_encoding = 'UTF8';\n"
      "SET standard_conforming_strings = on;\n"
      "SELECT pg_catalog.set_config('search_path', '', false);\n"
      "SET check_function_bodies = false;\nSET client_min_messages = warning;\n"
      "SET row_security = off;\n\nSET default_tablespace = '';\n\n"
      "SET default_with_oids = false;\n\n"
      "--\n-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: mastodon\n--\n\n"
      "CREATE TABLE public.schema_migrations (\n    version character varying NOT NULL\n);\n\n\n"
      "ALTER TABLE public.schema_migrations OWNER TO mastodon;\n\n";
  if (with_oids_table) {
    dump +=
        "SET default_with_oids = true;\n\n"
        "--\n-- Name: legacy; Type: TABLE; Schema: public; Owner: mastodon\n--\n\n"
        "CREATE TABLE public.legacy (\n    id integer\n);\n\n\n"
        "ALTER TABLE public.legacy OWNER TO mastodon;\n\n";
  }
  dump +=
      "--\n-- Data for Name: schema_migrations; Type: TABLE DATA; Schema: public; Owner: "
      "mastodon\n--\n\n"
      "COPY public.schema_migrations (version) FROM stdin;\n20180101000000\n\\.\n\n\n";
  if (with_oids_table) {
    dump +=
        "--\n-- Data for Name: legacy; Type: TABLE DATA; Schema: public; Owner: mastodon\n--\n\n"
        "COPY public.legacy (id) WITH OIDS FROM stdin;\n16500\t1\n\\.\n\n\n";
  }
  dump +=
      "--\n-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; "
      "Owner: mastodon\n--\n\n"
      "ALTER TABLE ONLY public.schema_migrations\n"
      "    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);\n\n\n"
      "--\n-- PostgreSQL database dump complete\n--\n\n";
  return dump;
}

// pg_dump 18 --statistics: a PostgreSQL 18 target imports the planner
// statistics, as a plain dump and as a custom archive (whose tables' rows
// the workers read apart), and does not analyze the tables whose column
// statistics it imported; an older target skips them and analyzes.
TEST_F(CrossVersionTest, PgDump18StatisticsImportedInto18) {
  ASSERT_EQ(::access((kPgliteDir + "/pg_dump_factory.mjs").c_str(), R_OK), 0)
      << "no PGlite pg_dump in " << kPgliteDir << ": run scripts/install-pglite (make deps)";
  // t is analyzed at the source (its kind: 'common' 900 times, 'rare'
  // 100), u is not (PGlite has no autovacuum).
  const std::string setup = R"sql(
    CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
    INSERT INTO schema_migrations VALUES ('20260611150940');
    CREATE TABLE t (id int PRIMARY KEY, kind text);
    INSERT INTO t SELECT g, CASE WHEN g % 10 = 0 THEN 'rare' ELSE 'common' END
      FROM generate_series(1, 1000) g;
    CREATE INDEX t_kind ON t (kind);
    CREATE TABLE u (id int PRIMARY KEY);
    INSERT INTO u SELECT generate_series(1, 50);
    ANALYZE t;
  )sql";
  const std::string plain = PgliteDump("stats", setup, {"--statistics"});
  ASSERT_THAT(ReadFile(plain), HasSubstr("pg_catalog.pg_restore_attribute_stats("));
  const std::string custom = PgliteDump("stats-custom", setup, {"--statistics", "-Fc"}, ".dump");
  constexpr char kStatsQuery[] =
      "SELECT coalesce(string_agg(attname || ' ' || null_frac || ' ' || "
      "coalesce(most_common_vals::text, '-') || ' ' || coalesce(most_common_freqs::text, '-'), "
      "'; ' ORDER BY attname), 'none') FROM pg_stats WHERE schemaname = 'public' AND "
      "tablename = 't'";
  for (const std::string& dump : {plain, custom}) {
    for (int major : {15, 18}) {
      SCOPED_TRACE(absl::StrCat(dump, " into PostgreSQL ", major));
      auto target = TestPostgres::Start(major);
      ASSERT_OK(target);
      ASSERT_OK((*target)->Exec("CREATE ROLE mastodon; CREATE ROLE reader"));
      auto result = Restore(target->get(), dump, "", "restored");
      ASSERT_OK(result);
      EXPECT_TRUE(result->verification.passed());
      auto t_analyzed = (*target)->QueryValue(
          "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 't'", "restored");
      ASSERT_OK(t_analyzed);
      // u never had column statistics: analyzed wherever it lands.
      EXPECT_THAT(result->load.analyzed, Contains("public.u"));
      if (major >= 18) {
        EXPECT_THAT(result->load.statistics_imported, ::testing::ElementsAre("public.t"));
        EXPECT_THAT(result->load.analyzed, ::testing::Not(Contains("public.t")));
        EXPECT_EQ(*t_analyzed, "0");
        // The source's statistics, exactly (an ANALYZE of the restored
        // rows would give the same here; it did not run).
        EXPECT_EQ(*(*target)->QueryValue(kStatsQuery, "restored"),
                  "id 0 - -; kind 0 {common,rare} {0.9,0.1}");
        EXPECT_EQ(*(*target)->QueryValue("SELECT reltuples FROM pg_class WHERE relname = 't'",
                                         "restored"),
                  "1000");
      } else {
        EXPECT_THAT(result->load.statistics_imported, ::testing::IsEmpty());
        EXPECT_THAT(result->load.analyzed, Contains("public.t"));
        if (dump == plain) {  // (an archive's are not even read out for 15)
          EXPECT_THAT(result->load.rewrites,
                      Contains("skipped the dump's planner statistics (target PostgreSQL 15; the "
                               "restore runs ANALYZE)"));
        }
        EXPECT_EQ(*(*target)->QueryValue(kStatsQuery, "restored"),
                  "id 0 - -; kind 0 {common,rare} {0.9,0.1}");
      }
    }
  }
}

TEST_F(CrossVersionTest, Pg11TablesWithOidsIntoNewerTargets) {
  auto target = TestPostgres::Start(18);
  ASSERT_OK(target);
  ASSERT_OK((*target)->Exec("CREATE ROLE mastodon"));
  const std::string plain = dir_ + "/pg11.sql";
  std::ofstream(plain) << Pg11Dump(false);
  auto result = Restore(target->get(), plain, "", "restored");
  ASSERT_OK(result);
  EXPECT_THAT(result->load.rewrites,
              Contains("removed SET default_with_oids = false (target PostgreSQL 18: tables have "
                       "no OIDs since PostgreSQL 12)"));
  EXPECT_EQ(*(*target)->QueryValue("SELECT max(version) FROM schema_migrations", "restored"),
            "20180101000000");

  const std::string oids = dir_ + "/pg11-oids.sql";
  std::ofstream(oids) << Pg11Dump(true);
  auto refused = Restore(target->get(), oids, "", "restored_oids");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("the dump creates tables WITH OIDS (PostgreSQL <= 11; SET "
                        "default_with_oids = true before the next table): PostgreSQL 18 has no "
                        "table OIDs"));
  ExpectNothingLeft(target->get(), {});
  EXPECT_EQ(
      *(*target)->QueryValue("SELECT count(*) FROM pg_database WHERE datname = 'restored_oids'"),
      "0");
}

}  // namespace
}  // namespace mastodon_restore
