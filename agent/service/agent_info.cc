#include "agent/service/agent_info.h"

#include <archive.h>
#include <grpcpp/grpcpp.h>
#include <libpq-fe.h>

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/app/app_tasks.h"
#include "agent/common/build_info.h"
#include "agent/database/local_cluster.h"
#include "agent/database/pg_probe.h"
#include "agent/jobs/targets.h"
#include "google/protobuf/stubs/common.h"

namespace mastodon_restore {

namespace v1 = mastodon::restore::v1;

const std::vector<std::string>& AgentCapabilities() {
  static const std::vector<std::string>* caps = new std::vector<std::string>{
      "agent_info",    "health",   "reflection", "detect",      "inspect",    "restore_database",
      "restore_media", "rollback", "verify",     "operations",  "db_migrate", "media_refresh",
      "cleanup",       "migrate",  "app_hold",   "media_export"};
  return *caps;
}

std::string FormatPostgresVersion(int version_num) {
  if (version_num >= 100000) {
    return absl::StrCat(version_num / 10000, ".", version_num % 10000);
  }
  return absl::StrCat(version_num / 10000, ".", (version_num / 100) % 100, ".", version_num % 100);
}

namespace {

// libarchive's version and those of the compression libraries it was built
// with, as archive_version_details() says them; that function leaks its
// buffer on every call and races when called concurrently, so the string is
// composed here from the per-library functions (NULL: not built with it).
std::string LibarchiveVersion() {
  std::string out = archive_version_string();
  const std::pair<const char*, const char*> parts[] = {{"zlib", archive_zlib_version()},
                                                       {"liblzma", archive_liblzma_version()},
                                                       {"bz2lib", archive_bzlib_version()},
                                                       {"liblz4", archive_liblz4_version()},
                                                       {"libzstd", archive_libzstd_version()}};
  for (const auto& [name, version] : parts) {
    if (version != nullptr) absl::StrAppend(&out, " ", name, "/", version);
  }
  return out;
}

}  // namespace

v1::GetAgentInfoResponse BuildAgentInfo(const AgentConfig& config, Env* env, absl::Time start_time,
                                        const v1::RuntimeInfo* in_use) {
  v1::GetAgentInfoResponse info;

  v1::BuildInfo* build = info.mutable_build();
  build->set_version(MR_VERSION);
  build->set_commit(MR_GIT_COMMIT);
  build->set_build_type(MR_BUILD_TYPE);
  build->set_compiler(MR_COMPILER);
  build->set_grpc_version(grpc::Version());
  build->set_protobuf_version(google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION));
  build->set_libarchive_version(LibarchiveVersion());

  v1::HostInfo* host = info.mutable_host();
  host->set_hostname(env->Hostname());
  host->set_state_dir(config.state_dir);
  if (auto free_bytes = env->FreeBytes(config.state_dir); free_bytes.ok()) {
    host->set_state_dir_free_bytes(*free_bytes);
  }
  host->set_cpus(env->Cpus());
  MemoryInfo memory = env->Memory();
  host->set_memory_total_bytes(memory.total_bytes);
  host->set_memory_available_bytes(memory.available_bytes);
  for (const std::string& root : config.allowed_roots) host->add_allowed_roots(root);

  // The runtime as the service found it; none when not given.
  v1::RuntimeInfo* runtime = info.mutable_runtime();
  if (in_use != nullptr) {
    *runtime = *in_use;
  } else {
    runtime->set_kind(v1::RUNTIME_KIND_NONE);
  }
  if (runtime->requested().empty()) runtime->set_requested(config.runtime);
  if (!config.media_dir.empty() && runtime->media_dir().empty()) {
    runtime->set_media_dir(config.media_dir);
    if (auto free_bytes = env->FreeBytes(config.media_dir); free_bytes.ok()) {
      runtime->set_media_dir_free_bytes(*free_bytes);
    }
  }

  v1::PostgresInfo* pg = info.mutable_postgres();
  pg->set_client_version(FormatPostgresVersion(PQlibVersion()));
  for (int major : InstalledPostgresVersions(env, kDefaultPostgresRoot, "pg_restore")) {
    pg->add_pg_restore_versions(major);
  }
  pg->set_server_error("no target server configured");

  for (const std::string& cap : AgentCapabilities()) info.add_capabilities(cap);
  info.mutable_start_time()->set_seconds(absl::ToUnixSeconds(start_time));
  return info;
}

v1::GetAgentInfoResponse DescribeAgent(const AgentConfig& config, const JobEnv& jobs,
                                       absl::Time start_time) {
  const RuntimeContext* context = jobs.runtime;
  v1::RuntimeInfo runtime;
  if (jobs.app_runtime() != nullptr) {
    runtime = DescribeRuntime(*jobs.app_runtime(), context->requested, jobs.env);
  } else {
    runtime.set_kind(v1::RUNTIME_KIND_NONE);
    runtime.set_requested(context != nullptr ? context->requested : config.runtime);
    if (context != nullptr) {
      for (const std::string& c : context->checked) runtime.add_evidence(c);
    }
  }
  v1::GetAgentInfoResponse response = BuildAgentInfo(config, jobs.env, start_time, &runtime);
  // The server restores go to by default, if the agent has one.
  auto conninfo = TargetConnInfo(v1::DatabaseTarget(), jobs);
  if (conninfo.ok()) {
    auto version = ProbeServerVersion(*conninfo);
    v1::PostgresInfo* pg = response.mutable_postgres();
    if (version.ok()) {
      pg->set_server_version(FormatPostgresVersion(*version));
      pg->clear_server_error();
    } else {
      pg->set_server_error(std::string(version.status().message()));
    }
  }
  // The schema version of the live Mastodon database the runtime names.
  if (std::optional<AppDatabase> db = RuntimeDatabaseFor(v1::DatabaseTarget(), jobs);
      db.has_value() && !db->database.empty()) {
    auto schema = ReadSchemaVersion(*db, jobs.pg);
    if (schema.ok()) response.mutable_runtime()->set_schema_version(*schema);
  }
  return response;
}

}  // namespace mastodon_restore
