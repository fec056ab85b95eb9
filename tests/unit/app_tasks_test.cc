// app_tasks' reading of schema_migrations, against the scripted PostgreSQL
// (the integration tests run the same code against a real server and the
// recording fakes of the app's commands).
#include "agent/app/app_tasks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/harness/fake_env.h"
#include "tests/harness/recording_reporter.h"
#include "tests/harness/scripted_pg.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace testing {
namespace {

namespace v1 = ::mastodon::restore::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kMigrationsTableSql[] = "SELECT to_regclass('public.schema_migrations') IS NOT NULL";
constexpr char kMigrationsSql[] = "SELECT version FROM public.schema_migrations";

// A runtime with only a db:migrate command and, optionally, readable code.
class FakeRuntime : public Runtime {
 public:
  std::string code_dir;
  v1::RuntimeKind kind() const override { return v1::RUNTIME_KIND_SYSTEMD; }
  std::string name() const override { return "fake"; }
  absl::StatusOr<AppDatabase> Database() const override {
    return absl::UnimplementedError("Database");
  }
  absl::StatusOr<MediaLocation> Media() const override { return absl::UnimplementedError("Media"); }
  std::vector<std::string> Services() const override { return {}; }
  std::vector<CommandSpec> ServiceCommands(bool) const override { return {}; }
  absl::StatusOr<CommandSpec> Tootctl(const std::vector<std::string>&) const override {
    return absl::UnimplementedError("Tootctl");
  }
  absl::StatusOr<CommandSpec> DbMigrate(bool skip_post_deployment) const override {
    CommandSpec spec;
    spec.argv = {"db-migrate", skip_post_deployment ? "pre" : "all"};
    return spec;
  }
  std::string EnvFilePath() const override { return ""; }
  std::string MastodonVersion() const override { return ""; }
  std::string CodeDir() const override { return code_dir; }
};

// Prints `lines` through on_line and exits with `exit_code`.
class FakeRunner : public CommandRunner {
 public:
  std::vector<std::string> lines;
  int exit_code = 0;
  std::vector<std::vector<std::string>> ran;

  absl::StatusOr<CommandResult> Run(const CommandSpec& spec, const CancelToken*) override {
    ran.push_back(spec.argv);
    for (const std::string& line : lines) spec.on_line(line, false);
    CommandResult result;
    result.exit_code = exit_code;
    return result;
  }
  absl::StatusOr<std::unique_ptr<Process>> Start(const CommandSpec&) override {
    return absl::UnimplementedError("Start");
  }
  absl::StatusOr<std::unique_ptr<ByteStream>> StartReading(const CommandSpec&,
                                                           const std::string&) override {
    return absl::UnimplementedError("StartReading");
  }
};

using ::mastodon_restore::testing::RecordingReporter;

AppDatabase Db() {
  AppDatabase db;
  db.conninfo = "host=/run/postgresql";
  db.database = "mastodon_production";
  return db;
}

class AppTasksPgTest : public ::testing::Test {
 protected:
  TaskContext Context() {
    TaskContext ctx{&runner_, &env_, nullptr, &reporter_, "migrate"};
    ctx.pg = &connector_;
    return ctx;
  }
  // The script's part for one AppliedMigrations read.
  void ExpectApplied(std::vector<std::vector<std::optional<std::string>>> versions) {
    script_.Query(kMigrationsTableSql, ScalarRow("t"))
        .Query(kMigrationsSql, Rows({"version"}, std::move(versions)));
  }

