#include "agent/jobs/migrate_job.h"

#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <memory>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/app/app_checks.h"
#include "agent/app/app_tasks.h"
#include "agent/app/runtime.h"
#include "agent/archive/path_rules.h"
#include "agent/common/dir.h"
#include "agent/common/failpoint.h"
#include "agent/common/http_probe.h"
#include "agent/common/status_macros.h"
#include "agent/database/app_queries.h"
#include "agent/database/database_restore.h"
#include "agent/database/host_cluster.h"
#include "agent/database/local_cluster.h"
#include "agent/database/logical_follow.h"
#include "agent/database/pg_connection.h"
#include "agent/database/physical_follow.h"
#include "agent/database/server_queries.h"
#include "agent/database/target_ops.h"
#include "agent/database/verify.h"
#include "agent/inventory/inspector.h"
#include "agent/jobs/targets.h"
#include "agent/media/media_restore.h"
#include "agent/operations/redact.h"

namespace mastodon_restore {

namespace v1 = ::mastodon::restore::v1;

namespace {

// How long the cut-over waits for the last changes to arrive.
constexpr absl::Duration kCatchUpTimeout = absl::Minutes(15);
// Between two looks at the follow's progress, and between two progress
// events while following.
constexpr absl::Duration kPoll = absl::Milliseconds(200);
// During the cut-over every millisecond is downtime.
constexpr absl::Duration kCutOverPoll = absl::Milliseconds(10);
constexpr absl::Duration kReportEvery = absl::Seconds(2);
// How long the old app's sessions get to end once its agent stopped it.
constexpr absl::Duration kSessionsDrain = absl::Seconds(30);

// "4.3.1" > "4.2.10"? Dotted numbers compared part by part; false when
// either does not parse.
bool NewerVersion(const std::string& a, const std::string& b) {
  std::vector<std::string> pa = absl::StrSplit(a, '.'), pb = absl::StrSplit(b, '.');
  for (size_t i = 0; i < std::max(pa.size(), pb.size()); ++i) {
    int x = 0, y = 0;
    if (i < pa.size() && !absl::SimpleAtoi(pa[i], &x)) return false;
    if (i < pb.size() && !absl::SimpleAtoi(pb[i], &y)) return false;
    if (x != y) return x > y;
  }
  return false;
}

// "/a/b/c" -> "/a/b".
std::string Parent(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

// The last `n` non-empty lines of `text`, joined with "; ".
std::string LastLines(const std::string& text, size_t n) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  if (lines.size() > n) lines.erase(lines.begin(), lines.end() - n);
  return absl::StrJoin(lines, "; ");
}

std::string Bytes(int64_t n) {
  if (n < 0) return "?";
  if (n < 1024) return absl::StrCat(n, " B");
  if (n < 1024 * 1024) return absl::StrCat(n / 1024, " kB");
  return absl::StrCat(n / (1024 * 1024), " MB");
}

struct MigrateInput {
  v1::MigrateOptions options;
  // The old server as the agent and this host's server reach it
  // (CallerConnInfo's form), and its database.
  std::string source_conninfo;
  std::string source_database;
  // This host's server, the database the migrated one replaces, its owner.
  std::string conninfo;
  std::string database;
  std::string owner;
  // Followed by physical replication (the whole cluster) rather than
  // logical.
  bool physical = false;
  // Null when the app's steps are all skipped.
  const Runtime* runtime = nullptr;
  // How recovery reaches this host's server (never a password).
  JournalTarget journal;
};

class MigrateJob {
 public:
  MigrateJob(MigrateInput in, Operation* op, const JobEnv& env)
      : in_(std::move(in)), op_(op), env_(env), name_(FollowName(op->id())) {}

  using StepFn = absl::StatusOr<std::string> (MigrateJob::*)();
  struct PlannedStep {
    const char* name;
    const char* description;
    StepFn fn;
    // The cut-over's point of no return: from this step on the old
    // server is no longer followed (a failure before it may go back to
    // following, with keep_following).
    bool commits = false;
  };

  // The narrative: the steps of a migration, in order, by method.
  static std::vector<PlannedStep> Plan(bool physical) {
    std::vector<PlannedStep> plan;
    if (physical) {
      // The same major and collation rules on both hosts; this host's
      // cluster one the agent may replace; pg_basebackup here.
      plan.push_back({"preflight",
                      "check the old server (wal_level, slot, senders) and this cluster",
                      &MigrateJob::PhysicalPreflight});
      // The whole old cluster copied beside this host's data directory
      // through a replication slot, while the old app keeps writing.
      plan.push_back({"base_backup", "copy the old cluster (pg_basebackup, with a slot)",
                      &MigrateJob::BaseBackup});
      // The copy runs as a standby streaming the old server's WAL; this
      // host's cluster is not touched.
      plan.push_back({"standby", "run the copy as a streaming standby", &MigrateJob::StartStandby});
    } else {
      // The old server can be followed, this one reached; pg_dump for the
      // schema.
      plan.push_back({"preflight", "check the old server (wal_level, slots, keys) and this one",
                      &MigrateJob::Preflight});
      // The old database's schema through the agent's loader, into a
      // staging database: this host's live database is not touched.
      plan.push_back({"schema", "copy the old database's schema into a staging database",
                      &MigrateJob::CopySchema});
      // A publication of every table there, a subscription here.
      plan.push_back({"subscribe", "publish every table on the old server, subscribe here",
                      &MigrateJob::Subscribe});
      // The rows, table by table, while the old app keeps writing.
      plan.push_back({"copy", "copy the rows while the old app runs", &MigrateJob::InitialCopy});
    }
    // The old host's media, staged beside this host's media directory.
    plan.push_back(
        {"media", "copy the old host's media (staged) while its app runs", &MigrateJob::CopyMedia});
    // FOLLOWING until the cut-over is asked; then the old app is stopped.
    plan.push_back({"follow", "follow the old database until the cut-over", &MigrateJob::Follow});
    // -- The downtime: the old app is stopped. --
    // Every change the old server wrote is here.
    plan.push_back({"catch_up", "wait for the old server's last changes", &MigrateJob::CatchUp});
    if (!physical) {
      // The sequences, which logical replication does not carry.
      plan.push_back(
          {"sequences", "set the sequences from the old server", &MigrateJob::Sequences});
    }
    // Row for row as the old database (the standby answers read-only).
    plan.push_back({"verify", "compare the copy with the old database", &MigrateJob::Verify});
    // The media changed since the first pass (the old app is stopped).
    plan.push_back({"media_delta", "copy the media changed since", &MigrateJob::CopyMediaDelta});
    // -- The point of no return: the old server is followed no more. --
    if (physical) {
      // The copy becomes a primary; the slot on the old server goes.
      plan.push_back({"promote", "promote the copy and drop the slot", &MigrateJob::Promote,
                      /*commits=*/true});
    } else {
      // The follow taken down: subscription, slot, publication, identities.
      plan.push_back({"unsubscribe", "drop the subscription, slot and publication",
                      &MigrateJob::Unsubscribe, /*commits=*/true});
    }
    // This host's app stopped before its database changes.
    plan.push_back({"stop_services", "stop this host's app", &MigrateJob::StopServices});
    if (physical) {
      // The copy takes this host's cluster's place (kept beside it).
      plan.push_back({"swap", "put the copy in place of this host's cluster (kept beside it)",
                      &MigrateJob::SwapCluster});
    } else {
      // The migrated database takes the live one's place (kept as previous).
      plan.push_back({"swap", "swap the migrated database in", &MigrateJob::Swap});
    }
    // The staged media moved into this host's media directory.
    plan.push_back({"media_move", "move the staged media in", &MigrateJob::MoveMediaIn});
    // The app's own migrations when its code is newer than the old host's.
    plan.push_back({"migrate", "run the app's database migrations", &MigrateJob::Migrate});
    // Home feeds live in Redis, which the database does not bring.
    plan.push_back(
        {"feeds", "rebuild the home feeds (tootctl feeds build --all)", &MigrateJob::BuildFeeds});
    // The app again, and that it answers: the end of the downtime.
    plan.push_back({"start_services", "start the app", &MigrateJob::StartServices});
    plan.push_back({"app_checks", "check that the app answers", &MigrateJob::CheckApp});
    return plan;
  }

  // The steps in order; with keep_following, a cut-over that failed before
  // its point of no return goes back to the follow step.
  absl::Status Run() {
    const std::vector<PlannedStep> plan = Plan(in_.physical);
    for (size_t i = 0; i < plan.size(); ++i) {
      absl::Status done = Step(plan[i]);
      if (done.ok()) continue;
      if (!FollowAgainAfter(done)) return done;
      while (std::string(plan[i].name) != "follow") --i;
      --i;  // the loop's ++i runs it again
    }
    KeepOldAppStopped();
    Report();
    return absl::OkStatus();
  }

