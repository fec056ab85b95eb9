// The planning policy of jobs/targets.h: which server, database, owner and
// media directory a request ends up with.
#include "agent/jobs/targets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/harness/fake_env.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

namespace v1 = ::mastodon::restore::v1;
using ::mastodon_restore::testing::IsOkAndHolds;
using ::mastodon_restore::testing::StatusIs;
using ::testing::HasSubstr;

// A runtime whose database and media are set by the test.
class StubRuntime : public Runtime {
 public:
  AppDatabase db{"host=/run/app", "mastodon_production", "mastodon"};
  MediaLocation media{"/srv/mastodon/public/system", 991, 991, "991:991", ""};
  v1::RuntimeKind kind() const override { return v1::RUNTIME_KIND_COMPOSE; }
  std::string name() const override { return "compose"; }
  absl::StatusOr<AppDatabase> Database() const override { return db; }
  absl::StatusOr<MediaLocation> Media() const override { return media; }
  std::vector<std::string> Services() const override { return {}; }
  std::vector<CommandSpec> ServiceCommands(bool) const override { return {}; }
  absl::StatusOr<CommandSpec> Tootctl(const std::vector<std::string>&) const override {
    return CommandSpec();
  }
  absl::StatusOr<CommandSpec> DbMigrate(bool) const override { return CommandSpec(); }
  std::string EnvFilePath() const override { return ""; }
  std::string MastodonVersion() const override { return ""; }
  std::string CodeDir() const override { return ""; }
};

class TargetsTest : public ::testing::Test {
 protected:
  TargetsTest() {
    env_.env = &fake_;
    env_.runtime = &context_;
  }
  void WithRuntime() { context_.runtime = &runtime_; }

  // A head reader that counts its calls.
  DumpHeadReader Head(v1::DumpKind kind, const std::string& name, const std::string& mastodon_db,
                      BackupEnvFacts facts = {}) {
    return [this, kind, name, mastodon_db, facts]() -> absl::StatusOr<DumpHead> {
      ++head_reads_;
      DumpHead head;
      head.dump.set_path("dump.sql");
      head.dump.set_kind(kind);
      head.dump.set_database_name(name);
      head.dump.set_mastodon_database(mastodon_db);
      head.env = facts;
      return head;
    };
  }

  testing::FakeEnv fake_;
  StubRuntime runtime_;
  RuntimeContext context_;
  JobEnv env_;
  int head_reads_ = 0;
};

TEST_F(TargetsTest, TheServerIsTheRequestsThenTheAgentsThenTheRuntimes) {
  v1::DatabaseTarget target;
  EXPECT_THAT(TargetConnInfo(target, env_), StatusIs(absl::StatusCode::kFailedPrecondition));
  WithRuntime();
  EXPECT_THAT(TargetConnInfo(target, env_), IsOkAndHolds("host=/run/app"));
  env_.target_conninfo = "host=/agent";
  EXPECT_THAT(TargetConnInfo(target, env_), IsOkAndHolds("host=/agent"));
  EXPECT_FALSE(RuntimeDatabaseFor(target, env_).has_value());
  target.set_conninfo("host=/request");
  EXPECT_THAT(TargetConnInfo(target, env_), IsOkAndHolds("host=/request"));
}

TEST_F(TargetsTest, TheRuntimesDatabaseAndOwnerNeedNoDumpHead) {
  WithRuntime();
  auto db =
      ResolveRestoreDatabase(v1::RestoreOptions(), env_, Head(v1::DUMP_KIND_DATABASE, "other", ""));
  ASSERT_OK(db);
  EXPECT_EQ(db->database, "mastodon_production");
  EXPECT_EQ(db->owner, "mastodon");
  EXPECT_EQ(db->conninfo, "host=/run/app");
  EXPECT_EQ(head_reads_, 0);
}

TEST_F(TargetsTest, WithoutARuntimeTheDumpNamesTheDatabase) {
  env_.target_conninfo = "host=/agent";
  auto plain = ResolveRestoreDatabase(
      v1::RestoreOptions(), env_, Head(v1::DUMP_KIND_DATABASE, "from_dump", "", {"env_db", "u"}));
  ASSERT_OK(plain);
  EXPECT_EQ(plain->database, "from_dump");
  EXPECT_EQ(plain->owner, "u");  // the backup's DB_USER
  auto cluster = ResolveRestoreDatabase(v1::RestoreOptions(), env_,
                                        Head(v1::DUMP_KIND_CLUSTER, "", "mastodon"));
  ASSERT_OK(cluster);
  EXPECT_EQ(cluster->database, "mastodon");
  v1::RestoreOptions source_db;
  source_db.set_source_db("chosen");
  EXPECT_THAT(ResolveRestoreDatabase(source_db, env_, Head(v1::DUMP_KIND_CLUSTER, "", "mastodon")),
              IsOkAndHolds(::testing::Field(&RestoreDatabaseTarget::database, "chosen")));
  auto env_name = ResolveRestoreDatabase(v1::RestoreOptions(), env_,
                                         Head(v1::DUMP_KIND_DATABASE, "", "", {"env_db", ""}));
  ASSERT_OK(env_name);
  EXPECT_EQ(env_name->database, "env_db");
  EXPECT_THAT(
      ResolveRestoreDatabase(v1::RestoreOptions(), env_, Head(v1::DUMP_KIND_DATABASE, "", "")),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("--target-db")));
}

