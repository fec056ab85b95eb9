// End-to-end, fleets (docs/fleet.md): the Ansible collection (ansible/)
// driving a real agent on the embedded runtime through Debian's
// ansible-playbook on localhost (local connection) - every module's result as
// the playbook registered it, the example playbooks as an operator runs them
// - and the minimal Python gRPC client of a control plane that is not Ansible.
#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "agent/common/subprocess.h"
#include "tests/e2e/e2e_fixture.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"

namespace mastodon_restore {
namespace e2e {
namespace {

using ::google::protobuf::Value;
using ::testing::HasSubstr;

// The value at `path` ("a.b.0.c": keys, and list indexes) in `root`; a null
// Value and a failed expectation when something on the way is missing.
Value At(const Value& root, const std::string& path) {
  Value current = root;
  const std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (const std::string& part : parts) {
    if (current.has_struct_value()) {
      const auto& fields = current.struct_value().fields();
      auto it = fields.find(part);
      if (it == fields.end()) {
        ADD_FAILURE() << "no '" << part << "' in " << path;
        return Value();
      }
      // A copy first: assigning a part of `current` to it clears the part.
      Value next = it->second;
      current = std::move(next);
    } else if (current.has_list_value()) {
      int index = std::stoi(part);
      if (index >= current.list_value().values_size()) {
        ADD_FAILURE() << "no element " << index << " in " << path;
        return Value();
      }
      Value next = current.list_value().values(index);
      current = std::move(next);
    } else {
      ADD_FAILURE() << "'" << part << "' of a scalar in " << path;
      return Value();
    }
  }
  return current;
}

std::string Str(const Value& root, const std::string& path) {
  return At(root, path).string_value();
}
bool Bool(const Value& root, const std::string& path) { return At(root, path).bool_value(); }
double Num(const Value& root, const std::string& path) { return At(root, path).number_value(); }

class AnsibleTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    RequireDumpFixtures();
    ASSERT_TRUE(std::filesystem::create_directories(dir_ + "/home"));
    ASSERT_TRUE(std::filesystem::create_directories(dir_ + "/work"));
  }

  // Runs ansible-playbook on `playbook` against localhost with the extra
  // variables `vars`, in an environment of its own (HOME, temp and async
  // directories under dir_; the collection from the source tree).
  CommandResult Playbook(const std::string& playbook, const std::vector<std::string>& vars) {
    CommandSpec spec;
    spec.argv = {MR_ANSIBLE_PLAYBOOK,
                 "-i",
                 "localhost,",
                 "-c",
                 "local",
                 "-e",
                 "ansible_python_interpreter=/usr/bin/python3"};
    for (const std::string& v : vars) spec.argv.insert(spec.argv.end(), {"-e", v});
    spec.argv.push_back(playbook);
    spec.env = {"PATH=/usr/bin:/bin",
                "HOME=" + dir_ + "/home",
                "LC_ALL=C.UTF-8",
                std::string("ANSIBLE_COLLECTIONS_PATH=") + MR_ANSIBLE_DIR,
                "ANSIBLE_LOCAL_TEMP=" + dir_ + "/home/tmp",
                "ANSIBLE_REMOTE_TEMP=" + dir_ + "/home/tmp",
                "ANSIBLE_ASYNC_DIR=" + dir_ + "/home/async",
                "ANSIBLE_NOCOLOR=1",
                "ANSIBLE_RETRY_FILES_ENABLED=false",
                "ANSIBLE_LOCALHOST_WARNING=false",
                "ANSIBLE_INVENTORY_UNPARSED_WARNING=false"};
    spec.timeout = absl::Minutes(8);
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    return r.ok() ? *r : CommandResult();
  }

  // The JSON file at `path`, parsed.
  Value ReadJson(const std::string& path) {
    Value value;
    const std::string text = ReadFileOrEmpty(path);
    auto status = google::protobuf::util::JsonStringToMessage(text, &value);
    EXPECT_TRUE(status.ok()) << path << ": " << status.ToString();
    EXPECT_TRUE(value.has_struct_value())
        << path << " holds no JSON object: " << text.substr(0, 4000);
    return value;
  }

  std::string AgentVar() { return "agent=" + socket_; }
};

// inspect -> restore in check mode -> restore (and its rerun) -> verify ->
// rollback; an async restore and async_status; wait: false and the
// operation module; failures with the agent's error.
TEST_F(AnsibleTest, EveryModuleAgainstARealAgent) {
  StartAgent({"--runtime", "embedded", "--allowed-root", MR_FIXTURE_DIR, "--allowed-root", dir_});
  const std::string results = dir_ + "/work/results.json";
  CommandResult r = Playbook(
      std::string(MR_SOURCE_DIR) + "/tests/e2e/ansible/agent_flow.yml",
      {std::string("cli=") + MR_CLI_BIN, AgentVar(), std::string("fixtures=") + MR_FIXTURE_DIR,
       "work=" + dir_ + "/work", "results=" + results});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("failed=0"));
  const Value v = ReadJson(results);

