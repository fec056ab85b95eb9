// The missing-media count (media/missing_media.h) against a real
// PostgreSQL 15 holding Mastodon's media columns and a real media
// directory: present, lost and re-fetchable files at Paperclip's paths
// (cache/ for remote records from storage schema version 1, 18-digit ids),
// hostile file names and symlinks never followed, tables with row-level
// security left unread, and the grouping of the refetch into tootctl scopes.
#include "agent/media/missing_media.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "agent/app/app_tasks.h"
#include "agent/database/pg_connection.h"
#include "tests/harness/mastodon_media_schema.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"
#include "tests/harness/test_s3.h"

namespace mastodon_restore {
namespace {

namespace v1 = ::mastodon::restore::v1;
using ::mastodon_restore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// The local files the fixture's records name that are not there (a symlink
// where a file should be and a symlinked record directory count as
// missing; in a bucket, they are simply absent).
const std::vector<std::string> kLocalMissing = {
    "media_attachment 2 media_attachments/files/000/000/002/original/dog.jpg",
    "media_attachment 41 media_attachments/files/000/000/041/original/sym.png",
    "media_attachment 43 media_attachments/files/000/000/043/original/passwd",
    "header 1 accounts/headers/000/000/001/original/h.png"};

class MissingMediaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pg = testing::TestPostgres::Start();
    ASSERT_OK(pg);
    pg_ = std::move(*pg);
    ASSERT_OK(pg_->Exec("CREATE DATABASE app"));
    ASSERT_OK(pg_->Exec(testing::kMastodonMediaTablesSql, "app"));
    ASSERT_OK(pg_->Exec(R"sql(
      INSERT INTO accounts VALUES
        (1, 'alice', NULL, 'alice.png', 'h.png', 1, 1),
        (9, 'bob', 'remote.example', 'remote.png', NULL, 1, NULL),
        (10, '-evil', 'x.example', 'e.png', NULL, 1, NULL),
        (11, 'carol', 'many.example', NULL, NULL, 1, 1),
        (12, 'dave', 'few.example', NULL, '', 1, 1);
      INSERT INTO media_attachments VALUES
        (109000001234567890, 1, 1, 'cat.jpg', '', 1),
        (2, 1, 1, 'dog.jpg', '', 1),
        (3, 100, 9, 'a.png', 'https://remote.example/a.png', 1),
        (4, 100, 9, 'b.png', 'https://remote.example/b.png', 0),
        (5, NULL, 9, 'c.png', 'https://remote.example/c.png', 1),
        (30, 300, 12, 'd.png', 'https://few.example/d.png', 1),
        (31, 301, 12, 'e.png', 'https://few.example/e.png', 1),
        (40, 1, 1, '../../../../etc/passwd', '', 1),
        (41, 1, 1, 'sym.png', '', 1),
        (42, 100, 9, NULL, 'https://remote.example/never-fetched.png', 1),
        (43, 1, 1, 'passwd', '', 1);
      INSERT INTO media_attachments
        SELECT 20 + i, 200 + i, 11, 'm.png', 'https://many.example/m.png', 1
        FROM generate_series(0, 6) AS i;
      INSERT INTO custom_emojis VALUES (1, 'blobcat', NULL, 'blobcat.png', 1),
        (2, 'remote_cat', 'remote.example', 'remote_cat.png', 1);
    )sql",
                        "app"));
    auto dir = testing::MakeTempDir("mr-missing-media-");
    ASSERT_OK(dir);
    dir_ = *dir;
    media_ = dir_ + "/system";
    Touch("accounts/avatars/000/000/001/original/alice.png");
    Touch("media_attachments/files/109/000/001/234/567/890/original/cat.jpg");
    // A remote attachment of storage schema 0 lives outside cache/.
    Touch("media_attachments/files/000/000/004/original/b.png");
    Touch("custom_emojis/images/000/000/001/original/blobcat.png");
    // A symlink where a file should be, and a symlinked record directory
    // whose target holds the file: both missing, neither followed.
    std::filesystem::create_directories(media_ + "/media_attachments/files/000/000/041/original");
    std::filesystem::create_symlink(
        media_ + "/accounts/avatars/000/000/001/original/alice.png",
        media_ + "/media_attachments/files/000/000/041/original/sym.png");
    std::filesystem::create_directories(dir_ + "/elsewhere/original");
    std::ofstream(dir_ + "/elsewhere/original/passwd") << "x";
    std::filesystem::create_symlink(dir_ + "/elsewhere",
                                    media_ + "/media_attachments/files/000/000/043");
  }

  void Touch(const std::string& rel) {
    const std::filesystem::path p = media_ + "/" + rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << "data";
  }

  std::unique_ptr<PgSession> Connect() {
    auto session = connector_.Connect(pg_->ConnInfo(), "app");
    EXPECT_OK(session);
    return session.ok() ? std::move(*session) : nullptr;
  }

  absl::StatusOr<MissingMediaScan> Scan(int page = 5000) {
    std::unique_ptr<PgSession> db = Connect();
    MissingMediaOptions o;
    o.media_dir = media_;
    o.page = page;
    return ScanMissingMedia(db.get(), o);
  }

  static std::vector<std::string> Paths(
      const google::protobuf::RepeatedPtrField<v1::MissingMediaFile>& files) {
    std::vector<std::string> out;
    for (const v1::MissingMediaFile& f : files) {
      out.push_back(absl::StrCat(f.kind(), " ", f.id(), " ", f.path()));
    }
    return out;
  }

  std::unique_ptr<testing::TestPostgres> pg_;
  LibpqConnector connector_;
  std::string dir_;
  std::string media_;
};

