#include "cli/completion.h"

#include <algorithm>
#include <cctype>
#include <functional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace mastodon_restore {
namespace {

// Every command with its path ("ops watch"), outermost first; a group's
// flags are those of its default subcommand.
struct Node {
  std::string path;
  const Command* command;
  std::vector<FlagSpec> flags;  // with --help
};

std::vector<Node> Walk(const std::vector<Command>& commands) {
  std::vector<Node> out;
  std::function<void(const std::vector<Command>&, const std::string&)> walk =
      [&](const std::vector<Command>& table, const std::string& prefix) {
        for (const Command& c : table) {
          Node n{prefix.empty() ? c.name : absl::StrCat(prefix, " ", c.name), &c, c.flags};
          if (!c.subcommands.empty() && c.default_subcommand != nullptr) {
            const Command* d = FindCommand(c.subcommands, c.default_subcommand);
            if (d != nullptr) n.flags = d->flags;
          }
          n.flags.push_back({"help", "", "print this help and exit", false, 'h'});
          out.push_back(n);
          walk(c.subcommands, n.path);
        }
      };
  walk(commands, "");
  return out;
}

std::string FlagWords(const std::vector<FlagSpec>& flags) {
  std::vector<std::string> words;
  for (const FlagSpec& f : flags) {
    words.push_back("--" + f.name);
    if (f.short_name != 0) words.push_back(std::string("-") + f.short_name);
  }
  return absl::StrJoin(words, " ");
}

std::string NameWords(const std::vector<Command>& table) {
  std::vector<std::string> words;
  for (const Command& c : table) words.push_back(c.name);
  return absl::StrJoin(words, " ");
}

// Flags taking a value, anywhere on the line.
std::vector<std::string> ValueFlags(const ProgramSpec& p, const std::vector<Node>& nodes) {
  std::vector<std::string> out;
  auto add = [&](const std::vector<FlagSpec>& flags) {
    for (const FlagSpec& f : flags) {
      if (f.value_name.empty()) continue;
      const std::string w = "--" + f.name;
      if (std::find(out.begin(), out.end(), w) == out.end()) out.push_back(w);
    }
  };
  add(p.global_flags);
  for (const Node& n : nodes) add(n.flags);
  return out;
}

// Single-quoted for a shell.
std::string Quote(const std::string& s) {
  return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "'\\''"}}), "'");
}

std::string ShellFunctionName(const std::string& program) {
  return absl::StrCat("_", absl::StrReplaceAll(program, {{"-", "_"}}));
}

// roff: backslashes, hyphens of flags, a line that would start a request.
std::string Roff(const std::string& text) {
  std::string s = absl::StrReplaceAll(text, {{"\\", "\\e"}, {"-", "\\-"}});
  if (!s.empty() && (s[0] == '.' || s[0] == '\'')) s = "\\&" + s;
  return s;
}

std::string ManFlags(const std::vector<FlagSpec>& flags) {
  std::string s;
  for (const FlagSpec& f : flags) {
    absl::StrAppend(&s, ".TP\n\\fB\\-\\-", Roff(f.name), "\\fR");
    if (f.short_name != 0) absl::StrAppend(&s, ", \\fB\\-", std::string(1, f.short_name), "\\fR");
    if (!f.value_name.empty()) absl::StrAppend(&s, " \\fI", Roff(f.value_name), "\\fR");
    absl::StrAppend(&s, "\n", Roff(f.help), f.repeatable ? " (may be repeated)" : "", "\n");
  }
  return s;
}

}  // namespace

