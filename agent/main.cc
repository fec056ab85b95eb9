// mastodon-restore-agent: flags and config file -> validated config -> daemon.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "agent/common/build_info.h"
#include "agent/common/env.h"
#include "agent/common/failpoint.h"
#include "agent/common/logging.h"
#include "agent/common/process_setup.h"
#include "agent/common/subprocess.h"
#include "agent/common/terminal_text.h"
#include "agent/daemon.h"
#include "agent/service/config.h"

int main(int argc, char** argv) {
  using namespace mastodon_restore;
  SetUpAgentProcess();
  // Test support (tests/e2e/crash_test.cc): the failpoints, and their names.
  if (argc == 2 && std::string(argv[1]) == "--list-failpoints") {
    for (const std::string& name : AllFailpoints()) std::printf("%s\n", name.c_str());
    return 0;
  }
  if (absl::Status armed = InitFailpointsFromEnv(); !armed.ok()) {
    std::fprintf(stderr, "mastodon-restore-agent: error: MR_FAILPOINTS: %s\n",
                 std::string(armed.message()).c_str());
    return 2;
  }
  std::unique_ptr<Env> env = NewPosixEnv();
  auto command_line =
      ParseAgentCommandLine(std::vector<std::string>(argv + 1, argv + argc), env.get());
  if (!command_line.ok()) {
    std::fprintf(stderr, "mastodon-restore-agent: error: %s\n(see --help)\n",
                 TerminalSafe(command_line.status().message(), NewlinePolicy::kKeep).c_str());
    return 2;
  }
  if (command_line->help) {
    std::fputs(AgentUsage().c_str(), stdout);
    return 0;
  }
  if (command_line->version) {
    std::printf("mastodon-restore-agent %s (%s, %s)\n", MR_VERSION, MR_GIT_COMMIT, MR_BUILD_TYPE);
    return 0;
  }
  // Under systemd, stderr goes to the journal: use sd-daemon priority prefixes.
  Logger logger(command_line->config.log_level, std::getenv("JOURNAL_STREAM") != nullptr);
  std::unique_ptr<CommandRunner> runner = NewPosixCommandRunner();
  return RunDaemonUntilSignalled(command_line->config, env.get(), runner.get(), &logger);
}
