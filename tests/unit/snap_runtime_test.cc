// The snap runtime against a FakeEnv and a FakeCommandRunner (no process
// runs): how it is detected, the exact commands it builds (the snap's
// wrappers /snap/bin/mastodon-server.*, root's HOME, the "[y/N]" answer of
// db-migrate), how it reads snap get, and how it takes failures. The
// end-to-end behaviour with the bash fakes of tests/fakes/ is in
// tests/integration/runtime_test.cc.
#include "agent/app/snap_runtime.h"

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
constexpr char kTootctl[] = "/snap/bin/mastodon-server.tootctl";
constexpr char kDbMigrate[] = "/snap/bin/mastodon-server.db-migrate";

using ::mastodon_restore::testing::RecordingReporter;

class SnapRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override { env_.executables.insert(kTootctl); }

  std::unique_ptr<Runtime> Detect(const std::string& requested = "snap") {
    std::vector<std::string> checked;
    auto runtime = DetectRuntime(requested, layout_, &runner_, &env_, &checked);
    EXPECT_OK(runtime);
    return runtime.ok() ? std::move(*runtime) : nullptr;
  }

  TaskContext Context() { return TaskContext{&runner_, &env_, nullptr, &reporter_, "task"}; }

  HostLayout layout_;  // the real locations
  FakeEnv env_;
  FakeCommandRunner runner_;
  RecordingReporter reporter_;
};

TEST_F(SnapRuntimeTest, IsDetectedByItsTootctlWrapperAndWinsOverTheOthers) {
  // A source install and a compose project as well: the snap comes first.
  env_.files["/home/mastodon/live/.env.production"] = "DB_HOST=/var/run/postgresql\n";
  env_.executables.insert("/home/mastodon/live/bin/tootctl");
  env_.files["/etc/systemd/system/mastodon-web.service"] = "[Service]\n";
  env_.files["/home/mastodon/live/docker-compose.yml"] = "image: ghcr.io/mastodon/mastodon:v4.6.5";
  std::unique_ptr<Runtime> snap = Detect("auto");
  ASSERT_NE(snap, nullptr);
  EXPECT_EQ(snap->kind(), v1::RUNTIME_KIND_SNAP);
  EXPECT_EQ(snap->name(), "snap");
  EXPECT_THAT(snap->evidence(), ElementsAre("/snap/bin/mastodon-server.tootctl is installed"));
  // Detection only looks at files.
  EXPECT_THAT(runner_.commands(), IsEmpty());
}

TEST_F(SnapRuntimeTest, AWrapperThatIsNotExecutableIsNoSnap) {
  env_.executables.clear();
  env_.files[kTootctl] = "";
  std::vector<std::string> checked;
  EXPECT_THAT(DetectRuntime("snap", layout_, &runner_, &env_, &checked),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       "unable to use the snap runtime '/snap/bin/mastodon-server.tootctl': not "
                       "installed (snap install mastodon-server)"));
  EXPECT_THAT(checked, ElementsAre("no /snap/bin/mastodon-server.tootctl"));
  // Auto moves on and finds nothing.
  checked.clear();
  auto none = DetectRuntime("auto", layout_, &runner_, &env_, &checked);
  ASSERT_OK(none);
  EXPECT_EQ(*none, nullptr);
  EXPECT_THAT(checked, SizeIs(3));
  EXPECT_EQ(checked[0], "no /snap/bin/mastodon-server.tootctl");
}

TEST_F(SnapRuntimeTest, WrapperFollowsTheLayout) {
  layout_.snap_bin_dir = "/opt/snap/bin";
  EXPECT_EQ(SnapRuntime::Wrapper(layout_, "db-migrate"),
            "/opt/snap/bin/mastodon-server.db-migrate");
  env_.executables = {"/opt/snap/bin/mastodon-server.tootctl"};
  std::unique_ptr<Runtime> snap = Detect();
  ASSERT_NE(snap, nullptr);
  auto spec = snap->Tootctl({"version"});
  ASSERT_OK(spec);
  EXPECT_THAT(spec->argv, ElementsAre("/opt/snap/bin/mastodon-server.tootctl", "version"));
}

