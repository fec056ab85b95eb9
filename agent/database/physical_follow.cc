#include "agent/database/physical_follow.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

std::string Major(int server_version) { return absl::StrCat(server_version / 10000); }

}  // namespace

absl::StatusOr<PhysicalFacts> ReadPhysicalFacts(PgSession* session) {
  PhysicalFacts facts;
  facts.server_version = session->server_version();
  if (facts.server_version < 100000) return facts;  // CheckPhysicalFollow says why not
  ASSIGN_OR_RETURN(
      PgRows settings,
      session->Query(
          "SELECT current_setting('wal_level'), current_setting('max_replication_slots'),"
          " (SELECT count(*) FROM pg_replication_slots), current_setting('max_wal_senders'),"
          " (SELECT count(*) FROM pg_stat_replication),"
          " (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user),"
          " (SELECT sum(pg_database_size(oid)) FROM pg_database),"
          " (SELECT datcollate FROM pg_database WHERE datname = current_database()),"
          " current_setting('cluster_name'),"
          " (SELECT setting FROM pg_settings WHERE name = 'data_directory'),"
          " (SELECT rolname FROM pg_roles WHERE oid = 10)"));
  if (settings.rows.size() != 1 || settings.rows[0].size() != 11) {
    return absl::InternalError("unable to read the server's replication settings: no row");
  }
  const auto& row = settings.rows[0];
  facts.wal_level = row[0].value_or("");
  facts.max_replication_slots = static_cast<int>(IntOrZero(row[1]));
  facts.used_replication_slots = static_cast<int>(IntOrZero(row[2]));
  facts.max_wal_senders = static_cast<int>(IntOrZero(row[3]));
  facts.used_wal_senders = static_cast<int>(IntOrZero(row[4]));
  facts.replication = row[5].value_or("") == "t";
  facts.cluster_bytes = IntOrZero(row[6]);
  facts.collation_locale = row[7].value_or("");
  facts.cluster_name = row[8].value_or("");
  facts.data_directory = row[9].value_or("");
  facts.bootstrap_superuser = row[10].value_or("");
  facts.collation_provider = "libc";
  if (facts.server_version >= 150000) {
    // ICU as a database's default collation exists from 15 on.
    ASSIGN_OR_RETURN(PgRows provider,
                     session->Query("SELECT datlocprovider, daticulocale FROM pg_database"
                                    " WHERE datname = current_database()"));
    if (!provider.rows.empty() && provider.rows[0][0].value_or("") == "i") {
      facts.collation_provider = "icu";
      facts.collation_locale = provider.rows[0][1].value_or("");
    }
  }
  ASSIGN_OR_RETURN(PgRows spaces,
                   session->Query("SELECT spcname FROM pg_tablespace"
                                  " WHERE spcname NOT IN ('pg_default', 'pg_global') ORDER BY 1"));
  facts.tablespaces = spaces.FirstColumn();
  ASSIGN_OR_RETURN(PgRows databases,
                   session->Query("SELECT datname FROM pg_database"
                                  " WHERE datname NOT IN ('template0', 'template1') ORDER BY 1"));
  facts.databases = databases.FirstColumn();
  auto version = CollationLibraryVersion(session, facts.collation_provider, facts.collation_locale);
  facts.collation_version = version.ok() ? *version : "?";
  return facts;
}

absl::StatusOr<std::string> CollationLibraryVersion(PgSession* session, const std::string& provider,
                                                    const std::string& locale) {
  if (provider == "libc" && (locale == "C" || locale == "POSIX")) return std::string();
  // A collation in the session's temporary schema, rolled back at once.
  RETURN_IF_ERROR(session->Exec("BEGIN"));
  auto created = session->Exec(absl::StrCat(
      "CREATE COLLATION pg_temp.mastodon_restore_probe (provider = ",
      provider == "icu" ? "icu" : "libc", ", locale = ", session->QuoteLiteral(locale), ")"));
  if (!created.ok()) {
    absl::Status failed =
        SessionError(session, created, absl::StrCat("look up the locale ", locale));
    session->Exec("ROLLBACK").IgnoreError();
    return absl::NotFoundError(failed.message());
  }
  auto version = session->Query(
      "SELECT pg_collation_actual_version(oid) FROM pg_collation"
      " WHERE collname = 'mastodon_restore_probe' AND collnamespace = pg_my_temp_schema()");
  session->Exec("ROLLBACK").IgnoreError();
  if (!version.ok()) {
    return SessionError(session, version.status(), "read a collation's library version");
  }
  return version->rows.empty() ? std::string() : version->rows[0][0].value_or("");
}

