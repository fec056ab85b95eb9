#include "agent/app/env_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "agent/app/app_bucket.h"
#include "agent/app/env_install.h"
#include "agent/archive/path_rules.h"
#include "agent/database/pg_connection.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(EnvFileTest, DotenvRules) {
  ParsedEnvFile env = ParseEnvFile(
      "# comment\n"
      "\n"
      "LOCAL_DOMAIN=example.social\n"
      "export SINGLE_USER_MODE=false\n"
      "  SPACED = value with spaces   # trailing comment\n"
      "HASH=abc#not-a-comment\n"
      "SINGLE='literal $HOME \\n'\n"
      "DOUBLE=\"line1\\nline2\"\n"
      "MULTI=\"first\n"
      "second\"\n"
      "EMPTY=\n"
      "COLON: yes\n"
      "not a line\n"
      "AFTER=1\r\n");
  auto value = [&](const char* key) {
    const std::string* v = env.Find(key);
    return v == nullptr ? std::string("<missing>") : *v;
  };
  EXPECT_EQ(value("LOCAL_DOMAIN"), "example.social");
  EXPECT_EQ(value("SINGLE_USER_MODE"), "false");
  EXPECT_EQ(value("SPACED"), "value with spaces");
  EXPECT_EQ(value("HASH"), "abc#not-a-comment");
  EXPECT_EQ(value("SINGLE"), "literal $HOME \\n");
  EXPECT_EQ(value("DOUBLE"), "line1\nline2");
  EXPECT_EQ(value("MULTI"), "first\nsecond");
  EXPECT_EQ(value("EMPTY"), "");
  EXPECT_EQ(value("COLON"), "yes");
  EXPECT_EQ(value("AFTER"), "1");
  ASSERT_EQ(env.warnings.size(), 1u);
  EXPECT_EQ(env.warnings[0], "line 13: not KEY=VALUE");  // MULTI spans lines 9-10
}

TEST(EnvFileTest, SummaryReportsSettingsAndSecretsWithoutValues) {
  ParsedEnvFile env = ParseEnvFile(
      "DB_HOST=db\nDB_NAME=mastodon_production\nDB_PASS=hunter2\n"
      "DATABASE_URL=postgres://mastodon:hunter2@db:5432/mastodon_production\n"
      "S3_ENABLED=true\nS3_BUCKET=files\nAWS_SECRET_ACCESS_KEY=aws-secret\n"
      "SECRET_KEY_BASE=abc\nOTP_SECRET=\nVAPID_PUBLIC_KEY=pub\n");
  auto info = SummarizeEnvFile(env, ".env.production");
  EXPECT_EQ(info.database_settings().at("DB_NAME"), "mastodon_production");
  EXPECT_EQ(info.database_settings().at("DATABASE_URL"),
            "postgres://mastodon:***@db:5432/mastodon_production");
  EXPECT_EQ(info.database_settings().count("DB_PASS"), 0u);
  EXPECT_EQ(info.media_settings().at("S3_BUCKET"), "files");
  EXPECT_EQ(info.media_settings().count("AWS_SECRET_ACCESS_KEY"), 0u);
  EXPECT_THAT(info.keys(), ::testing::Contains("AWS_SECRET_ACCESS_KEY"));
  std::map<std::string, bool> present;
  for (const auto& s : info.secrets()) present[s.key()] = s.present();
  EXPECT_TRUE(present["SECRET_KEY_BASE"]);
  EXPECT_FALSE(present["OTP_SECRET"]);  // empty counts as missing
  EXPECT_FALSE(present["ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"]);
  EXPECT_EQ(info.secrets(0).fingerprint(), SecretFingerprint("abc"));
  EXPECT_EQ(SecretFingerprint("abc"), "ba7816bf");  // SHA-256("abc")
  std::string all = info.DebugString();
  EXPECT_EQ(all.find("hunter2"), std::string::npos);
  EXPECT_EQ(all.find("aws-secret"), std::string::npos);
}

TEST(EnvFileTest, SecretKeys) {
  EXPECT_TRUE(IsSecretKey("SMTP_PASSWORD"));
  EXPECT_TRUE(IsSecretKey("AWS_SECRET_ACCESS_KEY"));
  EXPECT_TRUE(IsSecretKey("ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT"));
  EXPECT_FALSE(IsSecretKey("LOCAL_DOMAIN"));
  EXPECT_FALSE(IsSecretKey("S3_BUCKET"));
  EXPECT_EQ(RedactUrlPassword("postgres://u@h/db"), "postgres://u@h/db");
}

