// The app's own commands as operations: database migrations and the tootctl
// tasks (media refresh, cleanup), run through the host's runtime. Each
// factory checks what it needs before anything starts (a runtime that runs
// the app, the command it would run) and returns the operation to launch.
#ifndef MR_AGENT_JOBS_APP_JOBS_H_
#define MR_AGENT_JOBS_APP_JOBS_H_

#include <string>

#include "absl/status/statusor.h"
#include "agent/jobs/job_env.h"
#include "agent/operations/operation_manager.h"
#include "mastodon/restore/v1/operation.pb.h"

namespace mastodon_restore {

// `db migrate` (all, pre- or post-deployment) on the runtime's database.
// FAILED_PRECONDITION without a runtime or its migrate command.
absl::StatusOr<OperationSpec> MakeDbMigrateJob(
    const std::string& request_id, const mastodon::restore::v1::DbMigrateOptions& options,
    const JobEnv& env);

// tootctl media refresh (and accounts refresh, feeds build as asked).
absl::StatusOr<OperationSpec> MakeMediaRefreshJob(
    const std::string& request_id, const mastodon::restore::v1::MediaRefreshOptions& options,
    const JobEnv& env);

// tootctl preview_cards remove and media remove.
absl::StatusOr<OperationSpec> MakeCleanupJob(const std::string& request_id,
                                             const mastodon::restore::v1::CleanupOptions& options,
                                             const JobEnv& env);

}  // namespace mastodon_restore

#endif  // MR_AGENT_JOBS_APP_JOBS_H_
