#include "agent/app/runtime.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/app/app_bucket.h"
#include "agent/app/compose_runtime.h"
#include "agent/app/env_file.h"
#include "agent/app/snap_runtime.h"
#include "agent/app/systemd_runtime.h"
#include "agent/common/errors.h"
#include "agent/common/net.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace v1 = ::mastodon::restore::v1;
namespace {

std::string Quote(const std::string& s) { return absl::StrCat("'", s, "'"); }

// A libpq conninfo value, quoted.
std::string ConnValue(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "'";
}

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

absl::StatusOr<CommandResult> RunHostCheck(CommandRunner* runner, const HostLayout& layout,
                                           std::vector<std::string> argv, const std::string& cwd) {
  CommandSpec spec;
  spec.argv = std::move(argv);
  spec.env = HostCommandEnv(layout);
  spec.cwd = cwd;
  spec.timeout = absl::Seconds(60);
  return runner->Run(spec, nullptr);
}

absl::Status Runtime::SidekiqRunning() const {
  return absl::FailedPreconditionError(absl::StrCat("the ", name(), " runtime runs no sidekiq"));
}

absl::StatusOr<HealthEndpoint> EndpointAt(const std::string& name, const std::string& path,
                                          const std::string& override_address,
                                          const std::string& host, int port,
                                          const std::string& source) {
  HealthEndpoint e;
  e.name = name;
  e.path = path;
  if (!override_address.empty()) {
    RETURN_IF_ERROR(SplitHostPort(override_address, &e.host, &e.port));
    e.source = "the agent's configuration";
    return e;
  }
  e.host = host;
  e.port = port;
  e.source = source;
  return e;
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
    std::string wrapper = SnapRuntime::Wrapper(layout, "tootctl");
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

// ---------------------------------------------------------------- shared

absl::StatusOr<std::string> RunHostQuery(CommandRunner* runner, const HostLayout& layout,
                                         std::vector<std::string> argv, const std::string& cwd) {
  const std::string command = absl::StrJoin(argv, " ");
  ASSIGN_OR_RETURN(CommandResult result, RunHostCheck(runner, layout, std::move(argv), cwd));
  if (!result.success()) {
    std::string err(absl::StripAsciiWhitespace(result.stderr_text));
    return UnableTo(absl::StatusCode::kFailedPrecondition, "run", command,
                    absl::StrCat(result.Describe(), err.empty() ? "" : ": ", err));
  }
  return std::string(absl::StripAsciiWhitespace(result.stdout_text));
}

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

namespace {

// "%40" -> "@" (a URL's user information); other text as it is.
std::string PercentDecode(absl::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); ++i) {
    int hex = 0;
    if (in[i] == '%' && i + 2 < in.size() && absl::SimpleHexAtoi(in.substr(i + 1, 2), &hex)) {
      out.push_back(static_cast<char>(hex));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

}  // namespace

RedisAddress RedisAddressOf(const ParsedEnvFile& env, const RedisAddress& fallback) {
  RedisAddress out = fallback;
  auto set = [&env](const char* key, std::string* to) {
    const std::string* v = env.Find(key);
    if (v != nullptr && !v->empty()) *to = *v;
  };
  const std::string* url = env.Find("REDIS_URL");
  absl::string_view rest;
  if (url != nullptr &&
      (absl::StartsWith(*url, "redis://") || absl::StartsWith(*url, "rediss://"))) {
    rest = absl::string_view(*url).substr(url->find("://") + 3);
    rest = rest.substr(0, rest.find_first_of("/?"));
    if (size_t at = rest.rfind('@'); at != absl::string_view::npos) {
      absl::string_view user_info = rest.substr(0, at);
      rest = rest.substr(at + 1);
      size_t colon = user_info.find(':');
      out.username = PercentDecode(user_info.substr(0, colon));
      out.password =
          colon == absl::string_view::npos ? "" : PercentDecode(user_info.substr(colon + 1));
    }
    size_t colon = rest.rfind(':');
    int port = 0;
    if (colon != absl::string_view::npos && absl::SimpleAtoi(rest.substr(colon + 1), &port)) {
      out.port = port;
      rest = rest.substr(0, colon);
    }
    if (!rest.empty()) out.host = std::string(rest);
    return out;
  }
  set("REDIS_HOST", &out.host);
  std::string port;
  set("REDIS_PORT", &port);
  int p = 0;
  if (absl::SimpleAtoi(port, &p)) out.port = p;
  set("REDIS_USER", &out.username);
  set("REDIS_PASSWORD", &out.password);
  return out;
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
  auto bucket = RuntimeMediaBucket(runtime, env);
  if (bucket.ok()) info.set_media_bucket(*bucket);
  return info;
}

absl::StatusOr<std::string> RuntimeMediaBucket(const Runtime& runtime, Env* env) {
  if (runtime.EnvFilePath().empty()) return std::string();
  absl::StatusOr<ParsedEnvFile> parsed = ReadEnvFile(env, runtime.EnvFilePath());
  if (!parsed.ok()) return std::string();
  ASSIGN_OR_RETURN(std::optional<S3Options> bucket, AppBucket(*parsed));
  if (!bucket.has_value()) return std::string();
  return absl::StrCat(bucket->endpoint, "/", bucket->bucket);
}

}  // namespace mastodon_restore
