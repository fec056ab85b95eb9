// The compose runtime: Mastodon of a docker-compose.yml that runs the
// Mastodon image. Every command is `docker compose -f FILE ...` in the
// project's directory; app tasks run in a throwaway container of the web
// service (`run --rm web ...`); the database is the db service's container,
// reached by its address on the project network.
#ifndef MR_AGENT_APP_COMPOSE_RUNTIME_H_
#define MR_AGENT_APP_COMPOSE_RUNTIME_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/app/runtime.h"
#include "agent/common/env.h"
#include "agent/common/subprocess.h"
#include "mastodon/restore/v1/agent_service.pb.h"

namespace mastodon_restore {

class ComposeRuntime : public Runtime {
 public:
  // The project of `compose_file` (absolute; DetectRuntime checked that it
  // runs the Mastodon image). `runner` and `env` must outlive the runtime.
  ComposeRuntime(HostLayout layout, std::string compose_file, CommandRunner* runner, Env* env);

  mastodon::restore::v1::RuntimeKind kind() const override {
    return mastodon::restore::v1::RUNTIME_KIND_COMPOSE;
  }
  std::string name() const override { return "compose"; }

  // The DB_* settings of the project's .env.production. A DB_HOST that
  // names a compose service ("db") becomes the address of its running
  // container (`docker compose ps -q`, then `docker inspect`);
  // FAILED_PRECONDITION when it is not running or has no address.
  absl::StatusOr<AppDatabase> Database() const override;
  // <project>/public/system, owned by the image's 991:991.
  absl::StatusOr<MediaLocation> Media() const override;
  // web, streaming, sidekiq.
  std::vector<std::string> Services() const override;
  // One `docker compose -f FILE stop|start web streaming sidekiq`.
  std::vector<CommandSpec> ServiceCommands(bool start) const override;
  // `docker compose -f FILE run --rm web bin/tootctl ARGS`.
  absl::StatusOr<CommandSpec> Tootctl(const std::vector<std::string>& args) const override;
  // `docker compose -f FILE run --rm [-e SKIP_POST_DEPLOYMENT_MIGRATIONS=true]
  // web bundle exec rails db:migrate`.
  absl::StatusOr<CommandSpec> DbMigrate(bool skip_post_deployment) const override;
  // "": the code is inside the image.
  std::string CodeDir() const override { return ""; }
  // <project>/.env.production.
  std::string EnvFilePath() const override;
  // The tag of the Mastodon image in the compose file
  // ("ghcr.io/mastodon/mastodon:v4.6.5" -> "4.6.5"), or "".
  std::string MastodonVersion() const override;
  // Where `docker compose port web 3000` and `port streaming 4000` say the
  // services are published (Mastodon's compose file: 127.0.0.1:3000 and
  // 127.0.0.1:4000; 0.0.0.0 is asked on 127.0.0.1).
  absl::StatusOr<std::vector<HealthEndpoint>> HealthEndpoints() const override;
  // `docker compose ps --status running --services` lists sidekiq.
  absl::Status SidekiqRunning() const override;
  // Mastodon's compose file's redis service, its volume ./redis:/data
  // holding dump.rdb; asked through redis-cli in its container (it
  // publishes no port).
  absl::StatusOr<RedisStore> Redis() const override;

 private:
  // `docker compose -f FILE ARGS`.
  std::vector<std::string> Compose(const std::vector<std::string>& args) const;

  const HostLayout layout_;
  const std::string file_;
  const std::string dir_;
  CommandRunner* const runner_;
  Env* const env_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_COMPOSE_RUNTIME_H_
