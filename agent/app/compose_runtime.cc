#include "agent/app/compose_runtime.h"

#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/common/errors.h"
#include "agent/common/net.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

// The uid and gid of the mastodon user in Mastodon's images.
constexpr uid_t kImageUid = 991;

}  // namespace

ComposeRuntime::ComposeRuntime(HostLayout layout, std::string compose_file, CommandRunner* runner,
                               Env* env)
    : layout_(std::move(layout)),
      file_(std::move(compose_file)),
      dir_(file_.substr(0, file_.find_last_of('/'))),
      runner_(runner),
      env_(env) {
  evidence_.push_back(absl::StrCat(file_, " runs the Mastodon image"));
}

absl::StatusOr<AppDatabase> ComposeRuntime::Database() const {
  ASSIGN_OR_RETURN(ParsedEnvFile env, ReadEnvFile(env_, dir_ + "/.env.production"));
  DbSettings db = DbSettingsOf(env);
  std::string host = db.host;
  // DB_HOST names a compose service ("db"): reach its container by its
  // address on the project network (Mastodon's compose file publishes no
  // PostgreSQL port).
  if (!absl::StartsWith(host, "/") && host != "localhost" &&
      host.find_first_not_of("0123456789.:") != std::string::npos) {
    ASSIGN_OR_RETURN(std::string id,
                     RunHostQuery(runner_, layout_, Compose({"ps", "-q", host}), dir_));
    if (id.empty()) {
      return UnableTo(absl::StatusCode::kFailedPrecondition, "find the container of service", host,
                      "it is not running (docker compose up -d db)");
    }
    id = std::string(absl::StripAsciiWhitespace(id.substr(0, id.find('\n'))));
    ASSIGN_OR_RETURN(
        std::string ips,
        RunHostQuery(runner_, layout_,
                     {"docker", "inspect", "--format",
                      "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", id}));
    std::vector<std::string> found = absl::StrSplit(ips, ' ', absl::SkipWhitespace());
    if (found.empty()) {
      return UnableTo(absl::StatusCode::kFailedPrecondition, "find the address of container", id,
                      "it has no network address");
    }
    host = found[0];
  }
  return AppDatabase{ConnInfoFor(db, host), db.name, db.user};
}

absl::StatusOr<MediaLocation> ComposeRuntime::Media() const {
  MediaLocation media;
  media.dir = dir_ + "/public/system";
  media.uid = kImageUid;
  media.gid = kImageUid;
  media.owner = "991:991";
  return media;
}

std::vector<std::string> ComposeRuntime::Services() const {
  return {"web", "streaming", "sidekiq"};
}

std::vector<CommandSpec> ComposeRuntime::ServiceCommands(bool start) const {
  std::vector<std::string> args = {start ? "start" : "stop"};
  for (const std::string& s : Services()) args.push_back(s);
  CommandSpec spec;
  spec.argv = Compose(args);
  spec.env = HostCommandEnv(layout_);
  spec.cwd = dir_;
  spec.timeout = absl::Minutes(5);
  return {spec};
}

absl::StatusOr<CommandSpec> ComposeRuntime::Tootctl(const std::vector<std::string>& args) const {
  std::vector<std::string> run = {"run", "--rm", "web", "bin/tootctl"};
  run.insert(run.end(), args.begin(), args.end());
  CommandSpec spec;
  spec.argv = Compose(run);
  spec.env = HostCommandEnv(layout_);
  spec.cwd = dir_;
  return spec;
}

absl::StatusOr<CommandSpec> ComposeRuntime::DbMigrate(bool skip_post_deployment) const {
  std::vector<std::string> run = {"run", "--rm"};
  if (skip_post_deployment) {
    run.push_back("-e");
    run.push_back("SKIP_POST_DEPLOYMENT_MIGRATIONS=true");
  }
  for (const char* a : {"web", "bundle", "exec", "rails", "db:migrate"}) run.push_back(a);
  CommandSpec spec;
  spec.argv = Compose(run);
  spec.env = HostCommandEnv(layout_);
  spec.cwd = dir_;
  return spec;
}

