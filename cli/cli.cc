#include "cli/cli.h"

#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agent/common/args.h"
#include "agent/common/build_info.h"
#include "agent/common/conninfo_quote.h"
#include "agent/common/terminal_text.h"
#include "cli/agent_client.h"
#include "cli/backup_report.h"
#include "cli/command_line.h"
#include "cli/exit_codes.h"
#include "cli/follow.h"
#include "cli/junit.h"
#include "cli/local_agent.h"
#include "cli/render.h"
#include "cli/terminal.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "mastodon/restore/v1/agent_service.grpc.pb.h"

namespace mastodon_restore {

// What every command gets.
struct CommandContext {
  AgentAddress agent;
  // Whether --agent or $MASTODON_RESTORE_AGENT named the agent.
  bool agent_given = false;
  bool json = false;
  // Colour the states on `streams.out` (--color, NO_COLOR, a terminal).
  bool color = false;
  ParsedArgs args;  // the command's own flags and positional arguments
  Env* env = nullptr;
  CliStreams streams;
};

namespace {

namespace v1 = mastodon::restore::v1;

constexpr char kProgram[] = "mastodon-restore";
constexpr char kDefaultSocket[] = "/run/mastodon-restore/agent.sock";

const std::vector<FlagSpec>& GlobalFlags() {
  static const std::vector<FlagSpec>* specs = new std::vector<FlagSpec>{
      {"agent", "ADDR",
       "agent address: unix socket path, unix:PATH or HOST:PORT (default "
       "$MASTODON_RESTORE_AGENT or /run/mastodon-restore/agent.sock)"},
      {"timeout", "DURATION", "deadline of each call, e.g. 30s, 2m (default 30s)"},
      {"json", "", "print responses in protobuf's JSON mapping (proto field names)"},
      {"color", "WHEN",
       "colour states: auto (on a terminal, unless NO_COLOR is set), always, never (default "
       "auto)"},
      {"tls-ca", "FILE", "PEM CA bundle that signed the agent's certificate (TCP)"},
      {"tls-cert", "FILE", "client certificate for mutual TLS (TCP)"},
      {"tls-key", "FILE", "client key for mutual TLS (TCP)"},
      {"token-file", "FILE", "file holding a bearer token for a TCP agent with --tokens"},
      {"plaintext", "", "plaintext TCP to a loopback test agent (--insecure-loopback-tcp)"},
      {"version", "", "print the version and exit"},
      {"help", "", "print this help (a command's when one is named) and exit", false, 'h'},
  };
  return *specs;
}

// Everything the CLI prints goes through here: names from dumps, archives,
// env files and the agent's messages reach the terminal with their control
// characters shown escaped (the lines the CLI composed keep their newlines;
// tables escape each name, newlines included, before composing).
void Print(std::FILE* f, const std::string& text) {
  std::fputs(TerminalSafe(text, NewlinePolicy::kKeep).c_str(), f);
}

// JSON output: valid JSON, with DEL and C1 controls escaped too.
void PrintJsonText(std::FILE* f, const std::string& json) {
  std::fputs(TerminalSafeJson(json).c_str(), f);
}

// Prints `message` as JSON with proto field names and every field.
int PrintJson(const CommandContext& ctx, const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  auto status = google::protobuf::util::MessageToJsonString(message, &json, options);
  if (!status.ok()) {
    Print(ctx.streams.err,
          absl::StrCat(kProgram, ": error: unable to format JSON: ", status.ToString(), "\n"));
    return kExitFailed;
  }
  PrintJsonText(ctx.streams.out, json);
  if (json.empty() || json.back() != '\n') Print(ctx.streams.out, "\n");
  return kExitOk;
}

// What to do when the agent does not answer: on this host (a unix socket),
// how to start it as it is installed here (the Debian package's systemd
// unit, the snap's service; both when neither is found); in any case, that
// a backup can be checked without it.
std::string UnreachableHint(const CommandContext& ctx) {
  std::string s = absl::StrCat(" (is the agent running at '", ctx.agent.address, "'?)");
  const bool local = ctx.agent.address.find(':') == std::string::npos ||
                     absl::StartsWith(ctx.agent.address, "unix:");
  if (local && ctx.env != nullptr) {
    const bool unit = ctx.env->Exists("/lib/systemd/system/mastodon-restore-agent.service") ||
                      ctx.env->Exists("/usr/lib/systemd/system/mastodon-restore-agent.service");
    const bool snap = ctx.env->Exists("/snap/mastodon-restore/current");
    std::vector<std::string> ways;
    if (unit || !snap) {
      ways.push_back("sudo systemctl start mastodon-restore-agent (the Debian package's unit)");
    }
    if (snap || !unit) ways.push_back("sudo snap start mastodon-restore.agent (the snap)");
    absl::StrAppend(&s, "\nstart it on this host: ", absl::StrJoin(ways, ", or "));
  }
  absl::StrAppend(&s, "\nor check a backup without an agent: ", kProgram,
                  " verify-backup --local SOURCE");
  return s;
}

// Reports a failed call and returns its exit code.
int CallFailed(const CommandContext& ctx, const char* what, const grpc::Status& status) {
  std::string hint;
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) hint = UnreachableHint(ctx);
  Print(ctx.streams.err,
        absl::StrCat(kProgram, ": error: ", what, ": ", status.error_message(), hint, "\n"));
  return ExitCodeFor(status.error_code());
}

int RunHealth(CommandContext& ctx) {
  auto channel = OpenAgentChannel(ctx.agent, ctx.env);
  if (!channel.ok()) {
    Print(ctx.streams.err, absl::StrCat(kProgram, ": error: ", channel.status().message(), "\n"));
    return kExitUsage;
  }
  auto stub = grpc::health::v1::Health::NewStub(*channel);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(ctx.args.Get("service", ""));
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  PrepareCall(ctx.agent, &context);
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return CallFailed(ctx, "health check failed", status);
  if (ctx.json) {
    int rc = PrintJson(ctx, response);
    if (rc != kExitOk) return rc;
  } else {
    Print(ctx.streams.out,
          absl::StrCat(grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status()),
                       "\n"));
  }
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? kExitOk
                                                                             : kExitUnreachable;
}

// One hold on the app, in a line: "op-...: held for migration op-... on
// new-host (token:new-host) since 2026-12-05 04:42:06 UTC; mastodon-web, ...".
std::string DescribeHold(const v1::AppHold& hold) {
  std::string state = v1::AppHoldState_Name(hold.state());
  state = absl::AsciiStrToLower(state.substr(std::string("APP_HOLD_STATE_").size()));
  absl::StrReplaceAll({{"_", " "}}, &state);
  return absl::StrCat(
      hold.id(), ": ", state, " for ", hold.holder(), " (", hold.caller(), ") since ",
      absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixSeconds(hold.held_at().seconds()),
                       absl::UTCTimeZone()),
      hold.services().empty() ? "" : absl::StrCat("; ", absl::StrJoin(hold.services(), ", ")));
}

