#include "agent/dump/archive_check.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "agent/common/status_macros.h"
#include "agent/dump/custom_archive.h"

namespace mastodon_restore {

namespace {

absl::Status CheckOidList(const TocItem& item, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(item.defn, '\n', absl::SkipEmpty())) {
    uint32_t oid = 0;
    if (!absl::SimpleAtoi(line, &oid) || line.find_first_not_of("0123456789") != line.npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unable to restore '", name, "': TOC entry ", item.dump_id, " (BLOB METADATA ", item.tag,
          "): statement refused: a large object list holding something else "
          "than OIDs; a dump may only hold what pg_dump writes"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckArchiveToc(ByteStream* in, const std::string& name,
                             const ClassifyOptions& options) {
  ArchiveStructureReader reader(in);
  ASSIGN_OR_RETURN(ArchiveHeader header, reader.ReadHeader());
  ASSIGN_OR_RETURN(std::vector<TocItem> toc, reader.ReadToc(header));
  for (const TocItem& item : toc) {
    std::vector<const std::string*> texts = {&item.defn, &item.drop_stmt, &item.copy_stmt};
    if (item.desc == "BLOB METADATA") {
      // pg_dump 17+: the definition is the large objects' OIDs, one per
      // line (the reader issues lo_create for each, checked as it loads).
      RETURN_IF_ERROR(CheckOidList(item, name));
      texts.erase(texts.begin());
    }
    for (const std::string* text : texts) {
      for (const std::string& sql : SplitStatements(*text)) {
        StatementClass c = ClassifyStatement(sql, options);
        if (c.allowed) continue;
        return absl::InvalidArgumentError(absl::StrCat(
            "unable to restore '", name, "': TOC entry ", item.dump_id, " (", item.desc, " ",
            item.namespace_name.empty() ? "" : item.namespace_name + ".", item.tag,
            "): statement refused: ", c.refusal, " (", c.kind,
            "); a dump may only hold what pg_dump writes"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace mastodon_restore