TEST_F(SnapRuntimeTest, DbMigrateRunsTheWrapperAndAnswersItsPrompt) {
  std::unique_ptr<Runtime> snap = Detect();
  ASSERT_NE(snap, nullptr);
  // MIGRATION_PHASE_ALL and POST_DEPLOYMENT: every migration.
  auto all = snap->DbMigrate(false);
  ASSERT_OK(all);
  EXPECT_THAT(all->argv, ElementsAre(kDbMigrate));
  EXPECT_THAT(all->env, ElementsAre(kPath, "LANG=C.UTF-8", "TERM=xterm", "HOME=/root"));
  EXPECT_EQ(all->stdin_data, "y\n");  // "Do you want to continue? [y/N]"
  EXPECT_EQ(all->cwd, "");
  EXPECT_FALSE(all->uid.has_value());  // the wrapper needs root
  // PRE_DEPLOYMENT: snap run passes the variable on to rails.
  auto pre = snap->DbMigrate(true);
  ASSERT_OK(pre);
  EXPECT_THAT(pre->argv, ElementsAre(kDbMigrate));
  EXPECT_THAT(pre->env, ElementsAre(kPath, "LANG=C.UTF-8", "TERM=xterm", "HOME=/root",
                                    "SKIP_POST_DEPLOYMENT_MIGRATIONS=true"));
  EXPECT_EQ(pre->stdin_data, "y\n");
}

TEST_F(SnapRuntimeTest, TootctlRunsTheWrapperOnATerminalAsRoot) {
  std::unique_ptr<Runtime> snap = Detect();
  ASSERT_NE(snap, nullptr);
  runner_.On({kTootctl, "media", "remove", "--days", "3"},
             FakeReply::Output({"Removed 4 media attachments (approx. 1.5 MB)"}));
  auto result = RunTootctl(*snap, {"media", "remove", "--days", "3"}, Context());
  ASSERT_OK(result);
  EXPECT_EQ(result->summary_count(), 4);
  std::vector<FakeCommand> ran = runner_.commands();
  ASSERT_THAT(ran, SizeIs(1));
  EXPECT_THAT(ran[0].argv(), ElementsAre(kTootctl, "media", "remove", "--days", "3"));
  EXPECT_THAT(ran[0].env(), ElementsAre(kPath, "LANG=C.UTF-8", "TERM=xterm", "HOME=/root"));
  EXPECT_TRUE(ran[0].spec.use_pty);
  EXPECT_TRUE(ran[0].spec.stdin_data.empty());
  EXPECT_FALSE(ran[0].spec.uid.has_value());
}

TEST_F(SnapRuntimeTest, TootctlFailuresAndAMissingWrapper) {
  std::unique_ptr<Runtime> snap = Detect();
  ASSERT_NE(snap, nullptr);
  runner_.OnPrefix({kTootctl},
                   FakeReply::Fails(1, "Redis::CannotConnectError: Error connecting to Redis"));
  EXPECT_THAT(RunTootctl(*snap, {"media", "remove"}, Context()),
              StatusIs(absl::StatusCode::kUnknown,
                       "unable to run 'tootctl media remove': exited with status 1; output: "
                       "Redis::CannotConnectError: Error connecting to Redis"));
  // The snap was removed after detection.
  runner_.OnPrefix({kTootctl}, FakeReply::Missing());
  EXPECT_THAT(RunTootctl(*snap, {"media", "remove"}, Context()),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("unable to execute '/snap/bin/mastodon-server.tootctl'")));
}

TEST_F(SnapRuntimeTest, ServicesStopInOrderAndStartInReverseWithoutCancellation) {
  std::unique_ptr<Runtime> snap = Detect();
  ASSERT_NE(snap, nullptr);
  EXPECT_THAT(snap->Services(),
              ElementsAre("backend", "streaming", "sidekiq-push", "sidekiq-pull"));
  runner_.OnPrefix({"snap", "stop"}, FakeReply::Output({"Stopped."}));
  runner_.OnPrefix({"snap", "start"}, FakeReply::Output({"Started."}));
  bool ran = false;
  EXPECT_OK(WithServicesStopped(*snap, Context(), false, [&] {
    ran = true;
    return absl::OkStatus();
  }));
  EXPECT_TRUE(ran);
  std::vector<FakeCommand> cmds = runner_.commands();
  ASSERT_THAT(cmds, SizeIs(2));
  EXPECT_THAT(cmds[0].argv(),
              ElementsAre("snap", "stop", "mastodon-server.backend", "mastodon-server.streaming",
                          "mastodon-server.sidekiq-push", "mastodon-server.sidekiq-pull"));
  EXPECT_THAT(cmds[1].argv(), ElementsAre("snap", "start", "mastodon-server.sidekiq-pull",
                                          "mastodon-server.sidekiq-push",
                                          "mastodon-server.streaming", "mastodon-server.backend"));
  for (const FakeCommand& c : cmds) {
    // Only the agent's environment: no HOME for snap(8) itself.
    EXPECT_THAT(c.env(), ElementsAre(kPath, "LANG=C.UTF-8", "TERM=xterm"));
    EXPECT_EQ(c.spec.timeout, absl::Minutes(5));
    EXPECT_FALSE(c.cancellable);
    EXPECT_FALSE(c.spec.use_pty);
  }

  // snap start fails: the error names the command and snap's words.
  runner_.ClearCommands();
  runner_.OnPrefix({"snap", "start"},
                   FakeReply::Fails(1, "error: cannot perform the following tasks:\n"));
  EXPECT_THAT(WithServicesStopped(*snap, Context(), false, [] { return absl::OkStatus(); }),
              StatusIs(absl::StatusCode::kUnknown,
                       HasSubstr("unable to start the app services ('snap start "
                                 "mastodon-server.sidekiq-pull mastodon-server.sidekiq-push "
                                 "mastodon-server.streaming mastodon-server.backend'): exited "
                                 "with status 1: error: cannot perform the following tasks:")));
}

