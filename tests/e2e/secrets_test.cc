// End-to-end: the secrets check before the swap, through the real agent and
// CLI on a snap host (recording fakes) with a real PostgreSQL 15. The
// backup's database holds two-factor secrets Ruby's OpenSSL encrypted in
// Rails' format with the backup's keys (tests/fixtures/rails_secrets.rb);
// the host's mastodon.conf has other keys. The restore is refused with the
// live database untouched, goes through with --accept-secret-mismatch (a
// warning) or with the backup's env (--restore-config); verify-backup fails
// the backup whose own env cannot decrypt its database.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/common/subprocess.h"
#include "cli/exit_codes.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/fake_host.h"
#include "tests/harness/rails_vectors.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kBackupPrimary[] = "backup-primary-key-0123456789abcdef";
constexpr char kBackupSalt[] = "backup-salt-0123456789abcdef";

std::string EnvFile(const std::string& primary, const std::string& salt) {
  return absl::StrCat("LOCAL_DOMAIN=snap.example\nSECRET_KEY_BASE=s\nOTP_SECRET=o\n",
                      "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=", primary,
                      "\nACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY=d\n",
                      "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=", salt, "\n");
}

class SecretsCliTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    StartPostgres();
    CreateSnapHost();
  }

  // A backup directory: database.sql (pg_dump of a users table whose three
  // users have two-factor secrets encrypted with the backup's keys) and
  // the env file `env`.
  std::string MakeBackup(const std::string& name, const std::string& env) {
    const std::string db = "src_" + name;
    EXPECT_OK(pg_->Exec("CREATE DATABASE " + db));
    EXPECT_OK(pg_->Exec(
        "CREATE TABLE users (id bigint PRIMARY KEY, otp_required_for_login boolean DEFAULT "
        "false NOT NULL, otp_secret varchar); CREATE TABLE schema_migrations (version varchar "
        "PRIMARY KEY); INSERT INTO schema_migrations VALUES ('20240808124338')",
        db));
    for (int id = 1; id <= 3; ++id) {
      auto stored = testing::RubyArEncrypt(kBackupPrimary, kBackupSalt, "JBSWY3DPEHPK3PXP");
      EXPECT_OK(stored);
      if (!stored.ok()) return "";
      EXPECT_OK(pg_->Exec(
          absl::StrCat("INSERT INTO users VALUES (", id, ", true, $$", *stored, "$$)"), db));
    }
    const std::string dir = dir_ + "/backups/" + name;
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/.env.production") << env;
    CommandSpec spec;
    spec.argv = {pg_->bin_dir() + "/pg_dump", "--no-owner", "--no-privileges", "-f",
                 dir + "/database.sql",       "-d",         pg_->ConnInfo(db)};
    spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    if (r.ok()) {
      EXPECT_EQ(r->exit_code, 0) << r->stderr_text;
    }
    return dir;
  }

  void StartSnapAgent() {
    HostLayout layout = host_->Layout();
    std::filesystem::create_directories(host_->dir() + "/common");
    // The host's own keys: not the backup's.
    std::ofstream(host_->dir() + "/common/mastodon.conf")
        << EnvFile("the-host-primary-key", "the-host-salt") << "DB_HOST=/tmp/sockets\n";
    StartAgent({"--runtime", "snap", "--snap-bin-dir", layout.snap_bin_dir, "--snap-app-dir",
                layout.snap_app_dir, "--snap-common-dir", host_->dir() + "/common",
                "--snap-postgres", pg_->ConnInfo(""), "--host-path", layout.host_path,
                "--allowed-root", dir_});
  }

  std::string Staging() {
    auto n = pg_->QueryValue(
        "SELECT count(*) FROM pg_database WHERE datname LIKE 'mastodon__restore_%'");
    return n.ok() ? *n : "?";
  }
};

