// Duplicates under the dump's own unique indexes, against a real PostgreSQL:
// a pg_dump of a Mastodon-shaped database whose data was loaded without its
// unique indexes, with the index definitions added to the dump (as a source
// whose indexes a collation change corrupted would dump). The load finishes
// everything else, the report names each index with its keys, ids and
// counts, the swap is refused and the live database untouched; with
// repair_duplicates the rules of `tootctl maintenance fix-duplicates` are
// applied and the restore succeeds. Also amcheck, where the server has it.
#include "agent/database/duplicates.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/common/status_macros.h"
#include "agent/database/database_restore.h"
#include "agent/database/index_check.h"
#include "agent/database/pg_connection.h"
#include "agent/inventory/inspector.h"
#include "tests/harness/scripted_pg.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::MakeTempDir;
using ::mastodon_restore::testing::RemoveTree;
using ::mastodon_restore::testing::StatusIs;
using ::mastodon_restore::testing::TestPostgres;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
namespace v1 = ::mastodon::restore::v1;

// The source: accounts (two local "alice"s, two copies of a remote account
// with one public key), statuses (two with one uri, of one account; a reply
// to the second; a status of the older remote copy), favourites.
constexpr char kSchema[] = R"sql(
CREATE TABLE accounts (id bigint PRIMARY KEY, username varchar NOT NULL, domain varchar,
  public_key text NOT NULL DEFAULT '', updated_at timestamp NOT NULL);
CREATE TABLE statuses (id bigint PRIMARY KEY, uri varchar, text text NOT NULL DEFAULT '',
  account_id bigint NOT NULL REFERENCES accounts ON DELETE CASCADE, in_reply_to_id bigint);
CREATE TABLE favourites (id bigint PRIMARY KEY, account_id bigint NOT NULL,
  status_id bigint NOT NULL REFERENCES statuses ON DELETE CASCADE);
CREATE UNIQUE INDEX index_favourites_on_account_id_and_status_id
  ON favourites (account_id, status_id);
CREATE TABLE notes (id bigint, body text);
CREATE TABLE conversations (id bigint);
INSERT INTO accounts VALUES
  (1, 'alice', NULL, '', '2024-01-01'), (2, 'Alice', NULL, '', '2024-01-02'),
  (3, 'bob', 'remote.example', 'KEY', '2020-01-01'),
  (4, 'BOB', 'Remote.Example', 'KEY', '2021-01-01'), (5, 'carol', NULL, '', '2024-01-01');
INSERT INTO statuses VALUES (10, 'https://x.example/1', 'first', 1, NULL),
  (11, 'https://x.example/1', 'copy', 1, NULL), (12, 'https://x.example/2', '', 5, NULL),
  (13, NULL, '', 5, NULL), (14, NULL, '', 5, NULL), (15, NULL, 'reply', 5, 11),
  (16, 'https://remote.example/1', '', 3, NULL);
INSERT INTO favourites VALUES (100, 5, 11), (101, 5, 10), (102, 1, 11);
INSERT INTO notes VALUES (1, 'same'), (2, 'same'), (3, 'other');
INSERT INTO conversations VALUES (7), (7), (8);
)sql";

// Post-data entries as pg_dump writes them.
std::string Entry(const std::string& name, const std::string& type, const std::string& sql) {
  return absl::StrCat("--\n-- Name: ", name, "; Type: ", type, "; Schema: public; Owner: -\n--\n\n",
                      sql, "\n\n");
}

const std::string kCoveredIndexes =
    Entry("accounts index_accounts_on_username_and_domain_lower", "INDEX",
          "CREATE UNIQUE INDEX index_accounts_on_username_and_domain_lower ON public.accounts "
          "USING btree (lower((username)::text), COALESCE(lower((domain)::text), ''::text));") +
    Entry("statuses index_statuses_on_uri", "INDEX",
          "CREATE UNIQUE INDEX index_statuses_on_uri ON public.statuses USING btree (uri "
          "text_pattern_ops) WHERE (uri IS NOT NULL);");

