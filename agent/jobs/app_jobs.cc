#include "agent/jobs/app_jobs.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/app/app_tasks.h"
#include "agent/common/status_macros.h"
#include "agent/jobs/targets.h"

namespace mastodon_restore {

namespace v1 = ::mastodon::restore::v1;

namespace {

// An operation running `commands` (tootctl argument lists) one after the
// other in one step; it stops at the first failure and keeps the results so
// far.
OperationSpec TootctlTasksJob(v1::OperationKind kind, const std::string& request_id,
                              const std::string& step, const std::string& description,
                              std::vector<std::vector<std::string>> commands,
                              const Runtime* runtime,
                              std::function<void(v1::Operation*)> fill_request, const JobEnv& env) {
  OperationSpec spec;
  spec.kind = kind;
  spec.request_id = request_id;
  spec.target = absl::StrCat("app:", runtime->name());
  spec.fill_request = std::move(fill_request);
  spec.steps = {{step, description}};
  spec.work = [env, runtime, step, commands](Operation* op) -> absl::Status {
    TaskContext ctx{env.runner, env.env, &op->cancel_token(), op, step};
    ctx.pg = env.pg;
    op->StepStarted(step);
    v1::TootctlTasksResult results;
    absl::Status status;
    int64_t item_errors = 0;
    for (const auto& args : commands) {
      auto result = RunTootctl(*runtime, args, ctx);
      if (!result.ok()) {
        status = result.status();
        break;
      }
      item_errors += result->item_errors();
      *results.add_commands() = *result;
    }
    // Partial results of a failed run are kept too.
    op->SetResult([&](v1::Operation* o) { *o->mutable_tootctl_tasks_result() = results; });
    if (!status.ok()) return status;
    op->StepFinished(
        step, v1::STEP_STATE_SUCCEEDED,
        absl::StrCat(results.commands_size(), " command(s)",
                     item_errors > 0 ? absl::StrCat(", ", item_errors, " item error(s)") : ""));
    return absl::OkStatus();
  };
  return spec;
}

}  // namespace

absl::StatusOr<OperationSpec> MakeDbMigrateJob(const std::string& request_id,
                                               const v1::DbMigrateOptions& opts,
                                               const JobEnv& env) {
  ASSIGN_OR_RETURN(const Runtime* runtime, AppRuntime("db migrate", env));
  RETURN_IF_ERROR(runtime->DbMigrate(false).status());
  ASSIGN_OR_RETURN(AppDatabase db, runtime->Database());
  OperationSpec spec;
  spec.kind = v1::OPERATION_KIND_DB_MIGRATE;
  spec.request_id = request_id;
  spec.target = absl::StrCat("database:", db.database);
  spec.fill_request = [opts](v1::Operation* op) { *op->mutable_db_migrate_options() = opts; };
  spec.steps = {
      {"migrate", absl::StrCat("run the app's database migrations (", runtime->name(), ")")}};
  spec.work = [env, runtime, db, phase = opts.phase()](Operation* op) -> absl::Status {
    TaskContext ctx{env.runner, env.env, &op->cancel_token(), op, "migrate"};
    ctx.pg = env.pg;
    op->StepStarted("migrate");
    ASSIGN_OR_RETURN(v1::DbMigrateResult result, RunDbMigrate(*runtime, phase, db, ctx));
    op->SetResult([&](v1::Operation* o) { *o->mutable_db_migrate_result() = result; });
    op->StepFinished("migrate", v1::STEP_STATE_SUCCEEDED,
                     absl::StrCat(result.migrations_size(), " migration(s); schema ",
                                  result.schema_version_after()));
    return absl::OkStatus();
  };
  return spec;
}

absl::StatusOr<OperationSpec> MakeMediaRefreshJob(const std::string& request_id,
                                                  const v1::MediaRefreshOptions& opts,
                                                  const JobEnv& env) {
  ASSIGN_OR_RETURN(auto commands, MediaRefreshCommands(opts, DefaultConcurrency(env.env->Cpus())));
  ASSIGN_OR_RETURN(const Runtime* runtime, AppRuntime("media refresh", env));
  RETURN_IF_ERROR(runtime->Tootctl({}).status());
  return TootctlTasksJob(
      v1::OPERATION_KIND_MEDIA_REFRESH, request_id, "refresh",
      "fetch remote media (and accounts, feeds) again with tootctl", std::move(commands), runtime,
      [opts](v1::Operation* op) { *op->mutable_media_refresh_options() = opts; }, env);
}

absl::StatusOr<OperationSpec> MakeCleanupJob(const std::string& request_id,
                                             const v1::CleanupOptions& opts, const JobEnv& env) {
  ASSIGN_OR_RETURN(auto commands, CleanupCommands(opts, DefaultConcurrency(env.env->Cpus())));
  ASSIGN_OR_RETURN(const Runtime* runtime, AppRuntime("cleanup", env));
  RETURN_IF_ERROR(runtime->Tootctl({}).status());
  return TootctlTasksJob(
      v1::OPERATION_KIND_CLEANUP, request_id, "cleanup",
      "remove cached preview cards and remote media with tootctl", std::move(commands), runtime,
      [opts](v1::Operation* op) { *op->mutable_cleanup_options() = opts; }, env);
}

}  // namespace mastodon_restore
