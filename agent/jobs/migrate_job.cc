#include "agent/jobs/migrate_job.h"

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
#include "agent/common/http_probe.h"
#include "agent/common/status_macros.h"
#include "agent/database/app_queries.h"
#include "agent/database/database_restore.h"
#include "agent/database/local_cluster.h"
#include "agent/database/logical_follow.h"
#include "agent/database/pg_connection.h"
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
  // Null when the app's steps are all skipped.
  const Runtime* runtime = nullptr;
  // How recovery reaches this host's server (never a password).
  JournalTarget journal;
};

class MigrateJob {
 public:
  MigrateJob(MigrateInput in, Operation* op, const JobEnv& env)
      : in_(std::move(in)), op_(op), env_(env), name_(FollowName(op->id())) {}

  // The narrative; one commented call per step.
  absl::Status Run() {
    // The old server can be followed, this one reached; pg_dump for the schema.
    RETURN_IF_ERROR(Step("preflight", &MigrateJob::Preflight));
    // The old database's schema through the agent's loader, into a staging
    // database: this host's live database is not touched.
    RETURN_IF_ERROR(Step("schema", &MigrateJob::CopySchema));
    // A publication of every table there, a subscription here.
    RETURN_IF_ERROR(Step("subscribe", &MigrateJob::Subscribe));
    // The rows, table by table, while the old app keeps writing.
    RETURN_IF_ERROR(Step("copy", &MigrateJob::InitialCopy));
    // The old host's media, staged beside this host's media directory.
    RETURN_IF_ERROR(Step("media", &MigrateJob::CopyMedia));
    // FOLLOWING until the cut-over is asked.
    RETURN_IF_ERROR(Step("follow", &MigrateJob::Follow));
    // -- The downtime: the old app is stopped. --
    // Every change the old server wrote is here.
    RETURN_IF_ERROR(Step("catch_up", &MigrateJob::CatchUp));
    // The sequences, which logical replication does not carry.
    RETURN_IF_ERROR(Step("sequences", &MigrateJob::Sequences));
    // The follow taken down: subscription, slot, publication, identities.
    RETURN_IF_ERROR(Step("unsubscribe", &MigrateJob::Unsubscribe));
    // Row for row as the old database.
    RETURN_IF_ERROR(Step("verify", &MigrateJob::Verify));
    // The media changed since the first pass (the old app is stopped).
    RETURN_IF_ERROR(Step("media_delta", &MigrateJob::CopyMediaDelta));
    // This host's app stopped before its database changes.
    RETURN_IF_ERROR(Step("stop_services", &MigrateJob::StopServices));
    // The migrated database takes the live one's place (kept as previous).
    RETURN_IF_ERROR(Step("swap", &MigrateJob::Swap));
    // The staged media moved into this host's media directory.
    RETURN_IF_ERROR(Step("media_move", &MigrateJob::MoveMediaIn));
    // The app's own migrations when its code is newer than the old host's.
    RETURN_IF_ERROR(Step("migrate", &MigrateJob::Migrate));
    // Home feeds live in Redis, which the database does not bring.
    RETURN_IF_ERROR(Step("feeds", &MigrateJob::BuildFeeds));
    // The app again, and that it answers: the end of the downtime.
    RETURN_IF_ERROR(Step("start_services", &MigrateJob::StartServices));
    RETURN_IF_ERROR(Step("app_checks", &MigrateJob::CheckApp));
    Report();
    return absl::OkStatus();
  }

