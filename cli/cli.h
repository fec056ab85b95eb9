// The mastodon-restore command-line client: one table of subcommands (ninja's
// kTools pattern) that also produces --help.
#ifndef MR_CLI_CLI_H_
#define MR_CLI_CLI_H_

#include <cstdio>
#include <string>
#include <vector>

#include "agent/common/args.h"
#include "agent/common/env.h"
#include "cli/command_line.h"

namespace mastodon_restore {

// Where the CLI writes; tests capture both.
struct CliStreams {
  std::FILE* out = stdout;
  std::FILE* err = stderr;
};

// Runs the CLI on `args` (without the program name) and returns the process
// exit code (cli/exit_codes.h). `env` reads TLS files and the environment.
int RunCli(const std::vector<std::string>& args, Env* env, const CliStreams& streams);

// The top-level usage text (global flags and the subcommand table).
std::string CliUsage();

// The tables --help comes from, for the shell completions and the manual
// page (cli/completion.h).
const std::vector<FlagSpec>& CliGlobalFlags();
const std::vector<Command>& CliCommands();

}  // namespace mastodon_restore

#endif  // MR_CLI_CLI_H_
