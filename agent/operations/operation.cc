#include "agent/operations/operation.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"

namespace mastodon_restore {

namespace v1 = mastodon::restore::v1;

namespace {

void SetTime(google::protobuf::Timestamp* ts, absl::Time t) {
  ts->set_seconds(absl::ToUnixSeconds(t));
  ts->set_nanos(static_cast<int32_t>(
      absl::ToInt64Nanoseconds(t - absl::FromUnixSeconds(absl::ToUnixSeconds(t)))));
}

constexpr size_t kMaxEvents = 50000;

}  // namespace

bool IsTerminal(v1::OperationState state) {
  return state == v1::OPERATION_STATE_SUCCEEDED || state == v1::OPERATION_STATE_FAILED ||
         state == v1::OPERATION_STATE_CANCELLED || state == v1::OPERATION_STATE_INTERRUPTED;
}

Operation::Operation(v1::OperationRecord record, Env* env, Persist persist)
    : id_(record.operation().id()),
      env_(env),
      persist_(std::move(persist)),
      record_(std::move(record)) {}

v1::Step* Operation::FindStep(const std::string& name) {
  for (v1::Step& s : *record_.mutable_operation()->mutable_steps()) {
    if (s.name() == name) return &s;
  }
  v1::Step* s = record_.mutable_operation()->add_steps();
  s->set_name(name);
  s->set_state(v1::STEP_STATE_PENDING);
  return s;
}

void Operation::Touch() {
  v1::Operation* op = record_.mutable_operation();
  SetTime(op->mutable_update_time(), env_->Now());
  int64_t done = 0;
  for (const v1::Step& s : op->steps()) {
    if (s.state() == v1::STEP_STATE_SUCCEEDED || s.state() == v1::STEP_STATE_SKIPPED) ++done;
  }
  op->mutable_progress()->set_done(done);
  op->mutable_progress()->set_total(op->steps_size());
  op->mutable_progress()->set_unit("steps");
  if (op->has_start_time()) {
    const absl::Time end =
        op->has_end_time() ? absl::FromUnixSeconds(op->end_time().seconds()) : env_->Now();
    op->mutable_progress()->set_elapsed_seconds(static_cast<int64_t>(
        absl::ToDoubleSeconds(end - absl::FromUnixSeconds(op->start_time().seconds()))));
  }
}

void Operation::Emit(Event event, bool persist_now) {
  v1::Operation* op = record_.mutable_operation();
  event.set_sequence(op->last_sequence() + 1);
  SetTime(event.mutable_time(), env_->Now());
  op->set_last_sequence(event.sequence());
  Touch();
  if (static_cast<size_t>(record_.events_size()) < kMaxEvents ||
      event.type() != v1::EVENT_TYPE_STEP_PROGRESS) {
    *record_.add_events() = event;
  }
  if (!listeners_.empty()) {
    Delivery d{event, std::make_shared<const v1::Operation>(*op), {}};
    d.listeners.reserve(listeners_.size());
    for (const auto& [id, listener] : listeners_) d.listeners.push_back(listener);
    pending_.push_back(std::move(d));
  }
  absl::Time now = env_->Now();
  if (persist_ && (persist_now || now - last_persist_ >= absl::Seconds(1))) {
    last_persist_ = now;
    persist_due_ = true;
  }
}

class Operation::WriteLock {
 public:
  explicit WriteLock(Operation* op) ABSL_EXCLUSIVE_LOCK_FUNCTION(op->mu_) : op_(op) {
    op_->mu_.Lock();
  }
  ~WriteLock() ABSL_UNLOCK_FUNCTION() { op_->UnlockAndPublish(); }
  WriteLock(const WriteLock&) = delete;
  WriteLock& operator=(const WriteLock&) = delete;

