// RestoreJob's narrative with fake actions: the step table's plan and run,
// skips, cancellation at every step, failures before and after the swap,
// the app's services. Runs in milliseconds; nothing outside the process.
#include "agent/jobs/restore_job.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/status_macros.h"
#include "tests/harness/fake_env.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

namespace v1 = ::mastodon::restore::v1;
using ::mastodon_restore::testing::IsOkAndHolds;
using ::mastodon_restore::testing::StatusIs;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kLive[] = "mastodon_production";

// A runtime that runs an app with one service (and env_path, if set).
class FakeRuntime : public Runtime {
 public:
  v1::RuntimeKind kind() const override { return v1::RUNTIME_KIND_SNAP; }
  std::string name() const override { return "snap"; }
  absl::StatusOr<AppDatabase> Database() const override {
    return AppDatabase{"host=/fake", kLive, "mastodon"};
  }
  absl::StatusOr<MediaLocation> Media() const override {
    return MediaLocation{"/media", 1, 1, "", ""};
  }
  std::vector<std::string> Services() const override { return {"web"}; }
  std::vector<CommandSpec> ServiceCommands(bool) const override { return {CommandSpec()}; }
  absl::StatusOr<CommandSpec> Tootctl(const std::vector<std::string>&) const override {
    return CommandSpec();
  }
  absl::StatusOr<CommandSpec> DbMigrate(bool) const override { return CommandSpec(); }
  std::string EnvFilePath() const override { return env_path; }
  std::string MastodonVersion() const override { return "4.3.0"; }
  std::string env_path;  // "": none
  std::string CodeDir() const override { return ""; }
  absl::StatusOr<RedisStore> Redis() const override {
    if (!manages_redis) return absl::FailedPreconditionError("this runtime manages no Redis");
    return RedisStore();
  }
  bool manages_redis = false;
};

// Records every action in order; `fail` makes the named action fail and
// `cancel_in` cancels the operation while the named action runs.
class FakeActions : public RestoreActions {
 public:
  std::vector<std::string> calls;
  std::map<std::string, absl::Status> fail;
  std::string cancel_in;
  // Stage reports this many loaded bytes (0: none).
  int64_t load_bytes = 0;
  Operation* op = nullptr;
  ServerFacts server{"15.18", 15, "postgres", true, ""};
  OpenedBackup backup;
  // What other paths open as (a media source).
  std::map<std::string, OpenedBackup> other_backups;
  std::vector<std::string> opened;

  FakeActions() {
    v1::DumpInfo* dump = backup.manifest.add_dumps();
    dump->set_path("database.sql");
    dump->set_format(v1::DUMP_FORMAT_PLAIN);
    dump->set_kind(v1::DUMP_KIND_DATABASE);
    dump->set_size_bytes(1000);
    backup.manifest.mutable_media()->set_root("system");
    backup.manifest.mutable_media()->set_files(3);
    backup.manifest.mutable_media()->set_bytes(300);
  }

  absl::StatusOr<OpenedBackup> Open(const std::string& path, const SourceOptions&,
                                    const InspectOptions&) override {
    RETURN_IF_ERROR(Call("open"));
    opened.push_back(path);
    auto it = other_backups.find(path);
    return it != other_backups.end() ? it->second : backup;
  }
  absl::StatusOr<std::string> ClusterDatabase(const v1::DumpInfo& dump, const std::string&,
                                              const std::string&, const SourceOptions&,
                                              const InspectOptions&) override {
    RETURN_IF_ERROR(Call("cluster_database"));
    return dump.kind() == v1::DUMP_KIND_CLUSTER ? std::string("mastodon") : std::string();
  }
  absl::StatusOr<ServerFacts> ProbeServer(const std::string&) override {
    RETURN_IF_ERROR(Call("probe"));
    return server;
  }
  absl::StatusOr<DatabaseRestoreResult> Stage(const DatabaseRestoreRequest& r) override {
    RETURN_IF_ERROR(Call("stage"));
    staged_request = r;
    // The loader's progress, then its stop when cancelled meanwhile.
    if (load_bytes > 0 && r.progress) {
      LoadProgress p;
      p.bytes = load_bytes;
      r.progress("load", p);
      if (r.cancel != nullptr && r.cancel->cancelled()) return absl::CancelledError("cancelled");
    }
    DatabaseRestoreResult result;
    result.staging_database = StagingName(r);
    result.load.rows = 42;
    result.load.table_rows["public.accounts"] = 42;
    result.target_server_version = "15.18";
    return result;
  }
  absl::Status Verify(const DatabaseRestoreRequest&, DatabaseRestoreResult* result) override {
    result->verification.set_passed(true);
    return Call("verify");
  }
  absl::Status CheckBeforeSwap(const DatabaseRestoreRequest&, DatabaseRestoreResult*) override {
    return Call("checks");
  }
  absl::Status Swap(const DatabaseRestoreRequest& r, DatabaseRestoreResult* result) override {
    RETURN_IF_ERROR(Call("swap"));
    result->database = r.database;
    result->previous_database = absl::StrCat(r.database, "__previous");
    return absl::OkStatus();
  }
  void DropStaging(const std::string&, const std::string& name, uint32_t) override {
    calls.push_back("drop:" + name);
  }
  // The secrets check: `secrets` is its result; the env it was given is
  // kept (not in `calls`, which lists the other actions).
  absl::StatusOr<v1::SecretsCheck> CheckSecrets(const std::string&, const std::string& database,
                                                const std::string* env_text,
                                                const std::string& env_source) override {
    secrets_database = database;
    secrets_env = env_text == nullptr ? "(none)" : *env_text;
    secrets_env_source = env_source;
    return secrets;
  }
  v1::SecretsCheck secrets;
  std::string secrets_database;
  std::string secrets_env;
  std::string secrets_env_source;
  absl::StatusOr<MediaRestoreResult> RestoreMedia(const MediaRestoreOptions& o) override {
    RETURN_IF_ERROR(Call("media"));
    media_options = o;
    MediaRestoreResult result;
    result.files_written = o.inventory.files();
    return result;
  }
  absl::StatusOr<MissingMediaScan> ScanMedia(const std::string&, const std::string& database,
                                             const MissingMediaOptions& o) override {
    RETURN_IF_ERROR(Call("media_check"));
    scan_database = database;
    scan_options = o;
    MissingMediaScan scan;
    if (!scans.empty()) {
      scan = scans.front();
      if (scans.size() > 1) scans.erase(scans.begin());
    }
    return scan;
  }
  absl::StatusOr<RefetchPlan> PlanMediaRefetch(const std::string&, const std::string&,
                                               const std::vector<MissingRemoteFile>& missing,
                                               const RefetchLimits&) override {
    RETURN_IF_ERROR(Call("plan_refetch"));
    refetch_missing = missing.size();
    return refetch_plan;
  }
  absl::Status ControlServices(const Runtime&, bool start, const TaskContext&) override {
    return Call(start ? "start" : "stop");
  }
  absl::StatusOr<EnvInstallResult> InstallEnv(
      const Runtime&, const std::string&, const std::string&,
      const std::function<absl::Status(const EnvInstallJournal&)>&) override {
    RETURN_IF_ERROR(Call("config"));
    return EnvInstallResult();
  }
  absl::StatusOr<v1::DbMigrateResult> Migrate(const Runtime&, const AppDatabase&,
                                              const TaskContext& ctx) override {
    RETURN_IF_ERROR(Call("migrate"));
    EXPECT_NE(ctx.cancel, nullptr);
    v1::DbMigrateResult result;
    result.set_schema_version_after("20250101000000");
    return result;
  }
  absl::StatusOr<v1::TootctlResult> Tootctl(const Runtime&, const std::vector<std::string>& args,
                                            const TaskContext& ctx) override {
    RETURN_IF_ERROR(Call(absl::StrCat(ctx.step, ":", args.empty() ? "" : args[0])));
    tootctl_args.push_back(absl::StrJoin(args, " "));
    return v1::TootctlResult();
  }

