#include "agent/app/runtime.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/app/env_file.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace v1 = ::mastodon::restore::v1;
namespace {

constexpr char kSnap[] = "mastodon-server";
// snapd's fixed uid for snap_daemon (used when the user database lacks it).
constexpr uid_t kSnapDaemonUid = 584788;
// The uid and gid of the mastodon user in Mastodon's images.
constexpr uid_t kImageUid = 991;

std::string Quote(const std::string& s) { return absl::StrCat("'", s, "'"); }

// Runs a short query command of the host (snap get, docker inspect) and
// returns its trimmed stdout.
absl::StatusOr<std::string> Ask(CommandRunner* runner, const HostLayout& layout,
                                std::vector<std::string> argv, const std::string& cwd = "") {
  CommandSpec spec;
  spec.argv = std::move(argv);
  spec.env = HostCommandEnv(layout);
  spec.cwd = cwd;
  spec.timeout = absl::Seconds(60);
  ASSIGN_OR_RETURN(CommandResult result, runner->Run(spec, nullptr));
  if (!result.success()) {
    std::string err(absl::StripAsciiWhitespace(result.stderr_text));
    return UnableTo(absl::StatusCode::kFailedPrecondition, "run", absl::StrJoin(spec.argv, " "),
                    absl::StrCat(result.Describe(), err.empty() ? "" : ": ", err));
  }
  return std::string(absl::StripAsciiWhitespace(result.stdout_text));
}

// A libpq conninfo value, quoted.
std::string ConnValue(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "'";
}

// Database settings of an env file, with config/database.yml's defaults.
struct DbSettings {
  std::string host = "localhost";
  std::string port = "5432";
  std::string name = "mastodon_production";
  std::string user = "mastodon";
  std::string password;
  std::string sslmode;
};

DbSettings DbSettingsOf(const ParsedEnvFile& env) {
  DbSettings db;
  auto set = [&env](const char* key, std::string* out) {
    const std::string* v = env.Find(key);
    if (v != nullptr && !v->empty()) *out = *v;
  };
  set("DB_HOST", &db.host);
  set("DB_PORT", &db.port);
  set("DB_NAME", &db.name);
  set("DB_USER", &db.user);
  set("DB_PASS", &db.password);
  set("DB_SSLMODE", &db.sslmode);
  return db;
}

std::string ConnInfoFor(const DbSettings& db, const std::string& host) {
  std::string conn = absl::StrCat("host=", ConnValue(host), " port=", ConnValue(db.port),
                                  " user=", ConnValue(db.user));
  if (!db.password.empty()) absl::StrAppend(&conn, " password=", ConnValue(db.password));
  if (!db.sslmode.empty()) absl::StrAppend(&conn, " sslmode=", ConnValue(db.sslmode));
  return conn;
}

std::string VersionOfCode(Env* env, const std::string& code_dir) {
  auto text = env->ReadFile(code_dir + "/lib/mastodon/version.rb");
  return text.ok() ? ParseMastodonVersionRb(*text) : "";
}

absl::StatusOr<ParsedEnvFile> ReadEnvFile(Env* env, const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, env->ReadFile(path));
  return ParseEnvFile(text);
}

// ---------------------------------------------------------------- snap

class SnapRuntime : public Runtime {
 public:
  SnapRuntime(HostLayout layout, CommandRunner* runner, Env* env)
      : layout_(std::move(layout)), runner_(runner), env_(env) {
    evidence_.push_back(absl::StrCat(Wrapper("tootctl"), " is installed"));
  }
  v1::RuntimeKind kind() const override { return v1::RUNTIME_KIND_SNAP; }
  std::string name() const override { return "snap"; }

  absl::StatusOr<AppDatabase> Database() const override {
    return AppDatabase{layout_.snap_postgres, "mastodon", "mastodon"};
  }

