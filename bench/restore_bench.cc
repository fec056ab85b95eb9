// Database restore benchmark: the agent against psql and pg_restore on the
// same dumps of the same Mastodon-shaped database, on the same server.
//
// It starts a throwaway PostgreSQL (default settings), generates the database
// at --scale (SCALE=1 is about 700 MB of plain dump), dumps it in every
// format (plain, plain.gz/.xz/.zst, custom, directory, tar, the custom
// archive inside a .tar.zst read as a stream, and a pg_dumpall with two extra
// databases; kept in --work-dir for the next run), then
// restores each into a fresh database, the contenders interleaved (the order
// rotates every run), --runs times each, and prints per case the median wall
// time, dump MB/s, peak RSS of the restoring process, server CPU seconds and
// the ratio to the baseline of the same run.
//
// The agent's contender is this binary re-executed with --agent-load: the
// library's StageDatabase (detect, staging database, load, ANALYZE) in its
// own process, so its RSS is its own.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "agent/common/args.h"
#include "agent/common/env.h"
#include "agent/common/process_setup.h"
#include "agent/common/subprocess.h"
#include "agent/database/database_restore.h"
#include "agent/database/local_cluster.h"
#include "agent/database/pg_connection.h"
#include "agent/inventory/inspector.h"
#include "bench/bench_common.h"
#include "bench/mastodon_data.h"

extern char** environ;

namespace mastodon_restore {
namespace {

using bench::Median;

constexpr char kTag[] = "restore_bench";
constexpr char kSourceDb[] = "mastodon_production";
constexpr char kTargetDb[] = "bench_target";

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

int64_t PathBytes(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return 0;
  if (!S_ISDIR(st.st_mode)) return st.st_size;
  // Directory format: toc.dat and one file per table.
  int64_t total = 0;
  auto entries = ListDirectory(path);
  if (entries.ok()) {
    for (const std::string& e : *entries) total += PathBytes(path + "/" + e);
  }
  return total;
}

struct RunFigures {
  bool ok = false;
  double seconds = 0;
  double rss_mb = 0;   // the largest peak RSS of the pipeline's processes
  double cpu = 0;      // CPU seconds of the pipeline's processes
  std::string output;  // stdout of the last process
  std::string error;
};

// Runs a pipeline of argv's (stdout of each into stdin of the next), with
// stdin of the first from `stdin_file` ("": /dev/null). Peak RSS from wait4.
RunFigures RunPipeline(const std::vector<std::vector<std::string>>& stages,
                       const std::string& stdin_file, const std::vector<std::string>& env) {
  RunFigures r;
  std::vector<pid_t> pids;
  int in_fd = stdin_file.empty() ? open("/dev/null", O_RDONLY | O_CLOEXEC)
                                 : open(stdin_file.c_str(), O_RDONLY | O_CLOEXEC);
  int out_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return r;
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) return r;
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  absl::Time start = absl::Now();
  for (size_t i = 0; i < stages.size(); ++i) {
    int next[2] = {-1, -1};
    const bool last = i + 1 == stages.size();
    if (!last && pipe2(next, O_CLOEXEC) != 0) return r;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
    posix_spawn_file_actions_adddup2(&fa, last ? out_pipe[1] : next[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err_pipe[1], 2);
    std::vector<char*> argv;
    for (const std::string& a : stages[i]) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    close(in_fd);
    if (!last) close(next[1]);
    in_fd = last ? -1 : next[0];
    if (rc != 0) {
      r.error = absl::StrCat("unable to start ", stages[i][0]);
      break;
    }
    pids.push_back(pid);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  // Both pipes are small: drain stderr after stdout (tools print little).
  char buf[4096];
  ssize_t n;
  while ((n = read(out_pipe[0], buf, sizeof(buf))) > 0) r.output.append(buf, n);
  std::string err;
  while ((n = read(err_pipe[0], buf, sizeof(buf))) > 0) {
    if (err.size() < 65536) err.append(buf, n);
  }
  close(out_pipe[0]);
  close(err_pipe[0]);
  bool all_ok = r.error.empty();
  for (pid_t pid : pids) {
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) all_ok = false;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) all_ok = false;
    r.rss_mb = std::max(r.rss_mb, static_cast<double>(ru.ru_maxrss) / 1024.0);
    r.cpu += absl::ToDoubleSeconds(absl::DurationFromTimeval(ru.ru_utime) +
                                   absl::DurationFromTimeval(ru.ru_stime));
  }
  r.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  r.ok = all_ok;
  if (!all_ok && r.error.empty()) r.error = err.substr(err.size() > 2000 ? err.size() - 2000 : 0);
  return r;
}

struct Dump {
  std::string name;  // "plain", "plain.xz", ...
  std::string path;
};

struct Contender {
  std::string name;
  bool baseline = false;
  // Builds the pipeline for a target conninfo.
  std::function<std::vector<std::vector<std::string>>(const std::string& conninfo)> stages;
  std::string stdin_file;
  // Commands run one after another once the pipeline succeeded, timed with
  // it (e.g. the ANALYZE an admin runs after pg_restore).
  std::function<std::vector<std::vector<std::string>>(const std::string& conninfo)> then;
};

struct Case {
  Dump dump;
  std::vector<Contender> contenders;
};

class RestoreBench {
 public:
  RestoreBench(std::string self, std::string work, double scale, int runs, int jobs)
      : self_(std::move(self)),
        work_(std::move(work)),
        scale_(scale),
        runs_(runs),
        jobs_(jobs),
        env_(NewPosixEnv()),
        runner_(NewPosixCommandRunner()) {}

