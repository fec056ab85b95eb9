// The Mastodon runtimes and the app tasks against the recording fakes of
// tests/fakes/ (snap, docker, systemctl, runuser, tootctl, rails) and a real
// PostgreSQL 15: the exact commands, their order, users, directories and
// environment per runtime, progress and summaries parsed from a terminal,
// and migrations checked in the database.
#include "agent/app/runtime.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/app/app_tasks.h"
#include "tests/harness/fake_host.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

namespace v1 = ::mastodon::restore::v1;
using ::mastodon_restore::testing::FakeCall;
using ::mastodon_restore::testing::FakeHost;
using ::mastodon_restore::testing::StatusIs;
using ::mastodon_restore::testing::TestPostgres;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::SizeIs;

// Records what a task reports.
class RecordingReporter : public ProgressReporter {
 public:
  void StepStarted(const std::string&) override {}
  void StepProgress(const std::string& step, int64_t done, int64_t total, const std::string& unit,
                    const std::string&) override {
    progress.push_back(absl::StrCat(step, ":", done, "/", total, " ", unit));
  }
  void StepFinished(const std::string&, v1::StepState, const std::string&) override {}
  void Log(v1::Severity severity, const std::string& message, const std::string&) override {
    (severity == v1::SEVERITY_WARNING ? warnings : lines).push_back(message);
  }
  std::vector<std::string> progress;
  std::vector<std::string> lines;
  std::vector<std::string> warnings;
};

class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto host = FakeHost::Create();
    ASSERT_OK(host);
    host_ = std::move(*host);
  }

  void StartPostgres() {
    auto pg = TestPostgres::Start();
    ASSERT_OK(pg);
    pg_ = std::move(*pg);
  }

  std::unique_ptr<Runtime> Detect(const std::string& requested) {
    std::vector<std::string> checked;
    auto runtime = DetectRuntime(requested, host_->Layout(), runner_.get(), env_.get(), &checked);
    EXPECT_OK(runtime);
    return runtime.ok() ? std::move(*runtime) : nullptr;
  }

  TaskContext Context(const std::string& step, const CancelToken* cancel = nullptr) {
    return TaskContext{runner_.get(), env_.get(), cancel, &reporter_, step};
  }

  // Runs the runtime's service commands and returns the argv of each.
  void RunServices(const Runtime& runtime, bool start) {
    for (const CommandSpec& spec : runtime.ServiceCommands(start)) {
      auto result = runner_->Run(spec, nullptr);
      ASSERT_OK(result);
      EXPECT_TRUE(result->success()) << result->stderr_text;
    }
  }

  std::unique_ptr<Env> env_ = NewPosixEnv();
  std::unique_ptr<CommandRunner> runner_ = NewPosixCommandRunner();
  std::unique_ptr<FakeHost> host_;
  std::unique_ptr<TestPostgres> pg_;
  RecordingReporter reporter_;
};

TEST_F(RuntimeTest, DetectionFindsEachRuntimeAndSaysWhatItChecked) {
  std::vector<std::string> checked;
  auto none = DetectRuntime("auto", host_->Layout(), runner_.get(), env_.get(), &checked);
  ASSERT_OK(none);
  EXPECT_EQ(*none, nullptr);
  EXPECT_THAT(checked, ElementsAre(HasSubstr("no " + host_->dir() + "/snap/bin/mastodon-server"),
                                   HasSubstr("no source install in"),
                                   HasSubstr("no compose file with the Mastodon image")));
  // An explicit runtime that is not installed is refused, naming it.
  EXPECT_THAT(DetectRuntime("snap", host_->Layout(), runner_.get(), env_.get(), &checked),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("snap install")));
  EXPECT_THAT(DetectRuntime("systemd", host_->Layout(), runner_.get(), env_.get(), &checked),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("bin/tootctl")));

  // A compose file of something else is not Mastodon.
  std::filesystem::create_directories(host_->app_dir());
  std::ofstream(host_->app_dir() + "/docker-compose.yml") << "services:\n  x:\n    image: nginx\n";
  checked.clear();
  EXPECT_EQ(*DetectRuntime("auto", host_->Layout(), runner_.get(), env_.get(), &checked), nullptr);
  EXPECT_THAT(checked, Contains(HasSubstr("does not run the Mastodon image")));

  host_->InstallCompose("DB_HOST=db\n");
  auto compose = Detect("auto");
  ASSERT_NE(compose, nullptr);
  EXPECT_EQ(compose->kind(), v1::RUNTIME_KIND_COMPOSE);

  // A source install wins over a compose file in the same place, and the
  // snap over both.
  host_->InstallSystemd("DB_HOST=/var/run/postgresql\n");
  auto systemd = Detect("auto");
  ASSERT_NE(systemd, nullptr);
  EXPECT_EQ(systemd->kind(), v1::RUNTIME_KIND_SYSTEMD);
  EXPECT_THAT(systemd->Services(),
              ElementsAre("mastodon-web", "mastodon-sidekiq", "mastodon-streaming"));
  EXPECT_THAT(systemd->evidence(), Contains(HasSubstr("mastodon-web mastodon-sidekiq")));
  host_->InstallSnap("host=/nowhere");
  auto snap = Detect("auto");
  ASSERT_NE(snap, nullptr);
  EXPECT_EQ(snap->kind(), v1::RUNTIME_KIND_SNAP);
  EXPECT_EQ(Detect("compose")->kind(), v1::RUNTIME_KIND_COMPOSE);  // explicit choice wins
  EXPECT_EQ(Detect("none"), nullptr);
}

