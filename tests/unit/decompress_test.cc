// The decompressing streams of pg_dump archive data, checked against zlib:
// every stream zlib writes (gzip and zlib wrappers, every block type, small
// windows, header extras, several gzip members) reads back byte for byte
// whatever the sizes of the reads on either side; corrupt, truncated and
// trailing input is refused naming the stream.
#include "agent/dump/decompress.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/common/byte_stream.h"

namespace mastodon_restore {
namespace {

using ::testing::HasSubstr;

// COPY-like rows: compressible, but not trivially.
std::string Rows(int n) {
  std::string out;
  uint32_t x = 12345;
  for (int i = 0; i < n; ++i) {
    x = x * 1103515245 + 12345;
    absl::StrAppend(&out, i, "\tuser", x % 5000, "\t", (x >> 8) % 1000000,
                    "\t2026-12-05 19:00:00+00\t\\N\tSome text that repeats ", x % 7, "\n");
  }
  return out;
}

struct DeflateOptions {
  int window_bits = 15;  // + 16: gzip wrapper
  int level = 6;
  int strategy = Z_DEFAULT_STRATEGY;
  bool gzip_header_extras = false;
  std::string dictionary;
};

DeflateOptions Options(int window_bits, int level = 6, int strategy = Z_DEFAULT_STRATEGY) {
  DeflateOptions o;
  o.window_bits = window_bits;
  o.level = level;
  o.strategy = strategy;
  return o;
}

// `data` compressed by zlib as one stream.
std::string Deflate(const std::string& data, const DeflateOptions& o = DeflateOptions()) {
  z_stream z{};
  EXPECT_EQ(deflateInit2(&z, o.level, Z_DEFLATED, o.window_bits, 8, o.strategy), Z_OK);
  gz_header header{};
  std::string name = "toots.dat";
  std::string extra("ab\x02\x00xy", 6);  // one subfield "ab" of 2 bytes
  if (o.gzip_header_extras) {
    header.name = reinterpret_cast<Bytef*>(name.data());
    header.extra = reinterpret_cast<Bytef*>(extra.data());
    header.extra_len = static_cast<uInt>(extra.size());
    header.hcrc = 1;
    EXPECT_EQ(deflateSetHeader(&z, &header), Z_OK);
  }
  if (!o.dictionary.empty()) {
    EXPECT_EQ(deflateSetDictionary(&z, reinterpret_cast<const Bytef*>(o.dictionary.data()),
                                   static_cast<uInt>(o.dictionary.size())),
              Z_OK);
  }
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string Gzip(const std::string& data) { return Deflate(data, Options(15 + 16)); }

// Gives at most `piece` bytes per read.
class TrickleStream : public ByteStream {
 public:
  TrickleStream(std::string data, size_t piece)
      : inner_(std::move(data), "toc.dat"), piece_(piece) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    return inner_.Read(buf, std::min(n, piece_));
  }
  const std::string& name() const override { return inner_.name(); }

 private:
  StringStream inner_;
  size_t piece_;
};

// Everything `compressed` decompresses to, read `out_piece` bytes at a time
// from a source giving `in_piece` bytes at a time.
absl::StatusOr<std::string> Inflate(const std::string& compressed, size_t in_piece = 1 << 20,
                                    size_t out_piece = 1 << 16) {
  TrickleStream source(compressed, in_piece);
  std::unique_ptr<ByteStream> s = NewDecompressingStream(&source, Codec::kZlibOrGzip);
  std::string out, buf(out_piece, '\0');
  while (true) {
    absl::StatusOr<size_t> got = s->Read(buf.data(), buf.size());
    if (!got.ok()) return got.status();
    if (*got == 0) return out;
    out.append(buf.data(), *got);
  }
}

TEST(DecompressTest, EveryStreamZlibWritesReadsBack) {
  const std::string data = Rows(60000);  // about 4 MB
  struct Case {
    const char* what;
    DeflateOptions options;
  };
  DeflateOptions extras = Options(15 + 16);
  extras.gzip_header_extras = true;
  const Case cases[] = {
      {"zlib", Options(15)},
      {"gzip", Options(15 + 16)},
      {"stored blocks", Options(15, 0)},
      {"fixed Huffman codes", Options(15, 6, Z_FIXED)},
      {"Huffman only", Options(15, 6, Z_HUFFMAN_ONLY)},
      {"run lengths", Options(15, 6, Z_RLE)},
      {"a 512-byte window", Options(9)},
      {"fastest", Options(15, 1)},
      {"gzip with a name, extra field and header CRC", extras},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string compressed = Deflate(data, c.options);
    absl::StatusOr<std::string> got = Inflate(compressed);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(*got == data) << got->size() << " bytes, not " << data.size();
  }
}

TEST(DecompressTest, ReadSizesOnEitherSideDoNotMatter) {
  const std::string data = Rows(3000);
  const std::string compressed = Gzip(data);
  for (size_t in_piece : {size_t{1}, size_t{3}, size_t{4096}, size_t{1} << 20}) {
    for (size_t out_piece : {size_t{1}, size_t{7}, size_t{65536}}) {
      SCOPED_TRACE(absl::StrCat(in_piece, " in, ", out_piece, " out"));
      absl::StatusOr<std::string> got = Inflate(compressed, in_piece, out_piece);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_TRUE(*got == data);
    }
  }
}

TEST(DecompressTest, GzipMembersReadOneAfterAnother) {
  const std::string a = Rows(2000), b = Rows(10);
  absl::StatusOr<std::string> got = Inflate(Gzip(a) + Gzip("") + Gzip(b), 1000, 4096);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(*got == a + b);
}

TEST(DecompressTest, EmptyInputIsNothing) {
  absl::StatusOr<std::string> got = Inflate("");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "");
  got = Inflate(Deflate(""));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, "");
}

