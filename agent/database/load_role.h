// The role a dump is loaded as: a temporary LOGIN role per restore, without
// superuser rights (NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
// NOBYPASSRLS), so that nothing the dump runs (function bodies, column
// defaults evaluated by COPY, triggers, index expressions) reaches the
// server's files, programs or settings, or other databases; SET ROLE and
// SET SESSION AUTHORIZATION cannot leave it because its session user is not
// a superuser. It owns the staging database while the dump loads; objects
// are given to the roles the dump names only when those are ordinary roles
// (CheckOwner; by the superuser connection once the load is done), and what
// it still owns at the end goes to the final owner (Finish). Its random password goes to libpq as a
// connection parameter only: never on argv, in a conninfo string, a log, a record or a message.
#ifndef MR_AGENT_DATABASE_LOAD_ROLE_H_
#define MR_AGENT_DATABASE_LOAD_ROLE_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/database/pg_connection.h"

namespace mastodon_restore {

// "mr_load_<16 hex>", derived from the staging database's name.
std::string LoadRoleName(const std::string& staging_database);

class LoadRole {
 public:
  // Creates the role on `admin` (a superuser connection made with
  // `admin_conninfo`) with a random password, then finds where it can log
  // in: the host of `admin_conninfo` (its socket when it names none), then
  // 127.0.0.1 and ::1 on the same port. When none accepts it the role is
  // dropped again and FAILED_PRECONDITION names the pg_hba.conf line to
  // add. ALREADY_EXISTS when a role of that name exists.
  static absl::StatusOr<std::unique_ptr<LoadRole>> Create(PgConnection* admin,
                                                          const std::string& admin_conninfo,
                                                          const std::string& name);
  ~LoadRole();
  LoadRole(const LoadRole&) = delete;
  LoadRole& operator=(const LoadRole&) = delete;

  const std::string& name() const { return name_; }
  // Where it logged in ("socket", "127.0.0.1", ...), for the report.
  const std::string& login_host() const { return login_host_; }

  // A connection as the role to `database`.
  absl::StatusOr<std::unique_ptr<PgConnection>> Connect(const std::string& database) const;

  // What `role`, named by the dump's ALTER ... OWNER TO, is: missing;
  // ordinary (not a superuser, no CREATEROLE, CREATEDB, REPLICATION or
  // BYPASSRLS, not a predefined pg_* role, and a member of none such,
  // directly or not; the load role itself), so objects may be given to it
  // (by the superuser connection, after the load: the load role is never a
  // member of another role); or privileged. Asked on `admin`.
  enum class Owner { kMissing, kOrdinary, kPrivileged };
  absl::StatusOr<Owner> CheckOwner(PgConnection* admin, const std::string& role);

  // After a successful load (and the deferred owner changes), on
  // `staging_admin` (a superuser connection to the staging database): the
  // settings of the database and of roles in it, its connection limit and
  // flags are reset (the dump's functions, run by the database's owner,
  // could have changed them), everything the role still owns (the
  // database included) goes to `owner`, and its remaining privileges are
  // dropped.
  absl::Status Finish(PgConnection* staging_admin, const std::string& staging_database,
                      const std::string& owner);

  // Drops the role (with its memberships) from `admin_conninfo`'s server;
  // after Finish, or once the staging database is gone. Best effort; also
  // run by the destructor when not done yet.
  void Drop();

 private:
  LoadRole(std::string admin_conninfo, std::string name, std::string password)
      : admin_conninfo_(std::move(admin_conninfo)),
        name_(std::move(name)),
        password_(std::move(password)) {}
  std::vector<std::pair<std::string, std::string>> Params(const std::string& host,
                                                          const std::string& database) const;

  std::string admin_conninfo_;
  std::string name_;
  std::string password_;
  // Connection parameters of the admin conninfo beside host, user,
  // password, passfile and dbname (port, sslmode, ...).
  std::vector<std::pair<std::string, std::string>> base_;
  std::string host_;        // the host that accepted it ("" : libpq's default)
  std::string login_host_;  // its name in messages
  std::map<std::string, Owner> owners_;
  bool dropped_ = false;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_LOAD_ROLE_H_
