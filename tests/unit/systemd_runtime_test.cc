// The systemd runtime (a source install) against a FakeEnv and a
// FakeCommandRunner (no process runs): how it is detected, the exact
// commands it builds (runuser -u mastodon -- ... in ~mastodon/live with
// RAILS_ENV=production and rbenv's shims first in PATH; systemctl for the
// units), the database settings of .env.production, the media directory,
// and how it takes failures. The end-to-end behaviour with the bash fakes of
// tests/fakes/ is in tests/integration/runtime_test.cc.
#include "agent/app/systemd_runtime.h"

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
using ::testing::Not;
using ::testing::SizeIs;

constexpr char kPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr char kAppPath[] =
    "PATH=/home/mastodon/.rbenv/shims:/home/mastodon/.rbenv/bin:/usr/local/sbin:/usr/local/bin:"
    "/usr/sbin:/usr/bin:/sbin:/bin";
constexpr char kLive[] = "/home/mastodon/live";
constexpr char kEnvFile[] = "/home/mastodon/live/.env.production";

using ::mastodon_restore::testing::RecordingReporter;

class SystemdRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_.files[kEnvFile] = "LOCAL_DOMAIN=example.social\nDB_HOST=/var/run/postgresql\n";
    env_.executables.insert("/home/mastodon/live/bin/tootctl");
    for (const char* unit :
         {"mastodon-streaming.service", "mastodon-sidekiq.service", "mastodon-web.service",
          "mastodon-streaming@.service", "nginx.service"}) {
      env_.files[std::string("/etc/systemd/system/") + unit] = "[Service]\n";
    }
  }

  std::unique_ptr<Runtime> Detect(const std::string& requested = "systemd") {
    std::vector<std::string> checked;
    auto runtime = DetectRuntime(requested, layout_, &runner_, &env_, &checked);
    EXPECT_OK(runtime);
    return runtime.ok() ? std::move(*runtime) : nullptr;
  }

  TaskContext Context(const CancelToken* cancel = nullptr) {
    return TaskContext{&runner_, &env_, cancel, &reporter_, "task"};
  }

  HostLayout layout_;  // the real locations
  FakeEnv env_;
  FakeCommandRunner runner_;
  RecordingReporter reporter_;
};

TEST_F(SystemdRuntimeTest, IsDetectedByTheInstallAndItsUnitsAndWinsOverCompose) {
  env_.files["/home/mastodon/live/docker-compose.yml"] = "image: ghcr.io/mastodon/mastodon:v4.6.5";
  std::unique_ptr<Runtime> systemd = Detect("auto");
  ASSERT_NE(systemd, nullptr);
  EXPECT_EQ(systemd->kind(), v1::RUNTIME_KIND_SYSTEMD);
  EXPECT_EQ(systemd->name(), "systemd");
  // Template units are not services; stop order: web, sidekiq, streaming.
  EXPECT_THAT(systemd->Services(),
              ElementsAre("mastodon-web", "mastodon-sidekiq", "mastodon-streaming"));
  EXPECT_THAT(systemd->evidence(),
              ElementsAre("/home/mastodon/live has .env.production and bin/tootctl",
                          "units in /etc/systemd/system: mastodon-web mastodon-sidekiq "
                          "mastodon-streaming"));
  EXPECT_EQ(systemd->EnvFilePath(), kEnvFile);
  EXPECT_EQ(systemd->CodeDir(), kLive);
  EXPECT_THAT(runner_.commands(), IsEmpty());
}

TEST_F(SystemdRuntimeTest, AnInstallWithoutUnitsOrWithoutTootctlIsNotOne) {
  for (const char* unit : {"mastodon-streaming.service", "mastodon-sidekiq.service",
                           "mastodon-web.service", "mastodon-streaming@.service"}) {
    env_.files.erase(std::string("/etc/systemd/system/") + unit);
  }
  std::vector<std::string> checked;
  EXPECT_THAT(DetectRuntime("systemd", layout_, &runner_, &env_, &checked),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "unable to use the systemd runtime '/home/mastodon/live': no "
                       "mastodon-*.service unit"));
  EXPECT_THAT(checked, ElementsAre("no mastodon-*.service in /etc/systemd/system"));
  env_.executables.clear();
  checked.clear();
  EXPECT_THAT(DetectRuntime("systemd", layout_, &runner_, &env_, &checked),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no .env.production and bin/tootctl")));
  EXPECT_THAT(checked, ElementsAre("no source install in /home/mastodon/live"));
}

