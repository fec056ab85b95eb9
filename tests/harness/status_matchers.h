// IsOk() / StatusIs(code, message matcher) / IsOkAndHolds(value matcher) for
// absl::Status and StatusOr,
// which GoogleTest 1.12 and Abseil 20220623 lack.
#ifndef MR_TESTS_HARNESS_STATUS_MATCHERS_H_
#define MR_TESTS_HARNESS_STATUS_MATCHERS_H_

#include <gmock/gmock.h>

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mastodon_restore {
namespace testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << "status: " << s.ToString();
  return s.ok();
}

MATCHER_P2(StatusIs, code, message_matcher,
           "has code " + absl::StatusCodeToString(code) + " and a matching message") {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status: " << s.ToString();
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()), result_listener);
}

// StatusIs(code): any message.
inline auto StatusIs(absl::StatusCode code) { return StatusIs(code, ::testing::_); }

// A StatusOr that is OK and whose value matches `value_matcher`.
MATCHER_P(IsOkAndHolds, value_matcher, "is OK and holds a matching value") {
  if (!arg.ok()) {
    *result_listener << "status: " << arg.status().ToString();
    return false;
  }
  return ::testing::ExplainMatchResult(value_matcher, *arg, result_listener);
}

}  // namespace testing
}  // namespace mastodon_restore

namespace absl {
// Prints a StatusOr as its status (gtest would dump its bytes).
template <typename T>
void PrintTo(const StatusOr<T>& s, std::ostream* os) {
  *os << (s.ok() ? std::string("OK") : s.status().ToString());
}
}  // namespace absl

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::mastodon_restore::testing::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::mastodon_restore::testing::IsOk())

#endif  // MR_TESTS_HARNESS_STATUS_MATCHERS_H_
