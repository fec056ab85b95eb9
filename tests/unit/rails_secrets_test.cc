// The crypto of the secrets check (agent/app/rails_secrets.h) against
// values Ruby's OpenSSL binding makes at test time in Rails' and
// devise-two-factor's formats (tests/fixtures/rails_secrets.rb), both ways.
#include "agent/app/rails_secrets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/escaping.h"
#include "tests/harness/rails_vectors.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace {

using ::testing::HasSubstr;
using testing::IsOkAndHolds;
using testing::RubyArDecrypt;
using testing::RubyArEncrypt;
using testing::RubyLegacyEncrypt;
using testing::StatusIs;

constexpr char kPrimary[] = "EfN5p1Gf5cGBjG6TnCHQyL8mBGTn5Ysq";
constexpr char kDeterministic[] = "kLq8xRvYd0mHEJpNfu9m7ztW0TZcQa1s";
constexpr char kSalt[] = "mP3aR0tQk5nYe9bCwV7sLzX2hJ4dF6gU";
constexpr char kOtp[] = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

TEST(Pbkdf2Test, MatchesRfc6070AndRfc7914Vectors) {
  // RFC 6070 (HMAC-SHA1), 2 iterations; RFC 7914 section 11 (HMAC-SHA256).
  EXPECT_EQ(absl::BytesToHexString(Pbkdf2("password", "salt", 2, 20, PbkdfDigest::kSha1)),
            "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957");
  EXPECT_EQ(absl::BytesToHexString(Pbkdf2("passwd", "salt", 1, 64, PbkdfDigest::kSha256)),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
            "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
}

TEST(LenientBase64Test, DecodesAsRubysDecode64) {
  EXPECT_EQ(LenientBase64Decode("aGVsbG8=\n"), "hello");
  // attr_encrypted's salt prefix and line breaks are skipped.
  EXPECT_EQ(LenientBase64Decode("_aGVs\nbG8="), "hello");
  EXPECT_EQ(LenientBase64Decode("aGVsbG8"), "hello");
  EXPECT_EQ(LenientBase64Decode(""), "");
}

TEST(ParseRailsMessageTest, RejectsWhatIsNotRailsFormat) {
  EXPECT_THAT(ParseRailsMessage("JBSWY3DPEHPK3PXP"), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(ParseRailsMessage("{\"h\":{\"iv\":\"AAAA\",\"at\":\"AAAA\"}}"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("payload")));
  EXPECT_THAT(ParseRailsMessage("{\"p\":\"AAAA\",\"h\":{\"iv\":\"AAAA\"}}"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("auth tag")));
  // A truncated tag is refused (Rails refuses it too).
  EXPECT_THAT(
      ParseRailsMessage("{\"p\":\"AAAA\",\"h\":{\"iv\":\"AAAAAAAAAAAAAAAA\",\"at\":\"AAAA\"}}"),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("16 bytes")));
  EXPECT_THAT(ParseRailsMessage("{\"p\":\"not base64!\",\"h\":{\"iv\":\"AAAA\",\"at\":\"AAAA\"}}"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ActiveRecordKeyringTest, DecryptsRubysValuesWithTheRightKeysOnly) {
  auto stored = RubyArEncrypt(kPrimary, kSalt, kOtp);
  ASSERT_OK(stored);
  ASSERT_OK(ParseRailsMessage(*stored));
  const auto ring = ActiveRecordKeyring::FromValues(kPrimary, kDeterministic, kSalt);
  EXPECT_THAT(ring.Decrypts(*stored),
              IsOkAndHolds("ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY (PBKDF2-SHA256)"));
  // Another primary key, another salt: refused.
  EXPECT_THAT(
      ActiveRecordKeyring::FromValues("another key", kDeterministic, kSalt).Decrypts(*stored),
      StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(
      ActiveRecordKeyring::FromValues(kPrimary, kDeterministic, "another salt").Decrypts(*stored),
      StatusIs(absl::StatusCode::kNotFound));
  // No salt: no keys at all.
  EXPECT_TRUE(ActiveRecordKeyring::FromValues(kPrimary, kDeterministic, "").empty());
  // A flipped bit of the ciphertext fails authentication.
  std::string tampered = *stored;
  const size_t p = tampered.find("\"p\":\"") + 5;
  tampered[p] = tampered[p] == 'A' ? 'B' : 'A';
  EXPECT_THAT(ring.Decrypts(tampered), StatusIs(absl::StatusCode::kNotFound));
}

TEST(ActiveRecordKeyringTest, Sha1DerivedAndDeterministicValuesDecryptAsMastodonConfiguresRails) {
  // support_sha1_for_non_deterministic_encryption: values from before
  // Rails 7.1's SHA-256 default.
  auto sha1 = RubyArEncrypt(kPrimary, kSalt, kOtp, "sha1");
  ASSERT_OK(sha1);
  const auto ring = ActiveRecordKeyring::FromValues(kPrimary, kDeterministic, kSalt);
  EXPECT_THAT(ring.Decrypts(*sha1),
              IsOkAndHolds("ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY (PBKDF2-SHA1)"));
  auto det = RubyArEncrypt(kDeterministic, kSalt, "alice@example.com", "sha256", true);
  ASSERT_OK(det);
  EXPECT_THAT(ring.Decrypts(*det),
              IsOkAndHolds("ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY (PBKDF2-SHA256)"));
  // A long value is deflated before encryption (header "c"): still
  // authenticated.
  auto long_value = RubyArEncrypt(kPrimary, kSalt, std::string(600, 'x'));
  ASSERT_OK(long_value);
  EXPECT_THAT(*long_value, HasSubstr("\"c\":true"));
  EXPECT_OK(ring.Decrypts(*long_value));
}

TEST(ActiveRecordKeyringTest, APrimaryKeyListIsTriedWholeAndPartByPart) {
  auto old_key = RubyArEncrypt("old-key", kSalt, kOtp);
  ASSERT_OK(old_key);
  const auto ring = ActiveRecordKeyring::FromValues("new-key, old-key", "", kSalt);
  EXPECT_THAT(ring.Decrypts(*old_key),
              IsOkAndHolds("ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY part 2 (PBKDF2-SHA256)"));
}

TEST(EncryptForActiveRecordTest, RubyDecryptsWhatTheAgentEncrypts) {
  auto stored = EncryptForActiveRecord(kPrimary, kSalt, kOtp);
  ASSERT_OK(stored);
  EXPECT_THAT(RubyArDecrypt(kPrimary, kSalt, *stored), IsOkAndHolds(std::string(kOtp)));
  EXPECT_THAT(RubyArDecrypt("another key", kSalt, *stored),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("CipherError")));
  auto sha1 = EncryptForActiveRecord(kPrimary, kSalt, kOtp, PbkdfDigest::kSha1);
  ASSERT_OK(sha1);
  EXPECT_THAT(RubyArDecrypt(kPrimary, kSalt, *sha1, "sha1"), IsOkAndHolds(std::string(kOtp)));
  // And the agent's own check agrees.
  EXPECT_OK(ActiveRecordKeyring::FromValues(kPrimary, "", kSalt).Decrypts(*stored));
}

TEST(LegacyOtpSecretTest, DecryptsDeviseTwoFactorValuesWithTheRightOtpSecretOnly) {
  const std::string otp_secret(128, 'a');
  auto v = RubyLegacyEncrypt(otp_secret, kOtp);
  ASSERT_OK(v);
  ASSERT_THAT(v->encrypted_otp_secret_salt, ::testing::StartsWith("_"));
  LegacyOtpSecret value{v->encrypted_otp_secret, v->encrypted_otp_secret_iv,
                        v->encrypted_otp_secret_salt};
  EXPECT_OK(DecryptsLegacyOtpSecret(otp_secret, value));
  EXPECT_THAT(DecryptsLegacyOtpSecret(std::string(128, 'b'), value),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(DecryptsLegacyOtpSecret("", value), StatusIs(absl::StatusCode::kNotFound));
  LegacyOtpSecret no_iv = value;
  no_iv.iv.clear();
  EXPECT_THAT(DecryptsLegacyOtpSecret(otp_secret, no_iv),
              StatusIs(absl::StatusCode::kInvalidArgument));
  LegacyOtpSecret short_value = value;
  short_value.encrypted = "AAAA";
  EXPECT_THAT(DecryptsLegacyOtpSecret(otp_secret, short_value),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace mastodon_restore
