// Named failpoints: places in the agent where a test can make the process die
// (SIGKILL of itself), a call fail, or the agent wait, to prove that a crash
// or an error at any of them leaves the instance whole.
//
//   RETURN_IF_ERROR(MR_FAILPOINT("swap.after_commit"));
//
// Every name is declared once in failpoint.cc's table (AllFailpoints(), what
// `mastodon-restore-agent --list-failpoints` prints); a test checks that the
// sources use exactly those names. Inactive unless enabled, and then the
// cost of a site is one relaxed atomic load.
//
// Enabled from the environment at start (InitFailpointsFromEnv):
//   MR_FAILPOINTS="name=action[@n];name=action..."   action: kill, error, pause
//   MR_FAILPOINT_DIR=<dir>   for pause: "<dir>/<name>.reached" is created when
//                            the site is reached, and the site waits until
//                            "<dir>/<name>.continue" exists.
// "@n" fires at the n-th time the site is reached (default 1: the first);
// the other times pass.
#ifndef MR_AGENT_COMMON_FAILPOINT_H_
#define MR_AGENT_COMMON_FAILPOINT_H_

#include <atomic>
#include <string>
#include <vector>

#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace mastodon_restore {

enum class FailpointAction { kOff, kKill, kError, kPause };

namespace failpoint_internal {
extern std::atomic<bool> g_any_enabled;
absl::Status Hit(absl::string_view name);
}  // namespace failpoint_internal

// Every failpoint the agent has, in the table's order.
const std::vector<std::string>& AllFailpoints();

// Enables failpoints from `spec` ("name=kill;other=error@2;x=pause");
// `pause_dir` is where pause sites signal and wait. INVALID_ARGUMENT naming
// the entry for an unknown name or action (nothing enabled then).
absl::Status ConfigureFailpoints(absl::string_view spec, const std::string& pause_dir);

// ConfigureFailpoints from MR_FAILPOINTS and MR_FAILPOINT_DIR (nothing when
// MR_FAILPOINTS is unset or empty).
absl::Status InitFailpointsFromEnv();

// Test-only: enables one failpoint (kOff disables it), firing at the
// `nth` hit.
absl::Status SetFailpoint(absl::string_view name, FailpointAction action, int nth = 1,
                          const std::string& pause_dir = "");
// Test-only: disables every failpoint and resets the hit counts.
void ClearFailpoints();
// How many times `name` was reached since it was enabled.
int FailpointHits(absl::string_view name);

}  // namespace mastodon_restore

// OK unless the failpoint `name` is enabled and fires with "error"
// (UNAVAILABLE "failpoint <name>"); "kill" does not return, "pause" returns
// OK once told to continue.
#define MR_FAILPOINT(name)                                                                    \
  (ABSL_PREDICT_FALSE(                                                                        \
       ::mastodon_restore::failpoint_internal::g_any_enabled.load(std::memory_order_relaxed)) \
       ? ::mastodon_restore::failpoint_internal::Hit(name)                                    \
       : ::absl::OkStatus())

#endif  // MR_AGENT_COMMON_FAILPOINT_H_
