#include "agent/service/agent_service.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/archive/inspector.h"
#include "agent/archive/path_rules.h"
#include "agent/common/status_macros.h"
#include "agent/database/local_cluster.h"
#include "agent/database/pg_probe.h"
#include "agent/service/agent_info.h"

namespace mastodon_restore {

namespace v1 = mastodon::restore::v1;

AgentService::AgentService(const AgentConfig* config, Env* env, CommandRunner* runner,
                           Logger* logger, absl::Time start_time)
    : config_(config), env_(env), runner_(runner), logger_(logger), start_time_(start_time) {}

AgentService::~AgentService() { workers_.WaitIdle(); }

absl::StatusOr<SourceOptions> AgentService::ResolveSource(const v1::BackupSource& source,
                                                          std::string* path) const {
  if (source.path().empty()) {
    return absl::InvalidArgumentError(
        "source.path is required (an absolute path on the agent host)");
  }
  ASSIGN_OR_RETURN(*path, ResolveAllowedPath(source.path(), config_->allowed_roots));
  SourceOptions options;
  options.allowed_roots = config_->allowed_roots;
  if (source.passphrase().has_value()) {
    options.passphrase = source.passphrase().value();
  } else if (source.passphrase().has_file()) {
    ASSIGN_OR_RETURN(std::string file,
                     ResolveAllowedPath(source.passphrase().file(), config_->allowed_roots));
    ASSIGN_OR_RETURN(std::string secret, env_->ReadFile(file));
    if (secret.size() > 4096) {
      return absl::InvalidArgumentError(
          absl::StrCat("password file '", source.passphrase().file(), "' is larger than 4 KiB"));
    }
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    options.passphrase = secret;
  }
  if (!source.age_identity_file().empty()) {
    ASSIGN_OR_RETURN(options.age_identity_file,
                     ResolveAllowedPath(source.age_identity_file(), config_->allowed_roots));
  }
  if (!source.gpg_key_file().empty()) {
    ASSIGN_OR_RETURN(options.gpg_key_file,
                     ResolveAllowedPath(source.gpg_key_file(), config_->allowed_roots));
  }
  return options;
}

std::function<void(int64_t)> AgentService::ProgressLogger(const std::string& source) const {
  // Called on the handler's thread only: no locking needed.
  auto last = std::make_shared<absl::Time>(env_->Now());
  return [this, source, last](int64_t bytes) {
    absl::Time now = env_->Now();
    if (now - *last < absl::Seconds(5)) return;
    *last = now;
    logger_->Info("deep scan progress", {{"source", source}, {"bytes", absl::StrCat(bytes)}});
  };
}

absl::Status AgentService::PrepareScan(const v1::BackupSource& source_request, bool deep,
                                       const v1::DatabaseTarget& target, const CancelToken& cancel,
                                       ScanSetup* setup) const {
  ASSIGN_OR_RETURN(setup->source, ResolveSource(source_request, &setup->path));
  setup->source.cancel = &cancel;
  setup->options.deep = deep;
  setup->options.progress = ProgressLogger(source_request.path());
  setup->options.pg_restore_majors =
      InstalledPostgresVersions(env_, "/usr/lib/postgresql", "pg_restore");
  if (!target.conninfo().empty()) {
    ASSIGN_OR_RETURN(int version, ProbeServerVersion(target.conninfo()));
    setup->options.target_major = version / 10000;
  }
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AgentService::DetectDump(grpc::CallbackServerContext* context,
                                                   const v1::DetectDumpRequest* request,
                                                   v1::DetectDumpResponse* response) {
  logger_->Info("detect dump", {{"source", request->source().path()},
                                {"member", request->member()},
                                {"deep", request->deep() ? "true" : "false"},
                                {"peer", context->peer()}});
  return BlockingUnaryReactor::Start(
      &workers_, [this, request, response](const CancelToken& cancel) {
        ScanSetup setup;
        RETURN_IF_ERROR(
            PrepareScan(request->source(), request->deep(), request->target(), cancel, &setup));
        ASSIGN_OR_RETURN(*response->mutable_dump(),
                         DetectDumpInSource(setup.path, request->member(), setup.source,
                                            setup.options, runner_));
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* AgentService::InspectBackup(grpc::CallbackServerContext* context,
                                                      const v1::InspectBackupRequest* request,
                                                      v1::InspectBackupResponse* response) {
  logger_->Info("inspect backup", {{"source", request->source().path()},
                                   {"deep", request->deep() ? "true" : "false"},
                                   {"peer", context->peer()}});
  return BlockingUnaryReactor::Start(
      &workers_, [this, request, response](const CancelToken& cancel) {
        ScanSetup setup;
        RETURN_IF_ERROR(
            PrepareScan(request->source(), request->deep(), request->target(), cancel, &setup));
        ASSIGN_OR_RETURN(
            *response->mutable_manifest(),
            ::mastodon_restore::InspectBackup(setup.path, setup.source, setup.options, runner_));
        return absl::OkStatus();
      });
}

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
