#include "agent/database/sql_executor.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"
#include "agent/database/rewrite_rules.h"
#include "agent/dump/plain_scanner.h"

namespace mastodon_restore {
namespace {

constexpr size_t kChunk = 1 << 20;
constexpr size_t kCopyBatch = 256 * 1024;

// The unquoted name of the index or constraint `target` builds.
std::string BuildName(const PostDataTarget& target) {
  std::string name = target.index ? target.index_name : target.constraint;
  const size_t dot = name.rfind('.');
  if (dot != std::string::npos && name.find('"', dot) == std::string::npos) {
    name = name.substr(dot + 1);
  }
  if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
    name = name.substr(1, name.size() - 2);
  }
  return name;
}

}  // namespace

absl::Status SqlExecutor::Start() {
  if (options_.jobs <= 1 || !options_.connect) return absl::OkStatus();
  LoadSchedulerOptions so;
  so.jobs = options_.jobs;
  so.connect = options_.connect;
  so.max_buffered_bytes = (options_.jobs + 2) * std::max<int64_t>(options_.chunk_bytes, 1);
  so.chunk_bytes = std::max<int64_t>(options_.chunk_bytes, 1);
  so.dump_name = options_.dump_name;
  so.cancel = options_.cancel;
  so.collect_failed_builds = options_.collect_failed_builds;
  ASSIGN_OR_RETURN(scheduler_, LoadScheduler::Start(so));
  stats_->jobs = options_.jobs;
  return absl::OkStatus();
}

absl::Status SqlExecutor::status() {
  return scheduler_ != nullptr ? scheduler_->status() : absl::OkStatus();
}

absl::Status SqlExecutor::Fail(int64_t line, const std::string& what, absl::StatusCode code) const {
  return LoadError(code, options_.dump_name, line, toc_entry_, what);
}

void SqlExecutor::NoteRewrite(const std::string& what) {
  for (const std::string& r : stats_->rewrites) {
    if (r == what) return;
  }
  stats_->rewrites.push_back(what);
}

void SqlExecutor::Warn(const std::string& what) {
  if (stats_->warnings.size() < 100) stats_->warnings.push_back(what);
}

absl::Status SqlExecutor::Run(const SqlItem& item) {
  const std::string upper = StatementHead(item.text);
  ++stats_->statements;
  if (options_.owner_statement) {
    std::string role = OwnerToRole(item.text);
    if (role.empty()) role = DefaultPrivilegesRole(item.text);
    if (!role.empty()) {
      ASSIGN_OR_RETURN(LoadOptions::OwnerAction action, options_.owner_statement(item.text, role));
      if (action == LoadOptions::OwnerAction::kDefer) return absl::OkStatus();
      if (action == LoadOptions::OwnerAction::kSkip) {
        if (refused_owners_.insert(role).second) {
          Warn(absl::StrCat("objects are not given to role \"", role,
                            "\" (a superuser or a role with privileges the load may not use): "
                            "they belong to the restored database's owner"));
        }
        return absl::OkStatus();
      }
    }
  }
  // pg_dump 18's planner statistics (the target imports them: the rewrite
  // rules skip them for older ones).
  std::string stats_table;
  bool stats_attribute = false;
  const bool statistics = ParseStatisticsImport(item.text, &stats_table, &stats_attribute);
  if (scheduler_ != nullptr) {
    ASSIGN_OR_RETURN(bool taken, Route(item, upper));
    if (taken) {
      if (statistics && stats_attribute) NoteStatisticsImported(stats_table);
      return absl::OkStatus();
    }
  }
  if (absl::StartsWith(upper, "COPY ")) HoldAutovacuum(item);
  absl::Status s = conn_->Exec(item.text);
  if (s.ok()) {
    if (conn_->in_copy()) StartCopy(item);
    if (statistics && stats_attribute) NoteStatisticsImported(stats_table);
    return absl::OkStatus();
  }
  if (s.code() == absl::StatusCode::kCancelled) {
    return LoadCancelled(options_.dump_name);
  }
  const PgError& e = conn_->last_error();
  if (options_.privileged != nullptr && e.sqlstate == "42501" &&
      absl::StartsWith(upper, "CREATE EXTENSION ")) {
    // An allow-listed extension the loading role may not create (not
    // trusted): created by the superuser connection, and reported.
    absl::Status privileged = options_.privileged->Exec(item.text);
    if (!privileged.ok()) {
      return Fail(item.line, std::string(privileged.message()), absl::StatusCode::kInvalidArgument);
    }
    Warn(absl::StrCat("created as superuser (the loading role may not): ",
                      item.text.substr(0, 200)));
    return absl::OkStatus();
  }
  const bool ownership = upper.find(" OWNER TO ") != std::string::npos ||
                         absl::StartsWith(upper, "GRANT ") || absl::StartsWith(upper, "REVOKE ") ||
                         absl::StartsWith(upper, "ALTER DEFAULT PRIVILEGES ");
  if (ownership && e.sqlstate == "42704" && absl::StartsWith(e.message, "role \"")) {
    std::string role = e.message.substr(6, e.message.find('"', 6) - 6);
    if (options_.keep_owners) {
      return Fail(item.line,
                  absl::StrCat("role \"", role,
                               "\" does not exist and --keep-owners requires it "
                               "(create it, or restore without --keep-owners)"),
                  absl::StatusCode::kFailedPrecondition);
    }
    if (missing_.insert(role).second) {
      stats_->missing_roles.push_back(role);
      Warn(absl::StrCat("role \"", role,
                        "\" does not exist on the target: its ownership and "
                        "privileges are skipped (objects stay owned by the restoring role)"));
    }
    return absl::OkStatus();
  }
  if (options_.collect_failed_builds && s.code() == absl::StatusCode::kInvalidArgument &&
      CollectFailedBuild(item, e)) {
    return absl::OkStatus();
  }
  return Fail(item.line, std::string(s.message()), absl::StatusCode::kInvalidArgument);
}

