// Free space checked on real bytes as they are written, not only up front:
// a restore whose sizes are unknown (compressed input, zip entries with data
// descriptors) or wrong (a hostile archive) stops before it fills the
// filesystem it writes to.
#ifndef MR_AGENT_COMMON_SPACE_GUARD_H_
#define MR_AGENT_COMMON_SPACE_GUARD_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "agent/common/dir.h"

namespace mastodon_restore {

// The free space a restore leaves on a filesystem it writes to: the smaller
// of `min_free_bytes` and `min_free_percent` of the filesystem's size (so a
// small filesystem is not refused outright), and how often it is looked at.
struct SpaceFloor {
  int64_t min_free_bytes = int64_t{1} << 30;  // 1 GiB
  int min_free_percent = 5;
  // statvfs after every this many bytes written (and before the first).
  int64_t check_every_bytes = int64_t{8} << 20;
};

// The floor in bytes for a filesystem of `total_bytes`.
int64_t FloorBytes(const SpaceFloor& floor, int64_t total_bytes);

// Counts bytes about to be written to one filesystem and looks at its free
// space (the probe: fstatvfs of a descriptor there) every
// `check_every_bytes`: when fewer than floor + check_every_bytes are free,
// the next stretch could cross the floor, so Reserve fails with
// RESOURCE_EXHAUSTED naming `what`, the free bytes and the floor. Not
// thread-safe.
class SpaceGuard {
 public:
  using Probe = std::function<absl::StatusOr<FsSpace>()>;
  SpaceGuard(Probe probe, SpaceFloor floor, std::string what);
  // A guard on the filesystem of `dir` (which must outlive it).
  static SpaceGuard ForDir(const Dir* dir, SpaceFloor floor);

  // Call before writing `bytes`.
  absl::Status Reserve(int64_t bytes);
  // Looks now, whatever was written since the last look.
  absl::Status Check();

 private:
  Probe probe_;
  SpaceFloor floor_;
  std::string what_;
  int64_t since_check_ = 0;
  bool checked_ = false;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_SPACE_GUARD_H_