  // After a failure or a cancel: before the swap, the follow is taken down
  // and this host is as it was; after it, the old host is the way back.
  void Undo(const absl::Status& failure) {
    if (in_.physical && !swapped_) TakeCopyDown();  // may find the swap done
    if (in_.physical && swapped_ && host_cluster_stopped_) {
      if (absl::Status started = StartHostCluster(); !started.ok()) {
        Warn(absl::StrCat("this host's PostgreSQL is stopped (", started.message(),
                          "): pg_ctlcluster ", cluster_.version, " ", cluster_.name, " start"));
      }
    }
    if (swapped_) {
      KeepOldAppStopped();
      Warn(absl::StrCat(
          in_.physical ? absl::StrCat("the old cluster's copy is live here (", data_dir_,
                                      "; the cluster it replaced is kept as ", Parent(data_dir_),
                                      "/", previous_name_, ")")
                       : absl::StrCat("the migrated database is live here (", in_.database, ")"),
          " but the migration did not finish: ", failure.message(),
          services_stopped_ ? ". This host's app is left stopped" : "",
          ". The old host is as it was at the cut-over: to go back, start its app again",
          in_.options.source_agent().empty()
              ? std::string()
              : absl::StrCat(" (on that host: mastodon-restore app-hold release ", op_->id(),
                             ")")));
      Report();
      return;
    }
    if (!in_.physical) TakeFollowDown(/*reversal=*/true).IgnoreError();
    if (!staging_.empty()) {
      DropStaged(in_.conninfo, staging_, staging_oid_);
      staging_.clear();
    }
    if (!media_staging_.empty()) {
      RemoveMediaStaging(media_staging_);
      op_->Journal([](v1::OperationRecord* r) { r->clear_media_journal(); }).IgnoreError();
    }
    if (services_stopped_ && in_.runtime != nullptr) {
      if (ControlServices(*in_.runtime, true, Task("start_services", false)).ok()) {
        SetServicesStopped(false).IgnoreError();
      }
    }
    if (old_app_held_) {
      ReleaseOldApp(/*keep_stopped=*/false).IgnoreError();
    } else if (cutover_begun_ && in_.options.source_agent().empty()) {
      Warn("the old database is as it was: start the old host's app again");
    }
    Report();
  }

 private:
  // Runs one step between its start and finish events; a skipped step
  // returns "skipped: why".
  absl::Status Step(const PlannedStep& planned) {
    const std::string step = planned.name;
    if (op_->cancel_token().cancelled()) return absl::CancelledError("cancelled");
    if (planned.commits) {
      if (absl::Status fp = MR_FAILPOINT("migrate.before_commit"); !fp.ok()) {
        op_->StepFinished(step, v1::STEP_STATE_FAILED, std::string(fp.message()));
        return fp;
      }
      committing_ = true;
    }
    op_->StepStarted(step);
    absl::StatusOr<std::string> done = (this->*planned.fn)();
    if (!done.ok()) {
      op_->StepFinished(
          step, absl::IsCancelled(done.status()) ? v1::STEP_STATE_CANCELLED : v1::STEP_STATE_FAILED,
          std::string(done.status().message()));
      return done.status();
    }
    const bool skipped = done->rfind("skipped: ", 0) == 0;
    op_->StepFinished(step, skipped ? v1::STEP_STATE_SKIPPED : v1::STEP_STATE_SUCCEEDED,
                      skipped ? done->substr(9) : *done);
    return absl::OkStatus();
  }

  // With keep_following, after a cut-over that failed before its point of
  // no return (not cancelled): the old app started again, and true: the
  // follow goes on. Otherwise false: the migration ends (and is undone).
  bool FollowAgainAfter(const absl::Status& failure) {
    if (!in_.options.keep_following() || !cutover_begun_ || committing_ ||
        absl::IsCancelled(failure) || op_->cancel_token().cancelled()) {
      return false;
    }
    cutover_begun_ = false;
    result_.set_failed_cutovers(result_.failed_cutovers() + 1);
    Warn(absl::StrCat("the cut-over failed before its point of no return (", failure.message(),
                      "): following the old database again, as asked (keep_following); ask "
                      "the cut-over again, or cancel to remove the copy"));
    if (old_app_held_) {
      ReleaseOldApp(/*keep_stopped=*/false).IgnoreError();
    } else if (in_.options.source_agent().empty()) {
      Warn("the old database is as it was: start the old host's app again");
    }
    StopAutoCutOver();
    PublishResult();
    return true;
  }

  // After an automatic cut-over failed or was refused (keep_following):
  // only CutOver starts the next one; an unattended loop would stop the
  // old app again and again.
  void StopAutoCutOver() {
    if (auto_cutover_ && in_.options.cutover_when_lag_below() > 0) {
      Warn(
          "the automatic cut-over is off after this failure: ask it with "
          "mastodon-restore ops cutover");
    }
    auto_cutover_ = false;
  }

  TaskContext Task(const std::string& step, bool cancellable) {
    TaskContext ctx;
    ctx.runner = env_.runner;
    ctx.env = env_.env;
    ctx.pg = env_.pg;
    ctx.cancel = cancellable ? &op_->cancel_token() : nullptr;
    ctx.reporter = op_;
    ctx.step = step;
    return ctx;
  }

  void Warn(const std::string& message) {
    result_.add_warnings(message);
    op_->Log(v1::SEVERITY_WARNING, message);
  }

  // Records the follow in the journal before it is created (recovery drops
  // the subscription before the staging database).
  absl::Status JournalDatabase(const std::function<void(v1::DatabaseJournal*)>& update) const {
    return op_->Journal([&](v1::OperationRecord* record) {
      v1::DatabaseJournal* j = record->mutable_database_journal();
      in_.journal.Fill(j);
      update(j);
    });
  }

  absl::StatusOr<std::unique_ptr<PgSession>> Source() {
    return env_.pg->Connect(in_.source_conninfo, in_.source_database);
  }
  // The copy: the staging database (logical), or the standby's (physical).
  absl::StatusOr<std::unique_ptr<PgSession>> Staging() {
    if (in_.physical) {
      if (standby_ == nullptr) return absl::FailedPreconditionError("the copy does not run");
      return env_.pg->Connect(standby_->ConnInfo(in_.database), in_.database);
    }
    return env_.pg->Connect(in_.conninfo, staging_);
  }

