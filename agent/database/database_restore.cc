#include "agent/database/database_restore.h"

#include <libpq-fe.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/errors.h"
#include "agent/common/failpoint.h"
#include "agent/common/status_macros.h"
#include "agent/database/duplicates.h"
#include "agent/database/index_check.h"
#include "agent/database/load_role.h"
#include "agent/database/local_cluster.h"
#include "agent/database/logical_follow.h"
#include "agent/database/pg_connection.h"
#include "agent/database/target_ops.h"
#include "agent/database/verify.h"
#include "agent/dump/archive_check.h"
#include "agent/dump/archive_script.h"
#include "agent/dump/detector.h"

namespace mastodon_restore {
namespace {

namespace v1 = mastodon::restore::v1;

std::string Basename(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool IsPlainKind(ContentKind kind) {
  return kind == ContentKind::kPlainDump || kind == ContentKind::kPlainDumpall ||
         kind == ContentKind::kTarRestoreScript;
}

// Finds the dump `path` in the source and hands its stream to `load`.
class DumpStreamVisitor : public SourceVisitor {
 public:
  using Load = std::function<absl::Status(ByteStream*)>;
  // `archive`: the dump is a custom or tar archive (read whole, not entered).
  DumpStreamVisitor(std::string path, bool archive, Load load)
      : path_(std::move(path)), archive_(archive), load_(std::move(load)) {}
  Action OnFile(const SourceFile& file, ContentKind kind) override {
    if (file.path == path_) {
      if (archive_ && (kind == ContentKind::kPgCustom || kind == ContentKind::kTar)) {
        return Action::kRead;
      }
      if (!archive_ && IsPlainKind(kind)) return Action::kRead;
    }
    return IsArchive(kind) ? Action::kDescend : Action::kSkip;
  }
  absl::Status OnData(const SourceFile&, ContentKind, ByteStream* data) override {
    found_ = true;
    return load_(data);
  }
  void OnOther(const SourceFile&, const std::string&) override {}
  bool Done() const override { return found_; }
  bool found() const { return found_; }

 private:
  std::string path_;
  bool archive_;
  Load load_;
  bool found_ = false;
};

// Cancels the running statement of `conn` when `cancel` fires.
class CancelWatcher {
 public:
  CancelWatcher(const CancelToken* cancel, PgConnection* conn) {
    if (cancel == nullptr) return;
    thread_ = std::thread([this, cancel, conn]() {
      while (!done_.load()) {
        if (cancel->WaitFor(absl::Milliseconds(100))) {
          conn->Cancel();
          return;
        }
      }
    });
  }
  ~CancelWatcher() {
    done_.store(true);
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// The on-disk path of an archive-format dump (a directory archive is read in
// place); FAILED_PRECONDITION when it lives inside another container.
absl::StatusOr<std::string> ArchiveOnDisk(const DatabaseRestoreRequest& request,
                                          const v1::DumpInfo& dump) {
  struct stat st;
  if (::stat(request.source_path.c_str(), &st) != 0) {
    return ErrnoError(errno, "open", request.source_path);
  }
  if (dump.outer_compression_size() == 0) {
    if (dump.path() == Basename(request.source_path)) return request.source_path;
    if (S_ISDIR(st.st_mode)) {
      std::string candidate = absl::StrCat(request.source_path, "/", dump.path());
      if (::stat(candidate.c_str(), &st) == 0) return candidate;
    }
  }
  return UnableTo(absl::StatusCode::kFailedPrecondition, "restore", dump.path(),
                  "a directory-format dump is read in place: extract it from its container "
                  "first");
}

}  // namespace

absl::StatusOr<std::string> PickPgRestore(const std::string& postgres_root,
                                          const v1::DumpInfo& dump, Env* env) {
  return PickPgRestoreOf(postgres_root, InstalledPostgresVersions(env, postgres_root, "pg_restore"),
                         dump);
}

absl::StatusOr<std::string> PickPgRestoreOf(const std::string& postgres_root,
                                            const std::vector<int>& installed,
                                            const v1::DumpInfo& dump) {
  int vmin = 0;
  size_t dot = dump.archive_version().find('.');
  if (dot != std::string::npos) vmin = std::atoi(dump.archive_version().c_str() + dot + 1);
  int needed = std::max(PgRestoreMajorForArchive(vmin), MajorVersionOf(dump.dumper_version()));
  for (int major : installed) {
    if (major >= needed) {
      return absl::StrCat(postgres_root, "/", major, "/bin/pg_restore");
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat("unable to restore '", dump.path(), "': archive version ",
                   dump.archive_version(), " needs pg_restore >= ", needed,
                   ", installed: ", installed.empty() ? "none" : absl::StrJoin(installed, ", "),
                   " (install postgresql-client-", needed, ")"));
}

namespace {

// maintenance_work_mem of each of the load's `jobs` connections: an eighth
// of the available memory shared between them, 64 MB to 1 GB each.
int64_t MaintenanceWorkMemMb(Env* env, int jobs) {
  int64_t available_mb = env->Memory().available_bytes >> 20;
  return std::max<int64_t>(64, std::min<int64_t>(1024, available_mb / 8 / std::max(1, jobs)));
}

// ANALYZE of the tables and materialized views the load did not analyze
// and whose statistics it did not import (`load.analyzed`,
// `load.statistics_imported`, named as in the dump: quoted like
// format('%I.%I')); all of them when there are none.
absl::Status AnalyzeRest(PgConnection* conn, const LoadStats& load) {
  if (load.analyzed.empty() && load.statistics_imported.empty()) return conn->Exec("ANALYZE");
  ASSIGN_OR_RETURN(PgRows relations,
                   conn->Query("SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
                               "JOIN pg_namespace n ON n.oid = c.relnamespace "
                               "WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN "
                               "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE "
                               "'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"));
  std::set<std::string> done(load.analyzed.begin(), load.analyzed.end());
  done.insert(load.statistics_imported.begin(), load.statistics_imported.end());
  for (const auto& row : relations.rows) {
    if (!row[0].has_value() || done.count(*row[0]) > 0) continue;
    RETURN_IF_ERROR(conn->Exec(absl::StrCat("ANALYZE ", *row[0])));
  }
  return absl::OkStatus();
}

// How many connections load in parallel: `requested` (0: one per core),
// no more than the server has free beside the reader's own connection, the
// superuser one to the staging database and two spare (a warning says so
// when that is fewer).
absl::StatusOr<int> LoadConnections(PgConnection* admin, int requested, int cpus,
                                    std::vector<std::string>* warnings) {
  const int wanted = requested > 0 ? requested : std::max(1, cpus);
  ASSIGN_OR_RETURN(
      PgRows free_slots,
      admin->Query(
          "SELECT current_setting('max_connections')::int - "
          "current_setting('superuser_reserved_connections')::int - "
          "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"));
  int free = 0;
  if (!absl::SimpleAtoi(free_slots.Scalar(), &free)) return wanted;
  const int allowed = std::max(1, free - 4);
  if (wanted <= allowed) return wanted;
  warnings->push_back(absl::StrCat("loading with ", allowed, " connection", allowed == 1 ? "" : "s",
                                   " instead of ", wanted, ": the server has ", std::max(0, free),
                                   " free (max_connections)"));
  return allowed;
}

}  // namespace

absl::StatusOr<DatabaseRestoreResult> StageDatabase(const DatabaseRestoreRequest& request,
                                                    CommandRunner* runner, Env* env) {
  auto progress = [&](const std::string& step, const LoadProgress& p) {
    if (request.progress) request.progress(step, p);
  };
  DatabaseRestoreResult result;
  if (request.database.empty()) {
    return absl::InvalidArgumentError("unable to restore: no target database name");
  }

  // 1. What the dump is (detected by the caller).
  result.dump = request.dump;
  const v1::DumpInfo& dump = result.dump;
  const std::string& section = request.cluster_database;
  if (dump.kind() == v1::DUMP_KIND_CLUSTER && section.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("unable to restore '", dump.path(),
                                                   "': no database of the cluster dump named"));
  } else if (dump.kind() == v1::DUMP_KIND_TAR_RESTORE_SCRIPT) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unable to restore '", dump.path(),
        "': it is the restore.sql of a pg_dump tar archive; restore the tar archive itself"));
  }

