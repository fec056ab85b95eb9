#include "agent/database/plain_loader.h"

#include <cstring>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"
#include "agent/database/load_scheduler.h"
#include "agent/database/sql_splitter.h"
#include "agent/dump/plain_scanner.h"

namespace mastodon_restore {
namespace {

constexpr size_t kChunk = 1 << 20;
constexpr size_t kCopyBatch = 256 * 1024;

// Upper-cased start of a statement, for classification.
std::string Head(absl::string_view sql, size_t n = 96) {
  std::string head(sql.substr(0, n));
  for (char& c : head) {
    c = c == '\n' || c == '\t' || c == '\r' ? ' ' : absl::ascii_toupper(c);
  }
  return head;
}

bool ValidRestrictKey(absl::string_view key) {
  if (key == "(null)") return true;
  if (key.empty()) return false;
  for (char c : key) {
    if (!absl::ascii_isalnum(c)) return false;
  }
  return true;
}

// Position just after "<prefix><identifier>" where the identifier is the
// database name, and the identifier's span; false when `upper` does not
// start with `prefix`.
bool FindDatabaseName(const std::string& sql, const std::string& upper, const std::string& marker,
                      size_t* begin, size_t* end) {
  size_t at = upper.find(marker);
  if (at == std::string::npos) return false;
  size_t i = at + marker.size();
  if (i >= sql.size()) return false;
  *begin = i;
  if (ScanQualifiedName(sql, &i).empty()) {
    while (i < sql.size() && sql[i] != ' ' && sql[i] != ';' && sql[i] != '\n') ++i;
  }
  *end = i;
  return true;
}

// The table of "COPY <table> (...) FROM stdin;" as the dump writes it.
std::string CopyTarget(absl::string_view sql) {
  absl::ConsumePrefix(&sql, "COPY ");
  size_t at = 0;
  std::string table = ScanQualifiedName(sql, &at);
  return table.empty() ? std::string(sql.substr(0, sql.find(' '))) : table;
}

class Loader {
 public:
  Loader(ByteStream* in, PgConnection* conn, const LoadOptions& options)
      : in_(in), conn_(conn), options_(options), source_db_(options.source_db) {
    if (!options.cluster_section.empty()) {
      phase_ = Phase::kGlobals;
      source_db_ = options.cluster_section;
    }
  }