  // After a failure or a cancel: before the swap, the follow is taken down
  // and this host is as it was; after it, the old host is the way back.
  void Undo(const absl::Status& failure) {
    if (swapped_) {
      Warn(absl::StrCat(
          "the migrated database is live here (", in_.database,
          ") but the migration did not finish: ", failure.message(),
          services_stopped_ ? ". This host's app is left stopped" : "",
          ". The old host is as it was at the cut-over: to go back, start its app again",
          in_.options.source_agent().empty()
              ? std::string()
              : absl::StrCat(" (on that host: mastodon-restore app-hold release ", op_->id(),
                             ")")));
      Report();
      return;
    }
    TakeFollowDown(/*reversal=*/true).IgnoreError();
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
  using StepFn = absl::StatusOr<std::string> (MigrateJob::*)();

  // Runs one step between its start and finish events; a skipped step
  // returns "skipped: why".
  absl::Status Step(const std::string& step, StepFn fn) {
    if (op_->cancel_token().cancelled()) return absl::CancelledError("cancelled");
    op_->StepStarted(step);
    absl::StatusOr<std::string> done = (this->*fn)();
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
  absl::StatusOr<std::unique_ptr<PgSession>> Staging() {
    return env_.pg->Connect(in_.conninfo, staging_);
  }

  absl::StatusOr<std::string> Preflight() {
    RETURN_IF_ERROR(CheckOldAgent());
    ASSIGN_OR_RETURN(std::unique_ptr<PgSession> source, Source());
    ASSIGN_OR_RETURN(facts_, ReadLogicalSourceFacts(source.get()));
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
                        ") to ", result_.target_server_version(), " by logical replication");
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
    return !in_.options.source_agent().empty() && !in_.options.skip_media();
  }

  // One pass over the old host's media: what is not staged yet, or changed,
  // is read into a new staging directory that takes the last one over (and
  // drops what the old host no longer has); nothing is moved in.
  absl::StatusOr<MediaRestoreResult> MediaPass(const std::string& step) {
    SourceOptions source;
    source.bucket = NewPeerMediaStore(peer_, in_.options.source_agent(), media_rate_);
    source.cancel = &op_->cancel_token();
    const std::string name = absl::StrCat("agent:", in_.options.source_agent());
    ASSIGN_OR_RETURN(v1::BackupManifest manifest,
                     InspectBackup(name, source, InspectOptions(), env_.runner));
    MediaRestoreOptions o;
    o.source_path = name;
    o.source = source;
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
    return below > 0 && p.lag_bytes >= 0 && p.lag_bytes < below;
  }

  absl::StatusOr<std::string> Follow() {
    std::unique_ptr<PgSession> source, staging;
    op_->MarkFollowing(absl::StrCat(
        "following the old database; cut over with: mastodon-restore ops cutover ", op_->id()));
    absl::Time last = absl::InfinitePast();
    while (true) {
      absl::StatusOr<FollowProgress> polled = Poll(&source, &staging);
      if (!polled.ok()) {
        // A cut-over needs both servers: asked now, it cannot begin.
        if (op_->cutover_requests() > cutovers_handled_) {
          return absl::UnavailableError(
              absl::StrCat("unable to cut over: ", polled.status().message()));
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
        if (in_.options.cutover_when_lag_below() > 0) {
          return absl::FailedPreconditionError(not_stopped);
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
    ASSIGN_OR_RETURN(v1::VerifyResult verified, VerifyDatabase(staging.get(), staging_, expected));
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
    // The instance lives here now: the old app stays stopped for good (a
    // failure is said; recovery keeps it stopped too).
    if (old_app_held_) ReleaseOldApp(/*keep_stopped=*/true).IgnoreError();
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
  // The media passes' bandwidth cap (null: none).
  std::shared_ptr<RateLimiter> media_rate_;
  std::string media_staging_;
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
  spec.steps = {
      {"preflight", "check the old server (wal_level, slots, keys) and this one"},
      {"schema", "copy the old database's schema into a staging database"},
      {"subscribe", "publish every table on the old server, subscribe here"},
      {"copy", "copy the rows while the old app runs"},
      {"media", "copy the old host's media (staged) while its app runs"},
      {"follow", "follow the old database until the cut-over"},
      {"catch_up", "wait for the old server's last changes"},
      {"sequences", "set the sequences from the old server"},
      {"unsubscribe", "drop the subscription, slot and publication"},
      {"verify", "compare the copy with the old database"},
      {"media_delta", "copy the media changed since"},
      {"stop_services", "stop this host's app"},
      {"swap", absl::StrCat("swap the migrated database in as ", in.database)},
      {"media_move", "move the staged media in"},
      {"migrate", "run the app's database migrations"},
      {"feeds", "rebuild the home feeds (tootctl feeds build --all)"},
      {"start_services", "start the app"},
      {"app_checks", "check that the app answers"},
  };
  spec.work = [env, in](Operation* op) -> absl::Status {
    MigrateJob job(in, op, env);
    absl::Status status = job.Run();
    if (!status.ok()) job.Undo(status);
    return status;
  };
  return spec;
}

}  // namespace mastodon_restore
