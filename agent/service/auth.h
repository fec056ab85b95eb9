// Who may call what. TCP callers present a bearer token (when the agent has a
// token file): its SHA-256 is looked up when the call arrives, and again by
// the handler, which requires a scope: "read" (info, detect, inspect,
// get/list/watch) or "operate" (start, cancel, rollback). Callers on the
// unix socket are authenticated by the socket's mode and group.
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

// The agent's bearer tokens (the token file's entries by hash).
class TokenTable {
 public:
  explicit TokenTable(std::map<std::string, TokenEntry> by_hash) : by_hash_(std::move(by_hash)) {}
  // The entry of the token a call's metadata presents ("authorization:
  // Bearer <token>"): UNAUTHENTICATED when it is missing, malformed or
  // unknown.
  grpc::Status Find(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                    const TokenEntry** entry) const;

 private:
  const std::map<std::string, TokenEntry> by_hash_;
};

// The TLS listener's check of "authorization: Bearer <token>": calls
// without a known token are UNAUTHENTICATED before any handler runs. It
// records nothing in the AuthContext: gRPC 1.51 hands the processor the
// connection's context, shared by every call on that connection, so a
// property added there would be seen by the connection's later calls (a
// read-scope call served with the scopes of an operator's call before it)
// and added by two calls at once would race. The handlers look up each
// call's own token again (RequireScope, CallerIdentity).
class TokenAuthProcessor : public grpc::AuthMetadataProcessor {
 public:
  // `tokens` must outlive the processor.
  explicit TokenAuthProcessor(const TokenTable* tokens) : tokens_(tokens) {}
  bool IsBlocking() const override { return false; }
  grpc::Status Process(const InputMetadata& auth_metadata, grpc::AuthContext* context,
                       OutputMetadata* consumed, OutputMetadata* response) override;

 private:
  const TokenTable* tokens_;
};

// OK when the call may use `scope`. With `tokens` (the agent has a token
// file, which it reads only with a TLS listener), a TCP call is judged by
// its own bearer token: it needs the scope (PERMISSION_DENIED naming the
// token and the scope otherwise). Calls on the unix socket, and every call
// when there is no token file (TCP callers then present a client
// certificate), may.
grpc::Status RequireScope(const grpc::CallbackServerContext* context, const TokenTable* tokens,
                          absl::string_view scope);

// Who made the call, for the audit log: "token:<name>" (its own token, with
// `tokens`), "cert:<subject CN>", "uid:<uid> gid:<gid> pid:<pid>" for the
// local socket (from `local`, when given), or the peer address.
std::string CallerIdentity(const grpc::CallbackServerContext* context, const TokenTable* tokens,
                           const LocalPeers* local = nullptr);

// Database names the agent accepts from callers: 1-63 of [A-Za-z0-9_.-],
// not starting with '-' or '.'. INVALID_ARGUMENT otherwise.
absl::Status ValidateDatabaseName(absl::string_view name, absl::string_view field);

}  // namespace mastodon_restore

#endif  // MR_AGENT_SERVICE_AUTH_H_