// A table fix-duplicates does not cover, and a primary key a foreign key
// depends on.
const std::string kUncoveredIndexes =
    Entry("notes index_notes_on_body", "INDEX",
          "CREATE UNIQUE INDEX index_notes_on_body ON public.notes USING btree (body);") +
    Entry("conversations conversations_pkey", "CONSTRAINT",
          "ALTER TABLE ONLY public.conversations\n    ADD CONSTRAINT conversations_pkey PRIMARY "
          "KEY (id);") +
    Entry("notes fk_notes_conversation", "FK CONSTRAINT",
          "ALTER TABLE ONLY public.notes\n    ADD CONSTRAINT fk_notes_conversation FOREIGN KEY "
          "(id) REFERENCES public.conversations(id);");

class DuplicatesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pg = TestPostgres::Start();
    ASSERT_OK(pg);
    pg_ = std::move(*pg);
    auto dir = MakeTempDir("mr-duplicates-test-");
    ASSERT_OK(dir);
    work_ = *dir;
    ASSERT_OK(pg_->Exec("CREATE DATABASE source"));
    ASSERT_OK(pg_->Exec(kSchema, "source"));
    // The live database the restore would replace.
    ASSERT_OK(pg_->Exec("CREATE DATABASE live"));
    ASSERT_OK(
        pg_->Exec("CREATE TABLE marker (v text); INSERT INTO marker VALUES ('live')", "live"));
  }
  void TearDown() override { RemoveTree(work_); }

  // pg_dump of the source with `indexes` added at the end of its post-data.
  std::string WriteDump(const std::string& name, const std::string& indexes) {
    CommandSpec spec;
    spec.argv = {pg_->bin_dir() + "/pg_dump", "-d", pg_->ConnInfo("source")};
    spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
    spec.timeout = absl::Minutes(2);
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    std::string dump = r.ok() ? r->stdout_text : "";
    const size_t end = dump.find("--\n-- PostgreSQL database dump complete");
    EXPECT_NE(end, std::string::npos);
    dump.insert(end, indexes);
    const std::string path = absl::StrCat(work_, "/", name);
    std::ofstream(path, std::ios::binary) << dump;
    return path;
  }

  absl::StatusOr<DatabaseRestoreResult> Restore(const std::string& path, int jobs, bool repair,
                                                DatabaseRestoreResult* staged_out = nullptr) {
    DatabaseRestoreRequest r;
    r.source_path = path;
    r.source.allowed_roots = {work_};
    r.conninfo = pg_->ConnInfo();
    r.database = "live";
    r.operation_id = absl::StrCat("op", ++ops_);
    r.jobs = jobs;
    r.repair_duplicates = repair;
    ASSIGN_OR_RETURN(DumpToRestore dump,
                     DetectDumpToRestore(path, "", "", r.source, InspectOptions(), runner_.get()));
    r.dump = dump.dump;
    // The steps of RestoreDatabase, keeping what the staging found.
    ASSIGN_OR_RETURN(DatabaseRestoreResult result, StageDatabase(r, runner_.get(), env_.get()));
    absl::Status s = VerifyStaged(r, &result);
    if (s.ok()) s = CheckStagedBeforeSwap(r, &result);
    if (staged_out != nullptr) *staged_out = result;
    RETURN_IF_ERROR(s);
    RETURN_IF_ERROR(SwapInStaged(r, env_.get(), &result));
    return result;
  }

  std::string Query(const std::string& sql, const std::string& db = "live") {
    auto v = pg_->QueryValue(sql, db);
    EXPECT_OK(v);
    return v.ok() ? *v : "";
  }

  std::vector<std::string> Databases() {
    std::vector<std::string> out;
    std::string all =
        Query("SELECT string_agg(datname, ' ' ORDER BY datname) FROM pg_database", "postgres");
    for (absl::string_view d : absl::StrSplit(all, ' ')) out.emplace_back(d);
    return out;
  }

  void ExpectLiveUntouchedAndNoStaging() {
    EXPECT_EQ(Query("SELECT string_agg(v, ',') FROM marker"), "live");
    EXPECT_EQ(Query("SELECT count(*) FROM pg_class WHERE relname = 'accounts'"), "0");
    for (const std::string& db : Databases()) {
      EXPECT_EQ(db.find("__restore_"), std::string::npos) << db;
      EXPECT_EQ(db.find("__previous_"), std::string::npos) << db;
    }
  }

  std::unique_ptr<TestPostgres> pg_;
  std::string work_;
  int ops_ = 0;
  std::unique_ptr<Env> env_ = NewPosixEnv();
  std::unique_ptr<CommandRunner> runner_ = NewPosixCommandRunner();
};

