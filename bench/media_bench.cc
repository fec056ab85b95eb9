// Media restore benchmark: writes a media archive of --files files totalling
// about --mb megabytes (a Mastodon-shaped system/ tree, incompressible
// content), then times, interleaved over --runs runs, `tar -xf` of it and the
// agent's media restore into an empty directory, and the agent's second,
// unchanged run. Reports medians, ratios and the peak RSS.
#include <archive.h>
#include <archive_entry.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "agent/common/args.h"
#include "agent/common/env.h"
#include "agent/common/subprocess.h"
#include "agent/inventory/inspector.h"
#include "agent/media/media_restore.h"
#include "bench/bench_common.h"

namespace mastodon_restore {
namespace {

using bench::Median;

bool WriteMediaTar(const std::string& path, int files, int64_t bytes) {
  struct archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (archive_write_open_filename(a, path.c_str()) != ARCHIVE_OK) return false;
  bench::ForEachMediaFile(files, bytes, [&](const std::string& rel, int i, absl::string_view data) {
    const std::string name = "system/" + rel;
    struct archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, 1700000000 + i, 0);
    archive_entry_set_size(e, static_cast<int64_t>(data.size()));
    archive_write_header(a, e);
    archive_write_data(a, data.data(), data.size());
    archive_entry_free(e);
    return true;
  });
  archive_write_close(a);
  archive_write_free(a);
  return true;
}

int Run(const std::vector<std::string>& args) {
  const std::optional<bench::TreeBenchFlags> flags = bench::ParseTreeBenchFlags(
      args, "media_bench", "files in the archive", "where the archive and extractions go", "/tmp");
  if (!flags.has_value()) return 2;
  const int files = flags->files, mb = flags->mb, runs = flags->runs;
  auto env = NewPosixEnv();
  auto runner = NewPosixCommandRunner();
  std::string work = absl::StrCat(flags->work_dir, "/mr-media-bench");
  auto sh = [&](std::vector<std::string> argv) {
    CommandSpec spec;
    spec.argv = std::move(argv);
    spec.env = {"PATH=/usr/bin:/bin"};
    auto r = runner->Run(spec, nullptr);
    return r.ok() && r->success();
  };
  sh({"rm", "-rf", work});
  sh({"mkdir", "-p", work});
  const std::string tar = work + "/media.tar";
  absl::Time t0 = absl::Now();
  if (!WriteMediaTar(tar, files, static_cast<int64_t>(mb) << 20)) return 1;
  std::fprintf(stderr, "media_bench: archive written in %s\n",
               absl::FormatDuration(absl::Now() - t0).c_str());
  std::vector<double> tar_s, first_s, second_s;
  MediaRestoreResult last_first, last_second;
  for (int run = 0; run < runs; ++run) {
    sh({"rm", "-rf", work + "/tar-out", work + "/agent-out"});
    sh({"mkdir", "-p", work + "/tar-out"});
    ::sync();
    absl::Time start = absl::Now();
    if (!sh({"tar", "-xf", tar, "-C", work + "/tar-out"})) return 1;
    tar_s.push_back(absl::ToDoubleSeconds(absl::Now() - start));
    ::sync();
    MediaRestoreOptions o;
    o.source_path = tar;
    o.source.allowed_roots = {work};
    o.target_dir = work + "/agent-out/system";
    o.operation_id = absl::StrCat("bench", run);
    start = absl::Now();
    // The inventory is timed with the restore, as the agent's restore takes it.
    auto manifest = InspectBackup(o.source_path, o.source, InspectOptions(), runner.get());
    if (!manifest.ok()) return 1;
    o.inventory = manifest->media();
    auto first = RestoreMedia(o, runner.get(), env.get());
    first_s.push_back(absl::ToDoubleSeconds(absl::Now() - start));
    if (!first.ok()) {
      std::fprintf(stderr, "media_bench: %s\n", std::string(first.status().message()).c_str());
      return 1;
    }
    last_first = *first;
    start = absl::Now();
    manifest = InspectBackup(o.source_path, o.source, InspectOptions(), runner.get());
    if (!manifest.ok()) return 1;
    o.inventory = manifest->media();
    auto second = RestoreMedia(o, runner.get(), env.get());
    second_s.push_back(absl::ToDoubleSeconds(absl::Now() - start));
    if (!second.ok()) return 1;
    last_second = *second;
  }
  struct rusage usage;
  ::getrusage(RUSAGE_SELF, &usage);
  const double t = Median(tar_s), f = Median(first_s), s2 = Median(second_s);
  std::string report = absl::StrFormat(
      "# Media restore benchmark, %s\n\nCommand: `media_bench --files %d --mb %d --runs %d` "
      "(uncompressed tar, page cache warm, medians of interleaved runs)\n\n"
      "| case | median | speed vs tar -xf | note |\n|---|---:|---:|---|\n"
      "| tar -xf | %.2f s | 1.00x | %d files, %.0f MB |\n"
      "| agent, first restore | %.2f s | %.2fx | %d written, staged then moved |\n"
      "| agent, second unchanged run | %.2f s | %.1fx vs its first run | %d skipped |\n\n"
      "Peak RSS of the benchmark process: %.1f MB\n",
      absl::FormatTime("%Y-%m-%d", absl::Now(), absl::UTCTimeZone()), files, mb, runs, t, files,
      last_first.bytes_written / 1e6, f, t / f, static_cast<int>(last_first.files_written), s2,
      f / s2, static_cast<int>(last_second.files_skipped), usage.ru_maxrss / 1024.0);
  std::fputs(report.c_str(), stdout);
  if (!flags->output.empty()) std::ofstream(flags->output) << report;
  sh({"rm", "-rf", work});
  return 0;
}

}  // namespace
}  // namespace mastodon_restore

int main(int argc, char** argv) {
  return mastodon_restore::Run(std::vector<std::string>(argv + 1, argv + argc));
}
