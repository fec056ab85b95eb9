#include "agent/service/watch_reactor.h"

namespace mastodon_restore {

namespace v1 = mastodon::restore::v1;

WatchReactor::WatchReactor(std::shared_ptr<Operation> operation, int64_t from_sequence)
    : operation_(std::move(operation)) {
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
  std::deque<v1::WatchOperationResponse> ordered;
  for (const v1::OperationEvent& e : backlog) {
    v1::WatchOperationResponse r;
    *r.mutable_event() = e;
    ordered.push_back(std::move(r));
  }
  if (!ordered.empty() && queue_.empty()) *ordered.back().mutable_operation() = latest;
  for (auto& r : queue_) ordered.push_back(std::move(r));
  queue_.swap(ordered);
  if (listener_ == 0) ended_ = true;  // already over: the backlog is all
  started_ = true;
  MaybeWriteLocked();
}

void WatchReactor::Enqueue(const v1::OperationEvent& event, const v1::Operation& current) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_) return;
  v1::WatchOperationResponse r;
  *r.mutable_event() = event;
  *r.mutable_operation() = current;
  queue_.push_back(std::move(r));
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
