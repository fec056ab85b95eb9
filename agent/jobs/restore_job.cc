#include "agent/jobs/restore_job.h"

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agent/app/app_bucket.h"
#include "agent/app/env_file.h"
#include "agent/common/dir.h"
#include "agent/common/failpoint.h"
#include "agent/common/space_guard.h"
#include "agent/common/status_macros.h"
#include "agent/database/pg_connection.h"
#include "agent/database/target_ops.h"
#include "agent/jobs/load_progress.h"
#include "agent/jobs/recovery.h"
#include "agent/jobs/targets.h"
#include "agent/operations/redact.h"

namespace mastodon_restore {
namespace v1 = ::mastodon::restore::v1;

namespace {

// The free space of the server's filesystem while a load runs, when the
// agent sees the server's data directory (a local server): every stretch
// of loaded bytes it is looked at again (SpaceGuard), and below the floor
// the load is stopped (through the operation's cancel token) and the step
// fails with the guard's RESOURCE_EXHAUSTED. Called from the loader's
// progress callback, possibly from several threads.
class LoadSpaceWatch {
 public:
  // Null when the data directory is not reachable here.
  static std::shared_ptr<LoadSpaceWatch> For(const std::string& data_directory,
                                             const SpaceFloor& floor) {
    if (data_directory.empty()) return nullptr;
    char buf[PATH_MAX];
    if (::realpath(data_directory.c_str(), buf) == nullptr) return nullptr;
    absl::StatusOr<Dir> dir = Dir::OpenPath(buf);
    if (!dir.ok()) return nullptr;
    return std::shared_ptr<LoadSpaceWatch>(new LoadSpaceWatch(*std::move(dir), floor));
  }
  // `bytes`: the load's progress so far. False (and `cancel` cancelled)
  // once the floor is near.
  bool Loaded(int64_t bytes, CancelToken* cancel) {
    absl::MutexLock lock(&mu_);
    if (!status_.ok()) return false;
    status_ = guard_.Reserve(std::max<int64_t>(0, bytes - seen_));
    seen_ = std::max(seen_, bytes);
    if (status_.ok()) return true;
    cancel->Cancel();
    return false;
  }
  absl::Status status() const {
    absl::MutexLock lock(&mu_);
    return status_;
  }