  absl::StatusOr<MediaLocation> Media() const override {
    MediaLocation media;
    // `snap get` fails when the key was never set: the default applies.
    auto dir = Ask(runner_, layout_, {"snap", "get", kSnap, "media.dir"});
    media.dir =
        dir.ok() && absl::StartsWith(*dir, "/") ? *dir : "/var/snap/mastodon-server/common/media";
    auto uid = env_->UserId("snap_daemon");
    media.uid = uid.ok() ? *uid : kSnapDaemonUid;
    media.gid = 0;
    media.owner = "snap_daemon:root";
    return media;
  }

  std::vector<std::string> Services() const override {
    // nginx and pgbouncer keep running: tootctl goes through pgbouncer, and
    // the swap terminates its server connections anyway.
    return {"backend", "streaming", "sidekiq-push", "sidekiq-pull"};
  }

  std::vector<CommandSpec> ServiceCommands(bool start) const override {
    CommandSpec spec;
    spec.argv = {"snap", start ? "start" : "stop"};
    std::vector<std::string> services = Services();
    if (start) std::reverse(services.begin(), services.end());
    for (const std::string& s : services) spec.argv.push_back(absl::StrCat(kSnap, ".", s));
    spec.env = HostCommandEnv(layout_);
    spec.timeout = absl::Minutes(5);
    return {spec};
  }

  absl::StatusOr<CommandSpec> Tootctl(const std::vector<std::string>& args) const override {
    CommandSpec spec;
    spec.argv = {Wrapper("tootctl")};
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    spec.env = HostCommandEnv(layout_);
    spec.env.push_back("HOME=/root");
    return spec;
  }

  absl::StatusOr<CommandSpec> DbMigrate(bool skip_post_deployment) const override {
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

  std::string CodeDir() const override {
    return env_->Exists(layout_.snap_app_dir + "/db/migrate") ? layout_.snap_app_dir : "";
  }
  std::string MastodonVersion() const override { return VersionOfCode(env_, layout_.snap_app_dir); }
  std::string EnvFilePath() const override { return layout_.snap_common_dir + "/mastodon.conf"; }

 private:
  std::string Wrapper(const std::string& app) const {
    return absl::StrCat(layout_.snap_bin_dir, "/", kSnap, ".", app);
  }
  const HostLayout layout_;
  CommandRunner* const runner_;
  Env* const env_;
};

// ---------------------------------------------------------------- compose

class ComposeRuntime : public Runtime {
 public:
  ComposeRuntime(HostLayout layout, std::string compose_file, CommandRunner* runner, Env* env)
      : layout_(std::move(layout)),
        file_(std::move(compose_file)),
        dir_(file_.substr(0, file_.find_last_of('/'))),
        runner_(runner),
        env_(env) {
    evidence_.push_back(absl::StrCat(file_, " runs the Mastodon image"));
  }
  v1::RuntimeKind kind() const override { return v1::RUNTIME_KIND_COMPOSE; }
  std::string name() const override { return "compose"; }

