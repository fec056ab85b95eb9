#include "agent/common/redis_probe.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/common/tcp_client.h"

namespace mastodon_restore {
namespace {

// Larger INFO answers are not Redis's (a few KiB).
constexpr size_t kMaxReply = 1 << 20;

std::string Command(const std::vector<std::string>& args) {
  std::string out = absl::StrCat("*", args.size(), "\r\n");
  for (const std::string& a : args) absl::StrAppend(&out, "$", a.size(), "\r\n", a, "\r\n");
  return out;
}

class TcpRedisProber : public RedisProber {
 public:
  absl::StatusOr<RedisInfo> Info(const RedisAddress& address, absl::Duration timeout) override {
    const std::string where = absl::StrCat("redis://", address.host, ":", address.port);
    absl::StatusOr<TcpConnection> conn =
        TcpConnection::Connect(address.host, address.port, absl::Now() + timeout, where);
    if (!conn.ok()) return conn.status();
    std::string buffer;
    if (!address.password.empty()) {
      std::vector<std::string> auth = {"AUTH"};
      if (!address.username.empty()) auth.push_back(address.username);
      auth.push_back(address.password);
      if (absl::Status s = conn->SendAll(Command(auth)); !s.ok()) return s;
      absl::StatusOr<std::string> reply = ReadLine(&*conn, &buffer, where);
      if (!reply.ok()) return reply.status();
      if (*reply != "+OK") {
        return absl::PermissionDeniedError(
            absl::StrCat(where, " refused the password of the app's env: ", Error(*reply)));
      }
    }
    if (absl::Status s = conn->SendAll(Command({"INFO"})); !s.ok()) return s;
    absl::StatusOr<std::string> head = ReadLine(&*conn, &buffer, where);
    if (!head.ok()) return head.status();
    if (absl::StartsWith(*head, "-NOAUTH") || absl::StartsWith(*head, "-WRONGPASS")) {
      return absl::PermissionDeniedError(absl::StrCat(where, " wants a password: ", Error(*head)));
    }
    if (absl::StartsWith(*head, "-")) {
      return absl::FailedPreconditionError(absl::StrCat(where, ": ", Error(*head)));
    }
    int64_t size = 0;
    if (!absl::StartsWith(*head, "$") || !absl::SimpleAtoi(head->substr(1), &size) || size < 0 ||
        static_cast<size_t>(size) > kMaxReply) {
      return absl::DataLossError(absl::StrCat(where, " did not answer INFO as Redis does"));
    }
    while (buffer.size() < static_cast<size_t>(size)) {
      absl::StatusOr<size_t> n = conn->Receive(&buffer);
      if (!n.ok()) return n.status();
      if (*n == 0) return absl::DataLossError(absl::StrCat(where, " closed in the middle of INFO"));
    }
    absl::StatusOr<RedisInfo> info = ParseRedisInfo(absl::string_view(buffer).substr(0, size));
    if (!info.ok()) return absl::DataLossError(absl::StrCat(where, ": ", info.status().message()));
    return info;
  }

 private:
  // The first line of `buffer` (reading more as needed), removed from it.
  static absl::StatusOr<std::string> ReadLine(TcpConnection* conn, std::string* buffer,
                                              const std::string& where) {
    for (;;) {
      size_t end = buffer->find("\r\n");
      if (end != std::string::npos) {
        std::string line = buffer->substr(0, end);
        buffer->erase(0, end + 2);
        return line;
      }
      if (buffer->size() > 64 * 1024) {
        return absl::DataLossError(absl::StrCat(where, " did not answer as Redis does"));
      }
      absl::StatusOr<size_t> n = conn->Receive(buffer);
      if (!n.ok()) return n.status();
      if (*n == 0) return absl::UnavailableError(absl::StrCat(where, " closed the connection"));
    }
  }
  // An error reply without its '-' and bounded.
  static std::string Error(const std::string& reply) {
    return std::string(absl::string_view(reply).substr(reply.empty() ? 0 : 1, 200));
  }
};

}  // namespace

absl::StatusOr<RedisInfo> ParseRedisInfo(absl::string_view text) {
  RedisInfo info;
  bool has_version = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripSuffix(line, "\r");
    if (absl::ConsumePrefix(&line, "redis_version:")) {
      info.version = std::string(line);
      has_version = true;
    } else if (absl::ConsumePrefix(&line, "loading:")) {
      info.loading = line == "1";
    } else if (absl::ConsumePrefix(&line, "db")) {
      // db3:keys=12,expires=1,avg_ttl=0
      std::vector<absl::string_view> parts = absl::StrSplit(line, absl::MaxSplits(':', 1));
      int64_t db = 0, keys = 0;
      if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &db)) continue;
      for (absl::string_view field : absl::StrSplit(parts[1], ',')) {
        if (absl::ConsumePrefix(&field, "keys=") && absl::SimpleAtoi(field, &keys)) {
          info.keys_by_db[db] = keys;
          info.keys += keys;
        }
      }
    }
  }
  if (!has_version) return absl::DataLossError("not the answer of Redis's INFO");
  return info;
}

std::unique_ptr<RedisProber> NewTcpRedisProber() { return std::make_unique<TcpRedisProber>(); }

}  // namespace mastodon_restore
