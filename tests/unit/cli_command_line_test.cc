#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli/command_line.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

const std::vector<FlagSpec> kGlobal = {
    {"agent", "ADDR", "agent"},
    {"timeout", "DURATION", "timeout"},
    {"json", "", "json"},
    {"help", "", "help", false, 'h'},
};

int Noop(CommandContext&) { return 0; }

// A table shaped like the CLI's: plain commands, a group with a default, and
// a command with a flag that is also global (--timeout).
const std::vector<Command>& Table() {
  static const std::vector<Command>* table = new std::vector<Command>{
      {"detect", "d", "PATH", {{"member", "PATH", "member"}, {"deep", "", "deep"}}, Noop},
      {"wait", "w", "", {{"timeout", "N", "the command's own timeout"}}, Noop},
      {"ops",
       "o",
       "",
       {},
       nullptr,
       0,
       0,
       {
           {"list", "l", "", {}, Noop},
           {"watch", "w", "ID", {{"from", "N", "from"}}, Noop},
       },
       "list"},
      {"group", "g", "", {}, nullptr, 0, 0, {{"one", "1", "", {}, Noop}}},
  };
  return *table;
}

absl::StatusOr<CommandLine> Parse(const std::vector<std::string>& args) {
  return ParseCommandLine(args, kGlobal, Table());
}

TEST(CommandLineTest, GlobalFlagsBeforeTheCommand) {
  auto line = Parse({"--json", "--agent", "/a.sock", "detect", "--deep", "dump.sql"});
  ASSERT_OK(line);
  EXPECT_EQ(line->CommandName(), "detect");
  EXPECT_TRUE(line->global.GetBool("json"));
  EXPECT_EQ(line->global.Get("agent"), "/a.sock");
  EXPECT_TRUE(line->args.GetBool("deep"));
  EXPECT_THAT(line->args.positional(), ElementsAre("dump.sql"));
  EXPECT_FALSE(line->help);
}

TEST(CommandLineTest, GlobalFlagsAfterTheCommandAndBetweenItsArguments) {
  auto line = Parse({"detect", "dump.sql", "--json"});
  ASSERT_OK(line);
  EXPECT_TRUE(line->global.GetBool("json"));
  EXPECT_THAT(line->args.positional(), ElementsAre("dump.sql"));
  // Global flags stay out of the command's own flags.
  EXPECT_FALSE(line->args.Has("json"));

  line = Parse({"ops", "watch", "--agent=/b.sock", "op-1", "--from", "3", "--json"});
  ASSERT_OK(line);
  EXPECT_EQ(line->CommandName(), "ops watch");
  EXPECT_EQ(line->global.Get("agent"), "/b.sock");
  EXPECT_TRUE(line->global.GetBool("json"));
  EXPECT_EQ(line->args.Get("from"), "3");
  EXPECT_THAT(line->args.positional(), ElementsAre("op-1"));

  // A value flag's value is not taken for the command.
  line = Parse({"--agent", "detect", "detect", "x", "--timeout", "5s"});
  ASSERT_OK(line);
  EXPECT_EQ(line->global.Get("agent"), "detect");
  EXPECT_EQ(line->global.Get("timeout"), "5s");
  EXPECT_THAT(line->args.positional(), ElementsAre("x"));

  // Given twice, the later one counts, as for any flag.
  line = Parse({"--agent", "/first", "ops", "list", "--agent", "/second"});
  ASSERT_OK(line);
  EXPECT_EQ(line->global.Get("agent"), "/second");
}