TEST_F(MissingMediaTest, CountsPresentLostAndRefetchableFilesAtPaperclipsPaths) {
  // Pages of 2 rows: the keyset walk sees every row once.
  for (int page : {5000, 2}) {
    SCOPED_TRACE(page);
    auto scan = Scan(page);
    ASSERT_OK(scan);
    const v1::MissingMedia& r = scan->report;
    EXPECT_EQ(r.media_dir(), media_);
    EXPECT_EQ(r.referenced(), 23);
    EXPECT_EQ(r.present(), 4);
    EXPECT_EQ(r.invalid_names(), 1);
    EXPECT_EQ(r.local_missing(), 4);
    EXPECT_EQ(r.remote_missing(), 14);
    EXPECT_THAT(Paths(r.local_files()), ElementsAreArray(kLocalMissing));
    ASSERT_EQ(r.remote_files_size(), 14);
    EXPECT_EQ(Paths(r.remote_files())[0],
              "media_attachment 3 cache/media_attachments/files/000/000/003/original/a.png");
    EXPECT_EQ(r.remote_files(0).account_id(), 9);
    EXPECT_EQ(r.remote_files(0).status_id(), 100);
    EXPECT_THAT(
        Paths(r.remote_files()),
        ::testing::IsSupersetOf({"avatar 9 cache/accounts/avatars/000/000/009/original/remote.png",
                                 "custom_emoji 2 cache/custom_emojis/images/000/000/002/original/"
                                 "remote_cat.png"}));
    EXPECT_EQ(scan->remote.size(), 14u);
  }
}

