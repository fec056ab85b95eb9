#include "agent/app/redis_dump.h"

#include <cstring>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/common/status_macros.h"

namespace mastodon_restore {
namespace {

// Opcodes (rdb.h).
constexpr uint8_t kOpSlotInfo = 0xF4;
constexpr uint8_t kOpFunction2 = 0xF5;
constexpr uint8_t kOpFunctionPreGa = 0xF6;
constexpr uint8_t kOpModuleAux = 0xF7;
constexpr uint8_t kOpIdle = 0xF8;
constexpr uint8_t kOpFreq = 0xF9;
constexpr uint8_t kOpAux = 0xFA;
constexpr uint8_t kOpResizeDb = 0xFB;
constexpr uint8_t kOpExpireMs = 0xFC;
constexpr uint8_t kOpExpireSec = 0xFD;
constexpr uint8_t kOpSelectDb = 0xFE;
constexpr uint8_t kOpEof = 0xFF;

class RdbReader {
 public:
  explicit RdbReader(ByteStream* in) : in_(in) {}

  absl::Status Bytes(char* out, size_t n) { return ReadExactly(in_, out, n); }
  absl::StatusOr<uint8_t> Byte() {
    char c;
    RETURN_IF_ERROR(Bytes(&c, 1));
    return static_cast<uint8_t>(c);
  }
  absl::Status Skip(uint64_t n) {
    char buf[8192];
    while (n > 0) {
      size_t chunk = n < sizeof(buf) ? static_cast<size_t>(n) : sizeof(buf);
      RETURN_IF_ERROR(Bytes(buf, chunk));
      n -= chunk;
    }
    return absl::OkStatus();
  }
  // A length; `special` is set (and the value is the encoding) for the
  // special string encodings (11xxxxxx).
  absl::StatusOr<uint64_t> Length(bool* special = nullptr) {
    ASSIGN_OR_RETURN(uint8_t first, Byte());
    if (special != nullptr) *special = false;
    switch (first >> 6) {
      case 0:
        return first & 0x3F;
      case 1: {
        ASSIGN_OR_RETURN(uint8_t second, Byte());
        return (static_cast<uint64_t>(first & 0x3F) << 8) | second;
      }
      case 2: {
        int n = first == 0x80 ? 4 : first == 0x81 ? 8 : 0;
        if (n == 0) return absl::InvalidArgumentError("not an RDB file: bad length encoding");
        unsigned char b[8];
        RETURN_IF_ERROR(Bytes(reinterpret_cast<char*>(b), n));
        uint64_t v = 0;
        for (int i = 0; i < n; ++i) v = (v << 8) | b[i];
        return v;
      }
      default:
        if (special == nullptr) return absl::InvalidArgumentError("not an RDB file: bad length");
        *special = true;
        return first & 0x3F;
    }
  }
  // Skips a string (plain, integer-encoded or LZF-compressed).
  absl::Status SkipString() {
    bool special = false;
    ASSIGN_OR_RETURN(uint64_t n, Length(&special));
    if (!special) return Skip(n);
    switch (n) {
      case 0:
        return Skip(1);
      case 1:
        return Skip(2);
      case 2:
        return Skip(4);
      case 3: {
        ASSIGN_OR_RETURN(uint64_t compressed, Length());
        ASSIGN_OR_RETURN(uint64_t plain, Length());
        (void)plain;
        return Skip(compressed);
      }
      default:
        return absl::InvalidArgumentError("not an RDB file: bad string encoding");
    }
  }
  absl::Status SkipStrings(uint64_t n) {
    for (uint64_t i = 0; i < n; ++i) RETURN_IF_ERROR(SkipString());
    return absl::OkStatus();
  }
  absl::Status SkipLengths(int n) {
    for (int i = 0; i < n; ++i) RETURN_IF_ERROR(Length().status());
    return absl::OkStatus();
  }
  // Skips a module's serialized data (RDB_TYPE_MODULE_2, module aux):
  // opcode-tagged fields up to the EOF opcode, as rdb.c's
  // rdbLoadCheckModuleValue reads them without the module.
  absl::Status SkipModuleFields() {
    for (;;) {
      ASSIGN_OR_RETURN(uint64_t opcode, Length());
      switch (opcode) {
        case 0:  // EOF
          return absl::OkStatus();
        case 1:  // SINT
        case 2:  // UINT
          RETURN_IF_ERROR(Length().status());
          break;
        case 3:  // FLOAT
          RETURN_IF_ERROR(Skip(4));
          break;
        case 4:  // DOUBLE
          RETURN_IF_ERROR(Skip(8));
          break;
        case 5:  // STRING
          RETURN_IF_ERROR(SkipString());
          break;
        default:
          return absl::InvalidArgumentError(
              absl::StrCat("not an RDB file: module data opcode ", opcode));
      }
    }
  }
  // Skips a stream (RDB_TYPE_STREAM_LISTPACKS, _2 from Redis 7.0, _3 from
  // 7.2), as rdb.c's rdbLoadObject reads it.
  absl::Status SkipStream(uint8_t type) {
    const bool v2 = type >= 19;
    const bool v3 = type >= 21;
    ASSIGN_OR_RETURN(uint64_t listpacks, Length());
    RETURN_IF_ERROR(SkipStrings(2 * listpacks));  // node key, listpack
    // Length, last id; from v2 first id, max deleted id, entries added.
    RETURN_IF_ERROR(SkipLengths(v2 ? 8 : 3));
    ASSIGN_OR_RETURN(uint64_t groups, Length());
    for (uint64_t g = 0; g < groups; ++g) {
      RETURN_IF_ERROR(SkipString());             // name
      RETURN_IF_ERROR(SkipLengths(v2 ? 3 : 2));  // last id, entries read
      ASSIGN_OR_RETURN(uint64_t pending, Length());
      for (uint64_t i = 0; i < pending; ++i) {
        RETURN_IF_ERROR(Skip(16 + 8));       // raw id, delivery time
        RETURN_IF_ERROR(Length().status());  // delivery count
      }
      ASSIGN_OR_RETURN(uint64_t consumers, Length());
      for (uint64_t c = 0; c < consumers; ++c) {
        RETURN_IF_ERROR(SkipString());       // name
        RETURN_IF_ERROR(Skip(v3 ? 16 : 8));  // seen (and active) time
        ASSIGN_OR_RETURN(uint64_t owned, Length());
        RETURN_IF_ERROR(Skip(16 * owned));  // raw ids
      }
    }
    return absl::OkStatus();
  }
  // Skips the value of `type`.
  absl::Status SkipValue(uint8_t type) {
    switch (type) {
      case 0:   // string
      case 9:   // zipmap
      case 10:  // list ziplist
      case 11:  // intset
      case 12:  // zset ziplist
      case 13:  // hash ziplist
      case 16:  // hash listpack
      case 17:  // zset listpack
      case 20:  // set listpack
        return SkipString();
      case 1:     // list
      case 2:     // set
      case 14: {  // quicklist (of ziplists)
        ASSIGN_OR_RETURN(uint64_t n, Length());
        return SkipStrings(n);
      }
      case 4: {  // hash
        ASSIGN_OR_RETURN(uint64_t n, Length());
        return SkipStrings(2 * n);
      }
      case 3: {  // zset: member, score as a string of 1-byte length
        ASSIGN_OR_RETURN(uint64_t n, Length());
        for (uint64_t i = 0; i < n; ++i) {
          RETURN_IF_ERROR(SkipString());
          ASSIGN_OR_RETURN(uint8_t len, Byte());
          if (len < 253) RETURN_IF_ERROR(Skip(len));
        }
        return absl::OkStatus();
      }
      case 5: {  // zset2: member, 8-byte double
        ASSIGN_OR_RETURN(uint64_t n, Length());
        for (uint64_t i = 0; i < n; ++i) {
          RETURN_IF_ERROR(SkipString());
          RETURN_IF_ERROR(Skip(8));
        }
        return absl::OkStatus();
      }
      case 18: {  // quicklist 2: container kind, then the node
        ASSIGN_OR_RETURN(uint64_t n, Length());
        for (uint64_t i = 0; i < n; ++i) {
          RETURN_IF_ERROR(Length().status());
          RETURN_IF_ERROR(SkipString());
        }
        return absl::OkStatus();
      }
      case 6:  // Redis refuses it too ("pre-release module format")
        return absl::InvalidArgumentError(
            "the dump holds a module value of Redis 4.0's release candidates, which Redis no "
            "longer loads");
      case 7:  // module id, then the module's fields
        RETURN_IF_ERROR(Length().status());
        return SkipModuleFields();
      case 15:
      case 19:
      case 21:
        return SkipStream(type);
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("not an RDB file (or a newer one): value type ", type));
    }
  }

