#include "tests/harness/fake_host.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/common/subprocess.h"
#include "tests/harness/ports.h"
#include "tests/harness/test_paths.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace testing {
namespace {

void WriteText(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::trunc) << text;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FakeHost>> FakeHost::Create() {
  auto dir = MakeTempDir("mr-host");
  if (!dir.ok()) return dir.status();
  std::unique_ptr<FakeHost> host(new FakeHost(*dir));
  WriteText(host->dir_ + "/fake.conf", "");
  for (const char* tool : {"snap", "docker", "systemctl", "runuser"}) {
    host->Link(tool, absl::StrCat(host->dir_, "/bin/", tool));
  }
  auto web = FreeServerPort();
  if (!web.ok()) return web.status();
  auto streaming = FreeServerPort();
  if (!streaming.ok()) return streaming.status();
  if (*streaming == *web) streaming = FreeServerPort();
  host->web_port_ = *web;
  host->streaming_port_ = *streaming;
  host->Set("FAKE_WEB_PORT", absl::StrCat(*web));
  host->Set("FAKE_STREAMING_PORT", absl::StrCat(*streaming));
  return host;
}

FakeHost::~FakeHost() {
  // The fake app servers the fakes started (their pids in run/*.pid).
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir_ + "/run", ec)) {
    if (e.path().extension() != ".pid") continue;
    std::ifstream in(e.path());
    pid_t pid = 0;
    if (in >> pid && pid > 1) ::kill(pid, SIGTERM);
  }
  RemoveTree(dir_);
}

std::vector<std::string> FakeHost::AppAddressArgs() const {
  return {"--app-web-address", absl::StrCat("127.0.0.1:", web_port_), "--app-streaming-address",
          absl::StrCat("127.0.0.1:", streaming_port_)};
}

HostLayout FakeHost::Layout() const {
  HostLayout layout;
  layout.snap_bin_dir = dir_ + "/snap/bin";
  layout.snap_app_dir = snap_app_dir();
  layout.app_dir = app_dir();
  layout.compose_dirs = {};
  layout.systemd_unit_dir = dir_ + "/etc/systemd/system";
  layout.host_path = dir_ + "/bin:/usr/bin:/bin";
  return layout;
}

void FakeHost::Link(const std::string& fake, const std::string& at) const {
  std::filesystem::create_directories(std::filesystem::path(at).parent_path());
  std::filesystem::remove(at);
  std::filesystem::create_symlink(absl::StrCat(MR_FAKES_DIR, "/", fake), at);
}

void FakeHost::Set(const std::string& key, const std::string& value) {
  knobs_[key] = value;
  std::string text;
  for (const auto& [k, v] : knobs_) absl::StrAppend(&text, k, "='", v, "'\n");
  WriteText(dir_ + "/fake.conf", text);
}

void FakeHost::InstallSnap(const std::string& conninfo) {
  Link("mastodon-server.tootctl", dir_ + "/snap/bin/mastodon-server.tootctl");
  Link("mastodon-server.db-migrate", dir_ + "/snap/bin/mastodon-server.db-migrate");
  std::filesystem::create_directories(snap_app_dir() + "/db/migrate");
  Set("SNAP_APP_DIR", snap_app_dir());
  Set("SNAP_DB_CONNINFO", conninfo);
}

void FakeHost::InstallSystemd(const std::string& env_file) {
  WriteText(app_dir() + "/.env.production", env_file);
  Link("tootctl", app_dir() + "/bin/tootctl");
  Link("bundle", dir_ + "/home/mastodon/.rbenv/shims/bundle");
  std::filesystem::create_directories(app_dir() + "/db/migrate");
  for (const char* unit : {"mastodon-streaming.service", "mastodon-sidekiq.service",
                           "mastodon-web.service", "mastodon-streaming@.service"}) {
    const std::string name = unit;
    std::string text = "[Service]\nUser=mastodon\nWorkingDirectory=/home/mastodon/live\n";
    if (name == "mastodon-web.service") {
      absl::StrAppend(&text, "Environment=\"RAILS_ENV=production\"\nEnvironment=\"PORT=", web_port_,
                      "\"\n");
    } else if (name == "mastodon-streaming.service") {
      absl::StrAppend(&text,
                      "Environment=\"NODE_ENV=production\"\nEnvironment=\"PORT=", streaming_port_,
                      "\"\n");
    }
    WriteText(absl::StrCat(dir_, "/etc/systemd/system/", unit), text);
  }
}