  // info: the agent's answer and the facts.
  EXPECT_FALSE(Bool(v, "info.changed"));
  EXPECT_EQ(Str(v, "info.info.build.version"), MR_VERSION_STRING);
  EXPECT_EQ(Str(v, "facts.runtime.kind"), "RUNTIME_KIND_EMBEDDED");
  EXPECT_EQ(Str(v, "facts.agent.version"), MR_VERSION_STRING);
  EXPECT_FALSE(Str(v, "facts.postgres.server_version").empty());
  EXPECT_EQ(Str(v, "facts.media.dir"), "");  // the embedded runtime has no media directory

  // inspect.
  EXPECT_FALSE(Bool(v, "inspect.changed"));
  EXPECT_EQ(Str(v, "inspect.manifest.layout"), "BACKUP_LAYOUT_LONE_DUMP");
  EXPECT_EQ(Str(v, "inspect.manifest.dumps.0.format"), "DUMP_FORMAT_PLAIN");

  // Check mode: the plan, and no operation at all on the agent.
  EXPECT_TRUE(Bool(v, "plan.changed"));
  EXPECT_EQ(Str(v, "plan.operation.state"), "OPERATION_STATE_PENDING");
  EXPECT_EQ(Str(v, "plan.operation.target"), "database:mastodon_production");
  EXPECT_EQ(Str(v, "plan.plan.0.name"), "open");
  EXPECT_EQ(Str(v, "plan.plan.7.name"), "checks");
  EXPECT_EQ(Str(v, "plan.plan.9.name"), "swap");
  EXPECT_EQ(At(v, "ops_after_plan.operations").list_value().values_size(), 0);

  // The restore, and its rerun with the same request_id: the same operation,
  // no change.
  EXPECT_TRUE(Bool(v, "restore.changed"));
  EXPECT_EQ(Str(v, "restore.operation.state"), "OPERATION_STATE_SUCCEEDED");
  EXPECT_EQ(Str(v, "restore.operation.request_id"), "fleet-restore-1");
  EXPECT_EQ(Str(v, "restore.operation.restore_report.rows"), "1503");
  EXPECT_TRUE(Bool(v, "restore.operation.restore_report.verification.passed"));
  EXPECT_FALSE(Bool(v, "restore_again.changed"));
  EXPECT_EQ(Str(v, "restore_again.operation.id"), Str(v, "restore.operation.id"));
  EXPECT_TRUE(Bool(v, "restore_second.changed"));
  EXPECT_NE(Str(v, "restore_second.operation.id"), Str(v, "restore.operation.id"));
  const std::string previous = Str(v, "restore_second.operation.restore_report.previous_database");
  EXPECT_THAT(previous, HasSubstr("mastodon_production__previous_"));

  // verify_backup: passed, nothing changed, the JUnit report where asked.
  EXPECT_FALSE(Bool(v, "verify.changed"));
  EXPECT_TRUE(Bool(v, "verify.passed"));
  EXPECT_EQ(Str(v, "verify.junit"), dir_ + "/work/verify.xml");
  EXPECT_EQ(Str(v, "verify.report.verify.state"), "OPERATION_STATE_SUCCEEDED");
  EXPECT_THAT(ReadFileOrEmpty(dir_ + "/work/verify.xml"), HasSubstr("failures=\"0\""));

  // rollback: the previous database is live again.
  EXPECT_TRUE(Bool(v, "rollback.changed"));
  EXPECT_EQ(Str(v, "rollback.operation.state"), "OPERATION_STATE_SUCCEEDED");
  EXPECT_EQ(Str(v, "rollback.operation.rollback_result.restored_database"), previous);

  // async/poll 0, then async_status: the module's own result at the end.
  EXPECT_EQ(Num(v, "async_job.started"), 1);
  EXPECT_EQ(Num(v, "async.finished"), 1);
  EXPECT_TRUE(Bool(v, "async.changed"));
  EXPECT_EQ(Str(v, "async.operation.state"), "OPERATION_STATE_SUCCEEDED");
  EXPECT_EQ(Str(v, "async.operation.target"), "database:mastodon_async");

