// Cooperative cancellation shared between a requester and long-running work.
#ifndef MR_AGENT_COMMON_CANCEL_TOKEN_H_
#define MR_AGENT_COMMON_CANCEL_TOKEN_H_

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace mastodon_restore {

// Thread-safe, one-way flag. Work polls cancelled() or sleeps in WaitFor() so
// that a Cancel() wakes it at once.
class CancelToken {
 public:
  CancelToken() = default;
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  // Sets the flag; idempotent.
  void Cancel() {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }

  bool cancelled() const {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  }

  // Sleeps up to `timeout`; returns true (early) when cancelled.
  bool WaitFor(absl::Duration timeout) const {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&cancelled_), timeout);
  }

 private:
  mutable absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_CANCEL_TOKEN_H_