TEST(ParseUniqueKeyTest, IndexesAndConstraintsAsPgDumpWritesThem) {
  auto k = ParseUniqueKey(
      "CREATE UNIQUE INDEX index_accounts_on_username_and_domain_lower ON public.accounts USING "
      "btree (lower((username)::text), COALESCE(lower((domain)::text), ''::text));");
  ASSERT_OK(k);
  EXPECT_EQ(k->name, "index_accounts_on_username_and_domain_lower");
  EXPECT_EQ(k->table, "public.accounts");
  EXPECT_THAT(k->columns,
              ElementsAre("lower((username)::text)", "COALESCE(lower((domain)::text), ''::text)"));
  k = ParseUniqueKey(
      "CREATE UNIQUE INDEX i ON ONLY public.t USING btree (\"Name\" COLLATE \"C\" "
      "text_pattern_ops DESC NULLS LAST, ((a + b))) INCLUDE (c) NULLS NOT DISTINCT WITH "
      "(fillfactor='90') WHERE (a > 0);");
  ASSERT_OK(k);
  EXPECT_THAT(k->columns, ElementsAre("\"Name\" COLLATE \"C\"", "((a + b))"));
  EXPECT_TRUE(k->nulls_not_distinct);
  EXPECT_EQ(k->predicate, "(a > 0)");
  k = ParseUniqueKey("ALTER TABLE ONLY public.users\n    ADD CONSTRAINT u UNIQUE (email, x);");
  ASSERT_OK(k);
  EXPECT_EQ(k->name, "u");
  EXPECT_THAT(k->columns, ElementsAre("email", "x"));
  EXPECT_FALSE(k->nulls_not_distinct);
  k = ParseUniqueKey("ALTER TABLE ONLY public.t ADD CONSTRAINT t_pkey PRIMARY KEY (id);");
  ASSERT_OK(k);
  EXPECT_THAT(k->columns, ElementsAre("id"));
  EXPECT_THAT(ParseUniqueKey("CREATE INDEX i ON t (a);"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseUniqueKey("ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0);"),
              StatusIs(absl::StatusCode::kInvalidArgument));
  // maintenance.rb's rules are found by table and key.
  EXPECT_NE(RepairRuleFor("statuses", {"uri"}), "");
  EXPECT_NE(RepairRuleFor("tags", {"lower((name)::text)"}), "");
  EXPECT_EQ(RepairRuleFor("notes", {"body"}), "");
  EXPECT_EQ(RepairRuleFor("statuses", {"url"}), "");
}

// Refused: every other table and index loaded in staging, each violated
// index reported with its keys, ids and counts; then repaired as
// fix-duplicates would, and swapped in. Serial and parallel loads alike.
TEST_F(DuplicatesTest, RefusedThenRepairedAsFixDuplicatesWould) {
  const std::string dump = WriteDump("covered.sql", kCoveredIndexes);
  for (int jobs : {1, 3}) {
    SCOPED_TRACE(absl::StrCat(jobs, " jobs"));
    DatabaseRestoreResult staged;
    auto refused = Restore(dump, jobs, /*repair=*/false, &staged);
    EXPECT_THAT(refused,
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         AllOf(HasSubstr("refusing the swap"),
                               HasSubstr("public.index_accounts_on_username_and_domain_lower on "
                                         "public.accounts: 2 duplicated keys, 4 rows"),
                               HasSubstr("public.index_statuses_on_uri on public.statuses: 1 "
                                         "duplicated key, 2 rows"),
                               HasSubstr("--repair-duplicates"))));
    ExpectLiveUntouchedAndNoStaging();
    // Everything else loaded: all rows, the other unique index built.
    EXPECT_EQ(staged.load.table_rows["public.accounts"], 5);
    EXPECT_EQ(staged.load.table_rows["public.statuses"], 7);
    EXPECT_TRUE(staged.verification.passed());
    const v1::PreSwapChecks& c = staged.pre_swap;
    EXPECT_FALSE(c.passed());
    ASSERT_EQ(c.duplicates_size(), 2);
    const v1::DuplicateFinding& accounts = c.duplicates(0);
    EXPECT_EQ(accounts.index(), "public.index_accounts_on_username_and_domain_lower");
    EXPECT_THAT(accounts.key(), ElementsAre("lower((username)::text)",
                                            "COALESCE(lower((domain)::text), ''::text)"));
    EXPECT_THAT(accounts.error(), HasSubstr("could not create unique index"));
    EXPECT_NE(accounts.repair_rule(), "");
    ASSERT_EQ(accounts.keys_size(), 2);
    EXPECT_THAT(accounts.keys(0).values(), ElementsAre("alice", ""));
    EXPECT_EQ(accounts.keys(0).rows(), 2);
    EXPECT_THAT(accounts.keys(0).row_ids(), ElementsAre("1", "2"));
    EXPECT_THAT(accounts.keys(1).values(), ElementsAre("bob", "remote.example"));
    EXPECT_THAT(accounts.keys(1).row_ids(), ElementsAre("3", "4"));
    const v1::DuplicateFinding& statuses = c.duplicates(1);
    EXPECT_EQ(statuses.predicate(), "(uri IS NOT NULL)");
    ASSERT_EQ(statuses.keys_size(), 1);  // the NULL uris are not duplicates
    EXPECT_THAT(statuses.keys(0).values(), ElementsAre("https://x.example/1"));
    EXPECT_THAT(statuses.keys(0).row_ids(), ElementsAre("10", "11"));
    EXPECT_THAT(c.dependent_statements(), IsEmpty());

    // Repaired: fix-duplicates' order is statuses, then accounts.
    auto repaired = Restore(dump, jobs, /*repair=*/true);
    ASSERT_OK(repaired);
    const v1::PreSwapChecks& r = repaired->pre_swap;
    EXPECT_TRUE(r.passed());
    EXPECT_THAT(r.duplicates(), IsEmpty());
    std::vector<std::string> rows;
    for (const v1::RepairedRow& row : r.repaired_rows()) {
      rows.push_back(absl::StrCat(row.table(), " ", row.id(), ": ", row.action()));
    }
    EXPECT_THAT(rows,
                ElementsAre("favourites 11: 1 favourites.status_id moved to 10",
                            "statuses 11: 1 statuses.in_reply_to_id moved to 10",
                            "statuses 11: removed", "accounts 1: renamed to alice_1",
                            "statuses 3: 1 statuses.account_id moved to 4", "accounts 3: removed"));
    EXPECT_EQ(r.repaired_row_count(), 6);
    // What maintenance.rb leaves: the newest local "alice" unchanged, the
    // other renamed; the remote copies merged into the most recently
    // updated; the status duplicate merged into the lowest id (the
    // favourite that would collide stays, and goes with its status).
    EXPECT_EQ(Query("SELECT string_agg(id || ':' || username, ',' ORDER BY id) FROM accounts"),
              "1:alice_1,2:Alice,4:BOB,5:carol");
    EXPECT_EQ(Query("SELECT string_agg(id || ':' || account_id || ':' || "
                    "coalesce(in_reply_to_id::text, '-'), ',' ORDER BY id) FROM statuses"),
              "10:1:-,12:5:-,13:5:-,14:5:-,15:5:10,16:4:-");
    EXPECT_EQ(Query("SELECT string_agg(id || ':' || account_id || ':' || status_id, ',' ORDER BY "
                    "id) FROM favourites"),
              "101:5:10,102:1:10");
    // The indexes exist and hold.
    EXPECT_EQ(Query("SELECT count(*) FROM pg_index WHERE indisunique AND indisvalid AND "
                    "indexrelid::regclass::text IN ('index_accounts_on_username_and_domain_lower',"
                    " 'index_statuses_on_uri')"),
              "2");
    // Back to the start for the next round.
    ASSERT_OK(pg_->Exec("DROP DATABASE live"));
    ASSERT_OK(pg_->Exec(absl::StrCat("DROP DATABASE \"", repaired->previous_database, "\"")));
    ASSERT_OK(pg_->Exec("CREATE DATABASE live"));
    ASSERT_OK(
        pg_->Exec("CREATE TABLE marker (v text); INSERT INTO marker VALUES ('live')", "live"));
  }
}

