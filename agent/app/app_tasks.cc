#include "agent/app/app_tasks.h"

#include <algorithm>
#include <deque>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/app/app_output.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"
#include "agent/database/app_queries.h"
#include "agent/database/pg_connection.h"

namespace mastodon_restore {
namespace v1 = ::mastodon::restore::v1;
namespace {

// Lines of output kept for an error message.
constexpr size_t kTailLines = 8;

// Runs `spec` under a pseudo-terminal; every line goes to `on_line` (ANSI
// removed, blank lines dropped). Returns the result and the last lines.
struct Ran {
  CommandResult result;
  std::deque<std::string> tail;
};

absl::StatusOr<Ran> RunAppCommand(CommandSpec spec, const TaskContext& ctx,
                                  const std::function<void(const std::string&)>& on_line) {
  Ran ran;
  spec.use_pty = true;
  spec.timeout = ctx.timeout;
  spec.max_capture_bytes = 64 << 10;
  spec.on_line = [&](absl::string_view raw, bool) {
    std::string line = StripAnsi(raw);
    absl::StripTrailingAsciiWhitespace(&line);
    if (absl::StripLeadingAsciiWhitespace(line).empty()) return;
    if (!ParseProgressLine(line).has_value()) {
      ran.tail.push_back(line);
      if (ran.tail.size() > kTailLines) ran.tail.pop_front();
    }
    on_line(line);
  };
  ASSIGN_OR_RETURN(ran.result, ctx.runner->Run(spec, ctx.cancel));
  return ran;
}

// The error for a command that did not succeed.
absl::Status CommandFailed(const std::string& what, const Ran& ran) {
  if (ran.result.cancelled) {
    return absl::CancelledError(absl::StrCat(what, " was cancelled"));
  }
  std::string tail = absl::StrJoin(ran.tail, " | ");
  return absl::UnknownError(absl::StrCat("unable to run '", what, "': ", ran.result.Describe(),
                                         tail.empty() ? "" : absl::StrCat("; output: ", tail)));
}

// Reports progress at most every 250 ms (and always the last count).
class ProgressThrottle {
 public:
  ProgressThrottle(const TaskContext& ctx, std::string unit) : ctx_(ctx), unit_(std::move(unit)) {}
  void Report(int64_t done, int64_t total, const std::string& message) {
    absl::Time now = absl::Now();
    if (done == last_done_) return;
    if (now - last_ < absl::Milliseconds(250) && done != total) return;
    last_ = now;
    last_done_ = done;
    ctx_.reporter->StepProgress(ctx_.step, done, total > 0 ? total : 0, unit_, message);
  }

