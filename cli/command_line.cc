#include "cli/command_line.h"

#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace mastodon_restore {
namespace {

const FlagSpec kHelpFlag = {"help", "", "print this help and exit", false, 'h'};

// Whether ParseArgs reads `arg` as a flag: "-x", or "--name[=value]".
bool IsFlag(const std::string& arg) {
  if (arg.size() == 2) return arg[0] == '-' && arg[1] != '-';
  return arg.size() >= 3 && arg[0] == '-' && arg[1] == '-';
}

// Whether the flag `arg` takes the next argument as its value under `specs`
// (the first spec of a name counts). Unknown flags take none; ParseArgs
// reports them.
bool TakesNextValue(const std::vector<FlagSpec>& specs, const std::string& arg) {
  if (arg[1] != '-') return false;  // short flags are boolean
  absl::string_view body = absl::string_view(arg).substr(2);
  if (body.find('=') != absl::string_view::npos) return false;
  for (const FlagSpec& spec : specs) {
    if (spec.name == body) return !spec.value_name.empty();
  }
  return false;
}

// Every flag of `command` and of its subcommands, for telling which flags
// take a value before the subcommand is known.
void AppendSubtreeFlags(const Command& command, std::vector<FlagSpec>* specs) {
  specs->insert(specs->end(), command.flags.begin(), command.flags.end());
  for (const Command& sub : command.subcommands) AppendSubtreeFlags(sub, specs);
}

std::string NamesOf(const std::vector<Command>& commands) {
  std::vector<std::string> names;
  for (const Command& c : commands) names.push_back(c.name);
  return absl::StrJoin(names, ", ");
}

std::string PathName(const std::vector<const Command*>& path) {
  std::vector<std::string> names;
  for (const Command* c : path) names.push_back(c->name);
  return absl::StrJoin(names, " ");
}

}  // namespace

std::string CommandLine::CommandName() const { return PathName(path); }

const Command* FindCommand(const std::vector<Command>& commands, const std::string& name) {
  for (const Command& c : commands) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args,
                                             const std::vector<FlagSpec>& global_flags,
                                             const std::vector<Command>& commands) {
  // 1. Find the command (and subcommands): the first positional arguments,
  // skipping flags and their values. Split the rest into what came before the
  // command (global flags only) and after it.
  CommandLine line;
  const std::vector<Command>* table = &commands;  // a name is due from it
  std::vector<FlagSpec> lookahead = global_flags;
  std::vector<std::string> before;
  std::vector<std::string> after;
  bool ended = false;  // after "--"
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    std::vector<std::string>& part = line.path.empty() ? before : after;
    if (!ended && arg == "--") {
      ended = true;
      after.push_back(arg);  // ParseArgs then reads what follows as positional
      continue;
    }
    if (!ended && IsFlag(arg)) {
      part.push_back(arg);
      if (TakesNextValue(lookahead, arg) && i + 1 < args.size()) part.push_back(args[++i]);
      continue;
    }
    if (table == nullptr) {
      after.push_back(arg);
      continue;
    }
    const Command* command = FindCommand(*table, arg);
    if (command == nullptr) {
      // A flag before it that is unknown explains more ("--member m detect").
      auto global = ParseArgs(before, global_flags);
      if (!global.ok()) return global.status();
      return absl::InvalidArgumentError(
          line.path.empty() ? absl::StrCat("unknown command '", arg, "'")
                            : absl::StrCat("unknown ", PathName(line.path), " command '", arg,
                                           "' (", NamesOf(*table), ")"));
    }
    line.path.push_back(command);
    table = command->subcommands.empty() ? nullptr : &command->subcommands;
    // The command's flags first: after its name they win over global ones.
    lookahead.clear();
    AppendSubtreeFlags(*command, &lookahead);
    lookahead.insert(lookahead.end(), global_flags.begin(), global_flags.end());
  }

  // 2. Before the command: global flags only.
  auto global = ParseArgs(before, global_flags);
  if (!global.ok()) return global.status();
  line.global = *global;
  line.help = line.global.GetBool("help");
  if (line.path.empty()) return line;

  // 3. After it: the command's own flags and the global ones; a name in both
  // is the command's.
  const Command* leaf = line.path.back();
  // Whose flags apply: the command's, a group's default subcommand's, or
  // none (a group without a default).
  const Command* runs = leaf;
  if (!leaf->subcommands.empty()) {
    runs = leaf->default_subcommand != nullptr
               ? FindCommand(leaf->subcommands, leaf->default_subcommand)
               : nullptr;
  }
  std::vector<FlagSpec> own;
  if (runs != nullptr) own = runs->flags;
  own.push_back(kHelpFlag);
  std::set<std::string> own_names;
  for (const FlagSpec& spec : own) own_names.insert(spec.name);
  std::vector<FlagSpec> specs = own;
  for (const FlagSpec& spec : global_flags) {
    if (own_names.count(spec.name) == 0) specs.push_back(spec);
  }
  auto parsed = ParseArgs(after, specs);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(PathName(line.path), ": ", parsed.status().message()));
  }

  // 4. Split them: global flags given after the command join those before.
  ParsedArgs later_global;
  std::vector<std::string> positional_args = {"--"};
  positional_args.insert(positional_args.end(), parsed->positional().begin(),
                         parsed->positional().end());
  auto own_args = ParseArgs(positional_args, {});
  if (!own_args.ok()) return own_args.status();
  for (const auto& [name, values] : parsed->values()) {
    if (own_names.count(name) != 0) {
      own_args->Set(name, values);
    } else {
      later_global.Set(name, values);
    }
  }
  line.global = MergeArgs(line.global, later_global);
  line.args = *std::move(own_args);
  line.help = line.help || line.global.GetBool("help") || line.args.GetBool("help");

  // 5. A group runs its default subcommand, unless help was asked for it.
  if (!leaf->subcommands.empty() && !line.help) {
    if (runs == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(PathName(line.path), " needs a command (", NamesOf(leaf->subcommands), ")"));
    }
    line.path.push_back(runs);
  }
  return line;
}

}  // namespace mastodon_restore
