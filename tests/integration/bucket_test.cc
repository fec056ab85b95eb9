// The S3 client and buckets as a backup source, against a real
// S3-compatible server that checks AWS Signature Version 4
// (tests/harness/test_s3.h): listings of several pages, keys with spaces,
// unicode and reserved characters, large objects, a wrong secret, a missing
// bucket, a server gone; then a bucket's media tree inspected and restored
// into a media directory, incrementally, and a bucket removed mid-copy.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "agent/common/rate_limiter.h"
#include "agent/common/s3_client.h"
#include "agent/common/status_macros.h"
#include "agent/inventory/inspector.h"
#include "agent/media/media_restore.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"
#include "tests/harness/test_s3.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::IsOkAndHolds;
using ::mastodon_restore::testing::MakeTempDir;
using ::mastodon_restore::testing::RemoveTree;
using ::mastodon_restore::testing::StatusIs;
using ::mastodon_restore::testing::TestS3;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadAll(ByteStream* stream, size_t chunk = 65536) {
  std::string out;
  std::string buf(chunk, '\0');
  for (;;) {
    absl::StatusOr<size_t> n = stream->Read(buf.data(), buf.size());
    EXPECT_OK(n);
    if (!n.ok() || *n == 0) return out;
    out.append(buf.data(), *n);
  }
}

std::string ReadFileOrEmpty(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class BucketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> dir = MakeTempDir("mr-bucket-");
    ASSERT_OK(dir);
    dir_ = *dir;
    auto s3 = TestS3::Start(dir_ + "/s3");
    ASSERT_OK(s3);
    s3_ = std::move(*s3);
    ASSERT_OK(s3_->CreateBucket("media"));
  }
  void TearDown() override {
    s3_.reset();
    RemoveTree(dir_);
  }
  std::unique_ptr<ObjectStore> Client(const S3Options& o) {
    absl::StatusOr<std::unique_ptr<ObjectStore>> c = NewS3Client(o);
    EXPECT_OK(c);
    return c.ok() ? std::move(*c) : nullptr;
  }
  // Every key under `prefix`, and the number of pages it took.
  std::vector<StoredObject> ListAll(const ObjectStore& store, const std::string& prefix,
                                    int* pages) {
    std::vector<StoredObject> all;
    std::string page;
    *pages = 0;
    do {
      absl::StatusOr<ObjectPage> listed = store.List(prefix, page);
      EXPECT_OK(listed);
      if (!listed.ok()) break;
      ++*pages;
      all.insert(all.end(), listed->objects.begin(), listed->objects.end());
      page = listed->next;
    } while (!page.empty());
    return all;
  }

  std::string dir_;
  std::unique_ptr<TestS3> s3_;
};

TEST_F(BucketTest, ListsEveryPageOfAPrefixAndNothingBesideIt) {
  for (int i = 0; i < 1001; ++i) {
    ASSERT_OK(s3_->Put(
        "media", absl::StrFormat("media/accounts/avatars/000/000/%03d/original/%04d.png", i % 7, i),
        std::string(static_cast<size_t>(i % 13), 'x')));
  }
  ASSERT_OK(s3_->Put("media", "mediax/other.png", "not under media/"));
  ASSERT_OK(s3_->Put("media", "backup.tar", "not under media/"));
  std::unique_ptr<ObjectStore> store = Client(s3_->Options("media"));
  int pages = 0;
  std::vector<StoredObject> all = ListAll(*store, "media/", &pages);
  EXPECT_EQ(pages, 2);  // 1000 keys a page, the service's maximum
  ASSERT_EQ(all.size(), 1001u);
  std::set<std::string> keys;
  for (const StoredObject& o : all) {
    keys.insert(o.key);
    EXPECT_EQ(o.size, std::stoi(o.key.substr(o.key.size() - 8, 4)) % 13) << o.key;
    EXPECT_GT(o.mtime, 1700000000) << o.key;
    EXPECT_EQ(o.etag.size(), 32u) << o.key;  // an MD5, unquoted
  }
  EXPECT_EQ(keys.size(), 1001u);
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end(),
                             [](const auto& a, const auto& b) { return a.key < b.key; }));
  // Smaller pages carry on from the token each page gives.
  S3Options small = s3_->Options("media");
  small.page_size = 100;
  EXPECT_EQ(ListAll(*Client(small), "media/", &pages).size(), 1001u);
  EXPECT_EQ(pages, 11);
}

