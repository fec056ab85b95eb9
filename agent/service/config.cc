#include "agent/service/config.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/net.h"
#include "agent/common/s3_client.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {

const std::vector<FlagSpec>& AgentFlagSpecs() {
  static const std::vector<FlagSpec>* specs = new std::vector<FlagSpec>{
      {"socket", "PATH", "unix socket to listen on (default /run/mastodon-restore/agent.sock)"},
      {"socket-group", "GROUP", "group allowed to use the socket, mode 0660 (default: none)"},
      {"listen", "HOST:PORT",
       "also listen on TCP; requires --tls-cert/--tls-key and --tokens or --tls-client-ca", true},
      {"tls-cert", "FILE", "PEM certificate chain for TCP listeners"},
      {"tls-key", "FILE", "PEM private key for TCP listeners"},
      {"tls-client-ca", "FILE", "PEM CA bundle; TCP clients must present a certificate it signs"},
      {"media-dir", "DIR", "media directory for media restores when no runtime names one"},
      {"media-root", "DIR",
       "directory a media directory named by the app's own config (PAPERCLIP_ROOT_PATH) must "
       "lie inside (default: none, such a directory is refused)",
       true},
      {"cluster-data-root", "DIR",
       "directory a PostgreSQL data directory must lie inside for a physical migration to "
       "replace its cluster (default /var/lib/postgresql)",
       true},
      {"free-space-floor", "BYTES",
       "free space media restores leave on the media filesystem, checked as data arrives "
       "(default 1073741824; the smaller of this and --free-space-floor-percent applies)"},
      {"free-space-floor-percent", "N", "the floor as a percentage of the filesystem (default 5)"},
      {"tokens", "FILE",
       "bearer tokens for TCP callers: 'NAME SCOPES SHA256' lines (read,operate)"},
      {"peers-file", "FILE",
       "other hosts' agents this one may drive (a migration's old host): 'NAME HOST:PORT TOKEN' "
       "lines, mode 0600"},
      {"peer-ca", "FILE",
       "PEM CA bundle that signs the peers' certificates (default: the system's)"},
      {"peer-cert", "FILE", "PEM client certificate this agent presents to peers (mutual TLS)"},
      {"peer-key", "FILE", "PEM key of --peer-cert"},
      {"insecure-loopback-tcp", "",
       "allow TCP on loopback addresses without TLS, tokens or client CA (tests only)"},
      {"max-unary-calls", "N", "unary calls running at once, more are refused (default 64)"},
      {"max-running-operations", "N", "operations running at once, more are refused (default 8)"},
      {"max-watchers", "N", "operation watch streams open at once (default 4096)"},
      {"state-dir", "DIR", "agent state directory, mode 0700 (default /var/lib/mastodon-restore)"},
      {"allowed-root", "DIR", "directory backups may be read from (default /var/backups/mastodon)",
       true},
      {"allowed-s3-endpoint", "URL",
       "S3-compatible service whose buckets may be read (https://...; default none)", true},
      {"runtime", "KIND", "auto, snap, compose, systemd, embedded or none (default auto)"},
      {"app-dir", "DIR",
       "source install or compose project directory (default /home/mastodon/live)"},
      {"snap-bin-dir", "DIR", "where the snap's commands are (default /snap/bin)"},
      {"snap-postgres", "CONNINFO",
       "how to reach the snap's PostgreSQL (default: its socket in the snap's private /tmp)"},
      {"snap-common-dir", "DIR",
       "the snap's $SNAP_COMMON with mastodon.conf (default /var/snap/mastodon-server/common)"},
      {"snap-app-dir", "DIR",
       "the snap's Mastodon code (default /var/snap/mastodon-server/current/mastodon)"},
      {"app-web-address", "HOST:PORT",
       "where the app's web server answers /health after a restore (default: the runtime's)"},
      {"app-streaming-address", "HOST:PORT",
       "where the streaming server answers its health (default: the runtime's)"},
      {"systemd-unit-dir", "DIR",
       "where mastodon-*.service units are (default /etc/systemd/system)"},
      {"redis-conf", "FILE",
       "systemd runtime: the Redis configuration (default /etc/redis/redis.conf)"},
      {"redis-service", "UNIT",
       "systemd runtime: the Redis unit a restore of its dump stops and starts "
       "(default redis-server)"},
      {"host-path", "PATH",
       "PATH for snap, docker, systemctl and runuser (default: the standard one)"},
      {"embedded-postgres", "DIR",
       "embedded runtime: the agent's PostgreSQL cluster directory (default <state-dir>.postgres)"},
      {"target-conninfo", "CONNINFO",
       "PostgreSQL server for restores when the request names none (prefer the config file)"},
      {"keep-operations", "N", "finished operation records kept (default 100)"},
      {"keep-operations-for", "DURATION",
       "drop finished operation records older than this (default 2160h: 90 days)"},
      {"log-level", "LEVEL", "debug, info, warning or error (default info)"},
      {"shutdown-grace", "DURATION", "time in-flight calls get on SIGTERM (default 10s)"},
      {"config", "FILE", "config file of 'name = value' lines with the same names as the flags"},
      {"version", "", "print the version and exit"},
      {"help", "", "print this help and exit", false, 'h'},
  };
  return *specs;
}

