#include "agent/common/terminal_text.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "agent/common/logging.h"

namespace mastodon_restore {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// True when `s` holds something a terminal may act on: C0 controls but
// '\n' and '\t' (when allowed), DEL, C1 controls in UTF-8, or bytes that are not
// well-formed UTF-8 (a raw 8-bit C1 among them).
bool HasRawControl(const std::string& s, bool newline_ok) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if ((c < 0x20 && !((c == '\n' || c == '\t') && newline_ok)) || c == 0x7f) return true;
      ++i;
      continue;
    }
    size_t n = c >= 0xc2 && c <= 0xdf   ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
    if (n == 0 || i + n > s.size()) return true;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return true;
    }
    if (c == 0xc2 && static_cast<unsigned char>(s[i + 1]) <= 0x9f) return true;
    i += n;
  }
  return false;
}

TEST(TerminalSafeTest, EscapesEveryControlCharacter) {
  EXPECT_EQ(TerminalSafe("plain name_1.sql"), "plain name_1.sql");
  EXPECT_EQ(TerminalSafe("a\x1b]0;owned\x07z"), "a\\x1b]0;owned\\x07z");
  EXPECT_EQ(TerminalSafe("red\x1b[31mtext"), "red\\x1b[31mtext");
  EXPECT_EQ(TerminalSafe("line\nfake: ok\r\t"), "line\\nfake: ok\\r\\t");
  EXPECT_EQ(TerminalSafe(std::string("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(TerminalSafe("del\x7f"), "del\\x7f");
  // C1 CSI in UTF-8, and raw 8-bit CSI (not UTF-8).
  EXPECT_EQ(TerminalSafe("c1\xc2\x9b"
                         "31m"),
            "c1\\u009b31m");
  EXPECT_EQ(TerminalSafe("raw\x9b"
                         "31m"),
            "raw\\x9b31m");
  // Printable UTF-8 stays.
  EXPECT_EQ(TerminalSafe("caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x90\x98"),
            "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x90\x98");
  // Overlong and truncated sequences are bytes, escaped.
  EXPECT_EQ(TerminalSafe("\xc0\x9b"), "\\xc0\\x9b");
  EXPECT_EQ(TerminalSafe("end\xe6\x97"), "end\\xe6\\x97");
}

TEST(TerminalSafeTest, BlocksKeepTheirLinesButNotTheirEscapes) {
  EXPECT_EQ(TerminalSafe("one\n\ttwo\x1b[2J\n", NewlinePolicy::kKeep), "one\n\ttwo\\x1b[2J\n");
  EXPECT_FALSE(NeedsTerminalEscape("one\ntwo", NewlinePolicy::kKeep));
  EXPECT_TRUE(NeedsTerminalEscape("one\ntwo"));
}

TEST(TerminalSafeTest, JsonStaysValidAndLosesItsControls) {
  EXPECT_EQ(TerminalSafeJson("{\n  \"name\": \"a\xc2\x9b"
                             "b\x7f\"\n}\n"),
            "{\n  \"name\": \"a\\u009bb\\u007f\"\n}\n");
  EXPECT_EQ(TerminalSafeJson("\"\xff\""), "\"\\ufffd\"");
}

TEST(TerminalSafeTest, NoOutputKeepsARawControl) {
  // Every byte value, alone and after a lead byte.
  for (int a = 0; a < 256; ++a) {
    for (int b : {0x41, 0x80, 0x9b, 0xa0, 0xbf}) {
      std::string s = {static_cast<char>(a), static_cast<char>(b)};
      EXPECT_FALSE(HasRawControl(TerminalSafe(s), false)) << a << " " << b;
      EXPECT_FALSE(HasRawControl(TerminalSafe(s, NewlinePolicy::kKeep), true)) << a << " " << b;
    }
  }
}

TEST(TerminalSafeTest, AgentLogValuesAreEscapedToo) {
  std::string v = LogfmtValue("table\x1b]0;owned\x07\xc2\x9b");
  EXPECT_EQ(v, "\"table\\x1b]0;owned\\x07\\u009b\"");
  Logger logger(LogLevel::kInfo, false, [](const std::string&) {});
  std::string line = logger.Format(LogLevel::kInfo, "dropped\x1b[2J", {{"database", "x\ny"}}, "T");
  EXPECT_THAT(line, Not(HasSubstr("\x1b")));
  EXPECT_THAT(line, HasSubstr("msg=\"dropped\\x1b[2J\""));
  EXPECT_THAT(line, HasSubstr("database=\"x\\ny\""));
}

}  // namespace
}  // namespace mastodon_restore
