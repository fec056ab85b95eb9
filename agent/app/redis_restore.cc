#include "agent/app/redis_restore.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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
#include "agent/common/env.h"
#include "agent/common/failpoint.h"
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
    if (ctx.reporter != nullptr) ctx.reporter->Log(v1::SEVERITY_INFO, line, ctx.step);
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

// Puts the staged file in as the data file, keeping the data file there
// first (as `kept_name`); true when there was one to keep. Each rename is
// made once: a swap interrupted anywhere is completed by calling this
// again. FAILED_PRECONDITION, nothing renamed, when the data file and a
// kept file both exist (a Redis started by someone else since saved a file
// the swap would replace).
absl::StatusOr<bool> SwapInStaged(const Dir& data, const v1::RedisJournal& j) {
  absl::StatusOr<struct stat> file = data.Stat(j.file_name());
  if (file.ok()) {
    absl::StatusOr<struct stat> kept = data.Stat(j.kept_name());
    if (kept.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat(data.PathOf(j.file_name()), " and ", data.PathOf(j.kept_name()),
                       " both exist: not replacing either (", data.PathOf(j.staged_name()),
                       " holds the backup's dump)"));
    }
    if (!absl::IsNotFound(kept.status())) return kept.status();
    RETURN_IF_ERROR(data.Rename(j.file_name(), data, j.kept_name(), /*no_replace=*/true));
    RETURN_IF_ERROR(MR_FAILPOINT("redis.after_keep"));
  } else if (!absl::IsNotFound(file.status())) {
    return file.status();
  }
  RETURN_IF_ERROR(data.Rename(j.staged_name(), data, j.file_name(), /*no_replace=*/true));
  RETURN_IF_ERROR(data.Sync());
  return file.ok();
}

// After a failed swap: the kept file back in place when the data file is
// missing. True when it was put back.
absl::StatusOr<bool> PutKeptBack(const Dir& data, const v1::RedisJournal& j) {
  absl::StatusOr<struct stat> file = data.Stat(j.file_name());
  if (file.ok()) return false;
  if (!absl::IsNotFound(file.status())) return file.status();
  absl::StatusOr<struct stat> kept = data.Stat(j.kept_name());
  if (absl::IsNotFound(kept.status())) return false;
  RETURN_IF_ERROR(kept.status());
  RETURN_IF_ERROR(data.Rename(j.kept_name(), data, j.file_name(), /*no_replace=*/true));
  RETURN_IF_ERROR(data.Sync());
  return true;
}

