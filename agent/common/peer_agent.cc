#include "agent/common/peer_agent.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/common/net.h"
#include "agent/common/status_macros.h"
#include "mastodon/restore/v1/agent_service.grpc.pb.h"

namespace mastodon_restore {

namespace v1 = ::mastodon::restore::v1;

absl::StatusOr<std::map<std::string, PeerEntry>> ParsePeersFile(absl::string_view text,
                                                                absl::string_view origin) {
  std::map<std::string, PeerEntry> peers;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 3) {
      return absl::InvalidArgumentError(absl::StrCat(origin, ":", line_no,
                                                     ": expected \"NAME HOST:PORT TOKEN\" (",
                                                     fields.size(), " fields)"));
    }
    std::string host;
    int port = 0;
    if (!SplitHostPort(fields[1], &host, &port).ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ":", line_no, ": '", fields[1], "' is not HOST:PORT"));
    }
    PeerEntry e{fields[0], fields[1], fields[2]};
    if (!peers.emplace(e.name, e).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ":", line_no, ": peer '", e.name, "' is named twice"));
    }
  }
  return peers;
}

absl::StatusOr<std::map<std::string, PeerEntry>> LoadPeersFile(const std::string& path, Env* env) {
  ASSIGN_OR_RETURN(FileOwner owner, env->OwnerOf(path));
  if ((owner.mode & 077) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the peers file ", path, " holds tokens and is readable by others (mode ",
                     absl::StrFormat("%04o", owner.mode & 07777), "): chmod 600 it"));
  }
  ASSIGN_OR_RETURN(std::string text, env->ReadFile(path));
  return ParsePeersFile(text, path);
}

namespace {

// How long a call waits for the connection to the peer.
constexpr absl::Duration kConnectTimeout = absl::Seconds(15);

absl::Status FromGrpc(const grpc::Status& s, const std::string& peer) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      absl::StrCat("the agent '", peer, "': ", s.error_message()));
}

class GrpcPeerAgent : public PeerAgent {
 public:
  GrpcPeerAgent(PeerEntry entry, std::shared_ptr<grpc::Channel> channel, absl::Duration timeout)
      : entry_(std::move(entry)),
        channel_(channel),
        stub_(v1::RestoreAgentService::NewStub(std::move(channel))),
        timeout_(timeout) {}

  absl::StatusOr<v1::GetAgentInfoResponse> Info() override {
    grpc::ClientContext context;
    RETURN_IF_ERROR(Prepare(&context));
    v1::GetAgentInfoResponse response;
    RETURN_IF_ERROR(
        FromGrpc(stub_->GetAgentInfo(&context, v1::GetAgentInfoRequest(), &response), entry_.name));
    return response;
  }

  absl::StatusOr<v1::AppHold> HoldApp(const v1::HoldAppRequest& request) override {
    grpc::ClientContext context;
    RETURN_IF_ERROR(Prepare(&context));
    v1::HoldAppResponse response;
    RETURN_IF_ERROR(FromGrpc(stub_->HoldApp(&context, request, &response), entry_.name));
    return response.hold();
  }

  absl::StatusOr<v1::AppHold> ReleaseApp(const v1::ReleaseAppRequest& request) override {
    grpc::ClientContext context;
    RETURN_IF_ERROR(Prepare(&context));
    v1::ReleaseAppResponse response;
    RETURN_IF_ERROR(FromGrpc(stub_->ReleaseApp(&context, request, &response), entry_.name));
    return response.hold();
  }

 private:
  // Waits (a bounded time) for the connection first: a call then fails
  // fast only when the peer is really unreachable, and the timeout bounds
  // the call itself.
  absl::Status Prepare(grpc::ClientContext* context) const {
    if (!channel_->WaitForConnected(std::chrono::system_clock::now() +
                                    absl::ToChronoMilliseconds(kConnectTimeout))) {
      return absl::UnavailableError(absl::StrCat("the agent '", entry_.name, "' at ",
                                                 entry_.address, " is not reachable (",
                                                 absl::FormatDuration(kConnectTimeout), ")"));
    }
    context->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout_));
    context->AddMetadata("authorization", "Bearer " + entry_.token);
    return absl::OkStatus();
  }

  const PeerEntry entry_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<v1::RestoreAgentService::Stub> stub_;
  const absl::Duration timeout_;
};

class GrpcPeerConnector : public PeerConnector {
 public:
  GrpcPeerConnector(std::map<std::string, PeerEntry> peers, PeerTls tls, absl::Duration timeout)
      : peers_(std::move(peers)), tls_(std::move(tls)), timeout_(timeout) {}

  absl::StatusOr<std::unique_ptr<PeerAgent>> Open(const std::string& name) override {
    auto it = peers_.find(name);
    if (it == peers_.end()) {
      return absl::NotFoundError(absl::StrCat("no agent named '", name,
                                              "' in this agent's --peers-file",
                                              peers_.empty() ? " (none is configured)" : ""));
    }
    std::string host;
    int port = 0;
    RETURN_IF_ERROR(SplitHostPort(it->second.address, &host, &port));
    // Its own connection (not shared with other channels), tried again
    // every two seconds at most while the peer is down, so that a peer
    // back up is reached at once.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 500);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
    std::shared_ptr<grpc::ChannelCredentials> credentials;
    if (tls_.insecure_loopback && IsLoopbackHost(host)) {
      credentials = grpc::InsecureChannelCredentials();
    } else {
      grpc::SslCredentialsOptions ssl;
      ssl.pem_root_certs = tls_.ca_pem;
      ssl.pem_cert_chain = tls_.cert_pem;
      ssl.pem_private_key = tls_.key_pem;
      credentials = grpc::SslCredentials(ssl);
    }
    return std::unique_ptr<PeerAgent>(new GrpcPeerAgent(
        it->second, grpc::CreateCustomChannel(it->second.address, credentials, args), timeout_));
  }

 private:
  const std::map<std::string, PeerEntry> peers_;
  const PeerTls tls_;
  const absl::Duration timeout_;
};

}  // namespace

std::unique_ptr<PeerConnector> NewGrpcPeerConnector(std::map<std::string, PeerEntry> peers,
                                                    PeerTls tls, absl::Duration call_timeout) {
  return std::make_unique<GrpcPeerConnector>(std::move(peers), std::move(tls), call_timeout);
}

}  // namespace mastodon_restore
