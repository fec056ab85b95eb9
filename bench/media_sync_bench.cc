// Media pre-sync benchmark (a live migration's media passes): a media tree
// of --files files totalling about --mb megabytes (Mastodon-shaped,
// incompressible) in a directory served by a real agent (its --media-dir,
// ListMedia/ReadMedia over TCP on loopback), copied into an empty
// directory by the agent's migration path (NewPeerMediaStore through the
// media restore: staged, then moved in) and by `rsync -a` of the same tree,
// interleaved over --runs runs; then each one's second, unchanged pass.
// Reports medians, throughput, ratios and the peak RSS of both agents'
// sides (the serving agent's VmHWM, this process's).
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "agent/common/args.h"
#include "agent/common/env.h"
#include "agent/common/peer_agent.h"
#include "agent/common/status_macros.h"
#include "agent/common/subprocess.h"
#include "agent/inventory/inspector.h"
#include "agent/media/media_restore.h"
#include "bench/bench_common.h"

namespace mastodon_restore {
namespace {

using bench::Median;

// Writes the media benchmarks' tree below `root`.
bool WriteTree(const std::string& root, int files, int64_t bytes, Env* env) {
  return bench::ForEachMediaFile(
      files, bytes, [&](const std::string& rel, int, absl::string_view data) {
        const std::string path = absl::StrCat(root, "/", rel);
        if (!env->CreateDirs(path.substr(0, path.rfind('/')), 0755, false).ok()) return false;
        std::ofstream out(path, std::ios::binary);
        out.write(data.data(), static_cast<std::streamsize>(data.size()));
        return static_cast<bool>(out);
      });
}

int Run(const std::vector<std::string>& args) {
  const std::optional<bench::TreeBenchFlags> flags = bench::ParseTreeBenchFlags(
      args, "media_sync_bench", "files in the tree", "where the trees go", "/tmp");
  if (!flags.has_value()) return 2;
  const int files = flags->files, mb = flags->mb, runs = flags->runs;
  auto env = NewPosixEnv();
  auto runner = NewPosixCommandRunner();
  const std::string work = absl::StrCat(flags->work_dir, "/mr-media-sync-bench");
  auto sh = [&](std::vector<std::string> argv) {
    const std::string what = argv[0];
    return bench::RunTool(runner.get(), "/", std::move(argv), what, "media_sync_bench");
  };
  sh({"rm", "-rf", work});
  const std::string source = work + "/old-media";
  if (!WriteTree(source, files, static_cast<int64_t>(mb) << 20, env.get())) return 1;

  // The old host's agent, serving its media directory on loopback with
  // TLS, asking for the client's certificate (as between two hosts).
  if (!bench::MakeCertificates(runner.get(), work, "media_sync_bench")) return 1;
  CommandSpec agent;
  agent.argv = {
      MR_AGENT_BIN,      "--socket",      work + "/agent.sock", "--state-dir", work + "/state",
      "--runtime",       "none",          "--media-dir",        source,        "--listen",
      "127.0.0.1:0",     "--tls-cert",    work + "/server.pem", "--tls-key",   work + "/server.key",
      "--tls-client-ca", work + "/ca.pem"};
  agent.env = {"PATH=/usr/bin:/bin"};
  agent.output_file = work + "/agent.log";
  auto served = runner->Start(agent);
  if (!served.ok()) return 1;
  int port = 0;
  for (int i = 0; i < 200 && port == 0; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    std::ifstream log(work + "/agent.log");
    std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
    std::smatch m;
    if (std::regex_search(text, m, std::regex("listening on TCP.* port=(\\d+)"))) {
      absl::SimpleAtoi(m[1].str(), &port);
    }
  }
  if (port == 0) return 1;
  PeerTls tls;
  auto ca = env->ReadFile(work + "/ca.pem");
  auto cert = env->ReadFile(work + "/client.pem");
  auto key = env->ReadFile(work + "/client.key");
  if (!ca.ok() || !cert.ok() || !key.ok()) return 1;
  tls.ca_pem = *ca;
  tls.cert_pem = *cert;
  tls.key_pem = *key;
  auto connector = NewGrpcPeerConnector(
      {{"old", PeerEntry{"old", absl::StrCat("127.0.0.1:", port), ""}}}, tls, absl::Minutes(10));
  auto opened = connector->Open("old");
  if (!opened.ok()) return 1;
  std::shared_ptr<PeerAgent> peer = std::move(*opened);

  auto agent_pass = [&](const std::string& out, int pass) -> absl::StatusOr<MediaRestoreResult> {
    // As a migration's pass: counted without the hashes, then listed with
    // them (what arrives is checked; the serving agent keeps them for the
    // next pass, this side records them on the files).
    SourceOptions s;
    s.bucket = NewPeerMediaStore(peer, "old", nullptr);
    ASSIGN_OR_RETURN(auto manifest, InspectBackup("agent:old", s, InspectOptions(), runner.get()));
    MediaRestoreOptions o;
    o.source_path = "agent:old";
    o.source = s;
    o.source.bucket = NewPeerMediaStore(peer, "old", nullptr, /*sha256=*/true);
    o.inventory = manifest.media();
    o.target_dir = out;
    o.operation_id = absl::StrCat("op-bench-", pass);
    return RestoreMedia(o, runner.get(), env.get());
  };
  std::vector<double> rsync1, rsync2, rsync_checksum, agent1, agent2;
  MediaRestoreResult first, second;
  for (int run = 0; run < runs; ++run) {
    sh({"rm", "-rf", work + "/rsync-out", work + "/agent-out"});
    ::sync();
    absl::Time start = absl::Now();
    if (!sh({"rsync", "-a", source + "/", work + "/rsync-out/"})) return 1;
    rsync1.push_back(absl::ToDoubleSeconds(absl::Now() - start));
    start = absl::Now();
    if (!sh({"rsync", "-a", source + "/", work + "/rsync-out/"})) return 1;
    rsync2.push_back(absl::ToDoubleSeconds(absl::Now() - start));
    // Unchanged again, compared by content as the agent's listing does.
    start = absl::Now();
    if (!sh({"rsync", "-a", "--checksum", source + "/", work + "/rsync-out/"})) return 1;
    rsync_checksum.push_back(absl::ToDoubleSeconds(absl::Now() - start));
    ::sync();
    start = absl::Now();
    auto a = agent_pass(work + "/agent-out", 2 * run);
    agent1.push_back(absl::ToDoubleSeconds(absl::Now() - start));
    if (!a.ok()) {
      std::fprintf(stderr, "media_sync_bench: %s\n", std::string(a.status().message()).c_str());
      return 1;
    }
    first = *a;
    start = absl::Now();
    a = agent_pass(work + "/agent-out", 2 * run + 1);
    agent2.push_back(absl::ToDoubleSeconds(absl::Now() - start));
    if (!a.ok()) return 1;
    second = *a;
  }
  if (!sh({"diff", "-r", "-q", source, work + "/agent-out"})) return 1;
  const double served_rss = bench::ProcStatusMb((*served)->pid(), "VmHWM:");
  (*served)->Signal(SIGTERM);
  (*served)->Wait(absl::Seconds(30));
  struct rusage usage;
  ::getrusage(RUSAGE_SELF, &usage);
  const double mbytes = first.bytes_written / 1e6;
  const double r1 = Median(rsync1), r2 = Median(rsync2), rc = Median(rsync_checksum),
               a1 = Median(agent1), a2 = Median(agent2);
  const std::string report = absl::StrFormat(
      "# Media pre-sync benchmark, %s\n\nCommand: `media_sync_bench --files %d --mb %d --runs "
      "%d` (one host: the serving agent on 127.0.0.1 over gRPC with mutual TLS against `rsync -a` "
      "between two "
      "local directories; page cache warm; medians of interleaved runs; trees compared with "
      "`diff -r` after)\n\n"
      "| case | median | throughput | vs rsync -a | note |\n|---|---:|---:|---:|---|\n"
      "| rsync -a, first pass | %.2f s | %.0f MB/s | 1.00x | %d files, %.0f MB |\n"
      "| agent to agent, first pass | %.2f s | %.0f MB/s | %.2fx | listed with SHA-256s, read in "
      "1 MiB ranges, checked, staged, moved in |\n"
      "| rsync -a, second pass (unchanged) | %.2f s | | 1.00x | size and mtime |\n"
      "| rsync -a --checksum, second pass (unchanged) | %.2f s | | %.2fx | content, hashed on "
      "both sides |\n"
      "| agent to agent, second pass (unchanged) | %.2f s | | %.2fx | %d files skipped by "
      "content (hashes kept on both sides) |\n\n"
      "Peak RSS: the serving agent %.1f MB, the copying side (this process) %.1f MB\n",
      absl::FormatTime("%Y-%m-%d", absl::Now(), absl::UTCTimeZone()), files, mb, runs, r1,
      mbytes / r1, files, mbytes, a1, mbytes / a1, r1 / a1, r2, rc, r2 / rc, a2, r2 / a2,
      static_cast<int>(second.files_skipped), served_rss, usage.ru_maxrss / 1024.0);
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