  absl::StatusOr<LoadStats> Run() {
    const absl::Time start = absl::Now();
    if (options_.jobs > 1 && options_.connect) {
      LoadSchedulerOptions so;
      so.jobs = options_.jobs;
      so.connect = options_.connect;
      so.max_buffered_bytes = (options_.jobs + 2) * std::max<int64_t>(options_.chunk_bytes, 1);
      so.dump_name = options_.dump_name;
      so.cancel = options_.cancel;
      ASSIGN_OR_RETURN(scheduler_, LoadScheduler::Start(so));
      stats_.jobs = options_.jobs;
      // Decompression (and whatever else produces the stream) on its own
      // thread, ahead of the parsing.
      prefetch_ = std::make_unique<PrefetchStream>(in_);
      in_ = prefetch_.get();
    }
    RETURN_IF_ERROR(SkipTo(options_.begin_offset));
    std::vector<char> buf(kChunk);
    int64_t consumed = options_.begin_offset;
    while (true) {
      if (options_.cancel != nullptr && options_.cancel->cancelled()) {
        return LoadCancelled(options_.dump_name);
      }
      size_t want = buf.size();
      if (options_.end_offset >= 0) {
        int64_t left = options_.end_offset - consumed;
        if (left <= 0) break;
        want = static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(want)));
      }
      ASSIGN_OR_RETURN(size_t n, in_->Read(buf.data(), want));
      if (n == 0) break;
      consumed += static_cast<int64_t>(n);
      stats_.bytes += static_cast<int64_t>(n);
      pending_.append(buf.data(), n);
      RETURN_IF_ERROR(Process(/*at_end=*/false));
      if (scheduler_ != nullptr) RETURN_IF_ERROR(scheduler_->status());
      if (phase_ == Phase::kDone && !in_copy_) break;  // the section is loaded
      if (options_.progress && stats_.bytes - last_progress_ >= options_.progress_every_bytes) {
        last_progress_ = stats_.bytes;
        options_.progress(Progress());
      }
    }
    RETURN_IF_ERROR(Process(/*at_end=*/true));
    RETURN_IF_ERROR(globals_status_);
    if (!options_.cluster_section.empty() && !stats_.section_found) {
      return UnableTo(
          absl::StatusCode::kInvalidArgument, "load", options_.dump_name,
          absl::StrCat("the cluster dump holds no database '", options_.cluster_section, "'"));
    }
    if (in_copy_) {
      return Fail(
          copy_line_,
          absl::StrCat("the dump ends inside the COPY data of ", copy_table_, " (truncated?)"),
          absl::StatusCode::kInvalidArgument);
    }
    std::string rest = splitter_.TakeUnfinished();
    if (!rest.empty() && !absl::StartsWith(rest, "/*")) {
      return Fail(line_, "the dump ends inside a statement (truncated?)",
                  absl::StatusCode::kInvalidArgument);
    }
    if (scheduler_ != nullptr) {
      RETURN_IF_ERROR(SubmitAnalyze());
      RETURN_IF_ERROR(SubmitValidations());
      // The dump is read; the builds go on. Say how many are left.
      while (true) {
        ASSIGN_OR_RETURN(bool idle, scheduler_->WaitIdleFor(absl::Milliseconds(500)));
        if (idle) break;
        if (options_.progress) {
          LoadProgress p = Progress();
          p.toc_entry = absl::StrCat("dump read; ", scheduler_->pending(), " of ",
                                     scheduler_->jobs_done() + scheduler_->pending(),
                                     " jobs left (data, indexes, constraints, ANALYZE)");
          options_.progress(p);
        }
      }
      stats_.parallel_jobs = scheduler_->jobs_done();
      stats_.max_concurrency = scheduler_->max_concurrency();
      if (scheduler_->last_data_done() > start) {
        stats_.data_seconds = absl::ToDoubleSeconds(scheduler_->last_data_done() - start);
      }
    }
    RETURN_IF_ERROR(ReleaseAutovacuum());
    stats_.seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (options_.progress) options_.progress(Progress());
    return stats_;
  }

 private:
  LoadProgress Progress() const {
    LoadProgress p;
    p.bytes = stats_.bytes;
    p.raw_bytes = in_->raw_bytes_read();
    p.statements = stats_.statements;
    p.rows = stats_.rows;
    p.toc_entry = toc_entry_;
    return p;
  }

  absl::Status SkipTo(int64_t offset) {
    std::vector<char> buf(kChunk);
    int64_t left = offset;
    while (left > 0) {
      ASSIGN_OR_RETURN(size_t n,
                       in_->Read(buf.data(), static_cast<size_t>(std::min<int64_t>(
                                                 left, static_cast<int64_t>(buf.size())))));
      if (n == 0) {
        return UnableTo(absl::StatusCode::kInvalidArgument, "load", options_.dump_name,
                        absl::StrCat("the dump ends before offset ", offset));
      }
      left -= static_cast<int64_t>(n);
    }
    return absl::OkStatus();
  }

  absl::Status Fail(int64_t line, const std::string& what, absl::StatusCode code) {
    return LoadError(code, options_.dump_name, line, toc_entry_, what);
  }

