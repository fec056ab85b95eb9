#include "agent/common/args.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<FlagSpec> kSpecs = {
    {"socket", "PATH", "socket"},
    {"allowed-root", "DIR", "root", true},
    {"json", "", "json"},
    {"help", "", "help", false, 'h'},
};

TEST(ParseArgsTest, ReadsSpaceAndEqualsValuesAndBooleans) {
  auto parsed = ParseArgs(
      {"--socket", "/a.sock", "--allowed-root=/x", "--allowed-root", "/y", "--json", "pos"},
      kSpecs);
  ASSERT_OK(parsed);
  EXPECT_EQ(parsed->Get("socket"), "/a.sock");
  EXPECT_THAT(parsed->GetAll("allowed-root"), ElementsAre("/x", "/y"));
  EXPECT_TRUE(parsed->GetBool("json"));
  EXPECT_FALSE(parsed->GetBool("help"));
  EXPECT_THAT(parsed->positional(), ElementsAre("pos"));
}

TEST(ParseArgsTest, LastValueWinsForSingleFlags) {
  auto parsed = ParseArgs({"--socket=/a", "--socket=/b"}, kSpecs);
  ASSERT_OK(parsed);
  EXPECT_THAT(parsed->GetAll("socket"), ElementsAre("/b"));
}

TEST(ParseArgsTest, ShortAliasAndExplicitFalse) {
  auto parsed = ParseArgs({"-h", "--json=false"}, kSpecs);
  ASSERT_OK(parsed);
  EXPECT_TRUE(parsed->GetBool("help"));
  EXPECT_FALSE(parsed->GetBool("json"));
  EXPECT_TRUE(parsed->Has("json"));
}

TEST(ParseArgsTest, RejectsUnknownFlagsMissingValuesAndValuedBooleans) {
  EXPECT_THAT(ParseArgs({"--nope"}, kSpecs),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag '--nope'")));
  EXPECT_THAT(ParseArgs({"-x"}, kSpecs),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag '-x'")));
  EXPECT_THAT(ParseArgs({"--socket"}, kSpecs),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs a value (PATH)")));
  EXPECT_THAT(ParseArgs({"--json=maybe"}, kSpecs),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("--json takes no value")));
}

TEST(ParseArgsTest, DoubleDashEndsOptions) {
  auto parsed = ParseArgs({"--json", "--", "--socket", "x"}, kSpecs);
  ASSERT_OK(parsed);
  EXPECT_THAT(parsed->positional(), ElementsAre("--socket", "x"));
  EXPECT_FALSE(parsed->Has("socket"));
}

TEST(ParseArgsTest, StopsAtFirstPositionalForSubcommands) {
  auto parsed = ParseArgs({"--json", "info", "--other", "x"}, kSpecs, true);
  ASSERT_OK(parsed);
  EXPECT_THAT(parsed->positional(), ElementsAre("info"));
  EXPECT_THAT(parsed->rest(), ElementsAre("--other", "x"));
}

TEST(ParseConfigTextTest, ReadsSettingsCommentsAndQuotes) {
  auto parsed = ParseConfigText(
      "# agent config\n\nsocket = \"/run/x.sock\"\nallowed-root=/a\nallowed-root = /b\n"
      "json = yes\n",
      kSpecs, "agent.conf");
  ASSERT_OK(parsed);
  EXPECT_EQ(parsed->Get("socket"), "/run/x.sock");
  EXPECT_THAT(parsed->GetAll("allowed-root"), ElementsAre("/a", "/b"));
  EXPECT_TRUE(parsed->GetBool("json"));
}

TEST(ParseConfigTextTest, ErrorsNameFileAndLine) {
  EXPECT_THAT(ParseConfigText("socket = /a\nbogus = 1\n", kSpecs, "agent.conf"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("agent.conf:2: unknown setting 'bogus'")));
  EXPECT_THAT(
      ParseConfigText("just words\n", kSpecs, "f"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("f:1: expected 'name = value'")));
  EXPECT_THAT(ParseConfigText("json = perhaps\n", kSpecs, "f"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("f:1:")));
}

TEST(MergeArgsTest, CommandLineReplacesFileValuesWholesale) {
  auto file = ParseConfigText("socket=/file\nallowed-root=/a\nallowed-root=/b\n", kSpecs, "f");
  auto cli = ParseArgs({"--allowed-root", "/c"}, kSpecs);
  ASSERT_OK(file);
  ASSERT_OK(cli);
  ParsedArgs merged = MergeArgs(*file, *cli);
  EXPECT_EQ(merged.Get("socket"), "/file");
  EXPECT_THAT(merged.GetAll("allowed-root"), ElementsAre("/c"));
}

TEST(FormatFlagHelpTest, AlignsAndMarksRepeatable) {
  std::string help = FormatFlagHelp(kSpecs);
  EXPECT_THAT(help, HasSubstr("  --socket PATH"));
  EXPECT_THAT(help, HasSubstr("root (repeatable)"));
  EXPECT_THAT(help, HasSubstr("  -h, --help"));
}

}  // namespace
}  // namespace mastodon_restore