TEST_F(SystemdRuntimeTest, DbMigrateRunsRailsAsTheAppUserInLive) {
  std::unique_ptr<Runtime> systemd = Detect();
  ASSERT_NE(systemd, nullptr);
  // MIGRATION_PHASE_ALL and POST_DEPLOYMENT.
  auto all = systemd->DbMigrate(false);
  ASSERT_OK(all);
  EXPECT_THAT(all->argv, ElementsAre("runuser", "-u", "mastodon", "--", "bundle", "exec", "rails",
                                     "db:migrate"));
  EXPECT_EQ(all->cwd, kLive);
  EXPECT_THAT(all->env,
              ElementsAre(kAppPath, "RAILS_ENV=production", "LANG=C.UTF-8", "TERM=xterm"));
  EXPECT_EQ(all->stdin_data, "");
  // runuser switches the user, not the runner.
  EXPECT_FALSE(all->uid.has_value());
  // PRE_DEPLOYMENT.
  auto pre = systemd->DbMigrate(true);
  ASSERT_OK(pre);
  EXPECT_EQ(pre->argv, all->argv);
  EXPECT_THAT(pre->env, ElementsAre(kAppPath, "RAILS_ENV=production", "LANG=C.UTF-8", "TERM=xterm",
                                    "SKIP_POST_DEPLOYMENT_MIGRATIONS=true"));
}

TEST_F(SystemdRuntimeTest, TheAppUserIsTheHomeOfLive) {
  layout_.app_dir = "/srv/toot/live";
  env_.files["/srv/toot/live/.env.production"] = "";
  env_.executables.insert("/srv/toot/live/bin/tootctl");
  std::unique_ptr<Runtime> systemd = Detect();
  ASSERT_NE(systemd, nullptr);
  auto spec = systemd->Tootctl({"version"});
  ASSERT_OK(spec);
  EXPECT_THAT(spec->argv, ElementsAre("runuser", "-u", "toot", "--", "bin/tootctl", "version"));
  EXPECT_EQ(spec->cwd, "/srv/toot/live");
  EXPECT_EQ(spec->env[0],
            "PATH=/srv/toot/.rbenv/shims:/srv/toot/.rbenv/bin:/usr/local/sbin:/usr/local/bin:"
            "/usr/sbin:/usr/bin:/sbin:/bin");
}

TEST_F(SystemdRuntimeTest, TootctlRunsOnATerminalAndCanBeCancelled) {
  std::unique_ptr<Runtime> systemd = Detect();
  ASSERT_NE(systemd, nullptr);
  const std::vector<std::string> remove = {"runuser", "-u",     "mastodon", "--", "bin/tootctl",
                                           "media",   "remove", "--days",   "3"};
  runner_.On(remove, FakeReply::Output({"Removed 5 media attachments (approx. 1.5 MB)"}));
  auto result = RunTootctl(*systemd, {"media", "remove", "--days", "3"}, Context());
  ASSERT_OK(result);
  EXPECT_EQ(result->summary_count(), 5);
  std::vector<FakeCommand> ran = runner_.commands();
  ASSERT_THAT(ran, SizeIs(1));
  EXPECT_EQ(ran[0].argv(), remove);
  EXPECT_EQ(ran[0].spec.cwd, kLive);
  EXPECT_THAT(ran[0].env(),
              ElementsAre(kAppPath, "RAILS_ENV=production", "LANG=C.UTF-8", "TERM=xterm"));
  EXPECT_TRUE(ran[0].spec.use_pty);

  // A run cancelled by the caller is CANCELLED, not a failure.
  FakeReply slow;
  slow.until_cancelled = true;
  runner_.On(remove, slow);
  CancelToken cancel;
  cancel.Cancel();
  EXPECT_THAT(
      RunTootctl(*systemd, {"media", "remove", "--days", "3"}, Context(&cancel)),
      StatusIs(absl::StatusCode::kCancelled, "tootctl media remove --days 3 was cancelled"));
  EXPECT_TRUE(runner_.commands().back().cancellable);

  // The task's timeout.
  FakeReply long_run;
  long_run.duration = absl::Hours(25);
  runner_.On(remove, long_run);
  EXPECT_THAT(RunTootctl(*systemd, {"media", "remove", "--days", "3"}, Context()),
              StatusIs(absl::StatusCode::kUnknown,
                       "unable to run 'tootctl media remove --days 3': killed by signal 15 "
                       "(Terminated) (timeout)"));
  EXPECT_EQ(runner_.commands().back().spec.timeout, absl::Hours(24));

  // runuser is missing.
  runner_.OnPrefix({"runuser"}, FakeReply::Missing());
  EXPECT_THAT(RunTootctl(*systemd, {"media", "remove", "--days", "3"}, Context()),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("unable to find program 'runuser'")));
}

