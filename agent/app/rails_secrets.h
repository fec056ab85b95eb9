// Mastodon's encrypted columns, decrypted with the keys of an env file, to
// tell whether that env is the one the data was encrypted with. Two schemes:
//
//  * Active Record encryption (Rails 7.1+, Mastodon 4.3+: users.otp_secret).
//    The column holds JSON {"p": base64 ciphertext, "h": {"iv": base64,
//    "at": base64 tag, ...}}; AES-256-GCM with an empty AAD under a key
//    PBKDF2-HMAC(ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY,
//    ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT, 2^16 iterations, 32
//    bytes) (ActiveRecord::Encryption::KeyGenerator over
//    ActiveSupport::KeyGenerator). Mastodon loads Rails 7.1's defaults
//    (hash_digest_class SHA-256) and sets
//    support_sha1_for_non_deterministic_encryption, so a SHA-1 derived key
//    decrypts too; deterministic columns use
//    ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY the same way (SHA-256).
//  * devise-two-factor before 5 (Mastodon before 4.3): attr_encrypted's
//    per-attribute IV and salt, users.encrypted_otp_secret (base64 of
//    ciphertext || 16-byte tag), encrypted_otp_secret_iv (base64, 12 bytes)
//    and encrypted_otp_secret_salt ("_" + base64); AES-256-GCM under
//    PBKDF2-HMAC-SHA1(OTP_SECRET, salt, 2000 iterations, 32 bytes), decoded
//    as Mastodon's config/initializers/legacy_otp_secret.rb does.
//
// Only whether a value authenticates is returned: decrypted bytes are
// wiped before the functions return, and no key or value is ever part of a
// message.
#ifndef MR_AGENT_APP_RAILS_SECRETS_H_
#define MR_AGENT_APP_RAILS_SECRETS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/app/env_file.h"

namespace mastodon_restore {

// The env keys the schemes read.
inline constexpr char kArPrimaryKey[] = "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY";
inline constexpr char kArDeterministicKey[] = "ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY";
inline constexpr char kArSalt[] = "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT";
inline constexpr char kOtpSecret[] = "OTP_SECRET";

enum class PbkdfDigest { kSha1, kSha256 };

// PBKDF2-HMAC (OpenSSL's PKCS5_PBKDF2_HMAC) of `length` bytes.
std::string Pbkdf2(absl::string_view password, absl::string_view salt, int iterations, int length,
                   PbkdfDigest digest);

// Ruby's Base64.decode64 (unpack "m"): characters outside the base64
// alphabet are skipped, decoding stops at padding.
std::string LenientBase64Decode(absl::string_view text);

// True when AES-256-GCM under `key` (32 bytes) with `iv` and an empty AAD
// authenticates `ciphertext` with `tag` (16 bytes); the plaintext is wiped.
bool AesGcmAuthenticates(absl::string_view key, absl::string_view iv, absl::string_view ciphertext,
                         absl::string_view tag);

// A column value in Active Record encryption's format, decoded.
struct RailsMessage {
  std::string payload;
  std::string iv;
  std::string auth_tag;
};

// INVALID_ARGUMENT unless `stored` is Rails' JSON message with a base64
// payload, iv and 16-byte auth tag.
absl::StatusOr<RailsMessage> ParseRailsMessage(absl::string_view stored);

// The Active Record keys an env file gives, derived once (2^16 PBKDF2
// iterations each): every candidate the app would try.
class ActiveRecordKeyring {
 public:
  // From the env's ACTIVE_RECORD_ENCRYPTION_* values: the primary key with
  // SHA-256 then SHA-1, the deterministic key with SHA-256. A primary key
  // holding commas is tried whole and then part by part (a list of keys,
  // newest first). Empty when the salt or both keys are missing.
  static ActiveRecordKeyring FromEnv(const ParsedEnvFile& env);
  // The same from the values themselves (tests).
  static ActiveRecordKeyring FromValues(absl::string_view primary_key,
                                        absl::string_view deterministic_key,
                                        absl::string_view salt);

  bool empty() const { return keys_.empty(); }
  // Which key decrypts `stored`: its label (e.g.
  // "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY (PBKDF2-SHA256)"). NOT_FOUND when
  // none does, INVALID_ARGUMENT when `stored` is not a Rails message.
  absl::StatusOr<std::string> Decrypts(absl::string_view stored) const;

 private:
  struct Key {
    std::string label;
    std::string secret;  // 32 bytes
  };
  std::vector<Key> keys_;
};

// A users row's pre-4.3 two-factor secret, as stored.
struct LegacyOtpSecret {
  std::string encrypted;  // encrypted_otp_secret
  std::string iv;         // encrypted_otp_secret_iv
  std::string salt;       // encrypted_otp_secret_salt
};

// OK when `otp_secret` (the env's OTP_SECRET) decrypts `value`; NOT_FOUND
// when it does not, INVALID_ARGUMENT when the stored parts are malformed
// (no 12-byte IV, no salt, ciphertext shorter than its tag).
absl::Status DecryptsLegacyOtpSecret(absl::string_view otp_secret, const LegacyOtpSecret& value);

// Encrypts `plaintext` as Active Record encryption stores it (random IV,
// the primary key derived with `digest`), for round trips in tests and
// tools; a Ruby program decrypts it with ActiveRecord's algorithm.
absl::StatusOr<std::string> EncryptForActiveRecord(absl::string_view primary_key,
                                                   absl::string_view salt,
                                                   absl::string_view plaintext,
                                                   PbkdfDigest digest = PbkdfDigest::kSha256);

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_RAILS_SECRETS_H_
