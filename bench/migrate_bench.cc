// The live migration against a dump-based move of the same database, with a
// steady writer on the old server (make bench-migrate).
//
// Two clusters on this machine: the old one (wal_level = logical) holding
// the Mastodon-shaped database at --scale, and the new one (PostgreSQL 15,
// or the binaries of --target-bin). Each run, contenders interleaved:
//   live migration  the agent's migrate job, in this process: it follows the
//                   old database while a writer inserts statuses at --rate
//                   per second; after --follow-seconds the writer stops (the
//                   old app stopped) and the cut-over is asked. Downtime:
//                   the writer stopped -> the migrated database swapped in.
//   physical        the same with method physical (same majors only): the
//                   old cluster copied by pg_basebackup, run as a standby,
//                   promoted and put in place of the new cluster, which
//                   pg_ctlcluster (here a script running pg_ctl) stops and
//                   starts as on a Debian host.
//   dump and restore the writer stops, pg_dump -Fc of the old database, then
//                   the agent's restore of it (its fastest path: the native
//                   archive reader, 2 jobs). Downtime: the whole of it.
// Reported: downtime, the steps within it, the initial copy's throughput,
// the servers' CPU seconds and this process's peak RSS.
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "agent/common/args.h"
#include "agent/common/env.h"
#include "agent/common/subprocess.h"
#include "agent/database/database_restore.h"
#include "agent/database/local_cluster.h"
#include "agent/database/pg_connection.h"
#include "agent/inventory/inspector.h"
#include "agent/jobs/migrate_job.h"
#include "agent/operations/operation.h"
#include "bench/bench_common.h"
#include "bench/mastodon_data.h"

namespace mastodon_restore {
namespace {

namespace v1 = ::mastodon::restore::v1;

constexpr char kTag[] = "migrate_bench";
constexpr char kSourceDb[] = "mastodon_production";
constexpr char kTargetDb[] = "mastodon";

// Inserts statuses into the old database at `rate` per second until
// stopped, as the old app would; counts what it committed.
class Writer {
 public:
  Writer(std::string conninfo, int rate) : conninfo_(std::move(conninfo)), rate_(rate) {}
  ~Writer() { Stop(); }
  bool Start() {
    auto c = PgConnection::Connect(conninfo_);
    if (!c.ok()) return false;
    conn_ = std::move(*c);
    auto account = conn_->Query("SELECT min(id) FROM accounts");
    if (!account.ok()) return false;
    account_ = account->Scalar();
    thread_ = std::thread([this] {
      const absl::Duration every = absl::Seconds(1) / std::max(rate_, 1);
      absl::Time next = absl::Now();
      while (!stop_.load()) {
        auto r = conn_->Query(
            "INSERT INTO statuses (text, created_at, updated_at, account_id)"
            " VALUES ($1, now(), now(), $2)",
            {"written during the migration", account_});
        if (!r.ok()) {
          failed_ = true;
          return;
        }
        ++committed_;
        next += every;
        absl::SleepFor(next - absl::Now());
      }
    });
    return true;
  }
  // Stops writing and disconnects, as a stopped app does (the cut-over is
  // refused while it is connected).
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    conn_.reset();
  }
  int64_t committed() const { return committed_.load(); }
  bool failed() const { return failed_.load(); }

 private:
  const std::string conninfo_;
  const int rate_;
  std::unique_ptr<PgConnection> conn_;
  std::string account_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> committed_{0};
  std::atomic<bool> failed_{false};
};

enum class Contender { kLogical, kPhysical, kDump };

const char* Name(Contender c) {
  switch (c) {
    case Contender::kLogical:
      return "live migration";
    case Contender::kPhysical:
      return "physical";
    default:
      return "dump and restore";
  }
}

// The steps of the downtime each migration reports.
const std::vector<std::string>& DowntimeSteps(Contender c) {
  static const std::vector<std::string> logical = {"catch_up", "sequences", "verify", "unsubscribe",
                                                   "swap"};
  static const std::vector<std::string> physical = {"catch_up", "verify", "promote", "swap"};
  return c == Contender::kPhysical ? physical : logical;
}

struct Sample {
  bool ok = false;
  double downtime = 0;
  // Live migration: the initial copy's seconds, and the steps in the
  // downtime (catch_up, sequences, verify, unsubscribe, swap).
  double copy_seconds = 0;
  std::map<std::string, double> steps;
  // Dump and restore: its two halves.
  double dump_seconds = 0;
  double restore_seconds = 0;
  double server_cpu = 0;
  int64_t rows_written = 0;
  std::string error;
};

double StepSeconds(const v1::Step& s) {
  if (!s.has_start_time() || !s.has_end_time()) return 0;
  return static_cast<double>(s.end_time().seconds() - s.start_time().seconds()) +
         (s.end_time().nanos() - s.start_time().nanos()) / 1e9;
}

class MigrateBench {
 public:
  MigrateBench(const std::string& work, double scale, int runs, int rate, double follow_seconds,
               const std::string& target_bin)
      : work_(work),
        scale_(scale),
        runs_(runs),
        rate_(rate),
        follow_(absl::Seconds(follow_seconds)),
        target_bin_(target_bin) {}