// An app that keeps its media in a bucket: the same files looked up among
// the bucket's keys (listed once), in a real S3-compatible server.
TEST_F(MissingMediaTest, FilesInTheAppsBucketAreLookedUpAmongItsKeys) {
  auto s3 = testing::TestS3::Start(dir_ + "/s3");
  ASSERT_OK(s3);
  ASSERT_OK((*s3)->CreateBucket("app-media"));
  for (const char* key : {"accounts/avatars/000/000/001/original/alice.png",
                          "media_attachments/files/109/000/001/234/567/890/original/cat.jpg",
                          "media_attachments/files/000/000/004/original/b.png",
                          "custom_emojis/images/000/000/001/original/blobcat.png",
                          // Not the file: a folder marker at its path, and a
                          // key outside Mastodon's folders.
                          "media_attachments/files/000/000/002/original/dog.jpg/",
                          "elsewhere/media_attachments/files/000/000/041/original/sym.png"}) {
    ASSERT_OK((*s3)->Put("app-media", key, "data"));
  }
  auto bucket = NewS3Client((*s3)->Options("app-media"));
  ASSERT_OK(bucket);
  std::unique_ptr<PgSession> db = Connect();
  MissingMediaOptions o;
  o.bucket = std::move(*bucket);
  o.page = 2;
  auto scan = ScanMissingMedia(db.get(), o);
  ASSERT_OK(scan);
  const v1::MissingMedia& r = scan->report;
  EXPECT_EQ(r.media_dir(), "s3://app-media/");
  EXPECT_EQ(r.referenced(), 23);
  EXPECT_EQ(r.present(), 4);
  EXPECT_EQ(r.invalid_names(), 1);
  EXPECT_EQ(r.local_missing(), 4);
  EXPECT_EQ(r.remote_missing(), 14);
  EXPECT_THAT(Paths(r.local_files()), ElementsAreArray(kLocalMissing));
  // A bucket the credentials do not open: the listing's error, as is.
  S3Options wrong = (*s3)->Options("app-media");
  wrong.secret_access_key = "wrong";
  o.bucket = std::move(*NewS3Client(wrong));
  EXPECT_THAT(ScanMissingMedia(db.get(), o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("SignatureDoesNotMatch")));
}

