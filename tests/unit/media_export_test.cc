// The old host's media as a migration reads them: the listing (order,
// pages, what is left out) and the ranged reads (ListHostMedia,
// ReadHostMedia); and the new host's side, the peer's media as an object
// store whose reads survive a broken connection (NewPeerMediaStore).
#include "agent/media/media_export.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/common/digest.h"
#include "agent/common/peer_agent.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace {

namespace v1 = ::mastodon::restore::v1;
using ::mastodon_restore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class MediaExportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mr-export-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    media_ = dir_ + "/media";
    for (const char* d : {"", "/accounts", "/accounts/avatars", "/a.b", "/cache", "/cache/x"}) {
      ASSERT_EQ(::mkdir((media_ + d).c_str(), 0755), 0);
    }
    Write("accounts/avatars/1.png", "one");
    Write("accounts/avatars/2.png", "two!");
    Write("a.b/z.jpg", "zz");
    Write("cache/x/y.gif", "gif");
    Write("top.txt", "t");
    // Left out: a symlink (to a file outside) and a FIFO.
    std::ofstream(dir_ + "/secret") << "root's";
    ASSERT_EQ(::symlink((dir_ + "/secret").c_str(), (media_ + "/accounts/link.png").c_str()), 0);
    ASSERT_EQ(::mkfifo((media_ + "/cache/fifo").c_str(), 0600), 0);
  }
  void TearDown() override { std::system(absl::StrCat("rm -rf ", dir_).c_str()); }

  void Write(const std::string& rel, const std::string& text) {
    std::ofstream(media_ + "/" + rel) << text;
  }

  // Every page of the listing, `limit` files each.
  std::vector<std::string> ListAll(int limit, int* pages, const std::string& prefix = "") {
    std::vector<std::string> out;
    std::string token;
    *pages = 0;
    do {
      auto page = ListHostMedia(media_, prefix, token, limit);
      EXPECT_OK(page.status());
      if (!page.ok()) break;
      ++*pages;
      for (const auto& f : page->files()) out.push_back(f.path());
      token = page->next_page_token();
    } while (!token.empty() && *pages < 100);
    return out;
  }

  std::string dir_;
  std::string media_;
};

TEST_F(MediaExportTest, ListsRegularFilesInOneOrderAcrossPagesAndNothingElse) {
  int pages = 0;
  const std::vector<std::string> all = ListAll(1000, &pages);
  EXPECT_EQ(pages, 1);
  // Component by component: "a.b/..." after "a/...", whatever '.' < '/'.
  EXPECT_THAT(all, ElementsAre("a.b/z.jpg", "accounts/avatars/1.png", "accounts/avatars/2.png",
                               "cache/x/y.gif", "top.txt"));
  EXPECT_EQ(ListAll(2, &pages), all);
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(ListAll(1, &pages), all);
  EXPECT_THAT(ListAll(1, &pages, "accounts/"),
              ElementsAre("accounts/avatars/1.png", "accounts/avatars/2.png"));
  auto page = ListHostMedia(media_, "", "", 10);
  ASSERT_OK(page.status());
  EXPECT_EQ(page->files(1).size(), 3);
  EXPECT_GT(page->files(1).mtime(), 0);
  EXPECT_LT(CompareMediaPaths("a/x", "a.b"), 0);
  EXPECT_GT(CompareMediaPaths("a/x/y", "a/x"), 0);
}

std::string Sha256Hex(const std::string& text) {
  Sha256 hash;
  hash.Update(text.data(), text.size());
  return HexOf(hash.Final());
}

// Asked for, each file comes with the SHA-256 of its content; the hashes
// are kept while the files stay the same, so a listing again reads only
// what changed, even a file rewritten with its size and mtime put back
// (its ctime tells).
TEST_F(MediaExportTest, ListsEachFilesSha256AndHashesAgainOnlyWhatChanged) {
  auto plain = ListHostMedia(media_, "", "", 10);
  ASSERT_OK(plain.status());
  EXPECT_EQ(plain->files(1).sha256(), "");
  MediaHashCache cache;
  MediaHashing hashing;
  hashing.cache = &cache;
  auto page = ListHostMedia(media_, "", "", 10, hashing);
  ASSERT_OK(page.status());
  ASSERT_EQ(page->files_size(), 5);
  EXPECT_EQ(page->files(0).sha256(), Sha256Hex("zz"));
  EXPECT_EQ(page->files(2).sha256(), Sha256Hex("two!"));
  EXPECT_EQ(page->files(4).sha256(), Sha256Hex("t"));
  EXPECT_EQ(cache.hashed_bytes(), 2 + 3 + 4 + 3 + 1);
  ASSERT_OK(ListHostMedia(media_, "", "", 10, hashing).status());
  EXPECT_EQ(cache.hashed_bytes(), 13);

  const std::string two = media_ + "/accounts/avatars/2.png";
  struct stat before;
  ASSERT_EQ(::stat(two.c_str(), &before), 0);
  absl::SleepFor(absl::Milliseconds(20));
  Write("accounts/avatars/2.png", "TWO!");
  struct timespec times[2] = {before.st_mtim, before.st_mtim};
  ASSERT_EQ(::utimensat(AT_FDCWD, two.c_str(), times, 0), 0);
  page = ListHostMedia(media_, "", "", 10, hashing);
  ASSERT_OK(page.status());
  EXPECT_EQ(page->files(2).mtime(), before.st_mtim.tv_sec);
  EXPECT_EQ(page->files(2).sha256(), Sha256Hex("TWO!"));
  EXPECT_EQ(cache.hashed_bytes(), 13 + 4);
}

