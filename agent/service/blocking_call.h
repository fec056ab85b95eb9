// Runs a blocking unary handler on its own thread so that gRPC's callback
// threads never block on disk or PostgreSQL. A client cancellation (or the
// server's shutdown deadline) sets the CancelToken the handler polls.
#ifndef MR_AGENT_SERVICE_BLOCKING_CALL_H_
#define MR_AGENT_SERVICE_BLOCKING_CALL_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "agent/common/cancel_token.h"
#include "agent/service/status_conversion.h"

namespace mastodon_restore {

// Counts handler threads so that the service can wait for them on shutdown.
class WorkerTracker {
 public:
  void Add() {
    absl::MutexLock lock(&mu_);
    ++running_;
  }
  void Done() {
    absl::MutexLock lock(&mu_);
    --running_;
  }
  // Blocks until no handler runs.
  void WaitIdle() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int* n) { return *n == 0; }, &running_));
  }

 private:
  absl::Mutex mu_;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
};

// A unary reactor whose work runs on a detached thread.
class BlockingUnaryReactor : public grpc::ServerUnaryReactor {
 public:
  using Work = std::function<absl::Status(const CancelToken& cancel)>;

  // Starts `work` at once; the reactor deletes itself when the call is done.
  static grpc::ServerUnaryReactor* Start(WorkerTracker* tracker, Work work) {
    auto* reactor = new BlockingUnaryReactor();
    tracker->Add();
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
