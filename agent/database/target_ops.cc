#include "agent/database/target_ops.h"

#include <random>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "agent/common/digest.h"
#include "agent/common/errors.h"
#include "agent/common/failpoint.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

// `base` + `suffix` cut to the identifier limit at a UTF-8 boundary.
std::string FitName(const std::string& base, const std::string& suffix) {
  if (base.size() + suffix.size() <= kMaxIdentifierBytes) return base + suffix;
  size_t keep = kMaxIdentifierBytes > suffix.size() ? kMaxIdentifierBytes - suffix.size() : 0;
  while (keep > 0 && (static_cast<unsigned char>(base[keep]) & 0xC0) == 0x80) --keep;
  return base.substr(0, keep) + suffix;
}

std::string Stamp(absl::Time when) {
  return absl::FormatTime("%Y%m%d%H%M%S", when, absl::UTCTimeZone());
}

// "__previous_" or "__replaced_", 14 digits of time, "_NN".
constexpr size_t kKeptSuffixBytes = 11 + 14 + 3;

// The live name as the head of a kept database's name (see
// PreviousDatabaseName): whole when the longest suffix fits after it, else
// cut and followed by "_" and 8 hex digits of its SHA-256.
std::string KeptNameHead(const std::string& live) {
  if (live.size() + kKeptSuffixBytes <= kMaxIdentifierBytes) return live;
  size_t keep = kMaxIdentifierBytes - kKeptSuffixBytes - 9;
  while (keep > 0 && (static_cast<unsigned char>(live[keep]) & 0xC0) == 0x80) --keep;
  Sha256 hash;
  hash.Update(live.data(), live.size());
  return absl::StrCat(live.substr(0, keep), "_", absl::BytesToHexString(hash.Final().substr(0, 4)));
}

std::string KeptName(const std::string& live, absl::string_view kind, absl::Time when, int n) {
  std::string name = absl::StrCat(KeptNameHead(live), kind, Stamp(when));
  if (n > 1) absl::StrAppend(&name, "_", absl::Dec(n, absl::kZeroPad2));
  return name;
}

absl::Status Annotated(const absl::Status& s, const std::string& verb, const std::string& object) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat("unable to ", verb, " '", object, "': ", s.message()));
}

}  // namespace

std::string StagingDatabaseName(const std::string& live, const std::string& operation_id) {
  return FitName(live, "__restore_" + operation_id);
}

std::string PreviousDatabaseName(const std::string& live, absl::Time when, int n) {
  return KeptName(live, "__previous_", when, n);
}

std::string ReplacedDatabaseName(const std::string& live, absl::Time when, int n) {
  return KeptName(live, "__replaced_", when, n);
}

std::string PreviousDatabasePrefix(const std::string& live) {
  return absl::StrCat(KeptNameHead(live), "__previous_");
}

