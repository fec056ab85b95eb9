// mastodon-restore: the thin CLI over the agent's gRPC API.
#include <memory>
#include <string>
#include <vector>

#include "agent/common/env.h"
#include "cli/cli.h"

int main(int argc, char** argv) {
  std::unique_ptr<mastodon_restore::Env> env = mastodon_restore::NewPosixEnv();
  return mastodon_restore::RunCli(std::vector<std::string>(argv + 1, argv + argc), env.get(),
                                  mastodon_restore::CliStreams());
}