  std::vector<v1::AfterSwapCheck> CheckApp(const Runtime&, const AppCheckOptions& o,
                                           const TaskContext& ctx) override {
    calls.push_back("check_app");
    check_options = o;
    check_cancel = ctx.cancel;
    return checks;
  }

  absl::StatusOr<v1::RedisRestore> RestoreRedis(const Runtime&, const RedisRestoreOptions& o,
                                                const TaskContext& ctx) override {
    RETURN_IF_ERROR(Call("redis"));
    redis_options = o;
    redis_step = ctx.step;
    v1::RedisRestore r;
    r.set_source_path(o.dump.path());
    r.set_keys_expected(o.dump.keys());
    r.set_keys_loaded(o.dump.keys());
    return r;
  }

  static std::string StagingName(const DatabaseRestoreRequest& r) {
    return absl::StrCat(r.database, "__restore_", r.operation_id);
  }

  // What ScanMedia answers, in turn (the last one again and again), and
  // what it and PlanMediaRefetch were given.
  std::vector<MissingMediaScan> scans;
  std::string scan_database;
  MissingMediaOptions scan_options;
  RefetchPlan refetch_plan;
  size_t refetch_missing = 0;
  std::vector<std::string> tootctl_args;
  DatabaseRestoreRequest staged_request;
  RedisRestoreOptions redis_options;
  std::string redis_step;
  MediaRestoreOptions media_options;
  // What CheckApp answers (every check passed), and what it was given.
  std::vector<v1::AfterSwapCheck> checks = {Check("web", true), Check("sidekiq", true)};
  AppCheckOptions check_options;
  const CancelToken* check_cancel = nullptr;

  static v1::AfterSwapCheck Check(const std::string& name, bool passed) {
    v1::AfterSwapCheck c;
    c.set_name(name);
    c.set_passed(passed);
    c.set_detail(passed ? "200 OK" : "answered 503 Service Unavailable");
    return c;
  }

 private:
  absl::Status Call(const std::string& name) {
    calls.push_back(name);
    if (!cancel_in.empty() && (name == cancel_in || absl::StartsWith(name, cancel_in + ":"))) {
      op->cancel_token().Cancel();
    }
    auto it = fail.find(name);
    return it == fail.end() ? absl::OkStatus() : it->second;
  }
};

v1::OperationRecord NewRecord() {
  v1::OperationRecord record;
  record.mutable_operation()->set_id("op1");
  record.mutable_operation()->set_state(v1::OPERATION_STATE_PENDING);
  return record;
}

class RestoreJobTest : public ::testing::Test {
 protected:
  RestoreJobTest() : op_(NewRecord(), &env_, nullptr) {
    actions_.op = &op_;
    in_.source_path = "/backups/b.tar";
    in_.conninfo = "host=/fake";
    in_.database = kLive;
    in_.media_dir = "/media/system";
    env_.free_bytes["/media"] = 1 << 30;
  }

  // A restore through the app's runtime.
  void WithRuntime() { in_.runtime = &runtime_; }

  absl::Status Run() {
    std::vector<std::pair<std::string, std::string>> steps;
    for (const PlannedStep& s : PlanRestore(in_)) steps.push_back({s.name, s.description});
    op_.DeclareSteps(steps);
    op_.MarkRunning();
    RestoreJob job(in_, &op_, &actions_, &env_);
    absl::Status status = job.Run();
    op_.Finish(status);
    return status;
  }

  // "name=STATE" of every step of the operation.
  std::vector<std::string> StepStates() const {
    std::vector<std::string> out;
    const v1::Operation snapshot = op_.Snapshot();
    for (const v1::Step& s : snapshot.steps()) {
      std::string state = v1::StepState_Name(s.state());
      out.push_back(absl::StrCat(s.name(), "=", state.substr(state.rfind('_') + 1)));
    }
    return out;
  }
  std::string StepMessage(const std::string& name) const {
    const v1::Operation snapshot = op_.Snapshot();
    for (const v1::Step& s : snapshot.steps()) {
      if (s.name() == name) return s.message();
    }
    return "(no step " + name + ")";
  }

  testing::FakeEnv env_;
  FakeRuntime runtime_;
  FakeActions actions_;
  RestoreJobInput in_;
  Operation op_;
};

