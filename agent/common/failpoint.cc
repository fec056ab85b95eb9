#include "agent/common/failpoint.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <mutex>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace mastodon_restore {
namespace failpoint_internal {
std::atomic<bool> g_any_enabled{false};
}  // namespace failpoint_internal

namespace {

// Every failpoint of the agent. A site's name must be here (Hit refuses
// others), and every name here has a site (tests/unit/failpoint_test.cc
// reads the sources).
constexpr const char* kFailpoints[] = {
    // The operation record (OperationManager): every save, and the journal
    // saves made before a side effect.
    "record.before_write",
    "record.after_write",
    "journal.before_write",
    "journal.after_write",
    // The restore job: before each step runs (a step boundary), and before
    // the report.
    "restore.step.open",
    "restore.step.inventory",
    "restore.step.detect",
    "restore.step.preflight",
    "restore.step.stop_services",
    "restore.step.load",
    "restore.step.verify",
    "restore.step.checks",
    "restore.step.secrets",
    "restore.step.swap",
    "restore.step.media",
    "restore.step.config",
    "restore.step.redis",
    "restore.step.migrate",
    "restore.step.cleanup",
    "restore.step.refresh",
    "restore.step.media_check",
    "restore.step.start_services",
    "restore.step.app_checks",
    "restore.before_report",
    // The staging database (the journal names it before CREATE DATABASE).
    "staging.before_create",
    "staging.after_create",
    "staging.after_journal_oid",
    "staging.after_comment",
    // The swap: one transaction (see TargetDatabases::SwapIn).
    "swap.before_begin",
    "swap.after_terminate",
    "swap.after_rename_live",
    "swap.before_commit",
    "swap.after_commit",
    "swap.after_journal_done",
    // A physical migration's swap of this host's data directory and the
    // copy (see SwapInClusterCopy).
    "cluster_swap.between_renames",
    // A migration's cut-over, just before its point of no return (the
    // promotion, or the subscription's drop).
    "migrate.before_commit",
    // The media: staged, then moved in file by file.
    "media.after_extract",
    "media.before_move",
    "media.after_file_moved",
    "media.after_move",
    // The env file: a copy of the old one kept, the new one written to a
    // recorded temp file, renamed in.
    "env.before_keep",
    "env.before_write",
    "env.before_rename",
    "env.after_rename",
    // The Redis dump: staged under a recorded name, Redis stopped, its file
    // kept, the staged one renamed in, Redis started.
    "redis.after_stage",
    "redis.after_stop",
    "redis.after_keep",
    "redis.after_rename",
};

struct Armed {
  FailpointAction action = FailpointAction::kOff;
  int nth = 1;
  int hits = 0;
};

struct Registry {
  std::mutex mu;
  std::map<std::string, Armed, std::less<>> armed;
  std::string pause_dir;
};

Registry& GetRegistry() {
  static Registry* registry = new Registry();
  return *registry;
}

bool Known(absl::string_view name) {
  for (const char* n : kFailpoints) {
    if (name == n) return true;
  }
  return false;
}

bool FileExists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

void Touch(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f != nullptr) std::fclose(f);
}

void Refresh(Registry& r) {
  bool any = false;
  for (const auto& [name, armed] : r.armed) any = any || armed.action != FailpointAction::kOff;
  failpoint_internal::g_any_enabled.store(any, std::memory_order_relaxed);
}

absl::StatusOr<FailpointAction> ParseAction(absl::string_view action) {
  if (action == "kill") return FailpointAction::kKill;
  if (action == "error") return FailpointAction::kError;
  if (action == "pause") return FailpointAction::kPause;
  if (action == "off") return FailpointAction::kOff;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown failpoint action '", action, "' (kill, error, pause, off)"));
}

}  // namespace

const std::vector<std::string>& AllFailpoints() {
  static const std::vector<std::string>* all =
      new std::vector<std::string>(std::begin(kFailpoints), std::end(kFailpoints));
  return *all;
}