  // Consumes complete lines (SQL) or data (COPY) from pending_.
  absl::Status Process(bool at_end) {
    size_t pos = 0;
    const size_t n = pending_.size();
    while (pos < n) {
      if (in_copy_) {
        if (at_copy_line_start_) {
          size_t left = n - pos;
          // Is this line the terminator "\." ?
          if (left < 4 && !at_end && std::memcmp(pending_.data() + pos, "\\.\r\n", left) == 0) {
            break;  // wait for more bytes to decide
          }
          if (left >= 2 && pending_[pos] == '\\' && pending_[pos + 1] == '.' &&
              (left == 2 || pending_[pos + 2] == '\n' ||
               (pending_[pos + 2] == '\r' && left >= 4 && pending_[pos + 3] == '\n'))) {
            size_t term = left == 2 ? 2 : (pending_[pos + 2] == '\n' ? 3 : 4);
            ++line_;
            RETURN_IF_ERROR(FinishCopy());
            pos += term;
            continue;
          }
        }
        const char* start = pending_.data() + pos;
        const char* nl = static_cast<const char*>(std::memchr(start, '\n', n - pos));
        size_t len = nl != nullptr ? static_cast<size_t>(nl - start) + 1 : n - pos;
        copy_batch_.append(start, len);
        if (nl != nullptr) {
          ++line_;
          ++copy_rows_;
          if (copy_is_migrations_ && at_copy_line_start_) {
            absl::string_view row(start, len - 1);
            absl::string_view version = row.substr(0, row.find('\t'));
            if (SchemaVersionLess(stats_.schema_version, version)) {
              stats_.schema_version = std::string(version);
            }
          }
          at_copy_line_start_ = true;
        } else {
          at_copy_line_start_ = false;
        }
        pos += len;
        if (copy_remote_) {
          if (at_copy_line_start_ &&
              static_cast<int64_t>(copy_batch_.size()) >= options_.chunk_bytes) {
            RETURN_IF_ERROR(SubmitCopyChunk());
          }
        } else if (copy_batch_.size() >= kCopyBatch) {
          RETURN_IF_ERROR(FlushCopy());
        }
        continue;
      }
      const char* start = pending_.data() + pos;
      const char* nl = static_cast<const char*>(std::memchr(start, '\n', n - pos));
      if (nl == nullptr && !at_end) break;
      size_t len = nl != nullptr ? static_cast<size_t>(nl - start) : n - pos;
      ++line_;
      RETURN_IF_ERROR(HandleLine(absl::string_view(start, len)));
      pos += len + (nl != nullptr ? 1 : 0);
    }
    pending_.erase(0, pos);
    return absl::OkStatus();
  }

