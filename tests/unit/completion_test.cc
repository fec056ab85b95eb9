// The shell completions and manual pages the build generates (mr-gen-docs)
// offer every command and flag of the tables --help comes from: bash's and
// fish's are asked through the shells' own completion machinery, zsh's is
// checked by zsh and read, the manual pages are rendered by man.
#include "cli/completion.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/common/subprocess.h"
#include "agent/service/config.h"
#include "cli/cli.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"

namespace mastodon_restore {
namespace {

using ::testing::HasSubstr;

const std::string kGenerated = MR_GENERATED_DIR;
const std::vector<std::string> kEnv = {"PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=/nonexistent",
                                       "MANWIDTH=200", "TERM=dumb"};

CommandResult RunTool(std::vector<std::string> argv) {
  CommandSpec spec;
  spec.argv = std::move(argv);
  spec.env = kEnv;
  spec.timeout = absl::Seconds(60);
  auto result = NewPosixCommandRunner()->Run(spec, nullptr);
  EXPECT_TRUE(result.ok()) << result.status();
  return result.ok() ? *result : CommandResult();
}

// Every command of the table with its path ("ops watch") and the flags it
// takes (a group: its default subcommand's), plus --help/-h.
struct Entry {
  std::vector<std::string> path;
  const Command* command;
  std::vector<std::string> flags;
};
std::vector<Entry> Entries() {
  std::vector<Entry> out;
  std::function<void(const std::vector<Command>&, std::vector<std::string>)> walk =
      [&](const std::vector<Command>& table, std::vector<std::string> prefix) {
        for (const Command& c : table) {
          Entry e{prefix, &c, {"--help", "-h"}};
          e.path.push_back(c.name);
          const Command* runs = &c;
          if (!c.subcommands.empty()) {
            runs = c.default_subcommand != nullptr
                       ? FindCommand(c.subcommands, c.default_subcommand)
                       : nullptr;
          }
          if (runs != nullptr) {
            for (const FlagSpec& f : runs->flags) e.flags.push_back("--" + f.name);
          }
          out.push_back(e);
          walk(c.subcommands, e.path);
        }
      };
  walk(CliCommands(), {});
  return out;
}

std::vector<std::string> GlobalFlagWords() {
  std::vector<std::string> out;
  for (const FlagSpec& f : CliGlobalFlags()) {
    out.push_back("--" + f.name);
    if (f.short_name != 0) out.push_back(std::string("-") + f.short_name);
  }
  return out;
}

// What bash's completion function offers for the line `words` (the last
// being the word under the cursor).
std::set<std::string> BashOffers(const std::vector<std::string>& words) {
  // The words are arguments of the driver, never part of its code.
  std::vector<std::string> argv = {
      "bash",
      "--norc",
      "--noprofile",
      "-c",
      "source \"$1\"; shift; COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); "
      "_mastodon_restore; printf '%s\\n' \"${COMPREPLY[@]}\"",
      "driver",
      kGenerated + "/mastodon-restore.bash"};
  argv.insert(argv.end(), words.begin(), words.end());
  CommandResult r = RunTool(argv);
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(r.stderr_text, "");
  std::set<std::string> out;
  for (absl::string_view line : absl::StrSplit(r.stdout_text, '\n', absl::SkipEmpty())) {
    out.insert(std::string(line));
  }
  return out;
}

TEST(CompletionTest, BashOffersEveryCommandAndFlagOfTheTable) {
  std::set<std::string> top = BashOffers({"mastodon-restore", ""});
  for (const Command& c : CliCommands()) EXPECT_EQ(top.count(c.name), 1u) << c.name;
  EXPECT_EQ(top.size(), CliCommands().size());
  for (const Entry& e : Entries()) {
    std::vector<std::string> words = {"mastodon-restore"};
    words.insert(words.end(), e.path.begin(), e.path.end());
    words.push_back("-");
    const std::set<std::string> offers = BashOffers(words);
    const std::string name = absl::StrJoin(e.path, " ");
    for (const std::string& flag : e.flags)
      EXPECT_EQ(offers.count(flag), 1u) << name << " " << flag;
    for (const std::string& flag : GlobalFlagWords()) {
      EXPECT_EQ(offers.count(flag), 1u) << name << " " << flag;
    }
    if (!e.command->subcommands.empty()) {
      words.back() = "";
      const std::set<std::string> subs = BashOffers(words);
      for (const Command& sub : e.command->subcommands) {
        EXPECT_EQ(subs.count(sub.name), 1u) << name << " " << sub.name;
      }
    }
  }
  // A flag's value is skipped when finding the command; --color's values.
  std::set<std::string> offers =
      BashOffers({"mastodon-restore", "--agent", "restore", "ops", "watch", "--f"});
  EXPECT_EQ(offers, std::set<std::string>({"--from"}));
  EXPECT_EQ(BashOffers({"mastodon-restore", "--color", ""}),
            std::set<std::string>({"auto", "always", "never"}));
}

TEST(CompletionTest, FishOffersEveryCommandAndFlagOfTheTable) {
  auto offers = [](const std::string& line) {
    CommandResult r =
        RunTool({"fish", "--no-config", "-c", "source $argv[1]; complete --do-complete=$argv[2]",
                 kGenerated + "/mastodon-restore.fish", line});
    EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
    std::set<std::string> out;
    for (absl::string_view l : absl::StrSplit(r.stdout_text, '\n', absl::SkipEmpty())) {
      out.insert(std::string(l.substr(0, l.find('\t'))));
    }
    return out;
  };
  std::set<std::string> top = offers("mastodon-restore ");
  for (const Command& c : CliCommands()) EXPECT_EQ(top.count(c.name), 1u) << c.name;
  for (const Entry& e : Entries()) {
    const std::string name = absl::StrJoin(e.path, " ");
    const std::set<std::string> got = offers(absl::StrCat("mastodon-restore ", name, " -"));
    for (const std::string& flag : e.flags) EXPECT_EQ(got.count(flag), 1u) << name << " " << flag;
    for (const std::string& flag : GlobalFlagWords()) {
      EXPECT_EQ(got.count(flag), 1u) << name << " " << flag;
    }
  }
}

TEST(CompletionTest, ZshCompletionParsesAndHoldsEveryCommandAndFlag) {
  CommandResult r = RunTool({"zsh", "-n", kGenerated + "/_mastodon-restore"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  CommandResult cat = RunTool({"cat", kGenerated + "/_mastodon-restore"});
  const std::string text = cat.stdout_text;
  EXPECT_THAT(text, ::testing::StartsWith("#compdef mastodon-restore\n"));
  for (const Entry& e : Entries()) {
    const std::string name = absl::StrJoin(e.path, " ");
    // The flags of a command are in its case branch.
    const size_t branch = text.find(absl::StrCat("    \"", name, "\") flags=("));
    ASSERT_NE(branch, std::string::npos) << name;
    const std::string line = text.substr(branch, text.find('\n', branch) - branch);
    for (const std::string& flag : e.flags) {
      EXPECT_THAT(line, HasSubstr(absl::StrCat("'", flag, ":"))) << name;
    }
  }
  for (const std::string& flag : GlobalFlagWords()) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("'", flag, ":")));
  }
}

TEST(ManPageTest, TheCliPageRendersWithEveryCommandAndFlag) {
  CommandResult r = RunTool({"man", "-l", "-P", "cat", kGenerated + "/mastodon-restore.1"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(r.stderr_text, "");
  const std::string page = r.stdout_text;
  EXPECT_THAT(page, HasSubstr("mastodon-restore - restore Mastodon instances"));
  for (const Entry& e : Entries()) {
    const std::string name = absl::StrCat("mastodon-restore ", absl::StrJoin(e.path, " "));
    const size_t at = page.find(name);
    ASSERT_NE(at, std::string::npos) << name;
    for (const std::string& flag : e.flags) {
      if (e.command->subcommands.empty() || e.command->default_subcommand != nullptr) {
        EXPECT_NE(page.find(flag, at), std::string::npos) << name << " " << flag;
      }
    }
  }
  for (const std::string& flag : GlobalFlagWords()) EXPECT_THAT(page, HasSubstr(flag));
  EXPECT_THAT(page, HasSubstr("EXIT STATUS"));
  EXPECT_THAT(page, HasSubstr("mastodon-restore-agent(8)"));
}

TEST(ManPageTest, TheAgentPageRendersWithEveryFlag) {
  CommandResult r = RunTool({"man", "-l", "-P", "cat", kGenerated + "/mastodon-restore-agent.8"});
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(r.stderr_text, "");
  for (const FlagSpec& f : AgentFlagSpecs()) EXPECT_THAT(r.stdout_text, HasSubstr("--" + f.name));
  EXPECT_THAT(r.stdout_text, HasSubstr("mastodon-restore(1)"));
}

}  // namespace
}  // namespace mastodon_restore