  // Stops the server and removes its directory (the dumps stay).
  ~RestoreBench() {
    if (cluster_ == nullptr) return;
    const std::string base = cluster_->data_dir().substr(0, cluster_->data_dir().rfind('/'));
    cluster_.reset();
    RunTool({"rm", "-rf", base}, "rm");
  }

  // One untimed restore of the plain dump with psql, so the first timed run
  // does not pay for the new server's first WAL segments and cold caches.
  bool WarmUp() {
    if (!Clean()) return false;
    auto admin = PgConnection::Connect(cluster_->ConnInfo("postgres"));
    if (!admin.ok() ||
        !(*admin)->Exec(absl::StrCat("CREATE DATABASE ", kTargetDb, " TEMPLATE template0")).ok()) {
      return false;
    }
    std::printf("warm-up: psql -f dump.sql\n");
    std::fflush(stdout);
    RunFigures f = RunPipeline({{cluster_->bin_dir() + "/psql", "-X", "-q", "-o", "/dev/null", "-f",
                                 DumpDir() + "/dump.sql", "-d", cluster_->ConnInfo(kTargetDb)}},
                               "", {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"});
    return f.ok && Clean();
  }

  bool Start() {
    mkdir(work_.c_str(), 0755);
    cluster_ = bench::StartCluster(work_, runner_.get(), env_.get(), kTag, fast_unsafe_);
    if (cluster_ == nullptr) return false;
    std::ifstream pid_file(cluster_->data_dir() + "/postmaster.pid");
    int pid = 0;
    std::string line;
    if (!std::getline(pid_file, line) || !absl::SimpleAtoi(line, &pid)) return false;
    postmaster_ = pid;
    auto conn = PgConnection::Connect(cluster_->ConnInfo("postgres"));
    if (!conn.ok()) return false;
    server_version_ = (*conn)->Query("SHOW server_version").value_or(PgRows()).Scalar();
    return true;
  }

  std::string DumpDir() const {
    return absl::StrFormat("%s/dumps-scale-%g", dump_root_.empty() ? work_ : dump_root_, scale_);
  }
  void set_dump_root(std::string d) { dump_root_ = std::move(d); }
  // fsync=off and friends instead of PostgreSQL's default settings.
  void set_fast_unsafe(bool fast) { fast_unsafe_ = fast; }

  // Generates the database and its dumps unless a complete set is there.
  // The dumps the `wanted` cases need (all when empty; the plain dump
  // always, for the warm-up). Generates the database only when one is
  // missing; each dump is written under a temporary name and renamed when
  // complete, so an interrupted run is never reused.
  bool MakeDumps(const std::vector<std::string>& wanted) {
    const std::string dir = DumpDir();
    mkdir(dir.c_str(), 0755);
    const std::string bin = cluster_->bin_dir();
    const std::string src = cluster_->ConnInfo(kSourceDb);
    struct Output {
      std::string name, file;
      std::vector<std::string> argv;  // writes file + ".part"
    };
    const std::string part = ".part";
    auto pg_dump = [&](std::vector<std::string> args, const std::string& file) {
      std::vector<std::string> argv = {bin + "/pg_dump"};
      argv.insert(argv.end(), args.begin(), args.end());
      argv.insert(argv.end(), {"-f", dir + "/" + file + part, src});
      return argv;
    };
    // Compressed copies of the plain dump, as admins make them (xz with
    // blocks, as `xz -T0` makes them).
    auto compress = [&](const std::string& tool, const std::vector<std::string>& flags) {
      std::vector<std::string> argv = {"/usr/bin/" + tool, "-k", "-f", "-q"};
      argv.insert(argv.end(), flags.begin(), flags.end());
      argv.push_back(dir + "/dump.sql");
      return argv;
    };
    const std::vector<Output> outputs = {
        {"plain", "dump.sql", pg_dump({"-Fp"}, "dump.sql")},
        {"plain.gz", "dump.sql.gz", compress("gzip", {})},
        {"plain.xz", "dump.sql.xz", compress("xz", {"-T2"})},
        {"plain.zst", "dump.sql.zst", compress("zstd", {})},
        {"custom", "dump.custom", pg_dump({"-Fc"}, "dump.custom")},
        {"directory", "dump.dir", pg_dump({"-Fd", "-j", "2"}, "dump.dir")},
        {"tar", "dump.tar", pg_dump({"-Ft"}, "dump.tar")},
        // The custom archive inside a backup, as a stream (no offsets can
        // be used, no temporary copy made).
        {"streamed",
         "dump.custom.tar.zst",
         {"/usr/bin/tar", "--zstd", "-cf", dir + "/dump.custom.tar.zst" + part, "-C", dir,
          "dump.custom"}},
        {"dumpall",
         "dumpall.sql",
         {bin + "/pg_dumpall", "-f", dir + "/dumpall.sql" + part, "-d",
          cluster_->ConnInfo("postgres")}},
    };
    std::vector<const Output*> missing;
    for (const Output& o : outputs) {
      auto is_wanted = [&](const std::string& name) {
        return std::find(wanted.begin(), wanted.end(), name) != wanted.end();
      };
      // (The streamed case is made from the custom archive.)
      const bool needed = o.name == "plain" || wanted.empty() || is_wanted(o.name) ||
                          (o.name == "custom" && is_wanted("streamed"));
      if (needed && !Exists(dir + "/" + o.file)) missing.push_back(&o);
    }
    if (missing.empty()) {
      std::printf("reusing the dumps in %s\n", dir.c_str());
      return true;
    }
    auto admin = PgConnection::Connect(cluster_->ConnInfo("postgres"));
    if (!admin.ok()) return false;
    if (!(*admin)->Exec(absl::StrCat("CREATE DATABASE ", kSourceDb)).ok()) return false;
    absl::Time t0 = absl::Now();
    {
      auto conn = PgConnection::Connect(cluster_->ConnInfo(kSourceDb));
      if (!conn.ok()) return false;
      bench::MastodonDataStats stats;
      absl::Status s = bench::GenerateMastodonData(
          conn->get(), scale_,
          [](const std::string& step) {
            std::printf("  generating %s\n", step.c_str());
            std::fflush(stdout);
          },
          &stats);
      if (!s.ok()) {
        std::fprintf(stderr, "%s: generation failed: %s\n", kTag, std::string(s.message()).c_str());
        return false;
      }
    }
    std::printf("generated SCALE=%g in %.1f s\n", scale_, absl::ToDoubleSeconds(absl::Now() - t0));
    // Two small extra databases for the cluster dump.
    for (const char* extra : {"extra_one", "extra_two"}) {
      (*admin)->Exec(absl::StrCat("CREATE DATABASE ", extra)).IgnoreError();
      auto c = PgConnection::Connect(cluster_->ConnInfo(extra));
      if (!c.ok() || !(*c)->Exec("CREATE TABLE notes (id int PRIMARY KEY, body text); "
                                 "INSERT INTO notes SELECT g, md5(g::text) FROM "
                                 "generate_series(1, 1000) g")
                          .ok()) {
        return false;
      }
    }
    for (const Output* o : missing) {
      std::printf("  %s\n", o->file.c_str());
      std::fflush(stdout);
      if (!RunTool(o->argv, o->file)) return false;
      if (Exists(dir + "/" + o->file + part) &&
          rename((dir + "/" + o->file + part).c_str(), (dir + "/" + o->file).c_str()) != 0) {
        return false;
      }
    }
    for (const char* db : {kSourceDb, "extra_one", "extra_two"}) {
      (*admin)->Exec(absl::StrCat("DROP DATABASE ", db)).IgnoreError();
    }
    return true;
  }

  std::vector<Case> Cases(const std::vector<std::string>& wanted,
                          const std::vector<std::string>& contenders) {
    const std::string dir = DumpDir();
    const std::string bin = cluster_->bin_dir();
    std::vector<std::string> agent_jobs = {absl::StrCat(jobs_)};
    auto agent = [&](const std::string& path, const std::string& section, bool analyze = true,
                     int jobs = 0, bool freeze = true) {
      if (jobs == 0) jobs = jobs_;
      Contender c;
      c.name = absl::StrCat("agent --jobs ", jobs, analyze ? "" : " (no ANALYZE)",
                            freeze ? "" : " (no FREEZE)");
      c.stages = [=](const std::string& conninfo) {
        std::vector<std::string> argv = {self_,        "--agent-load", path,
                                         "--conninfo", conninfo,       "--database",
                                         kTargetDb,    "--jobs",       absl::StrCat(jobs)};
        if (!section.empty()) {
          argv.push_back("--source-db");
          argv.push_back(section);
        }
        if (!analyze) argv.push_back("--no-analyze");
        if (!freeze) argv.push_back("--no-freeze");
        return std::vector<std::vector<std::string>>{argv};
      };
      return c;
    };
    auto psql = [&](const std::string& name, const std::string& file, bool stop_on_error) {
      Contender c;
      c.name = name;
      c.baseline = true;
      c.stages = [=](const std::string& conninfo) {
        std::vector<std::string> argv = {bin + "/psql", "-X", "-q", "-o", "/dev/null"};
        if (stop_on_error) {
          argv.push_back("-v");
          argv.push_back("ON_ERROR_STOP=1");
        }
        argv.insert(argv.end(), {"-f", file, "-d", conninfo});
        return std::vector<std::vector<std::string>>{argv};
      };
      return c;
    };
    auto piped = [&](const std::string& tool, const std::string& file) {
      Contender c;
      c.name = absl::StrCat(tool, " -dc | psql");
      c.baseline = true;
      c.stages = [=](const std::string& conninfo) {
        return std::vector<std::vector<std::string>>{{"/usr/bin/" + tool, "-dc", file},
                                                     {bin + "/psql", "-X", "-q", "-o", "/dev/null",
                                                      "-v", "ON_ERROR_STOP=1", "-d", conninfo}};
      };
      return c;
    };
    auto pg_restore = [&](int j, const std::string& file, bool baseline) {
      Contender c;
      c.name = j > 0 ? absl::StrCat("pg_restore -j", j) : "pg_restore";
      c.baseline = baseline;
      c.stages = [=](const std::string& conninfo) {
        std::vector<std::string> argv = {bin + "/pg_restore", "--exit-on-error", "-d", conninfo};
        if (j > 0) argv.push_back(absl::StrCat("-j", j));
        argv.push_back(file);
        return std::vector<std::vector<std::string>>{argv};
      };
      return c;
    };
    // pg_restore, then the ANALYZE its documentation says to run after a
    // restore (the agent's restore includes it): the same work as the
    // agent's.
    auto pg_restore_analyzed = [&](int j, const std::string& file) {
      Contender c = pg_restore(j, file, false);
      c.name = absl::StrCat(c.name, ", vacuumdb -Z -j", j);
      c.then = [=](const std::string& conninfo) {
        return std::vector<std::vector<std::string>>{{bin + "/vacuumdb", "--quiet",
                                                      "--analyze-only", absl::StrCat("--jobs=", j),
                                                      "-d", conninfo}};
      };
      return c;
    };
    // pg_restore reads a stream only serially, from its stdin.
    auto streamed_pg_restore = [&](const std::string& file) {
      Contender c;
      c.name = "zstd -dc, tar -xO into pg_restore";  // (no "|": a table cell)
      c.baseline = true;
      c.stages = [=](const std::string& conninfo) {
        return std::vector<std::vector<std::string>>{
            {"/usr/bin/zstd", "-dc", file},
            {"/usr/bin/tar", "-xOf", "-", "dump.custom"},
            {bin + "/pg_restore", "--exit-on-error", "-d", conninfo}};
      };
      return c;
    };
    std::vector<Case> all = {
        {{"plain", dir + "/dump.sql"},
         {psql("psql -f", dir + "/dump.sql", true), agent(dir + "/dump.sql", ""),
          agent(dir + "/dump.sql", "", false), agent(dir + "/dump.sql", "", true, 1)}},
        {{"plain.gz", dir + "/dump.sql.gz"},
         {piped("gzip", dir + "/dump.sql.gz"), agent(dir + "/dump.sql.gz", "")}},
        {{"plain.xz", dir + "/dump.sql.xz"},
         {piped("xz", dir + "/dump.sql.xz"), agent(dir + "/dump.sql.xz", "")}},
        {{"plain.zst", dir + "/dump.sql.zst"},
         {piped("zstd", dir + "/dump.sql.zst"), agent(dir + "/dump.sql.zst", "")}},
        {{"custom", dir + "/dump.custom"},
         {pg_restore(2, dir + "/dump.custom", true), pg_restore(1, dir + "/dump.custom", false),
          pg_restore_analyzed(2, dir + "/dump.custom"), agent(dir + "/dump.custom", ""),
          agent(dir + "/dump.custom", "", false), agent(dir + "/dump.custom", "", true, 0, false)}},
        {{"directory", dir + "/dump.dir"},
         {pg_restore(2, dir + "/dump.dir", true), pg_restore(1, dir + "/dump.dir", false),
          pg_restore_analyzed(2, dir + "/dump.dir"), agent(dir + "/dump.dir", ""),
          agent(dir + "/dump.dir", "", false), agent(dir + "/dump.dir", "", true, 0, false)}},
        {{"tar", dir + "/dump.tar"},
         {pg_restore(0, dir + "/dump.tar", true), agent(dir + "/dump.tar", "")}},
        {{"streamed", dir + "/dump.custom.tar.zst"},
         {streamed_pg_restore(dir + "/dump.custom.tar.zst"),
          agent(dir + "/dump.custom.tar.zst", "")}},
        {{"dumpall", dir + "/dumpall.sql"},
         {psql("psql -f (whole cluster)", dir + "/dumpall.sql", false),
          agent(dir + "/dumpall.sql", kSourceDb)}},
    };
    std::vector<Case> out;
    for (Case& c : all) {
      if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), c.dump.name) == wanted.end()) {
        continue;
      }
      if (!contenders.empty()) {
        std::vector<Contender> kept;
        for (Contender& who : c.contenders) {
          for (const std::string& prefix : contenders) {
            if (who.name.rfind(prefix, 0) == 0) {
              kept.push_back(who);
              break;
            }
          }
        }
        c.contenders = std::move(kept);
      }
      if (!c.contenders.empty()) out.push_back(std::move(c));
    }
    return out;
  }

