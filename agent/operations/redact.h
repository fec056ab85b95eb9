// Removes the fields marked (mastodon.restore.v1.sensitive) from a message,
// recursively, so that requests can be echoed, logged and persisted.
#ifndef MR_AGENT_OPERATIONS_REDACT_H_
#define MR_AGENT_OPERATIONS_REDACT_H_

#include <google/protobuf/message.h>

namespace mastodon_restore {

// Clears every sensitive field of `message` and of the messages it holds.
void RedactSensitive(google::protobuf::Message* message);

}  // namespace mastodon_restore

#endif  // MR_AGENT_OPERATIONS_REDACT_H_