TEST(PlanRestoreTest, OneTableGivesEveryStepInOrderWithItsSkipReason) {
  RestoreJobInput in;
  in.database = kLive;
  std::vector<std::string> names, skips;
  for (const PlannedStep& s : PlanRestore(in)) {
    names.push_back(s.name);
    skips.push_back(absl::StrCat(s.name, ":", s.skip_reason));
  }
  EXPECT_THAT(names, ElementsAre("open", "inventory", "detect", "preflight", "stop_services",
                                 "load", "verify", "checks", "secrets", "swap", "media", "config",
                                 "redis", "migrate", "cleanup", "refresh", "search", "media_check",
                                 "start_services", "app_checks", "report"));
  EXPECT_THAT(
      skips,
      ElementsAre(
          "open:", "inventory:", "detect:", "preflight:",
          "stop_services:no Mastodon runtime on this host", "load:", "verify:", "checks:",
          "secrets:", "swap:", "media:no media directory on this host",
          "config:not asked (--restore-config)", "redis:no Mastodon runtime on this host",
          "migrate:no Mastodon runtime on this host", "cleanup:no Mastodon runtime on this host",
          "refresh:no Mastodon runtime on this host", "search:no Mastodon runtime on this host",
          "media_check:no media directory on this host", "start_services:no services were stopped",
          "app_checks:no services were stopped", "report:"));
}

TEST(PlanRestoreTest, MediaOnlyKeepsTheAppRunningAndSkipsTheDatabase) {
  FakeRuntime runtime;
  RestoreJobInput in;
  in.runtime = &runtime;
  in.options.set_media_only(true);
  in.media_dir = "/media/system";
  std::map<std::string, std::string> skip;
  for (const PlannedStep& s : PlanRestore(in)) skip[s.name] = s.skip_reason;
  EXPECT_EQ(skip["stop_services"], "media only: the app keeps running");
  EXPECT_EQ(skip["load"], "media only");
  EXPECT_EQ(skip["migrate"], "media only");
  EXPECT_EQ(skip["media"], "");
}

TEST(PlanRestoreTest, BesideTheLiveDatabaseTheAppIsLeftAlone) {
  FakeRuntime runtime;
  RestoreJobInput in;
  in.runtime = &runtime;
  in.database = "mastodon_copy";
  in.options.set_no_refresh(true);
  std::map<std::string, std::string> skip;
  for (const PlannedStep& s : PlanRestore(in)) skip[s.name] = s.skip_reason;
  EXPECT_THAT(skip["migrate"], HasSubstr("beside the live database"));
  EXPECT_THAT(skip["stop_services"], HasSubstr("beside the live database"));
  in.database = kLive;
  skip.clear();
  for (const PlannedStep& s : PlanRestore(in)) skip[s.name] = s.skip_reason;
  EXPECT_EQ(skip["migrate"], "");
  EXPECT_EQ(skip["refresh"], "not asked (--no-refresh)");
}

TEST_F(RestoreJobTest, DatabaseAndMediaRunInOrderAndTheSourceIsOpenedOnce) {
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, ElementsAre("probe", "open", "cluster_database", "stage", "verify",
                                          "checks", "swap", "media", "media_check"));
  EXPECT_THAT(
      StepStates(),
      ElementsAre("open=SUCCEEDED", "inventory=SUCCEEDED", "detect=SUCCEEDED",
                  "preflight=SUCCEEDED", "stop_services=SKIPPED", "load=SUCCEEDED",
                  "verify=SUCCEEDED", "checks=SUCCEEDED", "secrets=SUCCEEDED", "swap=SUCCEEDED",
                  "media=SUCCEEDED", "config=SKIPPED", "redis=SKIPPED", "migrate=SKIPPED",
                  "cleanup=SKIPPED", "refresh=SKIPPED", "search=SKIPPED", "media_check=SUCCEEDED",
                  "start_services=SKIPPED", "app_checks=SKIPPED", "report=SUCCEEDED"));
  // The load is handed the dump the inventory detected, not a path to detect.
  EXPECT_EQ(actions_.staged_request.dump.path(), "database.sql");
  EXPECT_EQ(actions_.staged_request.database, kLive);
  // The media step gets the inventory's tree.
  EXPECT_EQ(actions_.media_options.inventory.root(), "system");
  EXPECT_EQ(StepMessage("preflight"), "PostgreSQL 15.18; ready");
  EXPECT_EQ(StepMessage("swap"),
            "'mastodon_production' is live; the previous one is kept as "
            "'mastodon_production__previous'");
  const v1::RestoreReport report = op_.Snapshot().restore_report();
  EXPECT_EQ(report.database(), kLive);
  EXPECT_EQ(report.rows(), 42);
  EXPECT_EQ(report.media_files(), 3);
  EXPECT_THAT(report.next_steps(), IsEmpty());
}

// The media from elsewhere (a bucket): the database from the backup, the
// media tree from the media source, whatever the backup holds.
TEST_F(RestoreJobTest, AMediaSourceGivesTheMediaTheBackupGivesTheRest) {
  OpenedBackup bucket;
  bucket.manifest.mutable_media()->set_root("");
  bucket.manifest.mutable_media()->set_files(7);
  bucket.manifest.mutable_media()->set_bytes(700);
  actions_.other_backups["s3://media/instance/"] = bucket;
  actions_.backup.manifest.mutable_media()->set_files(0);  // a backup without media
  in_.media_source_path = "s3://media/instance/";
  in_.media_source = SourceOptions();
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.opened, ElementsAre("/backups/b.tar", "s3://media/instance/"));
  EXPECT_EQ(actions_.staged_request.dump.path(), "database.sql");
  EXPECT_EQ(actions_.media_options.source_path, "s3://media/instance/");
  EXPECT_EQ(actions_.media_options.inventory.files(), 7);
  EXPECT_THAT(StepMessage("open"), HasSubstr("media from s3://media/instance/"));
  EXPECT_THAT(StepMessage("inventory"), HasSubstr("media s3://media/instance/ (7 files"));
  EXPECT_EQ(op_.Snapshot().restore_report().media_files(), 7);
}

TEST_F(RestoreJobTest, AMediaSourceWithoutMediaFailsBeforeAnythingIsTouched) {
  OpenedBackup empty;
  actions_.other_backups["/backups/elsewhere"] = empty;
  in_.media_source_path = "/backups/elsewhere";
  in_.media_source = SourceOptions();
  EXPECT_THAT(Run(), StatusIs(absl::StatusCode::kInvalidArgument,
                              AllOf(HasSubstr("/backups/elsewhere"),
                                    HasSubstr("holds no tree of Mastodon's media folders"))));
  EXPECT_THAT(actions_.calls, ElementsAre("probe", "open", "open"));
}

TEST_F(RestoreJobTest, AClusterDumpNamesTheDatabaseToLoad) {
  actions_.backup.manifest.mutable_dumps(0)->set_kind(v1::DUMP_KIND_CLUSTER);
  ASSERT_OK(Run());
  EXPECT_EQ(actions_.staged_request.cluster_database, "mastodon");
}