TEST_F(SnapRuntimeTest, MediaDirComesFromSnapGetOrTheDefault) {
  std::unique_ptr<Runtime> snap = Detect();
  ASSERT_NE(snap, nullptr);
  const std::vector<std::string> get = {"snap", "get", "mastodon-server", "media.dir"};
  // Never set: snap get fails and the default applies; no snap_daemon user
  // in the user database: snapd's fixed uid.
  runner_.On(get, FakeReply::Fails(1,
                                   "error: snap \"mastodon-server\" has no \"media.dir\" "
                                   "configuration option\n"));
  auto media = snap->Media();
  ASSERT_OK(media);
  EXPECT_EQ(media->dir, "/var/snap/mastodon-server/common/media");
  EXPECT_EQ(media->uid, 584788u);
  EXPECT_EQ(media->gid, 0u);
  EXPECT_EQ(media->owner, "snap_daemon:root");
  std::vector<FakeCommand> cmds = runner_.commands();
  ASSERT_THAT(cmds, SizeIs(1));
  EXPECT_THAT(cmds[0].argv(), ElementsAre("snap", "get", "mastodon-server", "media.dir"));
  EXPECT_THAT(cmds[0].env(), ElementsAre(kPath, "LANG=C.UTF-8", "TERM=xterm"));
  EXPECT_EQ(cmds[0].spec.timeout, absl::Seconds(60));

  // Set: its value (trimmed), and the user database's snap_daemon.
  env_.users["snap_daemon"] = 584789;
  runner_.On(get, FakeReply::Output({"/mnt/big/media  "}));
  media = snap->Media();
  ASSERT_OK(media);
  EXPECT_EQ(media->dir, "/mnt/big/media");
  EXPECT_EQ(media->uid, 584789u);

  // A relative value, or no snap(8) at all: the default.
  runner_.On(get, FakeReply::Output({"media"}));
  EXPECT_EQ(snap->Media()->dir, "/var/snap/mastodon-server/common/media");
  runner_.On(get, FakeReply::Missing());
  EXPECT_EQ(snap->Media()->dir, "/var/snap/mastodon-server/common/media");
}

TEST_F(SnapRuntimeTest, DatabaseCodeVersionAndEnvFile) {
  std::unique_ptr<Runtime> snap = Detect();
  ASSERT_NE(snap, nullptr);
  auto db = snap->Database();
  ASSERT_OK(db);
  EXPECT_EQ(db->conninfo,
            "host=/tmp/snap-private-tmp/snap.mastodon-server/tmp/sockets/postgres port=5432 "
            "user=postgres");
  EXPECT_EQ(db->database, "mastodon");
  EXPECT_EQ(db->owner, "mastodon");
  EXPECT_EQ(snap->EnvFilePath(), "/var/snap/mastodon-server/common/mastodon.conf");

  // The code is readable only when its db/migrate is there.
  EXPECT_EQ(snap->CodeDir(), "");
  EXPECT_EQ(snap->MastodonVersion(), "");
  const std::string code = "/var/snap/mastodon-server/current/mastodon";
  env_.dirs.insert(code + "/db/migrate");
  env_.files[code + "/lib/mastodon/version.rb"] =
      "def major\n  4\nend\ndef minor\n  6\nend\ndef patch\n  1\nend\n";
  EXPECT_EQ(snap->CodeDir(), code);
  EXPECT_EQ(snap->MastodonVersion(), "4.6.1");
  EXPECT_THAT(runner_.commands(), IsEmpty());
}

}  // namespace
}  // namespace mastodon_restore