TEST_F(MissingMediaTest, ListsAreBoundedAndAMissingMediaDirectoryIsAnError) {
  std::unique_ptr<PgSession> db = Connect();
  MissingMediaOptions o;
  o.media_dir = media_;
  o.max_listed = 2;
  auto scan = ScanMissingMedia(db.get(), o);
  ASSERT_OK(scan);
  EXPECT_EQ(scan->report.local_files_size(), 2);
  EXPECT_EQ(scan->report.remote_files_size(), 2);
  EXPECT_EQ(scan->report.remote_missing(), 14);
  EXPECT_EQ(scan->remote.size(), 14u);

  o.media_dir = dir_ + "/no-such-dir";
  EXPECT_THAT(ScanMissingMedia(db.get(), o),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("media directory")));
  // A symlink in the media directory's own path is refused, not followed.
  std::filesystem::create_symlink(media_, dir_ + "/link");
  o.media_dir = dir_ + "/link";
  EXPECT_THAT(ScanMissingMedia(db.get(), o), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(MissingMediaTest, TablesWithRowLevelSecurityOrViewsAreNotRead) {
  // A dump's policy would run its functions as the agent's role.
  ASSERT_OK(
      pg_->Exec("ALTER TABLE custom_emojis ENABLE ROW LEVEL SECURITY;"
                "ALTER TABLE accounts RENAME TO accounts_table;"
                "CREATE VIEW accounts AS SELECT * FROM accounts_table",
                "app"));
  auto scan = Scan();
  ASSERT_OK(scan);
  // Only media_attachments: 17 rows, the invalid name among them.
  EXPECT_EQ(scan->report.referenced(), 17);
  EXPECT_EQ(scan->report.present(), 2);
  EXPECT_EQ(scan->report.invalid_names(), 1);
  // No handle is read from the view: every scope is a status, and bob's
  // attachment outside any status cannot be scoped.
  std::unique_ptr<PgSession> db = Connect();
  auto plan = PlanRefetch(db.get(), scan->remote, RefetchLimits());
  ASSERT_OK(plan);
  EXPECT_THAT(plan->media_accounts, ::testing::IsEmpty());
  EXPECT_THAT(plan->profile_accounts, ::testing::IsEmpty());
  EXPECT_THAT(plan->statuses, ElementsAre(100, 200, 201, 202, 203, 204, 205, 206, 300, 301));
  EXPECT_EQ(plan->not_refetchable, 1);
}

TEST_F(MissingMediaTest, OldSchemasWithoutStorageVersionsUseNoCachePrefix) {
  ASSERT_OK(
      pg_->Exec("ALTER TABLE media_attachments DROP COLUMN file_storage_schema_version", "app"));
  Touch("media_attachments/files/000/000/003/original/a.png");
  auto scan = Scan();
  ASSERT_OK(scan);
  // a.png (id 3) is now found outside cache/.
  EXPECT_EQ(scan->report.present(), 5);
  for (const v1::MissingMediaFile& f : scan->report.remote_files()) {
    if (f.kind() == "media_attachment") {
      EXPECT_THAT(f.path(), ::testing::StartsWith("media_"));
    }
  }
}

TEST_F(MissingMediaTest, TheRefetchIsScopedByStatusOrByAccount) {
  auto scan = Scan();
  ASSERT_OK(scan);
  std::unique_ptr<PgSession> db = Connect();
  auto plan = PlanRefetch(db.get(), scan->remote, RefetchLimits());
  ASSERT_OK(plan);
  // bob (9): an attachment outside any status -> by account; carol (11):
  // 7 statuses, more than 5 -> by account; dave (12): two statuses.
  EXPECT_THAT(plan->statuses, ElementsAre(300, 301));
  EXPECT_THAT(plan->media_accounts, ElementsAre("bob@remote.example", "carol@many.example"));
  EXPECT_THAT(plan->profile_accounts, ElementsAre("bob@remote.example"));
  // The remote emoji, and '-evil' whose handle would be an option to Thor.
  EXPECT_EQ(plan->not_refetchable, 2);
  EXPECT_EQ(plan->left_by_cap, 0);

  auto commands = RefetchCommands(*plan, 50, 3);
  ASSERT_OK(commands);
  EXPECT_THAT(
      *commands,
      ElementsAre(
          ElementsAre("media", "refresh", "--status", "300", "--force", "--concurrency", "3"),
          ElementsAre("media", "refresh", "--status", "301", "--force", "--concurrency", "3"),
          ElementsAre("media", "refresh", "--account", "bob@remote.example", "--force",
                      "--concurrency", "3"),
          ElementsAre("media", "refresh", "--account", "carol@many.example", "--force",
                      "--concurrency", "3"),
          ElementsAre("accounts", "refresh", "bob@remote.example")));

  // Two commands at most: the accounts come first by id, dave's two files
  // are left by the cap.
  RefetchLimits limits;
  limits.max_commands = 2;
  plan = PlanRefetch(db.get(), scan->remote, limits);
  ASSERT_OK(plan);
  EXPECT_THAT(plan->statuses, ::testing::IsEmpty());
  EXPECT_EQ(plan->media_accounts.size(), 2u);
  EXPECT_EQ(plan->left_by_cap, 2);
}

TEST(SafeAccountHandleTest, OnlyHandlesTootctlTakesAsArguments) {
  EXPECT_TRUE(SafeAccountHandle("bob@remote.example"));
  EXPECT_TRUE(SafeAccountHandle("b.o_b-1@xn--bcher-kva.example"));
  EXPECT_FALSE(SafeAccountHandle("-evil@x.example"));
  EXPECT_FALSE(SafeAccountHandle("bob@-x.example"));
  EXPECT_FALSE(SafeAccountHandle("bob"));
  EXPECT_FALSE(SafeAccountHandle("@x.example"));
  EXPECT_FALSE(SafeAccountHandle("bob@"));
  EXPECT_FALSE(SafeAccountHandle("bob@x@y"));
  EXPECT_FALSE(SafeAccountHandle("bo b@x.example"));
  EXPECT_FALSE(SafeAccountHandle("bob@x.example/evil"));
  EXPECT_FALSE(SafeAccountHandle(std::string("bob@x\nexample")));
}

}  // namespace
}  // namespace mastodon_restore
