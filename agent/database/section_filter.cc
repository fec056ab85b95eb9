#include "agent/database/section_filter.h"

namespace mastodon_restore {
namespace {

const DumpSection* FindSection(const std::vector<DumpSection>& sections,
                               absl::string_view database) {
  for (const DumpSection& s : sections) {
    if (s.name == database) return &s;
  }
  return nullptr;
}

}  // namespace

DumpPart ClassifyOffset(const std::vector<DumpSection>& sections, absl::string_view database,
                        int64_t offset) {
  if (sections.empty() || offset < sections.front().begin_offset) return DumpPart::kGlobals;
  const DumpSection* s = FindSection(sections, database);
  if (s != nullptr && offset >= s->begin_offset && (s->end_offset < 0 || offset < s->end_offset)) {
    return DumpPart::kSection;
  }
  return DumpPart::kOther;
}

DumpPart SectionFilter::LinePart(int64_t offset, bool end_of_stream) {
  if (end_of_stream && !finished_) {
    scanner_.Finish(/*end_of_dump=*/true);
    finished_ = true;
  }
  const PlainDumpFacts& facts = scanner_.facts();
  if (facts.kind == PlainKind::kDump || facts.kind == PlainKind::kTarRestoreScript) {
    // Not a cluster dump: its one section is no database section; nothing
    // but globals (like a cluster dump before its first section).
    return DumpPart::kGlobals;
  }
  DumpPart part = ClassifyOffset(facts.sections, database_, offset);
  if (part == DumpPart::kSection) found_ = true;
  return part;
}

bool SectionFilter::ended() const {
  const DumpSection* s = FindSection(scanner_.facts().sections, database_);
  return s != nullptr && s->end_offset >= 0;
}

}  // namespace mastodon_restore
