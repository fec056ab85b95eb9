#include "agent/service/watch_reactor.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/operations/operation.h"
#include "mastodon/restore/v1/agent_service.grpc.pb.h"
#include "tests/harness/fake_env.h"
#include "tests/harness/test_postgres.h"

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
    Operation::EventPage backlog;
    ids.push_back(op.Subscribe(
        1, 16,
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

namespace mastodon_restore {
namespace {

// WatchOperation alone, served by WatchReactor on one operation the test
// drives, over a real HTTP/2 connection (a unix socket: flow control holds
// back a client that stops reading).
class WatchOnlyService : public v1::RestoreAgentService::WithRawCallbackMethod_WatchOperation<
                             v1::RestoreAgentService::Service> {
 public:
  explicit WatchOnlyService(std::shared_ptr<Operation> operation)
      : operation_(std::move(operation)) {}

  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchOperation(grpc::CallbackServerContext*,
                                                             const grpc::ByteBuffer* raw) override {
    grpc::ByteBuffer bytes = *raw;
    v1::WatchOperationRequest request;
    EXPECT_TRUE(
        grpc::SerializationTraits<v1::WatchOperationRequest>::Deserialize(&bytes, &request).ok());
    return new WatchReactor(operation_, feed(), request.from_sequence());
  }

  std::shared_ptr<WatchFeed> feed() { return feeds_.For(operation_->id()); }

 private:
  std::shared_ptr<Operation> operation_;
  WatchFeeds feeds_;
};

class WatchReactorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = testing::MakeTempDir("mr-watch-");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *dir;
    v1::OperationRecord record;
    record.mutable_operation()->set_id("op-watched");
    operation_ = std::make_shared<Operation>(record, &env_, nullptr);
    operation_->DeclareSteps({{"refresh", "refresh media"}});
    operation_->MarkRunning();
    service_ = std::make_unique<WatchOnlyService>(operation_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + dir_ + "/watch.sock", grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::RestoreAgentService::NewStub(
        grpc::CreateChannel("unix:" + dir_ + "/watch.sock", grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
    testing::RemoveTree(dir_);
  }

  // Reads the stream to its end: the events' sequences, and which of them
  // carried the operation.
  static grpc::Status ReadAll(grpc::ClientReader<v1::WatchOperationResponse>* reader,
                              std::vector<int64_t>* sequences, std::vector<bool>* with_operation) {
    v1::WatchOperationResponse r;
    while (reader->Read(&r)) {
      sequences->push_back(r.event().sequence());
      with_operation->push_back(r.has_operation());
    }
    return reader->Finish();
  }

  testing::FakeEnv env_;
  std::string dir_;
  std::shared_ptr<Operation> operation_;
  std::unique_ptr<WatchOnlyService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::RestoreAgentService::Stub> stub_;
};

TEST_F(WatchReactorTest, AClientThatStopsReadingHoldsBoundedMemoryAndLaterGetsEveryEvent) {
  std::shared_ptr<WatchFeed> feed = service_->feed();
  grpc::ClientContext stalled_context, reader_context;
  v1::WatchOperationRequest request;
  request.set_id("op-watched");
  request.set_from_sequence(1);
  auto stalled = stub_->WatchOperation(&stalled_context, request);
  v1::WatchOperationResponse first;
  ASSERT_TRUE(stalled->Read(&first));  // subscribed
  EXPECT_EQ(first.event().sequence(), 1);
  // A watcher that keeps reading, beside it.
  std::vector<int64_t> read_sequences;
  std::vector<bool> read_with_operation;
  grpc::Status read_status;
  auto reading = stub_->WatchOperation(&reader_context, request);
  std::thread reader(
      [&] { read_status = ReadAll(reading.get(), &read_sequences, &read_with_operation); });

  // 40 MB of events, far beyond what HTTP/2 flow control lets through to a
  // client that does not read.
  const std::string line(2000, 'x');
  int64_t most_queued = 0;
  for (int i = 0; i < 20000; ++i) {
    operation_->Log(v1::SEVERITY_WARNING, absl::StrCat(i, " ", line), "refresh");
    most_queued = std::max(most_queued, feed->queued());
  }
  // Each stream holds at most kMaxQueued messages (two streams here).
  EXPECT_LE(most_queued, 2 * static_cast<int64_t>(WatchReactor::kMaxQueued));
  operation_->Finish(absl::OkStatus());
  const int64_t last = operation_->Snapshot().last_sequence();

  // The stalled client reads again: every event, in order, once; the ones it
  // had fallen behind on came from the record (without the operation), and
  // the stream ends after the last.
  std::vector<int64_t> sequences = {first.event().sequence()};
  std::vector<bool> with_operation = {first.has_operation()};
  ASSERT_TRUE(ReadAll(stalled.get(), &sequences, &with_operation).ok());
  ASSERT_EQ(static_cast<int64_t>(sequences.size()), last);
  for (int64_t i = 0; i < last; ++i) ASSERT_EQ(sequences[static_cast<size_t>(i)], i + 1);
  EXPECT_GT(std::count(with_operation.begin(), with_operation.end(), false), 1000);
  EXPECT_TRUE(with_operation.back());  // the end carries the operation

  reader.join();
  ASSERT_TRUE(read_status.ok()) << read_status.error_message();
  ASSERT_EQ(static_cast<int64_t>(read_sequences.size()), last);
  for (int64_t i = 0; i < last; ++i) ASSERT_EQ(read_sequences[static_cast<size_t>(i)], i + 1);
  EXPECT_TRUE(read_with_operation.back());
  EXPECT_EQ(feed->queued(), 0);
}

TEST_F(WatchReactorTest, ReplaysFromASequenceInPagesThenEnds) {
  for (int i = 0; i < 500; ++i) operation_->Log(v1::SEVERITY_INFO, absl::StrCat("line ", i));
  operation_->Finish(absl::OkStatus());
  const int64_t last = operation_->Snapshot().last_sequence();
  for (int64_t from : {int64_t{1}, int64_t{200}, last, last + 5}) {
    grpc::ClientContext context;
    v1::WatchOperationRequest request;
    request.set_id("op-watched");
    request.set_from_sequence(from);
    auto stream = stub_->WatchOperation(&context, request);
    std::vector<int64_t> sequences;
    std::vector<bool> with_operation;
    ASSERT_TRUE(ReadAll(stream.get(), &sequences, &with_operation).ok()) << from;
    const int64_t expected = from > last ? 0 : last - from + 1;
    ASSERT_EQ(static_cast<int64_t>(sequences.size()), expected) << from;
    for (size_t i = 0; i < sequences.size(); ++i)
      ASSERT_EQ(sequences[i], from + static_cast<int64_t>(i));
    if (!with_operation.empty()) {
      EXPECT_TRUE(with_operation.back());
      EXPECT_EQ(std::count(with_operation.begin(), with_operation.end(), true), 1);
    }
  }
}

TEST_F(WatchReactorTest, EventsAfterTheTerminalStateAreReplayedAcrossAPageEnd) {
  // Recovery at the next start logs on an INTERRUPTED operation: those
  // events come after its terminal state, here across the end of the first
  // page of the record.
  while (operation_->Snapshot().last_sequence() <
         static_cast<int64_t>(WatchReactor::kMaxQueued) - 2) {
    operation_->Log(v1::SEVERITY_INFO, "line");
  }
  operation_->Finish(absl::InternalError("the agent stopped while the operation ran"));
  for (int i = 0; i < 3; ++i) operation_->Log(v1::SEVERITY_WARNING, absl::StrCat("recovered: ", i));
  const int64_t last = operation_->Snapshot().last_sequence();
  ASSERT_GT(last, static_cast<int64_t>(WatchReactor::kMaxQueued));
  grpc::ClientContext context;
  v1::WatchOperationRequest request;
  request.set_id("op-watched");
  request.set_from_sequence(1);
  auto stream = stub_->WatchOperation(&context, request);
  std::vector<int64_t> sequences;
  std::vector<bool> with_operation;
  ASSERT_TRUE(ReadAll(stream.get(), &sequences, &with_operation).ok());
  ASSERT_EQ(static_cast<int64_t>(sequences.size()), last);
  EXPECT_EQ(sequences.back(), last);
  EXPECT_TRUE(with_operation.back());
}

}  // namespace
}  // namespace mastodon_restore
