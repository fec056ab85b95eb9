// After the swap: the restored app answers. Once its services are started
// again, the web server's /health and the streaming server's
// /api/v1/streaming/health (where the runtime runs them) are polled until
// they answer 200 or a timeout passes, and the runtime's service manager is
// asked whether the sidekiq processes run. Each check is one verdict.
#ifndef MR_AGENT_APP_APP_CHECKS_H_
#define MR_AGENT_APP_APP_CHECKS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/app/runtime.h"
#include "agent/common/cancel_token.h"
#include "agent/common/env.h"
#include "agent/common/http_probe.h"
#include "mastodon/restore/v1/operation.pb.h"

namespace mastodon_restore {

struct AppCheckOptions {
  // How long each check keeps trying (the app boots: puma, node, sidekiq
  // take tens of seconds on a small host).
  absl::Duration timeout = absl::Minutes(3);
  // Between two tries.
  absl::Duration interval = absl::Seconds(2);
  // One HTTP request.
  absl::Duration request_timeout = absl::Seconds(10);
  // Waits between tries (tests advance a fake clock instead).
  std::function<void(absl::Duration)> sleep = [](absl::Duration d) { absl::SleepFor(d); };
  // Receives one line per failed try ("web: 503 Service Unavailable"),
  // for the operation's log; may be empty.
  std::function<void(const std::string&)> log;
};

// Checks, in order, every endpoint of runtime.HealthEndpoints() ("web",
// "streaming") and then runtime.SidekiqRunning() ("sidekiq"), each tried
// until it passes or `options.timeout` has passed since it began (by
// env->Now()); an endpoint passes when it answers 200. A cancelled token
// ends the tries (the check fails: "cancelled"). A runtime that cannot say
// where its endpoints are gives one failed "web" verdict saying why.
std::vector<mastodon::restore::v1::AfterSwapCheck> CheckAppAnswers(const Runtime& runtime,
                                                                   HttpProber* prober, Env* env,
                                                                   const CancelToken* cancel,
                                                                   const AppCheckOptions& options);

// True when every check passed.
bool AllPassed(const std::vector<mastodon::restore::v1::AfterSwapCheck>& checks);

// The checks as a step's verdict: "web ok, streaming ok, sidekiq ok" when
// every one passed, else UNAVAILABLE "<subject> does not answer (web: why;
// ...)" naming each that failed.
absl::StatusOr<std::string> AppCheckVerdict(
    const std::vector<mastodon::restore::v1::AfterSwapCheck>& checks, absl::string_view subject);

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_APP_CHECKS_H_
