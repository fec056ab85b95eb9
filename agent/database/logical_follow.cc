#include "agent/database/logical_follow.h"

#include <cctype>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/conninfo_quote.h"
#include "agent/common/status_macros.h"
#include "agent/database/pg_connection.h"

namespace mastodon_restore {
namespace {

// The quoted, schema-qualified names of the ordinary tables (partitions
// included: a publication of all tables carries each leaf) outside the
// system schemas; more conditions may follow.
constexpr char kUserTables[] =
    "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)"
    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

}  // namespace

std::string FollowName(const std::string& operation_id) {
  std::string name = "mastodon_restore_";
  for (char c : operation_id) {
    const unsigned char u = static_cast<unsigned char>(c);
    name.push_back(std::isalnum(u) && u < 0x80 ? static_cast<char>(std::tolower(u)) : '_');
  }
  if (name.size() > 63) name.resize(63);
  return name;
}

absl::StatusOr<LogicalSourceFacts> ReadLogicalSourceFacts(PgSession* source) {
  LogicalSourceFacts facts;
  facts.server_version = source->server_version();
  if (facts.server_version < 100000) {
    // No logical replication before 10; the rest of the facts do not matter.
    ASSIGN_OR_RETURN(PgRows level, source->Query("SELECT current_setting('wal_level')"));
    facts.wal_level = level.Scalar();
    return facts;
  }
  ASSIGN_OR_RETURN(
      PgRows settings,
      source->Query(
          "SELECT current_setting('wal_level'), current_setting('max_replication_slots'),"
          " (SELECT count(*) FROM pg_replication_slots), current_setting('max_wal_senders'),"
          " (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),"
          " pg_database_size(current_database()),"
          " (SELECT datcollate FROM pg_database WHERE datname = current_database()),"
          " (SELECT count(*) FROM pg_largeobject_metadata)"));
  if (settings.rows.size() != 1 || settings.rows[0].size() != 8) {
    return absl::InternalError("unable to read the source's replication settings: no row");
  }
  const auto& row = settings.rows[0];
  facts.wal_level = row[0].value_or("");
  facts.max_replication_slots = static_cast<int>(IntOrZero(row[1]));
  facts.used_replication_slots = static_cast<int>(IntOrZero(row[2]));
  facts.max_wal_senders = static_cast<int>(IntOrZero(row[3]));
  facts.superuser = row[4].value_or("") == "t";
  facts.database_bytes = IntOrZero(row[5]);
  facts.collation = row[6].value_or("");
  facts.large_objects = IntOrZero(row[7]);
  if (facts.server_version >= 150000) {
    ASSIGN_OR_RETURN(PgRows version, source->Query("SELECT datcollversion FROM pg_database"
                                                   " WHERE datname = current_database()"));
    facts.collation_version = version.Scalar();
  }
  ASSIGN_OR_RETURN(
      PgRows no_identity,
      source->Query(absl::StrCat(kUserTables,
                                 " AND c.relpersistence = 'p' AND (c.relreplident = 'n' OR"
                                 " (c.relreplident = 'd' AND NOT EXISTS (SELECT 1 FROM pg_index i"
                                 " WHERE i.indrelid = c.oid AND i.indisprimary)))"
                                 " ORDER BY 1")));
  facts.tables_without_identity = no_identity.FirstColumn();
  ASSIGN_OR_RETURN(PgRows unlogged, source->Query(absl::StrCat(
                                        kUserTables, " AND c.relpersistence = 'u' ORDER BY 1")));
  facts.unlogged_tables = unlogged.FirstColumn();
  return facts;
}

absl::Status CheckLogicalSource(const LogicalSourceFacts& facts) {
  std::vector<std::string> reasons;
  if (facts.server_version < 100000) {
    return absl::FailedPreconditionError(
        absl::StrCat("the source server is PostgreSQL ", facts.server_version / 10000,
                     ", which has no logical replication (10 and newer have): "
                     "move this database with a dump"));
  }
  if (facts.wal_level != "logical") {
    reasons.push_back(absl::StrCat("wal_level is '", facts.wal_level,
                                   "': set wal_level = logical and restart the old server"));
  }
  if (facts.max_replication_slots - facts.used_replication_slots < 1) {
    reasons.push_back(absl::StrCat("no free replication slot (", facts.used_replication_slots,
                                   " of max_replication_slots = ", facts.max_replication_slots,
                                   " used): raise it and restart the old server"));
  }
  if (facts.max_wal_senders < 1) {
    reasons.push_back("max_wal_senders is 0: raise it and restart the old server");
  }
  if (!facts.superuser) {
    reasons.push_back(
        "the role of the source connection is not a superuser (a publication of all tables "
        "needs one)");
  }
  if (!facts.unlogged_tables.empty()) {
    reasons.push_back(absl::StrCat(
        "unlogged tables are never replicated: ", absl::StrJoin(facts.unlogged_tables, ", "),
        " (ALTER TABLE ... SET LOGGED, or move with a dump)"));
  }
  if (facts.large_objects > 0) {
    reasons.push_back(absl::StrCat(facts.large_objects,
                                   " large objects, which logical replication does not carry "
                                   "(move with a dump)"));
  }
  if (reasons.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "unable to follow the old database by logical replication: ", absl::StrJoin(reasons, "; ")));
}

