#include "agent/service/request_source.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "agent/archive/path_rules.h"
#include "agent/common/s3_client.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {

namespace v1 = ::mastodon::restore::v1;

namespace {

// The secret `secret` holds or names (a file inside the allowed roots, at
// most 4 KiB, without its trailing newline); `what` names it in errors.
absl::StatusOr<std::string> ReadSecret(const v1::Secret& secret,
                                       const std::vector<std::string>& allowed_roots, Env* env,
                                       const std::string& what) {
  if (secret.has_value()) return secret.value();
  if (!secret.has_file()) return std::string();
  ASSIGN_OR_RETURN(std::string file, ResolveAllowedPath(secret.file(), allowed_roots));
  ASSIGN_OR_RETURN(std::string text, env->ReadFile(file));
  if (text.size() > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " file '", secret.file(), "' is larger than 4 KiB"));
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// A bucket source: a client for it, once its endpoint is known allowed.
absl::StatusOr<SourceOptions> ResolveBucketSource(const v1::Bucket& bucket,
                                                  const SourceLimits& limits, Env* env,
                                                  std::string* path) {
  ASSIGN_OR_RETURN(std::string endpoint, CanonicalS3Endpoint(bucket.endpoint()));
  if (std::find(limits.allowed_s3_endpoints.begin(), limits.allowed_s3_endpoints.end(), endpoint) ==
      limits.allowed_s3_endpoints.end()) {
    return absl::PermissionDeniedError(
        absl::StrCat("bucket endpoint '", endpoint,
                     "' is not one of the agent's allowed S3 endpoints (--allowed-s3-endpoint)"));
  }
  S3Options s3;
  s3.endpoint = endpoint;
  s3.region = bucket.region();
  s3.bucket = bucket.name();
  s3.path_style = bucket.path_style();
  s3.access_key_id = bucket.access_key_id();
  s3.rate_limit = limits.rate_limit;
  ASSIGN_OR_RETURN(
      s3.secret_access_key,
      ReadSecret(bucket.secret_access_key(), limits.allowed_roots, env, "secret access key"));
  if (!bucket.ca_file().empty()) {
    ASSIGN_OR_RETURN(s3.ca_file, ResolveAllowedPath(bucket.ca_file(), limits.allowed_roots));
  }
  SourceOptions options;
  options.allowed_roots = limits.allowed_roots;
  ASSIGN_OR_RETURN(std::unique_ptr<ObjectStore> client, NewS3Client(s3));
  options.bucket = std::move(client);
  std::string prefix = bucket.prefix();
  if (!prefix.empty() && prefix.back() != '/') prefix.push_back('/');
  if (!prefix.empty() && (prefix[0] == '/' || !NormalizeEntryPath(prefix).ok())) {
    return absl::InvalidArgumentError(
        absl::StrCat("bucket prefix '", bucket.prefix(), "': a relative key prefix (\"media/\")"));
  }
  options.bucket_prefix = prefix;
  *path = absl::StrCat("s3://", bucket.name(), "/", prefix);
  return options;
}

}  // namespace

absl::StatusOr<SourceOptions> ResolveBackupSource(const v1::BackupSource& source,
                                                  const SourceLimits& limits, Env* env,
                                                  std::string* path) {
  const std::vector<std::string>& allowed_roots = limits.allowed_roots;
  if (source.has_bucket()) {
    if (!source.path().empty()) {
      return absl::InvalidArgumentError("give source.path or source.bucket, not both");
    }
    return ResolveBucketSource(source.bucket(), limits, env, path);
  }
  if (source.path().empty()) {
    return absl::InvalidArgumentError(
        "source.path is required (an absolute path on the agent host)");
  }
  ASSIGN_OR_RETURN(*path, ResolveAllowedPath(source.path(), allowed_roots));
  SourceOptions options;
  options.allowed_roots = allowed_roots;
  ASSIGN_OR_RETURN(options.passphrase,
                   ReadSecret(source.passphrase(), allowed_roots, env, "password"));
  if (!source.age_identity_file().empty()) {
    ASSIGN_OR_RETURN(options.age_identity_file,
                     ResolveAllowedPath(source.age_identity_file(), allowed_roots));
  }
  if (!source.gpg_key_file().empty()) {
    ASSIGN_OR_RETURN(options.gpg_key_file,
                     ResolveAllowedPath(source.gpg_key_file(), allowed_roots));
  }
  return options;
}

std::string SourceName(const v1::BackupSource& source) {
  if (!source.has_bucket()) return source.path();
  return absl::StrCat("s3://", source.bucket().name(), "/", source.bucket().prefix());
}

}  // namespace mastodon_restore