  // 2. The target server.
  ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> admin,
                   PgConnection::Connect(request.conninfo, "postgres"));
  const int target_major = admin->server_version() / 10000;
  result.target_server_version =
      absl::StrCat(admin->server_version() / 10000, ".", admin->server_version() % 10000);
  ASSIGN_OR_RETURN(PgRows super, admin->Query("SELECT rolsuper FROM pg_roles WHERE rolname = "
                                              "current_user"));
  const bool superuser = super.Scalar() == "t";
  // Archive formats are rendered by the agent's own reader
  // (dump/archive_script.h); pg_restore only when the caller names one.
  const std::string& pg_restore = request.pg_restore;
  std::string archive_path;  // "" for an archive read as a stream
  if (dump.format() != v1::DUMP_FORMAT_PLAIN) {
    auto on_disk = ArchiveOnDisk(request, dump);
    if (on_disk.ok()) {
      archive_path = *on_disk;
    } else if (dump.format() == v1::DUMP_FORMAT_DIRECTORY) {
      return on_disk.status();  // a directory archive is read in place
    }
  }

  // The statements of an archive's TOC, before anything is created (plain
  // dumps and the SQL pg_restore renders are checked statement by
  // statement as they load).
  ClassifyOptions classify;
  classify.allow_privileged_roles = request.allow_privileged_roles;
  classify.extra_extensions = request.extra_extensions;
  if (!archive_path.empty() &&
      (dump.format() == v1::DUMP_FORMAT_CUSTOM || dump.format() == v1::DUMP_FORMAT_DIRECTORY)) {
    const std::string toc = dump.format() == v1::DUMP_FORMAT_DIRECTORY
                                ? absl::StrCat(archive_path, "/toc.dat")
                                : archive_path;
    ASSIGN_OR_RETURN(std::unique_ptr<FileStream> in, FileStream::Open(toc));
    RETURN_IF_ERROR(CheckArchiveToc(in.get(), dump.path(), classify));
  }

