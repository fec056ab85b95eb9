#include "agent/common/terminal_text.h"

#include "absl/strings/str_format.h"

namespace mastodon_restore {
namespace {

// Length of the valid UTF-8 sequence at `s[i]` (2-4), or 0 when the bytes
// there are not one (overlong forms, surrogates and values above U+10FFFF
// count as invalid).
size_t Utf8SequenceLength(absl::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = b(i);
  size_t n = c >= 0xc2 && c <= 0xdf   ? 2
             : c >= 0xe0 && c <= 0xef ? 3
             : c >= 0xf0 && c <= 0xf4 ? 4
                                      : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
  }
  if (c == 0xe0 && b(i + 1) < 0xa0) return 0;   // overlong
  if (c == 0xed && b(i + 1) >= 0xa0) return 0;  // surrogate
  if (c == 0xf0 && b(i + 1) < 0x90) return 0;   // overlong
  if (c == 0xf4 && b(i + 1) >= 0x90) return 0;  // above U+10FFFF
  return n;
}

// Appends the escaped form of `text` to `out` (when not null); returns true
// when anything needed escaping. `json`: escapes in JSON's form.
bool Escape(absl::string_view text, NewlinePolicy newlines, bool json, std::string* out) {
  bool changed = false;
  for (size_t i = 0; i < text.size();) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      if (out != nullptr) out->push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    if (c < 0x80) {  // C0 or DEL
      if ((c == '\n' || c == '\t' || (json && c == '\r')) &&
          (newlines == NewlinePolicy::kKeep || json)) {
        if (out != nullptr) out->push_back(static_cast<char>(c));
      } else {
        changed = true;
        if (out != nullptr) {
          if (json) {
            absl::StrAppendFormat(out, "\\u%04x", c);
          } else if (c == '\n') {
            out->append("\\n");
          } else if (c == '\r') {
            out->append("\\r");
          } else if (c == '\t') {
            out->append("\\t");
          } else {
            absl::StrAppendFormat(out, "\\x%02x", c);
          }
        }
      }
      ++i;
      continue;
    }
    size_t n = Utf8SequenceLength(text, i);
    if (n == 0) {
      changed = true;
      if (out != nullptr) {
        if (json) {
          out->append("\\ufffd");
        } else {
          absl::StrAppendFormat(out, "\\x%02x", c);
        }
      }
      ++i;
      continue;
    }
    // U+0080..U+009F are C1 controls (0xC2 0x80..0x9F).
    if (n == 2 && c == 0xc2 && static_cast<unsigned char>(text[i + 1]) <= 0x9f) {
      changed = true;
      if (out != nullptr) {
        absl::StrAppendFormat(out, "\\u%04x", static_cast<unsigned char>(text[i + 1]));
      }
    } else if (out != nullptr) {
      out->append(text.data() + i, n);
    }
    i += n;
  }
  return changed;
}

}  // namespace

std::string TerminalSafe(absl::string_view text, NewlinePolicy newlines) {
  std::string out;
  out.reserve(text.size());
  Escape(text, newlines, /*json=*/false, &out);
  return out;
}

bool NeedsTerminalEscape(absl::string_view text, NewlinePolicy newlines) {
  return Escape(text, newlines, /*json=*/false, nullptr);
}

std::string TerminalSafeJson(absl::string_view json) {
  std::string out;
  out.reserve(json.size());
  Escape(json, NewlinePolicy::kKeep, /*json=*/true, &out);
  return out;
}

}  // namespace mastodon_restore
