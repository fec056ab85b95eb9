// libpq conninfo values written by the agent and the CLI (a conninfo is
// parsed by libpq: keyword = value pairs, a value quoted when it holds
// spaces or quotes).
#ifndef MR_AGENT_COMMON_CONNINFO_QUOTE_H_
#define MR_AGENT_COMMON_CONNINFO_QUOTE_H_

#include <string>

#include "absl/strings/string_view.h"

namespace mastodon_restore {

// `value` as a conninfo value: single-quoted, with \ and ' escaped by a
// backslash, as libpq's conninfo parser reads it.
inline std::string QuoteConnInfoValue(absl::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_CONNINFO_QUOTE_H_
