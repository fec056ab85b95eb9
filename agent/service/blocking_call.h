// Runs a blocking unary handler on its own thread so that gRPC's callback
// threads never block on disk or PostgreSQL. A client cancellation (or the
// server's shutdown deadline) sets the CancelToken the handler polls.
#ifndef MR_AGENT_SERVICE_BLOCKING_CALL_H_
#define MR_AGENT_SERVICE_BLOCKING_CALL_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/common/cancel_token.h"
#include "agent/service/status_conversion.h"

namespace mastodon_restore {

// Counts handler threads so that the service can wait for them on shutdown,
// and caps them: at most `limit` run at once. Also used for other counted
// slots (watch streams). Thread-safe.
class WorkerTracker {
 public:
  explicit WorkerTracker(int limit = 64) : limit_(limit) {}
  // Takes a slot; false (nothing taken) when `limit` are taken.
  bool TryAdd() {
    absl::MutexLock lock(&mu_);
    if (running_ >= limit_) return false;
    ++running_;
    return true;
  }
  // Gives a slot back.
  void Done() {
    absl::MutexLock lock(&mu_);
    --running_;
  }
  int running() {
    absl::MutexLock lock(&mu_);
    return running_;
  }
  int limit() const { return limit_; }
  // Blocks until no handler runs.
  void WaitIdle() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* n) { return *n == 0; }, &running_));
  }

 private:
  const int limit_;
  absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
};

// A unary reactor whose work runs on its own thread, one of at most
// tracker->limit(): a call over the cap ends at once with
// RESOURCE_EXHAUSTED, no thread started.
class BlockingUnaryReactor : public grpc::ServerUnaryReactor {
 public:
  using Work = std::function<absl::Status(const CancelToken& cancel)>;

  // Starts `work` at once (or refuses the call); the reactor deletes itself
  // when the call is done.
  static grpc::ServerUnaryReactor* Start(WorkerTracker* tracker, Work work) {
    auto* reactor = new BlockingUnaryReactor();
    if (!tracker->TryAdd()) {
      reactor->Finish(
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                       "the agent is busy: " + std::to_string(tracker->limit()) +
                           " calls are running (--max-unary-calls); retry when one has ended"));
      return reactor;
    }
    std::shared_ptr<CancelToken> cancel = reactor->cancel_;
    std::thread([reactor, tracker, cancel, work = std::move(work)]() {
      absl::Status status = work(*cancel);
      reactor->Finish(ToGrpcStatus(status));  // the reactor may be gone after this
      tracker->Done();
    }).detach();
    return reactor;
  }

  void OnCancel() override { cancel_->Cancel(); }
  void OnDone() override { delete this; }

 private:
  BlockingUnaryReactor() : cancel_(std::make_shared<CancelToken>()) {}
  std::shared_ptr<CancelToken> cancel_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_SERVICE_BLOCKING_CALL_H_
