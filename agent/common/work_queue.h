// Tasks run on a few threads with a bound on the bytes they hold: the
// producer (a walk reading files one after the other) hands each file's
// work over and goes on reading while earlier ones are sent, until the
// bytes handed over and not yet done reach the bound.
#ifndef MR_AGENT_COMMON_WORK_QUEUE_H_
#define MR_AGENT_COMMON_WORK_QUEUE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"

namespace mastodon_restore {

class BoundedWorkQueue {
 public:
  // `threads` <= 1: each task runs in Submit itself.
  BoundedWorkQueue(int threads, int64_t max_bytes);
  // Waits for the tasks submitted.
  ~BoundedWorkQueue();
  BoundedWorkQueue(const BoundedWorkQueue&) = delete;
  BoundedWorkQueue& operator=(const BoundedWorkQueue&) = delete;

  // Queues `task`, holding `bytes`; waits while the tasks not done hold
  // more than the bound with it (a task above the bound waits until it is
  // alone). After a task has failed, nothing more runs: Submit returns that
  // first error (and so does Wait).
  absl::Status Submit(int64_t bytes, std::function<absl::Status()> task);
  // Waits until every task submitted is done; the first error, if any.
  absl::Status Wait();

 private:
  struct Task {
    int64_t bytes;
    std::function<absl::Status()> run;
  };
  void Work();

  const int64_t max_bytes_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task> queue_;
  int64_t held_ = 0;  // bytes of the tasks queued or running
  int running_ = 0;
  bool stop_ = false;
  absl::Status error_;  // the first failure
  std::vector<std::thread> workers_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_WORK_QUEUE_H_
