#include "agent/service/watch_reactor.h"

#include <grpcpp/impl/codegen/proto_utils.h>

#include <algorithm>
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
  if (sequence_ != event.sequence()) {  // sequences start at 1
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

namespace {

bool IsEnd(const v1::OperationEvent& event) {
  return event.type() == v1::EVENT_TYPE_STATE && IsTerminal(event.state());
}

}  // namespace

WatchReactor::WatchReactor(std::shared_ptr<Operation> operation, std::shared_ptr<WatchFeed> feed,
                           int64_t from_sequence, std::function<void()> on_done)
    : operation_(std::move(operation)), feed_(std::move(feed)), on_done_(std::move(on_done)) {
  next_ = from_sequence <= 0 ? 1 : from_sequence;
  Operation::EventPage page;
  // Taken before mu_: the lock order is always operation, then reactor.
  listener_ = operation_->Subscribe(
      next_, kMaxQueued,
      [this](const v1::OperationEvent& e, const v1::Operation& current) { Enqueue(e, current); },
      &page);
  bool refill = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Live events delivered since Subscribe() were let pass (missed_through_):
    // they are read from the record after the page.
    started_ = true;
    TakePageLocked(page);
    refill = MaybeWriteLocked();
  }
  if (refill) Refill();
}

void WatchReactor::PushLocked(int64_t sequence, grpc::ByteBuffer bytes) {
  queue_.push_back(std::move(bytes));
  feed_->AddQueued(1);
  next_ = sequence + 1;
}

void WatchReactor::TakePageLocked(const Operation::EventPage& page) {
  for (size_t i = 0; i < page.events.size(); ++i) {
    const v1::OperationEvent& e = page.events[i];
    if (e.sequence() < next_) continue;
    v1::WatchOperationResponse r;
    *r.mutable_event() = e;
    if (page.complete && i + 1 == page.events.size()) *r.mutable_operation() = page.operation;
    PushLocked(e.sequence(), ToByteBuffer(r));
    // A terminal state ends the watch only as the record's last event:
    // recovery at the next start logs after an INTERRUPTED state, and a
    // page may stop between the two.
    if (IsEnd(e) && page.complete && i + 1 == page.events.size()) ended_ = true;
  }
  if (!page.complete) return;
  if (listener_ == 0) {
    ended_ = true;  // the operation had ended: the record was all
  } else if (missed_through_ <= page.last_sequence) {
    // Nothing live after the read was let pass: follow live from here.
    live_ = true;
    next_ = std::max(next_, page.last_sequence + 1);
  }
}

void WatchReactor::Enqueue(const v1::OperationEvent& event, const v1::Operation& current) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_ || event.sequence() < next_) return;  // gone, or queued from the record
  if (!live_ || queue_.size() >= kMaxQueued) {
    // Behind (or reading the record): this one will be read from there.
    live_ = false;
    missed_through_ = std::max(missed_through_, event.sequence());
    return;
  }
  PushLocked(event.sequence(), feed_->Encode(event, current));
  if (IsEnd(event)) ended_ = true;
  (void)MaybeWriteLocked();  // the queue is not empty: no refill
}

bool WatchReactor::MaybeWriteLocked() {
  if (!started_ || writing_ || finished_) return false;
  if (queue_.empty()) {
    if (ended_) {
      finished_ = true;
      Finish(grpc::Status::OK);
      return false;
    }
    return !live_ && !reading_;
  }
  in_flight_ = std::move(queue_.front());
  queue_.pop_front();
  feed_->AddQueued(-1);
  writing_ = true;
  StartWrite(&in_flight_);
  return false;
}

void WatchReactor::Refill() {
  while (true) {
    int64_t from;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (finished_ || reading_ || live_ || ended_ || !queue_.empty()) return;
      reading_ = true;
      from = next_;
    }
    Operation::EventPage page = operation_->ReadEvents(from, kMaxQueued);
    std::lock_guard<std::mutex> lock(mu_);
    reading_ = false;
    if (finished_) return;
    TakePageLocked(page);
    if (!queue_.empty() || ended_) {
      (void)MaybeWriteLocked();
      return;
    }
    // Else a live event came during the read: read again.
  }
}

void WatchReactor::OnWriteDone(bool ok) {
  bool refill = false;
  {
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
    refill = MaybeWriteLocked();
  }
  if (refill) Refill();
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
  {
    std::lock_guard<std::mutex> lock(mu_);
    feed_->AddQueued(-static_cast<int64_t>(queue_.size()));
  }
  std::function<void()> on_done = std::move(on_done_);
  delete this;
  if (on_done) on_done();
}

}  // namespace mastodon_restore