absl::Status SetReplicaIdentityFull(PgSession* source, const std::vector<std::string>& tables) {
  for (const std::string& table : tables) {
    // `table` is quoted by ReadLogicalSourceFacts; regclass checks it names
    // a table before it goes into the ALTER.
    ASSIGN_OR_RETURN(PgRows name, source->Query("SELECT $1::regclass::text", {table}));
    absl::Status s =
        source->Exec(absl::StrCat("ALTER TABLE ", name.Scalar(), " REPLICA IDENTITY FULL"));
    if (!s.ok())
      return SessionError(source, s, absl::StrCat("set the replica identity of ", table));
  }
  return absl::OkStatus();
}

absl::Status RestoreReplicaIdentity(PgSession* source, const std::vector<std::string>& tables) {
  absl::Status first;
  for (const std::string& table : tables) {
    auto name = source->Query("SELECT to_regclass($1)::text", {table});
    if (!name.ok()) {
      first.Update(SessionError(source, name.status(), absl::StrCat("find ", table)));
      continue;
    }
    if (name->Scalar().empty()) continue;  // dropped since
    absl::Status s =
        source->Exec(absl::StrCat("ALTER TABLE ", name->Scalar(), " REPLICA IDENTITY DEFAULT"));
    if (!s.ok()) {
      first.Update(
          SessionError(source, s, absl::StrCat("put back the replica identity of ", table)));
    }
  }
  return first;
}

absl::Status CreateFollowPublication(PgSession* source, const std::string& name) {
  ASSIGN_OR_RETURN(PgRows exists,
                   source->Query("SELECT count(*) FROM pg_publication WHERE pubname = $1", {name}));
  if (exists.Scalar() != "0") return absl::OkStatus();
  absl::Status s = source->Exec(
      absl::StrCat("CREATE PUBLICATION ", source->QuoteIdentifier(name), " FOR ALL TABLES"));
  if (!s.ok()) return SessionError(source, s, absl::StrCat("create the publication ", name));
  return absl::OkStatus();
}

absl::Status DropFollowPublication(PgSession* source, const std::string& name) {
  absl::Status s =
      source->Exec(absl::StrCat("DROP PUBLICATION IF EXISTS ", source->QuoteIdentifier(name)));
  if (!s.ok()) return SessionError(source, s, absl::StrCat("drop the publication ", name));
  return absl::OkStatus();
}

