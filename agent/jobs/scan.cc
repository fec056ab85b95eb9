#include "agent/jobs/scan.h"

#include "agent/common/status_macros.h"
#include "agent/database/local_cluster.h"
#include "agent/database/pg_probe.h"

namespace mastodon_restore {

absl::Status PrepareScan(bool deep, const mastodon::restore::v1::DatabaseTarget& target,
                         const CancelToken* cancel, std::function<void(int64_t)> progress,
                         const JobEnv& env, ScanSetup* setup) {
  setup->source.cancel = cancel;
  setup->options.deep = deep;
  setup->options.progress = std::move(progress);
  if (env.env != nullptr) setup->options.now = env.env->Now();
  setup->options.pg_restore_majors =
      InstalledPostgresVersions(env.env, env.postgres_root, "pg_restore");
  if (!target.conninfo().empty()) {
    ASSIGN_OR_RETURN(int version, ProbeServerVersion(target.conninfo()));
    setup->options.target_major = version / 10000;
  }
  return absl::OkStatus();
}

}  // namespace mastodon_restore
