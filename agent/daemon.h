// The agent process: listeners, the gRPC server with health and reflection,
// and orderly shutdown.
#ifndef MR_AGENT_DAEMON_H_
#define MR_AGENT_DAEMON_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "agent/common/env.h"
#include "agent/common/logging.h"
#include "agent/common/subprocess.h"
#include "agent/service/config.h"
#include "agent/service/local_peers.h"
#include "mastodon/restore/v1/operation.pb.h"

namespace grpc {
class Server;
}

namespace mastodon_restore {

class AgentService;
class TokenTable;
class AppHolds;
class PeerConnector;
class EmbeddedRuntime;
class Runtime;
class OperationManager;
struct RuntimeContext;

class Daemon {
 public:
  // `env`, `runner` and `logger` must outlive the daemon.
  Daemon(AgentConfig config, Env* env, CommandRunner* runner, Logger* logger);
  ~Daemon();

  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // Creates the state directory (0700) and the socket's parent directory,
  // binds the unix socket (mode 0660, group socket_group) and every TCP
  // listener, and starts serving. FAILED_PRECONDITION when another agent
  // already listens on the socket or a non-socket file is in the way.
  absl::Status Start();

  // Stops accepting calls, gives in-flight calls config.shutdown_grace, then
  // cancels them and removes the socket. Thread-safe and idempotent.
  void Shutdown();

  // Blocks until the server has shut down.
  void Wait();

  // Ports bound for config.listen, in order (useful with port 0).
  const std::vector<int>& tcp_ports() const { return tcp_ports_; }
  // The gRPC service (null before Start), for test hooks.
  AgentService* service() { return service_.get(); }
  // The operations (null before Start), for test hooks.
  OperationManager* operations() { return operations_.get(); }

 private:
  absl::Status PrepareSocketPath();
  absl::Status SecureSocket();
  // The unix socket: bound 0660 with the configured group; a thread accepts
  // connections, refuses peers that are not root, the agent's user or in
  // the socket's group (SO_PEERCRED), records who they are and hands them
  // to the server.
  absl::Status ListenLocal();
  void AcceptLocal();
  void StopLocal();
  bool MayUseLocalSocket(pid_t pid, uid_t uid, gid_t gid) const;
  // Recovery of interrupted_ from their journals (jobs/recovery.h), before
  // the agent serves.
  void RecoverInterrupted();

  const AgentConfig config_;
  Env* const env_;
  CommandRunner* const runner_;
  Logger* const logger_;
  // Declared first: destroyed last, after the server and the service.
  LocalPeers local_peers_;
  // The token file's entries (null without one), for the TLS listener and
  // the service.
  std::unique_ptr<TokenTable> tokens_;
  std::unique_ptr<EmbeddedRuntime> embedded_;
  std::unique_ptr<Runtime> detected_;
  std::unique_ptr<RuntimeContext> runtime_;
  std::unique_ptr<OperationManager> operations_;
  // Other hosts' agents (--peers-file; null without), and the holds other
  // hosts have on this host's app.
  std::unique_ptr<PeerConnector> peers_;
  std::unique_ptr<AppHolds> app_holds_;
  std::unique_ptr<AgentService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::vector<int> tcp_ports_;
  int local_fd_ = -1;
  std::optional<gid_t> socket_gid_;
  std::atomic<bool> local_stopping_{false};
  std::thread local_accept_;
  // Records of operations the previous run left unfinished.
  std::vector<mastodon::restore::v1::OperationRecord> interrupted_;
  std::mutex shutdown_mu_;
  bool shut_down_ = false;
};

// Runs the agent until SIGTERM or SIGINT, then shuts down in order. Returns
// the process exit code (0 after a clean shutdown, 1 when it cannot start).
// REQUIRES: called from main() before any other thread is created (it blocks
// the handled signals for every thread).
int RunDaemonUntilSignalled(const AgentConfig& config, Env* env, CommandRunner* runner,
                            Logger* logger);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DAEMON_H_
