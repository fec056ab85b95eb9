// End-to-end: a dump whose data violates its own unique indexes, through the
// real agent and CLI against a real PostgreSQL 15: restore refused before
// the swap (exit 5, the duplicates listed, the live database untouched),
// verify-backup failing on it, then restore --repair-duplicates swapping in
// the repaired copy.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/util/json_util.h"
#include "mastodon/restore/v1/agent_service.pb.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace e2e {
namespace {

namespace v1 = mastodon::restore::v1;
using ::testing::HasSubstr;

class DuplicatesCliTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    RequireDumpFixtures();
    StartPostgres();
  }

  // A pg_dump of accounts loaded without their unique index, with the
  // index added to the dump.
  std::string MakeDump() {
    EXPECT_OK(pg_->Exec("CREATE DATABASE source"));
    EXPECT_OK(
        pg_->Exec("CREATE TABLE accounts (id bigint PRIMARY KEY, username varchar NOT NULL, domain "
                  "varchar, public_key text NOT NULL DEFAULT '', updated_at timestamp NOT NULL);"
                  "INSERT INTO accounts VALUES (1, 'alice', NULL, '', '2024-01-01'), "
                  "(2, 'ALICE', NULL, '', '2024-01-02'), (3, 'bob', NULL, '', '2024-01-01');",
                  "source"));
    CommandSpec spec;
    spec.argv = {pg_->bin_dir() + "/pg_dump", "-d", pg_->ConnInfo("source")};
    spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
    spec.timeout = absl::Minutes(2);
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    std::string dump = r.ok() ? r->stdout_text : "";
    const size_t end = dump.find("--\n-- PostgreSQL database dump complete");
    EXPECT_NE(end, std::string::npos);
    dump.insert(end,
                "--\n-- Name: accounts index_accounts_on_username_and_domain_lower; Type: INDEX; "
                "Schema: public; Owner: -\n--\n\nCREATE UNIQUE INDEX "
                "index_accounts_on_username_and_domain_lower ON public.accounts USING btree "
                "(lower((username)::text), COALESCE(lower((domain)::text), ''::text));\n\n");
    const std::string path = dir_ + "/duplicates.sql";
    std::ofstream(path, std::ios::binary) << dump;
    return path;
  }
};

TEST_F(DuplicatesCliTest, RefusedThenRepairedAndVerifyBackupFails) {
  const std::string dump = MakeDump();
  ASSERT_OK(pg_->Exec("CREATE DATABASE mastodon_production"));
  ASSERT_OK(pg_->Exec("CREATE TABLE marker (v text); INSERT INTO marker VALUES ('live')",
                      "mastodon_production"));
  StartRestoreAgent();

  // Refused before the swap: exit 5 (precondition), every duplicate listed.
  CommandResult r = CliOnSocket(
      {"--timeout", "120s", "restore", "--db-only", "--target-db", "mastodon_production", dump});
  EXPECT_EQ(r.exit_code, 5) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("refusing the swap: the dump's data violates 1 unique "
                                       "index of its own schema"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("duplicates     public.index_accounts_on_username_and_domain_lower on "
                        "public.accounts"));
  EXPECT_THAT(r.stdout_text, HasSubstr("(alice, ): 2 rows, ids 1 2"));
  EXPECT_THAT(r.stdout_text, HasSubstr("--repair-duplicates: local: the highest id keeps"));
  EXPECT_EQ(*pg_->QueryValue("SELECT string_agg(v, ',') FROM marker", "mastodon_production"),
            "live");
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE '%__restore_%' "
                             "OR datname LIKE '%__previous_%'"),
            "0");

  // The report in JSON, through the proto.
  r = CliOnSocket({"--json", "restore", "--db-only", "--target-db", "mastodon_production", dump});
  EXPECT_EQ(r.exit_code, 5) << r.stderr_text;
  std::vector<std::string> lines = absl::StrSplit(r.stdout_text, '\n', absl::SkipEmpty());
  ASSERT_FALSE(lines.empty());
  v1::WatchOperationResponse last;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines.back(), &last).ok());
  const v1::PreSwapChecks& checks = last.operation().restore_report().pre_swap_checks();
  ASSERT_EQ(checks.duplicates_size(), 1);
  EXPECT_EQ(checks.duplicates(0).duplicate_rows(), 2);
  EXPECT_FALSE(checks.passed());

  // verify-backup learns of it too.
  r = CliOnSocket({"--timeout", "120s", "verify-backup", dump});
  EXPECT_EQ(r.exit_code, 5) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("does not restore: refusing the swap"));

  // Repaired as fix-duplicates does, then swapped in.
  r = CliOnSocket({"--timeout", "120s", "restore", "--db-only", "--repair-duplicates",
                   "--target-db", "mastodon_production", dump});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("repaired       accounts 1: renamed to alice_1"));
  EXPECT_THAT(r.stdout_text, HasSubstr("amcheck        "));
  EXPECT_EQ(*pg_->QueryValue("SELECT string_agg(id || ':' || username, ',' ORDER BY id) FROM "
                             "accounts",
                             "mastodon_production"),
            "1:alice_1,2:ALICE,3:bob");
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