  // Drops every database but the system ones, and checkpoints, so each run
  // starts alike.
  bool Clean() {
    auto conn = PgConnection::Connect(cluster_->ConnInfo("postgres"));
    if (!conn.ok()) return false;
    auto dbs = (*conn)->Query(
        "SELECT datname FROM pg_database WHERE datname NOT IN ('postgres', 'template0', "
        "'template1')");
    if (!dbs.ok()) return false;
    for (const auto& row : dbs->rows) {
      if (!(*conn)
               ->Exec(absl::StrCat("DROP DATABASE ", (*conn)->QuoteIdentifier(*row[0]),
                                   " WITH (FORCE)"))
               .ok()) {
        return false;
      }
    }
    // Roles a cluster dump created.
    (*conn)->Exec("CHECKPOINT").IgnoreError();
    return true;
  }

  struct Sample {
    double seconds = 0, rss_mb = 0, server_cpu = 0, client_cpu = 0;
    std::string detail;
  };

  bool RunAll(const std::vector<Case>& cases) {
    for (int run = 0; run < runs_; ++run) {
      for (const Case& c : cases) {
        const size_t n = c.contenders.size();
        for (size_t k = 0; k < n; ++k) {
          const Contender& who = c.contenders[(k + static_cast<size_t>(run)) % n];
          if (!Clean()) return false;
          std::string conninfo = cluster_->ConnInfo(kTargetDb);
          const bool agent = who.name.rfind("agent", 0) == 0;
          if (!agent) {
            auto admin = PgConnection::Connect(cluster_->ConnInfo("postgres"));
            if (!admin.ok() ||
                !(*admin)
                     ->Exec(absl::StrCat("CREATE DATABASE ", kTargetDb, " TEMPLATE template0"))
                     .ok()) {
              return false;
            }
          } else {
            conninfo = cluster_->ConnInfo("postgres");
          }
          int children0 = 0, children1 = 0;
          double cpu0 = bench::ServerCpuSeconds(postmaster_, &children0);
          std::vector<std::string> env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
          if (const char* t = std::getenv("MR_BENCH_TIMELINE"); t != nullptr) {
            env.push_back(absl::StrCat("MR_BENCH_TIMELINE=", t));
          }
          RunFigures f = RunPipeline(who.stages(conninfo), who.stdin_file, env);
          if (f.ok && who.then) {
            for (const std::vector<std::string>& argv : who.then(conninfo)) {
              RunFigures g = RunPipeline({argv}, "", env);
              f.seconds += g.seconds;
              f.cpu += g.cpu;
              f.rss_mb = std::max(f.rss_mb, g.rss_mb);
              if (!g.ok) {
                f.ok = false;
                f.error = g.error;
                break;
              }
            }
          }
          // The restore's backends exit just after their client: wait until
          // they are reaped, so their CPU is counted (untimed).
          double cpu1 = bench::ServerCpuSeconds(postmaster_, &children1);
          for (int i = 0; i < 100 && children1 > children0; ++i) {
            absl::SleepFor(absl::Milliseconds(20));
            cpu1 = bench::ServerCpuSeconds(postmaster_, &children1);
          }
          if (!f.ok) {
            std::fprintf(stderr, "%s: %s on %s failed: %s\n", kTag, who.name.c_str(),
                         c.dump.name.c_str(), f.error.c_str());
            return false;
          }
          Sample s{f.seconds, f.rss_mb, cpu1 - cpu0, f.cpu, ""};
          if (agent) s.detail = std::string(absl::StripAsciiWhitespace(f.output));
          std::printf(
              "run %d  %-10s %-28s %7.2f s  server CPU %5.1f s  client CPU %5.1f s  RSS %6.1f "
              "MB  %s\n",
              run + 1, c.dump.name.c_str(), who.name.c_str(), s.seconds, s.server_cpu, s.client_cpu,
              s.rss_mb, s.detail.c_str());
          std::fflush(stdout);
          samples_[c.dump.name][who.name].push_back(s);
        }
      }
    }
    return Clean();
  }