TEST_F(RuntimeTest, SnapCommandsMediaAndServices) {
  host_->InstallSnap("host=/nowhere");
  auto snap = Detect("snap");
  ASSERT_NE(snap, nullptr);
  auto db = snap->Database();
  ASSERT_OK(db);
  EXPECT_THAT(db->conninfo, HasSubstr("snap.mastodon-server/tmp/sockets/postgres"));
  EXPECT_EQ(db->database, "mastodon");
  EXPECT_EQ(db->owner, "mastodon");

  // media.dir never set: snap get fails and the default applies.
  auto media = snap->Media();
  ASSERT_OK(media);
  EXPECT_EQ(media->dir, "/var/snap/mastodon-server/common/media");
  EXPECT_EQ(media->owner, "snap_daemon:root");
  EXPECT_EQ(media->gid, 0u);
  host_->Set("SNAP_MEDIA_DIR", "/mnt/big/media");
  EXPECT_EQ(snap->Media()->dir, "/mnt/big/media");
  EXPECT_THAT(host_->Calls("snap")[0].argv, ElementsAre("get", "mastodon-server", "media.dir"));

  host_->ClearCalls();
  RunServices(*snap, false);
  RunServices(*snap, true);
  std::vector<FakeCall> calls = host_->Calls();
  ASSERT_THAT(calls, SizeIs(2));
  EXPECT_THAT(calls[0].argv,
              ElementsAre("stop", "mastodon-server.backend", "mastodon-server.streaming",
                          "mastodon-server.sidekiq-push", "mastodon-server.sidekiq-pull"));
  EXPECT_THAT(calls[1].argv,
              ElementsAre("start", "mastodon-server.sidekiq-pull", "mastodon-server.sidekiq-push",
                          "mastodon-server.streaming", "mastodon-server.backend"));
  // Exactly the environment the agent gives, nothing of its own.
  EXPECT_THAT(calls[0].env, Contains(Pair("PATH", host_->Layout().host_path)));
  EXPECT_EQ(calls[0].env.count("HOME"), 0u);
}

