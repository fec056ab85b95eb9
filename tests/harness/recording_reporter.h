// A ProgressReporter for unit tests of app tasks and runtimes: it keeps the
// messages logged to it and ignores step events.
#ifndef MR_TESTS_HARNESS_RECORDING_REPORTER_H_
#define MR_TESTS_HARNESS_RECORDING_REPORTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "agent/operations/operation.h"

namespace mastodon_restore {
namespace testing {

class RecordingReporter : public ProgressReporter {
 public:
  void StepStarted(const std::string&) override {}
  void StepProgress(const std::string&, int64_t, int64_t, const std::string&,
                    const std::string&) override {}
  void StepFinished(const std::string&, mastodon::restore::v1::StepState,
                    const std::string&) override {}
  void Log(mastodon::restore::v1::Severity, const std::string& message,
           const std::string&) override {
    lines.push_back(message);
  }
  // What was logged, in order.
  std::vector<std::string> lines;
};

}  // namespace testing
}  // namespace mastodon_restore

#endif  // MR_TESTS_HARNESS_RECORDING_REPORTER_H_
