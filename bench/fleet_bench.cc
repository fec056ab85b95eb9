// Controller simulation (issue 8): --agents agents on this machine, each
// with its own state dir, socket and TLS port (runtime none: no embedded
// PostgreSQL), all pointed at one real PostgreSQL 15. A controller fans out
// InspectBackup, then StartVerify (a database against a pg_dump of it,
// followed to its end) to every agent over mutual TLS with --parallel
// agents at a time. Reports success, total time, per-agent latency
// percentiles and the agents' memory.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <csignal>
#include <cstdio>
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
#include "agent/common/net.h"
#include "agent/common/subprocess.h"
#include "agent/operations/operation.h"
#include "bench/bench_common.h"
#include "cli/agent_client.h"
#include "mastodon/restore/v1/agent_service.grpc.pb.h"

namespace mastodon_restore {
namespace {

namespace v1 = mastodon::restore::v1;
constexpr char kTag[] = "fleet_bench";

struct Agent {
  std::unique_ptr<Process> process;
  std::unique_ptr<v1::RestoreAgentService::Stub> stub;
  AgentAddress address;
};

struct Outcome {
  bool ok = false;
  std::string error;
  double inspect_ms = 0;
  double verify_ms = 0;
};

// InspectBackup, then StartVerify followed to its end, on one agent.
Outcome Drive(Agent& agent, const std::string& dump) {
  Outcome out;
  absl::Time t0 = absl::Now();
  {
    v1::InspectBackupRequest request;
    request.mutable_source()->set_path(dump);
    v1::InspectBackupResponse response;
    grpc::ClientContext c;
    PrepareCall(agent.address, &c);
    grpc::Status s = agent.stub->InspectBackup(&c, request, &response);
    if (!s.ok() || response.manifest().dumps_size() != 1) {
      out.error = absl::StrCat("InspectBackup: ", s.error_message());
      return out;
    }
  }
  absl::Time t1 = absl::Now();
  out.inspect_ms = absl::ToDoubleMilliseconds(t1 - t0);
  v1::StartVerifyRequest request;
  request.mutable_options()->mutable_target()->set_database("fleet");
  request.mutable_options()->mutable_expected()->set_path(dump);
  v1::StartVerifyResponse started;
  {
    grpc::ClientContext c;
    PrepareCall(agent.address, &c);
    grpc::Status s = agent.stub->StartVerify(&c, request, &started);
    if (!s.ok()) {
      out.error = absl::StrCat("StartVerify: ", s.error_message());
      return out;
    }
  }
  while (true) {
    v1::GetOperationRequest get;
    get.set_id(started.operation().id());
    v1::GetOperationResponse op;
    grpc::ClientContext c;
    PrepareCall(agent.address, &c);
    grpc::Status s = agent.stub->GetOperation(&c, get, &op);
    if (!s.ok()) {
      out.error = absl::StrCat("GetOperation: ", s.error_message());
      return out;
    }
    if (IsTerminal(op.operation().state())) {
      if (op.operation().state() != v1::OPERATION_STATE_SUCCEEDED ||
          !op.operation().verify_result().passed()) {
        out.error = absl::StrCat("verify: ", op.operation().error().message());
        return out;
      }
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  out.verify_ms = absl::ToDoubleMilliseconds(absl::Now() - t1);
  out.ok = true;
  return out;
}

int Main(const std::vector<std::string>& args) {
  const std::vector<FlagSpec> specs = {
      {"agents", "N", "agents to start (default 50)"},
      {"parallel", "N", "agents the controller drives at once (default 8)"},
      {"rows", "N", "rows of the verified table (default 100000)"},
      {"work-dir", "DIR", "where the cluster, dump and agents' state go (default /tmp)"},
      {"output", "FILE", "also write the markdown report here"},
  };
  auto parsed = ParseArgs(args, specs);
  int agents_n = 0, parallel = 0;
  int64_t rows = 0;
  if (!parsed.ok() || !absl::SimpleAtoi(parsed->Get("agents", "50"), &agents_n) ||
      !absl::SimpleAtoi(parsed->Get("parallel", "8"), &parallel) ||
      !absl::SimpleAtoi(parsed->Get("rows", "100000"), &rows) || agents_n < 1 || parallel < 1 ||
      rows < 1) {
    std::fprintf(stderr, "usage: fleet_bench [flags]\n%s", FormatFlagHelp(specs).c_str());
    return 2;
  }
  auto env = NewPosixEnv();
  auto runner = NewPosixCommandRunner();
  const std::string work = absl::StrCat(parsed->Get("work-dir", "/tmp"), "/mr-fleet-bench");
  bench::RunTool(runner.get(), "/", {"rm", "-rf", work}, "cleanup", kTag);
  if (!env->CreateDirs(work, 0755, false).ok()) return 1;

  // One PostgreSQL, a database and its dump; one CA and certificates.
  auto cluster = bench::StartCluster(work, runner.get(), env.get(), kTag);
  if (cluster == nullptr) return 1;
  const std::string psql = cluster->bin_dir() + "/psql";
  if (!bench::RunTool(runner.get(), work,
                      {psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", cluster->ConnInfo(), "-c",
                       "CREATE DATABASE fleet"},
                      "createdb", kTag) ||
      !bench::RunTool(
          runner.get(), work,
          {psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", cluster->ConnInfo("fleet"), "-c",
           absl::StrCat("CREATE TABLE statuses (id bigint PRIMARY KEY, text text, created_at "
                        "timestamptz DEFAULT now()); INSERT INTO statuses (id, text) SELECT g, "
                        "md5(g::text) FROM generate_series(1, ",
                        rows, ") g;")},
          "fill", kTag) ||
      !bench::RunTool(
          runner.get(), work,
          {cluster->bin_dir() + "/pg_dump", "-f", work + "/fleet.sql", cluster->ConnInfo("fleet")},
          "pg_dump", kTag) ||
      !bench::MakeCertificates(runner.get(), work, kTag)) {
    return 1;
  }

  // The agents.
  std::vector<Agent> agents(static_cast<size_t>(agents_n));
  absl::Time start_all = absl::Now();
  for (int i = 0; i < agents_n; ++i) {
    auto port = PickFreePort();
    if (!port.ok()) return 1;
    const std::string dir = absl::StrCat(work, "/agent", i);
    const std::string listen = absl::StrCat("127.0.0.1:", *port);
    CommandSpec spec;
    spec.argv = {MR_AGENT_BIN,
                 "--socket",
                 dir + "/agent.sock",
                 "--state-dir",
                 dir + "/state",
                 "--listen",
                 listen,
                 "--tls-cert",
                 work + "/server.pem",
                 "--tls-key",
                 work + "/server.key",
                 "--tls-client-ca",
                 work + "/ca.pem",
                 "--allowed-root",
                 work,
                 "--runtime",
                 "none",
                 "--target-conninfo",
                 cluster->ConnInfo(),
                 "--log-level",
                 "warning"};
    spec.env = {"PATH=/usr/bin:/bin"};
    if (!env->CreateDirs(dir, 0755, false).ok()) return 1;
    spec.output_file = dir + "/agent.log";
    auto process = runner->Start(spec);
    if (!process.ok()) return 1;
    Agent& a = agents[static_cast<size_t>(i)];
    a.process = std::move(*process);
    a.address.address = listen;
    a.address.tls_ca = work + "/ca.pem";
    a.address.tls_cert = work + "/client.pem";
    a.address.tls_key = work + "/client.key";
    a.address.timeout = absl::Seconds(60);
    auto channel = OpenAgentChannel(a.address, env.get());
    if (!channel.ok()) return 1;
    a.stub = v1::RestoreAgentService::NewStub(*channel);
  }
  for (Agent& a : agents) {
    bool up = false;
    for (int i = 0; i < 300 && !up; ++i) {
      grpc::ClientContext c;
      PrepareCall(a.address, &c);
      c.set_wait_for_ready(true);
      c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      v1::GetAgentInfoResponse r;
      up = a.stub->GetAgentInfo(&c, {}, &r).ok();
    }
    if (!up) {
      std::fprintf(stderr, "fleet_bench: an agent did not come up (%s)\n",
                   a.address.address.c_str());
      return 1;
    }
  }
  const double startup_s = absl::ToDoubleSeconds(absl::Now() - start_all);

  // The controller: --parallel workers pull agents from a shared index.
  std::vector<Outcome> outcomes(agents.size());
  std::atomic<size_t> next{0};
  absl::Time t0 = absl::Now();
  std::vector<std::thread> workers;
  for (int w = 0; w < parallel; ++w) {
    workers.emplace_back([&] {
      for (size_t i = next++; i < agents.size(); i = next++) {
        outcomes[i] = Drive(agents[i], work + "/fleet.sql");
      }
    });
  }
  for (std::thread& t : workers) t.join();
  const double total_s = absl::ToDoubleSeconds(absl::Now() - t0);

  int ok = 0;
  std::vector<double> inspect, verify, both;
  for (const Outcome& o : outcomes) {
    if (!o.ok) {
      std::fprintf(stderr, "fleet_bench: %s\n", o.error.c_str());
      continue;
    }
    ++ok;
    inspect.push_back(o.inspect_ms);
    verify.push_back(o.verify_ms);
    both.push_back(o.inspect_ms + o.verify_ms);
  }
  double rss_sum = 0, rss_max = 0;
  for (Agent& a : agents) {
    double hwm = bench::ProcStatusMb(a.process->pid(), "VmHWM");
    rss_sum += bench::ProcStatusMb(a.process->pid(), "VmRSS");
    rss_max = std::max(rss_max, hwm);
  }
  std::string report = absl::StrFormat(
      "# Controller simulation (fleet_bench)\n\n"
      "%d agents (mutual TLS on loopback, runtime none, one PostgreSQL 15), a controller "
      "driving %d at a time: InspectBackup of a %d-row pg_dump, then StartVerify of the "
      "database against it, followed to its end.\n\n"
      "| figure | value |\n|---|---|\n"
      "| agents succeeded | %d of %d |\n"
      "| agents started and serving in | %.1f s |\n"
      "| fan-out total | %.2f s |\n"
      "| per agent (inspect + verify) p50 / p99 / max | %.0f / %.0f / %.0f ms |\n"
      "| InspectBackup p50 / p99 | %.0f / %.0f ms |\n"
      "| StartVerify to its end p50 / p99 | %.0f / %.0f ms |\n"
      "| agents' RSS: sum / peak of one | %.0f MB / %.1f MB |\n",
      agents_n, parallel, static_cast<int>(rows), ok, agents_n, startup_s, total_s,
      bench::Percentile(both, 0.5), bench::Percentile(both, 0.99), bench::Percentile(both, 1.0),
      bench::Percentile(inspect, 0.5), bench::Percentile(inspect, 0.99),
      bench::Percentile(verify, 0.5), bench::Percentile(verify, 0.99), rss_sum, rss_max);
  std::printf("%s", report.c_str());
  if (parsed->Has("output")) std::ofstream(parsed->Get("output")) << report;
  for (Agent& a : agents) a.process->Signal(SIGTERM);
  for (Agent& a : agents) a.process->Wait(absl::Seconds(30));
  if (ok != agents_n) {
    std::fprintf(stderr, "%s: the agents' logs are kept in %s/agent*/agent.log\n", kTag,
                 work.c_str());
    return 1;
  }
  cluster.reset();  // stops the server before its directory goes
  bench::RunTool(runner.get(), "/", {"rm", "-rf", work}, "cleanup", kTag);
  return 0;
}

}  // namespace
}  // namespace mastodon_restore

int main(int argc, char** argv) {
  return mastodon_restore::Main(std::vector<std::string>(argv + 1, argv + argc));
}
