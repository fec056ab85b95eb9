// Redis dumps made by a real redis-server (Debian's), read by SummarizeRdb:
// keys of every type Mastodon and sidekiq write (strings, lists, sets,
// sorted sets, hashes, small and large encodings), several databases, keys
// with an expiry; what is not an RDB file.
#include "agent/app/redis_dump.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/common/byte_stream.h"
#include "agent/common/subprocess.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"
#include "tests/harness/test_redis.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::StatusIs;
using ::testing::HasSubstr;

class RedisDumpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::MakeTempDir("mr-redis-");
    ASSERT_OK(dir);
    dir_ = *dir;
    auto redis = testing::TestRedis::Start(dir_);
    ASSERT_OK(redis);
    redis_ = std::move(*redis);
  }
  void TearDown() override {
    redis_.reset();
    testing::RemoveTree(dir_);
  }
  std::string Cli(std::vector<std::string> args) { return redis_->Cli(args); }
  absl::StatusOr<RdbSummary> Summarize(absl::Time now) {
    auto stream = FileStream::Open(dir_ + "/dump.rdb");
    if (!stream.ok()) return stream.status();
    return SummarizeRdb(stream->get(), now);
  }

  std::string dir_;
  std::unique_ptr<testing::TestRedis> redis_;
};

TEST_F(RedisDumpTest, CountsEveryKeyOfEveryTypeAndDatabase) {
  // What Mastodon and sidekiq keep: feeds (sorted sets), queues (lists),
  // sets, hashes, strings; small ones (listpack encodings) and large ones.
  Cli({"SET", "cache:x", "1"});
  Cli({"SET", "counter", "12345"});
  Cli({"SET", "long", std::string(5000, 'a')});  // LZF-compressed
  Cli({"RPUSH", "queue:default", "a", "b", "c"});
  Cli({"SADD", "queues", "default", "push", "pull"});
  Cli({"SADD", "ints", "1", "2", "3"});
  Cli({"ZADD", "feed:home:1", "1", "109000000000000001", "2", "109000000000000002"});
  Cli({"HSET", "stat", "processed", "10", "failed", "0"});
  std::vector<std::string> big_zset = {"ZADD", "feed:home:2"};
  std::vector<std::string> big_list = {"RPUSH", "queue:pull"};
  std::vector<std::string> big_hash = {"HSET", "big"};
  for (int i = 0; i < 300; ++i) {
    for (const std::string& a : {absl::StrCat(i), absl::StrCat("1090000000000", i)}) {
      big_zset.push_back(a);
    }
    big_list.push_back(absl::StrCat("job-", i, std::string(80, 'x')));
    big_hash.push_back(absl::StrCat("k", i));
    big_hash.push_back(std::string(100, 'v'));
  }
  Cli(big_zset);
  Cli(big_list);
  Cli(big_hash);
  Cli({"SET", "session", "s", "PX", "600000"});
  ASSERT_EQ(Cli({"-n", "1", "SET", "other", "db"}), "OK\n");
  ASSERT_EQ(Cli({"SAVE"}), "OK\n");
  ASSERT_EQ(Cli({"DBSIZE"}), "12\n");

  absl::StatusOr<RdbSummary> s = Summarize(absl::Now());
  ASSERT_OK(s);
  EXPECT_GE(s->version, 9);
  EXPECT_EQ(s->keys, 13);
  EXPECT_EQ(s->keys_by_db[0], 12);
  EXPECT_EQ(s->keys_by_db[1], 1);
  EXPECT_EQ(s->with_expiry, 1);
  EXPECT_EQ(s->expired, 0);
  // An hour later the session key would be dropped on load.
  s = Summarize(absl::Now() + absl::Hours(1));
  ASSERT_OK(s);
  EXPECT_EQ(s->expired, 1);
}

TEST_F(RedisDumpTest, AnEmptyDumpHasNoKeysAndOtherFilesAreRefused) {
  ASSERT_EQ(Cli({"SAVE"}), "OK\n");
  absl::StatusOr<RdbSummary> s = Summarize(absl::Now());
  ASSERT_OK(s);
  EXPECT_EQ(s->keys, 0);

  std::ofstream(dir_ + "/dump.rdb", std::ios::trunc) << "PGDMP not redis";
  EXPECT_THAT(Summarize(absl::Now()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a Redis dump")));
  // A dump cut short.
  Cli({"SET", "a", "b"});
  ASSERT_EQ(Cli({"SAVE"}), "OK\n");
  std::ifstream in(dir_ + "/dump.rdb", std::ios::binary);
  std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::ofstream(dir_ + "/dump.rdb", std::ios::trunc | std::ios::binary)
      << whole.substr(0, whole.size() - 12);
  EXPECT_THAT(Summarize(absl::Now()), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace mastodon_restore
