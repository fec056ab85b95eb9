#include "agent/database/load_role.h"

#include <sys/random.h>

#include <cerrno>
#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/digest.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

// 24 random bytes as hex.
absl::StatusOr<std::string> RandomPassword() {
  unsigned char bytes[24];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError("unable to create the load role's password: getrandom failed");
    }
    got += static_cast<size_t>(n);
  }
  return HexOf(absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

}  // namespace

std::string LoadRoleName(const std::string& staging_database) {
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : staging_database) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  static const char kHex[] = "0123456789abcdef";
  std::string name = "mr_load_";
  for (int shift = 60; shift >= 0; shift -= 4) name.push_back(kHex[(h >> shift) & 15]);
  return name;
}

std::vector<std::pair<std::string, std::string>> LoadRole::Params(
    const std::string& host, const std::string& database) const {
  std::vector<std::pair<std::string, std::string>> params = base_;
  if (!host.empty()) params.emplace_back("host", host);
  params.emplace_back("dbname", database);
  params.emplace_back("user", name_);
  params.emplace_back("password", password_);
  params.emplace_back("passfile", "/dev/null");
  params.emplace_back("connect_timeout", "15");
  params.emplace_back("application_name", "mastodon-restore");
  return params;
}

absl::StatusOr<std::unique_ptr<LoadRole>> LoadRole::Create(PgConnection* admin,
                                                           const std::string& admin_conninfo,
                                                           const std::string& name) {
  ASSIGN_OR_RETURN(auto admin_params, ConnInfoParams(admin_conninfo));
  ASSIGN_OR_RETURN(std::string password, RandomPassword());
  std::unique_ptr<LoadRole> role(new LoadRole(admin_conninfo, name, std::move(password)));
  std::string admin_host, admin_hostaddr, port;
  for (const auto& [key, value] : admin_params) {
    if (key == "host") {
      admin_host = value;
    } else if (key == "hostaddr") {
      admin_hostaddr = value;
    } else if (key == "port") {
      port = value;
      role->base_.emplace_back(key, value);
    } else if (key != "user" && key != "password" && key != "passfile" && key != "dbname" &&
               key != "connect_timeout" && key != "application_name") {
      role->base_.emplace_back(key, value);
    }
  }

  ASSIGN_OR_RETURN(PgRows exists,
                   admin->Query("SELECT count(*) FROM pg_roles WHERE rolname = $1", {name}));
  if (exists.Scalar() != "0") {
    role->dropped_ = true;  // not ours
    return absl::AlreadyExistsError(
        absl::StrCat("unable to create the load role '", name, "': it exists"));
  }
  // The password is hashed with SCRAM whatever the server's default (an MD5
  // hash cannot answer a scram-sha-256 pg_hba line).
  RETURN_IF_ERROR(admin->Exec("SET password_encryption = 'scram-sha-256'"));
  absl::Status created =
      admin->Exec(absl::StrCat("CREATE ROLE ", admin->QuoteIdentifier(name),
                               " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                               "NOBYPASSRLS INHERIT PASSWORD ",
                               admin->QuoteLiteral(role->password_)));
  admin->Exec("RESET password_encryption").IgnoreError();
  if (!created.ok()) {
    role->dropped_ = true;
    return absl::Status(created.code(), absl::StrCat("unable to create the load role '", name,
                                                     "': ", admin->last_error().message));
  }

  // Where it can log in.
  struct Candidate {
    std::string host, hostaddr, shown;
  };
  std::vector<Candidate> candidates;
  candidates.push_back(
      {admin_host, admin_hostaddr, admin_host.empty() ? "the default socket" : admin_host});
  for (const char* loopback : {"127.0.0.1", "::1"}) {
    if (admin_host != loopback || !admin_hostaddr.empty()) {
      candidates.push_back({loopback, "", loopback});
    }
  }
  std::vector<std::string> refused;
  for (const Candidate& c : candidates) {
    auto params = role->Params(c.host, "postgres");
    if (!c.hostaddr.empty()) params.emplace_back("hostaddr", c.hostaddr);
    auto conn = PgConnection::ConnectParams(params);
    // Logged in (the role may lack CONNECT on the postgres database).
    if (conn.ok() || absl::StrContains(conn.status().message(), "permission denied for database")) {
      role->host_ = c.host;
      role->login_host_ = c.shown;
      if (!c.hostaddr.empty()) role->base_.emplace_back("hostaddr", c.hostaddr);
      return role;
    }
    refused.push_back(c.shown);
  }
  role->Drop();
  return absl::FailedPreconditionError(absl::StrCat(
      "unable to load the dump as a role without superuser rights: the server accepts no "
      "password login for a new role (tried ",
      absl::StrJoin(refused, ", "), port.empty() ? "" : absl::StrCat(" on port ", port),
      "); add the line \"host all all 127.0.0.1/32 scram-sha-256\" to pg_hba.conf before "
      "its other host lines and reload PostgreSQL, or restore with --allow-superuser-load "
      "(the dump then runs as superuser)"));
}

