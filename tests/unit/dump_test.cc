// Dump parsers on byte fixtures built from the documented layouts, including
// versions not installed here (PG 10 cluster layout, archive 1.15/1.16,
// PG 17/18 headers).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/archive/sniff.h"
#include "agent/common/status_macros.h"
#include "agent/dump/archive_script.h"
#include "agent/dump/custom_archive.h"
#include "agent/dump/detector.h"
#include "agent/dump/plain_scanner.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

namespace v1 = mastodon::restore::v1;
using ::mastodon_restore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// ---- plain dumps -----------------------------------------------------------

constexpr char kPg18Dump[] =
    "--\n-- PostgreSQL database dump\n--\n\n"
    "\\restrict 94MBvyTbzkvuNlJLiBbhfFsaKhLXHS3HFUJokADGBstZ3LAqj2G3WuWG6a5itLY\n\n"
    "-- Dumped from database version 18.4\n"
    "-- Dumped by pg_dump version 18.4\n\n"
    "SET statement_timeout = 0;\nSET lock_timeout = 0;\n"
    "SET idle_in_transaction_session_timeout = 0;\nSET transaction_timeout = 0;\n"
    "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n"
    "SET default_table_access_method = heap;\n\n"
    "CREATE TABLE public.schema_migrations (\n    version character varying NOT NULL\n);\n"
    "CREATE TABLE public.statuses (\n    id bigint NOT NULL,\n    text text\n);\n"
    "COPY public.schema_migrations (version) FROM stdin;\n"
    "20240101000000\n20260611150940\n20251231235959\n\\.\n\n\n"
    "COPY public.statuses (id, text) FROM stdin;\n"
    "1\thello\\tworld\n2\t\\N\n3\ta line with \\\\. inside\n\\.\n\n\n"
    "--\n-- PostgreSQL database dump complete\n--\n\n"
    "\\unrestrict 94MBvyTbzkvuNlJLiBbhfFsaKhLXHS3HFUJokADGBstZ3LAqj2G3WuWG6a5itLY\n";

v1::DumpInfo DetectText(const std::string& text, bool deep) {
  StringStream in(text, "fixture.sql");
  DetectOptions options;
  options.deep = deep;
  auto info = DetectPlainDump(&in, options, false, "");
  EXPECT_OK(info);
  return info.ok() ? *info : v1::DumpInfo();
}

TEST(PlainDumpTest, Pg18HeaderTransactionTimeoutAndRestrict) {
  v1::DumpInfo d = DetectText(kPg18Dump, true);
  EXPECT_EQ(d.kind(), v1::DUMP_KIND_DATABASE);
  EXPECT_EQ(d.dumper_version(), "18.4");
  EXPECT_EQ(d.server_version(), "18.4");
  EXPECT_EQ(d.restrict_key_count(), 1);
  EXPECT_THAT(d.risky_settings(),
              ElementsAre("transaction_timeout", "default_table_access_method"));
  EXPECT_TRUE(d.is_mastodon());
  EXPECT_EQ(d.schema_version(), "20260611150940");
  ASSERT_EQ(d.tables_size(), 2);
  EXPECT_EQ(d.tables(1).table(), "public.statuses");
  EXPECT_EQ(d.tables(1).rows(), 3);
  EXPECT_TRUE(d.complete());

  AddCompatibilityNotes(15, {15}, &d);
  std::vector<std::string> messages;
  for (const auto& n : d.compatibility()) messages.push_back(n.message());
  EXPECT_THAT(messages,
              ::testing::Contains("dumped by pg_dump 18: SET transaction_timeout will be removed "
                                  "for a PostgreSQL 15 target"));
  EXPECT_THAT(messages, ::testing::Contains(HasSubstr("dump of PostgreSQL 18 into PostgreSQL 15")));
}

TEST(PlainDumpTest, ChunkBoundariesDoNotChangeTheResult) {
  // Feeding one byte at a time gives the same facts as one chunk.
  PlainScanner whole(true), bytes(true);
  whole.Feed(kPg18Dump);
  whole.Finish(true);
  std::string text = kPg18Dump;
  for (char c : text) bytes.Feed(absl::string_view(&c, 1));
  bytes.Finish(true);
  ASSERT_EQ(whole.facts().sections.size(), 1u);
  ASSERT_EQ(bytes.facts().sections.size(), 1u);
  EXPECT_EQ(whole.facts().sections[0].tables[1].rows, bytes.facts().sections[0].tables[1].rows);
  EXPECT_EQ(whole.facts().sections[0].schema_version, bytes.facts().sections[0].schema_version);
  EXPECT_EQ(whole.facts().bytes, bytes.facts().bytes);
  EXPECT_EQ(whole.facts().complete, bytes.facts().complete);
}

TEST(PlainDumpTest, VeryLongLinesStayBounded) {
  std::string text = "--\n-- PostgreSQL database dump\n--\n\nCOPY public.t (a) FROM stdin;\n";
  text += std::string(3 << 20, 'x') + "\n";
  text += "short\n\\.\n\n-- PostgreSQL database dump complete\n";
  v1::DumpInfo d = DetectText(text, true);
  ASSERT_EQ(d.tables_size(), 1);
  EXPECT_EQ(d.tables(0).rows(), 2);
  EXPECT_TRUE(d.complete());
}