TEST_F(RuntimeTest, SnapTootctlOnATerminalWithProgressItemErrorsAndSummary) {
  host_->InstallSnap("host=/nowhere");
  host_->Set("TOOTCTL_ITEMS", "12");
  host_->Set("TOOTCTL_ITEM_ERRORS", "2");
  auto snap = Detect("snap");
  ASSERT_NE(snap, nullptr);
  v1::MediaRefreshOptions options;
  options.set_days(1);
  options.set_force(true);
  options.set_refresh_accounts(true);
  auto commands = MediaRefreshCommands(options, 5);
  ASSERT_OK(commands);
  auto refresh = RunTootctl(*snap, (*commands)[0], Context("refresh"));
  ASSERT_OK(refresh);
  EXPECT_EQ(refresh->command(), "media refresh --days 1 --force --concurrency 5");
  EXPECT_EQ(refresh->exit_code(), 0);
  EXPECT_EQ(refresh->processed(), 12);
  EXPECT_EQ(refresh->total(), 12);
  EXPECT_EQ(refresh->item_errors(), 2);
  EXPECT_EQ(refresh->summary(), "Downloaded 12 media attachments (approx. 1.5 MB)");
  EXPECT_EQ(refresh->summary_count(), 12);
  EXPECT_THAT(reporter_.progress, Contains("refresh:12/12 items"));
  EXPECT_THAT(reporter_.warnings, Contains("Error processing 109123456789001: Net::ReadTimeout"));
  EXPECT_THAT(reporter_.warnings, Contains(HasSubstr("2 item(s) failed (tootctl still exited 0)")));

  auto accounts = RunTootctl(*snap, (*commands)[1], Context("refresh"));
  ASSERT_OK(accounts);
  EXPECT_EQ(accounts->summary(), "Refreshed 12 accounts");

  std::vector<FakeCall> wrapper = host_->Calls("mastodon-server.tootctl");
  ASSERT_THAT(wrapper, SizeIs(2));
  EXPECT_THAT(wrapper[0].argv,
              ElementsAre("media", "refresh", "--days", "1", "--force", "--concurrency", "5"));
  // accounts refresh has no --force.
  EXPECT_THAT(wrapper[1].argv, ElementsAre("accounts", "refresh", "--all", "--concurrency", "5"));
  EXPECT_TRUE(wrapper[0].tty);
  EXPECT_EQ(wrapper[0].uid, "0");
  EXPECT_THAT(wrapper[0].env, Contains(Pair("HOME", "/root")));
  // The snap's wrapper runs tootctl in its code directory.
  EXPECT_EQ(host_->Calls("tootctl")[0].cwd, host_->snap_app_dir());
}

TEST_F(RuntimeTest, SnapDbMigrateAnswersThePromptAndIsCheckedInTheDatabase) {
  StartPostgres();
  ASSERT_OK(pg_->Exec("CREATE DATABASE mastodon"));
  ASSERT_OK(
      pg_->Exec("CREATE TABLE schema_migrations (version varchar PRIMARY KEY);"
                "INSERT INTO schema_migrations VALUES ('20240101000000');",
                "mastodon"));
  host_->InstallSnap(pg_->ConnInfo("mastodon"));
  FakeHost::AddMigrations(host_->snap_app_dir(), {"20240101000000", "20250101000000"},
                          {"20250601000000"});
  HostLayout layout = host_->Layout();
  std::vector<std::string> checked;
  layout.snap_postgres = pg_->ConnInfo("");
  auto snap = DetectRuntime("snap", layout, runner_.get(), env_.get(), &checked);
  ASSERT_OK(snap);
  auto db = (*snap)->Database();
  ASSERT_OK(db);

  // Post-deployment only while a pre-deployment migration is pending: no.
  EXPECT_THAT(RunDbMigrate(**snap, v1::MIGRATION_PHASE_POST_DEPLOYMENT, *db, Context("migrate")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("1 pre-deployment migration(s) are pending")));
  EXPECT_THAT(host_->Calls("mastodon-server.db-migrate"), IsEmpty());

  // The snap's quirk: postgres "not running", exit 0, nothing done.
  host_->Set("SNAP_POSTGRES_DOWN", "1");
  EXPECT_THAT(RunDbMigrate(**snap, v1::MIGRATION_PHASE_ALL, *db, Context("migrate")),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("exited 0 but 2 migration(s) are still pending (first "
                                 "20250101000000); output: Service postgres is not running")));
  host_->Set("SNAP_POSTGRES_DOWN", "0");

  // Pre-deployment only: SKIP_POST_DEPLOYMENT_MIGRATIONS reaches rails.
  host_->ClearCalls();
  auto pre = RunDbMigrate(**snap, v1::MIGRATION_PHASE_PRE_DEPLOYMENT, *db, Context("migrate"));
  ASSERT_OK(pre);
  EXPECT_EQ(pre->schema_version_before(), "20240101000000");
  EXPECT_EQ(pre->schema_version_after(), "20250101000000");
  EXPECT_THAT(pre->migrations(), ElementsAre("20250101000000 AddThing2"));
  EXPECT_EQ(pre->pending(), 1);
  std::vector<FakeCall> calls = host_->Calls("mastodon-server.db-migrate");
  ASSERT_THAT(calls, SizeIs(1));
  EXPECT_THAT(calls[0].stdin_lines, ElementsAre("y"));
  EXPECT_TRUE(calls[0].tty);
  EXPECT_THAT(calls[0].env, Contains(Pair("SKIP_POST_DEPLOYMENT_MIGRATIONS", "true")));

  // Then the rest.
  auto post = RunDbMigrate(**snap, v1::MIGRATION_PHASE_POST_DEPLOYMENT, *db, Context("migrate"));
  ASSERT_OK(post);
  EXPECT_THAT(post->migrations(), ElementsAre("20250601000000 AddThing3"));
  EXPECT_EQ(post->pending(), 0);
  EXPECT_EQ(
      host_->Calls("mastodon-server.db-migrate")[1].env.count("SKIP_POST_DEPLOYMENT_MIGRATIONS"),
      0u);
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM schema_migrations", "mastodon"), "3");
  EXPECT_THAT(reporter_.progress, Contains("migrate:1/1 migrations"));
  EXPECT_THAT(reporter_.lines, Contains(HasSubstr("== 20250601000000 AddThing3: migrated")));
}