absl::StatusOr<AgentConfig> ConfigFromArgs(const ParsedArgs& args) {
  AgentConfig c;
  c.socket_path = args.Get("socket", c.socket_path);
  c.socket_group = args.Get("socket-group", c.socket_group);
  c.listen = args.GetAll("listen");
  c.tls_cert = args.Get("tls-cert");
  c.tls_key = args.Get("tls-key");
  c.tls_client_ca = args.Get("tls-client-ca");
  c.insecure_loopback_tcp = args.GetBool("insecure-loopback-tcp");
  c.tokens_file = args.Get("tokens");
  c.peers_file = args.Get("peers-file");
  c.peer_ca = args.Get("peer-ca");
  c.peer_cert = args.Get("peer-cert");
  c.peer_key = args.Get("peer-key");
  c.media_dir = args.Get("media-dir");
  c.media_roots = args.GetAll("media-root");
  if (args.Has("cluster-data-root")) c.cluster_data_roots = args.GetAll("cluster-data-root");
  if (args.Has("free-space-floor") &&
      (!absl::SimpleAtoi(args.Get("free-space-floor"), &c.free_space_floor_bytes) ||
       c.free_space_floor_bytes < 0)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid --free-space-floor '",
                                                   args.Get("free-space-floor"),
                                                   "': expected a number of bytes"));
  }
  if (args.Has("free-space-floor-percent") &&
      (!absl::SimpleAtoi(args.Get("free-space-floor-percent"), &c.free_space_floor_percent) ||
       c.free_space_floor_percent < 0 || c.free_space_floor_percent > 90)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid --free-space-floor-percent '",
                                                   args.Get("free-space-floor-percent"),
                                                   "': expected 0 to 90"));
  }
  c.state_dir = args.Get("state-dir", c.state_dir);
  if (args.Has("allowed-root")) c.allowed_roots = args.GetAll("allowed-root");
  for (const std::string& endpoint : args.GetAll("allowed-s3-endpoint")) {
    absl::StatusOr<std::string> canonical = CanonicalS3Endpoint(endpoint);
    if (!canonical.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid --allowed-s3-endpoint: ", canonical.status().message()));
    }
    c.allowed_s3_endpoints.push_back(*canonical);
  }
  c.runtime = args.Get("runtime", c.runtime);
  c.host.app_dir = args.Get("app-dir", c.host.app_dir);
  c.host.snap_bin_dir = args.Get("snap-bin-dir", c.host.snap_bin_dir);
  c.host.snap_postgres = args.Get("snap-postgres", c.host.snap_postgres);
  c.host.snap_app_dir = args.Get("snap-app-dir", c.host.snap_app_dir);
  c.host.snap_common_dir = args.Get("snap-common-dir", c.host.snap_common_dir);
  c.host.systemd_unit_dir = args.Get("systemd-unit-dir", c.host.systemd_unit_dir);
  c.host.redis_conf = args.Get("redis-conf", c.host.redis_conf);
  c.host.redis_service = args.Get("redis-service", c.host.redis_service);
  c.host.host_path = args.Get("host-path", c.host.host_path);
  c.host.app_web_address = args.Get("app-web-address");
  c.host.app_streaming_address = args.Get("app-streaming-address");
  for (const auto& [flag, address] :
       {std::pair<const char*, const std::string*>{"app-web-address", &c.host.app_web_address},
        {"app-streaming-address", &c.host.app_streaming_address}}) {
    std::string host;
    int port = 0;
    if (!address->empty()) {
      absl::Status ok = SplitHostPort(*address, &host, &port);
      if (!ok.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("invalid --", flag, ": ", ok.message()));
      }
    }
  }
  c.target_conninfo = args.Get("target-conninfo");
  c.embedded_postgres = args.Get("embedded-postgres", c.state_dir + ".postgres");
  if (args.Has("log-level") && !ParseLogLevel(args.Get("log-level"), &c.log_level)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid --log-level '", args.Get("log-level"),
                                                   "': expected debug, info, warning or error"));
  }
  if (args.Has("shutdown-grace") &&
      !absl::ParseDuration(args.Get("shutdown-grace"), &c.shutdown_grace)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid --shutdown-grace '", args.Get("shutdown-grace"), "': expected e.g. 10s or 1m"));
  }
  if (args.Has("keep-operations") &&
      (!absl::SimpleAtoi(args.Get("keep-operations"), &c.keep_operations) ||
       c.keep_operations < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("invalid --keep-operations '",
                                                   args.Get("keep-operations"),
                                                   "': expected a number of records, at least 1"));
  }
  if (args.Has("keep-operations-for") &&
      (!absl::ParseDuration(args.Get("keep-operations-for"), &c.keep_operations_for) ||
       c.keep_operations_for <= absl::ZeroDuration())) {
    return absl::InvalidArgumentError(absl::StrCat("invalid --keep-operations-for '",
                                                   args.Get("keep-operations-for"),
                                                   "': expected e.g. 720h"));
  }
  struct Cap {
    const char* flag;
    int* value;
  };
  for (const Cap& cap : {Cap{"max-unary-calls", &c.max_unary_calls},
                         Cap{"max-running-operations", &c.max_running_operations},
                         Cap{"max-watchers", &c.max_watchers}}) {
    if (args.Has(cap.flag) &&
        (!absl::SimpleAtoi(args.Get(cap.flag), cap.value) || *cap.value < 1)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "invalid --", cap.flag, " '", args.Get(cap.flag), "': expected a number, at least 1"));
    }
  }
  c.config_file = args.Get("config");
  RETURN_IF_ERROR(ValidateConfig(c));
  return c;
}

