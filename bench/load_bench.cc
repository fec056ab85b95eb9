// Load benchmark of the agent's remote API (issue 8): one real agent over
// mutual TLS on loopback, a real PostgreSQL 15 and the plain dump of the
// Mastodon-shaped database at --scale (bench/mastodon_data.h; shared with
// restore_bench through --dump-dir). After a warm-up restore it times --runs
// database restores without load, then restores back to back for --seconds
// while --watchers WatchOperation streams follow each of them to its end and
// GetOperation is called --rate times per second, then --runs unloaded
// restores again. Reports the median restore time with and without load,
// GetOperation latency percentiles, stream and call errors, the CPU the load
// generator itself burnt on the same cores, and the agent's RSS.
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

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
#include "agent/database/local_cluster.h"
#include "agent/database/pg_connection.h"
#include "agent/operations/operation.h"
#include "bench/bench_common.h"
#include "bench/mastodon_data.h"
#include "cli/agent_client.h"
#include "mastodon/restore/v1/agent_service.grpc.pb.h"

namespace mastodon_restore {
namespace {

namespace v1 = mastodon::restore::v1;

using bench::Median;
using bench::Percentile;
using bench::ProcStatusMb;

// What the watchers saw, over all of them.
struct WatchCounters {
  std::atomic<int> streams{0}, ok{0}, errors{0};
  std::atomic<int64_t> events{0};
  std::mutex mu;
  std::condition_variable cv;
  int open = 0;  // GUARDED_BY(mu)

  // Waits until every stream has ended.
  void WaitForAll() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [this] { return open == 0; });
  }
};

// One WatchOperation stream followed to its end; deletes itself when done.
class Watcher : public grpc::ClientReadReactor<v1::WatchOperationResponse> {
 public:
  Watcher(v1::RestoreAgentService::Stub* stub, const AgentAddress& address, const std::string& id,
          WatchCounters* counters)
      : counters_(counters) {
    {
      std::lock_guard<std::mutex> lock(counters_->mu);
      ++counters_->open;
    }
    AddToken(address, &context_);
    request_.set_id(id);
    stub->async()->WatchOperation(&context_, &request_, this);
    StartRead(response_);
    StartCall();
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    ++events_;
    if (response_->has_operation() && IsTerminal(response_->operation().state())) ended_ = true;
    StartRead(response_);
  }

  void OnDone(const grpc::Status& status) override {
    counters_->events += events_;
    ++counters_->streams;
    if (status.ok() && ended_) {
      ++counters_->ok;
    } else if (++counters_->errors == 1) {
      std::fprintf(stderr, "load_bench: watcher: %s (ended=%d)\n", status.error_message().c_str(),
                   ended_);
    }
    WatchCounters* counters = counters_;
    delete this;
    std::lock_guard<std::mutex> lock(counters->mu);
    if (--counters->open == 0) counters->cv.notify_all();
  }

 private:
  WatchCounters* const counters_;
  grpc::ClientContext context_;
  v1::WatchOperationRequest request_;
  // Each event is parsed whole into the arena (a message off the heap would
  // free and reallocate the operation and its steps on every event, which a
  // thousand streams turn into the load generator's largest cost).
  google::protobuf::Arena arena_;
  v1::WatchOperationResponse* const response_ =
      google::protobuf::Arena::CreateMessage<v1::WatchOperationResponse>(&arena_);
  int64_t events_ = 0;
  bool ended_ = false;
};

class Bench {
 public:
  Bench(std::string work, CommandRunner* runner, Env* env)
      : work_(std::move(work)), runner_(runner), env_(env) {}

  bool Run(const std::string& argv0, std::vector<std::string> args, const std::string& what) {
    args.insert(args.begin(), argv0);
    return bench::RunTool(runner_, work_, std::move(args), what, "load_bench");
  }