// A table fix-duplicates does not cover stays refused, repair or not, and a
// foreign key on a failed primary key is listed as not run.
TEST_F(DuplicatesTest, TablesFixDuplicatesDoesNotCoverStayRefused) {
  const std::string dump = WriteDump("uncovered.sql", kUncoveredIndexes);
  for (int jobs : {1, 2}) {
    for (bool repair : {false, true}) {
      SCOPED_TRACE(absl::StrCat(jobs, " jobs, repair ", repair));
      DatabaseRestoreResult staged;
      EXPECT_THAT(Restore(dump, jobs, repair, &staged),
                  StatusIs(absl::StatusCode::kFailedPrecondition,
                           AllOf(HasSubstr("violates 2 unique indexes"),
                                 HasSubstr("public.index_notes_on_body on public.notes: 1 "
                                           "duplicated key, 2 rows"),
                                 HasSubstr("public.conversations_pkey on public.conversations"),
                                 HasSubstr("1 statement(s) depending on them were not run"))));
      ExpectLiveUntouchedAndNoStaging();
      const v1::PreSwapChecks& c = staged.pre_swap;
      ASSERT_EQ(c.duplicates_size(), 2);
      EXPECT_EQ(c.duplicates(0).repair_rule(), "");
      EXPECT_THAT(c.duplicates(1).keys(0).row_ids(), ElementsAre("(0,1)", "(0,2)"));
      EXPECT_THAT(c.dependent_statements(), ElementsAre(HasSubstr("fk_notes_conversation")));
      EXPECT_THAT(c.repaired_rows(), IsEmpty());
    }
  }
}

