// Recovery driven by the operation record: what the next agent start (and
// the end of a restore that failed) does with the journal of an operation
// that stopped mid-way (OperationRecord.database_journal, media_journal,
// env_journal, redis_journal, services_stopped). Each half-done phase is completed or
// undone, idempotently, from the record alone:
//
//   database: see RecoverDatabaseJournal (staging dropped by OID; an
//             interrupted swap found committed or not by OID; connections
//             allowed again), on the server the operation used;
//   media:    EXTRACTING: the staging directory is removed; MOVING: the rest
//             of the staged files are moved in, then it is removed;
//   env file: the recorded temp files are removed and the env file (old or
//             new, a rename decided) gets its recorded owner;
//   redis:    see RecoverRedisJournal (a staged file removed, or the swap
//             completed with Redis stopped, then Redis started);
//   services: the app's services are started again;
//   peer hold: the old host's app (held by a migration) is started again
//             through its agent, or kept stopped when the swap had
//             committed (decided once, from the database part).
#ifndef MR_AGENT_JOBS_RECOVERY_H_
#define MR_AGENT_JOBS_RECOVERY_H_

#include <string>
#include <vector>

#include "agent/app/runtime.h"
#include "agent/common/env.h"
#include "agent/common/peer_agent.h"
#include "agent/common/subprocess.h"
#include "agent/operations/operation.h"
#include "mastodon/restore/v1/operation.pb.h"

namespace mastodon_restore {

struct RecoveryContext {
  Env* env = nullptr;
  CommandRunner* runner = nullptr;
  // The agent's --target-conninfo ("" none) and its runtime (null: none):
  // the servers of operations whose request named none.
  std::string target_conninfo;
  const Runtime* runtime = nullptr;
  // Other hosts' agents: a migration's hold on its old host's app is
  // released through them (null: none configured).
  PeerConnector* peers = nullptr;
  // PATH of the host's commands (pg_ctlcluster).
  std::string host_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  // Receives the events of commands run to start services (may be null).
  ProgressReporter* reporter = nullptr;
  // Start services a stopped operation left down (off at the end of a job,
  // whose start_services step decided).
  bool services = true;
};

struct RecoveryOutcome {
  // What was done, one phrase each ("dropped the staging database ...").
  std::vector<std::string> done;
  // What could not be done now (the journal part stays for the next start).
  std::vector<std::string> failed;
  bool database_resolved = false;
  bool cluster_resolved = false;
  bool media_resolved = false;
  bool env_resolved = false;
  bool redis_resolved = false;
  bool services_resolved = false;
  bool peer_hold_resolved = false;
  // The peer hold's fate when it could not be released now: kept for the
  // next start.
  bool peer_hold_keep_stopped = false;
};

// Recovers every pending part of `record`'s journal.
RecoveryOutcome RecoverFromJournal(const mastodon::restore::v1::OperationRecord& record,
                                   const RecoveryContext& ctx);

// Clears the parts of `record`'s journal that `outcome` resolved; marks the
// record recovered when nothing is left.
void ApplyRecovery(const RecoveryOutcome& outcome, mastodon::restore::v1::OperationRecord* record);

// Recovers `op`'s journal and records the result on it: the journal parts
// resolved are cleared (saved), and a WARNING event "<verb>: <what was
// done>" (plus "recovery incomplete: ..." naming what is left, an ERROR) is
// added when anything was done or `always_report`. Returns the outcome.
RecoveryOutcome RecoverOperation(Operation* op, const RecoveryContext& ctx, const std::string& verb,
                                 bool always_report);

}  // namespace mastodon_restore

#endif  // MR_AGENT_JOBS_RECOVERY_H_