TEST_F(RestoreJobTest, WithTheAppItIsStoppedMigratedRefreshedAndStartedAgain) {
  WithRuntime();
  ASSERT_OK(Run());
  EXPECT_THAT(
      actions_.calls,
      ElementsAre("probe", "open", "cluster_database", "stop", "stage", "verify", "checks", "swap",
                  "media", "migrate", "cleanup:preview_cards", "cleanup:media", "refresh:media",
                  "refresh:accounts", "refresh:feeds", "media_check", "start", "check_app"));
  EXPECT_EQ(StepMessage("stop_services"), "web");
  EXPECT_EQ(StepMessage("app_checks"), "web ok, sidekiq ok");
  EXPECT_EQ(op_.Snapshot().restore_report().after_swap_checks_size(), 2);
  // The default wait, and the operation's cancellation.
  EXPECT_EQ(actions_.check_options.timeout, absl::Minutes(3));
  EXPECT_EQ(actions_.check_cancel, &op_.cancel_token());
  EXPECT_EQ(op_.Snapshot().restore_report().schema_version(), "20250101000000");
}

// search deploy runs when the env the restored app runs with enables
// Elasticsearch, after the other tootctl commands.
class SearchDeployTest : public RestoreJobTest {
 protected:
  void SetUp() override {
    WithRuntime();
    runtime_.env_path = "/srv/mastodon/.env.production";
    env_.files[runtime_.env_path] = "LOCAL_DOMAIN=x\nES_ENABLED=true\n";
  }
};

TEST_F(SearchDeployTest, RunsWhenTheAppsEnvEnablesElasticsearch) {
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls,
              ElementsAre("probe", "open", "cluster_database", "stop", "stage", "verify", "checks",
                          "swap", "media", "migrate", "cleanup:preview_cards", "cleanup:media",
                          "refresh:media", "refresh:accounts", "refresh:feeds", "search:search",
                          "media_check", "start", "check_app"));
}

TEST_F(SearchDeployTest, IsSkippedWhenTheEnvDoesNotEnableItOrWhenNotAsked) {
  env_.files[runtime_.env_path] = "LOCAL_DOMAIN=x\nES_ENABLED=false\n";
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, Not(Contains("search:search")));
  EXPECT_EQ(StepMessage("search"),
            "the app does not use a search server (ES_ENABLED is not true in the host's env file "
            "/srv/mastodon/.env.production)");
}

TEST_F(SearchDeployTest, IsNotRunWithNoSearchDeploy) {
  in_.options.set_no_search_deploy(true);
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, Not(Contains("search:search")));
  EXPECT_EQ(StepMessage("search"), "not asked (--no-search-deploy)");
}

TEST_F(SearchDeployTest, AFailureAfterTheSwapSaysWhatToRunAgainAndTheAppIsStarted) {
  actions_.fail["search:search"] = absl::UnknownError("tootctl search deploy exited 1");
  EXPECT_THAT(Run(), StatusIs(absl::StatusCode::kUnknown));
  EXPECT_THAT(actions_.calls, Contains("start"));
  EXPECT_THAT(op_.Snapshot().restore_report().next_steps(),
              Contains(HasSubstr("tootctl search deploy, through the runtime")));
}

// The backup's Redis dump replaces the runtime's after the swap, while the
// app is stopped; its home feeds then need no rebuild.
class RedisStepTest : public RestoreJobTest {
 protected:
  void SetUp() override {
    WithRuntime();
    runtime_.manages_redis = true;
    v1::RedisDumpInfo* redis = actions_.backup.manifest.mutable_redis();
    redis->set_path("export/redis.rdb");
    redis->set_keys(9);
  }
};

TEST_F(RedisStepTest, TheDumpReplacesRedisDataAndFeedsAreNotRebuilt) {
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, ElementsAre("probe", "open", "cluster_database", "stop", "stage",
                                          "verify", "checks", "swap", "media", "redis", "migrate",
                                          "cleanup:preview_cards", "cleanup:media", "refresh:media",
                                          "refresh:accounts", "media_check", "start", "check_app"));
  EXPECT_EQ(actions_.redis_options.dump.path(), "export/redis.rdb");
  EXPECT_EQ(actions_.redis_options.source_path, in_.source_path);
  EXPECT_EQ(actions_.redis_options.operation_id, op_.id());
  EXPECT_EQ(actions_.redis_step, "redis");
  EXPECT_EQ(StepMessage("redis"), "9 keys loaded from export/redis.rdb");
  EXPECT_EQ(op_.Snapshot().restore_report().redis().keys_loaded(), 9);
}

TEST_F(RedisStepTest, WithoutADumpOrARedisOrWhenNotAskedFeedsAreRebuilt) {
  actions_.backup.manifest.clear_redis();
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, Not(Contains("redis")));
  EXPECT_THAT(actions_.calls, Contains("refresh:feeds"));
  EXPECT_EQ(StepMessage("redis"),
            "the backup has no Redis dump (home feeds are rebuilt by refresh)");
}

TEST_F(RedisStepTest, ARuntimeThatManagesNoRedisSaysSo) {
  runtime_.manages_redis = false;
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, Not(Contains("redis")));
  EXPECT_THAT(actions_.calls, Contains("refresh:feeds"));
  EXPECT_EQ(StepMessage("redis"), "this runtime manages no Redis");
}

TEST_F(RedisStepTest, NoRedisKeepsTheHostsRedis) {
  in_.options.set_no_redis(true);
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, Not(Contains("redis")));
  EXPECT_THAT(actions_.calls, Contains("refresh:feeds"));
  EXPECT_EQ(StepMessage("redis"), "not asked (--no-redis)");
}

TEST_F(RedisStepTest, ADumpTheInventoryCouldNotReadIsNotRestored) {
  actions_.backup.manifest.mutable_redis()->set_error("not an RDB file");
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, Not(Contains("redis")));
  EXPECT_EQ(StepMessage("redis"), "'export/redis.rdb' cannot be restored: not an RDB file");
}

