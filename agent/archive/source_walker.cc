#include "agent/archive/source_walker.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/archive/archive_reader.h"
#include "agent/archive/path_rules.h"
#include "agent/common/env.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

std::vector<std::string> ToolEnv(const std::string& home) {
  return {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C.UTF-8", "HOME=" + home};
}

std::string Basename(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool MentionsEncryption(absl::string_view message) {
  return absl::StrContains(message, "encrypted") || absl::StrContains(message, "Encrypted");
}

// A temporary GnuPG home, removed (and its agent stopped) on destruction.
class GpgHome {
 public:
  explicit GpgHome(CommandRunner* runner) : runner_(runner) {}
  ~GpgHome() {
    if (dir_.empty()) return;
    CommandSpec kill;
    kill.argv = {"gpgconf", "--homedir", dir_, "--kill", "gpg-agent"};
    kill.env = ToolEnv(dir_);
    kill.timeout = absl::Seconds(10);
    runner_->Run(kill, nullptr).IgnoreError();
    CommandSpec rm;
    rm.argv = {"rm", "-rf", "--", dir_};
    rm.env = ToolEnv("/");
    runner_->Run(rm, nullptr).IgnoreError();
  }
  absl::Status Create() {
    char templ[] = "/tmp/mastodon-restore-gpg.XXXXXX";
    if (::mkdtemp(templ) == nullptr) return ErrnoError(errno, "create", "GnuPG home");
    dir_ = templ;
    return absl::OkStatus();
  }
  const std::string& dir() const { return dir_; }

 private:
  CommandRunner* runner_;
  std::string dir_;
};

// Fetches a bucket's objects ahead of the one reading them: up to
// `parallel` requests at once, each object of at most kSmallObject bytes
// whole into memory (at most kAheadBytes and 4 x `parallel` objects held
// ahead of the reader), larger ones left to be streamed when their turn
// comes. With `parallel` <= 1 nothing is fetched ahead.
class ObjectPrefetcher {
 public:
  static constexpr int64_t kSmallObject = 8 << 20;
  static constexpr int64_t kAheadBytes = 64 << 20;

  ObjectPrefetcher(const ObjectStore& store, std::vector<StoredObject> objects, int parallel)
      : store_(store), objects_(std::move(objects)), slots_(objects_.size()) {
    window_ = static_cast<size_t>(std::max(1, parallel)) * 4;
    const int threads = std::min<int>(parallel, static_cast<int>(objects_.size()));
    for (int i = 0; parallel > 1 && i < threads; ++i) workers_.emplace_back([this] { Work(); });
  }
  ~ObjectPrefetcher() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : workers_) t.join();
  }
  ObjectPrefetcher(const ObjectPrefetcher&) = delete;
  ObjectPrefetcher& operator=(const ObjectPrefetcher&) = delete;

  // The content of the `i`-th object; each is taken once, in order.
  absl::StatusOr<std::unique_ptr<ByteStream>> Take(size_t i) {
    if (workers_.empty()) return store_.Open(objects_[i]);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock,
             [&] { return slots_[i].state == Slot::kReady || slots_[i].state == Slot::kLater; });
    taken_ = i + 1;
    Slot slot = std::move(slots_[i]);
    slots_[i] = Slot();
    if (slot.state == Slot::kReady) held_ -= objects_[i].size;
    lock.unlock();
    cv_.notify_all();
    if (slot.state == Slot::kLater) return store_.Open(objects_[i]);
    RETURN_IF_ERROR(slot.status);
    return std::unique_ptr<ByteStream>(
        new StringStream(std::move(slot.data), store_.Describe(objects_[i].key)));
  }

 private:
  struct Slot {
    enum State { kWaiting, kFetching, kReady, kLater } state = kWaiting;
    std::string data;
    absl::Status status;
  };

  void Work() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_ && next_ < objects_.size()) {
      const size_t i = next_;
      const int64_t size = objects_[i].size;
      if (size > kSmallObject) {
        slots_[i].state = Slot::kLater;
        ++next_;
        cv_.notify_all();
        continue;
      }
      // Not too far ahead of the reader, in objects and in bytes (the next
      // object the reader wants is always fetched).
      if (i > taken_ && (i >= taken_ + window_ || held_ + size > kAheadBytes)) {
        cv_.wait(lock);
        continue;
      }
      ++next_;
      held_ += size;
      slots_[i].state = Slot::kFetching;
      lock.unlock();
      std::string data;
      absl::Status status = Fetch(objects_[i], &data);
      lock.lock();
      slots_[i].data = std::move(data);
      slots_[i].status = std::move(status);
      slots_[i].state = Slot::kReady;
      cv_.notify_all();
    }
  }

  absl::Status Fetch(const StoredObject& object, std::string* data) {
    ASSIGN_OR_RETURN(std::unique_ptr<ByteStream> stream, store_.Open(object));
    // The listed size (and one byte more, which the stream refuses anyway:
    // it checks the size it was listed with), never more memory.
    return ReadUpTo(stream.get(), static_cast<size_t>(std::max<int64_t>(0, object.size)) + 1, data);
  }

  const ObjectStore& store_;
  const std::vector<StoredObject> objects_;
  std::vector<std::thread> workers_;
  size_t window_ = 4;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot> slots_;
  size_t next_ = 0;   // the next object a worker claims
  size_t taken_ = 0;  // the reader's next object
  int64_t held_ = 0;  // bytes claimed or held ahead of the reader
  bool stop_ = false;
};

