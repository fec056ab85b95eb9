// The secrets check (agent/app/secrets_check.h) on a real PostgreSQL 15
// database shaped like Mastodon's users table, holding two-factor secrets
// that Ruby's OpenSSL encrypted in Rails' and devise-two-factor's formats
// (tests/fixtures/rails_secrets.rb): the right env passes, a wrong or
// incomplete one is a mismatch that counts the users it would lock out.
#include "agent/app/secrets_check.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "agent/app/env_file.h"
#include "agent/database/pg_connection.h"
#include "tests/harness/rails_vectors.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
namespace v1 = ::mastodon::restore::v1;

constexpr char kPrimary[] = "p1mary-key-of-the-backup";
constexpr char kSalt[] = "salt-of-the-backup";
constexpr char kOtpSecret[] = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

std::string Env(const std::string& primary, const std::string& salt, const std::string& otp) {
  return absl::StrCat("LOCAL_DOMAIN=example.com\nACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=", primary,
                      "\nACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY=det\n"
                      "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=",
                      salt, "\nOTP_SECRET=", otp, "\n");
}

class SecretsCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pg = TestPostgres::Start();
    ASSERT_OK(pg);
    pg_ = std::move(*pg);
    ASSERT_OK(pg_->Exec("CREATE DATABASE app"));
    // Mastodon 4.3's users columns for two-factor login.
    ASSERT_OK(
        pg_->Exec("CREATE TABLE users (id bigint PRIMARY KEY, email varchar, "
                  "otp_required_for_login boolean DEFAULT false NOT NULL, otp_secret varchar, "
                  "encrypted_otp_secret varchar, encrypted_otp_secret_iv varchar, "
                  "encrypted_otp_secret_salt varchar)",
                  "app"));
  }

  // Users 1-3 with two-factor login, their secrets in otp_secret (Rails,
  // SHA-256 and SHA-1 derived); user 4 on the pre-4.3 columns; user 5
  // without two-factor login or secret.
  void LoadUsers() {
    for (int id : {1, 2}) {
      auto stored = RubyArEncrypt(kPrimary, kSalt, "JBSWY3DPEHPK3PXP");
      ASSERT_OK(stored);
      Insert(id, true, *stored);
    }
    auto sha1 = RubyArEncrypt(kPrimary, kSalt, "JBSWY3DPEHPK3PXP", "sha1");
    ASSERT_OK(sha1);
    Insert(3, true, *sha1);
    auto legacy = RubyLegacyEncrypt(kOtpSecret, "JBSWY3DPEHPK3PXP");
    ASSERT_OK(legacy);
    ASSERT_OK(pg_->Exec(absl::StrCat("INSERT INTO users VALUES (4, 'd@x', true, NULL, ",
                                     Literal(legacy->encrypted_otp_secret), ", ",
                                     Literal(legacy->encrypted_otp_secret_iv), ", ",
                                     Literal(legacy->encrypted_otp_secret_salt), ")"),
                        "app"));
    ASSERT_OK(pg_->Exec("INSERT INTO users (id, email) VALUES (5, 'e@x')", "app"));
  }
  void Insert(int id, bool two_factor, const std::string& stored) {
    ASSERT_OK(pg_->Exec(absl::StrCat("INSERT INTO users (id, email, otp_required_for_login, "
                                     "otp_secret) VALUES (",
                                     id, ", 'u", id, "@x', ", two_factor ? "true" : "false", ", ",
                                     Literal(stored), ")"),
                        "app"));
  }
  static std::string Literal(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
      if (c == '\'') out.push_back('\'');
      out.push_back(c);
    }
    return out + "'";
  }

  v1::SecretsCheck Check(const std::string* env_text, int limit = kDefaultSecretsSample) {
    LibpqConnector connector;
    auto session = connector.Connect(pg_->ConnInfo(), "app");
    EXPECT_OK(session);
    if (!session.ok()) return v1::SecretsCheck();
    const ParsedEnvFile env = ParseEnvFile(env_text == nullptr ? "" : *env_text);
    auto checked = CheckAppSecrets(session->get(), env_text == nullptr ? nullptr : &env,
                                   "the test's env", limit);
    EXPECT_OK(checked);
    return checked.ok() ? *checked : v1::SecretsCheck();
  }

  std::unique_ptr<TestPostgres> pg_;
};

