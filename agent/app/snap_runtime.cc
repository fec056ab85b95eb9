#include "agent/app/snap_runtime.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

// snapd's fixed uid for snap_daemon (used when the user database lacks it).
constexpr uid_t kSnapDaemonUid = 584788;

}  // namespace

std::string SnapRuntime::Wrapper(const HostLayout& layout, const std::string& app) {
  return absl::StrCat(layout.snap_bin_dir, "/", kSnapName, ".", app);
}

SnapRuntime::SnapRuntime(HostLayout layout, CommandRunner* runner, Env* env)
    : layout_(std::move(layout)), runner_(runner), env_(env) {
  evidence_.push_back(absl::StrCat(Wrapper("tootctl"), " is installed"));
}

absl::StatusOr<AppDatabase> SnapRuntime::Database() const {
  return AppDatabase{layout_.snap_postgres, "mastodon", "mastodon"};
}

absl::StatusOr<MediaLocation> SnapRuntime::Media() const {
  MediaLocation media;
  // `snap get` fails when the key was never set: the default applies.
  auto dir = RunHostQuery(runner_, layout_, {"snap", "get", kSnapName, "media.dir"});
  media.dir =
      dir.ok() && absl::StartsWith(*dir, "/") ? *dir : "/var/snap/mastodon-server/common/media";
  auto uid = env_->UserId("snap_daemon");
  media.uid = uid.ok() ? *uid : kSnapDaemonUid;
  media.gid = 0;
  media.owner = "snap_daemon:root";
  return media;
}

std::vector<std::string> SnapRuntime::Services() const {
  // nginx and pgbouncer keep running: tootctl goes through pgbouncer, and
  // the swap terminates its server connections anyway.
  return {"backend", "streaming", "sidekiq-push", "sidekiq-pull"};
}

std::vector<CommandSpec> SnapRuntime::ServiceCommands(bool start) const {
  CommandSpec spec;
  spec.argv = {"snap", start ? "start" : "stop"};
  std::vector<std::string> services = Services();
  if (start) std::reverse(services.begin(), services.end());
  for (const std::string& s : services) spec.argv.push_back(absl::StrCat(kSnapName, ".", s));
  spec.env = HostCommandEnv(layout_);
  spec.timeout = absl::Minutes(5);
  return {spec};
}

absl::StatusOr<CommandSpec> SnapRuntime::Tootctl(const std::vector<std::string>& args) const {
  CommandSpec spec;
  spec.argv = {Wrapper("tootctl")};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = HostCommandEnv(layout_);
  spec.env.push_back("HOME=/root");
  return spec;
}

absl::StatusOr<CommandSpec> SnapRuntime::DbMigrate(bool skip_post_deployment) const {
  CommandSpec spec;
  spec.argv = {Wrapper("db-migrate")};
  spec.env = HostCommandEnv(layout_);
  spec.env.push_back("HOME=/root");
  // snap run passes the caller's environment to the app.
  if (skip_post_deployment) spec.env.push_back("SKIP_POST_DEPLOYMENT_MIGRATIONS=true");
  // "Do you want to continue? [y/N]"
  spec.stdin_data = "y\n";
  return spec;
}

std::string SnapRuntime::CodeDir() const {
  return env_->Exists(layout_.snap_app_dir + "/db/migrate") ? layout_.snap_app_dir : "";
}

std::string SnapRuntime::MastodonVersion() const {
  return VersionOfCode(env_, layout_.snap_app_dir);
}

absl::StatusOr<std::vector<HealthEndpoint>> SnapRuntime::HealthEndpoints() const {
  std::vector<HealthEndpoint> out;
  ASSIGN_OR_RETURN(HealthEndpoint web,
                   EndpointAt("web", "/health", layout_.app_web_address, "127.0.0.1", 3000,
                              "the snap's backend (rails s -p 3000)"));
  ASSIGN_OR_RETURN(
      HealthEndpoint streaming,
      EndpointAt("streaming", "/api/v1/streaming/health", layout_.app_streaming_address,
                 "127.0.0.1", 4000, "the snap's streaming server (its default port)"));
  out.push_back(web);
  out.push_back(streaming);
  return out;
}

absl::Status SnapRuntime::SidekiqRunning() const {
  std::vector<std::string> argv = {"snap", "services"};
  std::vector<std::string> wanted;
  for (const std::string& s : Services()) {
    if (!absl::StartsWith(s, "sidekiq")) continue;
    wanted.push_back(absl::StrCat(kSnapName, ".", s));
    argv.push_back(wanted.back());
  }
  ASSIGN_OR_RETURN(CommandResult r, RunHostCheck(runner_, layout_, argv));
  if (r.exit_code != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("snap services failed: ", absl::StripAsciiWhitespace(r.stderr_text)));
  }
  // "Service  Startup  Current  Notes", then one line per service.
  std::vector<std::string> down;
  for (const std::string& service : wanted) {
    std::string current = "not listed";
    for (absl::string_view line : absl::StrSplit(r.stdout_text, '\n')) {
      std::vector<std::string> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (cols.size() >= 3 && cols[0] == service) current = cols[2];
    }
    if (current != "active") down.push_back(absl::StrCat(service, " is ", current));
  }
  if (!down.empty()) return absl::FailedPreconditionError(absl::StrJoin(down, ", "));
  return absl::OkStatus();
}

absl::StatusOr<RedisStore> SnapRuntime::Redis() const {
  // $SNAP_DATA is the parent of the app's code ($SNAP_DATA/mastodon).
  const std::string& app = layout_.snap_app_dir;
  const std::string snap_data = app.substr(0, app.find_last_of('/'));
  RedisStore store;
  store.data_dir = snap_data + "/redis/data";
  store.file_name = "redis.rdb";
  if (!env_->Exists(store.data_dir)) {
    return absl::FailedPreconditionError(
        absl::StrCat("no Redis data directory at ", store.data_dir,
                     " (the snap's redis service never ran here)"));
  }
  for (bool start : {false, true}) {
    CommandSpec spec;
    spec.argv = {"snap", start ? "start" : "stop", absl::StrCat(kSnapName, ".redis")};
    spec.env = HostCommandEnv(layout_);
    spec.timeout = absl::Minutes(5);
    (start ? store.start : store.stop).push_back(spec);
  }
  RedisAddress fallback;
  fallback.host = "127.0.0.1";
  fallback.port = 6380;
  // server.conf is root's (the snap writes it); mastodon.conf may override.
  ParsedEnvFile env;
  for (const std::string& path : {snap_data + "/server.conf", EnvFilePath()}) {
    absl::StatusOr<ParsedEnvFile> read = ReadEnvFile(env_, path);
    if (!read.ok()) continue;
    env.entries.insert(env.entries.end(), read->entries.begin(), read->entries.end());
  }
  store.address = RedisAddressOf(env, fallback);
  store.source = "the snap's redis service";
  return store;
}

std::string SnapRuntime::EnvFilePath() const { return layout_.snap_common_dir + "/mastodon.conf"; }

}  // namespace mastodon_restore