// The longest SQL line and COPY row are measured whole (the scanner holds
// 64 KiB of a line), so detection can tell a dump over the loader's bounds.
TEST(PlainDumpTest, LongestLineAndRowAreMeasured) {
  std::string text = "--\n-- PostgreSQL database dump\n--\n\nCOPY public.t (a) FROM stdin;\n";
  text += std::string(3 << 20, 'x') + "\nshort\n\\.\n";
  text += "SELECT '" + std::string(2 << 20, 'y') + "';\n";
  PlainScanner scanner(true);
  for (size_t i = 0; i < text.size(); i += 100000) scanner.Feed(text.substr(i, 100000));
  scanner.Finish(true);
  EXPECT_EQ(scanner.facts().longest_row, 3 << 20);
  EXPECT_EQ(scanner.facts().longest_row_no, 6);
  EXPECT_EQ(scanner.facts().longest_line, (2 << 20) + 10);
  EXPECT_EQ(scanner.facts().longest_line_no, 9);
}

// A hostile cluster dump cannot grow the scanner's lists without bound: roles
// and tables are capped (and said so), and more database sections than the
// scanner tracks is an error, since the sections could not be told apart.
TEST(PlainDumpTest, ListsAreCappedAndTooManySectionsIsAnError) {
  const size_t cap = PlainScanner::kMaxListed;
  std::string text = "--\n-- PostgreSQL database cluster dump\n--\n\n";
  for (size_t i = 0; i < cap + 10; ++i) absl::StrAppend(&text, "CREATE ROLE r", i, ";\n");
  text += "--\n-- Database \"mastodon\" dump\n--\n\n";
  for (size_t i = 0; i < cap + 10; ++i) text += "COPY public.t (a) FROM stdin;\n1\n\\.\n";
  text += "--\n-- PostgreSQL database cluster dump complete\n--\n\n";
  v1::DumpInfo d = DetectText(text, true);
  EXPECT_EQ(d.roles_size(), static_cast<int>(cap));
  EXPECT_EQ(d.tables_size(), static_cast<int>(cap));
  EXPECT_THAT(d.warnings(), ::testing::Contains(HasSubstr("(10 more tables, 10 more roles)")));

  std::string many = "--\n-- PostgreSQL database cluster dump\n--\n\n";
  for (size_t i = 0; i <= cap; ++i) absl::StrAppend(&many, "--\n-- Database \"d", i, "\" dump\n");
  StringStream in(many, "many.sql");
  DetectOptions options;
  options.deep = true;
  EXPECT_THAT(DetectPlainDump(&in, options, false, ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("more than 100000 database sections")));
}

TEST(PlainDumpTest, Pg10ClusterLayoutWithoutDatabaseMarkers) {
  const std::string text =
      "--\n-- PostgreSQL database cluster dump\n--\n\n"
      "SET default_transaction_read_only = off;\n\n"
      "--\n-- Roles\n--\n\nCREATE ROLE mastodon;\nALTER ROLE mastodon WITH LOGIN;\n"
      "CREATE ROLE postgres;\n\n"
      "--\n-- Database creation\n--\n\n"
      "CREATE DATABASE mastodon_production WITH TEMPLATE = template0 OWNER = mastodon "
      "ENCODING = 'UTF8' LC_COLLATE = 'en_US.UTF-8' LC_CTYPE = 'en_US.UTF-8';\n"
      "REVOKE CONNECT,TEMPORARY ON DATABASE template1 FROM PUBLIC;\n\n"
      "\\connect mastodon_production\n\n"
      "SET default_transaction_read_only = off;\n\n"
      "--\n-- PostgreSQL database dump\n--\n\n"
      "-- Dumped from database version 10.23\n-- Dumped by pg_dump version 10.23\n\n"
      "CREATE TABLE public.schema_migrations (version character varying NOT NULL);\n"
      "CREATE TABLE public.statuses (id bigint NOT NULL);\n"
      "COPY public.schema_migrations (version) FROM stdin;\n20180101000000\n\\.\n\n"
      "--\n-- PostgreSQL database dump complete\n--\n\n"
      "\\connect postgres\n\nSET default_transaction_read_only = off;\n\n"
      "--\n-- PostgreSQL database dump complete\n--\n\n"
      "\\connect template1\n\n"
      "--\n-- PostgreSQL database cluster dump complete\n--\n\n";
  v1::DumpInfo d = DetectText(text, true);
  EXPECT_EQ(d.kind(), v1::DUMP_KIND_CLUSTER);
  EXPECT_EQ(d.dumper_version(), "10.23");
  std::vector<std::string> names;
  for (const auto& db : d.databases()) names.push_back(db.name());
  EXPECT_THAT(names, ElementsAre("mastodon_production", "postgres", "template1"));
  EXPECT_EQ(d.databases(0).encoding(), "UTF8");
  EXPECT_EQ(d.databases(0).locale(), "en_US.UTF-8");
  EXPECT_TRUE(d.databases(0).is_mastodon());
  EXPECT_EQ(d.schema_version(), "20180101000000");
  EXPECT_THAT(d.roles(), ElementsAre("mastodon", "postgres"));
  EXPECT_EQ(d.restrict_key_count(), 0);
  EXPECT_EQ(text.substr(d.databases(0).begin_offset(), 9), "\\connect ");
  EXPECT_TRUE(d.complete());
}

