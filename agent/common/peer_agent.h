// Another host's agent, as this agent reaches it (a migration's old host):
// by name, from the --peers-file, over TCP with TLS (the peer's certificate
// checked against --peer-ca; this agent's own with --peer-cert/--peer-key
// for mutual TLS) and the peer's bearer token. The token is read from the
// peers file (mode 0600, never logged, never in a record or a request).
#ifndef MR_AGENT_COMMON_PEER_AGENT_H_
#define MR_AGENT_COMMON_PEER_AGENT_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agent/common/env.h"
#include "agent/common/object_store.h"
#include "agent/common/rate_limiter.h"
#include "mastodon/restore/v1/agent_service.pb.h"

namespace mastodon_restore {

// One line of the peers file: "NAME HOST:PORT TOKEN".
struct PeerEntry {
  std::string name;
  std::string address;
  std::string token;  // secret
};

// Parses a peers file ("#" comments, blank lines). INVALID_ARGUMENT naming
// the line (never its token) when malformed or a name repeats.
absl::StatusOr<std::map<std::string, PeerEntry>> ParsePeersFile(absl::string_view text,
                                                                absl::string_view origin);

// Reads and parses the peers file at `path`: FAILED_PRECONDITION when the
// group or others may read it (it holds tokens).
absl::StatusOr<std::map<std::string, PeerEntry>> LoadPeersFile(const std::string& path, Env* env);

// The calls a migration makes on the old host's agent. Each call is bounded
// by a deadline; an unreachable peer is UNAVAILABLE naming it.
class PeerAgent {
 public:
  virtual ~PeerAgent() = default;
  virtual absl::StatusOr<mastodon::restore::v1::GetAgentInfoResponse> Info() = 0;
  virtual absl::StatusOr<mastodon::restore::v1::AppHold> HoldApp(
      const mastodon::restore::v1::HoldAppRequest& request) = 0;
  virtual absl::StatusOr<mastodon::restore::v1::AppHold> ReleaseApp(
      const mastodon::restore::v1::ReleaseAppRequest& request) = 0;
  virtual absl::StatusOr<mastodon::restore::v1::ListMediaResponse> ListMedia(
      const mastodon::restore::v1::ListMediaRequest& request) = 0;
  virtual absl::StatusOr<mastodon::restore::v1::ReadMediaResponse> ReadMedia(
      const mastodon::restore::v1::ReadMediaRequest& request) = 0;
};

// The peer's media directory as an object store (read only): the source of
// a media restore (media/media_restore.h) into this host. Keys are the
// files' paths. A read broken by the connection is taken up again at the
// byte where it stopped (a few times, a second apart), as long as the file
// is still the one listed; `rate` (null: none) caps the bytes read. With
// `sha256`, the listing gives each file's SHA-256 (StoredObject::sha256),
// which costs the peer a read of what it has not hashed yet.
std::shared_ptr<const ObjectStore> NewPeerMediaStore(std::shared_ptr<PeerAgent> peer,
                                                     std::string name,
                                                     std::shared_ptr<RateLimiter> rate,
                                                     bool sha256 = false);

class PeerConnector {
 public:
  virtual ~PeerConnector() = default;
  // The peer named `name`; NOT_FOUND when the peers file has no such name
  // (or there is none). Opening does not connect: the first call does.
  virtual absl::StatusOr<std::unique_ptr<PeerAgent>> Open(const std::string& name) = 0;
};

// How this agent authenticates to peers and checks them.
struct PeerTls {
  // PEM: the CA bundle that signs the peers' server certificates ("": the
  // system's roots), and this agent's client certificate and key ("": none).
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
  // Plaintext to loopback peers (tests only, as --insecure-loopback-tcp).
  bool insecure_loopback = false;
};

// Peers reached over gRPC. `call_timeout` bounds each call (stopping an
// app can take a while).
std::unique_ptr<PeerConnector> NewGrpcPeerConnector(std::map<std::string, PeerEntry> peers,
                                                    PeerTls tls, absl::Duration call_timeout);

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_PEER_AGENT_H_
