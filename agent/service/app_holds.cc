#include "agent/service/app_holds.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/app/app_tasks.h"
#include "agent/common/status_macros.h"
#include "agent/operations/operation.h"

namespace mastodon_restore {

namespace v1 = ::mastodon::restore::v1;

namespace {

// Released holds kept in the file (the newest), for the record.
constexpr int kReleasedKept = 20;

void SetNow(google::protobuf::Timestamp* ts, absl::Time now) {
  ts->set_seconds(absl::ToUnixSeconds(now));
}

absl::Status ValidateHoldId(const std::string& id) {
  bool ok = !id.empty() && id.size() <= 64 && id[0] != '-' && id[0] != '.';
  for (char c : id) {
    ok = ok &&
         (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-');
  }
  if (!ok) return absl::InvalidArgumentError("a hold id is 1-64 of [A-Za-z0-9_.-]");
  return absl::OkStatus();
}

// The service commands' lines go to the agent's log.
class LogReporter : public ProgressReporter {
 public:
  explicit LogReporter(Logger* logger) : logger_(logger) {}
  void StepStarted(const std::string&) override {}
  void StepProgress(const std::string&, int64_t, int64_t, const std::string&,
                    const std::string&) override {}
  void StepFinished(const std::string&, v1::StepState, const std::string&) override {}
  void Log(v1::Severity severity, const std::string& message, const std::string& step) override {
    logger_->Log(severity == v1::SEVERITY_WARNING || severity == v1::SEVERITY_ERROR
                     ? LogLevel::kWarning
                     : LogLevel::kInfo,
                 message, {{"step", step}});
  }

 private:
  Logger* const logger_;
};

}  // namespace

AppHolds::AppHolds(std::string path, Env* env, CommandRunner* runner, const RuntimeContext* runtime,
                   Logger* logger)
    : path_(std::move(path)), env_(env), runner_(runner), runtime_(runtime), logger_(logger) {}

absl::Status AppHolds::Load() {
  absl::MutexLock lock(&mu_);
  if (!env_->Exists(path_)) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::string data, env_->ReadFile(path_));
  if (!holds_.ParseFromString(data)) {
    return absl::DataLossError(
        absl::StrCat(path_, " does not parse: the agent would forget why its app is held stopped"));
  }
  for (const v1::AppHold& h : holds_.holds()) {
    if (h.state() == v1::APP_HOLD_STATE_HELD) {
      logger_->Warning("the app is held stopped",
                       {{"hold", h.id()}, {"holder", h.holder()}, {"caller", h.caller()}});
    }
  }
  return absl::OkStatus();
}

v1::AppHold* AppHolds::Find(const std::string& id) {
  for (v1::AppHold& h : *holds_.mutable_holds()) {
    if (h.id() == id) return &h;
  }
  return nullptr;
}

absl::Status AppHolds::Save() {
  // Written without the oldest released holds (holds_ itself stays as it
  // is: callers hold pointers into it).
  int released = 0;
  for (const v1::AppHold& h : holds_.holds()) released += h.state() == v1::APP_HOLD_STATE_RELEASED;
  v1::AppHoldList kept;
  for (const v1::AppHold& h : holds_.holds()) {
    if (h.state() == v1::APP_HOLD_STATE_RELEASED && released-- > kReleasedKept) continue;
    *kept.add_holds() = h;
  }
  std::string data;
  kept.SerializeToString(&data);
  return env_->WriteFileAtomic(path_, data, 0600);
}

absl::Status AppHolds::Control(bool start) {
  LogReporter reporter(logger_);
  TaskContext ctx;
  ctx.runner = runner_;
  ctx.env = env_;
  ctx.reporter = &reporter;
  ctx.step = start ? "release" : "hold";
  ctx.timeout = absl::Minutes(10);
  return ControlServices(*runtime_->runtime, start, ctx);
}

absl::StatusOr<v1::AppHold> AppHolds::Hold(const v1::HoldAppRequest& request,
                                           const std::string& caller) {
  RETURN_IF_ERROR(ValidateHoldId(request.id()));
  absl::MutexLock lock(&mu_);
  v1::AppHold* existing = Find(request.id());
  if (existing != nullptr && existing->state() != v1::APP_HOLD_STATE_RELEASED) return *existing;
  for (const v1::AppHold& h : holds_.holds()) {
    if (h.state() == v1::APP_HOLD_STATE_HELD) {
      return absl::FailedPreconditionError(
          absl::StrCat("this host's app is already held by ", h.holder(), " (hold ", h.id(), ")"));
    }
  }
  const Runtime* runtime = runtime_ != nullptr ? runtime_->runtime : nullptr;
  if (runtime == nullptr || runtime->ServiceCommands(false).empty()) {
    return absl::FailedPreconditionError(
        "this agent runs no Mastodon app (no runtime, or one without services) to hold");
  }
  v1::AppHold* hold = existing != nullptr ? existing : holds_.add_holds();
  hold->Clear();
  hold->set_id(request.id());
  hold->set_holder(request.holder());
  hold->set_caller(caller);
  hold->set_state(v1::APP_HOLD_STATE_HELD);
  SetNow(hold->mutable_held_at(), env_->Now());
  for (const std::string& s : runtime->Services()) hold->add_services(s);
  hold->set_runtime(runtime->name());
  hold->set_mastodon_version(runtime->MastodonVersion());
  // Recorded before the first stop: a crash in between leaves a hold that
  // says why the app may be down.
  RETURN_IF_ERROR(Save());
  logger_->Warning("holding the app stopped",
                   {{"hold", hold->id()}, {"holder", hold->holder()}, {"caller", caller}});
  absl::Status stopped = Control(/*start=*/false);
  if (!stopped.ok()) {
    absl::Status started = Control(/*start=*/true);
    hold->set_state(started.ok() ? v1::APP_HOLD_STATE_RELEASED : v1::APP_HOLD_STATE_HELD);
    SetNow(hold->mutable_ended_at(), env_->Now());
    Save().IgnoreError();
    return absl::Status(stopped.code(),
                        absl::StrCat(stopped.message(),
                                     started.ok() ? "; the app was started again"
                                                  : absl::StrCat("; starting it again failed too: ",
                                                                 started.message())));
  }
  return *hold;
}

absl::StatusOr<v1::AppHold> AppHolds::Release(const v1::ReleaseAppRequest& request,
                                              const std::string& caller) {
  RETURN_IF_ERROR(ValidateHoldId(request.id()));
  absl::MutexLock lock(&mu_);
  v1::AppHold* hold = Find(request.id());
  if (hold == nullptr) {
    return absl::NotFoundError(absl::StrCat("no hold '", request.id(), "' on this host's app"));
  }
  if (hold->state() == v1::APP_HOLD_STATE_RELEASED) return *hold;
  if (request.keep_stopped()) {
    hold->set_state(v1::APP_HOLD_STATE_KEPT_STOPPED);
    SetNow(hold->mutable_ended_at(), env_->Now());
    RETURN_IF_ERROR(Save());
    logger_->Warning("the app stays stopped: the instance moved",
                     {{"hold", hold->id()}, {"holder", hold->holder()}, {"caller", caller}});
    return *hold;
  }
  if (runtime_ == nullptr || runtime_->runtime == nullptr) {
    return absl::FailedPreconditionError("this agent has no runtime to start the app with");
  }
  RETURN_IF_ERROR(Control(/*start=*/true));
  hold->set_state(v1::APP_HOLD_STATE_RELEASED);
  SetNow(hold->mutable_ended_at(), env_->Now());
  RETURN_IF_ERROR(Save());
  logger_->Info("the app was started again",
                {{"hold", hold->id()}, {"holder", hold->holder()}, {"caller", caller}});
  return *hold;
}

std::vector<v1::AppHold> AppHolds::Current() const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::AppHold> out;
  for (const v1::AppHold& h : holds_.holds()) {
    if (h.state() != v1::APP_HOLD_STATE_RELEASED) out.push_back(h);
  }
  return out;
}

absl::Status AppHolds::CheckNotHeld(const std::string& what) const {
  absl::MutexLock lock(&mu_);
  for (const v1::AppHold& h : holds_.holds()) {
    if (h.state() != v1::APP_HOLD_STATE_HELD) continue;
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing ", what, ": this host's app is held stopped by ", h.holder(), " (hold ", h.id(),
        "); it ends with that migration, or with: mastodon-restore app-hold release ", h.id()));
  }
  return absl::OkStatus();
}

}  // namespace mastodon_restore
