// The server-streaming WatchOperation: the events of an operation from a
// sequence number on, then live events, then the end. A client that goes
// away ends the stream, never the operation.
//
// Streams are written in wire form. A live event goes to every watcher of its
// operation as the same serialized WatchOperationResponse (the event and the
// operation as of it), made once by the operation's WatchFeed: a thousand
// watchers cost a thousand writes of shared bytes, not a thousand copies and
// serializations of the operation.
#ifndef MR_AGENT_SERVICE_WATCH_REACTOR_H_
#define MR_AGENT_SERVICE_WATCH_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "agent/operations/operation.h"
#include "mastodon/restore/v1/agent_service.pb.h"

namespace mastodon_restore {

// The wire form of one operation's live events, shared by its watchers.
class WatchFeed {
 public:
  // The serialized WatchOperationResponse {event, current}. Calls for the
  // same event (its sequence) return the same bytes, shared, not copied: the
  // operation delivers an event to its listeners one after another, so only
  // the first of them serializes. Thread-safe.
  grpc::ByteBuffer Encode(const mastodon::restore::v1::OperationEvent& event,
                          const mastodon::restore::v1::Operation& current);

 private:
  std::mutex mu_;
  int64_t sequence_ = 0;  // of the event in bytes_; 0: none yet
  grpc::ByteBuffer bytes_;
};

// The feeds of the operations being watched: one per operation, alive as long
// as one of its watchers is.
class WatchFeeds {
 public:
  std::shared_ptr<WatchFeed> For(const std::string& operation_id);

 private:
  std::mutex mu_;
  std::map<std::string, std::weak_ptr<WatchFeed>> feeds_;
};

// Serializes `message` into a ByteBuffer as gRPC would.
grpc::ByteBuffer ToByteBuffer(const google::protobuf::MessageLite& message);

class WatchReactor : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  // Starts streaming at once. Deletes itself when the call is done. `feed`
  // is the operation's (WatchFeeds::For).
  WatchReactor(std::shared_ptr<Operation> operation, std::shared_ptr<WatchFeed> feed,
               int64_t from_sequence);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  void Enqueue(const mastodon::restore::v1::OperationEvent& event,
               const mastodon::restore::v1::Operation& current);
  // REQUIRES: mu_ held.
  void MaybeWriteLocked();

  std::shared_ptr<Operation> operation_;
  std::shared_ptr<WatchFeed> feed_;
  std::mutex mu_;
  std::deque<grpc::ByteBuffer> queue_;
  grpc::ByteBuffer in_flight_;
  bool started_ = false;  // the backlog is queued
  bool writing_ = false;
  bool ended_ = false;     // the terminal event is queued
  bool finished_ = false;  // Finish() called
  int64_t listener_ = 0;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_SERVICE_WATCH_REACTOR_H_
