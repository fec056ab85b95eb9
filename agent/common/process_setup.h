// Process-wide settings of the agent, made once at the start of main() (and
// by the benchmarks that run the agent's code in their own process, so they
// measure what the agent does).
#ifndef MR_AGENT_COMMON_PROCESS_SETUP_H_
#define MR_AGENT_COMMON_PROCESS_SETUP_H_

namespace mastodon_restore {

// - Large buffers come straight from mmap and go back to the system when
//   freed: a long-running agent does not keep the high-water mark of every
//   restore in the allocator arenas of the threads that happened to run it
//   (the parallel load recycles its COPY chunks instead).
// - absl::Mutex deadlock detection off: Debian builds Abseil without NDEBUG,
//   which leaves it on, and then every lock (gRPC takes them for every call
//   and write) records its lock-order edges under one global lock.
// - Never dumps core, and its /proc files (mem, environ, ...) belong to root
//   with ptrace by other users refused (PR_SET_DUMPABLE 0, RLIMIT_CORE 0):
//   its memory holds passphrases and conninfo. The limit is inherited by the
//   commands it runs; the dumpable flag is reset by their execve.
// Call before any thread starts.
void SetUpAgentProcess();

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_PROCESS_SETUP_H_
