// What every job takes from the host and from the agent's configuration:
// processes, files, the clock and PostgreSQL (behind their interfaces), the
// Mastodon
// runtime found at start, and the agent's defaults for targets. The service
// builds one for the agent's lifetime and hands it to the job factories.
#ifndef MR_AGENT_JOBS_JOB_ENV_H_
#define MR_AGENT_JOBS_JOB_ENV_H_

#include <string>
#include <vector>

#include "agent/app/runtime.h"
#include "agent/common/env.h"
#include "agent/common/peer_agent.h"
#include "agent/common/space_guard.h"
#include "agent/common/subprocess.h"
#include "agent/database/local_cluster.h"
#include "agent/database/pg_session.h"

namespace mastodon_restore {

// The runtime the agent uses, as the daemon set it up.
struct RuntimeContext {
  // What the configuration asked for ("auto", "snap", ...).
  std::string requested = "auto";
  // The runtime in use; null when none (restores then need a conninfo and
  // media restores --media-dir).
  const Runtime* runtime = nullptr;
  // What detection looked at without finding a runtime.
  std::vector<std::string> checked;
};

struct JobEnv {
  // Must outlive every job.
  CommandRunner* runner = nullptr;
  Env* env = nullptr;
  // Opens every session the jobs' named queries run on.
  PgConnector* pg = nullptr;
  // Other hosts' agents (--peers-file); null when none is configured.
  PeerConnector* peers = nullptr;
  // Null when the agent has no runtime context (tests).
  const RuntimeContext* runtime = nullptr;
  // The agent's --target-conninfo and --media-dir ("" when not set).
  std::string target_conninfo;
  std::string media_dir;
  // The agent's --media-root directories: a media directory read from a
  // file the app user can write is used only inside one of them (or inside
  // media_dir).
  std::vector<std::string> media_roots;
  // The agent's --cluster-data-root directories: a physical migration
  // replaces only a cluster whose data directory lies inside one.
  std::vector<std::string> cluster_data_roots;
  // PATH of the host's commands (pg_ctlcluster).
  std::string host_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  // The agent's --allowed-s3-endpoint (canonical): the only endpoints a
  // bucket named by a request or by the app's env is reached at.
  std::vector<std::string> allowed_s3_endpoints;
  // Free space media restores leave on the media filesystem (--free-space-floor).
  SpaceFloor space_floor;
  // A directory only the agent writes in (its state directory): a
  // migration's schema dump passes through it.
  std::string scratch_dir;
  // Where PostgreSQL's client binaries are installed, one directory per
  // major (<root>/<major>/bin/pg_restore).
  std::string postgres_root = kDefaultPostgresRoot;

  // The runtime in use, or null.
  const Runtime* app_runtime() const { return runtime != nullptr ? runtime->runtime : nullptr; }
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_JOBS_JOB_ENV_H_
