// A Mastodon-shaped database for the benchmarks: the real table and column
// names of Mastodon's big tables, Rails-like indexes (several per big table,
// partial, unique and expression ones), foreign keys, sequences, a function
// and a materialized view, filled with text that does not compress
// trivially. SCALE=1 is about 700 MB of plain pg_dump output; rows grow
// linearly with the scale.
#ifndef MR_BENCH_SHAPED_DATA_H_
#define MR_BENCH_SHAPED_DATA_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "agent/database/pg_connection.h"

namespace mastodon_restore {
namespace bench {

struct MastodonDataStats {
  int64_t statuses = 0;
  int64_t accounts = 0;
  int64_t total_rows = 0;
};

// Creates the schema and fills it in the database `conn` is connected to
// (which must be empty). Deterministic for a given scale. `step` is told each
// table's name as it starts.
absl::Status GenerateMastodonData(PgConnection* conn, double scale,
                                  const std::function<void(const std::string&)>& step,
                                  MastodonDataStats* stats);

}  // namespace bench
}  // namespace mastodon_restore

#endif  // MR_BENCH_SHAPED_DATA_H_
