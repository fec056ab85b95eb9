// Hostile-input corpus for root's media writes (issue 15, findings 5 and 7):
// an app user racing the restore (made deterministic by the restore's step
// hook: the "app user" acts at a paused step, no sleeps), symlinks planted
// at target names, a media directory named by the app's own config,
// hostile archive entries, an entry larger than its header declares, and a
// full filesystem (a real 20 MiB tmpfs). Each case asserts that nothing
// outside the allowed places changed: the work directory outside the media
// tree is snapshotted before and compared after.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/app/systemd_runtime.h"
#include "agent/common/dir.h"
#include "agent/jobs/targets.h"
#include "agent/media/media_restore.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::mastodon::restore::v1;
using ::mastodon_restore::testing::MakeTempDir;
using ::mastodon_restore::testing::RemoveTree;
using ::mastodon_restore::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct Entry {
  enum Type { kFile, kSymlink, kHardlink } type = kFile;
  std::string name;
  std::string content;  // file content, or the link target
  mode_t mode = 0644;
};

void WriteTar(const std::string& path, const std::vector<Entry>& entries) {
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  ASSERT_EQ(archive_write_open_filename(a, path.c_str()), ARCHIVE_OK);
  for (const Entry& e : entries) {
    struct archive_entry* ae = archive_entry_new();
    archive_entry_set_pathname(ae, e.name.c_str());
    archive_entry_set_perm(ae, e.mode);
    archive_entry_set_mtime(ae, 1700000000, 0);
    if (e.type == Entry::kFile) {
      archive_entry_set_filetype(ae, AE_IFREG);
      archive_entry_set_size(ae, static_cast<la_int64_t>(e.content.size()));
    } else if (e.type == Entry::kSymlink) {
      archive_entry_set_filetype(ae, AE_IFLNK);
      archive_entry_set_symlink(ae, e.content.c_str());
    } else {
      archive_entry_set_filetype(ae, AE_IFREG);
      archive_entry_set_hardlink(ae, e.content.c_str());
    }
    ASSERT_EQ(archive_write_header(a, ae), ARCHIVE_OK) << archive_error_string(a);
    if (e.type == Entry::kFile) archive_write_data(a, e.content.data(), e.content.size());
    archive_entry_free(ae);
  }
  archive_write_close(a);
  archive_write_free(a);
}

void Put16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v & 0xff));
  out->push_back(static_cast<char>(v >> 8));
}
void Put32(std::string* out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v & 0xffff));
  Put16(out, static_cast<uint16_t>(v >> 16));
}

// A zip of one deflated entry `name` holding `data` whose headers (local
// and central) declare `declared` uncompressed bytes.
std::string ZipDeclaring(const std::string& name, const std::string& data, uint32_t declared) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  std::string packed(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(packed.data());
  z.avail_out = static_cast<uInt>(packed.size());
  deflate(&z, Z_FINISH);
  packed.resize(z.total_out);
  deflateEnd(&z);
  const uint32_t crc = static_cast<uint32_t>(
      crc32(0, reinterpret_cast<const Bytef*>(data.data()), static_cast<uInt>(data.size())));
  auto header = [&](bool central) {
    std::string h;
    Put32(&h, central ? 0x02014b50 : 0x04034b50);
    if (central) Put16(&h, 0x0314);  // made by: unix, 2.0
    Put16(&h, 20);                   // needed
    Put16(&h, 0);                    // flags: sizes in the header
    Put16(&h, 8);                    // deflate
    Put16(&h, 0);
    Put16(&h, 0x21);  // 1980-01-01
    Put32(&h, crc);
    Put32(&h, static_cast<uint32_t>(packed.size()));
    Put32(&h, declared);
    Put16(&h, static_cast<uint16_t>(name.size()));
    Put16(&h, 0);  // extra
    if (central) {
      Put16(&h, 0);               // comment
      Put16(&h, 0);               // disk
      Put16(&h, 0);               // internal attributes
      Put32(&h, 0100644u << 16);  // external: a regular file, 0644
      Put32(&h, 0);               // local header offset
    }
    return h + name;
  };
  std::string zip = header(false) + packed;
  const uint32_t cd_offset = static_cast<uint32_t>(zip.size());
  const std::string cd = header(true);
  zip += cd;
  Put32(&zip, 0x06054b50);
  Put16(&zip, 0);
  Put16(&zip, 0);
  Put16(&zip, 1);
  Put16(&zip, 1);
  Put32(&zip, static_cast<uint32_t>(cd.size()));
  Put32(&zip, cd_offset);
  Put16(&zip, 0);
  return zip;
}

class HostileMediaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = MakeTempDir("mr-hostile-media-");
    ASSERT_OK(dir);
    work_ = *dir;
    public_ = work_ + "/live/public";
    media_ = public_ + "/system";
    outside_ = work_ + "/outside";
    fs::create_directories(public_);
    fs::create_directories(outside_ + "/accounts");
    std::ofstream(outside_ + "/secret") << "untouched";
    std::ofstream(outside_ + "/accounts/keep.png") << "outside file";
    source_ = work_ + "/backup.tar";
  }
  void TearDown() override {
    if (mounted_) ::umount2((work_ + "/live").c_str(), MNT_DETACH);
    RemoveTree(work_);
  }

  // Every path below the work directory except the media tree (live/),
  // with its type and content: the places no restore may change.
  std::map<std::string, std::string> Outside() const {
    std::map<std::string, std::string> out;
    for (auto it = fs::recursive_directory_iterator(work_); it != fs::end(it); ++it) {
      const std::string rel = fs::relative(it->path(), work_).string();
      if (rel == "live") {
        it.disable_recursion_pending();
        continue;
      }
      if (it->is_symlink()) {
        out[rel] = "link:" + fs::read_symlink(it->path()).string();
      } else if (it->is_directory()) {
        out[rel] = "dir";
      } else {
        out[rel] = Slurp(it->path());
      }
    }
    return out;
  }

  MediaRestoreOptions Options() {
    MediaRestoreOptions o;
    o.source_path = source_;
    o.source.allowed_roots = {work_};
    o.target_dir = media_;
    o.media_root = "media";
    // What the source declares (a hostile or compressed source may say
    // little): the up-front check passes, the real bytes are counted.
    o.inventory.set_files(1);
    o.inventory.set_bytes(1);
    o.free_space_margin = 0;
    o.space_floor.min_free_bytes = 1 << 20;
    o.space_floor.check_every_bytes = 1 << 20;
    return o;
  }
  absl::StatusOr<MediaRestoreResult> Restore(const MediaRestoreOptions& o) {
    return RestoreMedia(o, runner_.get(), env_.get());
  }
  // The staging directory of Options().
  std::string Staging() const { return MediaStagingDir(media_, "media"); }

  std::string work_, public_, media_, outside_, source_;
  bool mounted_ = false;
  std::unique_ptr<Env> env_ = NewPosixEnv();
  std::unique_ptr<CommandRunner> runner_ = NewPosixCommandRunner();
};

std::vector<Entry> TwoAccounts() {
  return {{Entry::kFile, "media/accounts/a.png", "first"},
          {Entry::kFile, "media/accounts/b.png", "second"},
          {Entry::kFile, "media/media_attachments/c.png", "third"}};
}

