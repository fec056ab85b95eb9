#include "agent/service/agent_service.h"

#include <sys/stat.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/common/status_macros.h"
#include "agent/database/pg_connection.h"
#include "agent/inventory/inspector.h"
#include "agent/jobs/app_jobs.h"
#include "agent/jobs/database_jobs.h"
#include "agent/jobs/migrate_job.h"
#include "agent/jobs/restore_job.h"
#include "agent/jobs/targets.h"
#include "agent/service/agent_info.h"
#include "agent/service/auth.h"
#include "agent/service/request_source.h"
#include "agent/service/watch_reactor.h"

namespace mastodon_restore {

namespace v1 = mastodon::restore::v1;

AgentService::AgentService(const AgentConfig* config, Env* env, CommandRunner* runner,
                           Logger* logger, OperationManager* operations,
                           const RuntimeContext* runtime, absl::Time start_time)
    : config_(config),
      env_(env),
      runner_(runner),
      operations_(operations),
      runtime_(runtime),
      workers_(config->max_unary_calls),
      watchers_(config->max_watchers),
      logger_(logger),
      start_time_(start_time) {
  jobs_.runner = runner;
  jobs_.env = env;
  jobs_.pg = &pg_;
  jobs_.runtime = runtime;
  jobs_.target_conninfo = config->target_conninfo;
  jobs_.media_dir = config->media_dir;
  jobs_.scratch_dir = config->state_dir;
  jobs_.media_roots = config->media_roots;
  jobs_.cluster_data_roots = config->cluster_data_roots;
  jobs_.host_path = config->host.host_path;
  jobs_.allowed_s3_endpoints = config->allowed_s3_endpoints;
  jobs_.space_floor.min_free_bytes = config->free_space_floor_bytes;
  jobs_.space_floor.min_free_percent = config->free_space_floor_percent;
}

AgentService::~AgentService() {
  workers_.WaitIdle();
  watchers_.WaitIdle();
}

grpc::ServerUnaryReactor* AgentService::RunBlocking(BlockingUnaryReactor::Work work) {
  return BlockingUnaryReactor::Start(&workers_,
                                     [this, work = std::move(work)](const CancelToken& cancel) {
                                       if (call_hook_) call_hook_();
                                       return work(cancel);
                                     });
}

grpc::Status RequireConnInfoScope(const grpc::CallbackServerContext* context,
                                  const TokenTable* tokens, const v1::DatabaseTarget& target) {
  if (target.conninfo().empty()) return grpc::Status::OK;
  grpc::Status denied = RequireScope(context, tokens, "operate");
  if (denied.ok()) return denied;
  return grpc::Status(denied.error_code(),
                      absl::StrCat(denied.error_message(),
                                   ": a request naming a server (target.conninfo) makes the "
                                   "agent connect to it, which needs 'operate'"));
}

absl::Status AdmitCallerConnInfo(v1::DatabaseTarget* target) {
  if (target->conninfo().empty()) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::string conninfo, CallerConnInfo(target->conninfo()));
  target->set_conninfo(std::move(conninfo));
  return absl::OkStatus();
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
                                       ScanSetup* setup,
                                       std::shared_ptr<RateLimiter> rate_limit) const {
  ASSIGN_OR_RETURN(setup->source,
                   ResolveBackupSource(source_request,
                                       {config_->allowed_roots, config_->allowed_s3_endpoints,
                                        std::move(rate_limit)},
                                       env_, &setup->path));
  return ::mastodon_restore::PrepareScan(deep, target, &cancel,
                                         ProgressLogger(SourceName(source_request)), jobs_, setup);
}

