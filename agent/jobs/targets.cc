#include "agent/jobs/targets.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/archive/path_rules.h"
#include "agent/common/status_macros.h"
#include "agent/database/database_restore.h"

namespace mastodon_restore {

namespace v1 = ::mastodon::restore::v1;

absl::StatusOr<std::string> TargetConnInfo(const v1::DatabaseTarget& target, const JobEnv& env) {
  if (!target.conninfo().empty()) return target.conninfo();
  if (!env.target_conninfo.empty()) return env.target_conninfo;
  if (const Runtime* runtime = env.app_runtime(); runtime != nullptr) {
    ASSIGN_OR_RETURN(AppDatabase db, runtime->Database());
    return db.conninfo;
  }
  return absl::FailedPreconditionError(
      "no target PostgreSQL server: give one in the request (--target-conninfo), start the "
      "agent with --target-conninfo, or let it find a Mastodon runtime");
}

std::optional<AppDatabase> RuntimeDatabaseFor(const v1::DatabaseTarget& target, const JobEnv& env) {
  if (!target.conninfo().empty() || !env.target_conninfo.empty()) return std::nullopt;
  const Runtime* runtime = env.app_runtime();
  if (runtime == nullptr) return std::nullopt;
  auto db = runtime->Database();
  if (!db.ok()) return std::nullopt;
  return *db;
}

void JournalTarget::Fill(v1::DatabaseJournal* journal) const {
  journal->set_connection(connection);
  journal->set_conninfo(conninfo);
  journal->set_conninfo_password_omitted(password_omitted);
}

JournalTarget JournalTargetFor(const v1::DatabaseTarget& target, const JobEnv& env) {
  JournalTarget out;
  if (!target.conninfo().empty()) {
    out.connection = v1::JOURNAL_CONNECTION_REQUEST;
    out.conninfo = ConnInfoForRecord(target.conninfo(), &out.password_omitted);
  } else if (!env.target_conninfo.empty()) {
    out.connection = v1::JOURNAL_CONNECTION_AGENT_TARGET;
  } else {
    out.connection = v1::JOURNAL_CONNECTION_RUNTIME;
  }
  return out;
}

absl::StatusOr<NamedTarget> ResolveNamedTarget(const v1::DatabaseTarget& target,
                                               absl::string_view verb, const JobEnv& env) {
  NamedTarget named;
  ASSIGN_OR_RETURN(named.conninfo, TargetConnInfo(target, env));
  named.database = target.database();
  if (named.database.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(verb, " needs the database name (target.database)"));
  }
  return named;
}

absl::StatusOr<RestoreDatabaseTarget> ResolveRestoreDatabase(const v1::RestoreOptions& opts,
                                                             const JobEnv& env,
                                                             const DumpHeadReader& read_head) {
  RestoreDatabaseTarget out;
  ASSIGN_OR_RETURN(out.conninfo, TargetConnInfo(opts.target(), env));
  std::optional<AppDatabase> app_db = RuntimeDatabaseFor(opts.target(), env);
  std::string database = !opts.target_db().empty()           ? opts.target_db()
                         : !opts.target().database().empty() ? opts.target().database()
                         : app_db.has_value()                ? app_db->database
                                                             : "";
  BackupEnvFacts env_facts;
  // Only the head of the dump is read, and only when the request and the
  // runtime leave something open.
  if (database.empty() || !app_db.has_value() || app_db->owner.empty()) {
    ASSIGN_OR_RETURN(DumpHead head, read_head());
    env_facts = head.env;
    if (database.empty()) {
      const v1::DumpInfo& dump = head.dump;
      database = dump.kind() == v1::DUMP_KIND_CLUSTER
                     ? (!opts.source_db().empty() ? opts.source_db() : dump.mastodon_database())
                     : dump.database_name();
    }
    if (database.empty()) database = env_facts.db_name;
    if (database.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the dump '", head.dump.path(),
                       "' does not name its database and the backup has no DB_NAME: give "
                       "--target-db"));
    }
  }
  if (database.size() > 63 || database.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("invalid database name '", database, "'"));
  }
  out.database = database;
  out.owner = app_db.has_value() && !app_db->owner.empty() ? app_db->owner : env_facts.db_user;
  return out;
}

absl::StatusOr<RestoreMediaTarget> ResolveRestoreMedia(const v1::RestoreOptions& opts,
                                                       const JobEnv& env) {
  RestoreMediaTarget out;
  std::string root = env.media_dir;
  std::optional<MediaLocation> app_media;
  if (root.empty() && env.app_runtime() != nullptr) {
    auto media = env.app_runtime()->Media();
    if (media.ok()) {
      app_media = *media;
      root = media->dir;
    }
  }
  if (root.empty()) {
    if (!opts.media_only()) return out;  // the media step is skipped, saying why
    return absl::FailedPreconditionError(
        "no media directory: start the agent with --media-dir or on a host with a Mastodon "
        "runtime");
  }
  if (app_media.has_value() && !app_media->from_app_file.empty()) {
    // A write location from a file the app user can write (or a restored
    // config installed): only inside a root the operator configured.
    std::vector<std::string> roots = env.media_roots;
    if (!env.media_dir.empty()) roots.push_back(env.media_dir);
    std::optional<std::string> inside = ResolveInsideRoots(root, roots);
    if (!inside.has_value()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "refusing the media directory '", root, "' from ", app_media->from_app_file,
          " (a file the app user can write): it is not inside a configured media root (",
          roots.empty() ? "none" : absl::StrJoin(roots, ", "),
          "); start the agent with --media-root DIR naming a directory that holds it"));
    }
    root = *inside;
  }
  std::string media_dir = opts.media_dir().empty() ? root : opts.media_dir();
  auto normalized = NormalizeEntryPath(media_dir.substr(media_dir[0] == '/' ? 1 : 0));
  if (media_dir[0] != '/' || !normalized.ok() || !IsWithin("/" + *normalized, root)) {
    return absl::PermissionDeniedError(absl::StrCat("media directory '", media_dir,
                                                    "' is not the agent's media directory (", root,
                                                    ") or inside it"));
  }
  out.dir = "/" + *normalized;
  out.resolved_dir = ResolveExistingPrefix(out.dir);
  const std::string resolved_root = ResolveExistingPrefix(root);
  if (!IsWithin(out.resolved_dir, resolved_root)) {
    return absl::PermissionDeniedError(
        absl::StrCat("media directory '", media_dir, "' resolves to '", out.resolved_dir,
                     "', outside the agent's media directory (", resolved_root, ")"));
  }
  if (app_media.has_value() && app_media->uid.has_value()) {
    out.uid = app_media->uid;
    out.gid = app_media->gid;
  } else {
    auto owner = env.env->OwnerOf(out.dir);
    if (!owner.ok()) owner = env.env->OwnerOf(out.dir.substr(0, out.dir.find_last_of('/')));
    if (owner.ok()) {
      out.uid = owner->uid;
      out.gid = owner->gid;
    }
  }
  return out;
}

absl::StatusOr<const Runtime*> AppRuntime(absl::string_view task, const JobEnv& env) {
  const Runtime* runtime = env.app_runtime();
  if (runtime == nullptr) {
    const std::vector<std::string> none;
    const std::vector<std::string>& checked = env.runtime != nullptr ? env.runtime->checked : none;
    return absl::FailedPreconditionError(
        absl::StrCat(task, " needs a Mastodon runtime and none was found (",
                     checked.empty() ? "runtime none" : absl::StrJoin(checked, "; "),
                     "): start the agent with --runtime snap|compose|systemd"));
  }
  return runtime;
}

}  // namespace mastodon_restore
