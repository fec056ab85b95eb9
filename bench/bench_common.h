// Helpers the benchmarks share: percentiles, /proc memory figures, running a
// tool, test certificates, a throwaway PostgreSQL cluster.
#ifndef MR_BENCH_BENCH_COMMON_H_
#define MR_BENCH_BENCH_COMMON_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/common/env.h"
#include "agent/common/subprocess.h"
#include "agent/database/local_cluster.h"

namespace mastodon_restore {
namespace bench {

// The p-quantile (0..1) of `values` (nearest rank); 0 when empty.
double Percentile(std::vector<double> values, double p);

// The median (the mean of the two middle values for an even count); -1 when
// empty.
double Median(std::vector<double> values);

// A field of /proc/<pid>/status ("VmHWM:", "VmRSS:") in MB; 0 when gone.
double ProcStatusMb(pid_t pid, const char* field);

// The fields of /proc/<pid>/stat after "pid (comm) ": index i is proc(5)'s
// field i + 3 (1 the ppid, 11/12 utime/stime, 13/14 cutime/cstime, in clock
// ticks; the state letter reads as 0). Missing fields and a gone process
// read as 0.
struct ProcStat {
  std::vector<int64_t> fields;
  int64_t Get(size_t i) const { return i < fields.size() ? fields[i] : 0; }
};
ProcStat ReadProcStat(pid_t pid);

// Clock ticks in seconds.
double TicksToSeconds(int64_t ticks);

// Runs `argv` in `cwd`; on failure prints "<tag>: <what> failed: <stderr>"
// and returns false.
bool RunTool(CommandRunner* runner, const std::string& cwd, std::vector<std::string> argv,
             const std::string& what, const std::string& tag);

// The flags of the benchmarks over a media-shaped tree: --files (default
// 20000), --mb (2000), --runs (3), --work-dir (`default_work_dir`) and
// --output ("": none). nullopt, with the usage printed as `program`'s,
// when they do not parse or are not positive.
struct TreeBenchFlags {
  int files = 20000;
  int mb = 2000;
  int runs = 3;
  std::string work_dir;
  std::string output;
};
std::optional<TreeBenchFlags> ParseTreeBenchFlags(const std::vector<std::string>& args,
                                                  const std::string& program,
                                                  const std::string& files_help,
                                                  const std::string& work_dir_help,
                                                  const std::string& default_work_dir);

// The media benchmarks' Mastodon-shaped tree, the same on every run (seed
// 42): `files` files of `bytes` in all on average (each between half and
// one and a half times the mean), incompressible, one in ten an avatar.
// `file` gets each one's path below the media directory
// ("media_attachments/files/000/000/001/original/1.jpg"), its index and
// its contents; false from it stops the walk, and is returned.
bool ForEachMediaFile(
    int files, int64_t bytes,
    const std::function<bool(const std::string& rel, int index, absl::string_view data)>& file);

// In `dir` (with the real openssl): ca.pem/ca.key, server.pem/server.key
// for 127.0.0.1 and client.pem/client.key, all signed by the CA.
bool MakeCertificates(CommandRunner* runner, const std::string& dir, const std::string& tag);

// A PostgreSQL cluster under `dir` (as the postgres user when root; with
// `fast_unsafe`, fsync=off and the other settings of LocalClusterOptions,
// else PostgreSQL's defaults; `settings` "name=value" on top; the binaries
// of `bin_dir`, "" for the newest installed); null after printing why.
std::unique_ptr<LocalCluster> StartCluster(const std::string& dir, CommandRunner* runner, Env* env,
                                           const std::string& tag, bool fast_unsafe = true,
                                           const std::vector<std::string>& settings = {},
                                           const std::string& bin_dir = "");

// CPU seconds of the server so far: the postmaster and its live children, and
// the children it has reaped (backends that exited). `children` (optional):
// how many live children it has.
double ServerCpuSeconds(pid_t postmaster, int* children = nullptr);

}  // namespace bench
}  // namespace mastodon_restore

#endif  // MR_BENCH_BENCH_COMMON_H_
