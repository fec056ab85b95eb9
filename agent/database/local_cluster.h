// A PostgreSQL cluster that the agent (or a test) creates and owns: initdb in
// a directory, a private socket directory, a free port, started as an
// unprivileged user. Used by the embedded runtime, the test harness and the
// benchmarks.
#ifndef MR_AGENT_DATABASE_LOCAL_CLUSTER_H_
#define MR_AGENT_DATABASE_LOCAL_CLUSTER_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/common/env.h"
#include "agent/common/subprocess.h"

namespace mastodon_restore {

struct LocalClusterOptions {
  // Directory with initdb, postgres. Default: the newest
  // /usr/lib/postgresql/<major>/bin.
  std::string bin_dir;
  // Directory that holds data/, sockets/ and postgres.log. Must exist and be
  // writable by the server's user.
  std::string base_dir;
  // The socket directory; empty: base_dir/sockets. (A socket's path must
  // be shorter than 108 bytes.)
  std::string socket_dir;
  // TCP port (and socket name). 0: pick a free port.
  int port = 0;
  // Also listen on 127.0.0.1 (otherwise the socket only).
  bool listen_tcp = true;
  // Run initdb and the server as this user/group. Required when the caller is
  // root (PostgreSQL refuses to run as root).
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  // Superuser name given to initdb.
  std::string superuser = "postgres";
  // initdb --locale.
  std::string locale = "C.UTF-8";
  // Extra server settings, "name=value" (passed as -c name=value).
  std::vector<std::string> settings;
  // Settings that make a throwaway server fast (fsync=off, ...).
  bool fast_unsafe = false;
  // Stop the server when the thread that started it exits (tests).
  bool stop_with_parent = false;
  absl::Duration start_timeout = absl::Seconds(60);
};

class LocalCluster {
 public:
  // Initialises the cluster when `base_dir/data` holds none, then starts it
  // and waits until it accepts connections. With a fixed `port`, a server
  // already running on that data directory (left by a killed owner) is
  // adopted instead. On failure the error carries the
  // tail of the server log. `runner` and `env` must outlive the cluster.
  static absl::StatusOr<std::unique_ptr<LocalCluster>> Start(const LocalClusterOptions& options,
                                                             CommandRunner* runner, Env* env);

  // Stops the server (fast shutdown) if it still runs.
  ~LocalCluster();

  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  // Fast shutdown; waits for the server to exit (immediate shutdown after
  // 30 s). Idempotent.
  absl::Status Stop();
  // Starts the server again after Stop() (same data, port and settings);
  // a server still running is stopped first.
  absl::Status Restart();

  const std::string& data_dir() const { return data_dir_; }
  const std::string& socket_dir() const { return socket_dir_; }
  const std::string& log_file() const { return log_file_; }
  const std::string& bin_dir() const { return options_.bin_dir; }
  int port() const { return port_; }
  // Major version of the server binaries (e.g. 15).
  int major_version() const { return major_version_; }

  // libpq conninfo for `dbname` as the superuser over the socket.
  std::string ConnInfo(const std::string& dbname = "postgres") const;
  // libpq conninfo over TCP on 127.0.0.1 (requires listen_tcp).
  std::string TcpConnInfo(const std::string& dbname = "postgres") const;
  // Last `max_bytes` of the server log.
  std::string LogTail(size_t max_bytes = 4000) const;

 private:
  LocalCluster(LocalClusterOptions options, CommandRunner* runner, Env* env);
  absl::Status InitDb();
  absl::Status StartServer();

  LocalClusterOptions options_;
  CommandRunner* const runner_;
  Env* const env_;
  std::string data_dir_;
  std::string socket_dir_;
  std::string log_file_;
  int port_ = 0;
  int major_version_ = 0;
  std::unique_ptr<Process> server_;
  // The pid of a server found running at Start() (not our child).
  int adopted_pid_ = 0;
};

// When the caller is root, sets `options` to run the server as `user`
// (PostgreSQL refuses root). FAILED_PRECONDITION when that user is missing.
absl::Status RunAsUnprivilegedUserIfRoot(LocalClusterOptions* options,
                                         const std::string& user = "postgres");

// Creates a fresh directory "<parent>/<prefix>XXXXXX" (mode 0755) owned by the
// server's user of `options`, for options.base_dir.
absl::StatusOr<std::string> CreateClusterBaseDir(const std::string& parent,
                                                 const std::string& prefix,
                                                 const LocalClusterOptions& options);

// Quotes a libpq conninfo value: 'value' with backslash and quote escaped.
std::string ConnInfoQuote(const std::string& value);

// Where Debian installs PostgreSQL's binaries, one directory per major
// (<root>/<major>/bin); the default of every `postgres_root`.
inline constexpr char kDefaultPostgresRoot[] = "/usr/lib/postgresql";

// Major versions with PostgreSQL binaries under `root` (normally
// /usr/lib/postgresql), ascending, that have `program` in bin/.
std::vector<int> InstalledPostgresVersions(Env* env, const std::string& root,
                                           const std::string& program);

// A TCP port on 127.0.0.1 that was free a moment ago.
absl::StatusOr<int> PickFreePort();

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_LOCAL_CLUSTER_H_
