#include "agent/common/args.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace mastodon_restore {
namespace {

const FlagSpec* FindSpec(const std::vector<FlagSpec>& specs, absl::string_view name) {
  for (const FlagSpec& spec : specs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

const FlagSpec* FindShort(const std::vector<FlagSpec>& specs, char c) {
  for (const FlagSpec& spec : specs) {
    if (spec.short_name != 0 && spec.short_name == c) return &spec;
  }
  return nullptr;
}

absl::StatusOr<std::string> BoolValue(const FlagSpec& spec, absl::string_view value) {
  std::string v = absl::AsciiStrToLower(value);
  if (v == "true" || v == "yes" || v == "1" || v == "on") return std::string("true");
  if (v == "false" || v == "no" || v == "0" || v == "off") return std::string("false");
  return absl::InvalidArgumentError(
      absl::StrCat("flag --", spec.name, " takes no value (or true/false), got '", value, "'"));
}

// Stores `value` for `spec`, enforcing repeatability.
absl::Status Store(const FlagSpec& spec, std::string value,
                   std::map<std::string, std::vector<std::string>>* values) {
  std::vector<std::string>& slot = (*values)[spec.name];
  if (!spec.repeatable) slot.clear();
  slot.push_back(std::move(value));
  return absl::OkStatus();
}

}  // namespace

bool ParsedArgs::Has(absl::string_view name) const {
  auto it = values_.find(std::string(name));
  return it != values_.end() && !it->second.empty();
}

std::string ParsedArgs::Get(absl::string_view name, absl::string_view fallback) const {
  auto it = values_.find(std::string(name));
  if (it == values_.end() || it->second.empty()) return std::string(fallback);
  return it->second.back();
}

bool ParsedArgs::GetBool(absl::string_view name) const { return Get(name, "false") == "true"; }

std::vector<std::string> ParsedArgs::GetAll(absl::string_view name) const {
  auto it = values_.find(std::string(name));
  if (it == values_.end()) return {};
  return it->second;
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs, bool stop_at_positional) {
  ParsedArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      for (size_t j = i + 1; j < args.size(); ++j) out.positional_.push_back(args[j]);
      break;
    }
    if (arg.size() == 2 && arg[0] == '-' && arg[1] != '-') {
      const FlagSpec* spec = FindShort(specs, arg[1]);
      if (spec == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("unknown flag '", arg, "'"));
      }
      Store(*spec, "true", &out.values_).IgnoreError();
      continue;
    }
    if (arg.size() < 3 || arg[0] != '-' || arg[1] != '-') {
      out.positional_.push_back(arg);
      if (stop_at_positional) {
        out.rest_.assign(args.begin() + i + 1, args.end());
        break;
      }
      continue;
    }
    absl::string_view body = absl::string_view(arg).substr(2);
    absl::string_view name = body;
    bool has_inline = false;
    absl::string_view inline_value;
    size_t eq = body.find('=');
    if (eq != absl::string_view::npos) {
      name = body.substr(0, eq);
      inline_value = body.substr(eq + 1);
      has_inline = true;
    }
    const FlagSpec* spec = FindSpec(specs, name);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag '--", name, "'"));
    }
    if (spec->value_name.empty()) {
      std::string value = "true";
      if (has_inline) {
        auto parsed = BoolValue(*spec, inline_value);
        if (!parsed.ok()) return parsed.status();
        value = *parsed;
      }
      Store(*spec, value, &out.values_).IgnoreError();
      continue;
    }
    std::string value;
    if (has_inline) {
      value = std::string(inline_value);
    } else {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("flag --", spec->name, " needs a value (", spec->value_name, ")"));
      }
      value = args[++i];
    }
    Store(*spec, std::move(value), &out.values_).IgnoreError();
  }
  return out;
}

absl::StatusOr<ParsedArgs> ParseConfigText(absl::string_view text,
                                           const std::vector<FlagSpec>& specs,
                                           absl::string_view origin) {
  ParsedArgs out;
  int line_no = 0;
  for (absl::string_view raw : absl::StrSplit(text, '\n')) {
    ++line_no;
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line[0] == '#') continue;
    auto where = [&]() { return absl::StrCat(origin, ":", line_no); };
    size_t eq = line.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(where(), ": expected 'name = value', got '", line, "'"));
    }
    absl::string_view name = absl::StripAsciiWhitespace(line.substr(0, eq));
    absl::string_view value = absl::StripAsciiWhitespace(line.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    const FlagSpec* spec = FindSpec(specs, name);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(where(), ": unknown setting '", name, "'"));
    }
    std::string stored(value);
    if (spec->value_name.empty()) {
      auto parsed = BoolValue(*spec, value);
      if (!parsed.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(where(), ": ", parsed.status().message()));
      }
      stored = *parsed;
    }
    Store(*spec, std::move(stored), &out.values_).IgnoreError();
  }
  return out;
}

ParsedArgs MergeArgs(const ParsedArgs& base, const ParsedArgs& overrides) {
  ParsedArgs out = base;
  for (const auto& [name, values] : overrides.values()) {
    if (!values.empty()) out.Set(name, values);
  }
  return out;
}

std::string FormatFlagHelp(const std::vector<FlagSpec>& specs) {
  std::vector<std::string> heads;
  size_t width = 0;
  for (const FlagSpec& spec : specs) {
    std::string head = "  ";
    if (spec.short_name != 0) absl::StrAppend(&head, "-", std::string(1, spec.short_name), ", ");
    absl::StrAppend(&head, "--", spec.name);
    if (!spec.value_name.empty()) absl::StrAppend(&head, " ", spec.value_name);
    width = std::max(width, head.size());
    heads.push_back(std::move(head));
  }
  std::string out;
  for (size_t i = 0; i < specs.size(); ++i) {
    absl::StrAppend(&out, heads[i], std::string(width - heads[i].size() + 2, ' '), specs[i].help,
                    specs[i].repeatable ? " (repeatable)" : "", "\n");
  }
  return out;
}

}  // namespace mastodon_restore
