// A request's backup source, checked against the agent's allowed roots: the
// path, and the secrets it names (a passphrase by value or in a file, an age
// identity, a gpg key), each file inside the roots too; or a bucket, whose
// endpoint must be one the agent allows.
#ifndef MR_AGENT_SERVICE_REQUEST_SOURCE_H_
#define MR_AGENT_SERVICE_REQUEST_SOURCE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/archive/source_walker.h"
#include "agent/common/env.h"
#include "agent/common/rate_limiter.h"
#include "mastodon/restore/v1/restore.pb.h"

namespace mastodon_restore {

// What a request's source may name: the agent's --allowed-root and
// --allowed-s3-endpoint (canonical form); and the bandwidth cap a bucket's
// client takes its bytes from (null: none).
struct SourceLimits {
  std::vector<std::string> allowed_roots;
  std::vector<std::string> allowed_s3_endpoints;
  std::shared_ptr<RateLimiter> rate_limit;
};

// Fills `path` with the resolved source path ("s3://bucket/prefix/" for a
// bucket) and returns its options (allowed roots, secrets, the bucket's
// client). INVALID_ARGUMENT without a path or a bucket, for both, for a
// secret file over 4 KiB or a bucket that cannot be used; PERMISSION_DENIED
// for a path or a file outside the allowed roots, or an endpoint not
// allowed. No request is sent to the bucket here.
absl::StatusOr<SourceOptions> ResolveBackupSource(const mastodon::restore::v1::BackupSource& source,
                                                  const SourceLimits& limits, Env* env,
                                                  std::string* path);

// How logs name a request's source: its path, or "s3://bucket/prefix".
std::string SourceName(const mastodon::restore::v1::BackupSource& source);

}  // namespace mastodon_restore

#endif  // MR_AGENT_SERVICE_REQUEST_SOURCE_H_