 private:
  LoadSpaceWatch(Dir dir, const SpaceFloor& floor)
      : dir_(std::move(dir)), guard_(SpaceGuard::ForDir(&dir_, floor)) {}
  Dir dir_;
  mutable absl::Mutex mu_;
  SpaceGuard guard_;
  int64_t seen_ = 0;
  absl::Status status_;
};

// What the plan of a restore depends on, computed once from its input.
struct PlanFacts {
  const RestoreJobInput& in;
  bool db;     // the database is restored
  bool media;  // the media are restored
  // Why the app steps cannot run ("" when they can).
  std::string no_app;
  // The app's services are stopped and started again.
  bool app_services;
  // Why a step of the app is skipped ("" when it runs).
  std::string AppSkip(bool flag_off, const std::string& flag) const {
    if (!no_app.empty()) return no_app;
    if (!db) return in.options.media_only() ? "media only" : "no database restored";
    if (flag_off) return absl::StrCat("not asked (", flag, ")");
    return "";
  }
  std::string DbSkip() const { return db ? "" : in.options.media_only() ? "media only" : ""; }
  int RefreshDays() const { return in.options.refresh_days() > 0 ? in.options.refresh_days() : 1; }
};

// Why the app steps cannot run, or "" when they can.
std::string AppUnavailable(const RestoreJobInput& in) {
  if (in.runtime == nullptr) return "no Mastodon runtime on this host";
  if (in.runtime->kind() == v1::RUNTIME_KIND_EMBEDDED) {
    return "the embedded runtime runs no Mastodon app";
  }
  if (in.options.media_only()) return "";
  auto db = in.runtime->Database();
  if (!db.ok() || db->database != in.database) {
    return absl::StrCat("restoring beside the live database ('", in.database,
                        "'), not into the app's");
  }
  return "";
}

PlanFacts Facts(const RestoreJobInput& in) {
  const v1::RestoreOptions& o = in.options;
  PlanFacts f{in, in.restore_database && !o.media_only(), in.restore_media && !o.db_only(),
              AppUnavailable(in), false};
  // A media-only restore leaves the app running: files are staged and
  // moved in one by one.
  f.app_services = f.no_app.empty() && !o.media_only() && in.runtime != nullptr &&
                   !in.runtime->Services().empty();
  return f;
}

}  // namespace

// One row of the step table: what the plan says of the step and what runs.
struct RestoreJob::StepDef {
  const char* name;
  std::string (*describe)(const PlanFacts& f);
  // "" when the step runs; why not otherwise.
  std::string (*skip)(const PlanFacts& f);
  absl::StatusOr<std::string> (RestoreJob::*run)();
  // Runs after a failure or a cancellation too.
  bool finally = false;
  // Why the step, planned, is skipped after all when its turn comes ("":
  // it runs); null for steps the plan alone decides.
  std::string (RestoreJob::*skip_now)() const = nullptr;
};

// The steps of a restore, in order: the plan lists them, Run runs them.
const std::vector<RestoreJob::StepDef>& RestoreJob::Steps() {
  using F = const PlanFacts&;
  static const std::vector<StepDef> steps = {
      {"open", [](F) -> std::string { return "open the source (decrypt, unpack as a stream)"; },
       [](F) { return std::string(); }, &RestoreJob::OpenSource},
      {"inventory",
       [](F) -> std::string { return "list the env file, dumps and media of the backup"; },
       [](F) { return std::string(); }, &RestoreJob::TakeInventory},
      {"detect", [](F) -> std::string { return "detect the dump to load"; },
       [](F f) { return f.DbSkip(); }, &RestoreJob::DetectDump},
      {"preflight",
       [](F) -> std::string { return "check the server, roles, disk space, runtime and secrets"; },
       [](F) { return std::string(); }, &RestoreJob::Preflight},
      {"stop_services",
       [](F f) {
         return f.in.runtime != nullptr && f.app_services
                    ? absl::StrCat("stop the app (", absl::StrJoin(f.in.runtime->Services(), ", "),
                                   ")")
                    : std::string("stop the app");
       },
       [](F f) -> std::string {
         return f.app_services              ? ""
                : !f.no_app.empty()         ? f.no_app
                : f.in.options.media_only() ? "media only: the app keeps running"
                                            : "the runtime has no services";
       },
       &RestoreJob::StopServices},
      {"load", [](F) -> std::string { return "load the dump into a staging database"; },
       [](F f) { return f.DbSkip(); }, &RestoreJob::LoadIntoStaging},
      {"verify", [](F) -> std::string { return "verify the staging database against the dump"; },
       [](F f) { return f.DbSkip(); }, &RestoreJob::VerifyStaging},
      {"checks",
       [](F) -> std::string {
         return "check the staging database before the swap (duplicates under the dump's "
                "unique indexes, amcheck)";
       },
       [](F f) { return f.DbSkip(); }, &RestoreJob::CheckBeforeSwap},
      {"secrets",
       [](F) -> std::string {
         return "decrypt the staging database's encrypted columns with the app's env";
       },
       [](F f) { return f.DbSkip(); }, &RestoreJob::CheckStagingSecrets},
      {"swap",
       [](F f) {
         return absl::StrCat("swap the staging database in as '", f.in.database,
                             "'; keep the previous one");
       },
       [](F f) { return f.DbSkip(); }, &RestoreJob::SwapIn},
      {"media",
       [](F f) {
         return absl::StrCat("restore the media into ",
                             f.in.media_dir.empty() ? "(none)" : f.in.media_dir);
       },
       [](F f) -> std::string {
         return !f.media                 ? "database only"
                : f.in.options.db_only() ? "database only"
                : f.in.media_dir.empty() ? "no media directory on this host"
                                         : "";
       },
       &RestoreJob::RestoreMediaFiles},
      {"config", [](F) -> std::string { return "install the backup's env file for the runtime"; },
       [](F f) -> std::string {
         return !f.in.options.restore_config() ? "not asked (--restore-config)"
                : f.in.runtime == nullptr || f.in.runtime->EnvFilePath().empty()
                    ? "the runtime has no env file"
                    : "";
       },
       &RestoreJob::InstallConfig},
      {"redis",
       [](F) -> std::string {
         return "put the backup's Redis dump in place of the runtime's (Redis stopped, the "
                "keys checked once it has loaded)";
       },
       [](F f) { return f.AppSkip(f.in.options.no_redis(), "--no-redis"); },
       &RestoreJob::RestoreRedisDump, /*finally=*/false, &RestoreJob::RedisNotToRestore},
      {"migrate", [](F) -> std::string { return "run the app's database migrations"; },
       [](F f) { return f.AppSkip(f.in.options.no_migrate(), "--no-migrate"); },
       &RestoreJob::Migrate},
      {"cleanup",
       [](F) -> std::string { return "tootctl preview_cards remove and media remove (1 day)"; },
       [](F f) { return f.AppSkip(f.in.options.no_cleanup(), "--no-cleanup"); },
       &RestoreJob::Cleanup},
      {"refresh",
       [](F f) {
         return absl::StrCat("tootctl media refresh --days ", f.RefreshDays(),
                             " --force, accounts refresh --all, feeds build --all (not when the "
                             "backup's Redis dump is restored)");
       },
       [](F f) { return f.AppSkip(f.in.options.no_refresh(), "--no-refresh"); },
       &RestoreJob::Refresh},
      {"search",
       [](F) -> std::string {
         return "tootctl search deploy, when the app's env enables Elasticsearch "
                "(ES_ENABLED=true)";
       },
       [](F f) { return f.AppSkip(f.in.options.no_search_deploy(), "--no-search-deploy"); },
       &RestoreJob::DeploySearch, /*finally=*/false, &RestoreJob::SearchNotEnabled},
      {"media_check",
       [](F f) -> std::string {
         return absl::StrCat(
             "count the files the restored database references that the media directory lacks "
             "(local: lost; remote: ",
             f.in.options.refetch_missing_remote_media() ? "fetched again" : "re-fetchable", ")");
       },
       [](F f) -> std::string {
         return f.in.options.no_media_check() ? "not asked (--no-media-check)"
                : !f.db                  ? f.DbSkip().empty() ? "no database restored" : f.DbSkip()
                                 : !f.media ? "database only"
                : f.in.media_dir.empty() ? "no media directory on this host"
                                         : "";
       },
       &RestoreJob::CheckMissingMedia, /*finally=*/false, &RestoreJob::MediaNotToCheck},
      {"start_services", [](F) -> std::string { return "start the app again"; },
       [](F f) -> std::string { return f.app_services ? "" : "no services were stopped"; },
       &RestoreJob::StartServices, /*finally=*/true, &RestoreJob::ServicesStillDown},
      {"app_checks",
       [](F) -> std::string {
         return "check that the app answers: web /health, streaming health, sidekiq";
       },
       [](F f) -> std::string {
         return !f.app_services                ? "no services were stopped"
                : f.in.options.no_app_checks() ? "not asked (--no-app-checks)"
                                               : "";
       },
       &RestoreJob::CheckAppAnswers, /*finally=*/true, &RestoreJob::AppNotToCheck},
      {"report", [](F) -> std::string { return "write the report"; },
       [](F) { return std::string(); }, nullptr, /*finally=*/true},
  };
  return steps;
}

std::vector<PlannedStep> PlanRestore(const RestoreJobInput& in) {
  const PlanFacts facts = Facts(in);
  std::vector<PlannedStep> plan;
  for (const RestoreJob::StepDef& step : RestoreJob::Steps()) {
    plan.push_back({step.name, step.describe(facts), step.skip(facts)});
  }
  return plan;
}

RestoreJob::RestoreJob(RestoreJobInput input, Operation* op, RestoreActions* actions, Env* env)
    : input_(std::move(input)), op_(op), actions_(actions), env_(env), plan_(PlanRestore(input_)) {
  // Every read of the source stops when the operation is cancelled (the
  // request's own token ended with the call that started it).
  source_ = input_.source;
  source_.cancel = &op_->cancel_token();
  if (input_.media_source.has_value()) {
    media_source_ = *input_.media_source;
    media_source_->cancel = &op_->cancel_token();
  }
}

RestoreJob::~RestoreJob() = default;

absl::Status RestoreJob::Run() {
  // 1-12: open, inventory, detect, preflight, stop the app, load, verify,
  // swap, media, config, migrate, cleanup, refresh — each only after the
  // one before it succeeded. 13-14: the app is started again and the report
  // written whatever happened.
  for (const StepDef& step : Steps()) {
    if (step.finally) break;
    outcome_ = RunStep(step);
    if (!outcome_.ok()) break;
  }
  for (const StepDef& step : Steps()) {
    if (!step.finally || step.run == nullptr) continue;
    absl::Status finished = RunStep(step);
    if (outcome_.ok()) outcome_ = finished;
  }
  // The services are started, or kept stopped as asked: nothing for a
  // recovery to do about them. What a failure left (a staging database
  // whose drop failed, temp files) is cleaned up as a restart would.
  if (op_->Record().services_stopped()) {
    op_->Journal([](v1::OperationRecord* r) { r->set_services_stopped(false); }).IgnoreError();
  }
  if (JournalPending(op_->Record())) {
    RecoveryContext ctx;
    ctx.env = env_;
    ctx.target_conninfo = input_.agent_target_conninfo;
    ctx.runtime = input_.runtime;
    ctx.services = false;
    RecoverOperation(op_, ctx, "cleaned up", false);
  }
  if (absl::Status fp = MR_FAILPOINT("restore.before_report"); !fp.ok() && outcome_.ok()) {
    outcome_ = fp;
  }
  Report(outcome_);
  return outcome_;
}

std::string RestoreJob::SkipReason(const std::string& name) const {
  for (const PlannedStep& s : plan_) {
    if (s.name == name) return s.skip_reason;
  }
  return "not in the plan";
}

bool RestoreJob::Planned(const std::string& name) const {
  for (const PlannedStep& s : plan_) {
    if (s.name == name) return s.skip_reason.empty();
  }
  return false;
}

absl::Status RestoreJob::CheckCancelled() const {
  if (op_->cancel_token().cancelled()) return absl::CancelledError("restore cancelled");
  return absl::OkStatus();
}

absl::Status RestoreJob::RunStep(const StepDef& step) {
  const std::string name = step.name;
  if (!Planned(name)) {
    op_->StepFinished(name, v1::STEP_STATE_SKIPPED, SkipReason(name));
    return absl::OkStatus();
  }
  if (step.skip_now != nullptr) {
    const std::string why = (this->*step.skip_now)();
    if (!why.empty()) {
      op_->StepFinished(name, v1::STEP_STATE_SKIPPED, why);
      return absl::OkStatus();
    }
  }
  // Steps that run whatever happened run after a cancellation too.
  if (!step.finally) RETURN_IF_ERROR(CheckCancelled());
  if (absl::Status fp = MR_FAILPOINT(absl::StrCat("restore.step.", name)); !fp.ok()) {
    op_->StepFinished(name, v1::STEP_STATE_FAILED, std::string(fp.message()));
    return fp;
  }
  op_->StepStarted(name);
  absl::StatusOr<std::string> message = (this->*step.run)();
  if (message.ok()) {
    op_->StepFinished(name, v1::STEP_STATE_SUCCEEDED, *message);
    return absl::OkStatus();
  }
  op_->StepFinished(
      name, absl::IsCancelled(message.status()) ? v1::STEP_STATE_CANCELLED : v1::STEP_STATE_FAILED,
      std::string(message.status().message()));
  return message.status();
}

TaskContext RestoreJob::Task(const std::string& step, bool cancellable) const {
  // (The actions give the context their command runner.)
  return TaskContext{nullptr, env_, cancellable ? &op_->cancel_token() : nullptr, op_, step};
}

absl::StatusOr<std::string> RestoreJob::OpenSource() {
  InspectOptions inspect;
  inspect.pg_restore_majors = input_.pg_restore_majors;
  inspect.now = env_->Now();
  inspect.media_tree = input_.options.media_tree();
  // The target server's version gives the dumps' compatibility notes; what
  // else preflight needs of the server comes with the same connection.
  if (Planned("load")) {
    auto server = actions_->ProbeServer(input_.conninfo);
    if (server.ok()) {
      server_ = *server;
      inspect.target_major = server_.major;
    } else {
      server_error_ = server.status();
    }
  }
  ASSIGN_OR_RETURN(backup_, actions_->Open(input_.source_path, source_, inspect));
  const v1::BackupManifest& m = backup_.manifest;
  std::string message =
      m.containers().empty() ? std::string("a plain file") : absl::StrJoin(m.containers(), " > ");
  if (media_source_.has_value() && Planned("media")) {
    ASSIGN_OR_RETURN(media_backup_,
                     actions_->Open(input_.media_source_path, *media_source_, inspect));
    absl::StrAppend(&message, "; media from ", input_.media_source_path);
  }
  return message;
}

const OpenedBackup& RestoreJob::MediaBackup() const {
  return media_source_.has_value() ? media_backup_ : backup_;
}

const std::string& RestoreJob::MediaSourcePath() const {
  return media_source_.has_value() ? input_.media_source_path : input_.source_path;
}

absl::StatusOr<std::string> RestoreJob::TakeInventory() {
  const v1::BackupManifest& m = backup_.manifest;
  std::string message;
  for (const std::string& w : m.warnings()) warnings_.push_back(w);
  if (m.has_env_file() && !m.env_file().path().empty()) {
    int missing = 0;
    for (const v1::SecretStatus& s : m.env_file().secrets()) {
      if (!s.present()) {
        ++missing;
        warnings_.push_back(
            absl::StrCat("the backup's env file has no ", s.key(),
                         ": keep the host's, or the app will not start (see docs)"));
      }
    }
    absl::StrAppend(&message, "env file ", m.env_file().path(), " (", m.env_file().keys_size(),
                    " keys, ", missing, " secrets missing); ");
  } else {
    warnings_.push_back("the backup has no env file: its secrets are not restored");
  }
  if (!input_.options.media_only()) {
    if (m.dumps().empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the backup '", input_.source_path,
                       "' holds no database dump (restore --media-only for its media)"));
    }
    if (input_.options.member().empty() && m.dumps_size() > 1) {
      std::vector<std::string> names;
      for (const v1::DumpInfo& d : m.dumps()) names.push_back(d.path());
      return absl::InvalidArgumentError(absl::StrCat("the backup holds several dumps (",
                                                     absl::StrJoin(names, ", "),
                                                     "): name one with --member"));
    }
  }
  absl::StrAppend(&message, m.dumps_size(), " dump(s)");
  if (Planned("media")) {
    const v1::MediaInventory& media = MediaBackup().manifest.media();
    if (!media.conflict().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("unable to restore the media of '",
                                                     MediaSourcePath(), "': ", media.conflict()));
    }
    if (media.files() == 0 && (input_.options.media_only() || media_source_.has_value())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unable to restore the media of '", MediaSourcePath(),
          "': it holds no tree of Mastodon's media folders (accounts/, media_attachments/, "
          "cache/, ... with their attachment folders below)"));
    }
    if (media.files() == 0) {
      warnings_.push_back("the backup has no media tree: media not restored");
    } else {
      std::vector<std::string> where;
      if (media_source_.has_value()) where.push_back(MediaSourcePath());
      if (!media.root().empty()) where.push_back(media.root());
      absl::StrAppend(&message, "; media ", absl::StrJoin(where, " "), where.empty() ? "" : " ",
                      "(", media.files(), " files, ", media.bytes() >> 10, " KiB)");
    }
  }
  return message;
}

