#include "agent/common/peer_agent.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
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
    return Call(&Stub::GetAgentInfo, v1::GetAgentInfoRequest());
  }
  absl::StatusOr<v1::AppHold> HoldApp(const v1::HoldAppRequest& request) override {
    ASSIGN_OR_RETURN(v1::HoldAppResponse response, Call(&Stub::HoldApp, request));
    return response.hold();
  }
  absl::StatusOr<v1::AppHold> ReleaseApp(const v1::ReleaseAppRequest& request) override {
    ASSIGN_OR_RETURN(v1::ReleaseAppResponse response, Call(&Stub::ReleaseApp, request));
    return response.hold();
  }
  absl::StatusOr<v1::ListMediaResponse> ListMedia(const v1::ListMediaRequest& request) override {
    return Call(&Stub::ListMedia, request);
  }
  absl::StatusOr<v1::ReadMediaResponse> ReadMedia(const v1::ReadMediaRequest& request) override {
    return Call(&Stub::ReadMedia, request);
  }

 private:
  using Stub = v1::RestoreAgentService::Stub;

  // One unary call of the stub's `method`, prepared (connection, deadline,
  // token) and its status converted.
  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                                             Response*),
                                const Request& request) {
    grpc::ClientContext context;
    RETURN_IF_ERROR(Prepare(&context));
    Response response;
    RETURN_IF_ERROR(FromGrpc((stub_.get()->*method)(&context, request, &response), entry_.name));
    return response;
  }

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
  const std::unique_ptr<Stub> stub_;
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

// How a broken read is taken up again.
constexpr int kReadAttempts = 5;
constexpr absl::Duration kReadRetryPause = absl::Seconds(1);
constexpr int kChunk = 1 << 20;

bool Transient(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsResourceExhausted(s);
}

// One media file of the peer, read chunk by chunk from where the last
// chunk ended.
class PeerMediaStream : public ByteStream {
 public:
  PeerMediaStream(std::shared_ptr<PeerAgent> peer, StoredObject object, std::string name,
                  std::shared_ptr<RateLimiter> rate)
      : peer_(std::move(peer)),
        object_(std::move(object)),
        name_(std::move(name)),
        rate_(std::move(rate)) {}

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (pos_ == buffer_.size()) {
      if (offset_ >= object_.size) return 0;
      RETURN_IF_ERROR(Fetch());
      if (buffer_.empty()) {
        return absl::AbortedError(
            absl::StrCat("unable to read '", name_, "': it ended before its listed size"));
      }
    }
    const size_t k = std::min(n, buffer_.size() - pos_);
    std::memcpy(buf, buffer_.data() + pos_, k);
    pos_ += k;
    return k;
  }
  const std::string& name() const override { return name_; }
  int64_t raw_bytes_read() const override { return offset_; }

 private:
  absl::Status Fetch() {
    v1::ReadMediaRequest request;
    request.set_path(object_.key);
    request.set_offset(offset_);
    request.set_length(kChunk);
    request.set_size(object_.size);
    request.set_mtime(object_.mtime);
    absl::Status last;
    for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
      if (attempt > 0) absl::SleepFor(kReadRetryPause);
      absl::StatusOr<v1::ReadMediaResponse> got = peer_->ReadMedia(request);
      if (got.ok()) {
        if (rate_ != nullptr) rate_->Acquire(static_cast<int64_t>(got->data().size()));
        buffer_ = std::move(*got->mutable_data());
        pos_ = 0;
        offset_ += static_cast<int64_t>(buffer_.size());
        return absl::OkStatus();
      }
      last = got.status();
      if (!Transient(last)) break;
    }
    return absl::Status(last.code(), absl::StrCat("unable to read '", name_, "' at byte ", offset_,
                                                  ": ", last.message()));
  }

  const std::shared_ptr<PeerAgent> peer_;
  const StoredObject object_;
  const std::string name_;
  const std::shared_ptr<RateLimiter> rate_;
  std::string buffer_;
  size_t pos_ = 0;
  int64_t offset_ = 0;
};

class PeerMediaStore : public ObjectStore {
 public:
  PeerMediaStore(std::shared_ptr<PeerAgent> peer, std::string name,
                 std::shared_ptr<RateLimiter> rate, bool sha256)
      : peer_(std::move(peer)), name_(std::move(name)), rate_(std::move(rate)), sha256_(sha256) {}

  std::string Describe(const std::string& key) const override {
    return absl::StrCat("agent:", name_, "/", key);
  }

  absl::StatusOr<ObjectPage> List(const std::string& prefix,
                                  const std::string& page) const override {
    v1::ListMediaRequest request;
    request.set_prefix(prefix);
    request.set_page_token(page);
    request.set_sha256(sha256_);
    absl::StatusOr<v1::ListMediaResponse> got;
    for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
      if (attempt > 0) absl::SleepFor(kReadRetryPause);
      got = peer_->ListMedia(request);
      if (got.ok() || !Transient(got.status())) break;
    }
    RETURN_IF_ERROR(got.status());
    ObjectPage out;
    for (const v1::HostMediaFile& f : got->files()) {
      StoredObject o;
      o.key = f.path();
      o.size = f.size();
      o.mtime = f.mtime();
      o.sha256 = f.sha256();
      out.objects.push_back(std::move(o));
    }
    out.next = got->next_page_token();
    return out;
  }

  absl::StatusOr<std::unique_ptr<ByteStream>> Open(const StoredObject& object) const override {
    return std::unique_ptr<ByteStream>(
        new PeerMediaStream(peer_, object, Describe(object.key), rate_));
  }

  absl::StatusOr<StoredObject> Head(const std::string& key) const override {
    ASSIGN_OR_RETURN(ObjectPage page, List(key, ""));
    for (const StoredObject& o : page.objects) {
      if (o.key == key) return o;
    }
    return absl::NotFoundError(absl::StrCat(Describe(key), " not found"));
  }

  absl::StatusOr<std::string> Put(const std::string& key, const std::string&,
                                  const std::vector<std::string>&) const override {
    return ReadOnly(key);
  }
  bool CanCopyFrom(const ObjectStore&) const override { return false; }
  absl::StatusOr<std::string> Copy(const ObjectStore&, const StoredObject&, const std::string& key,
                                   const std::vector<std::string>&) const override {
    return ReadOnly(key);
  }
  absl::StatusOr<std::unique_ptr<ObjectUpload>> StartUpload(
      const std::string& key, const std::vector<std::string>&) const override {
    return ReadOnly(key);
  }

 private:
  absl::Status ReadOnly(const std::string& key) const {
    return absl::FailedPreconditionError(
        absl::StrCat(Describe(key), ": another host's media are read only"));
  }

  const std::shared_ptr<PeerAgent> peer_;
  const std::string name_;
  const std::shared_ptr<RateLimiter> rate_;
  const bool sha256_;
};

}  // namespace

std::shared_ptr<const ObjectStore> NewPeerMediaStore(std::shared_ptr<PeerAgent> peer,
                                                     std::string name,
                                                     std::shared_ptr<RateLimiter> rate,
                                                     bool sha256) {
  return std::make_shared<PeerMediaStore>(std::move(peer), std::move(name), std::move(rate),
                                          sha256);
}

std::unique_ptr<PeerConnector> NewGrpcPeerConnector(std::map<std::string, PeerEntry> peers,
                                                    PeerTls tls, absl::Duration call_timeout) {
  return std::make_unique<GrpcPeerConnector>(std::move(peers), std::move(tls), call_timeout);
}

}  // namespace mastodon_restore
