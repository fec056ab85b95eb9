#include "agent/common/process_setup.h"

#include <malloc.h>

#include "absl/synchronization/mutex.h"

namespace mastodon_restore {

void SetUpAgentProcess() {
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace mastodon_restore
