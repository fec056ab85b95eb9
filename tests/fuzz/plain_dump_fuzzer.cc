// libFuzzer target: the plain-dump scanner and detector on arbitrary text,
// shallow and deep, fed whole and in odd-sized chunks.
#include <cstddef>
#include <cstdint>
#include <string>

#include "agent/dump/detector.h"
#include "agent/dump/plain_scanner.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mastodon_restore;
  const std::string text(reinterpret_cast<const char*>(data), size);
  for (bool deep : {false, true}) {
    StringStream in(text, "fuzz.sql");
    DetectOptions options;
    options.deep = deep;
    (void)DetectPlainDump(&in, options, deep,
                          text.substr(text.size() > 4096 ? text.size() - 4096 : 0));
  }
  PlainScanner scanner(true);
  for (size_t pos = 0; pos < size;) {
    size_t n = 1 + (data[pos] % 97);
    scanner.Feed(absl::string_view(text).substr(pos, n));
    pos += n;
  }
  scanner.Finish(true);
  return 0;
}
