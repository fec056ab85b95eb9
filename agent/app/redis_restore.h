// Puts a backup's Redis dump (a snap export's redis.rdb, a host's dump.rdb)
// in place of the runtime's Redis data, as the snap's own restore does by
// hand (stop Redis, copy the file in, start it), and proves it: Redis must
// report the dump's keys once it has loaded the file.
//
//   1. The dump is copied out of the backup into an unpredictably named
//      file beside Redis's own (root's, through the data directory's
//      descriptor, never following a symlink), synced, and given the owner
//      and mode of the file it replaces (else the directory's owner, 0640).
//   2. Redis is stopped: a shutdown saves its dataset into its file, so the
//      file is replaced only now.
//   3. The old file is kept as <file>.before-restore-<operation>; the new
//      one renamed into place; the directory synced.
//   4. Redis is started, and asked (INFO) until it has loaded the file: the
//      keys it reports must be the dump's, less those that expired.
// A failure once Redis is stopped starts it again (with the old file when
// the new one was not yet in place).
#ifndef MR_AGENT_APP_REDIS_RESTORE_H_
#define MR_AGENT_APP_REDIS_RESTORE_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/app/app_tasks.h"
#include "agent/app/runtime.h"
#include "agent/archive/source_walker.h"
#include "agent/common/redis_probe.h"
#include "mastodon/restore/v1/backup.pb.h"
#include "mastodon/restore/v1/operation.pb.h"

namespace mastodon_restore {

struct RedisRestoreOptions {
  // The backup (resolved inside the allowed roots) and its secrets.
  std::string source_path;
  SourceOptions source;
  // The inventory's account of the dump (path, size, keys).
  mastodon::restore::v1::RedisDumpInfo dump;
  // Names the kept file.
  std::string operation_id;
  // How long Redis may take to answer and load the file after its start.
  absl::Duration load_timeout = absl::Minutes(5);
  absl::Duration interval = absl::Seconds(1);
  // Waits between tries (tests: a fake clock).
  std::function<void(absl::Duration)> sleep = [](absl::Duration d) { absl::SleepFor(d); };
  // Asks Redis over TCP (nullptr: a real one).
  RedisProber* prober = nullptr;
};

// Restores `options.dump` into `runtime`'s Redis (steps above), logging
// each action to ctx. FAILED_PRECONDITION when the runtime manages no Redis
// or the dump could not be read in the inventory; DATA_LOSS when Redis
// loads other than the dump's keys; DEADLINE_EXCEEDED when it has not
// loaded within the timeout.
absl::StatusOr<mastodon::restore::v1::RedisRestore> RestoreRedisDump(
    const Runtime& runtime, const RedisRestoreOptions& options, const TaskContext& ctx);

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_REDIS_RESTORE_H_