  // wait: false, then the operation module: until a step, to the end, a
  // cancel of an ended operation (no change).
  EXPECT_TRUE(Bool(v, "started.changed"));
  const std::string id = Str(v, "started.operation.id");
  EXPECT_EQ(OperationId(id), id);
  EXPECT_TRUE(Bool(v, "until.reached"));
  EXPECT_EQ(Str(v, "until.operation.id"), id);
  bool load_finished = false;
  const Value steps = At(v, "until.operation.steps");
  for (const Value& step : steps.list_value().values()) {
    if (Str(step, "name") == "load") load_finished = Str(step, "state") == "STEP_STATE_SUCCEEDED";
  }
  EXPECT_TRUE(load_finished);
  EXPECT_FALSE(Bool(v, "waited.changed"));
  EXPECT_TRUE(Bool(v, "waited.ended"));
  EXPECT_EQ(Str(v, "waited.operation.state"), "OPERATION_STATE_SUCCEEDED");
  EXPECT_FALSE(Bool(v, "cancel.changed"));

  // A failed restore: the agent's message, its exit code and meaning; the
  // live database untouched, so no change.
  EXPECT_TRUE(Bool(v, "failed.failed"));
  EXPECT_FALSE(Bool(v, "failed.changed"));
  EXPECT_EQ(Num(v, "failed.rc"), 4);
  EXPECT_EQ(Str(v, "failed.exit_code_meaning"), "invalid input");
  EXPECT_THAT(Str(v, "failed.msg"), HasSubstr("(truncated?) (step load)"));
  EXPECT_EQ(Str(v, "failed.operation.state"), "OPERATION_STATE_FAILED");
  // A refused call: the CLI's error.
  EXPECT_TRUE(Bool(v, "unknown.failed"));
  EXPECT_EQ(Num(v, "unknown.rc"), 4);
  EXPECT_THAT(Str(v, "unknown.msg"), HasSubstr("no operation 'op-00000000-000000-none'"));

  // What the agent did: exactly the operations the playbook asked for.
  CommandResult ops = CliOnSocket({"ops", "list"});
  ASSERT_EQ(ops.exit_code, 0) << ops.stderr_text;
  std::vector<std::string> lines = absl::StrSplit(ops.stdout_text, '\n', absl::SkipEmpty());
  // 2 restores (the rerun started none), verify_backup's restore and verify,
  // the rollback, the async restore, the detached one, the failed one.
  EXPECT_EQ(lines.size(), 8u) << ops.stdout_text;
}

// Cancelling a running restore: changed, the operation cancelled; waiting for
// it then fails with exit code 6.
TEST_F(AnsibleTest, CancelOfARunningRestore) {
  const std::string failpoints = dir_ + "/failpoints";
  ASSERT_TRUE(std::filesystem::create_directories(failpoints));
  agent_env_ = {"MR_FAILPOINTS=restore.step.load=pause", "MR_FAILPOINT_DIR=" + failpoints};
  StartAgent({"--runtime", "embedded", "--allowed-root", MR_FIXTURE_DIR});
  const std::string results = dir_ + "/work/results.json";
  CommandResult r = Playbook(
      std::string(MR_SOURCE_DIR) + "/tests/e2e/ansible/cancel.yml",
      {std::string("cli=") + MR_CLI_BIN, AgentVar(), std::string("fixtures=") + MR_FIXTURE_DIR,
       "failpoints=" + failpoints, "agent_log=" + log_file(), "results=" + results});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  const Value v = ReadJson(results);
  EXPECT_TRUE(Bool(v, "running.reached"));
  EXPECT_EQ(Str(v, "running.operation.state"), "OPERATION_STATE_RUNNING");
  EXPECT_TRUE(Bool(v, "cancel.changed"));
  EXPECT_TRUE(Bool(v, "cancel.ended"));
  EXPECT_EQ(Str(v, "cancel.operation.state"), "OPERATION_STATE_CANCELLED");
  EXPECT_TRUE(Bool(v, "wait_cancelled.failed"));
  EXPECT_EQ(Num(v, "wait_cancelled.rc"), 6);
  EXPECT_EQ(Str(v, "wait_cancelled.exit_code_meaning"), "cancelled");
}

