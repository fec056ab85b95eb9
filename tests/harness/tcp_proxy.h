// A TCP relay on a free loopback port, for tests that cut a connection in
// the middle of a transfer: every connection accepted is relayed, byte for
// byte both ways, to a new connection to the target port. A cut closes the
// connection that crosses a byte count, once, as a network failure would;
// the connections after it are relayed as before.
#ifndef MR_TESTS_HARNESS_TCP_PROXY_H_
#define MR_TESTS_HARNESS_TCP_PROXY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace mastodon_restore {
namespace testing {

class TcpProxy {
 public:
  // Listening on 127.0.0.1 (port()), relaying to 127.0.0.1:target_port.
  static absl::StatusOr<std::unique_ptr<TcpProxy>> Start(int target_port);
  // Stops accepting and closes every connection.
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  int port() const { return port_; }
  // The connection through which the target's bytes, counted from now,
  // reach `bytes` is closed both ways (once).
  void CutAfter(int64_t bytes);
  // Bytes relayed from the target so far, and the cuts made.
  int64_t bytes_from_target() const { return from_target_.load(); }
  int cuts() const { return cuts_.load(); }

 private:
  TcpProxy(int listener, int port, int target_port);
  void Accept();
  void Relay(int client, int target);

  const int listener_;
  const int port_;
  const int target_port_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> from_target_{0};
  std::atomic<int64_t> cut_at_{-1};
  std::atomic<int> cuts_{0};
  absl::Mutex mu_;
  std::vector<std::thread> relays_ ABSL_GUARDED_BY(mu_);
  std::thread acceptor_;
};

}  // namespace testing
}  // namespace mastodon_restore

#endif  // MR_TESTS_HARNESS_TCP_PROXY_H_
