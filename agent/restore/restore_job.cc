#include "agent/restore/restore_job.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/app/app_tasks.h"
#include "agent/app/env_install.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"
#include "agent/database/database_restore.h"
#include "agent/database/local_cluster.h"
#include "agent/database/pg_connection.h"
#include "agent/database/pg_probe.h"
#include "agent/media/media_restore.h"

namespace mastodon_restore {
namespace v1 = ::mastodon::restore::v1;

// What the steps learn and hand on.
struct RestoreJob::State {
  v1::BackupManifest manifest;
  std::string dump_member;  // the dump inside the source
  v1::DumpInfo dump;        // its detection
  std::string env_text;     // the backup's env file ("" when none)
  std::string media_root;   // the media tree inside the source
  DatabaseRestoreRequest db_request;
  DatabaseRestoreResult db;
  bool swapped = false;
  bool services_stopped = false;
  MediaRestoreResult media;
  bool media_done = false;
  std::string config_kept_as;
  v1::DbMigrateResult migrate;
  std::vector<v1::TootctlResult> tootctl;
  std::vector<std::string> warnings;
  std::vector<std::string> secrets_differing;
  std::string target_server_version;
  // The one-line outcome of the step under way (its StepFinished message).
  std::string message;
};

namespace {

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

}  // namespace

std::vector<PlannedStep> PlanRestore(const RestoreJobInput& in) {
  const v1::RestoreOptions& o = in.options;
  const bool db = in.restore_database && !o.media_only();
  const bool media = in.restore_media && !o.db_only();
  const std::string no_app = AppUnavailable(in);
  // A media-only restore leaves the app running: files are staged and
  // moved in one by one.
  const bool app_services =
      no_app.empty() && !o.media_only() && in.runtime != nullptr && !in.runtime->Services().empty();
  auto only = [&](bool wanted, const std::string& why) { return wanted ? "" : why; };
  std::string db_skip = o.media_only() ? "media only" : "";
  std::string media_skip = o.db_only()            ? "database only"
                           : in.media_dir.empty() ? "no media directory on this host"
                                                  : "";
  auto app_skip = [&](bool flag_off, const std::string& flag) -> std::string {
    if (!no_app.empty()) return no_app;
    if (!db) return o.media_only() ? "media only" : "no database restored";
    if (flag_off) return absl::StrCat("not asked (", flag, ")");
    return "";
  };
  std::vector<PlannedStep> plan = {
      {"open", "open the source (decrypt, unpack as a stream)", ""},
      {"inventory", "list the env file, dumps and media of the backup", ""},
      {"detect", "detect the dump to load", only(db, db_skip)},
      {"preflight", "check the server, roles, disk space, runtime and secrets", ""},
      {"stop_services",
       in.runtime != nullptr && app_services
           ? absl::StrCat("stop the app (", absl::StrJoin(in.runtime->Services(), ", "), ")")
           : "stop the app",
       app_services      ? ""
       : !no_app.empty() ? no_app
       : o.media_only()  ? "media only: the app keeps running"
                         : "the runtime has no services"},
      {"load", "load the dump into a staging database", only(db, db_skip)},
      {"verify", "verify the staging database against the dump", only(db, db_skip)},
      {"swap",
       absl::StrCat("swap the staging database in as '", in.database, "'; keep the previous one"),
       only(db, db_skip)},
      {"media",
       absl::StrCat("restore the media into ", in.media_dir.empty() ? "(none)" : in.media_dir),
       media ? media_skip : "database only"},
      {"config", "install the backup's env file for the runtime",
       !o.restore_config()                                          ? "not asked (--restore-config)"
       : in.runtime == nullptr || in.runtime->EnvFilePath().empty() ? "the runtime has no env file"
                                                                    : ""},
      {"migrate", "run the app's database migrations", app_skip(o.no_migrate(), "--no-migrate")},
      {"cleanup", "tootctl preview_cards remove and media remove (1 day)",
       app_skip(o.no_cleanup(), "--no-cleanup")},
      {"refresh",
       absl::StrCat("tootctl media refresh --days ", o.refresh_days() > 0 ? o.refresh_days() : 1,
                    " --force, accounts refresh --all, feeds build --all"),
       app_skip(o.no_refresh(), "--no-refresh")},
      {"start_services", "start the app again", app_services ? "" : "no services were stopped"},
      {"report", "write the report", ""},
  };
  return plan;
}

RestoreJob::RestoreJob(RestoreJobInput input, Operation* op, CommandRunner* runner, Env* env)
    : input_(std::move(input)),
      op_(op),
      runner_(runner),
      env_(env),
      plan_(PlanRestore(input_)),
      state_(std::make_unique<State>()) {
  // Every read of the source stops when the operation is cancelled (the
  // request's own token ended with the call that started it).
  source_ = input_.source;
  source_.cancel = &op_->cancel_token();
}

RestoreJob::~RestoreJob() = default;

absl::Status RestoreJob::Run() {
  absl::Status status = [&]() -> absl::Status {
    // 1. Open the source: decryption and archive layers, read as a stream.
    RETURN_IF_ERROR(Step("open", &RestoreJob::OpenSource));
    // 2. Inventory: the env file, every dump, the media tree.
    RETURN_IF_ERROR(Step("inventory", &RestoreJob::TakeInventory));
    // 3. Detect the dump to load.
    RETURN_IF_ERROR(Step("detect", &RestoreJob::DetectDump));
    // 4. Preflight: nothing is touched unless everything needed is there.
    RETURN_IF_ERROR(Step("preflight", &RestoreJob::Preflight));
    // 5. Stop the app: nobody writes what is about to be replaced.
    RETURN_IF_ERROR(Step("stop_services", &RestoreJob::StopServices));
    // 6. Load into a staging database beside the live one.
    RETURN_IF_ERROR(Step("load", &RestoreJob::LoadIntoStaging));
    // 7. Verify the staging database against the dump.
    RETURN_IF_ERROR(Step("verify", &RestoreJob::VerifyStaging));
    // 8. Swap it in; the live database is kept as <db>__previous_<time>.
    RETURN_IF_ERROR(Step("swap", &RestoreJob::SwapIn));
    // 9. The media: staged beside the media directory, then moved in.
    RETURN_IF_ERROR(Step("media", &RestoreJob::RestoreMediaFiles));
    //    The backup's env file, when asked.
    RETURN_IF_ERROR(Step("config", &RestoreJob::InstallConfig));
    // 10. The app's migrations, checked in schema_migrations.
    RETURN_IF_ERROR(Step("migrate", &RestoreJob::Migrate));
    // 11. Cached remote media and preview cards the backup points to.
    RETURN_IF_ERROR(Step("cleanup", &RestoreJob::Cleanup));
    // 12. Fetch remote media, avatars and feeds again.
    return Step("refresh", &RestoreJob::Refresh);
  }();
  // 13. Start the app again, also after a failure (unless asked not to).
  if (!state_->services_stopped) {
    op_->StepFinished(
        "start_services", v1::STEP_STATE_SKIPPED,
        Planned("start_services") ? "the app was not stopped" : SkipReason("start_services"));
  } else {
    if (!status.ok() && input_.options.keep_services_stopped_on_failure()) {
      op_->StepFinished("start_services", v1::STEP_STATE_SKIPPED,
                        "kept stopped as asked (--keep-services-stopped-on-failure)");
    } else {
      absl::Status started = Step("start_services", &RestoreJob::StartServices);
      if (status.ok()) status = started;
    }
  }
  // 14. The report, also of a failed restore.
  Report(status);
  return status;
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

absl::Status RestoreJob::Step(const std::string& name, absl::Status (RestoreJob::*run)()) {
  if (!Planned(name)) {
    op_->StepFinished(name, v1::STEP_STATE_SKIPPED, SkipReason(name));
    return absl::OkStatus();
  }
  // Cleanup steps run even after a cancellation.
  if (name != "start_services") RETURN_IF_ERROR(CheckCancelled());
  op_->StepStarted(name);
  state_->message.clear();
  absl::Status status = (this->*run)();
  if (status.ok()) {
    op_->StepFinished(name, v1::STEP_STATE_SUCCEEDED, state_->message);
  } else {
    op_->StepFinished(name,
                      absl::IsCancelled(status) ? v1::STEP_STATE_CANCELLED : v1::STEP_STATE_FAILED,
                      std::string(status.message()));
  }
  return status;
}

absl::Status RestoreJob::OpenSource() {
  InspectOptions inspect;
  inspect.pg_restore_majors = InstalledPostgresVersions(env_, input_.postgres_root, "pg_restore");
  ASSIGN_OR_RETURN(state_->manifest, InspectBackup(input_.source_path, source_, inspect, runner_));
  state_->message = state_->manifest.containers().empty()
                        ? "a plain file"
                        : absl::StrJoin(state_->manifest.containers(), " > ");
  return absl::OkStatus();
}

absl::Status RestoreJob::TakeInventory() {
  const v1::BackupManifest& m = state_->manifest;
  for (const std::string& w : m.warnings()) state_->warnings.push_back(w);
  if (m.has_env_file() && !m.env_file().path().empty()) {
    int missing = 0;
    for (const v1::SecretStatus& s : m.env_file().secrets()) {
      if (!s.present()) {
        ++missing;
        state_->warnings.push_back(
            absl::StrCat("the backup's env file has no ", s.key(),
                         ": keep the host's, or the app will not start (see docs)"));
      }
    }
    absl::StrAppend(&state_->message, "env file ", m.env_file().path(), " (",
                    m.env_file().keys_size(), " keys, ", missing, " secrets missing); ");
    auto text = ReadFileInSource(input_.source_path, m.env_file().path(), source_, runner_);
    if (text.ok()) state_->env_text = *text;
  } else {
    state_->warnings.push_back("the backup has no env file: its secrets are not restored");
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
    state_->dump_member =
        input_.options.member().empty() ? m.dumps(0).path() : input_.options.member();
  }
  absl::StrAppend(&state_->message, m.dumps_size(), " dump(s)");
  if (Planned("media")) {
    if (!m.has_media() || m.media().files() == 0) {
      state_->warnings.push_back("the backup has no media tree: media not restored");
    } else {
      state_->media_root = m.media().root();
      absl::StrAppend(&state_->message, "; media ", m.media().root(), " (", m.media().files(),
                      " files, ", m.media().bytes() >> 10, " KiB)");
    }
  }
  return absl::OkStatus();
}

absl::Status RestoreJob::DetectDump() {
  InspectOptions inspect;
  inspect.pg_restore_majors = InstalledPostgresVersions(env_, input_.postgres_root, "pg_restore");
  auto major = ProbeServerVersion(input_.conninfo);
  if (major.ok()) inspect.target_major = *major / 10000;
  ASSIGN_OR_RETURN(state_->dump, DetectDumpInSource(input_.source_path, state_->dump_member,
                                                    source_, inspect, runner_));
  const v1::DumpInfo& d = state_->dump;
  std::string format = v1::DumpFormat_Name(d.format());
  format = absl::AsciiStrToLower(format.substr(format.rfind('_') + 1));
  state_->message = absl::StrCat(
      d.path(), ": ", format, " ", d.kind() == v1::DUMP_KIND_CLUSTER ? "pg_dumpall" : "pg_dump",
      d.dumper_version().empty() ? "" : " " + d.dumper_version(),
      d.schema_version().empty() ? "" : ", schema " + d.schema_version());
  return absl::OkStatus();
}

absl::Status RestoreJob::Preflight() {
  // The server: reachable, and the role may create databases; the tools
  // an archive-format dump needs.
  if (Planned("load")) {
    if (state_->dump.format() != v1::DUMP_FORMAT_PLAIN) {
      RETURN_IF_ERROR(PickPgRestore(input_.postgres_root, state_->dump, env_).status());
    }
    ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> admin,
                     PgConnection::Connect(input_.conninfo, "postgres"));
    state_->target_server_version =
        absl::StrCat(admin->server_version() / 10000, ".", admin->server_version() % 10000);
    ASSIGN_OR_RETURN(PgRows role, admin->Query("SELECT rolsuper OR rolcreatedb FROM pg_roles "
                                               "WHERE rolname = current_user"));
    if (role.Scalar() != "t") {
      return absl::PermissionDeniedError(absl::StrCat(
          "unable to restore into the server: role '", admin->current_user(),
          "' may not create databases (ALTER ROLE ... CREATEDB, or connect as a superuser)"));
    }
    // Room for the staging database beside the live one, when the server's
    // data directory is on this host (a superuser can tell where it is).
    auto dir = admin->Query("SELECT setting FROM pg_settings WHERE name = 'data_directory'");
    if (dir.ok() && !dir->Scalar().empty()) {
      auto free = env_->FreeBytes(dir->Scalar());
      const int64_t needed = state_->dump.size_bytes() + state_->dump.size_bytes() / 2;
      if (free.ok() && needed > 0 && *free < needed) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "not enough disk space for the staging database in ", dir->Scalar(), ": about ",
            needed >> 20, " MiB needed (1.5x the dump), ", *free >> 20, " MiB free"));
      }
    }
  }
  // Room for the media (RestoreMedia checks again, exactly).
  if (Planned("media") && !state_->media_root.empty()) {
    const std::string parent = input_.media_dir.substr(0, input_.media_dir.find_last_of('/'));
    auto free = env_->FreeBytes(parent.empty() ? "/" : parent);
    const int64_t needed = state_->manifest.media().bytes();
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
      !state_->env_text.empty()) {
    auto host = env_->ReadFile(input_.runtime->EnvFilePath());
    if (host.ok()) state_->secrets_differing = DifferingSecrets(state_->env_text, *host);
    if (!state_->secrets_differing.empty() && !input_.options.restore_config()) {
      state_->warnings.push_back(absl::StrCat(
          "secrets differ between the backup and this host (",
          absl::StrJoin(state_->secrets_differing, ", "),
          "): sessions, 2FA and Web Push of the restored users need the backup's; restore them "
          "with --restore-config"));
    }
  }
  state_->message = state_->target_server_version.empty()
                        ? "ready"
                        : absl::StrCat("PostgreSQL ", state_->target_server_version, "; ready");
  return absl::OkStatus();
}