TEST_F(RuntimeTest, AFailingMigrationIsReportedWithRailsOutput) {
  StartPostgres();
  ASSERT_OK(pg_->Exec("CREATE DATABASE mastodon"));
  host_->InstallSnap(pg_->ConnInfo("mastodon"));
  FakeHost::AddMigrations(host_->snap_app_dir(), {"20240101000000", "20250101000000"}, {});
  host_->Set("MIGRATE_MODE", "fail");
  HostLayout layout = host_->Layout();
  layout.snap_postgres = pg_->ConnInfo("");
  std::vector<std::string> checked;
  auto snap = DetectRuntime("snap", layout, runner_.get(), env_.get(), &checked);
  ASSERT_OK(snap);
  auto result =
      RunDbMigrate(**snap, v1::MIGRATION_PHASE_ALL, *(*snap)->Database(), Context("migrate"));
  EXPECT_THAT(result,
              StatusIs(absl::StatusCode::kUnknown, HasSubstr("exited with status 1; output: ")));
  EXPECT_THAT(result.status().message(), HasSubstr("PG::UndefinedColumn"));
}

TEST_F(RuntimeTest, ComposeFindsTheDbContainerAndRunsTasksInTheWebImage) {
  StartPostgres();
  ASSERT_OK(pg_->Exec("CREATE DATABASE mastodon_production"));
  const int port = pg_->cluster()->port();
  host_->InstallCompose(absl::StrCat("LOCAL_DOMAIN=example.social\nDB_HOST=db\nDB_PORT=", port,
                                     "\nDB_USER=postgres\nDB_NAME=mastodon_production\n"
                                     "DB_PASS=compose-secret\n"));
  host_->Set("DOCKER_DB_IP", "127.0.0.1");
  host_->Set("DOCKER_DB_HOST", "127.0.0.1");
  host_->Set("DOCKER_DB_PORT", absl::StrCat(port));
  FakeHost::AddMigrations(host_->compose_app_dir(), {"20240101000000"}, {"20250601000000"});
  auto compose = Detect("compose");
  ASSERT_NE(compose, nullptr);
  const std::string file = host_->app_dir() + "/docker-compose.yml";
  EXPECT_EQ(compose->MastodonVersion(), "4.6.5");  // the web image's tag

  auto db = compose->Database();
  ASSERT_OK(db);
  EXPECT_THAT(db->conninfo, HasSubstr("host='127.0.0.1'"));
  EXPECT_THAT(db->conninfo, HasSubstr("password='compose-secret'"));
  EXPECT_EQ(db->database, "mastodon_production");
  EXPECT_EQ(db->owner, "postgres");
  std::vector<FakeCall> calls = host_->Calls("docker");
  ASSERT_THAT(calls, SizeIs(2));
  EXPECT_THAT(calls[0].argv, ElementsAre("compose", "-f", file, "ps", "-q", "db"));
  EXPECT_THAT(
      calls[1].argv,
      ElementsAre("inspect", "--format",
                  "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", "c0ffee0123456789"));
  // The secret is never on any argv.
  for (const FakeCall& c : host_->Calls()) {
    for (const std::string& a : c.argv) EXPECT_EQ(a.find("compose-secret"), std::string::npos);
  }

  auto media = compose->Media();
  ASSERT_OK(media);
  EXPECT_EQ(media->dir, host_->app_dir() + "/public/system");
  EXPECT_EQ(media->uid, 991u);
  EXPECT_EQ(media->gid, 991u);

  host_->ClearCalls();
  RunServices(*compose, false);
  RunServices(*compose, true);
  calls = host_->Calls("docker");
  ASSERT_THAT(calls, SizeIs(2));
  EXPECT_THAT(calls[0].argv,
              ElementsAre("compose", "-f", file, "stop", "web", "streaming", "sidekiq"));
  EXPECT_THAT(calls[1].argv,
              ElementsAre("compose", "-f", file, "start", "web", "streaming", "sidekiq"));
  EXPECT_EQ(calls[0].cwd, host_->app_dir());

  // Migrations run in the web image; the agent cannot read the image's
  // code, so the check is what the output announced.
  host_->ClearCalls();
  auto migrated =
      RunDbMigrate(*compose, v1::MIGRATION_PHASE_PRE_DEPLOYMENT, *db, Context("migrate"));
  ASSERT_OK(migrated);
  EXPECT_THAT(migrated->migrations(), ElementsAre("20240101000000 AddThing1"));
  calls = host_->Calls("docker");
  ASSERT_THAT(calls, SizeIs(1));
  EXPECT_THAT(calls[0].argv, ElementsAre("compose", "-f", file, "run", "--rm", "-e",
                                         "SKIP_POST_DEPLOYMENT_MIGRATIONS=true", "web", "bundle",
                                         "exec", "rails", "db:migrate"));
  EXPECT_TRUE(calls[0].tty);

  host_->ClearCalls();
  v1::CleanupOptions cleanup;
  cleanup.set_media_days(7);
  cleanup.set_remove_headers(true);
  cleanup.set_concurrency(2);
  auto commands = CleanupCommands(cleanup, 5);
  ASSERT_OK(commands);
  for (const auto& args : *commands) ASSERT_OK(RunTootctl(*compose, args, Context("cleanup")));
  calls = host_->Calls("docker");
  ASSERT_THAT(calls, SizeIs(2));
  EXPECT_THAT(calls[0].argv,
              ElementsAre("compose", "-f", file, "run", "--rm", "web", "bin/tootctl",
                          "preview_cards", "remove", "--days", "1", "--concurrency", "2"));
  EXPECT_THAT(calls[1].argv,
              ElementsAre("compose", "-f", file, "run", "--rm", "web", "bin/tootctl", "media",
                          "remove", "--days", "7", "--concurrency", "2", "--remove-headers"));
  // Inside the "container": the image's directory and the env file.
  FakeCall tootctl = host_->Calls("tootctl")[0];
  EXPECT_EQ(tootctl.cwd, host_->compose_app_dir());
  EXPECT_THAT(tootctl.env, Contains(Pair("LOCAL_DOMAIN", "example.social")));

  // The db container is down: a clear error.
  host_->Set("DOCKER_DB_RUNNING", "0");
  EXPECT_THAT(compose->Database(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                            HasSubstr("docker compose up -d db")));
}