void PrintInfo(const CommandContext& ctx, const v1::GetAgentInfoResponse& info) {
  std::string s;
  const v1::BuildInfo& b = info.build();
  absl::StrAppend(&s, "agent          ", b.version(), " (commit ", b.commit(), ", ", b.build_type(),
                  ", ", b.compiler(), ")\n");
  absl::StrAppend(&s, "libraries      gRPC ", b.grpc_version(), ", protobuf ", b.protobuf_version(),
                  ", ", b.libarchive_version(), "\n");
  const v1::HostInfo& h = info.host();
  absl::StrAppend(&s, "host           ", h.hostname(), ", ", h.cpus(), " cpus, memory ",
                  HumanBytes(h.memory_available_bytes()), " available of ",
                  HumanBytes(h.memory_total_bytes()), "\n");
  absl::StrAppend(&s, "state dir      ", h.state_dir(), " (", HumanBytes(h.state_dir_free_bytes()),
                  " free)\n");
  absl::StrAppend(&s, "allowed roots  ",
                  h.allowed_roots().empty() ? "(none)" : absl::StrJoin(h.allowed_roots(), ", "),
                  "\n");
  const v1::RuntimeInfo& r = info.runtime();
  std::string kind = v1::RuntimeKind_Name(r.kind());
  kind = absl::AsciiStrToLower(kind.substr(std::string("RUNTIME_KIND_").size()));
  absl::StrAppend(&s, "runtime        ", kind, " (requested: ", r.requested(), ")\n");
  for (const std::string& e : r.evidence()) absl::StrAppend(&s, "                - ", e, "\n");
  if (!r.mastodon_version().empty() || !r.schema_version().empty()) {
    absl::StrAppend(&s, "mastodon       ",
                    r.mastodon_version().empty() ? "version unknown" : r.mastodon_version(),
                    r.schema_version().empty() ? "" : absl::StrCat(", schema ", r.schema_version()),
                    "\n");
  }
  if (!r.media_dir().empty()) {
    absl::StrAppend(&s, "media dir      ", r.media_dir(),
                    r.media_owner().empty() ? "" : absl::StrCat(", owner ", r.media_owner()), " (",
                    HumanBytes(r.media_dir_free_bytes()), " free)\n");
  }
  if (!r.media_bucket().empty()) {
    absl::StrAppend(&s, "media bucket   ", r.media_bucket(), " (S3_ENABLED in the app's env)\n");
  }
  const v1::PostgresInfo& pg = info.postgres();
  absl::StrAppend(
      &s, "postgresql     libpq ", pg.client_version(), "; pg_restore majors: ",
      pg.pg_restore_versions().empty() ? "none" : absl::StrJoin(pg.pg_restore_versions(), ", "),
      "\n");
  absl::StrAppend(&s, "target server  ",
                  pg.server_version().empty() ? pg.server_error() : pg.server_version(), "\n");
  absl::StrAppend(&s, "capabilities   ", absl::StrJoin(info.capabilities(), ", "), "\n");
  for (const v1::AppHold& hold : info.app_holds()) {
    absl::StrAppend(&s, "app hold       ", DescribeHold(hold), "\n");
  }
  absl::StrAppend(
      &s, "started        ",
      absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixSeconds(info.start_time().seconds()),
                       absl::UTCTimeZone()),
      "\n");
  Print(ctx.streams.out, s);
}

int RunInfo(CommandContext& ctx) {
  auto channel = OpenAgentChannel(ctx.agent, ctx.env);
  if (!channel.ok()) {
    Print(ctx.streams.err, absl::StrCat(kProgram, ": error: ", channel.status().message(), "\n"));
    return kExitUsage;
  }
  auto stub = v1::RestoreAgentService::NewStub(*channel);
  v1::GetAgentInfoResponse response;
  grpc::ClientContext context;
  PrepareCall(ctx.agent, &context);
  grpc::Status status = stub->GetAgentInfo(&context, v1::GetAgentInfoRequest(), &response);
  if (!status.ok()) return CallFailed(ctx, "unable to get agent info", status);
  if (ctx.json) return PrintJson(ctx, response);
  PrintInfo(ctx, response);
  return kExitOk;
}

// A path the agent can use: made absolute against the CLI's working directory.
std::string AbsolutePath(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[4096];
  if (::getcwd(cwd, sizeof(cwd)) == nullptr) return path;
  return absl::StrCat(cwd, "/", path);
}

// Fills a BackupSource from the positional path and the secret flags. The
// password is read from stdin with --password-stdin (it then travels in the
// request, marked sensitive) or named by --password-file (read by the agent).
// A source "s3://BUCKET[/PREFIX]" is a bucket, named with the --s3-* flags;
// its secret comes from --s3-secret-file (read by the agent) or the CLI's
// $AWS_SECRET_ACCESS_KEY (sent in the request, marked sensitive), never
// from the command line.
// Fills `source` with the bucket "s3://BUCKET[/PREFIX]" names and the
// --s3-* flags; false when `given` is not an s3:// URL.
bool FillBucket(CommandContext& ctx, absl::string_view given, v1::BackupSource* source) {
  if (absl::ConsumePrefix(&given, "s3://")) {
    v1::Bucket* bucket = source->mutable_bucket();
    const size_t slash = given.find('/');
    bucket->set_name(std::string(given.substr(0, slash)));
    if (slash != absl::string_view::npos) bucket->set_prefix(std::string(given.substr(slash + 1)));
    bucket->set_endpoint(ctx.args.Get("s3-endpoint"));
    bucket->set_region(ctx.args.Get("s3-region"));
    bucket->set_path_style(ctx.args.GetBool("s3-path-style"));
    const char* key_id = std::getenv("AWS_ACCESS_KEY_ID");
    bucket->set_access_key_id(ctx.args.Get("s3-access-key-id", key_id != nullptr ? key_id : ""));
    if (ctx.args.Has("s3-secret-file")) {
      bucket->mutable_secret_access_key()->set_file(AbsolutePath(ctx.args.Get("s3-secret-file")));
    } else if (const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY"); secret != nullptr) {
      bucket->mutable_secret_access_key()->set_value(secret);
    }
    if (ctx.args.Has("s3-ca-file")) bucket->set_ca_file(AbsolutePath(ctx.args.Get("s3-ca-file")));
    return true;
  }
  return false;
}

bool FillSource(CommandContext& ctx, v1::BackupSource* source) {
  if (FillBucket(ctx, ctx.args.positional().front(), source)) return true;
  source->set_path(AbsolutePath(ctx.args.positional().front()));
  if (ctx.args.Has("password-file")) {
    source->mutable_passphrase()->set_file(AbsolutePath(ctx.args.Get("password-file")));
  } else if (ctx.args.GetBool("password-stdin")) {
    std::string password;
    int c;
    while ((c = std::fgetc(stdin)) != EOF && c != '\n') password.push_back(static_cast<char>(c));
    if (!password.empty() && password.back() == '\r') password.pop_back();
    source->mutable_passphrase()->set_value(password);
  }
  if (ctx.args.Has("age-identity")) {
    source->set_age_identity_file(AbsolutePath(ctx.args.Get("age-identity")));
  }
  if (ctx.args.Has("gpg-key")) source->set_gpg_key_file(AbsolutePath(ctx.args.Get("gpg-key")));
  return true;
}

// The flags of a command that starts an operation: `extra`, then
// --request-id and --detach.
std::vector<FlagSpec> StartFlags(std::vector<FlagSpec> flags) {
  flags.push_back({"request-id", "ID", "idempotency key: a repeated id returns the operation"});
  flags.push_back({"detach", "", "print the operation id and return"});
  return flags;
}

std::vector<FlagSpec> SourceFlags(std::vector<FlagSpec> extra) {
  std::vector<FlagSpec> flags = {
      {"deep", "", "stream the whole dump: row counts, schema version, all databases"},
      {"password-file", "FILE", "file holding the archive password or OpenPGP passphrase"},
      {"password-stdin", "", "read the archive password from the first line of stdin"},
      {"age-identity", "FILE", "age identity file for .age sources"},
      {"gpg-key", "FILE", "OpenPGP secret key file for .gpg sources"},
      {"target-conninfo", "CONNINFO", "judge compatibility against this server (libpq conninfo)"},
      {"s3-endpoint", "URL", "for an s3://BUCKET/PREFIX source: the service's https:// URL"},
      {"s3-region", "REGION", "the bucket's signing region (default us-east-1)"},
      {"s3-path-style", "", "address the bucket as ENDPOINT/BUCKET (MinIO and most self-hosted)"},
      {"s3-access-key-id", "ID", "the access key id (default $AWS_ACCESS_KEY_ID)"},
      {"s3-secret-file", "FILE",
       "file holding the secret access key, read by the agent (default $AWS_SECRET_ACCESS_KEY)"},
      {"s3-ca-file", "FILE", "PEM CA certificates of a private endpoint"},
  };
  flags.insert(flags.end(), extra.begin(), extra.end());
  return flags;
}

int RunDetect(CommandContext& ctx) {
  auto channel = OpenAgentChannel(ctx.agent, ctx.env);
  if (!channel.ok()) {
    Print(ctx.streams.err, absl::StrCat(kProgram, ": error: ", channel.status().message(), "\n"));
    return kExitUsage;
  }
  auto stub = v1::RestoreAgentService::NewStub(*channel);
  v1::DetectDumpRequest request;
  FillSource(ctx, request.mutable_source());
  request.set_member(ctx.args.Get("member"));
  request.set_deep(ctx.args.GetBool("deep"));
  if (ctx.args.Has("target-conninfo")) {
    request.mutable_target()->set_conninfo(ctx.args.Get("target-conninfo"));
  }
  v1::DetectDumpResponse response;
  grpc::ClientContext context;
  PrepareCall(ctx.agent, &context);
  grpc::Status status = stub->DetectDump(&context, request, &response);
  if (!status.ok()) return CallFailed(ctx, "unable to detect dump", status);
  if (ctx.json) return PrintJson(ctx, response);
  Print(ctx.streams.out, RenderDumpInfo(response.dump(), ""));
  return kExitOk;
}

