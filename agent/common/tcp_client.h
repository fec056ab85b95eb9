// A plain TCP connection to an IP address, every step bounded by one
// deadline: what the agent's local probes (the restored app's health
// endpoints, its Redis) speak over. No name resolution: addresses come from
// the runtime or the app's env ("localhost" is 127.0.0.1).
#ifndef MR_AGENT_COMMON_TCP_CLIENT_H_
#define MR_AGENT_COMMON_TCP_CLIENT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/dir.h"

namespace mastodon_restore {

class TcpConnection {
 public:
  // Connects to `host`:`port` before `deadline`. `what` names the peer in
  // errors ("http://127.0.0.1:3000/health"). INVALID_ARGUMENT when `host` is
  // not an IP address literal or "localhost"; UNAVAILABLE when nothing
  // answers (refused, timed out, reset).
  static absl::StatusOr<TcpConnection> Connect(const std::string& host, int port,
                                               absl::Time deadline, std::string what);

  TcpConnection(TcpConnection&&) = default;
  TcpConnection& operator=(TcpConnection&&) = default;

  // Sends all of `data` (UNAVAILABLE on an error or the deadline).
  absl::Status SendAll(absl::string_view data);
  // Appends what arrives next to `out`; 0 when the peer closed
  // (UNAVAILABLE on an error or the deadline).
  absl::StatusOr<size_t> Receive(std::string* out);

 private:
  TcpConnection(UniqueFd fd, absl::Time deadline, std::string what)
      : fd_(std::move(fd)), deadline_(deadline), what_(std::move(what)) {}
  absl::Status WaitFor(short events, const std::string& doing) const;

  UniqueFd fd_;
  absl::Time deadline_;
  std::string what_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_TCP_CLIENT_H_