absl::StatusOr<std::string> RestoreJob::DetectDump() {
  // Detected from its head when the source was opened; a cluster dump that
  // does not name Mastodon's database is scanned for it.
  ASSIGN_OR_RETURN(dump_, PickDump(backup_.manifest, input_.options.member(), input_.source_path));
  const v1::DumpInfo& d = *dump_;
  InspectOptions inspect;
  inspect.pg_restore_majors = input_.pg_restore_majors;
  inspect.target_major = server_.major;
  ASSIGN_OR_RETURN(cluster_database_,
                   actions_->ClusterDatabase(d, input_.options.source_db(), input_.source_path,
                                             source_, inspect));
  std::string format = v1::DumpFormat_Name(d.format());
  format = absl::AsciiStrToLower(format.substr(format.rfind('_') + 1));
  return absl::StrCat(d.path(), ": ", format, " ",
                      d.kind() == v1::DUMP_KIND_CLUSTER ? "pg_dumpall" : "pg_dump",
                      d.dumper_version().empty() ? "" : " " + d.dumper_version(),
                      d.schema_version().empty() ? "" : ", schema " + d.schema_version());
}

absl::StatusOr<std::string> RestoreJob::Preflight() {
  // The server: reachable, and the role may create databases. (Archive
  // formats are read by the agent itself: no pg_restore is needed.)
  if (Planned("load")) {
    RETURN_IF_ERROR(server_error_);
    if (!server_.may_create_databases) {
      return absl::PermissionDeniedError(absl::StrCat(
          "unable to restore into the server: role '", server_.user,
          "' may not create databases (ALTER ROLE ... CREATEDB, or connect as a superuser)"));
    }
    // Room for the staging database beside the live one, when the server's
    // data directory is on this host (a superuser can tell where it is).
    if (!server_.data_directory.empty()) {
      auto free = env_->FreeBytes(server_.data_directory);
      const int64_t needed = dump_->size_bytes() + dump_->size_bytes() / 2;
      if (free.ok() && needed > 0 && *free < needed) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "not enough disk space for the staging database in ", server_.data_directory,
            ": about ", needed >> 20, " MiB needed (1.5x the dump), ", *free >> 20, " MiB free"));
      }
    }
  }
  // Room for the media (RestoreMedia checks again, exactly).
  const v1::BackupManifest& m = backup_.manifest;
  if (Planned("media") && m.has_media() && m.media().files() > 0) {
    const std::string parent = input_.media_dir.substr(0, input_.media_dir.find_last_of('/'));
    auto free = env_->FreeBytes(parent.empty() ? "/" : parent);
    const int64_t needed = m.media().bytes();
    if (free.ok() && *free < needed) {
      return absl::ResourceExhaustedError(absl::StrCat("not enough disk space for the media in ",
                                                       parent, ": ", needed >> 20, " MiB needed, ",
                                                       *free >> 20, " MiB free"));
    }
  }
  // The app's commands must exist before the app is stopped.
  if (Planned("migrate")) RETURN_IF_ERROR(input_.runtime->DbMigrate(false).status());
  if (Planned("cleanup") || Planned("refresh")) {
    RETURN_IF_ERROR(input_.runtime->Tootctl({}).status());
  }
  // Secrets: which differ from the host's (the report lists them).
  if (input_.runtime != nullptr && !input_.runtime->EnvFilePath().empty() &&
      !backup_.env_text.empty()) {
    auto host = env_->ReadFile(input_.runtime->EnvFilePath());
    if (host.ok()) secrets_differing_ = DifferingSecrets(backup_.env_text, *host);
    if (!secrets_differing_.empty() && !input_.options.restore_config()) {
      warnings_.push_back(absl::StrCat(
          "secrets differ between the backup and this host (",
          absl::StrJoin(secrets_differing_, ", "),
          "): sessions, 2FA and Web Push of the restored users need the backup's; restore them "
          "with --restore-config"));
    }
  }
  return server_.version.empty() ? std::string("ready")
                                 : absl::StrCat("PostgreSQL ", server_.version, "; ready");
}

