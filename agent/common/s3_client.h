// An ObjectStore that speaks the S3 REST API to any S3-compatible service
// (AWS, MinIO, Ceph, Garage, Hetzner, Scaleway, Wasabi, ...): requests are
// signed with AWS Signature Version 4 (libcurl's CURLOPT_AWS_SIGV4),
// listings are ListObjectsV2 pages read with expat. TLS is verified (the
// system's CA certificates, or the given file's); plain http is accepted for
// loopback endpoints only. Connections are reused across requests and
// threads. The secret is held in memory only: never on a command line, in a
// URL, in a message or in a log.
#ifndef MR_AGENT_COMMON_S3_CLIENT_H_
#define MR_AGENT_COMMON_S3_CLIENT_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/cancel_token.h"
#include "agent/common/object_store.h"
#include "agent/common/rate_limiter.h"

namespace mastodon_restore {

struct S3Options {
  // "https://host[:port][/path]"; "http://" only for 127.0.0.0/8, ::1 and
  // localhost.
  std::string endpoint;
  std::string region = "us-east-1";
  std::string bucket;
  // <endpoint>/<bucket>/<key> instead of <bucket>.<endpoint host>/<key>.
  bool path_style = false;
  std::string access_key_id;
  std::string secret_access_key;
  // PEM CA certificates to verify the endpoint with ("": the system's).
  std::string ca_file;
  // Attempts of a request that fails in a way worth retrying (connection
  // refused or reset, 5xx, SlowDown), with a doubling pause from
  // `retry_pause` between them.
  int attempts = 4;
  absl::Duration retry_pause = absl::Milliseconds(200);
  absl::Duration connect_timeout = absl::Seconds(10);
  // A transfer slower than 1 byte/s for this long is broken (and retried).
  absl::Duration stall_timeout = absl::Seconds(60);
  // Pauses between attempts (tests pass one that does not sleep).
  std::function<void(absl::Duration)> sleep;
  const CancelToken* cancel = nullptr;
  // The bandwidth cap the object bytes read and written take from (shared
  // by clients and threads; null: none).
  std::shared_ptr<RateLimiter> rate_limit;
  // Keys per ListObjectsV2 page (the service's maximum is 1000).
  int page_size = 1000;
};

// INVALID_ARGUMENT naming the field for an endpoint, bucket or credentials
// that cannot be used (a non-loopback http endpoint among them).
absl::StatusOr<std::unique_ptr<ObjectStore>> NewS3Client(const S3Options& options);

// The endpoint as the allow-list compares it: scheme, lower-case host and
// port, path without a trailing "/" ("https://s3.example.com:443" ->
// "https://s3.example.com"). INVALID_ARGUMENT for what is not an http(s)
// URL without credentials, query or fragment.
absl::StatusOr<std::string> CanonicalS3Endpoint(absl::string_view endpoint);

// S3's URI encoding: every byte but A-Z a-z 0-9 - _ . ~ as %XX (upper-case
// hex); "/" kept when `keep_slash`.
std::string S3UriEncode(absl::string_view s, bool keep_slash);

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_S3_CLIENT_H_
