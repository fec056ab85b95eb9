// A plain HTTP/1.1 GET over TCP, for the health endpoints of the restored
// app (Mastodon's web /health and the streaming server's
// /api/v1/streaming/health). Behind an interface so that the checks that
// poll it are unit-tested with a fake.
#ifndef MR_AGENT_COMMON_HTTP_PROBE_H_
#define MR_AGENT_COMMON_HTTP_PROBE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace mastodon_restore {

// What a server answered.
struct HttpAnswer {
  int status = 0;      // 200
  std::string reason;  // "OK"
  std::string body;    // at most kMaxHttpBody bytes of it
};

inline constexpr size_t kMaxHttpBody = 4096;

class HttpProber {
 public:
  virtual ~HttpProber() = default;
  // GET http://HOST:PORT/PATH with "Connection: close". `host` is an IP
  // address literal or "localhost" (no name resolution: the addresses come
  // from the runtime). UNAVAILABLE when nothing answers (refused, timed
  // out, reset), DATA_LOSS for an answer that is not HTTP; the whole
  // exchange is bounded by `timeout`.
  virtual absl::StatusOr<HttpAnswer> Get(const std::string& host, int port, const std::string& path,
                                         absl::Duration timeout) = 0;
};

// The real one: a TCP socket.
std::unique_ptr<HttpProber> NewTcpHttpProber();

// Parses the head of an HTTP/1.x response ("HTTP/1.1 200 OK\r\n...\r\n\r\nbody")
// into `answer`. DATA_LOSS when it does not start with a status line.
absl::Status ParseHttpAnswer(const std::string& response, HttpAnswer* answer);

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_HTTP_PROBE_H_