LoadRole::~LoadRole() { Drop(); }

absl::StatusOr<std::unique_ptr<PgConnection>> LoadRole::Connect(const std::string& database) const {
  return PgConnection::ConnectParams(Params(host_, database));
}

absl::StatusOr<LoadRole::Owner> LoadRole::CheckOwner(PgConnection* admin, const std::string& role) {
  if (role == name_) return Owner::kOrdinary;
  auto known = owners_.find(role);
  if (known != owners_.end()) return known->second;
  ASSIGN_OR_RETURN(
      PgRows rows,
      admin->Query("WITH RECURSIVE up AS (SELECT oid FROM pg_roles WHERE rolname = $1 UNION "
                   "SELECT m.roleid FROM pg_auth_members m JOIN up ON m.member = up.oid) "
                   "SELECT count(*), coalesce(bool_and(NOT r.rolsuper AND NOT r.rolcreaterole "
                   "AND NOT r.rolcreatedb AND NOT r.rolreplication AND NOT r.rolbypassrls AND "
                   "r.rolname NOT LIKE 'pg\\_%'), true) FROM up JOIN pg_roles r USING (oid)",
                   {role}));
  if (rows.rows.empty() || rows.rows[0].size() < 2) {
    return absl::InternalError("unable to check a role of the dump");
  }
  Owner owner = Owner::kPrivileged;
  if (rows.rows[0][0].value_or("0") == "0") {
    owner = Owner::kMissing;
  } else if (rows.rows[0][1].value_or("f") == "t") {
    owner = Owner::kOrdinary;
  }
  owners_[role] = owner;
  return owner;
}

absl::Status LoadRole::Finish(PgConnection* staging_admin, const std::string& staging_database,
                              const std::string& owner) {
  const std::string db = staging_admin->QuoteIdentifier(staging_database);
  const std::string me = staging_admin->QuoteIdentifier(name_);
  RETURN_IF_ERROR(staging_admin->Exec(absl::StrCat("ALTER DATABASE ", db, " RESET ALL")));
  RETURN_IF_ERROR(staging_admin->Exec(
      absl::StrCat("ALTER DATABASE ", db,
                   " WITH ALLOW_CONNECTIONS true CONNECTION LIMIT -1 IS_TEMPLATE false")));
  RETURN_IF_ERROR(
      staging_admin->Exec(absl::StrCat("ALTER ROLE ALL IN DATABASE ", db, " RESET ALL")));
  RETURN_IF_ERROR(staging_admin->Exec(
      absl::StrCat("REASSIGN OWNED BY ", me, " TO ", staging_admin->QuoteIdentifier(owner))));
  return staging_admin->Exec(absl::StrCat("DROP OWNED BY ", me));
}

void LoadRole::Drop() {
  if (dropped_) return;
  auto admin = PgConnection::Connect(admin_conninfo_, "postgres");
  if (!admin.ok()) return;
  PgConnection* conn = admin->get();
  conn->Query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", {name_})
      .IgnoreError();
  if (conn->Exec(absl::StrCat("DROP ROLE IF EXISTS ", conn->QuoteIdentifier(name_))).ok()) {
    dropped_ = true;
  }
}

}  // namespace mastodon_restore
