// The agent's configuration: one struct with documented defaults, filled from
// an optional config file overlaid by the command line.
#ifndef MR_AGENT_SERVICE_CONFIG_H_
#define MR_AGENT_SERVICE_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/app/runtime.h"
#include "agent/common/args.h"
#include "agent/common/env.h"
#include "agent/common/logging.h"

namespace mastodon_restore {

struct AgentConfig {
  // Unix socket the agent listens on (local credentials).
  // Default: /run/mastodon-restore/agent.sock. Its parent directory is created.
  std::string socket_path = "/run/mastodon-restore/agent.sock";
  // Group that may use the socket (mode 0660). Default: "" (the agent's own
  // group only).
  std::string socket_group;
  // TCP listeners, "HOST:PORT". Each needs TLS (tls_cert and tls_key) and a
  // way to tell callers apart (tokens_file or tls_client_ca), unless
  // insecure_loopback_tcp is set and HOST is a loopback address.
  // Default: none.
  std::vector<std::string> listen;
  // PEM server certificate chain and key for TCP listeners. Default: none.
  std::string tls_cert;
  std::string tls_key;
  // PEM CA bundle; when set, TCP clients must present a certificate it signs.
  // Default: none.
  std::string tls_client_ca;
  // The media directory restores write into when no runtime names one; a
  // request's media_dir must be it or lie inside it. Default: none.
  std::string media_dir;
  // Directories a media directory read from a file the app user can write
  // (PAPERCLIP_ROOT_PATH in .env.production) must lie inside; outside them
  // (and outside media_dir) such a directory is refused. Default: none.
  std::vector<std::string> media_roots;
  // Directories a PostgreSQL data directory must lie inside for a physical
  // migration to replace its cluster (renames in its parent directory).
  std::vector<std::string> cluster_data_roots = {"/var/lib/postgresql"};
  // Free space media restores leave on the media filesystem, checked as
  // the data arrives: the smaller of these bytes and this percentage of
  // its size. Defaults: 1 GiB, 5%.
  int64_t free_space_floor_bytes = int64_t{1} << 30;
  int free_space_floor_percent = 5;
  // Token file for TCP callers ("NAME SCOPES SHA256" lines); when set, every
  // TCP call needs a bearer token with the right scope. Default: none.
  std::string tokens_file;
  // Other hosts' agents this one may drive (a migration's old host):
  // "NAME HOST:PORT TOKEN" lines (common/peer_agent.h), mode 0600; the
  // peers' certificates are checked against peer_ca (default: the system's
  // roots) and this agent presents peer_cert/peer_key (mutual TLS) when
  // set. Plaintext only to loopback peers with insecure_loopback_tcp.
  // Default: none.
  std::string peers_file;
  std::string peer_ca;
  std::string peer_cert;
  std::string peer_key;
  // Allows TCP on loopback addresses without TLS, tokens or a client CA
  // (tests only). Default: false.
  bool insecure_loopback_tcp = false;
  // Unary calls running at once (each holds a thread while it reads
  // backups or waits for PostgreSQL); more are RESOURCE_EXHAUSTED.
  // Default: 64.
  int max_unary_calls = 64;
  // Operations running at once (restores, verifies, app tasks); more are
  // RESOURCE_EXHAUSTED. Default: 8.
  int max_running_operations = 8;
  // WatchOperation streams open at once, all operations together; more are
  // RESOURCE_EXHAUSTED. Default: 4096.
  int max_watchers = 4096;
  // Where operation records and agent state live; created with mode 0700.
  // Default: /var/lib/mastodon-restore.
  std::string state_dir = "/var/lib/mastodon-restore";
  // Directories backups may be read from. Default: /var/backups/mastodon.
  std::vector<std::string> allowed_roots = {"/var/backups/mastodon"};
  // Endpoints of the S3-compatible services whose buckets callers may name
  // as a source (CanonicalS3Endpoint form: "https://s3.example.com"). The
  // agent sends requests nowhere else. Default: none.
  std::vector<std::string> allowed_s3_endpoints;
  // Which Mastodon runtime to use: auto, snap, compose, systemd, embedded,
  // none. "auto" looks for the snap, a systemd source install, then a
  // compose project, and uses none when it finds nothing. Default: auto.
  std::string runtime = "auto";
  // Where the runtimes look (--app-dir, --snap-bin-dir, --snap-postgres,
  // --snap-app-dir, --systemd-unit-dir, --host-path). Defaults: the real locations.
  HostLayout host;
  // With the embedded runtime: the directory of the agent's own PostgreSQL
  // cluster (owned by the postgres user). Default: <state-dir>.postgres.
  std::string embedded_postgres;
  // The PostgreSQL server restores go to when neither a runtime nor the
  // request names one (libpq conninfo or URI). It may hold a password: prefer
  // the config file (mode 0600) or a ~/.pgpass. Never logged. Default: none.
  std::string target_conninfo;
  // Finished operation records kept: at most this many, none older than
  // keep_operations_for. Defaults: 100, 90 days.
  int keep_operations = 100;
  absl::Duration keep_operations_for = absl::Hours(24 * 90);
  // Minimum level of log lines. Default: info.
  LogLevel log_level = LogLevel::kInfo;
  // On SIGTERM, in-flight calls get this long before they are cancelled.
  // Default: 10s.
  absl::Duration shutdown_grace = absl::Seconds(10);
  // The config file that was loaded ("" when none).
  std::string config_file;
};

// Every agent flag (also accepted as a config-file setting, without "--").
const std::vector<FlagSpec>& AgentFlagSpecs();

// What the command line asks for.
struct AgentCommandLine {
  bool help = false;
  bool version = false;
  AgentConfig config;
};

// Parses the command line (without the program name): loads --config FILE
// through `env` when given, overlays the command-line flags, and validates.
// Errors are INVALID_ARGUMENT naming the flag or the file and line.
absl::StatusOr<AgentCommandLine> ParseAgentCommandLine(const std::vector<std::string>& args,
                                                       Env* env);

// Builds a config from parsed flags (pure) and checks it.
absl::StatusOr<AgentConfig> ConfigFromArgs(const ParsedArgs& args);
absl::Status ValidateConfig(const AgentConfig& config);
// The TCP listeners' part of ValidateConfig (the daemon checks it again at
// start): each needs TLS and tokens or a client CA, except loopback
// addresses with insecure_loopback_tcp. INVALID_ARGUMENT naming the flags
// to add otherwise.
absl::Status ValidateListeners(const AgentConfig& config);

// The agent's flags (the command line and the --config file): --help and
// the manual page mastodon-restore-agent(8) come from them.
const std::vector<FlagSpec>& AgentFlagSpecs();

// Usage text for --help.
std::string AgentUsage();

}  // namespace mastodon_restore

#endif  // MR_AGENT_SERVICE_CONFIG_H_