  int Run(const std::string& output) {
    runner_ = NewPosixCommandRunner();
    env_ = NewPosixEnv();
    if (!env_->CreateDirs(work_, 0755, false).ok()) return 1;
    old_ = bench::StartCluster(
        work_, runner_.get(), env_.get(), kTag, true,
        {"wal_level=logical", "max_wal_senders=10", "max_replication_slots=10"});
    if (old_ == nullptr) return 1;
    // Named as a Debian cluster, for the physical contender (same major).
    new_ = bench::StartCluster(work_, runner_.get(), env_.get(), kTag, true,
                               {absl::StrCat("cluster_name=", old_->major_version(), "/main")},
                               target_bin_);
    if (old_ == nullptr || new_ == nullptr) return 1;
    if (!Generate()) return 1;
    std::vector<Contender> contenders = {Contender::kLogical, Contender::kDump};
    if (old_->major_version() == new_->major_version()) {
      if (!WriteClusterControl()) return 1;
      contenders.push_back(Contender::kPhysical);
    }
    std::map<Contender, std::vector<Sample>> samples;
    for (int run = 0; run < runs_; ++run) {
      for (size_t which = 0; which < contenders.size(); ++which) {
        // Interleaved, each run starting with the next one.
        const Contender c = contenders[(run + which) % contenders.size()];
        Sample s = c == Contender::kDump ? DumpAndRestore(run) : LiveMigration(run, c);
        if (!s.ok) {
          std::fprintf(stderr, "%s: run %d %s failed: %s\n", kTag, run + 1, Name(c),
                       s.error.c_str());
          return 1;
        }
        std::printf("run %d  %-16s downtime %7.2f s  server CPU %6.1f s  rows written %lld\n",
                    run + 1, Name(c), s.downtime, s.server_cpu,
                    static_cast<long long>(s.rows_written));
        std::fflush(stdout);
        samples[c].push_back(s);
      }
    }
    const std::string report = Report(samples);
    std::fputs(report.c_str(), stdout);
    if (!output.empty()) std::ofstream(output) << report;
    return 0;
  }

  // Stops both servers and removes their clusters.
  void Clean() {
    // A server pg_ctlcluster started (after a physical swap) is no child.
    if (new_ != nullptr && env_->Exists(work_ + "/bin/pg_ctlcluster")) {
      bench::RunTool(
          runner_.get(), "/",
          {work_ + "/bin/pg_ctlcluster", absl::StrCat(new_->major_version()), "main", "stop"},
          "pg_ctlcluster", kTag);
    }
    old_.reset();
    new_.reset();
    bench::RunTool(runner_.get(), "/", {"/bin/rm", "-rf", work_}, "rm", kTag);
  }

 private:
  bool Generate() {
    auto admin = PgConnection::Connect(old_->ConnInfo());
    if (!admin.ok() || !(*admin)->Exec(absl::StrCat("CREATE DATABASE ", kSourceDb)).ok()) {
      std::fprintf(stderr, "%s: unable to create the source database\n", kTag);
      return false;
    }
    auto conn = PgConnection::Connect(old_->ConnInfo(kSourceDb));
    if (!conn.ok()) return false;
    bench::MastodonDataStats stats;
    const absl::Time start = absl::Now();
    absl::Status s = bench::GenerateMastodonData(
        conn->get(), scale_, [](const std::string&) {}, &stats);
    if (!s.ok()) {
      std::fprintf(stderr, "%s: %s\n", kTag, std::string(s.message()).c_str());
      return false;
    }
    auto size = (*conn)->Query("SELECT pg_database_size(current_database())");
    if (size.ok()) absl::SimpleAtoi(size->Scalar(), &database_bytes_);
    rows_ = stats.total_rows;
    std::printf("generated scale %.3g: %lld rows, %.0f MB in %.1f s\n", scale_,
                static_cast<long long>(stats.total_rows), database_bytes_ / 1048576.0,
                absl::ToDoubleSeconds(absl::Now() - start));
    return true;
  }

