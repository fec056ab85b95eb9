// A gtest fixture for the database-restore integration tests: a real
// PostgreSQL 15 with Mastodon's `mastodon` login role, a scratch directory,
// the POSIX Env and CommandRunner, and the steps those tests repeat
// (a restore request, detect-then-restore, the server's own tools, a
// comparable pg_dump).
#ifndef MR_TESTS_HARNESS_RESTORE_FIXTURE_H_
#define MR_TESTS_HARNESS_RESTORE_FIXTURE_H_

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/common/env.h"
#include "agent/common/subprocess.h"
#include "agent/database/database_restore.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace testing {

// `dump` without the per-run `\restrict <key>` / `\unrestrict <key>` lines
// of pg_dump 17.6+/18, so that two dumps of equal databases compare equal.
std::string WithoutRestrictKeys(const std::string& dump);

class RestoreFixture : public ::testing::Test {
 protected:
  // `fixture_dir` holds the dumps made by make_dump_fixtures (its READY file
  // says they are complete); restores may read it and the scratch directory.
  explicit RestoreFixture(std::string fixture_dir);

  // Starts the server, creates the `mastodon` role and the scratch directory
  // (work_). A subclass that overrides SetUp calls this first.
  void SetUp() override;
  void TearDown() override;

  // A request restoring `source` into `database` on the test server, reading
  // only under the fixture and scratch directories.
  DatabaseRestoreRequest Request(const std::string& source, const std::string& database);

  // Detects the dump (`member` of the source; for a pg_dumpall dump the
  // database `source_db`, else Mastodon's), then restores it with env_ and
  // runner_.
  absl::StatusOr<DatabaseRestoreResult> Restore(const DatabaseRestoreRequest& r,
                                                const std::string& member = "",
                                                const std::string& source_db = "");

  // Runs a tool of the server's version (argv[0] is its name in the
  // server's bin directory) or another by its absolute path and returns its
  // stdout; fails the test when it fails.
  std::string Tool(std::vector<std::string> argv, const std::string& stdin_data = "");

  // pg_dump of the test server's database `db`, without the restrict keys.
  std::string Dump(const std::string& db);

  const std::string fixture_dir_;
  std::unique_ptr<TestPostgres> pg_;
  std::string work_;
  std::unique_ptr<Env> env_ = NewPosixEnv();
  std::unique_ptr<CommandRunner> runner_ = NewPosixCommandRunner();
};

}  // namespace testing
}  // namespace mastodon_restore

#endif  // MR_TESTS_HARNESS_RESTORE_FIXTURE_H_
