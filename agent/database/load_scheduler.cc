#include "agent/database/load_scheduler.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

constexpr size_t kCopySlice = 1 << 20;
constexpr auto kPoll = std::chrono::milliseconds(100);

using Lock = LoadJob::Lock;

// Whether two jobs holding `a` and `b` on one table must not run at once.
bool Conflict(Lock a, Lock b) {
  if (a == Lock::kData || b == Lock::kData) return !(a == Lock::kData && b == Lock::kData);
  if (a == Lock::kExclusive || b == Lock::kExclusive) return true;
  if (a == Lock::kReference || b == Lock::kReference) return false;  // ROW SHARE
  return !(a == Lock::kShared && b == Lock::kShared);
}

// Calls `fn(table, lock)` for every table `job` takes.
template <typename Fn>
void ForEachLock(const LoadJob& job, Fn fn) {
  for (const std::string& t : job.tables) fn(t, job.lock);
  for (const std::string& t : job.referenced) fn(t, Lock::kReference);
}

}  // namespace

absl::Status LoadError(absl::StatusCode code, const std::string& dump, int64_t line,
                       const std::string& toc_entry, absl::string_view what) {
  return absl::Status(code,
                      absl::StrCat("unable to load '", dump, "' at line ", line,
                                   toc_entry.empty() ? "" : " (" + toc_entry + ")", ": ", what));
}

absl::Status LoadCancelled(const std::string& dump) {
  return absl::CancelledError(absl::StrCat("load of '", dump, "' cancelled"));
}

LoadScheduler::LoadScheduler(LoadSchedulerOptions options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<LoadScheduler>> LoadScheduler::Start(LoadSchedulerOptions options) {
  if (options.jobs < 1 || !options.connect) {
    return absl::InvalidArgumentError("the parallel load needs jobs >= 1 and a connect function");
  }
  std::unique_ptr<LoadScheduler> s(new LoadScheduler(std::move(options)));
  for (int i = 0; i < s->options_.jobs; ++i) {
    ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, s->options_.connect());
    s->conns_.push_back(std::move(conn));
  }
  for (auto& conn : s->conns_) {
    PgConnection* c = conn.get();
    s->threads_.emplace_back([s = s.get(), c]() { s->Worker(c); });
  }
  return s;
}

LoadScheduler::~LoadScheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    if (running_ > 0) {
      for (auto& c : conns_) c->Cancel();
    }
  }
  work_cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

std::string LoadScheduler::TakeBuffer(size_t capacity) {
  std::string buffer;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!spare_buffers_.empty()) {
      buffer = std::move(spare_buffers_.back());
      spare_buffers_.pop_back();
    }
  }
  buffer.reserve(capacity);  // no-op for a spare of the usual size
  return buffer;
}

void LoadScheduler::AddSessionStatement(const std::string& sql) {
  std::lock_guard<std::mutex> lock(mu_);
  prelude_.push_back(sql);
}

absl::Status LoadScheduler::CheckCancelLocked() {
  if (options_.cancel != nullptr && options_.cancel->cancelled() && failure_.ok()) {
    FailLocked(LoadCancelled(options_.dump_name));
  }
  return failure_;
}

void LoadScheduler::FailLocked(absl::Status status) {
  if (!failure_.ok()) return;
  failure_ = std::move(status);
  // Whatever still runs is cancelled on the server; the first failure is
  // the one reported.
  for (auto& c : conns_) c->Cancel();
  work_cv_.notify_all();
  done_cv_.notify_all();
}

absl::Status LoadScheduler::Submit(LoadJob job) {
  std::unique_lock<std::mutex> lock(mu_);
  const int64_t size = static_cast<int64_t>(job.sql.size() + job.copy_data.size());
  while (true) {
    RETURN_IF_ERROR(CheckCancelLocked());
    if (buffered_ + size <= options_.max_buffered_bytes || queue_.empty()) break;
    done_cv_.wait_for(lock, kPoll);
  }
  auto e = std::make_unique<Entry>();
  e->seq = next_seq_++;
  e->prelude = prelude_.size();
  if (job.lock == LoadJob::Lock::kData) {
    for (const std::string& t : job.tables) {
      table_bytes_[t] += static_cast<int64_t>(job.copy_data.size());
    }
  }
  e->job = std::move(job);
  buffered_ += size;
  queue_.push_back(std::move(e));
  work_cv_.notify_all();
  return absl::OkStatus();
}

absl::Status LoadScheduler::WaitIdle() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    RETURN_IF_ERROR(CheckCancelLocked());
    if (queue_.empty()) return absl::OkStatus();
    done_cv_.wait_for(lock, kPoll);
  }
}

absl::StatusOr<bool> LoadScheduler::WaitIdleFor(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    RETURN_IF_ERROR(CheckCancelLocked());
    if (queue_.empty()) return true;
    const absl::Time now = absl::Now();
    if (now >= deadline) return false;
    done_cv_.wait_for(lock, std::min(kPoll, absl::ToChronoMilliseconds(deadline - now) +
                                                std::chrono::milliseconds(1)));
  }
}

int64_t LoadScheduler::pending() {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(queue_.size());
}

