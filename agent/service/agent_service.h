// The gRPC face of the agent: mastodon.restore.v1.RestoreAgentService on the
// callback API. Converts between protos and domain calls; holds no business
// logic.
#ifndef MR_AGENT_SERVICE_AGENT_SERVICE_H_
#define MR_AGENT_SERVICE_AGENT_SERVICE_H_

#include "absl/time/time.h"
#include "agent/app/runtime.h"
#include "agent/archive/inspector.h"
#include "agent/archive/source_walker.h"
#include "agent/common/env.h"
#include "agent/common/logging.h"
#include "agent/common/subprocess.h"
#include "agent/config.h"
#include "agent/operations/operation_manager.h"
#include "agent/restore/restore_job.h"
#include "agent/service/blocking_call.h"
#include "agent/service/local_peers.h"
#include "agent/service/watch_reactor.h"
#include "mastodon/restore/v1/agent_service.grpc.pb.h"

namespace mastodon_restore {

// The runtime the agent uses, as the daemon set it up.
struct RuntimeContext {
  // What the configuration asked for ("auto", "snap", ...).
  std::string requested = "auto";
  // The runtime in use; null when none (restores then need a conninfo and
  // media restores --media-dir).
  const Runtime* runtime = nullptr;
  // What detection looked at without finding a runtime.
  std::vector<std::string> checked;
};

// WatchOperation is served in wire form (see watch_reactor.h): its request
// arrives as bytes and its events leave as bytes serialized once for all the
// operation's watchers.
class AgentService final
    : public mastodon::restore::v1::RestoreAgentService::WithRawCallbackMethod_WatchOperation<
          mastodon::restore::v1::RestoreAgentService::CallbackService> {
 public:
  // `config`, `env`, `runner` and `logger` must outlive the service.
  AgentService(const AgentConfig* config, Env* env, CommandRunner* runner, Logger* logger,
               OperationManager* operations, const RuntimeContext* runtime, absl::Time start_time);
  // Who is behind each local connection, for the audit log; must outlive
  // the service.
  void set_local_peers(const LocalPeers* peers) { local_peers_ = peers; }
  // Waits for handlers still running on their own threads.
  ~AgentService() override;

  grpc::ServerUnaryReactor* GetAgentInfo(
      grpc::CallbackServerContext* context,
      const mastodon::restore::v1::GetAgentInfoRequest* request,
      mastodon::restore::v1::GetAgentInfoResponse* response) override;

  grpc::ServerUnaryReactor* DetectDump(
      grpc::CallbackServerContext* context, const mastodon::restore::v1::DetectDumpRequest* request,
      mastodon::restore::v1::DetectDumpResponse* response) override;
  grpc::ServerUnaryReactor* InspectBackup(
      grpc::CallbackServerContext* context,
      const mastodon::restore::v1::InspectBackupRequest* request,
      mastodon::restore::v1::InspectBackupResponse* response) override;
  grpc::ServerUnaryReactor* StartRestore(
      grpc::CallbackServerContext* context,
      const mastodon::restore::v1::StartRestoreRequest* request,
      mastodon::restore::v1::StartRestoreResponse* response) override;
  // The app tasks run through the runtime; FAILED_PRECONDITION when there
  // is none or it runs no app (embedded).
  grpc::ServerUnaryReactor* StartDbMigrate(
      grpc::CallbackServerContext* context,
      const mastodon::restore::v1::StartDbMigrateRequest* request,
      mastodon::restore::v1::StartDbMigrateResponse* response) override;
  grpc::ServerUnaryReactor* StartMediaRefresh(
      grpc::CallbackServerContext* context,
      const mastodon::restore::v1::StartMediaRefreshRequest* request,
      mastodon::restore::v1::StartMediaRefreshResponse* response) override;
  grpc::ServerUnaryReactor* StartCleanup(
      grpc::CallbackServerContext* context,
      const mastodon::restore::v1::StartCleanupRequest* request,
      mastodon::restore::v1::StartCleanupResponse* response) override;
  grpc::ServerUnaryReactor* StartVerify(
      grpc::CallbackServerContext* context,
      const mastodon::restore::v1::StartVerifyRequest* request,
      mastodon::restore::v1::StartVerifyResponse* response) override;
  grpc::ServerUnaryReactor* StartRollback(
      grpc::CallbackServerContext* context,
      const mastodon::restore::v1::StartRollbackRequest* request,
      mastodon::restore::v1::StartRollbackResponse* response) override;
  grpc::ServerUnaryReactor* GetOperation(
      grpc::CallbackServerContext* context,
      const mastodon::restore::v1::GetOperationRequest* request,
      mastodon::restore::v1::GetOperationResponse* response) override;
  grpc::ServerUnaryReactor* ListOperations(
      grpc::CallbackServerContext* context,
      const mastodon::restore::v1::ListOperationsRequest* request,
      mastodon::restore::v1::ListOperationsResponse* response) override;
  // A WatchOperationRequest in, WatchOperationResponses out.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* WatchOperation(
      grpc::CallbackServerContext* context, const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* CancelOperation(
      grpc::CallbackServerContext* context,
      const mastodon::restore::v1::CancelOperationRequest* request,
      mastodon::restore::v1::CancelOperationResponse* response) override;

 private:
  // Finishes a call refused by RequireScope and writes its audit line.
  grpc::ServerUnaryReactor* Denied(grpc::CallbackServerContext* context, const char* rpc,
                                   const grpc::Status& status);

  // Checks the request's source against the allowed roots and resolves its
  // secrets (by value or file). Fills `path` with the resolved path.
  absl::StatusOr<SourceOptions> ResolveSource(const mastodon::restore::v1::BackupSource& source,
                                              std::string* path) const;

  // What DetectDump and InspectBackup need: the resolved source path, its
  // options (secrets resolved) and the scan options.
  struct ScanSetup {
    std::string path;
    SourceOptions source;
    InspectOptions options;
  };
  absl::Status PrepareScan(const mastodon::restore::v1::BackupSource& source, bool deep,
                           const mastodon::restore::v1::DatabaseTarget& target,
                           const CancelToken& cancel, ScanSetup* setup) const;

  // A progress callback for deep scans that logs every few seconds.
  std::function<void(int64_t)> ProgressLogger(const std::string& source) const;

  // A Start* call: refused (and audited) without the 'operate' scope;
  // otherwise logs `what` with `fields`, runs `work` on a worker thread and
  // writes its audit line (who, rpc, the operation it filled in `operation`,
  // outcome).
  grpc::ServerUnaryReactor* StartOperationCall(grpc::CallbackServerContext* context,
                                               const char* rpc, absl::string_view what,
                                               const std::vector<LogField>& fields,
                                               const mastodon::restore::v1::Operation* operation,
                                               BlockingUnaryReactor::Work work);

  // A restore's database: the server, the live name (asked for, the
  // runtime's, the dump's, the backup's DB_NAME) and the owner.
  absl::Status ResolveRestoreDatabase(const mastodon::restore::v1::RestoreOptions& opts,
                                      const ScanSetup& setup, RestoreJobInput* in) const;
  // A restore's media directory (the agent's --media-dir, else the
  // runtime's; a requested one must lie inside it) and owner.
  absl::Status ResolveRestoreMedia(const mastodon::restore::v1::RestoreOptions& opts,
                                   RestoreJobInput* in) const;

  // The runtime for an app task; FAILED_PRECONDITION naming `task` and what
  // detection checked when there is none.
  absl::StatusOr<const Runtime*> AppRuntime(absl::string_view task) const;

  // Launches an operation running `commands` (tootctl argument lists) one
  // after the other in one step; stops at the first failure and keeps the
  // results so far.
  absl::Status LaunchTootctlTasks(
      mastodon::restore::v1::OperationKind kind, const std::string& request_id,
      const std::string& step, const std::string& description,
      std::vector<std::vector<std::string>> commands, const Runtime* runtime,
      std::function<void(mastodon::restore::v1::Operation*)> fill_request,
      mastodon::restore::v1::Operation* out);

  // Starts `spec` and returns the operation as it is at once.
  absl::Status Launch(OperationSpec spec, mastodon::restore::v1::Operation* out);

  // The target server of a request: its own, else the agent's
  // --target-conninfo. FAILED_PRECONDITION when there is none.
  absl::StatusOr<std::string> TargetConnInfo(
      const mastodon::restore::v1::DatabaseTarget& target) const;

  // The runtime's database when it is the target (the request and the
  // agent name no server); nullopt otherwise.
  std::optional<AppDatabase> RuntimeDatabaseFor(
      const mastodon::restore::v1::DatabaseTarget& target) const;

  // A named database on the target server, for operations that act on one
  // that exists (rollback, verify). INVALID_ARGUMENT, naming `verb`, when the
  // request gives no database or an invalid name.
  struct NamedTarget {
    std::string conninfo;
    std::string database;
  };
  absl::StatusOr<NamedTarget> ResolveNamedTarget(
      const mastodon::restore::v1::DatabaseTarget& target, absl::string_view verb) const;

  const AgentConfig* const config_;
  Env* const env_;
  CommandRunner* const runner_;
  OperationManager* const operations_;
  const RuntimeContext* const runtime_;
  // Credentials of the local socket's connections (null: not known).
  const LocalPeers* local_peers_ = nullptr;
  WorkerTracker workers_;
  Logger* const logger_;
  const absl::Time start_time_;
  // One wire-form feed per watched operation.
  WatchFeeds watch_feeds_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_SERVICE_AGENT_SERVICE_H_
