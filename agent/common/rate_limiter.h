// A byte budget shared by threads: transfers that take their bytes from
// one RateLimiter move, together, at most `bytes_per_second` on average
// (with bursts of a quarter of a second's worth). The S3 client takes from
// it as bytes arrive or leave, so a cap holds across parallel transfers.
#ifndef MR_AGENT_COMMON_RATE_LIMITER_H_
#define MR_AGENT_COMMON_RATE_LIMITER_H_

#include <cstdint>
#include <functional>
#include <mutex>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace mastodon_restore {

class RateLimiter {
 public:
  // `now` and `sleep` are the clock (tests pass a fake one).
  explicit RateLimiter(
      int64_t bytes_per_second, std::function<absl::Time()> now = [] { return absl::Now(); },
      std::function<void(absl::Duration)> sleep = [](absl::Duration d) { absl::SleepFor(d); });
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Takes `bytes` from the budget, waiting (outside any lock) until the
  // transfers sharing it are back under the rate.
  void Acquire(int64_t bytes);

  int64_t bytes_per_second() const { return rate_; }

 private:
  const int64_t rate_;
  const std::function<absl::Time()> now_;
  const std::function<void(absl::Duration)> sleep_;
  std::mutex mu_;
  // When the bytes taken so far will have been paid for at the rate.
  absl::Time paid_until_ = absl::InfinitePast();
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_RATE_LIMITER_H_
