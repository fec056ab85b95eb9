// Which lines of a pg_dumpall stream the loader applies: the globals, the
// restored database's section, or neither; the ranges come from the dump
// scanner while the stream is read.
#include "agent/database/section_filter.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_split.h"

namespace mastodon_restore {
namespace {

DumpSection Section(const std::string& name, int64_t begin, int64_t end) {
  DumpSection s;
  s.name = name;
  s.begin_offset = begin;
  s.end_offset = end;
  return s;
}

TEST(ClassifyOffsetTest, Table) {
  const std::vector<DumpSection> open = {Section("template1", 10, 20), Section("mastodon", 20, -1)};
  const std::vector<DumpSection> closed = {Section("template1", 10, 20),
                                           Section("mastodon", 20, 30), Section("postgres", 30, 40),
                                           Section("mastodon", 40, 50)};
  struct Case {
    const char* name;
    const std::vector<DumpSection>* sections;
    const char* database;
    int64_t offset;
    DumpPart part;
  };
  const std::vector<DumpSection> none;
  const std::vector<Case> cases = {
      {"no section yet", &none, "mastodon", 500, DumpPart::kGlobals},
      {"before the first section", &open, "mastodon", 0, DumpPart::kGlobals},
      {"just before the first section", &open, "mastodon", 9, DumpPart::kGlobals},
      {"another section", &open, "mastodon", 10, DumpPart::kOther},
      {"its last byte", &open, "mastodon", 19, DumpPart::kOther},
      {"the section's first byte", &open, "mastodon", 20, DumpPart::kSection},
      {"end unknown: goes on", &open, "mastodon", 100000, DumpPart::kSection},
      {"end known: inside", &closed, "mastodon", 29, DumpPart::kSection},
      {"end known: after", &closed, "mastodon", 30, DumpPart::kOther},
      {"a second section of the name is not it", &closed, "mastodon", 45, DumpPart::kOther},
      {"a database the dump lacks", &closed, "other", 25, DumpPart::kOther},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(ClassifyOffset(*c.sections, c.database, c.offset), c.part);
  }
}

// Streams `dump` through a filter for `database`, line by line (or byte by
// byte), and returns each line's part: G(lobals), S(ection), O(ther), then
// "|" and whether the filter saw the section end, after each line.
std::string Parts(const std::string& dump, const std::string& database, bool bytewise) {
  SectionFilter filter(database);
  std::string parts, ended;
  int64_t offset = 0;
  std::vector<std::string> lines = absl::StrSplit(dump, '\n');
  lines.pop_back();  // after the final newline
  for (const std::string& line : lines) {
    const std::string bytes = line + "\n";
    if (bytewise) {
      for (char c : bytes) filter.Feed(absl::string_view(&c, 1));
    } else {
      filter.Feed(bytes);
    }
    switch (filter.LinePart(offset, /*end_of_stream=*/false)) {
      case DumpPart::kGlobals:
        parts += 'G';
        break;
      case DumpPart::kSection:
        parts += 'S';
        break;
      case DumpPart::kOther:
        parts += 'O';
        break;
    }
    ended += filter.ended() ? 'E' : '-';
    offset += static_cast<int64_t>(bytes.size());
  }
  return parts + "|" + ended + (filter.found() ? "|found" : "|missing");
}

constexpr char kDumpall[] =
    "--\n"
    "-- PostgreSQL database cluster dump\n"
    "--\n"
    "CREATE ROLE mastodon;\n"
    "--\n"
    "-- Database \"template1\" dump\n"
    "--\n"
    "\\connect template1\n"
    "COPY public.t (a) FROM stdin;\n"
    "-- Database \"mastodon\" dump\n"
    "\\.\n"
    "--\n"
    "-- Database \"mastodon\" dump\n"
    "--\n"
    "\\connect mastodon\n"
    "CREATE TABLE public.statuses (id bigint);\n"
    "--\n"
    "-- Database \"postgres\" dump\n"
    "\\connect postgres\n"
    "--\n"
    "-- PostgreSQL database cluster dump complete\n"
    "--\n";

TEST(SectionFilterTest, MarkersDelimitTheSection) {
  // A marker inside COPY data is data; the section ends where the next one
  // starts, which the head-only detection may not have seen.
  const std::string want =
      "GGGGGOOOOOOOSSSSSOOOOO|"
      "-----------------EEEEE|found";
  EXPECT_EQ(Parts(kDumpall, "mastodon", false), want);
  EXPECT_EQ(Parts(kDumpall, "mastodon", true), want);
}

TEST(SectionFilterTest, TheTrailerEndsTheLastSection) {
  EXPECT_EQ(Parts(kDumpall, "postgres", false),
            "GGGGGOOOOOOOOOOOOSSSOO|"
            "--------------------EE|found");
}

TEST(SectionFilterTest, MissingDatabase) {
  EXPECT_EQ(Parts(kDumpall, "nowhere", false),
            "GGGGGOOOOOOOOOOOOOOOOO|"
            "----------------------|missing");
}

TEST(SectionFilterTest, Pre11ConnectsDelimitTheSections) {
  constexpr char kPre11[] =
      "--\n"
      "-- PostgreSQL database cluster dump\n"
      "--\n"
      "CREATE ROLE mastodon;\n"
      "--\n"
      "-- Database creation\n"
      "--\n"
      "CREATE DATABASE mastodon WITH TEMPLATE = template0;\n"
      "\\connect postgres\n"
      "SET x = 1;\n"
      "\\connect mastodon\n"
      "CREATE TABLE t (id int);\n"
      "\\connect mastodon\n"
      "SELECT 2;\n"
      "\\connect template1\n"
      "SELECT 1;\n";
  EXPECT_EQ(Parts(kPre11, "mastodon", false),
            "GGGGGGGGOOSSSSOO|"
            "--------------EE|found");
}

TEST(SectionFilterTest, APgDumpHasNoDatabaseSection) {
  constexpr char kDump[] =
      "--\n"
      "-- PostgreSQL database dump\n"
      "--\n"
      "CREATE DATABASE mastodon WITH TEMPLATE = template0;\n"
      "\\connect mastodon\n"
      "CREATE TABLE t (id int);\n";
  EXPECT_EQ(Parts(kDump, "mastodon", false),
            "GGGGGG|"
            "------|missing");
}

TEST(SectionFilterTest, TheFinalLineWithoutNewline) {
  SectionFilter filter("mastodon");
  const std::string head = "--\n-- PostgreSQL database cluster dump\n--\n";
  const std::string marker = "-- Database \"mastodon\" dump\n";
  filter.Feed(head);
  filter.Feed(marker);
  EXPECT_EQ(filter.LinePart(static_cast<int64_t>(head.size()), false), DumpPart::kSection);
  EXPECT_FALSE(filter.ended());
  const int64_t last = static_cast<int64_t>(head.size() + marker.size());
  filter.Feed("SELECT 1;");
  EXPECT_EQ(filter.LinePart(last, /*end_of_stream=*/true), DumpPart::kSection);
  EXPECT_TRUE(filter.ended());
}

}  // namespace
}  // namespace mastodon_restore
