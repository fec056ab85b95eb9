#include "agent/database/pg_probe.h"

#include <libpq-fe.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "agent/common/status_macros.h"
#include "agent/database/pg_connection.h"

namespace mastodon_restore {

absl::StatusOr<int> ProbeServerVersion(const std::string& conninfo) {
  const char* keys[] = {"dbname", "connect_timeout", nullptr};
  const char* values[] = {conninfo.c_str(), "10", nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string error = std::string(absl::StripAsciiWhitespace(PQerrorMessage(conn)));
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("unable to connect to the target server: ", error));
  }
  int version = PQserverVersion(conn);
  PQfinish(conn);
  return version;
}

absl::StatusOr<RestoreServerFacts> ReadRestoreServerFacts(const std::string& conninfo) {
  ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> admin,
                   PgConnection::Connect(conninfo, "postgres"));
  RestoreServerFacts facts;
  facts.server_version = admin->server_version();
  facts.user = admin->current_user();
  ASSIGN_OR_RETURN(PgRows role, admin->Query("SELECT rolsuper OR rolcreatedb FROM pg_roles "
                                             "WHERE rolname = current_user"));
  facts.may_create_databases = role.Scalar() == "t";
  // Only a superuser (or pg_read_all_settings) can read it; others get an
  // error, which leaves it unknown.
  auto dir = admin->Query("SELECT setting FROM pg_settings WHERE name = 'data_directory'");
  if (dir.ok()) facts.data_directory = dir->Scalar();
  return facts;
}

}  // namespace mastodon_restore
