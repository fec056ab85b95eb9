// The embedded runtime: no Mastodon on the host. Restores go into a
// PostgreSQL cluster the agent creates and owns in its own directory, run as
// the unprivileged postgres user (PostgreSQL refuses root) on a private
// socket. For newcomers, `make demo` and CI verification of backups.
#ifndef MASTODON_RESTORE_AGENT_APP_EMBEDDED_RUNTIME_H_
#define MASTODON_RESTORE_AGENT_APP_EMBEDDED_RUNTIME_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/common/env.h"
#include "agent/common/subprocess.h"
#include "agent/database/local_cluster.h"
#include "mastodon/restore/v1/agent_service.pb.h"

namespace mastodon_restore {

class EmbeddedRuntime {
 public:
  // Creates (first time) and starts the cluster in `dir`, or adopts the one a
  // killed agent left running there.
  static absl::StatusOr<std::unique_ptr<EmbeddedRuntime>> Start(const std::string& dir,
                                                                CommandRunner* runner, Env* env);
  // Stops the cluster (fast shutdown).
  ~EmbeddedRuntime();

  // Superuser conninfo over the private socket.
  std::string ConnInfo() const { return cluster_->ConnInfo(); }
  // The runtime as GetAgentInfo reports it.
  mastodon::restore::v1::RuntimeInfo Describe() const;

 private:
  EmbeddedRuntime() = default;
  std::string dir_;
  std::unique_ptr<LocalCluster> cluster_;
};

}  // namespace mastodon_restore

#endif  // MASTODON_RESTORE_AGENT_APP_EMBEDDED_RUNTIME_H_
