#include "agent/daemon.h"

#include <grp.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/app/embedded_runtime.h"
#include "agent/common/build_info.h"
#include "agent/common/errors.h"
#include "agent/common/peer_agent.h"
#include "agent/common/service_notify.h"
#include "agent/common/status_macros.h"
#include "agent/jobs/recovery.h"
#include "agent/media/media_restore.h"
#include "agent/operations/operation_manager.h"
#include "agent/service/agent_service.h"
#include "agent/service/app_holds.h"
#include "agent/service/auth.h"
#include "grpc/health/v1/health.pb.h"

namespace mastodon_restore {
namespace {

constexpr char kServiceName[] = "mastodon.restore.v1.RestoreAgentService";

// True when something accepts connections on the unix socket `path`.
bool SocketIsLive(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  bool live = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(fd);
  return live;
}

std::string ParentDir(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

Daemon::Daemon(AgentConfig config, Env* env, CommandRunner* runner, Logger* logger)
    : config_(std::move(config)), env_(env), runner_(runner), logger_(logger) {}

Daemon::~Daemon() {
  Shutdown();
  Wait();
}

absl::Status Daemon::PrepareSocketPath() {
  RETURN_IF_ERROR(env_->CreateDirs(ParentDir(config_.socket_path), 0755, false));
  struct stat st;
  if (::lstat(config_.socket_path.c_str(), &st) != 0) return absl::OkStatus();
  if (!S_ISSOCK(st.st_mode)) {
    return UnableTo(absl::StatusCode::kFailedPrecondition, "listen on", config_.socket_path,
                    "the path exists and is not a socket");
  }
  if (SocketIsLive(config_.socket_path)) {
    return UnableTo(absl::StatusCode::kFailedPrecondition, "listen on", config_.socket_path,
                    "another process is listening on it (is an agent already running?)");
  }
  // A stale socket from an agent that was killed.
  if (::unlink(config_.socket_path.c_str()) != 0) {
    return ErrnoError(errno, "remove stale socket", config_.socket_path);
  }
  return absl::OkStatus();
}

absl::Status Daemon::SecureSocket() {
  if (::chmod(config_.socket_path.c_str(), 0660) != 0) {
    return ErrnoError(errno, "set mode of", config_.socket_path);
  }
  if (config_.socket_group.empty()) return absl::OkStatus();
  struct group gr;
  struct group* found = nullptr;
  std::vector<char> buf(16384);
  if (::getgrnam_r(config_.socket_group.c_str(), &gr, buf.data(), buf.size(), &found) != 0 ||
      found == nullptr) {
    return UnableTo(absl::StatusCode::kInvalidArgument, "set group of", config_.socket_path,
                    absl::StrCat("no group named '", config_.socket_group, "'"));
  }
  if (::chown(config_.socket_path.c_str(), static_cast<uid_t>(-1), gr.gr_gid) != 0) {
    return ErrnoError(errno, "set group of", config_.socket_path);
  }
  socket_gid_ = gr.gr_gid;
  return absl::OkStatus();
}

absl::Status Daemon::ListenLocal() {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError(errno, "create", config_.socket_path);
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", config_.socket_path.c_str());
  // 0660 from the first moment, then the group.
  mode_t old_umask = ::umask(0117);
  int bound = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::umask(old_umask);
  if (bound != 0 || ::listen(fd, 128) != 0) {
    int err = errno;
    ::close(fd);
    return ErrnoError(err, "listen on", config_.socket_path);
  }
  local_fd_ = fd;
  RETURN_IF_ERROR(SecureSocket());
  local_accept_ = std::thread([this] { AcceptLocal(); });
  return absl::OkStatus();
}

bool Daemon::MayUseLocalSocket(pid_t pid, uid_t uid, gid_t gid) const {
  if (uid == 0 || uid == ::geteuid()) return true;
  if (!socket_gid_.has_value()) return false;
  if (gid == *socket_gid_) return true;
  // Supplementary groups of the connecting process.
  auto status = env_->ReadFile(absl::StrCat("/proc/", pid, "/status"));
  if (!status.ok()) return false;
  for (absl::string_view line : absl::StrSplit(*status, '\n')) {
    if (!absl::ConsumePrefix(&line, "Groups:")) continue;
    for (absl::string_view g : absl::StrSplit(line, ' ', absl::SkipWhitespace())) {
      gid_t id;
      if (absl::SimpleAtoi(g, &id) && id == *socket_gid_) return true;
    }
  }
  return false;
}

void Daemon::AcceptLocal() {
  while (!local_stopping_.load()) {
    // (shutdown() does not wake accept() on a listening unix socket: poll.)
    pollfd p = {local_fd_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    int conn = ::accept4(local_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
      if (local_stopping_.load()) return;
      if (errno == EMFILE || errno == ENFILE) {
        absl::SleepFor(absl::Milliseconds(100));
        continue;
      }
      logger_->Error("unable to accept on the local socket", {{"error", std::strerror(errno)}});
      return;
    }
    struct ucred cred = {};
    socklen_t len = sizeof(cred);
    if (::getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        !MayUseLocalSocket(cred.pid, cred.uid, cred.gid)) {
      logger_->Warning(
          "audit", {{"who", absl::StrCat("uid:", cred.uid, " gid:", cred.gid, " pid:", cred.pid)},
                    {"rpc", "(connect)"},
                    {"outcome", "refused: not root, the agent's user or the socket's group"}});
      ::close(conn);
      continue;
    }
    local_peers_.Add(conn, cred.pid, cred.uid, cred.gid);
    grpc::AddInsecureChannelFromFd(server_.get(), conn);  // takes the descriptor
  }
}

absl::Status Daemon::Start() {
  RETURN_IF_ERROR(ValidateListeners(config_));
  RETURN_IF_ERROR(env_->CreateDirs(config_.state_dir, 0700, true));
  RETURN_IF_ERROR(PrepareSocketPath());

  std::shared_ptr<grpc::ServerCredentials> tcp_creds;
  if (!config_.listen.empty()) {
    if (!config_.tls_cert.empty()) {
      // Read once to fail early on unreadable files; the provider then
      // watches them, so renewed certificates apply without a restart.
      RETURN_IF_ERROR(env_->ReadFile(config_.tls_cert).status());
      RETURN_IF_ERROR(env_->ReadFile(config_.tls_key).status());
      if (!config_.tls_client_ca.empty()) {
        RETURN_IF_ERROR(env_->ReadFile(config_.tls_client_ca).status());
      }
      auto provider = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          config_.tls_key, config_.tls_cert, config_.tls_client_ca, /*refresh_interval_sec=*/5);
      grpc::experimental::TlsServerCredentialsOptions options(provider);
      options.watch_identity_key_cert_pairs();
      if (!config_.tls_client_ca.empty()) {
        options.watch_root_certs();
        options.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
      } else {
        options.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
      }
      tcp_creds = grpc::experimental::TlsServerCredentials(options);
      if (!config_.tokens_file.empty()) {
        ASSIGN_OR_RETURN(std::string text, env_->ReadFile(config_.tokens_file));
        ASSIGN_OR_RETURN(auto tokens, ParseTokenFile(text, config_.tokens_file));
        tokens_ = std::make_unique<TokenTable>(std::move(tokens));
        tcp_creds->SetAuthMetadataProcessor(std::make_shared<TokenAuthProcessor>(tokens_.get()));
      }
    } else {
      // ValidateListeners allowed this only for loopback with the explicit flag.
      tcp_creds = grpc::InsecureServerCredentials();
    }
  }

  // Operations: records of a previous run that was stopped mid-way become
  // INTERRUPTED, and staging databases it left behind are dropped.
  operations_ = std::make_unique<OperationManager>(
      config_.state_dir, env_, logger_, config_.keep_operations, config_.keep_operations_for);
  operations_->set_max_running(config_.max_running_operations);
  ASSIGN_OR_RETURN(interrupted_, operations_->Recover());
  // The runtime: where Mastodon runs on this host (or the agent's own
  // PostgreSQL for the embedded one).
  runtime_ = std::make_unique<RuntimeContext>();
  runtime_->requested = config_.runtime;
  if (config_.runtime == "embedded") {
    std::string dir = config_.embedded_postgres.empty() ? config_.state_dir + ".postgres"
                                                        : config_.embedded_postgres;
    ASSIGN_OR_RETURN(embedded_, EmbeddedRuntime::Start(dir, config_.media_dir, runner_, env_));
    runtime_->runtime = embedded_.get();
    logger_->Info("embedded runtime ready", {{"dir", dir}});
  } else {
    ASSIGN_OR_RETURN(
        detected_, DetectRuntime(config_.runtime, config_.host, runner_, env_, &runtime_->checked));
    runtime_->runtime = detected_.get();
    if (detected_ != nullptr) {
      logger_->Info("runtime detected", {{"runtime", detected_->name()},
                                         {"evidence", absl::StrJoin(detected_->evidence(), "; ")}});
    } else if (config_.runtime == "auto") {
      logger_->Info("no Mastodon runtime found",
                    {{"checked", absl::StrJoin(runtime_->checked, "; ")}});
    }
  }
  // Other hosts' agents this one drives, and the holds others have here.
  if (!config_.peers_file.empty()) {
    ASSIGN_OR_RETURN(auto peers, LoadPeersFile(config_.peers_file, env_));
    PeerTls tls;
    tls.insecure_loopback = config_.insecure_loopback_tcp;
    if (!config_.peer_ca.empty()) {
      ASSIGN_OR_RETURN(tls.ca_pem, env_->ReadFile(config_.peer_ca));
    }
    if (!config_.peer_cert.empty()) {
      ASSIGN_OR_RETURN(tls.cert_pem, env_->ReadFile(config_.peer_cert));
      ASSIGN_OR_RETURN(tls.key_pem, env_->ReadFile(config_.peer_key));
    }
    logger_->Info("peers", {{"file", config_.peers_file}, {"count", absl::StrCat(peers.size())}});
    peers_ = NewGrpcPeerConnector(std::move(peers), std::move(tls), absl::Minutes(10));
  }
  app_holds_ = std::make_unique<AppHolds>(absl::StrCat(config_.state_dir, "/app-holds.pb"), env_,
                                          runner_, runtime_.get(), logger_);
  RETURN_IF_ERROR(app_holds_->Load());
  RecoverInterrupted();
  service_ = std::make_unique<AgentService>(&config_, env_, runner_, logger_, operations_.get(),
                                            runtime_.get(), absl::Now());
  service_->set_local_peers(&local_peers_);
  service_->set_tokens(tokens_.get());
  service_->set_peers(peers_.get(), app_holds_.get());
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  // Link health.pb.cc so that reflection can describe grpc.health.v1.Health.
  (void)grpc::health::v1::HealthCheckRequest::descriptor();

  // The unix socket is the daemon's own (below): it accepts each connection,
  // reads the peer's credentials and hands the descriptor to the server.
  grpc::ServerBuilder builder;
  tcp_ports_.assign(config_.listen.size(), 0);
  for (size_t i = 0; i < config_.listen.size(); ++i) {
    builder.AddListeningPort(config_.listen[i], tcp_creds, &tcp_ports_[i]);
  }
  builder.RegisterService(service_.get());
  // Bounds: request size, streams per connection, keepalive policy.
  builder.SetMaxReceiveMessageSize(4 << 20);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 2000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 2 * 60 * 60 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 30 * 1000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 3);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, 60 * 60 * 1000);

