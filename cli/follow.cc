#include "cli/follow.h"

#include <google/protobuf/util/json_util.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "agent/common/terminal_text.h"
#include "cli/exit_codes.h"
#include "cli/render.h"
#include "cli/terminal.h"

namespace mastodon_restore {
namespace {

namespace v1 = mastodon::restore::v1;

// A value from the operation (names from dumps, archives, env files) as the
// terminal may show it.
std::string T(absl::string_view value) { return TerminalSafe(value); }

std::string Word(const std::string& enum_name, const char* prefix) {
  return absl::AsciiStrToLower(enum_name.substr(std::string(prefix).size()));
}

// "1:05", "1:02:03".
std::string Clock(int64_t seconds) {
  if (seconds >= 3600) {
    return absl::StrFormat("%d:%02d:%02d", seconds / 3600, seconds / 60 % 60, seconds % 60);
  }
  return absl::StrFormat("%d:%02d", seconds / 60, seconds % 60);
}

// What is counted: the phase's count when the step has phases ("data 312.0
// MiB of 700.0 MiB", "building 45/189"), else the step's.
std::string CountText(const v1::Progress& p) {
  auto count = [](int64_t done, int64_t total, const std::string& unit) {
    if (unit == "bytes") {
      return total > 0 ? absl::StrCat(HumanBytes(done), " of ", HumanBytes(total))
                       : HumanBytes(done);
    }
    return total > 0 ? absl::StrCat(done, "/", total, " ", unit) : absl::StrCat(done, " ", unit);
  };
  if (!p.phase().empty()) {
    const std::string phase = p.phase() == "build" ? "building" : p.phase();
    if (p.phase_unit() == "builds") {
      return p.phase_total() > 0 ? absl::StrCat(phase, " ", p.phase_done(), "/", p.phase_total())
                                 : phase;
    }
    return absl::StrCat(phase, " ", count(p.phase_done(), p.phase_total(), p.phase_unit()));
  }
  if (p.unit() == "work") return "";  // the bar's percentage says it
  std::string s = count(p.done(), p.total(), p.unit());
  if (p.unit() == "bytes" && p.rate() > 0) {
    absl::StrAppend(&s, ", ", HumanBytes(static_cast<int64_t>(p.rate())), "/s");
  }
  return s;
}

int Percent(const v1::Progress& p) {
  if (p.total() <= 0) return -1;
  int percent = static_cast<int>(p.done() * 100 / p.total());
  // Work left: never "100%".
  if (p.done() < p.total()) percent = std::min(percent, 99);
  return percent;
}

std::string Bar(const v1::Progress& p, int width) {
  if (p.total() <= 0) return "";
  int filled = static_cast<int>(std::min<int64_t>(width, p.done() * width / p.total()));
  if (p.done() < p.total()) filled = std::min(filled, width - 1);
  return absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '.'), "] ",
                      absl::StrFormat("%3d%%", Percent(p)), " ");
}

std::string StepPlace(const v1::OperationEvent& e) {
  const v1::Progress& p = e.progress();
  std::string s = T(e.step());
  if (p.step_number() > 0 && p.step_count() > 0) {
    absl::StrAppend(&s, " ", p.step_number(), "/", p.step_count());
  }
  return s;
}

// "elapsed 1:05, ETA 1:30" (what is known of it).
std::string TimeText(const v1::Progress& p) {
  std::vector<std::string> parts;
  if (p.elapsed_seconds() > 0)
    parts.push_back(absl::StrCat("elapsed ", Clock(p.elapsed_seconds())));
  if (p.eta_seconds() > 0) parts.push_back(absl::StrCat("ETA ", Clock(p.eta_seconds())));
  return absl::StrJoin(parts, ", ");
}

std::string StateWord(v1::StepState state, bool color) {
  const std::string word = Word(v1::StepState_Name(state), "STEP_STATE_");
  switch (state) {
    case v1::STEP_STATE_SUCCEEDED:
      return Paint(word, Color::kGreen, color);
    case v1::STEP_STATE_FAILED:
      return Paint(word, Color::kRed, color);
    case v1::STEP_STATE_SKIPPED:
      return Paint(word, Color::kYellow, color);
    default:
      return word;
  }
}

