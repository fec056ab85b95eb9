#include "agent/database/target_ops.h"

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "agent/common/errors.h"
#include "agent/common/sha256.h"
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

absl::Status TargetDatabases::CreateStaging(const std::string& name, const std::string& encoding,
                                            const std::string& locale, const std::string& owner,
                                            std::vector<std::string>* warnings) {
  auto create = [&](const std::string& loc) {
    std::string sql =
        absl::StrCat("CREATE DATABASE ", admin_->QuoteIdentifier(name), " TEMPLATE template0");
    if (!encoding.empty()) absl::StrAppend(&sql, " ENCODING ", admin_->QuoteLiteral(encoding));
    if (!loc.empty()) absl::StrAppend(&sql, " LOCALE ", admin_->QuoteLiteral(loc));
    if (!owner.empty()) absl::StrAppend(&sql, " OWNER ", admin_->QuoteIdentifier(owner));
    return admin_->Exec(sql);
  };
  absl::Status s = create(locale);
  if (!s.ok() && !locale.empty() &&
      (absl::StrContains(s.message(), "invalid locale name") ||
       absl::StrContains(s.message(), "does not match locale") ||
       admin_->last_error().sqlstate == "22023")) {
    warnings->push_back(absl::StrCat("locale '", locale,
                                     "' of the dump does not exist on the target: using C.UTF-8 (",
                                     s.message(), ")"));
    s = create("C.UTF-8");
  }
  RETURN_IF_ERROR(Annotated(s, "create staging database", name));
  return Annotated(admin_->Exec(absl::StrCat("COMMENT ON DATABASE ", admin_->QuoteIdentifier(name),
                                             " IS ", admin_->QuoteLiteral(kStagingComment))),
                   "mark staging database", name);
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
                                                    const std::string& previous) {
  ASSIGN_OR_RETURN(bool live_exists, Exists(live));
  ASSIGN_OR_RETURN(bool staging_exists, Exists(staging));
  if (!staging_exists) {
    return absl::FailedPreconditionError(
        absl::StrCat("unable to swap in '", staging, "': it does not exist"));
  }
  RETURN_IF_ERROR(TerminateSessions(staging, absl::Seconds(30)));
  if (live_exists) {
    ASSIGN_OR_RETURN(bool previous_exists, Exists(previous));
    if (previous_exists) {
      return absl::FailedPreconditionError(
          absl::StrCat("unable to keep '", live, "' as '", previous, "': that name is taken"));
    }
    // The short critical section: refuse new connections, end the sessions,
    // rename both in one transaction.
    RETURN_IF_ERROR(Annotated(SetAllowConnections(live, false), "lock database", live));
    absl::Status s = TerminateSessions(live, absl::Seconds(30));
    if (s.ok()) {
      s = admin_->Exec(absl::StrCat("BEGIN; ALTER DATABASE ", admin_->QuoteIdentifier(live),
                                    " RENAME TO ", admin_->QuoteIdentifier(previous),
                                    "; ALTER DATABASE ", admin_->QuoteIdentifier(staging),
                                    " RENAME TO ", admin_->QuoteIdentifier(live), "; COMMIT"));
      if (!s.ok()) admin_->Exec("ROLLBACK").IgnoreError();
    }
    if (!s.ok()) {
      SetAllowConnections(live, true).IgnoreError();
      return Annotated(s, "swap in the restored database as", live);
    }
    RETURN_IF_ERROR(Annotated(SetAllowConnections(previous, true), "unlock database", previous));
  } else {
    RETURN_IF_ERROR(
        Annotated(admin_->Exec(absl::StrCat("ALTER DATABASE ", admin_->QuoteIdentifier(staging),
                                            " RENAME TO ", admin_->QuoteIdentifier(live))),
                  "rename the restored database to", live));
  }
  RETURN_IF_ERROR(admin_->Exec(
      absl::StrCat("COMMENT ON DATABASE ", admin_->QuoteIdentifier(live), " IS NULL")));
  return live_exists ? previous : std::string();
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

absl::StatusOr<std::vector<std::string>> TargetDatabases::ListStaging() {
  ASSIGN_OR_RETURN(PgRows rows,
                   admin_->Query("SELECT d.datname FROM pg_database d JOIN pg_shdescription s "
                                 "ON s.objoid = d.oid AND s.classoid = 'pg_database'::regclass "
                                 "WHERE s.description = $1 ORDER BY 1",
                                 {kStagingComment}));
  std::vector<std::string> out;
  for (const auto& row : rows.rows) out.push_back(row[0].value_or(""));
  return out;
}

}  // namespace mastodon_restore
