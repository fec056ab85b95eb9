#include "agent/common/logging.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mastodon_restore {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(LoggingTest, FormatsLogfmtWithTimestamp) {
  Logger logger(LogLevel::kInfo, false, [](const std::string&) {});
  EXPECT_EQ(logger.Format(LogLevel::kWarning, "disk low", {{"free", "12 GiB"}, {"dir", "/var"}},
                          "2026-11-21T05:00:00.000Z"),
            "ts=2026-11-21T05:00:00.000Z level=warning msg=\"disk low\" free=\"12 GiB\" dir=/var");
}

TEST(LoggingTest, JournaldLinesCarryPriorityAndNoTimestamp) {
  Logger logger(LogLevel::kInfo, true, [](const std::string&) {});
  EXPECT_EQ(logger.Format(LogLevel::kError, "boom", {}, "ignored"), "<3>level=error msg=boom");
  EXPECT_THAT(logger.Format(LogLevel::kInfo, "x", {}, ""), StartsWith("<6>"));
}

TEST(LoggingTest, ValuesStayOnOneLine) {
  EXPECT_EQ(LogfmtValue("a\nb\t\"c\"\\"), "\"a\\nb\\t\\\"c\\\"\\\\\"");
  EXPECT_EQ(LogfmtValue(std::string("x\x01y", 3)), "\"x\\x01y\"");
  EXPECT_EQ(LogfmtValue(""), "\"\"");
  EXPECT_EQ(LogfmtValue("plain"), "plain");
}

TEST(LoggingTest, DropsRecordsBelowTheMinimumLevel) {
  std::vector<std::string> lines;
  Logger logger(LogLevel::kWarning, true, [&](const std::string& l) { lines.push_back(l); });
  logger.Info("hidden");
  logger.Debug("hidden");
  logger.Warning("shown", {{"k", "v"}});
  EXPECT_THAT(lines, ElementsAre("<4>level=warning msg=shown k=v"));
}

TEST(LoggingTest, ParsesLevels) {
  LogLevel level;
  ASSERT_TRUE(ParseLogLevel("WARN", &level));
  EXPECT_EQ(level, LogLevel::kWarning);
  ASSERT_TRUE(ParseLogLevel("debug", &level));
  EXPECT_EQ(level, LogLevel::kDebug);
  EXPECT_FALSE(ParseLogLevel("verbose", &level));
}

}  // namespace
}  // namespace mastodon_restore
