#include "agent/dump/archive_check.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/common/status_macros.h"
#include "agent/dump/custom_archive.h"

namespace mastodon_restore {

absl::Status CheckArchiveToc(ByteStream* in, const std::string& name,
                             const ClassifyOptions& options) {
  ArchiveStructureReader reader(in);
  ASSIGN_OR_RETURN(ArchiveHeader header, reader.ReadHeader());
  ASSIGN_OR_RETURN(std::vector<TocItem> toc, reader.ReadToc(header));
  for (const TocItem& item : toc) {
    for (const std::string* text : {&item.defn, &item.drop_stmt, &item.copy_stmt}) {
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