  // PostgreSQL, and the plain dump of the database at `scale` (made once in
  // `dump_dir`/dumps-scale-<S>/dump.sql, the path restore_bench uses).
  bool SetUpDatabase(double scale, const std::string& dump_dir) {
    cluster_ = bench::StartCluster(work_, runner_, env_, "load_bench");
    if (cluster_ == nullptr) return false;
    const std::string dir = absl::StrFormat("%s/dumps-scale-%g", dump_dir, scale);
    dump_ = dir + "/dump.sql";
    dump_dir_ = dir;
    if (std::filesystem::exists(dump_)) return true;
    if (!env_->CreateDirs(dir, 0755, false).ok()) return false;
    auto admin = PgConnection::Connect(cluster_->ConnInfo());
    if (!admin.ok() || !(*admin)->Exec("CREATE DATABASE load_source").ok()) return false;
    auto conn = PgConnection::Connect(cluster_->ConnInfo("load_source"));
    if (!conn.ok()) return false;
    absl::Status generated = bench::GenerateMastodonData(conn->get(), scale, nullptr, nullptr);
    conn->reset();
    if (!generated.ok()) {
      std::fprintf(stderr, "load_bench: %s\n", std::string(generated.message()).c_str());
      return false;
    }
    if (!Run(cluster_->bin_dir() + "/pg_dump",
             {"-f", dump_ + ".part", cluster_->ConnInfo("load_source")}, "pg_dump")) {
      return false;
    }
    std::filesystem::rename(dump_ + ".part", dump_);
    absl::Status dropped = (*admin)->Exec("DROP DATABASE load_source WITH (FORCE)");
    if (!dropped.ok()) {
      std::fprintf(stderr, "load_bench: %s\n", std::string(dropped.message()).c_str());
    }
    return dropped.ok();
  }

  void DropDatabase(const std::string& name) {
    auto admin = PgConnection::Connect(cluster_->ConnInfo());
    if (admin.ok()) {
      (*admin)->Exec(absl::StrCat("DROP DATABASE IF EXISTS ", name, " WITH (FORCE)")).IgnoreError();
      (*admin)->Exec("CHECKPOINT").IgnoreError();
    }
  }

  bool SetUpTls() { return bench::MakeCertificates(runner_, work_, "load_bench"); }

  bool StartAgent() {
    auto port = PickFreePort();
    if (!port.ok()) return false;
    const std::string listen = absl::StrCat("127.0.0.1:", *port);
    CommandSpec spec;
    spec.argv = {MR_AGENT_BIN,
                 "--socket",
                 work_ + "/agent.sock",
                 "--state-dir",
                 work_ + "/state",
                 "--listen",
                 listen,
                 "--tls-cert",
                 work_ + "/server.pem",
                 "--tls-key",
                 work_ + "/server.key",
                 "--tls-client-ca",
                 work_ + "/ca.pem",
                 "--allowed-root",
                 work_,
                 "--allowed-root",
                 dump_dir_,
                 "--target-conninfo",
                 cluster_->ConnInfo(),
                 "--log-level",
                 "warning"};
    spec.env = {"PATH=/usr/bin:/bin"};
    spec.output_file = work_ + "/agent.log";
    auto process = runner_->Start(spec);
    if (!process.ok()) return false;
    agent_ = std::move(*process);
    AgentAddress address;
    address.address = listen;
    address.tls_ca = work_ + "/ca.pem";
    address.tls_cert = work_ + "/client.pem";
    address.tls_key = work_ + "/client.key";
    address.timeout = absl::Seconds(10);
    address_ = address;
    auto channel = OpenAgentChannel(address_, env_);
    if (!channel.ok()) return false;
    stub_ = v1::RestoreAgentService::NewStub(*channel);
    for (int i = 0; i < 200; ++i) {
      grpc::ClientContext c;
      PrepareCall(address_, &c);
      c.set_wait_for_ready(true);  // the agent may not listen yet
      v1::GetAgentInfoResponse r;
      if (stub_->GetAgentInfo(&c, {}, &r).ok()) return true;
      if (agent_->Wait(absl::Milliseconds(100)).has_value()) break;
    }
    std::fprintf(stderr, "load_bench: the agent did not come up (see %s/agent.log)\n",
                 work_.c_str());
    return false;
  }

  // Starts a database-only restore of the dump into `database`; "" on error.
  std::string StartRestore(const std::string& database) {
    v1::StartRestoreRequest request;
    request.mutable_options()->mutable_source()->set_path(dump_);
    request.mutable_options()->set_db_only(true);
    request.mutable_options()->set_target_db(database);
    grpc::ClientContext c;
    PrepareCall(address_, &c);
    v1::StartRestoreResponse response;
    grpc::Status s = stub_->StartRestore(&c, request, &response);
    if (!s.ok()) {
      std::fprintf(stderr, "load_bench: StartRestore: %s\n", s.error_message().c_str());
      return "";
    }
    return response.operation().id();
  }

