// This host's PostgreSQL cluster as a physical migration replaces it: a
// Debian cluster ("15/main") stopped and started with pg_ctlcluster, the
// copy of the old cluster made beside its data directory (same parent,
// same filesystem), and the swap of the two by renames. The cluster it
// replaces is kept, never removed. Root writes here through directory
// descriptors (common/dir.h): the parent directory is opened once and
// every name below it is one component.
//
// Beside data directory P/main, for operation OP:
//   P/.main.mastodon-restore-OP/       the copy: data/ (the old cluster),
//                                      sockets/, postgres.log, standby-hba.conf
//   P/main.previous-OP                 this host's cluster, after the swap
#ifndef MR_AGENT_DATABASE_HOST_CLUSTER_H_
#define MR_AGENT_DATABASE_HOST_CLUSTER_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "agent/common/subprocess.h"

namespace mastodon_restore {

// A Debian cluster, as its cluster_name setting names it ("15/main").
struct DebianCluster {
  std::string version;
  std::string name;
  std::string ToString() const { return version + "/" + name; }
};
// INVALID_ARGUMENT unless `cluster_name` is "<major>/<name>" with a name
// of letters, digits, '-', '_' and '.'.
absl::StatusOr<DebianCluster> ParseDebianCluster(const std::string& cluster_name);

// pg_ctlcluster VERSION NAME stop (fast) or start, found in `path` (the
// host's PATH). A stop of a cluster that is not running, or a start of one
// that is, is OK (pg_ctlcluster says so with exit code 2).
absl::Status ControlCluster(const DebianCluster& cluster, bool start, const std::string& path,
                            CommandRunner* runner);

// The names beside the data directory `data_dir` (see above).
std::string ClusterCopyDir(const std::string& data_dir, const std::string& operation_id);
std::string PreviousClusterName(const std::string& data_dir, const std::string& operation_id);

// Creates the copy directory (mode 0700, owned by the cluster's user
// `uid`:`gid`) and in it standby-hba.conf with `hba` (the copy's data/ is
// made by pg_basebackup). ALREADY_EXISTS when it is there.
absl::Status CreateClusterCopyDir(const std::string& copy_dir, uid_t uid, gid_t gid,
                                  const std::string& hba);

// After the base backup: an empty postgresql.conf in the copy's data/ when
// it has none (an old host that keeps its configuration elsewhere, as
// Debian does), so that a server starts on it.
absl::Status PrepareClusterCopy(const std::string& copy_dir);

// The copy's socket directory while it runs as a standby: a new directory
// /tmp/mr-standby-<operation_id>-XXXXXX (a socket's path must stay under
// 108 bytes, which one below a deep data directory may not), mode 0700,
// owned by `uid`:`gid`: only they and root reach the standby.
absl::StatusOr<std::string> CreateStandbySocketDir(const std::string& operation_id, uid_t uid,
                                                   gid_t gid);
// Removes every /tmp/mr-standby-<operation_id>-* directory (no symlink is
// followed); OK when there is none.
absl::Status RemoveStandbySocketDirs(const std::string& operation_id);

// Stops a server still running on the copy's data/ (its postmaster.pid: a
// fast shutdown, immediate after 30 s), then removes the copy directory.
// OK when it is gone.
absl::Status RemoveClusterCopy(const std::string& copy_dir);

// With this host's cluster and the copy's server stopped: this host's data
// directory becomes P/`previous_name`, the copy's data/ takes its place,
// and the configuration files this host's cluster kept in its data
// directory (postgresql.conf, pg_hba.conf, pg_ident.conf,
// postgresql.auto.conf) replace the copy's (one it did not have is removed
// from the copy: this host's configuration stays this host's). The rest of
// the copy directory is removed.
absl::Status SwapInClusterCopy(const std::string& data_dir, const std::string& copy_dir,
                               const std::string& previous_name);

// After SwapInClusterCopy was interrupted, from what the directories say:
// both renames done, the swap is completed (true); otherwise the previous
// data directory is put back and the copy removed (false). Either way no
// server may run on them.
absl::StatusOr<bool> SettleClusterSwap(const std::string& data_dir, const std::string& copy_dir,
                                       const std::string& previous_name);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_HOST_CLUSTER_H_
