#include "agent/inventory/inspector.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/app/env_file.h"
#include "agent/app/redis_dump.h"
#include "agent/archive/media_tree.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"
#include "agent/dump/detector.h"

namespace mastodon_restore {
namespace {

namespace v1 = mastodon::restore::v1;

constexpr size_t kMaxUnknown = 200;
constexpr size_t kMaxWarnings = 50;
constexpr size_t kLargestFiles = 10;
constexpr size_t kMaxEnvBytes = 1 << 20;

std::string Basename(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string Dirname(const std::string& path) {
  size_t slash = path.find_last_of('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

bool IsDataFileName(const std::string& name) {
  if (!absl::EndsWith(name, ".dat") || name.size() <= 4) return false;
  for (size_t i = 0; i + 4 < name.size(); ++i) {
    if (!absl::ascii_isdigit(name[i])) return false;
  }
  return true;
}

bool IsBlobFileName(const std::string& name) {
  return absl::StartsWith(name, "blob_") ||
         (absl::StartsWith(name, "blobs") && absl::EndsWith(name, ".toc"));
}

v1::Compression CompressionFor(const std::string& layer) {
  if (layer == "gzip") return v1::COMPRESSION_GZIP;
  if (layer == "bzip2") return v1::COMPRESSION_BZIP2;
  if (layer == "xz" || layer == "lzma") return v1::COMPRESSION_XZ;
  if (layer == "zstd") return v1::COMPRESSION_ZSTD;
  if (layer == "lz4") return v1::COMPRESSION_LZ4;
  return v1::COMPRESSION_UNSPECIFIED;
}

// "media.tar.gz/media" -> "media.tar.gz!/media": a root as shown.
std::string ShownMediaRoot(std::string root) {
  for (const char* ext : {".tar.gz/", ".tgz/", ".tar/", ".tar.zst/", ".tar.xz/"}) {
    size_t at = root.find(ext);
    if (at != std::string::npos) root.replace(at + strlen(ext) - 1, 1, "!/");
  }
  return root;
}

struct MediaStats {
  int64_t files = 0, bytes = 0, cache_files = 0, cache_bytes = 0;
  std::set<std::string> folders;
  std::vector<std::pair<int64_t, std::string>> largest;  // kept sorted, largest first
};

// Parts of a tar- or directory-format dump found under one directory.
struct SplitDump {
  explicit SplitDump(const DetectOptions& o) : assembler(o) {}
  SplitDumpAssembler assembler;
  bool has_data = false;
  std::string data_suffix;
  std::vector<std::string> data_files;
};

// `member` without its compression and encryption suffixes.
std::string StripAllLayers(std::string p) {
  for (int i = 0; i < 4; ++i) {
    for (const char* layer : {"gzip", "bzip2", "xz", "zstd", "lz4", "age", "openpgp"}) {
      p = StripLayerSuffix(p, layer);
    }
  }
  return p;
}

// A dump at `path` is the one a request names as `member`.
bool IsMember(const std::string& path, const std::string& member) {
  return path == member || StripAllLayers(member) == path;
}

class Inspector : public SourceVisitor {
 public:
  Inspector(const InspectOptions& options, bool detect_mode, std::string member)
      : options_(options), detect_mode_(detect_mode), member_(std::move(member)) {
    detect_.deep = options.deep;
    detect_.progress = options.progress;
  }

  Action OnFile(const SourceFile& file, ContentKind kind) override {
    ++files_seen_;
    NoteTop(file.path);
    const std::string base = Basename(file.path);
    const std::string dir = Dirname(file.path);
    if (IsArchive(kind)) return Action::kDescend;
    switch (kind) {
      case ContentKind::kPlainDump:
      case ContentKind::kPlainDumpall:
      case ContentKind::kPgCustom:
        return WantDump(file.path) ? Action::kRead : Action::kSkip;
      case ContentKind::kTarRestoreScript:
        if (base == "restore.sql") {
          Split(dir).assembler.SawRestoreScript();
          return Action::kSkip;
        }
        return WantDump(file.path) ? Action::kRead : Action::kSkip;
      case ContentKind::kPgTocDat:
        return Action::kRead;
      default:
        break;
    }
    if (base == "toc.dat") return Action::kRead;  // reported as broken when read
    if (IsDataFileName(base)) {
      SplitDump& split = Split(dir);
      split.has_data = true;
      if (!file.containers.empty()) {
        split.data_suffix = file.containers.back() == "gzip"  ? ".gz"
                            : file.containers.back() == "lz4" ? ".lz4"
                                                              : ".zst";
      }
      split.data_files.push_back(file.path);
      return options_.deep ? Action::kRead : Action::kSkip;
    }
    if (IsBlobFileName(base)) return Action::kSkip;
    if (base == ".env.production" || base == "mastodon.conf" || base == ".env") {
      return Action::kRead;
    }
    if (base == "version" || base == "settings") return Action::kRead;
    if (auto media = MediaPlaceOf(file.path); media.has_value()) {
      AddMedia(*media, file);
      return Action::kSkip;
    }
    known_markers_.insert(file.path);
    // A Redis dump: read to the end, its keys counted (the restore's redis
    // step checks them against what Redis loads).
    if (base == "redis.rdb" || base == "dump.rdb") {
      if (detect_mode_) return Action::kSkip;
      if (redis_.has_value()) {
        Warn(absl::StrCat("several Redis dumps: using '", redis_->path(), "', ignoring '",
                          file.path, "'"));
        return Action::kSkip;
      }
      redis_.emplace();
      redis_->set_path(file.path);
      return Action::kRead;
    }
    // Files a backup carries that the restore does not need to read.
    if (absl::StartsWith(file.path, "certs/") || absl::StrContains(file.path, "/certs/") ||
        base == "docker-compose.yml" || base == "docker-compose.yaml" || base == "compose.yml" ||
        base == "compose.yaml") {
      return Action::kSkip;
    }
    AddUnknown(file);
    return Action::kSkip;
  }

  absl::Status OnData(const SourceFile& file, ContentKind kind, ByteStream* data) override {
    const std::string base = Basename(file.path);
    if (redis_.has_value() && file.path == redis_->path()) return ReadRedisDump(data);
    if (kind == ContentKind::kPgTocDat || base == "toc.dat") {
      SplitDump& split = Split(Dirname(file.path));
      return split.assembler.AddTocDat(data);
    }
    if (IsDataFileName(base)) {
      return Split(Dirname(file.path)).assembler.AddDataFile(base, data);
    }
    if (kind == ContentKind::kPlainDump || kind == ContentKind::kPlainDumpall ||
        kind == ContentKind::kPgCustom || kind == ContentKind::kTarRestoreScript) {
      return DetectOne(file, kind, data);
    }
    if (base == "version" || base == "settings") {
      std::string text;
      RETURN_IF_ERROR(ReadUpTo(data, 4096, &text));
      if (base == "version") versions_[file.path] = std::string(absl::StripAsciiWhitespace(text));
      known_markers_.insert(file.path);
      return absl::OkStatus();
    }
    // Env file.
    std::string text;
    RETURN_IF_ERROR(ReadUpTo(data, kMaxEnvBytes + 1, &text));
    if (text.size() > kMaxEnvBytes) {
      Warn(absl::StrCat("'", file.path, "' is larger than 1 MiB: not read as an env file"));
      return absl::OkStatus();
    }
    if (env_.has_value()) {
      Warn(absl::StrCat("several env files: using '", env_path_, "', ignoring '", file.path, "'"));
      return absl::OkStatus();
    }
    env_ = ParseEnvFile(text);
    env_text_ = text;
    env_path_ = file.path;
    return absl::OkStatus();
  }

  void OnOther(const SourceFile& file, const std::string& what) override {
    NoteTop(file.path);
    Warn(absl::StrCat("'", file.display, "': ", what, " (ignored)"));
  }

  bool Done() const override { return detect_mode_ && !member_.empty() && found_member_; }
  // Media are counted as stored, never unwrapped.
  // Media, and the large objects of a directory-format dump (blob_<oid>.dat
  // with any compression): nothing to detect in them, and an empty large
  // object is an empty compressed stream, which libarchive cannot open.
  bool RawFile(const SourceFile& file) const override {
    if (MediaPlaceOf(file.path).has_value()) return true;
    const std::string base = StripAllLayers(Basename(file.path));
    return absl::StartsWith(base, "blob_") && absl::EndsWith(base, ".dat") &&
           base.find_first_not_of("0123456789", 5) == base.size() - 4;
  }

  // Completes the manifest after the walk.
  absl::StatusOr<v1::BackupManifest> Finish(const std::string& source,
                                            const std::vector<std::string>& containers) {
    v1::BackupManifest m;
    m.set_source(source);
    for (const std::string& c : containers) m.add_containers(c);
    RETURN_IF_ERROR(FinishSplitDumps(source));
    std::string db_name;
    if (env_.has_value()) {
      *m.mutable_env_file() = SummarizeEnvFile(*env_, env_path_);
      if (const std::string* v = env_->Find("DB_NAME")) db_name = *v;
    }
    for (v1::DumpInfo& d : dumps_) {
      if (!db_name.empty()) ApplyDbName(db_name, &d);
      AddCompatibilityNotes(options_.target_major, options_.pg_restore_majors, &d);
      *m.add_dumps() = d;
    }
    // Layout, on paths without a single common top directory.
    const std::string prefix = CommonPrefix();
    auto rel = [&](const std::string& p) {
      return absl::StartsWith(p, prefix) ? p.substr(prefix.size()) : p;
    };
    bool has_version = false, has_compose = false, has_media_archive = false;
    for (const auto& [path, text] : versions_) {
      if (rel(path) == "version") {
        has_version = true;
        m.set_mastodon_version(text);
      }
    }
    for (const std::string& p : known_markers_) {
      std::string r = rel(p);
      if (r == "docker-compose.yml" || r == "docker-compose.yaml" || r == "compose.yml" ||
          r == "compose.yaml") {
        has_compose = true;
      }
    }
    for (const auto& [root, stats] : media_) {
      if (absl::StartsWith(rel(root), "media.tar")) has_media_archive = true;
    }
    FillMedia(&m);
    const bool has_env = env_.has_value();
    const bool snap_conf = has_env && Basename(env_path_) == "mastodon.conf";
    bool root_dump_named_database_sql = false;
    for (const v1::DumpInfo& d : dumps_) {
      root_dump_named_database_sql |= rel(d.path()) == "database.sql";
    }
    v1::BackupLayout layout = v1::BACKUP_LAYOUT_UNKNOWN;
    if ((has_version && root_dump_named_database_sql) || (snap_conf && has_media_archive)) {
      layout = v1::BACKUP_LAYOUT_SNAP_EXPORT;
    } else if (has_compose) {
      layout = v1::BACKUP_LAYOUT_DOCKER_COMPOSE;
    } else if (has_env && (!dumps_.empty() || !media_.empty())) {
      layout = v1::BACKUP_LAYOUT_SOURCE_INSTALL;
    } else if (dumps_.size() == 1 && !has_env && media_.empty()) {
      layout = v1::BACKUP_LAYOUT_LONE_DUMP;
    }
    m.set_layout(layout);
    if (dumps_.empty()) m.add_warnings("no PostgreSQL dump found");
    if (!has_env && layout != v1::BACKUP_LAYOUT_LONE_DUMP) {
      m.add_warnings(
          "no env file (.env.production or mastodon.conf): secrets must come from the host");
    }
    if (redis_.has_value()) *m.mutable_redis() = *redis_;
    for (const std::string& u : unknown_) {
      v1::UnknownEntry* e = m.add_unknown_entries();
      e->set_path(u);
      e->set_size_bytes(unknown_sizes_[u]);
    }
    if (unknown_dropped_ > 0) {
      m.add_warnings(absl::StrCat(unknown_dropped_, " more unknown files not listed"));
    }
    for (const std::string& w : warnings_) m.add_warnings(w);
    return m;
  }

  // The env file as read ("" when there is none).
  const std::string& env_text() const { return env_text_; }

  // A non-secret setting of the env file ("" when absent).
  std::string env_value(const std::string& key) const {
    if (!env_.has_value()) return "";
    const std::string* v = env_->Find(key);
    return v != nullptr ? *v : "";
  }

 private:
  bool WantDump(const std::string& path) {
    if (!detect_mode_ || member_.empty()) return true;
    if (IsMember(path, member_)) {
      found_member_ = true;
      return true;
    }
    return false;
  }

  absl::Status DetectOne(const SourceFile& file, ContentKind kind, ByteStream* data) {
    v1::DumpInfo info;
    if (kind == ContentKind::kPgCustom) {
      ASSIGN_OR_RETURN(info, DetectCustomDump(data, detect_));
    } else {
      std::string tail;
      bool tail_known = false;
      if (file.disk_file != nullptr && !options_.deep) {
        auto size = file.disk_file->Size();
        if (size.ok()) {
          int64_t from = std::max<int64_t>(0, *size - 4096);
          auto t = file.disk_file->ReadAt(from, static_cast<size_t>(*size - from));
          if (t.ok()) {
            tail = *t;
            tail_known = true;
          }
        }
      }
      ASSIGN_OR_RETURN(info, DetectPlainDump(data, detect_, tail_known, tail));
    }
    info.set_path(file.path);
    for (const std::string& layer : file.containers) {
      v1::Compression c = CompressionFor(layer);
      if (c != v1::COMPRESSION_UNSPECIFIED) info.add_outer_compression(c);
    }
    if (file.stored_size >= 0) info.set_stored_size_bytes(file.stored_size);
    if (info.size_bytes() == 0 && file.containers.empty() && file.stored_size > 0) {
      info.set_size_bytes(file.stored_size);
    }
    dumps_.push_back(std::move(info));
    return absl::OkStatus();
  }

  SplitDump& Split(const std::string& dir) {
    auto it = splits_.find(dir);
    if (it == splits_.end()) it = splits_.emplace(dir, std::make_unique<SplitDump>(detect_)).first;
    return *it->second;
  }

  absl::Status FinishSplitDumps(const std::string& source) {
    for (auto& [dir, split] : splits_) {
      if (!split->assembler.has_toc()) {
        for (const std::string& f : split->data_files) {
          if (unknown_.size() < kMaxUnknown) unknown_.push_back(f);
        }
        continue;
      }
      std::string path = dir.empty() ? Basename(source) : dir;
      if (detect_mode_ && !member_.empty()) {
        if (!IsMember(path, member_)) continue;
        found_member_ = true;
      }
      ASSIGN_OR_RETURN(v1::DumpInfo info, split->assembler.Finish(path, split->data_suffix));
      dumps_.push_back(std::move(info));
    }
    splits_.clear();
    return absl::OkStatus();
  }

  void ApplyDbName(const std::string& db_name, v1::DumpInfo* d) {
    if (d->kind() != v1::DUMP_KIND_CLUSTER) return;
    const v1::ClusterDatabase* match = nullptr;
    for (const v1::ClusterDatabase& db : d->databases()) {
      if (db.name() == db_name) match = &db;
    }
    if (match == nullptr) {
      d->add_warnings(absl::StrCat("DB_NAME '", db_name,
                                   "' of the env file is not among the "
                                   "dump's databases"));
      return;
    }
    d->set_mastodon_database(match->name());
    d->set_encoding(match->encoding());
    d->set_locale(match->locale());
    for (v1::ClusterDatabase& db : *d->mutable_databases())
      db.set_is_mastodon(db.name() == db_name);
  }

  void AddMedia(const MediaPlace& place, const SourceFile& file) {
    MediaStats& s = media_[place.root];
    int64_t size = std::max<int64_t>(0, file.stored_size);
    ++s.files;
    s.bytes += size;
    s.folders.insert(place.folder);
    if (place.folder == "cache") {
      ++s.cache_files;
      s.cache_bytes += size;
    }
    if (s.largest.size() < kLargestFiles || size > s.largest.back().first) {
      s.largest.emplace_back(size, file.path);
      std::sort(s.largest.begin(), s.largest.end(),
                [](const auto& a, const auto& b) { return a.first > b.first; });
      if (s.largest.size() > kLargestFiles) s.largest.pop_back();
    }
  }

  // The media trees, the one taken (or why none is) in `m`.
  void FillMedia(v1::BackupManifest* m) const {
    if (media_.empty()) return;
    std::vector<const std::pair<const std::string, MediaStats>*> trees;
    for (const auto& entry : media_) trees.push_back(&entry);
    std::stable_sort(trees.begin(), trees.end(), [](const auto* a, const auto* b) {
      return a->second.files > b->second.files;
    });
    v1::MediaInventory* inv = m->mutable_media();
    std::vector<std::string> listed;
    const std::pair<const std::string, MediaStats>* taken = nullptr;
    for (const auto* t : trees) {
      v1::MediaTree* tree = inv->add_trees();
      tree->set_root(ShownMediaRoot(t->first));
      tree->set_files(t->second.files);
      tree->set_bytes(t->second.bytes);
      for (const std::string& f : t->second.folders) tree->add_folders(f);
      const std::string shown = tree->root().empty() ? "." : tree->root();
      listed.push_back(absl::StrCat(shown, " (", t->second.files, " files)"));
      if (!options_.media_tree.empty() &&
          (options_.media_tree == shown || options_.media_tree == t->first)) {
        taken = t;
      }
    }
    if (!options_.media_tree.empty() && taken == nullptr) {
      inv->set_conflict(absl::StrCat("no media tree at '", options_.media_tree,
                                     "' in the backup; its trees: ", absl::StrJoin(listed, ", ")));
      return;
    }
    if (taken == nullptr && trees.size() > 1) {
      inv->set_conflict(absl::StrCat("the backup holds several media trees: ",
                                     absl::StrJoin(listed, ", "), ": name one with --media-tree"));
      return;
    }
    if (taken == nullptr) taken = trees.front();
    const std::string& root = taken->first;
    const MediaStats& s = taken->second;
    inv->set_root(ShownMediaRoot(root));
    inv->set_files(s.files);
    inv->set_bytes(s.bytes);
    inv->set_includes_cache(s.cache_files > 0);
    inv->set_cache_files(s.cache_files);
    inv->set_cache_bytes(s.cache_bytes);
    for (const auto& [size, path] : s.largest) {
      v1::MediaFile* f = inv->add_largest_files();
      f->set_path(path);
      f->set_size_bytes(size);
    }
    std::vector<std::string> folders;
    for (const std::string& f : s.folders) folders.push_back(f + "/");
    const bool fixed = IsFixedMediaRoot(root);
    inv->set_root_reason(absl::StrCat(
        trees.size() == 1 ? "the only tree of Mastodon's media folders ("
                          : "named by --media-tree; it holds Mastodon's media folders (",
        absl::StrJoin(folders, ", "), ") ",
        root.empty() ? std::string("at the top of the source")
        : fixed      ? absl::StrCat("under ", root, "/")
                     : absl::StrCat("under ", root,
                                    "/, recognised by the shape of its paths (Paperclip's "
                                         "<folder>/<attachment>/<id>/.../<file>)")));
  }

  void AddUnknown(const SourceFile& file) {
    if (unknown_.size() >= kMaxUnknown) {
      ++unknown_dropped_;
      return;
    }
    unknown_.push_back(file.path);
    unknown_sizes_[file.path] = file.stored_size;
  }

  // Counts the keys of the Redis dump; a file that is not one (or that the
  // reader cannot size) is reported in the manifest, not fatal.
  absl::Status ReadRedisDump(ByteStream* data) {
    CountingStream counted(data);
    absl::StatusOr<RdbSummary> rdb = SummarizeRdb(&counted, options_.now);
    // The checksum after the end marker, and whatever follows: the size is
    // the file's, which the restore compares with what it copies.
    char rest[4096];
    for (absl::StatusOr<size_t> n = counted.Read(rest, sizeof(rest)); n.ok() && *n > 0;
         n = counted.Read(rest, sizeof(rest))) {
    }
    redis_->set_size_bytes(counted.count());
    if (!rdb.ok()) {
      if (absl::IsCancelled(rdb.status())) return rdb.status();
      redis_->set_error(std::string(rdb.status().message()));
      Warn(absl::StrCat("'", redis_->path(),
                        "' is not a Redis dump that can be restored: ", rdb.status().message()));
      return absl::OkStatus();
    }
    redis_->set_rdb_version(rdb->version);
    redis_->set_keys(rdb->keys);
    redis_->set_expired_keys(rdb->expired);
    redis_->set_keys_with_expiry(rdb->with_expiry);
    return absl::OkStatus();
  }

  void Warn(const std::string& w) {
    if (warnings_.size() < kMaxWarnings) warnings_.push_back(w);
  }

  void NoteTop(const std::string& path) {
    size_t slash = path.find('/');
    if (slash == std::string::npos) {
      tops_.insert(path);
      top_has_file_ = true;
    } else {
      tops_.insert(path.substr(0, slash));
    }
  }

  // "dir/" when every path starts with the one directory "dir".
  std::string CommonPrefix() const {
    if (tops_.size() != 1 || top_has_file_) return "";
    return *tops_.begin() + "/";
  }

  const InspectOptions options_;
  DetectOptions detect_;
  const bool detect_mode_;
  const std::string member_;
  bool found_member_ = false;
  int64_t files_seen_ = 0;
  std::vector<v1::DumpInfo> dumps_;
  std::map<std::string, std::unique_ptr<SplitDump>> splits_;
  std::optional<ParsedEnvFile> env_;
  std::string env_text_;
  std::string env_path_;
  std::map<std::string, std::string> versions_;
  std::set<std::string> known_markers_;
  std::optional<v1::RedisDumpInfo> redis_;
  std::map<std::string, MediaStats> media_;
  std::vector<std::string> unknown_;
  std::map<std::string, int64_t> unknown_sizes_;
  int64_t unknown_dropped_ = 0;
  std::vector<std::string> warnings_;
  std::set<std::string> tops_;
  bool top_has_file_ = false;
};

}  // namespace

absl::StatusOr<v1::BackupManifest> InspectBackup(const std::string& path,
                                                 const SourceOptions& source,
                                                 const InspectOptions& options,
                                                 CommandRunner* runner) {
  Inspector inspector(options, /*detect_mode=*/false, "");
  std::vector<std::string> containers;
  RETURN_IF_ERROR(WalkSource(path, source, runner, &inspector, &containers));
  return inspector.Finish(path, containers);
}

absl::StatusOr<OpenedBackup> OpenBackup(const std::string& path, const SourceOptions& source,
                                        const InspectOptions& options, CommandRunner* runner) {
  Inspector inspector(options, /*detect_mode=*/false, "");
  std::vector<std::string> containers;
  RETURN_IF_ERROR(WalkSource(path, source, runner, &inspector, &containers));
  OpenedBackup opened;
  ASSIGN_OR_RETURN(opened.manifest, inspector.Finish(path, containers));
  opened.env_text = inspector.env_text();
  return opened;
}

absl::StatusOr<v1::DumpInfo> PickDump(const v1::BackupManifest& manifest, const std::string& member,
                                      const std::string& path) {
  for (const v1::DumpInfo& dump : manifest.dumps()) {
    if (member.empty() || IsMember(dump.path(), member)) {
      if (member.empty() && manifest.dumps_size() > 1) break;
      return dump;
    }
  }
  if (!member.empty()) {
    return UnableTo(absl::StatusCode::kInvalidArgument, "detect dump",
                    absl::StrCat(path, "!/", member), "no such PostgreSQL dump in the source");
  }
  if (manifest.dumps().empty()) {
    std::string seen;
    if (!manifest.unknown_entries().empty()) {
      seen = absl::StrCat(" (found: ", manifest.unknown_entries(0).path(),
                          manifest.unknown_entries_size() > 1 ? ", ..." : "", ")");
    }
    return UnableTo(absl::StatusCode::kInvalidArgument, "detect dump", path,
                    absl::StrCat("not a PostgreSQL dump and holds none", seen));
  }
  std::vector<std::string> names;
  for (const v1::DumpInfo& d : manifest.dumps()) names.push_back(d.path());
  return UnableTo(absl::StatusCode::kInvalidArgument, "detect dump", path,
                  absl::StrCat("holds several dumps (", absl::StrJoin(names, ", "),
                               "): name one with --member"));
}

absl::StatusOr<v1::DumpInfo> DetectDumpInSource(const std::string& path, const std::string& member,
                                                const SourceOptions& source,
                                                const InspectOptions& options,
                                                CommandRunner* runner, BackupEnvFacts* env) {
  Inspector inspector(options, /*detect_mode=*/true, member);
  std::vector<std::string> containers;
  RETURN_IF_ERROR(WalkSource(path, source, runner, &inspector, &containers));
  ASSIGN_OR_RETURN(v1::BackupManifest manifest, inspector.Finish(path, containers));
  if (env != nullptr) {
    env->db_name = inspector.env_value("DB_NAME");
    env->db_user = inspector.env_value("DB_USER");
  }
  return PickDump(manifest, member, path);
}

absl::StatusOr<std::string> ClusterDatabaseToRestore(
    const v1::DumpInfo& dump, const std::string& source_db, const std::string& path,
    const SourceOptions& source, const InspectOptions& options, CommandRunner* runner) {
  if (dump.kind() != v1::DUMP_KIND_CLUSTER) return std::string();
  if (!source_db.empty()) return source_db;
  if (!dump.mastodon_database().empty()) return dump.mastodon_database();
  // The head did not tell: scan the whole dump for Mastodon's database.
  InspectOptions deep = options;
  deep.deep = true;
  ASSIGN_OR_RETURN(v1::DumpInfo full, DetectDumpInSource(path, dump.path(), source, deep, runner));
  if (full.mastodon_database().empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("unable to restore '", dump.path(),
                     "': no database of the cluster dump holds Mastodon's schema: name one with "
                     "--source-db"));
  }
  return full.mastodon_database();
}

absl::StatusOr<DumpToRestore> DetectDumpToRestore(
    const std::string& path, const std::string& member, const std::string& source_db,
    const SourceOptions& source, const InspectOptions& options, CommandRunner* runner) {
  DumpToRestore out;
  ASSIGN_OR_RETURN(out.dump, DetectDumpInSource(path, member, source, options, runner));
  ASSIGN_OR_RETURN(out.cluster_database,
                   ClusterDatabaseToRestore(out.dump, source_db, path, source, options, runner));
  return out;
}

namespace {

// Reads every file below a media root to the end.
class MediaLister : public SourceVisitor {
 public:
  explicit MediaLister(MediaListing* out) : out_(out) {}
  Action OnFile(const SourceFile& file, ContentKind kind) override {
    const std::string& root = out_->root;
    if (IsArchive(kind)) {
      return absl::StartsWith(root, file.path + "/") || root == file.path ? Action::kDescend
                                                                          : Action::kSkip;
    }
    return PathInMediaTree(file.path, root).has_value() ? Action::kRead : Action::kSkip;
  }
  absl::Status OnData(const SourceFile& file, ContentKind, ByteStream* data) override {
    char buf[1 << 16];
    while (true) {
      auto n = data->Read(buf, sizeof(buf));
      if (!n.ok()) {
        out_->unreadable.push_back(absl::StrCat(file.path, ": ", n.status().message()));
        return absl::OkStatus();
      }
      if (*n == 0) break;
    }
    out_->files.insert(*PathInMediaTree(file.path, out_->root));
    return absl::OkStatus();
  }
  void OnOther(const SourceFile&, const std::string&) override {}
  bool RawFile(const SourceFile& file) const override {
    return PathInMediaTree(file.path, out_->root).has_value();
  }

 private:
  MediaListing* out_;
};

}  // namespace

absl::StatusOr<MediaListing> ListMediaFiles(const std::string& path,
                                            const v1::MediaInventory& media,
                                            const SourceOptions& source, CommandRunner* runner) {
  if (media.files() == 0) {
    return absl::NotFoundError(absl::StrCat("'", path, "' holds no media tree"));
  }
  MediaListing listing;
  listing.root = WalkedPath(media.root());
  MediaLister lister(&listing);
  RETURN_IF_ERROR(WalkSource(path, source, runner, &lister));
  return listing;
}

}  // namespace mastodon_restore