 private:
  Operation* const op_;
};

void Operation::UnlockAndPublish() {
  std::vector<Delivery> deliveries;
  deliveries.swap(pending_);
  std::optional<v1::OperationRecord> record;
  if (persist_due_) {
    persist_due_ = false;
    record = record_;
  }
  if (!deliveries.empty()) deliver_mu_.Lock();
  if (record.has_value()) persist_mu_.Lock();
  mu_.Unlock();
  if (record.has_value()) {
    persist_(*record);
    persist_mu_.Unlock();
  }
  if (!deliveries.empty()) {
    for (const Delivery& d : deliveries) {
      for (const Listener& listener : d.listeners) listener(d.event, *d.operation);
    }
    deliver_mu_.Unlock();
  }
}

absl::Status Operation::Journal(const std::function<void(v1::OperationRecord*)>& update) {
  mu_.Lock();
  update(&record_);
  v1::OperationRecord copy = record_;
  persist_mu_.Lock();
  mu_.Unlock();
  absl::Status saved = durable_ ? durable_(copy) : absl::OkStatus();
  persist_mu_.Unlock();
  return saved;
}

void Operation::DeclareSteps(const std::vector<std::pair<std::string, std::string>>& steps) {
  WriteLock lock(this);
  for (const auto& [name, description] : steps) FindStep(name)->set_description(description);
  Touch();
  persist_due_ = static_cast<bool>(persist_);
}

void Operation::MarkRunning() {
  WriteLock lock(this);
  SetTime(record_.mutable_operation()->mutable_start_time(), env_->Now());
  SetState(v1::OPERATION_STATE_RUNNING, "started");
}

void Operation::SetState(v1::OperationState state, const std::string& message) {
  record_.mutable_operation()->set_state(state);
  Event e;
  e.set_type(v1::EVENT_TYPE_STATE);
  e.set_state(state);
  e.set_message(message);
  Emit(e, true);
}

void Operation::MarkFollowing(const std::string& message) {
  WriteLock lock(this);
  SetState(v1::OPERATION_STATE_FOLLOWING, message);
}

void Operation::MarkCutOverBegun(const std::string& message) {
  WriteLock lock(this);
  SetState(v1::OPERATION_STATE_RUNNING, message);
}

absl::Status Operation::RequestCutOver() {
  {
    absl::MutexLock lock(&mu_);
    const v1::Operation& op = record_.operation();
    if (op.kind() != v1::OPERATION_KIND_MIGRATE) {
      return absl::FailedPreconditionError(
          absl::StrCat("operation '", id_, "' is not a migration: only a migration cuts over"));
    }
    if (IsTerminal(op.state())) {
      return absl::FailedPreconditionError(absl::StrCat("operation '", id_, "' has already ended"));
    }
  }
  cutover_requests_.fetch_add(1);
  Log(v1::SEVERITY_INFO, "cut-over requested");
  return absl::OkStatus();
}

void Operation::StepStarted(const std::string& step) {
  WriteLock lock(this);
  v1::Step* s = FindStep(step);
  s->set_state(v1::STEP_STATE_RUNNING);
  SetTime(s->mutable_start_time(), env_->Now());
  // A step run again (a migration's cut-over after a failed one) starts
  // afresh.
  s->clear_end_time();
  s->clear_progress();
  s->clear_message();
  Event e;
  e.set_type(v1::EVENT_TYPE_STEP_STARTED);
  e.set_step(step);
  e.set_step_state(v1::STEP_STATE_RUNNING);
  e.set_message(s->description());
  Emit(e, true);
}

void Operation::StepProgress(const std::string& step, int64_t done, int64_t total,
                             const std::string& unit, const std::string& message) {
  StepPhaseProgress(step, done, total, unit, message, Phase());
}

void Operation::StepPhaseProgress(const std::string& step, int64_t done, int64_t total,
                                  const std::string& unit, const std::string& message,
                                  const Phase& phase) {
  WriteLock lock(this);
  v1::Step* s = FindStep(step);
  absl::Time now = env_->Now();
  v1::Progress* p = s->mutable_progress();
  if (s->has_start_time() && done > 0) {
    double elapsed = absl::ToDoubleSeconds(now - absl::FromUnixSeconds(s->start_time().seconds()));
    if (elapsed > 0) {
      p->set_rate(done / elapsed);
      if (total > done && p->rate() > 0) {
        p->set_eta_seconds(static_cast<int64_t>((total - done) / p->rate()));
      }
    }
  }
  p->set_done(done);
  p->set_total(total);
  p->set_unit(unit);
  p->set_phase(phase.name);
  p->set_phase_done(phase.name.empty() ? 0 : phase.done);
  p->set_phase_total(phase.name.empty() ? 0 : phase.total);
  p->set_phase_unit(phase.name.empty() ? "" : phase.unit);
  if (!message.empty()) s->set_message(message);
  const v1::Operation& op = record_.operation();
  for (int i = 0; i < op.steps_size(); ++i) {
    if (&op.steps(i) == s) p->set_step_number(i + 1);
  }
  p->set_step_count(op.steps_size());
  if (op.has_start_time()) {
    p->set_elapsed_seconds(static_cast<int64_t>(
        absl::ToDoubleSeconds(now - absl::FromUnixSeconds(op.start_time().seconds()))));
  }
  Event e;
  e.set_type(v1::EVENT_TYPE_STEP_PROGRESS);
  e.set_step(step);
  e.set_step_state(s->state());
  *e.mutable_progress() = *p;
  e.set_message(message);
  Emit(e, false);
}

void Operation::StepFinished(const std::string& step, v1::StepState state,
                             const std::string& message) {
  WriteLock lock(this);
  v1::Step* s = FindStep(step);
  s->set_state(state);
  if (!message.empty()) s->set_message(message);
  SetTime(s->mutable_end_time(), env_->Now());
  Event e;
  e.set_type(v1::EVENT_TYPE_STEP_FINISHED);
  e.set_step(step);
  e.set_step_state(state);
  e.set_message(message);
  Emit(e, true);
}

void Operation::Log(v1::Severity severity, const std::string& message, const std::string& step) {
  WriteLock lock(this);
  Event e;
  e.set_type(v1::EVENT_TYPE_LOG);
  e.set_severity(severity);
  e.set_step(step);
  e.set_message(message);
  Emit(e, false);
}

void Operation::SetResult(const std::function<void(v1::Operation*)>& fill) {
  absl::MutexLock lock(&mu_);
  fill(record_.mutable_operation());
  Touch();
}

void Operation::Finish(const absl::Status& status) {
  WriteLock lock(this);
  v1::Operation* op = record_.mutable_operation();
  v1::OperationState state = status.ok() ? v1::OPERATION_STATE_SUCCEEDED
                             : status.code() == absl::StatusCode::kCancelled
                                 ? v1::OPERATION_STATE_CANCELLED
                                 : v1::OPERATION_STATE_FAILED;
  const v1::StepState step_end = status.ok()                              ? v1::STEP_STATE_SUCCEEDED
                                 : state == v1::OPERATION_STATE_CANCELLED ? v1::STEP_STATE_CANCELLED
                                                                          : v1::STEP_STATE_FAILED;
  std::string failed_step;
  for (v1::Step& s : *op->mutable_steps()) {
    if (s.state() == v1::STEP_STATE_RUNNING) {
      s.set_state(step_end);
      SetTime(s.mutable_end_time(), env_->Now());
      if (!status.ok()) failed_step = s.name();
    } else if (s.state() == v1::STEP_STATE_PENDING) {
      s.set_state(v1::STEP_STATE_SKIPPED);
    }
  }
  // A job that ended the failed step itself (and then cleaned up in other
  // steps) is blamed on that step.
  if (!status.ok() && failed_step.empty()) {
    for (const v1::Step& s : op->steps()) {
      if (s.state() == v1::STEP_STATE_FAILED || s.state() == v1::STEP_STATE_CANCELLED) {
        failed_step = s.name();
        break;
      }
    }
  }
  op->set_state(state);
  SetTime(op->mutable_end_time(), env_->Now());
  if (!status.ok()) {
    v1::OperationError* err = op->mutable_error();
    err->set_code(static_cast<int32_t>(status.code()));
    err->set_message(std::string(status.message()));
    err->set_step(failed_step);
  }
  Event e;
  e.set_type(v1::EVENT_TYPE_STATE);
  e.set_state(state);
  e.set_message(status.ok() ? "succeeded" : std::string(status.message()));
  e.set_severity(status.ok() ? v1::SEVERITY_INFO : v1::SEVERITY_ERROR);
  Emit(e, true);
  listeners_.clear();
}

void Operation::MarkInterrupted(const std::string& why) {
  WriteLock lock(this);
  v1::Operation* op = record_.mutable_operation();
  if (IsTerminal(op->state())) return;
  for (v1::Step& s : *op->mutable_steps()) {
    if (s.state() == v1::STEP_STATE_RUNNING) s.set_state(v1::STEP_STATE_FAILED);
    if (s.state() == v1::STEP_STATE_PENDING) s.set_state(v1::STEP_STATE_SKIPPED);
  }
  op->set_state(v1::OPERATION_STATE_INTERRUPTED);
  SetTime(op->mutable_end_time(), env_->Now());
  op->mutable_error()->set_code(static_cast<int32_t>(absl::StatusCode::kAborted));
  op->mutable_error()->set_message(why);
  Event e;
  e.set_type(v1::EVENT_TYPE_STATE);
  e.set_state(v1::OPERATION_STATE_INTERRUPTED);
  e.set_message(why);
  e.set_severity(v1::SEVERITY_ERROR);
  Emit(e, true);
}

v1::Operation Operation::Snapshot() const {
  absl::MutexLock lock(&mu_);
  return record_.operation();
}

v1::OperationRecord Operation::Record() const {
  absl::MutexLock lock(&mu_);
  return record_;
}

bool Operation::done() const {
  absl::MutexLock lock(&mu_);
  return IsTerminal(record_.operation().state());
}

Operation::EventPage Operation::ReadEventsLocked(int64_t from_sequence, size_t max_events) const {
  EventPage page;
  const auto& events = record_.events();
  // Stored in sequence order.
  auto it =
      std::lower_bound(events.begin(), events.end(), from_sequence,
                       [](const Event& e, int64_t sequence) { return e.sequence() < sequence; });
  for (; it != events.end() && page.events.size() < max_events; ++it) page.events.push_back(*it);
  page.complete = it == events.end();
  page.last_sequence = record_.operation().last_sequence();
  if (page.complete) page.operation = record_.operation();
  return page;
}

Operation::EventPage Operation::ReadEvents(int64_t from_sequence, size_t max_events) const {
  absl::MutexLock lock(&mu_);
  return ReadEventsLocked(from_sequence, max_events);
}

int64_t Operation::Subscribe(int64_t from_sequence, size_t max_backlog, Listener listener,
                             EventPage* page) {
  absl::MutexLock lock(&mu_);
  *page = ReadEventsLocked(from_sequence, max_backlog);
  if (IsTerminal(record_.operation().state())) return 0;
  int64_t id = next_listener_++;
  listeners_[id] = std::move(listener);
  return id;
}

void Operation::Unsubscribe(int64_t listener_id) {
  {
    absl::MutexLock lock(&mu_);
    listeners_.erase(listener_id);
  }
  // A delivery that captured the listener before the erase holds deliver_mu_
  // (taken under mu_): wait for it, so no call runs after this returns.
  absl::MutexLock barrier(&deliver_mu_);
}

}  // namespace mastodon_restore