  // 3. The staging database, dropped again unless the swap happens.
  TargetDatabases targets(admin.get());
  result.staging_database = StagingDatabaseName(request.database, request.operation_id);
  ASSIGN_OR_RETURN(bool staging_exists, targets.Exists(result.staging_database));
  if (staging_exists) {
    return absl::AlreadyExistsError(absl::StrCat("unable to create staging database '",
                                                 result.staging_database, "': it exists"));
  }
  // The owner: the live database's, else the requested one if the role
  // exists. (Since PostgreSQL 15 the public schema belongs to the database
  // owner: the app's role must own the database to create tables.)
  std::string owner;
  ASSIGN_OR_RETURN(
      PgRows live_owner,
      admin->Query("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1",
                   {request.database}));
  if (!live_owner.rows.empty()) {
    owner = live_owner.Scalar();
  } else if (!request.owner.empty()) {
    ASSIGN_OR_RETURN(PgRows role, admin->Query("SELECT count(*) FROM pg_roles WHERE rolname = $1",
                                               {request.owner}));
    if (role.Scalar() != "0") {
      owner = request.owner;
    } else {
      result.warnings.push_back(absl::StrCat("role '", request.owner,
                                             "' does not exist: the database is owned by the "
                                             "restoring role"));
    }
  }
  // The dump is code: it loads as a temporary role without superuser
  // rights (load_role.h) that owns the staging database until the load
  // ends; the superuser connection only creates the database, the roles of
  // a cluster dump's globals and extensions the role may not create.
  std::unique_ptr<LoadRole> load_role;
  if (superuser) {
    auto role =
        LoadRole::Create(admin.get(), request.conninfo, LoadRoleName(result.staging_database));
    if (role.ok()) {
      load_role = std::move(*role);
    } else if (request.allow_superuser_load &&
               role.status().code() == absl::StatusCode::kFailedPrecondition) {
      result.warnings.push_back(absl::StrCat(
          "the dump was loaded as superuser (--allow-superuser-load): ", role.status().message()));
    } else {
      return role.status();
    }
  }
  const std::string final_owner = !owner.empty() ? owner : admin->current_user();
  // The staging database sorts as the dump's did (for a cluster dump, as
  // the restored section's CREATE DATABASE says).
  DatabaseLocale locale{dump.encoding(), dump.locale(), dump.locale_provider(),
                        dump.provider_locale()};
  for (const v1::ClusterDatabase& db : dump.databases()) {
    if (!section.empty() && db.name() == section) {
      locale =
          DatabaseLocale{db.encoding(), db.locale(), db.locale_provider(), db.provider_locale()};
    }
  }
  // The record names the staging database before it exists, and its OID as
  // soon as it is known (before it exists on PostgreSQL 15+).
  if (request.journal) {
    RETURN_IF_ERROR(request.journal([&](v1::DatabaseJournal* j) {
      j->set_staging_database(result.staging_database);
      j->set_staging_oid(0);
    }));
  }
  StagingOidJournal journal_oid = nullptr;
  if (request.journal) {
    journal_oid = [&](uint32_t oid, bool) {
      return request.journal([oid](v1::DatabaseJournal* j) { j->set_staging_oid(oid); });
    };
  }
  auto created = targets.CreateStaging(result.staging_database, locale,
                                       load_role != nullptr ? load_role->name() : owner,
                                       &result.warnings, journal_oid);
  if (!created.ok()) {
    // A failure after CREATE DATABASE (the journal, a failpoint) leaves it.
    ASSIGN_OR_RETURN(uint32_t oid, targets.OidOf(result.staging_database));
    if (oid != 0) DropStaged(request.conninfo, result.staging_database, oid);
    return created.status();
  }
  result.staging_oid = *created;
  // Roles the load creates: dropped again with the staging database when
  // the restore fails before the swap (then the load role, which owns it).
  std::vector<std::string> roles_created;
  auto drop_staging = [&]() {
    DropStaged(request.conninfo, result.staging_database, result.staging_oid);
    DropCreatedRoles(request.conninfo, roles_created);
    if (load_role != nullptr) load_role->Drop();
  };
  if (load_role != nullptr) {
    result.warnings.push_back(
        absl::StrCat("as superuser: created the staging database '", result.staging_database,
                     "'; the dump loads as the temporary role '", load_role->name(),
                     "' (no superuser rights, logged in over ", load_role->login_host(), ")"));
  }

