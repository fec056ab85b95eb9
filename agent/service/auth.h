// Who may call what. TCP callers present a bearer token (when the agent has a
// token file): its SHA-256 is looked up, and its scopes are attached to the
// call's AuthContext. Handlers then require a scope: "read" (info, detect,
// inspect, get/list/watch) or "operate" (start, cancel, rollback). Callers on
// the unix socket are authenticated by the socket's mode and group.
#ifndef MR_AGENT_SERVICE_AUTH_H_
#define MR_AGENT_SERVICE_AUTH_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/auth_metadata_processor.h>

#include <map>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/service/local_peers.h"

namespace mastodon_restore {

struct TokenEntry {
  std::string name;
  std::set<std::string> scopes;  // "read", "operate"
};

// Token file: one "NAME SCOPES SHA256" line per token ("ci read
// 9f86d081..." or "controller read,operate ..."), "#" comments. Only hashes
// are stored, never tokens. INVALID_ARGUMENT naming the line when malformed.
absl::StatusOr<std::map<std::string, TokenEntry>> ParseTokenFile(absl::string_view text,
                                                                 absl::string_view origin);

// Lowercase hex SHA-256 of `token`.
std::string TokenHash(absl::string_view token);

// Checks "authorization: Bearer <token>" against the table. Missing or
// unknown tokens are UNAUTHENTICATED; a valid one adds the properties
// "mr.token" (its name) and "mr.scope" (one per scope) to the AuthContext.
class TokenAuthProcessor : public grpc::AuthMetadataProcessor {
 public:
  explicit TokenAuthProcessor(std::map<std::string, TokenEntry> tokens)
      : tokens_(std::move(tokens)) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed, OutputMetadata* response) override;

 private:
  const std::map<std::string, TokenEntry> tokens_;
};

// OK when the call may use `scope`: calls without a token (unix socket, or
// TCP when the agent has no token file) may; token calls need the scope
// (PERMISSION_DENIED naming the token and the scope otherwise).
grpc::Status RequireScope(const grpc::CallbackServerContext* context, absl::string_view scope);

// Who made the call, for the audit log: "token:<name>", "cert:<subject CN>",
// "uid:<uid> gid:<gid> pid:<pid>" for the local socket (from `local`, when
// given), or the peer address.
std::string CallerIdentity(const grpc::CallbackServerContext* context,
                           const LocalPeers* local = nullptr);

// Database names the agent accepts from callers: 1-63 of [A-Za-z0-9_.-],
// not starting with '-' or '.'. INVALID_ARGUMENT otherwise.
absl::Status ValidateDatabaseName(absl::string_view name, absl::string_view field);

}  // namespace mastodon_restore

#endif  // MR_AGENT_SERVICE_AUTH_H_
