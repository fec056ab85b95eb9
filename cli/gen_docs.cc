// mr-gen-docs: writes the shell completions and the manual pages from the
// programs' tables (cli/completion.h), for the build to install.
//
// Usage: mr-gen-docs bash|zsh|fish|man-cli|man-agent > FILE
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/common/build_info.h"
#include "agent/service/config.h"
#include "cli/cli.h"
#include "cli/completion.h"
#include "cli/exit_codes.h"

namespace mastodon_restore {
namespace {

ProgramSpec CliSpec() {
  ProgramSpec p;
  p.name = "mastodon-restore";
  p.summary = "restore Mastodon instances through the mastodon-restore agent";
  p.description =
      "Restores a Mastodon instance from a backup through the mastodon-restore agent on this "
      "host (or a remote one): detects the backup's PostgreSQL dump, loads it into a staging "
      "database that is verified before it replaces the live one, restores the media, and runs "
      "the app's migrations and tootctl tasks.\n"
      "Global flags may come before the command, after it or between its arguments; '--' ends "
      "the flags. On a terminal, progress is one line redrawn in place, cut to the terminal's "
      "width; --json prints one JSON object per event instead.\n"
      "When the agent is not running, start it (sudo systemctl start mastodon-restore-agent, or "
      "sudo snap start mastodon-restore.agent), or check a backup without it: "
      "mastodon-restore verify-backup --local SOURCE.";
  p.global_flags = CliGlobalFlags();
  p.commands = CliCommands();
  std::string exit_status;
  for (int c = kExitOk; c < kExitCodeEnd; ++c) {
    const char* meaning = ExitCodeMeaning(static_cast<ExitCode>(c));
    absl::StrAppend(&exit_status, "  ", c, "  ", meaning != nullptr ? meaning : "?", "\n");
  }
  p.sections = {{"EXIT STATUS", exit_status},
                {"ENVIRONMENT",
                 "MASTODON_RESTORE_AGENT: the agent's address when --agent is not given.\n"
                 "NO_COLOR: when set and not empty, no colour (unless --color=always)."}};
  p.see_also = {"mastodon-restore-agent(8)"};
  return p;
}

ProgramSpec AgentSpec() {
  ProgramSpec p;
  p.name = "mastodon-restore-agent";
  p.summary = "the mastodon-restore agent (gRPC restore service for Mastodon hosts)";
  p.description =
      "The mastodon-restore agent restores Mastodon instances from backups on this host, under "
      "control of the mastodon-restore command or a remote controller (gRPC API "
      "mastodon.restore.v1.RestoreAgentService). It runs as the systemd unit "
      "mastodon-restore-agent.service, or as the snap service mastodon-restore.agent.\n"
      "Every flag may also be set in the --config file as 'name = value' (without '--'); flags "
      "on the command line win over the file.";
  p.global_flags = AgentFlagSpecs();
  p.sections = {{"FILES",
                 "  /etc/mastodon-restore/agent.conf   the configuration (--config)\n"
                 "  /run/mastodon-restore/agent.sock   the default socket"}};
  p.see_also = {"mastodon-restore(1)", "systemctl(1)"};
  return p;
}

int Main(int argc, char** argv) {
  const std::string what = argc == 2 ? argv[1] : "";
  std::string out;
  if (what == "bash") {
    out = BashCompletion(CliSpec());
  } else if (what == "zsh") {
    out = ZshCompletion(CliSpec());
  } else if (what == "fish") {
    out = FishCompletion(CliSpec());
  } else if (what == "man-cli") {
    out = ManPage(CliSpec(), 1, MR_VERSION);
  } else if (what == "man-agent") {
    out = ManPage(AgentSpec(), 8, MR_VERSION);
  } else {
    std::fputs("usage: mr-gen-docs bash|zsh|fish|man-cli|man-agent\n", stderr);
    return 2;
  }
  std::fputs(out.c_str(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace
}  // namespace mastodon_restore

int main(int argc, char** argv) { return mastodon_restore::Main(argc, argv); }
