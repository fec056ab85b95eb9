// Media restore from real backups (fixtures) and from hostile archives
// written with libarchive: nothing lands outside the media directory, and a
// refused restore leaves it as it was.
#include "agent/media/media_restore.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "agent/common/cancel_token.h"
#include "agent/common/digest.h"
#include "agent/common/peer_agent.h"
#include "agent/common/status_macros.h"
#include "agent/inventory/inspector.h"
#include "agent/media/media_export.h"
#include "tests/harness/fake_env.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

namespace v1 = ::mastodon::restore::v1;
using ::mastodon_restore::testing::MakeTempDir;
using ::mastodon_restore::testing::RemoveTree;
using ::mastodon_restore::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

const std::string kDir = MR_FIXTURE_DIR;

struct Entry {
  enum Type { kFile, kSymlink, kHardlink, kDevice } type = kFile;
  std::string name;
  std::string content;  // file content, or the link target
};

void WriteTar(const std::string& path, const std::vector<Entry>& entries) {
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const Entry& e : entries) {
    struct archive_entry* ae = archive_entry_new();
    archive_entry_set_pathname(ae, e.name.c_str());
    archive_entry_set_perm(ae, 0644);
    archive_entry_set_mtime(ae, 1700000000, 0);
    switch (e.type) {
      case Entry::kFile:
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_size(ae, static_cast<la_int64_t>(e.content.size()));
        break;
      case Entry::kSymlink:
        archive_entry_set_filetype(ae, AE_IFLNK);
        archive_entry_set_symlink(ae, e.content.c_str());
        break;
      case Entry::kHardlink:
        archive_entry_set_filetype(ae, AE_IFREG);
        archive_entry_set_hardlink(ae, e.content.c_str());
        break;
      case Entry::kDevice:
        archive_entry_set_filetype(ae, AE_IFCHR);
        archive_entry_set_rdev(ae, makedev(1, 3));
        break;
    }
    ASSERT_EQ(archive_write_header(a, ae), ARCHIVE_OK) << archive_error_string(a);
    if (e.type == Entry::kFile) archive_write_data(a, e.content.data(), e.content.size());
    archive_entry_free(ae);
  }
  archive_write_close(a);
  archive_write_free(a);
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::vector<std::string> Files(const std::string& dir) {
  std::vector<std::string> out;
  if (!std::filesystem::exists(dir)) return out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (!e.is_directory()) out.push_back(std::filesystem::relative(e.path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class MediaRestoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::ifstream(kDir + "/READY").good()) << "fixtures missing";
    auto dir = MakeTempDir("mr-media-");
    ASSERT_OK(dir);
    work_ = *dir;
    media_ = work_ + "/live/public/system";
  }
  void TearDown() override { RemoveTree(work_); }

  MediaRestoreOptions Options(const std::string& source) {
    MediaRestoreOptions o;
    o.source_path = source;
    o.source.allowed_roots = {kDir, work_};
    o.target_dir = media_;
    return o;
  }
  // Takes the source's inventory (as the restore job does), then restores.
  absl::StatusOr<MediaRestoreResult> Restore(const MediaRestoreOptions& o, Env* env = nullptr) {
    MediaRestoreOptions with_inventory = o;
    ASSIGN_OR_RETURN(auto manifest,
                     InspectBackup(o.source_path, o.source, InspectOptions(), runner_.get()));
    with_inventory.inventory = manifest.media();
    return RestoreMedia(with_inventory, runner_.get(), env != nullptr ? env : env_.get());
  }
  // Nothing but the media directory appeared in the work dir.
  void ExpectNothingOutside() {
    for (const auto& e : std::filesystem::directory_iterator(work_)) {
      EXPECT_TRUE(e.path().filename() == "live" || e.path().extension() == ".tar")
          << "unexpected " << e.path();
    }
    EXPECT_FALSE(std::filesystem::exists("/abs/evil.txt"));
  }

  std::string work_;
  std::string media_;
  std::unique_ptr<Env> env_ = NewPosixEnv();
  std::unique_ptr<CommandRunner> runner_ = NewPosixCommandRunner();
};

