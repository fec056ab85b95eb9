#include "agent/operations/operation_manager.h"

#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/common/failpoint.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {

namespace v1 = mastodon::restore::v1;

bool JournalPending(const v1::OperationRecord& record) {
  if (record.recovered()) return false;
  return record.has_database_journal() || record.has_cluster_journal() ||
         record.has_media_journal() || record.has_env_journal() || record.has_redis_journal() ||
         record.services_stopped() || record.has_peer_hold();
}

OperationManager::OperationManager(std::string state_dir, Env* env, Logger* logger, int retain,
                                   absl::Duration max_age)
    : dir_(state_dir + "/operations"),
      env_(env),
      logger_(logger),
      retain_(retain),
      max_age_(max_age) {}

OperationManager::~OperationManager() { Shutdown(); }

std::string OperationManager::NewId() {
  static thread_local std::mt19937 rng(std::random_device{}());
  return absl::StrFormat("op-%s-%04x",
                         absl::FormatTime("%Y%m%d-%H%M%S", env_->Now(), absl::UTCTimeZone()),
                         static_cast<unsigned>(rng() & 0xffff));
}

std::shared_ptr<Operation> OperationManager::MakeOperation(v1::OperationRecord record) {
  auto op = std::make_shared<Operation>(std::move(record), env_,
                                        [this](const v1::OperationRecord& r) { Persist(r); });
  op->set_durable_persist([this](const v1::OperationRecord& r) { return PersistJournal(r); });
  return op;
}

absl::Status OperationManager::PersistJournal(const v1::OperationRecord& record) {
  RETURN_IF_ERROR(MR_FAILPOINT("journal.before_write"));
  std::string data;
  record.SerializeToString(&data);
  absl::Status s =
      env_->WriteFileAtomic(absl::StrCat(dir_, "/", record.operation().id(), ".pb"), data, 0600);
  if (!s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("unable to save the operation's journal: ", s.message()));
  }
  return MR_FAILPOINT("journal.after_write");
}

void OperationManager::Persist(const v1::OperationRecord& record) {
  std::string data;
  record.SerializeToString(&data);
  // (An error here is logged: the record is saved again at the next change.)
  absl::Status s = MR_FAILPOINT("record.before_write");
  if (s.ok()) {
    s = env_->WriteFileAtomic(absl::StrCat(dir_, "/", record.operation().id(), ".pb"), data, 0600);
  }
  if (s.ok()) s = MR_FAILPOINT("record.after_write");
  if (!s.ok()) {
    logger_->Error("unable to save operation record",
                   {{"operation", record.operation().id()}, {"error", std::string(s.message())}});
  }
}

absl::StatusOr<std::vector<v1::OperationRecord>> OperationManager::Recover() {
  RETURN_IF_ERROR(env_->CreateDirs(dir_, 0700, true));
  ASSIGN_OR_RETURN(std::vector<std::string> names, env_->ListDir(dir_));
  std::vector<v1::OperationRecord> interrupted;
  absl::MutexLock lock(&mu_);
  for (const std::string& name : names) {
    if (!absl::EndsWith(name, ".pb")) continue;
    auto data = env_->ReadFile(absl::StrCat(dir_, "/", name));
    v1::OperationRecord record;
    if (!data.ok() || !record.ParseFromString(*data) || record.operation().id().empty()) {
      logger_->Warning("unreadable operation record ignored", {{"file", name}});
      continue;
    }
    auto op = MakeOperation(record);
    if (!IsTerminal(record.operation().state())) {
      op->MarkInterrupted("the agent stopped while the operation ran");
      interrupted.push_back(op->Record());
    } else if (JournalPending(record)) {
      interrupted.push_back(op->Record());
    }
    if (!record.operation().request_id().empty()) {
      by_request_id_[record.operation().request_id()] = op->id();
    }
    operations_[op->id()] = op;
  }
  return interrupted;
}

namespace {

// True when two lock keys cover a common thing: the same key, or two
// directories ("media:/srv/m", "media:/srv/m/sub") one inside the other.
bool LocksOverlap(const std::string& a, const std::string& b) {
  if (a == b) return true;
  constexpr absl::string_view kDir = "media:/";
  if (!absl::StartsWith(a, kDir) || !absl::StartsWith(b, kDir)) return false;
  const std::string& shorter = a.size() < b.size() ? a : b;
  const std::string& longer = a.size() < b.size() ? b : a;
  return absl::StartsWith(longer, shorter) &&
         (shorter.back() == '/' || longer[shorter.size()] == '/');
}

}  // namespace

