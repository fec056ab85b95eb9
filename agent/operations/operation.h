// One long-running operation: its record (state, steps, progress, result,
// error) and its numbered events. Work reports through the ProgressReporter
// interface; watchers subscribe from any sequence number without gaps.
#ifndef MR_AGENT_OPERATIONS_OPERATION_H_
#define MR_AGENT_OPERATIONS_OPERATION_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/common/cancel_token.h"
#include "agent/common/env.h"
#include "mastodon/restore/v1/operation.pb.h"

namespace mastodon_restore {

// What steps of any operation call to report (ninja's Status pattern).
class ProgressReporter {
 public:
  virtual ~ProgressReporter() = default;
  // A step started again (a migration's cut-over after a failed one)
  // starts afresh: its end time, progress and message are cleared.
  virtual void StepStarted(const std::string& step) = 0;
  // `total` 0: unknown.
  virtual void StepProgress(const std::string& step, int64_t done, int64_t total,
                            const std::string& unit, const std::string& message) = 0;
  // A step of several phases (the load: reading the data, then building):
  // `done`/`total` cover the whole step, `phase` the one running. By
  // default the phase is dropped.
  struct Phase {
    std::string name;  // "data", "build"
    int64_t done = 0;
    int64_t total = 0;  // 0: unknown
    std::string unit;   // "bytes", "builds"
  };
  virtual void StepPhaseProgress(const std::string& step, int64_t done, int64_t total,
                                 const std::string& unit, const std::string& message,
                                 const Phase& phase) {
    (void)phase;
    StepProgress(step, done, total, unit, message);
  }
  virtual void StepFinished(const std::string& step, mastodon::restore::v1::StepState state,
                            const std::string& message) = 0;
  virtual void Log(mastodon::restore::v1::Severity severity, const std::string& message,
                   const std::string& step = "") = 0;
};

class Operation : public ProgressReporter {
 public:
  using Event = mastodon::restore::v1::OperationEvent;
  // Called for every new event with the operation as of that event, in
  // event order and one call at a time, outside the operation's lock (so a
  // slow listener never delays readers). It must only queue: never block or
  // call back into the operation.
  using Listener =
      std::function<void(const Event& event, const mastodon::restore::v1::Operation& current)>;
  // Called when the record should be saved (state changes at once, progress
  // at most once a second).
  using Persist = std::function<void(const mastodon::restore::v1::OperationRecord&)>;

  // Saves the record synchronously and durably; the error when it could not.
  using DurablePersist = std::function<absl::Status(const mastodon::restore::v1::OperationRecord&)>;

  // From a new record, or from a stored one (recovery).
  Operation(mastodon::restore::v1::OperationRecord record, Env* env, Persist persist);

  // Where Journal saves (none: Journal only updates the record in memory).
  void set_durable_persist(DurablePersist durable) { durable_ = std::move(durable); }

  // Updates the record's journal fields with `update` and saves the record
  // before returning (in order with the other saves). Work calls it before
  // each side effect a crash could leave half done; an error means the
  // side effect must not happen.
  absl::Status Journal(const std::function<void(mastodon::restore::v1::OperationRecord*)>& update);

  const std::string& id() const { return id_; }
  CancelToken& cancel_token() { return cancel_; }

  // Declares the plan: every step PENDING.
  void DeclareSteps(const std::vector<std::pair<std::string, std::string>>& steps);
  void MarkRunning();
  // A migration: FOLLOWING while it waits for its cut-over, RUNNING again
  // when the cut-over begins (a state event each, with `message`).
  void MarkFollowing(const std::string& message);
  void MarkCutOverBegun(const std::string& message);
  // CutOver: counts one more request for the cut-over (the job compares
  // cutover_requests() with the count it has handled, so that a cut-over
  // it refused can be asked again). FAILED_PRECONDITION when the operation
  // is not a migration or has ended.
  absl::Status RequestCutOver();
  int cutover_requests() const { return cutover_requests_.load(); }
  // Ends the operation: SUCCEEDED for OK, CANCELLED for CANCELLED, FAILED
  // otherwise (the error records the code, the message and the failed step).
  // Steps still RUNNING end in the same way; PENDING ones become SKIPPED.
  void Finish(const absl::Status& status);
  // Ends a recovered RUNNING/PENDING operation as INTERRUPTED.
  void MarkInterrupted(const std::string& why);
  // Sets the result (the oneof field of Operation); `fill` runs under the lock.
  void SetResult(const std::function<void(mastodon::restore::v1::Operation*)>& fill);