absl::Status RestoreJob::StopServices() {
  TaskContext ctx{runner_, env_, nullptr, op_, "stop_services"};
  RETURN_IF_ERROR(ControlServices(*input_.runtime, false, ctx));
  state_->services_stopped = true;
  state_->message = absl::StrJoin(input_.runtime->Services(), ", ");
  return absl::OkStatus();
}

absl::Status RestoreJob::LoadIntoStaging() {
  DatabaseRestoreRequest& r = state_->db_request;
  r.source_path = input_.source_path;
  r.source = source_;
  r.member = state_->dump.path();
  r.conninfo = input_.conninfo;
  r.database = input_.database;
  r.source_db = input_.options.source_db();
  r.owner = input_.owner;
  r.operation_id = op_->id();
  r.keep_owners = input_.options.keep_owners();
  r.with_role_passwords = input_.options.with_role_passwords();
  r.drop_previous = input_.options.drop_previous();
  r.jobs = input_.options.jobs();
  r.cancel = &op_->cancel_token();
  r.postgres_root = input_.postgres_root;
  // (Kept in the request, which the verify and swap steps use again.)
  const v1::DumpInfo dump = state_->dump;
  r.progress = [this, dump, last = absl::InfinitePast()](const std::string& step,
                                                         const LoadProgress& p) mutable {
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
    const bool raw = p.raw_bytes >= 0 && dump.stored_size_bytes() > 0;
    op_->StepProgress("load", raw ? p.raw_bytes : p.bytes,
                      raw ? dump.stored_size_bytes() : dump.size_bytes(), "bytes",
                      absl::StrCat(p.toc_entry.empty() ? "" : p.toc_entry + ", ", p.rows, " rows, ",
                                   p.statements, " statements"));
  };
  ASSIGN_OR_RETURN(state_->db, StageDatabase(r, runner_, env_));
  state_->target_server_version = state_->db.target_server_version;
  state_->message =
      absl::StrCat(state_->db.load.rows, " rows in ", state_->db.load.table_rows.size(),
                   " tables into ", state_->db.staging_database);
  return absl::OkStatus();
}

