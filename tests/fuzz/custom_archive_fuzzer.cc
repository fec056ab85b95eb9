// libFuzzer target: the custom-format header, TOC and data-block reader, and
// the toc.dat assembler, on arbitrary bytes (with and without the magic).
#include <cstddef>
#include <cstdint>
#include <string>

#include "agent/dump/detector.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mastodon_restore;
  std::string bytes(reinterpret_cast<const char*>(data), size);
  for (const std::string& input : {bytes, "PGDMP" + bytes}) {
    StringStream in(input, "fuzz.dump");
    DetectOptions options;
    options.deep = true;
    (void)DetectCustomDump(&in, options);
    StringStream toc(input, "toc.dat");
    SplitDumpAssembler assembler(options);
    if (assembler.AddTocDat(&toc).ok()) {
      StringStream dat(input, "1.dat");
      (void)assembler.AddDataFile("1.dat", &dat);
      (void)assembler.Finish("fuzz", "");
    }
  }
  return 0;
}