std::string BashCompletion(const ProgramSpec& p) {
  const std::vector<Node> nodes = Walk(p.commands);
  const std::string fn = ShellFunctionName(p.name);
  std::string s = absl::StrCat(
      "# bash completion for ", p.name, " (generated from its command table; do not edit)\n", fn,
      "() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\"\n"
      "  local prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
      "  local global=",
      Quote(FlagWords(p.global_flags)), "\n  local takes_value=",
      Quote(absl::StrCat(" ", absl::StrJoin(ValueFlags(p, nodes), " "), " ")), "\n");
  absl::StrAppend(&s,
                  "  local path=\"\" i w\n"
                  "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
                  "    w=\"${COMP_WORDS[i]}\"\n"
                  "    if [[ \"$w\" == -* ]]; then\n"
                  "      if [[ \"$takes_value\" == *\" $w \"* ]]; then i=$((i + 1)); fi\n"
                  "      continue\n"
                  "    fi\n"
                  "    case \"${path:+$path }$w\" in\n");
  std::vector<std::string> paths;
  for (const Node& n : nodes) paths.push_back(absl::StrCat("\"", n.path, "\""));
  if (!paths.empty()) {
    absl::StrAppend(&s, "      ", absl::StrJoin(paths, "|"), ") path=\"${path:+$path }$w\" ;;\n");
  }
  absl::StrAppend(&s,
                  "      *) break ;;\n"
                  "    esac\n"
                  "  done\n"
                  "  if [[ \"$takes_value\" == *\" $prev \"* ]]; then\n"
                  "    case \"$prev\" in\n"
                  "      --color) mapfile -t COMPREPLY < <(compgen -W 'auto always never' -- "
                  "\"$cur\") ;;\n"
                  "      *) mapfile -t COMPREPLY < <(compgen -f -- \"$cur\") ;;\n"
                  "    esac\n"
                  "    return 0\n"
                  "  fi\n"
                  "  local flags=\"\" commands=\"\"\n"
                  "  case \"$path\" in\n"
                  "    \"\") commands=",
                  Quote(NameWords(p.commands)), " ;;\n");
  for (const Node& n : nodes) {
    absl::StrAppend(&s, "    \"", n.path, "\") flags=", Quote(FlagWords(n.flags)));
    if (!n.command->subcommands.empty()) {
      absl::StrAppend(&s, "; commands=", Quote(NameWords(n.command->subcommands)));
    }
    absl::StrAppend(&s, " ;;\n");
  }
  absl::StrAppend(&s,
                  "  esac\n"
                  "  if [[ \"$cur\" == -* ]]; then\n"
                  "    mapfile -t COMPREPLY < <(compgen -W \"$flags $global\" -- \"$cur\")\n"
                  "  elif [[ -n \"$commands\" ]]; then\n"
                  "    mapfile -t COMPREPLY < <(compgen -W \"$commands\" -- \"$cur\")\n"
                  "  else\n"
                  "    mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n"
                  "  fi\n"
                  "  return 0\n"
                  "}\n"
                  "complete -o filenames -F ",
                  fn, " ", p.name, "\n");
  return s;
}