// With options.collect_failed_builds: records the failure `e` of `item`
// when it is a unique build's unique_violation or a statement that depends
// on one (IsCollectableBuildFailure); false otherwise.
bool SqlExecutor::CollectFailedBuild(const SqlItem& item, const PgError& e) {
  PostDataTarget target;
  const bool parsed = ParsePostDataStatement(item.text, &target);
  const std::vector<FailedBuild> failed = FailedBuilds();
  if (!IsCollectableBuildFailure(e, parsed && target.unique, item.text,
                                 parsed ? target.tables : std::vector<std::string>(), failed)) {
    return false;
  }
  FailedBuild f;
  f.sql = item.text;
  f.line = item.line;
  f.toc_entry = toc_entry_;
  if (parsed) f.tables = target.tables;
  f.error = BuildErrorText(e);
  f.unique_violation = parsed && target.unique && e.sqlstate == "23505";
  f.name = BuildName(target);
  stats_->failed_builds.push_back(std::move(f));
  return true;
}

std::vector<FailedBuild> SqlExecutor::FailedBuilds() {
  std::vector<FailedBuild> all = stats_->failed_builds;
  if (scheduler_ != nullptr) {
    for (FailedBuild& f : scheduler_->failed_builds()) all.push_back(std::move(f));
  }
  return all;
}