  std::string Report(const std::vector<Case>& cases, const std::string& command) {
    struct utsname u;
    uname(&u);
    MemoryInfo mem = env_->Memory();
    std::string out = absl::StrFormat(
        "# Database restore benchmark, %s\n\n"
        "Command: `%s`\n\n"
        "Machine: %d cores, %.0f GiB, %s %s; PostgreSQL %s (%s, same "
        "server for every contender); SCALE=%g.\n"
        "Each figure is the median of %d runs; contenders interleaved, order rotating "
        "each run; every restore into a fresh database after a CHECKPOINT. The agent's "
        "time includes detection, the staging database and ANALYZE (psql and pg_restore "
        "do no ANALYZE; the \"no ANALYZE\" rows do the same work as they do).\n\n",
        absl::FormatTime("%Y-%m-%d", absl::Now(), absl::UTCTimeZone()), command, env_->Cpus(),
        static_cast<double>(mem.total_bytes) / (1 << 30), u.sysname, u.release, server_version_,
        fast_unsafe_ ? "fsync=off, synchronous_commit=off, full_page_writes=off, "
                       "max_wal_size=4GB, checkpoint_timeout=30min"
                     : "default settings",
        scale_, runs_);
    out +=
        "| dump | size MB | contender | median s | min–max s | dump MB/s | server CPU s | "
        "client CPU s | peak RSS MB | speed-up |\n"
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const Case& c : cases) {
      const double mb = static_cast<double>(PathBytes(c.dump.path)) / 1e6;
      double base = 0;
      for (const Contender& who : c.contenders) {
        if (!who.baseline) continue;
        std::vector<double> t;
        for (const Sample& s : samples_[c.dump.name][who.name]) t.push_back(s.seconds);
        base = Median(t);
        break;
      }
      for (const Contender& who : c.contenders) {
        std::vector<double> t, cpu, client, rss;
        for (const Sample& s : samples_[c.dump.name][who.name]) {
          t.push_back(s.seconds);
          cpu.push_back(s.server_cpu);
          client.push_back(s.client_cpu);
          rss.push_back(s.rss_mb);
        }
        if (t.empty()) continue;
        const double med = Median(t);
        out += absl::StrFormat(
            "| %s | %.0f | %s | %.2f | %.2f–%.2f | %.1f | %.1f | %.1f | %.1f | %s |\n", c.dump.name,
            mb, who.name, med, *std::min_element(t.begin(), t.end()),
            *std::max_element(t.begin(), t.end()), mb / med, Median(cpu), Median(client),
            *std::max_element(rss.begin(), rss.end()),
            who.baseline ? "baseline" : (base > 0 ? absl::StrFormat("%.2f×", base / med) : "—"));
      }
    }
    out += "\nAgent phases (last run): ";
    std::vector<std::string> phases;
    for (const Case& c : cases) {
      for (const auto& [who, list] : samples_[c.dump.name]) {
        if (!list.empty() && !list.back().detail.empty()) {
          phases.push_back(absl::StrCat(c.dump.name, ": ", list.back().detail));
        }
      }
    }
    out += absl::StrJoin(phases, "; ") + "\n";
    return out;
  }

 private:
  bool RunTool(std::vector<std::string> argv, const std::string& what) {
    return bench::RunTool(runner_.get(), "/", std::move(argv), what, kTag);
  }

  std::string self_, work_, dump_root_;
  bool fast_unsafe_ = false;
  double scale_;
  int runs_, jobs_;
  std::unique_ptr<Env> env_;
  std::unique_ptr<CommandRunner> runner_;
  std::unique_ptr<LocalCluster> cluster_;
  pid_t postmaster_ = 0;
  std::string server_version_;
  std::map<std::string, std::map<std::string, std::vector<Sample>>> samples_;
};