int RunInspect(CommandContext& ctx) {
  auto channel = OpenAgentChannel(ctx.agent, ctx.env);
  if (!channel.ok()) {
    Print(ctx.streams.err, absl::StrCat(kProgram, ": error: ", channel.status().message(), "\n"));
    return kExitUsage;
  }
  auto stub = v1::RestoreAgentService::NewStub(*channel);
  v1::InspectBackupRequest request;
  FillSource(ctx, request.mutable_source());
  request.set_deep(ctx.args.GetBool("deep"));
  if (ctx.args.Has("target-conninfo")) {
    request.mutable_target()->set_conninfo(ctx.args.Get("target-conninfo"));
  }
  v1::InspectBackupResponse response;
  grpc::ClientContext context;
  PrepareCall(ctx.agent, &context);
  grpc::Status status = stub->InspectBackup(&context, request, &response);
  if (!status.ok()) return CallFailed(ctx, "unable to inspect backup", status);
  if (ctx.json) return PrintJson(ctx, response);
  Print(ctx.streams.out, RenderManifest(response.manifest()));
  return kExitOk;
}

int UsageError(const CliStreams& streams, const std::string& message);

// A stub for `ctx`, or a usage error (printed) when the address is unusable.
std::unique_ptr<v1::RestoreAgentService::Stub> StubFor(CommandContext& ctx) {
  auto channel = OpenAgentChannel(ctx.agent, ctx.env);
  if (!channel.ok()) {
    Print(ctx.streams.err, absl::StrCat(kProgram, ": error: ", channel.status().message(), "\n"));
    return nullptr;
  }
  return v1::RestoreAgentService::NewStub(*channel);
}

FollowOptions FollowFor(const CommandContext& ctx) {
  FollowOptions o;
  const AgentAddress agent = ctx.agent;
  o.prepare = [agent](grpc::ClientContext* c) { AddToken(agent, c); };
  o.out = ctx.streams.out;
  o.err = ctx.streams.err;
  o.json = ctx.json;
  o.tty = ::isatty(::fileno(ctx.streams.out)) != 0;
  o.color = ctx.color;
  return o;
}

// Prints the started operation and follows it unless --detach.
int Started(CommandContext& ctx, v1::RestoreAgentService::Stub* stub, const v1::Operation& op) {
  if (ctx.args.GetBool("detach")) {
    if (ctx.json) {
      v1::GetOperationResponse r;
      *r.mutable_operation() = op;
      return PrintJson(ctx, r);
    }
    Print(ctx.streams.out, absl::StrCat(op.id(), "\n"));
    return kExitOk;
  }
  if (!ctx.json) {
    Print(ctx.streams.out, absl::StrCat("operation ", op.id(), " started (Ctrl-C cancels)\n"));
  }
  return FollowOperation(stub, op.id(), FollowFor(ctx));
}

// Calls the Start* method `start` and follows the operation it started.
template <typename Request, typename Response>
int StartAndFollow(CommandContext& ctx, v1::RestoreAgentService::Stub* stub,
                   grpc::Status (v1::RestoreAgentService::Stub::*start)(grpc::ClientContext*,
                                                                        const Request&, Response*),
                   const Request& request, const char* what) {
  Response response;
  grpc::ClientContext context;
  PrepareCall(ctx.agent, &context);
  grpc::Status status = (stub->*start)(&context, request, &response);
  if (!status.ok()) return CallFailed(ctx, what, status);
  return Started(ctx, stub, response.operation());
}

void FillTarget(const CommandContext& ctx, v1::DatabaseTarget* target) {
  if (ctx.args.Has("target-conninfo")) target->set_conninfo(ctx.args.Get("target-conninfo"));
  if (ctx.args.Has("database")) target->set_database(ctx.args.Get("database"));
}

// A size flag ("50M": 50 MiB, "800K", "1G", or bytes) into `out` (left
// alone when absent); `unit` names what it counts in the usage error.
bool SizeFlag(CommandContext& ctx, const char* flag, const char* unit, int64_t* out) {
  if (!ctx.args.Has(flag)) return true;
  std::string text = absl::AsciiStrToUpper(ctx.args.Get(flag));
  int shift = 0;
  if (!text.empty() && (text.back() == 'K' || text.back() == 'M' || text.back() == 'G')) {
    shift = text.back() == 'K' ? 10 : text.back() == 'M' ? 20 : 30;
    text.pop_back();
  }
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) || value <= 0 || value > (INT64_MAX >> shift)) {
    UsageError(ctx.streams,
               absl::StrCat("--", flag, " takes ", unit, ", with K, M or G (\"50M\")"));
    return false;
  }
  *out = value << shift;
  return true;
}

// A rate flag: bytes per second (SizeFlag).
bool RateFlag(CommandContext& ctx, const char* flag, int64_t* out) {
  return SizeFlag(ctx, flag, "bytes per second", out);
}

// Reads a non-negative integer flag into `out` (left alone when absent).
bool CountFlag(CommandContext& ctx, const char* flag, int32_t* out) {
  if (!ctx.args.Has(flag)) return true;
  int value = 0;
  if (!absl::SimpleAtoi(ctx.args.Get(flag), &value) || value < 0) {
    UsageError(ctx.streams, absl::StrCat("--", flag, " takes a non-negative number"));
    return false;
  }
  *out = value;
  return true;
}

int RunRestore(CommandContext& ctx) {
  auto stub = StubFor(ctx);
  if (stub == nullptr) return kExitUsage;
  v1::StartRestoreRequest request;
  request.set_request_id(ctx.args.Get("request-id"));
  v1::RestoreOptions* o = request.mutable_options();
  FillSource(ctx, o->mutable_source());
  o->set_member(ctx.args.Get("member"));
  o->set_db_only(ctx.args.GetBool("db-only"));
  o->set_media_only(ctx.args.GetBool("media-only"));
  if (ctx.args.Has("media-dir")) o->set_media_dir(AbsolutePath(ctx.args.Get("media-dir")));
  o->set_exclude_cache(ctx.args.GetBool("exclude-cache"));
  o->set_media_tree(ctx.args.Get("media-tree"));
  o->set_verify_media(ctx.args.GetBool("verify-media"));
  if (ctx.args.Has("media-from")) {
    const std::string from = ctx.args.Get("media-from");
    if (!FillBucket(ctx, from, o->mutable_media_source())) {
      o->mutable_media_source()->set_path(AbsolutePath(from));
    }
  }
  int64_t rate = 0;
  if (!RateFlag(ctx, "bandwidth-limit", &rate)) return kExitUsage;
  o->set_bandwidth_limit(rate);
  o->set_target_db(ctx.args.Get("target-db"));
  o->set_source_db(ctx.args.Get("source-db"));
  o->set_keep_owners(ctx.args.GetBool("keep-owners"));
  o->set_with_role_passwords(ctx.args.GetBool("with-role-passwords"));
  o->set_allow_privileged_roles(ctx.args.GetBool("allow-privileged-roles"));
  o->set_allow_superuser_load(ctx.args.GetBool("allow-superuser-load"));
  o->set_repair_duplicates(ctx.args.GetBool("repair-duplicates"));
  o->set_accept_secret_mismatch(ctx.args.GetBool("accept-secret-mismatch"));
  for (absl::string_view e :
       absl::StrSplit(ctx.args.Get("allow-extensions"), ',', absl::SkipEmpty())) {
    o->add_allow_extensions(std::string(e));
  }
  o->set_drop_previous(ctx.args.GetBool("drop-previous"));
  o->set_no_migrate(ctx.args.GetBool("no-migrate"));
  o->set_no_cleanup(ctx.args.GetBool("no-cleanup"));
  o->set_no_refresh(ctx.args.GetBool("no-refresh"));
  o->set_no_search_deploy(ctx.args.GetBool("no-search-deploy"));
  o->set_no_redis(ctx.args.GetBool("no-redis"));
  o->set_no_media_check(ctx.args.GetBool("no-media-check"));
  o->set_refetch_missing_remote_media(ctx.args.GetBool("refetch-missing-remote-media"));
  int32_t days = 0;
  if (!CountFlag(ctx, "refresh-days", &days)) return kExitUsage;
  o->set_refresh_days(days);
  int32_t jobs = 0;
  if (!CountFlag(ctx, "jobs", &jobs)) return kExitUsage;
  o->set_jobs(jobs);
  o->set_restore_config(ctx.args.GetBool("restore-config"));
  o->set_keep_services_stopped_on_failure(ctx.args.GetBool("keep-services-stopped-on-failure"));
  o->set_plan_only(ctx.args.GetBool("plan"));
  if (ctx.args.Has("target-conninfo")) {
    o->mutable_target()->set_conninfo(ctx.args.Get("target-conninfo"));
  }
  // After the swap.
  o->set_no_app_checks(ctx.args.GetBool("no-app-checks"));
  int32_t check_timeout = 0;
  if (!CountFlag(ctx, "app-check-timeout", &check_timeout)) return kExitUsage;
  o->set_app_check_timeout_seconds(check_timeout);
  v1::StartRestoreResponse response;
  grpc::ClientContext context;
  PrepareCall(ctx.agent, &context);
  grpc::Status status = stub->StartRestore(&context, request, &response);
  if (!status.ok()) return CallFailed(ctx, "unable to start the restore", status);
  if (o->plan_only()) {
    if (ctx.json) return PrintJson(ctx, response);
    const v1::Operation& plan = response.operation();
    std::string text = absl::StrCat("plan of the restore into ", TerminalSafe(plan.target()),
                                    " (nothing was started):\n");
    int n = 0;
    for (const v1::Step& step : plan.steps()) {
      const bool runs = step.state() != v1::STEP_STATE_SKIPPED;
      absl::StrAppend(
          &text,
          absl::StrFormat(
              "  %2s %-15s %s\n", runs ? absl::StrCat(++n) : "-", TerminalSafe(step.name()),
              TerminalSafe(runs ? step.description() : absl::StrCat("skipped: ", step.message()))));
    }
    Print(ctx.streams.out, text);
    return kExitOk;
  }
  return Started(ctx, stub.get(), response.operation());
}

