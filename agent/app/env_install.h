// Installing the backup's env file for the runtime (restore --restore-config)
// and telling which of Mastodon's secrets differ between the backup and the
// host.
#ifndef MR_AGENT_APP_ENV_INSTALL_H_
#define MR_AGENT_APP_ENV_INSTALL_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/app/runtime.h"
#include "agent/common/env.h"

namespace mastodon_restore {

// Keys the host owns: how this host's app reaches its database and Redis.
// An installed env file keeps the host's lines for them.
bool IsHostOwnedKey(absl::string_view key);

// The env file to write: `backup` without its host-owned lines, then the
// host-owned lines of `host` (when it has any) under a marker comment.
std::string MergeEnvFile(absl::string_view backup, absl::string_view host);

// Required secrets (SECRET_KEY_BASE, OTP_SECRET, VAPID_*, ACTIVE_RECORD_*)
// whose values differ between the two env files, or that only one has.
std::vector<std::string> DifferingSecrets(absl::string_view backup, absl::string_view host);

struct EnvInstallResult {
  std::string path;     // the runtime's env file
  std::string kept_as;  // the old one, renamed ("" when there was none)
};

// Writes MergeEnvFile(backup, current) to runtime.EnvFilePath() atomically
// (mode 0640, or the old file's mode; the old file's owner, else the
// media owner), keeping the old file as "<path>.before-restore-<tag>".
// FAILED_PRECONDITION for a runtime without an env file (embedded). The
// directory is usually the app user's: both files go through
// Env::WriteFileAtomic, so nothing planted there is written through, and an
// env file (or kept name) that is a symlink is FAILED_PRECONDITION with the
// env file unchanged.
//
// `journal` (may be null) is told, and must save durably, the temp files
// and the owner before anything is written (see EnvJournal): a crash leaves
// the env file old or new, and recovery removes the temp files.
struct EnvInstallJournal {
  std::string path;
  std::string temp_path;
  std::string kept_temp_path;
  std::optional<FileOwner> owner;
};
absl::StatusOr<EnvInstallResult> InstallEnvFile(
    const Runtime& runtime, absl::string_view backup, const std::string& tag, Env* env,
    const std::function<absl::Status(const EnvInstallJournal&)>& journal = nullptr);

}  // namespace mastodon_restore

#endif  // MR_AGENT_APP_ENV_INSTALL_H_