void FakeHost::InstallDebianCluster(const std::string& cluster, const std::string& data_dir,
                                    const std::string& bin_dir, const std::string& server_options,
                                    const std::string& log) {
  Link("pg_ctlcluster", dir_ + "/bin/pg_ctlcluster");
  Set("PG_CLUSTER", cluster);
  Set("PG_CLUSTER_DATA", data_dir);
  Set("PG_CLUSTER_BIN", bin_dir);
  Set("PG_CLUSTER_OPTS", server_options);
  Set("PG_CLUSTER_LOG", log);
}

void FakeHost::InstallCompose(const std::string& env_file) {
  WriteText(app_dir() + "/docker-compose.yml",
            "services:\n  db:\n    image: postgres:14-alpine\n  web:\n"
            "    image: ghcr.io/mastodon/mastodon:v4.6.5\n    env_file: .env.production\n");
  WriteText(app_dir() + "/.env.production", env_file);
  std::filesystem::create_directories(compose_app_dir() + "/db/migrate");
  Set("COMPOSE_APP_DIR", compose_app_dir());
}

void FakeHost::AddMigrations(const std::string& code_dir, const std::vector<std::string>& pre,
                             const std::vector<std::string>& post) {
  int n = 0;
  for (const auto& [sub, versions] :
       {std::pair<const char*, const std::vector<std::string>*>{"db/migrate", &pre},
        {"db/post_migrate", &post}}) {
    for (const std::string& v : *versions) {
      WriteText(absl::StrCat(code_dir, "/", sub, "/", v, "_add_thing_", ++n, ".rb"),
                "class AddThing < ActiveRecord::Migration[8.1]\nend\n");
    }
  }
}

absl::Status FakeHost::RunTool(const std::vector<std::string>& argv) const {
  if (argv.empty()) return absl::InvalidArgumentError("no tool to run");
  CommandSpec spec;
  spec.argv = argv;
  spec.argv[0] = dir_ + "/bin/" + argv[0];
  spec.env = {"PATH=" + Layout().host_path};
  absl::StatusOr<CommandResult> r = NewPosixCommandRunner()->Run(spec, nullptr);
  if (!r.ok()) return r.status();
  if (!r->success()) {
    return absl::InternalError(
        absl::StrCat(absl::StrJoin(argv, " "), ": ", r->Describe(), ": ", r->stderr_text));
  }
  return absl::OkStatus();
}

std::vector<FakeCall> FakeHost::Calls(const std::string& tool) const {
  std::vector<FakeCall> calls;
  std::ifstream in(dir_ + "/calls.log");
  std::string line;
  FakeCall* current = nullptr;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "== ")) {
      calls.emplace_back();
      current = &calls.back();
      current->tool = line.substr(3);
    } else if (absl::StartsWith(line, "stdin-of-last: ") && !calls.empty()) {
      calls.back().stdin_lines.push_back(line.substr(15));
    } else if (current == nullptr) {
      continue;
    } else if (absl::StartsWith(line, "arg: ")) {
      current->argv.push_back(line.substr(5));
    } else if (absl::StartsWith(line, "cwd: ")) {
      current->cwd = line.substr(5);
    } else if (absl::StartsWith(line, "uid: ")) {
      current->uid = line.substr(5);
    } else if (absl::StartsWith(line, "tty: ")) {
      current->tty = line.substr(5) == "yes";
    } else if (absl::StartsWith(line, "env: ")) {
      std::pair<std::string, std::string> kv =
          absl::StrSplit(line.substr(5), absl::MaxSplits('=', 1));
      current->env[kv.first] = kv.second;
    } else if (line == "end") {
      current = nullptr;
    }
  }
  if (tool.empty()) return calls;
  std::vector<FakeCall> only;
  for (FakeCall& c : calls) {
    if (c.tool == tool) only.push_back(std::move(c));
  }
  return only;
}

void FakeHost::ClearCalls() { std::filesystem::remove(dir_ + "/calls.log"); }

}  // namespace testing
}  // namespace mastodon_restore