  // This host's database before each contender: none (a fresh host).
  bool DropTarget() {
    auto admin = PgConnection::Connect(new_->ConnInfo());
    if (!admin.ok()) return false;
    auto names = (*admin)->Query("SELECT datname FROM pg_database WHERE datname LIKE $1",
                                 {absl::StrCat(kTargetDb, "%")});
    if (!names.ok()) return false;
    for (const auto& row : names->rows) {
      if (!(*admin)
               ->Exec(absl::StrCat("DROP DATABASE ", (*admin)->QuoteIdentifier(*row[0])))
               .ok()) {
        return false;
      }
    }
    return true;
  }

  // The new cluster's pg_ctlcluster, as Debian's runs it: pg_ctl as
  // postgres, with the options the benchmark's cluster started with.
  bool WriteClusterControl() {
    std::string options =
        absl::StrCat("-p ", new_->port(), " -k ", new_->socket_dir(),
                     " -c listen_addresses= -c cluster_name=", new_->major_version(), "/main");
    for (const char* s : {"fsync=off", "synchronous_commit=off", "full_page_writes=off",
                          "max_wal_size=4GB", "checkpoint_timeout=30min"}) {
      absl::StrAppend(&options, " -c ", s);
    }
    const std::string pg_ctl = new_->bin_dir() + "/pg_ctl";
    const std::string script = absl::StrCat(
        "#!/bin/sh\n# pg_ctlcluster VERSION NAME start|stop for the benchmark's new cluster.\n",
        "case \"$3\" in\n", "  stop) exec /usr/sbin/runuser -u postgres -- ", pg_ctl,
        " stop -w -m fast -D ", new_->data_dir(), " >/dev/null ;;\n",
        "  start) exec /usr/sbin/runuser -u postgres -- ", pg_ctl, " start -w -t 120 -D ",
        new_->data_dir(), " -l ", new_->data_dir(), "/../restarted.log -o '", options,
        "' >/dev/null ;;\n", "esac\nexit 1\n");
    if (!env_->CreateDirs(work_ + "/bin", 0755, false).ok() ||
        !env_->WriteFileAtomic(work_ + "/bin/pg_ctlcluster", script, 0755).ok()) {
      std::fprintf(stderr, "%s: unable to write %s/bin/pg_ctlcluster\n", kTag, work_.c_str());
      return false;
    }
    return true;
  }

  static pid_t PostmasterPid(const LocalCluster& cluster) {
    std::ifstream pid_file(cluster.data_dir() + "/postmaster.pid");
    std::string line;
    int pid = 0;
    if (!std::getline(pid_file, line) || !absl::SimpleAtoi(line, &pid)) return 0;
    return pid;
  }

  double ServersCpu() {
    return bench::ServerCpuSeconds(PostmasterPid(*old_)) +
           bench::ServerCpuSeconds(PostmasterPid(*new_));
  }

