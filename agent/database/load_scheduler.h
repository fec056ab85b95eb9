// The scheduler of the parallel load: a pool of connections to the target
// database that runs the pieces of a dump the plain loader hands it (chunks of
// COPY data, index and constraint builds) as soon as what they depend on is
// done.
//
// Ordering contract: a job never starts while an earlier-submitted job that
// conflicts with it is unfinished. Jobs name the tables they touch and how,
// after the locks PostgreSQL takes:
//   kData      COPY rows into the table (data jobs of one table never
//              conflict with each other: chunks of one table load at once);
//   kShared    CREATE INDEX (SHARE: indexes of one table build at once, as
//              pg_restore -j does);
//   kValidate  ALTER TABLE ... VALIDATE CONSTRAINT, ANALYZE (SHARE UPDATE
//              EXCLUSIVE: one at a time per table, not beside index builds);
//   kReference the referenced table of a VALIDATE CONSTRAINT (ROW SHARE:
//              beside anything but kData and kExclusive);
//   kExclusive ALTER TABLE ... ADD CONSTRAINT and the like (conflicts with
//              everything on its tables).
// Data conflicts with everything but data, so a table's builds wait for all
// of its rows. Jobs of different tables run side by side, and two jobs whose
// server locks conflict never run at once (no lock waits, no deadlock).
//
// Among the ready jobs data goes first (it frees the read-ahead memory;
// among data jobs that read their rows themselves, the biggest first, as
// pg_restore -j does), then builds of the tables with the most data.
//
// A data job either carries its rows (copy_data, cut by the reader) or
// opens them itself (open_copy_data: e.g. one table's data of a seekable
// archive, decompressed for the worker that loads it on a thread of its
// own, about 1 MB ahead of the COPY). Such a stream is
// COPY text: rows end in '\n'; a "\." row ends the data (only blank lines
// may follow); every row is bounded by max_row_bytes; the worker counts the
// rows into `result`.
//
// Session settings: statements recorded with AddSessionStatement (SET ...,
// set_config) are replayed on every worker connection before the jobs
// submitted after them. Thread-safety: all public methods are called from one
// thread (the reader's); workers are internal.
#ifndef MR_AGENT_DATABASE_LOAD_SCHEDULER_H_
#define MR_AGENT_DATABASE_LOAD_SCHEDULER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/byte_stream.h"
#include "agent/common/cancel_token.h"
#include "agent/database/load_options.h"
#include "agent/database/pg_connection.h"

