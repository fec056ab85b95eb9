#include "agent/service/auth.h"

#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace mastodon_restore {

std::string TokenHash(absl::string_view token) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest);
  std::string hex;
  for (unsigned char b : digest) absl::StrAppendFormat(&hex, "%02x", b);
  return hex;
}

absl::StatusOr<std::map<std::string, TokenEntry>> ParseTokenFile(absl::string_view text,
                                                                 absl::string_view origin) {
  std::map<std::string, TokenEntry> out;
  int line_no = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++line_no;
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    auto bad = [&](absl::string_view why) {
      return absl::InvalidArgumentError(absl::StrCat(origin, ":", line_no, ": ", why));
    };
    if (parts.size() != 3) return bad("expected 'NAME SCOPES SHA256'");
    TokenEntry entry;
    entry.name = std::string(parts[0]);
    for (absl::string_view scope : absl::StrSplit(parts[1], ',', absl::SkipEmpty())) {
      if (scope != "read" && scope != "operate") {
        return bad(absl::StrCat("unknown scope '", scope, "' (read, operate)"));
      }
      entry.scopes.insert(std::string(scope));
    }
    std::string hash = absl::AsciiStrToLower(parts[2]);
    if (hash.size() != 64 || hash.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return bad("the token hash must be 64 hex digits (sha256sum of the token)");
    }
    if (out.count(hash) != 0) return bad("duplicate token hash");
    out[hash] = std::move(entry);
  }
  return out;
}

grpc::Status TokenTable::Find(const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
                              const TokenEntry** entry) const {
  auto it = metadata.find("authorization");
  if (it == metadata.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing bearer token (authorization: Bearer TOKEN)");
  }
  absl::string_view value(it->second.data(), it->second.size());
  if (!absl::ConsumePrefix(&value, "Bearer ")) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "expected 'authorization: Bearer TOKEN'");
  }
  auto token = by_hash_.find(TokenHash(absl::StripAsciiWhitespace(value)));
  if (token == by_hash_.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown bearer token");
  }
  *entry = &token->second;
  return grpc::Status::OK;
}

grpc::Status TokenAuthProcessor::Process(const InputMetadata& auth_metadata, grpc::AuthContext*,
                                         OutputMetadata*, OutputMetadata*) {
  const TokenEntry* entry = nullptr;
  return tokens_->Find(auth_metadata, &entry);
}

namespace {

// Whether the call came on the agent's unix socket, whose connections the
// daemon accepts itself and hands to gRPC: their peer is "fd:N"
// (local_peers.h). Every other call came over TCP.
bool OnLocalSocket(const grpc::CallbackServerContext* context) {
  return absl::StartsWith(context->peer(), "fd:");
}

// The call's own token, when it is judged by one (see RequireScope):
// `*entry` stays null otherwise.
grpc::Status CallToken(const grpc::CallbackServerContext* context, const TokenTable* tokens,
                       const TokenEntry** entry) {
  *entry = nullptr;
  if (tokens == nullptr || OnLocalSocket(context)) return grpc::Status::OK;
  return tokens->Find(context->client_metadata(), entry);
}

}  // namespace

grpc::Status RequireScope(const grpc::CallbackServerContext* context, const TokenTable* tokens,
                          absl::string_view scope) {
  const TokenEntry* token = nullptr;
  grpc::Status found = CallToken(context, tokens, &token);
  if (!found.ok() || token == nullptr) return found;
  if (token->scopes.count(std::string(scope)) > 0) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                      absl::StrCat("token '", token->name, "' lacks the '", scope, "' scope"));
}

std::string CallerIdentity(const grpc::CallbackServerContext* context, const TokenTable* tokens,
                           const LocalPeers* local) {
  const TokenEntry* token = nullptr;
  if (CallToken(context, tokens, &token).ok() && token != nullptr) {
    return absl::StrCat("token:", token->name);
  }
  std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
  if (auth != nullptr) {
    std::vector<grpc::string_ref> cn = auth->FindPropertyValues("x509_common_name");
    if (!cn.empty()) return absl::StrCat("cert:", std::string(cn[0].data(), cn[0].size()));
  }
  return local != nullptr ? local->Describe(context->peer()) : context->peer();
}

absl::Status ValidateDatabaseName(absl::string_view name, absl::string_view field) {
  bool ok = !name.empty() && name.size() <= 63 && name[0] != '-' && name[0] != '.';
  for (char c : name) ok = ok && (absl::ascii_isalnum(c) || c == '_' || c == '.' || c == '-');
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("invalid ", field, " '", name, "': 1-63 letters, digits, '_', '.' or '-'"));
}

}  // namespace mastodon_restore