// The parallel load: whether `item` was handed to the scheduler (else it
// runs on the reader's connection, after everything before it when it
// comes after the data started).
absl::StatusOr<bool> SqlExecutor::Route(const SqlItem& item, const std::string& upper) {
  if (toc_type_ != "FK CONSTRAINT") {
    RETURN_IF_ERROR(SubmitValidations());
  } else {
    // Foreign keys come after every index and constraint: the tables can
    // be analyzed now, beside the checks of the keys.
    RETURN_IF_ERROR(SubmitAnalyze());
  }
  if (absl::StartsWith(upper, "SET ") || absl::StartsWith(upper, "RESET ") ||
      absl::StartsWith(upper, "SELECT PG_CATALOG.SET_CONFIG(")) {
    // Session settings: replayed on the workers. One that changes a value
    // after the data started waits until nothing runs.
    std::string key = upper.substr(0, upper.find_first_of("=,"));
    if (absl::StartsWith(upper, "SET ")) key = upper.substr(0, upper.find(' ', 4));
    auto it = session_.find(key);
    if (it != session_.end() && it->second == item.text) return false;
    if (parallel_phase_) RETURN_IF_ERROR(scheduler_->WaitIdle());
    session_[key] = item.text;
    scheduler_->AddSessionStatement(item.text);
    return false;
  }
  if (toc_type_ == "TABLE DATA") {
    parallel_phase_ = true;
    if (absl::StartsWith(upper, "COPY ") &&
        absl::EndsWith(StatementHead(item.text, item.text.size()), " FROM STDIN;")) {
      if (offered_.has_value()) {
        RETURN_IF_ERROR(SubmitStreamedCopy(item));
        return true;
      }
      HoldAutovacuum(item);
      StartCopy(item);
      EnsureChunkRoom();
      copy_remote_ = true;
      copy_sql_ = item.text;
      copy_chunk_line_ = item.line;
      return true;
    }
    return false;  // e.g. INSERTs of --inserts dumps: here, in order
  }
  if (toc_type_ == "SEQUENCE SET") return false;  // the sequence exists since pre-data
  std::string stats_table;
  bool stats_attribute = false;
  if (toc_type_ == "STATISTICS DATA" &&
      ParseStatisticsImport(item.text, &stats_table, &stats_attribute) &&
      stats_->table_rows.count(stats_table) > 0) {
    // A loaded table's statistics: after its rows and the builds submitted
    // before (SHARE UPDATE EXCLUSIVE, as ANALYZE), beside other tables'
    // work. (An index's or a materialized view's run alone, below: the
    // object may not exist before the jobs before it are done.)
    LoadJob job;
    job.tables = {stats_table};
    job.lock = LoadJob::Lock::kValidate;
    job.sql = item.text;
    job.line = item.line;
    job.toc_entry = toc_entry_;
    RETURN_IF_ERROR(scheduler_->Submit(std::move(job)));
    return true;
  }
  if (toc_type_ == "INDEX" || toc_type_ == "CONSTRAINT" || toc_type_ == "FK CONSTRAINT") {
    PostDataTarget target;
    if (ParsePostDataStatement(item.text, &target)) {
      parallel_phase_ = true;
      LoadJob job;
      job.tables = target.tables;
      job.lock = target.index ? LoadJob::Lock::kShared : LoadJob::Lock::kExclusive;
      job.sql = item.text;
      job.line = item.line;
      job.toc_entry = toc_entry_;
      job.collectable = options_.collect_failed_builds;
      job.unique_build = target.unique;
      job.rerun_sql = item.text;
      job.build_name = BuildName(target);
      if (!target.referenced.empty() && target.only && !target.not_valid) {
        // Added NOT VALID now (catalog only), validated with the others.
        LoadJob validate;
        validate.tables = {target.tables[0]};
        validate.lock = LoadJob::Lock::kValidate;
        if (target.referenced != target.tables[0]) validate.referenced = {target.referenced};
        validate.sql = absl::StrCat("ALTER TABLE ONLY ", target.tables[0], " VALIDATE CONSTRAINT ",
                                    target.constraint, ";");
        validate.line = item.line;
        validate.toc_entry = toc_entry_;
        validate.collectable = options_.collect_failed_builds;  // (the key's rerun covers it)
        job.fallback_sql = item.text;
        job.sql = absl::StrCat(absl::StripSuffix(item.text, ";"), " NOT VALID;");
        validations_.push_back(std::move(validate));
      }
      RETURN_IF_ERROR(scheduler_->Submit(std::move(job)));
      return true;
    }
  }
  // Anything else after the data started runs alone, in dump order.
  if (parallel_phase_) RETURN_IF_ERROR(scheduler_->WaitIdle());
  return false;
}

// With options.analyze, once: ANALYZE of every table that got rows, each
// after its builds.
absl::Status SqlExecutor::SubmitAnalyze() {
  if (!options_.analyze || analyze_submitted_) return absl::OkStatus();
  analyze_submitted_ = true;
  for (const auto& [table, rows] : stats_->table_rows) {
    if (statistics_imported_.count(table) > 0) continue;  // the dump's own
    LoadJob job;
    job.tables = {table};
    job.lock = LoadJob::Lock::kValidate;
    job.sql = absl::StrCat("ANALYZE ", table);
    job.yields = true;  // the foreign keys' catalog steps may go first
    job.toc_entry = absl::StrCat("ANALYZE ", table);
    RETURN_IF_ERROR(scheduler_->Submit(std::move(job)));
    stats_->analyzed.push_back(table);
  }
  return absl::OkStatus();
}

// Records that the dump's column statistics of `table` were imported (once).
void SqlExecutor::NoteStatisticsImported(const std::string& table) {
  if (statistics_imported_.insert(table).second) stats_->statistics_imported.push_back(table);
}

// Submits the validations of the foreign keys added NOT VALID so far.
absl::Status SqlExecutor::SubmitValidations() {
  for (LoadJob& job : validations_) RETURN_IF_ERROR(scheduler_->Submit(std::move(job)));
  validations_.clear();
  return absl::OkStatus();
}

