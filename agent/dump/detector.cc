#include "agent/dump/detector.h"

#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

namespace v1 = mastodon::restore::v1;

constexpr size_t kChunk = 1 << 20;

void AddTable(const CopyTable& t, const std::string& database, v1::DumpInfo* info) {
  v1::TableRowCount* row = info->add_tables();
  row->set_table(t.table);
  row->set_rows(t.rows);
  row->set_bytes(t.bytes);
  if (!database.empty()) row->set_database(database);
}

// Mastodon's database among the sections: DB_NAME when present, else the one
// holding schema_migrations and statuses.
const DumpSection* FindMastodonSection(const std::vector<DumpSection>& sections,
                                       const std::string& db_name) {
  if (!db_name.empty()) {
    for (const DumpSection& s : sections) {
      if (s.name == db_name) return &s;
    }
  }
  for (const DumpSection& s : sections) {
    if (s.has_schema_migrations && s.has_statuses) return &s;
  }
  return nullptr;
}

// Encoding/locale from the defn of a DATABASE TOC entry.
void ParseCreateDatabase(const std::string& defn, v1::DumpInfo* info) {
  PlainScanner scanner(false);
  scanner.Feed("--\n-- PostgreSQL database dump\n--\n\n");
  scanner.Feed(defn);
  scanner.Feed("\n");
  scanner.Finish(true);
  const PlainDumpFacts& f = scanner.facts();
  if (f.sections.empty()) return;
  info->set_encoding(f.sections[0].encoding);
  info->set_locale(f.sections[0].locale);
  info->set_locale_provider(f.sections[0].locale_provider);
  info->set_provider_locale(f.sections[0].provider_locale);
  for (const std::string& r : f.risky_settings) info->add_risky_settings(r);
}

v1::Compression ToProto(ArchiveCompression c) {
  switch (c) {
    case ArchiveCompression::kNone:
      return v1::COMPRESSION_NONE;
    case ArchiveCompression::kGzip:
      return v1::COMPRESSION_ZLIB;
    case ArchiveCompression::kLz4:
      return v1::COMPRESSION_LZ4;
    case ArchiveCompression::kZstd:
      return v1::COMPRESSION_ZSTD;
  }
  return v1::COMPRESSION_UNSPECIFIED;
}

// Deep detection lists at most this many TOC entries in DumpInfo.
constexpr int kMaxListedTocEntries = 100000;

std::string QualifiedName(const TocItem& t) {
  return t.namespace_name.empty() ? t.tag : absl::StrCat(t.namespace_name, ".", t.tag);
}

// Only the SQL of these entries is read into memory by detection.
bool DetectionKeepsSql(const std::string& desc) { return desc == "ENCODING" || desc == "DATABASE"; }

// The fields common to custom, tar and directory archives, from the TOC as
// it is read (one entry at a time): detection keeps the facts, the listed
// entries (deep) and its TABLE DATA entries, within limits.max_kept_bytes.
class TocCollector {
 public:
  TocCollector(const ArchiveHeader& h, bool deep, int64_t max_kept_bytes, v1::DumpInfo* info)
      : deep_(deep), max_kept_(max_kept_bytes), info_(info) {
    info->set_kind(v1::DUMP_KIND_DATABASE);
    info->set_archive_version(h.VersionString());
    info->set_dumper_version(h.dumper_version);
    info->set_server_version(h.server_version);
    info->set_database_name(h.dbname);
    info->set_internal_compression(ToProto(h.compression));
    dbname_ = h.dbname;
  }