TEST_F(MediaRestoreTest, SourceInstallBackupThenAnIncrementalSecondRun) {
  auto first = Restore(Options(kDir + "/source_install.tar.gz"));
  ASSERT_OK(first);
  EXPECT_EQ(first->media_root, "public/system");
  EXPECT_EQ(first->files_written, 3);
  EXPECT_EQ(first->bytes_written, 3000 + 50000 + 700);
  EXPECT_THAT(Files(media_),
              ::testing::ElementsAre("accounts/avatars/000/000/001/original/alice.png",
                                     "cache/accounts/avatars/000/000/009/original/remote.png",
                                     "media_attachments/files/109/000/001/original/cat.jpg"));
  struct stat st;
  ASSERT_EQ(::stat((media_ + "/media_attachments/files/109/000/001/original/cat.jpg").c_str(), &st),
            0);
  EXPECT_EQ(st.st_size, 50000);
  EXPECT_EQ(st.st_mode & 07777, 0644);
  auto second = Restore(Options(kDir + "/source_install.tar.gz"));
  ASSERT_OK(second);
  EXPECT_EQ(second->files_written, 0);
  EXPECT_EQ(second->files_skipped, 3);
  // No staging directory is left beside the media directory.
  EXPECT_THAT(Files(work_ + "/live/public"), ::testing::SizeIs(3));
}

