#include "cli/agent_client.h"

#include <grpcpp/security/credentials.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/common/net.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

bool IsUnix(const std::string& address) {
  return absl::StartsWith(address, "/") || absl::StartsWith(address, "unix:");
}

}  // namespace

std::string GrpcTarget(const std::string& address) {
  if (absl::StartsWith(address, "/")) return absl::StrCat("unix:", address);
  return address;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenAgentChannel(const AgentAddress& address,
                                                                Env* env) {
  const std::string target = GrpcTarget(address.address);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  if (IsUnix(address.address)) {
    if (!address.tls_ca.empty() || !address.tls_cert.empty() || address.plaintext) {
      return absl::InvalidArgumentError(
          "--tls-ca, --tls-cert, --tls-key and --plaintext apply to TCP agents, not unix sockets");
    }
    return grpc::CreateCustomChannel(target, grpc::experimental::LocalCredentials(UDS), args);
  }
  std::string host;
  int port = 0;
  RETURN_IF_ERROR(SplitHostPort(address.address, &host, &port));
  if (address.plaintext) {
    if (!IsLoopbackHost(host)) {
      return absl::InvalidArgumentError(absl::StrCat("refusing plaintext to '", address.address,
                                                     "': --plaintext is for loopback test agents"));
    }
    return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  }
  if (address.tls_cert.empty() != address.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  grpc::SslCredentialsOptions ssl;
  if (!address.tls_ca.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs, env->ReadFile(address.tls_ca));
  }
  if (!address.tls_cert.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_cert_chain, env->ReadFile(address.tls_cert));
    ASSIGN_OR_RETURN(ssl.pem_private_key, env->ReadFile(address.tls_key));
  }
  return grpc::CreateCustomChannel(target, grpc::SslCredentials(ssl), args);
}

void PrepareCall(const AgentAddress& address, grpc::ClientContext* context) {
  if (address.timeout != absl::InfiniteDuration()) {
    context->set_deadline(std::chrono::system_clock::now() +
                          absl::ToChronoMilliseconds(address.timeout));
  }
  AddToken(address, context);
}

void AddToken(const AgentAddress& address, grpc::ClientContext* context) {
  if (!address.token.empty()) context->AddMetadata("authorization", "Bearer " + address.token);
}

}  // namespace mastodon_restore