absl::Status RestoreJob::VerifyStaging() {
  absl::Status verified = VerifyStaged(state_->db_request, &state_->db);
  int passed = 0;
  for (const auto& c : state_->db.verification.checks()) passed += c.passed() ? 1 : 0;
  state_->message =
      absl::StrCat(passed, " of ", state_->db.verification.checks_size(), " checks passed");
  return verified;
}

absl::Status RestoreJob::SwapIn() {
  // The last moment to stop: after this the live database is the new one.
  if (op_->cancel_token().cancelled()) {
    DropStaged(input_.conninfo, state_->db.staging_database);
    return absl::CancelledError("restore cancelled before the swap");
  }
  RETURN_IF_ERROR(SwapInStaged(state_->db_request, env_, &state_->db));
  state_->swapped = true;
  state_->message =
      state_->db.previous_database.empty()
          ? absl::StrCat("'", state_->db.database, "' is live (there was none before)")
          : absl::StrCat("'", state_->db.database, "' is live; the previous one is kept as '",
                         state_->db.previous_database, "'");
  return absl::OkStatus();
}

absl::Status RestoreJob::RestoreMediaFiles() {
  if (state_->media_root.empty()) return absl::OkStatus();  // warned at inventory
  MediaRestoreOptions m;
  m.source_path = input_.source_path;
  m.source = source_;
  m.inventory = state_->manifest.media();  // the tree the inventory found
  m.target_dir = input_.media_dir;
  m.uid = input_.media_uid;
  m.gid = input_.media_gid;
  m.exclude_cache = input_.options.exclude_cache();
  m.verify_hash = input_.options.verify_media();
  m.operation_id = op_->id();
  m.cancel = &op_->cancel_token();
  int64_t last = 0;
  m.progress = [&](int64_t files, int64_t bytes, int64_t total_files, int64_t total_bytes) {
    if (files - last < 100 && files != total_files) return;
    last = files;
    op_->StepProgress("media", bytes, total_bytes, "bytes",
                      absl::StrCat(files, " of ", total_files, " files"));
  };
  ASSIGN_OR_RETURN(state_->media, RestoreMedia(m, runner_, env_));
  state_->media_done = true;
  for (const std::string& w : state_->media.warnings) state_->warnings.push_back(w);
  state_->message = absl::StrCat(state_->media.files_written, " files written, ",
                                 state_->media.files_skipped, " unchanged");
  return absl::OkStatus();
}

