#include "tests/harness/test_redis.h"

#include <signal.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/harness/ports.h"

namespace mastodon_restore {
namespace testing {

absl::StatusOr<std::unique_ptr<TestRedis>> TestRedis::Start(const std::string& dir,
                                                            const std::string& dbfilename,
                                                            const std::string& password) {
  std::unique_ptr<TestRedis> redis(new TestRedis());
  redis->password_ = password;
  redis->runner_ = NewPosixCommandRunner();
  absl::StatusOr<int> port = FreeServerPort();
  if (!port.ok()) return port.status();
  redis->port_ = *port;
  CommandSpec spec;
  spec.argv = {"redis-server",
               "--port",
               absl::StrCat(*port),
               "--bind",
               "127.0.0.1",
               "--dir",
               dir,
               "--dbfilename",
               dbfilename,
               "--save",
               "",
               "--appendonly",
               "no"};
  if (!password.empty()) {
    spec.argv.push_back("--requirepass");
    spec.argv.push_back(password);
  }
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.output_file = dir + "/redis-server.log";
  spec.parent_death_signal = SIGKILL;
  absl::StatusOr<std::unique_ptr<Process>> p = redis->runner_->Start(spec);
  if (!p.ok()) return p.status();
  redis->server_ = std::move(*p);
  for (int i = 0; i < 400; ++i) {
    if (redis->Cli({"PING"}) == "PONG\n") return redis;
    absl::SleepFor(absl::Milliseconds(25));
  }
  return absl::UnavailableError(
      absl::StrCat("redis-server did not answer on port ", *port, ": see ", spec.output_file));
}

TestRedis::~TestRedis() {
  if (server_ != nullptr) {
    server_->Signal(SIGTERM);
    (void)server_->Wait(absl::Seconds(10));
  }
}

std::string RedisCli(int port, const std::string& password, const std::vector<std::string>& args) {
  CommandSpec spec;
  spec.argv = {"redis-cli", "-h", "127.0.0.1", "-p", absl::StrCat(port)};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.env = {"PATH=/usr/bin:/bin"};
  if (!password.empty()) spec.env.push_back("REDISCLI_AUTH=" + password);
  spec.timeout = absl::Seconds(10);
  absl::StatusOr<CommandResult> r = NewPosixCommandRunner()->Run(spec, nullptr);
  return r.ok() ? r->stdout_text : "";
}

}  // namespace testing
}  // namespace mastodon_restore
