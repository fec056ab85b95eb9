// The server-streaming WatchOperation: the events of an operation from a
// sequence number on, then live events, then the end. A client that goes
// away ends the stream, never the operation.
//
// Streams are written in wire form. A live event goes to every watcher of its
// operation as the same serialized WatchOperationResponse (the event and the
// operation as of it), made once by the operation's WatchFeed: a thousand
// watchers cost a thousand writes of shared bytes, not a thousand copies and
// serializations of the operation.
//
// Memory per stream is bounded. A stream holds at most kMaxQueued messages
// not yet handed to gRPC. Replayed events are read from the operation's
// record a page at a time as the client takes them; a watcher that falls
// kMaxQueued events behind the live ones (a client that stopped reading)
// stops queueing them and reads them from the record when it catches up,
// then follows live again. Nothing is skipped but progress events beyond the
// record's cap, which no replay has either. Replayed events carry the
// operation only on the last one of a catch-up.
#ifndef MR_AGENT_SERVICE_WATCH_REACTOR_H_
#define MR_AGENT_SERVICE_WATCH_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <deque>
#include <functional>
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

  // Messages queued by this operation's watchers, not yet handed to gRPC.
  int64_t queued() const { return queued_.load(); }
  void AddQueued(int64_t n) { queued_ += n; }

 private:
  std::mutex mu_;
  int64_t sequence_ = 0;  // of the event in bytes_; 0: none yet
  grpc::ByteBuffer bytes_;
  std::atomic<int64_t> queued_{0};
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
  // Messages a stream holds at most; also the page size of record reads.
  static constexpr size_t kMaxQueued = 64;

  // Starts streaming at once. Deletes itself when the call is done, after
  // calling `on_done` (when given: the service's watcher count). `feed` is
  // the operation's (WatchFeeds::For).
  WatchReactor(std::shared_ptr<Operation> operation, std::shared_ptr<WatchFeed> feed,
               int64_t from_sequence, std::function<void()> on_done = nullptr);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // A live event (the operation's listener).
  void Enqueue(const mastodon::restore::v1::OperationEvent& event,
               const mastodon::restore::v1::Operation& current);
  // Queues the events of `page` from next_ on (the operation on the last one
  // of a complete page); after a complete page, follows live again when
  // nothing live was let pass since the read, or ends when the operation
  // had ended. REQUIRES: mu_ held.
  void TakePageLocked(const Operation::EventPage& page);
  void PushLocked(int64_t sequence, grpc::ByteBuffer bytes);
  // Starts the next write or finishes. Returns true when the queue is empty
  // and the next events must be read from the record (Refill, without mu_).
  // REQUIRES: mu_ held.
  bool MaybeWriteLocked();
  // Reads pages of the record until something is queued or the stream
  // follows live. REQUIRES: mu_ not held (the operation's lock comes first).
  void Refill();

  std::shared_ptr<Operation> operation_;
  std::shared_ptr<WatchFeed> feed_;
  std::mutex mu_;
  std::deque<grpc::ByteBuffer> queue_;
  grpc::ByteBuffer in_flight_;
  // The sequence of the next event the client should get.
  int64_t next_ = 1;
  // Live events are queued; otherwise the stream reads the record and
  // notes the last live event it let pass.
  bool live_ = false;
  int64_t missed_through_ = 0;
  bool started_ = false;  // the first page is taken
  bool reading_ = false;  // a Refill is reading the record
  bool writing_ = false;
  bool ended_ = false;     // the terminal event is queued
  bool finished_ = false;  // Finish() called
  int64_t listener_ = 0;
  std::function<void()> on_done_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_SERVICE_WATCH_REACTOR_H_
