// Connecting to an agent: address forms, transport security, deadlines.
#ifndef MR_CLI_AGENT_CLIENT_H_
#define MR_CLI_AGENT_CLIENT_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/common/env.h"

namespace mastodon_restore {

// How to reach the agent.
struct AgentAddress {
  // "/run/mastodon-restore/agent.sock", "unix:/path", or "HOST:PORT".
  std::string address = "/run/mastodon-restore/agent.sock";
  // PEM CA bundle that signed the agent's certificate (TCP). Empty: the
  // system's roots.
  std::string tls_ca;
  // Client certificate and key for mutual TLS (TCP).
  std::string tls_cert;
  std::string tls_key;
  // Plaintext TCP, allowed only to loopback addresses (test agents started
  // with --insecure-loopback-tcp).
  bool plaintext = false;
  // Deadline of each call.
  absl::Duration timeout = absl::Seconds(30);
  // Bearer token sent with every call (from --token-file); "" for none.
  std::string token;
};

// The gRPC target ("unix:/path" or "HOST:PORT") for `address`.
std::string GrpcTarget(const std::string& address);

// Opens a channel (lazily connecting) with the right credentials. Reads TLS
// files through `env`. INVALID_ARGUMENT for plaintext to a non-loopback host or
// TLS flags on a unix socket.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenAgentChannel(const AgentAddress& address,
                                                                Env* env);

// Prepares a call: the deadline from `address.timeout`, and the bearer token.
void PrepareCall(const AgentAddress& address, grpc::ClientContext* context);

// Adds the bearer token (if any) to a call without a deadline (streams).
void AddToken(const AgentAddress& address, grpc::ClientContext* context);

}  // namespace mastodon_restore

#endif  // MR_CLI_AGENT_CLIENT_H_
