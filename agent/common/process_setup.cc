#include "agent/common/process_setup.h"

#include <malloc.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "absl/synchronization/mutex.h"

namespace mastodon_restore {

void SetUpAgentProcess() {
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // No core file and no ptrace by the app user: the memory holds passphrases
  // and conninfo.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  struct rlimit no_core = {0, 0};
  ::setrlimit(RLIMIT_CORE, &no_core);
}

}  // namespace mastodon_restore