// --agent-load: StageDatabase of one dump; prints the phases.
int AgentLoad(const ParsedArgs& args) {
  SetUpAgentProcess();  // as the agent's main does
  auto env = NewPosixEnv();
  auto runner = NewPosixCommandRunner();
  DatabaseRestoreRequest request;
  request.source_path = args.Get("agent-load");
  request.conninfo = args.Get("conninfo");
  request.database = args.Get("database", kTargetDb);
  request.operation_id = absl::StrFormat("bench%d", getpid());
  request.analyze = !args.GetBool("no-analyze");
  request.freeze = !args.GetBool("no-freeze");
  int jobs = 0;
  if (!absl::SimpleAtoi(args.Get("jobs", "0"), &jobs)) return 2;
  request.jobs = jobs;
  absl::Time start = absl::Now(), load_start = start, analyze_start = start;
  request.progress = [&](const std::string& step, const LoadProgress&) {
    if (step == "load" && load_start == start) load_start = absl::Now();
    if (step == "analyze" && analyze_start == start) analyze_start = absl::Now();
  };
  // Detection is timed with the load, as the agent's restore does both.
  InspectOptions inspect;
  inspect.pg_restore_majors =
      InstalledPostgresVersions(env.get(), request.postgres_root, "pg_restore");
  auto dump = DetectDumpToRestore(request.source_path, "", args.Get("source-db"), request.source,
                                  inspect, runner.get());
  if (!dump.ok()) {
    std::fprintf(stderr, "%s\n", std::string(dump.status().message()).c_str());
    return 1;
  }
  request.dump = dump->dump;
  request.cluster_database = dump->cluster_database;
  auto staged = StageDatabase(request, runner.get(), env.get());
  if (!staged.ok()) {
    std::fprintf(stderr, "%s\n", std::string(staged.status().message()).c_str());
    return 1;
  }
  absl::Time end = absl::Now();
  // MR_BENCH_TIMELINE=FILE: the parallel load's jobs, one a line.
  if (const char* timeline = std::getenv("MR_BENCH_TIMELINE"); timeline != nullptr) {
    std::ofstream out(absl::StrCat(timeline, request.analyze ? "" : ".no-analyze"));
    for (const LoadStats::JobSpan& j : staged->load.timeline) {
      out << absl::StrFormat("%7.3f %7.3f %7.3f w%d %s\n", j.start, j.end, j.end - j.start,
                             j.worker, j.what);
    }
  }
  std::printf("load %.2f s (data in at %.2f s, %d connections), analyze %.2f s, %lld rows\n",
              absl::ToDoubleSeconds(analyze_start - load_start), staged->load.data_seconds,
              staged->load.jobs, absl::ToDoubleSeconds(end - analyze_start),
              static_cast<long long>(staged->load.rows));
  return 0;
}