int RunRollback(CommandContext& ctx) {
  auto stub = StubFor(ctx);
  if (stub == nullptr) return kExitUsage;
  if (!ctx.args.Has("database")) return UsageError(ctx.streams, "rollback needs --database NAME");
  v1::StartRollbackRequest request;
  request.set_request_id(ctx.args.Get("request-id"));
  FillTarget(ctx, request.mutable_options()->mutable_target());
  request.mutable_options()->set_previous_database(ctx.args.Get("previous"));
  return StartAndFollow(ctx, stub.get(), &v1::RestoreAgentService::Stub::StartRollback, request,
                        "unable to start the rollback");
}

// True when `conninfo` sets a password: the keyword, or a URI's
// user:password@.
bool ConnInfoSetsPassword(const std::string& conninfo) {
  if (absl::StrContains(absl::AsciiStrToLower(conninfo), "password")) return true;
  const size_t scheme = conninfo.find("://");
  if (scheme == std::string::npos) return false;
  const size_t at = conninfo.find('@', scheme + 3);
  const size_t slash = conninfo.find('/', scheme + 3);
  if (at == std::string::npos || (slash != std::string::npos && slash < at)) return false;
  return conninfo.substr(scheme + 3, at - scheme - 3).find(':') != std::string::npos;
}

int RunMigrate(CommandContext& ctx) {
  auto stub = StubFor(ctx);
  if (stub == nullptr) return kExitUsage;
  if (!ctx.args.Has("from")) {
    return UsageError(ctx.streams, "migrate needs --from CONNINFO (the old host's server)");
  }
  if (!ctx.args.Has("from-db")) {
    return UsageError(ctx.streams, "migrate needs --from-db NAME (the old host's database)");
  }
  std::string conninfo = ctx.args.Get("from");
  if (ConnInfoSetsPassword(conninfo)) {
    return UsageError(ctx.streams,
                      "a password does not belong on the command line: put it in a file and "
                      "give --from-password-file FILE");
  }
  if (ctx.args.Has("from-password-file")) {
    auto password = ctx.env->ReadFile(ctx.args.Get("from-password-file"));
    if (!password.ok()) return UsageError(ctx.streams, std::string(password.status().message()));
    std::string p(absl::StripTrailingAsciiWhitespace(*password));
    if (p.empty()) return UsageError(ctx.streams, "the password file is empty");
    if (absl::StrContains(conninfo, "://")) {
      return UsageError(ctx.streams,
                        "--from-password-file needs --from in keyword form (host=... user=...)");
    }
    absl::StrAppend(&conninfo, " password=", QuoteConnInfoValue(p));
  }
  v1::StartMigrateRequest request;
  request.set_request_id(ctx.args.Get("request-id"));
  v1::MigrateOptions* o = request.mutable_options();
  o->mutable_source()->set_conninfo(conninfo);
  o->mutable_source()->set_database(ctx.args.Get("from-db"));
  FillTarget(ctx, o->mutable_target());
  int64_t lag = 0;
  if (!SizeFlag(ctx, "cutover-when-lag-below", "bytes", &lag)) return kExitUsage;
  o->set_cutover_when_lag_below(lag);
  o->set_ignore_source_sessions(ctx.args.GetBool("ignore-source-sessions"));
  o->set_skip_migrate(ctx.args.GetBool("no-migrate"));
  o->set_skip_feeds_build(ctx.args.GetBool("no-feeds-build"));
  o->set_leave_stopped(ctx.args.GetBool("leave-stopped"));
  o->set_drop_previous(ctx.args.GetBool("drop-previous"));
  o->set_source_agent(ctx.args.Get("from-agent"));
  o->set_skip_media(ctx.args.GetBool("no-media"));
  if (ctx.args.GetBool("physical")) o->set_method(v1::FOLLOW_METHOD_PHYSICAL);
  o->set_keep_following(ctx.args.GetBool("keep-following"));
  int64_t media_rate = 0;
  if (!RateFlag(ctx, "media-bandwidth-limit", &media_rate)) return kExitUsage;
  o->set_media_bandwidth_limit(media_rate);
  if (ctx.args.Has("media-pass-every")) {
    absl::Duration every;
    if (!absl::ParseDuration(ctx.args.Get("media-pass-every"), &every) ||
        every < absl::Seconds(1) || every > absl::Hours(24 * 7)) {
      return UsageError(ctx.streams,
                        "--media-pass-every takes a duration from 1s to 168h (\"10m\")");
    }
    o->set_media_pass_every_seconds(static_cast<int32_t>(absl::ToInt64Seconds(every)));
  }
  return StartAndFollow(ctx, stub.get(), &v1::RestoreAgentService::Stub::StartMigrate, request,
                        "unable to start the migration");
}

int RunVerify(CommandContext& ctx) {
  auto stub = StubFor(ctx);
  if (stub == nullptr) return kExitUsage;
  if (!ctx.args.Has("database")) return UsageError(ctx.streams, "verify needs --database NAME");
  v1::StartVerifyRequest request;
  request.set_request_id(ctx.args.Get("request-id"));
  FillTarget(ctx, request.mutable_options()->mutable_target());
  if (ctx.args.Has("expected")) {
    request.mutable_options()->mutable_expected()->set_path(AbsolutePath(ctx.args.Get("expected")));
  }
  int days = 0;
  if (ctx.args.Has("max-age") && (!absl::SimpleAtoi(ctx.args.Get("max-age"), &days) || days <= 0)) {
    return UsageError(ctx.streams, "--max-age takes a number of days");
  }
  request.mutable_options()->set_max_age_days(days);
  request.mutable_options()->set_check_secrets(ctx.args.GetBool("check-secrets"));
  return StartAndFollow(ctx, stub.get(), &v1::RestoreAgentService::Stub::StartVerify, request,
                        "unable to start the verification");
}

int RunDbMigrate(CommandContext& ctx) {
  auto stub = StubFor(ctx);
  if (stub == nullptr) return kExitUsage;
  const bool pre = ctx.args.GetBool("pre-deployment-only");
  const bool post = ctx.args.GetBool("post-deployment-only");
  if (pre && post) {
    return UsageError(ctx.streams,
                      "--pre-deployment-only and --post-deployment-only exclude each other");
  }
  v1::StartDbMigrateRequest request;
  request.set_request_id(ctx.args.Get("request-id"));
  request.mutable_options()->set_phase(pre    ? v1::MIGRATION_PHASE_PRE_DEPLOYMENT
                                       : post ? v1::MIGRATION_PHASE_POST_DEPLOYMENT
                                              : v1::MIGRATION_PHASE_ALL);
  return StartAndFollow(ctx, stub.get(), &v1::RestoreAgentService::Stub::StartDbMigrate, request,
                        "unable to start the migration");
}