TEST_F(RedisStepTest, AFailureAfterTheSwapNamesTheFeedsRebuildAndStartsTheApp) {
  actions_.fail["redis"] = absl::DataLossError("Redis loaded 3 keys; the dump holds 9");
  EXPECT_THAT(Run(), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(actions_.calls, Contains("start"));
  EXPECT_THAT(op_.Snapshot().restore_report().next_steps(),
              Contains(HasSubstr("tootctl feeds build --all")));
}

// After the app's steps, the files the restored database references are
// looked up in the media directory; with --refetch-missing-remote-media the
// remote ones are fetched again by scoped tootctl commands and counted again.
class MediaCheckStepTest : public RestoreJobTest {
 protected:
  void SetUp() override {
    WithRuntime();
    actions_.scans = {Scan(/*local=*/2, /*remote=*/3)};
  }
  static MissingMediaScan Scan(int local, int remote) {
    MissingMediaScan scan;
    v1::MissingMedia& r = scan.report;
    r.set_media_dir("/media/system");
    r.set_referenced(10);
    r.set_present(10 - local - remote);
    r.set_local_missing(local);
    r.set_remote_missing(remote);
    for (int i = 0; i < local; ++i) {
      v1::MissingMediaFile* f = r.add_local_files();
      f->set_kind("media_attachment");
      f->set_id(i + 1);
      f->set_path(absl::StrCat("media_attachments/files/000/000/00", i + 1, "/original/x.png"));
    }
    for (int i = 0; i < remote; ++i) scan.remote.push_back({MediaFileKind::kMediaAttachment, 7});
    return scan;
  }
  std::vector<std::string> Warnings() const {
    const v1::Operation snapshot = op_.Snapshot();
    const auto& w = snapshot.restore_report().warnings();
    return std::vector<std::string>(w.begin(), w.end());
  }
};

TEST_F(MediaCheckStepTest, CountsLostAndRefetchableFilesAfterTheAppsStepsAndWarns) {
  ASSERT_OK(Run());
  EXPECT_THAT(
      actions_.calls,
      ElementsAre("probe", "open", "cluster_database", "stop", "stage", "verify", "checks", "swap",
                  "media", "migrate", "cleanup:preview_cards", "cleanup:media", "refresh:media",
                  "refresh:accounts", "refresh:feeds", "media_check", "start", "check_app"));
  EXPECT_EQ(actions_.scan_database, kLive);
  EXPECT_EQ(actions_.scan_options.media_dir, "/media/system");
  EXPECT_EQ(actions_.scan_options.cancel, &op_.cancel_token());
  EXPECT_EQ(StepMessage("media_check"),
            "10 files referenced, 5 present; 2 local missing (lost), 3 remote missing "
            "(re-fetchable)");
  const v1::MissingMedia m = op_.Snapshot().restore_report().missing_media();
  EXPECT_EQ(m.local_missing(), 2);
  EXPECT_FALSE(m.refetched());
  EXPECT_EQ(m.summary(), StepMessage("media_check"));
  EXPECT_THAT(Warnings(), Contains("2 local media files the database references are missing from "
                                   "/media/system and were not in the backup (lost): "
                                   "media_attachments/files/000/000/001/original/x.png, "
                                   "media_attachments/files/000/000/002/original/x.png"));
  EXPECT_THAT(Warnings(), Contains(HasSubstr("3 copies of remote media are missing: fetch them "
                                             "again with --refetch-missing-remote-media")));
}

TEST_F(MediaCheckStepTest, TheRefetchRunsTheScopedCommandsAndCountsAgain) {
  in_.options.set_refetch_missing_remote_media(true);
  actions_.scans = {Scan(0, 3), Scan(0, 1)};
  actions_.refetch_plan.statuses = {101, 102};
  actions_.refetch_plan.profile_accounts = {"bob@remote.example"};
  actions_.refetch_plan.not_refetchable = 1;
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls,
              ::testing::IsSupersetOf(
                  {"media_check", "plan_refetch", "media_check:media", "media_check:accounts"}));
  EXPECT_EQ(actions_.refetch_missing, 3u);
  EXPECT_THAT(actions_.tootctl_args,
              ::testing::IsSupersetOf({"media refresh --status 101 --force --concurrency 5",
                                       "media refresh --status 102 --force --concurrency 5",
                                       "accounts refresh bob@remote.example"}));
  // Scanned again after the commands, before the app starts.
  std::vector<std::string> order;
  for (const std::string& c : actions_.calls) {
    if (c == "media_check" || c == "start") order.push_back(c);
  }
  EXPECT_THAT(order, ElementsAre("media_check", "media_check", "start"));
  const v1::MissingMedia m = op_.Snapshot().restore_report().missing_media();
  EXPECT_TRUE(m.refetched());
  EXPECT_EQ(m.remote_missing(), 3);
  EXPECT_EQ(m.remote_missing_after_refetch(), 1);
  EXPECT_EQ(m.remote_not_refetchable(), 1);
  EXPECT_THAT(StepMessage("media_check"),
              HasSubstr("; 3 tootctl commands fetched 2 again, 1 still missing"));
  EXPECT_THAT(Warnings(), Contains(HasSubstr("1 copies of remote media are still missing")));
}

TEST_F(MediaCheckStepTest, AFailingRefetchCommandIsAWarningAndTheOthersStillRun) {
  in_.options.set_refetch_missing_remote_media(true);
  actions_.scans = {Scan(0, 3), Scan(0, 2)};
  actions_.refetch_plan.statuses = {101};
  actions_.refetch_plan.profile_accounts = {"bob@remote.example"};
  actions_.fail["media_check:media"] = absl::UnknownError("tootctl media refresh exited 1");
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, Contains("media_check:accounts"));
  EXPECT_THAT(Warnings(), Contains("1 of 2 commands fetching remote media again failed; the "
                                   "first: tootctl media refresh exited 1"));
}

TEST_F(MediaCheckStepTest, NothingToRefetchRunsNoCommand) {
  in_.options.set_refetch_missing_remote_media(true);
  actions_.scans = {Scan(1, 0)};
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, Not(Contains("plan_refetch")));
  EXPECT_FALSE(op_.Snapshot().restore_report().missing_media().refetched());
}

TEST_F(MediaCheckStepTest, AnUncountableDatabaseIsAWarningNotAFailure) {
  actions_.fail["media_check"] = absl::InvalidArgumentError("column \"id\" is of type text");
  ASSERT_OK(Run());
  EXPECT_EQ(StepMessage("media_check"), "not counted: column \"id\" is of type text");
  EXPECT_THAT(Warnings(), Contains(HasSubstr("the missing media files were not counted")));
  EXPECT_FALSE(op_.Snapshot().restore_report().has_missing_media());
}

