#include "cli/cli.h"

#include <gmock/gmock.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/backup_report.h"
#include "cli/exit_codes.h"
#include "cli/follow.h"
#include "cli/render.h"
#include "tests/harness/fake_env.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::FakeEnv;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

namespace v1 = ::mastodon::restore::v1;
namespace pb = ::google::protobuf;

// Runs the CLI in-process and captures its output.
struct CliRun {
  int code = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(std::FILE* f) {
  std::rewind(f);
  std::string s;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) s.append(buf, n);
  std::fclose(f);
  return s;
}

CliRun RunCliCaptured(const std::vector<std::string>& args) {
  FakeEnv env;
  CliStreams streams{std::tmpfile(), std::tmpfile()};
  CliRun run;
  run.code = RunCli(args, &env, streams);
  run.out = ReadAll(streams.out);
  run.err = ReadAll(streams.err);
  return run;
}

TEST(CliTest, HelpListsEveryCommandAndExitCodes) {
  CliRun run = RunCliCaptured({"--help"});
  EXPECT_EQ(run.code, kExitOk);
  EXPECT_THAT(run.out, HasSubstr("health"));
  EXPECT_THAT(run.out, HasSubstr("info"));
  EXPECT_THAT(run.out, HasSubstr("--agent ADDR"));
  EXPECT_THAT(run.out, HasSubstr("3 agent unreachable"));
}

TEST(CliTest, CommandHelpShowsItsFlags) {
  CliRun run = RunCliCaptured({"health", "--help"});
  EXPECT_EQ(run.code, kExitOk);
  EXPECT_THAT(run.out, HasSubstr("usage: mastodon-restore [global flags] health"));
  EXPECT_THAT(run.out, HasSubstr("--service NAME"));
}

