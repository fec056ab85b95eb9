#include "cli/render.h"

#include <algorithm>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/common/terminal_text.h"

namespace mastodon_restore {
namespace {

namespace v1 = mastodon::restore::v1;

// Lower-case enum value name without its prefix: DUMP_FORMAT_PLAIN -> plain.
template <typename E>
std::string EnumWord(const std::string& name, const char* prefix) {
  std::string s = name.substr(std::string(prefix).size());
  s = absl::AsciiStrToLower(s);
  std::replace(s.begin(), s.end(), '_', ' ');
  return s;
}

// One line: the value (names from dumps, archives and env files) with its
// control characters shown escaped, newlines included.
std::string Field(const std::string& indent, const std::string& label, const std::string& value) {
  return absl::StrFormat("%s%-14s %s\n", indent, label, TerminalSafe(value));
}

std::string KindText(const v1::DumpInfo& d) {
  switch (d.kind()) {
    case v1::DUMP_KIND_DATABASE:
      return "one database (pg_dump)";
    case v1::DUMP_KIND_CLUSTER:
      return "whole cluster (pg_dumpall)";
    case v1::DUMP_KIND_TAR_RESTORE_SCRIPT:
      return "restore.sql of a pg_dump tar archive";
    default:
      return "unknown";
  }
}

}  // namespace

std::string ByteRange(int64_t begin, int64_t end) {
  if (end < 0) return absl::StrCat("from byte ", begin);
  return absl::StrCat("bytes ", begin, "-", end);
}

std::string HumanBytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrCat(bytes, " B") : absl::StrFormat("%.1f %s", value, units[unit]);
}

std::string RenderDumpInfo(const v1::DumpInfo& d, const std::string& in) {
  std::string s;
  s += Field(in, "dump", d.path().empty() ? "(source)" : d.path());
  std::vector<std::string> outer;
  for (int c : d.outer_compression()) {
    outer.push_back(EnumWord<v1::Compression>(v1::Compression_Name(c), "COMPRESSION_"));
  }
  std::string format = EnumWord<v1::DumpFormat>(v1::DumpFormat_Name(d.format()), "DUMP_FORMAT_");
  s += Field(in, "format",
             absl::StrCat(format, ", ", KindText(d),
                          outer.empty() ? "" : ", compressed with " + absl::StrJoin(outer, " + ")));
  if (!d.archive_version().empty()) {
    s += Field(in, "archive",
               absl::StrCat("version ", d.archive_version(), ", data ",
                            EnumWord<v1::Compression>(
                                v1::Compression_Name(d.internal_compression()), "COMPRESSION_")));
  }
  s += Field(in, "dumped by", d.dumper_version().empty() ? "unknown" : d.dumper_version());
  s += Field(in, "from server", d.server_version().empty() ? "unknown" : d.server_version());
  if (!d.database_name().empty()) s += Field(in, "database", d.database_name());
  for (const v1::ClusterDatabase& db : d.databases()) {
    s += Field(in, "database",
               absl::StrCat(db.name(), "  ", ByteRange(db.begin_offset(), db.end_offset()),
                            db.encoding().empty() ? "" : absl::StrCat("  ", db.encoding()),
                            db.locale().empty() ? "" : absl::StrCat(" ", db.locale()),
                            db.is_mastodon() ? "  (Mastodon)" : ""));
  }
  s += Field(in, "mastodon db",
             !d.mastodon_database().empty() ? d.mastodon_database()
             : d.is_mastodon()              ? std::string("yes (database name not in the dump)")
                                            : std::string("not identified"));
  if (!d.schema_version().empty()) s += Field(in, "schema", d.schema_version());
  if (!d.encoding().empty() || !d.locale().empty()) {
    s += Field(in, "encoding",
               absl::StrCat(d.encoding(), d.locale().empty() ? "" : ", locale ", d.locale()));
  }
  if (!d.roles().empty()) s += Field(in, "roles", absl::StrJoin(d.roles(), ", "));
  if (d.restrict_key_count() > 0) {
    s += Field(in, "\\restrict",
               absl::StrCat(d.restrict_key_count(), " line(s) (CVE-2025-8714 markers)"));
  }
  if (!d.risky_settings().empty()) {
    s += Field(in, "old servers",
               absl::StrCat("may reject: ", absl::StrJoin(d.risky_settings(), ", ")));
  }
  s += Field(in, "complete",
             !d.complete_checked() ? "unknown (end not read; use --deep)"
             : d.complete()        ? "yes"
                                   : "NO (truncated?)");
  if (d.size_bytes() > 0) s += Field(in, "size", HumanBytes(d.size_bytes()));
  if (d.stored_size_bytes() > 0 && d.stored_size_bytes() != d.size_bytes()) {
    s += Field(in, "stored", HumanBytes(d.stored_size_bytes()));
  }
  if (d.deep()) {
    int64_t rows = 0;
    for (const v1::TableRowCount& t : d.tables()) rows += t.rows();
    s += Field(in, "tables", absl::StrCat(d.tables_size(), " with data, ", rows, " rows"));
    std::vector<const v1::TableRowCount*> top;
    for (const v1::TableRowCount& t : d.tables()) top.push_back(&t);
    std::sort(top.begin(), top.end(), [](auto* a, auto* b) { return a->rows() > b->rows(); });
    for (size_t i = 0; i < top.size() && i < 10; ++i) {
      s += Field(in, "",
                 absl::StrFormat("%12d  %s%s", top[i]->rows(),
                                 top[i]->database().empty() ? "" : top[i]->database() + ": ",
                                 top[i]->table()));
    }
    if (d.toc_entries_size() > 0)
      s += Field(in, "toc", absl::StrCat(d.toc_entries_size(), " entries"));
  }
  for (const v1::CompatibilityNote& n : d.compatibility()) {
    s += Field(
        in, "compat",
        absl::StrCat("[", EnumWord<v1::Severity>(v1::Severity_Name(n.severity()), "SEVERITY_"),
                     "] ", n.message()));
  }
  for (const std::string& w : d.warnings()) s += Field(in, "warning", w);
  return s;
}

