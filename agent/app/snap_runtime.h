// The snap runtime: Mastodon of the mastodon-server snap. Its commands are
// the snap's wrappers (/snap/bin/mastodon-server.tootctl, .db-migrate) run
// as root with HOME=/root, its services are snap services, its database is
// the snap's own PostgreSQL and its settings are in $SNAP_COMMON.
#ifndef MR_AGENT_APP_SNAP_RUNTIME_H_
#define MR_AGENT_APP_SNAP_RUNTIME_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/app/runtime.h"
#include "agent/common/env.h"
#include "agent/common/subprocess.h"
#include "mastodon/restore/v1/agent_service.pb.h"

namespace mastodon_restore {

class SnapRuntime : public Runtime {
 public:
  // The snap's name, the prefix of its apps and services.
  static constexpr char kSnapName[] = "mastodon-server";

  // The path of the snap's wrapper of `app` ("tootctl":
  // <snap_bin_dir>/mastodon-server.tootctl).
  static std::string Wrapper(const HostLayout& layout, const std::string& app);

  // A snap whose tootctl wrapper was found (DetectRuntime checks). `runner`
  // and `env` must outlive the runtime.
  SnapRuntime(HostLayout layout, CommandRunner* runner, Env* env);

  mastodon::restore::v1::RuntimeKind kind() const override {
    return mastodon::restore::v1::RUNTIME_KIND_SNAP;
  }
  std::string name() const override { return "snap"; }

  // layout.snap_postgres, database "mastodon" owned by "mastodon".
  absl::StatusOr<AppDatabase> Database() const override;
  // `snap get mastodon-server media.dir` when it names an absolute path,
  // else the snap's default; owned by snap_daemon (snapd's fixed uid when
  // the user database lacks it) and root.
  absl::StatusOr<MediaLocation> Media() const override;
  // backend, streaming, sidekiq-push, sidekiq-pull (nginx and pgbouncer keep
  // running).
  std::vector<std::string> Services() const override;
  // One `snap stop|start mastodon-server.SVC...`.
  std::vector<CommandSpec> ServiceCommands(bool start) const override;
  // The tootctl wrapper with HOME=/root.
  absl::StatusOr<CommandSpec> Tootctl(const std::vector<std::string>& args) const override;
  // The db-migrate wrapper, answering its "[y/N]" with "y".
  absl::StatusOr<CommandSpec> DbMigrate(bool skip_post_deployment) const override;
  // layout.snap_app_dir when its db/migrate is readable, else "".
  std::string CodeDir() const override;
  std::string MastodonVersion() const override;
  // $SNAP_COMMON/mastodon.conf.
  std::string EnvFilePath() const override;
  // The backend's puma on 127.0.0.1:3000 (bin/backend: rails s -p 3000)
  // and the streaming server on 127.0.0.1:4000 (bin/streaming sets no
  // PORT: its default), which the snap's nginx proxies to.
  absl::StatusOr<std::vector<HealthEndpoint>> HealthEndpoints() const override;
  // `snap services mastodon-server.sidekiq-push mastodon-server.sidekiq-pull`:
  // each "active".
  absl::Status SidekiqRunning() const override;
  // The snap's redis service ($SNAP_DATA/redis/data/redis.rdb), at the
  // REDIS_URL of $SNAP_DATA/server.conf (redis://localhost:6380).
  absl::StatusOr<RedisStore> Redis() const override;

 private:
  std::string Wrapper(const std::string& app) const { return Wrapper(layout_, app); }

  const HostLayout layout_;
  CommandRunner* const runner_;
  Env* const env_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_SNAP_RUNTIME_H_