TEST_F(RuntimeTest, SystemdRunsTasksAsTheAppUserInLiveWithRailsEnv) {
  StartPostgres();
  ASSERT_OK(pg_->Exec("CREATE DATABASE mastodon_production"));
  host_->InstallSystemd(absl::StrCat("DB_HOST=", pg_->cluster()->socket_dir(),
                                     "\nDB_PORT=", pg_->cluster()->port(),
                                     "\nDB_USER=postgres\nDB_NAME=mastodon_production\n"
                                     "PAPERCLIP_ROOT_PATH=/srv/mastodon-media\n"));
  FakeHost::AddMigrations(host_->app_dir(), {"20240101000000", "20240202000000"},
                          {"20250601000000"});
  auto systemd = Detect("systemd");
  ASSERT_NE(systemd, nullptr);
  auto db = systemd->Database();
  ASSERT_OK(db);
  EXPECT_EQ(db->database, "mastodon_production");

  auto media = systemd->Media();
  ASSERT_OK(media);
  EXPECT_EQ(media->dir, "/srv/mastodon-media");
  EXPECT_EQ(media->owner, "mastodon");
  EXPECT_EQ(media->uid, env_->OwnerOf(host_->app_dir())->uid);

  RunServices(*systemd, false);
  RunServices(*systemd, true);
  std::vector<FakeCall> calls = host_->Calls("systemctl");
  ASSERT_THAT(calls, SizeIs(2));
  EXPECT_THAT(calls[0].argv,
              ElementsAre("stop", "mastodon-web", "mastodon-sidekiq", "mastodon-streaming"));
  EXPECT_THAT(calls[1].argv,
              ElementsAre("start", "mastodon-streaming", "mastodon-sidekiq", "mastodon-web"));

  host_->ClearCalls();
  auto migrated = RunDbMigrate(*systemd, v1::MIGRATION_PHASE_ALL, *db, Context("migrate"));
  ASSERT_OK(migrated);
  EXPECT_THAT(migrated->migrations(), SizeIs(3));
  EXPECT_EQ(migrated->schema_version_after(), "20250601000000");
  calls = host_->Calls("runuser");
  ASSERT_THAT(calls, SizeIs(1));
  EXPECT_THAT(calls[0].argv,
              ElementsAre("-u", "mastodon", "--", "bundle", "exec", "rails", "db:migrate"));
  EXPECT_EQ(calls[0].cwd, host_->app_dir());
  EXPECT_THAT(calls[0].env, Contains(Pair("RAILS_ENV", "production")));
  EXPECT_THAT(calls[0].env["PATH"],
              ::testing::StartsWith(host_->dir() + "/home/mastodon/.rbenv/shims:"));

  host_->ClearCalls();
  auto removed = RunTootctl(*systemd, {"media", "remove", "--days", "3"}, Context("cleanup"));
  ASSERT_OK(removed);
  EXPECT_EQ(removed->summary_count(), 5);
  calls = host_->Calls("runuser");
  ASSERT_THAT(calls, SizeIs(1));
  EXPECT_THAT(calls[0].argv,
              ElementsAre("-u", "mastodon", "--", "bin/tootctl", "media", "remove", "--days", "3"));
  FakeCall tootctl = host_->Calls("tootctl")[0];
  EXPECT_EQ(tootctl.cwd, host_->app_dir());
  EXPECT_EQ(tootctl.env["USER"], "mastodon");
  EXPECT_TRUE(tootctl.tty);
}

