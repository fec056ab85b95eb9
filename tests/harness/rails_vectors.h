// Reference values for the secrets check, made at test time by Ruby's
// OpenSSL binding (tests/fixtures/rails_secrets.rb), independently of the
// agent's C++: Active Record encryption's stored JSON and devise-two-factor
// < 5's encrypted_otp_secret trio. Keys go to the script on stdin.
#ifndef MR_TESTS_HARNESS_RAILS_VECTORS_H_
#define MR_TESTS_HARNESS_RAILS_VECTORS_H_

#include <string>

#include "absl/status/statusor.h"

namespace mastodon_restore {
namespace testing {

// The stored column value Rails writes for `plaintext` under `key` and
// `salt` (`digest` "sha256" or "sha1"; `deterministic`: the deterministic
// IV).
absl::StatusOr<std::string> RubyArEncrypt(const std::string& key, const std::string& salt,
                                          const std::string& plaintext,
                                          const std::string& digest = "sha256",
                                          bool deterministic = false);

// What Rails' algorithm decrypts `stored` to; NOT_FOUND with Ruby's error
// class when it does not.
absl::StatusOr<std::string> RubyArDecrypt(const std::string& key, const std::string& salt,
                                          const std::string& stored,
                                          const std::string& digest = "sha256");

struct LegacyOtpVector {
  std::string encrypted_otp_secret;
  std::string encrypted_otp_secret_iv;
  std::string encrypted_otp_secret_salt;
};

// attr_encrypted's columns for `plaintext` under OTP_SECRET `otp_secret`.
absl::StatusOr<LegacyOtpVector> RubyLegacyEncrypt(const std::string& otp_secret,
                                                  const std::string& plaintext);

}  // namespace testing
}  // namespace mastodon_restore

#endif  // MR_TESTS_HARNESS_RAILS_VECTORS_H_