absl::StatusOr<std::string> RestoreJob::StopServices() {
  // Recorded first: a restart starts them again.
  RETURN_IF_ERROR(op_->Journal([](v1::OperationRecord* r) { r->set_services_stopped(true); }));
  RETURN_IF_ERROR(actions_->ControlServices(*input_.runtime, false, Task("stop_services", false)));
  services_stopped_ = true;
  return absl::StrJoin(input_.runtime->Services(), ", ");
}

absl::StatusOr<std::string> RestoreJob::LoadIntoStaging() {
  DatabaseRestoreRequest& r = db_request_;
  r.source_path = input_.source_path;
  r.source = source_;
  r.dump = *dump_;
  r.cluster_database = cluster_database_;
  r.conninfo = input_.conninfo;
  r.database = input_.database;
  r.owner = input_.owner;
  r.operation_id = op_->id();
  r.keep_owners = input_.options.keep_owners();
  r.with_role_passwords = input_.options.with_role_passwords();
  r.allow_privileged_roles = input_.options.allow_privileged_roles();
  r.allow_superuser_load = input_.options.allow_superuser_load();
  r.extra_extensions = {input_.options.allow_extensions().begin(),
                        input_.options.allow_extensions().end()};
  r.drop_previous = input_.options.drop_previous();
  r.repair_duplicates = input_.options.repair_duplicates();
  r.jobs = input_.options.jobs();
  r.cancel = &op_->cancel_token();
  r.postgres_root = input_.postgres_root;
  r.pg_restore = pg_restore_;
  r.journal = [this](const std::function<void(v1::DatabaseJournal*)>& update) {
    return op_->Journal([&](v1::OperationRecord* record) {
      v1::DatabaseJournal* j = record->mutable_database_journal();
      input_.journal.Fill(j);
      update(j);
    });
  };
  const v1::DumpInfo dump = *dump_;
  std::shared_ptr<LoadSpaceWatch> space =
      LoadSpaceWatch::For(server_.data_directory, input_.space_floor);
  const bool raw_sizes = dump_->stored_size_bytes() > 0;
  auto model = std::make_shared<LoadProgressModel>(raw_sizes ? dump_->stored_size_bytes()
                                                             : dump_->size_bytes());
  r.progress = [this, dump, space, model, last = absl::InfinitePast()](
                   const std::string& step, const LoadProgress& p) mutable {
    if (space != nullptr && step == "load") space->Loaded(p.bytes, &op_->cancel_token());
    if (step == "analyze") {
      op_->Log(v1::SEVERITY_INFO, "ANALYZE (planner statistics)", "load");
      return;
    }
    if (step != "load" || (p.bytes == 0 && p.raw_bytes <= 0)) return;
    // Twice a second: smooth enough for a progress bar, and every event goes
    // to every watcher (1,000 of them cost the agent CPU the load needs).
    absl::Time now = absl::Now();
    if (now - last < absl::Milliseconds(500)) return;
    last = now;
    const bool raw = dump.stored_size_bytes() > 0;
    // The stored file's bytes when known; else the dump's, scaled to them.
    int64_t data_done = p.bytes;
    if (raw && p.raw_bytes >= 0) {
      data_done = p.raw_bytes;
    } else if (raw && dump.size_bytes() > 0) {
      data_done = static_cast<int64_t>(static_cast<double>(p.bytes) * dump.stored_size_bytes() /
                                       dump.size_bytes());
    }
    const LoadProgressModel::Report report = model->Update(p, data_done);
    op_->StepPhaseProgress("load", report.done, LoadProgressModel::kWorkTotal, "work",
                           report.message, report.phase);
  };
  absl::StatusOr<DatabaseRestoreResult> staged = actions_->Stage(r);
  // A load stopped for the server's disk says so, not "cancelled".
  if (!staged.ok() && space != nullptr && !space->status().ok()) return space->status();
  ASSIGN_OR_RETURN(db_, std::move(staged));
  server_.version = db_.target_server_version;
  return absl::StrCat(db_.load.rows, " rows in ", db_.load.table_rows.size(), " tables into ",
                      db_.staging_database);
}