TEST_F(TargetsTest, AnAskedDatabaseWinsButTheOwnerStillComesFromTheBackup) {
  env_.target_conninfo = "host=/agent";
  v1::RestoreOptions opts;
  opts.set_target_db("asked");
  auto db = ResolveRestoreDatabase(
      opts, env_, Head(v1::DUMP_KIND_DATABASE, "from_dump", "", {"", "backup_user"}));
  ASSERT_OK(db);
  EXPECT_EQ(db->database, "asked");
  EXPECT_EQ(db->owner, "backup_user");
  EXPECT_EQ(head_reads_, 1);
}

TEST_F(TargetsTest, TheMediaDirectoryLiesInsideTheConfiguredRoot) {
  v1::RestoreOptions opts;
  auto none = ResolveRestoreMedia(opts, env_);
  ASSERT_OK(none);
  EXPECT_EQ(none->dir, "");  // the media step is skipped
  opts.set_media_only(true);
  EXPECT_THAT(ResolveRestoreMedia(opts, env_), StatusIs(absl::StatusCode::kFailedPrecondition));

  WithRuntime();
  auto app = ResolveRestoreMedia(opts, env_);
  ASSERT_OK(app);
  EXPECT_EQ(app->dir, "/srv/mastodon/public/system");
  EXPECT_EQ(app->uid, 991u);
  opts.set_media_dir("/srv/mastodon/public/system/../../../../etc");
  EXPECT_THAT(ResolveRestoreMedia(opts, env_), StatusIs(absl::StatusCode::kPermissionDenied));
  opts.set_media_dir("/etc");
  EXPECT_THAT(ResolveRestoreMedia(opts, env_), StatusIs(absl::StatusCode::kPermissionDenied));
  opts.set_media_dir("/srv/mastodon/public/system/cache");
  EXPECT_THAT(ResolveRestoreMedia(opts, env_),
              IsOkAndHolds(
                  ::testing::Field(&RestoreMediaTarget::dir, "/srv/mastodon/public/system/cache")));
}

TEST_F(TargetsTest, WithoutARuntimeNewMediaFilesBelongToTheDirectorysOwner) {
  env_.media_dir = "/media";
  fake_.owners["/media"] = FileOwner{1001, 1002};
  auto media = ResolveRestoreMedia(v1::RestoreOptions(), env_);
  ASSERT_OK(media);
  EXPECT_EQ(media->uid, 1001u);
  EXPECT_EQ(media->gid, 1002u);
}

TEST_F(TargetsTest, TheMediaLockIsTheResolvedDirectory) {
  auto made = testing::MakeTempDir("mr-media-key-");
  ASSERT_OK(made);
  const std::string root = *made;
  char buf[PATH_MAX];
  ASSERT_NE(::realpath(root.c_str(), buf), nullptr);
  const std::string real_root = buf;
  ASSERT_EQ(::mkdir((root + "/m").c_str(), 0755), 0);
  // Another name for the root, and for a directory inside it.
  ASSERT_EQ(::symlink(root.c_str(), (root + "/m/up").c_str()), 0);
  ASSERT_EQ(::symlink((root + "/m").c_str(), (root + "/alias").c_str()), 0);
  ASSERT_EQ(::symlink("/etc", (root + "/out").c_str()), 0);
  env_.media_dir = root;
  v1::RestoreOptions opts;
  auto whole = ResolveRestoreMedia(opts, env_);
  ASSERT_OK(whole);
  EXPECT_EQ(whole->resolved_dir, real_root);
  opts.set_media_dir(root + "/m/up");
  auto via_link = ResolveRestoreMedia(opts, env_);
  ASSERT_OK(via_link);
  EXPECT_EQ(via_link->dir, root + "/m/up");
  EXPECT_EQ(via_link->resolved_dir, real_root);
  opts.set_media_dir(root + "/alias/new");  // not there yet: resolved as far as it exists
  auto missing = ResolveRestoreMedia(opts, env_);
  ASSERT_OK(missing);
  EXPECT_EQ(missing->resolved_dir, real_root + "/m/new");
  // A name inside the root whose symlink leads out of it.
  opts.set_media_dir(root + "/out");
  EXPECT_THAT(ResolveRestoreMedia(opts, env_),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("resolves to '/etc'")));
  testing::RemoveTree(root);
}

TEST_F(TargetsTest, AppTasksNeedARuntimeAndSayWhatWasChecked) {
  context_.checked = {"no /snap/bin/mastodon-server.tootctl"};
  EXPECT_THAT(AppRuntime("cleanup", env_),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("cleanup needs a Mastodon runtime and none was found (no "
                                 "/snap/bin/mastodon-server.tootctl)")));
  WithRuntime();
  EXPECT_THAT(AppRuntime("cleanup", env_), IsOkAndHolds(&runtime_));
}

}  // namespace
}  // namespace mastodon_restore