// A restore stopped before its move (cancelled here; an agent killed or a
// source gone alike) leaves the media directory as it was and keeps what
// it staged; the next restore into the directory takes that over and reads
// only the rest. What the staging holds that the source no longer has, or
// that changed since, does not reach the media directory.
TEST_F(MediaRestoreTest, AStoppedRestoreIsTakenOverByTheNext) {
  const std::string src = work_ + "/src";
  auto write = [&](int i, const std::string& data) {
    const std::string dir =
        absl::StrCat(src, "/public/system/media_attachments/files/000/000/", 100 + i, "/original");
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/f.png") << data;
  };
  for (int i = 0; i < 40; ++i) write(i, std::string(100 + i, 'a' + i % 26));
  std::filesystem::create_directories(media_ + "/accounts");
  std::ofstream(media_ + "/accounts/kept.png") << "kept";

  CancelToken cancel;
  MediaRestoreOptions o = Options(src);
  o.cancel = &cancel;
  o.operation_id = "op-20261204-100000-aaaa";
  int staged = 0;
  o.step_hook = [&](const std::string& step, const std::string&) {
    if (step == "staged" && ++staged == 15) cancel.Cancel();
  };
  EXPECT_THAT(Restore(o), StatusIs(absl::StatusCode::kCancelled));
  // Nothing reached the media directory; the staging directory is kept,
  // root's own.
  EXPECT_THAT(Files(media_), ::testing::ElementsAre("accounts/kept.png"));
  const std::string kept = MediaStagingDir(media_, o.operation_id);
  struct stat st;
  ASSERT_EQ(::stat(kept.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, ::geteuid());

  // Meanwhile one staged file changed at the source, one is gone.
  write(0, "changed since");
  std::filesystem::remove_all(src + "/public/system/media_attachments/files/000/000/101");
  CancelToken fresh;
  o.cancel = &fresh;
  o.operation_id = "op-20261204-110000-bbbb";
  staged = 0;
  auto again = Restore(o);
  ASSERT_OK(again);
  EXPECT_EQ(again->files_written, 39);
  EXPECT_EQ(again->files_resumed, 13);  // 15 staged, less the changed and the gone
  EXPECT_EQ(staged, 39 - 13);           // only the rest was read
  EXPECT_EQ(ReadFileOrEmpty(media_ + "/media_attachments/files/000/000/100/original/f.png"),
            "changed since");
  EXPECT_FALSE(std::filesystem::exists(media_ + "/media_attachments/files/000/000/101"));
  EXPECT_EQ(ReadFileOrEmpty(media_ + "/media_attachments/files/000/000/139/original/f.png"),
            std::string(139, 'a' + 39 % 26));
  EXPECT_EQ(ReadFileOrEmpty(media_ + "/accounts/kept.png"), "kept");
  // No staging directory is left, the old one included.
  EXPECT_THAT(Files(work_ + "/live/public"), ::testing::SizeIs(40));

  // A directory at a staging name that is not root's own 0700 is never
  // taken over (the app user may create one in the media directory's
  // parent): it is removed, and nothing of it reaches the media.
  const std::string planted = MediaStagingDir(media_, "op-20261204-120000-cccc");
  std::filesystem::create_directories(planted + "/accounts");
  std::ofstream(planted + "/accounts/planted.png") << "planted";
  ASSERT_EQ(::chmod(planted.c_str(), 0755), 0);
  o.operation_id = "op-20261204-130000-dddd";
  auto third = Restore(o);
  ASSERT_OK(third);
  EXPECT_EQ(third->files_resumed, 0);
  EXPECT_FALSE(std::filesystem::exists(media_ + "/accounts/planted.png"));
  EXPECT_FALSE(std::filesystem::exists(planted));
}

TEST_F(MediaRestoreTest, ExcludeCacheAndVerifyHash) {
  MediaRestoreOptions o = Options(kDir + "/source_install.tar.gz");
  o.exclude_cache = true;
  auto r = Restore(o);
  ASSERT_OK(r);
  EXPECT_EQ(r->files_written, 2);
  EXPECT_EQ(r->cache_files_excluded, 1);
  EXPECT_FALSE(std::filesystem::exists(media_ + "/cache"));
  // A file changed in place, same size and mtime: only a hash sees it.
  const std::string cat = media_ + "/media_attachments/files/109/000/001/original/cat.jpg";
  struct stat before;
  ASSERT_EQ(::stat(cat.c_str(), &before), 0);
  { std::fstream(cat, std::ios::in | std::ios::out | std::ios::binary).write("X", 1); }
  struct timespec times[2] = {before.st_mtim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, cat.c_str(), times, 0), 0);
  r = Restore(o);
  ASSERT_OK(r);
  EXPECT_EQ(r->files_written, 0);
  o.verify_hash = true;
  r = Restore(o);
  ASSERT_OK(r);
  EXPECT_EQ(r->files_written, 1);
  EXPECT_EQ(r->files_skipped, 1);
  std::ifstream in(cat, std::ios::binary);
  EXPECT_EQ(in.get(), 'c');
}

