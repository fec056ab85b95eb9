// Puts a backup's Redis dump (a snap export's redis.rdb, a host's dump.rdb)
// in place of the runtime's Redis data, as the snap's own restore does by
// hand (stop Redis, copy the file in, start it), and proves it: Redis must
// report the dump's keys once it has loaded the file.
//
//   0. Every file is named in the operation's journal (RedisJournal) before
//      it is made; the journal moves to SWAPPING once the staged copy is
//      whole, and is cleared once Redis runs again (on the old or new file).
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
// A failure once Redis is stopped starts it again (with the old file put
// back when the new one was not yet in place). A crash is completed by
// RecoverRedisJournal.
#ifndef MR_AGENT_APP_REDIS_RESTORE_H_
#define MR_AGENT_APP_REDIS_RESTORE_H_

#include <functional>
#include <string>
#include <vector>

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
  // The longest wait between two questions (the first waits are shorter).
  absl::Duration interval = absl::Seconds(1);
  // Waits between tries (tests: a fake clock).
  std::function<void(absl::Duration)> sleep = [](absl::Duration d) { absl::SleepFor(d); };
  // Asks Redis over TCP (nullptr: a real one).
  RedisProber* prober = nullptr;
  // Saves (and syncs) the journal before the side effects it names; a
  // journal whose phase is UNSPECIFIED is to be cleared. An error stops the
  // restore before those side effects. Unset: no journal.
  std::function<absl::Status(const mastodon::restore::v1::RedisJournal&)> journal;
};

// Restores `options.dump` into `runtime`'s Redis (steps above), logging
// each action to ctx. FAILED_PRECONDITION when the runtime manages no Redis
// or the dump could not be read in the inventory; DATA_LOSS when Redis
// loads other than the dump's keys; DEADLINE_EXCEEDED when it has not
// loaded within the timeout.
absl::StatusOr<mastodon::restore::v1::RedisRestore> RestoreRedisDump(
    const Runtime& runtime, const RedisRestoreOptions& options, const TaskContext& ctx);

// Recovery of a restore that stopped mid-way, from its journal alone:
// STAGING: the staged file is removed (Redis was not touched); SWAPPING:
// Redis is stopped (it may run yet), the swap completed (the staged file
// renamed in, the old one kept first) or, when the staged file is gone and
// so is the data file, the kept file put back; Redis is started (through
// `runtime`, which may be null for a STAGING journal only). Returns
// what was done, one phrase each. Idempotent: an error leaves the journal
// valid for a later try. FAILED_PRECONDITION when the data file and a kept
// file both exist beside the staged one (Redis was run meanwhile): nothing
// is renamed then.
absl::StatusOr<std::vector<std::string>> RecoverRedisJournal(
    const mastodon::restore::v1::RedisJournal& journal, const Runtime* runtime,
    const TaskContext& ctx);

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_REDIS_RESTORE_H_