absl::Status CreateFollowSubscription(PgSession* target, const std::string& name,
                                      const std::string& source_conninfo,
                                      const std::string& source_database) {
  // The conninfo in keyword form, naming the database to follow.
  ASSIGN_OR_RETURN(auto params, ConnInfoParams(source_conninfo));
  std::string conninfo;
  for (const auto& [keyword, value] : params) {
    if (keyword == "dbname") continue;
    absl::StrAppend(&conninfo, keyword, "=", QuoteConnInfoValue(value), " ");
  }
  absl::StrAppend(&conninfo, "dbname=", QuoteConnInfoValue(source_database));
  const std::string ident = target->QuoteIdentifier(name);
  absl::Status s = target->Exec(absl::StrCat(
      "CREATE SUBSCRIPTION ", ident, " CONNECTION ", target->QuoteLiteral(conninfo),
      " PUBLICATION ", ident, " WITH (copy_data = true, create_slot = true, slot_name = ",
      target->QuoteLiteral(name), ")"));
  // The server's message names the subscription and the publisher's
  // answer, never the conninfo; the statement (which holds it) is not
  // repeated.
  if (!s.ok()) return SessionError(target, s, absl::StrCat("create the subscription ", name));
  return absl::OkStatus();
}

absl::StatusOr<FollowProgress> ReadFollowProgress(PgSession* source, PgSession* target,
                                                  const std::string& name) {
  FollowProgress progress;
  ASSIGN_OR_RETURN(PgRows tables,
                   target->Query("SELECT count(*), count(*) FILTER (WHERE r.srsubstate = 'r')"
                                 " FROM pg_subscription_rel r"
                                 " JOIN pg_subscription s ON s.oid = r.srsubid"
                                 " WHERE s.subname = $1",
                                 {name}));
  if (!tables.rows.empty() && tables.rows[0].size() == 2) {
    progress.tables = static_cast<int>(IntOrZero(tables.rows[0][0]));
    progress.tables_ready = static_cast<int>(IntOrZero(tables.rows[0][1]));
  }
  if (target->server_version() >= 150000) {
    ASSIGN_OR_RETURN(PgRows errors,
                     target->Query("SELECT apply_error_count + sync_error_count"
                                   " FROM pg_stat_subscription_stats WHERE subname = $1",
                                   {name}));
    progress.errors = IntOrZero(errors.rows.empty() ? std::nullopt : errors.rows[0][0]);
  }
  ASSIGN_OR_RETURN(
      PgRows wal,
      source->Query("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,"
                    " (SELECT pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint"
                    "  FROM pg_replication_slots WHERE slot_name = $1),"
                    " (SELECT extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication"
                    "  WHERE application_name = $1 AND replay_lag IS NOT NULL LIMIT 1)",
                    {name}));
  if (wal.rows.size() != 1 || wal.rows[0].size() != 3) {
    return absl::InternalError("unable to read the source's WAL position: no row");
  }
  const auto& row = wal.rows[0];
  progress.source_lsn = IntOrZero(row[0]);
  if (row[1].has_value()) {
    progress.confirmed_lsn = IntOrZero(row[1]);
    progress.lag_bytes = std::max<int64_t>(0, progress.source_lsn - progress.confirmed_lsn);
  }
  double seconds = 0;
  if (row[2].has_value() && absl::SimpleAtod(*row[2], &seconds)) progress.lag_seconds = seconds;
  return progress;
}