absl::StatusOr<std::string> RestoreJob::VerifyStaging() {
  absl::Status verified = actions_->Verify(db_request_, &db_);
  int passed = 0;
  for (const auto& c : db_.verification.checks()) passed += c.passed() ? 1 : 0;
  RETURN_IF_ERROR(verified);
  return absl::StrCat(passed, " of ", db_.verification.checks_size(), " checks passed");
}

absl::StatusOr<std::string> RestoreJob::CheckBeforeSwap() {
  RETURN_IF_ERROR(actions_->CheckBeforeSwap(db_request_, &db_));
  const v1::PreSwapChecks& c = db_.pre_swap;
  std::string message =
      c.repaired_row_count() > 0
          ? absl::StrCat("duplicates repaired (", c.repaired_row_count(), " rows changed); ")
          : std::string("no duplicates; ");
  absl::StrAppend(&message, c.index_check().message());
  return message;
}

std::string RestoreJob::AppEnvText(std::string* source) const {
  // The backup's when --restore-config installs it, else the runtime's env
  // file, else (no app here: embedded, verify-backup) the backup's own.
  const std::string host_path =
      input_.runtime != nullptr ? input_.runtime->EnvFilePath() : std::string();
  if (input_.options.restore_config() && !backup_.env_text.empty()) {
    *source = "the backup's env file, installed by --restore-config";
    return backup_.env_text;
  }
  if (!host_path.empty()) {
    // An env file the agent cannot read gives the app no keys either.
    absl::StatusOr<std::string> host = env_->ReadFile(host_path);
    *source =
        absl::StrCat("the host's env file ", host_path,
                     host.ok() ? "" : absl::StrCat(" (unreadable: ", host.status().message(), ")"));
    return host.ok() ? *host : std::string();
  }
  if (!backup_.env_text.empty()) {
    *source = "the backup's env file";
    return backup_.env_text;
  }
  source->clear();
  return std::string();
}

absl::StatusOr<std::string> RestoreJob::CheckStagingSecrets() {
  std::string source;
  const std::string text = AppEnvText(&source);
  ASSIGN_OR_RETURN(secrets_, actions_->CheckSecrets(input_.conninfo, db_.staging_database,
                                                    source.empty() ? nullptr : &text, source));
  if (!secrets_.checked() && secrets_.columns_size() > 0) warnings_.push_back(secrets_.summary());
  if (!secrets_.mismatch()) return secrets_.summary();
  if (input_.options.accept_secret_mismatch()) {
    secrets_.set_accepted(true);
    warnings_.push_back(
        absl::StrCat("secrets mismatch accepted (--accept-secret-mismatch): ", secrets_.summary()));
    return absl::StrCat(secrets_.summary(), "; accepted");
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the env the restored app would run with does not decrypt the database: ", secrets_.summary(),
      ". Swap refused, the live database is untouched: restore with the backup's env "
      "(--restore-config), fix the env file, or accept with --accept-secret-mismatch"));
}

absl::StatusOr<std::string> RestoreJob::SwapIn() {
  // The last moment to stop: after this the live database is the new one.
  if (op_->cancel_token().cancelled()) {
    actions_->DropStaging(input_.conninfo, db_.staging_database, db_.staging_oid);
    return absl::CancelledError("restore cancelled before the swap");
  }
  RETURN_IF_ERROR(actions_->Swap(db_request_, &db_));
  swapped_ = true;
  return db_.previous_database.empty()
             ? absl::StrCat("'", db_.database, "' is live (there was none before)")
             : absl::StrCat("'", db_.database, "' is live; the previous one is kept as '",
                            db_.previous_database, "'");
}

absl::StatusOr<std::string> RestoreJob::RestoreMediaFiles() {
  const v1::BackupManifest& m = MediaBackup().manifest;
  if (!m.has_media() || m.media().files() == 0) return std::string();  // warned at inventory
  MediaRestoreOptions o;
  o.source_path = MediaSourcePath();
  o.source = media_source_.has_value() ? *media_source_ : source_;
  o.inventory = m.media();
  o.exclude_cache = input_.options.exclude_cache();
  o.verify_hash = input_.options.verify_media();
  o.operation_id = op_->id();
  o.cancel = &op_->cancel_token();
  int64_t last = 0;
  o.progress = [&](int64_t files, int64_t bytes, int64_t total_files, int64_t total_bytes) {
    if (files - last < 100 && files != total_files) return;
    last = files;
    op_->StepProgress("media", bytes, total_bytes, "bytes",
                      absl::StrCat(files, " of ", total_files, " files"));
  };
  // An app that keeps its media in a bucket gets them there.
  std::string why;
  o.target_bucket = AppMediaBucket(&why);
  if (o.target_bucket != nullptr) {
    std::string source;
    o.upload_headers = AppBucketUploadHeaders(ParseEnvFile(AppEnvText(&source)));
  } else {
    if (!why.empty()) {
      warnings_.push_back(absl::StrCat(why, ": the media are restored into ", input_.media_dir,
                                       ", which the app does not serve them from"));
    }
    o.target_dir = input_.media_dir;
    o.space_floor = input_.space_floor;
    o.uid = input_.media_uid;
    o.gid = input_.media_gid;
    o.journal = [this](bool moving) {
      return op_->Journal([&](v1::OperationRecord* record) {
        v1::MediaJournal* m = record->mutable_media_journal();
        m->set_phase(moving ? v1::MEDIA_PHASE_MOVING : v1::MEDIA_PHASE_EXTRACTING);
        m->set_staging_dir(MediaStagingDir(input_.media_dir, op_->id()));
        m->set_target_dir(input_.media_dir);
        m->set_uid(input_.media_uid.has_value() ? static_cast<int64_t>(*input_.media_uid) : -1);
        m->set_gid(input_.media_gid.has_value() ? static_cast<int64_t>(*input_.media_gid) : -1);
      });
    };
  }
  ASSIGN_OR_RETURN(media_, actions_->RestoreMedia(o));
  for (const std::string& w : media_.warnings) warnings_.push_back(w);
  return absl::StrCat(
      media_.files_written, " files written",
      media_.files_resumed > 0
          ? absl::StrCat(" (", media_.files_resumed, " staged by an earlier restore that stopped)")
          : "",
      o.target_bucket != nullptr ? " to " + o.target_bucket->Describe("") : "", ", ",
      media_.files_skipped, " unchanged");
}

