// Where and how Mastodon runs on this host: one interface, four runtimes.
//
//   snap      the mastodon-server snap (/snap/bin/mastodon-server.*)
//             snap_runtime.h
//   compose   Mastodon's docker-compose.yml (docker compose)
//             compose_runtime.h
//   systemd   a source install (~mastodon/live, mastodon-*.service units)
//             systemd_runtime.h
//   embedded  no Mastodon: a PostgreSQL cluster the agent owns
//             embedded_runtime.h
//
// A runtime answers where the database and the media are and builds the
// commands that stop and start the app and run its tasks (tootctl, db
// migrate). It builds commands; the caller runs them (argv only, explicit
// environment, no secrets on argv).
//
// This file holds the interface, the detection and what the runtimes
// share; each runtime is in its own file.
#ifndef MR_AGENT_APP_RUNTIME_H_
#define MR_AGENT_APP_RUNTIME_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "agent/app/env_file.h"
#include "agent/common/env.h"
#include "agent/common/redis_probe.h"
#include "agent/common/subprocess.h"
#include "mastodon/restore/v1/agent_service.pb.h"

namespace mastodon_restore {

// Where the runtimes look. The defaults are the real locations; unusual
// hosts and tests override them (agent flags of the same names).
struct HostLayout {
  // The snap's command wrappers.
  std::string snap_bin_dir = "/snap/bin";
  // How the agent reaches the snap's PostgreSQL (its socket lives in the
  // snap's private /tmp; user postgres, trust).
  std::string snap_postgres =
      "host=/tmp/snap-private-tmp/snap.mastodon-server/tmp/sockets/postgres port=5432 "
      "user=postgres";
  // The snap's $SNAP_COMMON (mastodon.conf, the env file).
  std::string snap_common_dir = "/var/snap/mastodon-server/common";
  // The snap's Mastodon code ($SNAP_DATA/mastodon: db/migrate,
  // db/post_migrate).
  std::string snap_app_dir = "/var/snap/mastodon-server/current/mastodon";
  // A source install's (or a compose project's) directory.
  std::string app_dir = "/home/mastodon/live";
  // Other directories searched for a compose project.
  std::vector<std::string> compose_dirs = {"/opt/mastodon", "/srv/mastodon"};
  // Where systemd units of a source install are.
  std::string systemd_unit_dir = "/etc/systemd/system";
  // systemd runtime: Redis's configuration (its dir, dbfilename and
  // appendonly) and unit.
  std::string redis_conf = "/etc/redis/redis.conf";
  std::string redis_service = "redis-server";
  // PATH of the commands the agent runs (snap, docker, systemctl, runuser).
  std::string host_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  // Where the app's web and streaming servers answer ("HOST:PORT"), when
  // not where the runtime says (a proxy in front, ports moved); "": the
  // runtime's.
  std::string app_web_address;
  std::string app_streaming_address;
};

// Where a server of the app answers, and the path that says it is healthy.
struct HealthEndpoint {
  std::string name;  // "web", "streaming"
  std::string host;  // an IP address or "localhost"
  int port = 0;
  std::string path;  // "/health", "/api/v1/streaming/health"
  // Where the address came from ("PORT in mastodon-web.service").
  std::string source;
};

// The Redis the app uses, where the runtime manages it: the file it loads
// at start, how to stop and start it, and how to ask what it holds.
struct RedisStore {
  std::string data_dir;   // "/var/lib/redis"
  std::string file_name;  // "dump.rdb"; the snap's "redis.rdb"
  // Stop saves the dataset into the file (a shutdown with save points), so
  // the file is replaced only between stop and start.
  std::vector<CommandSpec> stop;
  std::vector<CommandSpec> start;
  // Where it answers INFO: over TCP at `address`, or, when it publishes no
  // port (compose), through `info_command` (redis-cli INFO in its
  // container).
  RedisAddress address;
  std::optional<CommandSpec> info_command;
  // Where this was learnt ("redis.conf's dir and dbfilename").
  std::string source;
};

// Mastodon's database as the runtime serves it.
struct AppDatabase {
  // libpq conninfo of the server, for a role that may create databases.
  // May hold a password: never log it.
  std::string conninfo;
  // The live database ("" when the runtime has none: take the backup's).
  std::string database;
  // The role Mastodon connects as; restored objects belong to it ("" when
  // unknown: keep the dump's owners).
  std::string owner;
};

// Mastodon's media directory and who must own what is written there.
struct MediaLocation {
  std::string dir;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  // "snap_daemon:root", "991:991", "mastodon".
  std::string owner;
  // Set when `dir` was read from a file the app user can write (e.g.
  // "PAPERCLIP_ROOT_PATH in /home/mastodon/live/.env.production", which a
  // restored config may also have installed): the agent then writes there
  // only when it lies inside a media root it was configured with
  // (--media-root, --media-dir).
  std::string from_app_file;
};

class Runtime {
 public:
  virtual ~Runtime() = default;

