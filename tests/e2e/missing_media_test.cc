// End-to-end: the media check after a restore, with the real agent and CLI,
// a real PostgreSQL and a backup made by real pg_dump beside its media tree,
// on a fake snap host whose tootctl downloads remote media as Mastodon's
// does (tests/fakes/tootctl): the lost local file is listed, the remote
// copies are counted, then fetched again by tootctl commands scoped to
// exactly them (--refetch-missing-remote-media) and counted again.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/fake_host.h"
#include "tests/harness/mastodon_media_schema.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace e2e {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

class MissingMediaCliTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    RequireDumpFixtures();
    StartPostgres();
    CreateSnapHost();
  }

  // dir_/backups/mm: a pg_dump of Mastodon's media columns and the media
  // tree, which lacks one local file (dog.jpg) and the remote copies.
  std::string MakeBackup() {
    EXPECT_OK(pg_->Exec("CREATE DATABASE source"));
    EXPECT_OK(pg_->Exec(testing::kMastodonMediaTablesSql, "source"));
    EXPECT_OK(pg_->Exec(R"sql(
      INSERT INTO accounts VALUES (1, 'alice', NULL, 'alice.png', NULL, 1, 1),
        (9, 'bob', 'remote.example', 'remote.png', NULL, 1, 1);
      INSERT INTO media_attachments VALUES (1, 1, 1, 'cat.jpg', '', 1),
        (2, 1, 1, 'dog.jpg', '', 1),
        (3, 100, 9, 'a.png', 'https://remote.example/a.png', 1);
    )sql",
                        "source"));
    const std::string backup = dir_ + "/backups/mm";
    std::filesystem::create_directories(backup);
    CommandSpec spec;
    spec.argv = {pg_->bin_dir() + "/pg_dump", "-d", pg_->ConnInfo("source"), "-f",
                 backup + "/mastodon.sql"};
    spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
    spec.timeout = absl::Minutes(2);
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    EXPECT_EQ(r.ok() ? r->exit_code : -1, 0);
    for (const char* rel : {"accounts/avatars/000/000/001/original/alice.png",
                            "media_attachments/files/000/000/001/original/cat.jpg"}) {
      const std::filesystem::path p = backup + "/public/system/" + rel;
      std::filesystem::create_directories(p.parent_path());
      std::ofstream(p) << "image";
    }
    return backup;
  }

  void StartSnapAgent() {
    HostLayout layout = host_->Layout();
    std::filesystem::create_directories(host_->dir() + "/common");
    std::ofstream(host_->dir() + "/common/mastodon.conf")
        << "LOCAL_DOMAIN=snap.example\nSECRET_KEY_BASE=host-secret\n";
    StartAgent({"--runtime", "snap", "--snap-bin-dir", layout.snap_bin_dir, "--snap-app-dir",
                layout.snap_app_dir, "--snap-common-dir", host_->dir() + "/common",
                "--snap-postgres", pg_->ConnInfo(""), "--host-path", layout.host_path});
  }

  // The fake tootctl's calls, as "arg arg ...".
  std::vector<std::string> TootctlCalls() {
    std::vector<std::string> out;
    for (const testing::FakeCall& c : host_->Calls("mastodon-server.tootctl")) {
      out.push_back(absl::StrJoin(c.argv, " "));
    }
    return out;
  }
};

TEST_F(MissingMediaCliTest, LostFilesAreListedAndRemoteCopiesFetchedAgainOnRequest) {
  const std::string backup = MakeBackup();
  StartSnapAgent();
  const std::string media = host_->dir() + "/media";

  CommandResult r = CliOnSocket({"--timeout", "120s", "restore", backup});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text,
              HasSubstr("media check    5 files referenced, 2 present; 1 local missing (lost), 2 "
                        "remote missing (re-fetchable)\n"));
  EXPECT_THAT(r.stdout_text, HasSubstr("missing        local media_attachment 2: "
                                       "media_attachments/files/000/000/002/original/dog.jpg\n"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("missing        remote media_attachment 3: "
                        "cache/media_attachments/files/000/000/003/original/a.png\n"));
  EXPECT_THAT(r.stdout_text, HasSubstr("missing        remote avatar 9: "
                                       "cache/accounts/avatars/000/000/009/original/remote.png\n"));
  EXPECT_THAT(r.stdout_text, HasSubstr("2 copies of remote media are missing: fetch them again "
                                       "with --refetch-missing-remote-media"));
  for (const std::string& call : TootctlCalls()) {
    EXPECT_THAT(call, Not(HasSubstr("--status")));
  }

  host_->ClearCalls();
  r = CliOnSocket({"--timeout", "120s", "restore", "--refetch-missing-remote-media", backup});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  // Exactly the status and the account concerned; --force, as tootctl
  // skips an attachment whose file name is set.
  EXPECT_THAT(TootctlCalls(), Contains(HasSubstr("media refresh --status 100 --force")));
  EXPECT_THAT(TootctlCalls(), Contains("accounts refresh bob@remote.example"));
  EXPECT_TRUE(std::filesystem::is_regular_file(media + "/cache/media_attachments/files/000/000/003/"
                                                       "original/a.png"));
  EXPECT_TRUE(std::filesystem::is_regular_file(
      media + "/cache/accounts/avatars/000/000/009/original/remote.png"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("media check    5 files referenced, 2 present; 1 local missing (lost), 2 "
                        "remote missing (re-fetchable); 2 tootctl commands fetched 2 again, 0 "
                        "still missing\n"));
  EXPECT_THAT(r.stdout_text, Not(HasSubstr("copies of remote media are")));

  // Counted again from scratch: only the lost file is missing now.
  host_->ClearCalls();
  r = CliOnSocket({"--timeout", "120s", "restore", "--refetch-missing-remote-media", backup});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text,
              HasSubstr("media check    5 files referenced, 4 present; 1 local missing (lost), 0 "
                        "remote missing (re-fetchable)\n"));
  for (const std::string& call : TootctlCalls()) {
    EXPECT_THAT(call, Not(HasSubstr("--status")));
  }
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
