// Human-readable rendering of API messages for the CLI.
#ifndef MR_CLI_RENDER_H_
#define MR_CLI_RENDER_H_

#include <cstdint>
#include <string>

#include "mastodon/restore/v1/backup.pb.h"
#include "mastodon/restore/v1/dump.pb.h"
#include "mastodon/restore/v1/prechecks.pb.h"

namespace mastodon_restore {

// "1.5 GiB", "312 B".
std::string HumanBytes(int64_t bytes);

// A section of a dump: "bytes 0-1367" (end exclusive), or "from byte 1367"
// when its end is unknown (`end` < 0: only the head of the dump was read).
std::string ByteRange(int64_t begin, int64_t end);

// A multi-line description of a dump, each line indented by `indent`.
std::string RenderDumpInfo(const mastodon::restore::v1::DumpInfo& dump, const std::string& indent);

// The checks before the swap, one line each, labelled like the operation's
// fields: each unique index the dump's data violates with its duplicated
// keys, their row counts and ids, dependent statements not run, the rows a
// repair changed (the first 20), amcheck's verdict.
std::string RenderPreSwapChecks(const mastodon::restore::v1::PreSwapChecks& checks);

// A multi-line description of a backup's inventory.
std::string RenderManifest(const mastodon::restore::v1::BackupManifest& manifest);

}  // namespace mastodon_restore

#endif  // MR_CLI_RENDER_H_