  absl::Status loaded = [&]() -> absl::Status {
    // 4. Load.
    progress("load", LoadProgress());
    // Every connection of the load: no wait for the WAL flush at each
    // commit (the swap's commit flushes it all), memory for index builds.
    ASSIGN_OR_RETURN(int jobs,
                     LoadConnections(admin.get(), request.jobs, env->Cpus(), &result.warnings));
    auto connect_staging = [&]() -> absl::StatusOr<std::unique_ptr<PgConnection>> {
      std::unique_ptr<PgConnection> conn;
      if (load_role != nullptr) {
        ASSIGN_OR_RETURN(conn, load_role->Connect(result.staging_database));
      } else {
        ASSIGN_OR_RETURN(conn, PgConnection::Connect(request.conninfo, result.staging_database));
      }
      // One index build per connection when several connections build at
      // once (parallel workers only add coordination on top); the serial
      // load lets each build use every core.
      RETURN_IF_ERROR(conn->Exec(absl::StrCat(
          "SET synchronous_commit = off; SET maintenance_work_mem = '",
          MaintenanceWorkMemMb(env, jobs), "MB'; SET max_parallel_maintenance_workers = ",
          jobs > 1 ? 0 : std::max(1, env->Cpus()))));
      return conn;
    };
    // The superuser connection to the staging database, opened before the
    // dump runs (it takes no setting the dump could write).
    std::unique_ptr<PgConnection> privileged;
    std::vector<std::string> deferred_owners;
    if (load_role != nullptr) {
      ASSIGN_OR_RETURN(privileged,
                       PgConnection::Connect(request.conninfo, result.staging_database));
    }
    ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> staging, connect_staging());
    CancelWatcher watcher(request.cancel, staging.get());
    LoadOptions options;
    options.target_db = result.staging_database;
    options.source_db = dump.database_name();
    options.cluster_section = section;
    options.with_role_passwords = request.with_role_passwords;
    options.allow_privileged_roles = request.allow_privileged_roles;
    options.extra_extensions = request.extra_extensions;
    options.roles_created = &roles_created;
    options.target_major = target_major;
    options.keep_owners = request.keep_owners;
    options.bounds = request.bounds;
    options.superuser = superuser && load_role == nullptr;
    if (load_role != nullptr) {
      options.privileged = privileged.get();
      // Objects are given to ordinary roles only, by the superuser after
      // the load (the load role owns them until then, so what the dump does
      // on them next works without any membership).
      options.owner_statement =
          [&](const std::string& sql,
              const std::string& role) -> absl::StatusOr<LoadOptions::OwnerAction> {
        ASSIGN_OR_RETURN(LoadRole::Owner kind, load_role->CheckOwner(privileged.get(), role));
        switch (kind) {
          case LoadRole::Owner::kMissing:
            return LoadOptions::OwnerAction::kRun;
          case LoadRole::Owner::kOrdinary:
            deferred_owners.push_back(sql);
            return LoadOptions::OwnerAction::kDefer;
          case LoadRole::Owner::kPrivileged:
            break;
        }
        return LoadOptions::OwnerAction::kSkip;
      };
    }
    options.cancel = request.cancel;
    options.dump_name = dump.path();
    options.progress = [&](const LoadProgress& p) { progress("load", p); };
    options.jobs = jobs;
    options.connect = connect_staging;
    options.analyze = request.analyze;
    options.hold_autovacuum = true;  // the staging database is ours until the swap
    options.freeze = request.freeze;
    // Unique builds the data violates (and what depends on them) wait for
    // the duplicates check below; the rest of the dump loads.
    options.collect_failed_builds = true;
    if (request.chunk_bytes > 0) options.chunk_bytes = request.chunk_bytes;
    auto load = [&](ByteStream* data) -> absl::Status {
      ASSIGN_OR_RETURN(result.load, LoadPlainSql(data, staging.get(), options));
      return absl::OkStatus();
    };
    // An archive is rendered as SQL for the same loader: by the agent's
    // reader (a directory, or a custom/tar archive as a file or a stream),
    // or by the caller's pg_restore.
    auto restore_archive = [&](ByteStream* input) -> absl::Status {
      if (pg_restore.empty()) {
        // A directory, or a custom or tar archive as a file, lets the
        // workers read the tables' data apart (LoadArchiveScript).
        std::unique_ptr<ByteStream> file;
        absl::StatusOr<std::unique_ptr<ArchiveScript>> script;
        if (dump.format() == v1::DUMP_FORMAT_DIRECTORY) {
          script = ArchiveScript::OpenDirectory(archive_path);
        } else if (dump.format() == v1::DUMP_FORMAT_CUSTOM && input == nullptr) {
          script = ArchiveScript::OpenCustomFile(archive_path);
        } else if (dump.format() == v1::DUMP_FORMAT_TAR && input == nullptr) {
          script = ArchiveScript::OpenTarFile(archive_path);
        } else {
          if (input == nullptr) {
            ASSIGN_OR_RETURN(file, FileStream::Open(archive_path));
            input = file.get();
          }
          script = dump.format() == v1::DUMP_FORMAT_TAR ? ArchiveScript::OpenTar(input)
                                                        : ArchiveScript::OpenCustom(input);
        }
        if (!script.ok()) return script.status();
        ASSIGN_OR_RETURN(result.load, LoadArchiveScript(script->get(), staging.get(), options));
        return absl::OkStatus();
      }
      CommandSpec cmd;
      cmd.argv = {pg_restore, "--file=-"};
      if (input == nullptr) cmd.argv.push_back(archive_path);
      cmd.stdin_stream = input;
      cmd.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
      ASSIGN_OR_RETURN(std::unique_ptr<ByteStream> sql,
                       runner->StartReading(cmd, "convert with pg_restore"));
      return load(sql.get());
    };
    if (dump.format() != v1::DUMP_FORMAT_PLAIN && !archive_path.empty()) {
      RETURN_IF_ERROR(restore_archive(nullptr));
    } else {
      const bool archive = dump.format() != v1::DUMP_FORMAT_PLAIN;
      DumpStreamVisitor visitor(dump.path(), archive,
                                archive ? DumpStreamVisitor::Load(restore_archive) : load);
      RETURN_IF_ERROR(WalkSource(request.source_path, request.source, runner, &visitor));
      if (!visitor.found()) {
        return absl::NotFoundError(absl::StrCat("unable to find '", dump.path(), "' again in '",
                                                request.source_path, "'"));
      }
    }
    for (const std::string& w : result.load.warnings) result.warnings.push_back(w);
    if (request.cancel != nullptr && request.cancel->cancelled()) {
      return absl::CancelledError("restore cancelled");
    }