TEST_F(SystemdRuntimeTest, ServicesStopInOrderAndStartInReverse) {
  std::unique_ptr<Runtime> systemd = Detect();
  ASSERT_NE(systemd, nullptr);
  runner_.OnPrefix({"systemctl"}, FakeReply());
  // The work fails: the units still come back, and its error is returned.
  EXPECT_THAT(WithServicesStopped(*systemd, Context(), false,
                                  [] { return absl::DataLossError("load failed"); }),
              StatusIs(absl::StatusCode::kDataLoss, "load failed"));
  std::vector<FakeCommand> cmds = runner_.commands();
  ASSERT_THAT(cmds, SizeIs(2));
  EXPECT_THAT(cmds[0].argv(), ElementsAre("systemctl", "stop", "mastodon-web", "mastodon-sidekiq",
                                          "mastodon-streaming"));
  EXPECT_THAT(cmds[1].argv(), ElementsAre("systemctl", "start", "mastodon-streaming",
                                          "mastodon-sidekiq", "mastodon-web"));
  for (const FakeCommand& c : cmds) {
    // systemctl runs as root with the agent's environment, not the app's.
    EXPECT_THAT(c.env(), ElementsAre(kPath, "LANG=C.UTF-8", "TERM=xterm"));
    EXPECT_EQ(c.spec.cwd, "");
    EXPECT_EQ(c.spec.timeout, absl::Minutes(5));
    EXPECT_FALSE(c.cancellable);
  }

  // systemctl stop fails (a unit's job failed).
  runner_.ClearCommands();
  runner_.OnPrefix({"systemctl", "stop"},
                   FakeReply::Fails(1,
                                    "Job for mastodon-web.service failed because the control "
                                    "process exited with error code.\n"));
  EXPECT_THAT(WithServicesStopped(*systemd, Context(), false, [] { return absl::OkStatus(); }),
              StatusIs(absl::StatusCode::kUnknown,
                       "unable to stop the app services ('systemctl stop mastodon-web "
                       "mastodon-sidekiq mastodon-streaming'): exited with status 1: Job for "
                       "mastodon-web.service failed because the control process exited with "
                       "error code."));
  EXPECT_THAT(runner_.commands(), SizeIs(1));
}

TEST_F(SystemdRuntimeTest, DatabaseSettingsComeFromEnvProduction) {
  std::unique_ptr<Runtime> systemd = Detect();
  ASSERT_NE(systemd, nullptr);
  // Only DB_HOST set: database.yml's defaults for the rest.
  auto db = systemd->Database();
  ASSERT_OK(db);
  EXPECT_EQ(db->conninfo, "host='/var/run/postgresql' port='5432' user='mastodon'");
  EXPECT_EQ(db->database, "mastodon_production");
  EXPECT_EQ(db->owner, "mastodon");

  // Everything set, quoted as the env file allows; a host name is used as it
  // is (no container to look up).
  env_.files[kEnvFile] =
      "DB_HOST=db.internal\nDB_PORT=6432\nDB_NAME=\"social\"\nexport DB_USER=toot\n"
      "DB_PASS='p a\\ss'\nDB_SSLMODE=verify-full # checked\n";
  db = systemd->Database();
  ASSERT_OK(db);
  EXPECT_EQ(db->conninfo,
            "host='db.internal' port='6432' user='toot' password='p a\\\\ss' "
            "sslmode='verify-full'");
  EXPECT_EQ(db->database, "social");
  EXPECT_EQ(db->owner, "toot");
  EXPECT_THAT(runner_.commands(), IsEmpty());

  env_.files.erase(kEnvFile);
  EXPECT_THAT(systemd->Database(), StatusIs(absl::StatusCode::kNotFound, HasSubstr(kEnvFile)));
}

