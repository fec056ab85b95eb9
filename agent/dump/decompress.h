// Decompressing streams for pg_dump archive data: zlib or gzip (custom
// format "gzip" blocks are zlib streams, directory-format .gz files gzip),
// LZ4 frames and zstd frames (pg_dump 16+). An empty compressed stream of
// any of them decompresses to nothing. Corrupt or truncated input is
// INVALID_ARGUMENT naming the stream.
#ifndef MR_AGENT_DUMP_DECOMPRESS_H_
#define MR_AGENT_DUMP_DECOMPRESS_H_

#include <memory>

#include "agent/common/byte_stream.h"

namespace mastodon_restore {

enum class Codec { kNone, kZlibOrGzip, kLz4, kZstd };

// A stream of `in` decompressed with `codec` (kNone: `in` itself). `in` must
// outlive the result.
std::unique_ptr<ByteStream> NewDecompressingStream(ByteStream* in, Codec codec);

}  // namespace mastodon_restore

#endif  // MR_AGENT_DUMP_DECOMPRESS_H_
