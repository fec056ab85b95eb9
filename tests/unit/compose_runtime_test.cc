// The compose runtime against a FakeEnv and a FakeCommandRunner (no process
// runs): how a compose project is found, the exact `docker compose -f FILE`
// commands it builds (tasks in `run --rm web`, SKIP_POST_DEPLOYMENT_MIGRATIONS
// with -e), how it finds the db container from .env.production, and how it
// takes failures. The end-to-end behaviour with the bash fakes of
// tests/fakes/ is in tests/integration/runtime_test.cc.
#include "agent/app/compose_runtime.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/app/app_tasks.h"
#include "tests/harness/fake_command_runner.h"
#include "tests/harness/fake_env.h"
#include "tests/harness/recording_reporter.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace {

namespace v1 = ::mastodon::restore::v1;
using ::mastodon_restore::testing::FakeCommand;
using ::mastodon_restore::testing::FakeCommandRunner;
using ::mastodon_restore::testing::FakeEnv;
using ::mastodon_restore::testing::FakeReply;
using ::mastodon_restore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

constexpr char kPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr char kDir[] = "/opt/mastodon";
constexpr char kFile[] = "/opt/mastodon/docker-compose.yml";
constexpr char kInspectFormat[] = "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}";

using ::mastodon_restore::testing::RecordingReporter;

class ComposeRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.files[kFile] =
        "services:\n  db:\n    image: postgres:14-alpine\n  web:\n"
        "    image: ghcr.io/mastodon/mastodon:v4.6.5\n    env_file: .env.production\n";
    env_.files[std::string(kDir) + "/.env.production"] =
        "LOCAL_DOMAIN=example.social\nDB_HOST=db\nDB_USER=postgres\nDB_PASS=compose-secret\n";
  }

  std::unique_ptr<Runtime> Detect(const std::string& requested = "compose") {
    std::vector<std::string> checked;
    auto runtime = DetectRuntime(requested, layout_, &runner_, &env_, &checked);
    EXPECT_OK(runtime);
    return runtime.ok() ? std::move(*runtime) : nullptr;
  }

  std::vector<std::string> Compose(std::vector<std::string> args) {
    std::vector<std::string> argv = {"docker", "compose", "-f", kFile};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  TaskContext Context() { return TaskContext{&runner_, &env_, nullptr, &reporter_, "task"}; }

  HostLayout layout_;  // the real locations
  FakeEnv env_;
  FakeCommandRunner runner_;
  RecordingReporter reporter_;
};

TEST_F(ComposeRuntimeTest, IsDetectedByAComposeFileThatRunsTheMastodonImage) {
  std::unique_ptr<Runtime> compose = Detect("auto");
  ASSERT_NE(compose, nullptr);
  EXPECT_EQ(compose->kind(), v1::RUNTIME_KIND_COMPOSE);
  EXPECT_EQ(compose->name(), "compose");
  EXPECT_THAT(compose->evidence(),
              ElementsAre("/opt/mastodon/docker-compose.yml runs the Mastodon image"));
  EXPECT_EQ(compose->MastodonVersion(), "4.6.5");
  EXPECT_EQ(compose->CodeDir(), "");
  EXPECT_EQ(compose->EnvFilePath(), "/opt/mastodon/.env.production");
  EXPECT_THAT(runner_.commands(), IsEmpty());

  // The first directory (the source install's place) is searched first,
  // and a compose file of something else is passed over.
  env_.files["/home/mastodon/live/compose.yaml"] = "services:\n  x:\n    image: nginx\n";
  env_.files["/home/mastodon/live/compose.yml"] = "image: tootsuite/mastodon:v3.5.3\n";
  std::vector<std::string> checked;
  auto found = DetectRuntime("auto", layout_, &runner_, &env_, &checked);
  ASSERT_OK(found);
  ASSERT_NE(*found, nullptr);
  EXPECT_THAT((*found)->evidence(),
              ElementsAre("/home/mastodon/live/compose.yml runs the Mastodon image"));
  EXPECT_EQ((*found)->MastodonVersion(), "3.5.3");
  EXPECT_THAT(checked, ElementsAre("no /snap/bin/mastodon-server.tootctl",
                                   "no source install in /home/mastodon/live",
                                   "/home/mastodon/live/compose.yaml does not run the Mastodon "
                                   "image"));
}

TEST_F(ComposeRuntimeTest, NoProjectIsRefusedWhenAskedFor) {
  env_.files.clear();
  std::vector<std::string> checked;
  EXPECT_THAT(DetectRuntime("compose", layout_, &runner_, &env_, &checked),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "unable to use the compose runtime '/home/mastodon/live': no "
                       "docker-compose.yml running the Mastodon image"));
  EXPECT_THAT(checked, ElementsAre("no compose file with the Mastodon image in "
                                   "/home/mastodon/live, /opt/mastodon, /srv/mastodon"));
  EXPECT_THAT(DetectRuntime("kubernetes", layout_, &runner_, &env_, &checked),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown runtime")));
}

