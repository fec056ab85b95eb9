#include "agent/app/embedded_runtime.h"

#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {

namespace v1 = mastodon::restore::v1;

absl::StatusOr<std::unique_ptr<EmbeddedRuntime>> EmbeddedRuntime::Start(const std::string& dir,
                                                                        CommandRunner* runner,
                                                                        Env* env) {
  std::unique_ptr<EmbeddedRuntime> runtime(new EmbeddedRuntime());
  runtime->dir_ = dir;
  LocalClusterOptions options;
  RETURN_IF_ERROR(RunAsUnprivilegedUserIfRoot(&options));
  RETURN_IF_ERROR(env->CreateDirs(dir, 0700, true));
  if (options.uid.has_value() &&
      ::chown(dir.c_str(), *options.uid, options.gid.value_or(static_cast<gid_t>(-1))) != 0) {
    return ErrnoError(errno, "hand over", dir);
  }
  options.base_dir = dir;
  options.port = 5432;         // fixed: the socket is private to `dir`
  options.listen_tcp = false;  // no network exposure
  options.start_timeout = absl::Minutes(2);
  auto cluster = LocalCluster::Start(options, runner, env);
  if (!cluster.ok()) {
    return absl::Status(cluster.status().code(),
                        absl::StrCat("embedded runtime: ", cluster.status().message()));
  }
  runtime->cluster_ = std::move(*cluster);
  return runtime;
}

EmbeddedRuntime::~EmbeddedRuntime() {
  if (cluster_ != nullptr) cluster_->Stop().IgnoreError();
}

v1::RuntimeInfo EmbeddedRuntime::Describe() const {
  v1::RuntimeInfo info;
  info.set_kind(v1::RUNTIME_KIND_EMBEDDED);
  info.set_requested("embedded");
  info.add_evidence(absl::StrCat("PostgreSQL ", cluster_->major_version(),
                                 " cluster owned by the agent in ", dir_));
  info.add_evidence(
      absl::StrCat("socket ", cluster_->socket_dir(), "/.s.PGSQL.", cluster_->port()));
  return info;
}

}  // namespace mastodon_restore
