// Redis dumps (RDB files: a snap export's redis.rdb, a host's dump.rdb),
// read far enough to count their keys: the key count a restored Redis must
// show once it has loaded the file.
#ifndef MR_AGENT_APP_REDIS_DUMP_H_
#define MR_AGENT_APP_REDIS_DUMP_H_

#include <cstdint>
#include <map>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/common/byte_stream.h"

namespace mastodon_restore {

struct RdbSummary {
  int version = 0;  // RDB format version (Redis 7.0 writes 10)
  // Keys in the file, by database number, and in all.
  std::map<int64_t, int64_t> keys_by_db;
  int64_t keys = 0;
  // Keys whose expiry time lies before `now` (a master drops them as it
  // loads the file), and keys with any expiry.
  int64_t expired = 0;
  int64_t with_expiry = 0;
};

// Reads the whole RDB stream (header "REDIS0001".."REDIS0012", the
// opcodes, every key and value) and counts its keys; values are skipped,
// not decoded (streams and module data too: their fields are walked as
// rdb.c reads them). `now` judges expiry times. INVALID_ARGUMENT for what is
// not an RDB file, is truncated, or holds what Redis itself no longer loads
// (pre-release module and function formats); memory stays bounded (values
// are read in chunks).
absl::StatusOr<RdbSummary> SummarizeRdb(ByteStream* in, absl::Time now);

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_REDIS_DUMP_H_