TEST(PlainDumpTest, LocaleProviderOfCreateDatabase) {
  // pg_dump --create of an ICU database (15+) and of a builtin one (17+).
  for (const auto& [options, provider, provider_locale] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"LOCALE_PROVIDER = icu LOCALE = 'en_US.UTF-8' ICU_LOCALE = 'und-x-icu'", "icu",
            "und-x-icu"},
           {"LOCALE_PROVIDER = builtin LOCALE = 'C.UTF-8' BUILTIN_LOCALE = 'C.UTF-8'", "builtin",
            "C.UTF-8"},
           {"LOCALE = 'en_US.UTF-8'", "", ""}}) {
    SCOPED_TRACE(options);
    const std::string text = absl::StrCat(
        "--\n-- PostgreSQL database dump\n--\n\n"
        "-- Dumped from database version 17.2\n-- Dumped by pg_dump version 17.2\n\n"
        "CREATE DATABASE mastodon_production WITH TEMPLATE = template0 ENCODING = 'UTF8' ",
        options,
        ";\n\\connect mastodon_production\n\n"
        "CREATE TABLE public.statuses (id bigint NOT NULL);\n\n"
        "--\n-- PostgreSQL database dump complete\n--\n\n");
    v1::DumpInfo d = DetectText(text, true);
    EXPECT_EQ(d.locale(), "C.UTF-8" == provider_locale ? "C.UTF-8" : "en_US.UTF-8");
    EXPECT_EQ(d.locale_provider(), provider);
    EXPECT_EQ(d.provider_locale(), provider_locale);
  }
}

TEST(PlainDumpTest, TarRestoreScriptWithNullRestrictKeys) {
  const std::string text =
      "--\n-- NOTE:\n--\n-- File paths need to be edited. Search for $$PATH$$ and\n"
      "-- replace it with the path to the directory containing\n-- the extracted data files.\n--\n"
      "--\n-- PostgreSQL database dump\n--\n\n"
      "-- Dumped from database version 15.18\n-- Dumped by pg_dump version 15.18\n\n"
      "\\unrestrict (null)\n\\connect mastodon\n\\restrict (null)\n\n"
      "COPY public.accounts (id) FROM '$$PATH$$/3361.dat';\n\n"
      "--\n-- PostgreSQL database dump complete\n--\n\n";
  v1::DumpInfo d = DetectText(text, false);
  EXPECT_EQ(d.kind(), v1::DUMP_KIND_TAR_RESTORE_SCRIPT);
  EXPECT_THAT(d.warnings(), ::testing::Contains(HasSubstr("(null) key")));
  EXPECT_THAT(d.warnings(), ::testing::Contains(HasSubstr("$$PATH$$")));
}

TEST(PlainDumpTest, UnknownMetaCommandsAreReported) {
  v1::DumpInfo d =
      DetectText("--\n-- PostgreSQL database dump\n--\n\n\\! rm -rf /\n\\encoding UTF8\n", false);
  EXPECT_THAT(d.warnings(),
              ::testing::Contains(HasSubstr("meta-command in the dump: \\! rm -rf /")));
  EXPECT_THAT(d.warnings(), ::testing::Not(::testing::Contains(HasSubstr("encoding"))));
}

TEST(PlainDumpTest, NotADumpIsInvalidArgument) {
  StringStream in("SELECT 1;\n", "x.sql");
  EXPECT_THAT(DetectPlainDump(&in, DetectOptions(), false, ""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("x.sql")));
}

TEST(PlainScannerHelpersTest, ConnectTargets) {
  EXPECT_EQ(ParseConnectTarget("\\connect mastodon_production"), "mastodon_production");
  EXPECT_EQ(ParseConnectTarget("\\connect \"My DB\""), "My DB");
  EXPECT_EQ(ParseConnectTarget("\\connect -reuse-previous=on \"dbname='we\"\"ird db''s'\""),
            "we\"ird db's");
  EXPECT_EQ(ParseConnectTarget("\\connect - mastodon"), "");
  EXPECT_EQ(UnquoteIdentifier("\"a\"\"b\""), "a\"b");
  EXPECT_TRUE(SchemaVersionLess("20200101000000", "20260101000000"));
  EXPECT_TRUE(SchemaVersionLess("9", "10"));
}

