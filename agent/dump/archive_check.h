// The allow-list of dump/statement_classifier.h applied to an archive
// (custom format, or the toc.dat of the directory format) before pg_restore
// runs: the statements of every TOC entry, read with dump/custom_archive.h.
#ifndef MR_AGENT_DUMP_ARCHIVE_CHECK_H_
#define MR_AGENT_DUMP_ARCHIVE_CHECK_H_

#include <string>

#include "absl/status/status.h"
#include "agent/common/byte_stream.h"
#include "agent/dump/statement_classifier.h"

namespace mastodon_restore {

// Classifies every statement of the TOC of an archive (custom format, or
// toc.dat of the directory format) read from `in` before pg_restore runs:
// each entry's definition, drop statement and COPY statement. OK when all
// are allowed; INVALID_ARGUMENT "unable to restore '<name>': TOC entry <id>
// (<desc> <schema>.<tag>): statement refused: <what> (<kind>)" for the first
// one that is not, and the reader's error for a malformed archive.
// Statements naming databases are left to the loader (they are rendered
// only with --create, and the loader knows the database restored).
absl::Status CheckArchiveToc(ByteStream* in, const std::string& name,
                             const ClassifyOptions& options);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DUMP_ARCHIVE_CHECK_H_
