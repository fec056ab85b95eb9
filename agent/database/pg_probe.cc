#include "agent/database/pg_probe.h"

#include <libpq-fe.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "agent/database/pg_connection.h"

namespace mastodon_restore {

absl::StatusOr<int> ProbeServerVersion(const std::string& conninfo) {
  const char* keys[] = {"dbname", "connect_timeout", nullptr};
  const char* values[] = {conninfo.c_str(), "10", nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string error = ScrubCredentialFiles(absl::StripAsciiWhitespace(PQerrorMessage(conn)));
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("unable to connect to the target server: ", error));
  }
  int version = PQserverVersion(conn);
  PQfinish(conn);
  return version;
}

}  // namespace mastodon_restore