  virtual mastodon::restore::v1::RuntimeKind kind() const = 0;
  // "snap", "compose", "systemd", "embedded".
  virtual std::string name() const = 0;
  // What led to this runtime (paths and commands found).
  const std::vector<std::string>& evidence() const { return evidence_; }

  // The database; may run a command (compose: find the db container).
  virtual absl::StatusOr<AppDatabase> Database() const = 0;
  // The media directory; may run a command (snap: snap get).
  virtual absl::StatusOr<MediaLocation> Media() const = 0;

  // The app services, in stop order (PostgreSQL and Redis are not among
  // them: restores and tasks need those running).
  virtual std::vector<std::string> Services() const = 0;
  // Commands that stop or start Services() (start: in reverse order).
  // Empty when the runtime runs no app.
  virtual std::vector<CommandSpec> ServiceCommands(bool start) const = 0;

  // `tootctl ARGS` with the app's user, directory and environment.
  // FAILED_PRECONDITION when the runtime runs no app.
  virtual absl::StatusOr<CommandSpec> Tootctl(const std::vector<std::string>& args) const = 0;
  // `rails db:migrate`; with `skip_post_deployment`,
  // SKIP_POST_DEPLOYMENT_MIGRATIONS=true. The snap's db-migrate asks
  // "[y/N]": the spec answers it on stdin.
  virtual absl::StatusOr<CommandSpec> DbMigrate(bool skip_post_deployment) const = 0;
  // The app's env file on this host (snap: mastodon.conf; others:
  // .env.production); "" when the runtime has none (embedded).
  virtual std::string EnvFilePath() const = 0;
  // Mastodon's version ("4.6.1") when the runtime can tell without running
  // the app (version.rb in the code, the compose image tag); "" otherwise.
  virtual std::string MastodonVersion() const = 0;
  // The app's code directory when the agent can read it (it holds
  // db/migrate and db/post_migrate); "" otherwise (compose: inside the
  // image).
  virtual std::string CodeDir() const = 0;

  // The web server's /health and the streaming server's
  // /api/v1/streaming/health, where this runtime runs them
  // (HostLayout::app_*_address override it); empty when the runtime runs
  // no app. May run a command (compose: docker compose port).
  virtual absl::StatusOr<std::vector<HealthEndpoint>> HealthEndpoints() const {
    return std::vector<HealthEndpoint>();
  }
  // Whether the app's sidekiq processes run, as the host's service manager
  // sees them: OK, or FAILED_PRECONDITION naming what does not run. Runs a
  // command (systemctl is-active, snap services, docker compose ps).
  virtual absl::Status SidekiqRunning() const;
  // The Redis the app uses, when this runtime manages it (its service and
  // data directory); FAILED_PRECONDITION saying why not (embedded: none;
  // an append-only Redis, which would load its AOF and not the dump).
  virtual absl::StatusOr<RedisStore> Redis() const {
    return absl::FailedPreconditionError(
        absl::StrCat("the ", name(), " runtime manages no Redis on this host"));
  }