  Sample LiveMigration(int run, Contender c) {
    Sample s;
    if (!DropTarget()) {
      s.error = "unable to drop the target database";
      return s;
    }
    const bool physical = c == Contender::kPhysical;
    JobEnv jobs;
    jobs.runner = runner_.get();
    jobs.env = env_.get();
    jobs.pg = &pg_;
    jobs.target_conninfo = new_->ConnInfo();
    jobs.scratch_dir = work_;
    jobs.host_path = work_ + "/bin:/usr/sbin:/usr/bin:/bin";
    jobs.cluster_data_roots = {work_};
    v1::MigrateOptions options;
    options.mutable_source()->set_conninfo(old_->ConnInfo());
    options.mutable_source()->set_database(kSourceDb);
    // A physical copy keeps the old cluster's names.
    options.mutable_target()->set_database(physical ? kSourceDb : kTargetDb);
    if (physical) options.set_method(v1::FOLLOW_METHOD_PHYSICAL);
    options.set_skip_migrate(true);
    options.set_skip_feeds_build(true);
    options.set_leave_stopped(true);
    auto spec = MakeMigrateJob(absl::StrCat("bench-", run), options, jobs);
    if (!spec.ok()) {
      s.error = std::string(spec.status().message());
      return s;
    }
    v1::OperationRecord record;
    record.mutable_operation()->set_id(absl::StrCat("op-bench-", std::string(1, Name(c)[0]), run));
    record.mutable_operation()->set_kind(v1::OPERATION_KIND_MIGRATE);
    Operation op(record, env_.get(), nullptr);
    op.DeclareSteps(spec->steps);
    Writer writer(old_->ConnInfo(kSourceDb), rate_);
    if (!writer.Start()) {
      s.error = "the writer could not start";
      return s;
    }
    const double cpu0 = ServersCpu();
    const double old_cpu0 = bench::ServerCpuSeconds(PostmasterPid(*old_));
    const pid_t new_pid = PostmasterPid(*new_);
    absl::Status outcome;
    std::thread job([&] {
      op.MarkRunning();
      outcome = spec->work(&op);
      op.Finish(outcome);
    });
    // Follow for a while once the initial copy is done.
    while (op.Snapshot().state() != v1::OPERATION_STATE_FOLLOWING && !op.done()) {
      absl::SleepFor(absl::Milliseconds(50));
    }
    absl::SleepFor(follow_);
    // The old app stops; the cut-over is asked at once.
    writer.Stop();
    const absl::Time stopped = absl::Now();
    (void)op.RequestCutOver();
    for (absl::Time give_up = absl::Now() + absl::Minutes(10); !op.done();) {
      if (absl::Now() > give_up) {
        op.cancel_token().Cancel();
        break;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    job.join();
    v1::Operation done = op.Snapshot();
    if (!outcome.ok() || writer.failed()) {
      s.error = writer.failed() ? "the writer failed" : std::string(outcome.message());
      return s;
    }
    s.server_cpu = ServersCpu() - cpu0;
    if (PostmasterPid(*new_) != new_pid) {
      // This host's server was restarted on the copy: its CPU before the
      // swap is gone with its old postmaster (and the copy's standby is
      // not counted): the old server and the restarted one.
      s.server_cpu = bench::ServerCpuSeconds(PostmasterPid(*old_)) - old_cpu0 +
                     bench::ServerCpuSeconds(PostmasterPid(*new_));
    }
    s.rows_written = writer.committed();
    for (const v1::Step& step : done.steps()) {
      // The initial copy: the rows (logical), or the base backup and the
      // standby's start (physical).
      if (step.name() == "copy" || step.name() == "base_backup" || step.name() == "standby") {
        s.copy_seconds += StepSeconds(step);
      }
      if (step.name() == "swap") {
        s.downtime = absl::ToDoubleSeconds(absl::FromUnixSeconds(step.end_time().seconds()) +
                                           absl::Nanoseconds(step.end_time().nanos()) - stopped);
      }
      for (const std::string& name : DowntimeSteps(c)) {
        if (step.name() == name) s.steps[name] = StepSeconds(step);
      }
    }
    // The cluster the copy replaced is kept beside it: not here.
    if (physical && !done.migrate_result().previous_data_directory().empty()) {
      bench::RunTool(runner_.get(), "/",
                     {"/bin/rm", "-rf", done.migrate_result().previous_data_directory()}, "rm",
                     kTag);
    }
    s.ok = true;
    return s;
  }

  Sample DumpAndRestore(int run) {
    Sample s;
    if (!DropTarget()) {
      s.error = "unable to drop the target database";
      return s;
    }
    Writer writer(old_->ConnInfo(kSourceDb), rate_);
    if (!writer.Start()) {
      s.error = "the writer could not start";
      return s;
    }
    absl::SleepFor(follow_);
    writer.Stop();
    s.rows_written = writer.committed();
    const double cpu0 = ServersCpu();
    const absl::Time stopped = absl::Now();
    const std::string dump = absl::StrCat(work_, "/move-", run, ".custom");
    CommandSpec spec;
    spec.argv = {old_->bin_dir() + "/pg_dump", "-Fc", "-f", dump, "-d", old_->ConnInfo(kSourceDb)};
    spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
    spec.timeout = absl::Hours(2);
    auto r = runner_->Run(spec, nullptr);
    if (!r.ok() || r->exit_code != 0) {
      s.error = r.ok() ? r->stderr_text : std::string(r.status().message());
      return s;
    }
    const absl::Time dumped = absl::Now();
    DatabaseRestoreRequest request;
    request.source_path = dump;
    request.source.allowed_roots = {work_};
    request.conninfo = new_->ConnInfo();
    request.database = kTargetDb;
    request.operation_id = absl::StrCat("bench-move-", run);
    request.jobs = 2;
    auto detected =
        DetectDumpToRestore(dump, "", "", request.source, InspectOptions(), runner_.get());
    if (!detected.ok()) {
      s.error = std::string(detected.status().message());
      return s;
    }
    request.dump = detected->dump;
    auto restored = RestoreDatabase(request, runner_.get(), env_.get());
    env_->RemoveFile(dump).IgnoreError();
    if (!restored.ok()) {
      s.error = std::string(restored.status().message());
      return s;
    }
    const absl::Time end = absl::Now();
    s.dump_seconds = absl::ToDoubleSeconds(dumped - stopped);
    s.restore_seconds = absl::ToDoubleSeconds(end - dumped);
    s.downtime = absl::ToDoubleSeconds(end - stopped);
    s.server_cpu = ServersCpu() - cpu0;
    s.ok = true;
    return s;
  }

  std::string Report(const std::map<Contender, std::vector<Sample>>& samples) const {
    auto median = [](const std::vector<Sample>& v, auto field) {
      std::vector<double> x;
      for (const Sample& s : v) x.push_back(field(s));
      return bench::Median(x);
    };
    auto get = [&](Contender c) {
      auto it = samples.find(c);
      return it == samples.end() ? std::vector<Sample>() : it->second;
    };
    const std::vector<Sample> live = get(Contender::kLogical);
    const std::vector<Sample> dumped = get(Contender::kDump);
    const std::vector<Sample> physical = get(Contender::kPhysical);
    const double live_down = median(live, [](const Sample& s) { return s.downtime; });
    const double dump_down = median(dumped, [](const Sample& s) { return s.downtime; });
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    std::string out = absl::StrFormat(
        "# Live migration against a dump-based move\n\n"
        "`migrate_bench --scale %g --runs %d --rate %d --follow-seconds %.0f` on %d cores: "
        "the Mastodon-shaped database (%lld rows, %.0f MB) on PostgreSQL %d, moved to "
        "PostgreSQL %d on the same machine; a writer inserts statuses at %d per second until "
        "the old app stops. Medians of %d runs, contenders interleaved.\n\n"
        "| contender | downtime s (median) | min–max s | server CPU s | of which |\n"
        "|---|---:|---:|---:|---|\n",
        scale_, runs_, rate_, absl::ToDoubleSeconds(follow_), env_->Cpus(),
        static_cast<long long>(rows_), database_bytes_ / 1048576.0, old_->major_version(),
        new_->major_version(), rate_, runs_);
    auto minmax = [](const std::vector<Sample>& v) {
      double lo = 1e18, hi = 0;
      for (const Sample& s : v) {
        lo = std::min(lo, s.downtime);
        hi = std::max(hi, s.downtime);
      }
      return absl::StrFormat("%.2f–%.2f", lo, hi);
    };
    auto row = [&](Contender c, const std::vector<Sample>& v, const std::string& label) {
      std::string steps;
      for (const std::string& name : DowntimeSteps(c)) {
        absl::StrAppendFormat(&steps, "%s%s %.2f", steps.empty() ? "" : ", ", name,
                              median(v, [&](const Sample& s) {
                                auto it = s.steps.find(name);
                                return it == s.steps.end() ? 0.0 : it->second;
                              }));
      }
      absl::StrAppendFormat(&out, "| %s | %.2f | %s | %.1f | %s |\n", label,
                            median(v, [](const Sample& s) { return s.downtime; }), minmax(v),
                            median(v, [](const Sample& s) { return s.server_cpu; }), steps);
    };
    row(Contender::kLogical, live, "live migration");
    if (!physical.empty()) row(Contender::kPhysical, physical, "live migration (physical)");
    absl::StrAppendFormat(
        &out,
        "| pg_dump -Fc, then the agent's restore (2 jobs) | %.2f | %s | %.1f | dump %.2f, "
        "restore %.2f |\n",
        dump_down, minmax(dumped), median(dumped, [](const Sample& s) { return s.server_cpu; }),
        median(dumped, [](const Sample& s) { return s.dump_seconds; }),
        median(dumped, [](const Sample& s) { return s.restore_seconds; }));
    const double copy = median(live, [](const Sample& s) { return s.copy_seconds; });
    absl::StrAppendFormat(
        &out,
        "\nDowntime ratio: the dump-based move is down %.1f× longer than the logical "
        "migration. The logical migration's initial copy (the old app still serving) took "
        "%.2f s: %.1f MB/s of database.",
        live_down > 0 ? dump_down / live_down : 0, copy,
        copy > 0 ? database_bytes_ / 1048576.0 / copy : 0);
    if (!physical.empty()) {
      const double down = median(physical, [](const Sample& s) { return s.downtime; });
      const double base = median(physical, [](const Sample& s) { return s.copy_seconds; });
      absl::StrAppendFormat(
          &out,
          " The physical migration is down %.2f s (%.1f× shorter than the dump-based move); "
          "its base backup and standby start (the whole cluster, the old app still serving) "
          "took %.2f s: %.1f MB/s of database (its server CPU: the old server's and the new one's "
          "after its restart on the copy; the copy's standby is not counted).",
          down, down > 0 ? dump_down / down : 0, base,
          base > 0 ? database_bytes_ / 1048576.0 / base : 0);
    }
    absl::StrAppendFormat(
        &out, " Peak RSS of this process (the agent's job and the benchmark): %.0f MB.\n",
        ru.ru_maxrss / 1024.0);
    return out;
  }

  const std::string work_;
  const double scale_;
  const int runs_;
  const int rate_;
  const absl::Duration follow_;
  const std::string target_bin_;
  std::unique_ptr<CommandRunner> runner_;
  std::unique_ptr<Env> env_;
  LibpqConnector pg_;
  std::unique_ptr<LocalCluster> old_;
  std::unique_ptr<LocalCluster> new_;
  int64_t database_bytes_ = 0;
  int64_t rows_ = 0;
};

int Main(const std::vector<std::string>& argv) {
  const std::vector<FlagSpec> specs = {
      {"scale", "X", "size of the Mastodon-shaped database (1: ~9 s to restore)"},
      {"runs", "N", "runs of each contender (default 3)"},
      {"rate", "N", "statuses the writer inserts per second (default 100)"},
      {"follow-seconds", "S", "how long the migration follows before the cut-over (default 5)"},
      {"target-bin", "DIR", "binaries of the new server (default: the newest installed)"},
      {"work-dir", "DIR", "clusters and dumps (default /var/tmp/mr-migrate-bench)"},
      {"output", "FILE", "also write the report there"},
  };
  auto args = ParseArgs(argv, specs);
  if (!args.ok()) {
    std::fprintf(stderr, "%s: %s\n", kTag, std::string(args.status().message()).c_str());
    return 2;
  }
  double scale = 1, follow = 5;
  int runs = 3, rate = 100;
  if (!absl::SimpleAtod(args->Get("scale", "1"), &scale) ||
      !absl::SimpleAtoi(args->Get("runs", "3"), &runs) ||
      !absl::SimpleAtoi(args->Get("rate", "100"), &rate) ||
      !absl::SimpleAtod(args->Get("follow-seconds", "5"), &follow) || scale <= 0 || runs < 1 ||
      rate < 1 || follow < 0) {
    std::fprintf(stderr, "%s: bad --scale, --runs, --rate or --follow-seconds\n", kTag);
    return 2;
  }
  const std::string work =
      absl::StrCat(args->Get("work-dir", "/var/tmp/mr-migrate-bench"), "/", getpid());
  MigrateBench bench(work, scale, runs, rate, follow, args->Get("target-bin", ""));
  const int rc = bench.Run(args->Get("output", ""));
  bench.Clean();
  return rc;
}

}  // namespace
}  // namespace mastodon_restore

int main(int argc, char** argv) {
  return mastodon_restore::Main(std::vector<std::string>(argv + 1, argv + argc));
}