// 1. The app user (who can write the media directory's parent) renames the
// staging directory away mid-extraction and puts a symlink to a directory
// of theirs in its place: the extraction goes on below the staging
// directory's descriptor, the files land in the media directory.
TEST_F(HostileMediaTest, StagingSwappedForASymlinkMidExtraction) {
  WriteTar(source_, TwoAccounts());
  const auto before = Outside();
  MediaRestoreOptions o = Options();
  bool swapped = false;
  o.step_hook = [&](const std::string& step, const std::string&) {
    if (step != "staged" || swapped) return;
    swapped = true;
    fs::rename(Staging(), public_ + "/stolen-staging");
    fs::create_directory_symlink(outside_, Staging());
  };
  auto r = Restore(o);
  ASSERT_TRUE(swapped);
  ASSERT_OK(r);
  EXPECT_EQ(Slurp(media_ + "/accounts/b.png"), "second");
  EXPECT_EQ(Slurp(media_ + "/media_attachments/c.png"), "third");
  EXPECT_EQ(Outside(), before);
  // The staging directory is root's and 0700: the app user never saw inside.
  struct stat st;
  ASSERT_EQ(::stat((public_ + "/stolen-staging").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_TRUE(fs::is_empty(public_ + "/stolen-staging"));
}

// 2. A symlink planted at the staging name before the restore starts is
// removed (never followed) and a fresh directory made.
TEST_F(HostileMediaTest, StagingNamePlantedAsASymlinkBeforehand) {
  WriteTar(source_, TwoAccounts());
  fs::create_directory_symlink(outside_, Staging());
  const auto before = Outside();
  ASSERT_OK(Restore(Options()));
  EXPECT_EQ(Outside(), before);
  EXPECT_EQ(Slurp(media_ + "/accounts/a.png"), "first");
  EXPECT_FALSE(fs::exists(fs::symlink_status(Staging())));
}

// 3. A media subdirectory is swapped for a symlink to the app user's
// directory after staging, before the move: refused, nothing moved there.
TEST_F(HostileMediaTest, MediaSubdirectorySwappedForASymlinkBeforeTheMove) {
  WriteTar(source_, TwoAccounts());
  fs::create_directories(media_ + "/accounts");
  const auto before = Outside();
  MediaRestoreOptions o = Options();
  o.step_hook = [&](const std::string& step, const std::string& rel) {
    if (step == "staged" && rel == "media_attachments/c.png") {
      fs::remove(media_ + "/accounts");
      fs::create_directory_symlink(outside_ + "/accounts", media_ + "/accounts");
    }
  };
  EXPECT_THAT(Restore(o), StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("symlink")));
  EXPECT_EQ(Outside(), before);
  EXPECT_FALSE(fs::exists(Staging()));
}

// 4. The swap comes after the move opened the subdirectory: the rename goes
// to the directory's descriptor, so the file lands in that directory
// (moved aside, still inside the media tree), never behind the symlink.
TEST_F(HostileMediaTest, MediaSubdirectorySwappedAfterItWasOpened) {
  WriteTar(source_, TwoAccounts());
  fs::create_directories(media_ + "/accounts");
  const auto before = Outside();
  MediaRestoreOptions o = Options();
  bool swapped = false;
  o.step_hook = [&](const std::string& step, const std::string& rel) {
    if (step == "move" && rel == "accounts/a.png" && !swapped) {
      swapped = true;
      fs::rename(media_ + "/accounts", media_ + "/accounts.aside");
      fs::create_directory_symlink(outside_ + "/accounts", media_ + "/accounts");
    }
  };
  auto r = Restore(o);
  ASSERT_TRUE(swapped);
  ASSERT_OK(r);
  EXPECT_EQ(Outside(), before);
  EXPECT_EQ(Slurp(media_ + "/accounts.aside/a.png"), "first");
  EXPECT_EQ(Slurp(media_ + "/accounts.aside/b.png"), "second");
}

// 5. A symlink planted at a file's target name just before its rename: the
// new file never replaces it, the restore fails, the target is untouched.
TEST_F(HostileMediaTest, SymlinkPlantedAtATargetNameDuringTheMove) {
  WriteTar(source_, TwoAccounts());
  const auto before = Outside();
  MediaRestoreOptions o = Options();
  o.step_hook = [&](const std::string& step, const std::string& rel) {
    if (step == "move" && rel == "accounts/b.png") {
      fs::create_symlink(outside_ + "/secret", media_ + "/accounts/b.png");
    }
  };
  EXPECT_THAT(Restore(o), StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("b.png")));
  EXPECT_EQ(Outside(), before);
  EXPECT_TRUE(fs::is_symlink(media_ + "/accounts/b.png"));
}

