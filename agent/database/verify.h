// Checks of a restored (or live) database before it is swapped in, and for
// StartVerify: tables and row counts against what the dump held, the Mastodon
// schema version, index validity, sequences not behind their columns.
#ifndef MR_AGENT_DATABASE_VERIFY_H_
#define MR_AGENT_DATABASE_VERIFY_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "agent/database/pg_session.h"
#include "mastodon/restore/v1/operation.pb.h"

namespace mastodon_restore {

struct VerifyExpectations {
  // Rows per table as named in the dump ("public.statuses").
  std::map<std::string, int64_t> table_rows;
  // Highest schema_migrations version of the dump ("" to skip the check).
  std::string schema_version;
};

// Runs every check on the database `conn` is connected to. Errors only when
// the database cannot be queried; failed checks are results.
absl::StatusOr<mastodon::restore::v1::VerifyResult> VerifyDatabase(
    PgSession* conn, const std::string& database, const VerifyExpectations& expected);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_VERIFY_H_