  // ProgressReporter.
  void StepStarted(const std::string& step) override;
  // Progress events carry the step's place (step_number of step_count) and
  // the seconds since the operation started; the operation's overall
  // progress carries those seconds too.
  void StepProgress(const std::string& step, int64_t done, int64_t total, const std::string& unit,
                    const std::string& message) override;
  void StepPhaseProgress(const std::string& step, int64_t done, int64_t total,
                         const std::string& unit, const std::string& message,
                         const Phase& phase) override;
  void StepFinished(const std::string& step, mastodon::restore::v1::StepState state,
                    const std::string& message) override;
  void Log(mastodon::restore::v1::Severity severity, const std::string& message,
           const std::string& step = "") override;

  mastodon::restore::v1::Operation Snapshot() const;
  mastodon::restore::v1::OperationRecord Record() const;
  bool done() const;

  // Stored events read in pages (a watcher that replays or fell behind).
  struct EventPage {
    // The stored events from the sequence asked for on, in order, at most
    // the number asked for.
    std::vector<Event> events;
    // True when `events` reach the last stored event.
    bool complete = false;
    // The operation's last event sequence at the read. Progress events
    // beyond the record's cap (50,000 events) have sequences but are not
    // stored, so this may be past the last stored event.
    int64_t last_sequence = 0;
    // The operation at the read; only when `complete`.
    mastodon::restore::v1::Operation operation;
  };
  EventPage ReadEvents(int64_t from_sequence, size_t max_events) const;

  // Reads a page as ReadEvents and subscribes `listener` to the events that
  // follow the read, atomically: every call to `listener` is for an event
  // after `page->last_sequence`, and with a complete page nothing lies in
  // between. Returns the listener's id (0 when the operation has already
  // ended: nothing more will come; the rest is in the record).
  int64_t Subscribe(int64_t from_sequence, size_t max_backlog, Listener listener, EventPage* page);
  // Removes a listener; when it returns, no call to it runs or will run. Must
  // not be called from within a listener.
  void Unsubscribe(int64_t listener_id);

 private:
  mastodon::restore::v1::Step* FindStep(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Holds mu_; on release saves the record if an event asked for it.
  class WriteLock;
  // Releases mu_, then saves the record if a save is due and hands the new
  // events to the listeners they were emitted to. Both happen after the
  // release, so readers (GetOperation) never wait for the disk or the
  // watchers; deliver_mu_ and persist_mu_ are taken before mu_ is released,
  // so saves and deliveries keep event order.
  void UnlockAndPublish() ABSL_UNLOCK_FUNCTION(mu_);
  void Emit(Event event, bool persist_now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets the operation's state and emits its state event.
  void SetState(mastodon::restore::v1::OperationState state, const std::string& message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Touch() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  EventPage ReadEventsLocked(int64_t from_sequence, size_t max_events) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const std::string id_;
  Env* const env_;
  Persist persist_;
  DurablePersist durable_;
  CancelToken cancel_;
  std::atomic<int> cutover_requests_{0};
  mutable absl::Mutex mu_;
  mastodon::restore::v1::OperationRecord record_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, Listener> listeners_ ABSL_GUARDED_BY(mu_);
  int64_t next_listener_ ABSL_GUARDED_BY(mu_) = 1;
  absl::Time last_persist_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool persist_due_ ABSL_GUARDED_BY(mu_) = false;
  struct Delivery {
    Event event;
    std::shared_ptr<const mastodon::restore::v1::Operation> operation;
    std::vector<Listener> listeners;
  };
  std::vector<Delivery> pending_ ABSL_GUARDED_BY(mu_);
  // Lock order: mu_, deliver_mu_, persist_mu_. deliver_mu_ serialises
  // deliveries (and lets Unsubscribe wait for one in flight); persist_mu_
  // serialises saves.
  absl::Mutex deliver_mu_ ABSL_ACQUIRED_AFTER(mu_);
  absl::Mutex persist_mu_ ABSL_ACQUIRED_AFTER(deliver_mu_);
};

// True for SUCCEEDED, FAILED, CANCELLED, INTERRUPTED.
bool IsTerminal(mastodon::restore::v1::OperationState state);

}  // namespace mastodon_restore

#endif  // MR_AGENT_OPERATIONS_OPERATION_H_
