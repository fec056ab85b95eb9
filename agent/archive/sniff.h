// What a stream is, from its first bytes (and, for hints only, its name).
#ifndef MR_AGENT_ARCHIVE_SNIFF_H_
#define MR_AGENT_ARCHIVE_SNIFF_H_

#include <string>

#include "absl/strings/string_view.h"

namespace mastodon_restore {

enum class ContentKind {
  kEmpty,
  kGzip,
  kBzip2,
  kXz,
  kZstd,
  kLz4,
  kZip,
  kSevenZip,
  kTar,
  kAge,
  kOpenPgp,
  // PGDMP: custom archive (format byte 1) or toc.dat (format byte 3).
  kPgCustom,
  kPgTocDat,
  // Plain SQL from pg_dump / pg_dumpall, and pg_dump's tar restore.sql.
  kPlainDump,
  kPlainDumpall,
  kTarRestoreScript,
  kText,
  kBinary,
};

// Bytes Sniff() wants to see (fewer are fine at the end of a stream).
constexpr size_t kSniffBytes = 512;

// Classifies `head` (the first bytes of a stream, at most kSniffBytes needed).
ContentKind Sniff(absl::string_view head);

// "gzip", "tar", "plain pg_dump", ...
const char* ContentKindName(ContentKind kind);

// True for the compression wrappers (gzip ... lz4).
bool IsCompression(ContentKind kind);
// True for multi-entry containers (zip, 7z, tar).
bool IsArchive(ContentKind kind);

}  // namespace mastodon_restore

#endif  // MR_AGENT_ARCHIVE_SNIFF_H_