  PgScript script_;
  ScriptedPgConnector connector_{&script_};
  FakeRunner runner_;
  FakeEnv env_;
  RecordingReporter reporter_;
  FakeRuntime runtime_;
};

TEST_F(AppTasksPgTest, ReadSchemaVersionReadsTheAppDatabaseThroughTheConnector) {
  script_.Connect("mastodon_production");
  ExpectApplied({{"20240101000000"}, {"20250101000000"}, {"20230101000000"}});
  auto version = ReadSchemaVersion(Db(), &connector_);
  ASSERT_OK(version);
  EXPECT_EQ(*version, "20250101000000");
  EXPECT_THAT(script_.ran(),
              ElementsAre("connect mastodon_production", kMigrationsTableSql, kMigrationsSql));
}

TEST_F(AppTasksPgTest, ReadSchemaVersionWithoutSchemaMigrationsIsEmpty) {
  script_.Connect("mastodon_production").Query(kMigrationsTableSql, ScalarRow("f"));
  auto version = ReadSchemaVersion(Db(), &connector_);
  ASSERT_OK(version);
  EXPECT_EQ(*version, "");
}

TEST_F(AppTasksPgTest, ReadSchemaVersionReturnsTheConnectionError) {
  script_.Connect("mastodon_production",
                  absl::UnavailableError("unable to connect to PostgreSQL: no such database"));
  EXPECT_THAT(ReadSchemaVersion(Db(), &connector_),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("no such database")));
}

TEST_F(AppTasksPgTest, RunDbMigrateReadsTheVersionsBeforeAndAfter) {
  script_.Connect("mastodon_production");
  ExpectApplied({{"20240101000000"}});
  ExpectApplied({{"20240101000000"}, {"20250101000000"}});
  runner_.lines = {"== 20250101000000 AddThing: migrating =====",
                   "== 20250101000000 AddThing: migrated (0.0123s) ====="};
  auto result = RunDbMigrate(runtime_, v1::MIGRATION_PHASE_ALL, Db(), Context());
  ASSERT_OK(result);
  EXPECT_EQ(result->schema_version_before(), "20240101000000");
  EXPECT_EQ(result->schema_version_after(), "20250101000000");
  EXPECT_THAT(result->migrations(), ElementsAre("20250101000000 AddThing"));
  EXPECT_THAT(runner_.ran, ElementsAre(ElementsAre("db-migrate", "all")));
  EXPECT_TRUE(script_.done());
}

TEST_F(AppTasksPgTest, RunDbMigrateFailsWhenTheDatabaseDoesNotRecordAnAnnouncedMigration) {
  script_.Connect("mastodon_production");
  ExpectApplied({{"20240101000000"}});
  ExpectApplied({{"20240101000000"}});
  runner_.lines = {"== 20250101000000 AddThing: migrating ====="};
  EXPECT_THAT(RunDbMigrate(runtime_, v1::MIGRATION_PHASE_ALL, Db(), Context()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("announced migration 20250101000000 but schema_migrations does "
                                 "not record it")));
}

TEST_F(AppTasksPgTest, RunDbMigratePostDeploymentRefusesWhilePreDeploymentOnesArePending) {
  runtime_.code_dir = "/code";
  env_.files["/code/db/migrate/20240101000000_first.rb"] = "";
  env_.files["/code/db/migrate/20250101000000_second.rb"] = "";
  script_.Connect("mastodon_production");
  ExpectApplied({{"20240101000000"}});
  EXPECT_THAT(RunDbMigrate(runtime_, v1::MIGRATION_PHASE_POST_DEPLOYMENT, Db(), Context()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("pre-deployment migration(s) are pending (first "
                                 "20250101000000)")));
  EXPECT_THAT(runner_.ran, IsEmpty());
}

TEST_F(AppTasksPgTest, RunDbMigrateRunsNothingWhenTheDatabaseIsUnreachable) {
  script_.Connect("mastodon_production", absl::UnavailableError("unable to connect"));
  EXPECT_THAT(RunDbMigrate(runtime_, v1::MIGRATION_PHASE_ALL, Db(), Context()),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(runner_.ran, IsEmpty());
}

TEST_F(AppTasksPgTest, RunDbMigrateReturnsAQueryErrorAfterTheCommand) {
  script_.Connect("mastodon_production");
  ExpectApplied({{"20240101000000"}});
  script_.Fail(kMigrationsTableSql, absl::UnavailableError("ERROR: server closed the connection"));
  EXPECT_THAT(RunDbMigrate(runtime_, v1::MIGRATION_PHASE_ALL, Db(), Context()),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("server closed")));
  EXPECT_THAT(runner_.ran, ElementsAre(ElementsAre("db-migrate", "all")));
}

}  // namespace
}  // namespace testing
}  // namespace mastodon_restore