absl::Status RestoreJob::InstallConfig() {
  if (state_->env_text.empty()) {
    return absl::FailedPreconditionError("--restore-config: the backup has no env file");
  }
  ASSIGN_OR_RETURN(EnvInstallResult installed,
                   InstallEnvFile(*input_.runtime, state_->env_text, op_->id(), env_));
  state_->config_kept_as = installed.kept_as;
  op_->Log(
      v1::SEVERITY_INFO,
      absl::StrCat("installed ", installed.path,
                   installed.kept_as.empty() ? "" : ", the old one kept as " + installed.kept_as),
      "config");
  return absl::OkStatus();
}

absl::Status RestoreJob::Migrate() {
  TaskContext ctx{runner_, env_, &op_->cancel_token(), op_, "migrate"};
  ASSIGN_OR_RETURN(AppDatabase db, input_.runtime->Database());
  ASSIGN_OR_RETURN(state_->migrate,
                   RunDbMigrate(*input_.runtime, v1::MIGRATION_PHASE_ALL, db, ctx));
  state_->message = absl::StrCat(state_->migrate.migrations_size(), " migration(s); schema ",
                                 state_->migrate.schema_version_after());
  return absl::OkStatus();
}

absl::Status RestoreJob::Cleanup() {
  TaskContext ctx{runner_, env_, &op_->cancel_token(), op_, "cleanup"};
  v1::CleanupOptions options;  // the snap guide's: 1 day
  ASSIGN_OR_RETURN(auto commands, CleanupCommands(options, input_.default_concurrency));
  return RunTootctlCommands(commands, ctx);
}