TEST_F(MediaRestoreTest, SnapExportMediaArchiveWithOwnership) {
  MediaRestoreOptions o = Options(kDir + "/snap");
  const uid_t uid = ::geteuid() == 0 ? 991 : ::geteuid();
  const gid_t gid = ::geteuid() == 0 ? 991 : ::getegid();
  o.uid = uid;
  o.gid = gid;
  auto r = Restore(o);
  ASSERT_OK(r);
  EXPECT_EQ(r->media_root, "media.tar.gz/media");
  EXPECT_THAT(Files(media_), ::testing::ElementsAre("accounts/avatars/1/a.png",
                                                    "media_attachments/files/1/b.png"));
  struct stat st;
  ASSERT_EQ(::stat((media_ + "/accounts/avatars/1/a.png").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, uid);
  EXPECT_EQ(st.st_gid, gid);
  ASSERT_EQ(::stat((media_ + "/accounts/avatars").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, uid);
}

TEST_F(MediaRestoreTest, HostileEntriesAreRefusedAndNothingIsWritten) {
  const std::vector<std::pair<std::string, Entry>> cases = {
      {"zip-slip", {Entry::kFile, "system/accounts/../../../evil.txt", "evil"}},
      {"absolute path", {Entry::kFile, "/abs/evil.txt", "evil"}},
      {"symlink escape", {Entry::kSymlink, "system/accounts/link", "/etc"}},
      {"hard link escape", {Entry::kHardlink, "system/accounts/hl", "/etc/passwd"}},
      {"device node", {Entry::kDevice, "system/accounts/dev", ""}},
  };
  int n = 0;
  for (const auto& [what, hostile] : cases) {
    SCOPED_TRACE(what);
    const std::string tar = absl::StrCat(work_, "/hostile", n++, ".tar");
    WriteTar(tar, {{Entry::kFile, "system/media_attachments/files/1/ok.png", "fine"},
                   hostile,
                   {Entry::kFile, "system/accounts/avatars/2.png", "later"}});
    auto r = Restore(Options(tar));
    EXPECT_THAT(r, StatusIs(absl::StatusCode::kInvalidArgument,
                            AllOf(HasSubstr("refusing entry"), HasSubstr(tar))));
    EXPECT_THAT(Files(media_), ::testing::IsEmpty());
    ExpectNothingOutside();
  }
}

TEST_F(MediaRestoreTest, MediaAreCopiedByteForByteWhateverTheyLookLike) {
  // Uploads that look like a gzip stream, an OpenPGP packet, or a dump.
  const std::string gz("\x1f\x8b\x08\x00garbage-after-a-gzip-magic", 30);
  const std::string pgp("\x8c\x0d\x04\x09\x03\x08saltsalt\xe0\xd2\x0c\x40rest", 22);
  const std::string dump = "--\n-- PostgreSQL database dump\n--\n\nnot really\n";
  const std::string tar = work_ + "/opaque.tar";
  WriteTar(tar, {{Entry::kFile, "system/media_attachments/files/1/a.gz", gz},
                 {Entry::kFile, "system/media_attachments/files/1/b.jpg", pgp},
                 {Entry::kFile, "system/media_attachments/files/1/c.txt", dump}});
  auto r = Restore(Options(tar));
  ASSERT_OK(r);
  EXPECT_EQ(r->files_written, 3);
  auto read = [&](const std::string& rel) {
    std::ifstream in(media_ + "/media_attachments/files/1/" + rel, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  };
  EXPECT_EQ(read("a.gz"), gz);
  EXPECT_EQ(read("b.jpg"), pgp);
  EXPECT_EQ(read("c.txt"), dump);
}

TEST_F(MediaRestoreTest, OnlyMediaFoldersReachTheMediaDirectoryWhenTheTreeIsTheArchivesTop) {
  // Media folders at the archive's top, beside the env file and the dump:
  // the media directory is served by the web server, so only the media
  // folders' files may land there.
  const std::string tar = work_ + "/top.tar";
  WriteTar(tar, {{Entry::kFile, ".env.production", "SECRET_KEY_BASE=s3cret\n"},
                 {Entry::kFile, "database.sql", "--\n-- PostgreSQL database dump\n--\n"},
                 {Entry::kFile, "notes/readme.txt", "hello"},
                 {Entry::kFile, "accounts/avatars/000/000/001/original/a.png", "a"},
                 {Entry::kFile, "media_attachments/files/000/000/002/original/b.png", "bb"}});
  auto r = Restore(Options(tar));
  ASSERT_OK(r);
  EXPECT_EQ(r->media_root, "");
  EXPECT_EQ(r->files_written, 2);
  EXPECT_THAT(Files(media_),
              ::testing::ElementsAre("accounts/avatars/000/000/001/original/a.png",
                                     "media_attachments/files/000/000/002/original/b.png"));
}

TEST_F(MediaRestoreTest, ATreeUnderAnyPrefixIsTakenByTheShapeOfItsPaths) {
  const std::string tar = work_ + "/deep.tar";
  WriteTar(tar,
           {{Entry::kFile,
             "home/mastodon/live/public/system/accounts/avatars/000/000/001/"
             "original/a.png",
             "a"},
            {Entry::kFile, "srv/x/preview_card_providers/icons/000/000/003/original/i.png", "i"},
            {Entry::kFile, "app/models/accounts/thing.rb", "code"}});
  InspectOptions options;
  options.media_tree = "srv/x";
  auto manifest = InspectBackup(tar, Options(tar).source, options, runner_.get());
  ASSERT_OK(manifest);
  ASSERT_EQ(manifest->media().trees_size(), 2);
  EXPECT_EQ(manifest->media().root(), "srv/x");
  EXPECT_THAT(manifest->media().root_reason(), HasSubstr("recognised by the shape"));
  // Not media: an accounts/ folder without Paperclip's shape.
  ASSERT_EQ(manifest->unknown_entries_size(), 1);
  EXPECT_EQ(manifest->unknown_entries(0).path(), "app/models/accounts/thing.rb");
  MediaRestoreOptions o = Options(tar);
  o.inventory = manifest->media();
  auto r = RestoreMedia(o, runner_.get(), env_.get());
  ASSERT_OK(r);
  EXPECT_THAT(Files(media_),
              ::testing::ElementsAre("preview_card_providers/icons/000/000/003/original/i.png"));
}

TEST_F(MediaRestoreTest, ModesFromTheArchiveAreNeverWorldWritableNorSetuid) {
  // A tree with hostile modes, archived by the real tar tool.
  const std::string src = work_ + "/modes-src";
  const std::string files = src + "/system/media_attachments/files/1";
  const std::string open_dir = src + "/system/accounts/avatars/7";
  ASSERT_TRUE(std::filesystem::create_directories(files));
  ASSERT_TRUE(std::filesystem::create_directories(open_dir));
  auto put = [](const std::string& path, mode_t mode) {
    std::ofstream(path, std::ios::binary) << "media";
    ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
  };
  put(files + "/open.png", 0777);
  put(files + "/setuid.png", 04755);
  put(files + "/group.png", 0664);
  put(open_dir + "/a.png", 0640);
  ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
  const std::string tar = work_ + "/modes.tar";
  CommandSpec spec;
  spec.argv = {"tar", "-C", src, "-cf", tar, "system"};
  spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
  spec.timeout = absl::Minutes(1);
  auto made = runner_->Run(spec, nullptr);
  ASSERT_OK(made);
  ASSERT_EQ(made->exit_code, 0) << made->stderr_text;

  auto r = Restore(Options(tar));
  ASSERT_OK(r);
  EXPECT_EQ(r->files_written, 4);
  auto mode_of = [](const std::string& path) -> mode_t {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return 07777;
    return st.st_mode & 07777;
  };
  EXPECT_EQ(mode_of(media_ + "/media_attachments/files/1/open.png"), 0775u);
  EXPECT_EQ(mode_of(media_ + "/media_attachments/files/1/setuid.png"), 0755u);
  EXPECT_EQ(mode_of(media_ + "/media_attachments/files/1/group.png"), 0664u);
  EXPECT_EQ(mode_of(media_ + "/accounts/avatars/7/a.png"), 0640u);
  for (const std::string& dir : {media_ + "/accounts/avatars/7", media_ + "/accounts/avatars",
                                 media_ + "/media_attachments/files/1"}) {
    const mode_t mode = mode_of(dir);
    EXPECT_EQ(mode & (S_IWOTH | S_ISUID | S_ISGID | S_ISVTX), 0u)
        << dir << " has mode " << std::oct << mode;
  }
}

TEST_F(MediaRestoreTest, ASymlinkInsideTheMediaDirectoryIsNotFollowed) {
  const std::string outside = work_ + "/outside";
  ASSERT_TRUE(std::filesystem::create_directories(media_));
  ASSERT_TRUE(std::filesystem::create_directories(outside));
  std::filesystem::create_directory_symlink(outside, media_ + "/accounts");
  auto r = Restore(Options(kDir + "/source_install.tar.gz"));
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("symlink")));
  EXPECT_THAT(Files(outside), ::testing::IsEmpty());
  EXPECT_FALSE(std::filesystem::exists(media_ + "/media_attachments"));
}

// Another host's media as its agent serves them (a migration's old host,
// without the network between): the listing with hashes and the reads,
// counted by file. With `damage`, what it sends has its first byte
// flipped.
class HostMediaPeer : public PeerAgent {
 public:
  explicit HostMediaPeer(std::string dir) : dir_(std::move(dir)) {}
  absl::StatusOr<v1::GetAgentInfoResponse> Info() override {
    return absl::UnimplementedError("info");
  }
  absl::StatusOr<v1::AppHold> HoldApp(const v1::HoldAppRequest&) override {
    return absl::UnimplementedError("hold");
  }
  absl::StatusOr<v1::AppHold> ReleaseApp(const v1::ReleaseAppRequest&) override {
    return absl::UnimplementedError("release");
  }
  absl::StatusOr<v1::ListMediaResponse> ListMedia(const v1::ListMediaRequest& r) override {
    MediaHashing hashing;
    if (r.sha256()) hashing.cache = &cache_;
    return ListHostMedia(dir_, r.prefix(), r.page_token(), r.page_size(), hashing);
  }
  absl::StatusOr<v1::ReadMediaResponse> ReadMedia(const v1::ReadMediaRequest& r) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++reads_[r.path()];
    auto got = ReadHostMedia(dir_, r.path(), r.offset(), r.length(), r.size(), r.mtime());
    if (got.ok() && damage && !got->data().empty()) (*got->mutable_data())[0] ^= 1;
    return got;
  }
  int reads(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return reads_[path];
  }
  bool damage = false;

 private:
  const std::string dir_;
  MediaHashCache cache_;
  std::mutex mu_;
  std::map<std::string, int> reads_;
};