// A cache that is full keeps what it has and hashes the rest each time.
TEST_F(MediaExportTest, AFullHashCacheHashesTheRestEachTime) {
  MediaHashCache cache(/*max_entries=*/2);
  MediaHashing hashing;
  hashing.cache = &cache;
  auto first = ListHostMedia(media_, "", "", 10, hashing);
  ASSERT_OK(first.status());
  EXPECT_EQ(cache.hashed_bytes(), 13);
  auto again = ListHostMedia(media_, "", "", 10, hashing);
  ASSERT_OK(again.status());
  // The first two (2 + 3 bytes) were kept.
  EXPECT_EQ(cache.hashed_bytes(), 13 + 13 - 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(again->files(i).sha256(), first->files(i).sha256());
}

// A page ends once it has hashed its budget (after the file that crossed
// it), and the next one goes on from there.
TEST_F(MediaExportTest, APageEndsOnceItHasHashedItsBudget) {
  MediaHashCache cache;
  MediaHashing hashing;
  hashing.cache = &cache;
  hashing.page_budget = 4;
  std::vector<std::string> paths;
  std::vector<int> sizes;
  std::string token;
  do {
    auto page = ListHostMedia(media_, "", token, 1000, hashing);
    ASSERT_OK(page.status());
    sizes.push_back(page->files_size());
    for (const auto& f : page->files()) {
      paths.push_back(f.path());
      EXPECT_EQ(f.sha256().size(), 64u) << f.path();
    }
    token = page->next_page_token();
  } while (!token.empty() && sizes.size() < 10);
  // 2+3 bytes, then 4, then 3+1.
  EXPECT_THAT(sizes, ElementsAre(2, 1, 2));
  EXPECT_THAT(paths, ElementsAre("a.b/z.jpg", "accounts/avatars/1.png", "accounts/avatars/2.png",
                                 "cache/x/y.gif", "top.txt"));
  // Hashed once: what is kept does not count against the next page's
  // budget.
  EXPECT_EQ(cache.hashed_bytes(), 13);
  auto all = ListHostMedia(media_, "", "", 1000, hashing);
  ASSERT_OK(all.status());
  EXPECT_EQ(all->files_size(), 5);
}

TEST_F(MediaExportTest, ReadsRangesOfTheFileListedAndNothingOutside) {
  auto whole = ReadHostMedia(media_, "accounts/avatars/2.png", 0, 1 << 20, 0, 0);
  ASSERT_OK(whole.status());
  EXPECT_EQ(whole->data(), "two!");
  auto part = ReadHostMedia(media_, "accounts/avatars/2.png", 1, 2, whole->size(), whole->mtime());
  ASSERT_OK(part.status());
  EXPECT_EQ(part->data(), "wo");
  auto end = ReadHostMedia(media_, "accounts/avatars/2.png", 4, 10, 0, 0);
  ASSERT_OK(end.status());
  EXPECT_EQ(end->data(), "");
  // Changed since it was listed.
  EXPECT_THAT(ReadHostMedia(media_, "accounts/avatars/2.png", 0, 10, 3, 0).status(),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("changed")));
  for (const char* bad : {"../secret", "/etc/passwd", "accounts//x", "", "accounts/./avatars"}) {
    EXPECT_THAT(ReadHostMedia(media_, bad, 0, 10, 0, 0).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_))
        << bad;
  }
  EXPECT_FALSE(ReadHostMedia(media_, "accounts/link.png", 0, 10, 0, 0).ok());
  EXPECT_FALSE(ReadHostMedia(media_, "cache/fifo", 0, 10, 0, 0).ok());
}