std::string OperationStateWord(v1::OperationState state, bool color) {
  const std::string word = Word(v1::OperationState_Name(state), "OPERATION_STATE_");
  switch (state) {
    case v1::OPERATION_STATE_SUCCEEDED:
      return Paint(word, Color::kGreen, color);
    case v1::OPERATION_STATE_FAILED:
    case v1::OPERATION_STATE_INTERRUPTED:
      return Paint(word, Color::kRed, color);
    case v1::OPERATION_STATE_CANCELLED:
      return Paint(word, Color::kYellow, color);
    default:
      return word;
  }
}

std::string SeverityWord(v1::Severity severity, bool color) {
  const std::string word = Word(v1::Severity_Name(severity), "SEVERITY_");
  switch (severity) {
    case v1::SEVERITY_WARNING:
      return Paint(word, Color::kYellow, color);
    case v1::SEVERITY_ERROR:
      return Paint(word, Color::kRed, color);
    default:
      return word;
  }
}

struct LiveState {
  bool progress_line = false;
  std::unique_ptr<TerminalWidth> width;
};

void PrintEvent(const v1::WatchOperationResponse& r, const FollowOptions& o, LiveState* live) {
  const v1::OperationEvent& e = r.event();
  // Lines that stay on the screen: folded to the terminal, never cut.
  auto print_lines = [&](const std::string& text) {
    const int columns = o.tty && live->width != nullptr ? live->width->Columns() : 0;
    std::fputs(WrapToWidth(text, UsableColumns(columns)).c_str(), o.out);
  };
  auto end_progress_line = [&]() {
    if (live->progress_line) {
      // The live line gives way to the lines that tell what happened.
      std::fputs("\r\033[K", o.out);
      live->progress_line = false;
    }
  };
  switch (e.type()) {
    case v1::EVENT_TYPE_STEP_STARTED:
      end_progress_line();
      print_lines(absl::StrCat("==> ", Paint(T(e.step()), Color::kBold, o.color), ": ",
                               T(e.message()), "\n"));
      break;
    case v1::EVENT_TYPE_STEP_PROGRESS:
      if (o.tty) {
        const int columns = live->width != nullptr ? live->width->Columns() : 0;
        std::fprintf(o.out, "\r%s\033[K",
                     FitToWidth(RenderProgressLine(e), UsableColumns(columns)).c_str());
        live->progress_line = true;
      } else {
        std::fprintf(o.out, "%s\n", RenderProgressText(e).c_str());
      }
      break;
    case v1::EVENT_TYPE_STEP_FINISHED:
      end_progress_line();
      print_lines(absl::StrCat("    ", T(e.step()), " ", StateWord(e.step_state(), o.color),
                               T(e.message()).empty() ? "" : ": " + T(e.message()), "\n"));
      break;
    case v1::EVENT_TYPE_LOG:
      end_progress_line();
      print_lines(
          absl::StrCat("    ", SeverityWord(e.severity(), o.color), ": ", T(e.message()), "\n"));
      break;
    case v1::EVENT_TYPE_STATE:
      end_progress_line();
      std::fprintf(o.out, "operation %s\n", OperationStateWord(e.state(), o.color).c_str());
      break;
    default:
      break;
  }
  std::fflush(o.out);
}

}  // namespace

std::string RenderProgressLine(const v1::OperationEvent& e) {
  const v1::Progress& p = e.progress();
  std::vector<std::string> parts = {absl::StrCat("    ", StepPlace(e))};
  std::string bar = Bar(p, 20);
  if (!bar.empty()) parts.push_back(bar.substr(0, bar.size() - 1));
  for (const std::string& part : {CountText(p), TimeText(p), T(e.message())}) {
    if (!part.empty()) parts.push_back(part);
  }
  return absl::StrJoin(parts, "  ");
}

std::string RenderProgressText(const v1::OperationEvent& e) {
  const v1::Progress& p = e.progress();
  std::vector<std::string> parts;
  for (const std::string& part :
       {CountText(p),
        Percent(p) >= 0 && p.unit() == "work" ? absl::StrCat(Percent(p), "%") : std::string(),
        TimeText(p)}) {
    if (!part.empty()) parts.push_back(part);
  }
  return absl::StrCat("    ", StepPlace(e), ": ", absl::StrJoin(parts, ", "), "  ", T(e.message()));
}

