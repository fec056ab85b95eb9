#include "bench/bench_common.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "agent/common/args.h"

namespace mastodon_restore {
namespace bench {

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double Median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

namespace {

// A /proc file's text; "" when the process is gone. (Not an ifstream:
// libstdc++'s filebuf throws when read() fails, and read() of a process that
// exits between open and read fails with ESRCH.)
std::string ReadProcFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string text;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

}  // namespace

double ProcStatusMb(pid_t pid, const char* field) {
  std::istringstream in(ReadProcFile(absl::StrCat("/proc/", pid, "/status")));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) {
      int64_t kb = 0;
      std::string digits;
      for (char c : line) {
        if (c >= '0' && c <= '9') digits.push_back(c);
      }
      if (absl::SimpleAtoi(digits, &kb)) return static_cast<double>(kb) / 1024.0;
    }
  }
  return 0;
}

ProcStat ReadProcStat(pid_t pid) {
  const std::string stat = ReadProcFile(absl::StrCat("/proc/", pid, "/stat"));
  ProcStat out;
  size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 > stat.size()) return out;
  for (absl::string_view f : absl::StrSplit(stat.substr(close + 2), ' ', absl::SkipEmpty())) {
    int64_t v = 0;
    out.fields.push_back(absl::SimpleAtoi(f, &v) ? v : 0);
  }
  return out;
}

double TicksToSeconds(int64_t ticks) {
  return static_cast<double>(ticks) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

bool RunTool(CommandRunner* runner, const std::string& cwd, std::vector<std::string> argv,
             const std::string& what, const std::string& tag) {
  CommandSpec spec;
  spec.argv = std::move(argv);
  spec.env = {"PATH=/usr/bin:/bin"};
  spec.cwd = cwd;
  auto r = runner->Run(spec, nullptr);
  if (!r.ok() || !r->success()) {
    std::fprintf(stderr, "%s: %s failed: %s\n", tag.c_str(), what.c_str(),
                 r.ok() ? r->stderr_text.c_str() : std::string(r.status().message()).c_str());
    return false;
  }
  return true;
}

bool ForEachMediaFile(
    int files, int64_t bytes,
    const std::function<bool(const std::string& rel, int index, absl::string_view data)>& file) {
  std::mt19937_64 rng(42);
  const int64_t per_file = bytes / files;
  std::vector<uint64_t> buf(static_cast<size_t>(per_file * 2 / 8 + 1));
  for (int i = 0; i < files; ++i) {
    const int64_t size =
        per_file / 2 + static_cast<int64_t>(rng() % static_cast<uint64_t>(per_file));
    for (size_t k = 0; k < static_cast<size_t>(size / 8 + 1); ++k) buf[k] = rng();
    const std::string rel =
        absl::StrFormat("%s/files/%03d/%03d/%03d/original/%d.%s",
                        i % 10 == 0 ? "accounts/avatars" : "media_attachments", i / 1000000,
                        (i / 1000) % 1000, i % 1000, i, i % 10 == 0 ? "png" : "jpg");
    if (!file(rel, i,
              absl::string_view(reinterpret_cast<const char*>(buf.data()),
                                static_cast<size_t>(size)))) {
      return false;
    }
  }
  return true;
}

bool MakeCertificates(CommandRunner* runner, const std::string& dir, const std::string& tag) {
  auto ssl = [&](std::vector<std::string> a) {
    a.insert(a.begin(), "openssl");
    return RunTool(runner, dir, a, "openssl", tag);
  };
  std::ofstream(dir + "/server.ext") << "subjectAltName=IP:127.0.0.1\n";
  if (!ssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench-ca"})) {
    return false;
  }
  for (const std::string name : {"server", "client"}) {
    if (!ssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
              name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name}) ||
        !ssl({"x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
              "-CAcreateserial", "-out", name + ".pem", "-days", "1", "-extfile",
              name == "server" ? "server.ext" : "/dev/null"})) {
      return false;
    }
  }
  return true;
}

std::unique_ptr<LocalCluster> StartCluster(const std::string& dir, CommandRunner* runner, Env* env,
                                           const std::string& tag, bool fast_unsafe,
                                           const std::vector<std::string>& settings,
                                           const std::string& bin_dir) {
  LocalClusterOptions o;
  o.settings = settings;
  o.bin_dir = bin_dir;
  if (!RunAsUnprivilegedUserIfRoot(&o).ok()) return nullptr;
  auto base = CreateClusterBaseDir(dir, "pg", o);
  if (!base.ok()) return nullptr;
  o.base_dir = *base;
  o.fast_unsafe = fast_unsafe;
  auto cluster = LocalCluster::Start(o, runner, env);
  if (!cluster.ok()) {
    std::fprintf(stderr, "%s: %s\n", tag.c_str(), std::string(cluster.status().message()).c_str());
    return nullptr;
  }
  return std::move(*cluster);
}

double ServerCpuSeconds(pid_t postmaster, int* children) {
  if (children != nullptr) *children = 0;
  ProcStat pm = ReadProcStat(postmaster);
  int64_t ticks = pm.Get(11) + pm.Get(12) + pm.Get(13) + pm.Get(14);
  auto procs = ListDirectory("/proc");
  if (procs.ok()) {
    for (const std::string& p : *procs) {
      int pid = 0;
      if (!absl::SimpleAtoi(p, &pid)) continue;
      ProcStat st = ReadProcStat(pid);
      if (st.Get(1) == postmaster) {
        ticks += st.Get(11) + st.Get(12);
        if (children != nullptr) ++*children;
      }
    }
  }
  return TicksToSeconds(ticks);
}

std::optional<TreeBenchFlags> ParseTreeBenchFlags(const std::vector<std::string>& args,
                                                  const std::string& program,
                                                  const std::string& files_help,
                                                  const std::string& work_dir_help,
                                                  const std::string& default_work_dir) {
  const std::vector<FlagSpec> specs = {
      {"files", "N", files_help + " (default 20000)"},
      {"mb", "N", "approximate megabytes (default 2000)"},
      {"runs", "N", "interleaved runs (default 3)"},
      {"work-dir", "DIR", absl::StrCat(work_dir_help, " (default ", default_work_dir, ")")},
      {"output", "FILE", "also write the markdown report here"},
  };
  auto parsed = ParseArgs(args, specs);
  TreeBenchFlags f;
  if (!parsed.ok() || !absl::SimpleAtoi(parsed->Get("files", "20000"), &f.files) ||
      !absl::SimpleAtoi(parsed->Get("mb", "2000"), &f.mb) ||
      !absl::SimpleAtoi(parsed->Get("runs", "3"), &f.runs) || f.files <= 0 || f.mb <= 0 ||
      f.runs <= 0) {
    std::fprintf(stderr, "usage: %s [flags]\n%s", program.c_str(), FormatFlagHelp(specs).c_str());
    return std::nullopt;
  }
  f.work_dir = parsed->Get("work-dir", default_work_dir);
  f.output = parsed->Get("output", "");
  return f;
}

}  // namespace bench
}  // namespace mastodon_restore