class Walker {
 public:
  Walker(const SourceOptions& options, CommandRunner* runner, SourceVisitor* visitor)
      : options_(options), runner_(runner), visitor_(visitor) {}

  absl::Status WalkPath(const std::string& path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, "open source", path);
    if (S_ISDIR(st.st_mode)) {
      root_containers_.push_back("directory");
      std::set<std::pair<dev_t, ino_t>> stack;
      return WalkDirectory(path, "", &stack);
    }
    if (!S_ISREG(st.st_mode)) {
      return UnableTo(absl::StatusCode::kInvalidArgument, "open source", path,
                      "not a regular file or directory");
    }
    // Opened once, refusing a symlink swapped in since the path was checked;
    // everything after reads this descriptor.
    ASSIGN_OR_RETURN(std::unique_ptr<FileStream> file, FileStream::OpenResolved(path));
    SourceFile f;
    f.path = Basename(path);
    f.display = path;
    f.stored_size = static_cast<int64_t>(st.st_size);
    f.mtime = static_cast<int64_t>(st.st_mtime);
    f.mode = static_cast<uint32_t>(st.st_mode & 07777);
    return WalkStream(file.get(), f, 0, /*root_level=*/true, file.get(), path);
  }

  // The objects of a bucket below a prefix, as the files of a directory:
  // keys that end in "/" (folder markers) are passed over, unsafe keys
  // ("../x", "a//b") reported as such. Page by page: the visitor first says
  // which of the page's opaque files (RawFile) it reads, those are fetched
  // ahead, several at once (options_.bucket_parallel), and handed over in
  // key order; any other object is walked as a file is, opened lazily, so
  // an object the visitor skips is never fetched.
  absl::Status WalkBucket(const ObjectStore& bucket, const std::string& prefix) {
    root_containers_.push_back("bucket");
    struct Item {
      SourceFile file;
      StoredObject object;
      bool raw = false;  // read as opaque data, fetched ahead
    };
    std::string page;
    do {
      RETURN_IF_ERROR(CheckCancel());
      ASSIGN_OR_RETURN(ObjectPage listed, bucket.List(prefix, page));
      std::vector<Item> items;
      std::vector<StoredObject> ahead;
      for (StoredObject& object : listed.objects) {
        if (visitor_->Done()) return absl::OkStatus();
        if (!absl::StartsWith(object.key, prefix) || absl::EndsWith(object.key, "/")) continue;
        Item item;
        item.file.path = object.key.substr(prefix.size());
        item.file.display = bucket.Describe(object.key);
        item.file.stored_size = object.size;
        item.file.mtime = object.mtime;
        item.file.etag = object.etag;
        item.file.sha256 = object.sha256;
        absl::StatusOr<std::string> normalized = NormalizeEntryPath(item.file.path);
        if (!normalized.ok() || *normalized != item.file.path) {
          visitor_->OnOther(item.file, absl::StrCat("unsafe entry name (",
                                                    normalized.ok() ? "not in its normal form"
                                                                    : normalized.status().message(),
                                                    ")"));
          continue;
        }
        if (visitor_->RawFile(item.file)) {
          if (visitor_->OnFile(item.file, ContentKind::kBinary) != SourceVisitor::Action::kRead) {
            continue;
          }
          item.raw = true;
          ahead.push_back(object);
        }
        item.object = std::move(object);
        items.push_back(std::move(item));
      }
      ObjectPrefetcher prefetcher(bucket, std::move(ahead), options_.bucket_parallel);
      size_t taken = 0;
      for (const Item& item : items) {
        if (visitor_->Done()) return absl::OkStatus();
        RETURN_IF_ERROR(CheckCancel());
        if (item.raw) {
          ASSIGN_OR_RETURN(std::unique_ptr<ByteStream> data, prefetcher.Take(taken++));
          RETURN_IF_ERROR(visitor_->OnData(item.file, ContentKind::kBinary, data.get()));
          continue;
        }
        ASSIGN_OR_RETURN(std::unique_ptr<ByteStream> stream, bucket.Open(item.object));
        RETURN_IF_ERROR(WalkStream(stream.get(), item.file, 0, false, nullptr, ""));
      }
      page = listed.next;
    } while (!page.empty() && !visitor_->Done());
    return absl::OkStatus();
  }

  std::vector<std::string> root_containers_;

 private:
  absl::Status CheckCancel() {
    if (options_.cancel != nullptr && options_.cancel->cancelled()) {
      return absl::CancelledError("walk of the backup source cancelled");
    }
    return absl::OkStatus();
  }

  absl::Status WalkDirectory(const std::string& dir, const std::string& rel,
                             std::set<std::pair<dev_t, ino_t>>* stack) {
    RETURN_IF_ERROR(CheckCancel());
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0) return ErrnoError(errno, "open directory", dir);
    auto key = std::make_pair(st.st_dev, st.st_ino);
    if (stack->count(key) != 0) {
      return UnableTo(absl::StatusCode::kInvalidArgument, "walk", dir,
                      absl::StrCat("symlink loop: '", rel, "' leads back to a directory above it"));
    }
    stack->insert(key);
    ASSIGN_OR_RETURN(std::vector<std::string> names, ListResolvedDirectory(dir));
    for (const std::string& name : names) {
      if (visitor_->Done()) break;
      std::string abs = absl::StrCat(dir, "/", name);
      std::string child_rel = rel.empty() ? name : absl::StrCat(rel, "/", name);
      struct stat lst;
      if (::lstat(abs.c_str(), &lst) != 0) return ErrnoError(errno, "stat", abs);
      std::string target = abs;
      if (S_ISLNK(lst.st_mode)) {
        char buf[PATH_MAX];
        if (::realpath(abs.c_str(), buf) == nullptr) {
          if (errno == ELOOP) {
            return UnableTo(absl::StatusCode::kInvalidArgument, "walk", abs, "symlink loop");
          }
          SourceFile f;
          f.path = child_rel;
          f.display = abs;
          visitor_->OnOther(f, "dangling symlink");
          continue;
        }
        target = buf;
        bool allowed = false;
        for (const std::string& root : options_.allowed_roots) {
          char rbuf[PATH_MAX];
          std::string real_root = ::realpath(root.c_str(), rbuf) != nullptr ? rbuf : root;
          allowed = allowed || IsWithin(target, real_root);
        }
        if (!allowed) {
          return UnableTo(absl::StatusCode::kPermissionDenied, "follow symlink", abs,
                          absl::StrCat("it leads to '", target, "', outside the allowed roots"));
        }
        if (::stat(target.c_str(), &lst) != 0) return ErrnoError(errno, "stat", target);
      }
      if (S_ISDIR(lst.st_mode)) {
        RETURN_IF_ERROR(WalkDirectory(target, child_rel, stack));
      } else if (S_ISREG(lst.st_mode)) {
        ASSIGN_OR_RETURN(std::unique_ptr<FileStream> file, FileStream::OpenResolved(target));
        SourceFile f;
        f.path = child_rel;
        f.display = abs;
        f.stored_size = static_cast<int64_t>(lst.st_size);
        f.mtime = static_cast<int64_t>(lst.st_mtime);
        f.mode = static_cast<uint32_t>(lst.st_mode & 07777);
        RETURN_IF_ERROR(WalkStream(file.get(), f, 0, false, file.get(), target));
      } else {
        SourceFile f;
        f.path = child_rel;
        f.display = abs;
        visitor_->OnOther(f, "special file (device, fifo or socket)");
      }
    }
    stack->erase(key);
    return absl::OkStatus();
  }

  absl::Status WalkStream(ByteStream* stream, SourceFile file, int depth, bool root_level,
                          FileStream* disk, const std::string& disk_path) {
    RETURN_IF_ERROR(CheckCancel());
    if (depth > options_.max_depth) {
      return UnableTo(absl::StatusCode::kInvalidArgument, "read", file.display,
                      absl::StrCat("containers nested more than ", options_.max_depth, " deep"));
    }
    if (!root_level && visitor_->RawFile(file)) {
      SourceFile leaf = file;
      leaf.disk_file = file.containers.empty() ? disk : nullptr;
      if (visitor_->OnFile(leaf, ContentKind::kBinary) == SourceVisitor::Action::kRead) {
        RETURN_IF_ERROR(visitor_->OnData(leaf, ContentKind::kBinary, stream));
      }
      return absl::OkStatus();
    }
    std::string head;
    RETURN_IF_ERROR(ReadUpTo(stream, kSniffBytes, &head));
    ContentKind kind = Sniff(head);
    // Inside a backup, only files named like encrypted files are decrypted:
    // binary data can look like an OpenPGP packet.
    if ((kind == ContentKind::kOpenPgp || kind == ContentKind::kAge) && !root_level &&
        !absl::EndsWith(file.path, ".gpg") && !absl::EndsWith(file.path, ".pgp") &&
        !absl::EndsWith(file.path, ".asc") && !absl::EndsWith(file.path, ".age")) {
      kind = ContentKind::kBinary;
    }
    ReplayStream replay(head, stream);

    if (IsCompression(kind)) {
      ASSIGN_OR_RETURN(std::unique_ptr<ArchiveReader> reader,
                       ArchiveReader::OpenStream(&replay, options_.passphrase, true));
      // The format (raw stream or archive) is known once a header is read.
      ASSIGN_OR_RETURN(std::optional<ArchiveEntry> entry, reader->Next());
      std::vector<std::string> filters = reader->filters();
      if (filters.empty()) filters.push_back(ContentKindName(kind));
      if (reader->is_raw() || !entry.has_value()) {
        SourceFile inner = file;
        for (const std::string& f : filters) {
          inner.containers.push_back(f);
          inner.path = StripLayerSuffix(inner.path, f);
          if (root_level) root_containers_.push_back(f);
        }
        if (!entry.has_value()) {
          StringStream empty("", file.display);
          return WalkStream(&empty, inner, depth + 1, root_level, nullptr, "");
        }
        return WalkStream(reader->data(), inner, depth + 1, root_level, nullptr, "");
      }
      SourceFile archive = file;
      for (const std::string& f : filters) archive.containers.push_back(f);
      if (root_level) {
        for (const std::string& f : filters) root_containers_.push_back(f);
        root_containers_.push_back("tar");
      } else if (visitor_->OnFile(archive, ContentKind::kTar) != SourceVisitor::Action::kDescend) {
        return absl::OkStatus();
      }
      return WalkArchive(reader.get(), archive, depth + 1, root_level, std::move(entry));
    }

    switch (kind) {
      case ContentKind::kTar:
      case ContentKind::kZip: {
        if (root_level) {
          root_containers_.push_back(ContentKindName(kind));
        } else {
          SourceVisitor::Action action = visitor_->OnFile(file, kind);
          if (action == SourceVisitor::Action::kRead) return visitor_->OnData(file, kind, &replay);
          if (action != SourceVisitor::Action::kDescend) return absl::OkStatus();
        }
        std::unique_ptr<ArchiveReader> reader;
        if (disk != nullptr) {
          ASSIGN_OR_RETURN(reader, ArchiveReader::OpenDescriptor(disk->fd(), disk_path,
                                                                 options_.passphrase, false));
        } else {
          ASSIGN_OR_RETURN(reader, ArchiveReader::OpenStream(&replay, options_.passphrase, false));
        }
        return WalkArchive(reader.get(), file, depth + 1, root_level);
      }
      case ContentKind::kSevenZip:
        return WalkSevenZip(file, depth, root_level, disk, disk_path);
      case ContentKind::kAge:
      case ContentKind::kOpenPgp:
        return WalkEncrypted(kind, file, depth, root_level, disk);
      default: {
        SourceFile leaf = file;
        leaf.disk_file = file.containers.empty() ? disk : nullptr;
        SourceVisitor::Action action = visitor_->OnFile(leaf, kind);
        if (action == SourceVisitor::Action::kRead) {
          RETURN_IF_ERROR(visitor_->OnData(leaf, kind, &replay));
        }
        return absl::OkStatus();
      }
    }
  }

  // Visits the entries of `reader`; `first` is an entry already read.
  absl::Status WalkArchive(ArchiveReader* reader, const SourceFile& parent, int depth,
                           bool root_level, std::optional<ArchiveEntry> first = std::nullopt) {
    while (!visitor_->Done()) {
      RETURN_IF_ERROR(CheckCancel());
      std::optional<ArchiveEntry> entry = std::move(first);
      first.reset();
      if (!entry.has_value()) {
        ASSIGN_OR_RETURN(entry, reader->Next());
      }
      if (!entry.has_value()) break;
      if (entry->is_dir) continue;  // "./" and friends: nothing to read
      SourceFile child;
      child.display = absl::StrCat(parent.display, "!/", entry->path);
      child.stored_size = entry->size_known ? entry->size : -1;
      child.mtime = entry->mtime;
      child.mode = entry->mode;
      auto normalized = NormalizeEntryPath(entry->path);
      if (!normalized.ok()) {
        child.path = entry->path;
        visitor_->OnOther(child,
                          absl::StrCat("unsafe entry name (", normalized.status().message(), ")"));
        continue;
      }
      child.path = root_level ? *normalized : absl::StrCat(parent.path, "/", *normalized);
      if (entry->is_dir) continue;
      if (entry->is_hardlink) {
        visitor_->OnOther(child, absl::StrCat("hard link to '", entry->link_target, "'"));
        continue;
      }
      if (entry->is_symlink) {
        visitor_->OnOther(child, absl::StrCat("symlink to '", entry->link_target, "'"));
        continue;
      }
      if (entry->is_special || !entry->is_regular) {
        visitor_->OnOther(child, "special file (device, fifo or socket)");
        continue;
      }
      RETURN_IF_ERROR(WalkStream(reader->data(), child, depth, false, nullptr, ""));
    }
    return absl::OkStatus();
  }

  absl::Status WalkSevenZip(const SourceFile& file, int depth, bool root_level, FileStream* disk,
                            const std::string& disk_path) {
    if (disk == nullptr) {
      visitor_->OnOther(file,
                        "7z archive inside another container (7z needs a seekable file: "
                        "extract it first)");
      return absl::OkStatus();
    }
    if (root_level) {
      root_containers_.push_back("7z");
    } else if (visitor_->OnFile(file, ContentKind::kSevenZip) != SourceVisitor::Action::kDescend) {
      return absl::OkStatus();
    }
    // libarchive reads plain 7z; encrypted 7z goes through the 7z program.
    bool encrypted = false;
    {
      ASSIGN_OR_RETURN(std::unique_ptr<ArchiveReader> probe,
                       ArchiveReader::OpenDescriptor(disk->fd(), disk_path, "", false));
      auto first = probe->Next();
      if (!first.ok()) {
        if (!MentionsEncryption(first.status().message())) return first.status();
        encrypted = true;
      } else if (first->has_value() && (*first)->encrypted) {
        encrypted = true;
      }
    }
    if (!encrypted) {
      ASSIGN_OR_RETURN(std::unique_ptr<ArchiveReader> reader,
                       ArchiveReader::OpenDescriptor(disk->fd(), disk_path, "", false));
      return WalkArchive(reader.get(), file, depth + 1, root_level);
    }
    if (options_.passphrase.empty()) {
      return UnableTo(absl::StatusCode::kFailedPrecondition, "read", file.display,
                      "the 7z archive is encrypted: give its password");
    }
    return WalkSevenZipProgram(file, depth, root_level, disk);
  }

  // Lists an encrypted 7z with the 7z program, then streams each file with
  // "7z x -so"; the password goes to 7z's prompt on stdin, never on argv.
  // The archive is handed to 7z as the descriptor the walk opened
  // (/proc/self/fd/3, type forced: the name says nothing), never its path.
  absl::Status WalkSevenZipProgram(const SourceFile& parent, int depth, bool root_level,
                                   FileStream* disk) {
    CommandSpec list;
    list.argv = {"7z", "l", "-t7z", "-slt", "-ba", "-sccUTF-8", "--", PassedFdPath(0)};
    list.pass_fds = {disk->fd()};
    list.env = ToolEnv("/");
    list.stdin_data = options_.passphrase + "\n";
    list.timeout = absl::Minutes(10);
    auto listed = runner_->Run(list, options_.cancel);
    if (!listed.ok()) {
      return UnableTo(absl::StatusCode::kFailedPrecondition, "read", parent.display,
                      absl::StrCat("encrypted 7z needs the 7z program (install 7zip): ",
                                   listed.status().message()));
    }
    if (!listed->success()) {
      std::string err =
          std::string(absl::StripAsciiWhitespace(listed->stderr_text + listed->stdout_text));
      bool wrong = absl::StrContains(err, "Wrong password");
      return UnableTo(
          absl::StatusCode::kInvalidArgument, "read", parent.display,
          wrong ? "wrong password" : absl::StrCat("7z ", listed->Describe(), ": ", err));
    }
    struct Item {
      std::string path;
      int64_t size = -1;
      bool dir = false;
    };
    std::vector<Item> items;
    Item current;
    auto flush = [&]() {
      if (!current.path.empty()) items.push_back(current);
      current = Item();
    };
    for (absl::string_view line : absl::StrSplit(listed->stdout_text, '\n')) {
      line = absl::StripTrailingAsciiWhitespace(line);
      if (line.empty()) {
        flush();
      } else if (absl::ConsumePrefix(&line, "Path = ")) {
        flush();
        current.path = std::string(line);
      } else if (absl::ConsumePrefix(&line, "Size = ")) {
        absl::SimpleAtoi(line, &current.size);
      } else if (absl::ConsumePrefix(&line, "Folder = ")) {
        current.dir = current.dir || line == "+";
      } else if (absl::ConsumePrefix(&line, "Attributes = ")) {
        current.dir = current.dir || absl::StartsWith(line, "D");
      }
    }
    flush();
    for (const Item& item : items) {
      if (visitor_->Done()) break;
      RETURN_IF_ERROR(CheckCancel());
      if (item.dir) continue;
      SourceFile child;
      child.display = absl::StrCat(parent.display, "!/", item.path);
      child.stored_size = item.size;
      auto normalized = NormalizeEntryPath(item.path);
      if (!normalized.ok()) {
        child.path = item.path;
        visitor_->OnOther(child,
                          absl::StrCat("unsafe entry name (", normalized.status().message(), ")"));
        continue;
      }
      child.path = root_level ? *normalized : absl::StrCat(parent.path, "/", *normalized);
      CommandSpec extract;
      extract.argv = {"7z",        "x",  "-t7z",          "-so",    "-bd",
                      "-sccUTF-8", "--", PassedFdPath(0), item.path};
      extract.pass_fds = {disk->fd()};
      extract.env = ToolEnv("/");
      extract.stdin_data = options_.passphrase + "\n";
      ASSIGN_OR_RETURN(std::unique_ptr<ByteStream> data,
                       runner_->StartReading(extract, "extract from encrypted 7z"));
      absl::Status walked = WalkStream(data.get(), child, depth + 1, false, nullptr, "");
      if (!walked.ok() && absl::StrContains(walked.message(), "Wrong password")) {
        return UnableTo(absl::StatusCode::kInvalidArgument, "read", child.display,
                        "wrong password");
      }
      RETURN_IF_ERROR(walked);
    }
    return absl::OkStatus();
  }

  absl::Status WalkEncrypted(ContentKind kind, const SourceFile& file, int depth, bool root_level,
                             FileStream* disk) {
    const bool age = kind == ContentKind::kAge;
    const std::string layer = age ? "age" : "openpgp";
    if (disk == nullptr) {
      visitor_->OnOther(file, absl::StrCat(age ? "age" : "OpenPGP",
                                           "-encrypted file inside another container: decrypt it "
                                           "first"));
      return absl::OkStatus();
    }
    std::unique_ptr<GpgHome> gpg_home;
    CommandSpec cmd;
    if (age) {
      if (options_.age_identity_file.empty()) {
        return UnableTo(absl::StatusCode::kFailedPrecondition, "decrypt", file.display,
                        "age-encrypted: give an age identity file (passphrase-encrypted age "
                        "files need a terminal and are not supported)");
      }
      cmd.argv = {"age", "--decrypt", "-i", options_.age_identity_file, PassedFdPath(0)};
      cmd.env = ToolEnv("/");
    } else {
      if (options_.passphrase.empty() && options_.gpg_key_file.empty()) {
        return UnableTo(absl::StatusCode::kFailedPrecondition, "decrypt", file.display,
                        "OpenPGP-encrypted: give the passphrase or a secret key file");
      }
      gpg_home = std::make_unique<GpgHome>(runner_);
      RETURN_IF_ERROR(gpg_home->Create());
      if (!options_.gpg_key_file.empty()) {
        CommandSpec import;
        import.argv = {"gpg",
                       "--batch",
                       "--quiet",
                       "--homedir",
                       gpg_home->dir(),
                       "--import",
                       options_.gpg_key_file};
        import.env = ToolEnv(gpg_home->dir());
        import.timeout = absl::Minutes(1);
        ASSIGN_OR_RETURN(CommandResult imported, runner_->Run(import, options_.cancel));
        if (!imported.success()) {
          return UnableTo(absl::StatusCode::kInvalidArgument, "import key", options_.gpg_key_file,
                          absl::StrCat("gpg ", imported.Describe(), ": ",
                                       absl::StripAsciiWhitespace(imported.stderr_text)));
        }
      }
      cmd.argv = {"gpg",           "--batch",         "--quiet",  "--no-tty",        "--homedir",
                  gpg_home->dir(), "--pinentry-mode", "loopback", "--passphrase-fd", "0",
                  "--decrypt",     PassedFdPath(0)};
      cmd.env = ToolEnv(gpg_home->dir());
      cmd.stdin_data = options_.passphrase + "\n";
    }
    // The source goes to the program as the descriptor the walk opened.
    cmd.pass_fds = {disk->fd()};
    auto decrypted = runner_->StartReading(cmd, "decrypt");
    if (!decrypted.ok()) {
      return UnableTo(
          absl::StatusCode::kFailedPrecondition, "decrypt", file.display,
          absl::StrCat("needs the ", cmd.argv[0], " program: ", decrypted.status().message()));
    }
    SourceFile inner = file;
    inner.containers.push_back(layer);
    inner.path = StripLayerSuffix(inner.path, layer);
    if (root_level) root_containers_.push_back(layer);
    absl::Status walked = WalkStream(decrypted->get(), inner, depth + 1, root_level, nullptr, "");
    if (!walked.ok() && walked.code() == absl::StatusCode::kInvalidArgument &&
        (absl::StrContains(walked.message(), "Bad session key") ||
         absl::StrContains(walked.message(), "no identity matched") ||
         absl::StrContains(walked.message(), "No secret key"))) {
      return UnableTo(absl::StatusCode::kInvalidArgument, "decrypt", file.display,
                      absl::StrCat("wrong passphrase or key: ", walked.message()));
    }
    return walked;
  }

  const SourceOptions& options_;
  CommandRunner* runner_;
  SourceVisitor* visitor_;
};

}  // namespace

