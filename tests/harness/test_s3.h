// A throwaway S3-compatible server for tests: @20minutes/s3rver (installed
// by scripts/install-s3-server under .tools/s3-server), which checks AWS
// Signature Version 4 as a real provider does. Its own directory, a free
// loopback port, one key pair; stopped when destroyed.
#ifndef MR_TESTS_HARNESS_TEST_S3_H_
#define MR_TESTS_HARNESS_TEST_S3_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agent/common/s3_client.h"
#include "agent/common/subprocess.h"

namespace mastodon_restore {
namespace testing {

class TestS3 {
 public:
  static constexpr char kAccessKeyId[] = "AKIATESTMASTODON";
  static constexpr char kSecret[] = "test-secret/with+signs=";

  // Starts the server with its data in `dir` (created) and waits until it
  // answers. `unchecked`: signatures of the known key are not checked (the
  // virtual-host-style test; see tests/fixtures/s3/server.js). `tls`: it
  // serves https with a self-signed certificate for 127.0.0.1 and localhost
  // (made with the real openssl; ca_file() names it).
  static absl::StatusOr<std::unique_ptr<TestS3>> Start(const std::string& dir,
                                                       bool unchecked = false, bool tls = false);
  ~TestS3();

  int port() const { return port_; }
  pid_t pid() const { return server_->pid(); }
  std::string endpoint() const;
  // The certificate an https server presents ("" for http).
  const std::string& ca_file() const { return ca_file_; }
  // Client options for `bucket` on this server, path style, with the key.
  S3Options Options(const std::string& bucket) const;
  // Creates a bucket; deletes one with everything in it.
  absl::Status CreateBucket(const std::string& bucket) const;
  absl::Status DeleteBucket(const std::string& bucket) const;
  // Writes an object (a plain PUT, signed like the agent's requests).
  absl::Status Put(const std::string& bucket, const std::string& key,
                   const std::string& data) const;
  absl::Status Delete(const std::string& bucket, const std::string& key) const;

 private:
  TestS3() = default;
  absl::Status Call(const std::string& method, const std::string& path,
                    const std::string& body) const;
  int port_ = 0;
  std::string ca_file_;
  std::unique_ptr<CommandRunner> runner_;
  std::unique_ptr<Process> server_;
};

}  // namespace testing
}  // namespace mastodon_restore

#endif  // MR_TESTS_HARNESS_TEST_S3_H_