TEST_F(RuntimeTest, TootctlFailuresAndCancellation) {
  host_->InstallSnap("host=/nowhere");
  auto snap = Detect("snap");
  ASSERT_NE(snap, nullptr);
  // tootctl refuses (Thor error, exit 1): the error carries its message.
  host_->Set("TOOTCTL_FAIL", "media remove");
  EXPECT_THAT(RunTootctl(*snap, {"media", "remove", "--days", "1"}, Context("cleanup")),
              StatusIs(absl::StatusCode::kUnknown,
                       HasSubstr("unable to run 'tootctl media remove --days 1': exited with "
                                 "status 1; output: Redis::CannotConnectError")));
  // A slow run is cancelled promptly (SIGTERM to the process group).
  host_->Set("TOOTCTL_ITEMS", "60");
  host_->Set("TOOTCTL_SLEEP", "1");
  CancelToken cancel;
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    cancel.Cancel();
  });
  absl::Time start = absl::Now();
  auto result = RunTootctl(*snap, {"media", "refresh", "--days", "1"}, Context("refresh", &cancel));
  canceller.join();
  EXPECT_THAT(result, StatusIs(absl::StatusCode::kCancelled));
  EXPECT_LT(absl::Now() - start, absl::Seconds(20));
}

TEST(MastodonVersionTest, ReadsVersionRb) {
  EXPECT_EQ(ParseMastodonVersionRb("module Mastodon\n  module Version\n    module_function\n"
                                   "    def major\n      4\n    end\n    def minor\n      6\n"
                                   "    end\n    def patch\n      12\n    end\n"),
            "4.6.12");
  EXPECT_EQ(ParseMastodonVersionRb("def major\n 4\nend\n"), "");
  EXPECT_EQ(ParseMastodonVersionRb(""), "");
}

