// The server-streaming WatchOperation: the events of an operation from a
// sequence number on, then live events, then the end. A client that goes
// away ends the stream, never the operation.
#ifndef MR_AGENT_SERVICE_WATCH_REACTOR_H_
#define MR_AGENT_SERVICE_WATCH_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <mutex>

#include "agent/operations/operation.h"
#include "mastodon/restore/v1/agent_service.pb.h"

namespace mastodon_restore {

class WatchReactor
    : public grpc::ServerWriteReactor<mastodon::restore::v1::WatchOperationResponse> {
 public:
  // Starts streaming at once. Deletes itself when the call is done.
  WatchReactor(std::shared_ptr<Operation> operation, int64_t from_sequence);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  void Enqueue(const mastodon::restore::v1::OperationEvent& event,
               const mastodon::restore::v1::Operation& current);
  // REQUIRES: mu_ held.
  void MaybeWriteLocked();

  std::shared_ptr<Operation> operation_;
  std::mutex mu_;
  std::deque<mastodon::restore::v1::WatchOperationResponse> queue_;
  mastodon::restore::v1::WatchOperationResponse in_flight_;
  bool started_ = false;  // the backlog is queued
  bool writing_ = false;
  bool ended_ = false;     // the terminal event is queued
  bool finished_ = false;  // Finish() called
  int64_t listener_ = 0;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_SERVICE_WATCH_REACTOR_H_
