// Redis dumps made by a real redis-server (Debian's), read by SummarizeRdb:
// keys of every type Mastodon and sidekiq write (strings, lists, sets,
// sorted sets, hashes, small and large encodings), streams with consumer
// groups, several databases, keys with an expiry; module data written as
// rdb.c writes it; what is not an RDB file.
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

TEST_F(RedisDumpTest, StreamsWithConsumerGroupsAndPendingEntriesAreWalked) {
  // Three listpack nodes (100 entries each by default), a deleted entry, a
  // group with pending entries and two consumers, then keys after it.
  for (int i = 0; i < 250; ++i) {
    Cli({"XADD", "events", "*", "n", absl::StrCat(i), "body", std::string(i % 7 * 10, 'e')});
  }
  Cli({"XGROUP", "CREATE", "events", "workers", "0"});
  Cli({"XREADGROUP", "GROUP", "workers", "alice", "COUNT", "5", "STREAMS", "events", ">"});
  Cli({"XREADGROUP", "GROUP", "workers", "bob", "COUNT", "3", "STREAMS", "events", ">"});
  Cli({"XGROUP", "CREATE", "events", "idle", "$"});
  Cli({"XADD", "empty", "*", "a", "1"});
  Cli({"XTRIM", "empty", "MAXLEN", "0"});
  Cli({"SET", "after", "1"});
  Cli({"-n", "2", "SET", "other", "db"});
  ASSERT_EQ(Cli({"SAVE"}), "OK\n");
  absl::StatusOr<RdbSummary> s = Summarize(absl::Now());
  ASSERT_OK(s);
  EXPECT_EQ(s->keys, 4);
  EXPECT_EQ(s->keys_by_db[0], 3);
  EXPECT_EQ(s->keys_by_db[2], 1);
}

// No module is packaged for Debian's Redis: module data as rdb.c writes it
// (RDB_TYPE_MODULE_2 and module aux: opcode-tagged fields up to EOF), byte
// by byte.
TEST_F(RedisDumpTest, ModuleDataIsWalkedByItsOpcodes) {
  auto len = [](uint64_t n) {
    if (n < 64) return std::string(1, static_cast<char>(n));
    std::string out(1, '\x81');
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xFF));
    return out;
  };
  auto str = [&](const std::string& v) { return len(v.size()) + v; };
  const uint64_t module_id = 0x1234567890ABCDEFull;
  const std::string fields = len(1) + len(7) +                  // SINT 7
                             len(3) + std::string(4, '\0') +    // FLOAT
                             len(4) + std::string(8, '\0') +    // DOUBLE
                             len(5) + str("payload") + len(0);  // STRING, EOF
  std::string rdb = "REDIS0010";
  rdb += '\xF7' + len(module_id) + len(2) + len(2) + fields;  // module aux
  rdb += '\xFE' + len(0);                                     // SELECTDB 0
  rdb += '\x07' + str("m") + len(module_id) + fields;         // a module value
  rdb += '\x00' + str("after") + str("1");                    // a string
  rdb += '\xFF' + std::string(8, '\0');
  std::ofstream(dir_ + "/dump.rdb", std::ios::trunc | std::ios::binary) << rdb;
  absl::StatusOr<RdbSummary> s = Summarize(absl::Now());
  ASSERT_OK(s);
  EXPECT_EQ(s->keys, 2);

  // Redis 4.0's pre-release module format, which Redis itself refuses.
  rdb = "REDIS0010" + std::string("\xFE") + len(0) + '\x06' + str("m") + len(module_id) + '\xFF' +
        std::string(8, '\0');
  std::ofstream(dir_ + "/dump.rdb", std::ios::trunc | std::ios::binary) << rdb;
  EXPECT_THAT(Summarize(absl::Now()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no longer loads")));
}

}  // namespace
}  // namespace mastodon_restore
