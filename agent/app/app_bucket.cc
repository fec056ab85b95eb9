#include "agent/app/app_bucket.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {

absl::StatusOr<std::optional<S3Options>> AppBucket(const ParsedEnvFile& env) {
  auto value = [&](const char* key) {
    const std::string* v = env.Find(key);
    return v != nullptr ? *v : std::string();
  };
  if (absl::AsciiStrToLower(value("S3_ENABLED")) != "true") return std::nullopt;
  S3Options o;
  o.bucket = value("S3_BUCKET");
  o.region = value("S3_REGION").empty() ? "us-east-1" : value("S3_REGION");
  o.access_key_id = value("AWS_ACCESS_KEY_ID");
  o.secret_access_key = value("AWS_SECRET_ACCESS_KEY");
  for (const char* key : {"S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}) {
    if (value(key).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the app's env enables S3 (S3_ENABLED=true) without ", key));
    }
  }
  if (env.Find("S3_ENDPOINT") != nullptr) {
    ASSIGN_OR_RETURN(o.endpoint, CanonicalS3Endpoint(value("S3_ENDPOINT")));
    o.path_style = value("S3_OVERRIDE_PATH_STYLE") != "true";
  } else {
    ASSIGN_OR_RETURN(o.endpoint,
                     CanonicalS3Endpoint(absl::StrCat("https://s3.", o.region, ".amazonaws.com")));
    o.path_style = false;
  }
  return o;
}

std::shared_ptr<const ObjectStore> AppBucketClient(
    const ParsedEnvFile& env, const std::string& env_name,
    const std::vector<std::string>& allowed_endpoints, std::shared_ptr<RateLimiter> rate_limit,
    std::string* why) {
  why->clear();
  const std::string in =
      absl::StrCat("the app keeps its media in object storage (S3_ENABLED=true in ",
                   env_name.empty() ? "its env" : env_name);
  absl::StatusOr<std::optional<S3Options>> bucket = AppBucket(env);
  if (bucket.ok() && !bucket->has_value()) return nullptr;  // local media
  if (!bucket.ok()) {
    *why = absl::StrCat(in, "), but ", bucket.status().message());
    return nullptr;
  }
  S3Options o = **bucket;
  if (std::find(allowed_endpoints.begin(), allowed_endpoints.end(), o.endpoint) ==
      allowed_endpoints.end()) {
    *why = absl::StrCat(in, ") at ", o.endpoint,
                        ", which is not one of the agent's --allowed-s3-endpoint");
    return nullptr;
  }
  o.rate_limit = std::move(rate_limit);
  absl::StatusOr<std::unique_ptr<ObjectStore>> client = NewS3Client(o);
  if (!client.ok()) {
    *why = absl::StrCat(in, "), but ", client.status().message());
    return nullptr;
  }
  return std::shared_ptr<const ObjectStore>(std::move(*client));
}

std::vector<std::string> AppBucketUploadHeaders(const ParsedEnvFile& env) {
  std::vector<std::string> headers;
  const std::string* acl = env.Find("S3_PERMISSION");
  if (acl == nullptr) {
    headers.push_back("x-amz-acl: public-read");
  } else if (!acl->empty()) {
    headers.push_back("x-amz-acl: " + *acl);
  }
  if (const std::string* cls = env.Find("S3_STORAGE_CLASS"); cls != nullptr && !cls->empty()) {
    headers.push_back("x-amz-storage-class: " + *cls);
  }
  // A value holding a line break would smuggle a header in: never sent.
  for (const std::string& h : headers) {
    if (h.find_first_of("\r\n") != std::string::npos) return {};
  }
  return headers;
}

}  // namespace mastodon_restore