namespace {

// Ctrl-C handling: the first SIGINT asks for a cancel, a second detaches.
std::atomic<int> g_interrupts{0};
void OnInterrupt(int) { g_interrupts.fetch_add(1); }

}  // namespace

int ExitCodeForOperation(const v1::Operation& op) {
  switch (op.state()) {
    case v1::OPERATION_STATE_SUCCEEDED:
      return kExitOk;
    case v1::OPERATION_STATE_CANCELLED:
      return kExitCancelled;
    case v1::OPERATION_STATE_FAILED: {
      int code = ExitCodeFor(static_cast<grpc::StatusCode>(op.error().code()));
      return code == kExitOk ? kExitFailed : code;
    }
    default:
      return kExitFailed;
  }
}

std::string RenderOperationLine(const v1::Operation& op) {
  return absl::StrFormat(
      "%-26s %-13s %-11s %s  %s", T(op.id()),
      Word(v1::OperationKind_Name(op.kind()), "OPERATION_KIND_"),
      Word(v1::OperationState_Name(op.state()), "OPERATION_STATE_"),
      absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixSeconds(op.create_time().seconds()),
                       absl::UTCTimeZone()),
      T(op.target()));
}

std::string RenderOperation(const v1::Operation& op, bool color) {
  std::string s = absl::StrFormat("%-14s %s\n%-14s %s\n%-14s %s\n", "operation", T(op.id()), "kind",
                                  Word(v1::OperationKind_Name(op.kind()), "OPERATION_KIND_"),
                                  "state", OperationStateWord(op.state(), color));
  if (!T(op.target()).empty()) absl::StrAppendFormat(&s, "%-14s %s\n", "target", T(op.target()));
  if (op.progress().total() > 0) {
    absl::StrAppendFormat(
        &s, "%-14s %d of %d steps%s\n", "progress", op.progress().done(), op.progress().total(),
        op.progress().elapsed_seconds() > 0
            ? ", " + (op.has_end_time() ? std::string("took ") : std::string("elapsed ")) +
                  Clock(op.progress().elapsed_seconds())
            : "");
  }
  for (const v1::Step& step : op.steps()) {
    double secs =
        step.has_end_time()
            ? static_cast<double>(step.end_time().seconds() - step.start_time().seconds()) +
                  (step.end_time().nanos() - step.start_time().nanos()) / 1e9
            : 0;
    const std::string state = Word(v1::StepState_Name(step.state()), "STEP_STATE_");
    absl::StrAppendFormat(&s, "%-14s %s%s %s%s\n", "  " + T(step.name()),
                          StateWord(step.state(), color),
                          std::string(state.size() < 10 ? 10 - state.size() : 0, ' '),
                          secs > 0 && step.has_start_time() ? absl::StrFormat("%.1fs ", secs) : "",
                          T(step.message()));
  }
  if (op.has_error()) {
    absl::StrAppendFormat(
        &s, "%-14s %s%s\n", "error", T(op.error().message()),
        T(op.error().step()).empty() ? "" : " (step " + T(op.error().step()) + ")");
  }
  if (op.has_restore_report() && op.restore_report().has_secrets_check()) {
    const v1::SecretsCheck& c = op.restore_report().secrets_check();
    absl::StrAppendFormat(&s, "%-14s %s%s\n", "secrets check",
                          !c.checked()   ? "not checked: "
                          : c.accepted() ? "MISMATCH (accepted): "
                          : c.mismatch() ? "MISMATCH: "
                                         : "ok: ",
                          T(c.summary()));
  }
  if (op.has_restore_report() && op.restore_report().database().empty()) {
    const v1::RestoreReport& r = op.restore_report();
    if (r.has_pre_swap_checks()) s += RenderPreSwapChecks(r.pre_swap_checks());
    absl::StrAppendFormat(&s, "%-14s %d files written (%s), %d unchanged\n", "media",
                          r.media_files(), HumanBytes(r.media_bytes()), r.media_files_skipped());
    for (const std::string& w : r.warnings())
      absl::StrAppendFormat(&s, "%s %s\n", Paint("warning       ", Color::kYellow, color), T(w));
  } else if (op.has_restore_report()) {
    const v1::RestoreReport& r = op.restore_report();
    absl::StrAppendFormat(&s, "%-14s %s\n", "restored", T(r.database()));
    absl::StrAppendFormat(&s, "%-14s %s\n", "previous",
                          T(r.previous_database()).empty() ? "(none: the database was new)"
                                                           : T(r.previous_database()) + " (kept)");
    absl::StrAppendFormat(&s, "%-14s %s, %d tables, %d rows\n", "dump", T(r.dump().path()),
                          r.tables(), r.rows());
    if (r.load_connections() > 0) {
      absl::StrAppendFormat(&s, "%-14s %d connection%s\n", "loaded by", r.load_connections(),
                            r.load_connections() == 1 ? " (serial)" : "s in parallel");
    }
    if (!T(r.schema_version()).empty())
      absl::StrAppendFormat(&s, "%-14s %s\n", "schema", T(r.schema_version()));
    absl::StrAppendFormat(&s, "%-14s PostgreSQL %s\n", "server", T(r.target_server_version()));
    int passed = 0;
    for (const auto& c : r.verification().checks()) passed += c.passed() ? 1 : 0;
    absl::StrAppendFormat(&s, "%-14s %s (%d of %d checks)\n", "verification",
                          r.verification().passed() ? Paint("passed", Color::kGreen, color)
                                                    : Paint("FAILED", Color::kRed, color),
                          passed, r.verification().checks_size());
    if (r.has_pre_swap_checks()) s += RenderPreSwapChecks(r.pre_swap_checks());
    for (const std::string& w : r.rewrites())
      absl::StrAppendFormat(&s, "%-14s %s\n", "rewrite", T(w));
    if (r.media_files() + r.media_files_skipped() > 0) {
      absl::StrAppendFormat(&s, "%-14s %d files written (%s), %d unchanged\n", "media",
                            r.media_files(), HumanBytes(r.media_bytes()), r.media_files_skipped());
    }
    if (r.has_missing_media()) {
      const v1::MissingMedia& m = r.missing_media();
      absl::StrAppendFormat(&s, "%-14s %s\n", "media check", T(m.summary()));
      // The lost files first, then the remote copies (the report lists up
      // to 100 of each).
      int shown = 0;
      for (const auto* files : {&m.local_files(), &m.remote_files()}) {
        for (const v1::MissingMediaFile& f : *files) {
          if (shown == 10) break;
          ++shown;
          absl::StrAppendFormat(&s, "%-14s %s %s %d: %s\n", "missing",
                                files == &m.local_files() ? "local" : "remote", T(f.kind()), f.id(),
                                T(f.path()));
        }
      }
      const int64_t listed = m.local_files_size() + m.remote_files_size();
      if (listed > 10) {
        absl::StrAppendFormat(&s, "%-14s ... %d more in the report (--json)\n", "missing",
                              m.local_missing() + m.remote_missing() - 10);
      }
    }
    for (const v1::TootctlResult& t : r.tootctl()) {
      absl::StrAppendFormat(
          &s, "%-14s %s: %s%s\n", "tootctl", T(t.command()),
          T(t.summary()).empty() ? "(no summary)" : T(t.summary()),
          t.item_errors() > 0 ? absl::StrFormat(" (%d item errors)", t.item_errors()) : "");
    }
    for (const std::string& w : r.warnings())
      absl::StrAppendFormat(&s, "%s %s\n", Paint("warning       ", Color::kYellow, color), T(w));
    if (!r.secrets_differing().empty()) {
      absl::StrAppendFormat(
          &s, "%-14s %s\n", "secrets",
          absl::StrCat("differ from this host's: ", T(absl::StrJoin(r.secrets_differing(), ", "))));
    }
    for (const std::string& n : r.next_steps())
      absl::StrAppendFormat(&s, "%-14s %s\n", "next", T(n));
    if (!T(r.previous_database()).empty()) {
      absl::StrAppendFormat(&s, "%-14s mastodon-restore rollback --database %s   (to undo)\n",
                            "undo", T(r.database()));
    }
    // The report ends with the verdicts of the checks after the swap.
    absl::StrAppend(&s, RenderAfterSwapChecks(r));
  }
  if (op.has_rollback_result()) {
    absl::StrAppendFormat(&s, "%-14s %s\n%-14s %s\n", "restored",
                          T(op.rollback_result().restored_database()), "replaced",
                          T(op.rollback_result().replaced_database_renamed_to()));
  }
  if (op.has_migrate_result()) {
    const v1::MigrateResult& r = op.migrate_result();
    if (!T(r.database()).empty())
      absl::StrAppendFormat(&s, "%-14s %s\n", "migrated", T(r.database()));
    if (!T(r.previous_database()).empty()) {
      absl::StrAppendFormat(&s, "%-14s %s\n", "previous", T(r.previous_database()));
    }
    if (r.method() == v1::FOLLOW_METHOD_PHYSICAL) {
      absl::StrAppendFormat(&s, "%-14s PostgreSQL %s -> %s, physical: %s copied in %.1f s\n",
                            "servers", T(r.source_server_version()), T(r.target_server_version()),
                            HumanBytes(r.base_backup_bytes()), r.base_backup_seconds());
      if (!T(r.previous_data_directory()).empty()) {
        absl::StrAppendFormat(&s, "%-14s %s (this host's cluster before; %s is the copy)\n",
                              "previous", T(r.previous_data_directory()), T(r.data_directory()));
      }
    } else {
      absl::StrAppendFormat(&s, "%-14s PostgreSQL %s -> %s, %d tables, %d sequences\n", "servers",
                            T(r.source_server_version()), T(r.target_server_version()), r.tables(),
                            r.sequences());
    }
    if (r.downtime_seconds() > 0) {
      absl::StrAppendFormat(&s,
                            "%-14s %.1f s (%.1f s of it for the last changes; %s behind at "
                            "the cut-over)\n",
                            "downtime", r.downtime_seconds(), r.catch_up_seconds(),
                            HumanBytes(r.lag_bytes_at_cutover()));
    }
    if (r.failed_cutovers() > 0) {
      absl::StrAppendFormat(&s, "%-14s %d failed and went back to following (see the warnings)\n",
                            "cut-overs", r.failed_cutovers());
    }
    if (!T(r.source_runtime()).empty()) {
      absl::StrAppendFormat(
          &s, "%-14s %s, Mastodon %s%s\n", "old host", T(r.source_runtime()),
          T(r.source_mastodon_version()).empty() ? std::string("(version unknown)")
                                                 : T(r.source_mastodon_version()),
          T(r.source_app()).empty() ? std::string()
                                    : absl::StrCat("; its app ", T(r.source_app())));
    }
    if (!T(r.media_bucket()).empty()) {
      absl::StrAppendFormat(&s, "%-14s in the bucket %s on both hosts (nothing to copy)\n", "media",
                            T(r.media_bucket()));
    }
    if (r.media_passes() > 0) {
      absl::StrAppendFormat(&s, "%-14s %d files, %s in %.1f s (%d pass%s while following)", "media",
                            r.media_files(), HumanBytes(r.media_bytes()), r.media_seconds(),
                            r.media_passes(), r.media_passes() == 1 ? "" : "es");
      if (r.media_delta_seconds() > 0) {
        absl::StrAppendFormat(&s, "; at the cut-over %d files, %s in %.1f s", r.media_delta_files(),
                              HumanBytes(r.media_delta_bytes()), r.media_delta_seconds());
      }
      s += "\n";
    }
    for (const std::string& w : r.warnings())
      absl::StrAppendFormat(&s, "%s %s\n", Paint("warning       ", Color::kYellow, color), T(w));
  }
  if (op.has_db_migrate_result()) {
    const v1::DbMigrateResult& r = op.db_migrate_result();
    absl::StrAppendFormat(
        &s, "%-14s %s -> %s\n", "schema",
        T(r.schema_version_before()).empty() ? "(none)" : T(r.schema_version_before()),
        T(r.schema_version_after()).empty() ? "(none)" : T(r.schema_version_after()));
    absl::StrAppendFormat(&s, "%-14s %d ran, %d pending\n", "migrations", r.migrations_size(),
                          r.pending());
  }
  if (op.has_tootctl_tasks_result()) {
    for (const v1::TootctlResult& t : op.tootctl_tasks_result().commands()) {
      absl::StrAppendFormat(
          &s, "%-14s %s: %s%s\n", "tootctl", T(t.command()),
          T(t.summary()).empty() ? "(no summary)" : T(t.summary()),
          t.item_errors() > 0 ? absl::StrFormat(" (%d item errors)", t.item_errors()) : "");
    }
  }
  if (op.has_verify_result()) {
    for (const auto& c : op.verify_result().checks()) {
      absl::StrAppendFormat(&s, "%-14s %-4s %s: %s\n", "check", c.passed() ? "ok" : "FAIL",
                            T(c.name()), T(c.message()));
    }
  }
  return s;
}

