#include "agent/dump/decompress.h"

#include <lz4frame.h>
#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <vector>

#include "agent/common/errors.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

constexpr size_t kInputSize = 1 << 16;

// Passes `in` through.
class PlainStream : public ByteStream {
 public:
  explicit PlainStream(ByteStream* in) : in_(in) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override { return in_->Read(buf, n); }
  const std::string& name() const override { return in_->name(); }

 private:
  ByteStream* in_;
};

// Common input handling: a window of compressed bytes read from `in_`.
class Decoder : public ByteStream {
 public:
  explicit Decoder(ByteStream* in) : in_(in), input_(kInputSize) {}
  const std::string& name() const override { return in_->name(); }

 protected:
  // Refills the input window when it is used up; false at the end of input.
  absl::StatusOr<bool> Fill() {
    if (pos_ < len_) return true;
    if (eof_) return false;
    ASSIGN_OR_RETURN(len_, in_->Read(input_.data(), input_.size()));
    pos_ = 0;
    if (len_ == 0) eof_ = true;
    return len_ > 0;
  }
  absl::Status Corrupt(const std::string& why) const {
    return UnableTo(absl::StatusCode::kInvalidArgument, "decompress", in_->name(), why);
  }

  ByteStream* in_;
  std::vector<char> input_;
  size_t pos_ = 0, len_ = 0;
  bool eof_ = false;
};

class ZlibDecoder : public Decoder {
 public:
  explicit ZlibDecoder(ByteStream* in) : Decoder(in) {
    std::memset(&z_, 0, sizeof(z_));
    ok_ = inflateInit2(&z_, 15 + 32) == Z_OK;  // zlib or gzip header
  }
  ~ZlibDecoder() override { inflateEnd(&z_); }
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (!ok_) return Corrupt("zlib initialisation failed");
    if (n == 0) return 0;
    while (true) {
      if (done_) {
        // A gzip file may hold several members (concatenated streams).
        ASSIGN_OR_RETURN(bool more, Fill());
        if (!more) return 0;
        if (inflateReset(&z_) != Z_OK) return Corrupt("zlib reset failed");
        done_ = false;
      }
      if (!started_) {
        ASSIGN_OR_RETURN(bool more, Fill());
        if (!more) return 0;  // empty input: nothing
        started_ = true;
      }
      z_.next_in = reinterpret_cast<Bytef*>(input_.data() + pos_);
      z_.avail_in = static_cast<uInt>(len_ - pos_);
      z_.next_out = reinterpret_cast<Bytef*>(buf);
      z_.avail_out = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
      const uInt out_before = z_.avail_out;
      int r = inflate(&z_, Z_NO_FLUSH);
      pos_ = len_ - z_.avail_in;
      if (r == Z_STREAM_END) {
        done_ = true;
      } else if (r != Z_OK && r != Z_BUF_ERROR) {
        return Corrupt(z_.msg != nullptr ? z_.msg : "corrupt zlib/gzip data");
      }
      const size_t produced = out_before - z_.avail_out;
      if (produced > 0) return produced;
      if (done_ || pos_ < len_) continue;
      ASSIGN_OR_RETURN(bool more, Fill());
      if (!more) return Corrupt("truncated zlib/gzip data");
    }
  }

 private:
  z_stream z_;
  bool ok_ = false;
  bool done_ = false;
  bool started_ = false;
};

class Lz4Decoder : public Decoder {
 public:
  explicit Lz4Decoder(ByteStream* in) : Decoder(in) {
    ok_ = !LZ4F_isError(LZ4F_createDecompressionContext(&ctx_, LZ4F_VERSION));
  }
  ~Lz4Decoder() override {
    if (ctx_ != nullptr) LZ4F_freeDecompressionContext(ctx_);
  }
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (!ok_) return Corrupt("lz4 initialisation failed");
    if (n == 0) return 0;
    while (true) {
      size_t src = len_ - pos_, dst = n;
      if (src > 0 || (started_ && hint_ != 0)) {
        // (With no input left this flushes what the decoder still holds.)
        hint_ = LZ4F_decompress(ctx_, buf, &dst, input_.data() + pos_, &src, nullptr);
        if (LZ4F_isError(hint_)) return Corrupt(LZ4F_getErrorName(hint_));
        pos_ += src;
        if (dst > 0) return dst;
        if (pos_ < len_) continue;
      }
      ASSIGN_OR_RETURN(bool more, Fill());
      if (!more) {
        if (hint_ == 0 || !started_) return 0;  // frame complete, or empty input
        return Corrupt("truncated lz4 data");
      }
      started_ = true;
    }
  }

 private:
  LZ4F_dctx* ctx_ = nullptr;
  bool ok_ = false;
  bool started_ = false;
  size_t hint_ = 0;
};

class ZstdDecoder : public Decoder {
 public:
  explicit ZstdDecoder(ByteStream* in) : Decoder(in), ctx_(ZSTD_createDStream()) {
    if (ctx_ != nullptr) ZSTD_initDStream(ctx_);
  }
  ~ZstdDecoder() override {
    if (ctx_ != nullptr) ZSTD_freeDStream(ctx_);
  }
  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (ctx_ == nullptr) return Corrupt("zstd initialisation failed");
    if (n == 0) return 0;
    while (true) {
      ZSTD_outBuffer out = {buf, n, 0};
      ZSTD_inBuffer in = {input_.data() + pos_, len_ - pos_, 0};
      if (in.size > 0 || hint_ != 0) {
        // Also flushes what the decoder holds when the input is used up.
        hint_ = ZSTD_decompressStream(ctx_, &out, &in);
        if (ZSTD_isError(hint_)) return Corrupt(ZSTD_getErrorName(hint_));
        pos_ += in.pos;
        if (out.pos > 0) return out.pos;
        if (in.size > in.pos) continue;
      }
      ASSIGN_OR_RETURN(bool more, Fill());
      if (!more) {
        if (hint_ == 0 || !started_) return 0;
        return Corrupt("truncated zstd data");
      }
      started_ = true;
    }
  }

 private:
  ZSTD_DStream* ctx_;
  bool started_ = false;
  size_t hint_ = 0;
};

}  // namespace

std::unique_ptr<ByteStream> NewDecompressingStream(ByteStream* in, Codec codec) {
  switch (codec) {
    case Codec::kZlibOrGzip:
      return std::make_unique<ZlibDecoder>(in);
    case Codec::kLz4:
      return std::make_unique<Lz4Decoder>(in);
    case Codec::kZstd:
      return std::make_unique<ZstdDecoder>(in);
    case Codec::kNone:
      break;
  }
  return std::make_unique<PlainStream>(in);
}

}  // namespace mastodon_restore
