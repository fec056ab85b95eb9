// Converts domain errors (absl::Status) into gRPC statuses at the API edge.
#ifndef MR_AGENT_SERVICE_STATUS_CONVERSION_H_
#define MR_AGENT_SERVICE_STATUS_CONVERSION_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace mastodon_restore {

// Same code (absl and gRPC share 0-16), same message.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace mastodon_restore

#endif  // MR_AGENT_SERVICE_STATUS_CONVERSION_H_
