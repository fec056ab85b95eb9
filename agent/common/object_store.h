// An object store seen as what the agent needs of it: list the objects under
// a prefix, page by page, read one as a stream, look one up, write one
// (whole or in parts). One implementation speaks the S3 REST API
// (s3_client.h); tests use an in-memory one. Implementations are safe to
// use from several threads.
#ifndef MR_AGENT_COMMON_OBJECT_STORE_H_
#define MR_AGENT_COMMON_OBJECT_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/common/byte_stream.h"

namespace mastodon_restore {

// An object as a listing or a lookup describes it.
struct StoredObject {
  std::string key;
  int64_t size = 0;
  // Last modification, seconds since the epoch (0 when not known).
  int64_t mtime = 0;
  // The store's entity tag, without quotes ("" when not known): the MD5 of
  // the content for an object written whole, "<MD5 of the parts'
  // MD5s>-<parts>" on AWS for one written in parts.
  std::string etag;
  // The SHA-256 of the content, lower-case hex, when the store's listing
  // gives it ("" otherwise): another agent's media do.
  std::string sha256;
  // The user metadata (x-amz-meta-NAME: VALUE, by lower-case NAME), as a
  // lookup (Head) gives it; listings do not carry it.
  std::map<std::string, std::string> metadata;
};

// An object being written in parts (ObjectStore::StartUpload): for objects
// too big to hold in memory or to send in one request. Every part but the
// last holds at least kMinPart bytes. Destroying an upload that was not
// completed abandons it (the store drops the parts sent).
class ObjectUpload {
 public:
  static constexpr int64_t kMinPart = 5 << 20;
  static constexpr int kMaxParts = 10000;

  virtual ~ObjectUpload() = default;
  // Sends part `number` (1 to kMaxParts); parts may be sent from several
  // threads at once and in any order.
  virtual absl::Status PutPart(int number, const std::string& data) = 0;
  // Makes the object of parts 1 to the highest sent (each sent once);
  // returns its ETag, unquoted.
  virtual absl::StatusOr<std::string> Complete() = 0;
  // Abandons the upload (best effort).
  virtual void Abort() = 0;
};

// One page of a listing; `next` is "" on the last page.
struct ObjectPage {
  std::vector<StoredObject> objects;
  std::string next;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // How to name `key` in messages ("s3://bucket/key").
  virtual std::string Describe(const std::string& key) const = 0;
  // The objects whose keys start with `prefix`, in key order, from the page
  // `page` names ("" for the first). Errors name the bucket and the store's
  // own error code: INVALID_ARGUMENT for refused credentials or a missing
  // bucket, UNAVAILABLE when the store cannot be reached.
  virtual absl::StatusOr<ObjectPage> List(const std::string& prefix,
                                          const std::string& page) const = 0;
  // The object `key`, read from its first byte when the stream is first
  // read (so opening costs nothing until then). A broken transfer is taken
  // up again where it stopped, as long as the object is still the same one.
  virtual absl::StatusOr<std::unique_ptr<ByteStream>> Open(const StoredObject& object) const = 0;
  // The object `key`: NOT_FOUND when there is none.
  virtual absl::StatusOr<StoredObject> Head(const std::string& key) const = 0;
  // Writes `data` as the object `key` (replacing one there), with the
  // request headers `headers` ("Content-Type: image/png", "x-amz-acl:
  // public-read"); returns the store's ETag, unquoted. Errors as List's.
  virtual absl::StatusOr<std::string> Put(const std::string& key, const std::string& data,
                                          const std::vector<std::string>& headers) const = 0;
  // Whether Copy can make objects of this store from `source`'s without
  // their bytes passing through the agent: the same service (endpoint and
  // region) reached with the same credentials.
  virtual bool CanCopyFrom(const ObjectStore& source) const = 0;
  // Writes the object `key` as a copy of `source`'s `object` (as it is
  // listed: the copy fails with ABORTED if it changed since), made by the
  // service itself, with `headers` as Put's. FAILED_PRECONDITION unless
  // CanCopyFrom(source) (the caller then reads and writes the bytes).
  virtual absl::StatusOr<std::string> Copy(const ObjectStore& source, const StoredObject& object,
                                           const std::string& key,
                                           const std::vector<std::string>& headers) const = 0;
  // Starts writing the object `key` in parts, with the request headers
  // `headers` (as Put's). Errors as List's.
  virtual absl::StatusOr<std::unique_ptr<ObjectUpload>> StartUpload(
      const std::string& key, const std::vector<std::string>& headers) const = 0;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_OBJECT_STORE_H_