TEST(DecompressTest, CorruptTruncatedAndTrailingInputIsRefused) {
  const std::string data = Rows(20000);
  const std::string zlib = Deflate(data), gzip = Gzip(data);
  auto refused = [](const std::string& compressed, const std::string& why) {
    SCOPED_TRACE(why);
    absl::StatusOr<std::string> got = Inflate(compressed, 4096);
    ASSERT_FALSE(got.ok()) << "read " << got->size() << " bytes";
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(got.status().message(), HasSubstr("toc.dat"));
    EXPECT_THAT(got.status().message(), HasSubstr(why));
  };
  // The checksums: zlib's Adler-32, gzip's CRC-32 and length.
  std::string bad = zlib;
  bad.back() ^= 1;
  refused(bad, "incorrect checksum");
  bad = gzip;
  bad[bad.size() - 5] ^= 1;
  refused(bad, "incorrect checksum");
  bad = gzip;
  bad[bad.size() - 1] ^= 1;
  refused(bad, "incorrect checksum");
  // A changed byte in the middle.
  bad = zlib;
  bad[bad.size() / 2] ^= 0x55;
  refused(bad, "");
  // Cut anywhere: in the data, in the trailer, after the header.
  for (size_t keep : {zlib.size() / 2, zlib.size() - 2, size_t{2}}) {
    refused(zlib.substr(0, keep), "truncated");
  }
  refused(gzip.substr(0, gzip.size() - 3), "truncated");
  refused(gzip.substr(0, 5), "truncated");
  // Not a stream at all; a bad header; a zlib stream wanting a dictionary.
  refused(data.substr(0, 100), "header");
  bad = gzip;
  bad[2] = 7;  // compression method
  refused(bad, "header");
  DeflateOptions with_dictionary;
  with_dictionary.dictionary = "user\t";
  refused(Deflate(data, with_dictionary), "dictionary");
  // Bytes after the end of a stream that start no other.
  refused(zlib + "junk", "");
}

}  // namespace
}  // namespace mastodon_restore