namespace mastodon_restore {

// What a worker found in the rows of a data job that opened them itself.
struct CopyStreamResult {
  int64_t rows = 0;
  int64_t bytes = 0;
  // With LoadJob::track_first_field: the greatest first field of a row
  // (schema_migrations' version, compared as SchemaVersionLess does).
  std::string max_first_field;
};

struct LoadJob {
  enum class Lock { kData, kShared, kValidate, kReference, kExclusive };
  // Tables as the dump names them ("public.statuses"); all taken in `lock`.
  std::vector<std::string> tables;
  Lock lock = Lock::kExclusive;
  // Tables taken in kReference mode (the referenced table of a validation).
  std::vector<std::string> referenced;
  // The SQL to run; with copy_data, the COPY ... FROM stdin statement.
  std::string sql;
  // Run instead when `sql` fails as not supported for the object (e.g. a
  // NOT VALID foreign key on a partitioned table); "" for none.
  std::string fallback_sql;
  // Rows for the COPY (lines, each ending in '\n'); empty for statements.
  std::string copy_data;
  // Instead of copy_data: opens the rows, called on the worker's thread
  // (must be thread-safe); the stream is read to its end by that worker.
  std::function<absl::StatusOr<std::unique_ptr<ByteStream>>()> open_copy_data;
  // With open_copy_data: about how many bytes it holds (the biggest load
  // first; builds of the tables with the most data first), the bound of a
  // row, whether to track the first field, and where the counts go (read
  // by the submitter once the job is done, e.g. after WaitIdle).
  int64_t size_hint = 0;
  int64_t max_row_bytes = int64_t{1} << 30;
  bool track_first_field = false;
  std::shared_ptr<CopyStreamResult> result;
  // With open_copy_data and a `sql` ending in "FROM stdin;": load the rows
  // frozen when the table allows it, i.e. it is an ordinary table this
  // role may truncate, still empty (no page yet, seen under an ACCESS
  // EXCLUSIVE lock: nothing any statement put there is lost), without
  // triggers and not referenced by a foreign key. It is then truncated and
  // loaded WITH (FREEZE) in one transaction: the rows are written frozen
  // and their pages all-visible, so the builds, checks and ANALYZE after
  // them neither set hint bits nor write the pages again. Such a job keeps
  // its rows to itself (another connection would wait for its lock). A
  // table that does not allow it loads as without the flag.
  bool freeze = false;
  // Later jobs that conflict with it may start first while it has not
  // started (its order against them does not matter: ANALYZE against the
  // catalog-only steps after it); it then waits for them.
  bool yields = false;
  // Where it comes from, for messages: first line in the dump, TOC entry.
  int64_t line = 0;
  std::string toc_entry;
  // With LoadSchedulerOptions::collect_failed_builds: a post-data job
  // whose failure may be collected (see IsCollectableBuildFailure), whether
  // it builds a unique index or constraint, and the dump's statement to run
  // again after a repair ("" when the rerun of another covers it).
  bool collectable = false;
  bool unique_build = false;
  std::string rerun_sql;
  // The index or constraint it builds (FailedBuild::name).
  std::string build_name;
};

// Whether a post-data statement that failed with `error` is collected
// (LoadOptions::collect_failed_builds) instead of failing the load: a
// unique build (`unique_build`) that failed with unique_violation, or a
// statement touching one of `tables` or naming one of `names` whose unique
// build failed, that fails for want of it (invalid_foreign_key, undefined
// object or table). `sql`: the statement.
bool IsCollectableBuildFailure(const PgError& error, bool unique_build, absl::string_view sql,
                               const std::vector<std::string>& tables,
                               const std::vector<FailedBuild>& failed);
// The server's message of `error` with its detail, for FailedBuild::error.
std::string BuildErrorText(const PgError& error);

// The errors of a load, the same from the reader and from the workers:
// "unable to load '<dump>' at line N (<TOC entry>): <what>" and
// "load of '<dump>' cancelled".
absl::Status LoadError(absl::StatusCode code, const std::string& dump, int64_t line,
                       const std::string& toc_entry, absl::string_view what);
absl::Status LoadCancelled(const std::string& dump);

struct LoadSchedulerOptions {
  // Number of worker connections (>= 1).
  int jobs = 2;
  // Opens a connection to the target database with the load's settings.
  std::function<absl::StatusOr<std::unique_ptr<PgConnection>>()> connect;
  // Submit() blocks while the data of unstarted and running jobs exceeds this.
  int64_t max_buffered_bytes = 64 << 20;
  // A worker streaming a table's rows (LoadJob::open_copy_data) hands
  // chunks of about this many bytes (whole rows) to workers that have
  // nothing else to do, so one big table loads on several connections.
  int64_t chunk_bytes = 8 << 20;
  // Name of the dump in messages.
  std::string dump_name = "dump";
  const CancelToken* cancel = nullptr;
  // Collect the failures of jobs marked `collectable` (see
  // IsCollectableBuildFailure) in failed_builds() instead of failing.
  bool collect_failed_builds = false;
};

class LoadScheduler {
 public:
  // Connects the workers. The error of the first connection that fails.
  static absl::StatusOr<std::unique_ptr<LoadScheduler>> Start(LoadSchedulerOptions options);
  // Stops: unfinished jobs are cancelled on the server; workers are joined.
  ~LoadScheduler();
  LoadScheduler(const LoadScheduler&) = delete;
  LoadScheduler& operator=(const LoadScheduler&) = delete;

  // Records a session statement for the workers (run before any job
  // submitted after it).
  void AddSessionStatement(const std::string& sql);

  // Queues `job`; blocks while too much data is buffered. The first failure
  // of any job (or CANCELLED) once there is one: then nothing more runs.
  absl::Status Submit(LoadJob job);

  // Waits until every submitted job has finished; the first failure.
  absl::Status WaitIdle();
  // The same for at most `timeout`: true when idle.
  absl::StatusOr<bool> WaitIdleFor(absl::Duration timeout);
  // Jobs submitted and not finished.
  int64_t pending();

  // An empty buffer for the rows of a data job with at least `capacity`
  // reserved: one of a finished job's, kept (at most kSpareBuffers) so the
  // next chunk reuses memory that is already mapped instead of faulting in
  // fresh pages of a new allocation for every chunk.
  std::string TakeBuffer(size_t capacity);
  static constexpr size_t kSpareBuffers = 2;

  // OK, or the first failure so far (does not wait).
  absl::Status status();