  server_ = builder.BuildAndStart();
  if (server_ == nullptr) {
    return UnableTo(
        absl::StatusCode::kFailedPrecondition, "start the gRPC server on",
        absl::StrCat(config_.socket_path, config_.listen.empty() ? "" : " and TCP listeners"),
        "bind failed (see the gRPC error above)");
  }
  for (size_t i = 0; i < tcp_ports_.size(); ++i) {
    if (tcp_ports_[i] == 0) {
      Shutdown();
      return UnableTo(absl::StatusCode::kFailedPrecondition, "listen on", config_.listen[i],
                      "bind failed");
    }
  }
  absl::Status listening = ListenLocal();
  if (!listening.ok()) {
    Shutdown();
    return listening;
  }
  server_->GetHealthCheckService()->SetServingStatus(kServiceName, true);
  logger_->Info("agent listening", {{"version", MR_VERSION},
                                    {"socket", config_.socket_path},
                                    {"state_dir", config_.state_dir},
                                    {"runtime", config_.runtime}});
  for (size_t i = 0; i < tcp_ports_.size(); ++i) {
    logger_->Info(
        "agent listening on TCP",
        {{"address", config_.listen[i]},
         {"port", absl::StrCat(tcp_ports_[i])},
         {"tls", config_.tls_cert.empty() ? "off (loopback test mode)" : "on"},
         {"client_certificates", config_.tls_client_ca.empty() ? "optional" : "required"}});
  }
  return absl::OkStatus();
}

void Daemon::RecoverInterrupted() {
  // Before serving: each operation a stop interrupted (or whose earlier
  // recovery was incomplete) is completed or undone from its record's
  // journal, on the server it used, and says so on the operation.
  RecoveryContext ctx;
  ctx.env = env_;
  ctx.runner = runner_;
  ctx.target_conninfo = config_.target_conninfo;
  ctx.runtime = runtime_->runtime;
  ctx.peers = peers_.get();
  ctx.host_path = config_.host.host_path;
  for (const auto& record : interrupted_) {
    const std::string& id = record.operation().id();
    logger_->Warning("operation interrupted by an agent stop", {{"operation", id}});
    auto op = operations_->Get(id);
    if (!op.ok()) continue;
    ctx.reporter = op->get();
    RecoveryOutcome outcome = RecoverOperation(op->get(), ctx, "recovered", true);
    // Records of agents before the journal: half-extracted media never
    // reached the media directory.
    if (!record.has_media_journal() && !record.staging_media_dir().empty()) {
      RemoveMediaStaging(record.staging_media_dir());
      outcome.done.push_back("removed the media staging directory " + record.staging_media_dir());
    }
    if (!outcome.done.empty()) {
      logger_->Warning("recovered an interrupted operation",
                       {{"operation", id}, {"done", absl::StrJoin(outcome.done, "; ")}});
    }
    if (!outcome.failed.empty()) {
      logger_->Error("recovery of an interrupted operation incomplete (retried at the next start)",
                     {{"operation", id}, {"left", absl::StrJoin(outcome.failed, "; ")}});
    }
  }
}

void Daemon::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(shutdown_mu_);
    if (shut_down_ || server_ == nullptr) return;
    shut_down_ = true;
  }
  logger_->Info("agent shutting down", {{"grace", absl::FormatDuration(config_.shutdown_grace)}});
  StopLocal();
  server_->GetHealthCheckService()->Shutdown();
  // Running operations are cancelled (a restore drops its staging database).
  if (operations_ != nullptr) operations_->Shutdown();
  server_->Shutdown(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(config_.shutdown_grace));
  struct stat st;
  if (::lstat(config_.socket_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
    ::unlink(config_.socket_path.c_str());
  }
}