absl::Status ValidateListeners(const AgentConfig& c) {
  // A TCP listener needs TLS and a way to tell callers apart (bearer tokens
  // or client certificates): TLS alone lets anyone who reaches the port
  // operate the agent. The loopback test mode is the one exception.
  for (const std::string& address : c.listen) {
    std::string host;
    int port = 0;
    RETURN_IF_ERROR(SplitHostPort(address, &host, &port));
    const bool tls = !c.tls_cert.empty();
    const bool callers_known = !c.tokens_file.empty() || !c.tls_client_ca.empty();
    if (tls && callers_known) continue;
    if (c.insecure_loopback_tcp) {
      if (IsLoopbackHost(host)) continue;
      return absl::InvalidArgumentError(
          absl::StrCat("refusing to listen on '", address, "' without ",
                       tls ? "--tokens or --tls-client-ca" : "TLS",
                       ": --insecure-loopback-tcp allows loopback addresses only"));
    }
    if (!tls) {
      return absl::InvalidArgumentError(absl::StrCat(
          "refusing to listen on '", address,
          "' without TLS: give --tls-cert and --tls-key, and --tokens or --tls-client-ca "
          "(plaintext TCP is allowed only on loopback with --insecure-loopback-tcp, for tests)"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "refusing to listen on '", address,
        "' without caller authentication: TLS alone lets anyone who reaches the port call "
        "every method; give --tokens FILE (bearer tokens with scopes) or --tls-client-ca FILE "
        "(client certificates), or both"));
  }
  return absl::OkStatus();
}

absl::Status ValidateConfig(const AgentConfig& c) {
  auto require_absolute = [](absl::string_view flag, const std::string& path) {
    if (path.empty() || path[0] != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid --", flag, " '", path, "': must be an absolute path"));
    }
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(require_absolute("socket", c.socket_path));
  // sockaddr_un.sun_path holds 108 bytes including the NUL.
  if (c.socket_path.size() > 107) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid --socket '", c.socket_path, "': longer than 107 bytes"));
  }
  RETURN_IF_ERROR(require_absolute("state-dir", c.state_dir));
  if (!c.media_dir.empty()) RETURN_IF_ERROR(require_absolute("media-dir", c.media_dir));
  RETURN_IF_ERROR(require_absolute("embedded-postgres", c.embedded_postgres));
  for (const std::string& root : c.allowed_roots) {
    RETURN_IF_ERROR(require_absolute("allowed-root", root));
  }
  for (const std::string& root : c.media_roots) {
    RETURN_IF_ERROR(require_absolute("media-root", root));
  }
  for (const std::string& root : c.cluster_data_roots) {
    RETURN_IF_ERROR(require_absolute("cluster-data-root", root));
  }
  static const char* kRuntimes[] = {"auto", "snap", "compose", "systemd", "embedded", "none"};
  bool known = false;
  for (const char* r : kRuntimes) known = known || c.runtime == r;
  if (!known) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid --runtime '", c.runtime,
                     "': expected auto, snap, compose, systemd, embedded or none"));
  }
  RETURN_IF_ERROR(require_absolute("app-dir", c.host.app_dir));
  RETURN_IF_ERROR(require_absolute("snap-bin-dir", c.host.snap_bin_dir));
  RETURN_IF_ERROR(require_absolute("snap-app-dir", c.host.snap_app_dir));
  RETURN_IF_ERROR(require_absolute("snap-common-dir", c.host.snap_common_dir));
  RETURN_IF_ERROR(require_absolute("systemd-unit-dir", c.host.systemd_unit_dir));
  RETURN_IF_ERROR(require_absolute("redis-conf", c.host.redis_conf));
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!c.tokens_file.empty() && (c.listen.empty() || c.tls_cert.empty())) {
    return absl::InvalidArgumentError(
        "--tokens applies to TLS listeners: give --listen with "
        "--tls-cert and --tls-key");
  }
  if (c.peer_cert.empty() != c.peer_key.empty()) {
    return absl::InvalidArgumentError("--peer-cert and --peer-key go together");
  }
  if ((!c.peer_ca.empty() || !c.peer_cert.empty()) && c.peers_file.empty()) {
    return absl::InvalidArgumentError("--peer-ca, --peer-cert and --peer-key need --peers-file");
  }
  if (!c.tls_client_ca.empty() && c.tls_cert.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
  }
  RETURN_IF_ERROR(ValidateListeners(c));
  if (c.max_unary_calls < 1 || c.max_running_operations < 1 || c.max_watchers < 1) {
    return absl::InvalidArgumentError(
        "--max-unary-calls, --max-running-operations and --max-watchers must be at least 1");
  }
  if (c.shutdown_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--shutdown-grace must not be negative");
  }
  return absl::OkStatus();
}

