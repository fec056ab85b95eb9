// Runs a dump's statements and COPY data on the target: in dump order on one
// connection, or (options.jobs >= 2 with options.connect) through a
// LoadScheduler, which loads COPY data in chunks and builds indexes and
// constraints on other connections (see LoadOptions::jobs). Holds autovacuum
// off the loaded tables (options.hold_autovacuum), skips ownership and
// privileges of missing roles (unless options.keep_owners), and counts what
// was loaded. Knows nothing of the dump's text format: the plain SQL loader
// (plain_loader.h) feeds it statements as split from the text, after the
// rewrite rules (rewrite_rules.h); an archive reader can feed it the same.
#ifndef MR_AGENT_DATABASE_SQL_EXECUTOR_H_
#define MR_AGENT_DATABASE_SQL_EXECUTOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/byte_stream.h"
#include "agent/database/load_options.h"
#include "agent/database/load_scheduler.h"
#include "agent/database/pg_connection.h"
#include "agent/database/sql_splitter.h"

namespace mastodon_restore {

class SqlExecutor {
 public:
  // Runs on `conn` with `options` (both outliving the executor); counts in
  // `*stats`.
  SqlExecutor(PgConnection* conn, const LoadOptions& options, LoadStats* stats)
      : conn_(conn), options_(options), stats_(stats) {}

  // Starts the workers of a parallel load (nothing for a serial one).
  absl::Status Start();
  bool parallel() const { return scheduler_ != nullptr; }
  // Bytes of rows the workers read themselves so far (CopySource).
  // (Once Finish is done they are in LoadStats::bytes instead.)
  int64_t streamed_bytes() const {
    return scheduler_ != nullptr && !streamed_counted_ ? scheduler_->streamed_bytes() : 0;
  }
  // The first failure of a worker (OK for a serial load).
  absl::Status status();

  // The TOC entry the next statements belong to ("TABLE DATA
  // public.statuses"; type "TABLE DATA"), for messages and routing.
  void SetTocEntry(std::string entry, std::string type) {
    toc_entry_ = std::move(entry);
    toc_type_ = std::move(type);
  }
  const std::string& toc_entry() const { return toc_entry_; }

  // Runs a statement that starts at dump line `item.line`. A "COPY ... FROM
  // stdin" starts COPY data (in_copy()). Errors: see LoadPlainSql.
  absl::Status Run(const SqlItem& item);

  // The rows of the next statement, when it is a table's "COPY ... FROM
  // stdin", come from a stream the workers open themselves (a seekable
  // archive's table data): a parallel load hands that COPY to the
  // scheduler as one job (LoadJob::open_copy_data) instead of starting
  // COPY data. TookCopySource() says whether it did, and drops the offer
  // (when it did not, the caller feeds the rows with CopyData as usual).
  struct CopySource {
    std::function<absl::StatusOr<std::unique_ptr<ByteStream>>()> open;
    int64_t size_hint = 0;
  };
  void OfferCopySource(CopySource source) { offered_ = std::move(source); }
  bool TookCopySource() {
    offered_.reset();
    const bool took = took_;
    took_ = false;
    return took;
  }

  // COPY data: while in_copy(), the data's next bytes, `row_end` when they
  // end a row (with its '\n'); `line`: the dump line they end on.
  bool in_copy() const { return in_copy_; }
  bool at_copy_row_start() const { return at_copy_row_start_; }
  absl::Status CopyData(absl::string_view data, bool row_end, int64_t line);
  // The end of the COPY data.
  absl::Status EndCopy();
  // The running COPY's line and table as the dump writes it.
  int64_t copy_line() const { return copy_line_; }
  const std::string& copy_table() const { return copy_table_; }

  // Once the dump is read: waits for the workers (reporting `base`, with
  // the jobs left, through options.progress), and gives autovacuum the
  // tables back. `start`: when the load started; `line`: the dump's last.
  absl::Status Finish(absl::Time start, const LoadProgress& base, int64_t line);

  // The load's error at dump `line` in the current TOC entry.
  absl::Status Fail(int64_t line, const std::string& what, absl::StatusCode code) const;
  // Reports a rewrite (once) and a warning (the first 100).
  void NoteRewrite(const std::string& what);
  void Warn(const std::string& what);

 private:
  absl::StatusOr<bool> Route(const SqlItem& item, const std::string& upper);
  bool CollectFailedBuild(const SqlItem& item, const PgError& e);
  // The failures collected so far, the workers' included.
  std::vector<FailedBuild> FailedBuilds();
  absl::Status SubmitAnalyze();
  void NoteStatisticsImported(const std::string& table);
  absl::Status SubmitValidations();
  absl::Status SubmitCopyChunk(int64_t line);
  absl::Status SubmitStreamedCopy(const SqlItem& item);
  void EnsureChunkRoom();
  void HoldAutovacuum(const SqlItem& item);
  absl::Status ReleaseAutovacuum(int64_t line);
  void StartCopy(const SqlItem& item);
  absl::Status FlushCopy();
  absl::Status EndLocalCopy();

  PgConnection* const conn_;
  const LoadOptions& options_;
  LoadStats* const stats_;
  std::string toc_entry_;
  std::string toc_type_;
  std::set<std::string> missing_;
  // Roles the load may not give objects to (LoadOptions::owner_statement), warned.
  std::set<std::string> refused_owners_;
  // The COPY running (its data streamed on conn_, or cut into chunks for
  // the workers with copy_remote_).
  bool in_copy_ = false;
  bool at_copy_row_start_ = true;
  bool copy_is_migrations_ = false;
  int64_t copy_rows_ = 0;
  int64_t copy_line_ = 0;
  std::string copy_table_;
  std::string copy_batch_;
  // The parallel load (null: serial).
  std::unique_ptr<LoadScheduler> scheduler_;
  bool parallel_phase_ = false;
  bool copy_remote_ = false;
  std::string copy_sql_;
  int64_t copy_chunk_line_ = 0;
  std::map<std::string, std::string> session_;
  std::vector<LoadJob> validations_;
  // The offered row source, whether it was taken, and the counts of the
  // COPY jobs that read their own rows (added up by Finish).
  std::optional<CopySource> offered_;
  bool took_ = false;
  bool streamed_counted_ = false;
  std::vector<std::pair<std::string, std::shared_ptr<CopyStreamResult>>> streamed_;
  bool analyze_submitted_ = false;
  // Tables whose column statistics came from the dump (not analyzed).
  std::set<std::string> statistics_imported_;
  std::set<std::string> autovacuum_checked_;
  std::vector<std::string> autovacuum_held_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_SQL_EXECUTOR_H_