TEST(CliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(RunCliCaptured({}).code, kExitUsage);
  CliRun run = RunCliCaptured({"frobnicate"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("unknown command 'frobnicate'"));
  run = RunCliCaptured({"info", "extra"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("info takes no arguments"));
  run = RunCliCaptured({"--timeout", "soon", "info"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("invalid --timeout 'soon'"));
  run = RunCliCaptured({"info", "--bogus"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("unknown flag '--bogus'"));
}

TEST(CliTest, MigrateKeepsThePasswordOffTheCommandLine) {
  const std::vector<std::string> agent = {"--agent", "/nonexistent/mr-agent.sock"};
  auto migrate = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = agent;
    argv.push_back("migrate");
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCliCaptured(argv);
  };
  for (const char* from : {"host=old user=postgres password=hunter2",
                           "postgresql://postgres:hunter2@old/db", "host=old PASSWORD=x"}) {
    CliRun run = migrate({"--from", from, "--from-db", "mastodon_production"});
    EXPECT_EQ(run.code, kExitUsage) << from;
    EXPECT_THAT(run.err, HasSubstr("a password does not belong on the command line")) << from;
  }
  // Without a password, or with a user but none, the command goes on (and
  // finds no agent here).
  for (const char* from : {"host=old user=postgres", "postgresql://postgres@old:5432/db"}) {
    CliRun run = migrate({"--from", from, "--from-db", "mastodon_production"});
    EXPECT_NE(run.code, kExitUsage) << from << ": " << run.err;
  }
  CliRun run = migrate({"--from", "host=old"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("migrate needs --from-db NAME"));
  run = migrate({"--from", "host=old", "--from-db", "d", "--cutover-when-lag-below", "lots"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("--cutover-when-lag-below takes bytes, with K, M or G"));
  run = migrate({"--from", "postgresql://old/db", "--from-db", "d", "--from-password-file",
                 "/nonexistent/password"});
  EXPECT_EQ(run.code, kExitUsage);
}

TEST(CliTest, UnreachableAgentExitsThree) {
  CliRun run = RunCliCaptured({"--agent", "/nonexistent/mr-agent.sock", "--timeout", "2s", "info"});
  EXPECT_EQ(run.code, kExitUnreachable);
  EXPECT_THAT(run.err, HasSubstr("is the agent running at '/nonexistent/mr-agent.sock'?"));
}

// An unreachable local agent: how to start it as it is installed here, and
// how to do without it.
TEST(CliTest, UnreachableAgentSaysHowToStartIt) {
  auto run_with = [](FakeEnv* env) {
    CliStreams streams{std::tmpfile(), std::tmpfile()};
    CliRun run;
    run.code =
        RunCli({"--agent", "/nonexistent/mr-agent.sock", "--timeout", "2s", "info"}, env, streams);
    run.out = ReadAll(streams.out);
    run.err = ReadAll(streams.err);
    return run;
  };
  FakeEnv package;
  package.files["/lib/systemd/system/mastodon-restore-agent.service"] = "[Unit]\n";
  CliRun run = run_with(&package);
  EXPECT_EQ(run.code, kExitUnreachable);
  EXPECT_THAT(run.err, HasSubstr("start it on this host: sudo systemctl start "
                                 "mastodon-restore-agent (the Debian package's unit)\n"));
  EXPECT_THAT(run.err, HasSubstr("or check a backup without an agent: mastodon-restore "
                                 "verify-backup --local SOURCE"));
  FakeEnv snap;
  snap.dirs.insert("/snap/mastodon-restore/current");
  run = run_with(&snap);
  EXPECT_THAT(run.err, HasSubstr("start it on this host: sudo snap start mastodon-restore.agent"));
  EXPECT_THAT(run.err, Not(HasSubstr("systemctl")));
  FakeEnv neither;
  run = run_with(&neither);
  EXPECT_THAT(run.err, HasSubstr("systemctl start mastodon-restore-agent"));
  EXPECT_THAT(run.err, HasSubstr("snap start mastodon-restore.agent"));
  // A remote agent: nothing to start here.
  CliStreams streams{std::tmpfile(), std::tmpfile()};
  RunCli({"--agent", "127.0.0.1:1", "--plaintext", "--timeout", "2s", "info"}, &neither, streams);
  const std::string err = ReadAll(streams.err);
  ReadAll(streams.out);
  EXPECT_THAT(err, Not(HasSubstr("start it on this host")));
  EXPECT_THAT(err, HasSubstr("verify-backup --local"));
}

TEST(CliTest, PlaintextOnlyToLoopback) {
  CliRun run = RunCliCaptured({"--agent", "192.0.2.1:7443", "--plaintext", "info"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("refusing plaintext"));
  run = RunCliCaptured({"--agent", "/run/x.sock", "--tls-ca", "/ca.pem", "info"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("not unix sockets"));
}

TEST(CliTest, VersionPrintsTheVersion) {
  CliRun run = RunCliCaptured({"--version"});
  EXPECT_EQ(run.code, kExitOk);
  EXPECT_THAT(run.out, HasSubstr("mastodon-restore 0."));
}

// A socket nobody listens on: a command that parsed its flags and called the
// agent exits 3 and names the address it tried.
constexpr char kNoAgent[] = "/nonexistent/mr-agent.sock";

TEST(CliTest, GlobalFlagsAfterTheCommand) {
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"detect", "dump.sql", "--json", "--agent", kNoAgent, "--timeout", "2s"},
           {"ops", "list", "--json", "--agent", kNoAgent, "--timeout=2s"},
           {"--json", "ops", "--agent", kNoAgent, "--timeout", "2s"},
           {"info", "--agent", kNoAgent, "--timeout", "2s"},
       }) {
    CliRun run = RunCliCaptured(args);
    EXPECT_EQ(run.code, kExitUnreachable) << args[0] << ": " << run.err;
    EXPECT_THAT(run.err, HasSubstr(absl::StrCat("is the agent running at '", kNoAgent, "'?")));
  }
}

TEST(CliTest, GlobalFlagsBetweenTheCommandsArguments) {
  CliRun run = RunCliCaptured(
      {"ops", "watch", "--agent", kNoAgent, "op-1", "--timeout", "2s", "--from", "3"});
  EXPECT_EQ(run.code, kExitUnreachable) << run.err;
  // A bad global value after the command is reported as before it.
  run = RunCliCaptured({"ops", "show", "--timeout", "soon", "op-1"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("invalid --timeout 'soon'"));
}

TEST(CliTest, DoubleDashEndsTheFlags) {
  // After "--", "--json" is an argument, and info takes none.
  CliRun run = RunCliCaptured({"info", "--", "--json"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("info takes no arguments"));
  // "--help" after "--" is an operation id, not a request for help.
  run = RunCliCaptured({"--agent", kNoAgent, "--timeout", "2s", "ops", "show", "--", "--help"});
  EXPECT_EQ(run.code, kExitUnreachable) << run.err;
  EXPECT_EQ(run.out, "");
}

TEST(CliTest, OpsGoesThroughTheCommandTable) {
  CliRun run = RunCliCaptured({"ops", "frob"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err,
              HasSubstr("unknown ops command 'frob' (list, show, watch, cancel, cutover)"));
  run = RunCliCaptured({"ops", "show"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("ops show takes ID"));
  run = RunCliCaptured({"ops", "list", "op-1"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("ops list takes no arguments"));
  run = RunCliCaptured({"ops", "list", "--from", "3"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("ops list: unknown flag '--from'"));

  // Its help, however asked for.
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"help", "ops"}, {"ops", "--help"}, {"--help", "ops"}, {"ops", "-h"}}) {
    run = RunCliCaptured(args);
    EXPECT_EQ(run.code, kExitOk) << args[0];
    EXPECT_THAT(run.out, StartsWith("usage: mastodon-restore [global flags] ops COMMAND"));
    for (const char* sub : {"list", "show", "watch", "cancel"}) {
      EXPECT_THAT(run.out, HasSubstr(absl::StrCat("\n  ", sub, " ")));
    }
  }
  run = RunCliCaptured({"help", "ops", "watch"});
  EXPECT_EQ(run.code, kExitOk);
  EXPECT_THAT(run.out, StartsWith("usage: mastodon-restore [global flags] ops watch [flags] ID"));
  EXPECT_THAT(run.out, HasSubstr("--from N"));
  EXPECT_EQ(RunCliCaptured({"ops", "watch", "--help"}).out, run.out);
  run = RunCliCaptured({"help", "frob"});
  EXPECT_EQ(run.code, kExitUsage);
  EXPECT_THAT(run.err, HasSubstr("no help on 'frob'"));
}

// Every command --help lists dispatches: one table for both.
TEST(CliTest, EveryCommandInTheHelpDispatches) {
  CliRun run = RunCliCaptured({"help"});
  ASSERT_EQ(run.code, kExitOk);
  const std::string out = run.out;
  size_t begin = out.find("commands:\n");
  size_t end = out.find("\nglobal flags:");
  ASSERT_NE(begin, std::string::npos);
  ASSERT_NE(end, std::string::npos);
  int commands = 0;
  for (absl::string_view row :
       absl::StrSplit(out.substr(begin + 10, end - begin - 10), '\n', absl::SkipEmpty())) {
    // "  ops watch      summary": the name ends at the two spaces of the column.
    std::string name(row.substr(2, row.find("  ", 2) - 2));
    std::vector<std::string> args = absl::StrSplit(name, ' ');
    args.push_back("--help");
    CliRun help = RunCliCaptured(args);
    EXPECT_EQ(help.code, kExitOk) << name;
    EXPECT_THAT(help.out, StartsWith("usage: mastodon-restore [global flags] " + name)) << name;
    ++commands;
  }
  EXPECT_GE(commands, 16);  // 11 commands, ops' 4 subcommands, help
  EXPECT_THAT(out, HasSubstr("  ops cancel "));
  EXPECT_THAT(out, HasSubstr("  help "));
}

// A code added to exit_codes.h without its words fails here (and the build).
TEST(CliTest, ExitCodeHelpNamesEveryCode) {
  const std::string usage = CliUsage();
  for (int c = kExitOk; c < kExitCodeEnd; ++c) {
    const char* meaning = ExitCodeMeaning(static_cast<ExitCode>(c));
    ASSERT_NE(meaning, nullptr) << c;
    EXPECT_THAT(ExitCodeHelp(),
                HasSubstr(absl::StrCat(c, " ", meaning, c + 1 < kExitCodeEnd ? "," : ".")));
    EXPECT_THAT(usage, HasSubstr(absl::StrCat(c, " ", meaning))) << c;
  }
  EXPECT_EQ(ExitCodeMeaning(kExitCodeEnd), nullptr);
  EXPECT_EQ(ExitCodeHelp(),
            "Exit codes: 0 ok, 1 failed, 2 usage, 3 agent unreachable, 4 invalid input,\n"
            "5 failed precondition, 6 cancelled, 7 permission denied, 8 unsupported.\n");
}

v1::Operation VerifyOperation() {
  v1::Operation op;
  op.set_id("op-2");
  op.set_kind(v1::OPERATION_KIND_VERIFY);
  op.set_state(v1::OPERATION_STATE_FAILED);
  op.set_last_sequence(1234567890123);
  op.mutable_create_time()->set_seconds(1767225600);
  v1::VerifyResult* result = op.mutable_verify_result();
  result->set_database("mastodon_verify_1");
  result->set_passed(false);
  v1::VerifyCheck* check = result->add_checks();
  check->set_name("row_count:public.accounts");
  check->set_message("expected 3 rows, found \"4\"\n");
  result->add_checks()->set_name("schema");
  result->mutable_checks(1)->set_passed(true);
  return op;
}

TEST(BackupReportTest, JsonParsesBackToTheReportAndTheOperations) {
  v1::Operation restore;
  restore.set_id("op-1");
  restore.set_state(v1::OPERATION_STATE_SUCCEEDED);
  const v1::Operation verify = VerifyOperation();
  pb::Struct report =
      BackupCheckReport("/b/backup.tar.gz", "mastodon_verify_1", restore, &verify, kExitFailed);
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  auto json = SortedJson(report, options);
  ASSERT_TRUE(json.ok()) << json.status();
  // One line, keys sorted, what scripts (and the e2e test) read.
  EXPECT_THAT(*json, StartsWith("{\"database\":\"mastodon_verify_1\",\"exit_code\":1,"
                                "\"passed\":false,\"restore\":{"));
  EXPECT_THAT(*json, HasSubstr("\"verify_result\":{"));
  EXPECT_EQ(json->find('\n'), std::string::npos);
  EXPECT_EQ(*SortedJson(report, options), *json);

  pb::Struct parsed;
  ASSERT_TRUE(pb::util::JsonStringToMessage(*json, &parsed).ok());
  EXPECT_TRUE(pb::util::MessageDifferencer::Equals(parsed, report));
  EXPECT_EQ(parsed.fields().at("source").string_value(), "/b/backup.tar.gz");
  EXPECT_EQ(parsed.fields().at("exit_code").number_value(), 1);
  EXPECT_FALSE(parsed.fields().at("passed").bool_value());

  // The operations read back as Operations.
  for (const auto& [key, original] : std::vector<std::pair<std::string, const v1::Operation*>>{
           {"restore", &restore}, {"verify", &verify}}) {
    std::string op_json;
    ASSERT_TRUE(pb::util::MessageToJsonString(parsed.fields().at(key), &op_json).ok());
    v1::Operation op;
    ASSERT_TRUE(pb::util::JsonStringToMessage(op_json, &op).ok()) << op_json;
    EXPECT_TRUE(pb::util::MessageDifferencer::Equals(op, *original))
        << key << ": " << op.DebugString();
  }
}

TEST(BackupReportTest, NoVerificationIsNull) {
  v1::Operation restore;
  restore.set_state(v1::OPERATION_STATE_FAILED);
  restore.mutable_error()->set_message("truncated");
  pb::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  auto json = SortedJson(BackupCheckReport("s", "d", restore, nullptr, kExitInvalidInput), options);
  ASSERT_TRUE(json.ok());
  EXPECT_THAT(*json, HasSubstr("\"exit_code\":4,\"passed\":false,"));
  EXPECT_THAT(*json, HasSubstr("\"source\":\"s\",\"verify\":null}"));
}

TEST(RenderTest, ADatabaseRangeWithoutItsEnd) {
  EXPECT_EQ(ByteRange(0, 1367), "bytes 0-1367");
  EXPECT_EQ(ByteRange(1367, -1), "from byte 1367");
  v1::DumpInfo dump;
  v1::ClusterDatabase* first = dump.add_databases();
  first->set_name("postgres");
  first->set_begin_offset(0);
  first->set_end_offset(1367);
  v1::ClusterDatabase* last = dump.add_databases();
  last->set_name("mastodon_production");
  last->set_begin_offset(1367);
  last->set_end_offset(-1);
  last->set_is_mastodon(true);
  const std::string text = RenderDumpInfo(dump, "");
  EXPECT_THAT(text, HasSubstr("database       postgres  bytes 0-1367\n"));
  EXPECT_THAT(text, HasSubstr("database       mastodon_production  from byte 1367  (Mastodon)\n"));
  EXPECT_THAT(text, Not(HasSubstr("--1")));
}

// Names from a hostile dump, archive or env file, with escape sequences that
// retitle the terminal, clear it, or fake a line of their own.
const char kHostile[] = "evil\x1b]0;owned\x07\x1b[2J\nfake line\xc2\x9b";

void ExpectNoRawControls(const std::string& text) {
  EXPECT_EQ(text.find('\x1b'), std::string::npos) << text;
  EXPECT_EQ(text.find('\x07'), std::string::npos) << text;
  EXPECT_EQ(text.find("\xc2\x9b"), std::string::npos) << text;
  EXPECT_EQ(text.find("\nfake line"), std::string::npos) << text;
  EXPECT_THAT(text, HasSubstr("evil\\x1b]0;owned\\x07\\x1b[2J\\nfake line\\u009b"));
}

TEST(RenderTest, NamesFromBackupsAreShownEscaped) {
  v1::DumpInfo dump;
  dump.set_path(kHostile);
  dump.set_database_name(kHostile);
  dump.set_dumper_version(kHostile);
  dump.set_deep(true);
  v1::TableRowCount* t = dump.add_tables();
  t->set_table(kHostile);
  t->set_rows(3);
  dump.add_roles(kHostile);
  dump.add_warnings(kHostile);
  ExpectNoRawControls(RenderDumpInfo(dump, "  "));

  v1::BackupManifest manifest;
  manifest.set_source(kHostile);
  manifest.add_containers(kHostile);
  (*manifest.mutable_env_file()->mutable_media_settings())["S3_BUCKET"] = kHostile;
  manifest.mutable_env_file()->set_path(kHostile);
  manifest.mutable_media()->add_largest_files()->set_path(kHostile);
  manifest.add_unknown_entries()->set_path(kHostile);
  *manifest.add_dumps() = dump;
  ExpectNoRawControls(RenderManifest(manifest));

  v1::Operation op;
  op.set_id("op-1");
  op.set_target(kHostile);
  v1::Step* step = op.add_steps();
  step->set_name(kHostile);
  step->set_message(kHostile);
  op.mutable_error()->set_message(kHostile);
  op.mutable_restore_report()->set_database(kHostile);
  op.mutable_restore_report()->mutable_dump()->set_path(kHostile);
  op.mutable_restore_report()->add_warnings(kHostile);
  op.mutable_restore_report()->mutable_secrets_check()->set_summary(kHostile);
  ExpectNoRawControls(RenderOperation(op));
  ExpectNoRawControls(RenderOperationLine(op));
}

TEST(RenderOperationTest, TheSecretsCheckSaysWhatItFound) {
  v1::Operation op;
  v1::SecretsCheck* c = op.mutable_restore_report()->mutable_secrets_check();
  c->set_summary("users.otp_secret: 0 of 3 decrypt");
  EXPECT_THAT(RenderOperation(op), HasSubstr("secrets check  not checked: users.otp_secret"));
  c->set_checked(true);
  EXPECT_THAT(RenderOperation(op), HasSubstr("secrets check  ok: users.otp_secret"));
  c->set_mismatch(true);
  EXPECT_THAT(RenderOperation(op), HasSubstr("secrets check  MISMATCH: users.otp_secret"));
  c->set_accepted(true);
  EXPECT_THAT(RenderOperation(op), HasSubstr("secrets check  MISMATCH (accepted): users.otp"));
}

TEST(ExitCodesTest, MapsEveryCodeFamily) {
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::OK), kExitOk);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::UNAVAILABLE), kExitUnreachable);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::DEADLINE_EXCEEDED), kExitUnreachable);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::INVALID_ARGUMENT), kExitInvalidInput);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::NOT_FOUND), kExitInvalidInput);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::FAILED_PRECONDITION), kExitPrecondition);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::ABORTED), kExitPrecondition);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::CANCELLED), kExitCancelled);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::PERMISSION_DENIED), kExitDenied);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::UNAUTHENTICATED), kExitDenied);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::UNIMPLEMENTED), kExitUnsupported);
  EXPECT_EQ(ExitCodeFor(grpc::StatusCode::INTERNAL), kExitFailed);
}

}  // namespace
}  // namespace mastodon_restore