absl::StatusOr<std::string> TargetDatabases::UnusedName(const std::string& live, absl::Time when,
                                                        std::string (*name)(const std::string& live,
                                                                            absl::Time when,
                                                                            int n)) {
  for (int n = 1; n <= kMaxKeptPerSecond; ++n) {
    std::string candidate = name(live, when, n);
    ASSIGN_OR_RETURN(bool taken, Exists(candidate));
    if (!taken) return candidate;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "unable to keep database '", live, "': all ", kMaxKeptPerSecond, " names of ",
      absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", when, absl::UTCTimeZone()), " are taken"));
}

absl::StatusOr<std::string> TargetDatabases::UnusedPreviousName(const std::string& live,
                                                                absl::Time when) {
  return UnusedName(live, when, &PreviousDatabaseName);
}

absl::StatusOr<std::string> TargetDatabases::UnusedReplacedName(const std::string& live,
                                                                absl::Time when) {
  return UnusedName(live, when, &ReplacedDatabaseName);
}

absl::StatusOr<bool> TargetDatabases::Exists(const std::string& name) {
  ASSIGN_OR_RETURN(PgRows rows,
                   admin_->Query("SELECT count(*) FROM pg_database WHERE datname = $1", {name}));
  return rows.Scalar() != "0";
}

absl::StatusOr<uint32_t> TargetDatabases::OidOf(const std::string& name) {
  ASSIGN_OR_RETURN(PgRows rows,
                   admin_->Query("SELECT oid FROM pg_database WHERE datname = $1", {name}));
  uint32_t oid = 0;
  if (!rows.rows.empty() && !absl::SimpleAtoi(rows.Scalar(), &oid)) oid = 0;
  return oid;
}

absl::StatusOr<std::string> TargetDatabases::NameOf(uint32_t oid) {
  if (oid == 0) return std::string();
  ASSIGN_OR_RETURN(PgRows rows, admin_->Query("SELECT datname FROM pg_database WHERE oid = $1",
                                              {absl::StrCat(oid)}));
  return rows.rows.empty() ? std::string() : rows.Scalar();
}

absl::StatusOr<bool> TargetDatabases::AllowsConnections(const std::string& name) {
  ASSIGN_OR_RETURN(
      PgRows rows,
      admin_->Query("SELECT datallowconn FROM pg_database WHERE datname = $1", {name}));
  return !rows.rows.empty() && rows.Scalar() == "t";
}

absl::StatusOr<uint32_t> TargetDatabases::CreateStaging(const std::string& name,
                                                        const DatabaseLocale& locale,
                                                        const std::string& owner,
                                                        std::vector<std::string>* warnings,
                                                        const StagingOidJournal& journal) {
  // PostgreSQL 15+ takes the OID: it is chosen and recorded first, so that a
  // crash during CREATE DATABASE leaves a database the record identifies.
  const int version = admin_->server_version();
  const bool choose_oid = version >= 150000;
  uint32_t oid = 0;
  auto create = [&](const DatabaseLocale& l) -> absl::Status {
    if (choose_oid) {
      static thread_local std::mt19937 rng(std::random_device{}());
      while (true) {
        // Above the OIDs the server hands out soon after initdb, below 2^31.
        oid = 1000000u + static_cast<uint32_t>(rng() % 2000000000u);
        ASSIGN_OR_RETURN(std::string taken, NameOf(oid));
        if (taken.empty()) break;
      }
      if (journal) RETURN_IF_ERROR(journal(oid, true));
    }
    RETURN_IF_ERROR(MR_FAILPOINT("staging.before_create"));
    std::string sql =
        absl::StrCat("CREATE DATABASE ", admin_->QuoteIdentifier(name), " TEMPLATE template0");
    if (!l.encoding.empty()) absl::StrAppend(&sql, " ENCODING ", admin_->QuoteLiteral(l.encoding));
    if (!l.locale.empty()) absl::StrAppend(&sql, " LOCALE ", admin_->QuoteLiteral(l.locale));
    if (l.provider == "builtin" || l.provider == "icu") {
      absl::StrAppend(&sql, " LOCALE_PROVIDER ", l.provider);
      if (!l.provider_locale.empty()) {
        absl::StrAppend(&sql, l.provider == "icu" ? " ICU_LOCALE " : " BUILTIN_LOCALE ",
                        admin_->QuoteLiteral(l.provider_locale));
      }
    }
    if (!owner.empty()) absl::StrAppend(&sql, " OWNER ", admin_->QuoteIdentifier(owner));
    if (choose_oid) absl::StrAppend(&sql, " OID ", oid);
    return admin_->Exec(sql);
  };
  const bool other_provider = locale.provider == "builtin" || locale.provider == "icu";
  auto asked = [&] {
    return absl::StrCat("the dump's database uses the ", locale.provider, " locale provider",
                        locale.provider_locale.empty()
                            ? std::string()
                            : absl::StrCat(" ('", locale.provider_locale, "')"));
  };
  DatabaseLocale first = locale;
  if (other_provider && version < (locale.provider == "builtin" ? 170000 : 150000)) {
    first.provider.clear();
    warnings->push_back(absl::StrCat(
        asked(), ", which PostgreSQL ", version / 10000, " lacks: staged with the libc locale '",
        first.locale.empty() ? "(server default)" : first.locale, "'"));
  }
  absl::Status s = create(first);
  const std::string sqlstate = admin_->last_error().sqlstate;
  if (!s.ok() && (!first.locale.empty() || !first.provider.empty()) &&
      (absl::StrContains(s.message(), "invalid locale name") ||
       absl::StrContains(s.message(), "does not match locale") ||
       absl::StrContains(s.message(), "ICU") || sqlstate == "22023" || sqlstate == "0A000")) {
    warnings->push_back(absl::StrCat(
        !first.provider.empty() ? asked() : absl::StrCat("locale '", first.locale, "' of the dump"),
        " does not exist on the target: using the libc locale C.UTF-8 (", s.message(), ")"));
    DatabaseLocale fallback;
    fallback.encoding = locale.encoding;
    fallback.locale = "C.UTF-8";
    s = create(fallback);
  }
  RETURN_IF_ERROR(Annotated(s, "create staging database", name));
  RETURN_IF_ERROR(MR_FAILPOINT("staging.after_create"));
  if (!choose_oid) {
    ASSIGN_OR_RETURN(oid, OidOf(name));
    if (journal) RETURN_IF_ERROR(journal(oid, false));
  }
  RETURN_IF_ERROR(MR_FAILPOINT("staging.after_journal_oid"));
  RETURN_IF_ERROR(
      Annotated(admin_->Exec(absl::StrCat("COMMENT ON DATABASE ", admin_->QuoteIdentifier(name),
                                          " IS ", admin_->QuoteLiteral(kStagingComment))),
                "mark staging database", name));
  RETURN_IF_ERROR(MR_FAILPOINT("staging.after_comment"));
  return oid;
}

absl::StatusOr<bool> TargetDatabases::DropIfOid(const std::string& name, uint32_t oid) {
  ASSIGN_OR_RETURN(uint32_t found, OidOf(name));
  if (found == 0 || (oid != 0 && found != oid)) return false;
  RETURN_IF_ERROR(Drop(name));
  return true;
}

absl::Status TargetDatabases::TerminateSessions(const std::string& name, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    ASSIGN_OR_RETURN(PgRows rows, admin_->Query("SELECT count(pg_terminate_backend(pid)) FROM "
                                                "pg_stat_activity WHERE datname = $1 AND pid <> "
                                                "pg_backend_pid()",
                                                {name}));
    if (rows.Scalar() == "0") return absl::OkStatus();
    if (absl::Now() > deadline) {
      return absl::FailedPreconditionError(absl::StrCat("unable to end the sessions of database '",
                                                        name, "' within ",
                                                        absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

absl::Status TargetDatabases::EndCreatesOf(const std::string& name, absl::Duration timeout) {
  // (CREATE DATABASE statements of this agent quote the name always.)
  const std::string pattern =
      "CREATE DATABASE \"" + absl::StrReplaceAll(name, {{"\"", "\"\""}}) + "\"%";
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    ASSIGN_OR_RETURN(PgRows rows,
                     admin_->Query("SELECT count(*), count(pg_terminate_backend(pid)) FROM "
                                   "pg_stat_activity WHERE pid <> pg_backend_pid() AND "
                                   "starts_with(query, 'CREATE DATABASE ') AND query LIKE $1",
                                   {pattern}));
    if (rows.Scalar() == "0") return absl::OkStatus();
    if (absl::Now() > deadline) {
      return absl::FailedPreconditionError(
          absl::StrCat("a CREATE DATABASE of '", name, "' is still running"));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

absl::Status TargetDatabases::SetAllowConnections(const std::string& name, bool allow) {
  return admin_->Exec(absl::StrCat("ALTER DATABASE ", admin_->QuoteIdentifier(name),
                                   " WITH ALLOW_CONNECTIONS ", allow ? "true" : "false"));
}

absl::Status TargetDatabases::Drop(const std::string& name) {
  ASSIGN_OR_RETURN(bool exists, Exists(name));
  if (!exists) return absl::OkStatus();
  RETURN_IF_ERROR(Annotated(SetAllowConnections(name, false), "drop database", name));
  RETURN_IF_ERROR(TerminateSessions(name, absl::Seconds(30)));
  return Annotated(
      admin_->Exec(absl::StrCat("DROP DATABASE IF EXISTS ", admin_->QuoteIdentifier(name))),
      "drop database", name);
}

absl::StatusOr<std::string> TargetDatabases::SwapIn(const std::string& live,
                                                    const std::string& staging,
                                                    const std::string& previous,
                                                    const SwapJournal& journal) {
  ASSIGN_OR_RETURN(uint32_t live_oid, OidOf(live));
  ASSIGN_OR_RETURN(uint32_t staging_oid, OidOf(staging));
  if (staging_oid == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("unable to swap in '", staging, "': it does not exist"));
  }
  if (live_oid != 0) {
    ASSIGN_OR_RETURN(bool previous_exists, Exists(previous));
    if (previous_exists) {
      return absl::FailedPreconditionError(
          absl::StrCat("unable to keep '", live, "' as '", previous, "': that name is taken"));
    }
  }
  if (journal) RETURN_IF_ERROR(journal(live_oid, staging_oid));
  RETURN_IF_ERROR(MR_FAILPOINT("swap.before_begin"));
  // One transaction: a crash or an error anywhere before COMMIT leaves both
  // databases as they were (the server rolls back); after it, both renames
  // are done. ALTER DATABASE ... RENAME needs the renamed database free of
  // sessions: they are terminated inside the transaction, and a session
  // that connects in between makes the rename fail (retried).
  const std::string names =
      absl::StrCat(admin_->QuoteLiteral(staging), live_oid != 0 ? ", " : "",
                   live_oid != 0 ? admin_->QuoteLiteral(live) : std::string());
  bool failpoint_fired = false;
  auto failpoint = [&](const char* name) {
    absl::Status fp = MR_FAILPOINT(name);
    failpoint_fired = !fp.ok();
    return fp;
  };
  auto attempt = [&]() -> absl::Status {
    RETURN_IF_ERROR(admin_->Exec("BEGIN"));
    RETURN_IF_ERROR(admin_->Exec("SET LOCAL lock_timeout = '10s'"));
    RETURN_IF_ERROR(admin_->Exec(absl::StrCat(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname IN (", names,
        ") AND pid <> pg_backend_pid()")));
    RETURN_IF_ERROR(failpoint("swap.after_terminate"));
    if (live_oid != 0) {
      RETURN_IF_ERROR(admin_->Exec(absl::StrCat("ALTER DATABASE ", admin_->QuoteIdentifier(live),
                                                " RENAME TO ", admin_->QuoteIdentifier(previous))));
    }
    RETURN_IF_ERROR(failpoint("swap.after_rename_live"));
    RETURN_IF_ERROR(admin_->Exec(absl::StrCat("ALTER DATABASE ", admin_->QuoteIdentifier(staging),
                                              " RENAME TO ", admin_->QuoteIdentifier(live))));
    RETURN_IF_ERROR(admin_->Exec(
        absl::StrCat("COMMENT ON DATABASE ", admin_->QuoteIdentifier(live), " IS NULL")));
    RETURN_IF_ERROR(failpoint("swap.before_commit"));
    return admin_->Exec("COMMIT");
  };
  absl::Status s;
  for (int tries = 1;; ++tries) {
    s = attempt();
    if (s.ok()) break;
    const bool in_use = !failpoint_fired && admin_->last_error().sqlstate == "55006";
    admin_->Exec("ROLLBACK").IgnoreError();
    if (!in_use || tries >= 20) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  RETURN_IF_ERROR(Annotated(s, "swap in the restored database as", live));
  RETURN_IF_ERROR(MR_FAILPOINT("swap.after_commit"));
  return live_oid != 0 ? previous : std::string();
}

absl::StatusOr<std::vector<std::string>> TargetDatabases::ListPrevious(const std::string& live) {
  // Only names PreviousDatabaseName makes; bytewise order is their age.
  ASSIGN_OR_RETURN(PgRows rows,
                   admin_->Query("SELECT datname FROM pg_database WHERE left(datname, "
                                 "length($1)) = $1 AND substr(datname, length($1) + 1) ~ "
                                 "'^[0-9]{14}(_[0-9]{2})?$' ORDER BY datname COLLATE \"C\" DESC",
                                 {PreviousDatabasePrefix(live)}));
  std::vector<std::string> out;
  for (const auto& row : rows.rows) out.push_back(row[0].value_or(""));
  return out;
}

}  // namespace mastodon_restore
