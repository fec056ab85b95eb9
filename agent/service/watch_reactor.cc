#include "agent/service/watch_reactor.h"

#include <grpcpp/impl/codegen/proto_utils.h>

#include <iterator>
#include <utility>
#include <vector>

namespace mastodon_restore {

namespace v1 = mastodon::restore::v1;

grpc::ByteBuffer ToByteBuffer(const google::protobuf::MessageLite& message) {
  grpc::ByteBuffer buffer;
  bool own = false;
  // Fails only for messages over 2 GB.
  (void)grpc::SerializationTraits<google::protobuf::MessageLite>::Serialize(message, &buffer, &own);
  return buffer;
}

grpc::ByteBuffer WatchFeed::Encode(const v1::OperationEvent& event, const v1::Operation& current) {
  std::lock_guard<std::mutex> lock(mu_);
  if (sequence_ != event.sequence() || sequence_ == 0) {
    v1::WatchOperationResponse response;
    *response.mutable_event() = event;
    *response.mutable_operation() = current;
    bytes_ = ToByteBuffer(response);
    sequence_ = event.sequence();
  }
  return bytes_;  // a new reference to the same slices
}

std::shared_ptr<WatchFeed> WatchFeeds::For(const std::string& operation_id) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = feeds_.begin(); it != feeds_.end();) {
    it = it->second.expired() ? feeds_.erase(it) : std::next(it);
  }
  std::weak_ptr<WatchFeed>& slot = feeds_[operation_id];
  std::shared_ptr<WatchFeed> feed = slot.lock();
  if (feed == nullptr) {
    feed = std::make_shared<WatchFeed>();
    slot = feed;
  }
  return feed;
}

WatchReactor::WatchReactor(std::shared_ptr<Operation> operation, std::shared_ptr<WatchFeed> feed,
                           int64_t from_sequence)
    : operation_(std::move(operation)), feed_(std::move(feed)) {
  std::vector<v1::OperationEvent> backlog;
  listener_ = operation_->Subscribe(
      from_sequence <= 0 ? 1 : from_sequence,
      [this](const v1::OperationEvent& e, const v1::Operation& current) { Enqueue(e, current); },
      &backlog);
  // Taken before mu_: the lock order is always operation, then reactor.
  const v1::Operation latest = operation_->Snapshot();
  std::lock_guard<std::mutex> lock(mu_);
  // Live events may have been queued since Subscribe(); the backlog goes
  // before them.
  // Only the last of them carries the operation (as of now).
  std::deque<grpc::ByteBuffer> ordered;
  for (size_t i = 0; i < backlog.size(); ++i) {
    v1::WatchOperationResponse r;
    *r.mutable_event() = backlog[i];
    if (i + 1 == backlog.size() && queue_.empty()) *r.mutable_operation() = latest;
    ordered.push_back(ToByteBuffer(r));
  }
  for (auto& r : queue_) ordered.push_back(std::move(r));
  queue_.swap(ordered);
  if (listener_ == 0) ended_ = true;  // already over: the backlog is all
  started_ = true;
  MaybeWriteLocked();
}

void WatchReactor::Enqueue(const v1::OperationEvent& event, const v1::Operation& current) {
  grpc::ByteBuffer bytes = feed_->Encode(event, current);
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  queue_.push_back(std::move(bytes));
  if (event.type() == v1::EVENT_TYPE_STATE && IsTerminal(event.state())) ended_ = true;
  MaybeWriteLocked();
}

void WatchReactor::MaybeWriteLocked() {
  if (!started_ || writing_ || finished_) return;
  if (queue_.empty()) {
    if (ended_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
    return;
  }
  in_flight_ = std::move(queue_.front());
  queue_.pop_front();
  writing_ = true;
  StartWrite(&in_flight_);
}

void WatchReactor::OnWriteDone(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  writing_ = false;
  if (!ok) {
    // The client is gone; the operation goes on.
    if (!finished_) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "watcher went away"));
    }
    return;
  }
  MaybeWriteLocked();
}

void WatchReactor::OnCancel() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!finished_) {
    finished_ = true;
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "watch cancelled by the client"));
  }
}

void WatchReactor::OnDone() {
  if (listener_ != 0) operation_->Unsubscribe(listener_);
  delete this;
}

}  // namespace mastodon_restore
