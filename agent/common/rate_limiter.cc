#include "agent/common/rate_limiter.h"

#include <algorithm>
#include <utility>

namespace mastodon_restore {
namespace {

constexpr absl::Duration kBurst = absl::Milliseconds(250);

}  // namespace

RateLimiter::RateLimiter(int64_t bytes_per_second, std::function<absl::Time()> now,
                         std::function<void(absl::Duration)> sleep)
    : rate_(std::max<int64_t>(1, bytes_per_second)),
      now_(std::move(now)),
      sleep_(std::move(sleep)) {}

void RateLimiter::Acquire(int64_t bytes) {
  if (bytes <= 0) return;
  absl::Duration wait;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const absl::Time now = now_();
    // Time unused in the past is not banked beyond the burst.
    paid_until_ = std::max(paid_until_, now - kBurst);
    paid_until_ += absl::Seconds(static_cast<double>(bytes) / static_cast<double>(rate_));
    wait = paid_until_ - now;
  }
  if (wait > absl::ZeroDuration()) sleep_(wait);
}

}  // namespace mastodon_restore