int Main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  const std::vector<FlagSpec> specs = {
      {"scale", "S", "database size (1: about 700 MB of plain dump; default 1)"},
      {"runs", "N", "runs of each contender (default 3)"},
      {"jobs", "N", "the agent's --jobs (default: cores)"},
      {"cases", "LIST",
       "comma-separated: plain,plain.gz,plain.xz,plain.zst,custom,directory,"
       "tar,streamed (the custom archive in a .tar.zst),dumpall (default all)"},
      {"contenders", "LIST",
       "comma-separated name prefixes: agent,psql,pg_restore,xz,... "
       "(default all)"},
      {"work-dir", "DIR", "server and dumps (default /var/tmp/mr-restore-bench)"},
      {"dump-dir", "DIR", "where the dumps are kept between runs (default: work-dir)"},
      {"fast-unsafe", "", "server with fsync=off and friends (default: PostgreSQL's defaults)"},
      {"output", "FILE", "also write the report here"},
      {"agent-load", "DUMP", "(internal) stage one dump with the library"},
      {"conninfo", "CONNINFO", "(internal)"},
      {"database", "NAME", "(internal)"},
      {"source-db", "NAME", "(internal)"},
      {"no-analyze", "", "(internal) leave ANALYZE out, for an equal-work comparison"},
      {"no-freeze", "", "(internal) load no table frozen, to measure what freezing saves"},
  };
  auto parsed = ParseArgs(args, specs);
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s: %s\n", kTag, std::string(parsed.status().message()).c_str());
    return 2;
  }
  if (parsed->Has("agent-load")) return AgentLoad(*parsed);
  double scale = 1;
  int runs = 3, jobs = 0;
  if (!absl::SimpleAtod(parsed->Get("scale", "1"), &scale) ||
      !absl::SimpleAtoi(parsed->Get("runs", "3"), &runs) ||
      !absl::SimpleAtoi(parsed->Get("jobs", "0"), &jobs) || scale <= 0 || runs <= 0 || jobs < 0) {
    std::fprintf(stderr, "%s: bad --scale, --runs or --jobs\n", kTag);
    return 2;
  }
  if (jobs == 0) jobs = NewPosixEnv()->Cpus();
  std::vector<std::string> wanted;
  if (parsed->Has("cases")) wanted = absl::StrSplit(parsed->Get("cases"), ',', absl::SkipEmpty());
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (len <= 0) return 1;
  self[len] = 0;
  RestoreBench bench(self, parsed->Get("work-dir", "/var/tmp/mr-restore-bench"), scale, runs, jobs);
  if (parsed->Has("dump-dir")) bench.set_dump_root(parsed->Get("dump-dir"));
  bench.set_fast_unsafe(parsed->GetBool("fast-unsafe"));
  if (!bench.Start() || !bench.MakeDumps(wanted) || !bench.WarmUp()) return 1;
  std::vector<std::string> contenders;
  if (parsed->Has("contenders")) {
    contenders = absl::StrSplit(parsed->Get("contenders"), ',', absl::SkipEmpty());
  }
  std::vector<Case> cases = bench.Cases(wanted, contenders);
  if (cases.empty()) {
    std::fprintf(stderr, "%s: no such case\n", kTag);
    return 2;
  }
  if (!bench.RunAll(cases)) return 1;
  std::string command = absl::StrCat("restore_bench ", absl::StrJoin(args, " "));
  std::string report = bench.Report(cases, command);
  std::printf("\n%s", report.c_str());
  if (parsed->Has("output")) std::ofstream(parsed->Get("output")) << report;
  return 0;
}

}  // namespace
}  // namespace mastodon_restore

int main(int argc, char** argv) { return mastodon_restore::Main(argc, argv); }
