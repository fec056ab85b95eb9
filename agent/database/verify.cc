#include "agent/database/verify.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/status_macros.h"
#include "agent/dump/plain_scanner.h"

namespace mastodon_restore {

namespace v1 = mastodon::restore::v1;

absl::StatusOr<v1::VerifyResult> VerifyDatabase(PgSession* conn, const std::string& database,
                                                const VerifyExpectations& expected) {
  v1::VerifyResult result;
  result.set_database(database);
  auto check = [&](const std::string& name, bool passed, const std::string& message) {
    v1::VerifyCheck* c = result.add_checks();
    c->set_name(name);
    c->set_passed(passed);
    c->set_message(message);
  };

  std::vector<std::string> missing;
  for (const auto& [table, rows] : expected.table_rows) {
    // The server quotes the name it resolved; nothing from the dump is
    // spliced into SQL as is.
    ASSIGN_OR_RETURN(PgRows resolved, conn->Query("SELECT to_regclass($1)::text", {table}));
    if (resolved.rows.empty() || !resolved.rows[0][0].has_value()) {
      missing.push_back(table);
      check(absl::StrCat("row_count:", table), false, "table missing");
      continue;
    }
    ASSIGN_OR_RETURN(PgRows count,
                     conn->Query(absl::StrCat("SELECT count(*) FROM ", *resolved.rows[0][0])));
    int64_t found = std::stoll(count.Scalar());
    check(absl::StrCat("row_count:", table), found == rows,
          absl::StrCat("expected ", rows, " rows, found ", found));
  }
  check("tables_present", missing.empty(),
        missing.empty() ? absl::StrCat(expected.table_rows.size(), " tables of the dump present")
                        : absl::StrCat("missing: ", absl::StrJoin(missing, ", ")));

  if (!expected.schema_version.empty()) {
    ASSIGN_OR_RETURN(PgRows reg,
                     conn->Query("SELECT to_regclass('public.schema_migrations')::text"));
    std::string found;
    if (!reg.rows.empty() && reg.rows[0][0].has_value()) {
      ASSIGN_OR_RETURN(PgRows v,
                       conn->Query("SELECT max(version) FROM public.schema_migrations "
                                   "WHERE version ~ '^[0-9]+$' AND length(version) = "
                                   "(SELECT max(length(version)) FROM "
                                   "public.schema_migrations WHERE version ~ '^[0-9]+$')"));
      found = v.Scalar();
    }
    check("schema_version", found == expected.schema_version,
          absl::StrCat("expected ", expected.schema_version, ", found ",
                       found.empty() ? "none" : found));
  }

  ASSIGN_OR_RETURN(PgRows invalid,
                   conn->Query("SELECT indexrelid::regclass::text FROM pg_index "
                               "WHERE NOT indisvalid OR NOT indisready ORDER BY 1"));
  std::vector<std::string> bad;
  for (const auto& row : invalid.rows) bad.push_back(row[0].value_or(""));
  check("indexes_valid", bad.empty(),
        bad.empty() ? "every index is valid" : absl::StrCat("invalid: ", absl::StrJoin(bad, ", ")));

  // Sequences a column draws its values from (identity, or a default of
  // nextval) must not be behind the column's maximum. A sequence owned by a
  // column whose default is something else is not: Mastodon's
  // timestamp_id() ids are far above the statuses_id_seq it mixes in.
  ASSIGN_OR_RETURN(PgRows owned,
                   conn->Query("SELECT s.oid::regclass::text, t.oid::regclass::text, "
                               "quote_ident(a.attname) FROM pg_class s "
                               "JOIN pg_depend d ON d.objid = s.oid AND d.classid = "
                               "'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass "
                               "AND d.deptype IN ('a', 'i') "
                               "JOIN pg_class t ON t.oid = d.refobjid "
                               "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = "
                               "d.refobjsubid WHERE s.relkind = 'S' "
                               "AND format_type(a.atttypid, NULL) IN ('bigint', 'integer', "
                               "'smallint') AND (d.deptype = 'i' OR EXISTS (SELECT 1 FROM "
                               "pg_attrdef ad WHERE ad.adrelid = t.oid AND ad.adnum = a.attnum "
                               "AND pg_get_expr(ad.adbin, ad.adrelid) LIKE 'nextval(%')) "
                               "ORDER BY 1"));
  std::vector<std::string> behind;
  for (const auto& row : owned.rows) {
    const std::string seq = row[0].value_or(""), table = row[1].value_or(""),
                      column = row[2].value_or("");
    ASSIGN_OR_RETURN(PgRows v,
                     conn->Query(absl::StrCat(
                         "SELECT (SELECT CASE WHEN is_called THEN last_value ELSE "
                         "last_value - 1 END FROM ",
                         seq, ") >= coalesce((SELECT max(", column, ") FROM ", table, "), 0)")));
    if (v.Scalar() != "t") behind.push_back(seq);
  }
  check("sequences", behind.empty(),
        behind.empty() ? absl::StrCat(owned.rows.size(), " owned sequences up to date")
                       : absl::StrCat("behind their column: ", absl::StrJoin(behind, ", ")));

  bool passed = true;
  for (const auto& c : result.checks()) passed = passed && c.passed();
  result.set_passed(passed);
  return result;
}

}  // namespace mastodon_restore