    // 5. Statistics, collation check.
    progress("analyze", LoadProgress());
    if (request.analyze) RETURN_IF_ERROR(AnalyzeRest(staging.get(), result.load));
    auto collation = staging->Query(
        "SELECT datcollversion IS DISTINCT FROM pg_database_collation_actual_version(oid) "
        "FROM pg_database WHERE datname = current_database() AND datcollversion IS NOT NULL");
    if (collation.ok() && collation->Scalar() == "t") {
      result.warnings.push_back(
          "collation version of the restored database differs from the operating system's: "
          "REINDEX, then ALTER DATABASE ... REFRESH COLLATION VERSION");
    }

    // 5b. Unique indexes the dump's data violates: the duplicates found
    // (and repaired with fix-duplicates' rules when asked) on the load's
    // own connection, since key expressions may call the dump's functions.
    // CheckStagedBeforeSwap refuses the swap for those left.
    if (!result.load.failed_builds.empty()) {
      progress("duplicates", LoadProgress());
      ASSIGN_OR_RETURN(
          DuplicatesOutcome duplicates,
          ResolveDuplicates(staging.get(), result.load.failed_builds, request.repair_duplicates));
      v1::PreSwapChecks& checks = result.pre_swap;
      for (auto& f : duplicates.findings) *checks.add_duplicates() = std::move(f);
      for (auto& d : duplicates.dependent_statements) checks.add_dependent_statements(d);
      for (auto& r : duplicates.repaired_rows) *checks.add_repaired_rows() = std::move(r);
      checks.set_repaired_row_count(duplicates.repaired_row_count);
      // The verification expects the rows that are left.
      std::vector<std::string> removed;
      for (const auto& [table, n] : duplicates.deleted_rows) {
        auto it = result.load.table_rows.find(table);
        if (it != result.load.table_rows.end()) it->second -= n;
        result.load.rows -= n;
        removed.push_back(absl::StrCat(table, " ", n));
      }
      if (!removed.empty()) {
        result.warnings.push_back(
            absl::StrCat("--repair-duplicates removed rows (the database's cascades included): ",
                         absl::StrJoin(removed, ", ")));
      }
    }

    // 6. What the load role owns goes to the owner; the role is dropped
    // once its connections are closed (below).
    if (load_role != nullptr) {
      for (const std::string& role : roles_created) {
        result.warnings.push_back(
            absl::StrCat("as superuser: created role '", role, "' of the cluster dump's globals"));
      }
      // Classified statements naming objects by qualified names: nothing of
      // the dump runs in them.
      RETURN_IF_ERROR(privileged->Exec("SET search_path = pg_catalog, pg_temp"));
      for (const std::string& sql : deferred_owners) {
        absl::Status s = privileged->Exec(sql);
        if (!s.ok()) {
          return absl::Status(s.code(), absl::StrCat("unable to give an object of '", dump.path(),
                                                     "' to its owner: ", s.message()));
        }
      }
      RETURN_IF_ERROR(load_role->Finish(privileged.get(), result.staging_database, final_owner));
    }
    return absl::OkStatus();
  }();
  if (!loaded.ok()) {
    drop_staging();
    return loaded;
  }
  if (load_role != nullptr) load_role->Drop();
  return result;
}