grpc::ServerUnaryReactor* AgentService::DetectDump(grpc::CallbackServerContext* context,
                                                   const v1::DetectDumpRequest* request,
                                                   v1::DetectDumpResponse* response) {
  if (auto* refused = RefuseWithout(context, "DetectDump", "read")) return refused;
  logger_->Info("detect dump", {{"source", SourceName(request->source())},
                                {"member", request->member()},
                                {"deep", request->deep() ? "true" : "false"},
                                {"peer", context->peer()}});
  if (auto* refused = RefuseWithout(context, "DetectDump", request->target())) return refused;
  return RunBlocking([this, request, response](const CancelToken& cancel) {
    v1::DatabaseTarget target = request->target();
    RETURN_IF_ERROR(AdmitCallerConnInfo(&target));
    ScanSetup setup;
    RETURN_IF_ERROR(PrepareScan(request->source(), request->deep(), target, cancel, &setup));
    ASSIGN_OR_RETURN(
        *response->mutable_dump(),
        DetectDumpInSource(setup.path, request->member(), setup.source, setup.options, runner_));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AgentService::InspectBackup(grpc::CallbackServerContext* context,
                                                      const v1::InspectBackupRequest* request,
                                                      v1::InspectBackupResponse* response) {
  if (auto* refused = RefuseWithout(context, "InspectBackup", "read")) return refused;
  logger_->Info("inspect backup", {{"source", SourceName(request->source())},
                                   {"deep", request->deep() ? "true" : "false"},
                                   {"peer", context->peer()}});
  if (auto* refused = RefuseWithout(context, "InspectBackup", request->target())) return refused;
  return RunBlocking([this, request, response](const CancelToken& cancel) {
    v1::DatabaseTarget target = request->target();
    RETURN_IF_ERROR(AdmitCallerConnInfo(&target));
    ScanSetup setup;
    RETURN_IF_ERROR(PrepareScan(request->source(), request->deep(), target, cancel, &setup));
    ASSIGN_OR_RETURN(
        *response->mutable_manifest(),
        ::mastodon_restore::InspectBackup(setup.path, setup.source, setup.options, runner_));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AgentService::GetAgentInfo(grpc::CallbackServerContext* context,
                                                     const v1::GetAgentInfoRequest*,
                                                     v1::GetAgentInfoResponse* response) {
  if (auto* refused = RefuseWithout(context, "GetAgentInfo", "read")) return refused;
  return RunBlocking([this, response](const CancelToken&) {
    *response = DescribeAgent(*config_, jobs_, start_time_);
    if (app_holds_ != nullptr) {
      for (const v1::AppHold& h : app_holds_->Current()) *response->add_app_holds() = h;
    }
    return absl::OkStatus();
  });
}

void AgentService::AuditRefusal(grpc::CallbackServerContext* context, const char* rpc,
                                const grpc::Status& status) {
  logger_->Warning("audit", {{"who", CallerIdentity(context, tokens_, local_peers_)},
                             {"rpc", rpc},
                             {"outcome", status.error_message()}});
}

grpc::ServerUnaryReactor* AgentService::Refuse(grpc::CallbackServerContext* context,
                                               const char* rpc, const grpc::Status& denied) {
  if (denied.ok()) return nullptr;
  AuditRefusal(context, rpc, denied);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(denied);
  return reactor;
}

grpc::ServerUnaryReactor* AgentService::RefuseWithout(grpc::CallbackServerContext* context,
                                                      const char* rpc, const char* scope) {
  return Refuse(context, rpc, RequireScope(context, tokens_, scope));
}

grpc::ServerUnaryReactor* AgentService::RefuseWithout(grpc::CallbackServerContext* context,
                                                      const char* rpc,
                                                      const v1::DatabaseTarget& target) {
  return Refuse(context, rpc, RequireConnInfoScope(context, tokens_, target));
}

grpc::ServerUnaryReactor* AgentService::StartDbMigrate(grpc::CallbackServerContext* context,
                                                       const v1::StartDbMigrateRequest* request,
                                                       v1::StartDbMigrateResponse* response) {
  return StartOperationCall(
      context, "StartDbMigrate", "start db migrate", {{"request_id", request->request_id()}},
      response->mutable_operation(), [this, request, response](const CancelToken&) -> absl::Status {
        ASSIGN_OR_RETURN(OperationSpec spec,
                         MakeDbMigrateJob(request->request_id(), request->options(), jobs_));
        return Launch(std::move(spec), response->mutable_operation());
      });
}

grpc::ServerUnaryReactor* AgentService::StartMediaRefresh(
    grpc::CallbackServerContext* context, const v1::StartMediaRefreshRequest* request,
    v1::StartMediaRefreshResponse* response) {
  return StartOperationCall(
      context, "StartMediaRefresh", "start media refresh", {{"request_id", request->request_id()}},
      response->mutable_operation(), [this, request, response](const CancelToken&) -> absl::Status {
        ASSIGN_OR_RETURN(OperationSpec spec,
                         MakeMediaRefreshJob(request->request_id(), request->options(), jobs_));
        return Launch(std::move(spec), response->mutable_operation());
      });
}

grpc::ServerUnaryReactor* AgentService::StartCleanup(grpc::CallbackServerContext* context,
                                                     const v1::StartCleanupRequest* request,
                                                     v1::StartCleanupResponse* response) {
  return StartOperationCall(
      context, "StartCleanup", "start cleanup", {{"request_id", request->request_id()}},
      response->mutable_operation(), [this, request, response](const CancelToken&) -> absl::Status {
        ASSIGN_OR_RETURN(OperationSpec spec,
                         MakeCleanupJob(request->request_id(), request->options(), jobs_));
        return Launch(std::move(spec), response->mutable_operation());
      });
}

namespace {

// A stream that ends at once with a fixed status.
class FinishedWriteReactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit FinishedWriteReactor(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

// Maps the engine's steps to operation steps and progress.
}  // namespace

grpc::ServerUnaryReactor* AgentService::StartOperationCall(grpc::CallbackServerContext* context,
                                                           const char* rpc, absl::string_view what,
                                                           const std::vector<LogField>& fields,
                                                           const v1::Operation* operation,
                                                           BlockingUnaryReactor::Work work) {
  if (auto* refused = RefuseWithout(context, rpc, "operate")) return refused;
  std::vector<LogField> logged = fields;
  logged.push_back({"peer", context->peer()});
  logger_->Info(what, logged);
  return RunBlocking([this, who = CallerIdentity(context, tokens_, local_peers_), rpc, operation,
                      work = std::move(work)](const CancelToken& cancel) {
    absl::Status status = work(cancel);
    logger_->Info("audit", {{"who", who},
                            {"rpc", rpc},
                            {"operation", operation->id()},
                            {"target", operation->target()},
                            {"outcome", status.ok() ? "started" : std::string(status.message())}});
    return status;
  });
}

absl::Status AgentService::Launch(OperationSpec spec, v1::Operation* out) {
  if (app_holds_ != nullptr && spec.kind != v1::OPERATION_KIND_VERIFY) {
    RETURN_IF_ERROR(app_holds_->CheckNotHeld(
        absl::StrCat("a ", absl::AsciiStrToLower(v1::OperationKind_Name(spec.kind).substr(15)))));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<Operation> op, operations_->Start(std::move(spec)));
  *out = op->Snapshot();
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* AgentService::StartRestore(grpc::CallbackServerContext* context,
                                                     const v1::StartRestoreRequest* request,
                                                     v1::StartRestoreResponse* response) {
  return StartOperationCall(
      context, "StartRestore", request->options().plan_only() ? "plan restore" : "start restore",
      {{"source", SourceName(request->options().source())}, {"request_id", request->request_id()}},
      response->mutable_operation(),
      [this, request, response](const CancelToken& cancel) -> absl::Status {
        v1::RestoreOptions opts = request->options();
        RETURN_IF_ERROR(AdmitCallerConnInfo(opts.mutable_target()));
        if (!opts.target_db().empty())
          RETURN_IF_ERROR(ValidateDatabaseName(opts.target_db(), "target_db"));
        if (!opts.target().database().empty()) {
          RETURN_IF_ERROR(ValidateDatabaseName(opts.target().database(), "target.database"));
        }
        if (opts.db_only() && opts.media_only()) {
          return absl::InvalidArgumentError("db_only and media_only exclude each other");
        }
        if (opts.refresh_days() < 0) {
          return absl::InvalidArgumentError("refresh_days must not be negative");
        }
        if (opts.bandwidth_limit() < 0) {
          return absl::InvalidArgumentError("bandwidth_limit must not be negative");
        }
        RestoreSources sources;
        if (opts.bandwidth_limit() > 0) {
          sources.rate_limit = std::make_shared<RateLimiter>(opts.bandwidth_limit());
        }
        RETURN_IF_ERROR(PrepareScan(opts.source(), false, v1::DatabaseTarget(), cancel,
                                    &sources.backup, sources.rate_limit));
        if (opts.has_media_source()) {
          if (opts.db_only()) {
            return absl::InvalidArgumentError("media_source and db_only exclude each other");
          }
          RETURN_IF_ERROR(PrepareScan(opts.media_source(), false, v1::DatabaseTarget(), cancel,
                                      &sources.media.emplace(), sources.rate_limit));
        }
        ASSIGN_OR_RETURN(PreparedRestore restore,
                         PrepareRestore(request->request_id(), opts, sources, jobs_));
        if (opts.plan_only()) {
          *response->mutable_operation() = std::move(restore.plan);
          return absl::OkStatus();
        }
        return Launch(std::move(restore.spec), response->mutable_operation());
      });
}

grpc::ServerUnaryReactor* AgentService::StartRollback(grpc::CallbackServerContext* context,
                                                      const v1::StartRollbackRequest* request,
                                                      v1::StartRollbackResponse* response) {
  return StartOperationCall(
      context, "StartRollback", "start rollback",
      {{"database", request->options().target().database()}}, response->mutable_operation(),
      [this, request, response](const CancelToken&) -> absl::Status {
        v1::RollbackOptions opts = request->options();
        RETURN_IF_ERROR(AdmitCallerConnInfo(opts.mutable_target()));
        if (!opts.target().database().empty()) {
          RETURN_IF_ERROR(ValidateDatabaseName(opts.target().database(), "target.database"));
        }
        if (!opts.previous_database().empty()) {
          RETURN_IF_ERROR(ValidateDatabaseName(opts.previous_database(), "previous_database"));
        }
        ASSIGN_OR_RETURN(OperationSpec spec, MakeRollbackJob(request->request_id(), opts, jobs_));
        return Launch(std::move(spec), response->mutable_operation());
      });
}

grpc::ServerUnaryReactor* AgentService::StartMigrate(grpc::CallbackServerContext* context,
                                                     const v1::StartMigrateRequest* request,
                                                     v1::StartMigrateResponse* response) {
  return StartOperationCall(
      context, "StartMigrate", "start migration",
      {{"source_database", request->options().source().database()},
       {"database", request->options().target().database()}},
      response->mutable_operation(), [this, request, response](const CancelToken&) -> absl::Status {
        v1::MigrateOptions opts = request->options();
        RETURN_IF_ERROR(AdmitCallerConnInfo(opts.mutable_source()));
        RETURN_IF_ERROR(AdmitCallerConnInfo(opts.mutable_target()));
        if (!opts.source().database().empty()) {
          RETURN_IF_ERROR(ValidateDatabaseName(opts.source().database(), "source.database"));
        }
        if (!opts.target().database().empty()) {
          RETURN_IF_ERROR(ValidateDatabaseName(opts.target().database(), "target.database"));
        }
        ASSIGN_OR_RETURN(OperationSpec spec, MakeMigrateJob(request->request_id(), opts, jobs_));
        return Launch(std::move(spec), response->mutable_operation());
      });
}

grpc::ServerUnaryReactor* AgentService::CutOver(grpc::CallbackServerContext* context,
                                                const v1::CutOverRequest* request,
                                                v1::CutOverResponse* response) {
  if (auto* refused = RefuseWithout(context, "CutOver", "operate")) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto op = operations_->Get(request->id());
  absl::Status status = op.status();
  if (op.ok()) status = (*op)->RequestCutOver();
  if (status.ok()) *response->mutable_operation() = (*op)->Snapshot();
  logger_->Info("audit", {{"who", CallerIdentity(context, tokens_, local_peers_)},
                          {"rpc", "CutOver"},
                          {"operation", request->id()},
                          {"outcome", status.ok() ? "OK" : std::string(status.message())}});
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* AgentService::HoldCall(
    grpc::CallbackServerContext* context, const char* rpc, const std::string& hold_id,
    std::function<absl::Status(const std::string& who)> work) {
  if (auto* refused = RefuseWithout(context, rpc, "operate")) return refused;
  if (app_holds_ == nullptr) {
    return Refuse(context, rpc,
                  grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "this agent keeps no holds"));
  }
  return RunBlocking([this, who = CallerIdentity(context, tokens_, local_peers_), rpc, hold_id,
                      work = std::move(work)](const CancelToken&) {
    absl::Status status = work(who);
    logger_->Info("audit", {{"who", who},
                            {"rpc", rpc},
                            {"hold", hold_id},
                            {"outcome", status.ok() ? "OK" : std::string(status.message())}});
    return status;
  });
}

grpc::ServerUnaryReactor* AgentService::HoldApp(grpc::CallbackServerContext* context,
                                                const v1::HoldAppRequest* request,
                                                v1::HoldAppResponse* response) {
  return HoldCall(context, "HoldApp", request->id(),
                  [this, request, response](const std::string& who) -> absl::Status {
                    ASSIGN_OR_RETURN(*response->mutable_hold(), app_holds_->Hold(*request, who));
                    return absl::OkStatus();
                  });
}

grpc::ServerUnaryReactor* AgentService::ReleaseApp(grpc::CallbackServerContext* context,
                                                   const v1::ReleaseAppRequest* request,
                                                   v1::ReleaseAppResponse* response) {
  return HoldCall(context, "ReleaseApp", request->id(),
                  [this, request, response](const std::string& who) -> absl::Status {
                    ASSIGN_OR_RETURN(*response->mutable_hold(), app_holds_->Release(*request, who));
                    return absl::OkStatus();
                  });
}

absl::StatusOr<std::string> AgentService::ServedMediaDir() const {
  ASSIGN_OR_RETURN(RestoreMediaTarget media, ResolveRestoreMedia(v1::RestoreOptions(), jobs_));
  if (media.dir.empty()) return absl::FailedPreconditionError("this host has no media directory");
  return media.dir;
}

grpc::ServerUnaryReactor* AgentService::ListMedia(grpc::CallbackServerContext* context,
                                                  const v1::ListMediaRequest* request,
                                                  v1::ListMediaResponse* response) {
  if (auto* refused = RefuseWithout(context, "ListMedia", "operate")) return refused;
  return RunBlocking([this, request, response](const CancelToken&) -> absl::Status {
    if (request->page_size() < 0 || request->page_size() > 10000) {
      return absl::InvalidArgumentError("page_size is 0 to 10000");
    }
    ASSIGN_OR_RETURN(std::string dir, ServedMediaDir());
    if (!env_->Exists(dir)) return absl::OkStatus();  // none yet: no media
    MediaHashing hashing;
    if (request->sha256()) hashing.cache = &media_hashes_;
    ASSIGN_OR_RETURN(*response, ListHostMedia(dir, request->prefix(), request->page_token(),
                                              request->page_size(), hashing));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AgentService::ReadMedia(grpc::CallbackServerContext* context,
                                                  const v1::ReadMediaRequest* request,
                                                  v1::ReadMediaResponse* response) {
  if (auto* refused = RefuseWithout(context, "ReadMedia", "operate")) return refused;
  return RunBlocking([this, request, response](const CancelToken&) -> absl::Status {
    ASSIGN_OR_RETURN(std::string dir, ServedMediaDir());
    const int64_t length =
        request->length() > 0 && request->length() <= (4 << 20) ? request->length() : (1 << 20);
    ASSIGN_OR_RETURN(*response, ReadHostMedia(dir, request->path(), request->offset(), length,
                                              request->size(), request->mtime()));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AgentService::StartVerify(grpc::CallbackServerContext* context,
                                                    const v1::StartVerifyRequest* request,
                                                    v1::StartVerifyResponse* response) {
  return StartOperationCall(
      context, "StartVerify", "start verify",
      {{"database", request->options().target().database()}}, response->mutable_operation(),
      [this, request, response](const CancelToken& cancel) -> absl::Status {
        v1::VerifyOptions opts = request->options();
        RETURN_IF_ERROR(AdmitCallerConnInfo(opts.mutable_target()));
        if (!opts.target().database().empty()) {
          RETURN_IF_ERROR(ValidateDatabaseName(opts.target().database(), "target.database"));
        }
        std::optional<ScanSetup> expected;
        if (!opts.expected().path().empty()) {
          expected.emplace();
          RETURN_IF_ERROR(
              PrepareScan(opts.expected(), true, v1::DatabaseTarget(), cancel, &*expected));
        }
        ASSIGN_OR_RETURN(OperationSpec spec,
                         MakeVerifyJob(request->request_id(), opts, std::move(expected), jobs_));
        return Launch(std::move(spec), response->mutable_operation());
      });
}

grpc::ServerUnaryReactor* AgentService::GetOperation(grpc::CallbackServerContext* context,
                                                     const v1::GetOperationRequest* request,
                                                     v1::GetOperationResponse* response) {
  if (auto* refused = RefuseWithout(context, "GetOperation", "read")) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto op = operations_->Get(request->id());
  if (op.ok()) *response->mutable_operation() = (*op)->Snapshot();
  reactor->Finish(ToGrpcStatus(op.status()));
  return reactor;
}

grpc::ServerUnaryReactor* AgentService::ListOperations(grpc::CallbackServerContext* context,
                                                       const v1::ListOperationsRequest* request,
                                                       v1::ListOperationsResponse* response) {
  if (auto* refused = RefuseWithout(context, "ListOperations", "read")) return refused;
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  int offset = 0;
  if (!request->page_token().empty() && !absl::SimpleAtoi(request->page_token(), &offset)) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "invalid page_token"));
    return reactor;
  }
  int size = request->page_size() > 0 ? std::min(request->page_size(), 1000) : 50;
  std::vector<v1::Operation> all;
  for (v1::Operation& op : operations_->List()) {
    bool state_ok = request->states().empty(), kind_ok = request->kinds().empty();
    for (int s : request->states()) state_ok |= op.state() == s;
    for (int k : request->kinds()) kind_ok |= op.kind() == k;
    if (state_ok && kind_ok) all.push_back(std::move(op));
  }
  for (int i = offset; i < static_cast<int>(all.size()) && i < offset + size; ++i) {
    *response->add_operations() = all[i];
  }
  if (offset + size < static_cast<int>(all.size())) {
    response->set_next_page_token(absl::StrCat(offset + size));
  }
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AgentService::CancelOperation(grpc::CallbackServerContext* context,
                                                        const v1::CancelOperationRequest* request,
                                                        v1::CancelOperationResponse* response) {
  if (auto* refused = RefuseWithout(context, "CancelOperation", "operate")) return refused;
  logger_->Info("cancel operation", {{"operation", request->id()}, {"peer", context->peer()}});
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  auto op = operations_->Cancel(request->id());
  if (op.ok()) *response->mutable_operation() = (*op)->Snapshot();
  logger_->Info("audit", {{"who", CallerIdentity(context, tokens_, local_peers_)},
                          {"rpc", "CancelOperation"},
                          {"operation", request->id()},
                          {"outcome", op.ok() ? "OK" : std::string(op.status().message())}});
  reactor->Finish(ToGrpcStatus(op.status()));
  return reactor;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* AgentService::WatchOperation(
    grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw_request) {
  if (grpc::Status denied = RequireScope(context, tokens_, "read"); !denied.ok()) {
    AuditRefusal(context, "WatchOperation", denied);
    return new FinishedWriteReactor(denied);
  }
  v1::WatchOperationRequest request;
  grpc::ByteBuffer bytes = *raw_request;  // Deserialize consumes its buffer
  if (!grpc::SerializationTraits<v1::WatchOperationRequest>::Deserialize(&bytes, &request).ok()) {
    return new FinishedWriteReactor(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed WatchOperationRequest"));
  }
  auto op = operations_->Get(request.id());
  if (!op.ok()) return new FinishedWriteReactor(ToGrpcStatus(op.status()));
  if (!watchers_.TryAdd()) {
    return new FinishedWriteReactor(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("the agent is busy: ", watchers_.limit(),
                     " watch streams are open (--max-watchers); retry when one has ended")));
  }
  return new WatchReactor(*op, watch_feeds_.For((*op)->id()), request.from_sequence(),
                          [this]() { watchers_.Done(); });
}

}  // namespace mastodon_restore
