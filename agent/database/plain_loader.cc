#include "agent/database/plain_loader.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"
#include "agent/database/rewrite_rules.h"
#include "agent/database/section_filter.h"
#include "agent/database/sql_executor.h"
#include "agent/database/sql_splitter.h"
#include "agent/dump/plain_scanner.h"
#include "agent/dump/statement_classifier.h"

namespace mastodon_restore {
namespace {

constexpr size_t kChunk = 1 << 20;

// The framing of a plain SQL dump: reads the stream, cuts it into lines,
// COPY data and statements, keeps a cluster dump's other databases out
// (SectionFilter) and applies its globals, checks the meta-commands, applies
// the rewrite rules, and hands the rest to the executor.
class Loader {
 public:
  Loader(ByteStream* in, PgConnection* conn, const LoadOptions& options,
         ArchiveScript* archive = nullptr)
      : in_(in),
        conn_(conn),
        options_(options),
        archive_(archive),
        executor_(conn, options, &stats_) {
    rewrite_.target_major = options.target_major;
    rewrite_.superuser = options.superuser;
    rewrite_.source_db = options.source_db;
    rewrite_.quoted_target_db = conn->QuoteIdentifier(options.target_db);
    if (!options.cluster_section.empty()) {
      filter_ = std::make_unique<SectionFilter>(options.cluster_section);
      rewrite_.source_db = options.cluster_section;
    }
    classify_.allow_privileged_roles = options.allow_privileged_roles;
    classify_.extra_extensions = options.extra_extensions;
  }

  absl::StatusOr<LoadStats> Run() {
    const absl::Time start = absl::Now();
    RETURN_IF_ERROR(executor_.Start());
    if (executor_.parallel() && archive_ != nullptr && archive_->can_defer_data()) {
      // The workers read the tables' data; the script left is small.
      archive_->DeferData();
      deferring_ = true;
    } else if (executor_.parallel()) {
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
      if (n == 0 && deferring_) {
        std::optional<ArchiveScript::DeferredData> d = archive_->TakeDeferred();
        if (d.has_value()) {
          RETURN_IF_ERROR(Deferred(std::move(*d)));
          RETURN_IF_ERROR(executor_.status());
          continue;
        }
      }
      if (n == 0) break;
      consumed += static_cast<int64_t>(n);
      stats_.bytes += static_cast<int64_t>(n);
      pending_.append(buf.data(), n);
      RETURN_IF_ERROR(Process(/*at_end=*/false));
      RETURN_IF_ERROR(executor_.status());
      if (filter_ != nullptr && !filter_->limit_error().empty()) {
        return executor_.Fail(line_, filter_->limit_error(), absl::StatusCode::kInvalidArgument);
      }
      if (filter_ != nullptr && filter_->ended() && !executor_.in_copy()) {
        break;  // the section is loaded
      }
      if (options_.progress && stats_.bytes - last_progress_ >= options_.progress_every_bytes) {
        last_progress_ = stats_.bytes;
        options_.progress(Progress());
      }
    }
    RETURN_IF_ERROR(Process(/*at_end=*/true));
    RETURN_IF_ERROR(globals_status_);
    if (filter_ != nullptr && !stats_.section_found) {
      return UnableTo(
          absl::StatusCode::kInvalidArgument, "load", options_.dump_name,
          absl::StrCat("the cluster dump holds no database '", options_.cluster_section, "'"));
    }
    if (executor_.in_copy()) {
      return executor_.Fail(executor_.copy_line(),
                            absl::StrCat("the dump ends inside the COPY data of ",
                                         executor_.copy_table(), " (truncated?)"),
                            absl::StatusCode::kInvalidArgument);
    }
    std::string rest = splitter_.TakeUnfinished();
    if (!rest.empty() && !absl::StartsWith(rest, "/*")) {
      return executor_.Fail(line_, "the dump ends inside a statement (truncated?)",
                            absl::StatusCode::kInvalidArgument);
    }
    RETURN_IF_ERROR(executor_.Finish(start, Progress(), line_));
    stats_.seconds = absl::ToDoubleSeconds(absl::Now() - start);
    if (options_.progress) options_.progress(Progress());
    return stats_;
  }

