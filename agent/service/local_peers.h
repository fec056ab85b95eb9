// Who is at the other end of each connection to the agent's unix socket.
// The daemon accepts those connections itself, reads the kernel's peer
// credentials (SO_PEERCRED) and hands the descriptor to gRPC, whose calls
// then name the connection "fd:N"; the audit log asks here who that is.
#ifndef MR_AGENT_SERVICE_LOCAL_PEERS_H_
#define MR_AGENT_SERVICE_LOCAL_PEERS_H_

#include <sys/types.h>

#include <map>
#include <string>

#include "absl/synchronization/mutex.h"

namespace mastodon_restore {

class LocalPeers {
 public:
  // Records the credentials of the connection on `fd` (replacing those of
  // an earlier connection that had the same descriptor number).
  void Add(int fd, pid_t pid, uid_t uid, gid_t gid);
  // "uid:1000 gid:50 pid:4242" for a peer "fd:N" the agent accepted; the
  // peer string unchanged otherwise.
  std::string Describe(const std::string& peer) const;

 private:
  mutable absl::Mutex mu_;
  std::map<int, std::string> by_fd_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_SERVICE_LOCAL_PEERS_H_