 protected:
  std::vector<std::string> evidence_;
};

// Picks the runtime: `requested` is "auto", "snap", "compose", "systemd" or
// "none" ("embedded" is made by the daemon: it starts a cluster). "auto"
// tries snap, then systemd, then compose, and returns nullptr when none is
// found; `checked` then lists what was looked at. An explicit runtime that
// is not installed is FAILED_PRECONDITION naming what is missing.
absl::StatusOr<std::unique_ptr<Runtime>> DetectRuntime(const std::string& requested,
                                                       const HostLayout& layout,
                                                       CommandRunner* runner, Env* env,
                                                       std::vector<std::string>* checked);

// The runtime as GetAgentInfo shows it (media directory and free space
// included when they can be found, and the bucket when the app keeps its
// media in one).
mastodon::restore::v1::RuntimeInfo DescribeRuntime(const Runtime& runtime,
                                                   const std::string& requested, Env* env);

// The bucket the runtime's app keeps its media in, as its env file
// (EnvFilePath) configures it: "<endpoint>/<bucket>" (the endpoint in
// CanonicalS3Endpoint form; never a credential), or "" when the env keeps
// them local or cannot be read. INVALID_ARGUMENT when it enables S3
// without a bucket or keys.
absl::StatusOr<std::string> RuntimeMediaBucket(const Runtime& runtime, Env* env);

// The version in Mastodon's lib/mastodon/version.rb text ("4.6.1"), or "".
std::string ParseMastodonVersionRb(absl::string_view text);

// The base environment of app commands: PATH from `layout`, LANG, TERM.
std::vector<std::string> HostCommandEnv(const HostLayout& layout);

// ------------------------------------------------------------------------
// Shared by the runtimes' implementations.

// Runs a short query command of the host (snap get, docker compose ps,
// docker inspect) with HostCommandEnv(layout), in `cwd` ("" for the
// agent's), with a 60 s timeout and no cancellation, and returns its stdout
// without surrounding whitespace. A non-zero exit is FAILED_PRECONDITION
// naming the command and its stderr; a program that cannot be started is
// the runner's error.
absl::StatusOr<std::string> RunHostQuery(CommandRunner* runner, const HostLayout& layout,
                                         std::vector<std::string> argv,
                                         const std::string& cwd = "");

// RunHostQuery for a command whose exit code is an answer (systemctl
// is-active): its result whatever the exit code; only a program that
// cannot be started is an error.
absl::StatusOr<CommandResult> RunHostCheck(CommandRunner* runner, const HostLayout& layout,
                                           std::vector<std::string> argv,
                                           const std::string& cwd = "");

// Mastodon's database settings in its env file, with config/database.yml's
// defaults for keys missing or empty.
struct DbSettings {
  std::string host = "localhost";            // DB_HOST
  std::string port = "5432";                 // DB_PORT
  std::string name = "mastodon_production";  // DB_NAME
  std::string user = "mastodon";             // DB_USER
  std::string password;                      // DB_PASS (a secret)
  std::string sslmode;                       // DB_SSLMODE ("": libpq's default)
};
DbSettings DbSettingsOf(const ParsedEnvFile& env);

// The libpq conninfo of `db` with `host` instead of db.host; every value
// quoted, the password and sslmode only when set.
std::string ConnInfoFor(const DbSettings& db, const std::string& host);

// The endpoint `name` at `override_address` ("HOST:PORT", from HostLayout)
// when set, else at `host`:`port` learnt from `source`. INVALID_ARGUMENT for
// a malformed override.
absl::StatusOr<HealthEndpoint> EndpointAt(const std::string& name, const std::string& path,
                                          const std::string& override_address,
                                          const std::string& host, int port,
                                          const std::string& source);

// Where Mastodon connects to Redis by its env: REDIS_URL
// ("redis://[user:password@]host:port[/db]"), else REDIS_HOST, REDIS_PORT,
// REDIS_USER and REDIS_PASSWORD, with `fallback`'s values for what is unset.
RedisAddress RedisAddressOf(const ParsedEnvFile& env, const RedisAddress& fallback);

// Reads and parses the env file at `path` (the Env's error when it cannot
// be read).
absl::StatusOr<ParsedEnvFile> ReadEnvFile(Env* env, const std::string& path);

// The version in `code_dir`/lib/mastodon/version.rb, or "" when it cannot be
// read or parsed.
std::string VersionOfCode(Env* env, const std::string& code_dir);

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_RUNTIME_H_
