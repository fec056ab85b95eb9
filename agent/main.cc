// mastodon-restore-agent: flags and config file -> validated config -> daemon.
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "agent/common/build_info.h"
#include "agent/common/env.h"
#include "agent/common/logging.h"
#include "agent/common/subprocess.h"
#include "agent/config.h"
#include "agent/daemon.h"

int main(int argc, char** argv) {
  using namespace mastodon_restore;
  // Large buffers (the parallel load's 8 MiB COPY chunks) come straight
  // from mmap and go back to the system when freed: a long-running agent
  // does not keep the high-water mark of every restore in the allocator
  // arenas of the threads that happened to run it.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  // Debian builds Abseil without NDEBUG, which leaves absl::Mutex's deadlock
  // detection on: every lock (gRPC takes them for every call and write)
  // then records its lock-order edges under one global lock. Off, as in any
  // release build of Abseil.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::unique_ptr<Env> env = NewPosixEnv();
  auto command_line =
      ParseAgentCommandLine(std::vector<std::string>(argv + 1, argv + argc), env.get());
  if (!command_line.ok()) {
    std::fprintf(stderr, "mastodon-restore-agent: error: %s\n(see --help)\n",
                 std::string(command_line.status().message()).c_str());
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