bool DropStaged(const std::string& conninfo, const std::string& staging_database,
                uint32_t staging_oid) {
  if (staging_database.empty()) return false;
  auto fresh = PgConnection::Connect(conninfo, "postgres");
  if (!fresh.ok()) return false;
  auto dropped = TargetDatabases(fresh->get()).DropIfOid(staging_database, staging_oid);
  return dropped.ok() && *dropped;
}

void DropCreatedRoles(const std::string& conninfo, const std::vector<std::string>& roles) {
  if (roles.empty()) return;
  auto fresh = PgConnection::Connect(conninfo, "postgres");
  if (!fresh.ok()) return;
  for (const std::string& role : roles) {
    (*fresh)
        ->Exec(absl::StrCat("DROP ROLE IF EXISTS ", (*fresh)->QuoteIdentifier(role)))
        .IgnoreError();
  }
}

absl::Status VerifyStaged(const DatabaseRestoreRequest& request, DatabaseRestoreResult* result) {
  if (request.progress) request.progress("verify", LoadProgress());
  absl::Status verified = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> staging,
                     PgConnection::Connect(request.conninfo, result->staging_database));
    VerifyExpectations expected;
    expected.table_rows = result->load.table_rows;
    expected.schema_version = result->load.schema_version;
    ASSIGN_OR_RETURN(result->verification,
                     VerifyDatabase(staging.get(), result->staging_database, expected));
    if (!result->verification.passed()) {
      std::vector<std::string> failed;
      for (const auto& c : result->verification.checks()) {
        if (!c.passed()) failed.push_back(absl::StrCat(c.name(), ": ", c.message()));
      }
      return absl::DataLossError(absl::StrCat("verification of the restored database failed: ",
                                              absl::StrJoin(failed, "; ")));
    }
    return absl::OkStatus();
  }();
  if (!verified.ok()) {
    DropStaged(request.conninfo, result->staging_database, result->staging_oid);
    DropCreatedRoles(request.conninfo, result->load.created_roles);
  }
  return verified;
}

absl::Status PreSwapRefusal(const v1::PreSwapChecks& checks) {
  std::vector<std::string> why;
  if (checks.duplicates_size() > 0) {
    std::vector<std::string> indexes;
    bool repairable = false;
    for (const v1::DuplicateFinding& f : checks.duplicates()) {
      indexes.push_back(absl::StrCat(f.index(), " on ", f.table(), ": ", f.duplicate_keys(),
                                     " duplicated key", f.duplicate_keys() == 1 ? "" : "s", ", ",
                                     f.duplicate_rows(), " rows"));
      repairable = repairable || (!f.repair_rule().empty() && !f.repaired());
    }
    why.push_back(absl::StrCat(
        "the dump's data violates ", checks.duplicates_size(), " unique index",
        checks.duplicates_size() == 1 ? "" : "es", " of its own schema (",
        absl::StrJoin(indexes, "; "), ")",
        checks.dependent_statements_size() > 0
            ? absl::StrCat(", and ", checks.dependent_statements_size(),
                           " statement(s) depending on them were not run")
            : "",
        repairable ? "; --repair-duplicates applies tootctl maintenance fix-duplicates' rules "
                     "to the tables they cover"
                   : ""));
  }
  if (checks.index_check().failures_size() > 0) {
    why.push_back(absl::StrCat(checks.index_check().failures_size(), " index(es) failed amcheck: ",
                               absl::StrJoin(checks.index_check().failures(), "; ")));
  }
  if (why.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("refusing the swap: ", absl::StrJoin(why, "; "),
                                                    " (the live database is untouched)"));
}

absl::Status CheckStagedBeforeSwap(const DatabaseRestoreRequest& request,
                                   DatabaseRestoreResult* result) {
  if (request.progress) request.progress("checks", LoadProgress());
  absl::Status checked = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> staging,
                     PgConnection::Connect(request.conninfo, result->staging_database));
    ASSIGN_OR_RETURN(*result->pre_swap.mutable_index_check(), CheckBtreeIndexes(staging.get()));
    return PreSwapRefusal(result->pre_swap);
  }();
  result->pre_swap.set_passed(checked.ok());
  if (!checked.ok()) {
    DropStaged(request.conninfo, result->staging_database, result->staging_oid);
    DropCreatedRoles(request.conninfo, result->load.created_roles);
  }
  return checked;
}

