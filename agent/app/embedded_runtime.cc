#include "agent/app/embedded_runtime.h"

#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {

namespace v1 = mastodon::restore::v1;

absl::StatusOr<std::unique_ptr<EmbeddedRuntime>> EmbeddedRuntime::Start(
    const std::string& dir, const std::string& media_dir, CommandRunner* runner, Env* env) {
  std::unique_ptr<EmbeddedRuntime> runtime(new EmbeddedRuntime());
  runtime->dir_ = dir;
  runtime->media_dir_ = media_dir;
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
  runtime->evidence_.push_back(absl::StrCat("PostgreSQL ", runtime->cluster_->major_version(),
                                            " cluster owned by the agent in ", dir));
  runtime->evidence_.push_back(absl::StrCat("socket ", runtime->cluster_->socket_dir(),
                                            "/.s.PGSQL.", runtime->cluster_->port()));
  return runtime;
}

EmbeddedRuntime::~EmbeddedRuntime() {
  if (cluster_ != nullptr) cluster_->Stop().IgnoreError();
}

absl::StatusOr<AppDatabase> EmbeddedRuntime::Database() const {
  return AppDatabase{cluster_->ConnInfo(), "", ""};
}

absl::StatusOr<MediaLocation> EmbeddedRuntime::Media() const {
  if (media_dir_.empty()) {
    return absl::FailedPreconditionError(
        "the embedded runtime has no media directory: start the agent with --media-dir");
  }
  MediaLocation media;
  media.dir = media_dir_;
  return media;
}

absl::StatusOr<CommandSpec> EmbeddedRuntime::Tootctl(const std::vector<std::string>&) const {
  return absl::FailedPreconditionError(
      "the embedded runtime runs no Mastodon app: tootctl needs the snap, compose or systemd "
      "runtime");
}

absl::StatusOr<CommandSpec> EmbeddedRuntime::DbMigrate(bool) const {
  return absl::FailedPreconditionError(
      "the embedded runtime runs no Mastodon app: db migrate needs the snap, compose or systemd "
      "runtime");
}

}  // namespace mastodon_restore
