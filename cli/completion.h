// Shell completions (bash, zsh, fish) and manual pages, generated from the
// same command and flag tables --help comes from (cli/cli.cc's, and the
// agent's AgentFlagSpecs), so they cannot drift from the program. The build
// writes them with mr-gen-docs (cli/gen_docs.cc); the Debian package and
// the snap install them.
#ifndef MR_CLI_COMPLETION_H_
#define MR_CLI_COMPLETION_H_

#include <string>
#include <vector>

#include "agent/common/args.h"
#include "cli/command_line.h"

namespace mastodon_restore {

// A program's tables.
struct ProgramSpec {
  std::string name;     // "mastodon-restore"
  std::string summary;  // one line, for NAME
  std::string description;
  std::vector<FlagSpec> global_flags;
  std::vector<Command> commands;  // empty: a program without commands
  // Extra manual sections ("EXIT STATUS", "FILES"): title, then plain text
  // (one paragraph a line; a line starting with two spaces is kept as is).
  std::vector<std::pair<std::string, std::string>> sections;
  std::vector<std::string> see_also;  // "mastodon-restore-agent(8)"
};

// A bash completion script (complete -F) offering, at each point of the
// line, the commands and subcommands due, the flags of the command named
// (and the global ones) after "-", the values of --color, and files.
std::string BashCompletion(const ProgramSpec& program);
// A zsh completion function (#compdef) with the same offers and the help
// of each command and flag as descriptions.
std::string ZshCompletion(const ProgramSpec& program);
// fish completions (complete -c) with the same offers.
std::string FishCompletion(const ProgramSpec& program);

// A manual page in roff (man(7) macros): NAME, SYNOPSIS, DESCRIPTION, the
// global flags, every command with its flags, the extra sections, SEE ALSO.
std::string ManPage(const ProgramSpec& program, int section, const std::string& version);

}  // namespace mastodon_restore

#endif  // MR_CLI_COMPLETION_H_
