// Compiled into every executable of the sanitizer build (make
// test-sanitize): the options the sanitizers start with, whatever the
// environment. The tests start the agent and the CLI with an explicit
// environment (nothing inherited), so ASAN_OPTIONS from ctest would not reach
// them: their reports go to files MR_SANITIZER_LOG_PREFIX.<program>.<pid>,
// which tests/e2e (E2eTest::TearDown) and `make test-sanitize` turn into
// failures. The test binaries get log_path=stderr from the Makefile, so that
// ctest shows their reports.
#ifndef MR_SANITIZER_LOG_PREFIX
#error "MR_SANITIZER_LOG_PREFIX must be defined (CMakeLists.txt, MR_SANITIZE)"
#endif

extern "C" {

// Any finding ends the process (the code is also built with
// -fno-sanitize-recover=all); leaks are checked at exit.
const char* __asan_default_options() {
  return "halt_on_error=1:detect_leaks=1:"
         "check_initialization_order=1:log_exe_name=1:log_path=" MR_SANITIZER_LOG_PREFIX;
}

const char* __ubsan_default_options() {
  return "halt_on_error=1:print_stacktrace=1:log_exe_name=1:log_path=" MR_SANITIZER_LOG_PREFIX;
}

// Leaks LeakSanitizer ignores: only inside third-party libraries, each with
// the reason it is not a leak of the agent's. A leak in agent/, cli/ or
// tests/ is fixed, never listed here.
const char* __lsan_default_suppressions() { return ""; }

}  // extern "C"
