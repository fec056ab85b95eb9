// The bucket a Mastodon app keeps its media in, as its env configures it
// (config/initializers/paperclip.rb): S3_ENABLED=true, S3_BUCKET,
// S3_REGION (default us-east-1), S3_ENDPOINT (default AWS's
// https://s3.<region>.amazonaws.com), AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY. Paperclip addresses a bucket behind an S3_ENDPOINT
// path style unless S3_OVERRIDE_PATH_STYLE=true, and AWS's virtual-host
// style otherwise.
#ifndef MR_AGENT_APP_APP_BUCKET_H_
#define MR_AGENT_APP_APP_BUCKET_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/app/env_file.h"
#include "agent/common/s3_client.h"

namespace mastodon_restore {

// nullopt when the env does not enable S3; INVALID_ARGUMENT naming the key
// when S3 is enabled without a bucket or credentials. The endpoint is in
// CanonicalS3Endpoint form (the env is the app user's file: the caller
// checks it against the agent's allowed endpoints before any request).
absl::StatusOr<std::optional<S3Options>> AppBucket(const ParsedEnvFile& env);

// A client of the bucket the env configures, when its endpoint is one of
// `allowed_endpoints` (its bytes taken from `rate_limit`, null: no cap).
// Null when the env keeps the media local, or, with `why` saying why ("the
// app keeps its media in object storage (S3_ENABLED=true in <env_name>) at
// <endpoint>, which is not one of the agent's --allowed-s3-endpoint"),
// when the bucket cannot be used.
std::shared_ptr<const ObjectStore> AppBucketClient(
    const ParsedEnvFile& env, const std::string& env_name,
    const std::vector<std::string>& allowed_endpoints, std::shared_ptr<RateLimiter> rate_limit,
    std::string* why);

// The headers Paperclip writes media objects with: "x-amz-acl: " and
// S3_PERMISSION (public-read when unset; none when set empty), and
// "x-amz-storage-class: " and S3_STORAGE_CLASS when set.
std::vector<std::string> AppBucketUploadHeaders(const ParsedEnvFile& env);

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_APP_BUCKET_H_