TEST(EnvFileTest, UrlPasswordsAreRedactedWhereverTheUrlCarriesThem) {
  EXPECT_EQ(RedactUrlPassword("postgres://u:hunter2@h:5432/db"), "postgres://u:***@h:5432/db");
  // A password holding '@' (the user info ends at the last '@').
  EXPECT_EQ(RedactUrlPassword("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
  // libpq also takes the password from the query string.
  EXPECT_EQ(RedactUrlPassword("postgres://u@h/db?sslmode=require&password=hunter2"),
            "postgres://u@h/db?sslmode=require&password=***");
  EXPECT_EQ(RedactUrlPassword("postgresql:///db?host=/run/pg&PassWord=x&sslpassword=y#f"),
            "postgresql:///db?host=/run/pg&PassWord=***&sslpassword=***#f");
  // An '@' or ':' in the path or query is not user info.
  EXPECT_EQ(RedactUrlPassword("postgres://h/db?application_name=a:b@c"),
            "postgres://h/db?application_name=a:b@c");
  EXPECT_EQ(RedactUrlPassword("not a url"), "not a url");
}

TEST(ConnInfoTest, PasswordsMakeAConnInfoSecret) {
  EXPECT_FALSE(ConnInfoHasPassword("host=/run/postgresql user=postgres dbname=x"));
  EXPECT_FALSE(ConnInfoHasPassword("postgresql://postgres@db:5432/mastodon"));
  EXPECT_TRUE(ConnInfoHasPassword("host=db user=mastodon password=hunter2"));
  EXPECT_TRUE(ConnInfoHasPassword("postgresql://mastodon:hunter2@db/mastodon"));
  EXPECT_TRUE(ConnInfoHasPassword("host='unterminated"));
}

TEST(PathRulesTest, EntryNames) {
  EXPECT_EQ(*NormalizeEntryPath("./public//system/x"), "public/system/x");
  EXPECT_THAT(NormalizeEntryPath("/etc/passwd"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute")));
  EXPECT_THAT(NormalizeEntryPath("a/../../b"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'..'")));
  EXPECT_THAT(NormalizeEntryPath("./"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_TRUE(IsWithin("/var/backups/mastodon/x", "/var/backups/mastodon"));
  EXPECT_TRUE(IsWithin("/var/backups/mastodon", "/var/backups/mastodon"));
  EXPECT_FALSE(IsWithin("/var/backups/mastodon2", "/var/backups/mastodon"));
}

TEST(PathRulesTest, AllowedRoots) {
  EXPECT_THAT(ResolveAllowedPath("relative", {"/tmp"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("absolute")));
  EXPECT_THAT(ResolveAllowedPath("/etc/hostname", {"/tmp"}),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("allowed roots (/tmp)")));
  EXPECT_THAT(
      ResolveAllowedPath("/tmp/../etc/hostname", {"/tmp"}),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("resolves to '/etc/hostname'")));
  EXPECT_THAT(ResolveAllowedPath("/tmp/no-such-file-mr", {"/tmp"}),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no-such-file-mr")));
  EXPECT_OK(ResolveAllowedPath("/etc/hostname", {"/tmp", "/etc"}));
  // A missing path outside the roots is denied, never reported missing: the
  // answer must not reveal what exists elsewhere.
  EXPECT_THAT(
      ResolveAllowedPath("/tmp/../no-such-dir-mr/x", {"/tmp"}),
      StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("resolves to '/no-such-dir-mr/x'")));
  EXPECT_THAT(ResolveAllowedPath("/etc/no-such-file-mr", {"/tmp"}),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("outside")));
  EXPECT_THAT(ResolveAllowedPath("/tmp/a-missing-mr/../../etc", {"/tmp"}),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("outside")));
}

}  // namespace
}  // namespace mastodon_restore

namespace mastodon_restore {
namespace {

TEST(EnvInstallTest, MergeKeepsTheHostsDatabaseAndRedisLines) {
  const std::string backup =
      "LOCAL_DOMAIN=old.example\nDB_HOST=/var/run/postgresql\nexport DB_PASS=old-pass\n"
      "SECRET_KEY_BASE=kb\nREDIS_URL=redis://old:6379\n";
  const std::string host =
      "LOCAL_DOMAIN=new.example\nDB_HOST=/tmp/sockets/pgbouncer\nDB_PASS='local pass'\n"
      "REDIS_URL=redis://localhost:6380\n";
  EXPECT_EQ(
      MergeEnvFile(backup, host),
      "LOCAL_DOMAIN=old.example\nSECRET_KEY_BASE=kb\n\n"
      "# Kept from this host by mastodon-restore (database and Redis)\n"
      "DB_HOST=/tmp/sockets/pgbouncer\nDB_PASS='local pass'\nREDIS_URL=redis://localhost:6380\n");
  // Nothing on the host: the backup's file without its host-owned lines.
  EXPECT_EQ(MergeEnvFile(backup, ""), "LOCAL_DOMAIN=old.example\nSECRET_KEY_BASE=kb\n");
}

TEST(EnvInstallTest, DifferingSecretsNamesKeysNotValues) {
  EXPECT_THAT(DifferingSecrets("SECRET_KEY_BASE=a\nOTP_SECRET=o\nVAPID_PRIVATE_KEY=v\n",
                               "SECRET_KEY_BASE=b\nOTP_SECRET=o\n"),
              ::testing::ElementsAre("SECRET_KEY_BASE", "VAPID_PRIVATE_KEY"));
  EXPECT_THAT(DifferingSecrets("SECRET_KEY_BASE=a\n", "SECRET_KEY_BASE=a\n"), ::testing::IsEmpty());
}

// The app's bucket as Paperclip reads it (config/initializers/paperclip.rb).
TEST(AppBucketTest, PaperclipsSettings) {
  for (const char* local : {"LOCAL_DOMAIN=x\n", "S3_ENABLED=false\nS3_BUCKET=b\n"}) {
    auto none = AppBucket(ParseEnvFile(local));
    ASSERT_OK(none);
    EXPECT_FALSE(none->has_value()) << local;
  }
  // AWS: the region's endpoint, virtual-host style.
  auto aws =
      AppBucket(ParseEnvFile("S3_ENABLED=true\nS3_BUCKET=media-bucket\nS3_REGION=eu-west-3\n"
                             "AWS_ACCESS_KEY_ID=AKIA1\nAWS_SECRET_ACCESS_KEY=secret\n"));
  ASSERT_OK(aws);
  ASSERT_TRUE(aws->has_value());
  EXPECT_EQ((*aws)->endpoint, "https://s3.eu-west-3.amazonaws.com");
  EXPECT_EQ((*aws)->region, "eu-west-3");
  EXPECT_EQ((*aws)->bucket, "media-bucket");
  EXPECT_FALSE((*aws)->path_style);
  EXPECT_EQ((*aws)->access_key_id, "AKIA1");
  EXPECT_EQ((*aws)->secret_access_key, "secret");
  // An S3_ENDPOINT: path style, unless S3_OVERRIDE_PATH_STYLE=true (the
  // variable's name says the opposite of what Paperclip does with it).
  auto minio = AppBucket(
      ParseEnvFile("S3_ENABLED=TRUE\nS3_BUCKET=files\nS3_ENDPOINT=https://MinIO.lan:9000/\n"
                   "AWS_ACCESS_KEY_ID=k\nAWS_SECRET_ACCESS_KEY=s\n"));
  ASSERT_OK(minio);
  EXPECT_EQ((*minio)->endpoint, "https://minio.lan:9000");
  EXPECT_EQ((*minio)->region, "us-east-1");
  EXPECT_TRUE((*minio)->path_style);
  auto hetzner = AppBucket(ParseEnvFile(
      "S3_ENABLED=true\nS3_BUCKET=files\nS3_ENDPOINT=https://fsn1.your-objectstorage.com\n"
      "S3_OVERRIDE_PATH_STYLE=true\nAWS_ACCESS_KEY_ID=k\nAWS_SECRET_ACCESS_KEY=s\n"));
  ASSERT_OK(hetzner);
  EXPECT_FALSE((*hetzner)->path_style);
  EXPECT_THAT(AppBucket(ParseEnvFile("S3_ENABLED=true\nS3_BUCKET=b\nAWS_ACCESS_KEY_ID=k\n")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("AWS_SECRET_ACCESS_KEY")));
  EXPECT_THAT(AppBucket(ParseEnvFile("S3_ENABLED=true\nS3_BUCKET=b\nAWS_ACCESS_KEY_ID=k\n"
                                     "AWS_SECRET_ACCESS_KEY=s\nS3_ENDPOINT=ftp://x\n")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("https://")));
}

}  // namespace
}  // namespace mastodon_restore