TEST(CountCopyRowsTest, StopsAtTerminatorAndTracksVersions) {
  StringStream in("20200101000000\n20260101000000\t x\n20250101000000\n\\.\n\n\nrest\n");
  CopyTable t;
  std::string max;
  ASSERT_OK(CountCopyRows(&in, &t, &max, nullptr));
  EXPECT_EQ(t.rows, 3);
  EXPECT_EQ(max, "20260101000000");
}

// ---- binary archives -------------------------------------------------------

// Writes pg_dump archive structures (WriteHead/WriteToc layouts).
class ArchiveWriter {
 public:
  explicit ArchiveWriter(int vmin) : vmin_(vmin) {}
  void Byte(int b) { out_.push_back(static_cast<char>(b)); }
  void Int(int64_t v) {
    Byte(v < 0 ? 1 : 0);
    uint64_t m = v < 0 ? -v : v;
    for (int i = 0; i < 4; ++i) Byte(static_cast<int>((m >> (8 * i)) & 0xff));
  }
  void Str(const char* s) {
    if (s == nullptr) {
      Int(-1);
      return;
    }
    Int(static_cast<int64_t>(strlen(s)));
    out_ += s;
  }
  void Header(int format, int compression, const char* dbname, const char* version) {
    out_ += "PGDMP";
    Byte(1);
    Byte(vmin_);
    Byte(0);
    Byte(4);  // intSize
    Byte(8);  // offSize
    Byte(format);
    if (vmin_ >= 15) {
      Byte(compression);
    } else {
      Int(compression == 0 ? 0 : -1);
    }
    for (int i = 0; i < 7; ++i) Int(i);
    Str(dbname);
    Str(version);
    Str(version);
  }
  void Entry(int id, const char* desc, const char* tag, const char* defn, int section,
             bool custom) {
    Int(id);
    Int(1);        // hadDumper
    Str("0");      // tableoid
    Str("16384");  // oid
    Str(tag);
    Str(desc);
    Int(section);
    Str(defn);
    Str("");                    // dropStmt
    Str("");                    // copyStmt
    Str("public");              // namespace
    Str("");                    // tablespace
    Str("heap");                // tableam (1.14+)
    if (vmin_ >= 16) Int(114);  // relkind 'r'
    Str("mastodon");
    Str("false");  // withOids
    Str("1");      // one dependency
    Str(nullptr);  // end of dependencies
    if (custom) {
      Byte(3);  // no data offset
      for (int i = 0; i < 8; ++i) Byte(0);
    } else {
      Str(absl::StrCat(id, ".dat").c_str());
    }
  }
  std::string& bytes() { return out_; }

 private:
  int vmin_;
  std::string out_;
};

std::string MakeArchive(int vmin, int format) {
  ArchiveWriter w(vmin);
  w.Header(format, vmin >= 15 ? 3 : 1, "mastodon_production", "17.2");
  bool custom = format == kArchCustom;
  w.Int(3);
  w.Entry(1, "ENCODING", "ENCODING", "SET client_encoding = 'UTF8';\n", 1, custom);
  w.Entry(2, "TABLE", "schema_migrations", "CREATE TABLE public.schema_migrations ();", 2, custom);
  w.Entry(3, "TABLE", "statuses", "CREATE TABLE public.statuses ();", 2, custom);
  return w.bytes();
}

TEST(ArchiveReaderTest, ReadsHeaderAndTocOfEveryLayoutVersion) {
  for (int vmin : {14, 15, 16}) {
    SCOPED_TRACE(vmin);
    StringStream in(MakeArchive(vmin, kArchCustom), "a.dump");
    EXPECT_EQ(Sniff(MakeArchive(vmin, kArchCustom)), ContentKind::kPgCustom);
    DetectOptions options;
    auto info = DetectCustomDump(&in, options);
    ASSERT_OK(info);
    EXPECT_EQ(info->archive_version(), absl::StrCat("1.", vmin));
    EXPECT_EQ(info->database_name(), "mastodon_production");
    EXPECT_EQ(info->dumper_version(), "17.2");
    EXPECT_EQ(info->encoding(), "UTF8");
    EXPECT_TRUE(info->is_mastodon());
    EXPECT_EQ(info->internal_compression(),
              vmin >= 15 ? v1::COMPRESSION_ZSTD : v1::COMPRESSION_ZLIB);
  }
  EXPECT_EQ(Sniff(MakeArchive(16, kArchTar)), ContentKind::kPgTocDat);
}

TEST(ArchiveReaderTest, Archive116IsReadWithoutPgRestore) {
  StringStream in(MakeArchive(16, kArchCustom), "new.dump");
  auto info = DetectCustomDump(&in, DetectOptions());
  ASSERT_OK(info);
  AddCompatibilityNotes(15, {15}, &*info);
  ASSERT_GE(info->compatibility_size(), 1);
  EXPECT_EQ(info->compatibility(0).severity(), v1::SEVERITY_INFO);
  EXPECT_EQ(info->compatibility(0).message(),
            "archive version 1.16 (dumped by pg_dump 17): read by the agent's archive reader");
  v1::DumpInfo old = *info;
  old.clear_compatibility();
  old.set_archive_version("1.11");
  AddCompatibilityNotes(0, {}, &old);
  EXPECT_EQ(old.compatibility(0).severity(), v1::SEVERITY_ERROR);
  EXPECT_THAT(old.compatibility(0).message(), HasSubstr("is not supported"));
}