std::string ZshCompletion(const ProgramSpec& p) {
  const std::vector<Node> nodes = Walk(p.commands);
  const std::string fn = ShellFunctionName(p.name);
  auto described = [](const std::string& name, const std::string& help) {
    return Quote(absl::StrCat(absl::StrReplaceAll(name, {{":", "\\:"}}), ":", help));
  };
  auto flag_items = [&](const std::vector<FlagSpec>& flags) {
    std::vector<std::string> items;
    for (const FlagSpec& f : flags) {
      items.push_back(described("--" + f.name, f.help));
      if (f.short_name != 0) items.push_back(described(std::string("-") + f.short_name, f.help));
    }
    return absl::StrJoin(items, " ");
  };
  auto command_items = [&](const std::vector<Command>& table) {
    std::vector<std::string> items;
    for (const Command& c : table) items.push_back(described(c.name, c.summary));
    return absl::StrJoin(items, " ");
  };
  std::string s =
      absl::StrCat("#compdef ", p.name, "\n# zsh completion for ", p.name,
                   " (generated from its command table; do not edit)\n", fn, "() {\n",
                   "  local -a global=(", flag_items(p.global_flags), ")\n", "  local takes_value=",
                   Quote(absl::StrCat(" ", absl::StrJoin(ValueFlags(p, nodes), " "), " ")), "\n");
  absl::StrAppend(&s,
                  "  local cmdpath=\"\" w\n"
                  "  local -i i\n"
                  "  for ((i = 2; i < CURRENT; i++)); do\n"
                  "    w=\"${words[i]}\"\n"
                  "    if [[ \"$w\" == -* ]]; then\n"
                  "      if [[ \"$takes_value\" == *\" $w \"* ]]; then i=$((i + 1)); fi\n"
                  "      continue\n"
                  "    fi\n"
                  "    case \"${cmdpath:+$cmdpath }$w\" in\n");
  std::vector<std::string> paths;
  for (const Node& n : nodes) paths.push_back(absl::StrCat("\"", n.path, "\""));
  if (!paths.empty()) {
    absl::StrAppend(&s, "      ", absl::StrJoin(paths, "|"),
                    ") cmdpath=\"${cmdpath:+$cmdpath }$w\" ;;\n");
  }
  absl::StrAppend(&s,
                  "      *) break ;;\n"
                  "    esac\n"
                  "  done\n"
                  "  local prev=\"${words[CURRENT-1]}\"\n"
                  "  if [[ \"$takes_value\" == *\" $prev \"* ]]; then\n"
                  "    if [[ \"$prev\" == --color ]]; then compadd auto always never; else "
                  "_files; fi\n"
                  "    return\n"
                  "  fi\n"
                  "  local -a flags commands\n"
                  "  case \"$cmdpath\" in\n"
                  "    \"\") commands=(",
                  command_items(p.commands), ") ;;\n");
  for (const Node& n : nodes) {
    absl::StrAppend(&s, "    \"", n.path, "\") flags=(", flag_items(n.flags), ")");
    if (!n.command->subcommands.empty()) {
      absl::StrAppend(&s, "; commands=(", command_items(n.command->subcommands), ")");
    }
    absl::StrAppend(&s, " ;;\n");
  }
  absl::StrAppend(&s,
                  "  esac\n"
                  "  if [[ \"${words[CURRENT]}\" == -* ]]; then\n"
                  "    _describe -t flags 'flag' flags -- global\n"
                  "  elif (( ${#commands} )); then\n"
                  "    _describe -t commands 'command' commands\n"
                  "  else\n"
                  "    _files\n"
                  "  fi\n"
                  "}\n",
                  fn, " \"$@\"\n");
  return s;
}

std::string FishCompletion(const ProgramSpec& p) {
  const std::vector<Node> nodes = Walk(p.commands);
  std::string s = absl::StrCat("# fish completion for ", p.name,
                               " (generated from its command table; do not edit)\n");
  auto flag_line = [&](const FlagSpec& f, const std::string& condition) {
    std::string line = absl::StrCat("complete -c ", p.name);
    if (!condition.empty()) absl::StrAppend(&line, " -n ", Quote(condition));
    absl::StrAppend(&line, " -l ", f.name);
    if (f.short_name != 0) absl::StrAppend(&line, " -s ", std::string(1, f.short_name));
    if (!f.value_name.empty()) {
      absl::StrAppend(&line, f.name == "color" ? " -x -a 'auto always never'" : " -r -F");
    }
    absl::StrAppend(&line, " -d ", Quote(f.help), "\n");
    return line;
  };
  for (const FlagSpec& f : p.global_flags) absl::StrAppend(&s, flag_line(f, ""));
  std::vector<std::string> top;
  for (const Command& c : p.commands) top.push_back(c.name);
  for (const Command& c : p.commands) {
    absl::StrAppend(
        &s, "complete -c ", p.name, " -f -n ",
        Quote(absl::StrCat("not __fish_seen_subcommand_from ", absl::StrJoin(top, " "))), " -a ",
        c.name, " -d ", Quote(c.summary), "\n");
  }
  for (const Node& n : nodes) {
    const std::vector<std::string> words = absl::StrSplit(n.path, ' ');
    std::string condition;
    for (const std::string& w : words) {
      absl::StrAppend(&condition, condition.empty() ? "" : "; and ", "__fish_seen_subcommand_from ",
                      w);
    }
    if (!n.command->subcommands.empty()) {
      std::vector<std::string> subs;
      for (const Command& sub : n.command->subcommands) subs.push_back(sub.name);
      for (const Command& sub : n.command->subcommands) {
        absl::StrAppend(&s, "complete -c ", p.name, " -f -n ",
                        Quote(absl::StrCat(condition, "; and not __fish_seen_subcommand_from ",
                                           absl::StrJoin(subs, " "))),
                        " -a ", sub.name, " -d ", Quote(sub.summary), "\n");
      }
    }
    for (const FlagSpec& f : n.flags) absl::StrAppend(&s, flag_line(f, condition));
  }
  return s;
}

