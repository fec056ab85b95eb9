#include "agent/common/net.h"

#include <arpa/inet.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace mastodon_restore {

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  struct in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  struct in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6);
  }
  return false;
}

absl::Status SplitHostPort(const std::string& address, std::string* host, int* port) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid listen address '", address, "': ", why));
  };
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return bad("expected HOST:PORT");
  std::string h = address.substr(0, colon);
  if (h.front() == '[') {
    if (h.back() != ']') return bad("unbalanced '[' in IPv6 address");
    h = h.substr(1, h.size() - 2);
  } else if (h.find(':') != std::string::npos) {
    return bad("IPv6 addresses go in brackets: [::1]:PORT");
  }
  int p = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &p) || p < 0 || p > 65535) {
    return bad("port must be a number from 0 to 65535");
  }
  *host = h;
  *port = p;
  return absl::OkStatus();
}

}  // namespace mastodon_restore
