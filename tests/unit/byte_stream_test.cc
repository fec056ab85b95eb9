// Streams the loaders read from: the read-ahead thread of the parallel load.
#include "agent/common/byte_stream.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::StatusIs;

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  uint32_t x = 12345;
  for (char& c : s) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

std::string ReadAll(ByteStream* in, size_t piece, absl::Status* status) {
  std::string out, buf(piece, '\0');
  while (true) {
    absl::StatusOr<size_t> n = in->Read(buf.data(), buf.size());
    if (!n.ok()) {
      *status = n.status();
      return out;
    }
    if (*n == 0) return out;
    out.append(buf.data(), *n);
  }
}

// Gives `data`, then fails.
class FailingStream : public ByteStream {
 public:
  explicit FailingStream(std::string data) : inner_(std::move(data), "broken.sql.xz") {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    absl::StatusOr<size_t> r = inner_.Read(buf, n);
    if (r.ok() && *r == 0) return absl::DataLossError("unable to read 'broken.sql.xz': corrupt");
    return r;
  }
  const std::string& name() const override { return inner_.name(); }
  int64_t raw_bytes_read() const override { return inner_.raw_bytes_read(); }

 private:
  StringStream inner_;
};

TEST(PrefetchStreamTest, DeliversEveryByteInOrder) {
  const std::string data = Pattern(3 * 1000 * 1000 + 17);
  for (size_t piece : {1u, 333u, 4096u, 1u << 20}) {
    StringStream inner(data, "dump.sql");
    PrefetchStream prefetch(&inner, 4096, 3);
    absl::Status status;
    EXPECT_EQ(ReadAll(&prefetch, piece, &status), data) << piece;
    EXPECT_OK(status);
    EXPECT_EQ(prefetch.name(), "dump.sql");
    EXPECT_EQ(prefetch.raw_bytes_read(), static_cast<int64_t>(data.size()));
  }
}

TEST(PrefetchStreamTest, TheErrorComesAfterTheBytesBeforeIt) {
  const std::string data = Pattern(100000);
  FailingStream inner(data);
  PrefetchStream prefetch(&inner, 1000, 2);
  absl::Status status;
  EXPECT_EQ(ReadAll(&prefetch, 777, &status), data);
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kDataLoss, ::testing::HasSubstr("corrupt")));
}

TEST(PrefetchStreamTest, StopsWhenDestroyedEarly) {
  StringStream inner(Pattern(10 * 1000 * 1000), "big.sql");
  {
    PrefetchStream prefetch(&inner, 4096, 2);
    char buf[10];
    ASSERT_OK(prefetch.Read(buf, sizeof(buf)));
  }
  // The thread stopped with the read-ahead bounded: far from the end.
  EXPECT_LT(inner.raw_bytes_read(), 10 * 4096);
}

}  // namespace
}  // namespace mastodon_restore