absl::Status CheckPhysicalFollow(const PhysicalFacts& source, const PhysicalFacts& target,
                                 const std::string& target_collation_version) {
  if (source.server_version < 120000) {
    return absl::FailedPreconditionError(
        absl::StrCat("the old server is PostgreSQL ", Major(source.server_version),
                     "; a physical follow needs 12 or newer (pg_promote): migrate it by logical "
                     "replication"));
  }
  std::vector<std::string> reasons;
  if (source.server_version / 10000 != target.server_version / 10000) {
    reasons.push_back(absl::StrCat("the old server is PostgreSQL ", Major(source.server_version),
                                   " and this one ", Major(target.server_version),
                                   ": a physical copy runs only on the same major (migrate by "
                                   "logical replication)"));
  }
  if (source.wal_level != "replica" && source.wal_level != "logical") {
    reasons.push_back(absl::StrCat("the old server's wal_level is '", source.wal_level,
                                   "': set wal_level = replica and restart it"));
  }
  if (source.max_replication_slots - source.used_replication_slots < 1) {
    reasons.push_back(absl::StrCat(
        "the old server has no free replication slot (", source.used_replication_slots, " of ",
        source.max_replication_slots, " used): raise max_replication_slots and restart it"));
  }
  // The base backup streams its WAL on a second connection.
  if (source.max_wal_senders - source.used_wal_senders < 2) {
    reasons.push_back(absl::StrCat("the old server has fewer than 2 free WAL senders (",
                                   source.used_wal_senders, " of ", source.max_wal_senders,
                                   " used): raise max_wal_senders and restart it"));
  }
  if (!source.replication) {
    reasons.push_back(
        "the role given for the old server may not stream WAL: ALTER ROLE ... "
        "REPLICATION there");
  }
  if (!source.tablespaces.empty()) {
    reasons.push_back(absl::StrCat("the old cluster has tablespaces outside its data directory (",
                                   absl::StrJoin(source.tablespaces, ", "),
                                   "): migrate by logical replication"));
  }
  if (source.collation_version == "?" || target_collation_version == "?") {
    reasons.push_back(absl::StrCat("the version of the collation ", source.collation_locale, " (",
                                   source.collation_provider,
                                   ") cannot be told on both hosts: migrate by logical "
                                   "replication, whose indexes this host builds"));
  } else if (source.collation_version != target_collation_version) {
    reasons.push_back(
        absl::StrCat("the collation ", source.collation_locale, " (", source.collation_provider,
                     ") is version '", source.collation_version, "' on the old host and '",
                     target_collation_version,
                     "' here: the copied indexes on text would be corrupt here; migrate by logical "
                     "replication, whose indexes this host builds"));
  }
  if (!reasons.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the old cluster cannot be followed physically: ", absl::StrJoin(reasons, "; ")));
  }
  return absl::OkStatus();
}

absl::Status CreatePhysicalSlot(PgSession* source, const std::string& name) {
  ASSIGN_OR_RETURN(
      PgRows existing,
      source->Query("SELECT slot_type FROM pg_replication_slots WHERE slot_name = $1", {name}));
  if (!existing.rows.empty()) {
    if (existing.Scalar() == "physical") return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("the old server has a ", existing.Scalar(), " replication slot named ", name));
  }
  auto created = source->Query("SELECT pg_create_physical_replication_slot($1, true)", {name});
  if (!created.ok()) {
    return SessionError(source, created.status(),
                        absl::StrCat("create the replication slot ", name));
  }
  return absl::OkStatus();
}