// One TOC entry with every field given (ArchiveWriter::Entry fixes most).
struct TocSpec {
  int id;
  bool had_dumper;
  std::string desc, tag, defn, drop, copy, ns, owner;
  int section;
  std::string filename;  // tar/directory
};

void WriteEntry(ArchiveWriter* w, int vmin, const TocSpec& e, bool custom) {
  w->Int(e.id);
  w->Int(e.had_dumper ? 1 : 0);
  w->Str("0");
  w->Str("16384");
  w->Str(e.tag.c_str());
  w->Str(e.desc.c_str());
  w->Int(e.section);
  w->Str(e.defn.c_str());
  w->Str(e.drop.c_str());
  w->Str(e.copy.c_str());
  w->Str(e.ns.c_str());
  w->Str(nullptr);  // no tablespace
  if (vmin >= 14) w->Str(nullptr);
  if (vmin >= 16) w->Int(0);
  w->Str(e.owner.c_str());
  w->Str("false");
  w->Str(nullptr);
  if (custom) {
    w->Byte(e.had_dumper ? 1 : 3);  // offset not set: written to a pipe
    for (int i = 0; i < 8; ++i) w->Byte(0);
  } else {
    w->Str(e.filename.empty() ? nullptr : e.filename.c_str());
  }
}

// A custom archive (no compression) of one table with data, as pg_dump
// writes it to a pipe: no data offsets.
// `with_statistics`: pg_dump 18 --statistics's entry of the table.
constexpr char kRelationStats[] =
    "SELECT * FROM pg_catalog.pg_restore_relation_stats(\n\t'version', '180000'::integer,\n\t"
    "'schemaname', 'public',\n\t'relname', 't',\n\t'relpages', '1'::integer,\n\t"
    "'reltuples', '2'::real,\n\t'relallvisible', '0'::integer\n);\n";
std::string PipedCustomArchive(int vmin, bool with_search_path, bool truncate_data,
                               bool with_statistics = false) {
  ArchiveWriter w(vmin);
  w.Header(kArchCustom, 0, "db", "15.1");
  std::vector<TocSpec> toc = {
      {1, false, "ENCODING", "ENCODING", "SET client_encoding = 'UTF8';\n", "", "", "", "", 1, ""},
      {2, false, "TABLE", "t", "CREATE TABLE public.t (a integer);", "DROP TABLE public.t;", "",
       "public", "mastodon", 2, ""},
      {3, true, "TABLE DATA", "t", "", "", "COPY public.t (a) FROM stdin;\n", "public", "mastodon",
       3, ""},
      {4, false, "SEQUENCE SET", "s", "SELECT pg_catalog.setval('public.s', 42, true);", "", "",
       "public", "mastodon", 3, ""},
  };
  if (with_statistics) {
    toc.insert(toc.begin() + 3,
               {6, false, "STATISTICS DATA", "t", kRelationStats, "", "", "public", "", 3, ""});
  }
  if (with_search_path) {
    toc.insert(toc.begin() + 1, {5, false, "SEARCHPATH", "SEARCHPATH",
                                 "SELECT pg_catalog.set_config('search_path', '', false);\n", "",
                                 "", "", "", 1, ""});
  }
  w.Int(static_cast<int64_t>(toc.size()));
  for (const TocSpec& e : toc) WriteEntry(&w, vmin, e, true);
  // The data block of entry 3: type 1, id, chunks, zero length.
  w.Byte(1);
  w.Int(3);
  const std::string data = "1\n2\n\\.\n\n\n";
  w.Int(static_cast<int64_t>(data.size()));
  w.bytes() += data;
  w.Int(0);
  if (truncate_data) w.bytes().resize(w.bytes().size() - data.size() - 12);
  return w.bytes();
}

absl::StatusOr<std::string> Render(ArchiveScript* script) {
  std::string out;
  char buf[7];  // tiny reads: every buffer boundary
  while (true) {
    ASSIGN_OR_RETURN(size_t got, script->Read(buf, sizeof(buf)));
    if (got == 0) return out;
    out.append(buf, got);
  }
}

TEST(ArchiveScriptTest, CustomArchiveFromAPipeRendersInPgRestoreOrder) {
  StringStream in(PipedCustomArchive(14, true, false), "piped.dump");
  auto script = ArchiveScript::OpenCustom(&in);
  ASSERT_OK(script);
  auto text = Render(script->get());
  ASSERT_OK(text);
  EXPECT_THAT(*text, HasSubstr("SET client_encoding = 'UTF8';\n"));
  EXPECT_THAT(*text, HasSubstr("SELECT pg_catalog.set_config('search_path', '', false);\n"));
  EXPECT_THAT(*text,
              HasSubstr("--\n-- Name: t; Type: TABLE; Schema: public; Owner: mastodon\n--\n\n"
                        "CREATE TABLE public.t (a integer);\n\n"
                        "ALTER TABLE public.t OWNER TO mastodon;\n\n"));
  EXPECT_THAT(*text, HasSubstr("-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: "
                               "mastodon\n--\n\nCOPY public.t (a) FROM stdin;\n1\n2\n\\.\n\n\n"));
  EXPECT_THAT(*text, HasSubstr("SELECT pg_catalog.setval('public.s', 42, true);"));
  EXPECT_LT(text->find("COPY public.t"), text->find("setval"));
  EXPECT_EQ(text->find("SET search_path = "), std::string::npos);
}