// The unreachable agent: exit code 3 and its meaning.
TEST_F(AnsibleTest, AnUnreachableAgentFailsWithItsMeaning) {
  const std::string results = dir_ + "/work/results.json";
  const std::string playbook = dir_ + "/info.yml";
  ASSERT_TRUE(std::ofstream(playbook) << "- hosts: localhost\n"
                                         "  gather_facts: false\n"
                                         "  tasks:\n"
                                         "    - mastodon.restore.info:\n"
                                         "        cli_path: \"{{ cli }}\"\n"
                                         "        agent: \"{{ agent }}\"\n"
                                         "      register: r\n"
                                         "      ignore_errors: true\n"
                                         "    - ansible.builtin.copy:\n"
                                         "        dest: \"{{ results }}\"\n"
                                         "        content: \"{{ r | to_json }}\"\n");
  CommandResult r =
      Playbook(playbook, {std::string("cli=") + MR_CLI_BIN, AgentVar(), "results=" + results});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  const Value v = ReadJson(results);
  EXPECT_TRUE(Bool(v, "failed"));
  EXPECT_EQ(Num(v, "rc"), 3);
  EXPECT_EQ(Str(v, "exit_code_meaning"), "agent unreachable");
  EXPECT_THAT(Str(v, "msg"), HasSubstr("is the agent running at '" + socket_ + "'?"));
}

// The nightly example: the newest backup of the host verified, its JUnit
// report fetched to the controller.
TEST_F(AnsibleTest, NightlyVerifyPlaybookFetchesTheNewestBackupsReport) {
  StartAgent({"--runtime", "embedded", "--allowed-root", dir_});
  const std::string backups = dir_ + "/backups";
  ASSERT_TRUE(std::filesystem::create_directories(backups));
  // An older broken backup and the newest, good one.
  std::filesystem::copy_file(Fixture("bad/cut_mid_copy.sql"), backups + "/old.sql");
  std::filesystem::copy_file(Fixture("plain.sql.zst"), backups + "/new.sql.zst");
  std::filesystem::last_write_time(
      backups + "/old.sql",
      std::filesystem::last_write_time(backups + "/new.sql.zst") - std::chrono::hours(24));
  CommandResult r = Playbook(
      std::string(MR_ANSIBLE_DIR) + "/playbooks/nightly_verify_backup.yml",
      {"target_hosts=localhost", "backup_dir=" + backups, "report_dir=" + dir_ + "/reports",
       "junit_dir=" + dir_ + "/work", "mastodon_restore_agent=" + socket_,
       std::string("mastodon_restore_cli=") + MR_CLI_BIN});
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  const std::string report = ReadFileOrEmpty(dir_ + "/reports/localhost.xml");
  EXPECT_THAT(report, HasSubstr("failures=\"0\""));
  EXPECT_THAT(report, HasSubstr(backups + "/new.sql.zst"));

  // The newest one broken: the host fails, its report still comes.
  std::filesystem::last_write_time(
      backups + "/old.sql",
      std::filesystem::last_write_time(backups + "/new.sql.zst") + std::chrono::hours(1));
  r = Playbook(
      std::string(MR_ANSIBLE_DIR) + "/playbooks/nightly_verify_backup.yml",
      {"target_hosts=localhost", "backup_dir=" + backups, "report_dir=" + dir_ + "/reports",
       "junit_dir=" + dir_ + "/work", "mastodon_restore_agent=" + socket_,
       std::string("mastodon_restore_cli=") + MR_CLI_BIN});
  EXPECT_EQ(r.exit_code, 2) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("truncated?"));
  EXPECT_THAT(ReadFileOrEmpty(dir_ + "/reports/localhost.xml"), HasSubstr("<failure message="));
}