absl::Status LoadScheduler::status() {
  std::lock_guard<std::mutex> lock(mu_);
  return CheckCancelLocked();
}

int64_t LoadScheduler::jobs_done() {
  std::lock_guard<std::mutex> lock(mu_);
  return done_;
}

int LoadScheduler::max_concurrency() {
  std::lock_guard<std::mutex> lock(mu_);
  return max_running_;
}

absl::Time LoadScheduler::last_data_done() {
  std::lock_guard<std::mutex> lock(mu_);
  return last_data_done_;
}

bool LoadScheduler::ConflictsWithEarlierLocked(const Entry& e) {
  for (const auto& other : queue_) {
    if (other->seq >= e.seq) break;
    bool conflict = false;
    ForEachLock(e.job, [&](const std::string& table, Lock lock) {
      ForEachLock(other->job, [&](const std::string& other_table, Lock other_lock) {
        if (!conflict && table == other_table && Conflict(lock, other_lock)) conflict = true;
      });
    });
    if (conflict) return true;
  }
  return false;
}

int LoadScheduler::PickLocked() {
  int best = -1;
  int64_t best_priority = -1;
  for (size_t i = 0; i < queue_.size(); ++i) {
    const Entry& e = *queue_[i];
    if (e.started) continue;
    const bool data = e.job.lock == LoadJob::Lock::kData;
    int64_t priority = 0;
    if (!data) {
      for (const std::string& t : e.job.tables) {
        auto it = table_bytes_.find(t);
        if (it != table_bytes_.end()) priority = std::max(priority, it->second);
      }
      if (best >= 0 && priority <= best_priority) continue;
    }
    if (ConflictsWithEarlierLocked(e)) continue;
    if (data) return static_cast<int>(i);  // the first ready data job wins
    best = static_cast<int>(i);
    best_priority = priority;
  }
  return best;
}

void LoadScheduler::Worker(PgConnection* conn) {
  size_t applied = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    int i = -1;
    work_cv_.wait(lock, [&] { return stopping_ || !failure_.ok() || (i = PickLocked()) >= 0; });
    if (stopping_ || !failure_.ok()) return;
    Entry* e = queue_[static_cast<size_t>(i)].get();
    e->started = true;
    ++running_;
    max_running_ = std::max(max_running_, running_);
    std::vector<std::string> settings(prelude_.begin() + static_cast<std::ptrdiff_t>(applied),
                                      prelude_.begin() + static_cast<std::ptrdiff_t>(e->prelude));
    lock.unlock();
    absl::Status s;
    for (const std::string& sql : settings) {
      s = conn->Exec(sql);
      if (!s.ok()) {
        s = absl::Status(
            s.code(), absl::StrCat("unable to load '", options_.dump_name,
                                   "': session setting on a parallel connection: ", s.message()));
        break;
      }
    }
    if (s.ok()) {
      applied = e->prelude;
      s = RunJob(conn, e->job);
    }
    lock.lock();
    --running_;
    if (!s.ok()) {
      FailLocked(s);
    } else {
      ++done_;
      if (e->job.lock == LoadJob::Lock::kData) last_data_done_ = absl::Now();
    }
    buffered_ -= static_cast<int64_t>(e->job.sql.size() + e->job.copy_data.size());
    if (e->job.copy_data.capacity() > 0 && spare_buffers_.size() < kSpareBuffers) {
      e->job.copy_data.clear();  // keeps its memory
      spare_buffers_.push_back(std::move(e->job.copy_data));
    }
    for (auto it = queue_.begin(); it != queue_.end(); ++it) {
      if (it->get() == e) {
        queue_.erase(it);
        break;
      }
    }
    done_cv_.notify_all();
    work_cv_.notify_all();
  }
}

absl::Status LoadScheduler::RunJob(PgConnection* conn, const LoadJob& job) {
  auto fail = [&](const absl::Status& s, const std::string& what) {
    if (s.code() == absl::StatusCode::kCancelled) return LoadCancelled(options_.dump_name);
    return LoadError(
        s.code() == absl::StatusCode::kUnavailable ? s.code() : absl::StatusCode::kInvalidArgument,
        options_.dump_name, job.line, job.toc_entry, absl::StrCat(what, s.message()));
  };
  absl::Status s = conn->Exec(job.sql);
  if (!s.ok() && !job.fallback_sql.empty() &&
      (conn->last_error().sqlstate == "0A000" || conn->last_error().sqlstate == "42809")) {
    s = conn->Exec(job.fallback_sql);
  }
  if (!s.ok()) return fail(s, "");
  if (!conn->in_copy()) return absl::OkStatus();
  const std::string table = job.tables.empty() ? "" : job.tables.front();
  for (size_t at = 0; at < job.copy_data.size() && s.ok(); at += kCopySlice) {
    s = conn->PutCopyData(absl::string_view(job.copy_data).substr(at, kCopySlice));
  }
  if (s.ok()) {
    s = conn->EndCopy();
  } else {
    conn->EndCopy("aborted").IgnoreError();
  }
  if (!s.ok()) return fail(s, absl::StrCat("COPY ", table, ": "));
  return absl::OkStatus();
}

}  // namespace mastodon_restore
