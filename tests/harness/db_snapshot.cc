#include "tests/harness/db_snapshot.h"

#include <libpq-fe.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace mastodon_restore {
namespace testing {
namespace {

constexpr char kUserNamespaces[] =
    "(SELECT oid FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND nspname NOT LIKE 'pg_toast%' AND nspname NOT LIKE 'pg_temp%')";

// Rows of `sql`, one line each (columns joined by " | ").
absl::StatusOr<std::vector<std::string>> Lines(PGconn* conn, const std::string& sql) {
  PGresult* res = PQexec(conn, sql.c_str());
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    std::string error = PQerrorMessage(conn);
    PQclear(res);
    return absl::InternalError(absl::StrCat("snapshot query failed: ", error, sql));
  }
  std::vector<std::string> out;
  for (int r = 0; r < PQntuples(res); ++r) {
    std::vector<std::string> cols;
    for (int c = 0; c < PQnfields(res); ++c) {
      cols.push_back(PQgetisnull(res, r, c) ? "NULL" : PQgetvalue(res, r, c));
    }
    out.push_back(absl::StrJoin(cols, " | "));
  }
  PQclear(res);
  return out;
}

// An ACL as text without PostgreSQL 17's MAINTAIN privilege ('m'), which
// the owner of a relation has on 17+ only.
std::string Acl(const std::string& column) {
  return absl::StrCat("coalesce(regexp_replace(", column,
                      "::text, '(=[^/]*)m(\\*?)', '\\1\\2', 'g'), '')");
}

}  // namespace

absl::StatusOr<std::string> DatabaseSnapshot(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string error = PQerrorMessage(conn);
    PQfinish(conn);
    return absl::UnavailableError(error);
  }
  const std::string ns = kUserNamespaces;
  const std::vector<std::pair<std::string, std::string>> sections = {
      {"schemas", "SELECT nspname, pg_get_userbyid(nspowner), " + Acl("nspacl") +
                      " FROM pg_namespace "
                      "WHERE oid IN " +
                      ns + " AND nspname <> 'public' ORDER BY 1"},
      {"relations",
       "SELECT format('%I.%I', n.nspname, c.relname), c.relkind, pg_get_userbyid(c.relowner), " +
           Acl("c.relacl") +
           " FROM pg_class c JOIN pg_namespace n ON n.oid = "
           "c.relnamespace WHERE c.relnamespace IN " +
           ns + " ORDER BY 1"},
      {"columns",
       "SELECT a.attrelid::regclass::text, a.attname, format_type(a.atttypid, a.atttypmod), "
       "a.attnotnull, pg_get_expr(d.adbin, d.adrelid), " +
           Acl("a.attacl") +
           " FROM pg_attribute a JOIN pg_class c ON "
           "c.oid = a.attrelid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = "
           "a.attnum WHERE c.relnamespace IN " +
           ns +
           " AND c.relkind IN ('r', 'p', 'v', 'm') "
           "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, a.attnum"},
      {"constraints",
       "SELECT conrelid::regclass::text, conname, contype, convalidated, "
       "pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace IN " +
           ns + " AND contype <> 'n' ORDER BY 1, 2"},
      {"indexes",
       "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index i JOIN "
       "pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace IN " +
           ns + " ORDER BY 1"},
      {"functions", "SELECT oid::regprocedure::text, pg_get_userbyid(proowner), " + Acl("proacl") +
                        ", "
                        "md5(prosrc) FROM pg_proc WHERE pronamespace IN " +
                        ns + " ORDER BY 1"},
      {"comments",
       "SELECT pg_describe_object(classoid, objoid, objsubid), description FROM pg_description "
       "WHERE objoid >= 16384 ORDER BY 1"},
      {"large objects", "SELECT oid, pg_get_userbyid(lomowner), " + Acl("lomacl") +
                            ", md5(lo_get(oid)) "
                            "FROM pg_largeobject_metadata ORDER BY oid"},
  };
  std::string out;
  absl::Status status;
  for (const auto& [name, sql] : sections) {
    auto lines = Lines(conn, sql);
    if (!lines.ok()) {
      status = lines.status();
      break;
    }
    absl::StrAppend(&out, "## ", name, "\n", absl::StrJoin(*lines, "\n"), "\n");
  }
  // Table contents and sequence values.
  if (status.ok()) {
    auto tables = Lines(conn,
                        "SELECT format('%I.%I', n.nspname, c.relname), c.relkind FROM "
                        "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
                        "c.relnamespace IN " +
                            ns +
                            " AND c.relkind IN ('r', 'm', 'S') "
                            "ORDER BY 1");
    if (!tables.ok()) status = tables.status();
    absl::StrAppend(&out, "## contents\n");
    for (const std::string& line : tables.ok() ? *tables : std::vector<std::string>()) {
      const std::string name = line.substr(0, line.rfind(" | "));
      const bool sequence = line.back() == 'S';
      auto rows = Lines(
          conn, sequence ? absl::StrCat("SELECT last_value, is_called FROM ", name)
                         : absl::StrCat("SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' "
                                        "ORDER BY t::text), '')) FROM ",
                                        name, " t"));
      if (!rows.ok()) {
        status = rows.status();
        break;
      }
      absl::StrAppend(&out, name, ": ", absl::StrJoin(*rows, "; "), "\n");
    }
  }
  PQfinish(conn);
  if (!status.ok()) return status;
  return out;
}

}  // namespace testing
}  // namespace mastodon_restore