TEST(ArchiveScriptTest, StatisticsDataOnlyWhenKept) {
  StringStream skipped_in(PipedCustomArchive(16, true, false, true), "stats.dump");
  auto skipped = ArchiveScript::OpenCustom(&skipped_in);
  ASSERT_OK(skipped);
  auto without = Render(skipped->get());
  ASSERT_OK(without);
  EXPECT_THAT(*without, ::testing::Not(HasSubstr("pg_restore_relation_stats")));
  EXPECT_THAT(*without, ::testing::Not(HasSubstr("STATISTICS DATA")));

  StringStream kept_in(PipedCustomArchive(16, true, false, true), "stats.dump");
  auto kept = ArchiveScript::OpenCustom(&kept_in);
  ASSERT_OK(kept);
  (*kept)->KeepStatistics();
  auto with = Render(kept->get());
  ASSERT_OK(with);
  // Where pg_restore 18 puts it: after the table's data, before the
  // sequence values, with the entry's comment and no owner.
  EXPECT_THAT(*with, HasSubstr(absl::StrCat(
                         "--\n-- Name: t; Type: STATISTICS DATA; Schema: public; Owner: -\n--\n\n",
                         kRelationStats)));
  EXPECT_LT(with->find("COPY public.t"), with->find("pg_restore_relation_stats"));
  EXPECT_LT(with->find("pg_restore_relation_stats"), with->find("setval"));
}

TEST(ArchiveScriptTest, OldArchivesWithoutSearchPathEntryGetOneSearchPathPerSchema) {
  StringStream in(PipedCustomArchive(12, false, false), "old.dump");
  auto script = ArchiveScript::OpenCustom(&in);
  ASSERT_OK(script);
  auto text = Render(script->get());
  ASSERT_OK(text);
  EXPECT_THAT(*text, HasSubstr("SET search_path = public, pg_catalog;\n\n--\n-- Name: t;"));
}

TEST(ArchiveScriptTest, MissingDataAndUnsupportedVersionsAreErrors) {
  StringStream in(PipedCustomArchive(14, true, true), "short.dump");
  auto script = ArchiveScript::OpenCustom(&in);
  ASSERT_OK(script);
  EXPECT_THAT(Render(script->get()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("short.dump")));
  StringStream old(PipedCustomArchive(11, false, false), "ancient.dump");
  EXPECT_THAT(ArchiveScript::OpenCustom(&old),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("1.11")));
  StringStream tar(MakeArchive(14, kArchTar), "toc.dat");
  EXPECT_THAT(ArchiveScript::OpenCustom(&tar),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not the custom format")));
}