TEST_F(ComposeRuntimeTest, DbMigrateRunsRailsInAThrowawayWebContainer) {
  std::unique_ptr<Runtime> compose = Detect();
  ASSERT_NE(compose, nullptr);
  // MIGRATION_PHASE_ALL and POST_DEPLOYMENT.
  auto all = compose->DbMigrate(false);
  ASSERT_OK(all);
  EXPECT_EQ(all->argv, Compose({"run", "--rm", "web", "bundle", "exec", "rails", "db:migrate"}));
  EXPECT_THAT(all->env, ElementsAre(kPath, "LANG=C.UTF-8", "TERM=xterm"));
  EXPECT_EQ(all->cwd, kDir);
  EXPECT_EQ(all->stdin_data, "");
  // PRE_DEPLOYMENT: the variable must reach the container, so it is -e (the
  // agent's environment stays docker's).
  auto pre = compose->DbMigrate(true);
  ASSERT_OK(pre);
  EXPECT_EQ(pre->argv, Compose({"run", "--rm", "-e", "SKIP_POST_DEPLOYMENT_MIGRATIONS=true", "web",
                                "bundle", "exec", "rails", "db:migrate"}));
  EXPECT_THAT(pre->env, ElementsAre(kPath, "LANG=C.UTF-8", "TERM=xterm"));
  EXPECT_EQ(pre->cwd, kDir);
}

TEST_F(ComposeRuntimeTest, TootctlRunsBinTootctlInTheWebImage) {
  std::unique_ptr<Runtime> compose = Detect();
  ASSERT_NE(compose, nullptr);
  runner_.On(
      Compose({"run", "--rm", "web", "bin/tootctl", "preview_cards", "remove", "--days", "1"}),
      FakeReply::Output({"Removed media from 3 preview cards (approx. 320 KB)"}));
  auto result = RunTootctl(*compose, {"preview_cards", "remove", "--days", "1"}, Context());
  ASSERT_OK(result);
  EXPECT_EQ(result->summary_count(), 3);
  std::vector<FakeCommand> ran = runner_.commands();
  ASSERT_THAT(ran, SizeIs(1));
  EXPECT_EQ(ran[0].spec.cwd, kDir);
  EXPECT_THAT(ran[0].env(), ElementsAre(kPath, "LANG=C.UTF-8", "TERM=xterm"));
  EXPECT_TRUE(ran[0].spec.use_pty);

  // docker is not installed.
  runner_.OnPrefix({"docker"}, FakeReply::Missing());
  EXPECT_THAT(RunTootctl(*compose, {"media", "remove"}, Context()),
              StatusIs(absl::StatusCode::kNotFound,
                       "unable to find program 'docker': not in PATH (/usr/local/sbin:/usr/local/"
                       "bin:/usr/sbin:/usr/bin:/sbin:/bin)"));
}

TEST_F(ComposeRuntimeTest, ServicesStopAndStartTogetherInTheProject) {
  std::unique_ptr<Runtime> compose = Detect();
  ASSERT_NE(compose, nullptr);
  EXPECT_THAT(compose->Services(), ElementsAre("web", "streaming", "sidekiq"));
  runner_.OnPrefix({"docker", "compose"}, FakeReply::Output({" Container live-web-1  Stopped"}));
  EXPECT_OK(WithServicesStopped(*compose, Context(), false, [] { return absl::OkStatus(); }));
  std::vector<FakeCommand> cmds = runner_.commands();
  ASSERT_THAT(cmds, SizeIs(2));
  EXPECT_EQ(cmds[0].argv(), Compose({"stop", "web", "streaming", "sidekiq"}));
  // docker compose starts them in dependency order itself.
  EXPECT_EQ(cmds[1].argv(), Compose({"start", "web", "streaming", "sidekiq"}));
  for (const FakeCommand& c : cmds) {
    EXPECT_EQ(c.spec.cwd, kDir);
    EXPECT_THAT(c.env(), ElementsAre(kPath, "LANG=C.UTF-8", "TERM=xterm"));
    EXPECT_EQ(c.spec.timeout, absl::Minutes(5));
    EXPECT_FALSE(c.cancellable);
  }

  // A failed stop: the work does not run and nothing is started.
  runner_.ClearCommands();
  runner_.On(Compose({"stop", "web", "streaming", "sidekiq"}),
             FakeReply::Fails(1, "Cannot connect to the Docker daemon\n"));
  bool ran = false;
  EXPECT_THAT(WithServicesStopped(*compose, Context(), false,
                                  [&] {
                                    ran = true;
                                    return absl::OkStatus();
                                  }),
              StatusIs(absl::StatusCode::kUnknown,
                       HasSubstr("exited with status 1: Cannot connect to the Docker daemon")));
  EXPECT_FALSE(ran);
  EXPECT_THAT(runner_.commands(), SizeIs(1));
}