// 6. Symlinks already in the media tree, at a file's name and at a
// directory's, are refused before anything is moved.
TEST_F(HostileMediaTest, SymlinksAlreadyAtTargetNamesAreRefused) {
  WriteTar(source_, TwoAccounts());
  fs::create_directories(media_ + "/accounts");
  fs::create_symlink(outside_ + "/secret", media_ + "/accounts/a.png");
  const auto before = Outside();
  EXPECT_THAT(Restore(Options()), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(Outside(), before);
  EXPECT_FALSE(fs::exists(media_ + "/media_attachments"));

  fs::remove(media_ + "/accounts/a.png");
  fs::remove(media_ + "/accounts");
  fs::create_directory_symlink(outside_ + "/accounts", media_ + "/accounts");
  EXPECT_THAT(Restore(Options()), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(Outside(), before);
}

// 7. The media directory's own path holds a symlink (live/public swapped
// for one): refused, nothing created behind it.
TEST_F(HostileMediaTest, ASymlinkInTheMediaDirectorysPathIsRefused) {
  WriteTar(source_, TwoAccounts());
  fs::remove_all(public_);
  fs::create_directory_symlink(outside_, public_);
  const auto before = Outside();
  EXPECT_THAT(Restore(Options()),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("symlink")));
  EXPECT_EQ(Outside(), before);
}

// 8. Hostile entry names and types: "..", absolute paths, hard links and
// symlinks pointing out. Each is refused; nothing is written anywhere.
TEST_F(HostileMediaTest, HostileEntriesAreRefused) {
  const std::vector<std::vector<Entry>> cases = {
      {{Entry::kFile, "media/../../outside/secret", "overwritten"}},
      {{Entry::kFile, "media/accounts/../../../outside/x", "escaped"}},
      {{Entry::kFile, outside_ + "/abs", "absolute"}},
      {{Entry::kHardlink, "media/accounts/h.png", outside_ + "/secret"}},
      {{Entry::kSymlink, "media/accounts/s.png", outside_ + "/secret"},
       {Entry::kFile, "media/accounts/s.png", "through the link"}},
  };
  const auto before = Outside();
  for (size_t i = 0; i < cases.size(); ++i) {
    std::vector<Entry> entries = cases[i];
    entries.push_back({Entry::kFile, "media/accounts/ok.png", "fine"});
    WriteTar(source_, entries);
    const auto with_source = Outside();
    EXPECT_THAT(Restore(Options()), StatusIs(absl::StatusCode::kInvalidArgument)) << "case " << i;
    EXPECT_EQ(Outside(), with_source) << "case " << i;
    EXPECT_FALSE(fs::exists(media_ + "/accounts/ok.png")) << "case " << i;
  }
  EXPECT_EQ(Slurp(outside_ + "/secret"), "untouched");
  EXPECT_EQ(before.at("outside/secret"), "untouched");
}

// 9. World-writable, setuid, setgid and sticky modes from the archive are
// masked.
TEST_F(HostileMediaTest, WorldWritableAndSetuidModesAreMasked) {
  WriteTar(source_, {{Entry::kFile, "media/accounts/w.png", "w", 0777},
                     {Entry::kFile, "media/accounts/s.png", "s", 04777},
                     {Entry::kFile, "media/accounts/t.png", "t", 03666}});
  ASSERT_OK(Restore(Options()));
  for (const char* name : {"w.png", "s.png", "t.png"}) {
    struct stat st;
    ASSERT_EQ(::stat((media_ + "/accounts/" + name).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & (S_IWOTH | S_ISUID | S_ISGID | S_ISVTX), 0u)
        << name << " " << std::oct << st.st_mode;
  }
}

// 10. A zip entry that inflates to more than its headers declare is an
// error as soon as the excess arrives; nothing is moved in.
TEST_F(HostileMediaTest, AnEntryLargerThanItsHeaderDeclaresIsRefused) {
  source_ = work_ + "/backup.zip";
  std::ofstream(source_, std::ios::binary)
      << ZipDeclaring("media/accounts/bomb.png", std::string(4 << 20, 'A'), 1000);
  const auto before = Outside();
  EXPECT_THAT(Restore(Options()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("more than the 1000 bytes its header declares")));
  EXPECT_EQ(Outside(), before);
  EXPECT_FALSE(fs::exists(media_ + "/accounts/bomb.png"));
  EXPECT_FALSE(fs::exists(Staging()));
}

// 11. A full filesystem: the media tree lives on a 20 MiB tmpfs and the
// source (which declares 1 byte) holds 32 MiB. The restore stops with a
// clear error before the floor is crossed, and the space is given back.
TEST_F(HostileMediaTest, AFullFilesystemStopsTheRestoreAboveTheFloor) {
  const std::string live = work_ + "/live";
  fs::remove_all(live);
  fs::create_directories(live);
  ASSERT_EQ(::mount("tmpfs", live.c_str(), "tmpfs", 0, "size=20m"), 0)
      << "mounting a tmpfs needs root (CAP_SYS_ADMIN): " << std::strerror(errno);
  mounted_ = true;
  fs::create_directories(public_);
  WriteTar(source_, {{Entry::kFile, "media/accounts/small.png", "small"},
                     {Entry::kFile, "media/accounts/huge.bin", std::string(32 << 20, 'x')}});
  const auto before = Outside();
  auto r = Restore(Options());
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("nearly full")));
  EXPECT_EQ(Outside(), before);
  EXPECT_FALSE(fs::exists(media_ + "/accounts/huge.bin"));
  EXPECT_FALSE(fs::exists(Staging()));
  auto root = Dir::OpenPath(public_);
  ASSERT_OK(root);
  auto space = root->Space();
  ASSERT_OK(space);
  EXPECT_GT(space->available_bytes, 19 << 20);  // the staged bytes are gone
}

