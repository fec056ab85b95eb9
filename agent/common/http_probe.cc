#include "agent/common/http_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace mastodon_restore {
namespace {

// Closes a descriptor when it goes out of scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Waits until `fd` is ready for `events` or `deadline` passes.
absl::Status WaitFor(int fd, short events, absl::Time deadline, const std::string& what) {
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::UnavailableError(absl::StrCat(what, ": timed out"));
    }
    struct pollfd p = {fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (n > 0) return absl::OkStatus();
    if (n < 0 && errno != EINTR) {
      return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
    }
  }
}

class TcpHttpProber : public HttpProber {
 public:
  absl::StatusOr<HttpAnswer> Get(const std::string& host, int port, const std::string& path,
                                 absl::Duration timeout) override {
    const std::string where = absl::StrCat("http://", host, ":", port, path);
    const absl::Time deadline = absl::Now() + timeout;
    struct addrinfo hints = {};
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo* found = nullptr;
    const std::string numeric = host == "localhost" ? "127.0.0.1" : host;
    const std::string service = absl::StrCat(port);
    if (::getaddrinfo(numeric.c_str(), service.c_str(), &hints, &found) != 0 || found == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unable to reach ", where, ": '", host, "' is not an IP address"));
    }
    Fd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0) {
      ::freeaddrinfo(found);
      return absl::UnavailableError(
          absl::StrCat("unable to reach ", where, ": ", std::strerror(errno)));
    }
    int rc = ::connect(fd.get(), found->ai_addr, found->ai_addrlen);
    ::freeaddrinfo(found);
    if (rc != 0 && errno != EINPROGRESS) {
      return absl::UnavailableError(
          absl::StrCat("unable to reach ", where, ": ", std::strerror(errno)));
    }
    if (rc != 0) {
      absl::Status ready =
          WaitFor(fd.get(), POLLOUT, deadline, absl::StrCat("unable to reach ", where));
      if (!ready.ok()) return ready;
      int err = 0;
      socklen_t len = sizeof(err);
      ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        return absl::UnavailableError(
            absl::StrCat("unable to reach ", where, ": ", std::strerror(err)));
      }
    }
    const std::string request = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: ", host, ":", port,
                                             "\r\nUser-Agent: mastodon-restore\r\nAccept: */*\r\n"
                                             "Connection: close\r\n\r\n");
    size_t sent = 0;
    while (sent < request.size()) {
      absl::Status ready =
          WaitFor(fd.get(), POLLOUT, deadline, absl::StrCat("unable to ask ", where));
      if (!ready.ok()) return ready;
      ssize_t n = ::send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return absl::UnavailableError(
            absl::StrCat("unable to ask ", where, ": ", std::strerror(errno)));
      }
      if (n > 0) sent += static_cast<size_t>(n);
    }
    // The head and at most kMaxHttpBody bytes of the body.
    std::string response;
    char buf[4096];
    for (;;) {
      size_t head_end = response.find("\r\n\r\n");
      if (head_end != std::string::npos && response.size() - head_end - 4 >= kMaxHttpBody) break;
      if (response.size() > 64 * 1024) break;
      absl::Status ready =
          WaitFor(fd.get(), POLLIN, deadline, absl::StrCat("no answer from ", where));
      if (!ready.ok()) return ready;
      ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
      if (n == 0) break;
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        return absl::UnavailableError(
            absl::StrCat("no answer from ", where, ": ", std::strerror(errno)));
      }
      response.append(buf, static_cast<size_t>(n));
    }
    HttpAnswer answer;
    absl::Status parsed = ParseHttpAnswer(response, &answer);
    if (!parsed.ok()) {
      return absl::Status(parsed.code(), absl::StrCat(where, ": ", parsed.message()));
    }
    return answer;
  }
};

}  // namespace

absl::Status ParseHttpAnswer(const std::string& response, HttpAnswer* answer) {
  size_t line_end = response.find("\r\n");
  if (response.empty()) return absl::DataLossError("the server closed without answering");
  const std::string line = response.substr(0, line_end);
  std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(' ', 2));
  int status = 0;
  if (parts.size() < 2 || (parts[0] != "HTTP/1.1" && parts[0] != "HTTP/1.0") ||
      parts[1].size() != 3 || !absl::SimpleAtoi(parts[1], &status) || status < 100) {
    return absl::DataLossError("the answer is not HTTP");
  }
  answer->status = status;
  answer->reason = parts.size() > 2 ? parts[2] : "";
  size_t head_end = response.find("\r\n\r\n");
  answer->body = head_end == std::string::npos ? "" : response.substr(head_end + 4, kMaxHttpBody);
  return absl::OkStatus();
}

std::unique_ptr<HttpProber> NewTcpHttpProber() { return std::make_unique<TcpHttpProber>(); }

}  // namespace mastodon_restore