int RunCleanup(CommandContext& ctx) {
  auto stub = StubFor(ctx);
  if (stub == nullptr) return kExitUsage;
  v1::StartCleanupRequest request;
  request.set_request_id(ctx.args.Get("request-id"));
  v1::CleanupOptions* o = request.mutable_options();
  int32_t days = 0;
  if (!CountFlag(ctx, "days", &days)) return kExitUsage;
  o->set_preview_cards_days(days);
  o->set_media_days(days);
  int32_t value = 0;
  if (!CountFlag(ctx, "preview-cards-days", &value)) return kExitUsage;
  if (ctx.args.Has("preview-cards-days")) o->set_preview_cards_days(value);
  if (!CountFlag(ctx, "media-days", &value)) return kExitUsage;
  if (ctx.args.Has("media-days")) o->set_media_days(value);
  if (!CountFlag(ctx, "concurrency", &value)) return kExitUsage;
  o->set_concurrency(ctx.args.Has("concurrency") ? value : 0);
  o->set_prune_profiles(ctx.args.GetBool("prune-profiles"));
  o->set_remove_headers(ctx.args.GetBool("remove-headers"));
  o->set_include_follows(ctx.args.GetBool("include-follows"));
  return StartAndFollow(ctx, stub.get(), &v1::RestoreAgentService::Stub::StartCleanup, request,
                        "unable to start the cleanup");
}

int RunMediaRefresh(CommandContext& ctx) {
  auto stub = StubFor(ctx);
  if (stub == nullptr) return kExitUsage;
  v1::StartMediaRefreshRequest request;
  request.set_request_id(ctx.args.Get("request-id"));
  v1::MediaRefreshOptions* o = request.mutable_options();
  int32_t value = 0;
  if (!CountFlag(ctx, "days", &value)) return kExitUsage;
  o->set_days(ctx.args.Has("days") ? value : 0);
  if (!CountFlag(ctx, "concurrency", &value)) return kExitUsage;
  o->set_concurrency(ctx.args.Has("concurrency") ? value : 0);
  o->set_account(ctx.args.Get("account"));
  o->set_domain(ctx.args.Get("domain"));
  o->set_status_id(ctx.args.Get("status"));
  o->set_force(ctx.args.GetBool("force"));
  o->set_refresh_accounts(ctx.args.GetBool("accounts"));
  o->set_build_feeds(ctx.args.GetBool("feeds"));
  return StartAndFollow(ctx, stub.get(), &v1::RestoreAgentService::Stub::StartMediaRefresh, request,
                        "unable to start the media refresh");
}

// The operation `id` as it is now.
absl::StatusOr<v1::Operation> FetchOperation(CommandContext& ctx,
                                             v1::RestoreAgentService::Stub* stub,
                                             const std::string& id) {
  v1::GetOperationRequest request;
  request.set_id(id);
  v1::GetOperationResponse response;
  grpc::ClientContext context;
  PrepareCall(ctx.agent, &context);
  grpc::Status status = stub->GetOperation(&context, request, &response);
  if (!status.ok()) {
    return absl::UnavailableError(
        absl::StrCat("unable to get operation ", id, ": ", status.error_message()));
  }
  return response.operation();
}

// An operation that never started, for the reports.
v1::Operation NotStarted(const grpc::Status& status) {
  v1::Operation op;
  op.set_state(v1::OPERATION_STATE_FAILED);
  op.mutable_error()->set_code(status.error_code());
  op.mutable_error()->set_message(status.error_message());
  return op;
}

// verify-backup's reports: JUnit (--junit), JSON (--json) or a summary line.
int ReportBackupCheck(CommandContext& ctx, const std::string& source, const std::string& scratch,
                      const v1::Operation& restore, const v1::Operation* verify, int code) {
  const bool passed = code == kExitOk;
  if (ctx.args.Has("junit")) {
    std::ofstream out(ctx.args.Get("junit"), std::ios::trunc);
    out << JUnitReport(source, restore, verify);
    if (!out) {
      Print(ctx.streams.err,
            absl::StrCat(kProgram, ": error: unable to write '", ctx.args.Get("junit"), "'\n"));
      if (passed) return kExitFailed;
    }
  }
  if (ctx.json) {
    // One line, keys sorted; the operations in their JSON mapping with proto
    // field names (cli/backup_report.h).
    google::protobuf::util::JsonPrintOptions options;
    options.preserve_proto_field_names = true;
    auto json = SortedJson(BackupCheckReport(source, scratch, restore, verify, code), options);
    if (!json.ok()) {
      Print(ctx.streams.err, absl::StrCat(kProgram, ": error: ", json.status().message(), "\n"));
      return passed ? kExitFailed : code;
    }
    PrintJsonText(ctx.streams.out, *json + "\n");
    return code;
  }
  int checks = verify != nullptr ? verify->verify_result().checks_size() : 0;
  int failed = 0;
  if (verify != nullptr) {
    for (const auto& c : verify->verify_result().checks()) failed += c.passed() ? 0 : 1;
  }
  Print(ctx.streams.out,
        passed ? absl::StrCat("backup OK: ", TerminalSafe(source), " restores, all ", checks,
                              " checks passed\n")
        : verify == nullptr
            ? absl::StrCat("backup FAILED: ", TerminalSafe(source),
                           " does not restore: ", TerminalSafe(restore.error().message()), "\n")
            : absl::StrCat("backup FAILED: ", TerminalSafe(source), ": ", failed, " of ", checks,
                           " checks failed\n"));
  return code;
}