 private:
  LoadProgress Progress() const {
    LoadProgress p;
    p.bytes = stats_.bytes + executor_.streamed_bytes();
    p.raw_bytes = in_->raw_bytes_read();
    p.statements = stats_.statements;
    p.rows = stats_.rows;
    p.toc_entry = executor_.toc_entry();
    return p;
  }

  // A table's data the archive left to the load: its COPY statement goes
  // the usual way, offered the rows' stream; when the executor does not
  // take it (the COPY runs on this connection), the rows follow as the
  // script would have had them.
  absl::Status Deferred(ArchiveScript::DeferredData d) {
    RETURN_IF_ERROR(Process(/*at_end=*/false));
    SqlExecutor::CopySource source;
    source.open = d.open;
    source.size_hint = d.size_hint;
    executor_.OfferCopySource(std::move(source));
    stats_.bytes += static_cast<int64_t>(d.copy_stmt.size());
    pending_.append(d.copy_stmt);
    absl::Status s = Process(/*at_end=*/false);
    const bool taken = executor_.TookCopySource();
    RETURN_IF_ERROR(s);
    if (taken) return absl::OkStatus();
    ASSIGN_OR_RETURN(std::unique_ptr<ByteStream> rows, d.open());
    std::vector<char> buf(kChunk);
    while (true) {
      if (options_.cancel != nullptr && options_.cancel->cancelled()) {
        return LoadCancelled(options_.dump_name);
      }
      ASSIGN_OR_RETURN(size_t n, rows->Read(buf.data(), buf.size()));
      if (n == 0) break;
      stats_.bytes += static_cast<int64_t>(n);
      pending_.append(buf.data(), n);
      RETURN_IF_ERROR(Process(/*at_end=*/false));
      RETURN_IF_ERROR(executor_.status());
    }
    return absl::OkStatus();
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
      // The section filter's offsets count from the start of the stream.
      if (filter_ != nullptr) filter_->Feed(absl::string_view(buf.data(), n));
      left -= static_cast<int64_t>(n);
    }
    offset_ = offset;
    return absl::OkStatus();
  }

  // Feeds the section filter pending_ up to `end` (what the loader consumed
  // or is about to).
  void FeedFilter(size_t end) {
    if (filter_ == nullptr || end <= fed_) return;
    filter_->Feed(absl::string_view(pending_.data() + fed_, end - fed_));
    fed_ = end;
  }

  // Consumes complete lines (SQL) or data (COPY) from pending_.
  absl::Status Process(bool at_end) {
    size_t pos = 0;
    const size_t n = pending_.size();
    const size_t newline_free = newline_free_;
    newline_free_ = 0;
    while (pos < n) {
      if (executor_.in_copy()) {
        if (executor_.at_copy_row_start()) {
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
            RETURN_IF_ERROR(executor_.EndCopy());
            pos += term;
            continue;
          }
        }
        const char* start = pending_.data() + pos;
        const char* nl = static_cast<const char*>(std::memchr(start, '\n', n - pos));
        size_t len = nl != nullptr ? static_cast<size_t>(nl - start) + 1 : n - pos;
        if (executor_.at_copy_row_start()) copy_row_bytes_ = 0;
        copy_row_bytes_ += static_cast<int64_t>(len);
        if (copy_row_bytes_ > options_.bounds.max_copy_row_bytes) {
          return OverLimit(line_ + 1, absl::StrCat("a COPY row of ", executor_.copy_table()),
                           options_.bounds.max_copy_row_bytes);
        }
        if (nl != nullptr) ++line_;
        RETURN_IF_ERROR(executor_.CopyData(absl::string_view(start, len), nl != nullptr, line_));
        pos += len;
        continue;
      }
      const char* start = pending_.data() + pos;
      const size_t skip = pos == 0 ? std::min(newline_free, n) : 0;  // searched before
      const char* nl = static_cast<const char*>(std::memchr(start + skip, '\n', n - pos - skip));
      size_t len = nl != nullptr ? static_cast<size_t>(nl - start) : n - pos;
      if (static_cast<int64_t>(len) > options_.bounds.max_line_bytes) {
        return OverLimit(line_ + 1, "a line", options_.bounds.max_line_bytes);
      }
      if (nl == nullptr && !at_end) {
        newline_free_ = n - pos;
        break;
      }
      ++line_;
      const int64_t offset = offset_ + static_cast<int64_t>(pos);
      FeedFilter(pos + len + (nl != nullptr ? 1 : 0));
      RETURN_IF_ERROR(HandleLine(absl::string_view(start, len), offset, nl == nullptr));
      pos += len + (nl != nullptr ? 1 : 0);
    }
    FeedFilter(pos);
    pending_.erase(0, pos);
    fed_ = 0;
    offset_ += static_cast<int64_t>(pos);
    return absl::OkStatus();
  }