std::string Sha256Hex(const std::string& text) {
  Sha256 hash;
  hash.Update(text.data(), text.size());
  return HexOf(hash.Final());
}

// The hash the restore recorded on a file ("" when none).
std::string RecordedHash(const std::string& path) {
  char value[256];
  ssize_t n = ::getxattr(path.c_str(), "trusted.mastodon-restore.sha256", value, sizeof(value));
  if (n <= 0) return "";
  std::string v(value, static_cast<size_t>(n));
  return v.substr(v.rfind(' ') + 1);
}

// Another agent's media, passed over as a migration does (staged pass by
// pass, then moved in): what arrives is checked against the listing's
// SHA-256s; a file here already with the same content (restored from a
// backup earlier) is never read, whatever its mtime; one changed in place
// with its size and mtime put back is read again, which size and mtime
// alone cannot tell.
TEST_F(MediaRestoreTest, AnAgentsListedHashesCheckWhatArrivesAndTellWhatChanged) {
  const std::string old = work_ + "/old";
  auto write = [](const std::string& root, const std::string& rel, const std::string& text) {
    std::filesystem::create_directories(std::filesystem::path(root + "/" + rel).parent_path());
    std::ofstream(root + "/" + rel) << text;
  };
  const std::string a = "media_attachments/files/000/000/001/original/a.png";
  const std::string b = "media_attachments/files/000/000/002/original/b.png";
  const std::string c = "accounts/avatars/000/000/001/original/c.png";
  write(old, a, "alpha");
  write(old, b, "bravo");
  write(old, c, "charlie");
  write(media_, a, "alpha");
  struct timespec past[2] = {{1600000000, 0}, {1600000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (media_ + "/" + a).c_str(), past, 0), 0);

  auto peer = std::make_shared<HostMediaPeer>(old);
  auto pass = [&](int n, bool stage_only) {
    MediaRestoreOptions o;
    o.source_path = "agent:old-host";
    o.source.bucket = NewPeerMediaStore(peer, "old-host", nullptr, /*sha256=*/true);
    o.target_dir = media_;
    o.stage_only = stage_only;
    o.operation_id = absl::StrCat("op-20261205-140000-aaaa-pass0", n);
    return Restore(o);
  };
  auto first = pass(1, true);
  ASSERT_OK(first);
  EXPECT_EQ(first->files_written, 2);
  EXPECT_EQ(first->files_skipped, 1);
  EXPECT_EQ(peer->reads(a), 0);
  const std::string staging = MediaStagingDir(media_, "op-20261205-140000-aaaa-pass01");
  EXPECT_EQ(RecordedHash(staging + "/" + b), Sha256Hex("bravo"));
  EXPECT_EQ(RecordedHash(media_ + "/" + a), Sha256Hex("alpha"));

  // Changed in place, its size and mtime put back; and what the old host
  // sends is damaged on the way: refused, nothing moved.
  struct stat before;
  ASSERT_EQ(::stat((old + "/" + c).c_str(), &before), 0);
  write(old, c, "CHARLIE");
  struct timespec times[2] = {before.st_mtim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, (old + "/" + c).c_str(), times, 0), 0);
  peer->damage = true;
  EXPECT_THAT(pass(2, true),
              StatusIs(absl::StatusCode::kAborted,
                       AllOf(HasSubstr("read back with the SHA-256"),
                             HasSubstr(absl::StrCat("not the ", Sha256Hex("CHARLIE"))))));
  EXPECT_FALSE(std::filesystem::exists(media_ + "/" + c));

  // Sent whole: only the changed file is read again, the rest is taken
  // over by its recorded hash.
  peer->damage = false;
  const int b_reads = peer->reads(b);
  auto third = pass(3, true);
  ASSERT_OK(third);
  EXPECT_EQ(third->files_written - third->files_resumed, 1);
  EXPECT_EQ(third->files_resumed, 1);
  EXPECT_EQ(peer->reads(b), b_reads);
  EXPECT_EQ(peer->reads(a), 0);

  // Moved in: the media are the old host's, `a` left as it was.
  auto last = pass(4, false);
  ASSERT_OK(last);
  EXPECT_EQ(last->files_written - last->files_resumed, 0);
  EXPECT_EQ(ReadFileOrEmpty(media_ + "/" + a), "alpha");
  EXPECT_EQ(ReadFileOrEmpty(media_ + "/" + b), "bravo");
  EXPECT_EQ(ReadFileOrEmpty(media_ + "/" + c), "CHARLIE");
  struct stat st;
  ASSERT_EQ(::stat((media_ + "/" + a).c_str(), &st), 0);
  EXPECT_EQ(st.st_mtime, 1600000000);
  EXPECT_THAT(Files(work_ + "/live/public"), ::testing::SizeIs(3));
}

// Reports almost no free space on every filesystem.
class FullDiskEnv : public testing::FakeEnv {
 public:
  explicit FullDiskEnv(Env* real) : real_(real) {}
  absl::Status CreateDirs(const std::string& dir, mode_t mode, bool enforce) override {
    return real_->CreateDirs(dir, mode, enforce);
  }
  absl::StatusOr<int64_t> FreeBytes(const std::string&) override { return 1000; }

 private:
  Env* real_;
};

TEST_F(MediaRestoreTest, NotEnoughSpaceIsRefusedBeforeWriting) {
  ASSERT_TRUE(std::filesystem::create_directories(media_));
  std::ofstream(media_ + "/kept.txt") << "already here";
  FullDiskEnv full(env_.get());
  auto r = Restore(Options(kDir + "/source_install.tar.gz"), &full);
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("53700 bytes needed")));
  EXPECT_THAT(Files(media_), ::testing::ElementsAre("kept.txt"));
}

}  // namespace
}  // namespace mastodon_restore