TEST(ArchiveScriptTest, DirectoryArchiveFileNamesMustStayInside) {
  auto dir = testing::MakeTempDir("mr-dirdump-");
  ASSERT_OK(dir);
  ArchiveWriter w(14);
  w.Header(kArchTar, 0, "db", "15.1");
  w.Int(1);
  WriteEntry(&w, 14,
             {1, true, "TABLE DATA", "t", "", "", "COPY public.t (a) FROM stdin;\n", "public",
              "mastodon", 3, "../../etc/passwd"},
             false);
  { std::ofstream(*dir + "/toc.dat", std::ios::binary) << w.bytes(); }
  auto script = ArchiveScript::OpenDirectory(*dir);
  ASSERT_OK(script);
  EXPECT_THAT(Render(script->get()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not a plain file name")));
  testing::RemoveTree(*dir);
}

TEST(ArchiveScriptTest, QuotesIdentifiersLikeFmtId) {
  EXPECT_EQ(QuoteArchiveIdent("mastodon"), "mastodon");
  EXPECT_EQ(QuoteArchiveIdent("user"), "\"user\"");
  EXPECT_EQ(QuoteArchiveIdent("Odd Schema"), "\"Odd Schema\"");
  EXPECT_EQ(QuoteArchiveIdent("a\"b"), "\"a\"\"b\"");
  EXPECT_EQ(QuoteArchiveIdent("9lives"), "\"9lives\"");
}

TEST(ArchiveReaderTest, HostileHeadersAreRejected) {
  std::string good = MakeArchive(14, kArchCustom);
  auto detect = [](const std::string& bytes) {
    StringStream in(bytes, "h.dump");
    return DetectCustomDump(&in, DetectOptions());
  };
  EXPECT_THAT(detect(good.substr(0, 30)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("truncated")));
  std::string newer = good;
  newer[6] = 17;
  EXPECT_THAT(detect(newer), StatusIs(absl::StatusCode::kFailedPrecondition,
                                      HasSubstr("unsupported version (1.17)")));
  std::string bad_int = good;
  bad_int[8] = 9;
  EXPECT_THAT(detect(bad_int),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("integer size")));
  // A string claiming 2 GiB.
  ArchiveWriter w(14);
  w.Header(kArchCustom, 1, "db", "15.1");
  w.Int(1);
  w.Int(1);
  w.Int(1);
  w.Byte(0);
  w.bytes() += std::string("\xff\xff\xff\x7f", 4);
  EXPECT_THAT(detect(w.bytes()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tableoid of 2147483647 bytes exceeds the limit")));
  // A negative TOC count.
  ArchiveWriter neg(14);
  neg.Header(kArchCustom, 1, "db", "15.1");
  neg.Int(-5);
  EXPECT_THAT(detect(neg.bytes()), StatusIs(absl::StatusCode::kInvalidArgument,
                                            HasSubstr("invalid TOC entry count -5")));
}

// Peak resident memory of this process, in MiB (ctest runs each test in a
// process of its own).
int64_t PeakMiB() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024;
}

// A custom archive whose TOC repeats one entry `count` times, produced as it
// is read (the input itself holds no memory).
class RepeatedTocStream : public ByteStream {
 public:
  RepeatedTocStream(std::string head, std::string entry, int64_t count)
      : head_(std::move(head)), entry_(std::move(entry)), count_(count) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    size_t done = 0;
    while (done < n && index_ <= count_) {
      const std::string& part = index_ == 0 ? head_ : entry_;
      size_t k = std::min(n - done, part.size() - pos_);
      std::memcpy(buf + done, part.data() + pos_, k);
      pos_ += k;
      done += k;
      if (pos_ == part.size()) {
        ++index_;
        pos_ = 0;
      }
    }
    return done;
  }
  const std::string& name() const override { return name_; }

 private:
  std::string head_, entry_;
  int64_t count_;
  int64_t index_ = 0;  // 0: the head, then the entries
  size_t pos_ = 0;
  std::string name_ = "repeated.dump";
};

// An entry of archive 1.14 with a `tag_bytes` tag and a `defn_bytes` defn.
std::string BigEntry(const char* desc, size_t tag_bytes, size_t defn_bytes) {
  ArchiveWriter w(14);
  const std::string tag(tag_bytes, 't');
  const std::string defn(defn_bytes, 'd');
  w.Entry(7, desc, tag.c_str(), defn.c_str(), 2, /*custom=*/true);
  return w.bytes();
}

std::string TocHead(int64_t count) {
  ArchiveWriter w(14);
  w.Header(kArchCustom, 1, "mastodon_production", "15.1");
  w.Int(count);
  return w.bytes();
}

// Issue 15, finding 7: a TOC declaring ten million entries was read whole.
TEST(ArchiveReaderTest, TocOfTenMillionDeclaredEntriesIsRefusedAtTheCount) {
  StringStream in(TocHead(10000000), "huge.dump");
  EXPECT_THAT(DetectCustomDump(&in, DetectOptions()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("TOC of 10000000 entries exceeds the limit of 1000000 entries "
                                 "at offset")));
  // Within a raised limit, a TOC that declares more than it holds fails as
  // truncated without reserving room for what it declares.
  const int64_t before = PeakMiB();
  StringStream short_toc(TocHead(10000000) + BigEntry("TABLE", 10, 10), "short.dump");
  DetectOptions raised;
  raised.toc_limits.max_entries = 20000000;
  EXPECT_THAT(DetectCustomDump(&short_toc, raised),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("truncated")));
  EXPECT_LT(PeakMiB() - before, 64);
}

// Issue 15, finding 7: TOC strings up to 256 MiB were read into memory.
TEST(ArchiveReaderTest, TocStringOf256MiBIsRefusedBeforeItIsRead) {
  std::string head = TocHead(1);
  ArchiveWriter w(14);
  w.Int(1);          // dump id
  w.Int(1);          // had dumper
  w.Str("0");        // tableoid
  w.Str("1");        // oid
  w.Int(256 << 20);  // tag: 256 MiB, none of it there
  StringStream in(head + w.bytes(), "tag.dump");
  EXPECT_THAT(DetectCustomDump(&in, DetectOptions()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("TOC entry 1 of 1: tag of 268435456 bytes exceeds the limit of "
                                 "65536 bytes at offset")));
  // SQL strings have their own, larger bound.
  ArchiveWriter sql(14);
  sql.Int(1);
  sql.Int(1);
  sql.Str("0");
  sql.Str("1");
  sql.Str("t");
  sql.Str("FUNCTION");
  sql.Int(2);
  sql.Int((256 << 20) + 1);  // defn
  StringStream defn(head + sql.bytes(), "defn.dump");
  EXPECT_THAT(DetectCustomDump(&defn, DetectOptions()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("TOC entry 1 of 1: defn of 268435457 bytes exceeds the limit "
                                 "of 268435456 bytes")));
  // The bounds come from the options.
  DetectOptions small;
  small.toc_limits.max_name_bytes = 8;
  StringStream named(TocHead(1) + BigEntry("TABLE", 9, 1), "n.dump");
  EXPECT_THAT(DetectCustomDump(&named, small),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("tag of 9 bytes exceeds the limit of 8 bytes")));
}