absl::StatusOr<std::string> RestoreJob::InstallConfig() {
  if (backup_.env_text.empty()) {
    return absl::FailedPreconditionError("--restore-config: the backup has no env file");
  }
  auto journal = [this](const EnvInstallJournal& j) {
    return op_->Journal([&](v1::OperationRecord* record) {
      v1::EnvJournal* e = record->mutable_env_journal();
      e->set_path(j.path);
      e->set_temp_path(j.temp_path);
      e->set_kept_temp_path(j.kept_temp_path);
      e->set_uid(j.owner.has_value() ? static_cast<int64_t>(j.owner->uid) : -1);
      e->set_gid(j.owner.has_value() ? static_cast<int64_t>(j.owner->gid) : -1);
    });
  };
  ASSIGN_OR_RETURN(EnvInstallResult installed,
                   actions_->InstallEnv(*input_.runtime, backup_.env_text, op_->id(), journal));
  op_->Log(
      v1::SEVERITY_INFO,
      absl::StrCat("installed ", installed.path,
                   installed.kept_as.empty() ? "" : ", the old one kept as " + installed.kept_as),
      "config");
  return std::string();
}

absl::StatusOr<std::string> RestoreJob::Migrate() {
  ASSIGN_OR_RETURN(AppDatabase db, input_.runtime->Database());
  ASSIGN_OR_RETURN(migrate_, actions_->Migrate(*input_.runtime, db, Task("migrate", true)));
  return absl::StrCat(migrate_.migrations_size(), " migration(s); schema ",
                      migrate_.schema_version_after());
}

absl::StatusOr<std::string> RestoreJob::Cleanup() {
  v1::CleanupOptions options;  // the snap guide's: 1 day
  ASSIGN_OR_RETURN(auto commands, CleanupCommands(options, input_.default_concurrency));
  return RunTootctlCommands(commands, "cleanup");
}

absl::StatusOr<std::string> RestoreJob::Refresh() {
  v1::MediaRefreshOptions options;
  options.set_days(input_.options.refresh_days() > 0 ? input_.options.refresh_days() : 1);
  options.set_force(true);
  options.set_refresh_accounts(true);
  // Home feeds live in Redis: a restored dump brought them.
  options.set_build_feeds(!redis_.has_value());
  ASSIGN_OR_RETURN(auto commands, MediaRefreshCommands(options, input_.default_concurrency));
  return RunTootctlCommands(commands, "refresh");
}

absl::StatusOr<std::string> RestoreJob::RunTootctlCommands(
    const std::vector<std::vector<std::string>>& commands, const std::string& step) {
  const TaskContext ctx = Task(step, true);
  std::vector<std::string> summaries;
  for (const auto& args : commands) {
    ASSIGN_OR_RETURN(v1::TootctlResult result, actions_->Tootctl(*input_.runtime, args, ctx));
    tootctl_.push_back(result);
    if (!result.summary().empty()) summaries.push_back(result.summary());
  }
  return absl::StrJoin(summaries, "; ");
}

std::string RestoreJob::RedisNotToRestore() const {
  const v1::BackupManifest& m = backup_.manifest;
  if (!m.has_redis()) return "the backup has no Redis dump (home feeds are rebuilt by refresh)";
  if (!m.redis().error().empty()) {
    return absl::StrCat("'", m.redis().path(), "' cannot be restored: ", m.redis().error());
  }
  absl::StatusOr<RedisStore> store = input_.runtime->Redis();
  if (!store.ok()) return std::string(store.status().message());
  return "";
}

absl::StatusOr<std::string> RestoreJob::RestoreRedisDump() {
  RedisRestoreOptions options;
  options.source_path = input_.source_path;
  options.source = source_;
  options.dump = backup_.manifest.redis();
  options.operation_id = op_->id();
  options.journal = [this](const v1::RedisJournal& j) {
    return op_->Journal([&](v1::OperationRecord* record) {
      if (j.phase() == v1::REDIS_PHASE_UNSPECIFIED) {
        record->clear_redis_journal();
      } else {
        *record->mutable_redis_journal() = j;
      }
    });
  };
  ASSIGN_OR_RETURN(v1::RedisRestore result,
                   actions_->RestoreRedis(*input_.runtime, options, Task("redis", true)));
  redis_ = result;
  return absl::StrCat(result.keys_loaded(), " keys loaded from ", result.source_path(),
                      result.kept_as().empty() ? "" : ", the old file kept as " + result.kept_as());
}

bool RestoreJob::AppEnvEnables(const char* key, std::string* source) const {
  const ParsedEnvFile env = ParseEnvFile(AppEnvText(source));
  const std::string* value = env.Find(key);
  return value != nullptr && absl::AsciiStrToLower(*value) == "true";
}

std::string RestoreJob::SearchNotEnabled() const {
  std::string source;
  if (AppEnvEnables("ES_ENABLED", &source)) return "";
  return absl::StrCat("the app does not use a search server (ES_ENABLED is not true in ",
                      source.empty() ? "its env" : source, ")");
}

absl::StatusOr<std::string> RestoreJob::DeploySearch() {
  return RunTootctlCommands({SearchDeployCommand(input_.default_concurrency)}, "search");
}

std::string RestoreJob::MediaNotToCheck() const {
  std::string why;
  AppMediaBucket(&why);
  return why;
}

std::shared_ptr<const ObjectStore> RestoreJob::AppMediaBucket(std::string* why) const {
  if (!app_bucket_.has_value()) {
    std::string source;
    const ParsedEnvFile env = ParseEnvFile(AppEnvText(&source));
    std::string reason;
    auto client =
        AppBucketClient(env, source, input_.allowed_s3_endpoints, input_.rate_limit, &reason);
    app_bucket_.emplace(std::move(client), std::move(reason));
  }
  *why = app_bucket_->second;
  return app_bucket_->first;
}