  absl::Status Add(const TocItem& t, int64_t count, const std::string& source) {
    if (t.desc == "ENCODING") {
      // "SET client_encoding = 'UTF8';"
      size_t q = t.defn.find('\'');
      size_t q2 = q == std::string::npos ? q : t.defn.find('\'', q + 1);
      if (q2 != std::string::npos && info_->encoding().empty()) {
        info_->set_encoding(t.defn.substr(q + 1, q2 - q - 1));
      }
    } else if (t.desc == "DATABASE") {
      ParseCreateDatabase(t.defn, info_);
    } else if (t.desc == "TABLE") {
      if (t.tag == "schema_migrations") has_migrations_ = true;
      if (t.tag == "statuses") has_statuses_ = true;
    }
    if (deep_ && info_->toc_entries_size() < kMaxListedTocEntries) {
      v1::TocEntry* e = info_->add_toc_entries();
      e->set_dump_id(t.dump_id);
      e->set_desc(t.desc);
      e->set_namespace_(t.namespace_name);
      e->set_tag(t.tag);
      e->set_owner(t.owner);
      e->set_section(t.section);
      e->set_has_data(t.had_dumper);
      e->set_filename(t.filename);
      kept_ += 64 + static_cast<int64_t>(t.desc.size() + t.namespace_name.size() + t.tag.size() +
                                         t.owner.size() + t.filename.size());
    }
    if (t.desc == "TABLE DATA") {
      data_.push_back(DataEntry{t.dump_id, QualifiedName(t), t.tag == "schema_migrations",
                                t.filename, t.had_dumper && t.data_state != 3});
      kept_ += 64 + static_cast<int64_t>(data_.back().table.size() + t.filename.size());
    }
    if (kept_ > max_kept_) {
      return UnableTo(
          absl::StatusCode::kInvalidArgument, "detect dump", source,
          absl::StrCat("the TOC's first ", ++seen_, " of ", count, " entries exceed the limit of ",
                       max_kept_, " bytes held by detection"));
    }
    ++seen_;
    return absl::OkStatus();
  }

  // After the last entry.
  void Finish() {
    if (has_migrations_ && has_statuses_) {
      info_->set_is_mastodon(true);
      info_->set_mastodon_database(dbname_);
    }
    if (deep_ && seen_ > kMaxListedTocEntries) {
      info_->add_warnings(
          absl::StrCat("TOC entries listed: the first ", kMaxListedTocEntries, " of ", seen_));
    }
  }

  struct DataEntry {
    int dump_id;
    std::string table;
    bool migrations;
    std::string filename;
    bool expected;  // the archive says it holds the entry's data
  };
  const std::vector<DataEntry>& data() const { return data_; }

 private:
  const bool deep_;
  const int64_t max_kept_;
  v1::DumpInfo* info_;
  std::string dbname_;
  bool has_migrations_ = false, has_statuses_ = false;
  int64_t seen_ = 0;
  int64_t kept_ = 0;
  std::vector<DataEntry> data_;
};

// Reads the TOC after `header` into `collector`.
absl::Status CollectToc(ArchiveStructureReader* reader, const ArchiveHeader& header,
                        const TocLimits& limits, const std::string& source,
                        TocCollector* collector) {
  RETURN_IF_ERROR(reader->ForEachTocItem(
      header, limits, DetectionKeepsSql,
      [&](const TocItem& t, int64_t count) { return collector->Add(t, count, source); }));
  collector->Finish();
  return absl::OkStatus();
}

}  // namespace

int MajorVersionOf(const std::string& version) {
  int major = 0;
  size_t i = 0;
  while (i < version.size() && absl::ascii_isdigit(version[i])) {
    major = major * 10 + (version[i] - '0');
    if (major > 1000) return 0;
    ++i;
  }
  return major;
}

int PgRestoreMajorForArchive(int vmin) {
  if (vmin >= 16) return 17;
  if (vmin == 15) return 16;
  if (vmin == 14) return 12;
  if (vmin == 13) return 11;
  return 9;
}

