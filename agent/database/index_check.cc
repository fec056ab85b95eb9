#include "agent/database/index_check.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {

namespace v1 = ::mastodon::restore::v1;

namespace {

// The btree indexes of the database that bt_index_check may read, and those
// it skips (`dump_code`: an operator class or key type outside pg_catalog).
std::string IndexesQuery(bool dump_code) {
  return absl::StrCat(
      "SELECT c.oid::text, c.oid::regclass::text FROM pg_catalog.pg_index i "
      "JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid "
      "JOIN pg_catalog.pg_am a ON a.oid = c.relam "
      "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
      // relkind 'i': a partitioned table's index ('I') has no storage of
      // its own; bt_index_check reads its partitions' indexes.
      "WHERE a.amname = 'btree' AND c.relkind = 'i' AND i.indisvalid AND i.indisready "
      "AND c.relpersistence <> 't' "
      "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
      "AND n.nspname NOT LIKE 'pg\\_toast%' AND ",
      dump_code ? "" : "NOT ",
      "(EXISTS (SELECT 1 FROM pg_catalog.unnest(i.indclass) AS k(opclass) "
      "JOIN pg_catalog.pg_opclass o ON o.oid = k.opclass "
      "WHERE o.opcnamespace <> 'pg_catalog'::regnamespace) "
      "OR EXISTS (SELECT 1 FROM pg_catalog.pg_attribute ia "
      "JOIN pg_catalog.pg_type t ON t.oid = ia.atttypid "
      "WHERE ia.attrelid = c.oid AND t.typnamespace <> 'pg_catalog'::regnamespace)) "
      "ORDER BY c.oid");
}

}  // namespace

absl::StatusOr<v1::IndexCheckResult> CheckBtreeIndexes(PgSession* conn) {
  v1::IndexCheckResult result;
  RETURN_IF_ERROR(conn->Exec("SET search_path = pg_catalog, pg_temp"));
  ASSIGN_OR_RETURN(PgRows available,
                   conn->Query("SELECT count(*) FROM pg_catalog.pg_available_extensions "
                               "WHERE name = 'amcheck'"));
  if (available.Scalar() == "0") {
    result.set_available(false);
    result.set_message(
        "amcheck is not available on this server (its contrib modules are not installed; the "
        "snap's PostgreSQL has none): the indexes were not checked");
    return result;
  }
  result.set_available(true);
  ASSIGN_OR_RETURN(PgRows existing,
                   conn->Query("SELECT n.nspname FROM pg_catalog.pg_extension e JOIN "
                               "pg_catalog.pg_namespace n ON n.oid = e.extnamespace "
                               "WHERE e.extname = 'amcheck'"));
  std::string schema = existing.rows.empty() ? std::string("mr_amcheck") : existing.Scalar();
  const bool created = existing.rows.empty();
  if (created) {
    absl::Status s = conn->Exec(
        "BEGIN; CREATE SCHEMA mr_amcheck; CREATE EXTENSION amcheck SCHEMA mr_amcheck; "
        "COMMIT");
    if (!s.ok()) {
      const PgError error = conn->last_error();
      conn->Exec("ROLLBACK").IgnoreError();
      // A role that is not a superuser may not create it (amcheck is not
      // trusted): said, not fatal.
      if (error.sqlstate != "42501") return s;
      result.set_available(false);
      result.set_message(absl::StrCat("amcheck could not be created by the connecting role (",
                                      error.message, "): the indexes were not checked"));
      return result;
    }
  }
  absl::Status checked = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(PgRows skipped, conn->Query(IndexesQuery(true)));
    result.set_indexes_skipped(static_cast<int64_t>(skipped.rows.size()));
    ASSIGN_OR_RETURN(PgRows indexes, conn->Query(IndexesQuery(false)));
    const std::string check = absl::StrCat("SELECT ", conn->QuoteIdentifier(schema),
                                           ".bt_index_check($1::oid::regclass)");
    for (const auto& row : indexes.rows) {
      absl::Status s = conn->Query(check, {row[0].value_or("")}).status();
      if (!s.ok()) {
        if (s.code() == absl::StatusCode::kUnavailable ||
            s.code() == absl::StatusCode::kCancelled) {
          return s;
        }
        result.add_failures(absl::StrCat(row[1].value_or(""), ": ", conn->last_error().message));
      }
      result.set_indexes_checked(result.indexes_checked() + 1);
    }
    return absl::OkStatus();
  }();
  if (created) {
    absl::Status dropped = conn->Exec("DROP EXTENSION amcheck; DROP SCHEMA mr_amcheck");
    if (checked.ok()) checked = dropped;
  }
  RETURN_IF_ERROR(checked);
  result.set_message(
      result.failures_size() == 0
          ? absl::StrCat(result.indexes_checked(), " btree indexes checked (bt_index_check)",
                         result.indexes_skipped() > 0
                             ? absl::StrCat(", ", result.indexes_skipped(),
                                            " skipped (the dump's operator classes or types)")
                             : "")
          : absl::StrCat(result.failures_size(), " of ", result.indexes_checked(),
                         " btree indexes failed bt_index_check"));
  return result;
}

}  // namespace mastodon_restore