TEST_F(BucketTest, ReadsObjectsWhateverTheirKeys) {
  const std::vector<std::pair<std::string, std::string>> objects = {
      {"accounts/avatars/000/000/001/original/a b é.png", "spaces and unicode"},
      // ("&" left out: s3rver 4.0.4 escapes it twice in listings.)
      {"custom_emojis/images/000/000/001/original/plus+eq=q?h#;,@$.png", "reserved"},
      {"site_uploads/files/000/000/001/original/~tilde%25.png", "tilde and percent"},
      {"日本/ファイル.png", "not latin at all"},
  };
  for (const auto& [key, data] : objects) ASSERT_OK(s3_->Put("media", key, data));
  std::unique_ptr<ObjectStore> store = Client(s3_->Options("media"));
  int pages = 0;
  std::vector<StoredObject> listed = ListAll(*store, "", &pages);
  ASSERT_EQ(listed.size(), objects.size());
  for (const auto& [key, data] : objects) {
    auto it = std::find_if(listed.begin(), listed.end(),
                           [&](const StoredObject& o) { return o.key == key; });
    ASSERT_NE(it, listed.end()) << key;
    EXPECT_EQ(it->size, static_cast<int64_t>(data.size()));
    absl::StatusOr<StoredObject> head = store->Head(key);
    ASSERT_OK(head);
    EXPECT_EQ(head->size, static_cast<int64_t>(data.size())) << key;
    EXPECT_EQ(head->etag, it->etag) << key;
    absl::StatusOr<std::unique_ptr<ByteStream>> stream = store->Open(*it);
    ASSERT_OK(stream);
    EXPECT_EQ(ReadAll(stream->get()), data) << key;
    EXPECT_EQ((*stream)->name(), "s3://media/" + key);
  }
  // A prefix with the same characters selects exactly its objects.
  EXPECT_EQ(ListAll(*store, "日本/", &pages).size(), 1u);
  EXPECT_EQ(ListAll(*store, "custom_emojis/images/000/000/001/original/plus+", &pages).size(), 1u);
  EXPECT_THAT(store->Head("accounts/none.png"), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(BucketTest, LargeObjectsStreamInPiecesWhateverTheReadSize) {
  std::string big(9 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 7919) >> 5);
  ASSERT_OK(s3_->Put("media", "media_attachments/files/big.mp4", big));
  std::unique_ptr<ObjectStore> store = Client(s3_->Options("media"));
  absl::StatusOr<StoredObject> head = store->Head("media_attachments/files/big.mp4");
  ASSERT_OK(head);
  for (size_t chunk : {size_t{1000}, size_t{1} << 20, size_t{4} << 20}) {
    absl::StatusOr<std::unique_ptr<ByteStream>> stream = store->Open(*head);
    ASSERT_OK(stream);
    std::string read = ReadAll(stream->get(), chunk);
    EXPECT_EQ(read.size(), big.size());
    EXPECT_TRUE(read == big) << "chunk " << chunk;
    EXPECT_EQ((*stream)->raw_bytes_read(), static_cast<int64_t>(big.size()));
  }
}

TEST_F(BucketTest, AWrongSecretIsRefusedClearlyAndNeverShown) {
  ASSERT_OK(s3_->Put("media", "accounts/a.png", "a"));
  S3Options o = s3_->Options("media");
  o.secret_access_key = "the-wrong-secret-value";
  std::unique_ptr<ObjectStore> store = Client(o);
  absl::StatusOr<ObjectPage> listed = store->List("", "");
  EXPECT_THAT(listed, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr("refused the credentials of access key '" +
                                               std::string(TestS3::kAccessKeyId) + "'"),
                                     HasSubstr("SignatureDoesNotMatch"),
                                     Not(HasSubstr("the-wrong-secret-value")))));
  StoredObject object;
  object.key = "accounts/a.png";
  object.size = 1;
  absl::StatusOr<std::unique_ptr<ByteStream>> stream = store->Open(object);
  ASSERT_OK(stream);
  char c;
  EXPECT_THAT((*stream)->Read(&c, 1),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("SignatureDoesNotMatch")));
  // An unknown key id too.
  o = s3_->Options("media");
  o.access_key_id = "AKIAUNKNOWN";
  EXPECT_THAT(Client(o)->List("", ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("InvalidAccessKeyId")));
}

TEST_F(BucketTest, AMissingBucketAndAServerGoneAreToldApart) {
  EXPECT_THAT(Client(s3_->Options("nosuchbucket"))->List("", ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("no bucket 'nosuchbucket' at " + s3_->endpoint()),
                             HasSubstr("NoSuchBucket"))));
  std::unique_ptr<ObjectStore> store = Client(s3_->Options("media"));
  s3_.reset();  // stopped
  EXPECT_THAT(store->List("", ""),
              StatusIs(absl::StatusCode::kUnavailable,
                       AllOf(HasSubstr("unable to list s3://media/"), HasSubstr("127.0.0.1"))));
}

TEST_F(BucketTest, EndpointsAndNamesAreChecked) {
  S3Options o = s3_->Options("media");
  o.endpoint = "http://s3.example.com";
  EXPECT_THAT(NewS3Client(o), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("plain http is accepted for a loopback")));
  o.endpoint = "https://user:pw@s3.example.com";
  EXPECT_THAT(NewS3Client(o), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("no credentials, query, fragment")));
  o = s3_->Options("Bad_Bucket");
  EXPECT_THAT(NewS3Client(o),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bucket name 'Bad_Bucket'")));
  o = s3_->Options("media");
  o.secret_access_key.clear();
  EXPECT_THAT(NewS3Client(o), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("an access key id and its secret")));
  EXPECT_THAT(CanonicalS3Endpoint("https://S3.Example.COM:443/"),
              IsOkAndHolds(std::string("https://s3.example.com")));
  EXPECT_THAT(CanonicalS3Endpoint("https://minio.lan:9000/s3/"),
              IsOkAndHolds(std::string("https://minio.lan:9000/s3")));
  EXPECT_EQ(S3UriEncode("a b/é+~", true), "a%20b/%C3%A9%2B~");
  EXPECT_EQ(S3UriEncode("a/b=", false), "a%2Fb%3D");
}

