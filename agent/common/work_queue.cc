#include "agent/common/work_queue.h"

#include <utility>

namespace mastodon_restore {

BoundedWorkQueue::BoundedWorkQueue(int threads, int64_t max_bytes) : max_bytes_(max_bytes) {
  for (int i = 0; threads > 1 && i < threads; ++i) workers_.emplace_back([this] { Work(); });
}

BoundedWorkQueue::~BoundedWorkQueue() {
  Wait().IgnoreError();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : workers_) t.join();
}

absl::Status BoundedWorkQueue::Submit(int64_t bytes, std::function<absl::Status()> task) {
  if (workers_.empty()) {
    if (!error_.ok()) return error_;
    error_ = task();
    return error_;
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !error_.ok() || held_ == 0 || held_ + bytes <= max_bytes_; });
  if (!error_.ok()) return error_;
  held_ += bytes;
  queue_.push_back(Task{bytes, std::move(task)});
  lock.unlock();
  cv_.notify_all();
  return absl::OkStatus();
}

absl::Status BoundedWorkQueue::Wait() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return queue_.empty() && running_ == 0; });
  return error_;
}

void BoundedWorkQueue::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping
    Task task = std::move(queue_.front());
    queue_.pop_front();
    absl::Status s;
    if (error_.ok()) {
      ++running_;
      lock.unlock();
      s = task.run();
      task.run = nullptr;  // what it captured goes now, outside the lock
      lock.lock();
      --running_;
    }
    if (!s.ok() && error_.ok()) error_ = s;
    held_ -= task.bytes;
    cv_.notify_all();
  }
}

}  // namespace mastodon_restore
