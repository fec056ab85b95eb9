#include "tests/harness/tcp_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace mastodon_restore {
namespace testing {

namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// Writes all of `data` (false when the peer is gone).
bool WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpProxy>> TcpProxy::Start(int target_port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  sockaddr_in a = Loopback(0);
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int err = errno;
    ::close(fd);
    return absl::InternalError(absl::StrCat("listen: ", std::strerror(err)));
  }
  return std::unique_ptr<TcpProxy>(new TcpProxy(fd, ntohs(a.sin_port), target_port));
}

TcpProxy::TcpProxy(int listener, int port, int target_port)
    : listener_(listener), port_(port), target_port_(target_port) {
  acceptor_ = std::thread([this] { Accept(); });
}

TcpProxy::~TcpProxy() {
  stopping_ = true;
  acceptor_.join();
  std::vector<std::thread> relays;
  {
    absl::MutexLock lock(&mu_);
    relays.swap(relays_);
  }
  for (std::thread& t : relays) t.join();
  ::close(listener_);
}

void TcpProxy::CutAfter(int64_t bytes) { cut_at_ = from_target_.load() + bytes; }

void TcpProxy::Accept() {
  while (!stopping_) {
    pollfd p{listener_, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    int target = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = Loopback(target_port_);
    if (target < 0 || ::connect(target, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      if (target >= 0) ::close(target);
      ::close(client);
      continue;
    }
    absl::MutexLock lock(&mu_);
    relays_.emplace_back([this, client, target] { Relay(client, target); });
  }
}

void TcpProxy::Relay(int client, int target) {
  std::vector<char> buf(1 << 16);
  bool open = true;
  while (open && !stopping_) {
    pollfd p[2] = {{client, POLLIN, 0}, {target, POLLIN, 0}};
    if (::poll(p, 2, 100) <= 0) continue;
    for (int i = 0; i < 2 && open; ++i) {
      if (p[i].revents == 0) continue;
      const int from = p[i].fd, to = i == 0 ? target : client;
      ssize_t n = ::recv(from, buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || !WriteAll(to, buf.data(), static_cast<size_t>(n))) {
        open = false;
        break;
      }
      if (from != target) continue;
      const int64_t total = from_target_ += n;
      int64_t at = cut_at_.load();
      if (at >= 0 && total >= at && cut_at_.compare_exchange_strong(at, -1)) {
        ++cuts_;
        open = false;
      }
    }
  }
  ::shutdown(client, SHUT_RDWR);
  ::shutdown(target, SHUT_RDWR);
  ::close(client);
  ::close(target);
}

}  // namespace testing
}  // namespace mastodon_restore
