// Detection benchmark: builds a Mastodon-shaped database of about --mb
// megabytes of plain dump in a throwaway PostgreSQL cluster, dumps it with the
// real pg_dump (plain, then xz and zstd of it), and measures
//   - shallow detection of each file (target: < 50 ms whatever the size),
//   - the deep scan of the uncompressed dump (target: >= 500 MB/s),
// through the agent's library, reporting medians and the peak RSS.
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

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
#include "agent/database/local_cluster.h"
#include "agent/inventory/inspector.h"
#include "bench/bench_common.h"

namespace mastodon_restore {
namespace {

using bench::Median;

struct Measurement {
  std::string file;
  int64_t bytes = 0;
  double median_ms = 0;
  double mb_per_s = 0;
  std::string note;
};

int64_t FileSize(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  return in.good() ? static_cast<int64_t>(in.tellg()) : -1;
}

std::string MachineDescription(Env* env) {
  struct utsname u;
  ::uname(&u);
  std::string cpu = "unknown cpu";
  std::ifstream info("/proc/cpuinfo");
  std::string line;
  while (std::getline(info, line)) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  return absl::StrFormat("%s, %d cores, %.1f GiB RAM, Linux %s", cpu, env->Cpus(),
                         env->Memory().total_bytes / double(1 << 30), u.release);
}

int Run(const std::vector<std::string>& args) {
  const std::vector<FlagSpec> specs = {
      {"mb", "N", "approximate size of the plain dump in MB (default 700)"},
      {"runs", "N", "runs per measurement (default 5)"},
      {"work-dir", "DIR", "where the cluster and dumps go (default /tmp)"},
      {"output", "FILE", "also write the markdown report here"},
      {"drop-caches", "", "also measure with the page cache dropped before each run (root)"},
      {"help", "", "print this help", false, 'h'},
  };
  auto parsed = ParseArgs(args, specs);
  if (!parsed.ok() || parsed->GetBool("help")) {
    std::fprintf(stderr, "usage: detect_bench [flags]\n%s%s\n", FormatFlagHelp(specs).c_str(),
                 parsed.ok() ? "" : std::string(parsed.status().message()).c_str());
    return parsed.ok() ? 0 : 2;
  }
  int mb = 700, runs = 5;
  if (!absl::SimpleAtoi(parsed->Get("mb", "700"), &mb) ||
      !absl::SimpleAtoi(parsed->Get("runs", "5"), &runs) || mb <= 0 || runs <= 0) {
    std::fprintf(stderr, "detect_bench: --mb and --runs take positive numbers\n");
    return 2;
  }
  const std::string work = parsed->Get("work-dir", "/tmp");
  auto env = NewPosixEnv();
  auto runner = NewPosixCommandRunner();

  LocalClusterOptions options;
  options.fast_unsafe = true;
  options.stop_with_parent = true;
  if (auto s = RunAsUnprivilegedUserIfRoot(&options); !s.ok()) {
    std::fprintf(stderr, "detect_bench: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  auto base = CreateClusterBaseDir(work, "mr-detect-bench-", options);
  if (!base.ok()) {
    std::fprintf(stderr, "detect_bench: %s\n", std::string(base.status().message()).c_str());
    return 1;
  }
  options.base_dir = *base;
  auto cluster = LocalCluster::Start(options, runner.get(), env.get());
  if (!cluster.ok()) {
    std::fprintf(stderr, "detect_bench: %s\n", std::string(cluster.status().message()).c_str());
    return 1;
  }
  auto sh = [&](std::vector<std::string> argv, const std::string& what) {
    CommandSpec spec;
    spec.argv = std::move(argv);
    spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
    spec.cwd = *base;
    auto r = runner->Run(spec, nullptr);
    if (!r.ok() || !r->success()) {
      std::fprintf(stderr, "detect_bench: %s failed: %s %s\n", what.c_str(),
                   r.ok() ? r->Describe().c_str() : std::string(r.status().message()).c_str(),
                   r.ok() ? r->stderr_text.c_str() : "");
      return false;
    }
    return true;
  };
  const std::string bin = (*cluster)->bin_dir();
  const std::string psql = bin + "/psql";
  // About 240 bytes of dump per status row, with text that does not compress
  // trivially.
  const int64_t rows = static_cast<int64_t>(mb) * 1000000 / 240;
  std::fprintf(stderr, "detect_bench: generating %lld statuses (~%d MB of dump)\n",
               static_cast<long long>(rows), mb);
  absl::Time t0 = absl::Now();
  if (!sh({psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", (*cluster)->ConnInfo(), "-c",
           "CREATE DATABASE mastodon_production"},
          "createdb") ||
      !sh({psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
           (*cluster)->ConnInfo("mastodon_production"), "-c",
           absl::StrCat(
               "CREATE TABLE schema_migrations (version varchar PRIMARY KEY);"
               "INSERT INTO schema_migrations SELECT to_char(timestamp '2016-01-01' + i * "
               "interval '3 days', 'YYYYMMDDHH24MISS') FROM generate_series(1, 500) i;"
               "CREATE TABLE accounts (id bigint PRIMARY KEY, username varchar, note text);"
               "INSERT INTO accounts SELECT i, 'user' || i, md5(i::text) FROM "
               "generate_series(1, 10000) i;"
               "CREATE TABLE statuses (id bigint PRIMARY KEY, account_id bigint, uri varchar, "
               "text text, created_at timestamp, language varchar);"
               "INSERT INTO statuses SELECT i, i % 10000, 'https://example.social/users/u' || "
               "(i % 10000) || '/statuses/' || i, md5(i::text) || ' ' || md5((i * 31)::text) || "
               "' ' || md5((i * 17)::text) || ' ' || md5((i * 7)::text) || ' ' || "
               "substr(md5((i * 3)::text), 1, (i % 32)), timestamp '2022-01-01' + i * interval '1 "
               "second', 'en' FROM generate_series(1, ",
               rows, ") i;")},
          "generate data")) {
    return 1;
  }
  const std::string dump = *base + "/dump.sql";
  if (!sh({bin + "/pg_dump", "-d", (*cluster)->ConnInfo("mastodon_production"), "-f", dump},
          "pg_dump") ||
      !sh({"xz", "-T2", "-2", "-k", "dump.sql"}, "xz") ||
      !sh({"zstd", "-q", "-T2", "-k", "dump.sql"}, "zstd")) {
    return 1;
  }
  (*cluster)->Stop().IgnoreError();
  std::fprintf(stderr, "detect_bench: data ready in %s\n",
               absl::FormatDuration(absl::Now() - t0).c_str());

  SourceOptions source;
  source.allowed_roots = {*base};
  std::vector<Measurement> results;
  const bool cold = parsed->GetBool("drop-caches");
  // Drops the page cache so that a run reads from the disk.
  auto drop_caches = [&]() {
    ::sync();
    std::ofstream("/proc/sys/vm/drop_caches") << "3\n";
  };
  for (const std::string name : {"dump.sql", "dump.sql.xz", "dump.sql.zst"}) {
    const std::string path = *base + "/" + name;
    std::vector<double> ms;
    std::string note;
    for (int i = 0; i < runs; ++i) {
      InspectOptions inspect;
      absl::Time start = absl::Now();
      auto info = DetectDumpInSource(path, "", source, inspect, runner.get());
      ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
      if (!info.ok()) {
        std::fprintf(stderr, "detect_bench: %s\n", std::string(info.status().message()).c_str());
        return 1;
      }
      note = absl::StrCat(info->dumper_version().substr(0, 5),
                          ", mastodon=", info->is_mastodon() ? "yes" : "no");
    }
    results.push_back({name + " (shallow)", FileSize(path), Median(ms), 0, note});
  }
  {
    std::vector<double> ms;
    int64_t rows_seen = 0;
    for (int i = 0; i < std::max(3, runs / 2); ++i) {
      InspectOptions inspect;
      inspect.deep = true;
      absl::Time start = absl::Now();
      auto info = DetectDumpInSource(dump, "", source, inspect, runner.get());
      ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
      if (!info.ok()) {
        std::fprintf(stderr, "detect_bench: %s\n", std::string(info.status().message()).c_str());
        return 1;
      }
      rows_seen = 0;
      for (const auto& t : info->tables()) rows_seen += t.rows();
    }
    double median = Median(ms);
    int64_t size = FileSize(dump);
    results.push_back({"dump.sql (deep scan)", size, median, size / 1e6 / (median / 1000.0),
                       absl::StrCat(rows_seen, " rows counted")});
  }
  if (cold) {
    for (const std::string name : {"dump.sql", "dump.sql.xz"}) {
      const std::string path = *base + "/" + name;
      std::vector<double> shallow_ms, deep_ms;
      for (int i = 0; i < 3; ++i) {
        InspectOptions inspect;
        drop_caches();
        absl::Time start = absl::Now();
        if (!DetectDumpInSource(path, "", source, inspect, runner.get()).ok()) return 1;
        shallow_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
        inspect.deep = true;
        drop_caches();
        start = absl::Now();
        if (!DetectDumpInSource(path, "", source, inspect, runner.get()).ok()) return 1;
        deep_ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - start));
      }
      int64_t size = FileSize(path);
      results.push_back({name + " (shallow, cold cache)", size, Median(shallow_ms), 0, ""});
      double deep = Median(deep_ms);
      results.push_back(
          {name + " (deep scan, cold cache)", size, deep, size / 1e6 / (deep / 1000.0),
           name == "dump.sql" ? "disk-bound" : "rate of the compressed file; xz decoding bound"});
    }
  }
  struct rusage usage;
  ::getrusage(RUSAGE_SELF, &usage);

  std::string report = absl::StrCat(
      "# Detection benchmark, ", absl::FormatTime("%Y-%m-%d", absl::Now(), absl::UTCTimeZone()),
      "\n\nMachine: ", MachineDescription(env.get()), "\n\nCommand: `detect_bench --mb ", mb,
      " --runs ", runs, cold ? " --drop-caches" : "",
      "` (medians; page cache warm unless marked cold; library calls as the agent makes them)\n\n"
      "| case | file size | median | rate | note |\n|---|---:|---:|---:|---|\n");
  for (const Measurement& m : results) {
    absl::StrAppend(
        &report,
        absl::StrFormat(
            "| %s | %.1f MB | %.3f ms | %s | %s |\n", m.file, m.bytes / 1e6, m.median_ms,
            m.mb_per_s > 0 ? absl::StrFormat("%.0f MB/s", m.mb_per_s) : std::string("-"), m.note));
  }
  absl::StrAppend(&report, absl::StrFormat("\nPeak RSS of the benchmark process: %.1f MB\n",
                                           usage.ru_maxrss / 1024.0));
  std::fputs(report.c_str(), stdout);
  if (parsed->Has("output")) std::ofstream(parsed->Get("output")) << report;

  CommandSpec rm;
  rm.argv = {"rm", "-rf", "--", *base};
  rm.env = {"PATH=/usr/bin:/bin"};
  runner->Run(rm, nullptr).IgnoreError();
  return 0;
}

}  // namespace
}  // namespace mastodon_restore

int main(int argc, char** argv) {
  return mastodon_restore::Run(std::vector<std::string>(argv + 1, argv + argc));
}
