#include "agent/database/load_scheduler.h"

#include <algorithm>
#include <chrono>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/common/status_macros.h"
#include "agent/dump/plain_scanner.h"

namespace mastodon_restore {
namespace {

constexpr size_t kCopySlice = 1 << 20;
// What a worker reads of a stream of rows at once.
constexpr size_t kStreamBlock = 1 << 20;
// What a streaming job's rows are read ahead in (1 MB per running job).
constexpr size_t kPrefetchBlock = 256 << 10;
constexpr size_t kPrefetchDepth = 4;
constexpr auto kPoll = std::chrono::milliseconds(100);

using Lock = LoadJob::Lock;

// Whether two jobs holding `a` and `b` on one table must not run at once.
bool Conflict(Lock a, Lock b) {
  if (a == Lock::kData || b == Lock::kData) return !(a == Lock::kData && b == Lock::kData);
  if (a == Lock::kExclusive || b == Lock::kExclusive) return true;
  if (a == Lock::kReference || b == Lock::kReference) return false;  // ROW SHARE
  return !(a == Lock::kShared && b == Lock::kShared);
}

// `copy` (COPY ... FROM stdin;) with the FREEZE option; "" when it does
// not end so.
std::string FrozenCopySql(absl::string_view copy) {
  absl::string_view sql = absl::StripTrailingAsciiWhitespace(copy);
  if (!absl::ConsumeSuffix(&sql, " FROM stdin;")) return "";
  return absl::StrCat(sql, " FROM stdin WITH (FREEZE);");
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

bool IsCollectableBuildFailure(const PgError& error, bool unique_build, absl::string_view sql,
                               const std::vector<std::string>& tables,
                               const std::vector<FailedBuild>& failed) {
  if (unique_build && error.sqlstate == "23505") return true;
  // invalid_foreign_key (no unique constraint matching the referenced
  // columns), undefined_object, undefined_table.
  if (error.sqlstate != "42830" && error.sqlstate != "42704" && error.sqlstate != "42P01") {
    return false;
  }
  for (const FailedBuild& f : failed) {
    if (!f.unique_violation) continue;
    for (const std::string& t : f.tables) {
      if (std::find(tables.begin(), tables.end(), t) != tables.end()) return true;
    }
    // A statement naming the failed index or constraint (COMMENT ON INDEX,
    // ALTER INDEX ... ATTACH PARTITION, CLUSTER ON, REPLICA IDENTITY USING
    // INDEX): the name as the error message quotes it.
    if (!f.name.empty() && absl::StrContains(sql, f.name) &&
        absl::StrContains(error.message, f.name)) {
      return true;
    }
  }
  return false;
}

std::string BuildErrorText(const PgError& error) {
  return error.detail.empty() ? error.message
                              : absl::StrCat(error.message, " (", error.detail, ")");
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
  for (size_t i = 0; i < s->conns_.size(); ++i) {
    PgConnection* c = s->conns_[i].get();
    const int index = static_cast<int>(i);
    s->threads_.emplace_back([s = s.get(), c, index]() { s->Worker(c, index); });
  }
  return s;
}

LoadScheduler::~LoadScheduler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    abort_.store(true);
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
  abort_.store(true);
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
      table_bytes_[t] += static_cast<int64_t>(job.copy_data.size()) + job.size_hint;
    }
  } else {
    e->build_work = kMinBuildWork;
    for (const std::string& t : job.tables) {
      auto it = table_bytes_.find(t);
      if (it != table_bytes_.end()) e->build_work = std::max(e->build_work, it->second);
    }
    ++builds_.total;
    builds_.work_total += e->build_work;
  }
  e->job = std::move(job);
  if (e->job.open_copy_data) e->split = std::make_shared<Split>();
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

LoadScheduler::BuildCounts LoadScheduler::builds() {
  std::lock_guard<std::mutex> lock(mu_);
  return builds_;
}

std::vector<FailedBuild> LoadScheduler::failed_builds() {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_builds_;
}

std::vector<LoadScheduler::JobTrace> LoadScheduler::trace() {
  std::lock_guard<std::mutex> lock(mu_);
  return trace_;
}

bool LoadScheduler::ConflictsWithEarlierLocked(const Entry& e) {
  for (const auto& other : queue_) {
    if (other->seq >= e.seq) {
      // A job that yields also waits for the later ones that overtook it.
      if (!e.job.yields) break;
      if (other.get() == &e || !other->started) continue;
    } else if (other->job.yields && !other->started) {
      continue;  // overtaken
    }
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
  int best_data = -1;
  int64_t best_data_size = -1;
  for (size_t i = 0; i < queue_.size(); ++i) {
    const Entry& e = *queue_[i];
    if (e.started) continue;
    const bool data = e.job.lock == LoadJob::Lock::kData;
    if (data) {
      // The first ready data job wins, unless a later one that reads its
      // own rows is bigger.
      if (best_data >= 0 && e.job.size_hint <= best_data_size) continue;
      if (ConflictsWithEarlierLocked(e)) continue;
      best_data = static_cast<int>(i);
      best_data_size = e.job.size_hint;
      continue;
    }
    if (best_data >= 0) continue;
    int64_t priority = 0;
    for (const std::string& t : e.job.tables) {
      auto it = table_bytes_.find(t);
      if (it != table_bytes_.end()) priority = std::max(priority, it->second);
    }
    // (On a tie, one that does not yield goes first.)
    if (best >= 0 && (priority < best_priority ||
                      (priority == best_priority &&
                       (e.job.yields || !queue_[static_cast<size_t>(best)]->job.yields)))) {
      continue;
    }
    if (ConflictsWithEarlierLocked(e)) continue;
    best = static_cast<int>(i);
    best_priority = priority;
  }
  return best_data >= 0 ? best_data : best;
}

void LoadScheduler::Worker(PgConnection* conn, int index) {
  size_t applied = 0;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    int i = -1;
    ++idle_;
    work_cv_.wait(lock, [&] { return stopping_ || !failure_.ok() || (i = PickLocked()) >= 0; });
    --idle_;
    if (stopping_ || !failure_.ok()) return;
    Entry* e = queue_[static_cast<size_t>(i)].get();
    e->started = true;
    const bool chunk = e->split != nullptr && !e->job.open_copy_data;
    if (chunk) {
      --e->split->queued;
      ++e->split->running;
    }
    ++running_;
    max_running_ = std::max(max_running_, running_);
    std::vector<std::string> settings(prelude_.begin() + static_cast<std::ptrdiff_t>(applied),
                                      prelude_.begin() + static_cast<std::ptrdiff_t>(e->prelude));
    lock.unlock();
    const absl::Time started = absl::Now();
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
      s = RunJob(conn, *e);
    }
    lock.lock();
    --running_;
    if (chunk) --e->split->running;
    if (trace_.size() < kMaxTrace) {
      trace_.push_back({chunk ? absl::StrCat(e->job.toc_entry, " (chunk)") : e->job.toc_entry,
                        index, started, absl::Now()});
    }
    if (!s.ok()) {
      FailLocked(s);
    } else {
      ++done_;
      if (e->job.lock == LoadJob::Lock::kData) last_data_done_ = absl::Now();
      if (e->build_work > 0) {
        ++builds_.done;
        builds_.work_done += e->build_work;
      }
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

absl::Status LoadScheduler::RunJob(PgConnection* conn, const Entry& e) {
  const LoadJob& job = e.job;
  auto fail = [&](const absl::Status& s, const std::string& what) {
    if (s.code() == absl::StatusCode::kCancelled) return LoadCancelled(options_.dump_name);
    return LoadError(
        s.code() == absl::StatusCode::kUnavailable ? s.code() : absl::StatusCode::kInvalidArgument,
        options_.dump_name, job.line, job.toc_entry, absl::StrCat(what, s.message()));
  };
  const std::string frozen_sql = job.freeze && job.open_copy_data ? FrozenCopySql(job.sql) : "";
  const bool frozen = !frozen_sql.empty() && BeginFrozenCopy(conn, job);
  absl::Status s = conn->Exec(frozen ? frozen_sql : job.sql);
  if (!s.ok() && !job.fallback_sql.empty() &&
      (conn->last_error().sqlstate == "0A000" || conn->last_error().sqlstate == "42809")) {
    s = conn->Exec(job.fallback_sql);
  }
  if (!s.ok() && options_.collect_failed_builds && job.collectable &&
      s.code() == absl::StatusCode::kInvalidArgument && !Aborted()) {
    std::vector<std::string> touched = job.tables;
    touched.insert(touched.end(), job.referenced.begin(), job.referenced.end());
    std::lock_guard<std::mutex> lock(mu_);
    const PgError& error = conn->last_error();
    if (IsCollectableBuildFailure(error, job.unique_build, job.sql, touched, failed_builds_)) {
      // (A step whose statement's rerun covers it is only tolerated.)
      if (!job.rerun_sql.empty()) {
        FailedBuild f;
        f.sql = job.rerun_sql;
        f.line = job.line;
        f.toc_entry = job.toc_entry;
        f.tables = touched;
        f.error = BuildErrorText(error);
        f.unique_violation = job.unique_build && error.sqlstate == "23505";
        f.name = job.build_name;
        failed_builds_.push_back(std::move(f));
      }
      return absl::OkStatus();
    }
  }
  if (!s.ok()) {
    if (frozen) conn->Exec("ROLLBACK").IgnoreError();
    return fail(s, "");
  }
  if (!conn->in_copy()) return absl::OkStatus();
  const std::string table = job.tables.empty() ? "" : job.tables.front();
  bool stream_error = false;  // the rows' own (not the server's)
  if (job.open_copy_data) {
    s = StreamCopyData(conn, e, /*may_split=*/!frozen, &stream_error);
  } else {
    for (size_t at = 0; at < job.copy_data.size() && s.ok(); at += kCopySlice) {
      s = conn->PutCopyData(absl::string_view(job.copy_data).substr(at, kCopySlice));
    }
  }
  if (s.ok() && Aborted()) s = LoadCancelled(options_.dump_name);
  if (s.ok()) {
    s = conn->EndCopy();
  } else {
    conn->EndCopy("aborted").IgnoreError();
  }
  if (frozen) {
    if (s.ok()) {
      s = conn->Exec("COMMIT");
      if (s.ok()) ++tables_frozen_;
    } else {
      conn->Exec("ROLLBACK").IgnoreError();
    }
  }
  if (!s.ok()) {
    // The stream's own errors (a corrupt archive, a row over the bound)
    // say what they are; the server's name the COPY.
    if (stream_error && s.code() != absl::StatusCode::kCancelled) {
      return LoadError(s.code(), options_.dump_name, job.line, job.toc_entry, s.message());
    }
    return fail(s, absl::StrCat("COPY ", table, ": "));
  }
  return absl::OkStatus();
}

bool LoadScheduler::BeginFrozenCopy(PgConnection* conn, const LoadJob& job) {
  if (job.tables.empty()) return false;
  // The name the COPY resolves in this session, quoted by the server
  // (whatever the dump wrote), and whether this role may truncate it.
  // Every name is schema-qualified: the dump's session settings may have
  // put its own schemas first in the search path.
  auto name = conn->Query(
      "SELECT pg_catalog.format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_class c "
      "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
      "WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1) "
      "AND c.relkind OPERATOR(pg_catalog.=) 'r' "
      "AND pg_catalog.has_table_privilege(c.oid, 'TRUNCATE')",
      {job.tables.front()});
  if (!name.ok() || name->rows.size() != 1 || !name->rows[0][0].has_value()) return false;
  const std::string& table = *name->rows[0][0];
  // Under the lock nothing writes to it: empty now is empty at the
  // TRUNCATE.
  if (!conn->Exec("BEGIN ISOLATION LEVEL READ COMMITTED").ok()) return false;
  absl::Status locked =
      conn->Exec(absl::StrCat("LOCK TABLE ONLY ", table, " IN ACCESS EXCLUSIVE MODE"));
  absl::StatusOr<PgRows> allowed = absl::UnknownError("");
  if (locked.ok()) {
    allowed = conn->Query(
        "SELECT pg_catalog.pg_relation_size(c.oid) OPERATOR(pg_catalog.=) 0 "
        "AND NOT c.relhastriggers AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint k "
        "WHERE k.confrelid OPERATOR(pg_catalog.=) c.oid) "
        "FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
        {table});
  }
  if (allowed.ok() && allowed->rows.size() == 1 && allowed->rows[0][0].value_or("") == "t" &&
      conn->Exec(absl::StrCat("TRUNCATE ONLY ", table)).ok()) {
    return true;
  }
  conn->Exec("ROLLBACK").IgnoreError();
  return false;
}

bool LoadScheduler::Aborted() const {
  return abort_.load() || (options_.cancel != nullptr && options_.cancel->cancelled());
}

// The rows of `job` from its own stream into the COPY running on `conn`:
// counted, bounded, up to a "\." row (after which only blank lines may
// come).
bool LoadScheduler::HelpWanted(const Entry& e) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!failure_.ok() || stopping_) return false;
  if (buffered_ + options_.chunk_bytes > options_.max_buffered_bytes) return false;
  // A worker with nothing to do, or one loading a chunk of this job that
  // will want the next one.
  return idle_ > 0 || (e.split->running > 0 && e.split->queued == 0);
}

void LoadScheduler::HandOff(const Entry& e, std::string rows) {
  auto c = std::make_unique<Entry>();
  c->seq = e.seq;
  c->prelude = e.prelude;
  c->split = e.split;
  c->job.tables = e.job.tables;
  c->job.lock = LoadJob::Lock::kData;
  c->job.sql = e.job.sql;
  c->job.line = e.job.line;
  c->job.toc_entry = e.job.toc_entry;
  c->job.copy_data = std::move(rows);
  std::lock_guard<std::mutex> lock(mu_);
  buffered_ += static_cast<int64_t>(c->job.sql.size() + c->job.copy_data.size());
  ++c->split->queued;
  // Right after the job (the same seq): what waits for the job's table
  // waits for its chunks too.
  auto it = queue_.begin();
  while (it != queue_.end() && it->get() != &e) ++it;
  if (it != queue_.end()) ++it;
  queue_.insert(it, std::move(c));
  work_cv_.notify_all();
}

absl::Status LoadScheduler::StreamCopyData(PgConnection* conn, const Entry& e, bool may_split,
                                           bool* stream_error) {
  const LoadJob& job = e.job;
  *stream_error = true;
  ASSIGN_OR_RETURN(std::unique_ptr<ByteStream> source, job.open_copy_data());
  // Decompression on a thread of its own, a few blocks ahead: the server
  // is not left waiting while the next block is inflated.
  PrefetchStream prefetched(source.get(), kPrefetchBlock, kPrefetchDepth);
  ByteStream* in = &prefetched;
  // Rows for another worker (whole rows once handed off), and whether the
  // rows being read go there.
  std::string handoff;
  bool handing = false;
  auto flush_handoff = [&]() {
    if (!handoff.empty()) HandOff(e, std::move(handoff));
    handoff = std::string();
  };
  // Sends rows to this connection or the chunk being handed off.
  auto emit = [&](const char* data, size_t n) -> absl::Status {
    if (n == 0) return absl::OkStatus();
    if (handing) {
      handoff.append(data, n);
      return absl::OkStatus();
    }
    absl::Status put = conn->PutCopyData(absl::string_view(data, n));
    if (!put.ok()) *stream_error = false;
    return put;
  };
  CopyStreamResult counts;
  std::string buf(kStreamBlock, '\0');
  int64_t row_bytes = 0;    // of the row being read, so far
  bool row_start = true;    // the next byte starts a row
  bool ended = false;       // a "\." row was met
  std::string first_field;  // of the row being read (track_first_field)
  bool in_first_field = true;
  // A "\." or "\.\r" at the end of a read, undecided until the next byte.
  std::string held;
  while (true) {
    if (Aborted()) return LoadCancelled(options_.dump_name);
    size_t have = held.size();
    if (have > 0) std::memcpy(buf.data(), held.data(), have);
    held.clear();
    ASSIGN_OR_RETURN(size_t got, in->Read(buf.data() + have, buf.size() - have));
    const bool at_end = got == 0;
    const size_t n = have + got;
    if (n == 0) break;
    const char* p = buf.data();
    size_t pos = 0;
    size_t send_to = ended ? 0 : n;  // the bytes of rows to send
    while (pos < n) {
      if (ended) {
        const char c = p[pos];
        if (c != '\n' && c != '\r' && c != ' ' && c != '\t') {
          return absl::InvalidArgumentError(
              absl::StrCat("more data after the end (\\.) of the COPY data of ",
                           job.tables.empty() ? "" : job.tables.front()));
        }
        ++pos;
        continue;
      }
      if (row_start) {
        if (p[pos] == '\\') {
          const size_t left = n - pos;
          const bool term =
              (left >= 2 && p[pos + 1] == '.' &&
               (left == 2 ? at_end
                          : (p[pos + 2] == '\n' ||
                             (p[pos + 2] == '\r' && (left == 3 ? at_end : p[pos + 3] == '\n')))));
          if (term) {
            ended = true;
            send_to = pos;
            pos += 2;  // the blanks after it are checked above
            continue;
          }
          if (!at_end && left < 4 && std::memcmp(p + pos, "\\.\r\n", left) == 0) {
            // Undecided: keep it for the next read.
            held.assign(p + pos, left);
            send_to = pos;
            break;
          }
        }
        row_start = false;
        row_bytes = 0;
        in_first_field = job.track_first_field;
        first_field.clear();
      }
      const char* nl = static_cast<const char*>(std::memchr(p + pos, '\n', n - pos));
      const size_t len = nl != nullptr ? static_cast<size_t>(nl - (p + pos)) + 1 : n - pos;
      row_bytes += static_cast<int64_t>(len);
      if (row_bytes > job.max_row_bytes) {
        return absl::InvalidArgumentError(
            absl::StrCat("a COPY row of ", job.tables.empty() ? "" : job.tables.front(),
                         " longer than the limit of ", job.max_row_bytes,
                         " bytes (a hostile or corrupt dump?)"));
      }
      if (in_first_field) {
        absl::string_view part(p + pos, len);
        const size_t tab = part.find_first_of("\t\n");
        first_field.append(part.substr(0, tab).data(), std::min(tab, part.size()));
        if (tab != absl::string_view::npos) in_first_field = false;
      }
      if (nl != nullptr) {
        ++counts.rows;
        row_start = true;
        if (job.track_first_field && SchemaVersionLess(counts.max_first_field, first_field)) {
          counts.max_first_field = first_field;
        }
      }
      pos += len;
    }
    if (send_to > 0) {
      counts.bytes += static_cast<int64_t>(send_to);
      streamed_bytes_ += static_cast<int64_t>(send_to);
      // Where the rows go changes at a row boundary only: the bytes up to
      // the last newline finish the current destination.
      const char* last_nl = static_cast<const char*>(memrchr(p, '\n', send_to));
      const size_t cut = last_nl != nullptr ? static_cast<size_t>(last_nl - p) + 1 : 0;
      RETURN_IF_ERROR(emit(p, cut));
      if (cut > 0) {
        if (handing && static_cast<int64_t>(handoff.size()) >= options_.chunk_bytes) {
          flush_handoff();
        }
        const bool want = may_split && e.split != nullptr && !ended && HelpWanted(e);
        if (handing && !want) flush_handoff();
        if (!handing && want)
          handoff.reserve(static_cast<size_t>(options_.chunk_bytes) + buf.size());
        handing = want;
      }
      RETURN_IF_ERROR(emit(p + cut, send_to - cut));
    }
    if (at_end) break;
  }
  flush_handoff();
  if (!row_start && !ended) {
    ++counts.rows;  // a last row without its newline
    if (job.track_first_field && SchemaVersionLess(counts.max_first_field, first_field)) {
      counts.max_first_field = first_field;
    }
  }
  if (job.result != nullptr) *job.result = std::move(counts);
  return absl::OkStatus();
}

}  // namespace mastodon_restore
