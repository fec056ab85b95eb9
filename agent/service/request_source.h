// A request's backup source, checked against the agent's allowed roots: the
// path, and the secrets it names (a passphrase by value or in a file, an age
// identity, a gpg key), each file inside the roots too.
#ifndef MR_AGENT_SERVICE_REQUEST_SOURCE_H_
#define MR_AGENT_SERVICE_REQUEST_SOURCE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/archive/source_walker.h"
#include "agent/common/env.h"
#include "mastodon/restore/v1/restore.pb.h"

namespace mastodon_restore {

// Fills `path` with the resolved source path and returns its options
// (allowed roots, secrets). INVALID_ARGUMENT without a path or for a password
// file over 4 KiB; PERMISSION_DENIED for a path outside `allowed_roots`.
absl::StatusOr<SourceOptions> ResolveBackupSource(const mastodon::restore::v1::BackupSource& source,
                                                  const std::vector<std::string>& allowed_roots,
                                                  Env* env, std::string* path);

}  // namespace mastodon_restore

#endif  // MR_AGENT_SERVICE_REQUEST_SOURCE_H_
