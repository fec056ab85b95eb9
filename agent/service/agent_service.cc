#include "agent/service/agent_service.h"

#include "absl/strings/str_cat.h"
#include "agent/service/agent_info.h"

namespace mastodon_restore {

namespace v1 = mastodon::restore::v1;

AgentService::AgentService(const AgentConfig* config, Env* env, Logger* logger,
                           absl::Time start_time)
    : config_(config), env_(env), logger_(logger), start_time_(start_time) {}

grpc::ServerUnaryReactor* AgentService::GetAgentInfo(grpc::CallbackServerContext* context,
                                                     const v1::GetAgentInfoRequest*,
                                                     v1::GetAgentInfoResponse* response) {
  *response = BuildAgentInfo(*config_, env_, start_time_);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AgentService::Unimplemented(grpc::CallbackServerContext* context,
                                                      const char* rpc, const char* what) {
  logger_->Debug("unimplemented call", {{"rpc", rpc}, {"peer", context->peer()}});
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                               absl::StrCat(rpc, ": ", what, " is not in this agent build yet")));
  return reactor;
}

grpc::ServerUnaryReactor* AgentService::DetectDump(grpc::CallbackServerContext* context,
                                                   const v1::DetectDumpRequest*,
                                                   v1::DetectDumpResponse*) {
  return Unimplemented(context, "DetectDump", "dump detection (agent/dump)");
}

grpc::ServerUnaryReactor* AgentService::InspectBackup(grpc::CallbackServerContext* context,
                                                      const v1::InspectBackupRequest*,
                                                      v1::InspectBackupResponse*) {
  return Unimplemented(context, "InspectBackup", "backup inspection (agent/archive)");
}

grpc::ServerUnaryReactor* AgentService::StartRestore(grpc::CallbackServerContext* context,
                                                     const v1::StartRestoreRequest*,
                                                     v1::StartRestoreResponse*) {
  return Unimplemented(context, "StartRestore", "the restore pipeline (agent/restore)");
}

grpc::ServerUnaryReactor* AgentService::StartDbMigrate(grpc::CallbackServerContext* context,
                                                       const v1::StartDbMigrateRequest*,
                                                       v1::StartDbMigrateResponse*) {
  return Unimplemented(context, "StartDbMigrate", "the Mastodon runtimes (agent/app)");
}

grpc::ServerUnaryReactor* AgentService::StartMediaRefresh(grpc::CallbackServerContext* context,
                                                          const v1::StartMediaRefreshRequest*,
                                                          v1::StartMediaRefreshResponse*) {
  return Unimplemented(context, "StartMediaRefresh", "the Mastodon runtimes (agent/app)");
}

grpc::ServerUnaryReactor* AgentService::StartCleanup(grpc::CallbackServerContext* context,
                                                     const v1::StartCleanupRequest*,
                                                     v1::StartCleanupResponse*) {
  return Unimplemented(context, "StartCleanup", "the Mastodon runtimes (agent/app)");
}

grpc::ServerUnaryReactor* AgentService::StartVerify(grpc::CallbackServerContext* context,
                                                    const v1::StartVerifyRequest*,
                                                    v1::StartVerifyResponse*) {
  return Unimplemented(context, "StartVerify", "database verification (agent/database/verify)");
}

grpc::ServerUnaryReactor* AgentService::StartRollback(grpc::CallbackServerContext* context,
                                                      const v1::StartRollbackRequest*,
                                                      v1::StartRollbackResponse*) {
  return Unimplemented(context, "StartRollback", "the database restore engine (agent/database)");
}

grpc::ServerUnaryReactor* AgentService::GetOperation(grpc::CallbackServerContext* context,
                                                     const v1::GetOperationRequest*,
                                                     v1::GetOperationResponse*) {
  return Unimplemented(context, "GetOperation", "the operation manager (agent/operations)");
}

grpc::ServerUnaryReactor* AgentService::ListOperations(grpc::CallbackServerContext* context,
                                                       const v1::ListOperationsRequest*,
                                                       v1::ListOperationsResponse*) {
  return Unimplemented(context, "ListOperations", "the operation manager (agent/operations)");
}

grpc::ServerUnaryReactor* AgentService::CancelOperation(grpc::CallbackServerContext* context,
                                                        const v1::CancelOperationRequest*,
                                                        v1::CancelOperationResponse*) {
  return Unimplemented(context, "CancelOperation", "the operation manager (agent/operations)");
}

namespace {

// A stream that ends at once with a fixed status.
class FinishedWriteReactor : public grpc::ServerWriteReactor<v1::WatchOperationResponse> {
 public:
  explicit FinishedWriteReactor(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<v1::WatchOperationResponse>* AgentService::WatchOperation(
    grpc::CallbackServerContext*, const v1::WatchOperationRequest*) {
  return new FinishedWriteReactor(grpc::Status(
      grpc::StatusCode::UNIMPLEMENTED,
      "WatchOperation: the operation manager (agent/operations) is not in this agent build yet"));
}

}  // namespace mastodon_restore
