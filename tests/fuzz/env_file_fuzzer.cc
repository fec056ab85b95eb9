// libFuzzer target: the dotenv parser and its summary.
#include <cstddef>
#include <cstdint>
#include <string>

#include "agent/app/env_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mastodon_restore;
  std::string text(reinterpret_cast<const char*>(data), size);
  ParsedEnvFile env = ParseEnvFile(text);
  (void)SummarizeEnvFile(env, ".env.production");
  return 0;
}