std::string StripLayerSuffix(const std::string& path, const std::string& layer) {
  struct Rule {
    const char* layer;
    const char* suffix;
    const char* replacement;
  };
  static const Rule kRules[] = {
      {"gzip", ".tgz", ".tar"},  {"gzip", ".gz", ""},       {"bzip2", ".tbz2", ".tar"},
      {"bzip2", ".tbz", ".tar"}, {"bzip2", ".bz2", ""},     {"xz", ".txz", ".tar"},
      {"xz", ".xz", ""},         {"zstd", ".tzst", ".tar"}, {"zstd", ".zst", ""},
      {"zstd", ".zstd", ""},     {"lz4", ".lz4", ""},       {"age", ".age", ""},
      {"openpgp", ".gpg", ""},   {"openpgp", ".pgp", ""},   {"openpgp", ".asc", ""},
  };
  for (const Rule& r : kRules) {
    if (layer == r.layer && absl::EndsWith(path, r.suffix) && path.size() > strlen(r.suffix)) {
      return absl::StrCat(path.substr(0, path.size() - strlen(r.suffix)), r.replacement);
    }
  }
  return path;
}

absl::Status WalkSource(const std::string& path, const SourceOptions& options,
                        CommandRunner* runner, SourceVisitor* visitor,
                        std::vector<std::string>* root_containers) {
  Walker walker(options, runner, visitor);
  absl::Status status = options.bucket != nullptr
                            ? walker.WalkBucket(*options.bucket, options.bucket_prefix)
                            : walker.WalkPath(path);
  if (root_containers != nullptr) *root_containers = walker.root_containers_;
  return status;
}

std::string WalkedPath(std::string display_path) {
  size_t bang = display_path.find("!/");
  while (bang != std::string::npos) {
    display_path.replace(bang, 2, "/");
    bang = display_path.find("!/");
  }
  return display_path;
}

}  // namespace mastodon_restore