std::string RenderPreSwapChecks(const v1::PreSwapChecks& c) {
  std::string s;
  for (const v1::DuplicateFinding& f : c.duplicates()) {
    s += Field("", "duplicates",
               absl::StrCat(f.index(), " on ", f.table(), " (", absl::StrJoin(f.key(), ", "),
                            f.predicate().empty() ? "" : " WHERE " + f.predicate(),
                            "): ", f.duplicate_keys(), " duplicated key",
                            f.duplicate_keys() == 1 ? "" : "s", ", ", f.duplicate_rows(), " rows",
                            f.line() > 0 ? absl::StrCat(" (dump line ", f.line(), ")") : ""));
    for (const v1::DuplicateKey& k : f.keys()) {
      s += Field(
          "", "",
          absl::StrCat("  (", absl::StrJoin(k.values(), ", "), "): ", k.rows(), " rows, ids ",
                       absl::StrJoin(k.row_ids(), " "), k.rows() > k.row_ids_size() ? " ..." : ""));
    }
    if (f.keys_size() < f.duplicate_keys()) {
      s += Field("", "",
                 absl::StrCat("  ... and ", f.duplicate_keys() - f.keys_size(), " more keys"));
    }
    s += Field("", "",
               f.repair_rule().empty()
                   ? std::string("  not covered by tootctl maintenance fix-duplicates: "
                                 "fix the source database")
                   : absl::StrCat("  --repair-duplicates: ", f.repair_rule()));
  }
  for (const std::string& d : c.dependent_statements()) s += Field("", "not run", d);
  for (int i = 0; i < c.repaired_rows_size() && i < 20; ++i) {
    const v1::RepairedRow& r = c.repaired_rows(i);
    s += Field("", "repaired", absl::StrCat(r.table(), " ", r.id(), ": ", r.action()));
  }
  if (c.repaired_row_count() > std::min<int64_t>(20, c.repaired_rows_size())) {
    s += Field("", "repaired",
               absl::StrCat("... ", c.repaired_row_count() - std::min(20, c.repaired_rows_size()),
                            " more rows (--json lists the first 1000)"));
  }
  if (c.has_index_check()) {
    s += Field("", "amcheck", c.index_check().message());
    for (const std::string& f : c.index_check().failures()) s += Field("", "", "  " + f);
  }
  return s;
}