 private:
  const TaskContext& ctx_;
  const std::string unit_;
  absl::Time last_ = absl::InfinitePast();
  int64_t last_done_ = -1;
};

std::string Concurrency(int32_t requested, int default_concurrency) {
  return absl::StrCat(requested > 0 ? requested : default_concurrency);
}

// A session on `db` from `connector`, or from libpq when it is nullptr.
absl::StatusOr<std::unique_ptr<PgSession>> ConnectApp(const AppDatabase& db,
                                                      PgConnector* connector) {
  LibpqConnector libpq;
  return (connector != nullptr ? connector : &libpq)->Connect(db.conninfo, db.database);
}

std::vector<std::string> Missing(const std::vector<std::string>& expected,
                                 const std::set<std::string>& applied) {
  std::vector<std::string> missing;
  for (const std::string& v : expected) {
    if (applied.count(v) == 0) missing.push_back(v);
  }
  return missing;
}

}  // namespace

int DefaultConcurrency(int cpus) { return cpus < 2 ? 1 : cpus < 16 ? 5 : 8; }

absl::StatusOr<std::vector<std::vector<std::string>>> CleanupCommands(const v1::CleanupOptions& o,
                                                                      int default_concurrency) {
  if (o.preview_cards_days() < 0 || o.media_days() < 0 || o.concurrency() < 0) {
    return absl::InvalidArgumentError("cleanup: days and concurrency must not be negative");
  }
  const std::string c = Concurrency(o.concurrency(), default_concurrency);
  std::vector<std::vector<std::string>> commands;
  // 0 means the default of one day: right after a restore everything
  // cached is stale.
  commands.push_back({"preview_cards", "remove", "--days",
                      absl::StrCat(o.preview_cards_days() > 0 ? o.preview_cards_days() : 1),
                      "--concurrency", c});
  std::vector<std::string> media = {
      "media",         "remove", "--days", absl::StrCat(o.media_days() > 0 ? o.media_days() : 1),
      "--concurrency", c};
  if (o.prune_profiles()) media.push_back("--prune-profiles");
  if (o.remove_headers()) media.push_back("--remove-headers");
  if (o.include_follows()) media.push_back("--include-follows");
  commands.push_back(media);
  return commands;
}

absl::StatusOr<std::vector<std::vector<std::string>>> MediaRefreshCommands(
    const v1::MediaRefreshOptions& o, int default_concurrency) {
  if (o.days() < 0 || o.concurrency() < 0) {
    return absl::InvalidArgumentError("media refresh: days and concurrency must not be negative");
  }
  if (o.days() == 0 && o.account().empty() && o.domain().empty() && o.status_id().empty()) {
    return absl::InvalidArgumentError(
        "media refresh needs a source: --days, --account, --domain or --status");
  }
  if (!o.status_id().empty() &&
      o.status_id().find_first_not_of("0123456789") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid status id '", o.status_id(), "': expected digits"));
  }
  for (const std::string* v : {&o.account(), &o.domain()}) {
    if (absl::StartsWith(*v, "-")) {
      return absl::InvalidArgumentError(absl::StrCat("invalid value '", *v, "'"));
    }
  }
  const std::string c = Concurrency(o.concurrency(), default_concurrency);
  std::vector<std::vector<std::string>> commands;
  std::vector<std::string> refresh = {"media", "refresh"};
  if (o.days() > 0) {
    refresh.push_back("--days");
    refresh.push_back(absl::StrCat(o.days()));
  }
  if (!o.account().empty()) {
    refresh.push_back("--account");
    refresh.push_back(o.account());
  }
  if (!o.domain().empty()) {
    refresh.push_back("--domain");
    refresh.push_back(o.domain());
  }
  if (!o.status_id().empty()) {
    refresh.push_back("--status");
    refresh.push_back(o.status_id());
  }
  if (o.force()) refresh.push_back("--force");
  refresh.push_back("--concurrency");
  refresh.push_back(c);
  commands.push_back(refresh);
  // accounts refresh has no --force (the snap's restore passes one, which
  // Thor takes as a user name that --all ignores).
  if (o.refresh_accounts()) {
    commands.push_back({"accounts", "refresh", "--all", "--concurrency", c});
  }
  if (o.build_feeds()) commands.push_back({"feeds", "build", "--all", "--concurrency", c});
  return commands;
}

std::vector<std::string> SearchDeployCommand(int default_concurrency) {
  return {"search", "deploy", "--concurrency", Concurrency(0, default_concurrency)};
}

absl::StatusOr<std::vector<std::vector<std::string>>> RefetchCommands(const RefetchPlan& plan,
                                                                      int accounts_per_command,
                                                                      int default_concurrency) {
  std::vector<v1::MediaRefreshOptions> scopes;
  for (int64_t status : plan.statuses) {
    scopes.emplace_back().set_status_id(absl::StrCat(status));
  }
  for (const std::string& handle : plan.media_accounts) {
    scopes.emplace_back().set_account(handle);
  }
  std::vector<std::vector<std::string>> commands;
  for (v1::MediaRefreshOptions& scope : scopes) {
    scope.set_force(true);
    ASSIGN_OR_RETURN(auto refresh, MediaRefreshCommands(scope, default_concurrency));
    commands.insert(commands.end(), refresh.begin(), refresh.end());
  }
  const size_t per = static_cast<size_t>(std::max(accounts_per_command, 1));
  for (size_t i = 0; i < plan.profile_accounts.size(); i += per) {
    std::vector<std::string> refresh = {"accounts", "refresh"};
    for (size_t j = i; j < std::min(i + per, plan.profile_accounts.size()); ++j) {
      refresh.push_back(plan.profile_accounts[j]);
    }
    commands.push_back(std::move(refresh));
  }
  return commands;
}

absl::StatusOr<v1::TootctlResult> RunTootctl(const Runtime& runtime,
                                             const std::vector<std::string>& args,
                                             const TaskContext& ctx) {
  ASSIGN_OR_RETURN(CommandSpec spec, runtime.Tootctl(args));
  v1::TootctlResult out;
  out.set_command(absl::StrJoin(args, " "));
  ctx.reporter->Log(v1::SEVERITY_INFO, absl::StrCat("tootctl ", out.command()), ctx.step);
  ProgressThrottle progress(ctx, "items");
  ASSIGN_OR_RETURN(Ran ran, RunAppCommand(spec, ctx, [&](const std::string& line) {
                     if (auto count = ParseProgressLine(line)) {
                       out.set_processed(count->done);
                       if (count->total >= 0) out.set_total(count->total);
                       progress.Report(
                           count->done, count->total,
                           absl::StrCat("tootctl ", args[0], " ", args.size() > 1 ? args[1] : ""));
                       return;
                     }
                     if (IsItemErrorLine(line)) {
                       out.set_item_errors(out.item_errors() + 1);
                       ctx.reporter->Log(v1::SEVERITY_WARNING, line, ctx.step);
                       return;
                     }
                     if (auto summary = ParseSummaryLine(line)) {
                       out.set_summary(summary->text);
                       out.set_summary_count(summary->count);
                     }
                     ctx.reporter->Log(v1::SEVERITY_INFO, line, ctx.step);
                   }));
  out.set_exit_code(ran.result.exit_code);
  if (!ran.result.success()) return CommandFailed(absl::StrCat("tootctl ", out.command()), ran);
  if (out.item_errors() > 0) {
    ctx.reporter->Log(v1::SEVERITY_WARNING,
                      absl::StrCat("tootctl ", out.command(), ": ", out.item_errors(),
                                   " item(s) failed (tootctl still exited 0)"),
                      ctx.step);
  }
  return out;
}

absl::StatusOr<KnownMigrations> ListMigrations(const std::string& code_dir, Env* env) {
  KnownMigrations known;
  for (auto [sub, out] :
       {std::pair<const char*, std::vector<std::string>*>{"db/migrate", &known.pre},
        {"db/post_migrate", &known.post}}) {
    auto names = env->ListDir(absl::StrCat(code_dir, "/", sub));
    if (!names.ok()) {
      if (absl::IsNotFound(names.status()) && std::string(sub) == "db/post_migrate") continue;
      return names.status();
    }
    for (const std::string& name : *names) {
      size_t underscore = name.find('_');
      if (!absl::EndsWith(name, ".rb") || underscore == std::string::npos || underscore == 0) {
        continue;
      }
      std::string version = name.substr(0, underscore);
      if (version.find_first_not_of("0123456789") == std::string::npos) out->push_back(version);
    }
    std::sort(out->begin(), out->end());
  }
  return known;
}

absl::StatusOr<v1::DbMigrateResult> RunDbMigrate(const Runtime& runtime, v1::MigrationPhase phase,
                                                 const AppDatabase& db, const TaskContext& ctx) {
  if (db.database.empty()) {
    return absl::FailedPreconditionError("db migrate: the runtime names no Mastodon database");
  }
  const bool pre_only = phase == v1::MIGRATION_PHASE_PRE_DEPLOYMENT;
  ASSIGN_OR_RETURN(CommandSpec spec, runtime.DbMigrate(pre_only));
  ASSIGN_OR_RETURN(std::unique_ptr<PgSession> conn, ConnectApp(db, ctx.pg));
  ASSIGN_OR_RETURN(std::set<std::string> before, AppliedMigrations(conn.get()));

  // What the code ships, when the agent can read it.
  std::optional<KnownMigrations> known;
  if (std::string code = runtime.CodeDir(); !code.empty()) {
    ASSIGN_OR_RETURN(known, ListMigrations(code, ctx.env));
  }
  int64_t expected_to_run = -1;
  if (known.has_value()) {
    std::vector<std::string> pre_pending = Missing(known->pre, before);
    std::vector<std::string> post_pending = Missing(known->post, before);
    if (phase == v1::MIGRATION_PHASE_POST_DEPLOYMENT && !pre_pending.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          pre_pending.size(), " pre-deployment migration(s) are pending (first ", pre_pending[0],
          "): run db-migrate --pre-deployment-only and restart the app first"));
    }
    expected_to_run = pre_pending.size() + (pre_only ? 0 : post_pending.size());
    ctx.reporter->Log(v1::SEVERITY_INFO,
                      absl::StrCat(pre_pending.size(), " pre-deployment and ", post_pending.size(),
                                   " post-deployment migration(s) pending",
                                   pre_only ? "; running pre-deployment ones only" : ""),
                      ctx.step);
  }

  v1::DbMigrateResult out;
  out.set_schema_version_before(NewestMigrationVersion(before));
  std::vector<std::string> announced;
  int64_t done = 0;
  ProgressThrottle progress(ctx, "migrations");
  ASSIGN_OR_RETURN(Ran ran, RunAppCommand(spec, ctx, [&](const std::string& line) {
                     ctx.reporter->Log(v1::SEVERITY_INFO, line, ctx.step);
                     auto m = ParseMigrationLine(line);
                     if (!m.has_value()) return;
                     if (!m->done) {
                       announced.push_back(m->version);
                       return;
                     }
                     out.add_migrations(absl::StrCat(m->version, " ", m->name));
                     ++done;
                     progress.Report(done, expected_to_run,
                                     out.migrations(out.migrations_size() - 1));
                   }));
  if (!ran.result.success()) return CommandFailed("db migrate", ran);

  // The exit code is not enough (the snap's helpers exit 0 when they refuse
  // to run): check the database.
  ASSIGN_OR_RETURN(std::set<std::string> after, AppliedMigrations(conn.get()));
  out.set_schema_version_after(NewestMigrationVersion(after));
  std::vector<std::string> unrecorded = Missing(announced, after);
  if (!unrecorded.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("db migrate announced migration ",
                                                      unrecorded[0],
                                                      " but schema_migrations does not record it"));
  }
  if (known.has_value()) {
    std::vector<std::string> pre_left = Missing(known->pre, after);
    std::vector<std::string> post_left = Missing(known->post, after);
    std::vector<std::string> left = pre_left;
    if (!pre_only) left.insert(left.end(), post_left.begin(), post_left.end());
    out.set_pending(static_cast<int32_t>(pre_left.size() + post_left.size()));
    if (!left.empty()) {
      std::string tail = absl::StrJoin(ran.tail, " | ");
      return absl::FailedPreconditionError(absl::StrCat(
          "db migrate exited 0 but ", left.size(), " migration(s) are still pending (first ",
          left[0], ")", tail.empty() ? "" : absl::StrCat("; output: ", tail)));
    }
  }
  ctx.reporter->Log(
      v1::SEVERITY_INFO,
      absl::StrCat(out.migrations_size(), " migration(s) ran; schema version ",
                   out.schema_version_after().empty() ? "none" : out.schema_version_after()),
      ctx.step);
  return out;
}

