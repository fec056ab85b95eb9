// Operations on a database that exists: rollback (swap the kept previous
// database back in) and verify (check a restored or live database, against
// a backup when one is given). Each factory resolves the target and returns
// the operation to launch.
#ifndef MR_AGENT_JOBS_DATABASE_JOBS_H_
#define MR_AGENT_JOBS_DATABASE_JOBS_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "agent/jobs/job_env.h"
#include "agent/jobs/scan.h"
#include "agent/operations/operation_manager.h"
#include "mastodon/restore/v1/operation.pb.h"

namespace mastodon_restore {

// Scratch databases (verify-backup's) are named with this prefix; only they
// may be dropped by a verify (drop_scratch).
inline constexpr char kScratchDatabasePrefix[] = "mastodon_verify_";

absl::StatusOr<OperationSpec> MakeRollbackJob(const std::string& request_id,
                                              const mastodon::restore::v1::RollbackOptions& options,
                                              const JobEnv& env);

// `expected`: the backup to compare with (scan prepared for a deep read),
// when the request names one.
absl::StatusOr<OperationSpec> MakeVerifyJob(const std::string& request_id,
                                            const mastodon::restore::v1::VerifyOptions& options,
                                            std::optional<ScanSetup> expected, const JobEnv& env);

}  // namespace mastodon_restore

#endif  // MR_AGENT_JOBS_DATABASE_JOBS_H_