TEST_F(SecretsCheckTest, TheBackupsEnvDecryptsEverySecret) {
  LoadUsers();
  const std::string env = Env(kPrimary, kSalt, kOtpSecret);
  v1::SecretsCheck c = Check(&env);
  EXPECT_TRUE(c.checked());
  EXPECT_FALSE(c.mismatch()) << c.summary();
  ASSERT_EQ(c.columns_size(), 2);
  EXPECT_EQ(c.columns(0).column(), "users.otp_secret");
  EXPECT_EQ(c.columns(0).rows(), 3);
  EXPECT_EQ(c.columns(0).decrypted(), 3);
  EXPECT_THAT(c.columns(0).keys_used(),
              ElementsAre("ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY (PBKDF2-SHA1)",
                          "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY (PBKDF2-SHA256)"));
  EXPECT_EQ(c.columns(1).column(), "users.encrypted_otp_secret");
  EXPECT_EQ(c.columns(1).decrypted(), 1);
  EXPECT_EQ(c.two_factor_users(), 4);
  EXPECT_EQ(c.two_factor_users_sampled(), 4);
  EXPECT_EQ(c.two_factor_users_broken(), 0);
  EXPECT_EQ(c.summary(),
            "users.otp_secret: 3 of 3 decrypt; users.encrypted_otp_secret: 1 of 1 decrypt (the "
            "test's env)");
  // Neither keys nor values in what the check returns.
  EXPECT_THAT(c.DebugString(), Not(HasSubstr(kPrimary)));
  EXPECT_THAT(c.DebugString(), Not(HasSubstr("JBSWY3DPEHPK3PXP")));
}

TEST_F(SecretsCheckTest, AnotherHostsKeysAreAMismatchCountingTheUsersLockedOut) {
  LoadUsers();
  const std::string env = Env("the-host-primary-key", "the-host-salt", "the-host-otp-secret");
  v1::SecretsCheck c = Check(&env);
  EXPECT_TRUE(c.mismatch());
  EXPECT_EQ(c.columns(0).failed(), 3);
  EXPECT_EQ(c.columns(0).malformed(), 0);
  EXPECT_THAT(c.columns(0).keys_used(), IsEmpty());
  EXPECT_EQ(c.columns(1).failed(), 1);
  EXPECT_EQ(c.two_factor_users_broken(), 4);
  EXPECT_THAT(c.summary(), HasSubstr("users.otp_secret: 0 of 3 decrypt"));
  EXPECT_THAT(c.summary(),
              HasSubstr("4 of 4 users with two-factor login tried would be locked out"));
  // Only the old OTP_SECRET wrong: one user.
  const std::string otp_only = Env(kPrimary, kSalt, "the-host-otp-secret");
  c = Check(&otp_only);
  EXPECT_TRUE(c.mismatch());
  EXPECT_EQ(c.two_factor_users_broken(), 1);
}

TEST_F(SecretsCheckTest, KeysMissingFromTheEnvAreAMismatchWhenDataNeedsThem) {
  LoadUsers();
  const std::string env = "LOCAL_DOMAIN=example.com\nOTP_SECRET=x\n";
  v1::SecretsCheck c = Check(&env);
  EXPECT_TRUE(c.mismatch());
  EXPECT_THAT(c.missing_keys(), ElementsAre("ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY",
                                            "ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY",
                                            "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT"));
  EXPECT_THAT(c.summary(), HasSubstr("the env lacks ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"));
  // Without any env file there is nothing to check with: reported, not a
  // mismatch.
  c = Check(nullptr);
  EXPECT_FALSE(c.checked());
  EXPECT_FALSE(c.mismatch());
  EXPECT_EQ(c.columns_size(), 2);
  EXPECT_THAT(c.summary(), HasSubstr("4 encrypted two-factor secrets, and no env file"));
}

TEST_F(SecretsCheckTest, NoSecretsOrNoUsersTableIsNothingToCheck) {
  const std::string env = "LOCAL_DOMAIN=example.com\n";
  v1::SecretsCheck c = Check(&env);
  EXPECT_FALSE(c.mismatch());
  EXPECT_THAT(c.summary(), HasSubstr("nothing to check"));
  ASSERT_OK(pg_->Exec("DROP TABLE users", "app"));
  c = Check(&env);
  EXPECT_FALSE(c.mismatch());
  EXPECT_EQ(c.summary(), "no users table: nothing encrypted to check");
  // A view (or a table with row-level security) of a hostile dump is not
  // read: it would run the dump's functions as the agent's role.
  ASSERT_OK(
      pg_->Exec("CREATE FUNCTION boom() RETURNS varchar LANGUAGE sql AS $$SELECT (1/0)::varchar$$; "
                "CREATE VIEW users AS SELECT 1::bigint AS id, boom() AS otp_secret",
                "app"));
  c = Check(&env);
  EXPECT_EQ(c.summary(), "no users table: nothing encrypted to check");
}

TEST_F(SecretsCheckTest, AMalformedValueAndTheSampleLimit) {
  LoadUsers();
  ASSERT_OK(
      pg_->Exec("INSERT INTO users (id, email, otp_secret) VALUES (6, 'f@x', 'plain')", "app"));
  const std::string env = Env(kPrimary, kSalt, kOtpSecret);
  v1::SecretsCheck c = Check(&env);
  EXPECT_TRUE(c.mismatch());
  EXPECT_EQ(c.columns(0).malformed(), 1);
  // User 6 has no two-factor login: nobody is locked out.
  EXPECT_EQ(c.two_factor_users_broken(), 0);
  // Two values tried: the users with two-factor login come first.
  c = Check(&env, 2);
  EXPECT_FALSE(c.mismatch());
  EXPECT_EQ(c.columns(0).sampled(), 2);
  EXPECT_THAT(c.summary(), HasSubstr("(4 rows, the first tried)"));
}

}  // namespace
}  // namespace testing
}  // namespace mastodon_restore