  absl::StatusOr<AppDatabase> Database() const override {
    ASSIGN_OR_RETURN(ParsedEnvFile env, ReadEnvFile(env_, dir_ + "/.env.production"));
    DbSettings db = DbSettingsOf(env);
    std::string host = db.host;
    // DB_HOST names a compose service ("db"): reach its container by its
    // address on the project network (Mastodon's compose file publishes no
    // PostgreSQL port).
    if (!absl::StartsWith(host, "/") && host != "localhost" &&
        host.find_first_not_of("0123456789.:") != std::string::npos) {
      ASSIGN_OR_RETURN(std::string id, Ask(runner_, layout_, Compose({"ps", "-q", host}), dir_));
      if (id.empty()) {
        return UnableTo(absl::StatusCode::kFailedPrecondition, "find the container of service",
                        host, "it is not running (docker compose up -d db)");
      }
      id = std::string(absl::StripAsciiWhitespace(id.substr(0, id.find('\n'))));
      ASSIGN_OR_RETURN(std::string ips,
                       Ask(runner_, layout_,
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

  absl::StatusOr<MediaLocation> Media() const override {
    MediaLocation media;
    media.dir = dir_ + "/public/system";
    media.uid = kImageUid;
    media.gid = kImageUid;
    media.owner = "991:991";
    return media;
  }

  std::vector<std::string> Services() const override { return {"web", "streaming", "sidekiq"}; }

  std::vector<CommandSpec> ServiceCommands(bool start) const override {
    std::vector<std::string> args = {start ? "start" : "stop"};
    for (const std::string& s : Services()) args.push_back(s);
    CommandSpec spec;
    spec.argv = Compose(args);
    spec.env = HostCommandEnv(layout_);
    spec.cwd = dir_;
    spec.timeout = absl::Minutes(5);
    return {spec};
  }

  absl::StatusOr<CommandSpec> Tootctl(const std::vector<std::string>& args) const override {
    std::vector<std::string> run = {"run", "--rm", "web", "bin/tootctl"};
    run.insert(run.end(), args.begin(), args.end());
    CommandSpec spec;
    spec.argv = Compose(run);
    spec.env = HostCommandEnv(layout_);
    spec.cwd = dir_;
    return spec;
  }

  absl::StatusOr<CommandSpec> DbMigrate(bool skip_post_deployment) const override {
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

  std::string CodeDir() const override { return ""; }
  std::string EnvFilePath() const override { return dir_ + "/.env.production"; }
  // The tag of the web service's image ("ghcr.io/mastodon/mastodon:v4.6.5").
  std::string MastodonVersion() const override {
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

 private:
  std::vector<std::string> Compose(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {"docker", "compose", "-f", file_};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }
  const HostLayout layout_;
  const std::string file_;
  const std::string dir_;
  CommandRunner* const runner_;
  Env* const env_;
};

// ---------------------------------------------------------------- systemd

class SystemdRuntime : public Runtime {
 public:
  SystemdRuntime(HostLayout layout, std::vector<std::string> units, CommandRunner* runner, Env* env)
      : layout_(std::move(layout)), units_(std::move(units)), runner_(runner), env_(env) {
    evidence_.push_back(absl::StrCat(layout_.app_dir, " has .env.production and bin/tootctl"));
    evidence_.push_back(
        absl::StrCat("units in ", layout_.systemd_unit_dir, ": ", absl::StrJoin(units_, " ")));
  }
  v1::RuntimeKind kind() const override { return v1::RUNTIME_KIND_SYSTEMD; }
  std::string name() const override { return "systemd"; }

  absl::StatusOr<AppDatabase> Database() const override {
    ASSIGN_OR_RETURN(ParsedEnvFile env, ReadEnvFile(env_, EnvFile()));
    DbSettings db = DbSettingsOf(env);
    return AppDatabase{ConnInfoFor(db, db.host), db.name, db.user};
  }

  absl::StatusOr<MediaLocation> Media() const override {
    MediaLocation media;
    media.dir = layout_.app_dir + "/public/system";
    auto env = ReadEnvFile(env_, EnvFile());
    if (env.ok()) {
      const std::string* root = env->Find("PAPERCLIP_ROOT_PATH");
      if (root != nullptr && absl::StartsWith(*root, "/")) media.dir = *root;
    }
    ASSIGN_OR_RETURN(FileOwner owner, env_->OwnerOf(layout_.app_dir));
    media.uid = owner.uid;
    media.gid = owner.gid;
    media.owner = User();
    return media;
  }

  std::vector<std::string> Services() const override { return units_; }

  std::vector<CommandSpec> ServiceCommands(bool start) const override {
    CommandSpec spec;
    spec.argv = {"systemctl", start ? "start" : "stop"};
    std::vector<std::string> units = units_;
    if (start) std::reverse(units.begin(), units.end());
    spec.argv.insert(spec.argv.end(), units.begin(), units.end());
    spec.env = HostCommandEnv(layout_);
    spec.timeout = absl::Minutes(5);
    return {spec};
  }

  absl::StatusOr<CommandSpec> Tootctl(const std::vector<std::string>& args) const override {
    CommandSpec spec = AsAppUser({"bin/tootctl"});
    spec.argv.insert(spec.argv.end(), args.begin(), args.end());
    return spec;
  }

  absl::StatusOr<CommandSpec> DbMigrate(bool skip_post_deployment) const override {
    CommandSpec spec = AsAppUser({"bundle", "exec", "rails", "db:migrate"});
    if (skip_post_deployment) spec.env.push_back("SKIP_POST_DEPLOYMENT_MIGRATIONS=true");
    return spec;
  }

  std::string CodeDir() const override { return layout_.app_dir; }
  std::string MastodonVersion() const override { return VersionOfCode(env_, layout_.app_dir); }
  std::string EnvFilePath() const override { return EnvFile(); }

 private:
  std::string EnvFile() const { return layout_.app_dir + "/.env.production"; }
  // The install's user: the owner of live/'s parent home ("mastodon").
  std::string User() const {
    std::string home = layout_.app_dir.substr(0, layout_.app_dir.find_last_of('/'));
    std::string user = home.substr(home.find_last_of('/') + 1);
    return user.empty() ? "mastodon" : user;
  }
  // runuser keeps the given environment and sets HOME, USER, LOGNAME and
  // SHELL for the user; rbenv's shims come first in PATH, as in the units.
  CommandSpec AsAppUser(const std::vector<std::string>& command) const {
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
  const HostLayout layout_;
  const std::vector<std::string> units_;
  CommandRunner* const runner_;
  Env* const env_;
};

// ---------------------------------------------------------------- detection

bool LooksLikeMastodonCompose(Env* env, const std::string& file) {
  auto text = env->ReadFile(file);
  return text.ok() && (absl::StrContains(*text, "mastodon/mastodon") ||
                       absl::StrContains(*text, "tootsuite/mastodon"));
}

std::string FindComposeFile(const HostLayout& layout, Env* env, std::vector<std::string>* checked) {
  std::vector<std::string> dirs = {layout.app_dir};
  dirs.insert(dirs.end(), layout.compose_dirs.begin(), layout.compose_dirs.end());
  for (const std::string& dir : dirs) {
    for (const char* name :
         {"docker-compose.yml", "docker-compose.yaml", "compose.yaml", "compose.yml"}) {
      std::string file = absl::StrCat(dir, "/", name);
      if (!env->Exists(file)) continue;
      if (LooksLikeMastodonCompose(env, file)) return file;
      checked->push_back(absl::StrCat(file, " does not run the Mastodon image"));
    }
  }
  checked->push_back(
      absl::StrCat("no compose file with the Mastodon image in ", absl::StrJoin(dirs, ", ")));
  return "";
}

std::vector<std::string> FindMastodonUnits(const HostLayout& layout, Env* env) {
  std::vector<std::string> units;
  auto names = env->ListDir(layout.systemd_unit_dir);
  if (!names.ok()) return units;
  for (const std::string& n : *names) {
    if (absl::StartsWith(n, "mastodon-") && absl::EndsWith(n, ".service") &&
        !absl::StrContains(n, "@")) {
      units.push_back(n.substr(0, n.size() - 8));
    }
  }
  // Stop order: the web first (no new work), sidekiq, streaming last.
  auto rank = [](const std::string& u) {
    return absl::StrContains(u, "web") ? 0 : absl::StrContains(u, "sidekiq") ? 1 : 2;
  };
  std::stable_sort(units.begin(), units.end(),
                   [&](const std::string& a, const std::string& b) { return rank(a) < rank(b); });
  return units;
}

}  // namespace

std::string ParseMastodonVersionRb(absl::string_view text) {
  // def major
  //   4
  // end
  auto number_after = [text](absl::string_view def) -> std::string {
    size_t at = text.find(def);
    if (at == absl::string_view::npos) return "";
    absl::string_view rest = absl::StripLeadingAsciiWhitespace(text.substr(at + def.size()));
    size_t n = 0;
    while (n < rest.size() && absl::ascii_isdigit(rest[n])) ++n;
    return std::string(rest.substr(0, n));
  };
  std::string major = number_after("def major");
  std::string minor = number_after("def minor");
  std::string patch = number_after("def patch");
  if (major.empty() || minor.empty() || patch.empty()) return "";
  return absl::StrCat(major, ".", minor, ".", patch);
}

std::vector<std::string> HostCommandEnv(const HostLayout& layout) {
  return {absl::StrCat("PATH=", layout.host_path), "LANG=C.UTF-8", "TERM=xterm"};
}

absl::StatusOr<std::unique_ptr<Runtime>> DetectRuntime(const std::string& requested,
                                                       const HostLayout& layout,
                                                       CommandRunner* runner, Env* env,
                                                       std::vector<std::string>* checked) {
  const bool any = requested == "auto";
  if (requested == "none") return std::unique_ptr<Runtime>();
  if (any || requested == "snap") {
    std::string wrapper = absl::StrCat(layout.snap_bin_dir, "/", kSnap, ".tootctl");
    if (env->IsExecutable(wrapper)) {
      return std::unique_ptr<Runtime>(new SnapRuntime(layout, runner, env));
    }
    checked->push_back(absl::StrCat("no ", wrapper));
    if (!any) {
      return UnableTo(absl::StatusCode::kFailedPrecondition, "use the snap runtime", wrapper,
                      "not installed (snap install mastodon-server)");
    }
  }
  if (any || requested == "systemd") {
    std::string env_file = layout.app_dir + "/.env.production";
    std::string tootctl = layout.app_dir + "/bin/tootctl";
    std::vector<std::string> units = FindMastodonUnits(layout, env);
    bool has_app = env->Exists(env_file) && env->Exists(tootctl);
    if (has_app && !units.empty()) {
      return std::unique_ptr<Runtime>(new SystemdRuntime(layout, units, runner, env));
    }
    checked->push_back(has_app ? absl::StrCat("no mastodon-*.service in ", layout.systemd_unit_dir)
                               : absl::StrCat("no source install in ", layout.app_dir));
    if (!any) {
      return UnableTo(
          absl::StatusCode::kFailedPrecondition, "use the systemd runtime", layout.app_dir,
          has_app ? "no mastodon-*.service unit" : "no .env.production and bin/tootctl");
    }
  }
  if (any || requested == "compose") {
    std::string file = FindComposeFile(layout, env, checked);
    if (!file.empty()) {
      return std::unique_ptr<Runtime>(new ComposeRuntime(layout, file, runner, env));
    }
    if (!any) {
      return UnableTo(absl::StatusCode::kFailedPrecondition, "use the compose runtime",
                      layout.app_dir, "no docker-compose.yml running the Mastodon image");
    }
  }
  if (!any) {
    return absl::InvalidArgumentError(absl::StrCat("unknown runtime ", Quote(requested),
                                                   " (auto, snap, compose, systemd, embedded)"));
  }
  return std::unique_ptr<Runtime>();
}

v1::RuntimeInfo DescribeRuntime(const Runtime& runtime, const std::string& requested, Env* env) {
  v1::RuntimeInfo info;
  info.set_kind(runtime.kind());
  info.set_requested(requested);
  for (const std::string& e : runtime.evidence()) info.add_evidence(e);
  info.set_mastodon_version(runtime.MastodonVersion());
  auto media = runtime.Media();
  if (media.ok()) {
    info.set_media_dir(media->dir);
    info.set_media_owner(media->owner);
    auto free = env->FreeBytes(media->dir);
    if (free.ok()) info.set_media_dir_free_bytes(*free);
  }
  return info;
}

}  // namespace mastodon_restore