absl::Status SwapInStaged(const DatabaseRestoreRequest& request, Env* env,
                          DatabaseRestoreResult* result) {
  if (request.progress) request.progress("swap", LoadProgress());
  // Never a database whose checks refuse it (whatever the caller did).
  RETURN_IF_ERROR(PreSwapRefusal(result->pre_swap));
  absl::Status swapped = [&]() -> absl::Status {
    if (request.cancel != nullptr && request.cancel->cancelled()) {
      return absl::CancelledError("restore cancelled before the swap");
    }
    ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> admin,
                     PgConnection::Connect(request.conninfo, "postgres"));
    TargetDatabases targets(admin.get());
    // The live database is kept as <db>__previous_<time>[_<n>].
    ASSIGN_OR_RETURN(std::string previous,
                     targets.UnusedPreviousName(request.database, env->Now()));
    SwapJournal journal = nullptr;
    if (request.journal) {
      journal = [&](uint32_t live_oid, uint32_t staging_oid) {
        return request.journal([&](v1::DatabaseJournal* j) {
          j->set_staging_database(result->staging_database);
          j->set_staging_oid(staging_oid);
          j->set_swap_phase(v1::SWAP_PHASE_STARTED);
          j->set_live_database(request.database);
          j->set_live_oid(live_oid);
          j->set_previous_database(live_oid != 0 ? previous : "");
        });
      };
    }
    ASSIGN_OR_RETURN(result->previous_database,
                     targets.SwapIn(request.database, result->staging_database, previous, journal));
    result->database = request.database;
    if (request.journal) {
      RETURN_IF_ERROR(
          request.journal([](v1::DatabaseJournal* j) { j->set_swap_phase(v1::SWAP_PHASE_DONE); }));
      RETURN_IF_ERROR(MR_FAILPOINT("swap.after_journal_done"));
    }
    if (request.drop_previous && !result->previous_database.empty()) {
      RETURN_IF_ERROR(targets.Drop(result->previous_database));
      result->previous_database.clear();
    }
    return absl::OkStatus();
  }();
  if (!swapped.ok() && result->database.empty()) {
    // (By OID: after a commit the staging OID bears the live name and stays.)
    DropStaged(request.conninfo, result->staging_database, result->staging_oid);
  }
  return swapped;
}

absl::StatusOr<DatabaseRestoreResult> RestoreDatabase(const DatabaseRestoreRequest& request,
                                                      CommandRunner* runner, Env* env) {
  ASSIGN_OR_RETURN(DatabaseRestoreResult result, StageDatabase(request, runner, env));
  RETURN_IF_ERROR(VerifyStaged(request, &result));
  RETURN_IF_ERROR(CheckStagedBeforeSwap(request, &result));
  RETURN_IF_ERROR(SwapInStaged(request, env, &result));
  return result;
}

absl::StatusOr<v1::RollbackResult> RollbackDatabase(const std::string& conninfo,
                                                    const std::string& database,
                                                    const std::string& previous, absl::Time now) {
  ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> admin,
                   PgConnection::Connect(conninfo, "postgres"));
  TargetDatabases targets(admin.get());
  std::string from = previous;
  if (from.empty()) {
    ASSIGN_OR_RETURN(std::vector<std::string> kept, targets.ListPrevious(database));
    if (kept.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("unable to roll back '", database,
                                                        "': no '", PreviousDatabasePrefix(database),
                                                        "*' database kept"));
    }
    from = kept.front();
  } else if (!absl::StartsWith(from, PreviousDatabasePrefix(database))) {
    return absl::InvalidArgumentError(absl::StrCat("unable to roll back '", database, "' to '",
                                                   from, "': not one of its previous databases"));
  }
  ASSIGN_OR_RETURN(std::string replaced, targets.UnusedReplacedName(database, now));
  ASSIGN_OR_RETURN(std::string kept_as, targets.SwapIn(database, from, replaced));
  v1::RollbackResult result;
  result.set_restored_database(from);
  result.set_replaced_database_renamed_to(kept_as);
  return result;
}

