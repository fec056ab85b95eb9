// Mastodon's env file (.env.production, or the snap's mastodon.conf), parsed
// with the dotenv rules Mastodon uses: KEY=VALUE lines, optional "export ",
// single quotes (literal), double quotes (escapes, may span lines), unquoted
// values ending at " #", comments and blank lines.
//
// Secret values never leave this module: EnvFileSummary carries key names,
// non-secret settings and, for secrets, presence and a short fingerprint.
#ifndef MR_AGENT_APP_ENV_FILE_H_
#define MR_AGENT_APP_ENV_FILE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "mastodon/restore/v1/backup.pb.h"

namespace mastodon_restore {

struct EnvEntry {
  std::string key;
  std::string value;
  int line = 0;
};

struct ParsedEnvFile {
  std::vector<EnvEntry> entries;      // in file order; a repeated key appears twice
  std::vector<std::string> warnings;  // "line N: ..."
  // Last value of `key`, or nullptr.
  const std::string* Find(absl::string_view key) const;
};

// Parses env-file text. Never fails: malformed lines become warnings.
ParsedEnvFile ParseEnvFile(absl::string_view text);

// Secrets Mastodon needs to survive a move (4.3+ adds the three
// ACTIVE_RECORD_ENCRYPTION_* keys).
const std::vector<std::string>& RequiredSecretKeys();

// True for keys whose values are secrets (the required ones, passwords,
// access keys, SMTP/S3/ES credentials, DATABASE_URL's password part).
bool IsSecretKey(absl::string_view key);

// First 8 hex digits of SHA-256 of `value`.
std::string SecretFingerprint(absl::string_view value);

// Removes the passwords of a postgres:// URL: the user info's
// ("postgres://u:pw@h/db" -> "postgres://u:***@h/db", a password holding
// '@' included) and those of query parameters (password=, sslpassword=).
std::string RedactUrlPassword(absl::string_view url);

// The API summary: key names, database and media settings (secrets
// removed), required secrets present/missing with fingerprints.
mastodon::restore::v1::EnvFileInfo SummarizeEnvFile(const ParsedEnvFile& env,
                                                    const std::string& path);

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_ENV_FILE_H_
