// This host's app held stopped for another host's migration (HoldApp,
// ReleaseApp): the old host's side of a live migration. The new host's
// agent holds the app at the cut-over, then releases it: started again
// when the migration was undone, kept stopped for good when it cut over.
//
// The holds are kept in <state-dir>/app-holds.pb, written (atomically,
// mode 0600) before the app is stopped and after it is started: an agent
// restarted while its app is held still knows why the app is down, does
// not start it by itself (the holder may have cut over: two live copies of
// the instance would each lose the other's writes), and goes on refusing
// the operations that would change the instance until the holder (or the
// admin, with `mastodon-restore app-hold release`) ends the hold.
#ifndef MR_AGENT_SERVICE_APP_HOLDS_H_
#define MR_AGENT_SERVICE_APP_HOLDS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/common/env.h"
#include "agent/common/logging.h"
#include "agent/common/subprocess.h"
#include "agent/jobs/job_env.h"
#include "mastodon/restore/v1/agent_service.pb.h"

namespace mastodon_restore {

class AppHolds {
 public:
  // `path` is the holds file; the others must outlive this.
  AppHolds(std::string path, Env* env, CommandRunner* runner, const RuntimeContext* runtime,
           Logger* logger);

  // Reads the holds file (none yet: no holds). A file that does not parse
  // is DATA_LOSS: the agent does not start rather than forget a hold.
  absl::Status Load();

  // Stops the app for `request.holder` (as `caller` authenticated). The
  // same id again returns the hold as it is. FAILED_PRECONDITION when
  // another hold is HELD, or the runtime runs no app; a failed stop starts
  // the app again and is returned (the hold then ends RELEASED).
  absl::StatusOr<mastodon::restore::v1::AppHold> Hold(
      const mastodon::restore::v1::HoldAppRequest& request, const std::string& caller);

  // Starts the app again, or keeps it stopped (`keep_stopped`). NOT_FOUND
  // for an unknown id; releasing a RELEASED hold returns it as it is. A
  // failed start leaves the hold as it was and is returned.
  absl::StatusOr<mastodon::restore::v1::AppHold> Release(
      const mastodon::restore::v1::ReleaseAppRequest& request, const std::string& caller);

  // The holds not released (HELD, KEPT_STOPPED), oldest first.
  std::vector<mastodon::restore::v1::AppHold> Current() const;

  // OK unless a hold is HELD: FAILED_PRECONDITION naming it and how to end
  // it, for `what` ("a restore").
  absl::Status CheckNotHeld(const std::string& what) const;

 private:
  mastodon::restore::v1::AppHold* Find(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Save() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Control(bool start) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  Env* const env_;
  CommandRunner* const runner_;
  const RuntimeContext* const runtime_;
  Logger* const logger_;
  // Held across the stop and start commands: holds change one at a time.
  mutable absl::Mutex mu_;
  mastodon::restore::v1::AppHoldList holds_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_SERVICE_APP_HOLDS_H_