absl::StatusOr<std::string> ReadSchemaVersion(const AppDatabase& db, PgConnector* connector) {
  ASSIGN_OR_RETURN(std::unique_ptr<PgSession> conn, ConnectApp(db, connector));
  return ReadSchemaVersion(conn.get());
}

absl::Status ControlServices(const Runtime& runtime, bool start, const TaskContext& ctx) {
  for (CommandSpec spec : runtime.ServiceCommands(start)) {
    const std::string what = absl::StrJoin(spec.argv, " ");
    ctx.reporter->Log(v1::SEVERITY_INFO, what, ctx.step);
    spec.on_line = [&](absl::string_view line, bool) {
      if (!absl::StripAsciiWhitespace(line).empty()) {
        ctx.reporter->Log(v1::SEVERITY_INFO, std::string(line), ctx.step);
      }
    };
    // Stopping and starting must not be cut short by a cancellation:
    // half-stopped services are worse than a late cancel.
    ASSIGN_OR_RETURN(CommandResult result, ctx.runner->Run(spec, nullptr));
    if (!result.success()) {
      std::string err(absl::StripAsciiWhitespace(result.stderr_text));
      return absl::UnknownError(
          absl::StrCat("unable to ", start ? "start" : "stop", " the app services ('", what,
                       "'): ", result.Describe(), err.empty() ? "" : ": ", err));
    }
  }
  return absl::OkStatus();
}

absl::Status WithServicesStopped(const Runtime& runtime, const TaskContext& ctx,
                                 bool keep_stopped_on_failure,
                                 const std::function<absl::Status()>& work) {
  if (runtime.Services().empty()) return work();
  RETURN_IF_ERROR(ControlServices(runtime, false, ctx));
  absl::Status status = work();
  if (!status.ok() && keep_stopped_on_failure) {
    ctx.reporter->Log(v1::SEVERITY_WARNING,
                      absl::StrCat("the app services stay stopped as asked: ",
                                   absl::StrJoin(runtime.Services(), " ")),
                      ctx.step);
    return status;
  }
  absl::Status started = ControlServices(runtime, true, ctx);
  if (!status.ok()) {
    if (!started.ok())
      ctx.reporter->Log(v1::SEVERITY_ERROR, std::string(started.message()), ctx.step);
    return status;  // the first failure is the one to report
  }
  return started;
}

}  // namespace mastodon_restore
