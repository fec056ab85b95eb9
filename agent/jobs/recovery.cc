#include "agent/jobs/recovery.h"

#include <unistd.h>

#include <cerrno>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/app/app_tasks.h"
#include "agent/app/redis_restore.h"
#include "agent/database/database_restore.h"
#include "agent/database/host_cluster.h"
#include "agent/media/media_restore.h"

namespace mastodon_restore {
namespace v1 = ::mastodon::restore::v1;

namespace {

absl::StatusOr<std::string> JournalConnInfo(const v1::DatabaseJournal& j,
                                            const RecoveryContext& ctx) {
  switch (j.connection()) {
    case v1::JOURNAL_CONNECTION_REQUEST:
      return j.conninfo();
    case v1::JOURNAL_CONNECTION_AGENT_TARGET:
      if (ctx.target_conninfo.empty()) {
        return absl::FailedPreconditionError("the agent runs without --target-conninfo now");
      }
      return ctx.target_conninfo;
    case v1::JOURNAL_CONNECTION_RUNTIME: {
      if (ctx.runtime == nullptr) {
        return absl::FailedPreconditionError("the agent has no Mastodon runtime now");
      }
      auto db = ctx.runtime->Database();
      if (!db.ok()) return db.status();
      return db->conninfo;
    }
    default:
      return absl::FailedPreconditionError("the record does not say which server was used");
  }
}

// Removes the file `path` (never following a symlink: unlink does not);
// true when it was there.
bool RemoveIfPresent(const std::string& path) {
  return !path.empty() && ::unlink(path.c_str()) == 0;
}

// The hold a migration has on its old host's app: released (that app
// started again) unless this host's swap had committed, then kept stopped
// for good. Undecided while the database part is.
void RecoverPeerHold(const v1::PeerHoldJournal& hold, std::optional<bool> swapped,
                     const RecoveryContext& ctx, RecoveryOutcome* out) {
  const std::string where =
      absl::StrCat("the old host's app (agent '", hold.peer(), "', hold ", hold.hold_id(), ")");
  if (!swapped.has_value()) {
    out->failed.push_back(
        absl::StrCat(where,
                     ": held until the databases are recovered and tell whether the "
                     "migration had cut over"));
    return;
  }
  out->peer_hold_keep_stopped = *swapped;
  absl::StatusOr<std::unique_ptr<PeerAgent>> peer =
      ctx.peers != nullptr ? ctx.peers->Open(hold.peer())
                           : absl::FailedPreconditionError("the agent runs without --peers-file");
  v1::ReleaseAppRequest release;
  release.set_id(hold.hold_id());
  release.set_keep_stopped(*swapped);
  absl::Status released = peer.ok() ? (*peer)->ReleaseApp(release).status() : peer.status();
  if (released.ok() || absl::IsNotFound(released)) {
    out->peer_hold_resolved = true;
    out->done.push_back(absl::StrCat(
        where, *swapped ? " is kept stopped: the migration had cut over" : " was started again"));
    return;
  }
  out->failed.push_back(
      absl::StrCat(where, " ", *swapped ? "must stay stopped" : "must be started again", ": ",
                   released.message(), "; on that host: mastodon-restore app-hold release ",
                   hold.hold_id(), *swapped ? " --keep-stopped" : ""));
}

// A physical migration's copy of the old cluster: removed (its server
// stopped) while it was only a copy; during the swap, settled from the
// directories and this host's cluster started again. True in *swapped
// when the copy had become this host's cluster.
void RecoverCluster(const v1::ClusterJournal& c, const std::string& record_id,
                    const RecoveryContext& ctx, std::optional<bool>* swapped,
                    RecoveryOutcome* out) {
  const std::string slot_left = absl::StrCat(
      "the old server may keep the replication slot ", c.slot(),
      ", which holds its WAL: SELECT pg_drop_replication_slot('", c.slot(), "') there");
  if (c.phase() != v1::CLUSTER_PHASE_SWAPPING) {
    absl::Status removed = RemoveClusterCopy(c.copy_dir());
    // The standby's socket directory (/tmp/mr-standby-<op>-*).
    if (removed.ok()) removed = RemoveStandbySocketDirs(record_id);
    if (!removed.ok()) {
      out->failed.push_back(
          absl::StrCat("the copy of the old cluster (", c.copy_dir(), "): ", removed.message()));
      swapped->reset();
      return;
    }
    out->cluster_resolved = true;
    *swapped = false;
    out->done.push_back(absl::StrCat("stopped and removed the copy of the old cluster ",
                                     c.copy_dir(), "; ", slot_left));
    return;
  }
  absl::StatusOr<bool> live = SettleClusterSwap(c.data_dir(), c.copy_dir(), c.previous_name());
  if (!live.ok()) {
    out->failed.push_back(
        absl::StrCat("the swap of ", c.data_dir(), " and its copy: ", live.status().message()));
    swapped->reset();
    return;
  }
  *swapped = *live;
  RemoveStandbySocketDirs(record_id).IgnoreError();
  out->done.push_back(*live
                          ? absl::StrCat("completed the swap: ", c.data_dir(),
                                         " holds the old cluster's copy, this host's is kept as ",
                                         c.previous_name())
                          : absl::StrCat("put this host's cluster back in ", c.data_dir(),
                                         " and removed the copy of the old cluster; ", slot_left));
  auto cluster = ParseDebianCluster(c.cluster());
  absl::Status started =
      cluster.ok() ? ControlCluster(*cluster, true, ctx.host_path, ctx.runner) : cluster.status();
  if (!started.ok()) {
    out->failed.push_back(absl::StrCat("starting this host's PostgreSQL: ", started.message()));
    return;
  }
  out->cluster_resolved = true;
  out->done.push_back(absl::StrCat("started this host's PostgreSQL (", c.cluster(), ")"));
}

}  // namespace

RecoveryOutcome RecoverFromJournal(const v1::OperationRecord& record, const RecoveryContext& ctx) {
  RecoveryOutcome out;
  // Whether this host's database was swapped (a migration cut over): its
  // old host's app then stays stopped. Unknown while the database part
  // cannot be recovered.
  std::optional<bool> swapped;
  if (!record.has_database_journal()) swapped = record.peer_hold().keep_stopped();
  if (record.has_database_journal()) {
    const v1::DatabaseJournal& j = record.database_journal();
    auto conninfo = JournalConnInfo(j, ctx);
    bool committed = false;
    absl::StatusOr<std::vector<std::string>> done =
        conninfo.ok() ? RecoverDatabaseJournal(*conninfo, j, &committed) : conninfo.status();
    if (done.ok()) swapped = committed || record.peer_hold().keep_stopped();
    if (done.ok()) {
      out.database_resolved = true;
      for (const std::string& d : *done) out.done.push_back(d);
    } else {
      out.failed.push_back(absl::StrCat(
          "the databases (staging '", j.staging_database(), "'",
          j.staging_oid() != 0 ? absl::StrCat(" OID ", j.staging_oid()) : "",
          "): ", done.status().message(),
          j.conninfo_password_omitted() ? " (the request's password is not kept)" : ""));
    }
  }
  if (record.has_cluster_journal()) {
    RecoverCluster(record.cluster_journal(), record.operation().id(), ctx, &swapped, &out);
  }
  if (record.has_media_journal()) {
    const v1::MediaJournal& m = record.media_journal();
    if (m.phase() == v1::MEDIA_PHASE_MOVING) {
      std::optional<uid_t> uid;
      std::optional<gid_t> gid;
      if (m.uid() >= 0) uid = static_cast<uid_t>(m.uid());
      if (m.gid() >= 0) gid = static_cast<gid_t>(m.gid());
      auto moved = CompleteMediaMove(m.staging_dir(), m.target_dir(), uid, gid);
      if (moved.ok()) {
        out.media_resolved = true;
        if (*moved > 0) {
          out.done.push_back(absl::StrCat("moved the last ", *moved, " staged media file",
                                          *moved == 1 ? "" : "s", " into ", m.target_dir()));
        }
      } else {
        out.failed.push_back(absl::StrCat("the media move: ", moved.status().message()));
      }
    } else {
      // Nothing reached the media directory. What was staged is kept: the
      // next media restore into it takes it over (media/media_restore.h).
      out.media_resolved = true;
      if (ctx.env->Exists(m.staging_dir())) {
        out.done.push_back(absl::StrCat("kept the media staging directory ", m.staging_dir(),
                                        " for the next media restore into ", m.target_dir(),
                                        " to take over (remove it to start afresh)"));
      }
    }
  }
  if (record.has_env_journal()) {
    const v1::EnvJournal& e = record.env_journal();
    for (const std::string& temp : {e.temp_path(), e.kept_temp_path()}) {
      if (RemoveIfPresent(temp)) out.done.push_back(absl::StrCat("removed the temp file ", temp));
    }
    if (e.uid() >= 0 && ctx.env->Exists(e.path())) {
      absl::Status owned = ctx.env->SetOwner(e.path(), static_cast<uid_t>(e.uid()),
                                             static_cast<gid_t>(e.gid() >= 0 ? e.gid() : -1));
      if (!owned.ok()) out.failed.push_back(std::string(owned.message()));
    }
    out.env_resolved = true;
  }
  if (record.has_redis_journal()) {
    const v1::RedisJournal& r = record.redis_journal();
    TaskContext task{ctx.runner, ctx.env, nullptr, ctx.reporter, "redis"};
    absl::StatusOr<std::vector<std::string>> done = RecoverRedisJournal(r, ctx.runtime, task);
    if (done.ok()) {
      out.redis_resolved = true;
      for (const std::string& d : *done) out.done.push_back(d);
    } else {
      out.failed.push_back(absl::StrCat("Redis (", r.data_dir(), "/", r.file_name(),
                                        "): ", done.status().message()));
    }
  }
  if (record.services_stopped() && ctx.services) {
    if (ctx.runtime == nullptr || ctx.runtime->Services().empty()) {
      out.failed.push_back(
          "the app's services were stopped and the agent has no runtime to start them");
    } else {
      TaskContext task{ctx.runner, ctx.env, nullptr, ctx.reporter, "start_services"};
      absl::Status started = ControlServices(*ctx.runtime, true, task);
      if (started.ok()) {
        out.services_resolved = true;
        out.done.push_back(absl::StrCat("started the app again (",
                                        absl::StrJoin(ctx.runtime->Services(), ", "), ")"));
      } else {
        out.failed.push_back(absl::StrCat("starting the app: ", started.message()));
      }
    }
  }
  if (record.has_peer_hold()) RecoverPeerHold(record.peer_hold(), swapped, ctx, &out);
  return out;
}

void ApplyRecovery(const RecoveryOutcome& outcome, v1::OperationRecord* record) {
  if (outcome.database_resolved) record->clear_database_journal();
  if (outcome.cluster_resolved) record->clear_cluster_journal();
  if (outcome.media_resolved) record->clear_media_journal();
  if (outcome.env_resolved) record->clear_env_journal();
  if (outcome.redis_resolved) record->clear_redis_journal();
  if (outcome.services_resolved) record->set_services_stopped(false);
  if (outcome.peer_hold_resolved) {
    record->clear_peer_hold();
  } else if (record->has_peer_hold() && outcome.peer_hold_keep_stopped) {
    record->mutable_peer_hold()->set_keep_stopped(true);
  }
  if (!record->has_database_journal() && !record->has_cluster_journal() &&
      !record->has_media_journal() && !record->has_env_journal() && !record->has_redis_journal() &&
      !record->services_stopped() && !record->has_peer_hold()) {
    record->set_recovered(true);
  }
}

RecoveryOutcome RecoverOperation(Operation* op, const RecoveryContext& ctx, const std::string& verb,
                                 bool always_report) {
  RecoveryOutcome outcome = RecoverFromJournal(op->Record(), ctx);
  if (always_report || !outcome.done.empty() || !outcome.failed.empty()) {
    std::string message = absl::StrCat(
        verb, ": ",
        outcome.done.empty() ? std::string("nothing to undo") : absl::StrJoin(outcome.done, "; "));
    if (!outcome.failed.empty()) {
      absl::StrAppend(&message, "; recovery incomplete (retried at the next start): ",
                      absl::StrJoin(outcome.failed, "; "));
    }
    op->Log(outcome.failed.empty() ? v1::SEVERITY_WARNING : v1::SEVERITY_ERROR, message);
  }
  // Saved with the event.
  absl::Status saved =
      op->Journal([&](v1::OperationRecord* record) { ApplyRecovery(outcome, record); });
  if (!saved.ok()) outcome.failed.push_back(std::string(saved.message()));
  return outcome;
}

}  // namespace mastodon_restore