TEST(BucketVirtualHostTest, TheBucketIsAddressedInTheHostName) {
  // s3rver cannot check a virtual-host-style signature (see server.js): this
  // server accepts any signature of the key, so only the addressing is
  // proved here.
  absl::StatusOr<std::string> made = MakeTempDir("mr-bucket-vhost-");
  ASSERT_OK(made);
  const std::string dir = *made;
  {
    auto s3 = TestS3::Start(dir + "/s3", /*unchecked=*/true);
    ASSERT_OK(s3);
    ASSERT_OK((*s3)->CreateBucket("media"));
    ASSERT_OK((*s3)->Put("media", "accounts/avatars/000/000/001/original/v.png", "vhost"));
    S3Options o = (*s3)->Options("media");
    // s3rver takes <bucket>.s3.<service endpoint> for a bucket's host.
    o.endpoint = absl::StrCat("http://s3.localhost:", (*s3)->port());
    o.path_style = false;  // http://media.s3.localhost:PORT/accounts/...
    auto store = NewS3Client(o);
    ASSERT_OK(store);
    absl::StatusOr<ObjectPage> listed = (*store)->List("accounts/", "");
    ASSERT_OK(listed);
    ASSERT_EQ(listed->objects.size(), 1u);
    auto stream = (*store)->Open(listed->objects[0]);
    ASSERT_OK(stream);
    EXPECT_EQ(ReadAll(stream->get()), "vhost");
    // The same key through the path-style address is the same object; a
    // bucket that is not there is not found in the host name either.
    o.bucket = "other";
    EXPECT_THAT((*NewS3Client(o))->List("", ""),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no bucket 'other'")));
  }
  RemoveTree(dir);
}

// A TCP relay to the S3 server that cuts its first connection after
// `cut_after` bytes from the server, as a broken network would.
class CuttingRelay {
 public:
  CuttingRelay(int target_port, int64_t cut_after) : target_(target_port), cut_after_(cut_after) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(listener_, 16);
    socklen_t len = sizeof(addr);
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~CuttingRelay() {
    stop_ = true;
    ::shutdown(listener_, SHUT_RDWR);
    ::close(listener_);
    thread_.join();
  }
  int port() const { return port_; }
  int connections() const { return connections_; }
  // Bytes the server sent on the last connection.
  int64_t last_bytes() const { return last_bytes_; }

 private:
  void Serve() {
    while (!stop_) {
      int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;
      const bool cut = connections_++ == 0;
      int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(static_cast<uint16_t>(target_));
      if (::connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
        Pump(client, server, cut);
      }
      ::close(server);
      ::close(client);
    }
  }
  // One connection at a time (the client under test uses one).
  void Pump(int client, int server, bool cut) {
    int64_t from_server = 0;
    char buf[16384];
    for (;;) {
      pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      if (::poll(fds, 2, 200) < 0 || stop_) return;
      for (int i = 0; i < 2; ++i) {
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
        if (n <= 0) return;
        if (i == 1 && cut && from_server + n > cut_after_) {
          ::write(client, buf, static_cast<size_t>(cut_after_ - from_server));
          return;  // the connection breaks mid-response
        }
        if (i == 1) last_bytes_ = from_server += n;
        if (::write(fds[1 - i].fd, buf, static_cast<size_t>(n)) != n) return;
      }
    }
  }

  const int target_;
  const int64_t cut_after_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<int> connections_{0};
  std::atomic<int64_t> last_bytes_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_F(BucketTest, ATransferBrokenMidObjectIsTakenUpAtTheNextByte) {
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) >> 7);
  ASSERT_OK(s3_->Put("media", "media_attachments/files/cut.mp4", big));
  std::unique_ptr<ObjectStore> direct = Client(s3_->Options("media"));
  absl::StatusOr<StoredObject> head = direct->Head("media_attachments/files/cut.mp4");
  ASSERT_OK(head);

  CuttingRelay relay(s3_->port(), 700 << 10);
  S3Options o = s3_->Options("media");
  o.endpoint = absl::StrCat("http://127.0.0.1:", relay.port());
  std::unique_ptr<ObjectStore> store = Client(o);
  absl::StatusOr<std::unique_ptr<ByteStream>> stream = store->Open(*head);
  ASSERT_OK(stream);
  std::string read = ReadAll(stream->get(), 100000);
  EXPECT_EQ(read.size(), big.size());
  EXPECT_TRUE(read == big);
  EXPECT_EQ(relay.connections(), 2);  // cut once, taken up on a new connection
  // ... with a Range request: the second response holds only the rest.
  EXPECT_LT(relay.last_bytes(), static_cast<int64_t>(big.size() - (600 << 10)));
  EXPECT_GT(relay.last_bytes(), static_cast<int64_t>(big.size() - (700 << 10)));
}

// A store whose listing a hostile server wrote: keys that climb out of the
// prefix or are not in their normal form (a real server normalises what it
// is sent, so only a fake can list them).
class ListedStore : public ObjectStore {
 public:
  explicit ListedStore(std::map<std::string, std::string> objects) : objects_(std::move(objects)) {}
  std::string Describe(const std::string& key) const override { return "s3://fake/" + key; }
  absl::StatusOr<ObjectPage> List(const std::string& prefix, const std::string&) const override {
    ObjectPage page;
    for (const auto& [key, data] : objects_) {
      if (key.compare(0, prefix.size(), prefix) != 0) continue;
      page.objects.push_back({key, static_cast<int64_t>(data.size()), 1700000000, "", "", {}});
    }
    return page;
  }
  absl::StatusOr<std::unique_ptr<ByteStream>> Open(const StoredObject& object) const override {
    ++opened_;
    return std::unique_ptr<ByteStream>(
        new StringStream(objects_.at(object.key), Describe(object.key)));
  }
  absl::StatusOr<StoredObject> Head(const std::string& key) const override {
    return absl::NotFoundError(key);
  }
  absl::StatusOr<std::string> Put(const std::string&, const std::string&,
                                  const std::vector<std::string>&) const override {
    return absl::UnimplementedError("read-only");
  }
  absl::StatusOr<std::unique_ptr<ObjectUpload>> StartUpload(
      const std::string&, const std::vector<std::string>&) const override {
    return absl::UnimplementedError("read-only");
  }
  bool CanCopyFrom(const ObjectStore&) const override { return false; }
  absl::StatusOr<std::string> Copy(const ObjectStore&, const StoredObject&, const std::string&,
                                   const std::vector<std::string>&) const override {
    return absl::FailedPreconditionError("read-only");
  }
  mutable std::atomic<int> opened_{0};

 private:
  std::map<std::string, std::string> objects_;
};

