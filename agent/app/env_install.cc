#include "agent/app/env_install.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/app/env_file.h"
#include "agent/common/errors.h"
#include "agent/common/failpoint.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

// The key a line assigns ("" for comments, blanks and continuations).
std::string KeyOfLine(absl::string_view line) {
  absl::string_view s = absl::StripLeadingAsciiWhitespace(line);
  absl::ConsumePrefix(&s, "export ");
  size_t eq = s.find('=');
  if (eq == absl::string_view::npos || eq == 0) return "";
  absl::string_view key = absl::StripTrailingAsciiWhitespace(s.substr(0, eq));
  for (char c : key) {
    if (!absl::ascii_isalnum(c) && c != '_') return "";
  }
  return std::string(key);
}

}  // namespace

bool IsHostOwnedKey(absl::string_view key) {
  static const std::set<std::string, std::less<>> kKeys = {
      "DB_HOST",   "DB_PORT",    "DB_NAME",      "DB_USER",
      "DB_PASS",   "DB_SSLMODE", "DATABASE_URL", "PREPARED_STATEMENTS",
      "REDIS_URL", "REDIS_HOST", "REDIS_PORT",   "REDIS_PASSWORD"};
  return kKeys.count(key) > 0;
}

std::string MergeEnvFile(absl::string_view backup, absl::string_view host) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(backup, '\n')) {
    if (IsHostOwnedKey(KeyOfLine(line))) continue;
    absl::StrAppend(&out, line, "\n");
  }
  while (absl::EndsWith(out, "\n\n")) out.pop_back();
  std::string kept;
  for (absl::string_view line : absl::StrSplit(host, '\n')) {
    if (IsHostOwnedKey(KeyOfLine(line))) absl::StrAppend(&kept, line, "\n");
  }
  if (!kept.empty()) {
    absl::StrAppend(&out, "\n# Kept from this host by mastodon-restore (database and Redis)\n",
                    kept);
  }
  return out;
}

std::vector<std::string> DifferingSecrets(absl::string_view backup, absl::string_view host) {
  ParsedEnvFile b = ParseEnvFile(backup);
  ParsedEnvFile h = ParseEnvFile(host);
  std::vector<std::string> differing;
  for (const std::string& key : RequiredSecretKeys()) {
    const std::string* bv = b.Find(key);
    const std::string* hv = h.Find(key);
    const bool b_set = bv != nullptr && !bv->empty();
    const bool h_set = hv != nullptr && !hv->empty();
    if (b_set != h_set || (b_set && *bv != *hv)) differing.push_back(key);
  }
  return differing;
}

absl::StatusOr<EnvInstallResult> InstallEnvFile(
    const Runtime& runtime, absl::string_view backup, const std::string& tag, Env* env,
    const std::function<absl::Status(const EnvInstallJournal&)>& journal) {
  EnvInstallResult result;
  result.path = runtime.EnvFilePath();
  if (result.path.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the ", runtime.name(), " runtime has no env file to install the backup's into"));
  }
  const size_t slash = result.path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : result.path.substr(0, slash);
  const std::string name = slash == std::string::npos ? result.path : result.path.substr(slash + 1);
  std::string current;
  std::optional<FileOwner> owner;
  const bool exists = env->Exists(result.path);
  if (exists) {
    ASSIGN_OR_RETURN(current, env->ReadFile(result.path));
    ASSIGN_OR_RETURN(owner, env->OwnerOf(result.path));
    result.kept_as = absl::StrCat(result.path, ".before-restore-", tag);
  } else {
    auto media = runtime.Media();
    if (media.ok() && media->uid.has_value())
      owner = FileOwner{*media->uid, media->gid.value_or(0)};
  }
  // The temp files, named before anything is written.
  EnvInstallJournal j;
  j.path = result.path;
  j.owner = owner;
  ASSIGN_OR_RETURN(std::string temp, UnpredictableTempName(name));
  j.temp_path = absl::StrCat(dir, "/", temp);
  std::string kept_temp;
  if (exists) {
    ASSIGN_OR_RETURN(kept_temp,
                     UnpredictableTempName(result.kept_as.substr(result.kept_as.rfind('/') + 1)));
    j.kept_temp_path = absl::StrCat(dir, "/", kept_temp);
  }
  if (journal) RETURN_IF_ERROR(journal(j));
  RETURN_IF_ERROR(MR_FAILPOINT("env.before_keep"));
  if (exists) RETURN_IF_ERROR(env->WriteFileAtomicVia(result.kept_as, kept_temp, current, 0600));
  RETURN_IF_ERROR(MR_FAILPOINT("env.before_write"));
  RETURN_IF_ERROR(env->WriteFileAtomicVia(result.path, temp, MergeEnvFile(backup, current), 0640));
  RETURN_IF_ERROR(MR_FAILPOINT("env.after_rename"));
  if (owner.has_value()) RETURN_IF_ERROR(env->SetOwner(result.path, owner->uid, owner->gid));
  return result;
}

}  // namespace mastodon_restore
