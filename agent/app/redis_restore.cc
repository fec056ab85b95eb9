#include "agent/app/redis_restore.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "agent/archive/sniff.h"
#include "agent/common/dir.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace v1 = ::mastodon::restore::v1;
namespace {

// Copies the one file of the source at `path` into `out`.
class CopyMember : public SourceVisitor {
 public:
  CopyMember(std::string path, int out, const CancelToken* cancel)
      : path_(std::move(path)), out_(out), cancel_(cancel) {}

  Action OnFile(const SourceFile& file, ContentKind kind) override {
    if (file.path == path_ && !done_) return Action::kRead;
    return IsArchive(kind) ? Action::kDescend : Action::kSkip;
  }
  absl::Status OnData(const SourceFile& file, ContentKind, ByteStream* data) override {
    std::vector<char> buf(256 << 10);
    for (;;) {
      if (cancel_ != nullptr && cancel_->cancelled()) return absl::CancelledError("cancelled");
      ASSIGN_OR_RETURN(size_t n, data->Read(buf.data(), buf.size()));
      if (n == 0) break;
      for (size_t off = 0; off < n;) {
        ssize_t w = ::write(out_, buf.data() + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
          return absl::ResourceExhaustedError(
              absl::StrCat("unable to write the Redis dump: ", std::strerror(errno)));
        }
        off += static_cast<size_t>(w);
      }
      bytes_ += static_cast<int64_t>(n);
    }
    done_ = true;
    (void)file;
    return absl::OkStatus();
  }
  void OnOther(const SourceFile&, const std::string&) override {}
  bool Done() const override { return done_; }
  bool RawFile(const SourceFile& file) const override { return file.path == path_; }

  bool done() const { return done_; }
  int64_t bytes() const { return bytes_; }

 private:
  const std::string path_;
  const int out_;
  const CancelToken* cancel_;
  bool done_ = false;
  int64_t bytes_ = 0;
};

absl::Status RunAll(const std::vector<CommandSpec>& specs, const std::string& what,
                    const TaskContext& ctx) {
  for (const CommandSpec& spec : specs) {
    const std::string line = absl::StrJoin(spec.argv, " ");
    ctx.reporter->Log(v1::SEVERITY_INFO, line, ctx.step);
    // Not cancellable: a Redis left half-stopped is worse than a late cancel.
    ASSIGN_OR_RETURN(CommandResult r, ctx.runner->Run(spec, nullptr));
    if (!r.success()) {
      std::string err(absl::StripAsciiWhitespace(r.stderr_text));
      return absl::UnknownError(absl::StrCat("unable to ", what, " Redis ('", line,
                                             "'): ", r.Describe(), err.empty() ? "" : ": ", err));
    }
  }
  return absl::OkStatus();
}

// INFO of the store's Redis, over TCP or through its command.
absl::StatusOr<RedisInfo> AskRedis(const RedisStore& store, RedisProber* prober,
                                   const TaskContext& ctx) {
  if (!store.info_command.has_value()) return prober->Info(store.address, absl::Seconds(10));
  ASSIGN_OR_RETURN(CommandResult r, ctx.runner->Run(*store.info_command, nullptr));
  if (!r.success()) {
    return absl::UnavailableError(absl::StrCat(absl::StrJoin(store.info_command->argv, " "), ": ",
                                               r.Describe(), ": ",
                                               absl::StripAsciiWhitespace(r.stderr_text)));
  }
  return ParseRedisInfo(r.stdout_text);
}

}  // namespace