TEST_F(RuntimeTest, TaskOptionsAreCheckedAndDefaultsAreTheSnapsOnes) {
  EXPECT_EQ(DefaultConcurrency(1), 1);
  EXPECT_EQ(DefaultConcurrency(2), 5);
  EXPECT_EQ(DefaultConcurrency(16), 8);
  v1::MediaRefreshOptions refresh;
  EXPECT_THAT(MediaRefreshCommands(refresh, 5),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs a source")));
  refresh.set_account("alice@example.org");
  refresh.set_build_feeds(true);
  auto commands = MediaRefreshCommands(refresh, 5);
  ASSERT_OK(commands);
  EXPECT_THAT(*commands, ElementsAre(ElementsAre("media", "refresh", "--account",
                                                 "alice@example.org", "--concurrency", "5"),
                                     ElementsAre("feeds", "build", "--all", "--concurrency", "5")));
  refresh.set_domain("--evil");
  EXPECT_THAT(MediaRefreshCommands(refresh, 5), StatusIs(absl::StatusCode::kInvalidArgument));
  refresh.set_domain("");
  refresh.set_status_id("12;rm");
  EXPECT_THAT(MediaRefreshCommands(refresh, 5), StatusIs(absl::StatusCode::kInvalidArgument));
  v1::CleanupOptions cleanup;
  cleanup.set_prune_profiles(true);
  cleanup.set_include_follows(true);
  auto c = CleanupCommands(cleanup, 8);
  ASSERT_OK(c);
  EXPECT_THAT(
      *c, ElementsAre(ElementsAre("preview_cards", "remove", "--days", "1", "--concurrency", "8"),
                      ElementsAre("media", "remove", "--days", "1", "--concurrency", "8",
                                  "--prune-profiles", "--include-follows")));
  cleanup.set_media_days(-1);
  EXPECT_THAT(CleanupCommands(cleanup, 8), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace mastodon_restore

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::FakeHost;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ServicesTest : public RuntimeTest {};

TEST_F(ServicesTest, ServicesComeBackAfterAFailureUnlessAsked) {
  host_->InstallSystemd("DB_HOST=/nowhere\n");
  auto systemd = Detect("systemd");
  ASSERT_NE(systemd, nullptr);
  auto tools = [this] {
    std::vector<std::string> seen;
    for (const auto& c : host_->Calls()) seen.push_back(c.argv.empty() ? c.tool : c.argv[0]);
    return seen;
  };
  // Success: stop, work, start.
  bool ran = false;
  EXPECT_OK(WithServicesStopped(*systemd, Context("services"), false, [&] {
    ran = true;
    EXPECT_THAT(tools(), ElementsAre("stop"));
    return absl::OkStatus();
  }));
  EXPECT_TRUE(ran);
  EXPECT_THAT(tools(), ElementsAre("stop", "start"));

  // The work fails: the services still come back, and its error is the one
  // returned.
  host_->ClearCalls();
  EXPECT_THAT(WithServicesStopped(*systemd, Context("services"), false,
                                  [] { return absl::DataLossError("load failed"); }),
              StatusIs(absl::StatusCode::kDataLoss, "load failed"));
  EXPECT_THAT(tools(), ElementsAre("stop", "start"));

  // Asked to keep them stopped for inspection.
  host_->ClearCalls();
  EXPECT_THAT(WithServicesStopped(*systemd, Context("services"), true,
                                  [] { return absl::DataLossError("load failed"); }),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(tools(), ElementsAre("stop"));
  EXPECT_THAT(reporter_.warnings, ::testing::Contains(HasSubstr("stay stopped as asked")));

  // A start that fails after a good run is the error.
  host_->ClearCalls();
  host_->Set("SYSTEMCTL_FAIL", "start");
  EXPECT_THAT(
      WithServicesStopped(*systemd, Context("services"), false, [] { return absl::OkStatus(); }),
      StatusIs(absl::StatusCode::kUnknown,
               HasSubstr("unable to start the app services ('systemctl start "
                         "mastodon-streaming mastodon-sidekiq mastodon-web')")));
  // A stop that fails: the work does not run.
  host_->Set("SYSTEMCTL_FAIL", "stop");
  ran = false;
  EXPECT_THAT(WithServicesStopped(*systemd, Context("services"), false,
                                  [&] {
                                    ran = true;
                                    return absl::OkStatus();
                                  }),
              StatusIs(absl::StatusCode::kUnknown, HasSubstr("unable to stop")));
  EXPECT_FALSE(ran);
}

}  // namespace
}  // namespace mastodon_restore
