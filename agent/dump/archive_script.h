// The agent's own pg_restore: reads a pg_dump archive (custom, directory or
// tar format; archive versions 1.12 to 1.16, i.e. pg_dump 9.6 to 18; data
// compressed with gzip/zlib, lz4 or zstd as the archive says) and renders
// it as the SQL script `pg_restore --file=-` writes with its default
// options, as a stream: the same header and session settings, the TOC
// entries in pg_restore's order (main pass, then ACLs, then event triggers
// and materialized view data), each with its "-- Name: ...; Type: ...;"
// comment, its definition and its ALTER ... OWNER TO, table data as
// "COPY ... FROM stdin;" followed by the entry's data, sequence values,
// comments, ACLs and large objects (lo_create / lo_open / lowrite /
// lo_close in a transaction, like pg_dump's plain output).
//
// Nothing is executed here: the script goes to the same loader as a plain
// dump (agent/database/plain_loader.h), which applies the rewrites, the
// owner rules and the parallel load.
//
// Differences from pg_restore, on purpose:
// - DATABASE / DATABASE PROPERTIES entries and the ACLs/comments of the
//   database are skipped (pg_restore without --create does the same);
// - STATISTICS DATA entries (pg_dump 18 --statistics) are skipped unless
//   the caller keeps them (KeepStatistics, for targets that can import
//   them: PostgreSQL 18+); the restore runs ANALYZE for the rest.
//
// Data is read in archive order, so a custom or tar archive may come from a
// pipe (a custom archive written to a pipe has no data offsets and needs
// none here). A seekable archive (a directory, or a custom file whose TOC
// has every data offset) can also hand each table's data to the caller
// apart from the script (DeferData), to be read by other threads at once. The archive is untrusted:
// lengths are bounded, file names of a directory archive must be plain names inside it, and
// anything malformed is INVALID_ARGUMENT naming the archive.
#ifndef MR_AGENT_DUMP_ARCHIVE_SCRIPT_H_
#define MR_AGENT_DUMP_ARCHIVE_SCRIPT_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "agent/common/byte_stream.h"
#include "agent/dump/custom_archive.h"

namespace mastodon_restore {

// An archive rendered as SQL: Read() yields the script.
class ArchiveScript : public ByteStream {
 public:
  // Custom format read from `in` (positioned at "PGDMP"; must outlive the
  // script). Reads the header and TOC before returning.
  static absl::StatusOr<std::unique_ptr<ArchiveScript>> OpenCustom(ByteStream* in);
  // Tar format (pg_dump -Ft) read from `in` (the tar stream).
  static absl::StatusOr<std::unique_ptr<ArchiveScript>> OpenTar(ByteStream* in);
  // Tar format from the regular file `path`: when it is laid out as pg_dump
  // writes it (plain ustar members), the data of its tables can be read
  // apart.
  static absl::StatusOr<std::unique_ptr<ArchiveScript>> OpenTarFile(const std::string& path);
  // Custom format from the regular file `path` (read through a buffer; the
  // data of its tables can be read apart when the TOC has their offsets).
  static absl::StatusOr<std::unique_ptr<ArchiveScript>> OpenCustomFile(const std::string& path);
  // Directory format: `dir` holds toc.dat and the data files.
  static absl::StatusOr<std::unique_ptr<ArchiveScript>> OpenDirectory(const std::string& dir);

  // One table's data left to the caller: its COPY statement (as the script
  // would have it, "COPY ... FROM stdin;\n"), about how many bytes the
  // archive holds of it, and how to read its rows (COPY text, as the script
  // would have it after the statement, "\." row included): `open` may be
  // called from any thread, once or more, while the script exists; each
  // stream it returns is independent.
  struct DeferredData {
    const TocItem* item = nullptr;
    std::string copy_stmt;
    int64_t size_hint = 0;
    std::function<absl::StatusOr<std::unique_ptr<ByteStream>>()> open;
  };
  // Whether any table's data can be read apart (directory format, a custom
  // file whose TOC has the data offsets, a tar file as pg_dump writes it).
  bool can_defer_data() const;
  // Before the first Read(): the data of each table that can be read apart
  // is not rendered; instead Read() returns 0 (the script seems to end)
  // where its COPY statement would come, TakeDeferred() then gives it, and
  // Read() goes on after it. A 0 with nothing to take is the end.
  void DeferData();
  std::optional<DeferredData> TakeDeferred();
  // Before the first Read(): renders the STATISTICS DATA entries (the
  // planner statistics pg_dump 18 --statistics writes: "SELECT * FROM
  // pg_catalog.pg_restore_relation_stats(...)" and "..._attribute_stats"),
  // where pg_restore 18 puts them, instead of skipping them.
  void KeepStatistics();

  ~ArchiveScript() override;

  absl::StatusOr<size_t> Read(char* buf, size_t n) override;
  const std::string& name() const override { return name_; }

  const ArchiveHeader& header() const;
  const std::vector<TocItem>& toc() const;

  class Source;  // where the data comes from (one per format)

 private:
  class Renderer;
  ArchiveScript(std::string name, std::unique_ptr<Source> source);
  absl::Status Init();

  std::string name_;
  std::unique_ptr<Source> source_;
  std::unique_ptr<Renderer> renderer_;
};

// Quotes an SQL identifier like PostgreSQL's fmtId when it is not a plain
// lower-case name (always for reserved words the agent knows to matter).
std::string QuoteArchiveIdent(const std::string& name);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DUMP_ARCHIVE_SCRIPT_H_