// A peer whose reads of one file break a few times on the way.
class FlakyPeer : public PeerAgent {
 public:
  std::string content;
  int breaks = 0;
  std::vector<int64_t> offsets;
  absl::StatusOr<v1::GetAgentInfoResponse> Info() override { return v1::GetAgentInfoResponse(); }
  absl::StatusOr<v1::AppHold> HoldApp(const v1::HoldAppRequest&) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<v1::AppHold> ReleaseApp(const v1::ReleaseAppRequest&) override {
    return absl::UnimplementedError("");
  }
  absl::StatusOr<v1::ListMediaResponse> ListMedia(const v1::ListMediaRequest&) override {
    v1::ListMediaResponse r;
    v1::HostMediaFile* f = r.add_files();
    f->set_path("media_attachments/files/big.bin");
    f->set_size(static_cast<int64_t>(content.size()));
    f->set_mtime(1700000000);
    return r;
  }
  absl::StatusOr<v1::ReadMediaResponse> ReadMedia(const v1::ReadMediaRequest& req) override {
    offsets.push_back(req.offset());
    if (req.offset() > 0 && breaks > 0) {
      --breaks;
      return absl::UnavailableError("connection reset by peer");
    }
    if (req.size() != static_cast<int64_t>(content.size()) || req.mtime() != 1700000000) {
      return absl::AbortedError("changed");
    }
    v1::ReadMediaResponse r;
    r.set_data(content.substr(req.offset(), req.length()));
    r.set_size(static_cast<int64_t>(content.size()));
    r.set_mtime(1700000000);
    return r;
  }
};

TEST(PeerMediaStoreTest, AReadBrokenMidFileGoesOnFromTheByteWhereItStopped) {
  auto peer = std::make_shared<FlakyPeer>();
  for (int i = 0; peer->content.size() < (5u << 20) / 2; ++i) {
    absl::StrAppend(&peer->content, i, ",");
  }
  peer->breaks = 2;
  auto store = NewPeerMediaStore(peer, "old-host", nullptr);
  auto page = store->List("", "");
  ASSERT_OK(page.status());
  ASSERT_EQ(page->objects.size(), 1u);
  EXPECT_EQ(store->Describe(page->objects[0].key),
            "agent:old-host/media_attachments/files/big.bin");
  auto stream = store->Open(page->objects[0]);
  ASSERT_OK(stream.status());
  std::string got;
  char buf[65536];
  while (true) {
    auto n = (*stream)->Read(buf, sizeof(buf));
    ASSERT_OK(n.status());
    if (*n == 0) break;
    got.append(buf, *n);
  }
  EXPECT_EQ(got, peer->content);
  // 1 MiB chunks; the second chunk was asked three times at the same byte.
  ASSERT_GE(peer->offsets.size(), 4u);
  EXPECT_EQ(peer->offsets[1], 1 << 20);
  EXPECT_EQ(peer->offsets[2], 1 << 20);
  EXPECT_EQ(peer->offsets[3], 1 << 20);
  // Read only: nothing is written to another host.
  EXPECT_THAT(store->Put("x", "y", {}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("read only")));
}

TEST(PeerMediaStoreTest, ReadsTakeTheirBytesFromTheBandwidthCap) {
  auto peer = std::make_shared<FlakyPeer>();
  peer->content = std::string(3 << 20, 'x');
  absl::Time now = absl::FromUnixSeconds(1000);
  absl::Duration slept;
  auto rate = std::make_shared<RateLimiter>(
      1 << 20, [&] { return now; },
      [&](absl::Duration d) {
        slept += d;
        now += d;
      });
  auto store = NewPeerMediaStore(peer, "old-host", rate);
  auto page = store->List("", "");
  ASSERT_OK(page.status());
  auto stream = store->Open(page->objects[0]);
  ASSERT_OK(stream.status());
  std::string sink(1 << 20, '\0');
  int64_t total = 0;
  while (true) {
    auto n = (*stream)->Read(sink.data(), sink.size());
    ASSERT_OK(n.status());
    if (*n == 0) break;
    total += static_cast<int64_t>(*n);
  }
  EXPECT_EQ(total, 3 << 20);
  // 3 MiB at 1 MiB/s: about two seconds waited beyond the first burst.
  EXPECT_GE(slept, absl::Milliseconds(1900));
  EXPECT_LE(slept, absl::Milliseconds(3100));
}

TEST(PeerMediaStoreTest, AFileChangedWhileReadIsAbortedNotRetried) {
  auto peer = std::make_shared<FlakyPeer>();
  peer->content = "abc";
  auto store = NewPeerMediaStore(peer, "old-host", nullptr);
  StoredObject stale;
  stale.key = "media_attachments/files/big.bin";
  stale.size = 2;
  stale.mtime = 1700000000;
  auto stream = store->Open(stale);
  ASSERT_OK(stream.status());
  char buf[16];
  EXPECT_THAT((*stream)->Read(buf, sizeof(buf)).status(),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("at byte 0")));
  EXPECT_EQ(peer->offsets.size(), 1u);
}

}  // namespace
}  // namespace mastodon_restore