std::string RenderManifest(const v1::BackupManifest& m) {
  std::string s;
  s += Field("", "source", m.source());
  if (!m.containers().empty()) s += Field("", "containers", absl::StrJoin(m.containers(), " > "));
  s += Field("", "layout",
             EnumWord<v1::BackupLayout>(v1::BackupLayout_Name(m.layout()), "BACKUP_LAYOUT_"));
  if (!m.mastodon_version().empty()) s += Field("", "mastodon", m.mastodon_version());
  if (m.has_env_file()) {
    const v1::EnvFileInfo& e = m.env_file();
    s += Field("", "env file", absl::StrCat(e.path(), " (", e.keys_size(), " keys)"));
    std::vector<std::string> db;
    for (const char* k : {"DB_HOST", "DB_PORT", "DB_NAME", "DB_USER", "DATABASE_URL"}) {
      auto it = e.database_settings().find(k);
      if (it != e.database_settings().end()) db.push_back(absl::StrCat(k, "=", it->second));
    }
    if (!db.empty()) s += Field("", "  database", absl::StrJoin(db, " "));
    std::vector<std::string> media;
    for (const auto& [k, v] : e.media_settings()) media.push_back(absl::StrCat(k, "=", v));
    std::sort(media.begin(), media.end());
    if (!media.empty()) s += Field("", "  media", absl::StrJoin(media, " "));
    for (const v1::SecretStatus& sec : e.secrets()) {
      s += Field("", "  secret",
                 absl::StrCat(sec.key(), sec.present()
                                             ? absl::StrCat(": present (", sec.fingerprint(), ")")
                                             : ": MISSING"));
    }
    for (const std::string& w : e.warnings()) s += Field("", "  warning", w);
  }
  for (const v1::DumpInfo& d : m.dumps()) {
    s += "\n";
    s += RenderDumpInfo(d, "");
  }
  if (m.has_media() && !m.media().conflict().empty()) {
    const v1::MediaInventory& md = m.media();
    s += "\n";
    s += Field("", "media", absl::StrCat("NOT TAKEN: ", md.conflict()));
    for (const v1::MediaTree& t : md.trees()) {
      s += Field("", "  tree",
                 absl::StrCat(t.root().empty() ? "." : t.root(), ": ", t.files(), " files, ",
                              HumanBytes(t.bytes()), " (", absl::StrJoin(t.folders(), ", "), ")"));
    }
  } else if (m.has_media()) {
    const v1::MediaInventory& md = m.media();
    s += "\n";
    s += Field("", "media",
               absl::StrCat(md.root().empty() ? "." : md.root(), ": ", md.files(), " files, ",
                            HumanBytes(md.bytes())));
    if (!md.root_reason().empty()) s += Field("", "  taken", md.root_reason());
    s += Field("", "  cache/",
               md.includes_cache() ? absl::StrCat("included: ", md.cache_files(), " files, ",
                                                  HumanBytes(md.cache_bytes()))
                                   : std::string("not included (media refresh can fetch it)"));
    for (int i = 0; i < md.largest_files_size() && i < 5; ++i) {
      s += Field("", "  largest",
                 absl::StrCat(HumanBytes(md.largest_files(i).size_bytes()), "  ",
                              md.largest_files(i).path()));
    }
  }
  if (m.has_redis()) {
    const v1::RedisDumpInfo& r = m.redis();
    s += "\n";
    s += Field("", "redis",
               r.error().empty()
                   ? absl::StrCat(r.path(), ": ", r.keys(), " keys (RDB version ", r.rdb_version(),
                                  ", ", HumanBytes(r.size_bytes()), ")",
                                  r.expired_keys() > 0
                                      ? absl::StrCat(", ", r.expired_keys(), " already expired")
                                      : "")
                   : absl::StrCat(r.path(), ": not restorable: ", r.error()));
  }
  if (!m.unknown_entries().empty()) {
    s += "\n";
    for (const v1::UnknownEntry& u : m.unknown_entries()) {
      s += Field("", "unknown",
                 absl::StrCat(u.path(), u.size_bytes() >= 0
                                            ? absl::StrCat(" (", HumanBytes(u.size_bytes()), ")")
                                            : ""));
    }
  }
  for (const std::string& w : m.warnings()) s += Field("", "warning", w);
  return s;
}

std::string RenderAfterSwapChecks(const v1::RestoreReport& report) {
  std::string s;
  for (const v1::AfterSwapCheck& c : report.after_swap_checks()) {
    absl::StrAppend(&s,
                    absl::StrFormat("%-14s %-6s %s: %s\n", "check", c.passed() ? "ok" : "FAILED",
                                    TerminalSafe(c.name()), TerminalSafe(c.detail())));
  }
  return s;
}

}  // namespace mastodon_restore