absl::StatusOr<int64_t> SourceWalPosition(PgSession* source) {
  // The insert position: past every record written so far, committed or
  // not yet flushed (synchronous_commit = off returns before the flush).
  ASSIGN_OR_RETURN(
      PgRows lsn,
      source->Query("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint,"
                    " current_setting('wal_block_size')::bigint,"
                    " (SELECT setting::bigint * CASE unit WHEN '8kB' THEN 8192"
                    " WHEN 'MB' THEN 1048576 ELSE 1 END FROM pg_settings"
                    " WHERE name = 'wal_segment_size')"));
  int64_t position = 0, block = 0, segment = 0;
  if (lsn.rows.size() != 1 || lsn.rows[0].size() != 3 ||
      !absl::SimpleAtoi(lsn.rows[0][0].value_or(""), &position) ||
      !absl::SimpleAtoi(lsn.rows[0][1].value_or(""), &block) ||
      !absl::SimpleAtoi(lsn.rows[0][2].value_or(""), &segment) || block <= 0 || segment <= 0) {
    return absl::InternalError("unable to read the source's WAL position");
  }
  // After a record that ends a page, the insert position lies past the
  // next page's header (24 bytes; 40 at a segment's start), where no
  // follower's position ever points while nothing more is written: the
  // end of that record is what must be reached.
  if (position % segment == 40) {
    position -= 40;
  } else if (position % block == 24) {
    position -= 24;
  }
  return position;
}

absl::StatusOr<int> CopySequences(PgSession* source, PgSession* target) {
  ASSIGN_OR_RETURN(
      PgRows sequences,
      source->Query("SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename),"
                    " last_value FROM pg_sequences ORDER BY 1"));
  // Every sequence the source has must be on the target before any is set.
  for (const auto& row : sequences.rows) {
    const std::string& sequence = row[0].value_or("");
    ASSIGN_OR_RETURN(PgRows found, target->Query("SELECT to_regclass($1) IS NOT NULL", {sequence}));
    if (found.Scalar() != "t") {
      return absl::NotFoundError(
          absl::StrCat("the new database has no sequence ", sequence, " (the old one has)"));
    }
  }
  int set = 0;
  for (const auto& row : sequences.rows) {
    if (!row[1].has_value()) continue;  // never used on the source
    const std::string& sequence = row[0].value_or("");
    auto done = target->Query("SELECT setval($1::regclass, $2::bigint, true)", {sequence, *row[1]});
    if (!done.ok()) return SessionError(target, done.status(), absl::StrCat("set ", sequence));
    ++set;
  }
  return set;
}

absl::Status DropFollowSubscription(PgSession* target, const std::string& name, bool* slot_left) {
  *slot_left = false;
  ASSIGN_OR_RETURN(PgRows exists,
                   target->Query("SELECT count(*) FROM pg_subscription s"
                                 " JOIN pg_database d ON d.oid = s.subdbid"
                                 " WHERE s.subname = $1 AND d.datname = current_database()",
                                 {name}));
  if (exists.Scalar() == "0") return absl::OkStatus();
  const std::string ident = target->QuoteIdentifier(name);
  // With the source reachable, DROP SUBSCRIPTION stops the workers and
  // drops the slot on the source too.
  if (target->Exec(absl::StrCat("DROP SUBSCRIPTION ", ident)).ok()) return absl::OkStatus();
  // The source is gone or refuses: keep the slot there and drop the
  // subscription alone (each statement on its own: a subscription with a
  // slot cannot be altered inside a transaction block).
  for (const std::string& sql :
       {absl::StrCat("ALTER SUBSCRIPTION ", ident, " DISABLE"),
        absl::StrCat("ALTER SUBSCRIPTION ", ident, " SET (slot_name = NONE)"),
        absl::StrCat("DROP SUBSCRIPTION ", ident)}) {
    absl::Status s = target->Exec(sql);
    if (!s.ok()) return SessionError(target, s, absl::StrCat("drop the subscription ", name));
  }
  *slot_left = true;
  return absl::OkStatus();
}