// The restore example: pre-checks, the restore, and the rollback handler
// when the restore failed after its database was swapped in (a failpoint
// fails the second restore at its report); none when it failed before.
TEST_F(AnsibleTest, RestorePlaybookRollsBackOnlyAfterASwap) {
  agent_env_ = {"MR_FAILPOINTS=restore.before_report=error@2"};
  StartAgent({"--runtime", "embedded", "--allowed-root", MR_FIXTURE_DIR});
  auto run = [&](const std::string& backup, const std::string& request_id) {
    return Playbook(
        std::string(MR_ANSIBLE_DIR) + "/playbooks/restore.yml",
        {"target_hosts=localhost", "backup=" + backup, "restore_mode=db_only",
         "database=mastodon_production", "restore_request_id=" + request_id,
         "mastodon_restore_agent=" + socket_, std::string("mastodon_restore_cli=") + MR_CLI_BIN});
  };
  // Operations of `kind` ("restore", "rollback") and their states, oldest first.
  auto operations = [&](const std::string& kind) {
    std::vector<std::string> states;
    CommandResult r = CliOnSocket({"--json", "ops", "list"});
    EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
    Value list;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.stdout_text, &list).ok());
    const Value ops = At(list, "operations");  // the loop below reads into it
    for (const Value& op : ops.list_value().values()) {
      if (Str(op, "kind") == "OPERATION_KIND_" + absl::AsciiStrToUpper(kind)) {
        states.insert(states.begin(), Str(op, "state"));
      }
    }
    return states;
  };

  CommandResult r = run(Fixture("plain.sql"), "first");
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("TASK [Pre-check - the restore's plan]"));
  EXPECT_THAT(operations("restore"), ::testing::ElementsAre("OPERATION_STATE_SUCCEEDED"));

  // Fails after the swap: the handler swaps the first restore's database back.
  r = run(Fixture("plain.sql.zst"), "second");
  EXPECT_EQ(r.exit_code, 2) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("RUNNING HANDLER [Roll back the database]"));
  EXPECT_THAT(r.stdout_text, HasSubstr("restore.before_report"));
  EXPECT_THAT(operations("restore"),
              ::testing::ElementsAre("OPERATION_STATE_SUCCEEDED", "OPERATION_STATE_FAILED"));
  EXPECT_THAT(operations("rollback"), ::testing::ElementsAre("OPERATION_STATE_SUCCEEDED"));

  // Fails before the swap: the live database is untouched, nothing rolled back.
  r = run(Fixture("bad/cut_mid_copy.sql"), "third");
  EXPECT_EQ(r.exit_code, 2) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("(truncated?)"));
  EXPECT_THAT(r.stdout_text, ::testing::Not(HasSubstr("RUNNING HANDLER")));
  EXPECT_THAT(operations("rollback"), ::testing::ElementsAre("OPERATION_STATE_SUCCEEDED"));
}

// docs/examples/grpc_client.py with stubs generated from proto/ as
// docs/fleet.md says: a restore followed to its end, and a retry with the
// same request_id returning the same operation.
TEST_F(AnsibleTest, PythonGrpcClientOfDocsRestores) {
  StartAgent({"--runtime", "embedded", "--allowed-root", MR_FIXTURE_DIR});
  const std::string gen = dir_ + "/gen";
  ASSERT_TRUE(std::filesystem::create_directories(gen));
  CommandSpec protoc;
  protoc.argv = {MR_PROTOC,
                 "-I",
                 std::string(MR_SOURCE_DIR) + "/proto",
                 "-I",
                 "/usr/include",
                 "--python_out=" + gen,
                 "--grpc_python_out=" + gen,
                 std::string("--plugin=protoc-gen-grpc_python=") + MR_GRPC_PYTHON_PLUGIN};
  for (const auto& entry : std::filesystem::directory_iterator(std::string(MR_SOURCE_DIR) +
                                                               "/proto/mastodon/restore/v1")) {
    protoc.argv.push_back(entry.path().string());
  }
  protoc.env = {"PATH=/usr/bin:/bin"};
  auto generated = runner_->Run(protoc, nullptr);
  ASSERT_OK(generated);
  ASSERT_EQ(generated->exit_code, 0) << generated->stderr_text;

  auto client = [&](const std::string& request_id) {
    CommandSpec spec;
    spec.argv = {"/usr/bin/python3",
                 std::string(MR_SOURCE_DIR) + "/docs/examples/grpc_client.py",
                 socket_,
                 Fixture("plain.sql"),
                 "mastodon_production",
                 request_id};
    spec.env = {"PATH=/usr/bin:/bin", "PYTHONPATH=" + gen, "LC_ALL=C.UTF-8"};
    spec.timeout = absl::Minutes(3);
    auto r = runner_->Run(spec, nullptr);
    EXPECT_OK(r);
    return r.ok() ? *r : CommandResult();
  };
  CommandResult r = client("control-plane-1");
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_THAT(r.stdout_text, HasSubstr("agent " MR_VERSION_STRING "\n"));
  EXPECT_THAT(r.stdout_text, HasSubstr("EVENT_TYPE_STEP_FINISHED swap"));
  EXPECT_THAT(r.stdout_text, HasSubstr("\"state\": \"OPERATION_STATE_SUCCEEDED\""));
  EXPECT_THAT(r.stdout_text, HasSubstr("\"request_id\": \"control-plane-1\""));
  const std::string id = OperationId(r.stdout_text);
  ASSERT_FALSE(id.empty());
  r = client("control-plane-1");
  ASSERT_EQ(r.exit_code, 0) << r.stdout_text << r.stderr_text;
  EXPECT_EQ(OperationId(r.stdout_text), id);
  CommandResult ops = CliOnSocket({"ops", "list"});
  EXPECT_EQ(std::count(ops.stdout_text.begin(), ops.stdout_text.end(), '\n'), 1) << ops.stdout_text;
}

}  // namespace
}  // namespace e2e
}  // namespace mastodon_restore