absl::StatusOr<std::shared_ptr<Operation>> OperationManager::Start(OperationSpec spec) {
  absl::MutexLock lock(&mu_);
  if (shut_down_) return absl::UnavailableError("the agent is shutting down");
  if (!spec.request_id.empty()) {
    auto it = by_request_id_.find(spec.request_id);
    if (it != by_request_id_.end() && operations_.count(it->second) != 0) {
      return operations_[it->second];
    }
  }
  std::vector<std::string> locks = spec.locks;
  if (locks.empty() && !spec.target.empty()) locks.push_back(spec.target);
  for (const std::string& key : locks) {
    for (const auto& [held, holder] : locks_) {
      if (!LocksOverlap(key, held)) continue;
      return absl::AbortedError(absl::StrCat("operation ", holder, " is running on ", held,
                                             ": wait for it or cancel it"));
    }
  }
  if (running_ >= max_running_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the agent is busy: ", running_,
                     " operations are running (--max-running-operations); start this one when "
                     "one has ended"));
  }
  v1::OperationRecord record;
  v1::Operation* op_proto = record.mutable_operation();
  op_proto->set_id(NewId());
  while (operations_.count(op_proto->id()) != 0) op_proto->set_id(NewId());
  op_proto->set_kind(spec.kind);
  op_proto->set_state(v1::OPERATION_STATE_PENDING);
  op_proto->set_request_id(spec.request_id);
  op_proto->set_target(spec.target);
  absl::Time now = env_->Now();
  op_proto->mutable_create_time()->set_seconds(absl::ToUnixSeconds(now));
  if (spec.fill_request) spec.fill_request(op_proto);
  if (spec.staging_database) record.set_staging_database(spec.staging_database(op_proto->id()));
  record.set_cleanup_conninfo(spec.cleanup_conninfo);
  if (spec.staging_media_dir) record.set_staging_media_dir(spec.staging_media_dir(op_proto->id()));
  auto op = MakeOperation(std::move(record));
  op->DeclareSteps(spec.steps);
  operations_[op->id()] = op;
  if (!spec.request_id.empty()) by_request_id_[spec.request_id] = op->id();
  for (const std::string& key : locks) locks_[key] = op->id();
  ++running_;
  logger_->Info("operation started", {{"operation", op->id()},
                                      {"kind", v1::OperationKind_Name(spec.kind)},
                                      {"target", spec.target}});
  Prune();
  threads_.emplace_back([this, op, work = std::move(spec.work), locks]() {
    op->MarkRunning();
    if (run_hook_) run_hook_(op.get());
    absl::Status status = work(op.get());
    if (status.ok() && op->cancel_token().cancelled()) {
      status = absl::CancelledError("cancelled");
    }
    op->Finish(status);
    logger_->Info("operation ended", {{"operation", op->id()},
                                      {"state", v1::OperationState_Name(op->Snapshot().state())},
                                      {"error", std::string(status.message())}});
    absl::MutexLock lock(&mu_);
    for (const std::string& key : locks) {
      auto it = locks_.find(key);
      if (it != locks_.end() && it->second == op->id()) locks_.erase(it);
    }
    --running_;
  });
  return op;
}

absl::StatusOr<std::shared_ptr<Operation>> OperationManager::Get(const std::string& id) {
  absl::MutexLock lock(&mu_);
  auto it = operations_.find(id);
  if (it == operations_.end()) {
    return absl::NotFoundError(absl::StrCat("no operation '", id, "'"));
  }
  return it->second;
}

std::vector<v1::Operation> OperationManager::List() {
  std::vector<std::shared_ptr<Operation>> ops;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, op] : operations_) ops.push_back(op);
  }
  std::vector<v1::Operation> out;
  for (const auto& op : ops) out.push_back(op->Snapshot());
  std::sort(out.begin(), out.end(), [](const v1::Operation& a, const v1::Operation& b) {
    return a.create_time().seconds() != b.create_time().seconds()
               ? a.create_time().seconds() > b.create_time().seconds()
               : a.id() > b.id();
  });
  return out;
}

absl::StatusOr<std::shared_ptr<Operation>> OperationManager::Cancel(const std::string& id) {
  ASSIGN_OR_RETURN(std::shared_ptr<Operation> op, Get(id));
  if (op->done()) {
    return absl::FailedPreconditionError(absl::StrCat("operation '", id, "' has already ended"));
  }
  op->cancel_token().Cancel();
  op->Log(v1::SEVERITY_WARNING, "cancellation requested");
  logger_->Info("operation cancel requested", {{"operation", id}});
  return op;
}

void OperationManager::Prune() {
  std::vector<std::pair<int64_t, std::string>> finished;
  const int64_t oldest = absl::ToUnixSeconds(env_->Now() - max_age_);
  std::vector<std::string> expired;
  for (const auto& [id, op] : operations_) {
    v1::Operation s = op->Snapshot();
    if (!IsTerminal(s.state())) continue;
    finished.emplace_back(s.create_time().seconds(), id);
    if (s.has_end_time() && s.end_time().seconds() < oldest) expired.push_back(id);
  }
  std::sort(finished.begin(), finished.end());
  for (size_t i = 0; i + retain_ < finished.size(); ++i) expired.push_back(finished[i].second);
  for (const std::string& id : expired) {
    auto it = operations_.find(id);
    if (it == operations_.end()) continue;  // listed twice
    std::string request_id = it->second->Snapshot().request_id();
    if (!request_id.empty()) by_request_id_.erase(request_id);
    operations_.erase(it);
    env_->RemoveFile(absl::StrCat(dir_, "/", id, ".pb")).IgnoreError();
  }
}

void OperationManager::Shutdown() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
    for (auto& [id, op] : operations_) {
      if (!op->done()) op->cancel_token().Cancel();
    }
    threads.swap(threads_);
  }
  for (std::thread& t : threads) {
    if (t.joinable()) t.join();
  }
}

}  // namespace mastodon_restore
