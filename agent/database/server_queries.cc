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

}  // namespace mastodon_restore
