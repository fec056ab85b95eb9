#include "agent/service/request_source.h"

#include "absl/strings/str_cat.h"
#include "agent/archive/path_rules.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {

namespace v1 = ::mastodon::restore::v1;

absl::StatusOr<SourceOptions> ResolveBackupSource(const v1::BackupSource& source,
                                                  const std::vector<std::string>& allowed_roots,
                                                  Env* env, std::string* path) {
  if (source.path().empty()) {
    return absl::InvalidArgumentError(
        "source.path is required (an absolute path on the agent host)");
  }
  ASSIGN_OR_RETURN(*path, ResolveAllowedPath(source.path(), allowed_roots));
  SourceOptions options;
  options.allowed_roots = allowed_roots;
  if (source.passphrase().has_value()) {
    options.passphrase = source.passphrase().value();
  } else if (source.passphrase().has_file()) {
    ASSIGN_OR_RETURN(std::string file,
                     ResolveAllowedPath(source.passphrase().file(), allowed_roots));
    ASSIGN_OR_RETURN(std::string secret, env->ReadFile(file));
    if (secret.size() > 4096) {
      return absl::InvalidArgumentError(
          absl::StrCat("password file '", source.passphrase().file(), "' is larger than 4 KiB"));
    }
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    options.passphrase = secret;
  }
  if (!source.age_identity_file().empty()) {
    ASSIGN_OR_RETURN(options.age_identity_file,
                     ResolveAllowedPath(source.age_identity_file(), allowed_roots));
  }
  if (!source.gpg_key_file().empty()) {
    ASSIGN_OR_RETURN(options.gpg_key_file,
                     ResolveAllowedPath(source.gpg_key_file(), allowed_roots));
  }
  return options;
}

}  // namespace mastodon_restore
