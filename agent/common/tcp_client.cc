#include "agent/common/tcp_client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace mastodon_restore {

absl::StatusOr<TcpConnection> TcpConnection::Connect(const std::string& host, int port,
                                                     absl::Time deadline, std::string what) {
  struct addrinfo hints = {};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* found = nullptr;
  const std::string numeric = host == "localhost" ? "127.0.0.1" : host;
  const std::string service = absl::StrCat(port);
  if (::getaddrinfo(numeric.c_str(), service.c_str(), &hints, &found) != 0 || found == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unable to reach ", what, ": '", host, "' is not an IP address"));
  }
  UniqueFd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd.valid()) {
    ::freeaddrinfo(found);
    return absl::UnavailableError(
        absl::StrCat("unable to reach ", what, ": ", std::strerror(errno)));
  }
  int rc = ::connect(fd.get(), found->ai_addr, found->ai_addrlen);
  const int connect_errno = errno;
  ::freeaddrinfo(found);
  if (rc != 0 && connect_errno != EINPROGRESS) {
    return absl::UnavailableError(
        absl::StrCat("unable to reach ", what, ": ", std::strerror(connect_errno)));
  }
  TcpConnection conn(std::move(fd), deadline, std::move(what));
  if (rc != 0) {
    absl::Status ready = conn.WaitFor(POLLOUT, "unable to reach");
    if (!ready.ok()) return ready;
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(conn.fd_.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      return absl::UnavailableError(
          absl::StrCat("unable to reach ", conn.what_, ": ", std::strerror(err)));
    }
  }
  return conn;
}

absl::Status TcpConnection::WaitFor(short events, const std::string& doing) const {
  for (;;) {
    const absl::Duration left = deadline_ - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::UnavailableError(absl::StrCat(doing, " ", what_, ": timed out"));
    }
    struct pollfd p = {fd_.get(), events, 0};
    int n = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (n > 0) return absl::OkStatus();
    if (n < 0 && errno != EINTR) {
      return absl::UnavailableError(absl::StrCat(doing, " ", what_, ": ", std::strerror(errno)));
    }
  }
}

absl::Status TcpConnection::SendAll(absl::string_view data) {
  size_t sent = 0;
  while (sent < data.size()) {
    absl::Status ready = WaitFor(POLLOUT, "unable to ask");
    if (!ready.ok()) return ready;
    ssize_t n = ::send(fd_.get(), data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return absl::UnavailableError(
          absl::StrCat("unable to ask ", what_, ": ", std::strerror(errno)));
    }
    if (n > 0) sent += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> TcpConnection::Receive(std::string* out) {
  char buf[4096];
  for (;;) {
    absl::Status ready = WaitFor(POLLIN, "no answer from");
    if (!ready.ok()) return ready;
    ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
    if (n >= 0) {
      out->append(buf, static_cast<size_t>(n));
      return static_cast<size_t>(n);
    }
    if (errno != EAGAIN && errno != EINTR) {
      return absl::UnavailableError(
          absl::StrCat("no answer from ", what_, ": ", std::strerror(errno)));
    }
  }
}

}  // namespace mastodon_restore