TEST_F(MediaCheckStepTest, SkippedWhenNotAsked) {
  in_.options.set_no_media_check(true);
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, Not(Contains("media_check")));
  EXPECT_EQ(StepMessage("media_check"), "not asked (--no-media-check)");
}

TEST_F(MediaCheckStepTest, AnAppBucketWithoutItsSettingsIsNotChecked) {
  runtime_.env_path = "/srv/mastodon/.env.production";
  env_.files[runtime_.env_path] = "LOCAL_DOMAIN=x\nS3_ENABLED=true\n";
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, Not(Contains("media_check")));
  EXPECT_EQ(StepMessage("media_check"),
            "the app keeps its media in object storage (S3_ENABLED=true in the host's env file "
            "/srv/mastodon/.env.production), but the app's env enables S3 (S3_ENABLED=true) "
            "without S3_BUCKET");
}

// The app's env names the bucket (the app user's file: its endpoint is
// reached only when the agent allows it).
constexpr char kS3Env[] =
    "LOCAL_DOMAIN=x\nS3_ENABLED=true\nS3_BUCKET=files-example\nS3_REGION=eu-central-1\n"
    "S3_ENDPOINT=https://objects.example.com/\nAWS_ACCESS_KEY_ID=AKIAEXAMPLE\n"
    "AWS_SECRET_ACCESS_KEY=s3cr3t\n";

TEST_F(MediaCheckStepTest, AnAppBucketAtAnEndpointTheAgentDoesNotAllowIsNotReached) {
  runtime_.env_path = "/srv/mastodon/.env.production";
  env_.files[runtime_.env_path] = kS3Env;
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, Not(Contains("media_check")));
  EXPECT_EQ(StepMessage("media_check"),
            "the app keeps its media in object storage (S3_ENABLED=true in the host's env file "
            "/srv/mastodon/.env.production) at https://objects.example.com, which is not one of "
            "the agent's --allowed-s3-endpoint");
}

TEST_F(MediaCheckStepTest, AnAppBucketAtAnAllowedEndpointIsChecked) {
  runtime_.env_path = "/srv/mastodon/.env.production";
  env_.files[runtime_.env_path] = kS3Env;
  in_.allowed_s3_endpoints = {"https://objects.example.com"};
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, Contains("media_check"));
  ASSERT_NE(actions_.scan_options.bucket, nullptr);
  EXPECT_EQ(actions_.scan_options.bucket->Describe("x"), "s3://files-example/x");
  // The media went into the bucket too, as Paperclip writes them.
  EXPECT_THAT(actions_.calls, Contains("media"));
  ASSERT_NE(actions_.media_options.target_bucket, nullptr);
  EXPECT_EQ(actions_.media_options.target_bucket->Describe(""), "s3://files-example/");
  EXPECT_THAT(actions_.media_options.upload_headers, ElementsAre("x-amz-acl: public-read"));
  EXPECT_EQ(StepMessage("media"), "3 files written to s3://files-example/, 0 unchanged");
}

TEST_F(MediaCheckStepTest, AnAppBucketTheAgentMayNotReachLeavesTheMediaLocalWithAWarning) {
  runtime_.env_path = "/srv/mastodon/.env.production";
  env_.files[runtime_.env_path] = kS3Env;
  ASSERT_OK(Run());
  EXPECT_EQ(actions_.media_options.target_bucket, nullptr);
  EXPECT_EQ(actions_.media_options.target_dir, in_.media_dir);
  EXPECT_THAT(Warnings(), Contains(HasSubstr("which the app does not serve them from")));
}

TEST_F(MediaCheckStepTest, ADatabaseOnlyRestoreDoesNotCheck) {
  in_.options.set_db_only(true);
  in_.media_dir.clear();
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, Not(Contains("media_check")));
  EXPECT_EQ(StepMessage("media_check"), "database only");
}

TEST_F(RestoreJobTest, PreflightRefusesARoleThatMayNotCreateDatabasesBeforeStoppingTheApp) {
  WithRuntime();
  actions_.server.may_create_databases = false;
  EXPECT_THAT(Run(), StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("CREATEDB")));
  EXPECT_THAT(actions_.calls, ElementsAre("probe", "open", "cluster_database"));
  EXPECT_EQ(op_.Snapshot().restore_report().database(), "");
}

TEST_F(RestoreJobTest, AnUnreachableServerFailsPreflightWithItsError) {
  actions_.fail["probe"] = absl::UnavailableError("unable to connect to the target server: boom");
  EXPECT_THAT(Run(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("boom")));
  EXPECT_EQ(StepStates()[3], "preflight=FAILED");
  EXPECT_THAT(actions_.calls, ElementsAre("probe", "open", "cluster_database"));
}

TEST_F(RestoreJobTest, NotEnoughRoomForTheStagingDatabaseIsRefusedBeforeTheLoad) {
  actions_.server.data_directory = "/var/lib/postgresql";
  env_.free_bytes["/var/lib/postgresql"] = 1000;  // the dump needs 1.5 x 1000
  EXPECT_THAT(Run(), StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("1.5x the dump")));
  EXPECT_THAT(actions_.calls, ElementsAre("probe", "open", "cluster_database"));
}

// The server's data directory is on this host (a real directory here): its
// free space is looked at as the load reports bytes, and a floor it cannot
// keep stops the load with a clear error instead of filling the disk.
TEST_F(RestoreJobTest, TheServersDiskNearlyFullDuringTheLoadStopsIt) {
  auto dir = testing::MakeTempDir("mr-datadir-");
  ASSERT_OK(dir);
  actions_.server.data_directory = *dir;
  actions_.load_bytes = 64 << 20;
  in_.space_floor.min_free_bytes = int64_t{1} << 62;  // more than any disk has
  in_.space_floor.min_free_percent = 100;
  absl::Status status = Run();
  testing::RemoveTree(*dir);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted,
                               AllOf(HasSubstr(*dir), HasSubstr("nearly full"))));
  EXPECT_THAT(actions_.calls, ::testing::Not(::testing::Contains("swap")));
}

TEST_F(RestoreJobTest, AFloorTheServersDiskKeepsLetsTheLoadThrough) {
  actions_.server.data_directory = "/";
  actions_.load_bytes = 64 << 20;
  in_.space_floor.min_free_bytes = 0;
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, ::testing::Contains("swap"));
}

