#include "agent/common/space_guard.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/common/errors.h"

namespace mastodon_restore {

int64_t FloorBytes(const SpaceFloor& floor, int64_t total_bytes) {
  const int64_t percent = std::max(0, floor.min_free_percent);
  const int64_t by_percent = total_bytes / 100 * percent + total_bytes % 100 * percent / 100;
  return std::max<int64_t>(0, std::min(floor.min_free_bytes, by_percent));
}

SpaceGuard::SpaceGuard(Probe probe, SpaceFloor floor, std::string what)
    : probe_(std::move(probe)), floor_(floor), what_(std::move(what)) {
  floor_.check_every_bytes = std::max<int64_t>(floor_.check_every_bytes, 4096);
}

SpaceGuard SpaceGuard::ForDir(const Dir* dir, SpaceFloor floor) {
  return SpaceGuard([dir]() { return dir->Space(); }, floor, dir->path());
}

absl::Status SpaceGuard::Reserve(int64_t bytes) {
  since_check_ += bytes;
  if (checked_ && since_check_ < floor_.check_every_bytes) return absl::OkStatus();
  return Check();
}

absl::Status SpaceGuard::Check() {
  absl::StatusOr<FsSpace> space = probe_();
  if (!space.ok()) return space.status();
  checked_ = true;
  since_check_ = 0;
  const int64_t floor = FloorBytes(floor_, space->total_bytes);
  if (space->available_bytes < floor + floor_.check_every_bytes) {
    return UnableTo(absl::StatusCode::kResourceExhausted, "write to", what_,
                    absl::StrCat("the filesystem is nearly full: ", space->available_bytes,
                                 " bytes free, and the restore keeps at least ", floor,
                                 " free (the floor: the smaller of ", floor_.min_free_bytes,
                                 " bytes and ", floor_.min_free_percent, "% of its size)"));
  }
  return absl::OkStatus();
}

}  // namespace mastodon_restore