  // Waits for `id` to end; its wall time from `start` in seconds, -1 unless
  // it succeeded.
  double WaitFor(const std::string& id, absl::Time start) {
    while (true) {
      grpc::ClientContext c;
      PrepareCall(address_, &c);
      v1::GetOperationRequest request;
      request.set_id(id);
      v1::GetOperationResponse response;
      if (stub_->GetOperation(&c, request, &response).ok() &&
          IsTerminal(response.operation().state())) {
        if (response.operation().state() != v1::OPERATION_STATE_SUCCEEDED) {
          std::fprintf(stderr, "load_bench: restore ended %s: %s\n",
                       v1::OperationState_Name(response.operation().state()).c_str(),
                       response.operation().error().message().c_str());
          return -1;
        }
        return absl::ToDoubleSeconds(absl::Now() - start);
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  // CPU seconds the agent has used so far.
  double AgentCpuSeconds() const {
    bench::ProcStat st = bench::ReadProcStat(agent_->pid());
    return bench::TicksToSeconds(st.Get(11) + st.Get(12));
  }

  // A restore into `database` (dropped afterwards); its wall seconds, -1 on
  // failure.
  double UnloadedRestore(const std::string& database) {
    absl::Time start = absl::Now();
    std::string id = StartRestore(database);
    double s = id.empty() ? -1 : WaitFor(id, start);
    DropDatabase(database);
    return s;
  }

  struct LoadFigures {
    std::vector<double> restore_s;
    double window_s = 0;
    std::vector<double> get_ms;
    int get_errors = 0;
    int streams = 0;
    int streams_ok = 0;
    int stream_errors = 0;
    int64_t events = 0;
    double peak_rss_during_mb = 0;
    double generator_cpu_s = 0;
    double agent_cpu_s = 0;
  };

  // Restores back to back for `seconds` (at least one) under the load.
  LoadFigures LoadedRestores(int watchers, int rate, double seconds) {
    LoadFigures f;
    std::mutex mu;
    std::string current;  // the restore being followed
    bool done = false;
    // The watchers are callback reactors on gRPC's own threads, as a
    // controller following many streams would be written: a thread per
    // stream would spend the load generator's CPU on waking 1,000 threads for
    // every event, on the cores the restore runs on.
    WatchCounters counters;
    std::vector<std::thread> threads;
    std::mutex figures_mu;
    threads.emplace_back([&] {
      const absl::Duration period = absl::Seconds(1) / rate;
      absl::Time next = absl::Now();
      while (true) {
        std::string id;
        {
          std::lock_guard<std::mutex> lock(mu);
          if (done) return;
          id = current;
        }
        if (id.empty()) {  // the first restore is starting
          absl::SleepFor(absl::Milliseconds(5));
          next = absl::Now();
          continue;
        }
        grpc::ClientContext c;
        PrepareCall(address_, &c);
        v1::GetOperationRequest request;
        request.set_id(id);
        v1::GetOperationResponse response;
        absl::Time t = absl::Now();
        grpc::Status s = stub_->GetOperation(&c, request, &response);
        double ms = absl::ToDoubleMilliseconds(absl::Now() - t);
        {
          std::lock_guard<std::mutex> lock(figures_mu);
          if (s.ok()) {
            f.get_ms.push_back(ms);
          } else {
            ++f.get_errors;
          }
        }
        next += period;
        absl::Time now = absl::Now();
        if (next > now) absl::SleepFor(next - now);
      }
    });
    threads.emplace_back([&] {
      while (true) {
        {
          std::lock_guard<std::mutex> lock(mu);
          if (done) return;
        }
        double rss = ProcStatusMb(agent_->pid(), "VmRSS");
        {
          std::lock_guard<std::mutex> lock(figures_mu);
          f.peak_rss_during_mb = std::max(f.peak_rss_during_mb, rss);
        }
        absl::SleepFor(absl::Milliseconds(100));
      }
    });
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    const double agent_cpu_before = AgentCpuSeconds();
    const absl::Time window = absl::Now();
    for (int k = 0; k == 0 || absl::Now() - window < absl::Seconds(seconds); ++k) {
      const std::string database = absl::StrCat("load_loaded_", k);
      absl::Time start = absl::Now();
      const std::string id = StartRestore(database);
      if (id.empty()) break;
      {
        std::lock_guard<std::mutex> lock(mu);
        current = id;
      }
      for (int i = 0; i < watchers; ++i) new Watcher(stub_.get(), address_, id, &counters);
      const double s = WaitFor(id, start);
      if (s < 0) break;
      f.restore_s.push_back(s);
      // Dropped while the load goes on (not timed): the next restore starts
      // as soon as the watchers have something new to follow.
      DropDatabase(database);
    }
    f.window_s = absl::ToDoubleSeconds(absl::Now() - window);
    {
      std::lock_guard<std::mutex> lock(mu);
      done = true;
    }
    for (std::thread& t : threads) t.join();
    counters.WaitForAll();
    getrusage(RUSAGE_SELF, &after);
    f.generator_cpu_s = absl::ToDoubleSeconds(
        absl::DurationFromTimeval(after.ru_utime) - absl::DurationFromTimeval(before.ru_utime) +
        absl::DurationFromTimeval(after.ru_stime) - absl::DurationFromTimeval(before.ru_stime));
    f.agent_cpu_s = AgentCpuSeconds() - agent_cpu_before;
    f.streams = counters.streams;
    f.streams_ok = counters.ok;
    f.stream_errors = counters.errors;
    f.events = counters.events;
    return f;
  }

  double AgentPeakRssMb() const { return ProcStatusMb(agent_->pid(), "VmHWM"); }

  void StopAgent() {
    if (agent_ == nullptr) return;
    agent_->Signal(SIGTERM);
    if (!agent_->Wait(absl::Seconds(30)).has_value()) agent_->Signal(SIGKILL);
    agent_.reset();
  }

  ~Bench() { StopAgent(); }

  int64_t DumpBytes() const {
    std::error_code ec;
    auto size = std::filesystem::file_size(dump_, ec);
    return ec ? 0 : static_cast<int64_t>(size);
  }

 private:
  const std::string work_;
  CommandRunner* const runner_;
  Env* const env_;
  std::unique_ptr<LocalCluster> cluster_;
  std::string dump_;
  std::string dump_dir_;
  std::unique_ptr<Process> agent_;
  AgentAddress address_;
  std::unique_ptr<v1::RestoreAgentService::Stub> stub_;
};

int Main(const std::vector<std::string>& args) {
  const std::vector<FlagSpec> specs = {
      {"scale", "S", "size of the Mastodon-shaped database (1: ~700 MB of dump; default 1)"},
      {"dump-dir", "DIR",
       "where dumps-scale-<S>/dump.sql is kept (default /var/tmp/mr-restore-bench)"},
      {"watchers", "N", "concurrent WatchOperation streams (default 1000)"},
      {"rate", "N", "GetOperation calls per second (default 200)"},
      {"seconds", "N", "length of the loaded window (default 60)"},
      {"runs", "N", "unloaded restores before and after the window (default 3)"},
      {"work-dir", "DIR", "where the cluster and agent state go (default /tmp)"},
      {"output", "FILE", "also write the markdown report here"},
  };
  auto parsed = ParseArgs(args, specs);
  double scale = 1, seconds = 60;
  int watchers = 0, rate = 0, runs = 0;
  if (!parsed.ok() || !absl::SimpleAtod(parsed->Get("scale", "1"), &scale) ||
      !absl::SimpleAtod(parsed->Get("seconds", "60"), &seconds) ||
      !absl::SimpleAtoi(parsed->Get("watchers", "1000"), &watchers) ||
      !absl::SimpleAtoi(parsed->Get("rate", "200"), &rate) ||
      !absl::SimpleAtoi(parsed->Get("runs", "3"), &runs) || scale <= 0 || watchers < 0 ||
      rate <= 0 || runs <= 0 || seconds < 0) {
    std::fprintf(stderr, "usage: load_bench [flags]\n%s", FormatFlagHelp(specs).c_str());
    return 2;
  }
  auto env = NewPosixEnv();
  auto runner = NewPosixCommandRunner();
  const std::string work = absl::StrCat(parsed->Get("work-dir", "/tmp"), "/mr-load-bench");
  {
    CommandSpec rm;
    rm.argv = {"rm", "-rf", work};
    (void)runner->Run(rm, nullptr);
  }
  if (!env->CreateDirs(work, 0755, false).ok()) return 1;
  std::string report;
  {
    Bench bench(work, runner.get(), env.get());
    absl::Time t0 = absl::Now();
    if (!bench.SetUpDatabase(scale, parsed->Get("dump-dir", "/var/tmp/mr-restore-bench"))) {
      return 1;
    }
    std::fprintf(stderr, "load_bench: database and dump ready in %s\n",
                 absl::FormatDuration(absl::Now() - t0).c_str());
    if (!bench.SetUpTls() || !bench.StartAgent()) return 1;
    // Warm-up: the new server's first WAL segments and cold caches.
    if (bench.UnloadedRestore("load_warmup") < 0) return 1;
    std::vector<double> unloaded;
    for (int i = 0; i < runs; ++i) unloaded.push_back(bench.UnloadedRestore("load_before"));
    Bench::LoadFigures f = bench.LoadedRestores(watchers, rate, seconds);
    const double agent_cpu_unloaded1 = bench.AgentCpuSeconds();
    for (int i = 0; i < runs; ++i) unloaded.push_back(bench.UnloadedRestore("load_after"));
    const double agent_cpu_after = bench.AgentCpuSeconds() - agent_cpu_unloaded1;
    for (double u : unloaded) {
      if (u < 0) return 1;
    }
    if (f.restore_s.empty()) return 1;
    const double peak = bench.AgentPeakRssMb();
    bench.StopAgent();
    const double base = Median(unloaded), loaded = Median(f.restore_s);
    std::vector<std::string> u_list, l_list;
    for (double u : unloaded) u_list.push_back(absl::StrFormat("%.2f", u));
    for (double l : f.restore_s) l_list.push_back(absl::StrFormat("%.2f", l));
    report = absl::StrFormat(
        "# Remote API load benchmark, %s\n\nCommand: `load_bench --scale %g --watchers %d --rate "
        "%d --seconds %g --runs %d` (mutual TLS on 127.0.0.1, one agent, database-only restores "
        "of the %.0f MB plain dump of the Mastodon-shaped database, default --jobs)\n\n"
        "| restores | median | each |\n|---|---:|---|\n"
        "| without load (%d before, %d after the window) | %.2f s | %s |\n"
        "| under load (back to back for %.0f s) | %.2f s | %s |\n\n"
        "Slowdown under load: %+.1f%% (median against median)\n\n"
        "| load | figure |\n|---|---:|\n"
        "| WatchOperation streams followed to the end | %d of %d (%d errors, %d events) |\n"
        "| GetOperation calls | %d in %.0f s (%d errors) |\n"
        "| GetOperation p50 / p99 / max | %.2f / %.2f / %.2f ms |\n"
        "| CPU of the load generator (same 2 cores) | %.1f s in the window |\n"
        "| agent CPU per restore, under load / without | %.2f s / %.2f s |\n"
        "| agent RSS, peak while loaded | %.1f MB |\n| agent VmHWM over the run | %.1f MB |\n",
        absl::FormatTime("%Y-%m-%d", absl::Now(), absl::UTCTimeZone()), scale, watchers, rate,
        seconds, runs, static_cast<double>(bench.DumpBytes()) / 1e6, runs, runs, base,
        absl::StrJoin(u_list, ", "), f.window_s, loaded, absl::StrJoin(l_list, ", "),
        (loaded / base - 1) * 100, f.streams_ok, f.streams, f.stream_errors,
        static_cast<long long>(f.events), static_cast<int>(f.get_ms.size()), f.window_s,
        f.get_errors, Percentile(f.get_ms, 0.5), Percentile(f.get_ms, 0.99),
        Percentile(f.get_ms, 1.0), f.generator_cpu_s,
        f.agent_cpu_s / static_cast<double>(f.restore_s.size()), agent_cpu_after / runs,
        f.peak_rss_during_mb, peak);
  }
  std::fputs(report.c_str(), stdout);
  if (parsed->Has("output")) std::ofstream(parsed->Get("output")) << report;
  CommandSpec rm;
  rm.argv = {"rm", "-rf", work};
  (void)runner->Run(rm, nullptr);
  return 0;
}

}  // namespace
}  // namespace mastodon_restore

int main(int argc, char** argv) {
  // As the agent's main does (no lock-order bookkeeping in the generator).
  mastodon_restore::SetUpAgentProcess();
  return mastodon_restore::Main(std::vector<std::string>(argv + 1, argv + argc));
}