bool Exists(const Dir& data, const std::string& name) {
  return !name.empty() && data.Stat(name).ok();
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
  // The journal names every file before it is made.
  v1::RedisJournal j;
  j.set_phase(v1::REDIS_PHASE_STAGING);
  j.set_data_dir(store.data_dir);
  j.set_file_name(store.file_name);
  ASSIGN_OR_RETURN(std::string staged,
                   UnpredictableTempName(absl::StrCat(store.file_name, ".restore")));
  j.set_staged_name(staged);
  j.set_kept_name(absl::StrCat(store.file_name, ".before-restore-", o.operation_id));
  auto journal = [&](v1::RedisPhase phase) {
    j.set_phase(phase);
    return o.journal ? o.journal(j) : absl::OkStatus();
  };
  auto drop_staged = [&] { (void)data.Unlink(staged); };
  RETURN_IF_ERROR(journal(v1::REDIS_PHASE_STAGING));
  absl::StatusOr<UniqueFd> temp = data.CreateFile(staged, 0600);
  if (!temp.ok()) {
    (void)journal(v1::REDIS_PHASE_UNSPECIFIED);
    return temp.status();
  }
  CopyMember copy(o.dump.path(), temp->get(), ctx.cancel);
  absl::Status walked = WalkSource(o.source_path, o.source, ctx.runner, &copy);
  if (walked.ok() && !copy.done()) {
    walked = absl::NotFoundError(absl::StrCat("'", o.dump.path(), "' is no longer in the source"));
  }
  if (walked.ok() && o.dump.size_bytes() > 0 && copy.bytes() != o.dump.size_bytes()) {
    walked =
        absl::DataLossError(absl::StrCat("'", o.dump.path(), "' changed since the inventory (",
                                         copy.bytes(), " bytes, was ", o.dump.size_bytes(), ")"));
  }
  if (walked.ok() && ::fsync(temp->get()) != 0) {
    walked = absl::ResourceExhaustedError(
        absl::StrCat("unable to sync the Redis dump: ", std::strerror(errno)));
  }
  if (walked.ok()) walked = data.SetOwner(staged, uid, gid);
  if (walked.ok()) walked = data.SetMode(staged, mode);
  if (walked.ok()) walked = data.Sync();
  if (walked.ok()) walked = MR_FAILPOINT("redis.after_stage");
  // From here on, recovery completes the swap.
  if (walked.ok()) walked = journal(v1::REDIS_PHASE_SWAPPING);
  if (!walked.ok()) {
    drop_staged();
    (void)journal(v1::REDIS_PHASE_UNSPECIFIED);
    return walked;
  }
  temp->Close();
  ctx.reporter->Log(v1::SEVERITY_INFO,
                    absl::StrCat("staged ", o.dump.path(), " (", copy.bytes(), " bytes, ",
                                 o.dump.keys(), " keys) beside ", out.data_file()),
                    ctx.step);

  // 2. Redis stopped (its shutdown save lands in the old file).
  absl::Status swapped = RunAll(store.stop, "stop", ctx);
  if (swapped.ok()) swapped = MR_FAILPOINT("redis.after_stop");
  // 3. The old file kept, the new one in place (a Redis that never saved
  // writes its file only now, at its shutdown).
  if (swapped.ok()) {
    absl::StatusOr<bool> kept = SwapInStaged(data, j);
    swapped = kept.status();
    if (kept.ok() && *kept) out.set_kept_as(data.PathOf(j.kept_name()));
  }
  if (swapped.ok()) swapped = MR_FAILPOINT("redis.after_rename");
  // A failure before the new file was in puts the old one back (once the
  // new one is in, Redis starts on it).
  if (!swapped.ok() && Exists(data, staged)) {
    (void)PutKeptBack(data, j);
    drop_staged();
  }
  // 4. Redis started again whatever happened, then asked until loaded.
  absl::Status started = RunAll(store.start, "start", ctx);
  // Redis runs on the old or the new file: nothing left to recover (when it
  // did not start, recovery starts it).
  if (started.ok()) RETURN_IF_ERROR(journal(v1::REDIS_PHASE_UNSPECIFIED));
  RETURN_IF_ERROR(swapped);
  RETURN_IF_ERROR(started);
  const absl::Time deadline = ctx.env->Now() + o.load_timeout;
  // A small dump loads at once: asked again after 100 ms, then less often.
  absl::Duration wait = std::min(o.interval, absl::Milliseconds(100));
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
    o.sleep(wait);
    wait = std::min(wait * 2, o.interval);
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

absl::StatusOr<std::vector<std::string>> RecoverRedisJournal(const v1::RedisJournal& j,
                                                             const Runtime* runtime,
                                                             const TaskContext& ctx) {
  for (const std::string* name : {&j.file_name(), &j.staged_name(), &j.kept_name()}) {
    RETURN_IF_ERROR(CheckComponent(*name));
  }
  ASSIGN_OR_RETURN(Dir data, Dir::OpenPath(j.data_dir()));
  std::vector<std::string> done;
  if (j.phase() == v1::REDIS_PHASE_STAGING) {
    if (Exists(data, j.staged_name())) {
      RETURN_IF_ERROR(data.Unlink(j.staged_name()));
      done.push_back(absl::StrCat("removed the staged Redis dump ", data.PathOf(j.staged_name())));
    }
    return done;
  }
  if (j.phase() != v1::REDIS_PHASE_SWAPPING) {
    return absl::FailedPreconditionError("the record does not say where the Redis restore stood");
  }
  if (runtime == nullptr) {
    return absl::FailedPreconditionError("the agent has no runtime to stop and start Redis with");
  }
  ASSIGN_OR_RETURN(RedisStore store, runtime->Redis());
  // A Redis still running would save over the file at its next shutdown.
  RETURN_IF_ERROR(RunAll(store.stop, "stop", ctx));
  if (Exists(data, j.staged_name())) {
    ASSIGN_OR_RETURN(bool kept, SwapInStaged(data, j));
    done.push_back(
        absl::StrCat("put the backup's Redis dump in place as ", data.PathOf(j.file_name()),
                     kept ? absl::StrCat(" (the old file kept as ", data.PathOf(j.kept_name()), ")")
                          : std::string()));
  } else {
    ASSIGN_OR_RETURN(bool put_back, PutKeptBack(data, j));
    if (put_back) {
      done.push_back(absl::StrCat("put the old Redis file back as ", data.PathOf(j.file_name())));
    }
  }
  RETURN_IF_ERROR(RunAll(store.start, "start", ctx));
  done.push_back(absl::StrCat("started Redis again (", store.source, ")"));
  return done;
}

}  // namespace mastodon_restore
