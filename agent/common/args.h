// Command-line and config-file parsing shared by the agent and the CLI.
//
// Flags are GNU-style long options: "--name value", "--name=value", boolean
// "--name" (also "--name=true|false"). "--" ends the options. A config file
// holds the same flags as "name = value" lines ("#" starts a comment).
#ifndef MR_AGENT_COMMON_ARGS_H_
#define MR_AGENT_COMMON_ARGS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mastodon_restore {

// Declares one flag.
struct FlagSpec {
  // Long name without the leading "--".
  std::string name;
  // Name of the value in help text ("PATH"); empty for a boolean flag.
  std::string value_name;
  // One-line help, including the default.
  std::string help;
  // May be given more than once; every value is kept.
  bool repeatable = false;
  // Optional one-letter alias ("h" for -h); only for boolean flags.
  char short_name = 0;
};

// The result of parsing: flag values by name and the positional arguments.
class ParsedArgs {
 public:
  // True when the flag was given.
  bool Has(absl::string_view name) const;
  // Last value of the flag, or `fallback` when absent. Booleans hold "true" or
  // "false".
  std::string Get(absl::string_view name, absl::string_view fallback = "") const;
  // True when a boolean flag was given and not set to false.
  bool GetBool(absl::string_view name) const;
  // Every value of a flag, in order; empty when absent.
  std::vector<std::string> GetAll(absl::string_view name) const;
  // Positional arguments, in order.
  const std::vector<std::string>& positional() const { return positional_; }
  // Arguments after the first positional one when parsing stopped there.
  const std::vector<std::string>& rest() const { return rest_; }

  // Sets values; later values replace earlier ones for non-repeatable flags.
  void Add(const std::string& name, const std::string& value) { values_[name].push_back(value); }
  // Replaces every value of `name`.
  void Set(const std::string& name, std::vector<std::string> values) {
    values_[name] = std::move(values);
  }
  const std::map<std::string, std::vector<std::string>>& values() const { return values_; }

 private:
  friend absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>&,
                                              const std::vector<FlagSpec>&, bool);
  friend absl::StatusOr<ParsedArgs> ParseConfigText(absl::string_view, const std::vector<FlagSpec>&,
                                                    absl::string_view);
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
  std::vector<std::string> rest_;
};

// Parses `args` (without the program name) against `specs`. Unknown flags,
// missing values and values given to boolean flags are INVALID_ARGUMENT with a
// message naming the flag. With `stop_at_positional`, parsing stops at the
// first positional argument, which goes to positional() and everything after
// it to rest() (for "tool [global flags] command [command flags]").
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<FlagSpec>& specs,
                                     bool stop_at_positional = false);

// Parses config-file text ("name = value" lines, "#" comments, blank lines;
// a value may be wrapped in double quotes) against `specs`. `origin` names the
// file in error messages, which carry the line number.
absl::StatusOr<ParsedArgs> ParseConfigText(absl::string_view text,
                                           const std::vector<FlagSpec>& specs,
                                           absl::string_view origin);

// Overlays `overrides` on `base`: a flag given in `overrides` replaces all of
// its values in `base` (for repeatable flags too). Positional arguments are
// not merged (a config file has none).
ParsedArgs MergeArgs(const ParsedArgs& base, const ParsedArgs& overrides);

// Help text for `specs`, one aligned line per flag.
std::string FormatFlagHelp(const std::vector<FlagSpec>& specs);

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_ARGS_H_
