#include "agent/app/app_checks.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace mastodon_restore {
namespace v1 = ::mastodon::restore::v1;
namespace {

// Tries `attempt` until it returns OK, the timeout passes or `cancel` is
// cancelled; the verdict carries `what` and the last outcome.
v1::AfterSwapCheck Poll(const std::string& name, const std::string& what, Env* env,
                        const CancelToken* cancel, const AppCheckOptions& o,
                        const std::function<absl::Status(std::string* found)>& attempt) {
  v1::AfterSwapCheck check;
  check.set_name(name);
  const absl::Time start = env->Now();
  int tries = 0;
  for (;;) {
    std::string found;
    absl::Status s = attempt(&found);
    ++tries;
    const absl::Duration waited = env->Now() - start;
    if (s.ok()) {
      check.set_passed(true);
      check.set_detail(absl::StrCat(
          what, ": ", found,
          tries > 1 ? absl::StrCat(" (after ", tries, " tries, ",
                                   absl::FormatDuration(absl::Trunc(waited, absl::Seconds(1))), ")")
                    : ""));
      return check;
    }
    if (o.log) o.log(absl::StrCat(name, ": ", s.message()));
    if (cancel != nullptr && cancel->cancelled()) {
      check.set_detail(absl::StrCat(what, ": cancelled; last: ", s.message()));
      return check;
    }
    if (waited + o.interval >= o.timeout) {
      check.set_detail(absl::StrCat(what, ": ", s.message(), " (", tries, " tries in ",
                                    absl::FormatDuration(absl::Trunc(waited, absl::Seconds(1))),
                                    ")"));
      return check;
    }
    o.sleep(o.interval);
  }
}

}  // namespace

std::vector<v1::AfterSwapCheck> CheckAppAnswers(const Runtime& runtime, HttpProber* prober,
                                                Env* env, const CancelToken* cancel,
                                                const AppCheckOptions& options) {
  std::vector<v1::AfterSwapCheck> checks;
  auto endpoints = runtime.HealthEndpoints();
  if (!endpoints.ok()) {
    v1::AfterSwapCheck c;
    c.set_name("web");
    c.set_detail(
        absl::StrCat("unable to tell where the app answers: ", endpoints.status().message()));
    checks.push_back(c);
  } else {
    for (const HealthEndpoint& e : *endpoints) {
      const std::string what = absl::StrCat(
          "GET http://", e.host.find(':') != std::string::npos ? "[" + e.host + "]" : e.host, ":",
          e.port, e.path, " (", e.source, ")");
      checks.push_back(Poll(e.name, what, env, cancel, options, [&](std::string* found) {
        absl::StatusOr<HttpAnswer> a = prober->Get(e.host, e.port, e.path, options.request_timeout);
        if (!a.ok()) return a.status();
        const std::string status = absl::StrCat(a->status, " ", a->reason);
        if (a->status != 200) {
          return absl::UnavailableError(absl::StrCat("answered ", status));
        }
        *found = status;
        return absl::OkStatus();
      }));
    }
  }
  checks.push_back(
      Poll("sidekiq", "sidekiq processes", env, cancel, options, [&](std::string* found) {
        absl::Status s = runtime.SidekiqRunning();
        if (s.ok()) *found = "running";
        return s;
      }));
  return checks;
}

bool AllPassed(const std::vector<v1::AfterSwapCheck>& checks) {
  for (const v1::AfterSwapCheck& c : checks) {
    if (!c.passed()) return false;
  }
  return true;
}

absl::StatusOr<std::string> AppCheckVerdict(const std::vector<v1::AfterSwapCheck>& checks,
                                            absl::string_view subject) {
  std::vector<std::string> verdicts;
  std::vector<std::string> failed;
  for (const v1::AfterSwapCheck& c : checks) {
    verdicts.push_back(absl::StrCat(c.name(), c.passed() ? " ok" : " FAILED"));
    if (!c.passed()) failed.push_back(absl::StrCat(c.name(), ": ", c.detail()));
  }
  if (!failed.empty()) {
    return absl::UnavailableError(
        absl::StrCat(subject, " does not answer (", absl::StrJoin(failed, "; "), ")"));
  }
  return absl::StrJoin(verdicts, ", ");
}

}  // namespace mastodon_restore