  // A line of SQL (not COPY data) at stream `offset`; `last`: the stream's
  // final line, without a newline.
  absl::Status HandleLine(absl::string_view line, int64_t offset, bool last) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (filter_ != nullptr) {
      switch (filter_->LinePart(offset, last)) {
        case DumpPart::kGlobals:
          return GlobalsLine(line);
        case DumpPart::kOther:
          return absl::OkStatus();
        case DumpPart::kSection:
          if (!stats_.section_found) {
            // The section's first line (its marker, or pre-11 its \connect).
            stats_.section_found = true;
            restrict_key_.clear();
            executor_.SetTocEntry("", "");
          }
          break;
      }
    }
    if (!splitter_.in_statement() && absl::StartsWith(line, "-- ")) {
      std::string entry, type;
      if (ParseTocComment(line.substr(3), &entry, &type)) {
        executor_.SetTocEntry(std::move(entry), std::move(type));
      }
    }
    std::vector<SqlItem> items;
    splitter_.FeedLine(line, line_, &items);
    RETURN_IF_ERROR(CheckStatementSize(items));
    for (SqlItem& item : items) {
      if (item.kind == SqlItem::Kind::kMetaCommand) {
        RETURN_IF_ERROR(MetaCommand(item));
      } else {
        RETURN_IF_ERROR(Statement(item));
      }
      if (executor_.in_copy()) {
        // Anything after "COPY ... FROM stdin;" on the same line is data;
        // pg_dump never writes that.
        break;
      }
    }
    return absl::OkStatus();
  }

  // The framing's bounds (LoadOptions::bounds).
  absl::Status OverLimit(int64_t line, const std::string& what, int64_t limit) const {
    return executor_.Fail(line,
                          absl::StrCat(what, " longer than the limit of ", limit,
                                       " bytes (a hostile or corrupt dump?)"),
                          absl::StatusCode::kInvalidArgument);
  }
  absl::Status CheckStatementSize(const std::vector<SqlItem>& items) const {
    const int64_t limit = options_.bounds.max_statement_bytes;
    for (const SqlItem& item : items) {
      if (static_cast<int64_t>(item.text.size()) > limit) {
        return OverLimit(item.line, "a statement", limit);
      }
    }
    if (static_cast<int64_t>(splitter_.buffered_bytes()) > limit) {
      return OverLimit(splitter_.start_line(), "a statement (unterminated?)", limit);
    }
    return absl::OkStatus();
  }

  // The globals of a cluster dump: roles are created when missing; nothing
  // else there is applied (tablespaces, settings of existing roles). A
  // statement the classifier refuses or a bound exceeded fails the load at
  // once; other errors are reported at the end.
  absl::Status GlobalsLine(absl::string_view line) {
    std::vector<SqlItem> items;
    splitter_.FeedLine(line, line_, &items);
    RETURN_IF_ERROR(CheckStatementSize(items));
    for (SqlItem& item : items) {
      if (item.kind != SqlItem::Kind::kStatement) continue;
      // Role attributes matter only for the roles the load creates (the
      // others are never changed): checked where the ALTER ROLE is applied.
      classify_.allow_privileged_roles = true;
      StatementClass c = Classify(item.text, StatementContext::kGlobals);
      classify_.allow_privileged_roles = options_.allow_privileged_roles;
      if (!c.allowed) return Refused(item, c);
      if (!c.privileged_attributes.empty() && !options_.allow_privileged_roles &&
          (created_.count(c.role) > 0 ||
           created_.count(ClassifyGlobalStatement(item.text).role) > 0)) {
        c.refusal =
            absl::StrCat("role attribute ", c.privileged_attributes.front(), " for the new role '",
                         c.role, "' (allowed only with the privileged-roles option)");
        return Refused(item, c);
      }
      if (ClassifyGlobalStatement(item.text).kind == GlobalStatement::Kind::kGrantRole) {
        RETURN_IF_ERROR(GrantRole(item));
        continue;
      }
      globals_status_.Update(GlobalsStatement(item, c));
    }
    return absl::OkStatus();
  }

  // A role membership of the globals: applied (rewritten for the target's
  // version) when the load created every role it names, as the roles'
  // attributes are; memberships of existing roles are never changed. A
  // membership the target cannot hold faithfully fails the load.
  absl::Status GrantRole(const SqlItem& item) {
    std::vector<std::string> granted, members;
    if (!ParseRoleGrant(item.text, &granted, &members)) return absl::OkStatus();
    for (const std::vector<std::string>* roles : {&granted, &members}) {
      for (const std::string& role : *roles) {
        if (created_.count(role) > 0) continue;
        executor_.Warn(absl::StrCat(
            "role membership not applied (role '", role,
            "' existed before the restore and is never changed): ", item.text.substr(0, 200)));
        return absl::OkStatus();
      }
    }
    PgConnection* roles = options_.privileged != nullptr ? options_.privileged : conn_;
    RewriteContext context = rewrite_;
    if (context.target_major > 0 && context.target_major <= 15) {
      // Before 16 a membership inherits as its member does: as the dump's
      // role statements, applied above, made it.
      std::set<std::string> inherit;
      for (const std::string& member : members) {
        ASSIGN_OR_RETURN(PgRows row, roles->Query("SELECT rolinherit::text FROM "
                                                  "pg_catalog.pg_roles WHERE rolname = $1",
                                                  {member}));
        inherit.insert(row.rows.size() == 1 ? row.rows[0][0].value_or("") : "");
      }
      if (inherit.size() == 1 && !inherit.begin()->empty()) {
        context.grant_members_inherit = *inherit.begin() == "true";
      }
    }
    std::string sql = item.text;
    RewriteResult r = RewriteStatement(context, &sql);
    if (r.action == RewriteResult::Action::kRefuse) {
      return executor_.Fail(item.line, absl::StrCat("statement refused: ", r.note),
                            absl::StatusCode::kFailedPrecondition);
    }
    if (!r.note.empty()) executor_.NoteRewrite(r.note);
    if (r.action == RewriteResult::Action::kSkip) return absl::OkStatus();
    absl::Status s = roles->Exec(sql);
    if (!s.ok()) executor_.Warn(absl::StrCat("role membership: ", s.message()));
    return absl::OkStatus();
  }

  absl::Status GlobalsStatement(const SqlItem& item, const StatementClass& c) {
    const GlobalStatement g = ClassifyGlobalStatement(item.text);
    // Roles are created by the superuser connection when the load's role
    // may not (LoadOptions::privileged).
    PgConnection* roles = options_.privileged != nullptr ? options_.privileged : conn_;
    switch (g.kind) {
      case GlobalStatement::Kind::kCreateRole: {
        ASSIGN_OR_RETURN(
            PgRows found,
            roles->Query("SELECT count(*) FROM pg_roles WHERE rolname = $1", {g.role}));
        if (found.Scalar() != "0") return absl::OkStatus();  // tolerate "already exists"
        absl::Status s = roles->Exec(absl::StrCat("CREATE ROLE ", roles->QuoteIdentifier(g.role)));
        if (!s.ok()) {
          return executor_.Fail(item.line,
                                absl::StrCat("unable to create role '", g.role, "': ", s.message()),
                                absl::StatusCode::kFailedPrecondition);
        }
        created_.insert(g.role);
        stats_.created_roles.push_back(g.role);
        if (options_.roles_created != nullptr) options_.roles_created->push_back(g.role);
        return absl::OkStatus();
      }
      case GlobalStatement::Kind::kAlterRole: {
        if (created_.count(g.role) == 0) return absl::OkStatus();  // never change existing roles
        std::string sql = item.text;
        if (!options_.with_role_passwords && StripPasswordClauses(c, &sql)) {
          executor_.NoteRewrite(
              "created roles without their passwords (use --with-role-passwords)");
        }
        absl::Status s = roles->Exec(sql);
        if (!s.ok()) executor_.Warn(absl::StrCat("role '", g.role, "': ", s.message()));
        return absl::OkStatus();
      }
      case GlobalStatement::Kind::kSet:
        return conn_->Exec(item.text);
      case GlobalStatement::Kind::kTablespace:
        executor_.Warn("tablespaces of the cluster dump are not created");
        return absl::OkStatus();
      case GlobalStatement::Kind::kGrantRole:  // GrantRole()
      case GlobalStatement::Kind::kIgnore:
        return absl::OkStatus();
    }
    return absl::OkStatus();
  }

  StatementClass Classify(absl::string_view sql, StatementContext context) {
    classify_.context = context;
    StatementClass c = ClassifyStatement(sql, classify_);
    // The tokenizer follows the dump's string syntax.
    if (c.allowed && c.kind == "SET standard_conforming_strings") {
      const std::string head = StatementHead(sql, sql.size());
      classify_.standard_conforming_strings =
          head.find("OFF") == std::string::npos && head.find("FALSE") == std::string::npos;
    }
    return c;
  }

  // The load's error for a statement the classifier refused.
  absl::Status Refused(const SqlItem& item, const StatementClass& c) {
    return executor_.Fail(item.line,
                          absl::StrCat("statement refused: ", c.refusal, " (", c.kind,
                                       "); a dump may only hold what pg_dump writes"),
                          absl::StatusCode::kInvalidArgument);
  }

  absl::Status MetaCommand(const SqlItem& item) {
    absl::string_view cmd = item.text;
    absl::string_view arg;
    size_t space = cmd.find(' ');
    std::string word(cmd.substr(0, space));
    if (space != absl::string_view::npos) arg = absl::StripAsciiWhitespace(cmd.substr(space + 1));
    auto fail = [&](const std::string& what) {
      return executor_.Fail(item.line, what, absl::StatusCode::kInvalidArgument);
    };
    if (word == "\\restrict") {
      if (!ValidRestrictKey(arg)) return fail("invalid restrict key");
      restrict_key_ = std::string(arg);
      return absl::OkStatus();
    }
    if (word == "\\unrestrict") {
      if (!ValidRestrictKey(arg)) return fail("invalid restrict key");
      if (restrict_key_.empty()) {
        if (arg == "(null)") return absl::OkStatus();  // 15.18 tar restore.sql
        return fail("\\unrestrict: not currently in restricted mode");
      }
      if (arg != restrict_key_ && arg != "(null)") return fail("\\unrestrict: wrong key");
      restrict_key_.clear();
      return absl::OkStatus();
    }
    if (!restrict_key_.empty() && restrict_key_ != "(null)") {
      return fail(absl::StrCat("backslash commands are restricted; only \\unrestrict is allowed (",
                               word, ")"));
    }
    if (word == "\\connect" || word == "\\c") {
      std::string target = ParseConnectTarget(absl::StrCat("\\connect ", arg));
      if (target.empty()) return fail(absl::StrCat("unsupported \\connect form: ", item.text));
      std::string& source_db = rewrite_.source_db;
      if (source_db.empty()) source_db = target;
      if (target != source_db && target != options_.target_db) {
        return fail(absl::StrCat("the dump connects to another database ('", target, "'); only '",
                                 source_db, "' is loaded"));
      }
      return absl::OkStatus();  // already connected to the target database
    }
    if (word == "\\encoding") {
      // pg_dump sets psql's connect-string encoding before a \connect; the
      // statements after it set client_encoding again. Nothing to do on a
      // single connection.
      return absl::OkStatus();
    }
    return fail(absl::StrCat("psql meta-command not allowed in a dump: ", item.text.substr(0, 80)));
  }

  absl::Status Statement(SqlItem& item) {
    const StatementClass c = Classify(item.text, StatementContext::kDatabase);
    if (!c.allowed) return Refused(item, c);
    if (!c.database.empty()) {
      // Statements on databases: only on the one restored (rewritten to the
      // target below); the first one names it when nothing did before.
      std::string& source_db = rewrite_.source_db;
      if (!source_db.empty() && c.database != source_db && c.database != options_.target_db) {
        return executor_.Fail(item.line,
                              absl::StrCat("statement refused: ", c.kind, " on another database ('",
                                           c.database, "'); only '", source_db, "' is restored"),
                              absl::StatusCode::kInvalidArgument);
      }
      if (c.kind == "ALTER ROLE IN DATABASE" || c.kind == "ALTER DATABASE SET") {
        // Settings of the restored database apply to every session in it,
        // the agent's superuser ones included (a search_path putting a
        // schema of the dump before pg_catalog would run the dump's
        // functions as superuser): not taken from a dump, but reported.
        executor_.NoteRewrite(
            "skipped the dump's database and role settings (ALTER DATABASE ... "
            "SET, ALTER ROLE ... IN DATABASE); see the warnings");
        executor_.Warn(absl::StrCat("not applied: ", item.text.substr(0, 200)));
        return absl::OkStatus();
      }
      if (c.kind == "DROP DATABASE") {
        // pg_dump --clean --create drops its own database before creating
        // it: never run, and only when it names the known one.
        if (source_db.empty() || c.database != source_db) {
          return executor_.Fail(item.line,
                                absl::StrCat("statement refused: DROP DATABASE ", c.database,
                                             " (not the database the dump creates)"),
                                absl::StatusCode::kInvalidArgument);
        }
        executor_.NoteRewrite(absl::StrCat("DROP DATABASE ", c.database,
                                           " skipped (the staging database replaces it)"));
        return absl::OkStatus();
      }
    }
    RewriteResult r = RewriteStatement(rewrite_, &item.text);
    if (r.action == RewriteResult::Action::kRefuse) {
      return executor_.Fail(item.line, absl::StrCat("statement refused: ", r.note),
                            absl::StatusCode::kFailedPrecondition);
    }
    if (!r.source_db.empty()) rewrite_.source_db = r.source_db;
    if (!r.note.empty()) executor_.NoteRewrite(r.note);
    if (r.action == RewriteResult::Action::kSkip) return absl::OkStatus();
    return executor_.Run(item);
  }

  ByteStream* in_;
  PgConnection* conn_;
  const LoadOptions& options_;
  // The archive `in_` renders, when it is one (null for plain SQL), and
  // whether its tables' data goes to the workers apart.
  ArchiveScript* archive_;
  bool deferring_ = false;
  LoadStats stats_;
  RewriteContext rewrite_;
  ClassifyOptions classify_;
  // Cluster dumps: the section loaded (null: the whole stream is one
  // database's dump), the roles created from the globals.
  std::unique_ptr<SectionFilter> filter_;
  std::set<std::string> created_;
  absl::Status globals_status_;
  SqlSplitter splitter_;
  // Read, not yet consumed; its first byte is at stream offset offset_, and
  // the filter has seen its first fed_ bytes.
  std::string pending_;
  int64_t offset_ = 0;
  size_t fed_ = 0;
  // pending_'s first bytes searched for a newline in vain (a long line).
  size_t newline_free_ = 0;
  int64_t line_ = 0;
  int64_t copy_row_bytes_ = 0;  // of the COPY row being read
  int64_t last_progress_ = 0;
  std::string restrict_key_;
  // The read-ahead of the input (parallel load), then the executor (its
  // workers stop before the read-ahead does).
  std::unique_ptr<PrefetchStream> prefetch_;
  SqlExecutor executor_;
};

}  // namespace

absl::StatusOr<LoadStats> LoadPlainSql(ByteStream* in, PgConnection* conn,
                                       const LoadOptions& options) {
  Loader loader(in, conn, options);
  auto stats = loader.Run();
  if (!stats.ok() && conn->in_copy()) conn->EndCopy("load aborted").IgnoreError();
  return stats;
}

absl::StatusOr<LoadStats> LoadArchiveScript(ArchiveScript* script, PgConnection* conn,
                                            const LoadOptions& options) {
  // PostgreSQL 18 imports pg_dump 18's planner statistics; older targets
  // would only skip them (rewrite_rules.h).
  if (options.target_major >= 18) script->KeepStatistics();
  Loader loader(script, conn, options, script);
  auto stats = loader.Run();
  if (!stats.ok() && conn->in_copy()) conn->EndCopy("load aborted").IgnoreError();
  return stats;
}

}  // namespace mastodon_restore