  // The collected failures so far (collect_failed_builds).
  std::vector<FailedBuild> failed_builds();

  // Jobs run so far, and the most that ran at once.
  int64_t jobs_done();
  int max_concurrency();
  // When the last data job finished (InfinitePast when none did).
  absl::Time last_data_done();

  // The builds (every job that is not data: indexes, constraints,
  // validations, ANALYZE) submitted and finished, counted and weighted by
  // an estimate of their work: the bytes of data submitted so far for the
  // largest table each takes (at least kMinBuildWork: a build on an empty
  // table still costs a statement).
  struct BuildCounts {
    int64_t done = 0;
    int64_t total = 0;
    int64_t work_done = 0;
    int64_t work_total = 0;
  };
  BuildCounts builds();
  static constexpr int64_t kMinBuildWork = 64 << 10;
  // Bytes of rows the data jobs that read their own rows have read so far
  // (any thread).
  int64_t streamed_bytes() const { return streamed_bytes_.load(); }
  // Tables loaded frozen so far (LoadJob::freeze; any thread).
  int64_t tables_frozen() const { return tables_frozen_.load(); }

  // The jobs run so far (the first kMaxTrace): what, on which worker
  // (0-based), when, for a timeline of the load.
  struct JobTrace {
    std::string what;  // the TOC entry ("chunk" appended for handed-off rows)
    int worker = 0;
    absl::Time start, end;
  };
  static constexpr size_t kMaxTrace = 100000;
  std::vector<JobTrace> trace();

 private:
  // The chunks a streaming job handed to other workers: queued, running.
  struct Split {
    int queued = 0;
    int running = 0;
  };
  struct Entry {
    int64_t seq = 0;
    LoadJob job;
    bool started = false;
    // Its share of BuildCounts::work_total (0 for data).
    int64_t build_work = 0;
    size_t prelude = 0;  // session statements to apply first
    // A streaming job's chunks (the chunks share it, and the seq of the
    // job: they are ordered as it is).
    std::shared_ptr<Split> split;
  };

  explicit LoadScheduler(LoadSchedulerOptions options);
  void Worker(PgConnection* conn, int index);
  // Under mu_: the index in queue_ of the job to start next, -1 when none.
  int PickLocked();
  bool ConflictsWithEarlierLocked(const Entry& e);
  void FailLocked(absl::Status status);
  absl::Status RunJob(PgConnection* conn, const Entry& e);
  // LoadJob::freeze, for a COPY that has a frozen form: whether the job's
  // table may be loaded frozen. When
  // true, a transaction holding the table's lock is open on `conn` and the
  // table is truncated; when false, none is.
  bool BeginFrozenCopy(PgConnection* conn, const LoadJob& job);
  // `*stream_error`: whether a failure is the stream's (else the server's);
  // `may_split`: whether rows may go to other workers.
  absl::Status StreamCopyData(PgConnection* conn, const Entry& e, bool may_split,
                              bool* stream_error);
  // Whether the streaming job `e` should hand its next rows to another
  // worker, and the handing.
  bool HelpWanted(const Entry& e);
  void HandOff(const Entry& e, std::string rows);
  bool Aborted() const;
  absl::Status CheckCancelLocked();

  LoadSchedulerOptions options_;
  std::vector<std::unique_ptr<PgConnection>> conns_;
  std::vector<std::thread> threads_;

  std::mutex mu_;
  std::condition_variable work_cv_;           // workers: a job may be ready
  std::condition_variable done_cv_;           // reader: a job finished or failed
  std::deque<std::unique_ptr<Entry>> queue_;  // unfinished, in submission order
  std::vector<std::string> prelude_;
  int64_t next_seq_ = 0;
  int64_t buffered_ = 0;
  int running_ = 0;
  int idle_ = 0;  // workers waiting for a job
  int max_running_ = 0;
  int64_t done_ = 0;
  bool stopping_ = false;
  absl::Status failure_;
  std::map<std::string, int64_t> table_bytes_;
  BuildCounts builds_;
  absl::Time last_data_done_ = absl::InfinitePast();
  std::vector<std::string> spare_buffers_;
  std::vector<JobTrace> trace_;
  std::vector<FailedBuild> failed_builds_;
  // Set with failure_ or stopping_: a worker streaming rows stops.
  std::atomic<bool> abort_{false};
  std::atomic<int64_t> streamed_bytes_{0};
  std::atomic<int64_t> tables_frozen_{0};
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_LOAD_SCHEDULER_H_