// amcheck where the server has it (Debian's 15 ships it in contrib): every
// btree index checked, the extension gone again;
// a server without it says so.
TEST_F(DuplicatesTest, AmcheckChecksEveryBtreeIndexWhereTheServerHasIt) {
  auto conn = PgConnection::Connect(pg_->ConnInfo("source"));
  ASSERT_OK(conn);
  auto checked = CheckBtreeIndexes(conn->get());
  ASSERT_OK(checked);
  EXPECT_TRUE(checked->available());
  EXPECT_EQ(checked->indexes_checked(), 4);  // three primary keys, the favourites index
  EXPECT_THAT(checked->failures(), IsEmpty());
  EXPECT_EQ(Query("SELECT count(*) FROM pg_extension WHERE extname = 'amcheck'", "source"), "0");
  EXPECT_EQ(Query("SELECT count(*) FROM pg_namespace WHERE nspname = 'mr_amcheck'", "source"), "0");
  // A role that may not create it (not a superuser) is told so, not failed.
  ASSERT_OK(pg_->Exec("CREATE ROLE plain LOGIN"));
  ASSERT_OK(pg_->Exec("CREATE DATABASE plaindb OWNER plain"));
  auto plain = PgConnection::Connect(pg_->ConnInfo("plaindb") + " user=plain");
  ASSERT_OK(plain);
  auto refused = CheckBtreeIndexes(plain->get());
  ASSERT_OK(refused);
  EXPECT_FALSE(refused->available());
  EXPECT_THAT(refused->message(), HasSubstr("could not be created by the connecting role"));
  // A server without amcheck (the snap's) says so and checks nothing.
  testing::PgScript script;
  script.Exec("SET search_path = pg_catalog, pg_temp")
      .Query("SELECT count(*) FROM pg_catalog.pg_available_extensions WHERE name = 'amcheck'",
             testing::ScalarRow("0"));
  testing::ScriptedPgSession session(&script);
  auto none = CheckBtreeIndexes(&session);
  ASSERT_OK(none);
  EXPECT_FALSE(none->available());
  EXPECT_EQ(none->indexes_checked(), 0);
  EXPECT_THAT(none->message(), HasSubstr("amcheck is not available"));
}

}  // namespace
}  // namespace mastodon_restore
