// Human-readable rendering of API messages for the CLI.
#ifndef MR_CLI_RENDER_H_
#define MR_CLI_RENDER_H_

#include <cstdint>
#include <string>

#include "mastodon/restore/v1/backup.pb.h"
#include "mastodon/restore/v1/dump.pb.h"

namespace mastodon_restore {

// "1.5 GiB", "312 B".
std::string HumanBytes(int64_t bytes);

// A section of a dump: "bytes 0-1367" (end exclusive), or "from byte 1367"
// when its end is unknown (`end` < 0: only the head of the dump was read).
std::string ByteRange(int64_t begin, int64_t end);

// A multi-line description of a dump, each line indented by `indent`.
std::string RenderDumpInfo(const mastodon::restore::v1::DumpInfo& dump, const std::string& indent);

// A multi-line description of a backup's inventory.
std::string RenderManifest(const mastodon::restore::v1::BackupManifest& manifest);

}  // namespace mastodon_restore

#endif  // MR_CLI_RENDER_H_