  absl::StatusOr<std::string> Preflight() {
    RETURN_IF_ERROR(CheckOldAgent());
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> source, Source());
    ASSIGN_OR_RETURN(facts_, ReadLogicalSourceFacts(source.get()));
    result_.set_method(v1::FOLLOW_METHOD_LOGICAL);
    RETURN_IF_ERROR(CheckLogicalSource(facts_));
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> target, env_.pg->Connect(in_.conninfo, "postgres"));
    const int source_major = facts_.server_version / 10000;
    target_version_ = target->server_version();
    result_.set_source_server_version(
        absl::StrCat(source_major, ".", facts_.server_version % 10000));
    result_.set_target_server_version(
        absl::StrCat(target_version_ / 10000, ".", target_version_ % 10000));
    if (target_version_ / 10000 < source_major) {
      return absl::FailedPreconditionError(
          absl::StrCat("this host's server is PostgreSQL ", target_version_ / 10000,
                       ", older than the old host's ", source_major,
                       ": migrate to the same major or a newer one"));
    }
    // This host's app must know every migration the old database ran: an
    // older Mastodon would run against a schema it does not understand.
    if (in_.runtime != nullptr && !in_.runtime->CodeDir().empty()) {
      auto version = ReadSchemaVersion(source.get());
      auto known = ListMigrations(in_.runtime->CodeDir(), env_.env);
      if (version.ok() && !version->empty() && known.ok()) {
        std::string newest;
        for (const auto* list : {&known->pre, &known->post}) {
          if (!list->empty()) newest = std::max(newest, list->back());
        }
        // Versions are timestamps of one length: they compare as text.
        if (!newest.empty() && version->size() == newest.size() && *version > newest) {
          return absl::FailedPreconditionError(
              absl::StrCat("the old database has run migration ", *version,
                           ", newer than any this host's "
                           "Mastodon knows (",
                           newest, " in ", in_.runtime->CodeDir(),
                           "): this host runs an older Mastodon; upgrade it first"));
        }
      }
    }
    // Room for the copy: the old database's size, and the floor every
    // restore leaves, on this server's data directory when it is local.
    auto data_dir = ServerDataDirectory(target.get());
    auto free = data_dir.ok() && !data_dir->empty() ? env_.env->FreeBytes(*data_dir)
                                                    : absl::StatusOr<int64_t>(0);
    if (data_dir.ok() && !data_dir->empty() && free.ok() &&
        *free < facts_.database_bytes + env_.space_floor.min_free_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "this host's PostgreSQL data directory ", *data_dir, " has ", Bytes(*free),
          " free; the old database is ", Bytes(facts_.database_bytes), " and ",
          Bytes(env_.space_floor.min_free_bytes), " must stay free (--free-space-floor)"));
    }
    // The schema comes from the oldest installed pg_dump that reads the old
    // server (its output is closest to what that server would write).
    for (int major : InstalledPostgresVersions(env_.env, env_.postgres_root, "pg_dump")) {
      if (major >= source_major) {
        pg_dump_ = absl::StrCat(env_.postgres_root, "/", major, "/bin/pg_dump");
        break;
      }
    }
    if (pg_dump_.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "no pg_dump of PostgreSQL ", source_major, " or newer under ", env_.postgres_root,
          " to read the old server's schema: install postgresql-client-", source_major));
    }
    ASSIGN_OR_RETURN(std::string media,
                     CheckMediaRoom(facts_.database_bytes, data_dir.ok() ? *data_dir : ""));
    if (!facts_.tables_without_identity.empty()) {
      op_->Log(v1::SEVERITY_INFO,
               absl::StrCat("tables without a primary key get REPLICA IDENTITY FULL on the old "
                            "server while followed: ",
                            absl::StrJoin(facts_.tables_without_identity, ", ")),
               "preflight");
    }
    return absl::StrCat("PostgreSQL ", result_.source_server_version(), " (",
                        Bytes(facts_.database_bytes), ", collation ", facts_.collation,
                        facts_.collation_version.empty() ? "" : " " + facts_.collation_version,
                        ") to ", result_.target_server_version(), " by logical replication", media);
  }

  // The old host's agent, when one is named: it answers, can hold its
  // app, runs one, and a Mastodon no newer than this host's.
  absl::Status CheckOldAgent() {
    if (in_.options.source_agent().empty()) return absl::OkStatus();
    if (env_.peers == nullptr) {
      return absl::FailedPreconditionError(
          "a source agent is named but this agent has no --peers-file");
    }
    ASSIGN_OR_RETURN(std::unique_ptr<PeerAgent> peer, env_.peers->Open(in_.options.source_agent()));
    peer_ = std::move(peer);
    ASSIGN_OR_RETURN(v1::GetAgentInfoResponse info, peer_->Info());
    const auto& caps = info.capabilities();
    if (std::find(caps.begin(), caps.end(), "app_hold") == caps.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the agent '", in_.options.source_agent(), "' (", info.build().version(),
                       ") cannot stop its app for a migration: upgrade it"));
    }
    if (info.runtime().kind() == v1::RUNTIME_KIND_UNSPECIFIED ||
        info.runtime().kind() == v1::RUNTIME_KIND_NONE ||
        info.runtime().kind() == v1::RUNTIME_KIND_EMBEDDED) {
      return absl::FailedPreconditionError(absl::StrCat("the agent '", in_.options.source_agent(),
                                                        "' runs no Mastodon app to stop"));
    }
    result_.set_source_runtime(
        absl::AsciiStrToLower(v1::RuntimeKind_Name(info.runtime().kind()).substr(13)));
    result_.set_source_mastodon_version(info.runtime().mastodon_version());
    const std::string here = in_.runtime != nullptr ? in_.runtime->MastodonVersion() : "";
    if (!here.empty() && NewerVersion(info.runtime().mastodon_version(), here)) {
      return absl::FailedPreconditionError(
          absl::StrCat("the old host runs Mastodon ", info.runtime().mastodon_version(),
                       ", newer than this host's ", here, ": upgrade this host first"));
    }
    RETURN_IF_ERROR(CheckMediaBucket(info.runtime().media_bucket()));
    if (CopiesMedia()) {
      if (std::find(caps.begin(), caps.end(), "media_export") == caps.end()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the agent '", in_.options.source_agent(),
            "' cannot send its media: upgrade it, or migrate without the media (skip_media)"));
      }
      ASSIGN_OR_RETURN(media_, ResolveRestoreMedia(v1::RestoreOptions(), env_));
      if (media_.dir.empty()) {
        return absl::FailedPreconditionError(
            "this host has no media directory to copy the old host's media into "
            "(--media-dir, or migrate without the media: skip_media)");
      }
    }
    for (const v1::AppHold& h : info.app_holds()) {
      if (h.state() == v1::APP_HOLD_STATE_HELD && h.id() != op_->id()) {
        return absl::FailedPreconditionError(absl::StrCat("the old host's app is already held by ",
                                                          h.holder(), " (hold ", h.id(), ")"));
      }
    }
    return absl::OkStatus();
  }

  // The old app keeps its media in a bucket (`old_bucket`, "" when not):
  // they are not in its media directory, so nothing can be copied. This
  // host's app using the same bucket has them already; any other would be
  // left without them, which is refused unless the media are not asked.
  absl::Status CheckMediaBucket(const std::string& old_bucket) {
    if (old_bucket.empty()) return absl::OkStatus();
    absl::StatusOr<std::string> here = in_.runtime != nullptr
                                           ? RuntimeMediaBucket(*in_.runtime, env_.env)
                                           : absl::StatusOr<std::string>(std::string());
    if (here.ok() && *here == old_bucket) {
      media_bucket_ = old_bucket;
      result_.set_media_bucket(old_bucket);
      return absl::OkStatus();
    }
    const std::string where = !here.ok()      ? absl::StrCat("has S3 settings that do not work (",
                                                             here.status().message(), ")")
                              : here->empty() ? std::string("keeps them in its media directory")
                                              : absl::StrCat("keeps them in ", *here);
    const std::string why =
        absl::StrCat("the old host's app keeps its media in object storage (", old_bucket,
                     "), not in its media directory; this host's app ", where);
    if (in_.options.skip_media()) {
      Warn(absl::StrCat(why,
                        ": give this host's app the old one's S3 settings, or its media are "
                        "missing here"));
      return absl::OkStatus();
    }
    return absl::FailedPreconditionError(absl::StrCat(
        why,
        ": give this host's app the old one's S3 settings (S3_ENABLED, S3_BUCKET, S3_ENDPOINT, "
        "the keys) so that both use the bucket, or migrate without the media (skip_media) and "
        "copy them yourself"));
  }

  // Stops the old app through its agent (journaled first: recovery starts
  // it again, or keeps it stopped once the swap committed).
  absl::Status HoldOldApp() {
    RETURN_IF_ERROR(op_->Journal([&](v1::OperationRecord* r) {
      r->mutable_peer_hold()->set_peer(in_.options.source_agent());
      r->mutable_peer_hold()->set_hold_id(op_->id());
    }));
    v1::HoldAppRequest hold;
    hold.set_id(op_->id());
    hold.set_holder(absl::StrCat("migration ", op_->id(), " on ", env_.env->Hostname()));
    old_app_held_ = true;
    ASSIGN_OR_RETURN(v1::AppHold held, peer_->HoldApp(hold));
    op_->Log(
        v1::SEVERITY_INFO,
        absl::StrCat("the old host's app is stopped (", absl::StrJoin(held.services(), ", "), ")"),
        "follow");
    return absl::OkStatus();
  }

  // Ends the hold on the old app: started again, or kept stopped for good.
  absl::Status ReleaseOldApp(bool keep_stopped) {
    v1::ReleaseAppRequest release;
    release.set_id(op_->id());
    release.set_keep_stopped(keep_stopped);
    absl::Status released = peer_->ReleaseApp(release).status();
    const bool never_held = absl::IsNotFound(released);
    if (never_held) released = absl::OkStatus();
    if (!released.ok()) {
      Warn(absl::StrCat("the old host's app ",
                        keep_stopped ? "must stay stopped" : "is still stopped", " (",
                        released.message(), "): on that host, mastodon-restore app-hold release ",
                        op_->id(), keep_stopped ? " --keep-stopped" : ""));
      return released;
    }
    old_app_held_ = false;
    if (!never_held) {
      result_.set_source_app(keep_stopped ? "kept stopped" : "started again");
      if (!keep_stopped)
        Warn("the old database is as it was; the old host's app was started again");
    }
    return op_->Journal([](v1::OperationRecord* r) { r->clear_peer_hold(); });
  }

  // The swap done: recovery keeps the old app stopped from here on.
  absl::Status JournalOldAppKeptStopped() {
    return op_->Journal([](v1::OperationRecord* r) {
      if (r->has_peer_hold()) r->mutable_peer_hold()->set_keep_stopped(true);
    });
  }

  // Once the instance lives here (after the swap), the old app's hold ends
  // kept stopped for good. Done at the end, after this app answers: an old
  // agent slow to answer must not lengthen the downtime (the journal
  // already says keep_stopped, for recovery). A failure is said.
  void KeepOldAppStopped() {
    if (old_app_held_) ReleaseOldApp(/*keep_stopped=*/true).IgnoreError();
  }

  absl::Status SetServicesStopped(bool stopped) {
    services_stopped_ = stopped;
    return op_->Journal([stopped](v1::OperationRecord* r) { r->set_services_stopped(stopped); });
  }

  // The old app stopped: by its agent, when one is named; otherwise by the
  // admin, which the sessions on the old database tell. "" when the
  // cut-over may begin, else why not (the hold then released again).
  absl::StatusOr<std::string> OldAppStopped(PgSession* source) {
    if (!in_.options.source_agent().empty()) {
      absl::Status held = HoldOldApp();
      if (!held.ok()) {
        // A call that timed out may have placed the hold: undone (one never
        // placed is NOT_FOUND there, and nothing to say).
        if (absl::IsDeadlineExceeded(held)) {
          ReleaseOldApp(/*keep_stopped=*/false).IgnoreError();
        }
        old_app_held_ = false;
        return absl::StrCat("unable to stop the old host's app: ", held.message());
      }
    }
    // Its sessions end as its processes exit.
    const absl::Time drain_until =
        env_.env->Now() + (old_app_held_ ? kSessionsDrain : absl::ZeroDuration());
    std::vector<std::string> sessions;
    while (true) {
      ASSIGN_OR_RETURN(sessions, OtherSessions(source));
      if (sessions.empty() || env_.env->Now() >= drain_until) break;
      if (op_->cancel_token().WaitFor(kCutOverPoll)) return absl::CancelledError("cancelled");
    }
    if (sessions.empty()) return std::string();
    if (in_.options.ignore_source_sessions()) {
      Warn(absl::StrCat("cut over with sessions still on the old database: ",
                        absl::StrJoin(sessions, ", ")));
      return std::string();
    }
    if (old_app_held_) ReleaseOldApp(/*keep_stopped=*/false).IgnoreError();
    return absl::StrCat(in_.options.source_agent().empty()
                            ? "the old app still has sessions on the old database: "
                            : "sessions are left on the old database with its app stopped: ",
                        absl::StrJoin(sessions, ", "));
  }

  bool CopiesMedia() const {
    return !in_.options.source_agent().empty() && !in_.options.skip_media() &&
           media_bucket_.empty();
  }

  // With the media copied: the old host's media tree listed once, and room
  // for it beside this host's media directory (and for the database's copy
  // of `copy_bytes` too when `copy_dir` is on the same filesystem), before
  // anything is copied. "" without media, else ", media <size> in <n>
  // files" for the preflight's summary.
  absl::StatusOr<std::string> CheckMediaRoom(int64_t copy_bytes, const std::string& copy_dir) {
    if (!CopiesMedia()) return std::string();
    ASSIGN_OR_RETURN(
        v1::BackupManifest manifest,
        InspectBackup(OldMediaName(), OldMediaSource(nullptr), InspectOptions(), env_.runner));
    const v1::MediaInventory& media = manifest.media();
    // The media directory's parent holds the staging directory; one not
    // made yet is looked at by the media step.
    const std::string parent = Parent(media_.dir);
    auto free = env_.env->FreeBytes(parent);
    if (free.ok()) {
      const bool shared = !copy_dir.empty() && SameFilesystem(parent, copy_dir);
      const int64_t need =
          media.bytes() + (shared ? copy_bytes : 0) + env_.space_floor.min_free_bytes;
      if (*free < need) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "this host's media directory ", media_.dir, " has ", Bytes(*free),
            " free; the old host's media are ", Bytes(media.bytes()), " in ", media.files(),
            " files",
            shared ? absl::StrCat(", the database's copy ", Bytes(copy_bytes),
                                  " on the same filesystem")
                   : std::string(),
            ", and ", Bytes(env_.space_floor.min_free_bytes),
            " must stay free (--free-space-floor): make room, or migrate without the media "
            "(skip_media)"));
      }
    }
    return absl::StrCat(", media ", Bytes(media.bytes()), " in ", media.files(), " files");
  }

  // The old host's media directory, through its agent, as the source of a
  // media restore (its reads capped by `rate`; null: no cap), and its name.
  // With `sha256`, the listing gives each file's SHA-256: the media restore
  // then checks what arrives against it, and takes a file already here
  // with that content as unchanged, whatever its mtime.
  SourceOptions OldMediaSource(std::shared_ptr<RateLimiter> rate, bool sha256 = false) {
    SourceOptions source;
    source.bucket = NewPeerMediaStore(peer_, in_.options.source_agent(), std::move(rate), sha256);
    source.cancel = &op_->cancel_token();
    return source;
  }
  std::string OldMediaName() const { return absl::StrCat("agent:", in_.options.source_agent()); }

  // Whether two existing paths lie on one filesystem (false when either
  // cannot be opened).
  static bool SameFilesystem(const std::string& a, const std::string& b) {
    auto da = Dir::OpenPath(a);
    auto db = Dir::OpenPath(b);
    if (!da.ok() || !db.ok()) return false;
    auto sa = da->StatSelf();
    auto sb = db->StatSelf();
    return sa.ok() && sb.ok() && sa->st_dev == sb->st_dev;
  }

  // One pass over the old host's media: what is not staged yet, or changed,
  // is read into a new staging directory that takes the last one over (and
  // drops what the old host no longer has); nothing is moved in.
  absl::StatusOr<MediaRestoreResult> MediaPass(const std::string& step) {
    MediaRestoreOptions o;
    o.source_path = OldMediaName();
    // Counted without the hashes (the pass's own listing asks for them).
    ASSIGN_OR_RETURN(
        v1::BackupManifest manifest,
        InspectBackup(o.source_path, OldMediaSource(nullptr), InspectOptions(), env_.runner));
    o.source = OldMediaSource(media_rate_, /*sha256=*/true);
    o.inventory = manifest.media();
    if (o.inventory.files() == 0) return MediaRestoreResult();
    o.target_dir = media_.dir;
    o.uid = media_.uid;
    o.gid = media_.gid;
    o.space_floor = env_.space_floor;
    o.stage_only = true;
    o.cancel = &op_->cancel_token();
    o.operation_id = absl::StrFormat("%s-pass%02d", op_->id(), ++media_passes_);
    const std::string staging = MediaStagingDir(media_.dir, o.operation_id);
    o.journal = [this, staging](bool) {
      media_staging_ = staging;
      return JournalMedia(v1::MEDIA_PHASE_EXTRACTING);
    };
    absl::Time last = absl::InfinitePast();
    o.progress = [&](int64_t files, int64_t bytes, int64_t total_files, int64_t total_bytes) {
      if (env_.env->Now() - last < kReportEvery) return;
      last = env_.env->Now();
      op_->StepProgress(step, bytes, total_bytes, "bytes",
                        absl::StrCat(files, " of ", total_files, " files"));
    };
    return RestoreMedia(o, env_.runner, env_.env);
  }

  absl::Status JournalMedia(v1::MediaPhase phase) {
    return op_->Journal([&](v1::OperationRecord* r) {
      v1::MediaJournal* m = r->mutable_media_journal();
      m->set_phase(phase);
      m->set_staging_dir(media_staging_);
      m->set_target_dir(media_.dir);
      m->set_uid(media_.uid.has_value() ? static_cast<int64_t>(*media_.uid) : -1);
      m->set_gid(media_.gid.has_value() ? static_cast<int64_t>(*media_.gid) : -1);
    });
  }

  // What a pass read (files it staged in an earlier pass count as
  // unchanged).
  static int64_t FilesRead(const MediaRestoreResult& m) {
    return m.files_written - m.files_resumed;
  }
  static int64_t BytesRead(const MediaRestoreResult& m) {
    return m.bytes_written - m.bytes_resumed;
  }

  static std::string MediaSummary(const MediaRestoreResult& m, absl::Duration took) {
    const double seconds = std::max(absl::ToDoubleSeconds(took), 0.001);
    return absl::StrFormat("%d files, %s read (%s/s), %d unchanged", FilesRead(m),
                           Bytes(BytesRead(m)), Bytes(static_cast<int64_t>(BytesRead(m) / seconds)),
                           m.files_resumed + m.files_skipped);
  }

  absl::StatusOr<std::string> CopyMedia() {
    if (!CopiesMedia()) {
      if (!media_bucket_.empty()) {
        PublishResult();  // the bucket shows while following
        return absl::StrCat("skipped: both apps keep the media in the bucket ", media_bucket_);
      }
      return std::string(in_.options.source_agent().empty() ? "skipped: no source agent"
                                                            : "skipped: not asked");
    }
    const absl::Time start = env_.env->Now();
    if (in_.options.media_bandwidth_limit() > 0) {
      media_rate_ = std::make_shared<RateLimiter>(in_.options.media_bandwidth_limit());
    }
    ASSIGN_OR_RETURN(MediaRestoreResult m, MediaPass("media"));
    const absl::Duration took = env_.env->Now() - start;
    last_media_pass_ = env_.env->Now();
    result_.set_media_files(FilesRead(m));
    result_.set_media_bytes(BytesRead(m));
    result_.set_media_seconds(absl::ToDoubleSeconds(took));
    result_.set_media_passes(1);
    PublishResult();
    if (media_staging_.empty()) return std::string("skipped: the old host has no media");
    return absl::StrCat(MediaSummary(m, took), "; staged beside ", media_.dir);
  }

  // While following: another pass when one is due (media_pass_every). A
  // pass that fails (the old agent unreachable, a file changed while
  // read) is a warning: the next one, or the cut-over's, reads it again.
  void MediaPassWhileFollowing() {
    const int every = in_.options.media_pass_every_seconds();
    if (!CopiesMedia() || every <= 0 || env_.env->Now() - last_media_pass_ < absl::Seconds(every)) {
      return;
    }
    const absl::Time pass_start = env_.env->Now();
    absl::StatusOr<MediaRestoreResult> m = MediaPass("follow");
    last_media_pass_ = env_.env->Now();
    if (!m.ok()) {
      // Said once while the same failure lasts.
      if (!op_->cancel_token().cancelled() && media_pass_failure_ != m.status().message()) {
        media_pass_failure_ = std::string(m.status().message());
        Warn(absl::StrCat("a media pass failed (the next one reads it again): ",
                          media_pass_failure_));
      }
      return;
    }
    media_pass_failure_.clear();
    result_.set_media_passes(result_.media_passes() + 1);
    PublishResult();
    op_->Log(v1::SEVERITY_INFO,
             absl::StrCat("media pass ", result_.media_passes(), ": ",
                          MediaSummary(*m, env_.env->Now() - pass_start)),
             "follow");
  }

  absl::StatusOr<std::string> CopyMediaDelta() {
    if (!CopiesMedia()) return std::string("skipped: no media copied");
    const absl::Time start = env_.env->Now();
    ASSIGN_OR_RETURN(MediaRestoreResult m, MediaPass("media_delta"));
    const absl::Duration took = env_.env->Now() - start;
    result_.set_media_delta_files(FilesRead(m));
    result_.set_media_delta_bytes(BytesRead(m));
    result_.set_media_delta_seconds(absl::ToDoubleSeconds(took));
    if (media_staging_.empty()) return std::string("skipped: the old host has no media");
    return MediaSummary(m, took);
  }

  absl::StatusOr<std::string> MoveMediaIn() {
    if (media_staging_.empty()) return std::string("skipped: no media staged");
    RETURN_IF_ERROR(JournalMedia(v1::MEDIA_PHASE_MOVING));
    ASSIGN_OR_RETURN(int64_t moved,
                     CompleteMediaMove(media_staging_, media_.dir, media_.uid, media_.gid));
    media_staging_.clear();
    RETURN_IF_ERROR(op_->Journal([](v1::OperationRecord* r) { r->clear_media_journal(); }));
    return absl::StrCat(moved, " files moved into ", media_.dir);
  }

  // --- The physical follow ---

  absl::Status JournalCluster(v1::ClusterPhase phase) {
    return op_->Journal([&](v1::OperationRecord* r) {
      v1::ClusterJournal* c = r->mutable_cluster_journal();
      c->set_phase(phase);
      c->set_copy_dir(copy_dir_);
      c->set_data_dir(data_dir_);
      c->set_previous_name(previous_name_);
      c->set_cluster(cluster_.ToString());
      c->set_slot(name_);
    });
  }

  absl::StatusOr<std::string> PhysicalPreflight() {
    RETURN_IF_ERROR(CheckOldAgent());
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> source, Source());
    ASSIGN_OR_RETURN(PhysicalFacts there, ReadPhysicalFacts(source.get()));
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> target, env_.pg->Connect(in_.conninfo, "postgres"));
    ASSIGN_OR_RETURN(PhysicalFacts here, ReadPhysicalFacts(target.get()));
    result_.set_source_server_version(
        absl::StrCat(there.server_version / 10000, ".", there.server_version % 10000));
    result_.set_target_server_version(
        absl::StrCat(here.server_version / 10000, ".", here.server_version % 10000));
    auto version =
        CollationLibraryVersion(target.get(), there.collation_provider, there.collation_locale);
    RETURN_IF_ERROR(CheckPhysicalFollow(there, here, version.ok() ? *version : "?"));
    // This host's cluster: one the agent may stop, start and replace.
    auto cluster = ParseDebianCluster(here.cluster_name);
    if (!cluster.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("this host's PostgreSQL is not a Debian cluster the agent can stop and "
                       "start (",
                       cluster.status().message(), "): migrate by logical replication"));
    }
    cluster_ = *cluster;
    if (here.data_directory.empty()) {
      return absl::FailedPreconditionError(
          "this host's data directory cannot be read (the role is no superuser)");
    }
    // Renames happen in its parent directory: that must lie inside a root.
    ASSIGN_OR_RETURN(data_dir_, ResolveAllowedPath(here.data_directory, env_.cluster_data_roots));
    auto parent = ResolveAllowedPath(Parent(data_dir_), env_.cluster_data_roots);
    if (!parent.ok()) {
      return absl::PermissionDeniedError(absl::StrCat("this host's data directory ", data_dir_,
                                                      " is not inside the agent's "
                                                      "--cluster-data-root (",
                                                      absl::StrJoin(env_.cluster_data_roots, ", "),
                                                      ")"));
    }
    // Every database of this cluster is replaced by the old cluster's.
    std::vector<std::string> others;
    for (const std::string& db : here.databases) {
      if (db != "postgres" && db != in_.database) others.push_back(db);
    }
    if (!others.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "this host's cluster holds other databases (", absl::StrJoin(others, ", "),
          ") that a physical copy of the old cluster would replace: migrate by logical "
          "replication"));
    }
    if (in_.database != in_.source_database) {
      return absl::FailedPreconditionError(absl::StrCat(
          "this host's app uses the database ", in_.database, ", the old one ", in_.source_database,
          ": a physical copy keeps the old cluster's names; name it in the app's "
          "configuration, or migrate by logical replication"));
    }
    const int major = here.server_version / 10000;
    const std::string bin = absl::StrCat(env_.postgres_root, "/", major, "/bin");
    for (const char* tool : {"pg_basebackup", "postgres"}) {
      if (!env_.env->Exists(absl::StrCat(bin, "/", tool))) {
        return absl::FailedPreconditionError(absl::StrCat(
            "no ", tool, " of PostgreSQL ", major, " in ", bin, ": install postgresql-", major));
      }
    }
    bin_dir_ = bin;
    // Room for the copy of the whole old cluster beside this one.
    auto free = env_.env->FreeBytes(data_dir_);
    if (free.ok() && *free < there.cluster_bytes + env_.space_floor.min_free_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "this host's PostgreSQL data directory ", data_dir_, " has ", Bytes(*free),
          " free; the old cluster is ", Bytes(there.cluster_bytes), " and ",
          Bytes(env_.space_floor.min_free_bytes), " must stay free (--free-space-floor)"));
    }
    ASSIGN_OR_RETURN(Dir data, Dir::OpenPath(data_dir_));
    ASSIGN_OR_RETURN(struct stat owner, data.StatSelf());
    cluster_uid_ = owner.st_uid;
    cluster_gid_ = owner.st_gid;
    ASSIGN_OR_RETURN(std::string media, CheckMediaRoom(there.cluster_bytes, data_dir_));
    copy_dir_ = ClusterCopyDir(data_dir_, op_->id());
    previous_name_ = PreviousClusterName(data_dir_, op_->id());
    cluster_bytes_ = there.cluster_bytes;
    bootstrap_superuser_ = there.bootstrap_superuser;
    result_.set_method(v1::FOLLOW_METHOD_PHYSICAL);
    return absl::StrCat("PostgreSQL ", result_.source_server_version(), " (",
                        Bytes(there.cluster_bytes), ", collation ", there.collation_locale,
                        there.collation_version.empty() ? "" : " " + there.collation_version,
                        ") to this host's cluster ", cluster_.ToString(),
                        " by physical replication", media);
  }

  absl::StatusOr<std::string> BaseBackup() {
    const absl::Time start = env_.env->Now();
    RETURN_IF_ERROR(JournalCluster(v1::CLUSTER_PHASE_COPYING));
    copy_created_ = true;
    RETURN_IF_ERROR(CreateClusterCopyDir(copy_dir_, cluster_uid_, cluster_gid_, StandbyHbaConf()));
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> source, Source());
    slot_created_ = true;
    RETURN_IF_ERROR(CreatePhysicalSlot(source.get(), name_));
    ASSIGN_OR_RETURN(CommandSpec backup,
                     BaseBackupCommand(absl::StrCat(bin_dir_, "/pg_basebackup"),
                                       in_.source_conninfo, name_, copy_dir_ + "/data"));
    backup.uid = cluster_uid_;
    backup.gid = cluster_gid_;
    backup.cwd = copy_dir_;
    int64_t total_kb = 0;
    absl::Time last = absl::InfinitePast();
    backup.on_line = [&](absl::string_view line, bool) {
      int64_t done = 0, total = 0;
      if (!ParseBaseBackupProgress(std::string(line), &done, &total)) return;
      total_kb = total;
      if (env_.env->Now() - last < kReportEvery) return;
      last = env_.env->Now();
      op_->StepProgress("base_backup", done * 1024, total * 1024, "bytes", "");
    };
    ASSIGN_OR_RETURN(CommandResult copied, env_.runner->Run(backup, &op_->cancel_token()));
    if (copied.exit_code != 0) {
      return absl::UnavailableError(
          absl::StrCat("unable to copy the old cluster (pg_basebackup ", copied.Describe(),
                       "): ", ScrubCredentialFiles(LastLines(copied.stderr_text, 5))));
    }
    RETURN_IF_ERROR(PrepareClusterCopy(copy_dir_));
    const absl::Duration took = env_.env->Now() - start;
    result_.set_base_backup_bytes(total_kb > 0 ? total_kb * 1024 : cluster_bytes_);
    result_.set_base_backup_seconds(absl::ToDoubleSeconds(took));
    return absl::StrFormat("%s copied in %s into %s", Bytes(result_.base_backup_bytes()),
                           absl::FormatDuration(absl::Trunc(took, absl::Milliseconds(100))),
                           copy_dir_);
  }

  absl::StatusOr<std::string> StartStandby() {
    LocalClusterOptions o;
    o.bin_dir = bin_dir_;
    o.base_dir = copy_dir_;
    o.listen_tcp = false;
    o.uid = cluster_uid_;
    o.gid = cluster_gid_;
    o.settings = {absl::StrCat("hba_file=", copy_dir_, "/standby-hba.conf"), "hot_standby=on"};
    // The standby never outlives the agent (recovery removes the copy).
    o.stop_with_parent = true;
    o.superuser = bootstrap_superuser_;
    ASSIGN_OR_RETURN(o.socket_dir, CreateStandbySocketDir(op_->id(), cluster_uid_, cluster_gid_));
    ASSIGN_OR_RETURN(standby_, LocalCluster::Start(o, env_.runner, env_.env));
    // Streaming: the WAL receiver connected to the old server.
    const absl::Time deadline = env_.env->Now() + absl::Minutes(2);
    absl::StatusOr<StandbyProgress> p = absl::UnknownError("not read");
    while (true) {
      ASSIGN_OR_RETURN(std::unique_ptr<PgSession> source, Source());
      ASSIGN_OR_RETURN(std::unique_ptr<PgSession> standby, Staging());
      p = ReadStandbyProgress(source.get(), standby.get(), name_);
      if (p.ok() && p->streaming) break;
      if (env_.env->Now() >= deadline) {
        return absl::UnavailableError(absl::StrCat(
            "the copy does not stream from the old server (its log: ", standby_->LogTail(1500),
            ")"));
      }
      if (op_->cancel_token().WaitFor(kPoll)) return absl::CancelledError("cancelled");
    }
    return absl::StrCat("streaming from the old server, ", Bytes(p->lag_bytes), " behind");
  }

  absl::StatusOr<std::string> Promote() {
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> standby, Staging());
    RETURN_IF_ERROR(PromoteStandby(standby.get()));
    // Its walsender gone, the slot can go: the old server keeps no WAL for
    // this host any more.
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> source, Source());
    absl::Status dropped;
    for (int i = 0; i < 1000; ++i) {
      dropped = DropFollowSlot(source.get(), name_);
      if (!absl::IsFailedPrecondition(dropped)) break;
      if (op_->cancel_token().WaitFor(kCutOverPoll)) return absl::CancelledError("cancelled");
    }
    RETURN_IF_ERROR(dropped);
    slot_created_ = false;
    return absl::StrCat("the copy is a primary; slot ", name_, " dropped on the old server");
  }

  absl::StatusOr<std::string> SwapCluster() {
    // The copy's server stops cleanly (its checkpoint), then this host's.
    RETURN_IF_ERROR(StopStandby());
    RETURN_IF_ERROR(JournalCluster(v1::CLUSTER_PHASE_SWAPPING));
    host_cluster_stopped_ = true;
    RETURN_IF_ERROR(ControlCluster(cluster_, /*start=*/false, env_.host_path, env_.runner));
    RETURN_IF_ERROR(SwapInClusterCopy(data_dir_, copy_dir_, previous_name_));
    // The swap is done: from here the old host's app stays stopped. The
    // cluster part of the journal stays until this host's cluster runs
    // again (recovery completes the swap and starts it).
    swapped_ = true;
    copy_created_ = false;
    RETURN_IF_ERROR(JournalOldAppKeptStopped());
    result_.set_data_directory(data_dir_);
    result_.set_previous_data_directory(absl::StrCat(Parent(data_dir_), "/", previous_name_));
    RETURN_IF_ERROR(StartHostCluster());
    result_.set_database(in_.database);
    return absl::StrCat("this host's cluster ", cluster_.ToString(),
                        " runs the old one's copy; the cluster it replaced is kept as ",
                        result_.previous_data_directory());
  }

  // The copy's server stopped, and its socket directory removed.
  absl::Status StopStandby() {
    if (standby_ != nullptr) {
      RETURN_IF_ERROR(standby_->Stop());
      standby_.reset();
    }
    return RemoveStandbySocketDirs(op_->id());
  }

  // This host's cluster started again (after the swap, or when it is
  // undone) and answering; the cluster part of the journal then goes.
  absl::Status StartHostCluster() {
    RETURN_IF_ERROR(ControlCluster(cluster_, /*start=*/true, env_.host_path, env_.runner));
    const absl::Time deadline = env_.env->Now() + absl::Minutes(2);
    while (true) {
      auto session = env_.pg->Connect(in_.conninfo, "postgres");
      if (session.ok()) break;
      if (env_.env->Now() >= deadline) {
        return absl::UnavailableError(
            absl::StrCat("this host's PostgreSQL does not answer: ", session.status().message()));
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    host_cluster_stopped_ = false;
    return op_->Journal([](v1::OperationRecord* r) { r->clear_cluster_journal(); });
  }

  // Undoes the physical follow before the swap: the copy's server stopped,
  // the copy removed, the slot dropped on the old server; a swap that had
  // begun is settled from the directories and this host's cluster started.
  void TakeCopyDown() {
    StopStandby().IgnoreError();
    bool settled = true;
    if (host_cluster_stopped_) {
      auto live = SettleClusterSwap(data_dir_, copy_dir_, previous_name_);
      if (!live.ok()) {
        Warn(absl::StrCat("settling the cluster swap: ", live.status().message()));
        return;
      }
      swapped_ = *live;
      copy_created_ = false;
      if (absl::Status started = StartHostCluster(); !started.ok()) {
        Warn(absl::StrCat("this host's PostgreSQL is stopped (", started.message(),
                          "): pg_ctlcluster ", cluster_.version, " ", cluster_.name, " start"));
      }
      if (swapped_) return;
    } else if (copy_created_) {
      absl::Status removed = RemoveClusterCopy(copy_dir_);
      settled = removed.ok();
      if (!removed.ok()) Warn(absl::StrCat("removing the copy: ", removed.message()));
    }
    if (slot_created_) {
      auto source = Source();
      absl::Status dropped = source.ok() ? DropFollowSlot(source->get(), name_) : source.status();
      if (dropped.ok()) {
        slot_created_ = false;
      } else {
        Warn(absl::StrCat("the old server keeps the replication slot ", name_,
                          ", which holds its WAL: SELECT pg_drop_replication_slot('", name_,
                          "') there"));
      }
    }
    if (settled) {
      copy_created_ = false;
      op_->Journal([](v1::OperationRecord* r) { r->clear_cluster_journal(); }).IgnoreError();
    }
  }

  absl::StatusOr<std::string> CopySchema() {
    const std::string schema = absl::StrCat(env_.scratch_dir, "/", op_->id(), ".schema.sql");
    ASSIGN_OR_RETURN(CommandSpec dump,
                     SchemaDumpCommand(pg_dump_, in_.source_conninfo, in_.source_database, schema));
    auto dumped = env_.runner->Run(dump, &op_->cancel_token());
    struct Remove {
      Env* env;
      std::string path;
      ~Remove() { env->RemoveFile(path).IgnoreError(); }
    } remove{env_.env, schema};
    RETURN_IF_ERROR(dumped.status());
    if (dumped->exit_code != 0) {
      return absl::UnavailableError(absl::StrCat("unable to dump the old database's schema: ",
                                                 ScrubCredentialFiles(dumped->stderr_text)));
    }
    DatabaseRestoreRequest r = Request();
    r.source_path = schema;
    r.source.allowed_roots = {env_.scratch_dir};
    r.source.cancel = &op_->cancel_token();
    ASSIGN_OR_RETURN(DumpToRestore detected,
                     DetectDumpToRestore(schema, "", "", r.source, InspectOptions(), env_.runner));
    r.dump = detected.dump;
    ASSIGN_OR_RETURN(staged_, StageDatabase(r, env_.runner, env_.env));
    staging_ = staged_.staging_database;
    staging_oid_ = staged_.staging_oid;
    return absl::StrCat(staged_.load.statements, " statements into ", staging_);
  }

  absl::StatusOr<std::string> Subscribe() {
    RETURN_IF_ERROR(JournalDatabase([&](v1::DatabaseJournal* j) {
      j->set_follow_name(name_);
      for (const std::string& t : facts_.tables_without_identity) j->add_replica_identity_full(t);
    }));
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> source, Source());
    follow_created_ = true;
    identities_ = facts_.tables_without_identity;
    RETURN_IF_ERROR(SetReplicaIdentityFull(source.get(), identities_));
    for (const std::string& t : identities_) result_.add_replica_identity_full(t);
    RETURN_IF_ERROR(CreateFollowPublication(source.get(), name_));
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> staging, Staging());
    RETURN_IF_ERROR(
        CreateFollowSubscription(staging.get(), name_, in_.source_conninfo, in_.source_database));
    return absl::StrCat("publication and subscription ", name_);
  }

  // Reads the follow's progress; a new error count is a warning.
  absl::StatusOr<FollowProgress> Progress(PgSession* source, PgSession* staging) {
    if (in_.physical) {
      ASSIGN_OR_RETURN(StandbyProgress s, ReadStandbyProgress(source, staging, name_));
      FollowProgress p;
      p.tables = p.tables_ready = 1;
      p.source_lsn = s.source_lsn;
      p.confirmed_lsn = s.replay_lsn;
      p.lag_bytes = s.lag_bytes;
      p.lag_seconds = s.lag_seconds;
      return p;
    }
    ASSIGN_OR_RETURN(FollowProgress p, ReadFollowProgress(source, staging, name_));
    if (p.errors > errors_) {
      errors_ = p.errors;
      Warn(absl::StrCat("the subscription reports ", p.errors,
                        " error(s) so far; this host's PostgreSQL log says why"));
    }
    return p;
  }

  std::string Lag(const FollowProgress& p) const {
    return absl::StrCat(Bytes(p.lag_bytes), " behind",
                        p.lag_seconds >= 0 ? absl::StrFormat(" (%.1f s)", p.lag_seconds) : "");
  }

  // The follow's progress on sessions kept across polls: a session that
  // failed is opened again at the next poll, so that the follow outlives a
  // restart of either server or a broken link. The first error of an
  // outage is a warning; while it lasts, `unreachable_` says why.
  absl::StatusOr<FollowProgress> Poll(std::unique_ptr<PgSession>* source,
                                      std::unique_ptr<PgSession>* staging) {
    absl::StatusOr<FollowProgress> p = absl::UnknownError("not read");
    if (*source == nullptr) {
      auto s = Source();
      if (s.ok()) {
        *source = std::move(*s);
      } else {
        p = s.status();
      }
    }
    if (*source != nullptr && *staging == nullptr) {
      auto s = Staging();
      if (s.ok()) {
        *staging = std::move(*s);
      } else {
        p = s.status();
      }
    }
    if (*source != nullptr && *staging != nullptr) {
      p = Progress(source->get(), staging->get());
      if (!p.ok()) {
        source->reset();
        staging->reset();
      }
    }
    if (p.ok()) {
      if (!unreachable_.empty()) op_->Log(v1::SEVERITY_INFO, "both servers answer again");
      unreachable_.clear();
    } else if (unreachable_.empty()) {
      unreachable_ = std::string(p.status().message());
      Warn(absl::StrCat("following goes on when the servers answer again: ", unreachable_));
    }
    return p;
  }

  absl::StatusOr<std::string> InitialCopy() {
    std::unique_ptr<PgSession> source, staging;
    absl::Time last = absl::InfinitePast();
    while (true) {
      absl::StatusOr<FollowProgress> p = Poll(&source, &staging);
      if (p.ok() && p->initial_copy_done()) {
        result_.set_tables(p->tables);
        return absl::StrCat(p->tables, " tables copied; ", Lag(*p));
      }
      if (env_.env->Now() - last >= kReportEvery) {
        last = env_.env->Now();
        if (p.ok()) {
          op_->StepProgress("copy", p->tables_ready, p->tables, "tables", Lag(*p));
        } else {
          op_->StepProgress("copy", 0, 0, "", absl::StrCat("unreachable: ", p.status().message()));
        }
      }
      if (op_->cancel_token().WaitFor(kPoll)) return absl::CancelledError("cancelled");
    }
  }

  // True when the cut-over should begin: asked (again, after a refusal),
  // or the lag below the threshold.
  bool CutOverDue(const FollowProgress& p) const {
    if (op_->cutover_requests() > cutovers_handled_) return true;
    const int64_t below = in_.options.cutover_when_lag_below();
    return auto_cutover_ && below > 0 && p.lag_bytes >= 0 && p.lag_bytes < below;
  }

  absl::StatusOr<std::string> Follow() {
    std::unique_ptr<PgSession> source, staging;
    op_->MarkFollowing(absl::StrCat(
        "following the old database; cut over with: mastodon-restore ops cutover ", op_->id()));
    absl::Time last = absl::InfinitePast();
    while (true) {
      absl::StatusOr<FollowProgress> polled = Poll(&source, &staging);
      if (!polled.ok()) {
        // A cut-over needs both servers: asked now, it cannot begin (with
        // keep_following it is refused and the follow goes on).
        if (op_->cutover_requests() > cutovers_handled_) {
          if (!in_.options.keep_following()) {
            return absl::UnavailableError(
                absl::StrCat("unable to cut over: ", polled.status().message()));
          }
          cutovers_handled_ = op_->cutover_requests();
          refusal_ = absl::StrCat("cut-over refused: ", polled.status().message(),
                                  "; ask again once both servers answer");
          Warn(refusal_);
        }
        if (env_.env->Now() - last >= kReportEvery) {
          last = env_.env->Now();
          op_->StepProgress("follow", 0, 0, "",
                            absl::StrCat("unreachable: ", polled.status().message()));
        }
        if (op_->cancel_token().WaitFor(kPoll)) return absl::CancelledError("cancelled");
        continue;
      }
      const FollowProgress& p = *polled;
      if (CutOverDue(p)) {
        cutovers_handled_ = op_->cutover_requests();
        // The old app must be stopped: what it writes from now on would be
        // lost. The downtime starts here.
        const absl::Time start = env_.env->Now();
        ASSIGN_OR_RETURN(std::string not_stopped, OldAppStopped(source.get()));
        if (not_stopped.empty()) {
          cutover_begun_ = true;
          cutover_start_ = start;
          result_.set_lag_bytes_at_cutover(p.lag_bytes);
          op_->MarkCutOverBegun("cut-over");
          return absl::StrCat("followed; ", Lag(p), " at the cut-over");
        }
        refusal_ = absl::StrCat("cut-over refused: ", not_stopped,
                                in_.options.source_agent().empty()
                                    ? "; stop it, then ask again (or set ignore_source_sessions)"
                                    : "; ask again (or set ignore_source_sessions)");
        Warn(refusal_);
        last = absl::InfinitePast();
        if (auto_cutover_ && in_.options.cutover_when_lag_below() > 0) {
          if (!in_.options.keep_following()) return absl::FailedPreconditionError(not_stopped);
          StopAutoCutOver();
        }
      }
      if (env_.env->Now() - last >= kReportEvery) {
        last = env_.env->Now();
        op_->StepProgress("follow", 0, 0, "",
                          refusal_.empty() ? Lag(p) : absl::StrCat(Lag(p), "; ", refusal_));
      }
      MediaPassWhileFollowing();
      if (op_->cancel_token().WaitFor(kPoll)) return absl::CancelledError("cancelled");
    }
  }

  absl::StatusOr<std::string> CatchUp() {
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> source, Source());
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> staging, Staging());
    ASSIGN_OR_RETURN(int64_t end, SourceWalPosition(source.get()));
    const absl::Time deadline = env_.env->Now() + kCatchUpTimeout;
    while (true) {
      ASSIGN_OR_RETURN(FollowProgress p, Progress(source.get(), staging.get()));
      if (p.confirmed_lsn >= end) break;
      if (env_.env->Now() >= deadline) {
        return absl::DeadlineExceededError(absl::StrCat(
            "the new server did not receive the old one's last changes in ",
            absl::FormatDuration(kCatchUpTimeout), " (still ", Bytes(end - p.confirmed_lsn),
            " behind", errors_ > 0 ? absl::StrCat("; ", errors_, " subscription error(s)") : "",
            ")"));
      }
      if (op_->cancel_token().WaitFor(kCutOverPoll)) return absl::CancelledError("cancelled");
    }
    const absl::Duration took = env_.env->Now() - cutover_start_;
    result_.set_catch_up_seconds(absl::ToDoubleSeconds(took));
    return absl::StrCat("everything the old server wrote is here (",
                        absl::FormatDuration(absl::Trunc(took, absl::Milliseconds(1))), ")");
  }

  absl::StatusOr<std::string> Sequences() {
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> source, Source());
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> staging, Staging());
    ASSIGN_OR_RETURN(int set, CopySequences(source.get(), staging.get()));
    result_.set_sequences(set);
    return absl::StrCat(set, " sequences set from the old server");
  }

  // Drops the subscription (and with it the slot), the publication and the
  // replica identities; each part is tried, what is left is said.
  absl::Status TakeFollowDown(bool reversal) {
    if (!follow_created_) return absl::OkStatus();
    absl::Status first;
    bool slot_left = false;
    auto staging = Staging();
    if (staging.ok()) {
      first.Update(DropFollowSubscription(staging->get(), name_, &slot_left));
    } else {
      first.Update(staging.status());
    }
    auto source = Source();
    if (source.ok()) {
      if (slot_left) slot_left = !DropFollowSlot(source->get(), name_).ok();
      first.Update(DropFollowPublication(source->get(), name_));
      first.Update(RestoreReplicaIdentity(source->get(), identities_));
    } else {
      first.Update(source.status());
    }
    if (slot_left) {
      Warn(absl::StrCat("the old server keeps the replication slot ", name_,
                        ", which holds its WAL: SELECT pg_drop_replication_slot('", name_,
                        "') there"));
    }
    if (!source.ok()) {
      Warn(absl::StrCat("the old server was not reached: drop the publication ", name_,
                        identities_.empty()
                            ? std::string()
                            : absl::StrCat(" and put back REPLICA IDENTITY DEFAULT on ",
                                           absl::StrJoin(identities_, ", ")),
                        " there"));
    }
    if (first.ok()) follow_created_ = false;
    if (!first.ok() && reversal) Warn(absl::StrCat("taking the follow down: ", first.message()));
    return first;
  }

  absl::StatusOr<std::string> Unsubscribe() {
    RETURN_IF_ERROR(TakeFollowDown(/*reversal=*/false));
    return absl::StrCat("subscription, slot and publication ", name_, " dropped",
                        identities_.empty() ? "" : "; replica identities put back");
  }

  absl::StatusOr<std::string> Verify() {
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> source, Source());
    VerifyExpectations expected;
    using RowCounts = std::map<std::string, int64_t>;
    ASSIGN_OR_RETURN(RowCounts counts, TableRowCounts(source.get()));
    for (const auto& [table, rows] : counts) expected.table_rows[table] = rows;
    auto version = ReadSchemaVersion(source.get());
    if (version.ok()) expected.schema_version = *version;
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> staging, Staging());
    ASSIGN_OR_RETURN(
        v1::VerifyResult verified,
        VerifyDatabase(staging.get(), in_.physical ? in_.database : staging_, expected));
    std::vector<std::string> failed;
    for (const v1::VerifyCheck& c : verified.checks()) {
      if (!c.passed()) failed.push_back(absl::StrCat(c.name(), ": ", c.message()));
    }
    if (!failed.empty()) {
      return absl::DataLossError(
          absl::StrCat("the copy differs from the old database: ", absl::StrJoin(failed, "; ")));
    }
    int64_t rows = 0;
    for (const auto& [table, n] : counts) rows += n;
    return absl::StrCat(counts.size(), " tables, ", rows, " rows as on the old server");
  }

  absl::StatusOr<std::string> StopServices() {
    if (in_.runtime == nullptr) return std::string("skipped: no runtime on this host");
    RETURN_IF_ERROR(SetServicesStopped(true));
    RETURN_IF_ERROR(ControlServices(*in_.runtime, false, Task("stop_services", false)));
    return absl::StrJoin(in_.runtime->Services(), ", ");
  }

  absl::StatusOr<std::string> Swap() {
    DatabaseRestoreRequest r = Request();
    RETURN_IF_ERROR(SwapInStaged(r, env_.env, &staged_));
    swapped_ = true;
    staging_.clear();
    // The instance lives here now: the old app stays stopped for good
    // (KeepOldAppStopped; recovery keeps it stopped too).
    RETURN_IF_ERROR(JournalOldAppKeptStopped());
    result_.set_database(staged_.database);
    result_.set_previous_database(staged_.previous_database);
    if (!staged_.previous_database.empty()) {
      return absl::StrCat(in_.database,
                          " is the migrated database; the one it replaced is kept as ",
                          staged_.previous_database);
    }
    return absl::StrCat(in_.database, " is the migrated database");
  }

  absl::StatusOr<std::string> Migrate() {
    if (in_.options.skip_migrate()) return std::string("skipped: not asked");
    ASSIGN_OR_RETURN(AppDatabase db, in_.runtime->Database());
    ASSIGN_OR_RETURN(v1::DbMigrateResult m, RunDbMigrate(*in_.runtime, v1::MIGRATION_PHASE_ALL, db,
                                                         Task("migrate", true)));
    return absl::StrCat(m.migrations_size(), " migration(s); schema ", m.schema_version_after());
  }

  absl::StatusOr<std::string> BuildFeeds() {
    if (in_.options.skip_feeds_build()) return std::string("skipped: not asked");
    const std::string concurrency = absl::StrCat(DefaultConcurrency(env_.env->Cpus()));
    RETURN_IF_ERROR(RunTootctl(*in_.runtime,
                               {"feeds", "build", "--all", "--concurrency", concurrency},
                               Task("feeds", true))
                        .status());
    return std::string("home feeds built");
  }

  absl::StatusOr<std::string> StartServices() {
    if (in_.runtime == nullptr) return std::string("skipped: no runtime on this host");
    if (in_.options.leave_stopped()) {
      return std::string("skipped: the app is left stopped, as asked");
    }
    RETURN_IF_ERROR(ControlServices(*in_.runtime, true, Task("start_services", false)));
    RETURN_IF_ERROR(SetServicesStopped(false));
    return absl::StrJoin(in_.runtime->Services(), ", ");
  }

  absl::StatusOr<std::string> CheckApp() {
    if (in_.runtime == nullptr || in_.options.leave_stopped()) {
      Downtime();  // the migrated database is live; no app to wait for
      return std::string("skipped: the app was not started");
    }
    AppCheckOptions options;
    options.log = [this](const std::string& line) {
      op_->Log(v1::SEVERITY_INFO, line, "app_checks");
    };
    std::unique_ptr<HttpProber> prober = NewTcpHttpProber();
    std::vector<v1::AfterSwapCheck> checks =
        CheckAppAnswers(*in_.runtime, prober.get(), env_.env, &op_->cancel_token(), options);
    Downtime();
    return AppCheckVerdict(checks, "the app");
  }

  void Downtime() {
    if (!cutover_begun_) return;
    result_.set_downtime_seconds(absl::ToDoubleSeconds(env_.env->Now() - cutover_start_));
  }

  // The result so far, on the operation (the media figures show while
  // following).
  void PublishResult() {
    op_->SetResult([&](v1::Operation* o) { *o->mutable_migrate_result() = result_; });
  }

  void Report() {
    PublishResult();
    if (result_.downtime_seconds() > 0) {
      op_->Log(v1::SEVERITY_INFO,
               absl::StrCat(absl::StrFormat("downtime %.1f s", result_.downtime_seconds()),
                            in_.options.source_agent().empty()
                                ? " (from the cut-over to the app answering; the old app was "
                                  "stopped before)"
                                : " (from the old app's stop to this app answering)"));
    }
  }

  DatabaseRestoreRequest Request() const {
    DatabaseRestoreRequest r;
    r.conninfo = in_.conninfo;
    r.database = in_.database;
    r.owner = in_.owner;
    r.operation_id = op_->id();
    r.drop_previous = in_.options.drop_previous();
    r.cancel = &op_->cancel_token();
    r.postgres_root = env_.postgres_root;
    r.journal = [this](const std::function<void(v1::DatabaseJournal*)>& update) {
      return JournalDatabase(update);
    };
    return r;
  }

  const MigrateInput in_;
  Operation* const op_;
  const JobEnv env_;
  const std::string name_;
  LogicalSourceFacts facts_;
  int target_version_ = 0;
  std::string pg_dump_;
  DatabaseRestoreResult staged_;
  std::string staging_;
  uint32_t staging_oid_ = 0;
  bool follow_created_ = false;
  std::vector<std::string> identities_;
  int64_t errors_ = 0;
  int cutovers_handled_ = 0;
  // Why the last cut-over asked was refused ("" when none was).
  std::string refusal_;
  // Why a server does not answer, while it does not ("" otherwise).
  std::string unreachable_;
  bool cutover_begun_ = false;
  absl::Time cutover_start_;
  // A commit step (promote, unsubscribe) has begun: no going back to
  // following.
  bool committing_ = false;
  // cutover_when_lag_below still cuts over by itself (not after a failed
  // or refused automatic cut-over with keep_following).
  bool auto_cutover_ = true;
  bool services_stopped_ = false;
  bool swapped_ = false;
  // The old host's agent (source_agent), and whether it holds its app
  // stopped for this migration.
  std::shared_ptr<PeerAgent> peer_;
  bool old_app_held_ = false;
  // This host's media directory, the media passes so far, and the staging
  // directory of the last one ("" when none is left).
  RestoreMediaTarget media_;
  int media_passes_ = 0;
  absl::Time last_media_pass_;
  // Why the last media pass while following failed ("" when it did not).
  std::string media_pass_failure_;
  // The bucket both apps keep the media in ("" when the media are files).
  std::string media_bucket_;
  // The media passes' bandwidth cap (null: none).
  std::shared_ptr<RateLimiter> media_rate_;
  std::string media_staging_;
  // The physical follow: the server binaries of this host's major, its
  // cluster, data directory and owner, the copy beside it (and its server),
  // the name the replaced cluster is kept under, and what exists so far.
  std::string bin_dir_;
  DebianCluster cluster_;
  std::string data_dir_;
  std::string copy_dir_;
  std::string previous_name_;
  uid_t cluster_uid_ = 0;
  gid_t cluster_gid_ = 0;
  int64_t cluster_bytes_ = 0;
  // The old cluster's bootstrap superuser: the role the agent uses on the
  // copy.
  std::string bootstrap_superuser_;
  std::unique_ptr<LocalCluster> standby_;
  bool copy_created_ = false;
  bool slot_created_ = false;
  bool host_cluster_stopped_ = false;
  v1::MigrateResult result_;
};

}  // namespace

