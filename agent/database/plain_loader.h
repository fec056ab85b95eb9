// The native loader of plain SQL dumps: pg_dump output, one database section
// of a pg_dumpall dump, or pg_restore's SQL rendering of an archive, loaded
// over libpq into an already connected database. Like psql with
// ON_ERROR_STOP, but: COPY data is streamed with PQputCopyData, only the
// meta-commands pg_dump emits are accepted (\connect to the section's own
// database, \restrict/\unrestrict, \encoding), settings the target rejects are
// rewritten away, and errors carry the dump line and TOC entry.
#ifndef MR_AGENT_DATABASE_PLAIN_LOADER_H_
#define MR_AGENT_DATABASE_PLAIN_LOADER_H_

#include "absl/status/statusor.h"
#include "agent/common/byte_stream.h"
#include "agent/database/load_options.h"
#include "agent/database/pg_connection.h"
#include "agent/dump/archive_script.h"

namespace mastodon_restore {

// Loads the dump from `in` through `conn`. Stops at the first error:
// INVALID_ARGUMENT "unable to load '<dump>' at line N (<TOC entry>): ERROR:
// ..." for SQL errors and unknown meta-commands, FAILED_PRECONDITION for a
// missing owner role with keep_owners, CANCELLED when cancelled (the running
// command is cancelled on the server), and the stream's error when reading
// fails (e.g. a truncated file).
absl::StatusOr<LoadStats> LoadPlainSql(ByteStream* in, PgConnection* conn,
                                       const LoadOptions& options);

// Loads an archive as the agent's reader renders it: LoadPlainSql of the
// script, except that in a parallel load the data of every table the
// archive can hand out apart (ArchiveScript::DeferData: a directory, a
// custom file with data offsets) is loaded by the workers, each reading and
// decompressing its own table, the biggest first; the COPY statements still
// pass the same checks and rewrites, and the rows the same bounds. A
// serial load, or an archive read from a stream, loads the script as is.
// Errors as LoadPlainSql's (line numbers count the script without the
// rows handed out).
absl::StatusOr<LoadStats> LoadArchiveScript(ArchiveScript* script, PgConnection* conn,
                                            const LoadOptions& options);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_PLAIN_LOADER_H_