TEST_F(ComposeRuntimeTest, DatabaseIsTheDbContainerOnTheProjectNetwork) {
  std::unique_ptr<Runtime> compose = Detect();
  ASSERT_NE(compose, nullptr);
  runner_.On(Compose({"ps", "-q", "db"}), FakeReply::Output({"c0ffee0123456789"}));
  runner_.On({"docker", "inspect", "--format", kInspectFormat, "c0ffee0123456789"},
             FakeReply::Output({"172.18.0.2 "}));
  auto db = compose->Database();
  ASSERT_OK(db);
  // database.yml's defaults for what the env file leaves out.
  EXPECT_EQ(db->conninfo,
            "host='172.18.0.2' port='5432' user='postgres' password='compose-secret'");
  EXPECT_EQ(db->database, "mastodon_production");
  EXPECT_EQ(db->owner, "postgres");
  std::vector<FakeCommand> cmds = runner_.commands();
  ASSERT_THAT(cmds, SizeIs(2));
  EXPECT_EQ(cmds[0].spec.cwd, kDir);
  EXPECT_EQ(cmds[1].spec.cwd, "");
  for (const FakeCommand& c : cmds) {
    EXPECT_THAT(c.env(), ElementsAre(kPath, "LANG=C.UTF-8", "TERM=xterm"));
    // The password is never on argv.
    for (const std::string& a : c.argv()) EXPECT_THAT(a, ::testing::Not(HasSubstr("secret")));
  }
}

TEST_F(ComposeRuntimeTest, DatabaseSettingsOfTheEnvFile) {
  std::unique_ptr<Runtime> compose = Detect();
  ASSERT_NE(compose, nullptr);
  // An address or a socket directory is used as it is: no command.
  env_.files["/opt/mastodon/.env.production"] =
      "DB_HOST=10.0.0.5\nDB_PORT=6432\nDB_NAME=social\nDB_USER=o'brien\nDB_SSLMODE=require\n"
      "DB_PASS=\n";
  auto db = compose->Database();
  ASSERT_OK(db);
  EXPECT_EQ(db->conninfo, "host='10.0.0.5' port='6432' user='o\\'brien' sslmode='require'");
  EXPECT_EQ(db->database, "social");
  EXPECT_EQ(db->owner, "o'brien");
  env_.files["/opt/mastodon/.env.production"] = "DB_HOST=/var/run/postgresql\n";
  EXPECT_EQ(compose->Database()->conninfo,
            "host='/var/run/postgresql' port='5432' user='mastodon'");
  EXPECT_THAT(runner_.commands(), IsEmpty());

  // No env file.
  env_.files.erase("/opt/mastodon/.env.production");
  EXPECT_THAT(compose->Database(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/opt/mastodon/.env.production")));
}

TEST_F(ComposeRuntimeTest, DatabaseFailures) {
  std::unique_ptr<Runtime> compose = Detect();
  ASSERT_NE(compose, nullptr);
  // The db service is not running.
  runner_.On(Compose({"ps", "-q", "db"}), FakeReply::Output({}));
  EXPECT_THAT(compose->Database(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "unable to find the container of service 'db': it is not running (docker "
                       "compose up -d db)"));
  // docker compose fails.
  runner_.On(Compose({"ps", "-q", "db"}),
             FakeReply::Fails(14, "no configuration file provided: not found\n"));
  EXPECT_THAT(compose->Database(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("ps -q db': exited with status 14: no configuration file "
                                 "provided: not found")));
  // The container has no address.
  runner_.On(Compose({"ps", "-q", "db"}), FakeReply::Output({"c0ffee", "decade"}));
  runner_.On({"docker", "inspect", "--format", kInspectFormat, "c0ffee"}, FakeReply::Output({" "}));
  EXPECT_THAT(compose->Database(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "unable to find the address of container 'c0ffee': it has no network "
                       "address"));
  // docker is not installed.
  runner_.OnPrefix({"docker"}, FakeReply::Missing());
  EXPECT_THAT(compose->Database(),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("unable to find program 'docker'")));
}

TEST_F(ComposeRuntimeTest, MediaIsPublicSystemOwnedByTheImagesUser) {
  std::unique_ptr<Runtime> compose = Detect();
  ASSERT_NE(compose, nullptr);
  auto media = compose->Media();
  ASSERT_OK(media);
  EXPECT_EQ(media->dir, "/opt/mastodon/public/system");
  EXPECT_EQ(media->uid, 991u);
  EXPECT_EQ(media->gid, 991u);
  EXPECT_EQ(media->owner, "991:991");
}

}  // namespace
}  // namespace mastodon_restore
