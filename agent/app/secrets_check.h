// The secrets coherence check: does the env file the restored app will run
// with decrypt the database's encrypted columns? A wrong or missing
// ACTIVE_RECORD_ENCRYPTION_* or OTP_SECRET does not stop Mastodon from
// starting with a restored database; it locks every user with two-factor
// login out (mastodon#32375, #32443). The restore runs this on the staging
// database before the swap, verify on the database it checks.
//
// The columns: users.otp_secret (Active Record encryption, 4.3+) and the
// pre-4.3 users.encrypted_otp_secret (+ _iv, _salt) where otp_secret is
// not set (the app reads the old one only then). Every row up to
// `sample_limit` is tried, users with two-factor login first
// (rails_secrets.h has the formats). Keys and values never leave the
// check: the result holds counts and key names only.
#ifndef MR_AGENT_APP_SECRETS_CHECK_H_
#define MR_AGENT_APP_SECRETS_CHECK_H_

#include <string>

#include "absl/status/statusor.h"
#include "agent/app/env_file.h"
#include "agent/database/pg_session.h"
#include "mastodon/restore/v1/operation.pb.h"

namespace mastodon_restore {

inline constexpr int kDefaultSecretsSample = 1000;

// Checks `db` (a Mastodon database) against `env` (null: no env file, the
// result is not `checked` and never a mismatch), described as `env_source`
// in the result. A mismatch: a tried value no key decrypts, or encrypted
// data whose keys the env lacks (missing_keys). A query error is returned
// as is.
absl::StatusOr<mastodon::restore::v1::SecretsCheck> CheckAppSecrets(
    PgSession* db, const ParsedEnvFile* env, const std::string& env_source,
    int sample_limit = kDefaultSecretsSample);

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_SECRETS_CHECK_H_
