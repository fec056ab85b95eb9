// amcheck in the staging database: bt_index_check of every btree index,
// where the server has the extension (Debian's and the PostgreSQL project's
// packages ship it in contrib; the snap builds none). A structurally broken
// index refuses the swap.
#ifndef MR_AGENT_DATABASE_INDEX_CHECK_H_
#define MR_AGENT_DATABASE_INDEX_CHECK_H_

#include "absl/status/statusor.h"
#include "agent/database/pg_session.h"
#include "mastodon/restore/v1/prechecks.pb.h"

namespace mastodon_restore {

// Checks the btree indexes of the database `conn` (a superuser session) is
// connected to. amcheck is created for the check in a schema of its own
// and dropped again (unless the database had it). Indexes whose operator
// classes or key types are not pg_catalog's are skipped: their comparison
// functions are the dump's code, not run as superuser. The result says
// when the server has no amcheck. Errors only when the database cannot be
// queried.
absl::StatusOr<mastodon::restore::v1::IndexCheckResult> CheckBtreeIndexes(PgSession* conn);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_INDEX_CHECK_H_
