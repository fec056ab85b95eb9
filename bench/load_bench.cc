// Load benchmark of the agent's remote API (issue 8): one real agent over
// mutual TLS on loopback, a real PostgreSQL 15 and a plain dump of --rows rows
// made by pg_dump. It times a database restore without load, then the same
// restore while --watchers WatchOperation streams follow it and GetOperation
// is called --rate times per second, then the unloaded restore again. Reports
// GetOperation latency percentiles, stream and call errors, the restore's
// slowdown and the agent's peak RSS.
//
// The load lasts as long as the loaded restore does (the watchers follow that
// operation to its end); scale --rows for a longer window.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
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
#include "absl/time/clock.h"
#include "agent/common/args.h"
#include "agent/common/env.h"
#include "agent/common/subprocess.h"
#include "agent/database/local_cluster.h"
#include "agent/operations/operation.h"
#include "bench/bench_common.h"
#include "cli/agent_client.h"
#include "mastodon/restore/v1/agent_service.grpc.pb.h"

namespace mastodon_restore {
namespace {

namespace v1 = mastodon::restore::v1;

using bench::Percentile;
using bench::ProcStatusMb;

class Bench {
 public:
  Bench(std::string work, CommandRunner* runner, Env* env)
      : work_(std::move(work)), runner_(runner), env_(env) {}

  bool Run(const std::string& argv0, std::vector<std::string> args, const std::string& what) {
    args.insert(args.begin(), argv0);
    return bench::RunTool(runner_, work_, std::move(args), what, "load_bench");
  }

