#include "agent/service/local_peers.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace mastodon_restore {

void LocalPeers::Add(int fd, pid_t pid, uid_t uid, gid_t gid) {
  absl::MutexLock lock(&mu_);
  by_fd_[fd] = absl::StrCat("uid:", uid, " gid:", gid, " pid:", pid);
}

std::string LocalPeers::Describe(const std::string& peer) const {
  absl::string_view s = peer;
  int fd = -1;
  if (!absl::ConsumePrefix(&s, "fd:") || !absl::SimpleAtoi(s, &fd)) return peer;
  absl::MutexLock lock(&mu_);
  auto it = by_fd_.find(fd);
  return it == by_fd_.end() ? peer : it->second;
}

}  // namespace mastodon_restore
