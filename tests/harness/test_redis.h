// A throwaway redis-server (Debian's) for tests: its own directory, a free
// loopback port, optionally a password; stopped (and the directory left to
// the caller) when destroyed.
#ifndef MR_TESTS_HARNESS_TEST_REDIS_H_
#define MR_TESTS_HARNESS_TEST_REDIS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/common/subprocess.h"

namespace mastodon_restore {
namespace testing {

// redis-cli ARGS against 127.0.0.1:`port` (`password`, when set, through
// REDISCLI_AUTH); its standard output ("" when it could not run).
std::string RedisCli(int port, const std::string& password, const std::vector<std::string>& args);

class TestRedis {
 public:
  // Starts redis-server in `dir` (which must exist) with `dbfilename`, no
  // save points (SAVE writes the file) and `password` as requirepass ("":
  // none), and waits until it answers PING.
  static absl::StatusOr<std::unique_ptr<TestRedis>> Start(
      const std::string& dir, const std::string& dbfilename = "dump.rdb",
      const std::string& password = "");
  ~TestRedis();

  int port() const { return port_; }
  // redis-cli ARGS against it (the password through REDISCLI_AUTH); its
  // standard output.
  std::string Cli(const std::vector<std::string>& args) const {
    return RedisCli(port_, password_, args);
  }

 private:
  TestRedis() = default;
  std::string password_;
  int port_ = 0;
  std::unique_ptr<CommandRunner> runner_;
  std::unique_ptr<Process> server_;
};

}  // namespace testing
}  // namespace mastodon_restore

#endif  // MR_TESTS_HARNESS_TEST_REDIS_H_