std::string ManPage(const ProgramSpec& p, int section, const std::string& version) {
  std::string upper = p.name;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string s = absl::StrCat(
      ".\\\" Generated from the program's command and flag tables; do not edit.\n", ".TH ", upper,
      " ", section, " \"\" \"", Roff(p.name), " ", Roff(version), "\" \"",
      section == 8 ? "System Administration" : "User Commands", "\"\n", ".SH NAME\n", Roff(p.name),
      " \\- ", Roff(p.summary), "\n", ".SH SYNOPSIS\n.B ", Roff(p.name), "\n");
  if (p.commands.empty()) {
    absl::StrAppend(&s, "[\\fIflags\\fR]\n");
  } else {
    absl::StrAppend(&s, "[\\fIglobal flags\\fR] \\fICOMMAND\\fR [\\fIflags\\fR] [\\fIargs\\fR]\n");
  }
  absl::StrAppend(&s, ".SH DESCRIPTION\n");
  for (absl::string_view para : absl::StrSplit(p.description, '\n', absl::SkipEmpty())) {
    absl::StrAppend(&s, ".PP\n", Roff(std::string(para)), "\n");
  }
  if (!p.global_flags.empty()) {
    absl::StrAppend(&s, p.commands.empty() ? ".SH OPTIONS\n" : ".SH GLOBAL FLAGS\n",
                    ManFlags(p.global_flags));
  }
  if (!p.commands.empty()) {
    absl::StrAppend(&s, ".SH COMMANDS\n");
    for (const Node& n : Walk(p.commands)) {
      absl::StrAppend(&s, ".SS \"", Roff(p.name), " ", Roff(n.path));
      if (*n.command->positional) absl::StrAppend(&s, " ", Roff(n.command->positional));
      absl::StrAppend(&s, "\"\n", Roff(n.command->summary), "\n");
      if (!n.command->subcommands.empty() && n.command->default_subcommand != nullptr) {
        absl::StrAppend(&s, ".PP\nAlone it runs \\fB", Roff(n.path), " ",
                        Roff(n.command->default_subcommand), "\\fR.\n");
      }
      if (n.command->subcommands.empty() || n.command->default_subcommand != nullptr) {
        absl::StrAppend(&s, ManFlags(n.flags));
      }
    }
  }
  for (const auto& [title, text] : p.sections) {
    absl::StrAppend(&s, ".SH ", Roff(title), "\n");
    bool literal = false;
    for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      const bool kept = absl::StartsWith(line, "  ");
      if (kept && !literal) absl::StrAppend(&s, ".PP\n.nf\n");
      if (!kept && literal) absl::StrAppend(&s, ".fi\n");
      literal = kept;
      absl::StrAppend(&s, kept ? "" : ".PP\n", Roff(std::string(line)), "\n");
    }
    if (literal) absl::StrAppend(&s, ".fi\n");
  }
  if (!p.see_also.empty()) {
    std::vector<std::string> refs;
    for (const std::string& ref : p.see_also) {
      const size_t paren = ref.find('(');
      refs.push_back(paren == std::string::npos ? Roff(ref)
                                                : absl::StrCat("\\fB", Roff(ref.substr(0, paren)),
                                                               "\\fR", ref.substr(paren)));
    }
    absl::StrAppend(&s, ".SH SEE ALSO\n", absl::StrJoin(refs, ",\n"), "\n");
  }
  return s;
}

}  // namespace mastodon_restore
