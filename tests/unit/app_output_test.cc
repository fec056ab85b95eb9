#include "agent/app/app_output.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mastodon_restore {
namespace {

TEST(AppOutputTest, StripsColoursAndCursorMovements) {
  EXPECT_EQ(StripAnsi("\x1b[32mDownloaded 3 media attachments\x1b[0m"),
            "Downloaded 3 media attachments");
  EXPECT_EQ(StripAnsi("\x1b[K12/40 |==  |"), "12/40 |==  |");
  EXPECT_EQ(StripAnsi("plain"), "plain");
  EXPECT_EQ(StripAnsi("cut\x1b["), "cut");  // a truncated sequence
}

TEST(AppOutputTest, ProgressCountsOfRubyProgressbar) {
  auto p = ParseProgressLine("12/345 |====        | ETA: 00:01:02");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->done, 12);
  EXPECT_EQ(p->total, 345);
  p = ParseProgressLine("Importing 3/10 |=== | ETA: ??:??:?? (12.5 docs/s)");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->done, 3);
  // search deploy's titles name the phase and the index.
  p = ParseProgressLine("Importing PublicStatusesIndex 8/10 |    | ETA: ??:??:?? (40 docs/s)");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->done, 8);
  EXPECT_EQ(p->total, 10);
  p = ParseProgressLine("Estimating workload 0/?? |<=>   | ETA: ??:??:?? (0 docs/s)");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->total, -1);
  p = ParseProgressLine("7/?? |<=>   | ETA: ??:??:??");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->total, -1);
  EXPECT_FALSE(ParseProgressLine("Progress: |=====|").has_value());  // non-tty output
  EXPECT_FALSE(ParseProgressLine("Downloaded 12/13 files").has_value());
  EXPECT_FALSE(ParseProgressLine("Error processing 1/2: x").has_value());
}

TEST(AppOutputTest, ItemErrorsAndSummaries) {
  EXPECT_TRUE(IsItemErrorLine("Error processing 109123: Net::ReadTimeout"));
  EXPECT_TRUE(IsItemErrorLine("\x1b[31mError processing 1: x\x1b[0m"));
  EXPECT_FALSE(IsItemErrorLine("No errors processing"));
  EXPECT_TRUE(IsItemErrorLine("\x1b[31mError while importing StatusesIndex: read timeout\x1b[0m"));

  auto s = ParseSummaryLine("\x1b[32mDownloaded 1,234 media attachments (approx. 3.4 GB)\x1b[0m");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->count, 1234);
  EXPECT_EQ(s->text, "Downloaded 1,234 media attachments (approx. 3.4 GB)");
  EXPECT_FALSE(s->dry_run);
  s = ParseSummaryLine("Removed media from 7 preview cards (approx. 2 MB) (DRY RUN)");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->count, 7);
  EXPECT_TRUE(s->dry_run);
  EXPECT_EQ(ParseSummaryLine("Removed 7 preview cards")->count, 7);  // before 4.6
  EXPECT_EQ(ParseSummaryLine("Refreshed 40 accounts")->count, 40);
  EXPECT_EQ(ParseSummaryLine("Regenerated feeds for 3 accounts")->count, 3);
  EXPECT_EQ(ParseSummaryLine("Indexed 100 records, de-indexed 2")->count, 100);
  EXPECT_FALSE(ParseSummaryLine("Removed").has_value());
  EXPECT_FALSE(ParseSummaryLine("OK").has_value());
}

TEST(AppOutputTest, MigrationLines) {
  auto m = ParseMigrationLine(
      "== 20240307180905 MigrateDeviseTwoFactorSecrets: migrating ======================");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->version, "20240307180905");
  EXPECT_EQ(m->name, "MigrateDeviseTwoFactorSecrets");
  EXPECT_FALSE(m->done);
  m = ParseMigrationLine("== 20240307180905 MigrateDeviseTwoFactorSecrets: migrated (0.0123s) ==");
  ASSERT_TRUE(m.has_value());
  EXPECT_TRUE(m->done);
  // After the snap's prompt on a terminal without echo.
  m = ParseMigrationLine("Do you want to continue? [y/N] == 20250101000000 AddThing: migrating ==");
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->version, "20250101000000");
  EXPECT_FALSE(ParseMigrationLine("== 20240307180905 X: reverting ===").has_value());
  EXPECT_FALSE(ParseMigrationLine("-- add_column(:users, :x)").has_value());
  EXPECT_FALSE(ParseMigrationLine("== 2024 Short: migrating").has_value());
  EXPECT_FALSE(ParseMigrationLine("== ==").has_value());
}

}  // namespace
}  // namespace mastodon_restore