  // PostgreSQL, a source database and its plain dump.
  bool SetUpDatabase(int64_t rows) {
    cluster_ = bench::StartCluster(work_, runner_, env_, "load_bench");
    if (cluster_ == nullptr) return false;
    const std::string psql = cluster_->bin_dir() + "/psql";
    if (!Run(psql,
             {"-X", "-q", "-v", "ON_ERROR_STOP=1", cluster_->ConnInfo(), "-c",
              "CREATE DATABASE load_source"},
             "createdb")) {
      return false;
    }
    const std::string fill = absl::StrCat(
        "CREATE TABLE statuses (id bigint PRIMARY KEY, account_id bigint NOT NULL, "
        "text text NOT NULL, created_at timestamptz NOT NULL);"
        "INSERT INTO statuses SELECT g, g % 5000, md5(g::text) || ' toot ' || g, "
        "'2024-01-01'::timestamptz + g * interval '1 second' FROM generate_series(1, ",
        rows, ") g; CREATE INDEX ON statuses (account_id, id);");
    if (!Run(psql,
             {"-X", "-q", "-v", "ON_ERROR_STOP=1", cluster_->ConnInfo("load_source"), "-c", fill},
             "fill")) {
      return false;
    }
    dump_ = work_ + "/load.sql";
    return Run(cluster_->bin_dir() + "/pg_dump",
               {"--no-owner", "-f", dump_, cluster_->ConnInfo("load_source")}, "pg_dump");
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

  double UnloadedRestore(const std::string& database) {
    absl::Time start = absl::Now();
    std::string id = StartRestore(database);
    return id.empty() ? -1 : WaitFor(id, start);
  }

  struct LoadFigures {
    double restore_s = -1;
    std::vector<double> get_ms;
    int get_errors = 0;
    int watchers_ok = 0;
    int watcher_errors = 0;
    int64_t events = 0;
    double peak_rss_during_mb = 0;
  };

  LoadFigures LoadedRestore(const std::string& database, int watchers, int rate) {
    LoadFigures f;
    absl::Time start = absl::Now();
    const std::string id = StartRestore(database);
    if (id.empty()) return f;
    std::atomic<bool> done{false};
    std::atomic<int> ok{0}, errors{0};
    std::atomic<int64_t> events{0};
    std::vector<std::thread> threads;
    threads.reserve(static_cast<size_t>(watchers) + 2);
    for (int i = 0; i < watchers; ++i) {
      threads.emplace_back([&, id] {
        grpc::ClientContext c;
        AddToken(address_, &c);
        v1::WatchOperationRequest request;
        request.set_id(id);
        auto reader = stub_->WatchOperation(&c, request);
        v1::WatchOperationResponse r;
        int64_t seen = 0;
        bool ended = false;
        while (reader->Read(&r)) {
          ++seen;
          if (r.has_operation() && IsTerminal(r.operation().state())) ended = true;
        }
        grpc::Status s = reader->Finish();
        events += seen;
        if (s.ok() && ended) {
          ++ok;
        } else {
          ++errors;
          if (errors == 1) {
            std::fprintf(stderr, "load_bench: watcher: %s (ended=%d)\n", s.error_message().c_str(),
                         ended);
          }
        }
      });
    }
    std::mutex mu;
    threads.emplace_back([&] {
      const absl::Duration period = absl::Seconds(1) / rate;
      absl::Time next = absl::Now();
      while (!done) {
        grpc::ClientContext c;
        PrepareCall(address_, &c);
        v1::GetOperationRequest request;
        request.set_id(id);
        v1::GetOperationResponse response;
        absl::Time t = absl::Now();
        grpc::Status s = stub_->GetOperation(&c, request, &response);
        double ms = absl::ToDoubleMilliseconds(absl::Now() - t);
        {
          std::lock_guard<std::mutex> lock(mu);
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
      while (!done) {
        f.peak_rss_during_mb = std::max(f.peak_rss_during_mb, ProcStatusMb(agent_->pid(), "VmRSS"));
        absl::SleepFor(absl::Milliseconds(100));
      }
    });
    f.restore_s = WaitFor(id, start);
    done = true;
    for (std::thread& t : threads) t.join();
    f.watchers_ok = ok;
    f.watcher_errors = errors;
    f.events = events;
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
  std::unique_ptr<Process> agent_;
  AgentAddress address_;
  std::unique_ptr<v1::RestoreAgentService::Stub> stub_;
};

int Main(const std::vector<std::string>& args) {
  const std::vector<FlagSpec> specs = {
      {"rows", "N", "rows in the dumped table (default 2000000)"},
      {"watchers", "N", "concurrent WatchOperation streams (default 1000)"},
      {"rate", "N", "GetOperation calls per second (default 200)"},
      {"work-dir", "DIR", "where the cluster, dump and agent state go (default /tmp)"},
      {"output", "FILE", "also write the markdown report here"},
  };
  auto parsed = ParseArgs(args, specs);
  int64_t rows = 0;
  int watchers = 0, rate = 0;
  if (!parsed.ok() || !absl::SimpleAtoi(parsed->Get("rows", "2000000"), &rows) ||
      !absl::SimpleAtoi(parsed->Get("watchers", "1000"), &watchers) ||
      !absl::SimpleAtoi(parsed->Get("rate", "200"), &rate) || rows <= 0 || watchers < 0 ||
      rate <= 0) {
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
    if (!bench.SetUpDatabase(rows)) return 1;
    std::fprintf(stderr, "load_bench: database and dump ready in %s\n",
                 absl::FormatDuration(absl::Now() - t0).c_str());
    if (!bench.SetUpTls() || !bench.StartAgent()) return 1;
    std::fprintf(stderr, "load_bench: set up in %s\n",
                 absl::FormatDuration(absl::Now() - t0).c_str());
    const double before = bench.UnloadedRestore("load_before");
    Bench::LoadFigures f = bench.LoadedRestore("load_loaded", watchers, rate);
    const double after = bench.UnloadedRestore("load_after");
    if (before < 0 || after < 0 || f.restore_s < 0) return 1;
    const double unloaded = (before + after) / 2;
    const double peak = bench.AgentPeakRssMb();
    bench.StopAgent();
    report = absl::StrFormat(
        "# Remote API load benchmark, %s\n\nCommand: `load_bench --rows %d --watchers %d --rate "
        "%d` (mutual TLS on 127.0.0.1, one agent, database-only restore of a %.0f MB plain "
        "dump made by pg_dump)\n\n"
        "| restore | wall |\n|---|---:|\n"
        "| without load (before) | %.2f s |\n| with load | %.2f s |\n"
        "| without load (after) | %.2f s |\n\n"
        "Slowdown under load: %+.1f%% (vs the mean of the unloaded runs)\n\n"
        "| load | figure |\n|---|---:|\n"
        "| WatchOperation streams followed to the end | %d of %d (%d errors, %d events) |\n"
        "| GetOperation calls | %d (%d errors) |\n"
        "| GetOperation p50 / p99 / max | %.2f / %.2f / %.2f ms |\n"
        "| agent RSS, peak while loaded | %.1f MB |\n| agent VmHWM over the run | %.1f MB |\n\n"
        "The load lasts as long as the loaded restore.\n",
        absl::FormatTime("%Y-%m-%d", absl::Now(), absl::UTCTimeZone()), rows, watchers, rate,
        static_cast<double>(bench.DumpBytes()) / 1e6, before, f.restore_s, after,
        (f.restore_s / unloaded - 1) * 100, f.watchers_ok, watchers, f.watcher_errors,
        static_cast<long long>(f.events), static_cast<int>(f.get_ms.size()), f.get_errors,
        Percentile(f.get_ms, 0.5), Percentile(f.get_ms, 0.99), Percentile(f.get_ms, 1.0),
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
  return mastodon_restore::Main(std::vector<std::string>(argv + 1, argv + argc));
}
