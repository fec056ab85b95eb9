// Text from backups, records and callers made safe for a terminal: names from
// dumps, archives and env files are attacker-chosen, and an escape sequence
// written raw is interpreted by the user's terminal (retitling it, rewriting
// what is on screen, on some terminals answering with input). Every such
// text that the CLI prints or the agent logs goes through TerminalSafe.
#ifndef MR_AGENT_COMMON_TERMINAL_TEXT_H_
#define MR_AGENT_COMMON_TERMINAL_TEXT_H_

#include <string>

#include "absl/strings/string_view.h"

namespace mastodon_restore {

enum class NewlinePolicy {
  // A name or a single value: newlines and tabs are escaped too ("\n",
  // "\t"), so that a name cannot start a line of its own.
  kEscape,
  // A block of lines the program composed: '\n' and '\t' are kept.
  kKeep,
};

// `text` with every control character shown escaped: C0 controls as "\xNN"
// ("\n", "\r", "\t" by name), DEL as "\x7f", C1 controls (U+0080-U+009F) as
// "\u0080".."\u009f", and bytes that are not UTF-8 as "\xNN". Printable
// UTF-8 (accents, CJK, emoji) is kept; backslashes are kept as they are.
std::string TerminalSafe(absl::string_view text, NewlinePolicy newlines = NewlinePolicy::kEscape);

// True when TerminalSafe(text, newlines) would change `text`.
bool NeedsTerminalEscape(absl::string_view text, NewlinePolicy newlines = NewlinePolicy::kEscape);

// JSON the CLI prints (protobuf's JSON escapes C0 controls already): DEL and
// C1 controls inside strings as "\u007f".."\u009f", invalid UTF-8 bytes as
// "\ufffd"; the JSON stays valid and means the same but for those bytes.
std::string TerminalSafeJson(absl::string_view json);

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_TERMINAL_TEXT_H_
