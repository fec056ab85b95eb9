// Readiness and stopping notifications to the service manager (systemd
// Type=notify, through sd_notify). No-ops when the agent was not started
// by a service manager that asked for them (no NOTIFY_SOCKET).
#ifndef MR_AGENT_COMMON_SERVICE_NOTIFY_H_
#define MR_AGENT_COMMON_SERVICE_NOTIFY_H_

#include <string>

namespace mastodon_restore {

// READY=1 with a status line.
void NotifyReady(const std::string& status);
// STOPPING=1 with a status line.
void NotifyStopping(const std::string& status);

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_SERVICE_NOTIFY_H_
