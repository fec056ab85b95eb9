// Starts, tracks, persists and cancels operations. One mutating operation per
// target at a time; a repeated request_id returns the existing operation.
// Records are written atomically to <state_dir>/operations/<id>.pb and
// survive a restart: operations found RUNNING or PENDING become INTERRUPTED.
#ifndef MR_AGENT_OPERATIONS_OPERATION_MANAGER_H_
#define MR_AGENT_OPERATIONS_OPERATION_MANAGER_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/common/env.h"
#include "agent/common/logging.h"
#include "agent/operations/operation.h"

namespace mastodon_restore {

struct OperationSpec {
  mastodon::restore::v1::OperationKind kind = mastodon::restore::v1::OPERATION_KIND_UNSPECIFIED;
  std::string request_id;
  // What the operation writes to ("database:mastodon_production"); ""
  // for read-only operations, which never conflict.
  std::string target;
  // Everything the operation writes to, when more than `target`: a whole
  // restore holds its database and its media directory (by resolved path),
  // so that a media-only restore of the same directory, or of one inside
  // it, conflicts with it. Empty: `target` alone.
  std::vector<std::string> locks;
  // Fills the (sanitized) request into the record.
  std::function<void(mastodon::restore::v1::Operation*)> fill_request;
  // Cleanup facts kept in the record (never secrets): the staging database
  // named from the operation id, and where it lives.
  std::function<std::string(const std::string& operation_id)> staging_database;
  std::string cleanup_conninfo;
  // The media staging directory named from the operation id ("" for none).
  std::function<std::string(const std::string& operation_id)> staging_media_dir;
  // The plan: steps with descriptions.
  std::vector<std::pair<std::string, std::string>> steps;
  // The work, run on its own thread. It reports through `op` and returns
  // the outcome (CANCELLED when it stopped because op->cancel_token() fired).
  std::function<absl::Status(Operation* op)> work;
};

// True when `record` has a journal part that no recovery has dealt with.
bool JournalPending(const mastodon::restore::v1::OperationRecord& record);

class OperationManager {
 public:
  // `env` and `logger` must outlive the manager. Keeps the newest
  // `retain` finished records, and none that ended more than `max_age` ago.
  OperationManager(std::string state_dir, Env* env, Logger* logger, int retain = 100,
                   absl::Duration max_age = absl::Hours(24 * 90));
  // Cancels running operations and waits for their threads.
  ~OperationManager();

  // Loads stored records; RUNNING/PENDING ones become INTERRUPTED. Returns
  // them, and any other record whose journal is not recovered yet (for the
  // recovery of their half-done phases, RecoverFromJournal).
  absl::StatusOr<std::vector<mastodon::restore::v1::OperationRecord>> Recover();

  // Operations running at once; Start refuses more. Default 8.
  void set_max_running(int n) {
    absl::MutexLock lock(&mu_);
    max_running_ = n;
  }

  // Test hook: runs on each operation's thread once it is RUNNING, before
  // its work (a test holds operations there). Set before any Start.
  void set_run_hook(std::function<void(Operation*)> hook) { run_hook_ = std::move(hook); }

  // Starts `spec`, or returns the existing operation of the same request_id.
  // ABORTED naming the running operation when one of its locks (target) is
  // held, or a directory lock ("media:/dir") inside or around one is; RESOURCE_EXHAUSTED when
  // max_running operations run.
  absl::StatusOr<std::shared_ptr<Operation>> Start(OperationSpec spec);

  // NOT_FOUND for an unknown id.
  absl::StatusOr<std::shared_ptr<Operation>> Get(const std::string& id);
  // Newest first.
  std::vector<mastodon::restore::v1::Operation> List();
  // Asks a running operation to stop; FAILED_PRECONDITION when it has ended.
  absl::StatusOr<std::shared_ptr<Operation>> Cancel(const std::string& id);

  // Cancels every running operation and waits for them (agent shutdown).
  void Shutdown();

 private:
  std::string NewId();
  void Persist(const mastodon::restore::v1::OperationRecord& record);
  // A journal save (Operation::Journal): the error is the caller's.
  absl::Status PersistJournal(const mastodon::restore::v1::OperationRecord& record);
  std::shared_ptr<Operation> MakeOperation(mastodon::restore::v1::OperationRecord record);
  void Prune() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string dir_;
  Env* const env_;
  Logger* const logger_;
  const int retain_;
  const absl::Duration max_age_;
  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Operation>> operations_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> by_request_id_ ABSL_GUARDED_BY(mu_);
  // target -> operation id of the running operation holding it.
  std::map<std::string, std::string> locks_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  int max_running_ ABSL_GUARDED_BY(mu_) = 8;
  int running_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void(Operation*)> run_hook_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_OPERATIONS_OPERATION_MANAGER_H_
