// The embedded runtime: no Mastodon on the host. Restores go into a
// PostgreSQL cluster the agent creates and owns in its own directory, run as
// the unprivileged postgres user (PostgreSQL refuses root) on a private
// socket. For newcomers, `make demo` and CI verification of backups.
#ifndef MR_AGENT_APP_EMBEDDED_RUNTIME_H_
#define MR_AGENT_APP_EMBEDDED_RUNTIME_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/app/runtime.h"
#include "agent/common/env.h"
#include "agent/common/subprocess.h"
#include "agent/database/local_cluster.h"
#include "mastodon/restore/v1/agent_service.pb.h"

namespace mastodon_restore {

class EmbeddedRuntime : public Runtime {
 public:
  // Creates (first time) and starts the cluster in `dir`, or adopts the one a
  // killed agent left running there. `media_dir` ("" for none) is where
  // media restores go.
  static absl::StatusOr<std::unique_ptr<EmbeddedRuntime>> Start(const std::string& dir,
                                                                const std::string& media_dir,
                                                                CommandRunner* runner, Env* env);
  // Stops the cluster (fast shutdown).
  ~EmbeddedRuntime() override;

  // Superuser conninfo over the private socket.
  std::string ConnInfo() const { return cluster_->ConnInfo(); }

  mastodon::restore::v1::RuntimeKind kind() const override {
    return mastodon::restore::v1::RUNTIME_KIND_EMBEDDED;
  }
  std::string name() const override { return "embedded"; }
  // The cluster, as superuser; no live database of its own (restores take
  // the backup's name) and no fixed owner.
  absl::StatusOr<AppDatabase> Database() const override;
  // FAILED_PRECONDITION when no media directory was configured.
  absl::StatusOr<MediaLocation> Media() const override;
  // No app: no services, and app tasks are FAILED_PRECONDITION.
  std::vector<std::string> Services() const override { return {}; }
  std::vector<CommandSpec> ServiceCommands(bool) const override { return {}; }
  absl::StatusOr<CommandSpec> Tootctl(const std::vector<std::string>& args) const override;
  absl::StatusOr<CommandSpec> DbMigrate(bool skip_post_deployment) const override;
  std::string CodeDir() const override { return ""; }
  std::string MastodonVersion() const override { return ""; }
  std::string EnvFilePath() const override { return ""; }

 private:
  EmbeddedRuntime() = default;
  std::string dir_;
  std::string media_dir_;
  std::unique_ptr<LocalCluster> cluster_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_EMBEDDED_RUNTIME_H_
