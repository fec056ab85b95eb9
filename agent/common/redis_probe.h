// What a Redis server says of itself (INFO): whether it is still loading
// its dump, and its keys by database. Spoken as RESP over TCP (AUTH first
// when the app's env gives a password), behind an interface so that the
// steps that wait on it are unit-tested with a fake; compose's Redis, which
// publishes no port, answers the same INFO text through `redis-cli` in its
// container (ParseRedisInfo reads both).
#ifndef MR_AGENT_COMMON_REDIS_PROBE_H_
#define MR_AGENT_COMMON_REDIS_PROBE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace mastodon_restore {

// Where a Redis server answers. The password never reaches a log.
struct RedisAddress {
  std::string host;  // an IP address or "localhost"
  int port = 6379;
  std::string username;  // ACL user ("" : the default user)
  std::string password;  // "" : no AUTH
};

struct RedisInfo {
  std::string version;   // redis_version
  bool loading = false;  // still loading its dump (loading:1)
  std::map<int64_t, int64_t> keys_by_db;
  int64_t keys = 0;
};

// Parses INFO's text ("# Server\r\nredis_version:7.0.15\r\n...
// db0:keys=12,expires=1,avg_ttl=0\r\n"). DATA_LOSS when it holds no
// redis_version line (not INFO's answer).
absl::StatusOr<RedisInfo> ParseRedisInfo(absl::string_view text);

class RedisProber {
 public:
  virtual ~RedisProber() = default;
  // INFO of the server at `address`, the exchange bounded by `timeout`.
  // UNAVAILABLE when nothing answers; PERMISSION_DENIED when AUTH is
  // refused or needed; FAILED_PRECONDITION for another error reply.
  virtual absl::StatusOr<RedisInfo> Info(const RedisAddress& address, absl::Duration timeout) = 0;
};

// The real one: RESP over a TCP connection.
std::unique_ptr<RedisProber> NewTcpRedisProber();

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_REDIS_PROBE_H_