absl::StatusOr<std::string> RestoreJob::CheckMissingMedia() {
  MissingMediaOptions options;
  options.media_dir = input_.media_dir;
  std::string why;
  options.bucket = AppMediaBucket(&why);  // (MediaNotToCheck said why not)
  options.cancel = &op_->cancel_token();
  absl::StatusOr<MissingMediaScan> scan =
      actions_->ScanMedia(input_.conninfo, input_.database, options);
  if (absl::IsCancelled(scan.status())) return scan.status();
  if (!scan.ok()) {
    // The restore itself is done: an odd schema or media directory makes
    // the count a warning, not a failure.
    warnings_.push_back(absl::StrCat("media check: the missing media files were not counted: ",
                                     scan.status().message()));
    return absl::StrCat("not counted: ", scan.status().message());
  }
  v1::MissingMedia report = scan->report;
  std::string refetch;  // what the refetch did, for the summary
  if (input_.options.refetch_missing_remote_media() && report.remote_missing() > 0) {
    const std::string no_app = AppUnavailable(input_);
    if (!no_app.empty()) {
      warnings_.push_back(
          absl::StrCat("--refetch-missing-remote-media: no tootctl to run (", no_app, ")"));
    } else {
      const RefetchLimits limits;
      ASSIGN_OR_RETURN(
          RefetchPlan plan,
          actions_->PlanMediaRefetch(input_.conninfo, input_.database, scan->remote, limits));
      ASSIGN_OR_RETURN(const auto commands, RefetchCommands(plan, limits.accounts_per_command,
                                                            input_.default_concurrency));
      // One command failing (an origin server gone, an account renamed)
      // does not stop the others.
      const TaskContext ctx = Task("media_check", true);
      std::vector<std::string> failed;
      for (const auto& args : commands) {
        absl::StatusOr<v1::TootctlResult> result = actions_->Tootctl(*input_.runtime, args, ctx);
        if (absl::IsCancelled(result.status())) return result.status();
        RETURN_IF_ERROR(CheckCancelled());
        if (result.ok()) {
          tootctl_.push_back(*result);
        } else {
          failed.push_back(std::string(result.status().message()));
        }
      }
      if (!failed.empty()) {
        warnings_.push_back(absl::StrCat(failed.size(), " of ", commands.size(),
                                         " commands fetching remote media again failed; the "
                                         "first: ",
                                         failed.front()));
      }
      ASSIGN_OR_RETURN(MissingMediaScan after,
                       actions_->ScanMedia(input_.conninfo, input_.database, options));
      report.set_refetched(true);
      report.set_remote_missing_after_refetch(after.report.remote_missing());
      report.set_remote_not_refetchable(plan.not_refetchable);
      report.set_remote_left_by_cap(plan.left_by_cap);
      refetch =
          absl::StrCat("; ", commands.size(), " tootctl command", commands.size() == 1 ? "" : "s",
                       " fetched ", report.remote_missing() - report.remote_missing_after_refetch(),
                       " again, ", report.remote_missing_after_refetch(), " still missing");
    }
  }
  std::string summary =
      absl::StrCat(report.referenced(), " files referenced, ", report.present(), " present; ",
                   report.local_missing(), " local missing (lost), ", report.remote_missing(),
                   " remote missing (re-fetchable)", refetch);
  if (report.invalid_names() > 0) {
    absl::StrAppend(&summary, "; ", report.invalid_names(), " invalid file names (not looked up)");
  }
  report.set_summary(summary);
  if (report.local_missing() > 0) {
    std::vector<std::string> first;
    for (const v1::MissingMediaFile& f : report.local_files()) {
      if (first.size() == 3) break;
      first.push_back(f.path());
    }
    warnings_.push_back(absl::StrCat(
        report.local_missing(),
        " local media files the database references are missing "
        "from ",
        input_.media_dir, " and were not in the backup (lost): ", absl::StrJoin(first, ", "),
        report.local_missing() > 3 ? ", ..." : ""));
  }
  if (report.remote_missing() > 0 && !report.refetched()) {
    warnings_.push_back(absl::StrCat(report.remote_missing(),
                                     " copies of remote media are missing: fetch them again with "
                                     "--refetch-missing-remote-media (or tootctl media refresh)"));
  } else if (report.refetched() && report.remote_missing_after_refetch() > 0) {
    warnings_.push_back(absl::StrCat(report.remote_missing_after_refetch(),
                                     " copies of remote media are still missing after the "
                                     "refetch (origin servers gone, remote custom emoji)"));
  }
  if (report.invalid_names() > 0) {
    warnings_.push_back(absl::StrCat(report.invalid_names(),
                                     " media file names in the database are not a single path "
                                     "component (a hostile or damaged dump): not looked up"));
  }
  missing_media_ = report;
  return summary;
}

std::string RestoreJob::ServicesStillDown() const {
  if (!services_stopped_) return "the app was not stopped";
  if (!outcome_.ok() && input_.options.keep_services_stopped_on_failure()) {
    return "kept stopped as asked (--keep-services-stopped-on-failure)";
  }
  return "";
}

absl::StatusOr<std::string> RestoreJob::StartServices() {
  RETURN_IF_ERROR(actions_->ControlServices(*input_.runtime, true, Task("start_services", false)));
  services_stopped_ = false;
  RETURN_IF_ERROR(op_->Journal([](v1::OperationRecord* r) { r->set_services_stopped(false); }));
  return std::string();
}

std::string RestoreJob::AppNotToCheck() const {
  if (!outcome_.ok()) return "the restore did not succeed: the app is not checked";
  if (services_stopped_) return "the app was not started again";
  return "";
}

absl::StatusOr<std::string> RestoreJob::CheckAppAnswers() {
  AppCheckOptions options;
  if (input_.options.app_check_timeout_seconds() > 0) {
    options.timeout = absl::Seconds(input_.options.app_check_timeout_seconds());
  }
  options.log = [this](const std::string& line) {
    op_->Log(v1::SEVERITY_INFO, line, "app_checks");
  };
  after_swap_checks_ = actions_->CheckApp(*input_.runtime, options, Task("app_checks", true));
  return AppCheckVerdict(after_swap_checks_, "the restored app");
}