TEST(BucketHostileListingTest, KeysThatClimbOutOrAreNotNormalAreRefusedAndNothingIsWritten) {
  absl::StatusOr<std::string> made = MakeTempDir("mr-bucket-hostile-");
  ASSERT_OK(made);
  const std::string media = *made + "/system";
  auto runner = NewPosixCommandRunner();
  auto env = NewPosixEnv();
  for (const char* hostile : {"media/accounts/avatars/000/000/001/original/../../../../../../x",
                              "media/accounts//avatars/000/000/001/original/b.png",
                              "media/../accounts/avatars/000/000/001/original/c.png"}) {
    SCOPED_TRACE(hostile);
    auto store = std::make_shared<ListedStore>(std::map<std::string, std::string>{
        {"media/accounts/avatars/000/000/001/original/a.png", "fine"}, {hostile, "evil"}});
    MediaRestoreOptions o;
    o.source_path = "s3://fake/media/";
    o.source.bucket = store;
    o.source.bucket_prefix = "media/";
    o.target_dir = media;
    auto manifest = InspectBackup(o.source_path, o.source, InspectOptions(), runner.get());
    ASSERT_OK(manifest);
    o.inventory = manifest->media();
    EXPECT_THAT(RestoreMedia(o, runner.get(), env.get()),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unsafe entry name")));
    EXPECT_FALSE(std::filesystem::exists(media + "/accounts/avatars/000/000/001/original/a.png"));
  }
  EXPECT_FALSE(std::filesystem::exists(*made + "/x"));
  RemoveTree(*made);
}

TEST(BucketTlsTest, HttpsIsVerifiedAgainstTheSystemOrTheGivenCertificates) {
  absl::StatusOr<std::string> made = MakeTempDir("mr-bucket-tls-");
  ASSERT_OK(made);
  const std::string dir = *made;
  {
    auto s3 = TestS3::Start(dir + "/s3", /*unchecked=*/false, /*tls=*/true);
    ASSERT_OK(s3);
    ASSERT_OK((*s3)->CreateBucket("media"));
    ASSERT_OK((*s3)->Put("media", "accounts/avatars/000/000/001/original/t.png", "over tls"));
    S3Options o = (*s3)->Options("media");
    ASSERT_THAT(o.endpoint, ::testing::StartsWith("https://127.0.0.1:"));
    auto store = NewS3Client(o);
    ASSERT_OK(store);
    absl::StatusOr<ObjectPage> listed = (*store)->List("", "");
    ASSERT_OK(listed);
    ASSERT_EQ(listed->objects.size(), 1u);
    auto stream = (*store)->Open(listed->objects[0]);
    ASSERT_OK(stream);
    EXPECT_EQ(ReadAll(stream->get()), "over tls");
    // A certificate nobody vouches for is refused, with what to do.
    o.ca_file.clear();
    EXPECT_THAT((*NewS3Client(o))->List("", ""),
                StatusIs(absl::StatusCode::kFailedPrecondition,
                         AllOf(HasSubstr("TLS"), HasSubstr("ca_file"))));
  }
  RemoveTree(dir);
}

// A bucket's media tree as a backup source: inspected, restored into a media
// directory, restored again with nothing to copy, and a bucket that
// disappears mid-copy leaves the media directory as it was.
class BucketMediaTest : public BucketTest {
 protected:
  void SetUp() override {
    BucketTest::SetUp();
    if (HasFatalFailure()) return;
    media_ = dir_ + "/live/public/system";
    for (const auto& [key, data] : kObjects) ASSERT_OK(s3_->Put("media", "instance/" + key, data));
    ASSERT_OK(s3_->Put("media", "instance/.env.production", "LOCAL_DOMAIN=bucket.example\n"));
    ASSERT_OK(s3_->Put("media", "elsewhere/accounts/avatars/000/000/009/original/no.png", "no"));
  }
  SourceOptions Source(const S3Options& o) {
    SourceOptions source;
    source.bucket = Client(o);
    source.bucket_prefix = "instance/";
    return source;
  }
  absl::StatusOr<MediaRestoreResult> Restore(
      const SourceOptions& source,
      std::function<void(const std::string&, const std::string&)> hook = {}) {
    MediaRestoreOptions o;
    o.source_path = "s3://media/instance/";
    o.source = source;
    o.target_dir = media_;
    o.step_hook = std::move(hook);
    // As the agent names them (a later restore takes over an earlier one's
    // staging directory).
    o.operation_id = absl::StrCat("op-test-", ++restores_);
    ASSIGN_OR_RETURN(auto manifest,
                     InspectBackup(o.source_path, o.source, InspectOptions(), runner_.get()));
    o.inventory = manifest.media();
    return RestoreMedia(o, runner_.get(), env_.get());
  }

  // Writes `data` at `rel` below the backup directory `backup`.
  void WriteBackupFile(const std::string& backup, const std::string& rel, const std::string& data) {
    std::filesystem::create_directories(std::filesystem::path(backup + "/" + rel).parent_path());
    std::ofstream(backup + "/" + rel, std::ios::binary) << data;
  }
  // The media tree of the directory `backup` restored into `target`.
  absl::StatusOr<MediaRestoreResult> Upload(const std::string& backup,
                                            std::shared_ptr<const ObjectStore> target,
                                            bool verify_hash = false) {
    MediaRestoreOptions o;
    o.source_path = backup;
    o.source.allowed_roots = {dir_};
    o.target_bucket = std::move(target);
    o.upload_headers = {"x-amz-acl: public-read"};
    o.verify_hash = verify_hash;
    ASSIGN_OR_RETURN(auto manifest,
                     InspectBackup(o.source_path, o.source, InspectOptions(), runner_.get()));
    o.inventory = manifest.media();
    return RestoreMedia(o, runner_.get(), env_.get());
  }

  const std::vector<std::pair<std::string, std::string>> kObjects = {
      {"media_attachments/files/000/000/001/original/a b.png", "attachment"},
      {"accounts/avatars/000/000/001/original/ü.png", "avatar"},
      {"cache/preview_cards/images/000/000/002/original/c.jpg", "cached card"},
  };
  std::string media_;
  int restores_ = 0;
  std::unique_ptr<Env> env_ = NewPosixEnv();
  std::unique_ptr<CommandRunner> runner_ = NewPosixCommandRunner();
};

TEST_F(BucketMediaTest, InspectedRestoredThenNothingToCopy) {
  SourceOptions source = Source(s3_->Options("media"));
  std::vector<std::string> containers;
  auto manifest = InspectBackup("s3://media/instance/", source, InspectOptions(), runner_.get());
  ASSERT_OK(manifest);
  EXPECT_EQ(manifest->media().files(), 3);
  EXPECT_EQ(manifest->media().bytes(), 10 + 6 + 11);
  EXPECT_EQ(manifest->media().root(), "");
  EXPECT_EQ(manifest->media().cache_files(), 1);
  EXPECT_THAT(manifest->media().root_reason(), HasSubstr("at the top of the source"));

  absl::StatusOr<MediaRestoreResult> first = Restore(source);
  ASSERT_OK(first);
  EXPECT_EQ(first->files_written, 3);
  EXPECT_EQ(first->bytes_written, 27);
  for (const auto& [key, data] : kObjects) EXPECT_EQ(ReadFileOrEmpty(media_ + "/" + key), data);
  // Nothing but the media tree: not the env file, not the other prefix.
  EXPECT_FALSE(std::filesystem::exists(media_ + "/.env.production"));
  EXPECT_FALSE(std::filesystem::exists(media_ + "/accounts/avatars/000/000/009"));

  // Again: every file is there with the object's size and time.
  absl::StatusOr<MediaRestoreResult> second = Restore(source);
  ASSERT_OK(second);
  EXPECT_EQ(second->files_written, 0);
  EXPECT_EQ(second->files_skipped, 3);

  // One object changes: only it is copied.
  ASSERT_OK(s3_->Put("media", "instance/" + kObjects[1].first, "a new avatar"));
  absl::StatusOr<MediaRestoreResult> third = Restore(source);
  ASSERT_OK(third);
  EXPECT_EQ(third->files_written, 1);
  EXPECT_EQ(third->files_skipped, 2);
  EXPECT_EQ(ReadFileOrEmpty(media_ + "/" + kObjects[1].first), "a new avatar");
}

// An instance that keeps its media in a bucket: a backup's media tree is
// written into it, object by object, and a second run writes nothing.
TEST_F(BucketMediaTest, ABackupsMediaTreeIsWrittenIntoTheAppsBucket) {
  ASSERT_OK(s3_->CreateBucket("app-media"));
  const std::string backup = dir_ + "/backup";
  auto write = [&](const std::string& rel, const std::string& data) {
    WriteBackupFile(backup, rel, data);
  };
  write(".env.production", "LOCAL_DOMAIN=x\n");
  write("system/media_attachments/files/000/000/001/original/a.png", "png bytes");
  write("system/accounts/avatars/000/000/001/original/me.jpg", "jpeg bytes");
  write("system/cache/preview_cards/images/000/000/002/original/c.webp", "webp bytes");
  std::unique_ptr<ObjectStore> direct = Client(s3_->Options("app-media"));
  auto restore = [&] { return Upload(backup, Client(s3_->Options("app-media"))); };
  absl::StatusOr<MediaRestoreResult> first = restore();
  ASSERT_OK(first);
  EXPECT_EQ(first->files_written, 3);
  int pages = 0;
  std::vector<StoredObject> objects = ListAll(*direct, "", &pages);
  std::vector<std::string> keys;
  for (const StoredObject& o : objects) keys.push_back(o.key);
  EXPECT_THAT(keys, ::testing::ElementsAre("accounts/avatars/000/000/001/original/me.jpg",
                                           "cache/preview_cards/images/000/000/002/original/c.webp",
                                           "media_attachments/files/000/000/001/original/a.png"));
  auto stream = direct->Open(objects[2]);
  ASSERT_OK(stream);
  EXPECT_EQ(ReadAll(stream->get()), "png bytes");

  absl::StatusOr<MediaRestoreResult> second = restore();
  ASSERT_OK(second);
  EXPECT_EQ(second->files_written, 0);
  EXPECT_EQ(second->files_skipped, 3);
  // A file whose content differs (same size) is written again.
  write("system/accounts/avatars/000/000/001/original/me.jpg", "JPEG BYTES");
  absl::StatusOr<MediaRestoreResult> third = restore();
  ASSERT_OK(third);
  EXPECT_EQ(third->files_written, 1);
  stream = direct->Open(objects[0]);
  ASSERT_OK(stream);
  EXPECT_EQ(ReadAll(stream->get()), "JPEG BYTES");
  EXPECT_EQ(MediaContentType("a/b/c.JPG"), "image/jpeg");
  EXPECT_EQ(MediaContentType("a/b/c.mp4"), "video/mp4");
  EXPECT_EQ(MediaContentType("a/b/c"), "application/octet-stream");
}

// A real store, with the writes sent to it counted.
class CountingStore : public ObjectStore {
 public:
  explicit CountingStore(std::unique_ptr<ObjectStore> store) : store_(std::move(store)) {}
  std::string Describe(const std::string& key) const override { return store_->Describe(key); }
  absl::StatusOr<ObjectPage> List(const std::string& prefix,
                                  const std::string& page) const override {
    return store_->List(prefix, page);
  }
  absl::StatusOr<std::unique_ptr<ByteStream>> Open(const StoredObject& object) const override {
    if (++opens > fail_opens_after) return absl::UnavailableError("connection reset");
    return store_->Open(object);
  }
  absl::StatusOr<StoredObject> Head(const std::string& key) const override {
    return store_->Head(key);
  }
  absl::StatusOr<std::string> Put(const std::string& key, const std::string& data,
                                  const std::vector<std::string>& headers) const override {
    if (++puts > fail_after) return absl::UnavailableError("the store went away");
    return store_->Put(key, data, headers);
  }
  bool CanCopyFrom(const ObjectStore& source) const override { return store_->CanCopyFrom(source); }
  absl::StatusOr<std::string> Copy(const ObjectStore& source, const StoredObject& object,
                                   const std::string& key,
                                   const std::vector<std::string>& headers) const override {
    ++copies;
    return store_->Copy(source, object, key, headers);
  }
  absl::StatusOr<std::unique_ptr<ObjectUpload>> StartUpload(
      const std::string& key, const std::vector<std::string>& headers) const override {
    ++uploads;
    ASSIGN_OR_RETURN(std::unique_ptr<ObjectUpload> upload, store_->StartUpload(key, headers));
    return std::unique_ptr<ObjectUpload>(new CountingUpload(std::move(upload), this));
  }
  void Reset() { opens = puts = copies = uploads = parts = completed = aborted = 0; }

  // Puts, and objects opened, after this many fail.
  int fail_after = 1 << 30;
  int fail_opens_after = 1 << 30;

  mutable std::atomic<int> opens{0}, puts{0}, copies{0}, uploads{0}, parts{0}, completed{0},
      aborted{0};

 private:
  class CountingUpload : public ObjectUpload {
   public:
    CountingUpload(std::unique_ptr<ObjectUpload> upload, const CountingStore* store)
        : upload_(std::move(upload)), store_(store) {}
    absl::Status PutPart(int number, const std::string& data) override {
      ++store_->parts;
      return upload_->PutPart(number, data);
    }
    absl::StatusOr<std::string> Complete() override {
      ++store_->completed;
      return upload_->Complete();
    }
    void Abort() override {
      ++store_->aborted;
      upload_->Abort();
    }

   private:
    std::unique_ptr<ObjectUpload> upload_;
    const CountingStore* store_;
  };
  std::unique_ptr<ObjectStore> store_;
};

// Content no two parts of which are alike.
std::string Noise(size_t size, uint32_t seed) {
  std::string out(size, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (char& c : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return out;
}

// A video bigger than a part (16 MiB) is written in parts, the object is
// the file, byte for byte, with its mtime; a second run sends nothing; with
// verify_hash the content decides and the same content is not replaced.
TEST_F(BucketMediaTest, BigFilesAreWrittenInPartsAndNotSentAgain) {
  ASSERT_OK(s3_->CreateBucket("app-media"));
  const std::string backup = dir_ + "/backup";
  const std::string video_key = "media_attachments/files/000/000/003/original/v.mp4";
  const std::string video = Noise((40 << 20) + 123, 7);
  WriteBackupFile(backup, "system/" + video_key, video);
  WriteBackupFile(backup, "system/accounts/avatars/000/000/001/original/me.jpg", "jpeg bytes");
  auto target = std::make_shared<CountingStore>(Client(s3_->Options("app-media")));

  absl::StatusOr<MediaRestoreResult> first = Upload(backup, target);
  ASSERT_OK(first);
  EXPECT_EQ(first->files_written, 2);
  EXPECT_EQ(first->bytes_written, static_cast<int64_t>(video.size()) + 10);
  EXPECT_EQ(target->puts, 1);
  EXPECT_EQ(target->uploads, 1);
  EXPECT_EQ(target->parts, 3);  // 16 + 16 + 8 MiB
  EXPECT_EQ(target->completed, 1);
  absl::StatusOr<StoredObject> head = target->Head(video_key);
  ASSERT_OK(head);
  EXPECT_EQ(head->size, static_cast<int64_t>(video.size()));
  struct stat st;
  ASSERT_EQ(::stat((backup + "/system/" + video_key).c_str(), &st), 0);
  EXPECT_EQ(head->metadata["mtime"], absl::StrCat(st.st_mtime));
  auto stream = target->Open(*head);
  ASSERT_OK(stream);
  EXPECT_TRUE(ReadAll(stream->get(), 1 << 20) == video);

  target->Reset();
  absl::StatusOr<MediaRestoreResult> second = Upload(backup, target);
  ASSERT_OK(second);
  EXPECT_EQ(second->files_written, 0);
  EXPECT_EQ(second->files_skipped, 2);
  EXPECT_EQ(target->puts + target->uploads + target->parts, 0);

  // By content: the parts are sent (to know), the same object is kept.
  target->Reset();
  absl::StatusOr<MediaRestoreResult> verified = Upload(backup, target, /*verify_hash=*/true);
  ASSERT_OK(verified);
  EXPECT_EQ(verified->files_written, 0);
  EXPECT_EQ(verified->files_skipped, 2);
  EXPECT_EQ(target->aborted, 1);
  EXPECT_EQ(target->completed, 0);

  // Touched (the same content, a new mtime): sent once more, so that its
  // new mtime is on the object, then not again.
  const std::string video_path = backup + "/system/" + video_key;
  struct timespec times[2] = {{st.st_mtime + 60, 0}, {st.st_mtime + 60, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, video_path.c_str(), times, 0), 0);
  target->Reset();
  absl::StatusOr<MediaRestoreResult> touched = Upload(backup, target);
  ASSERT_OK(touched);
  EXPECT_EQ(touched->files_written, 1);
  EXPECT_EQ(target->completed, 1);
  target->Reset();
  touched = Upload(backup, target);
  ASSERT_OK(touched);
  EXPECT_EQ(touched->files_written, 0);
  EXPECT_EQ(target->parts, 0);

  // A changed video is written again.
  std::string changed = video;
  changed[30 << 20] ^= 1;
  WriteBackupFile(backup, "system/" + video_key, changed);
  target->Reset();
  absl::StatusOr<MediaRestoreResult> third = Upload(backup, target);
  ASSERT_OK(third);
  EXPECT_EQ(third->files_written, 1);
  EXPECT_EQ(target->completed, 1);
  head = target->Head(video_key);
  ASSERT_OK(head);
  stream = target->Open(*head);
  ASSERT_OK(stream);
  EXPECT_TRUE(ReadAll(stream->get(), 1 << 20) == changed);
}

// From a bucket into a bucket of the same service: the service copies the
// objects (their bytes never pass through the agent), and a second run
// copies nothing (the ETags match); with other credentials the bytes are
// read and written.
TEST_F(BucketMediaTest, BucketToBucketOnOneServiceIsCopiedByTheService) {
  ASSERT_OK(s3_->CreateBucket("app-media"));
  auto target = std::make_shared<CountingStore>(Client(s3_->Options("app-media")));
  auto copy = [&](const S3Options& from) -> absl::StatusOr<MediaRestoreResult> {
    MediaRestoreOptions o;
    o.source_path = "s3://media/instance/";
    o.source = Source(from);
    o.target_bucket = target;
    o.upload_headers = {"x-amz-acl: public-read"};
    ASSIGN_OR_RETURN(auto manifest,
                     InspectBackup(o.source_path, o.source, InspectOptions(), runner_.get()));
    o.inventory = manifest.media();
    return RestoreMedia(o, runner_.get(), env_.get());
  };
  absl::StatusOr<MediaRestoreResult> first = copy(s3_->Options("media"));
  ASSERT_OK(first);
  EXPECT_EQ(first->files_written, 3);
  EXPECT_EQ(target->copies, 3);
  EXPECT_EQ(target->puts, 0);
  for (const auto& [key, data] : kObjects) {
    absl::StatusOr<StoredObject> head = target->Head(key);
    ASSERT_OK(head);
    auto stream = target->Open(*head);
    ASSERT_OK(stream);
    EXPECT_EQ(ReadAll(stream->get()), data);
    EXPECT_EQ(head->metadata.count("mtime"), 1u);
  }
  target->Reset();
  absl::StatusOr<MediaRestoreResult> second = copy(s3_->Options("media"));
  ASSERT_OK(second);
  EXPECT_EQ(second->files_written, 0);
  EXPECT_EQ(second->files_skipped, 3);
  EXPECT_EQ(target->copies + target->puts, 0);

  // Only the same service reached with the same credentials copies; else
  // the bytes go through the agent.
  std::unique_ptr<ObjectStore> app = Client(s3_->Options("app-media"));
  EXPECT_TRUE(app->CanCopyFrom(*Client(s3_->Options("media"))));
  S3Options other = s3_->Options("media");
  other.access_key_id = "ANOTHERKEY";
  EXPECT_FALSE(app->CanCopyFrom(*Client(other)));
  other = s3_->Options("media");
  other.region = "eu-west-3";
  EXPECT_FALSE(app->CanCopyFrom(*Client(other)));
  other = s3_->Options("media");
  other.endpoint = "http://127.0.0.2:9";
  EXPECT_FALSE(app->CanCopyFrom(*Client(other)));
  EXPECT_FALSE(app->CanCopyFrom(*target));  // not an S3 client
}

// An upload stopped midway (the store gone, or the agent stopped) is taken
// up by the next run where it stopped: what reached the bucket is not sent
// again.
TEST_F(BucketMediaTest, AnUploadStoppedMidwayIsTakenUpWhereItStopped) {
  ASSERT_OK(s3_->CreateBucket("app-media"));
  const std::string backup = dir_ + "/backup";
  for (int i = 0; i < 60; ++i) {
    WriteBackupFile(
        backup,
        absl::StrFormat("system/media_attachments/files/000/002/%03d/original/%d.png", i, i),
        Noise(static_cast<size_t>(1000 + i * 97), static_cast<uint32_t>(i)));
  }
  auto target = std::make_shared<CountingStore>(Client(s3_->Options("app-media")));
  target->fail_after = 20;
  absl::StatusOr<MediaRestoreResult> broken = Upload(backup, target);
  EXPECT_THAT(broken, StatusIs(absl::StatusCode::kUnavailable, HasSubstr("went away")));
  target->fail_after = 1 << 30;
  int pages = 0;
  const size_t landed = ListAll(*target, "", &pages).size();
  EXPECT_EQ(landed, 20u);

  target->Reset();
  absl::StatusOr<MediaRestoreResult> again = Upload(backup, target);
  ASSERT_OK(again);
  EXPECT_EQ(again->files_written, static_cast<int64_t>(60 - landed));
  EXPECT_EQ(again->files_skipped, static_cast<int64_t>(landed));
  EXPECT_EQ(target->puts, static_cast<int>(60 - landed));
  EXPECT_EQ(ListAll(*target, "", &pages).size(), 60u);
}

// A copy from a bucket broken midway (the store unreachable) is taken up by
// the next run: what was staged is not fetched again.
TEST_F(BucketMediaTest, ACopyBrokenMidwayFetchesOnlyTheRestNextTime) {
  for (int i = 0; i < 120; ++i) {
    ASSERT_OK(s3_->Put(
        "media",
        absl::StrFormat("instance/media_attachments/files/000/004/%03d/original/%d.png", i, i),
        Noise(static_cast<size_t>(2000 + i), static_cast<uint32_t>(i))));
  }
  SourceOptions source = Source(s3_->Options("media"));
  auto counted = std::make_shared<CountingStore>(Client(s3_->Options("media")));
  source.bucket = counted;
  counted->fail_opens_after = 60;
  EXPECT_THAT(Restore(source), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("reset")));
  EXPECT_FALSE(std::filesystem::exists(media_ + "/media_attachments"));

  counted->fail_opens_after = 1 << 30;
  MediaRestoreOptions o;
  o.source_path = "s3://media/instance/";
  o.source = source;
  o.target_dir = media_;
  o.operation_id = "op-test-again";
  auto manifest = InspectBackup(o.source_path, o.source, InspectOptions(), runner_.get());
  ASSERT_OK(manifest);
  o.inventory = manifest->media();
  counted->Reset();  // (the inventory read the env file)
  absl::StatusOr<MediaRestoreResult> again = RestoreMedia(o, runner_.get(), env_.get());
  ASSERT_OK(again);
  EXPECT_EQ(again->files_written, 123);
  EXPECT_GT(again->files_resumed, 0);
  // Every media object not staged before, and the env file beside them
  // (opened by the walk, whose first read would fetch it: never read).
  EXPECT_EQ(counted->opens, 123 - again->files_resumed + 1);
  for (int i = 0; i < 120; i += 17) {
    EXPECT_TRUE(ReadFileOrEmpty(absl::StrFormat(
                    "%s/media_attachments/files/000/004/%03d/original/%d.png", media_, i, i)) ==
                Noise(static_cast<size_t>(2000 + i), static_cast<uint32_t>(i)));
  }
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/live/public")) {
    EXPECT_EQ(e.path().filename(), "system");
  }
}

// A bandwidth cap holds across the objects read at once.
TEST_F(BucketMediaTest, ABandwidthCapHoldsAcrossParallelReads) {
  std::vector<std::pair<std::string, std::string>> objects;
  for (int i = 0; i < 16; ++i) {
    objects.emplace_back(
        absl::StrFormat("media_attachments/files/000/003/%03d/original/%d.png", i, i),
        Noise(256 << 10, static_cast<uint32_t>(i)));
  }
  for (const auto& [key, data] : objects) ASSERT_OK(s3_->Put("media", "instance/" + key, data));
  S3Options o = s3_->Options("media");
  o.rate_limit = std::make_shared<RateLimiter>(2 << 20);  // 2 MiB/s; 4 MiB + 27 bytes to read
  const absl::Time start = absl::Now();
  absl::StatusOr<MediaRestoreResult> restored = Restore(Source(o));
  const absl::Duration took = absl::Now() - start;
  ASSERT_OK(restored);
  EXPECT_EQ(restored->files_written, 19);
  // At least the time the cap allows (2 s, less the quarter-second burst).
  EXPECT_GE(took, absl::Milliseconds(1700));
  for (const auto& [key, data] : objects) EXPECT_TRUE(ReadFileOrEmpty(media_ + "/" + key) == data);
}

TEST_F(BucketMediaTest, AWrongSecretFailsBeforeAnythingIsWritten) {
  S3Options o = s3_->Options("media");
  o.secret_access_key = "not-the-secret";
  EXPECT_THAT(Restore(Source(o)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("SignatureDoesNotMatch")));
  EXPECT_TRUE(!std::filesystem::exists(media_) || std::filesystem::is_empty(media_));
}

TEST_F(BucketMediaTest, ABucketGoneMidCopyLeavesTheMediaAsTheyWereAndAReRunFinishes) {
  // More objects than are fetched ahead (8 at once, up to 32 ahead), each
  // with its own content.
  std::vector<std::pair<std::string, std::string>> objects = kObjects;
  for (int i = 0; i < 120; ++i) {
    objects.emplace_back(
        absl::StrFormat("media_attachments/files/000/001/%03d/original/%d.png", i, i),
        std::string(static_cast<size_t>(i * 37 % 5000), static_cast<char>('a' + i % 26)));
  }
  for (const auto& [key, data] : objects) ASSERT_OK(s3_->Put("media", "instance/" + key, data));
  SourceOptions source = Source(s3_->Options("media"));
  std::filesystem::create_directories(media_ + "/accounts");
  std::ofstream(media_ + "/accounts/kept.png") << "kept";
  int staged = 0;
  absl::StatusOr<MediaRestoreResult> broken =
      Restore(source, [&](const std::string& step, const std::string&) {
        if (step == "staged" && ++staged == 1) {
          ASSERT_OK(s3_->DeleteBucket("media"));
        }
      });
  EXPECT_THAT(broken, StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NoSuchBucket")));
  EXPECT_EQ(ReadFileOrEmpty(media_ + "/accounts/kept.png"), "kept");
  EXPECT_FALSE(std::filesystem::exists(media_ + "/" + kObjects[0].first));
  EXPECT_FALSE(std::filesystem::exists(media_ + "/" + kObjects[1].first));
  // No staging directory is left beside the media directory.
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/live/public")) {
    EXPECT_EQ(e.path().filename(), "system");
  }
  // The bucket is back: the restore completes.
  ASSERT_OK(s3_->CreateBucket("media"));
  for (const auto& [key, data] : objects) ASSERT_OK(s3_->Put("media", "instance/" + key, data));
  absl::StatusOr<MediaRestoreResult> again = Restore(source);
  ASSERT_OK(again);
  EXPECT_EQ(again->files_written, 123);
  for (const auto& [key, data] : objects) EXPECT_EQ(ReadFileOrEmpty(media_ + "/" + key), data);
  EXPECT_EQ(ReadFileOrEmpty(media_ + "/accounts/kept.png"), "kept");
  // One object after the other gives the same.
  source.bucket_parallel = 1;
  std::filesystem::remove_all(media_);
  again = Restore(source);
  ASSERT_OK(again);
  EXPECT_EQ(again->files_written, 123);
  for (const auto& [key, data] : objects) EXPECT_EQ(ReadFileOrEmpty(media_ + "/" + key), data);
}

}  // namespace
}  // namespace mastodon_restore
