// The CLI's command line: global flags, a command from one table (which may
// hold subcommands: "ops list"), the command's own flags and its positional
// arguments. The table both dispatches and produces --help.
//
// Where flags may go (as kubectl, gh and docker accept them):
// - Global flags (--json, --agent, --timeout, ...) anywhere on the line:
//   before the command, after it, between its positional arguments.
// - A command's own flags after its name (they mean nothing before it).
// - "--" ends the flags: every later argument is positional (a command or
//   subcommand name still due is taken from them first).
// - A name that is both a global flag and the command's own flag: before the
//   command name it is the global flag, after it the command's (the narrower
//   scope wins, as cobra's local flags shadow persistent ones); to give the
//   global one, put it before the command. Today only --help/-h is both, and
//   both mean "help for the command named".
#ifndef MR_CLI_COMMAND_LINE_H_
#define MR_CLI_COMMAND_LINE_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/common/args.h"

namespace mastodon_restore {

// What a command's run function gets (defined by the CLI, cli/cli.cc).
struct CommandContext;

// One command of the table, or a group of subcommands.
struct Command {
  const char* name;
  const char* summary;
  // The positional arguments in help text, e.g. "SOURCE", or "".
  const char* positional;
  std::vector<FlagSpec> flags;
  // Runs the command; returns the exit code. Null for a group.
  std::function<int(CommandContext&)> run;
  // How many positional arguments: [min_args, max_args]; -1: 1 when
  // `positional` is set, else 0 (max_args: min_args).
  int min_args = -1;
  int max_args = -1;
  // A group's subcommands ("ops" holds "list", "show", ...).
  std::vector<Command> subcommands = {};
  // The subcommand a group runs when none is named (nullptr: one is needed).
  const char* default_subcommand = nullptr;
};

// A parsed command line.
struct CommandLine {
  // The global flags, wherever they were given.
  ParsedArgs global;
  // The command and its subcommands, outermost first; empty when no command
  // was named. The last is a group only when help was asked for it.
  std::vector<const Command*> path;
  // The command's own flags and its positional arguments.
  ParsedArgs args;
  // --help or -h, before or after the command.
  bool help = false;

  // The command as typed: "ops watch".
  std::string CommandName() const;
};

// Parses `args` (without the program name) against `global_flags` and the
// command table `commands`. Every command accepts --help/-h. Errors
// (INVALID_ARGUMENT) carry the message for the user: an unknown flag, an
// unknown command or subcommand, a flag without its value; errors in a
// command's flags start with the command ("info: unknown flag '--bogus'").
// The number of positional arguments is not checked (help needs none).
absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args,
                                             const std::vector<FlagSpec>& global_flags,
                                             const std::vector<Command>& commands);

// The command named `name` in `commands`, or nullptr.
const Command* FindCommand(const std::vector<Command>& commands, const std::string& name);

}  // namespace mastodon_restore

#endif  // MR_CLI_COMMAND_LINE_H_