int RunVerifyBackup(CommandContext& ctx) {
  // The scratch database: always "mastodon_verify_*", so that the agent
  // agrees to drop it.
  std::string scratch = ctx.args.Get("target-db");
  if (scratch.empty()) {
    scratch = absl::StrFormat("mastodon_verify_%d_%d", ::getpid(),
                              absl::ToUnixSeconds(absl::Now()) % 100000000);
  } else if (!absl::StartsWith(scratch, "mastodon_verify_")) {
    return UsageError(ctx.streams,
                      "--target-db of verify-backup must start with mastodon_verify_ "
                      "(it is dropped afterwards)");
  }
  int32_t max_age = 0;
  if (!CountFlag(ctx, "max-age", &max_age)) return kExitUsage;
  v1::BackupSource source;
  FillSource(ctx, &source);

  // The agent asked for, else a private one on the embedded runtime.
  std::unique_ptr<CommandRunner> runner;
  std::unique_ptr<LocalAgent> local;
  struct stat st;
  const bool no_agent =
      !ctx.agent_given && (::stat(ctx.agent.address.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode));
  if (ctx.args.GetBool("local") || no_agent) {
    std::vector<std::string> roots;
    for (const std::string& path : {source.path(), source.passphrase().file(),
                                    source.age_identity_file(), source.gpg_key_file()}) {
      if (path.empty()) continue;
      char real[PATH_MAX];
      std::string resolved = ::realpath(path.c_str(), real) != nullptr ? real : path;
      roots.push_back(resolved.substr(0, std::max<size_t>(1, resolved.find_last_of('/'))));
    }
    runner = NewPosixCommandRunner();
    auto started = LocalAgent::Start(roots, runner.get());
    if (!started.ok()) {
      Print(ctx.streams.err, absl::StrCat(kProgram, ": error: ", started.status().message(), "\n"));
      return kExitUnreachable;
    }
    local = std::move(*started);
    ctx.agent = AgentAddress();
    ctx.agent.address = local->socket();
    ctx.agent.timeout = absl::Minutes(2);
    if (!ctx.json) {
      Print(ctx.streams.err,
            "started a private agent with its own PostgreSQL (embedded runtime)\n");
    }
  }
  auto stub = StubFor(ctx);
  if (stub == nullptr) return kExitUsage;
  FollowOptions follow = FollowFor(ctx);
  std::FILE* devnull = nullptr;
  if (ctx.json) {
    devnull = std::fopen("/dev/null", "w");
    follow.out = devnull;
    follow.json = false;
    follow.tty = false;
  }
  struct CloseFile {
    std::FILE* f;
    ~CloseFile() {
      if (f != nullptr) std::fclose(f);
    }
  } close_devnull{devnull};

  // 1. Restore the database into the scratch database.
  v1::StartRestoreRequest restore_request;
  v1::RestoreOptions* o = restore_request.mutable_options();
  *o->mutable_source() = source;
  o->set_db_only(true);
  o->set_target_db(scratch);
  // The secrets are judged by the verification's "secrets" check (its own
  // test case in --junit), not by refusing the scratch restore.
  o->set_accept_secret_mismatch(true);
  o->set_member(ctx.args.Get("member"));
  if (ctx.args.Has("target-conninfo")) {
    o->mutable_target()->set_conninfo(ctx.args.Get("target-conninfo"));
  }
  v1::StartRestoreResponse restore_started;
  {
    grpc::ClientContext context;
    PrepareCall(ctx.agent, &context);
    grpc::Status status = stub->StartRestore(&context, restore_request, &restore_started);
    if (!status.ok()) {
      CallFailed(ctx, "unable to start the restore", status);
      return ReportBackupCheck(ctx, source.path(), scratch, NotStarted(status), nullptr,
                               ExitCodeFor(status.error_code()));
    }
  }
  if (!ctx.json) {
    Print(ctx.streams.out,
          absl::StrCat("restoring ", TerminalSafe(source.path()), " into the scratch database ",
                       TerminalSafe(scratch), "\n"));
  }
  int code = FollowOperation(stub.get(), restore_started.operation().id(), follow);
  auto restore = FetchOperation(ctx, stub.get(), restore_started.operation().id());
  v1::Operation restore_op = restore.ok() ? *restore : restore_started.operation();
  if (code != kExitOk)
    return ReportBackupCheck(ctx, source.path(), scratch, restore_op, nullptr, code);

  // 2. Check it against the dump and the media; the agent drops it after.
  v1::StartVerifyRequest verify_request;
  v1::VerifyOptions* v = verify_request.mutable_options();
  v->mutable_target()->set_database(scratch);
  if (ctx.args.Has("target-conninfo")) {
    v->mutable_target()->set_conninfo(ctx.args.Get("target-conninfo"));
  }
  *v->mutable_expected() = source;
  v->set_max_age_days(max_age);
  v->set_check_media(true);
  v->set_check_secrets(true);
  v->set_drop_scratch(true);
  v1::StartVerifyResponse verify_started;
  {
    grpc::ClientContext context;
    PrepareCall(ctx.agent, &context);
    grpc::Status status = stub->StartVerify(&context, verify_request, &verify_started);
    if (!status.ok()) {
      CallFailed(ctx, "unable to start the verification", status);
      v1::Operation failed = NotStarted(status);
      return ReportBackupCheck(ctx, source.path(), scratch, restore_op, &failed,
                               ExitCodeFor(status.error_code()));
    }
  }
  code = FollowOperation(stub.get(), verify_started.operation().id(), follow);
  auto verify = FetchOperation(ctx, stub.get(), verify_started.operation().id());
  v1::Operation verify_op = verify.ok() ? *verify : verify_started.operation();
  return ReportBackupCheck(ctx, source.path(), scratch, restore_op, &verify_op, code);
}

int RunOpsList(CommandContext& ctx) {
  auto stub = StubFor(ctx);
  if (stub == nullptr) return kExitUsage;
  v1::ListOperationsRequest request;
  request.set_page_size(1000);
  v1::ListOperationsResponse response;
  grpc::ClientContext context;
  PrepareCall(ctx.agent, &context);
  grpc::Status status = stub->ListOperations(&context, request, &response);
  if (!status.ok()) return CallFailed(ctx, "unable to list operations", status);
  if (ctx.json) return PrintJson(ctx, response);
  for (const v1::Operation& op : response.operations()) {
    Print(ctx.streams.out, RenderOperationLine(op) + "\n");
  }
  return kExitOk;
}

int RunOpsShow(CommandContext& ctx) {
  auto stub = StubFor(ctx);
  if (stub == nullptr) return kExitUsage;
  v1::GetOperationRequest request;
  request.set_id(ctx.args.positional().front());
  v1::GetOperationResponse response;
  grpc::ClientContext context;
  PrepareCall(ctx.agent, &context);
  grpc::Status status = stub->GetOperation(&context, request, &response);
  if (!status.ok()) return CallFailed(ctx, "unable to get the operation", status);
  if (ctx.json) return PrintJson(ctx, response);
  // RenderOperation escapes every value itself; its colours must pass.
  // On a terminal, folded to its width (TerminalColumns: 0 elsewhere).
  const int columns = TerminalColumns(::fileno(ctx.streams.out));
  std::fputs(
      WrapToWidth(RenderOperation(response.operation(), ctx.color), UsableColumns(columns)).c_str(),
      ctx.streams.out);
  return kExitOk;
}

int RunOpsWatch(CommandContext& ctx) {
  auto stub = StubFor(ctx);
  if (stub == nullptr) return kExitUsage;
  FollowOptions o = FollowFor(ctx);
  int64_t from = 0;
  if (ctx.args.Has("from") && !absl::SimpleAtoi(ctx.args.Get("from"), &from)) {
    return UsageError(ctx.streams, "--from takes a sequence number");
  }
  o.from_sequence = from;
  return FollowOperation(stub.get(), ctx.args.positional().front(), o);
}

int RunOpsCancel(CommandContext& ctx) {
  auto stub = StubFor(ctx);
  if (stub == nullptr) return kExitUsage;
  const std::string& id = ctx.args.positional().front();
  v1::CancelOperationRequest request;
  request.set_id(id);
  v1::CancelOperationResponse response;
  grpc::ClientContext context;
  PrepareCall(ctx.agent, &context);
  grpc::Status status = stub->CancelOperation(&context, request, &response);
  if (!status.ok()) return CallFailed(ctx, "unable to cancel the operation", status);
  if (ctx.json) return PrintJson(ctx, response);
  Print(ctx.streams.out, absl::StrCat("cancellation of ", id, " requested\n"));
  return kExitOk;
}

int RunOpsCutOver(CommandContext& ctx) {
  auto stub = StubFor(ctx);
  if (stub == nullptr) return kExitUsage;
  const std::string& id = ctx.args.positional().front();
  v1::CutOverRequest request;
  request.set_id(id);
  v1::CutOverResponse response;
  grpc::ClientContext context;
  PrepareCall(ctx.agent, &context);
  grpc::Status status = stub->CutOver(&context, request, &response);
  if (!status.ok()) return CallFailed(ctx, "unable to ask for the cut-over", status);
  if (ctx.json) return PrintJson(ctx, response);
  Print(ctx.streams.out,
        absl::StrCat("cut-over of ", id, " requested: mastodon-restore ops watch ", id, "\n"));
  return kExitOk;
}

// app-hold release ID [--keep-stopped]: ends a hold another host's
// migration has on this host's app.
int RunAppHoldRelease(CommandContext& ctx) {
  auto stub = StubFor(ctx);
  if (stub == nullptr) return kExitUsage;
  v1::ReleaseAppRequest request;
  request.set_id(ctx.args.positional().front());
  request.set_keep_stopped(ctx.args.GetBool("keep-stopped"));
  v1::ReleaseAppResponse response;
  grpc::ClientContext context;
  PrepareCall(ctx.agent, &context);
  grpc::Status status = stub->ReleaseApp(&context, request, &response);
  if (!status.ok()) return CallFailed(ctx, "unable to release the hold", status);
  if (ctx.json) return PrintJson(ctx, response);
  Print(ctx.streams.out, absl::StrCat(DescribeHold(response.hold()), "\n"));
  return kExitOk;
}

// app-hold list: the holds on this host's app.
int RunAppHoldList(CommandContext& ctx) {
  auto stub = StubFor(ctx);
  if (stub == nullptr) return kExitUsage;
  v1::GetAgentInfoResponse response;
  grpc::ClientContext context;
  PrepareCall(ctx.agent, &context);
  grpc::Status status = stub->GetAgentInfo(&context, v1::GetAgentInfoRequest(), &response);
  if (!status.ok()) return CallFailed(ctx, "unable to list the holds", status);
  if (ctx.json) {
    v1::AppHoldList holds;
    *holds.mutable_holds() = response.app_holds();
    return PrintJson(ctx, holds);
  }
  std::string out;
  for (const v1::AppHold& hold : response.app_holds())
    absl::StrAppend(&out, DescribeHold(hold), "\n");
  Print(ctx.streams.out, out.empty() ? "no hold on this host's app\n" : out);
  return kExitOk;
}