// 12. PAPERCLIP_ROOT_PATH in the app-owned .env.production (which a
// restored config may have installed) names the media directory only
// inside a configured media root: /etc and a symlink leading out are
// refused with a clear error; a directory inside the root is used.
TEST_F(HostileMediaTest, PaperclipRootPathIsUsedOnlyInsideAConfiguredMediaRoot) {
  const std::string app_dir = work_ + "/home/mastodon/live";
  const std::string media_root = work_ + "/srv-media";
  fs::create_directories(app_dir);
  fs::create_directories(media_root + "/instance");
  fs::create_directory_symlink(outside_, media_root + "/escape");
  HostLayout layout;
  layout.app_dir = app_dir;
  SystemdRuntime runtime(layout, {"mastodon-web.service"}, runner_.get(), env_.get());
  RuntimeContext context;
  context.runtime = &runtime;
  JobEnv env;
  env.env = env_.get();
  env.runtime = &context;
  env.media_roots = {media_root};
  v1::RestoreOptions opts;
  opts.set_media_only(true);
  auto with_root_path = [&](const std::string& value) {
    std::ofstream(app_dir + "/.env.production") << "PAPERCLIP_ROOT_PATH=" << value << "\n";
    return ResolveRestoreMedia(opts, env);
  };
  const auto before = Outside();
  EXPECT_THAT(with_root_path("/etc"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("PAPERCLIP_ROOT_PATH in " + app_dir + "/.env.production"),
                             HasSubstr("--media-root"))));
  EXPECT_THAT(with_root_path(media_root + "/escape/accounts"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(with_root_path(media_root + "/../outside"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  auto inside = with_root_path(media_root + "/instance/system");
  ASSERT_OK(inside);
  EXPECT_EQ(inside->dir, media_root + "/instance/system");
  // Without a configured root, nothing from the file is trusted.
  env.media_roots.clear();
  EXPECT_THAT(with_root_path(media_root + "/instance/system"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("(none)")));
  // The default location (no PAPERCLIP_ROOT_PATH) needs no root.
  std::ofstream(app_dir + "/.env.production") << "LOCAL_DOMAIN=example.com\n";
  auto fallback = ResolveRestoreMedia(opts, env);
  ASSERT_OK(fallback);
  EXPECT_EQ(fallback->dir, app_dir + "/public/system");
  std::map<std::string, std::string> after = Outside();
  for (auto it = after.begin(); it != after.end();) {
    it = before.count(it->first) == 0 && absl::StartsWith(it->first, "home/") ? after.erase(it)
                                                                              : std::next(it);
  }
  EXPECT_EQ(after, before);
}

}  // namespace
}  // namespace mastodon_restore