absl::StatusOr<RedisStore> ComposeRuntime::Redis() const {
  RedisStore store;
  store.data_dir = dir_ + "/redis";
  store.file_name = "dump.rdb";
  if (!env_->Exists(store.data_dir)) {
    return absl::FailedPreconditionError(
        absl::StrCat("no Redis volume at ", store.data_dir, " (the compose file's ./redis:/data)"));
  }
  auto spec = [this](std::vector<std::string> args) {
    CommandSpec c;
    c.argv = Compose(std::move(args));
    c.env = HostCommandEnv(layout_);
    c.cwd = dir_;
    c.timeout = absl::Minutes(5);
    return c;
  };
  store.stop.push_back(spec({"stop", "redis"}));
  store.start.push_back(spec({"start", "redis"}));
  store.info_command = spec({"exec", "-T", "redis", "redis-cli", "INFO"});
  store.info_command->timeout = absl::Seconds(30);
  store.source = absl::StrCat("the compose file's redis service (", dir_, "/redis:/data)");
  return store;
}

std::string ComposeRuntime::EnvFilePath() const { return dir_ + "/.env.production"; }

std::string ComposeRuntime::MastodonVersion() const {
  auto text = env_->ReadFile(file_);
  if (!text.ok()) return "";
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&line, "image:")) continue;
    line = absl::StripAsciiWhitespace(line);
    if (!absl::StrContains(line, "mastodon/mastodon:") &&
        !absl::StrContains(line, "tootsuite/mastodon:")) {
      continue;
    }
    absl::string_view tag = line.substr(line.rfind(':') + 1);
    absl::ConsumePrefix(&tag, "v");
    return std::string(absl::StripTrailingAsciiWhitespace(tag));
  }
  return "";
}

absl::StatusOr<std::vector<HealthEndpoint>> ComposeRuntime::HealthEndpoints() const {
  std::vector<HealthEndpoint> out;
  for (const auto& [name, path, port, override_address] :
       {std::tuple<std::string, std::string, std::string, std::string>{"web", "/health", "3000",
                                                                       layout_.app_web_address},
        {"streaming", "/api/v1/streaming/health", "4000", layout_.app_streaming_address}}) {
    if (!override_address.empty()) {
      ASSIGN_OR_RETURN(HealthEndpoint e, EndpointAt(name, path, override_address, "", 0, ""));
      out.push_back(e);
      continue;
    }
    const std::string source = absl::StrCat("docker compose port ", name, " ", port);
    ASSIGN_OR_RETURN(std::string published,
                     RunHostQuery(runner_, layout_, Compose({"port", name, port}), dir_));
    published = published.substr(0, published.find('\n'));
    std::string host;
    int number = 0;
    if (published.empty() || !SplitHostPort(published, &host, &number).ok()) {
      return UnableTo(absl::StatusCode::kFailedPrecondition, "find the address of service", name,
                      absl::StrCat(source, " printed '", published, "'"));
    }
    if (host == "0.0.0.0") host = "127.0.0.1";
    if (host == "::") host = "::1";
    ASSIGN_OR_RETURN(HealthEndpoint e, EndpointAt(name, path, "", host, number, source));
    out.push_back(e);
  }
  return out;
}

absl::Status ComposeRuntime::SidekiqRunning() const {
  ASSIGN_OR_RETURN(
      std::string running,
      RunHostQuery(runner_, layout_, Compose({"ps", "--status", "running", "--services"}), dir_));
  for (absl::string_view s : absl::StrSplit(running, '\n', absl::SkipWhitespace())) {
    if (absl::StripAsciiWhitespace(s) == "sidekiq") return absl::OkStatus();
  }
  return absl::FailedPreconditionError("the sidekiq service is not running");
}

std::vector<std::string> ComposeRuntime::Compose(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"docker", "compose", "-f", file_};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

}  // namespace mastodon_restore