int RunHelp(CommandContext& ctx);

const std::vector<Command>& Commands() {
  static const std::vector<Command>* commands = new std::vector<Command>{
      {"health",
       "check that the agent is up and serving (exit 0 when SERVING)",
       "",
       {{"service", "NAME", "health of one service (default: the whole agent)"}},
       RunHealth},
      {"info", "agent version, host facts, runtime, PostgreSQL tools", "", {}, RunInfo},
      {"detect", "what a PostgreSQL dump is (format, versions, databases, compatibility)", "PATH",
       SourceFlags({{"member", "PATH", "the dump inside an archive or directory source"}}),
       RunDetect},
      {"inspect", "inventory of a backup: layout, env file, dumps, media", "SOURCE",
       SourceFlags({}), RunInspect},
      {"restore",
       "restore a backup: database (staged, verified, swapped in), media, migrations, tootctl",
       "SOURCE",
       SourceFlags(
           {{"db-only", "", "restore only the database"},
            {"media-only", "", "restore only the media"},
            {"media-dir", "DIR", "media directory (within the agent's --media-dir)"},
            {"exclude-cache", "", "skip cache/ (remote media media refresh can fetch)"},
            {"media-tree", "ROOT", "the media tree to restore when inspect lists several"},
            {"verify-media", "", "compare present media by SHA-256, not size and mtime"},
            {"media-from", "SOURCE",
             "take the media from here (s3://BUCKET/PREFIX, a directory, an archive)"},
            {"bandwidth-limit", "RATE", "cap object-storage transfers (\"50M\": 50 MiB/s)"},
            {"member", "PATH", "the dump inside the source when it holds several"},
            {"target-db", "NAME", "database name to restore under (default: the dump's)"},
            {"source-db", "NAME", "for a pg_dumpall dump: the database to restore"},
            {"keep-owners", "", "require the dump's owner roles on the target"},
            {"with-role-passwords", "", "create a cluster dump's roles with passwords"},
            {"allow-privileged-roles", "", "new roles may be SUPERUSER, BYPASSRLS..."},
            {"allow-extensions", "A,B", "extensions allowed beside the default list"},
            {"allow-superuser-load", "", "load as superuser if pg_hba refuses the load role"},
            {"repair-duplicates", "", "fix unique-index duplicates as tootctl fix-duplicates"},
            {"accept-secret-mismatch", "", "swap in even if the env cannot decrypt 2FA secrets"},
            {"drop-previous", "", "drop the replaced database after a successful swap"},
            {"no-migrate", "", "skip the app's db:migrate"},
            {"no-cleanup", "", "skip tootctl preview_cards remove / media remove"},
            {"no-refresh", "", "skip tootctl media refresh / accounts refresh / feeds"},
            {"no-search-deploy", "", "skip tootctl search deploy (run when ES_ENABLED=true)"},
            {"no-redis", "",
             "keep the host's Redis data (the backup's redis.rdb/dump.rdb is not restored)"},
            {"no-media-check", "",
             "do not count the media files the database references but the media dir lacks"},
            {"refetch-missing-remote-media", "",
             "fetch again the remote media the media dir lacks (tootctl, scoped to them)"},
            {"refresh-days", "N", "media refresh --days N (default 1)"},
            {"jobs", "N", "connections loading the database (default: cores; 1: serial)"},
            {"restore-config", "", "install the backup's env file (host DB/Redis kept)"},
            {"keep-services-stopped-on-failure", "", "leave the app stopped if it fails"},
            {"no-app-checks", "", "do not check that the app answers once started again"},
            {"app-check-timeout", "SECONDS", "how long the app may take to answer (default 180)"},
            {"plan", "", "print what would run, start nothing"},
            {"request-id", "ID", "idempotency key: a repeated id returns the operation"},
            {"detach", "", "print the operation id and return"}}),
       RunRestore},
      {"rollback", "swap the kept previous database back in", "",
       StartFlags({
           {"database", "NAME", "the live database to roll back"},
           {"previous", "NAME", "which <db>__previous_* (default: the newest)"},
           {"target-conninfo", "CONNINFO", "PostgreSQL server (default: the agent's)"},
       }),
       RunRollback},
      {"migrate",
       "move a running instance's database here: follow the old host's server, then cut over", "",
       StartFlags({
           {"from", "CONNINFO",
            "the old host's server (a superuser; wal_level = logical, or replica with "
            "--physical)"},
           {"from-db", "NAME", "the old host's database"},
           {"from-password-file", "FILE", "the password of --from (never on the command line)"},
           {"from-agent", "NAME",
            "the old host's agent (in this agent's --peers-file): it stops the old app at the "
            "cut-over and starts it again if the migration is undone"},
           {"physical", "",
            "follow by physical replication: a base backup of the whole old cluster, run here "
            "as a standby and put in place of this host's cluster (same major and collation "
            "versions; a Debian cluster here)"},
           {"no-media", "", "with --from-agent: do not copy the old host's media"},
           {"media-bandwidth-limit", "RATE", "cap the media passes' reads (\"20M\": 20 MiB/s)"},
           {"media-pass-every", "DURATION",
            "another media pass this often while following (\"10m\"; default: none)"},
           {"database", "NAME", "the database here it replaces (default: the runtime's)"},
           {"target-conninfo", "CONNINFO", "PostgreSQL server here (default: the agent's)"},
           {"cutover-when-lag-below", "SIZE",
            "cut over without waiting for ops cutover once this close (\"1M\")"},
           {"ignore-source-sessions", "", "cut over even if the old app is still connected"},
           {"keep-following", "",
            "a cut-over that fails before the promotion (or the subscription's drop) starts "
            "the old app again and follows on, instead of removing the copy"},
           {"no-migrate", "", "skip the app's db:migrate after the cut-over"},
           {"no-feeds-build", "", "skip tootctl feeds build --all before the app starts"},
           {"leave-stopped", "", "leave the app stopped at the end"},
           {"drop-previous", "", "drop the database the migrated one replaces"},
       }),
       RunMigrate},
      {"verify", "check a database: tables, row counts, schema, indexes, sequences", "",
       StartFlags({
           {"database", "NAME", "the database to check"},
           {"expected", "SOURCE", "a backup whose dump gives the expected tables and rows"},
           {"max-age", "DAYS", "fail when the newest status is older"},
           {"check-secrets", "", "decrypt 2FA secrets with the --expected or host's env"},
           {"target-conninfo", "CONNINFO", "PostgreSQL server (default: the agent's)"},
       }),
       RunVerify},
      {"db-migrate",
       "run Mastodon's database migrations through the runtime, checked in schema_migrations", "",
       StartFlags({
           {"pre-deployment-only", "",
            "skip post-deployment migrations (SKIP_POST_DEPLOYMENT_...)"},
           {"post-deployment-only", "", "the rest, once the pre-deployment ones ran"},
       }),
       RunDbMigrate},
      {"cleanup", "tootctl preview_cards remove and media remove (cached remote media)", "",
       StartFlags({
           {"days", "N", "older than N days, both commands (default 1)"},
           {"preview-cards-days", "N", "preview cards older than N days"},
           {"media-days", "N", "media older than N days"},
           {"prune-profiles", "", "also remote avatars and headers"},
           {"remove-headers", "", "also remote headers"},
           {"include-follows", "", "also profiles of followed accounts"},
           {"concurrency", "N", "tootctl workers (default by cores: 1, 5 or 8)"},
       }),
       RunCleanup},
      {"media-refresh", "tootctl media refresh (and accounts refresh, feeds build)", "",
       StartFlags({
           {"days", "N", "media of the last N days"},
           {"account", "USER@DOMAIN", "media of one account"},
           {"domain", "DOMAIN", "media of one domain"},
           {"status", "ID", "media of one status"},
           {"force", "", "download again what is present"},
           {"accounts", "", "then tootctl accounts refresh --all (avatars, headers)"},
           {"feeds", "", "then tootctl feeds build --all"},
           {"concurrency", "N", "tootctl workers (default by cores: 1, 5 or 8)"},
       }),
       RunMediaRefresh},
      {"verify-backup",
       "prove a backup restores: restore into a scratch database, check it, drop it (CI)", "SOURCE",
       SourceFlags(
           {{"target-db", "NAME", "the scratch database (mastodon_verify_*; default: a new one)"},
            {"member", "PATH", "the dump inside the source when it holds several"},
            {"max-age", "DAYS", "fail when the newest status is older"},
            {"junit", "FILE", "write a JUnit XML report (one test case per check)"},
            {"local", "", "use a private agent (embedded PostgreSQL) even if one runs"}}),
       RunVerifyBackup},
      {"ops",
       "the agent's operations",
       "",
       {},
       nullptr,
       0,
       0,
       {
           {"list", "the agent's operations, one line each", "", {}, RunOpsList},
           {"show", "one operation: state, steps, result", "ID", {}, RunOpsShow},
           {"watch",
            "follow an operation until it ends",
            "ID",
            {{"from", "N", "first event sequence to show"}},
            RunOpsWatch},
           {"cancel", "ask the agent to cancel an operation", "ID", {}, RunOpsCancel},
           {"cutover", "ask a following migration to cut over now", "ID", {}, RunOpsCutOver},
       },
       "list"},
      {"app-hold",
       "holds another host's migration has on this host's app",
       "",
       {},
       nullptr,
       0,
       0,
       {
           {"list", "the holds on this host's app", "", {}, RunAppHoldList},
           {"release",
            "end a hold: start the app again (or keep it stopped for good)",
            "ID",
            {{"keep-stopped", "", "keep the app stopped: the instance moved away"}},
            RunAppHoldRelease},
       },
       "list"},
      {"help",
       "help on all commands, or on one (help ops watch)",
       "[COMMAND [SUBCOMMAND]]",
       {},
       RunHelp,
       0,
       2},
  };
  return *commands;
}

