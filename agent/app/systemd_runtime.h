// The systemd runtime: a source install of Mastodon (~mastodon/live with
// .env.production and bin/tootctl) run by mastodon-*.service units. App
// tasks run as the install's user through runuser, in live/, with
// RAILS_ENV=production and rbenv's shims first in PATH.
#ifndef MR_AGENT_APP_SYSTEMD_RUNTIME_H_
#define MR_AGENT_APP_SYSTEMD_RUNTIME_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/app/runtime.h"
#include "agent/common/env.h"
#include "agent/common/subprocess.h"
#include "mastodon/restore/v1/agent_service.pb.h"

namespace mastodon_restore {

class SystemdRuntime : public Runtime {
 public:
  // The install in layout.app_dir with `units` (without ".service", in stop
  // order; DetectRuntime finds them). `runner` and `env` must outlive the
  // runtime.
  SystemdRuntime(HostLayout layout, std::vector<std::string> units, CommandRunner* runner,
                 Env* env);

  mastodon::restore::v1::RuntimeKind kind() const override {
    return mastodon::restore::v1::RUNTIME_KIND_SYSTEMD;
  }
  std::string name() const override { return "systemd"; }

  // The DB_* settings of live/.env.production (the Env's error when it
  // cannot be read).
  absl::StatusOr<AppDatabase> Database() const override;
  // PAPERCLIP_ROOT_PATH when absolute, else live/public/system; owned as
  // live/ is (the Env's error when it cannot be stat'ed), by the install's
  // user.
  absl::StatusOr<MediaLocation> Media() const override;
  // The units.
  std::vector<std::string> Services() const override { return units_; }
  // One `systemctl stop|start UNIT...`.
  std::vector<CommandSpec> ServiceCommands(bool start) const override;
  // `runuser -u USER -- bin/tootctl ARGS` in live/.
  absl::StatusOr<CommandSpec> Tootctl(const std::vector<std::string>& args) const override;
  // `runuser -u USER -- bundle exec rails db:migrate` in live/.
  absl::StatusOr<CommandSpec> DbMigrate(bool skip_post_deployment) const override;
  // live/.
  std::string CodeDir() const override { return layout_.app_dir; }
  std::string MastodonVersion() const override;
  // live/.env.production.
  std::string EnvFilePath() const override { return EnvFile(); }
  // The web unit's PORT (Environment= in its unit file; else PORT of
  // .env.production; else 3000) and the streaming unit's PORT (else
  // STREAMING_PORT of .env.production; else 4000), on 127.0.0.1 (BIND of
  // the unit or the env file when set).
  absl::StatusOr<std::vector<HealthEndpoint>> HealthEndpoints() const override;
  // `systemctl is-active UNIT` of every sidekiq unit: "active".
  absl::Status SidekiqRunning() const override;
  // The host's Redis unit (--redis-service) and the dir and dbfilename of
  // its configuration (--redis-conf; Debian's defaults /var/lib/redis,
  // dump.rdb), at the REDIS_* address of .env.production.
  absl::StatusOr<RedisStore> Redis() const override;

 private:
  std::string EnvFile() const { return layout_.app_dir + "/.env.production"; }
  // The unit whose name contains `part` ("web", "streaming"; "" when none).
  std::string UnitWith(const std::string& part) const;
  // KEY of the unit's Environment= lines ("" when unset or unreadable).
  std::string UnitEnvironment(const std::string& unit, const std::string& key) const;
  // The install's user: the name of live/'s parent home ("mastodon").
  std::string User() const;
  // `runuser -u USER -- COMMAND` in live/ with RAILS_ENV=production.
  CommandSpec AsAppUser(const std::vector<std::string>& command) const;

  const HostLayout layout_;
  const std::vector<std::string> units_;
  CommandRunner* const runner_;
  Env* const env_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_SYSTEMD_RUNTIME_H_
