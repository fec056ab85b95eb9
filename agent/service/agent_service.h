// The gRPC face of the agent: mastodon.restore.v1.RestoreAgentService on the
// callback API. Checks the caller's scope and the request's form, converts
// between protos and the jobs (agent/jobs/), and launches them; holds no
// business logic.
#ifndef MR_AGENT_SERVICE_AGENT_SERVICE_H_
#define MR_AGENT_SERVICE_AGENT_SERVICE_H_

#include "absl/time/time.h"
#include "agent/common/env.h"
#include "agent/common/logging.h"
#include "agent/common/rate_limiter.h"
#include "agent/common/subprocess.h"
#include "agent/database/pg_connection.h"
#include "agent/jobs/job_env.h"
#include "agent/jobs/scan.h"
#include "agent/media/media_export.h"
#include "agent/operations/operation_manager.h"
#include "agent/service/app_holds.h"
#include "agent/service/auth.h"
#include "agent/service/blocking_call.h"
#include "agent/service/config.h"
#include "agent/service/local_peers.h"
#include "agent/service/watch_reactor.h"
#include "mastodon/restore/v1/agent_service.grpc.pb.h"

namespace mastodon_restore {

// OK when the call may make the agent connect to the server a request's
// `target` names: a target.conninfo needs the 'operate' scope (it makes the
// agent connect anywhere; RequireScope with `tokens`); PERMISSION_DENIED
// saying so otherwise.
grpc::Status RequireConnInfoScope(const grpc::CallbackServerContext* context,
                                  const TokenTable* tokens,
                                  const mastodon::restore::v1::DatabaseTarget& target);

// Rewrites a caller's target.conninfo with CallerConnInfo (no stored
// password is used for it; settings naming files are INVALID_ARGUMENT).
absl::Status AdmitCallerConnInfo(mastodon::restore::v1::DatabaseTarget* target);

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
  // The bearer tokens of TLS callers (null: no token file), whose scopes
  // the handlers require; must outlive the service. Set before any call.
  void set_tokens(const TokenTable* tokens) { tokens_ = tokens; }
  // Other hosts' agents the jobs may drive (null: none), and the holds on
  // this host's app (null: HoldApp is FAILED_PRECONDITION). Set before any
  // call; both must outlive the service.
  void set_peers(PeerConnector* peers, AppHolds* holds) {
    jobs_.peers = peers;
    app_holds_ = holds;
  }
  // Test hook: runs on the worker thread of every blocking unary call
  // before its work (a test holds calls there to fill the cap). Set before
  // any call.
  void set_call_hook(std::function<void()> hook) { call_hook_ = std::move(hook); }
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
  grpc::ServerUnaryReactor* StartMigrate(
      grpc::CallbackServerContext* context,
      const mastodon::restore::v1::StartMigrateRequest* request,
      mastodon::restore::v1::StartMigrateResponse* response) override;
  grpc::ServerUnaryReactor* CutOver(grpc::CallbackServerContext* context,
                                    const mastodon::restore::v1::CutOverRequest* request,
                                    mastodon::restore::v1::CutOverResponse* response) override;
  grpc::ServerUnaryReactor* HoldApp(grpc::CallbackServerContext* context,
                                    const mastodon::restore::v1::HoldAppRequest* request,
                                    mastodon::restore::v1::HoldAppResponse* response) override;
  grpc::ServerUnaryReactor* ReleaseApp(
      grpc::CallbackServerContext* context, const mastodon::restore::v1::ReleaseAppRequest* request,
      mastodon::restore::v1::ReleaseAppResponse* response) override;
  // The runtime's media directory (checked as a restore's: one named by
  // the app's own files must lie inside --media-root); 'operate' scope.
  grpc::ServerUnaryReactor* ListMedia(grpc::CallbackServerContext* context,
                                      const mastodon::restore::v1::ListMediaRequest* request,
                                      mastodon::restore::v1::ListMediaResponse* response) override;
  grpc::ServerUnaryReactor* ReadMedia(grpc::CallbackServerContext* context,
                                      const mastodon::restore::v1::ReadMediaRequest* request,
                                      mastodon::restore::v1::ReadMediaResponse* response) override;
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
  // The audit line of a refused call.
  void AuditRefusal(grpc::CallbackServerContext* context, const char* rpc,
                    const grpc::Status& status);
  // A call's reactor, finished with `denied` and audited; nullptr when
  // `denied` is OK (the call goes on).
  grpc::ServerUnaryReactor* Refuse(grpc::CallbackServerContext* context, const char* rpc,
                                   const grpc::Status& denied);
  // Refuse() of a caller without `scope` (RequireScope), or of a request
  // naming a server without 'operate' (RequireConnInfoScope).
  grpc::ServerUnaryReactor* RefuseWithout(grpc::CallbackServerContext* context, const char* rpc,
                                          const char* scope);
  grpc::ServerUnaryReactor* RefuseWithout(grpc::CallbackServerContext* context, const char* rpc,
                                          const mastodon::restore::v1::DatabaseTarget& target);

  // Runs `work` on a worker thread (BlockingUnaryReactor, capped by
  // --max-unary-calls), after the call hook.
  grpc::ServerUnaryReactor* RunBlocking(BlockingUnaryReactor::Work work);

  // A request's source, resolved, with the scan options (jobs/scan.h); a
  // bucket's client takes its bytes from `rate_limit` (null: no cap).
  absl::Status PrepareScan(const mastodon::restore::v1::BackupSource& source, bool deep,
                           const mastodon::restore::v1::DatabaseTarget& target,
                           const CancelToken& cancel, ScanSetup* setup,
                           std::shared_ptr<RateLimiter> rate_limit = nullptr) const;

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

  // Starts `spec` and returns the operation as it is at once; while this
  // host's app is held for another host's migration, only verifies start.
  absl::Status Launch(OperationSpec spec, mastodon::restore::v1::Operation* out);

  // The media directory ListMedia and ReadMedia serve: a restore's
  // (ResolveRestoreMedia), FAILED_PRECONDITION when the host has none.
  absl::StatusOr<std::string> ServedMediaDir() const;

  // A hold call: 'operate' scope, audited, on a worker thread.
  grpc::ServerUnaryReactor* HoldCall(grpc::CallbackServerContext* context, const char* rpc,
                                     const std::string& hold_id,
                                     std::function<absl::Status(const std::string& who)> work);

  const AgentConfig* const config_;
  Env* const env_;
  CommandRunner* const runner_;
  OperationManager* const operations_;
  const RuntimeContext* const runtime_;
  // Credentials of the local socket's connections (null: not known).
  const LocalPeers* local_peers_ = nullptr;
  // TLS callers' bearer tokens (null: no token file).
  const TokenTable* tokens_ = nullptr;
  AppHolds* app_holds_ = nullptr;
  // The media's hashes ListMedia computed, for the listings after.
  MediaHashCache media_hashes_;
  // Unary calls on their own threads (--max-unary-calls).
  WorkerTracker workers_;
  // Open WatchOperation streams (--max-watchers).
  WorkerTracker watchers_;
  std::function<void()> call_hook_;
  Logger* const logger_;
  const absl::Time start_time_;
  // Sessions on PostgreSQL for the jobs (libpq).
  LibpqConnector pg_;
  // What the jobs take from the agent (its runner, Env, connector, runtime,
  // defaults).
  JobEnv jobs_;
  // One wire-form feed per watched operation.
  WatchFeeds watch_feeds_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_SERVICE_AGENT_SERVICE_H_