void RestoreJob::Report(const absl::Status& outcome) {
  if (Planned("report")) op_->StepStarted("report");
  const v1::Operation snapshot = op_->Snapshot();
  // What is left to do by hand after a failure past the swap.
  std::vector<std::string> next;
  if (!outcome.ok() && swapped_) {
    for (const v1::Step& step : snapshot.steps()) {
      const bool not_done =
          step.state() != v1::STEP_STATE_SUCCEEDED && step.state() != v1::STEP_STATE_SKIPPED;
      const bool was_planned = Planned(step.name());
      if (!not_done || !was_planned) continue;
      if (step.name() == "media") {
        next.push_back(absl::StrCat("mastodon-restore restore --media-only ", MediaSourcePath()));
      } else if (step.name() == "migrate") {
        next.push_back("mastodon-restore db-migrate");
      } else if (step.name() == "cleanup") {
        next.push_back("mastodon-restore cleanup --days 1");
      } else if (step.name() == "app_checks" && step.state() == v1::STEP_STATE_FAILED) {
        next.push_back(
            db_.previous_database.empty()
                ? std::string("the app does not answer and there is no previous database to roll "
                              "back to: see the checks and the app's logs")
                : absl::StrCat("mastodon-restore rollback --database ", db_.database,
                               "   (the app does not answer: put the previous database back, "
                               "then see the app's logs)"));
      } else if (step.name() == "refresh") {
        next.push_back(
            absl::StrCat("mastodon-restore media-refresh --days ",
                         input_.options.refresh_days() > 0 ? input_.options.refresh_days() : 1,
                         " --force --accounts --feeds"));
      } else if (step.name() == "redis" && RedisNotToRestore().empty()) {
        next.push_back(
            "tootctl feeds build --all, through the runtime (the backup's Redis dump was not "
            "restored: home feeds are empty until then)");
      } else if (step.name() == "search" && SearchNotEnabled().empty()) {
        next.push_back(
            "tootctl search deploy, through the runtime, once the search server answers "
            "(ES_HOST and ES_PORT of the app's env)");
      }
    }
    if (services_stopped_) next.push_back("start the app's services (they were kept stopped)");
  }
  op_->SetResult([&](v1::Operation* o) {
    v1::RestoreReport* r = o->mutable_restore_report();
    r->set_database(swapped_ ? db_.database : "");
    r->set_previous_database(db_.previous_database);
    *r->mutable_dump() = dump_.value_or(v1::DumpInfo());
    r->mutable_dump()->clear_tables();
    for (const auto& [table, rows] : db_.load.table_rows) {
      v1::TableRowCount* t = r->mutable_dump()->add_tables();
      t->set_table(table);
      t->set_rows(rows);
    }
    r->set_tables(static_cast<int64_t>(db_.load.table_rows.size()));
    r->set_rows(db_.load.rows);
    r->set_load_connections(db_.load.jobs);
    r->set_media_files(media_.files_written);
    r->set_media_bytes(media_.bytes_written);
    r->set_media_files_skipped(media_.files_skipped);
    r->set_target_server_version(server_.version);
    r->set_schema_version_before_migrate(db_.load.schema_version);
    r->set_schema_version(!migrate_.schema_version_after().empty() ? migrate_.schema_version_after()
                                                                   : db_.load.schema_version);
    for (const std::string& w : db_.load.rewrites) r->add_rewrites(w);
    for (const std::string& w : db_.warnings) r->add_warnings(w);
    for (const std::string& w : warnings_) r->add_warnings(w);
    *r->mutable_verification() = db_.verification;
    *r->mutable_pre_swap_checks() = db_.pre_swap;
    for (const v1::TootctlResult& t : tootctl_) *r->add_tootctl() = t;
    for (const v1::Step& step : snapshot.steps()) {
      if (!step.has_start_time() || !step.has_end_time()) continue;
      v1::StepDuration* d = r->add_durations();
      d->set_step(step.name());
      d->set_seconds(static_cast<double>(step.end_time().seconds() - step.start_time().seconds()) +
                     (step.end_time().nanos() - step.start_time().nanos()) / 1e9);
    }
    for (const std::string& k : secrets_differing_) r->add_secrets_differing(k);
    if (!secrets_.summary().empty()) *r->mutable_secrets_check() = secrets_;
    for (const std::string& n : next) r->add_next_steps(n);
    for (const v1::AfterSwapCheck& c : after_swap_checks_) *r->add_after_swap_checks() = c;
    if (redis_.has_value()) *r->mutable_redis() = *redis_;
    if (missing_media_.has_value()) *r->mutable_missing_media() = *missing_media_;
  });
  if (Planned("report")) op_->StepFinished("report", v1::STEP_STATE_SUCCEEDED, "");
}

absl::StatusOr<PreparedRestore> PrepareRestore(const std::string& request_id,
                                               const v1::RestoreOptions& opts,
                                               const RestoreSources& sources, const JobEnv& env) {
  const ScanSetup& scan = sources.backup;
  RestoreJobInput in;
  in.options = opts;
  in.source_path = scan.path;
  in.source = scan.source;
  in.pg_restore_majors = scan.options.pg_restore_majors;
  in.runtime = env.app_runtime();
  in.default_concurrency = DefaultConcurrency(env.env->Cpus());
  in.postgres_root = env.postgres_root;
  in.restore_database = !opts.media_only();
  in.restore_media = !opts.db_only();
  if (in.restore_database) {
    // The dump's head is read here only when nothing else names the
    // database or its owner.
    DumpHeadReader read_head = [&]() -> absl::StatusOr<DumpHead> {
      DumpHead head;
      ASSIGN_OR_RETURN(head.dump, DetectDumpInSource(scan.path, opts.member(), scan.source,
                                                     scan.options, env.runner, &head.env));
      return head;
    };
    ASSIGN_OR_RETURN(RestoreDatabaseTarget db, ResolveRestoreDatabase(opts, env, read_head));
    in.conninfo = db.conninfo;
    in.database = db.database;
    in.owner = db.owner;
  }
  std::string media_key;  // the media directory's lock: its resolved path
  if (in.restore_media) {
    ASSIGN_OR_RETURN(RestoreMediaTarget media, ResolveRestoreMedia(opts, env));
    if (!media.resolved_dir.empty()) media_key = absl::StrCat("media:", media.resolved_dir);
    in.media_dir = media.dir;
    in.space_floor = env.space_floor;
    in.media_uid = media.uid;
    in.media_gid = media.gid;
  }

  PreparedRestore out;
  OperationSpec& spec = out.spec;
  spec.kind = v1::OPERATION_KIND_RESTORE;
  spec.request_id = request_id;
  spec.target = in.restore_database ? absl::StrCat("database:", in.database) : media_key;
  if (in.restore_database) spec.locks.push_back(spec.target);
  if (!media_key.empty()) spec.locks.push_back(media_key);
  spec.fill_request = [opts](v1::Operation* op) {
    *op->mutable_restore_options() = opts;
    RedactSensitive(op->mutable_restore_options());
  };
  const std::vector<PlannedStep> plan = PlanRestore(in);
  for (const PlannedStep& step : plan) spec.steps.push_back({step.name, step.description});

  // The plan, as an operation without an id: nothing is started or recorded.
  v1::Operation& p = out.plan;
  p.set_kind(spec.kind);
  p.set_state(v1::OPERATION_STATE_PENDING);
  p.set_target(spec.target);
  spec.fill_request(&p);
  for (const PlannedStep& step : plan) {
    v1::Step* s = p.add_steps();
    s->set_name(step.name);
    s->set_description(step.description);
    s->set_state(step.skip_reason.empty() ? v1::STEP_STATE_PENDING : v1::STEP_STATE_SKIPPED);
    s->set_message(step.skip_reason);
  }

  // What recovery will need to reach the server (the journal records it
  // with the staging database; never a password).
  in.agent_target_conninfo = env.target_conninfo;
  in.allowed_s3_endpoints = env.allowed_s3_endpoints;
  if (sources.media.has_value()) {
    in.media_source_path = sources.media->path;
    in.media_source = sources.media->source;
  }
  in.rate_limit = sources.rate_limit;
  if (in.restore_database) {
    in.journal = JournalTargetFor(opts.target(), env);
  }
  spec.work = [env, in](Operation* op) {
    std::unique_ptr<RestoreActions> actions = NewRestoreActions(env);
    RestoreJob job(in, op, actions.get(), env.env);
    return job.Run();
  };
  return out;
}

}  // namespace mastodon_restore
