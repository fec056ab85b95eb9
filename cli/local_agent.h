// A private agent for one CLI command (verify-backup on a machine without a
// running agent, e.g. a CI job): the agent binary next to the CLI, the
// embedded runtime (its own PostgreSQL) in a temporary directory, a private
// socket. Stopped and removed when the object goes.
#ifndef MR_CLI_LOCAL_AGENT_H_
#define MR_CLI_LOCAL_AGENT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/common/subprocess.h"

namespace mastodon_restore {

class LocalAgent {
 public:
  // Starts the agent with --runtime embedded, reading backups from
  // `allowed_roots`, and waits until it listens (up to two minutes: the
  // first start creates a cluster; readiness comes by sd_notify). NOT_FOUND
  // when no agent binary is found
  // (next to the CLI, in the build tree, or in PATH).
  static absl::StatusOr<std::unique_ptr<LocalAgent>> Start(
      const std::vector<std::string>& allowed_roots, CommandRunner* runner);
  // SIGTERM (the agent stops its PostgreSQL), then removes the directory.
  ~LocalAgent();

  const std::string& socket() const { return socket_; }
  // The end of the agent's log, for error messages.
  std::string LogTail() const;

 private:
  LocalAgent() = default;
  std::string dir_;
  std::string socket_;
  std::unique_ptr<Process> process_;
};

// The agent binary: beside the CLI (/usr/bin), its build-tree sibling
// (build/agent/), or in PATH.
absl::StatusOr<std::string> FindAgentBinary();

}  // namespace mastodon_restore

#endif  // MR_CLI_LOCAL_AGENT_H_
