#include "agent/database/server_queries.h"

#include "agent/common/status_macros.h"

namespace mastodon_restore {

absl::StatusOr<bool> RoleMayCreateDatabases(PgSession* session) {
  ASSIGN_OR_RETURN(PgRows role, session->Query("SELECT rolsuper OR rolcreatedb FROM pg_roles "
                                               "WHERE rolname = current_user"));
  return role.Scalar() == "t";
}

absl::StatusOr<std::string> ServerDataDirectory(PgSession* session) {
  ASSIGN_OR_RETURN(PgRows dir,
                   session->Query("SELECT setting FROM pg_settings WHERE name = 'data_directory'"));
  return dir.Scalar();
}

absl::StatusOr<RestoreServerFacts> ReadRestoreServerFacts(PgConnector* connector,
                                                          const std::string& conninfo) {
  ASSIGN_OR_RETURN(std::unique_ptr<PgSession> admin, connector->Connect(conninfo, "postgres"));
  RestoreServerFacts facts;
  facts.server_version = admin->server_version();
  facts.user = admin->current_user();
  ASSIGN_OR_RETURN(facts.may_create_databases, RoleMayCreateDatabases(admin.get()));
  auto dir = ServerDataDirectory(admin.get());
  if (dir.ok()) facts.data_directory = *dir;
  return facts;
}

}  // namespace mastodon_restore
