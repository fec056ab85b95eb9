// A live migration from another host as one operation (StartMigrate): the
// old host's database is followed into this host's server by logical
// replication (database/logical_follow.h) until the cut-over is asked
// (CutOver, or the lag threshold); then the last changes arrive, the
// sequences come over, the copy is checked against the old database, it
// takes the place of this host's database, the app's migrations and feeds
// run and the app starts again. The report states the downtime.
//
// Until the swap nothing of this host's live database is touched, and any
// failure or cancel takes the follow down again: the subscription and its
// slot, the publication, the replica identities it changed, the staging
// database. The old database is never written to (its catalog gets the
// publication and, for tables without a primary key, REPLICA IDENTITY FULL,
// both undone). After the swap the old host is left as it was: starting
// its app again is the way back, and the report says so.
#ifndef MR_AGENT_JOBS_MIGRATE_JOB_H_
#define MR_AGENT_JOBS_MIGRATE_JOB_H_

#include <string>

#include "absl/status/statusor.h"
#include "agent/jobs/job_env.h"
#include "agent/operations/operation_manager.h"
#include "mastodon/restore/v1/migrate.pb.h"

namespace mastodon_restore {

// The operation of StartMigrate. INVALID_ARGUMENT without a source conninfo
// and database; FAILED_PRECONDITION without a target server or, for the
// app's steps, without a runtime (unless all of them are skipped and the
// app left stopped).
absl::StatusOr<OperationSpec> MakeMigrateJob(const std::string& request_id,
                                             const mastodon::restore::v1::MigrateOptions& options,
                                             const JobEnv& env);

}  // namespace mastodon_restore

#endif  // MR_AGENT_JOBS_MIGRATE_JOB_H_
