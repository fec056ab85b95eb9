// Converts domain errors (absl::Status) into gRPC statuses at the API edge.
#ifndef MASTODON_RESTORE_AGENT_SERVICE_STATUS_CONVERSION_H_
#define MASTODON_RESTORE_AGENT_SERVICE_STATUS_CONVERSION_H_

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace mastodon_restore {

// Same code (absl and gRPC share 0-16), same message.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace mastodon_restore

#endif  // MASTODON_RESTORE_AGENT_SERVICE_STATUS_CONVERSION_H_