// The commands of `commands`, one aligned line each; a group's subcommands
// under its name ("ops list").
std::string CommandList(const std::vector<Command>& commands) {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const Command& c : commands) {
    if (c.subcommands.empty()) rows.emplace_back(c.name, c.summary);
    for (const Command& sub : c.subcommands) {
      rows.emplace_back(absl::StrCat(c.name, " ", sub.name), sub.summary);
    }
  }
  size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.first.size());
  std::string s;
  for (const auto& [name, summary] : rows) {
    absl::StrAppend(&s, "  ", name, std::string(width - name.size() + 2, ' '), summary, "\n");
  }
  return s;
}

// The help of the command (or group) at the end of `path`.
std::string CommandUsage(const std::vector<const Command*>& path) {
  const Command& c = *path.back();
  std::vector<std::string> names;
  for (const Command* p : path) names.push_back(p->name);
  const std::string name = absl::StrJoin(names, " ");
  if (!c.subcommands.empty()) {
    std::string s =
        absl::StrCat("usage: ", kProgram, " [global flags] ", name, " COMMAND [flags] [args]\n\n",
                     c.summary, "\n\ncommands:\n", CommandList(c.subcommands));
    if (c.default_subcommand != nullptr) {
      absl::StrAppend(&s, "\n'", name, "' alone runs '", name, " ", c.default_subcommand, "'.\n");
    }
    absl::StrAppend(&s, "\nRun '", kProgram, " ", name,
                    " COMMAND --help' for a command's flags.\n");
    return s;
  }
  std::string s =
      absl::StrCat("usage: ", kProgram, " [global flags] ", name, c.flags.empty() ? "" : " [flags]",
                   *c.positional ? absl::StrCat(" ", c.positional) : "", "\n\n", c.summary, "\n");
  std::vector<FlagSpec> flags = c.flags;
  flags.push_back({"help", "", "print this help and exit", false, 'h'});
  absl::StrAppend(&s, "\nflags:\n", FormatFlagHelp(flags), "\nGlobal flags (see '", kProgram,
                  " --help') may also come after the command.\n");
  return s;
}

int RunHelp(CommandContext& ctx) {
  std::vector<const Command*> path;
  const std::vector<Command>* table = &Commands();
  for (const std::string& name : ctx.args.positional()) {
    const Command* c = table != nullptr ? FindCommand(*table, name) : nullptr;
    if (c == nullptr) {
      return UsageError(ctx.streams,
                        absl::StrCat("no help on '", absl::StrJoin(ctx.args.positional(), " "),
                                     "': unknown command"));
    }
    path.push_back(c);
    table = c->subcommands.empty() ? nullptr : &c->subcommands;
  }
  Print(ctx.streams.out, path.empty() ? CliUsage() : CommandUsage(path));
  return kExitOk;
}

int UsageError(const CliStreams& streams, const std::string& message) {
  Print(streams.err,
        absl::StrCat(kProgram, ": error: ", message, "\n(see '", kProgram, " --help')\n"));
  return kExitUsage;
}

}  // namespace

std::string CliUsage() {
  return absl::StrCat("usage: ", kProgram, " [global flags] COMMAND [flags] [args]\n\n",
                      "Restores Mastodon instances through the mastodon-restore agent on this "
                      "host\n(or a remote one).\n\ncommands:\n",
                      CommandList(Commands()), "\nglobal flags:\n", FormatFlagHelp(GlobalFlags()),
                      "\nGlobal flags may also come after the command or between its arguments;\n"
                      "'--' ends the flags. Run '",
                      kProgram, " COMMAND --help' for a command's flags.\n", ExitCodeHelp());
}

const std::vector<FlagSpec>& CliGlobalFlags() { return GlobalFlags(); }
const std::vector<Command>& CliCommands() { return Commands(); }

int RunCli(const std::vector<std::string>& args, Env* env, const CliStreams& streams) {
  auto line = ParseCommandLine(args, GlobalFlags(), Commands());
  if (!line.ok()) return UsageError(streams, std::string(line.status().message()));
  const ParsedArgs& global = line->global;
  if (global.GetBool("version")) {
    Print(streams.out, absl::StrCat(kProgram, " ", MR_VERSION, " (", MR_GIT_COMMIT, ")\n"));
    return kExitOk;
  }
  if (line->help) {
    Print(streams.out, line->path.empty() ? CliUsage() : CommandUsage(line->path));
    return kExitOk;
  }
  if (line->path.empty()) {
    Print(streams.err, CliUsage());
    return kExitUsage;
  }
  const Command& command = *line->path.back();
  const std::string name = line->CommandName();
  const int min_args = command.min_args >= 0 ? command.min_args : (*command.positional ? 1 : 0);
  const int max_args = command.max_args >= 0 ? command.max_args : min_args;
  const int given = static_cast<int>(line->args.positional().size());
  if (given < min_args || given > max_args) {
    return UsageError(streams, max_args == 0 ? absl::StrCat(name, " takes no arguments")
                                             : absl::StrCat(name, " takes ", command.positional));
  }

  CommandContext ctx;
  ctx.env = env;
  ctx.streams = streams;
  ctx.json = global.GetBool("json");
  auto color = ParseColorMode(global.Get("color", "auto"));
  if (!color.ok()) return UsageError(streams, std::string(color.status().message()));
  ctx.color =
      !ctx.json && UseColor(*color, ::isatty(::fileno(streams.out)) != 0, std::getenv("NO_COLOR"));
  const char* env_agent = std::getenv("MASTODON_RESTORE_AGENT");
  ctx.agent.address =
      global.Get("agent", env_agent != nullptr && *env_agent ? env_agent : kDefaultSocket);
  ctx.agent_given = global.Has("agent") || (env_agent != nullptr && *env_agent);
  ctx.agent.tls_ca = global.Get("tls-ca");
  ctx.agent.tls_cert = global.Get("tls-cert");
  ctx.agent.tls_key = global.Get("tls-key");
  ctx.agent.plaintext = global.GetBool("plaintext");
  if (global.Has("token-file")) {
    auto token = env->ReadFile(global.Get("token-file"));
    if (!token.ok()) return UsageError(streams, std::string(token.status().message()));
    std::string t(absl::StripAsciiWhitespace(*token));
    if (t.empty()) return UsageError(streams, "the token file is empty");
    ctx.agent.token = t;
  }
  if (global.Has("timeout") && !absl::ParseDuration(global.Get("timeout"), &ctx.agent.timeout)) {
    return UsageError(streams, absl::StrCat("invalid --timeout '", global.Get("timeout"),
                                            "': expected e.g. 30s or 2m"));
  }
  ctx.args = line->args;
  return command.run(ctx);
}

}  // namespace mastodon_restore