absl::Status SetFailpoint(absl::string_view name, FailpointAction action, int nth,
                          const std::string& pause_dir) {
  if (!Known(name)) {
    return absl::InvalidArgumentError(absl::StrCat("no failpoint '", name, "'"));
  }
  if (nth < 1) return absl::InvalidArgumentError("a failpoint fires at hit 1 or later");
  if (action == FailpointAction::kPause && pause_dir.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("failpoint '", name, "': pause needs a directory (MR_FAILPOINT_DIR)"));
  }
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.armed[std::string(name)] = Armed{action, nth, 0};
  if (!pause_dir.empty()) r.pause_dir = pause_dir;
  Refresh(r);
  return absl::OkStatus();
}

void ClearFailpoints() {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.armed.clear();
  r.pause_dir.clear();
  Refresh(r);
}

int FailpointHits(absl::string_view name) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  auto it = r.armed.find(name);
  return it == r.armed.end() ? 0 : it->second.hits;
}

absl::Status ConfigureFailpoints(absl::string_view spec, const std::string& pause_dir) {
  struct Entry {
    std::string name;
    FailpointAction action;
    int nth;
  };
  std::vector<Entry> entries;
  for (absl::string_view item : absl::StrSplit(spec, ';', absl::SkipWhitespace())) {
    item = absl::StripAsciiWhitespace(item);
    size_t eq = item.find('=');
    if (eq == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("failpoint '", item, "': expected name=action[@n]"));
    }
    Entry e{std::string(item.substr(0, eq)), FailpointAction::kOff, 1};
    absl::string_view action = item.substr(eq + 1);
    size_t at = action.find('@');
    if (at != absl::string_view::npos) {
      if (!absl::SimpleAtoi(action.substr(at + 1), &e.nth) || e.nth < 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("failpoint '", e.name, "': bad hit number '", action.substr(at + 1), "'"));
      }
      action = action.substr(0, at);
    }
    auto parsed = ParseAction(action);
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("failpoint '", e.name, "': ", parsed.status().message()));
    }
    e.action = *parsed;
    if (!Known(e.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("no failpoint '", e.name, "' (--list-failpoints lists them)"));
    }
    if (e.action == FailpointAction::kPause && pause_dir.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("failpoint '", e.name, "': pause needs MR_FAILPOINT_DIR"));
    }
    entries.push_back(std::move(e));
  }
  for (const Entry& e : entries) {
    absl::Status s = SetFailpoint(e.name, e.action, e.nth, pause_dir);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status InitFailpointsFromEnv() {
  const char* spec = std::getenv("MR_FAILPOINTS");
  if (spec == nullptr || spec[0] == '\0') return absl::OkStatus();
  const char* dir = std::getenv("MR_FAILPOINT_DIR");
  return ConfigureFailpoints(spec, dir != nullptr ? dir : "");
}

namespace failpoint_internal {

absl::Status Hit(absl::string_view name) {
  Registry& r = GetRegistry();
  FailpointAction action;
  std::string pause_dir;
  {
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.armed.find(name);
    if (it == r.armed.end() || it->second.action == FailpointAction::kOff) {
      return absl::OkStatus();
    }
    Armed& armed = it->second;
    if (++armed.hits != armed.nth) return absl::OkStatus();
    action = armed.action;
    pause_dir = r.pause_dir;
  }
  switch (action) {
    case FailpointAction::kKill:
      ::kill(::getpid(), SIGKILL);
      for (;;) ::pause();
    case FailpointAction::kError:
      return absl::UnavailableError(absl::StrCat("failpoint ", name));
    case FailpointAction::kPause: {
      const std::string base = absl::StrCat(pause_dir, "/", name);
      Touch(base + ".reached");
      while (!FileExists(base + ".continue")) absl::SleepFor(absl::Milliseconds(5));
      return absl::OkStatus();
    }
    case FailpointAction::kOff:
      break;
  }
  return absl::OkStatus();
}

}  // namespace failpoint_internal
}  // namespace mastodon_restore