void Daemon::StopLocal() {
  if (local_fd_ < 0) return;
  local_stopping_.store(true);
  if (local_accept_.joinable()) local_accept_.join();
  ::close(local_fd_);
  local_fd_ = -1;
}

void Daemon::Wait() {
  if (server_ != nullptr) server_->Wait();
}

int RunDaemonUntilSignalled(const AgentConfig& config, Env* env, CommandRunner* runner,
                            Logger* logger) {
  // Block the handled signals in every thread; this thread takes them with
  // sigwait. Writes to closed sockets/pipes must not kill the agent.
  sigset_t handled;
  sigemptyset(&handled);
  sigaddset(&handled, SIGTERM);
  sigaddset(&handled, SIGINT);
  sigaddset(&handled, SIGHUP);
  ::pthread_sigmask(SIG_BLOCK, &handled, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  Daemon daemon(config, env, runner, logger);
  absl::Status started = daemon.Start();
  if (!started.ok()) {
    logger->Error("agent cannot start", {{"error", std::string(started.message())}});
    return 1;
  }
  NotifyReady(absl::StrCat("serving on ", config.socket_path));
  while (true) {
    int sig = 0;
    if (::sigwait(&handled, &sig) != 0) continue;
    if (sig == SIGHUP) {
      // TLS files are watched and reloaded within seconds by the
      // certificate provider; SIGHUP checks that they are readable now.
      for (const std::string& file : {config.tls_cert, config.tls_key, config.tls_client_ca}) {
        if (file.empty()) continue;
        auto read = env->ReadFile(file);
        logger->Info("SIGHUP: TLS file",
                     {{"file", file},
                      {"status", read.ok() ? "readable, reloaded within 5s"
                                           : std::string(read.status().message())}});
      }
      continue;
    }
    logger->Info("signal received", {{"signal", ::strsignal(sig)}});
    break;
  }
  NotifyStopping("stopping: in-flight calls get their grace period");
  daemon.Shutdown();
  daemon.Wait();
  logger->Info("agent stopped");
  return 0;
}

}  // namespace mastodon_restore
