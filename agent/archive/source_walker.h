// Walks a backup source — a directory or a file — and hands every file it
// holds to a visitor as a stream: archives (tar, zip, 7z) are entered,
// compression layers (gzip, bzip2, xz, zstd, lz4) and encryption (age,
// OpenPGP, encrypted zip and 7z) are removed on the fly, at any nesting,
// without extracting anything to disk.
#ifndef MR_AGENT_ARCHIVE_SOURCE_WALKER_H_
#define MR_AGENT_ARCHIVE_SOURCE_WALKER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/archive/sniff.h"
#include "agent/common/byte_stream.h"
#include "agent/common/cancel_token.h"
#include "agent/common/object_store.h"
#include "agent/common/subprocess.h"

namespace mastodon_restore {

struct SourceOptions {
  // Password of encrypted zip/7z entries, or OpenPGP passphrase ("": none).
  // Never logged; reaches programs on stdin only.
  std::string passphrase;
  // age identity file and OpenPGP secret key file (paths on the host).
  std::string age_identity_file;
  std::string gpg_key_file;
  // Symlinks inside a directory source may only lead here.
  std::vector<std::string> allowed_roots;
  // Maximum nesting of containers.
  int max_depth = 8;
  // A bucket instead of a path: WalkSource then lists the objects whose keys
  // start with `bucket_prefix` and walks each as the file of a directory at
  // the key without the prefix (`path` only names the source in messages).
  // An object is fetched only when the visitor reads it.
  std::shared_ptr<const ObjectStore> bucket;
  std::string bucket_prefix;
  // Objects fetched at once from the bucket (ahead of the visitor, for the
  // opaque files it reads); 1: one after the other, nothing ahead.
  int bucket_parallel = 8;
  const CancelToken* cancel = nullptr;
};

// A file met in the source.
struct SourceFile {
  // Path from the backup's root, "/"-separated; nested archives appear as
  // directories ("media.tar.gz/media/accounts/x.png"); a removed compression
  // or encryption suffix is dropped ("database.sql.xz" -> "database.sql").
  std::string path;
  // For messages: "/backups/b.zip!/backup.tar!/database.sql.xz".
  std::string display;
  // Size as stored (compressed), -1 when unknown.
  int64_t stored_size = -1;
  // Modification time (seconds since the epoch) and permission bits, as
  // recorded by the archive or the filesystem; 0 when unknown.
  int64_t mtime = 0;
  uint32_t mode = 0;
  // The object's ETag (unquoted) when the source is a bucket; "" otherwise.
  std::string etag;
  // The content's SHA-256 (hex) when the bucket's listing gives it
  // (StoredObject::sha256); "" otherwise.
  std::string sha256;
  // Layers removed to reach this content, outermost first ("zip", "xz").
  std::vector<std::string> containers;
  // Set when the content is a plain, seekable file on disk.
  FileStream* disk_file = nullptr;
};

class SourceVisitor {
 public:
  enum class Action { kSkip, kRead, kDescend };
  virtual ~SourceVisitor() = default;
  // Decides what to do with a file whose content sniffed as `kind`. kDescend
  // applies to archives only (tar, zip, 7z); kRead of a tar or zip hands over
  // its bytes instead (e.g. a pg_dump tar archive); compression and
  // encryption are always removed first and the content is offered again.
  virtual Action OnFile(const SourceFile& file, ContentKind kind) = 0;
  // The content of a file the visitor chose to read. It may read as much as
  // it wants; the walker skips the rest.
  virtual absl::Status OnData(const SourceFile& file, ContentKind kind, ByteStream* data) = 0;
  // Directories, symlinks, hard links and special files inside archives, and
  // files that cannot be opened here (e.g. encrypted files nested in an
  // archive), with a short description.
  virtual void OnOther(const SourceFile& file, const std::string& what) = 0;
  // Checked after every file: true stops the walk early (not an error).
  virtual bool Done() const { return false; }
  // True when `file` is opaque data to be handed over byte for byte (media):
  // the walker then neither sniffs nor unwraps it, and offers it as kBinary.
  virtual bool RawFile(const SourceFile& file) const {
    (void)file;
    return false;
  }
};

// Walks `path` (a resolved, allowed path). `runner` runs age, gpg and 7z.
// Errors name the file and the cause: INVALID_ARGUMENT for corrupt or
// truncated data, a wrong password, symlink loops; FAILED_PRECONDITION for a
// missing password or key; PERMISSION_DENIED for a symlink leaving the
// allowed roots.
// `root_containers` (optional) receives the layers around the backup itself,
// outermost first (e.g. {"age", "zip"}, {"xz"}, {"directory"}, {"bucket"}).
absl::Status WalkSource(const std::string& path, const SourceOptions& options,
                        CommandRunner* runner, SourceVisitor* visitor,
                        std::vector<std::string>* root_containers = nullptr);

// Strips a compression/encryption suffix matching `layer` from a file name
// ("db.sql.xz", "xz" -> "db.sql"; ".tgz" -> ".tar").
std::string StripLayerSuffix(const std::string& path, const std::string& layer);

// The path a walk reports for a path as displayed in a manifest: the
// display's "!/" between nested containers is "/" ("media.tar.gz!/media" is
// walked as "media.tar.gz/media").
std::string WalkedPath(std::string display_path);

}  // namespace mastodon_restore

#endif  // MR_AGENT_ARCHIVE_SOURCE_WALKER_H_