  absl::Status HandleLine(absl::string_view line) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (phase_ != Phase::kAll && !SectionLine(line)) return absl::OkStatus();
    if (!splitter_.in_statement() && absl::StartsWith(line, "-- ")) NoteComment(line.substr(3));
    std::vector<SqlItem> items;
    splitter_.FeedLine(line, line_, &items);
    for (SqlItem& item : items) {
      if (item.kind == SqlItem::Kind::kMetaCommand) {
        RETURN_IF_ERROR(MetaCommand(item));
      } else {
        RETURN_IF_ERROR(Statement(item));
      }
      if (in_copy_) {
        // Anything after "COPY ... FROM stdin;" on the same line is data;
        // pg_dump never writes that.
        break;
      }
    }
    return absl::OkStatus();
  }

  // Cluster dumps: moves between globals, skipped sections and the loaded
  // section. Returns true when `line` belongs to the loaded section.
  bool SectionLine(absl::string_view line) {
    const bool top_level = !splitter_.in_statement() && !skip_copy_;
    std::string marker;
    if (top_level && absl::StartsWith(line, "-- Database \"") && absl::EndsWith(line, "\" dump")) {
      marker = std::string(line.substr(13, line.size() - 13 - 6));
    } else if (top_level && pre11_ && absl::StartsWith(line, "\\connect ")) {
      marker = ParseConnectTarget(line);
      if (phase_ == Phase::kSection && marker == options_.cluster_section) marker.clear();
    }
    if (top_level && line == "-- Database creation") pre11_ = true;
    if (!marker.empty()) {
      if (marker == options_.cluster_section && phase_ != Phase::kDone) {
        phase_ = Phase::kSection;
        stats_.section_found = true;
        restrict_key_.clear();
        toc_entry_.clear();
        return pre11_;  // pre-11: the \connect line itself is a no-op to process
      }
      phase_ = phase_ == Phase::kSection ? Phase::kDone
                                         : (phase_ == Phase::kDone ? Phase::kDone : Phase::kSkip);
      return false;
    }
    if (top_level && line == "-- PostgreSQL database cluster dump complete") {
      if (phase_ == Phase::kSection) phase_ = Phase::kDone;
      return false;
    }
    switch (phase_) {
      case Phase::kSection:
      case Phase::kAll:
        return true;
      case Phase::kGlobals:
        GlobalsLine(line);
        return false;
      case Phase::kSkip:
      case Phase::kDone:
        if (!skip_copy_ && absl::StartsWith(line, "COPY ") &&
            absl::EndsWith(line, " FROM stdin;")) {
          skip_copy_ = true;
        } else if (skip_copy_ && line == "\\.") {
          skip_copy_ = false;
        }
        return false;
    }
    return false;
  }

  // The globals of a cluster dump: roles are created when missing; nothing
  // else there is applied (tablespaces, settings of existing roles).
  void GlobalsLine(absl::string_view line) {
    std::vector<SqlItem> items;
    splitter_.FeedLine(line, line_, &items);
    for (SqlItem& item : items) {
      if (item.kind != SqlItem::Kind::kStatement) continue;
      globals_status_.Update(GlobalStatement(item));
    }
  }

  absl::Status GlobalStatement(SqlItem& item) {
    const std::string upper = Head(item.text);
    absl::string_view rest = item.text;
    if (absl::StartsWith(upper, "CREATE ROLE ")) {
      rest.remove_prefix(12);
      std::string role = UnquoteIdentifier(rest.substr(0, rest.find_first_of(" ;")));
      ASSIGN_OR_RETURN(PgRows found,
                       conn_->Query("SELECT count(*) FROM pg_roles WHERE rolname = $1", {role}));
      if (found.Scalar() != "0") return absl::OkStatus();  // tolerate "already exists"
      absl::Status s = conn_->Exec(absl::StrCat("CREATE ROLE ", conn_->QuoteIdentifier(role)));
      if (!s.ok()) {
        return Fail(item.line, absl::StrCat("unable to create role '", role, "': ", s.message()),
                    absl::StatusCode::kFailedPrecondition);
      }
      created_.insert(role);
      stats_.created_roles.push_back(role);
      return absl::OkStatus();
    }
    if (absl::StartsWith(upper, "ALTER ROLE ")) {
      rest.remove_prefix(11);
      std::string role = UnquoteIdentifier(rest.substr(0, rest.find_first_of(" ;")));
      if (created_.count(role) == 0) return absl::OkStatus();  // never change existing roles
      std::string sql = item.text;
      if (!options_.with_role_passwords) {
        size_t at = Head(sql, sql.size()).find(" PASSWORD '");
        if (at != std::string::npos) {
          size_t end = sql.find('\'', at + 11);
          if (end != std::string::npos) {
            sql.erase(at, end + 1 - at);
            Rewrite("created roles without their passwords (use --with-role-passwords)");
          }
        }
      }
      absl::Status s = conn_->Exec(sql);
      if (!s.ok()) Warn(absl::StrCat("role '", role, "': ", s.message()));
      return absl::OkStatus();
    }
    if (absl::StartsWith(upper, "SET ")) return conn_->Exec(item.text);
    if (absl::StartsWith(upper, "CREATE TABLESPACE ")) {
      Warn("tablespaces of the cluster dump are not created");
    }
    return absl::OkStatus();
  }

  // "Name: X; Type: T; Schema: S; Owner: O" and "Data for Name: ...".
  void NoteComment(absl::string_view c) {
    bool data = absl::ConsumePrefix(&c, "Data for Name: ");
    if (!data && !absl::ConsumePrefix(&c, "Name: ")) return;
    size_t t = c.find("; Type: ");
    size_t s = c.find("; Schema: ");
    size_t o = c.find("; Owner: ");
    if (t == absl::string_view::npos || s == absl::string_view::npos || s < t) return;
    std::string name(c.substr(0, t));
    std::string type(c.substr(t + 8, s - t - 8));
    std::string schema(
        c.substr(s + 10, o == absl::string_view::npos ? absl::string_view::npos : o - s - 10));
    toc_entry_ = absl::StrCat(type, " ", schema == "-" ? name : absl::StrCat(schema, ".", name));
    toc_type_ = type;
  }

  absl::Status MetaCommand(const SqlItem& item) {
    absl::string_view cmd = item.text;
    absl::string_view arg;
    size_t space = cmd.find(' ');
    std::string word(cmd.substr(0, space));
    if (space != absl::string_view::npos) arg = absl::StripAsciiWhitespace(cmd.substr(space + 1));
    if (word == "\\restrict") {
      if (!ValidRestrictKey(arg))
        return Fail(item.line, "invalid restrict key", absl::StatusCode::kInvalidArgument);
      restrict_key_ = std::string(arg);
      return absl::OkStatus();
    }
    if (word == "\\unrestrict") {
      if (!ValidRestrictKey(arg))
        return Fail(item.line, "invalid restrict key", absl::StatusCode::kInvalidArgument);
      if (restrict_key_.empty()) {
        if (arg == "(null)") return absl::OkStatus();  // 15.18 tar restore.sql
        return Fail(item.line, "\\unrestrict: not currently in restricted mode",
                    absl::StatusCode::kInvalidArgument);
      }
      if (arg != restrict_key_ && arg != "(null)") {
        return Fail(item.line, "\\unrestrict: wrong key", absl::StatusCode::kInvalidArgument);
      }
      restrict_key_.clear();
      return absl::OkStatus();
    }
    if (!restrict_key_.empty() && restrict_key_ != "(null)") {
      return Fail(item.line,
                  absl::StrCat("backslash commands are restricted; only \\unrestrict is allowed (",
                               word, ")"),
                  absl::StatusCode::kInvalidArgument);
    }
    if (word == "\\connect" || word == "\\c") {
      std::string target = ParseConnectTarget(absl::StrCat("\\connect ", arg));
      if (target.empty()) {
        return Fail(item.line, absl::StrCat("unsupported \\connect form: ", item.text),
                    absl::StatusCode::kInvalidArgument);
      }
      if (source_db_.empty()) source_db_ = target;
      if (target != source_db_ && target != options_.target_db) {
        return Fail(item.line,
                    absl::StrCat("the dump connects to another database ('", target, "'); only '",
                                 source_db_, "' is loaded"),
                    absl::StatusCode::kInvalidArgument);
      }
      return absl::OkStatus();  // already connected to the target database
    }
    if (word == "\\encoding") {
      // pg_dump sets psql's connect-string encoding before a \connect; the
      // statements after it set client_encoding again. Nothing to do on a
      // single connection.
      return absl::OkStatus();
    }
    return Fail(item.line,
                absl::StrCat("psql meta-command not allowed in a dump: ", item.text.substr(0, 80)),
                absl::StatusCode::kInvalidArgument);
  }

  void Rewrite(const std::string& what) {
    for (const std::string& r : stats_.rewrites) {
      if (r == what) return;
    }
    stats_.rewrites.push_back(what);
  }

  void Warn(const std::string& what) {
    if (stats_.warnings.size() < 100) stats_.warnings.push_back(what);
  }

  // Replaces the database identifier after `marker` with the target's.
  void RenameDatabase(std::string* sql, const std::string& upper, const std::string& marker) {
    size_t begin, end;
    if (!FindDatabaseName(*sql, upper, marker, &begin, &end)) return;
    std::string name = UnquoteIdentifier(sql->substr(begin, end - begin));
    if (source_db_.empty()) source_db_ = name;
    if (name != source_db_) return;
    sql->replace(begin, end - begin, conn_->QuoteIdentifier(options_.target_db));
  }

  absl::Status Statement(SqlItem& item) {
    const std::string upper = Head(item.text);
    const int t = options_.target_major;
    if (absl::StartsWith(upper, "SET TRANSACTION_TIMEOUT ") && t > 0 && t <= 16) {
      Rewrite(absl::StrCat("removed SET transaction_timeout (target PostgreSQL ", t, ")"));
      return absl::OkStatus();
    }
    if (absl::StartsWith(upper, "SET DEFAULT_TABLE_ACCESS_METHOD ") && t > 0 && t <= 11) {
      Rewrite(absl::StrCat("removed SET default_table_access_method (target PostgreSQL ", t, ")"));
      return absl::OkStatus();
    }
    if (absl::StartsWith(upper, "SET IDLE_IN_TRANSACTION_SESSION_TIMEOUT ") && t > 0 && t < 10) {
      Rewrite("removed SET idle_in_transaction_session_timeout");
      return absl::OkStatus();
    }
    if (absl::StartsWith(upper, "CREATE DATABASE ")) {
      absl::string_view rest = absl::string_view(item.text).substr(16);
      std::string name = UnquoteIdentifier(rest.substr(0, rest.find_first_of(" ;")));
      if (source_db_.empty()) source_db_ = name;
      Rewrite(absl::StrCat("CREATE DATABASE ", name, " replaced by the staging database"));
      return absl::OkStatus();
    }
    if (absl::StartsWith(upper, "ALTER DATABASE ")) {
      RenameDatabase(&item.text, upper, "ALTER DATABASE ");
    } else if (absl::StartsWith(upper, "COMMENT ON DATABASE ")) {
      RenameDatabase(&item.text, upper, "COMMENT ON DATABASE ");
    } else if ((absl::StartsWith(upper, "GRANT ") || absl::StartsWith(upper, "REVOKE ")) &&
               upper.find(" ON DATABASE ") != std::string::npos) {
      RenameDatabase(&item.text, upper, " ON DATABASE ");
    } else if (absl::StartsWith(upper, "COMMENT ON EXTENSION ") && !options_.superuser) {
      Rewrite("skipped COMMENT ON EXTENSION (target role is not a superuser)");
      return absl::OkStatus();
    }
    ++stats_.statements;
    if (scheduler_ != nullptr) {
      ASSIGN_OR_RETURN(bool taken, Route(item, upper));
      if (taken) return absl::OkStatus();
    }
    if (absl::StartsWith(upper, "COPY ")) HoldAutovacuum(item);
    absl::Status s = conn_->Exec(item.text);
    if (s.ok()) {
      if (conn_->in_copy()) StartCopy(item);
      return absl::OkStatus();
    }
    if (s.code() == absl::StatusCode::kCancelled) {
      return LoadCancelled(options_.dump_name);
    }
    const PgError& e = conn_->last_error();
    const bool ownership =
        upper.find(" OWNER TO ") != std::string::npos || absl::StartsWith(upper, "GRANT ") ||
        absl::StartsWith(upper, "REVOKE ") || absl::StartsWith(upper, "ALTER DEFAULT PRIVILEGES ");
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
        stats_.missing_roles.push_back(role);
        Warn(absl::StrCat("role \"", role,
                          "\" does not exist on the target: its ownership and "
                          "privileges are skipped (objects stay owned by the restoring role)"));
      }
      return absl::OkStatus();
    }
    return Fail(item.line, std::string(s.message()), absl::StatusCode::kInvalidArgument);
  }

  // The parallel load: whether `item` was handed to the scheduler (else it
  // runs on the reader's connection, after everything before it when it
  // comes after the data started).
  absl::StatusOr<bool> Route(const SqlItem& item, const std::string& upper) {
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
          absl::EndsWith(Head(item.text, item.text.size()), " FROM STDIN;")) {
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
        if (!target.referenced.empty() && target.only && !target.not_valid) {
          // Added NOT VALID now (catalog only), validated with the others.
          LoadJob validate;
          validate.tables = {target.tables[0]};
          validate.lock = LoadJob::Lock::kValidate;
          if (target.referenced != target.tables[0]) validate.referenced = {target.referenced};
          validate.sql = absl::StrCat("ALTER TABLE ONLY ", target.tables[0],
                                      " VALIDATE CONSTRAINT ", target.constraint, ";");
          validate.line = item.line;
          validate.toc_entry = toc_entry_;
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
  absl::Status SubmitAnalyze() {
    if (!options_.analyze || analyze_submitted_) return absl::OkStatus();
    analyze_submitted_ = true;
    for (const auto& [table, rows] : stats_.table_rows) {
      LoadJob job;
      job.tables = {table};
      job.lock = LoadJob::Lock::kValidate;
      job.sql = absl::StrCat("ANALYZE ", table);
      job.toc_entry = absl::StrCat("ANALYZE ", table);
      RETURN_IF_ERROR(scheduler_->Submit(std::move(job)));
      stats_.analyzed.push_back(table);
    }
    return absl::OkStatus();
  }

  // Submits the validations of the foreign keys added NOT VALID so far.
  absl::Status SubmitValidations() {
    for (LoadJob& job : validations_) RETURN_IF_ERROR(scheduler_->Submit(std::move(job)));
    validations_.clear();
    return absl::OkStatus();
  }

  absl::Status SubmitCopyChunk() {
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
    copy_chunk_line_ = line_ + 1;
    return scheduler_->Submit(std::move(job));
  }

  // Room in copy_batch_ for a whole chunk (a line may overshoot the size a
  // little), in the memory of a finished chunk when there is one.
  void EnsureChunkRoom() {
    const size_t room = static_cast<size_t>(options_.chunk_bytes) + kChunk;
    if (copy_batch_.capacity() < room) copy_batch_ = scheduler_->TakeBuffer(room);
  }

  // options.hold_autovacuum: before the first rows of the COPY `item`'s
  // table. Best effort (a table the role does not own stays as it is).
  void HoldAutovacuum(const SqlItem& item) {
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
  absl::Status ReleaseAutovacuum() {
    for (const std::string& table : autovacuum_held_) {
      absl::Status s =
          conn_->Exec(absl::StrCat("ALTER TABLE ", table, " RESET (autovacuum_enabled)"));
      if (!s.ok()) {
        return Fail(
            line_, absl::StrCat("unable to reset autovacuum_enabled of ", table, ": ", s.message()),
            absl::StatusCode::kInternal);
      }
    }
    autovacuum_held_.clear();
    return absl::OkStatus();
  }

  void StartCopy(const SqlItem& item) {
    in_copy_ = true;
    at_copy_line_start_ = true;
    copy_rows_ = 0;
    copy_line_ = item.line;
    copy_table_ = CopyTarget(item.text);
    copy_is_migrations_ =
        absl::EndsWith(copy_table_, ".schema_migrations") || copy_table_ == "schema_migrations";
  }

  absl::Status FlushCopy() {
    if (copy_batch_.empty()) return absl::OkStatus();
    absl::Status s = conn_->PutCopyData(copy_batch_);
    copy_batch_.clear();
    return s;
  }

  absl::Status FinishCopy() {
    in_copy_ = false;
    if (copy_remote_) {
      copy_remote_ = false;
      RETURN_IF_ERROR(SubmitCopyChunk());  // its errors say where already
    } else {
      RETURN_IF_ERROR(EndLocalCopy());
    }
    stats_.rows += copy_rows_;
    stats_.table_rows[copy_table_] += copy_rows_;
    return absl::OkStatus();
  }

  // Ends a COPY streamed on the reader's connection.
  absl::Status EndLocalCopy() {
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

  enum class Phase { kAll, kGlobals, kSkip, kSection, kDone };

  ByteStream* in_;
  PgConnection* conn_;
  const LoadOptions& options_;
  Phase phase_ = Phase::kAll;
  bool pre11_ = false;
  bool skip_copy_ = false;
  std::set<std::string> created_;
  absl::Status globals_status_;
  bool copy_is_migrations_ = false;
  std::string source_db_;
  LoadStats stats_;
  SqlSplitter splitter_;
  std::string pending_;
  int64_t line_ = 0;
  int64_t last_progress_ = 0;
  std::string toc_entry_;
  std::string restrict_key_;
  bool in_copy_ = false;
  bool at_copy_line_start_ = true;
  int64_t copy_rows_ = 0;
  int64_t copy_line_ = 0;
  std::string copy_table_;
  std::string copy_batch_;
  std::set<std::string> missing_;
  // The parallel load (null: serial), and the read-ahead of the input.
  std::unique_ptr<PrefetchStream> prefetch_;
  std::unique_ptr<LoadScheduler> scheduler_;
  std::string toc_type_;
  bool parallel_phase_ = false;
  bool copy_remote_ = false;
  std::string copy_sql_;
  int64_t copy_chunk_line_ = 0;
  std::map<std::string, std::string> session_;
  std::vector<LoadJob> validations_;
  bool analyze_submitted_ = false;
  std::set<std::string> autovacuum_checked_;
  std::vector<std::string> autovacuum_held_;
};

}  // namespace

absl::StatusOr<LoadStats> LoadPlainSql(ByteStream* in, PgConnection* conn,
                                       const LoadOptions& options) {
  Loader loader(in, conn, options);
  auto stats = loader.Run();
  if (!stats.ok() && conn->in_copy()) conn->EndCopy("load aborted").IgnoreError();
  return stats;
}

}  // namespace mastodon_restore