TEST(CommandLineTest, DoubleDashEndsTheFlags) {
  auto line = Parse({"--json", "detect", "--deep", "--", "--agent", "-h", "--"});
  ASSERT_OK(line);
  EXPECT_TRUE(line->args.GetBool("deep"));
  EXPECT_THAT(line->args.positional(), ElementsAre("--agent", "-h", "--"));
  EXPECT_FALSE(line->global.Has("agent"));
  EXPECT_FALSE(line->help);

  // Before the command: the command is still the first positional argument.
  line = Parse({"--", "detect", "--json"});
  ASSERT_OK(line);
  EXPECT_EQ(line->CommandName(), "detect");
  EXPECT_FALSE(line->global.GetBool("json"));
  EXPECT_THAT(line->args.positional(), ElementsAre("--json"));

  // Between a group and its subcommand.
  line = Parse({"ops", "--", "watch", "--from"});
  ASSERT_OK(line);
  EXPECT_EQ(line->CommandName(), "ops watch");
  EXPECT_FALSE(line->args.Has("from"));
  EXPECT_THAT(line->args.positional(), ElementsAre("--from"));
}

TEST(CommandLineTest, ACommandFlagThatIsAlsoGlobalIsTheCommandsAfterItsName) {
  auto line = Parse({"--timeout", "30s", "wait", "--timeout", "5"});
  ASSERT_OK(line);
  EXPECT_EQ(line->global.Get("timeout"), "30s");
  EXPECT_EQ(line->args.Get("timeout"), "5");
  line = Parse({"wait", "--timeout", "5"});
  ASSERT_OK(line);
  EXPECT_FALSE(line->global.Has("timeout"));
  EXPECT_EQ(line->args.Get("timeout"), "5");
}

TEST(CommandLineTest, CommandFlagsOnlyAfterTheCommand) {
  EXPECT_THAT(Parse({"--deep", "detect", "x"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown flag '--deep'")));
  EXPECT_THAT(
      Parse({"detect", "x", "--bogus"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("detect: unknown flag '--bogus'")));
  // Another command's flag is unknown too.
  EXPECT_THAT(
      Parse({"ops", "list", "--from", "3"}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("ops list: unknown flag '--from'")));
  EXPECT_THAT(Parse({"detect", "x", "--member"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("needs a value")));
}

TEST(CommandLineTest, GroupsDispatchThroughTheirSubcommands) {
  auto line = Parse({"ops", "--from", "3", "watch", "op-1"});
  ASSERT_OK(line);
  ASSERT_EQ(line->path.size(), 2u);
  EXPECT_STREQ(line->path[1]->name, "watch");
  EXPECT_EQ(line->args.Get("from"), "3");
  EXPECT_THAT(line->args.positional(), ElementsAre("op-1"));

  // The default subcommand.
  line = Parse({"ops", "--json"});
  ASSERT_OK(line);
  EXPECT_EQ(line->CommandName(), "ops list");
  EXPECT_TRUE(line->global.GetBool("json"));

  EXPECT_THAT(Parse({"ops", "frob"}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown ops command 'frob' (list, watch)")));
  EXPECT_THAT(Parse({"group"}), StatusIs(absl::StatusCode::kInvalidArgument,
                                         HasSubstr("group needs a command (one)")));
  EXPECT_THAT(Parse({"frob"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("unknown command 'frob'")));
}

TEST(CommandLineTest, HelpBeforeOrAfterTheCommand) {
  for (const std::vector<std::string>& args :
       std::vector<std::vector<std::string>>{{"--help", "ops"}, {"ops", "--help"}, {"ops", "-h"}}) {
    auto line = Parse(args);
    ASSERT_OK(line);
    EXPECT_TRUE(line->help) << args[0];
    // Help on the group itself, not on its default subcommand.
    EXPECT_EQ(line->CommandName(), "ops") << args[0];
  }
  auto line = Parse({"ops", "watch", "--help"});
  ASSERT_OK(line);
  EXPECT_TRUE(line->help);
  EXPECT_EQ(line->CommandName(), "ops watch");
  line = Parse({"group", "--help"});
  ASSERT_OK(line);
  EXPECT_TRUE(line->help);

  line = Parse({"--help"});
  ASSERT_OK(line);
  EXPECT_TRUE(line->help);
  EXPECT_THAT(line->path, IsEmpty());
}

}  // namespace
}  // namespace mastodon_restore