absl::Status SqlExecutor::CopyData(absl::string_view data, bool row_end, int64_t line) {
  copy_batch_.append(data.data(), data.size());
  if (row_end) {
    ++copy_rows_;
    if (copy_is_migrations_ && at_copy_row_start_) {
      absl::string_view row = data.substr(0, data.size() - 1);
      absl::string_view version = row.substr(0, row.find('\t'));
      if (SchemaVersionLess(stats_->schema_version, version)) {
        stats_->schema_version = std::string(version);
      }
    }
    at_copy_row_start_ = true;
  } else {
    at_copy_row_start_ = false;
  }
  if (copy_remote_) {
    if (at_copy_row_start_ && static_cast<int64_t>(copy_batch_.size()) >= options_.chunk_bytes) {
      RETURN_IF_ERROR(SubmitCopyChunk(line));
    }
  } else if (copy_batch_.size() >= kCopyBatch) {
    RETURN_IF_ERROR(FlushCopy());
  }
  return absl::OkStatus();
}

absl::Status SqlExecutor::SubmitCopyChunk(int64_t line) {
  if (copy_batch_.empty()) return absl::OkStatus();
  LoadJob job;
  job.tables = {copy_table_};
  job.lock = LoadJob::Lock::kData;
  job.sql = copy_sql_;
  job.copy_data = std::move(copy_batch_);
  job.line = copy_chunk_line_;
  job.toc_entry = toc_entry_;
  copy_batch_ = std::string();
  EnsureChunkRoom();
  copy_chunk_line_ = line + 1;
  return scheduler_->Submit(std::move(job));
}

// The COPY `item` as one job whose worker reads the offered rows itself.
absl::Status SqlExecutor::SubmitStreamedCopy(const SqlItem& item) {
  HoldAutovacuum(item);
  const std::string table = CopyTarget(item.text);
  LoadJob job;
  job.tables = {table};
  job.lock = LoadJob::Lock::kData;
  job.sql = item.text;
  job.open_copy_data = std::move(offered_->open);
  // (Frozen, the job is the table's only loader: pg_dump writes one TABLE
  // DATA entry per table, and the builds, checks and ANALYZE after it save
  // more on frozen rows than splitting its rows gains.)
  job.freeze = options_.freeze;
  job.size_hint = offered_->size_hint;
  job.max_row_bytes = options_.bounds.max_copy_row_bytes;
  job.track_first_field =
      absl::EndsWith(table, ".schema_migrations") || table == "schema_migrations";
  job.result = std::make_shared<CopyStreamResult>();
  job.line = item.line;
  job.toc_entry = toc_entry_;
  offered_.reset();
  took_ = true;
  streamed_.emplace_back(table, job.result);
  ++stats_->tables_read_apart;
  stats_->table_rows[table] += 0;  // (its rows once the job is done)
  return scheduler_->Submit(std::move(job));
}

// Room in copy_batch_ for a whole chunk (a line may overshoot the size a
// little), in the memory of a finished chunk when there is one.
void SqlExecutor::EnsureChunkRoom() {
  const size_t room = static_cast<size_t>(options_.chunk_bytes) + kChunk;
  if (copy_batch_.capacity() < room) copy_batch_ = scheduler_->TakeBuffer(room);
}

// options.hold_autovacuum: before the first rows of the COPY `item`'s
// table. Best effort (a table the role does not own stays as it is).
void SqlExecutor::HoldAutovacuum(const SqlItem& item) {
  if (!options_.hold_autovacuum) return;
  const std::string table = CopyTarget(item.text);
  if (!autovacuum_checked_.insert(table).second) return;
  auto rel = conn_->Query(
      "SELECT relkind::text, coalesce(array_to_string(reloptions, ','), '') FROM pg_class "
      "WHERE oid = to_regclass($1)",
      {table});
  if (!rel.ok() || rel->rows.empty() || rel->rows[0][0].value_or("") != "r" ||
      absl::StrContains(rel->rows[0][1].value_or(""), "autovacuum_enabled")) {
    return;
  }
  if (conn_->Exec(absl::StrCat("ALTER TABLE ", table, " SET (autovacuum_enabled = off)")).ok()) {
    autovacuum_held_.push_back(table);
  }
}