TEST_F(SecretsCliTest, TheHostsKeysAreRefusedAcceptedOnRequestAndTheBackupsPass) {
  const std::string backup = MakeBackup("good", EnvFile(kBackupPrimary, kBackupSalt));
  ASSERT_FALSE(backup.empty());
  // The live database.
  ASSERT_OK(pg_->Exec("CREATE DATABASE mastodon OWNER mastodon"));
  ASSERT_OK(pg_->Exec("CREATE TABLE live_marker (x int)", "mastodon"));
  StartSnapAgent();

  // The host's env cannot decrypt the backup's secrets: refused before the
  // swap, the live database untouched, the staging one gone.
  CommandResult r = CliOnSocket({"--timeout", "120s", "restore", "--db-only", backup});
  EXPECT_EQ(r.exit_code, kExitPrecondition) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text,
              HasSubstr("secrets check  MISMATCH: users.otp_secret: 0 of 3 decrypt"));
  EXPECT_THAT(r.stdout_text + r.stderr_text, HasSubstr("--accept-secret-mismatch"));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("3 of 3 users with two-factor login tried would be locked out (the "
                        "host's env file " +
                        host_->dir() + "/common/mastodon.conf)"));
  EXPECT_THAT(r.stdout_text + r.stderr_text, Not(HasSubstr(kBackupPrimary)));
  EXPECT_THAT(r.stdout_text + r.stderr_text, Not(HasSubstr("the-host-primary-key")));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM pg_tables WHERE tablename = 'live_marker'",
                             "mastodon"),
            "1");
  EXPECT_EQ(Staging(), "0");

  // Accepted: swapped in, with a warning in the report.
  r = CliOnSocket(
      {"--timeout", "120s", "restore", "--db-only", "--accept-secret-mismatch", backup});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("secrets check  MISMATCH (accepted): "));
  EXPECT_THAT(r.stdout_text,
              HasSubstr("warning        secrets mismatch accepted (--accept-secret-mismatch)"));
  EXPECT_EQ(*pg_->QueryValue("SELECT count(*) FROM users", "mastodon"), "3");

  // With the backup's env installed (--restore-config), the keys match.
  r = CliOnSocket({"--timeout", "120s", "restore", "--db-only", "--restore-config", backup});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text,
              HasSubstr("secrets check  ok: users.otp_secret: 3 of 3 decrypt (the backup's env "
                        "file, installed by --restore-config)"));
  EXPECT_THAT(ReadFileOrEmpty(host_->dir() + "/common/mastodon.conf"), HasSubstr(kBackupSalt));
}

TEST_F(SecretsCliTest, VerifyBackupFailsABackupWhoseEnvCannotDecryptItsDatabase) {
  const std::string good = MakeBackup("good", EnvFile(kBackupPrimary, kBackupSalt));
  const std::string bad = MakeBackup("bad", EnvFile("a-rotated-primary-key", kBackupSalt));
  ASSERT_FALSE(bad.empty());
  StartAgent({"--allowed-root", dir_, "--target-conninfo", pg_->ConnInfo()});

  CommandResult r = CliOnSocket({"--timeout", "120s", "verify-backup", good});
  EXPECT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("backup OK"));

  const std::string junit = dir_ + "/report.xml";
  r = CliOnSocket({"--timeout", "120s", "verify-backup", "--junit", junit, bad});
  EXPECT_NE(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("backup FAILED"));
  EXPECT_THAT(r.stdout_text, HasSubstr("FAIL secrets: users.otp_secret: 0 of 3 decrypt"));
  const std::string xml = ReadFileOrEmpty(junit);
  EXPECT_THAT(xml, HasSubstr("name=\"secrets\""));
  EXPECT_THAT(xml, HasSubstr("users.otp_secret: 0 of 3 decrypt"));
  // The scratch databases are gone.
  EXPECT_EQ(
      *pg_->QueryValue("SELECT count(*) FROM pg_database WHERE datname LIKE 'mastodon_verify_%'"),
      "0");
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
