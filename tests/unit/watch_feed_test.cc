#include <gmock/gmock.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "agent/operations/operation.h"
#include "agent/service/watch_reactor.h"
#include "tests/harness/fake_env.h"

namespace mastodon_restore {
namespace {

namespace v1 = mastodon::restore::v1;

// The slices of `buffer` (each a reference to the buffer's memory).
std::vector<grpc::Slice> Slices(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  return slices;
}

v1::WatchOperationResponse Parse(const grpc::ByteBuffer& buffer) {
  grpc::ByteBuffer copy = buffer;
  v1::WatchOperationResponse response;
  EXPECT_TRUE(
      grpc::SerializationTraits<v1::WatchOperationResponse>::Deserialize(&copy, &response).ok());
  return response;
}

TEST(WatchFeedTest, EveryListenerOfAnEventGetsTheSameBytesSerializedOnce) {
  testing::FakeEnv env;
  v1::OperationRecord record;
  record.mutable_operation()->set_id("op-feed");
  Operation op(record, &env, nullptr);
  op.DeclareSteps({{"load", "load the dump"}});
  op.MarkRunning();

  WatchFeed feed;
  std::vector<std::vector<grpc::ByteBuffer>> got(3);
  std::vector<int64_t> ids;
  for (auto& mine : got) {
    std::vector<Operation::Event> backlog;
    ids.push_back(op.Subscribe(
        1,
        [&feed, &mine](const Operation::Event& e, const v1::Operation& current) {
          mine.push_back(feed.Encode(e, current));
        },
        &backlog));
  }
  op.StepStarted("load");
  op.StepProgress("load", 5, 10, "bytes", "half");
  for (int64_t id : ids) op.Unsubscribe(id);

  ASSERT_EQ(got[0].size(), 2u);
  for (size_t event = 0; event < 2; ++event) {
    const std::vector<grpc::Slice> first = Slices(got[0][event]);
    ASSERT_FALSE(first.empty());
    for (size_t listener = 1; listener < got.size(); ++listener) {
      ASSERT_EQ(got[listener].size(), 2u);
      const std::vector<grpc::Slice> other = Slices(got[listener][event]);
      ASSERT_EQ(other.size(), first.size());
      // The very same memory: serialized once, shared by reference.
      EXPECT_EQ(other[0].begin(), first[0].begin());
    }
  }
  // The two events are different bytes, each the event with the operation as
  // of it.
  EXPECT_NE(Slices(got[0][0])[0].begin(), Slices(got[0][1])[0].begin());
  const v1::WatchOperationResponse started = Parse(got[2][0]);
  EXPECT_EQ(started.event().type(), v1::EVENT_TYPE_STEP_STARTED);
  EXPECT_EQ(started.operation().id(), "op-feed");
  EXPECT_EQ(started.operation().last_sequence(), started.event().sequence());
  EXPECT_EQ(started.operation().steps(0).state(), v1::STEP_STATE_RUNNING);
  const v1::WatchOperationResponse progress = Parse(got[1][1]);
  EXPECT_EQ(progress.event().sequence(), started.event().sequence() + 1);
  EXPECT_EQ(progress.event().progress().done(), 5);
  EXPECT_EQ(progress.operation().steps(0).progress().done(), 5);
}

TEST(WatchFeedTest, OneFeedPerOperationWhileItIsWatched) {
  WatchFeeds feeds;
  std::shared_ptr<WatchFeed> a = feeds.For("op-a");
  EXPECT_EQ(feeds.For("op-a"), a);
  EXPECT_NE(feeds.For("op-b"), a);
  std::weak_ptr<WatchFeed> weak = a;
  a.reset();
  EXPECT_TRUE(weak.expired());  // the registry does not keep it alive
  EXPECT_NE(feeds.For("op-a"), nullptr);
}

}  // namespace
}  // namespace mastodon_restore