absl::StatusOr<CommandSpec> BaseBackupCommand(const std::string& pg_basebackup,
                                              const std::string& conninfo, const std::string& slot,
                                              const std::string& out) {
  ASSIGN_OR_RETURN(std::vector<std::string> env, ConnInfoEnvironment(conninfo, "pg_basebackup"));
  CommandSpec spec;
  spec.argv = {pg_basebackup,
               absl::StrCat("--pgdata=", out),
               "--wal-method=stream",
               absl::StrCat("--slot=", slot),
               "--write-recovery-conf",
               "--checkpoint=fast",
               "--no-password",
               "--progress",
               "--verbose"};
  spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
  spec.env.insert(spec.env.end(), env.begin(), env.end());
  return spec;
}

bool ParseBaseBackupProgress(const std::string& line, int64_t* done_kb, int64_t* total_kb) {
  absl::string_view text = absl::StripLeadingAsciiWhitespace(line);
  const size_t slash = text.find('/');
  const size_t kb = text.find(" kB");
  if (slash == absl::string_view::npos || kb == absl::string_view::npos || kb < slash) {
    return false;
  }
  return absl::SimpleAtoi(text.substr(0, slash), done_kb) &&
         absl::SimpleAtoi(text.substr(slash + 1, kb - slash - 1), total_kb);
}

absl::StatusOr<StandbyProgress> ReadStandbyProgress(PgSession* source, PgSession* standby,
                                                    const std::string& slot) {
  StandbyProgress p;
  ASSIGN_OR_RETURN(
      PgRows there,
      source->Query("SELECT pg_current_wal_lsn() - '0/0',"
                    " (SELECT extract(epoch FROM r.replay_lag) FROM pg_stat_replication r"
                    " JOIN pg_replication_slots s ON s.active_pid = r.pid"
                    " WHERE s.slot_name = $1)",
                    {slot}));
  if (there.rows.size() != 1) return absl::InternalError("no WAL position on the old server");
  p.source_lsn = IntOrZero(there.rows[0][0]);
  if (there.rows[0][1].has_value()) {
    double seconds = -1;
    if (absl::SimpleAtod(*there.rows[0][1], &seconds)) p.lag_seconds = seconds;
  }
  ASSIGN_OR_RETURN(PgRows here,
                   standby->Query("SELECT coalesce(pg_last_wal_replay_lsn() - '0/0', 0),"
                                  " EXISTS (SELECT 1 FROM pg_stat_wal_receiver"
                                  " WHERE status = 'streaming')"));
  if (here.rows.size() != 1) return absl::InternalError("no replay position on the standby");
  p.replay_lsn = IntOrZero(here.rows[0][0]);
  p.streaming = here.rows[0][1].value_or("") == "t";
  p.lag_bytes = std::max<int64_t>(0, p.source_lsn - p.replay_lsn);
  return p;
}

absl::Status PromoteStandby(PgSession* standby) {
  ASSIGN_OR_RETURN(PgRows recovery, standby->Query("SELECT pg_is_in_recovery()"));
  if (recovery.Scalar() != "t") {
    return absl::FailedPreconditionError("the copy is not a standby (already promoted?)");
  }
  auto promoted = standby->Query("SELECT pg_promote(true, 60)");
  if (!promoted.ok()) return SessionError(standby, promoted.status(), "promote the copy");
  if (promoted->Scalar() != "t") {
    return absl::FailedPreconditionError("the copy did not finish promoting in 60 s");
  }
  // One statement each: ALTER SYSTEM runs outside any transaction block.
  for (const char* sql : {"ALTER SYSTEM RESET primary_conninfo",
                          "ALTER SYSTEM RESET primary_slot_name", "SELECT pg_reload_conf()"}) {
    absl::Status reset = standby->Exec(sql);
    if (!reset.ok())
      return SessionError(standby, reset, "remove the primary's settings from the copy");
  }
  return absl::OkStatus();
}

std::string StandbyHbaConf() {
  return "# The copy of a physical migration while it follows: local only.\n"
         "local all all trust\n"
         "local replication all trust\n";
}

}  // namespace mastodon_restore
