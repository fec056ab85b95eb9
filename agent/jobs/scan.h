// What reading a backup source needs besides the source itself: the
// installed pg_restore majors (which archive versions can be read), the
// target server's major (compatibility notes), a deep-scan flag and progress.
#ifndef MR_AGENT_JOBS_SCAN_H_
#define MR_AGENT_JOBS_SCAN_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "agent/archive/source_walker.h"
#include "agent/common/cancel_token.h"
#include "agent/inventory/inspector.h"
#include "agent/jobs/job_env.h"
#include "mastodon/restore/v1/common.pb.h"

namespace mastodon_restore {

// A source resolved inside the allowed roots (by the service), with its
// secrets, and how to scan it.
struct ScanSetup {
  std::string path;
  SourceOptions source;
  InspectOptions options;
};

// Completes `setup` (path and source already resolved): reads stop when
// `cancel` fires; `deep` scans report to `progress`; when `target` names a
// server its major version is probed (UNAVAILABLE when it cannot be reached).
absl::Status PrepareScan(bool deep, const mastodon::restore::v1::DatabaseTarget& target,
                         const CancelToken* cancel, std::function<void(int64_t)> progress,
                         const JobEnv& env, ScanSetup* setup);

}  // namespace mastodon_restore

#endif  // MR_AGENT_JOBS_SCAN_H_
