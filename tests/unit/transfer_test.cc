// The pieces parallel transfers are built of: a bandwidth cap shared by
// threads (on a fake clock) and a work queue bounded by the bytes it holds.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "agent/common/rate_limiter.h"
#include "agent/common/work_queue.h"

namespace mastodon_restore {
namespace {

// A clock that moves only when someone sleeps.
struct FakeClock {
  std::mutex mu;
  absl::Time now = absl::FromUnixSeconds(1700000000);
  absl::Duration slept;
  RateLimiter Limiter(int64_t rate) {
    return RateLimiter(
        rate,
        [this] {
          std::lock_guard<std::mutex> lock(mu);
          return now;
        },
        [this](absl::Duration d) {
          std::lock_guard<std::mutex> lock(mu);
          now += d;
          slept += d;
        });
  }
};

TEST(RateLimiterTest, BytesTakeTheTimeTheRateGivesThemBeyondAShortBurst) {
  FakeClock clock;
  RateLimiter limit = clock.Limiter(1 << 20);
  limit.Acquire(100 << 10);  // within the burst: no wait
  EXPECT_EQ(clock.slept, absl::ZeroDuration());
  for (int i = 0; i < 10; ++i) limit.Acquire(1 << 20);
  // 10.1 MiB at 1 MiB/s, of which a quarter of a second came free.
  EXPECT_NEAR(absl::ToDoubleSeconds(clock.slept), 10.1 - 0.25, 0.01);
}

TEST(RateLimiterTest, IdleTimeIsNotBankedBeyondTheBurst) {
  FakeClock clock;
  RateLimiter limit = clock.Limiter(1 << 20);
  clock.now += absl::Hours(1);
  limit.Acquire(3 << 20);
  EXPECT_NEAR(absl::ToDoubleSeconds(clock.slept), 3 - 0.25, 0.01);
}

TEST(RateLimiterTest, ThreadsShareOneBudget) {
  FakeClock clock;
  RateLimiter limit = clock.Limiter(1 << 20);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 4; ++i) limit.Acquire(256 << 10);
    });
  }
  for (std::thread& t : threads) t.join();
  // 4 MiB in all: the clock has moved on by at least 4 s less the burst.
  EXPECT_GE(clock.now - absl::FromUnixSeconds(1700000000),
            absl::Seconds(3.75) - absl::Milliseconds(1));
}

TEST(BoundedWorkQueueTest, RunsEverythingAndHoldsNoMoreThanItsBound) {
  BoundedWorkQueue queue(4, 100);
  std::atomic<int64_t> held{0}, most{0};
  std::atomic<int> done{0};
  for (int i = 0; i < 50; ++i) {
    const int64_t bytes = 10 + i % 30;
    ASSERT_TRUE(queue
                    .Submit(bytes,
                            [&, bytes] {
                              const int64_t now = held += bytes;
                              int64_t seen = most;
                              while (now > seen && !most.compare_exchange_weak(seen, now)) {
                              }
                              std::this_thread::sleep_for(std::chrono::microseconds(200));
                              held -= bytes;
                              ++done;
                              return absl::OkStatus();
                            })
                    .ok());
  }
  EXPECT_TRUE(queue.Wait().ok());
  EXPECT_EQ(done, 50);
  EXPECT_LE(most, 100);
  EXPECT_GT(most, 39);  // more than one ran at a time
}

TEST(BoundedWorkQueueTest, ATaskAboveTheBoundRunsAlone) {
  BoundedWorkQueue queue(2, 10);
  std::atomic<bool> ran{false};
  ASSERT_TRUE(queue
                  .Submit(1000,
                          [&] {
                            ran = true;
                            return absl::OkStatus();
                          })
                  .ok());
  EXPECT_TRUE(queue.Wait().ok());
  EXPECT_TRUE(ran);
}

TEST(BoundedWorkQueueTest, TheFirstErrorStopsWhatIsLeftAndIsReturned) {
  for (int threads : {1, 3}) {
    SCOPED_TRACE(threads);
    BoundedWorkQueue queue(threads, 1);
    std::atomic<int> ran{0};
    absl::Status submitted;
    for (int i = 0; i < 20 && submitted.ok(); ++i) {
      submitted = queue.Submit(1, [&, i] {
        ++ran;
        return i == 3 ? absl::UnavailableError("part 3") : absl::OkStatus();
      });
    }
    EXPECT_EQ(queue.Wait(), absl::UnavailableError("part 3"));
    EXPECT_FALSE(submitted.ok());
    EXPECT_LT(ran, 20);
  }
}

}  // namespace
}  // namespace mastodon_restore
