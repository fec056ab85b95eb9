// The agent's process-wide settings, checked in a child process so that the
// test binary keeps its own.
#include "agent/common/process_setup.h"

#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace mastodon_restore {
namespace {

TEST(ProcessSetupTest, NoCoreDumpsAndNotDumpable) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    SetUpAgentProcess();
    int code = 0;
    if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) code |= 1;
    struct rlimit core;
    if (::getrlimit(RLIMIT_CORE, &core) != 0 || core.rlim_cur != 0 || core.rlim_max != 0) {
      code |= 2;
    }
    ::_exit(code);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  const int code = WEXITSTATUS(status);
  EXPECT_EQ(code & 1, 0) << "the process is still dumpable";
  EXPECT_EQ(code & 2, 0) << "RLIMIT_CORE is not 0";
}

}  // namespace
}  // namespace mastodon_restore