absl::StatusOr<AgentCommandLine> ParseAgentCommandLine(const std::vector<std::string>& args,
                                                       Env* env) {
  ASSIGN_OR_RETURN(ParsedArgs flags, ParseArgs(args, AgentFlagSpecs()));
  if (!flags.positional().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unexpected argument '", flags.positional().front(), "' (the agent takes flags only)"));
  }
  AgentCommandLine out;
  out.help = flags.GetBool("help");
  out.version = flags.GetBool("version");
  if (out.help || out.version) return out;
  ParsedArgs merged = flags;
  if (flags.Has("config")) {
    const std::string file = flags.Get("config");
    auto text = env->ReadFile(file);
    if (!text.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unable to read config file: ", text.status().message()));
    }
    ASSIGN_OR_RETURN(ParsedArgs from_file, ParseConfigText(*text, AgentFlagSpecs(), file));
    if (from_file.Has("config") || from_file.Has("help") || from_file.Has("version")) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": 'config', 'help' and 'version' are command-line only"));
    }
    merged = MergeArgs(from_file, flags);
  }
  ASSIGN_OR_RETURN(out.config, ConfigFromArgs(merged));
  return out;
}

std::string AgentUsage() {
  return absl::StrCat(
      "usage: mastodon-restore-agent [flags]\n\n"
      "The mastodon-restore agent: restores Mastodon instances from backups on this host,\n"
      "under control of the mastodon-restore CLI or a remote controller (gRPC API\n"
      "mastodon.restore.v1.RestoreAgentService).\n\n"
      "flags:\n",
      FormatFlagHelp(AgentFlagSpecs()),
      "\nEvery flag may also be set in the --config file as 'name = value' (without '--');\n"
      "flags on the command line win over the file.\n");
}

}  // namespace mastodon_restore