absl::StatusOr<OperationSpec> MakeMigrateJob(const std::string& request_id,
                                             const v1::MigrateOptions& opts, const JobEnv& env) {
  MigrateInput in;
  in.options = opts;
  if (opts.source().conninfo().empty()) {
    return absl::InvalidArgumentError("migrate needs the old server (source.conninfo)");
  }
  if (opts.source().database().empty()) {
    return absl::InvalidArgumentError("migrate needs the old database's name (source.database)");
  }
  if (opts.cutover_when_lag_below() < 0) {
    return absl::InvalidArgumentError("cutover_when_lag_below must not be negative");
  }
  in.source_conninfo = opts.source().conninfo();
  in.source_database = opts.source().database();
  in.physical = opts.method() == v1::FOLLOW_METHOD_PHYSICAL;
  ASSIGN_OR_RETURN(in.conninfo, TargetConnInfo(opts.target(), env));
  std::optional<AppDatabase> app_db = RuntimeDatabaseFor(opts.target(), env);
  in.database = !opts.target().database().empty()                 ? opts.target().database()
                : app_db.has_value() && !app_db->database.empty() ? app_db->database
                                                                  : opts.source().database();
  if (app_db.has_value()) in.owner = app_db->owner;
  const bool app_steps = !(opts.skip_migrate() && opts.skip_feeds_build() && opts.leave_stopped());
  in.runtime = env.app_runtime();
  if (app_steps && in.runtime == nullptr) {
    ASSIGN_OR_RETURN(in.runtime, AppRuntime("migrate (its migrations, feeds and start)", env));
  }
  in.journal = JournalTargetFor(opts.target(), env);

  OperationSpec spec;
  spec.kind = v1::OPERATION_KIND_MIGRATE;
  spec.request_id = request_id;
  spec.target = absl::StrCat("database:", in.database);
  spec.fill_request = [opts](v1::Operation* op) {
    *op->mutable_migrate_options() = opts;
    RedactSensitive(op->mutable_migrate_options());
  };
  for (const auto& step : MigrateJob::Plan(in.physical)) {
    std::string description = step.description;
    if (!in.physical && std::string(step.name) == "swap") {
      absl::StrAppend(&description, " as ", in.database);
    }
    spec.steps.push_back({step.name, description});
  }
  spec.work = [env, in](Operation* op) -> absl::Status {
    MigrateJob job(in, op, env);
    absl::Status status = job.Run();
    if (!status.ok()) job.Undo(status);
    return status;
  };
  return spec;
}

}  // namespace mastodon_restore