absl::Status CountCopyRows(ByteStream* data, CopyTable* out, std::string* max_version,
                           const CancelToken* cancel) {
  std::vector<char> buf(kChunk);
  bool at_line_start = true;
  // A line split across reads: what we have of it (bounded).
  std::string partial;
  bool done = false;
  while (!done) {
    if (cancel != nullptr && cancel->cancelled()) {
      return absl::CancelledError("row count cancelled");
    }
    ASSIGN_OR_RETURN(size_t n, data->Read(buf.data(), buf.size()));
    if (n == 0) break;
    const char* p = buf.data();
    const char* end = p + n;
    while (p < end) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
      const char* line_end = nl != nullptr ? nl : end;
      if (at_line_start || !partial.empty()) {
        // Keep the first bytes of the line: enough for "\." and a version.
        size_t want = partial.size() < 64 ? std::min<size_t>(64 - partial.size(), line_end - p) : 0;
        partial.append(p, want);
      }
      if (nl == nullptr) {
        at_line_start = false;
        out->bytes += end - p;
        break;
      }
      out->bytes += nl - p + 1;
      if (partial == "\\.") {
        out->bytes -= 3;
        done = true;
        break;
      }
      ++out->rows;
      if (max_version != nullptr) {
        absl::string_view v = absl::string_view(partial).substr(0, partial.find('\t'));
        if (SchemaVersionLess(*max_version, v)) *max_version = std::string(v);
      }
      partial.clear();
      at_line_start = true;
      p = nl + 1;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::DumpInfo> DetectPlainDump(ByteStream* stream, const DetectOptions& options,
                                             bool tail_known, const std::string& tail) {
  PlainScanner scanner(options.deep);
  bool reached_end = false;
  if (!options.deep) {
    std::string head;
    RETURN_IF_ERROR(ReadUpTo(stream, kHeadBytes, &head));
    reached_end = head.size() < kHeadBytes;
    scanner.Feed(head);
  } else {
    std::vector<char> buf(kChunk);
    int64_t total = 0;
    while (true) {
      if (options.cancel != nullptr && options.cancel->cancelled()) {
        return absl::CancelledError(absl::StrCat("detection of '", stream->name(), "' cancelled"));
      }
      ASSIGN_OR_RETURN(size_t n, stream->Read(buf.data(), buf.size()));
      if (n == 0) break;
      scanner.Feed(absl::string_view(buf.data(), n));
      total += static_cast<int64_t>(n);
      if (options.progress) options.progress(total);
    }
    reached_end = true;
  }
  scanner.Finish(reached_end);
  const PlainDumpFacts& f = scanner.facts();
  if (!f.limit_error.empty()) {
    return UnableTo(absl::StatusCode::kInvalidArgument, "detect dump", stream->name(),
                    f.limit_error);
  }
  if (f.kind == PlainKind::kUnknown) {
    return UnableTo(absl::StatusCode::kInvalidArgument, "detect dump", stream->name(),
                    "not a PostgreSQL plain dump (no pg_dump/pg_dumpall header)");
  }
  v1::DumpInfo info;
  info.set_format(v1::DUMP_FORMAT_PLAIN);
  info.set_kind(f.kind == PlainKind::kDumpall            ? v1::DUMP_KIND_CLUSTER
                : f.kind == PlainKind::kTarRestoreScript ? v1::DUMP_KIND_TAR_RESTORE_SCRIPT
                                                         : v1::DUMP_KIND_DATABASE);
  info.set_dumper_version(f.dumper_version);
  info.set_server_version(f.server_version);
  info.set_restrict_key_count(f.restrict_lines);
  for (const std::string& r : f.risky_settings) info.add_risky_settings(r);
  info.set_deep(options.deep);
  bool complete = f.complete;
  bool checked = reached_end;
  if (!reached_end && tail_known) {
    checked = true;
    complete = tail.find(f.kind == PlainKind::kDumpall
                             ? "-- PostgreSQL database cluster dump complete"
                             : "-- PostgreSQL database dump complete") != std::string::npos;
  }
  info.set_complete(complete);
  info.set_complete_checked(checked);
  if (reached_end) info.set_size_bytes(f.bytes);

  if (f.kind == PlainKind::kDumpall) {
    for (const std::string& r : f.roles) info.add_roles(r);
    const DumpSection* mastodon = FindMastodonSection(f.sections, options.mastodon_db_name);
    for (const DumpSection& s : f.sections) {
      v1::ClusterDatabase* db = info.add_databases();
      db->set_name(s.name);
      db->set_begin_offset(s.begin_offset);
      db->set_end_offset(s.end_offset);
      db->set_encoding(s.encoding);
      db->set_locale(s.locale);
      db->set_locale_provider(s.locale_provider);
      db->set_provider_locale(s.provider_locale);
      db->set_is_mastodon(&s == mastodon);
      for (const CopyTable& t : s.tables) AddTable(t, s.name, &info);
    }
    info.set_databases_complete(reached_end);
    if (mastodon != nullptr) {
      info.set_is_mastodon(true);
      info.set_mastodon_database(mastodon->name);
      info.set_encoding(mastodon->encoding);
      info.set_locale(mastodon->locale);
      info.set_locale_provider(mastodon->locale_provider);
      info.set_provider_locale(mastodon->provider_locale);
      info.set_schema_version(mastodon->schema_version);
    } else if (reached_end && !f.sections.empty()) {
      info.add_warnings(
          "no Mastodon database found (none named by DB_NAME, none holding "
          "schema_migrations and statuses)");
    }
    if (f.sections.empty()) {
      if (reached_end) {
        return UnableTo(absl::StatusCode::kInvalidArgument, "detect dump", stream->name(),
                        "pg_dumpall dump with no database sections (globals only?)");
      }
      info.add_warnings(absl::StrCat("no database section in the first ", kHeadBytes / 1024,
                                     " KiB; a deep scan lists every database"));
    } else if (!reached_end) {
      info.add_warnings(absl::StrCat("databases listed from the first ", kHeadBytes / 1024,
                                     " KiB only; a deep scan lists every database with its range"));
    }
  } else if (!f.sections.empty()) {
    const DumpSection& s = f.sections[0];
    info.set_database_name(s.name);
    info.set_encoding(s.encoding);
    info.set_locale(s.locale);
    info.set_locale_provider(s.locale_provider);
    info.set_provider_locale(s.provider_locale);
    if (s.has_schema_migrations && s.has_statuses) {
      info.set_is_mastodon(true);
      info.set_mastodon_database(s.name);
    }
    info.set_schema_version(s.schema_version);
    for (const CopyTable& t : s.tables) AddTable(t, "", &info);
  }
  if (f.null_restrict_key) {
    info.add_warnings(
        "\\restrict/\\unrestrict with a (null) key (PostgreSQL 15.18 tar-format "
        "restore.sql): treated as markers");
  }
  if (f.uses_path_placeholders) {
    info.add_warnings(
        "loads data from $$PATH$$/NNNN.dat files: restore the tar archive it "
        "came from, not this script alone");
  }
  for (const std::string& m : f.other_meta_commands) {
    info.add_warnings(absl::StrCat("unexpected psql meta-command in the dump: ", m));
  }
  if (checked && !complete) {
    info.add_warnings("no 'dump complete' trailer: the dump is truncated or was cut short");
  }
  if (f.longest_line > kDefaultMaxLineBytes) {
    info.add_warnings(absl::StrCat("line ", f.longest_line_no, " is ", f.longest_line,
                                   " bytes long: over the restore's limit of ",
                                   kDefaultMaxLineBytes, " bytes"));
  }
  if (f.longest_row > kDefaultMaxCopyRowBytes) {
    info.add_warnings(absl::StrCat("the COPY row at line ", f.longest_row_no, " is ", f.longest_row,
                                   " bytes long: over the restore's limit of ",
                                   kDefaultMaxCopyRowBytes, " bytes"));
  }
  if (f.unlisted_tables > 0 || f.unlisted_roles > 0) {
    info.add_warnings(absl::StrCat("listed the first ", PlainScanner::kMaxListed,
                                   " tables and roles only (", f.unlisted_tables, " more tables, ",
                                   f.unlisted_roles, " more roles)"));
  }
  return info;
}

absl::StatusOr<v1::DumpInfo> DetectCustomDump(ByteStream* stream, const DetectOptions& options) {
  CountingStream counted(stream);
  ArchiveStructureReader reader(&counted);
  ASSIGN_OR_RETURN(ArchiveHeader header, reader.ReadHeader());
  if (header.format != kArchCustom) {
    return UnableTo(absl::StatusCode::kInvalidArgument, "detect dump", stream->name(),
                    absl::StrCat("archive format byte ", header.format,
                                 " is not a custom archive (toc.dat of a tar/directory dump?)"));
  }
  v1::DumpInfo info;
  info.set_format(v1::DUMP_FORMAT_CUSTOM);
  info.set_deep(options.deep);
  TocCollector toc(header, options.deep, options.toc_limits.max_kept_bytes, &info);
  RETURN_IF_ERROR(CollectToc(&reader, header, options.toc_limits, stream->name(), &toc));
  if (!options.deep) return info;

  std::map<int, const TocCollector::DataEntry*> by_id;
  int expected = 0;
  for (const TocCollector::DataEntry& d : toc.data()) {
    by_id[d.dump_id] = &d;
    if (d.expected) ++expected;
  }
  int seen = 0;
  std::string schema_version;
  int64_t last_progress = 0;
  absl::Status scanned =
      reader.ForEachDataBlock(header, [&](int dump_id, int type, ByteStream* data) -> absl::Status {
        if (type != 1) return absl::OkStatus();
        auto it = by_id.find(dump_id);
        if (it == by_id.end()) return absl::OkStatus();
        ++seen;
        CopyTable table{it->second->table, 0, 0};
        RETURN_IF_ERROR(CountCopyRows(
            data, &table, it->second->migrations ? &schema_version : nullptr, options.cancel));
        AddTable(table, "", &info);
        if (options.progress && counted.count() - last_progress > (16 << 20)) {
          last_progress = counted.count();
          options.progress(last_progress);
        }
        return absl::OkStatus();
      });
  RETURN_IF_ERROR(scanned);
  info.set_schema_version(schema_version);
  info.set_size_bytes(counted.count());
  info.set_complete(seen >= expected);
  info.set_complete_checked(true);
  if (seen < expected) {
    info.add_warnings(
        absl::StrCat("archive holds data for ", seen, " of ", expected, " tables: truncated?"));
  }
  return info;
}

absl::Status SplitDumpAssembler::AddTocDat(ByteStream* toc) {
  ArchiveStructureReader reader(toc);
  ASSIGN_OR_RETURN(ArchiveHeader header, reader.ReadHeader());
  if (header.format != kArchTar && header.format != kArchDirectory) {
    return UnableTo(absl::StatusCode::kInvalidArgument, "detect dump", toc->name(),
                    absl::StrCat("toc.dat has archive format byte ", header.format));
  }
  toc_info_.Clear();
  TocCollector collector(header, options_.deep, options_.toc_limits.max_kept_bytes, &toc_info_);
  RETURN_IF_ERROR(CollectToc(&reader, header, options_.toc_limits, toc->name(), &collector));
  data_entries_.clear();
  for (const TocCollector::DataEntry& d : collector.data()) {
    if (d.filename.empty()) continue;
    data_entries_.push_back(DataFile{d.filename, d.table, d.migrations});
  }
  compression_ = header.compression;
  has_toc_ = true;
  return absl::OkStatus();
}

absl::Status SplitDumpAssembler::AddDataFile(const std::string& filename, ByteStream* data) {
  CopyTable table;
  std::string version;
  RETURN_IF_ERROR(CountCopyRows(data, &table, &version, options_.cancel));
  data_counts_[filename] = table;
  schema_versions_[filename] = version;
  return absl::OkStatus();
}

absl::StatusOr<v1::DumpInfo> SplitDumpAssembler::Finish(const std::string& path,
                                                        const std::string& data_suffix) {
  v1::DumpInfo info;
  info.set_path(path);
  info.set_format(saw_restore_script_ ? v1::DUMP_FORMAT_TAR : v1::DUMP_FORMAT_DIRECTORY);
  info.set_deep(options_.deep);
  if (!has_toc_) {
    return UnableTo(absl::StatusCode::kInvalidArgument, "detect dump", path,
                    "pg_dump data files without toc.dat");
  }
  info.MergeFrom(toc_info_);
  if (compression_ == ArchiveCompression::kNone && !data_suffix.empty()) {
    // 15 writes the compression in the header; files tell for older dumps.
    info.set_internal_compression(data_suffix == ".gz"    ? v1::COMPRESSION_GZIP
                                  : data_suffix == ".lz4" ? v1::COMPRESSION_LZ4
                                                          : v1::COMPRESSION_ZSTD);
  } else if (compression_ == ArchiveCompression::kGzip) {
    info.set_internal_compression(v1::COMPRESSION_GZIP);
  }
  if (!options_.deep) return info;
  int expected = 0, seen = 0;
  for (const DataFile& d : data_entries_) {
    ++expected;
    auto it = data_counts_.find(d.filename);
    if (it == data_counts_.end()) continue;
    ++seen;
    CopyTable table = it->second;
    table.table = d.table;
    AddTable(table, "", &info);
    if (d.migrations) info.set_schema_version(schema_versions_[d.filename]);
  }
  info.set_complete(seen == expected);
  info.set_complete_checked(true);
  if (seen < expected) {
    info.add_warnings(
        absl::StrCat("data files for ", expected - seen, " of ", expected, " tables are missing"));
  }
  return info;
}

void AddCompatibilityNotes(int target_major, const std::vector<int>& /*pg_restore_majors*/,
                           v1::DumpInfo* info) {
  auto note = [info](v1::Severity severity, const std::string& code, const std::string& msg) {
    v1::CompatibilityNote* n = info->add_compatibility();
    n->set_severity(severity);
    n->set_code(code);
    n->set_message(msg);
  };
  const int dumper = MajorVersionOf(info->dumper_version());
  const int source = MajorVersionOf(info->server_version());
  const std::string dumped_by =
      dumper > 0 ? absl::StrCat("dumped by pg_dump ", dumper) : std::string("dumped");
  if (info->format() != v1::DUMP_FORMAT_PLAIN && !info->archive_version().empty()) {
    int vmin = 0;
    if (!absl::SimpleAtoi(info->archive_version().substr(info->archive_version().find('.') + 1),
                          &vmin)) {
      vmin = 0;
    }
    // The agent reads archives itself (archive_script.h): no pg_restore.
    if (vmin >= 12 && vmin <= kMaxArchiveMinor) {
      note(v1::SEVERITY_INFO, "archive_version",
           absl::StrCat("archive version ", info->archive_version(), " (", dumped_by,
                        "): read by the agent's archive reader"));
    } else {
      note(v1::SEVERITY_ERROR, "archive_version",
           absl::StrCat("archive version ", info->archive_version(), " (", dumped_by,
                        ") is not supported: the agent reads 1.12 (pg_dump 9.0) to 1.",
                        kMaxArchiveMinor, " (pg_dump 18)"));
    }
  }
  if (target_major <= 0) return;
  for (const std::string& s : info->risky_settings()) {
    if (s == "transaction_timeout" && target_major <= 16) {
      note(v1::SEVERITY_WARNING, "transaction_timeout",
           absl::StrCat(dumped_by, ": SET transaction_timeout will be removed for a PostgreSQL ",
                        target_major, " target"));
    } else if (s == "default_table_access_method" && target_major <= 11) {
      note(v1::SEVERITY_WARNING, "default_table_access_method",
           absl::StrCat(dumped_by,
                        ": SET default_table_access_method will be removed for a "
                        "PostgreSQL ",
                        target_major, " target"));
    } else if (s == "idle_in_transaction_session_timeout" && target_major < 10 &&
               target_major > 0) {
      note(v1::SEVERITY_WARNING, "idle_in_transaction_session_timeout",
           absl::StrCat(dumped_by, ": SET idle_in_transaction_session_timeout will be removed"));
    } else if ((s == "CREATE DATABASE BUILTIN_LOCALE" && target_major < 17) ||
               (s == "CREATE DATABASE ICU_RULES" && target_major < 16) ||
               (s == "CREATE DATABASE LOCALE_PROVIDER" && target_major < 15) ||
               (s == "CREATE DATABASE LOCALE" && target_major < 13)) {
      note(v1::SEVERITY_WARNING, "create_database_options",
           absl::StrCat(dumped_by, ": ", s.substr(16),
                        " of CREATE DATABASE is not understood by "
                        "PostgreSQL ",
                        target_major, "; the staging database is created with equivalent options"));
    }
  }
  int newest = std::max(dumper, source);
  if (newest > target_major) {
    note(v1::SEVERITY_WARNING, "older_target",
         absl::StrCat("dump of PostgreSQL ", newest, " into PostgreSQL ", target_major,
                      ": objects using newer features may fail to load"));
  }
  if (target_major < 14) {
    note(v1::SEVERITY_WARNING, "mastodon_postgres",
         absl::StrCat("Mastodon 4.x needs PostgreSQL >= 14; the target runs ", target_major));
  }
}

}  // namespace mastodon_restore
