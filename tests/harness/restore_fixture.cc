#include "tests/harness/restore_fixture.h"

#include <fstream>
#include <regex>
#include <utility>

#include "agent/common/status_macros.h"
#include "agent/database/local_cluster.h"
#include "agent/inventory/inspector.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace testing {

std::string WithoutRestrictKeys(const std::string& dump) {
  return std::regex_replace(dump, std::regex("\\\\(un)?restrict [A-Za-z0-9]+\\n"), "");
}

RestoreFixture::RestoreFixture(std::string fixture_dir) : fixture_dir_(std::move(fixture_dir)) {}

void RestoreFixture::SetUp() {
  ASSERT_TRUE(std::ifstream(fixture_dir_ + "/READY").good()) << "fixtures missing";
  auto pg = TestPostgres::Start();
  ASSERT_OK(pg);
  pg_ = std::move(*pg);
  ASSERT_OK(pg_->Exec("CREATE ROLE mastodon LOGIN"));
  auto dir = MakeTempDir("mr-restore-test-");
  ASSERT_OK(dir);
  work_ = *dir;
}

void RestoreFixture::TearDown() {
  if (!work_.empty()) RemoveTree(work_);
}

DatabaseRestoreRequest RestoreFixture::Request(const std::string& source,
                                               const std::string& database) {
  DatabaseRestoreRequest r;
  r.source_path = source;
  r.source.allowed_roots = {fixture_dir_, work_};
  r.conninfo = pg_->ConnInfo();
  r.database = database;
  r.operation_id = "op1";
  return r;
}

absl::StatusOr<DatabaseRestoreResult> RestoreFixture::Restore(const DatabaseRestoreRequest& r,
                                                              const std::string& member,
                                                              const std::string& source_db) {
  DatabaseRestoreRequest request = r;
  InspectOptions inspect;
  inspect.pg_restore_majors =
      InstalledPostgresVersions(env_.get(), request.postgres_root, "pg_restore");
  ASSIGN_OR_RETURN(DumpToRestore dump, DetectDumpToRestore(r.source_path, member, source_db,
                                                           r.source, inspect, runner_.get()));
  request.dump = dump.dump;
  request.cluster_database = dump.cluster_database;
  return RestoreDatabase(request, runner_.get(), env_.get());
}

std::string RestoreFixture::Tool(std::vector<std::string> argv, const std::string& stdin_data) {
  if (argv[0].front() != '/') argv[0] = pg_->bin_dir() + "/" + argv[0];
  CommandSpec spec;
  spec.argv = argv;
  spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
  spec.stdin_data = stdin_data;
  spec.timeout = absl::Minutes(5);
  auto r = runner_->Run(spec, nullptr);
  EXPECT_OK(r);
  if (!r.ok()) return "";
  EXPECT_EQ(r->exit_code, 0) << argv[0] << ": " << r->stderr_text;
  return r->stdout_text;
}

std::string RestoreFixture::Dump(const std::string& db) {
  return WithoutRestrictKeys(Tool({"pg_dump", "-d", pg_->ConnInfo(db)}));
}

}  // namespace testing
}  // namespace mastodon_restore
