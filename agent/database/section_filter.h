// Which parts of a pg_dumpall stream a restore of one of its databases
// loads. The section ranges come from the dump scanner (dump/plain_scanner.h),
// the only parser of the pg_dumpall layout: the filter feeds it the stream as
// the loader reads it, so a section whose end detection did not see (it read
// the dump's head only) ends where the scanner finds the next section or the
// completion trailer.
#ifndef MR_AGENT_DATABASE_SECTION_FILTER_H_
#define MR_AGENT_DATABASE_SECTION_FILTER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/dump/plain_scanner.h"

namespace mastodon_restore {

enum class DumpPart {
  kGlobals,  // before the first database section: roles, tablespaces
  kSection,  // the section of the database being restored
  kOther,    // another database's section, or the trailer after the sections
};

// The part of the byte at `offset`, given the sections known so far (in
// dump order; an end_offset of -1: not known yet, the section goes on) and
// the restored database's name. Only the first section named `database`
// counts.
DumpPart ClassifyOffset(const std::vector<DumpSection>& sections, absl::string_view database,
                        int64_t offset);

class SectionFilter {
 public:
  // Filters for the section of `database`.
  explicit SectionFilter(std::string database) : database_(std::move(database)) {}

  // Feeds the next bytes of the stream (from its start, every byte, in
  // order; COPY data too, which keeps the scanner's view of it).
  void Feed(absl::string_view bytes) { scanner_.Feed(bytes); }

  // The part of the line that starts at `offset`, once its bytes were fed
  // through its newline (`end_of_stream`: it is the final line, without a
  // newline). A line opening a section belongs to it, the one opening the
  // next part (the next section's marker or \connect, the trailer) no longer.
  // A pg_dump (not pg_dumpall) stream is globals throughout.
  DumpPart LinePart(int64_t offset, bool end_of_stream);

  // Whether the section was found, and whether it ended (its end is known:
  // nothing after it is loaded).
  bool found() const { return found_; }
  // Set when the stream has more sections than the scanner tracks: the
  // parts can no longer be told apart.
  const std::string& limit_error() const { return scanner_.facts().limit_error; }
  bool ended() const;

 private:
  const std::string database_;
  PlainScanner scanner_{/*count_rows=*/false};
  bool found_ = false;
  bool finished_ = false;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_DATABASE_SECTION_FILTER_H_
