#include "agent/app/systemd_runtime.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {

SystemdRuntime::SystemdRuntime(HostLayout layout, std::vector<std::string> units,
                               CommandRunner* runner, Env* env)
    : layout_(std::move(layout)), units_(std::move(units)), runner_(runner), env_(env) {
  evidence_.push_back(absl::StrCat(layout_.app_dir, " has .env.production and bin/tootctl"));
  evidence_.push_back(
      absl::StrCat("units in ", layout_.systemd_unit_dir, ": ", absl::StrJoin(units_, " ")));
}

absl::StatusOr<AppDatabase> SystemdRuntime::Database() const {
  ASSIGN_OR_RETURN(ParsedEnvFile env, ReadEnvFile(env_, EnvFile()));
  DbSettings db = DbSettingsOf(env);
  return AppDatabase{ConnInfoFor(db, db.host), db.name, db.user};
}

absl::StatusOr<MediaLocation> SystemdRuntime::Media() const {
  MediaLocation media;
  media.dir = layout_.app_dir + "/public/system";
  auto env = ReadEnvFile(env_, EnvFile());
  if (env.ok()) {
    const std::string* root = env->Find("PAPERCLIP_ROOT_PATH");
    if (root != nullptr && absl::StartsWith(*root, "/")) {
      media.dir = *root;
      media.from_app_file = absl::StrCat("PAPERCLIP_ROOT_PATH in ", EnvFile());
    }
  }
  ASSIGN_OR_RETURN(FileOwner owner, env_->OwnerOf(layout_.app_dir));
  media.uid = owner.uid;
  media.gid = owner.gid;
  media.owner = User();
  return media;
}

std::vector<CommandSpec> SystemdRuntime::ServiceCommands(bool start) const {
  CommandSpec spec;
  spec.argv = {"systemctl", start ? "start" : "stop"};
  std::vector<std::string> units = units_;
  if (start) std::reverse(units.begin(), units.end());
  spec.argv.insert(spec.argv.end(), units.begin(), units.end());
  spec.env = HostCommandEnv(layout_);
  spec.timeout = absl::Minutes(5);
  return {spec};
}

absl::StatusOr<CommandSpec> SystemdRuntime::Tootctl(const std::vector<std::string>& args) const {
  CommandSpec spec = AsAppUser({"bin/tootctl"});
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  return spec;
}

absl::StatusOr<CommandSpec> SystemdRuntime::DbMigrate(bool skip_post_deployment) const {
  CommandSpec spec = AsAppUser({"bundle", "exec", "rails", "db:migrate"});
  if (skip_post_deployment) spec.env.push_back("SKIP_POST_DEPLOYMENT_MIGRATIONS=true");
  return spec;
}

std::string SystemdRuntime::MastodonVersion() const { return VersionOfCode(env_, layout_.app_dir); }

std::string SystemdRuntime::User() const {
  std::string home = layout_.app_dir.substr(0, layout_.app_dir.find_last_of('/'));
  std::string user = home.substr(home.find_last_of('/') + 1);
  return user.empty() ? "mastodon" : user;
}

// runuser keeps the given environment and sets HOME, USER, LOGNAME and
// SHELL for the user; rbenv's shims come first in PATH, as in the units.
CommandSpec SystemdRuntime::AsAppUser(const std::vector<std::string>& command) const {
  std::string home = layout_.app_dir.substr(0, layout_.app_dir.find_last_of('/'));
  CommandSpec spec;
  spec.argv = {"runuser", "-u", User(), "--"};
  spec.argv.insert(spec.argv.end(), command.begin(), command.end());
  spec.cwd = layout_.app_dir;
  spec.env = {
      absl::StrCat("PATH=", home, "/.rbenv/shims:", home, "/.rbenv/bin:", layout_.host_path),
      "RAILS_ENV=production", "LANG=C.UTF-8", "TERM=xterm"};
  return spec;
}

}  // namespace mastodon_restore