int FollowOperation(v1::RestoreAgentService::StubInterface* stub, const std::string& id,
                    const FollowOptions& o) {
  if (o.handle_interrupt) {
    g_interrupts.store(0);
    ::signal(SIGINT, OnInterrupt);
  }
  int64_t next = o.from_sequence > 0 ? o.from_sequence : 1;
  LiveState live;
  if (o.tty) {
    live.width =
        std::make_unique<TerminalWidth>(o.terminal_fd >= 0 ? o.terminal_fd : ::fileno(o.out));
  }
  bool cancel_sent = false;
  bool ended = false;
  int failures = 0;
  while (!ended) {
    grpc::ClientContext ctx;
    if (o.prepare) o.prepare(&ctx);
    v1::WatchOperationRequest request;
    request.set_id(id);
    request.set_from_sequence(next);
    auto reader = stub->WatchOperation(&ctx, request);
    // A helper thread turns Ctrl-C into a cancel request, or a detach.
    std::atomic<bool> reading{true};
    std::thread interrupts([&]() {
      while (reading.load()) {
        int n = g_interrupts.load();
        if (n >= 2) {
          ctx.TryCancel();
          return;
        }
        if (n == 1 && !cancel_sent) {
          cancel_sent = true;
          std::fprintf(o.err, "\ncancelling %s (Ctrl-C again to detach)\n", T(id).c_str());
          grpc::ClientContext c;
          if (o.prepare) o.prepare(&c);
          v1::CancelOperationRequest req;
          req.set_id(id);
          v1::CancelOperationResponse resp;
          stub->CancelOperation(&c, req, &resp);
        }
        absl::SleepFor(absl::Milliseconds(50));
      }
    });
    v1::WatchOperationResponse response;
    while (reader->Read(&response)) {
      failures = 0;
      next = response.event().sequence() + 1;
      if (o.json) {
        google::protobuf::util::JsonPrintOptions options;
        options.preserve_proto_field_names = true;
        std::string line;
        (void)google::protobuf::util::MessageToJsonString(response, &line, options);
        std::fprintf(o.out, "%s\n", TerminalSafeJson(line).c_str());
        std::fflush(o.out);
      } else {
        PrintEvent(response, o, &live);
      }
      if (response.event().type() == v1::EVENT_TYPE_STATE &&
          response.event().state() != v1::OPERATION_STATE_RUNNING &&
          response.event().state() != v1::OPERATION_STATE_PENDING &&
          response.event().state() != v1::OPERATION_STATE_FOLLOWING) {
        ended = true;
      }
    }
    grpc::Status status = reader->Finish();
    reading.store(false);
    interrupts.join();
    if (g_interrupts.load() >= 2) {
      std::fprintf(o.err, "detached; the operation goes on: mastodon-restore ops watch %s\n",
                   T(id).c_str());
      return kExitOk;
    }
    if (ended || status.ok()) break;
    if (status.error_code() == grpc::StatusCode::NOT_FOUND || ++failures > 5) {
      std::fprintf(o.err, "mastodon-restore: error: lost the operation %s: %s\n", T(id).c_str(),
                   T(status.error_message()).c_str());
      return ExitCodeFor(status.error_code());
    }
    absl::SleepFor(absl::Seconds(1));  // the agent may be restarting: resume from `next`
  }
  if (o.handle_interrupt) ::signal(SIGINT, SIG_DFL);
  grpc::ClientContext ctx;
  if (o.prepare) o.prepare(&ctx);
  v1::GetOperationRequest request;
  request.set_id(id);
  v1::GetOperationResponse final_state;
  grpc::Status status = stub->GetOperation(&ctx, request, &final_state);
  if (!status.ok()) return ExitCodeFor(status.error_code());
  if (!o.json) {
    const int columns = o.tty ? TerminalColumns(::fileno(o.out)) : 0;
    std::fputs(
        WrapToWidth(RenderOperation(final_state.operation(), o.color), UsableColumns(columns))
            .c_str(),
        o.out);
  }
  return ExitCodeForOperation(final_state.operation());
}

}  // namespace mastodon_restore