TEST_F(SystemdRuntimeTest, MediaIsPaperclipRootOrPublicSystemOwnedAsLive) {
  std::unique_ptr<Runtime> systemd = Detect();
  ASSERT_NE(systemd, nullptr);
  // live/ cannot be stat'ed: no owner, no media location.
  EXPECT_THAT(systemd->Media(), StatusIs(absl::StatusCode::kNotFound, HasSubstr(kLive)));
  env_.owners[kLive] = FileOwner{1001, 1002};
  auto media = systemd->Media();
  ASSERT_OK(media);
  EXPECT_EQ(media->dir, "/home/mastodon/live/public/system");
  EXPECT_EQ(media->uid, 1001u);
  EXPECT_EQ(media->gid, 1002u);
  EXPECT_EQ(media->owner, "mastodon");
  // PAPERCLIP_ROOT_PATH when absolute.
  env_.files[kEnvFile] = "PAPERCLIP_ROOT_PATH=/srv/mastodon-media\n";
  EXPECT_EQ(systemd->Media()->dir, "/srv/mastodon-media");
  env_.files[kEnvFile] = "PAPERCLIP_ROOT_PATH=media\n";
  EXPECT_EQ(systemd->Media()->dir, "/home/mastodon/live/public/system");
}

// The bucket of S3_ENABLED in the env, as GetAgentInfo names it: endpoint
// and bucket, never the keys.
TEST_F(SystemdRuntimeTest, TheMediaBucketComesFromTheEnvWithoutItsKeys) {
  std::unique_ptr<Runtime> systemd = Detect();
  ASSERT_NE(systemd, nullptr);
  EXPECT_EQ(*RuntimeMediaBucket(*systemd, &env_), "");
  env_.files[kEnvFile] =
      "S3_ENABLED=true\nS3_BUCKET=media\nS3_ENDPOINT=https://S3.Example.com:443/\n"
      "AWS_ACCESS_KEY_ID=id\nAWS_SECRET_ACCESS_KEY=secret-key\n";
  EXPECT_EQ(*RuntimeMediaBucket(*systemd, &env_), "https://s3.example.com/media");
  // AWS's endpoint by region when none is given.
  env_.files[kEnvFile] =
      "S3_ENABLED=true\nS3_BUCKET=media\nS3_REGION=eu-west-1\n"
      "AWS_ACCESS_KEY_ID=id\nAWS_SECRET_ACCESS_KEY=secret-key\n";
  EXPECT_EQ(*RuntimeMediaBucket(*systemd, &env_), "https://s3.eu-west-1.amazonaws.com/media");
  v1::RuntimeInfo info = DescribeRuntime(*systemd, "systemd", &env_);
  EXPECT_EQ(info.media_bucket(), "https://s3.eu-west-1.amazonaws.com/media");
  EXPECT_THAT(info.DebugString(), Not(HasSubstr("secret-key")));
  // Enabled without keys: said, and no bucket in the info.
  env_.files[kEnvFile] = "S3_ENABLED=true\nS3_BUCKET=media\n";
  EXPECT_THAT(RuntimeMediaBucket(*systemd, &env_),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("AWS_ACCESS_KEY_ID")));
  EXPECT_EQ(DescribeRuntime(*systemd, "systemd", &env_).media_bucket(), "");
  // No env file: local media as far as anyone can tell.
  env_.files.erase(kEnvFile);
  EXPECT_EQ(*RuntimeMediaBucket(*systemd, &env_), "");
}

TEST_F(SystemdRuntimeTest, VersionFromTheCode) {
  std::unique_ptr<Runtime> systemd = Detect();
  ASSERT_NE(systemd, nullptr);
  EXPECT_EQ(systemd->MastodonVersion(), "");
  env_.files["/home/mastodon/live/lib/mastodon/version.rb"] =
      "module Mastodon\n  module Version\n    def major\n      4\n    end\n    def minor\n"
      "      5\n    end\n    def patch\n      9\n    end\n";
  EXPECT_EQ(systemd->MastodonVersion(), "4.5.9");
}

}  // namespace
}  // namespace mastodon_restore