absl::Status RestoreJob::Refresh() {
  TaskContext ctx{runner_, env_, &op_->cancel_token(), op_, "refresh"};
  v1::MediaRefreshOptions options;
  options.set_days(input_.options.refresh_days() > 0 ? input_.options.refresh_days() : 1);
  options.set_force(true);
  options.set_refresh_accounts(true);
  options.set_build_feeds(true);
  ASSIGN_OR_RETURN(auto commands, MediaRefreshCommands(options, input_.default_concurrency));
  return RunTootctlCommands(commands, ctx);
}

absl::Status RestoreJob::RunTootctlCommands(const std::vector<std::vector<std::string>>& commands,
                                            const TaskContext& ctx) {
  std::vector<std::string> summaries;
  for (const auto& args : commands) {
    ASSIGN_OR_RETURN(v1::TootctlResult result, RunTootctl(*input_.runtime, args, ctx));
    state_->tootctl.push_back(result);
    if (!result.summary().empty()) summaries.push_back(result.summary());
  }
  state_->message = absl::StrJoin(summaries, "; ");
  return absl::OkStatus();
}

absl::Status RestoreJob::StartServices() {
  TaskContext ctx{runner_, env_, nullptr, op_, "start_services"};
  RETURN_IF_ERROR(ControlServices(*input_.runtime, true, ctx));
  state_->services_stopped = false;
  return absl::OkStatus();
}

