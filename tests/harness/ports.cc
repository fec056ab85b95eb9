#include "tests/harness/ports.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <random>

namespace mastodon_restore {
namespace testing {
namespace {

// The lowest port the kernel picks for outgoing connections (32768 unless
// configured otherwise).
int EphemeralLow() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  return in >> low && low > 12000 ? low : 32768;
}

}  // namespace

absl::StatusOr<int> FreeServerPort() {
  static const int low = EphemeralLow();
  std::random_device random;
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int port = 10000 + static_cast<int>(random() % static_cast<unsigned>(low - 10000));
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return absl::InternalError("socket failed");
    struct sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0;
    ::close(fd);
    if (free) return port;
  }
  return absl::InternalError("unable to find a free port below the ephemeral range");
}

}  // namespace testing
}  // namespace mastodon_restore
