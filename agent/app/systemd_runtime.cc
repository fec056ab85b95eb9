#include "agent/app/systemd_runtime.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
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

std::string SystemdRuntime::UnitWith(const std::string& part) const {
  for (const std::string& u : units_) {
    if (absl::StrContains(u, part)) return u;
  }
  return "";
}

std::string SystemdRuntime::UnitEnvironment(const std::string& unit, const std::string& key) const {
  if (unit.empty()) return "";
  auto text = env_->ReadFile(absl::StrCat(layout_.systemd_unit_dir, "/", unit, ".service"));
  if (!text.ok()) return "";
  std::string value;
  // Environment="PORT=3000" or Environment=PORT=3000 NODE_ENV=production;
  // a later assignment wins, as in systemd.
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&line, "Environment=")) continue;
    for (absl::string_view word : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
      absl::ConsumePrefix(&word, "\"");
      absl::ConsumeSuffix(&word, "\"");
      if (absl::ConsumePrefix(&word, key + "=")) value = std::string(word);
    }
  }
  return value;
}

absl::StatusOr<std::vector<HealthEndpoint>> SystemdRuntime::HealthEndpoints() const {
  auto env = ReadEnvFile(env_, EnvFile());
  auto from_env = [&](const std::string& key) -> std::string {
    if (!env.ok()) return "";
    const std::string* v = env->Find(key);
    return v == nullptr ? "" : *v;
  };
  std::vector<HealthEndpoint> out;
  for (const auto& [name, path, env_key, fallback, override_address] :
       {std::tuple<std::string, std::string, std::string, int, std::string>{
            "web", "/health", "PORT", 3000, layout_.app_web_address},
        {"streaming", "/api/v1/streaming/health", "STREAMING_PORT", 4000,
         layout_.app_streaming_address}}) {
    const std::string unit = UnitWith(name);
    std::string port = UnitEnvironment(unit, "PORT");
    std::string source = absl::StrCat("PORT in ", unit, ".service");
    if (port.empty()) {
      port = from_env(env_key);
      source = absl::StrCat(env_key, " in ", EnvFile());
    }
    int number = fallback;
    if (port.empty()) {
      source = absl::StrCat("Mastodon's default ", name, " port");
    } else if (!absl::SimpleAtoi(port, &number) || number <= 0 || number > 65535) {
      return absl::FailedPreconditionError(
          absl::StrCat("unable to find the ", name, " port: ", source, " is '", port, "'"));
    }
    std::string bind = UnitEnvironment(unit, "BIND");
    if (bind.empty()) bind = from_env("BIND");
    if (bind.empty() || bind == "0.0.0.0") bind = "127.0.0.1";
    if (bind == "::") bind = "::1";
    ASSIGN_OR_RETURN(HealthEndpoint e,
                     EndpointAt(name, path, override_address, bind, number, source));
    out.push_back(e);
  }
  return out;
}

absl::Status SystemdRuntime::SidekiqRunning() const {
  std::vector<std::string> down;
  int found = 0;
  for (const std::string& unit : units_) {
    if (!absl::StrContains(unit, "sidekiq")) continue;
    ++found;
    ASSIGN_OR_RETURN(CommandResult r,
                     RunHostCheck(runner_, layout_, {"systemctl", "is-active", unit}));
    std::string state(absl::StripAsciiWhitespace(r.stdout_text));
    if (r.exit_code != 0 || state != "active") {
      down.push_back(absl::StrCat(unit, " is ", state.empty() ? "not active" : state));
    }
  }
  if (found == 0) return absl::FailedPreconditionError("no mastodon-sidekiq unit");
  if (!down.empty()) return absl::FailedPreconditionError(absl::StrJoin(down, ", "));
  return absl::OkStatus();
}

absl::StatusOr<RedisStore> SystemdRuntime::Redis() const {
  RedisStore store;
  store.data_dir = "/var/lib/redis";
  store.file_name = "dump.rdb";
  bool append_only = false;
  // "dir /var/lib/redis", "dbfilename dump.rdb", "appendonly no"; values
  // may be quoted.
  absl::StatusOr<std::string> conf = env_->ReadFile(layout_.redis_conf);
  if (conf.ok()) {
    for (absl::string_view line : absl::StrSplit(*conf, '\n')) {
      std::vector<std::string> words = absl::StrSplit(absl::StripAsciiWhitespace(line),
                                                      absl::ByAnyChar(" \t"), absl::SkipEmpty());
      if (words.size() != 2 || absl::StartsWith(words[0], "#")) continue;
      std::string value(absl::StripPrefix(absl::StripSuffix(words[1], "\""), "\""));
      const std::string key = absl::AsciiStrToLower(words[0]);
      if (key == "dir") store.data_dir = value;
      if (key == "dbfilename") store.file_name = value;
      if (key == "appendonly") append_only = absl::AsciiStrToLower(value) == "yes";
    }
  }
  // Debian's redis.conf belongs to the redis user (CONFIG REWRITE): a dir
  // read from a file anyone but root can write could send root's write of
  // the dump anywhere, so only Debian's own is taken from such a file.
  if (conf.ok() && store.data_dir != "/var/lib/redis") {
    absl::StatusOr<FileOwner> owner = env_->OwnerOf(layout_.redis_conf);
    if (!owner.ok() || owner->uid != 0 || (owner->mode & 022) != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "'dir ", store.data_dir, "' of ", layout_.redis_conf,
          " is not used: root does not own that file alone (another user could point it "
          "anywhere); make it root's and not group- or world-writable, or keep /var/lib/redis"));
    }
  }
  if (append_only) {
    return absl::FailedPreconditionError(
        absl::StrCat("Redis runs with 'appendonly yes' (", layout_.redis_conf,
                     "): it loads its append-only file at start, not ", store.file_name));
  }
  if (store.file_name.find('/') != std::string::npos || store.data_dir.empty() ||
      store.data_dir[0] != '/') {
    return absl::FailedPreconditionError(absl::StrCat("unusable dir or dbfilename in ",
                                                      layout_.redis_conf, ": ", store.data_dir,
                                                      ", ", store.file_name));
  }
  if (!env_->Exists(store.data_dir)) {
    return absl::FailedPreconditionError(
        absl::StrCat("no Redis data directory at ", store.data_dir, " (is Redis installed here?)"));
  }
  for (bool start : {false, true}) {
    CommandSpec spec;
    spec.argv = {"systemctl", start ? "start" : "stop", layout_.redis_service};
    spec.env = HostCommandEnv(layout_);
    spec.timeout = absl::Minutes(5);
    (start ? store.start : store.stop).push_back(spec);
  }
  RedisAddress fallback;
  fallback.host = "127.0.0.1";
  auto env = ReadEnvFile(env_, EnvFile());
  store.address = RedisAddressOf(env.ok() ? *env : ParsedEnvFile(), fallback);
  store.source = conf.ok() ? absl::StrCat("dir and dbfilename of ", layout_.redis_conf)
                           : absl::StrCat("Debian's defaults (", layout_.redis_conf,
                                          " unreadable: ", conf.status().message(), ")");
  return store;
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