void RestoreJob::Report(const absl::Status& outcome) {
  if (Planned("report")) op_->StepStarted("report");
  const State& s = *state_;
  const v1::Operation snapshot = op_->Snapshot();
  // What is left to do by hand after a failure past the swap.
  std::vector<std::string> next;
  if (!outcome.ok() && s.swapped) {
    for (const v1::Step& step : snapshot.steps()) {
      const bool not_done =
          step.state() != v1::STEP_STATE_SUCCEEDED && step.state() != v1::STEP_STATE_SKIPPED;
      const bool was_planned = Planned(step.name());
      if (!not_done || !was_planned) continue;
      if (step.name() == "media") {
        next.push_back(absl::StrCat("mastodon-restore restore --media-only ", input_.source_path));
      } else if (step.name() == "migrate") {
        next.push_back("mastodon-restore db-migrate");
      } else if (step.name() == "cleanup") {
        next.push_back("mastodon-restore cleanup --days 1");
      } else if (step.name() == "refresh") {
        next.push_back(
            absl::StrCat("mastodon-restore media-refresh --days ",
                         input_.options.refresh_days() > 0 ? input_.options.refresh_days() : 1,
                         " --force --accounts --feeds"));
      }
    }
    if (s.services_stopped) next.push_back("start the app's services (they were kept stopped)");
  }
  op_->SetResult([&](v1::Operation* o) {
    v1::RestoreReport* r = o->mutable_restore_report();
    r->set_database(s.swapped ? s.db.database : "");
    r->set_previous_database(s.db.previous_database);
    *r->mutable_dump() = s.dump;
    r->mutable_dump()->clear_tables();
    for (const auto& [table, rows] : s.db.load.table_rows) {
      v1::TableRowCount* t = r->mutable_dump()->add_tables();
      t->set_table(table);
      t->set_rows(rows);
    }
    r->set_tables(static_cast<int64_t>(s.db.load.table_rows.size()));
    r->set_rows(s.db.load.rows);
    r->set_load_connections(s.db.load.jobs);
    r->set_media_files(s.media.files_written);
    r->set_media_bytes(s.media.bytes_written);
    r->set_media_files_skipped(s.media.files_skipped);
    r->set_target_server_version(s.target_server_version);
    r->set_schema_version_before_migrate(s.db.load.schema_version);
    r->set_schema_version(!s.migrate.schema_version_after().empty()
                              ? s.migrate.schema_version_after()
                              : s.db.load.schema_version);
    for (const std::string& w : s.db.load.rewrites) r->add_rewrites(w);
    for (const std::string& w : s.db.warnings) r->add_warnings(w);
    for (const std::string& w : s.warnings) r->add_warnings(w);
    *r->mutable_verification() = s.db.verification;
    for (const v1::TootctlResult& t : s.tootctl) *r->add_tootctl() = t;
    for (const v1::Step& step : snapshot.steps()) {
      if (!step.has_start_time() || !step.has_end_time()) continue;
      v1::StepDuration* d = r->add_durations();
      d->set_step(step.name());
      d->set_seconds(static_cast<double>(step.end_time().seconds() - step.start_time().seconds()) +
                     (step.end_time().nanos() - step.start_time().nanos()) / 1e9);
    }
    for (const std::string& k : s.secrets_differing) r->add_secrets_differing(k);
    for (const std::string& n : next) r->add_next_steps(n);
  });
  if (Planned("report")) op_->StepFinished("report", v1::STEP_STATE_SUCCEEDED, "");
}

}  // namespace mastodon_restore