absl::Status DropFollowSlot(PgSession* source, const std::string& name) {
  auto dropped = source->Query(
      "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
      " WHERE slot_name = $1",
      {name});
  if (!dropped.ok()) {
    absl::Status s =
        SessionError(source, dropped.status(), absl::StrCat("drop the replication slot ", name));
    if (source->last_error().sqlstate == "55006") {  // object_in_use: a walsender holds it
      return absl::FailedPreconditionError(s.message());
    }
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ConnInfoEnvironment(const std::string& conninfo,
                                                             const std::string& program) {
  // libpq's environment variable of each connection setting that has one.
  static const std::map<std::string, std::string> kVariables = {
      {"host", "PGHOST"},
      {"hostaddr", "PGHOSTADDR"},
      {"port", "PGPORT"},
      {"user", "PGUSER"},
      {"password", "PGPASSWORD"},
      {"passfile", "PGPASSFILE"},
      {"channel_binding", "PGCHANNELBINDING"},
      {"connect_timeout", "PGCONNECT_TIMEOUT"},
      {"client_encoding", "PGCLIENTENCODING"},
      {"options", "PGOPTIONS"},
      {"application_name", "PGAPPNAME"},
      {"sslmode", "PGSSLMODE"},
      {"requiressl", "PGREQUIRESSL"},
      {"sslcompression", "PGSSLCOMPRESSION"},
      {"sslrootcert", "PGSSLROOTCERT"},
      {"sslsni", "PGSSLSNI"},
      {"requirepeer", "PGREQUIREPEER"},
      {"ssl_min_protocol_version", "PGSSLMINPROTOCOLVERSION"},
      {"ssl_max_protocol_version", "PGSSLMAXPROTOCOLVERSION"},
      {"gssencmode", "PGGSSENCMODE"},
      {"krbsrvname", "PGKRBSRVNAME"},
      {"gsslib", "PGGSSLIB"},
      {"target_session_attrs", "PGTARGETSESSIONATTRS"},
  };
  ASSIGN_OR_RETURN(auto params, ConnInfoParams(conninfo));
  std::vector<std::string> env;
  for (const auto& [keyword, value] : params) {
    if (keyword == "dbname") continue;
    auto it = kVariables.find(keyword);
    if (it == kVariables.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the source conninfo sets '", keyword, "', which ", program,
                       " cannot be given without putting it on its command line"));
    }
    env.push_back(absl::StrCat(it->second, "=", value));
  }
  return env;
}

absl::StatusOr<CommandSpec> SchemaDumpCommand(const std::string& pg_dump,
                                              const std::string& conninfo,
                                              const std::string& database, const std::string& out) {
  ASSIGN_OR_RETURN(std::vector<std::string> env, ConnInfoEnvironment(conninfo, "pg_dump"));
  CommandSpec spec;
  spec.argv = {pg_dump, "--schema-only", "--no-publications", "--no-subscriptions",
               absl::StrCat("--file=", out)};
  // `database` replaces the conninfo's dbname.
  spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8", absl::StrCat("PGDATABASE=", database)};
  spec.env.insert(spec.env.end(), env.begin(), env.end());
  spec.timeout = absl::Hours(1);
  return spec;
}

absl::StatusOr<std::vector<std::string>> OtherSessions(PgSession* session) {
  ASSIGN_OR_RETURN(
      PgRows rows,
      session->Query("SELECT coalesce(usename, '?') || CASE WHEN application_name <> ''"
                     " THEN ' (' || application_name || ')' ELSE '' END || ': ' || count(*)"
                     " FROM pg_stat_activity WHERE datname = current_database()"
                     " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
                     " GROUP BY usename, application_name ORDER BY 1"));
  return rows.FirstColumn();
}

absl::StatusOr<std::map<std::string, int64_t>> TableRowCounts(PgSession* session) {
  ASSIGN_OR_RETURN(PgRows tables, session->Query(absl::StrCat(kUserTables, " ORDER BY 1")));
  std::map<std::string, int64_t> counts;
  for (const std::string& table : tables.FirstColumn()) {
    // The name is the server's own quoting of a catalog entry.
    ASSIGN_OR_RETURN(PgRows n, session->Query(absl::StrCat("SELECT count(*) FROM ", table)));
    counts[table] = IntOrZero(n.rows.empty() ? std::nullopt : n.rows[0][0]);
  }
  return counts;
}

}  // namespace mastodon_restore