// Detection reads the TOC one entry at a time, skips the SQL it does not
// need, and bounds what it keeps (before, the whole TOC was held: 3.1 GB
// from a 459 KiB .dump.xz).
TEST(ArchiveReaderTest, DetectionKeepsOnlyWhatItNeedsOfTheToc) {
  // 400 functions of 1 MiB each: 400 MiB of SQL, none of it held.
  int64_t before = PeakMiB();
  RepeatedTocStream functions(TocHead(400), BigEntry("FUNCTION", 10, 1 << 20), 400);
  DetectOptions deep;
  deep.deep = true;
  auto info = DetectCustomDump(&functions, deep);
  ASSERT_OK(info);
  EXPECT_EQ(info->toc_entries_size(), 400);
  EXPECT_LT(PeakMiB() - before, 64);
  // 200000 TABLE DATA entries with 4 KiB names: detection keeps each table's
  // name, and stops at its bound (256 MiB) instead of holding 800 MiB.
  before = PeakMiB();
  RepeatedTocStream tables(TocHead(200000), BigEntry("TABLE DATA", 4096, 0), 200000);
  EXPECT_THAT(DetectCustomDump(&tables, DetectOptions()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("entries exceed the limit of 268435456 bytes held by "
                                 "detection")));
  const int64_t grew = PeakMiB() - before;
  EXPECT_LT(grew, 700);
  std::cout << "TOC of 200000 x 4 KiB TABLE DATA names: peak grew by " << grew << " MiB\n";
}

TEST(SniffTest, RecognisesEveryWrapper) {
  EXPECT_EQ(Sniff(""), ContentKind::kEmpty);
  EXPECT_EQ(Sniff("\x1f\x8b\x08\x00"), ContentKind::kGzip);
  EXPECT_EQ(Sniff("BZh91AY"), ContentKind::kBzip2);
  EXPECT_EQ(Sniff(std::string("\xfd"
                              "7zXZ\0\0",
                              7)),
            ContentKind::kXz);
  EXPECT_EQ(Sniff("\x28\xb5\x2f\xfd\x00"), ContentKind::kZstd);
  EXPECT_EQ(Sniff("\x04\x22\x4d\x18"), ContentKind::kLz4);
  EXPECT_EQ(Sniff("PK\x03\x04"), ContentKind::kZip);
  EXPECT_EQ(Sniff("7z\xbc\xaf\x27\x1c"), ContentKind::kSevenZip);
  std::string tar(512, '\0');
  tar.replace(257, 5, "ustar");
  EXPECT_EQ(Sniff(tar), ContentKind::kTar);
  EXPECT_EQ(Sniff("age-encryption.org/v1\n-> X25519"), ContentKind::kAge);
  EXPECT_EQ(Sniff("-----BEGIN PGP MESSAGE-----\n"), ContentKind::kOpenPgp);
  // A symmetric-key session key packet (gpg --symmetric): v4, AES256, S2K 3.
  EXPECT_EQ(Sniff(std::string("\x8c\x0d\x04\x09\x03\x08saltsalt\xe0\xd2\x0c\x40", 18)),
            ContentKind::kOpenPgp);
  // Random-looking bytes with a packet-like first byte are not.
  EXPECT_EQ(Sniff(std::string("\x85\x01\x0c\x03\x00\x11\x22\x33\x44\x55\x66\x77\x99\x07"
                              "\x00\x00\x00",
                              17)),
            ContentKind::kBinary);
  EXPECT_EQ(Sniff("--\n-- PostgreSQL database dump\n--\n\n"), ContentKind::kPlainDump);
  EXPECT_EQ(Sniff("--\n-- PostgreSQL database cluster dump\n--\n\n"), ContentKind::kPlainDumpall);
  EXPECT_EQ(Sniff("--\n-- NOTE:\n--\n"), ContentKind::kTarRestoreScript);
  EXPECT_EQ(Sniff("hello\n"), ContentKind::kText);
  EXPECT_EQ(Sniff(std::string("\x01\x02\x00", 3)), ContentKind::kBinary);
}

TEST(VersionTest, MajorVersions) {
  EXPECT_EQ(MajorVersionOf("15.18 (Debian 15.18-0+deb12u1)"), 15);
  EXPECT_EQ(MajorVersionOf("9.6.24"), 9);
  EXPECT_EQ(MajorVersionOf(""), 0);
  EXPECT_EQ(PgRestoreMajorForArchive(16), 17);
  EXPECT_EQ(PgRestoreMajorForArchive(15), 16);
  EXPECT_EQ(PgRestoreMajorForArchive(14), 12);
}

}  // namespace
}  // namespace mastodon_restore