namespace {

// The load role of a staging database a crash left (LoadRoleName), once the
// database is gone: dropped when it exists and has no superuser rights.
void DropLeftoverLoadRole(PgConnection* admin, const std::string& staging_database) {
  const std::string role = LoadRoleName(staging_database);
  auto found = admin->Query(
      "SELECT count(*) FROM pg_roles WHERE rolname = $1 AND NOT rolsuper AND NOT rolcreaterole",
      {role});
  if (!found.ok() || found->Scalar() == "0") return;
  admin->Exec(absl::StrCat("DROP ROLE IF EXISTS ", admin->QuoteIdentifier(role))).IgnoreError();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> RecoverDatabaseJournal(const std::string& conninfo,
                                                                const v1::DatabaseJournal& j,
                                                                bool* swapped_out) {
  std::vector<std::string> done;
  bool ignored = false;
  bool* const committed = swapped_out != nullptr ? swapped_out : &ignored;
  *committed = false;
  if (j.staging_database().empty() && j.live_oid() == 0) return done;
  ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> admin,
                   PgConnection::Connect(conninfo, "postgres"));
  TargetDatabases targets(admin.get());
  // A kill during CREATE DATABASE does not stop the server's backend: it may
  // still commit the staging database after this looks. End it first.
  if (!j.staging_database().empty()) {
    RETURN_IF_ERROR(targets.EndCreatesOf(j.staging_database(), absl::Seconds(30)));
  }
  auto allow = [&](uint32_t oid, const std::string& expected_name) -> absl::Status {
    ASSIGN_OR_RETURN(std::string name, targets.NameOf(oid));
    if (name.empty() || name != expected_name) return absl::OkStatus();
    ASSIGN_OR_RETURN(bool allowed, targets.AllowsConnections(name));
    if (allowed) return absl::OkStatus();
    RETURN_IF_ERROR(targets.SetAllowConnections(name, true));
    done.push_back(absl::StrCat("'", name, "' accepts connections again"));
    return absl::OkStatus();
  };
  ASSIGN_OR_RETURN(std::string staging_now, targets.NameOf(j.staging_oid()));
  const bool swapped = j.swap_phase() != v1::SWAP_PHASE_UNSPECIFIED && j.staging_oid() != 0 &&
                       !j.live_database().empty() && staging_now == j.live_database();
  *committed = swapped;
  if (swapped) {
    if (j.swap_phase() == v1::SWAP_PHASE_STARTED) {
      done.push_back(absl::StrCat(
          "the swap had committed: '", j.live_database(), "' is the restored database",
          j.previous_database().empty()
              ? std::string()
              : absl::StrCat(", the previous one is kept as '", j.previous_database(), "'")));
    }
    RETURN_IF_ERROR(allow(j.staging_oid(), j.live_database()));
    if (j.live_oid() != 0) RETURN_IF_ERROR(allow(j.live_oid(), j.previous_database()));
    return done;
  }
  if (j.swap_phase() == v1::SWAP_PHASE_STARTED) {
    done.push_back(
        absl::StrCat("the swap had not committed: '", j.live_database(), "' is unchanged"));
  }
  if (j.live_oid() != 0) RETURN_IF_ERROR(allow(j.live_oid(), j.live_database()));
  // A migration's subscription lives in the staging database, which cannot
  // be dropped while it does; dropping it drops its slot on the old server
  // when that server answers. The old server's publication and replica
  // identities are out of reach: said.
  auto drop_follow = [&](const std::string& staging) -> absl::Status {
    if (j.follow_name().empty()) return absl::OkStatus();
    auto session = PgConnection::Connect(conninfo, staging);
    if (session.ok()) {
      bool slot_left = false;
      RETURN_IF_ERROR(DropFollowSubscription(session->get(), j.follow_name(), &slot_left));
      done.push_back(absl::StrCat(
          "dropped the subscription ", j.follow_name(),
          slot_left ? absl::StrCat(" (the old server was not reached: its replication slot ",
                                   j.follow_name(), " is left there)")
                    : std::string()));
    }
    done.push_back(absl::StrCat(
        "the old server may keep the publication ", j.follow_name(),
        j.replica_identity_full().empty()
            ? std::string()
            : absl::StrCat(" and REPLICA IDENTITY FULL on ",
                           absl::StrJoin(j.replica_identity_full(), ", ")),
        ": DROP PUBLICATION ", j.follow_name(),
        j.replica_identity_full().empty() ? "" : " and ALTER TABLE ... REPLICA IDENTITY DEFAULT",
        " there"));
    return absl::OkStatus();
  };
  if (j.staging_oid() != 0) {
    if (!staging_now.empty() && staging_now == j.staging_database()) {
      RETURN_IF_ERROR(drop_follow(staging_now));
      RETURN_IF_ERROR(targets.Drop(staging_now));
      DropLeftoverLoadRole(admin.get(), staging_now);
      done.push_back(absl::StrCat("dropped a staging database '", staging_now, "' (OID ",
                                  j.staging_oid(), ")"));
    }
  } else if (!j.staging_database().empty()) {
    // Created, or not, before its OID was recorded (PostgreSQL < 15): the
    // name holds this operation's id.
    ASSIGN_OR_RETURN(bool exists, targets.Exists(j.staging_database()));
    if (exists) RETURN_IF_ERROR(drop_follow(j.staging_database()));
    ASSIGN_OR_RETURN(bool dropped, targets.DropIfOid(j.staging_database(), 0));
    if (dropped) {
      DropLeftoverLoadRole(admin.get(), j.staging_database());
      done.push_back(absl::StrCat("dropped a staging database '", j.staging_database(),
                                  "' (created before its OID was recorded)"));
    }
  }
  return done;
}

std::string ConnInfoForRecord(const std::string& conninfo, bool* had_password) {
  *had_password = false;
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (options == nullptr) {
    if (error != nullptr) PQfreemem(error);
    *had_password = true;  // unparsable: keep nothing of it
    return "";
  }
  std::string out;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || o->val[0] == '\0') continue;
    const std::string key = o->keyword;
    if (key == "password") {
      *had_password = true;
      continue;
    }
    std::string value;
    for (const char* c = o->val; *c != '\0'; ++c) {
      if (*c == '\\' || *c == '\'') value.push_back('\\');
      value.push_back(*c);
    }
    absl::StrAppend(&out, out.empty() ? "" : " ", key, "='", value, "'");
  }
  PQconninfoFree(options);
  return out;
}

}  // namespace mastodon_restore