// Gives autovacuum back the tables HoldAutovacuum took.
absl::Status SqlExecutor::ReleaseAutovacuum(int64_t line) {
  for (const std::string& table : autovacuum_held_) {
    absl::Status s =
        conn_->Exec(absl::StrCat("ALTER TABLE ", table, " RESET (autovacuum_enabled)"));
    if (!s.ok()) {
      return Fail(line,
                  absl::StrCat("unable to reset autovacuum_enabled of ", table, ": ", s.message()),
                  absl::StatusCode::kInternal);
    }
  }
  autovacuum_held_.clear();
  return absl::OkStatus();
}

void SqlExecutor::StartCopy(const SqlItem& item) {
  in_copy_ = true;
  at_copy_row_start_ = true;
  copy_rows_ = 0;
  copy_line_ = item.line;
  copy_table_ = CopyTarget(item.text);
  copy_is_migrations_ =
      absl::EndsWith(copy_table_, ".schema_migrations") || copy_table_ == "schema_migrations";
}

absl::Status SqlExecutor::FlushCopy() {
  if (copy_batch_.empty()) return absl::OkStatus();
  absl::Status s = conn_->PutCopyData(copy_batch_);
  copy_batch_.clear();
  return s;
}

absl::Status SqlExecutor::EndCopy() {
  in_copy_ = false;
  if (copy_remote_) {
    copy_remote_ = false;
    RETURN_IF_ERROR(SubmitCopyChunk(copy_chunk_line_));  // its errors say where already
  } else {
    RETURN_IF_ERROR(EndLocalCopy());
  }
  stats_->rows += copy_rows_;
  stats_->table_rows[copy_table_] += copy_rows_;
  return absl::OkStatus();
}

// Ends a COPY streamed on the reader's connection.
absl::Status SqlExecutor::EndLocalCopy() {
  absl::Status s = FlushCopy();
  if (s.ok()) {
    s = conn_->EndCopy();
  } else {
    conn_->EndCopy("aborted").IgnoreError();
  }
  if (s.ok()) return absl::OkStatus();
  if (s.code() == absl::StatusCode::kCancelled) return LoadCancelled(options_.dump_name);
  return Fail(copy_line_, absl::StrCat("COPY ", copy_table_, ": ", s.message()),
              absl::StatusCode::kInvalidArgument);
}

absl::Status SqlExecutor::Finish(absl::Time start, const LoadProgress& base, int64_t line) {
  if (scheduler_ != nullptr) {
    RETURN_IF_ERROR(SubmitAnalyze());
    RETURN_IF_ERROR(SubmitValidations());
    // The dump is read; the builds go on. Say how many are left.
    const int64_t streamed_before = scheduler_->streamed_bytes();
    while (true) {
      ASSIGN_OR_RETURN(bool idle, scheduler_->WaitIdleFor(absl::Milliseconds(500)));
      if (idle) break;
      if (options_.progress) {
        LoadProgress p = base;
        p.bytes += scheduler_->streamed_bytes() - streamed_before;
        const LoadScheduler::BuildCounts builds = scheduler_->builds();
        p.building = true;
        p.builds_done = builds.done;
        p.builds_total = builds.total;
        p.build_work_done = builds.work_done;
        p.build_work_total = builds.work_total;
        p.toc_entry = absl::StrCat("dump read; ", scheduler_->pending(), " of ",
                                   scheduler_->jobs_done() + scheduler_->pending(),
                                   " jobs left (data, indexes, constraints, ANALYZE)");
        options_.progress(p);
      }
    }
    for (const auto& [table, result] : streamed_) {
      stats_->rows += result->rows;
      stats_->table_rows[table] += result->rows;
      if (!result->max_first_field.empty() &&
          SchemaVersionLess(stats_->schema_version, result->max_first_field)) {
        stats_->schema_version = result->max_first_field;
      }
    }
    streamed_.clear();
    for (FailedBuild& f : scheduler_->failed_builds())
      stats_->failed_builds.push_back(std::move(f));
    stats_->bytes += scheduler_->streamed_bytes();
    streamed_counted_ = true;
    stats_->parallel_jobs = scheduler_->jobs_done();
    stats_->max_concurrency = scheduler_->max_concurrency();
    stats_->tables_frozen = scheduler_->tables_frozen();
    for (const LoadScheduler::JobTrace& t : scheduler_->trace()) {
      stats_->timeline.push_back({t.what, t.worker, absl::ToDoubleSeconds(t.start - start),
                                  absl::ToDoubleSeconds(t.end - start)});
    }
    if (scheduler_->last_data_done() > start) {
      stats_->data_seconds = absl::ToDoubleSeconds(scheduler_->last_data_done() - start);
    }
  }
  return ReleaseAutovacuum(line);
}

}  // namespace mastodon_restore
