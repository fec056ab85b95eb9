// A fake Mastodon host for tests: a temp directory laid out like the real
// thing (snap wrappers, a source install with systemd units, a compose
// project) whose commands are the recording fakes of tests/fakes/. The
// fakes log every call (argv, cwd, uid, tty, environment, stdin) to
// calls.log, which Calls() parses; knobs in fake.conf change how they
// behave (failures, the snap's quirks, item errors, slowness).
#ifndef MR_TESTS_HARNESS_FAKE_HOST_H_
#define MR_TESTS_HARNESS_FAKE_HOST_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/app/runtime.h"

namespace mastodon_restore {
namespace testing {

// One recorded call of a fake.
struct FakeCall {
  std::string tool;
  std::vector<std::string> argv;  // without the program
  std::string cwd;
  std::string uid;
  bool tty = false;
  std::map<std::string, std::string> env;
  // Answers the fake read from stdin.
  std::vector<std::string> stdin_lines;
};

class FakeHost {
 public:
  // Creates the host directory with bin/ (snap, docker, systemctl, runuser)
  // and a fake.conf naming two free loopback ports where the app's web and
  // streaming services, once started by the fakes, answer their health
  // endpoints (tests/harness/fake_app_server.py).
  static absl::StatusOr<std::unique_ptr<FakeHost>> Create();
  // Also stops the fake app servers still running.
  ~FakeHost();

  // Where the fake app's web and streaming servers listen once started.
  int web_port() const { return web_port_; }
  int streaming_port() const { return streaming_port_; }
  // The agent's flags that send its checks there (the snap's fixed ports
  // 3000 and 4000 are not a test's to take).
  std::vector<std::string> AppAddressArgs() const;

  const std::string& dir() const { return dir_; }
  // Where the runtimes look on this host.
  HostLayout Layout() const;

  // Sets a knob in fake.conf.
  void Set(const std::string& key, const std::string& value);

  // The snap: /snap/bin wrappers; its code (migrations) in
  // <dir>/snap-app; its PostgreSQL reached with `conninfo` (by the fake
  // db-migrate; the agent uses Layout().snap_postgres).
  void InstallSnap(const std::string& conninfo);
  // A source install: home/mastodon/live with .env.production
  // (`env_file`), bin/tootctl, rbenv's shims/bundle, and the units
  // mastodon-{web,sidekiq,streaming}.service (plus a template unit); the
  // web and streaming units set PORT to web_port() and streaming_port().
  void InstallSystemd(const std::string& env_file);
  // A compose project in home/mastodon/live: docker-compose.yml with the
  // Mastodon image and .env.production (`env_file`); the "image" code in
  // <dir>/compose-app; the db service answers on DOCKER_DB_IP.
  void InstallCompose(const std::string& env_file);
  // Debian's pg_ctlcluster for one cluster (`cluster`, "15/main"): the
  // server on `data_dir`, run by the real pg_ctl of `bin_dir` as postgres
  // with `server_options` ("-p 5433 -k /tmp/x"), its log in `log`.
  void InstallDebianCluster(const std::string& cluster, const std::string& data_dir,
                            const std::string& bin_dir, const std::string& server_options,
                            const std::string& log);
  // Writes migration files (<version>_<snake_name>.rb) into
  // `code_dir`/db/migrate and db/post_migrate.
  static void AddMigrations(const std::string& code_dir, const std::vector<std::string>& pre,
                            const std::vector<std::string>& post);

  std::string snap_app_dir() const { return dir_ + "/snap-app"; }
  std::string app_dir() const { return dir_ + "/home/mastodon/live"; }
  std::string compose_app_dir() const { return dir_ + "/compose-app"; }

  // Runs the host's tool argv[0] (snap, systemctl, docker) with the rest
  // of `argv`, as the agent runs it here (PATH: Layout().host_path); an
  // error naming its stderr unless it exits 0. Recorded like the agent's.
  absl::Status RunTool(const std::vector<std::string>& argv) const;

  // The calls so far, in order; Calls("tootctl") only that tool's.
  std::vector<FakeCall> Calls(const std::string& tool = "") const;
  void ClearCalls();

 private:
  explicit FakeHost(std::string dir) : dir_(std::move(dir)) {}
  void Link(const std::string& fake, const std::string& at) const;
  std::string dir_;
  std::map<std::string, std::string> knobs_;
  int web_port_ = 0;
  int streaming_port_ = 0;
};

}  // namespace testing
}  // namespace mastodon_restore

#endif  // MR_TESTS_HARNESS_FAKE_HOST_H_