 private:
  ByteStream* in_;
};

}  // namespace

absl::StatusOr<RdbSummary> SummarizeRdb(ByteStream* in, absl::Time now) {
  RdbReader r(in);
  char magic[9];
  absl::Status head = r.Bytes(magic, 9);
  if (!head.ok() || std::memcmp(magic, "REDIS", 5) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", in->name(), "' is not a Redis dump (no REDIS header)"));
  }
  RdbSummary s;
  if (!absl::SimpleAtoi(absl::string_view(magic + 5, 4), &s.version) || s.version < 1 ||
      s.version > 12) {
    return absl::InvalidArgumentError(absl::StrCat("'", in->name(),
                                                   "' is a Redis dump of an unknown version '",
                                                   std::string(magic + 5, 4), "'"));
  }
  auto wrap = [&](const absl::Status& st) {
    return absl::Status(st.code(), absl::StrCat("unable to read the Redis dump '", in->name(),
                                                "': ", st.message()));
  };
  int64_t db = 0;
  int64_t expiry_ms = -1;  // of the next key
  for (;;) {
    absl::StatusOr<uint8_t> op = r.Byte();
    if (!op.ok()) return wrap(absl::InvalidArgumentError("truncated (no end marker)"));
    absl::Status st;
    switch (*op) {
      case kOpEof:
        return s;  // (the checksum that follows is the server's to check)
      case kOpSelectDb: {
        absl::StatusOr<uint64_t> n = r.Length();
        if (!n.ok()) return wrap(n.status());
        db = static_cast<int64_t>(*n);
        continue;
      }
      case kOpResizeDb:
        st = r.Length().status();
        if (st.ok()) st = r.Length().status();
        break;
      case kOpSlotInfo:
        for (int i = 0; i < 3 && st.ok(); ++i) st = r.Length().status();
        break;
      case kOpAux:
        st = r.SkipStrings(2);
        break;
      case kOpFunction2:
        st = r.SkipString();
        break;
      case kOpFunctionPreGa:  // Redis refuses it too
        return wrap(absl::InvalidArgumentError(
            "it holds functions in Redis 7.0's pre-release format, which Redis no longer loads"));
      case kOpModuleAux:  // module id, when opcode, when, then the fields
        st = r.SkipLengths(3);
        if (st.ok()) st = r.SkipModuleFields();
        break;
      case kOpIdle:
        st = r.Length().status();
        break;
      case kOpFreq:
        st = r.Skip(1);
        break;
      case kOpExpireSec: {
        unsigned char b[4];
        st = r.Bytes(reinterpret_cast<char*>(b), 4);
        expiry_ms = 1000 * static_cast<int64_t>(b[0] | b[1] << 8 | b[2] << 16 |
                                                static_cast<uint32_t>(b[3]) << 24);
        break;
      }
      case kOpExpireMs: {
        unsigned char b[8];
        st = r.Bytes(reinterpret_cast<char*>(b), 8);
        uint64_t v = 0;
        for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
        expiry_ms = static_cast<int64_t>(v);
        break;
      }
      default: {
        // A key of value type *op, then its value.
        st = r.SkipString();
        if (st.ok()) st = r.SkipValue(*op);
        if (!st.ok()) return wrap(st);
        ++s.keys;
        ++s.keys_by_db[db];
        if (expiry_ms >= 0) {
          ++s.with_expiry;
          if (expiry_ms < absl::ToUnixMillis(now)) ++s.expired;
        }
        expiry_ms = -1;
        continue;
      }
    }
    if (!st.ok()) return wrap(st);
  }
}

}  // namespace mastodon_restore