TEST_F(RestoreJobTest, SeveralDumpsWithoutAMemberAreRefusedAtTheInventory) {
  *actions_.backup.manifest.add_dumps() = actions_.backup.manifest.dumps(0);
  actions_.backup.manifest.mutable_dumps(1)->set_path("other.sql");
  EXPECT_THAT(Run(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--member")));
  EXPECT_THAT(actions_.calls, ElementsAre("probe", "open"));
}

TEST_F(RestoreJobTest, AMemberPicksItsDumpFromTheInventory) {
  *actions_.backup.manifest.add_dumps() = actions_.backup.manifest.dumps(0);
  actions_.backup.manifest.mutable_dumps(1)->set_path("other.sql.gz");
  in_.options.set_member("other.sql.gz");
  ASSERT_OK(Run());
  EXPECT_EQ(actions_.staged_request.dump.path(), "other.sql.gz");
}

// Duplicates under the dump's unique indexes (or an index amcheck finds
// broken) refuse the swap: nothing swapped in, the app started again, the
// option handed to the load.
TEST_F(RestoreJobTest, ThePreSwapChecksRefuseTheSwap) {
  WithRuntime();
  in_.options.set_repair_duplicates(true);
  actions_.fail["checks"] = absl::FailedPreconditionError("refusing the swap: duplicates");
  EXPECT_THAT(Run(), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("refusing")));
  EXPECT_THAT(actions_.calls, ElementsAre("probe", "open", "cluster_database", "stop", "stage",
                                          "verify", "checks", "start"));
  EXPECT_TRUE(actions_.staged_request.repair_duplicates);
  EXPECT_EQ(op_.Snapshot().restore_report().database(), "");
}

TEST_F(RestoreJobTest, AFailureBeforeTheSwapLeavesTheLiveDatabaseAndStartsTheAppAgain) {
  WithRuntime();
  actions_.fail["verify"] = absl::DataLossError("verification of the staging database failed");
  EXPECT_THAT(Run(), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(actions_.calls,
              ElementsAre("probe", "open", "cluster_database", "stop", "stage", "verify", "start"));
  const v1::RestoreReport report = op_.Snapshot().restore_report();
  EXPECT_EQ(report.database(), "");  // nothing was swapped in
  EXPECT_THAT(report.next_steps(), IsEmpty());
}

TEST_F(RestoreJobTest, AFailureAfterTheSwapNamesWhatToRunAgain) {
  WithRuntime();
  actions_.fail["media"] = absl::ResourceExhaustedError("disk full");
  EXPECT_THAT(Run(), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(actions_.calls, ElementsAre("probe", "open", "cluster_database", "stop", "stage",
                                          "verify", "checks", "swap", "media", "start"));
  const v1::RestoreReport report = op_.Snapshot().restore_report();
  EXPECT_EQ(report.database(), kLive);
  EXPECT_THAT(report.next_steps(),
              ElementsAre("mastodon-restore restore --media-only /backups/b.tar",
                          "mastodon-restore db-migrate", "mastodon-restore cleanup --days 1",
                          "mastodon-restore media-refresh --days 1 --force --accounts --feeds"));
}

TEST_F(RestoreJobTest, AnAppThatDoesNotAnswerAfterTheSwapFailsTheRestoreWithTheRollback) {
  WithRuntime();
  in_.options.set_app_check_timeout_seconds(30);
  actions_.checks = {FakeActions::Check("web", false), FakeActions::Check("sidekiq", true)};
  EXPECT_THAT(Run(), StatusIs(absl::StatusCode::kUnavailable,
                              HasSubstr("the restored app does not answer (web: answered 503")));
  EXPECT_EQ(actions_.calls.back(), "check_app");
  EXPECT_EQ(actions_.check_options.timeout, absl::Seconds(30));
  EXPECT_THAT(StepStates(), ::testing::Contains("app_checks=FAILED"));
  const v1::RestoreReport report = op_.Snapshot().restore_report();
  // The restored database stays live; the report says how to put the
  // previous one back, and keeps every verdict.
  EXPECT_EQ(report.database(), kLive);
  EXPECT_THAT(report.next_steps(),
              ElementsAre(HasSubstr("mastodon-restore rollback --database mastodon_production")));
  ASSERT_EQ(report.after_swap_checks_size(), 2);
  EXPECT_FALSE(report.after_swap_checks(0).passed());
  EXPECT_TRUE(report.after_swap_checks(1).passed());
}

TEST_F(RestoreJobTest, TheAppIsNotCheckedWhenTheRestoreFailedOrWhenNotAsked) {
  WithRuntime();
  actions_.fail["migrate"] = absl::InternalError("migration failed");
  EXPECT_THAT(Run(), StatusIs(absl::StatusCode::kInternal));
  EXPECT_EQ(actions_.calls.back(), "start");
  EXPECT_EQ(StepMessage("app_checks"), "the restore did not succeed: the app is not checked");
  EXPECT_EQ(op_.Snapshot().restore_report().after_swap_checks_size(), 0);

  RestoreJobInput in = in_;
  in.options.set_no_app_checks(true);
  std::map<std::string, std::string> skip;
  for (const PlannedStep& s : PlanRestore(in)) skip[s.name] = s.skip_reason;
  EXPECT_EQ(skip["app_checks"], "not asked (--no-app-checks)");
}

TEST_F(RestoreJobTest, KeepServicesStoppedOnFailureLeavesTheAppDownAndSaysSo) {
  WithRuntime();
  in_.options.set_keep_services_stopped_on_failure(true);
  actions_.fail["migrate"] = absl::InternalError("migration failed");
  EXPECT_THAT(Run(), StatusIs(absl::StatusCode::kInternal));
  EXPECT_EQ(actions_.calls.back(), "migrate");
  EXPECT_EQ(StepMessage("start_services"),
            "kept stopped as asked (--keep-services-stopped-on-failure)");
  const v1::RestoreReport report = op_.Snapshot().restore_report();
  EXPECT_THAT(report.next_steps(),
              ::testing::Contains("start the app's services (they were kept stopped)"));
}

// Cancelled while each action runs: the job stops with CANCELLED before the
// next step, nothing after it runs, and the app is started again.
TEST(RestoreJobCancelTest, CancelDuringEveryStepStopsBeforeTheNext) {
  const std::vector<std::string> order = {"probe", "open",    "cluster_database", "stop",
                                          "stage", "verify",  "checks",           "swap",
                                          "media", "migrate", "cleanup"};
  for (size_t k = 0; k < order.size(); ++k) {
    SCOPED_TRACE(order[k]);
    testing::FakeEnv env;
    env.free_bytes["/media"] = 1 << 30;
    FakeRuntime runtime;
    Operation op(NewRecord(), &env, nullptr);
    FakeActions actions;
    actions.op = &op;
    actions.cancel_in = order[k];
    RestoreJobInput in;
    in.source_path = "/backups/b.tar";
    in.database = kLive;
    in.media_dir = "/media/system";
    in.runtime = &runtime;
    std::vector<std::pair<std::string, std::string>> steps;
    for (const PlannedStep& s : PlanRestore(in)) steps.push_back({s.name, s.description});
    op.DeclareSteps(steps);
    RestoreJob job(in, &op, &actions, &env);
    absl::Status status = job.Run();
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kCancelled));
    // What ran: everything up to the cancelled action (the probe shares the
    // open step), then only the restart of the app.
    std::vector<std::string> expected(order.begin(), order.begin() + k + 1);
    if (k < 3) expected = {"probe", "open", "cluster_database"};
    if (k < 2) expected = {"probe", "open"};
    if (k >= 3) expected.push_back("start");
    std::vector<std::string> ran;
    for (const std::string& c : actions.calls) {
      ran.push_back(c.substr(0, c.find(':')));
    }
    // cleanup runs two tootctl commands; the cancel stops after the first
    // step's actions, so compare the distinct names in order.
    ran.erase(std::unique(ran.begin(), ran.end()), ran.end());
    EXPECT_THAT(ran, ElementsAreArray(expected));
    // The app's services are never left stopped by a cancellation.
    EXPECT_EQ(absl::c_count(ran, "stop"), absl::c_count(ran, "start"));
  }
}

// The secrets step: the env it checks with, and what a mismatch does.
v1::SecretsCheck Mismatch() {
  v1::SecretsCheck c;
  c.set_checked(true);
  c.set_mismatch(true);
  c.set_two_factor_users(3);
  c.set_two_factor_users_broken(3);
  c.set_summary("users.otp_secret: 0 of 3 decrypt");
  return c;
}

TEST_F(RestoreJobTest, SecretsAreCheckedOnTheStagingDatabaseWithTheHostsEnv) {
  WithRuntime();
  runtime_.env_path = "/live/.env.production";
  env_.files["/live/.env.production"] = "OTP_SECRET=host\n";
  actions_.backup.env_text = "OTP_SECRET=backup\n";
  actions_.secrets.set_checked(true);
  actions_.secrets.set_summary("users.otp_secret: 3 of 3 decrypt");
  ASSERT_OK(Run());
  EXPECT_EQ(actions_.secrets_database, FakeActions::StagingName(actions_.staged_request));
  EXPECT_EQ(actions_.secrets_env, "OTP_SECRET=host\n");
  EXPECT_EQ(actions_.secrets_env_source, "the host's env file /live/.env.production");
  EXPECT_EQ(StepMessage("secrets"), "users.otp_secret: 3 of 3 decrypt");
  EXPECT_EQ(op_.Snapshot().restore_report().secrets_check().summary(),
            "users.otp_secret: 3 of 3 decrypt");
}

TEST_F(RestoreJobTest, RestoreConfigChecksWithTheBackupsEnv) {
  WithRuntime();
  runtime_.env_path = "/live/.env.production";
  env_.files["/live/.env.production"] = "OTP_SECRET=host\n";
  actions_.backup.env_text = "OTP_SECRET=backup\n";
  in_.options.set_restore_config(true);
  ASSERT_OK(Run());
  EXPECT_EQ(actions_.secrets_env, "OTP_SECRET=backup\n");
  EXPECT_EQ(actions_.secrets_env_source, "the backup's env file, installed by --restore-config");
}

TEST_F(RestoreJobTest, WithoutAnAppTheBackupsEnvIsChecked) {
  actions_.backup.env_text = "OTP_SECRET=backup\n";
  ASSERT_OK(Run());
  EXPECT_EQ(actions_.secrets_env, "OTP_SECRET=backup\n");
  EXPECT_EQ(actions_.secrets_env_source, "the backup's env file");
}

TEST_F(RestoreJobTest, WithoutAnyEnvFileSecretsThatCannotBeCheckedAreAWarning) {
  actions_.secrets.set_summary("3 encrypted two-factor secrets, and no env file: not checked");
  actions_.secrets.add_columns()->set_rows(3);
  ASSERT_OK(Run());
  EXPECT_EQ(actions_.secrets_env, "(none)");
  EXPECT_THAT(op_.Snapshot().restore_report().warnings(),
              ::testing::Contains("3 encrypted two-factor secrets, and no env file: not checked"));
}

TEST_F(RestoreJobTest, ASecretsMismatchRefusesTheSwapAndDropsNothingLive) {
  actions_.secrets = Mismatch();
  absl::Status status = Run();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(), HasSubstr("users.otp_secret: 0 of 3 decrypt"));
  EXPECT_THAT(status.message(), HasSubstr("--accept-secret-mismatch"));
  EXPECT_THAT(actions_.calls,
              ElementsAre("probe", "open", "cluster_database", "stage", "verify", "checks"));
  const v1::RestoreReport report = op_.Snapshot().restore_report();
  EXPECT_EQ(report.database(), "");
  EXPECT_TRUE(report.secrets_check().mismatch());
  EXPECT_FALSE(report.secrets_check().accepted());
  EXPECT_EQ(report.secrets_check().two_factor_users_broken(), 3);
}

TEST_F(RestoreJobTest, AnAcceptedSecretsMismatchSwapsWithAWarning) {
  actions_.secrets = Mismatch();
  in_.options.set_accept_secret_mismatch(true);
  ASSERT_OK(Run());
  EXPECT_THAT(actions_.calls, ElementsAre("probe", "open", "cluster_database", "stage", "verify",
                                          "checks", "swap", "media", "media_check"));
  const v1::RestoreReport report = op_.Snapshot().restore_report();
  EXPECT_TRUE(report.secrets_check().accepted());
  EXPECT_THAT(
      report.warnings(),
      ::testing::Contains(HasSubstr("secrets mismatch accepted (--accept-secret-mismatch)")));
}

}  // namespace
}  // namespace mastodon_restore
