#include "agent/common/http_probe.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/common/tcp_client.h"

namespace mastodon_restore {
namespace {

class TcpHttpProber : public HttpProber {
 public:
  absl::StatusOr<HttpAnswer> Get(const std::string& host, int port, const std::string& path,
                                 absl::Duration timeout) override {
    const std::string where = absl::StrCat("http://", host, ":", port, path);
    absl::StatusOr<TcpConnection> conn =
        TcpConnection::Connect(host, port, absl::Now() + timeout, where);
    if (!conn.ok()) return conn.status();
    const std::string request = absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: ", host, ":", port,
                                             "\r\nUser-Agent: mastodon-restore\r\nAccept: */*\r\n"
                                             "Connection: close\r\n\r\n");
    if (absl::Status sent = conn->SendAll(request); !sent.ok()) return sent;
    // The head and at most kMaxHttpBody bytes of the body.
    std::string response;
    for (;;) {
      size_t head_end = response.find("\r\n\r\n");
      if (head_end != std::string::npos && response.size() - head_end - 4 >= kMaxHttpBody) break;
      if (response.size() > 64 * 1024) break;
      absl::StatusOr<size_t> n = conn->Receive(&response);
      if (!n.ok()) return n.status();
      if (*n == 0) break;
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
