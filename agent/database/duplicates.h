// Duplicates under the dump's own unique indexes: when the data of a dump
// violates a unique index, primary key or unique constraint of its schema
// (a source database whose indexes were corrupted by a collation change,
// mastodon#3005), the load collects those builds (LoadStats::failed_builds)
// and goes on; this finds, in the staging database, the duplicated keys and
// the rows holding them, and with `repair` applies the rules of Mastodon's
// `tootctl maintenance fix-duplicates` (lib/mastodon/cli/maintenance.rb) to
// the tables they cover, non-interactively, then creates the indexes and
// the statements that depend on them again.
//
// All of it runs on the load's own connection (the load role, not a
// superuser): a key expression or predicate may call the dump's functions.
#ifndef MR_AGENT_DATABASE_DUPLICATES_H_
#define MR_AGENT_DATABASE_DUPLICATES_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/database/load_options.h"
#include "agent/database/pg_session.h"
#include "mastodon/restore/v1/prechecks.pb.h"

namespace mastodon_restore {

// The key of a unique build as the dump's statement writes it.
struct UniqueKey {
  std::string name;   // the index or constraint, as written
  std::string table;  // as written ("public.accounts")
  // Each key column or expression, without operator class or ordering but
  // with its COLLATE ("lower((username)::text)", "email").
  std::vector<std::string> columns;
  std::string predicate;  // a partial index's WHERE ("" for none)
  bool nulls_not_distinct = false;
};

// Parses CREATE UNIQUE INDEX ... ON t USING m (k, ...) [INCLUDE (...)]
// [NULLS [NOT] DISTINCT] [WITH (...)] [WHERE p] and ALTER TABLE [ONLY] t ADD
// CONSTRAINT c {PRIMARY KEY | UNIQUE [NULLS [NOT] DISTINCT]} (k, ...) as
// pg_dump writes them. INVALID_ARGUMENT when `sql` is neither.
absl::StatusOr<UniqueKey> ParseUniqueKey(absl::string_view sql);

// Bounds of a finding: keys listed per index, row ids per key, bytes per
// key value.
inline constexpr int kMaxDuplicateKeys = 20;
inline constexpr int kMaxDuplicateRowIds = 10;
inline constexpr size_t kMaxKeyValueBytes = 200;

// The duplicates under the failed unique build `failed`, counted and the
// first kMaxDuplicateKeys keys listed (most rows first). Errors only when
// the database cannot be queried.
absl::StatusOr<mastodon::restore::v1::DuplicateFinding> FindDuplicates(PgSession* conn,
                                                                       const FailedBuild& failed);

// What fix-duplicates does for the duplicates under the failed builds, and
// the builds run again.
struct DuplicatesOutcome {
  // Unique builds still failing (all of them without `repair`), with their
  // duplicates.
  std::vector<mastodon::restore::v1::DuplicateFinding> findings;
  // Dependent statements not run (their unique build still fails).
  std::vector<std::string> dependent_statements;
  // Rows the repair changed or removed (the first kMaxRepairedRows) and
  // how many.
  std::vector<mastodon::restore::v1::RepairedRow> repaired_rows;
  int64_t repaired_row_count = 0;
  // Rows the repairs deleted per table (format('%I.%I'), as the dump names
  // tables), the database's cascades included: what the verification's row
  // counts no longer hold.
  std::map<std::string, int64_t> deleted_rows;
};
inline constexpr size_t kMaxRepairedRows = 1000;

// Finds the duplicates of every failed unique build of `failed`; with
// `repair`, applies fix-duplicates' rule to each whose table and key it
// covers (in one transaction per index), runs the build again and then the
// dependent statements whose builds now exist. A build whose table no rule
// covers, or that still fails, stays in the findings. Errors: the database
// cannot be queried, or a dependent statement fails once its build exists.
absl::StatusOr<DuplicatesOutcome> ResolveDuplicates(PgSession* conn,
                                                    const std::vector<FailedBuild>& failed,
                                                    bool repair);

// The fix-duplicates rule for a unique key of `table` (unqualified) on
// `columns`, described ("keep the highest id, remove the others"); "" when
// maintenance.rb covers no such index.
std::string RepairRuleFor(const std::string& table, const std::vector<std::string>& columns);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_DUPLICATES_H_