absl::StatusOr<v1::RedisRestore> RestoreRedisDump(const Runtime& runtime,
                                                  const RedisRestoreOptions& o,
                                                  const TaskContext& ctx) {
  if (!o.dump.error().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("'", o.dump.path(), "' cannot be restored: ", o.dump.error()));
  }
  ASSIGN_OR_RETURN(RedisStore store, runtime.Redis());
  std::unique_ptr<RedisProber> own_prober;
  RedisProber* prober = o.prober;
  if (prober == nullptr) {
    own_prober = NewTcpRedisProber();
    prober = own_prober.get();
  }
  v1::RedisRestore out;
  out.set_source_path(o.dump.path());
  ASSIGN_OR_RETURN(Dir data, Dir::OpenPath(store.data_dir));
  out.set_data_file(data.PathOf(store.file_name));
  out.set_keys_expected(o.dump.keys() - o.dump.expired_keys());

  // 1. The dump beside Redis's file, with that file's owner and mode.
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  mode_t mode = 0640;
  absl::StatusOr<struct stat> old = data.Stat(store.file_name);
  if (old.ok()) {
    if (!S_ISREG(old->st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat(out.data_file(), " is not a regular file: not replaced"));
    }
    uid = old->st_uid;
    gid = old->st_gid;
    mode = old->st_mode & 0660;
  } else if (absl::IsNotFound(old.status())) {
    ASSIGN_OR_RETURN(struct stat dir, data.StatSelf());
    uid = dir.st_uid;
    gid = dir.st_gid;
  } else {
    return old.status();
  }
  ASSIGN_OR_RETURN(TempFile temp, data.CreateTemp(absl::StrCat(store.file_name, ".restore"), 0600));
  auto drop_temp = [&] { (void)data.Unlink(temp.name); };
  CopyMember copy(o.dump.path(), temp.fd.get(), ctx.cancel);
  absl::Status walked = WalkSource(o.source_path, o.source, ctx.runner, &copy);
  if (walked.ok() && !copy.done()) {
    walked = absl::NotFoundError(absl::StrCat("'", o.dump.path(), "' is no longer in the source"));
  }
  if (walked.ok() && o.dump.size_bytes() > 0 && copy.bytes() != o.dump.size_bytes()) {
    walked =
        absl::DataLossError(absl::StrCat("'", o.dump.path(), "' changed since the inventory (",
                                         copy.bytes(), " bytes, was ", o.dump.size_bytes(), ")"));
  }
  if (walked.ok() && ::fsync(temp.fd.get()) != 0) {
    walked = absl::ResourceExhaustedError(
        absl::StrCat("unable to sync the Redis dump: ", std::strerror(errno)));
  }
  if (walked.ok()) walked = data.SetOwner(temp.name, uid, gid);
  if (walked.ok()) walked = data.SetMode(temp.name, mode);
  if (!walked.ok()) {
    drop_temp();
    return walked;
  }
  temp.fd.Close();
  ctx.reporter->Log(v1::SEVERITY_INFO,
                    absl::StrCat("staged ", o.dump.path(), " (", copy.bytes(), " bytes, ",
                                 o.dump.keys(), " keys) beside ", out.data_file()),
                    ctx.step);

  // 2. Redis stopped (its shutdown save lands in the old file).
  if (absl::Status stopped = RunAll(store.stop, "stop", ctx); !stopped.ok()) {
    drop_temp();
    return stopped;
  }
  // 3. The old file kept, the new one in place.
  // A Redis that never saved writes its file only now, at its shutdown.
  absl::StatusOr<struct stat> saved = data.Stat(store.file_name);
  absl::Status swapped =
      saved.ok() || absl::IsNotFound(saved.status()) ? absl::OkStatus() : saved.status();
  if (swapped.ok() && saved.ok()) {
    const std::string kept = absl::StrCat(store.file_name, ".before-restore-", o.operation_id);
    swapped = data.Rename(store.file_name, data, kept, /*no_replace=*/true);
    if (swapped.ok()) out.set_kept_as(data.PathOf(kept));
  }
  if (swapped.ok()) swapped = data.Rename(temp.name, data, store.file_name, /*no_replace=*/false);
  if (swapped.ok()) swapped = data.Sync();
  // 4. Redis started again whatever happened, then asked until loaded.
  absl::Status started = RunAll(store.start, "start", ctx);
  if (!swapped.ok()) {
    drop_temp();
    return swapped;
  }
  RETURN_IF_ERROR(started);
  const absl::Time deadline = ctx.env->Now() + o.load_timeout;
  absl::StatusOr<RedisInfo> info = absl::UnavailableError("not asked");
  for (;;) {
    info = AskRedis(store, prober, ctx);
    if (info.ok() && !info->loading) break;
    // A refused password or an address that is not one does not mend
    // itself by waiting.
    if (absl::IsPermissionDenied(info.status()) || absl::IsInvalidArgument(info.status())) {
      return absl::Status(info.status().code(),
                          absl::StrCat("Redis was restarted with the dump but cannot be asked "
                                       "what it loaded: ",
                                       info.status().message()));
    }
    if (ctx.env->Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "Redis did not finish loading ", out.data_file(), " within ",
          absl::FormatDuration(o.load_timeout), ": ",
          info.ok() ? std::string("still loading") : std::string(info.status().message())));
    }
    if (ctx.cancel != nullptr && ctx.cancel->cancelled()) {
      return absl::CancelledError("cancelled while Redis was loading its dump");
    }
    o.sleep(o.interval);
  }
  out.set_keys_loaded(info->keys);
  // Keys with an expiry may lapse between the inventory and the load.
  const int64_t may_lapse = o.dump.keys_with_expiry() - o.dump.expired_keys();
  if (info->keys > out.keys_expected() || info->keys < out.keys_expected() - may_lapse) {
    return absl::DataLossError(absl::StrCat("Redis loaded ", info->keys, " keys from ",
                                            out.data_file(), "; the dump holds ",
                                            out.keys_expected()));
  }
  return out;
}

}  // namespace mastodon_restore
