#include "agent/archive/sniff.h"

#include "absl/strings/match.h"

namespace mastodon_restore {
namespace {

bool HasPrefix(absl::string_view s, absl::string_view p) { return absl::StartsWith(s, p); }

// OpenPGP binary packets that open an encrypted message: a public-key (tag
// 1, v3/v6) or symmetric-key (tag 3, v4/v5/v6) session key packet, checked
// down to its algorithm bytes so that random data rarely matches.
bool LooksLikeOpenPgpBinary(absl::string_view head) {
  if (head.size() < 16) return false;
  unsigned char b = static_cast<unsigned char>(head[0]);
  if ((b & 0x80) == 0) return false;
  const bool new_format = (b & 0x40) != 0;
  int tag = new_format ? (b & 0x3f) : ((b >> 2) & 0x0f);
  if (tag != 1 && tag != 3) return false;
  size_t body;
  if (new_format) {
    unsigned char l = static_cast<unsigned char>(head[1]);
    if (l >= 224) return false;  // partial lengths never start these packets
    body = l < 192 ? 2 : 3;
  } else {
    int len_type = b & 0x03;
    if (len_type == 3) return false;
    body = len_type == 0 ? 2 : len_type == 1 ? 3 : 5;
  }
  auto at = [&](size_t i) { return static_cast<unsigned char>(head[body + i]); };
  if (tag == 3) {
    // version, symmetric algorithm 1..13, S2K specifier 0, 1 or 3.
    return at(0) == 4 && at(1) >= 1 && at(1) <= 13 && (at(2) == 0 || at(2) == 1 || at(2) == 3);
  }
  // version 3, 8-byte key id, public-key algorithm.
  const unsigned char algo = at(9);
  return at(0) == 3 && (algo == 1 || algo == 2 || algo == 16 || algo == 18 || algo == 22);
}

bool IsText(absl::string_view head) {
  for (char c : head) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u == 0) return false;
    if (u < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f') return false;
  }
  return true;
}

}  // namespace

ContentKind Sniff(absl::string_view head) {
  if (head.empty()) return ContentKind::kEmpty;
  if (HasPrefix(head, "\x1f\x8b\x08")) return ContentKind::kGzip;
  if (head.size() >= 4 && HasPrefix(head, "BZh") && head[3] >= '1' && head[3] <= '9') {
    return ContentKind::kBzip2;
  }
  if (HasPrefix(head, absl::string_view("\xfd"
                                        "7zXZ\x00",
                                        6)))
    return ContentKind::kXz;
  if (HasPrefix(head, "\x28\xb5\x2f\xfd")) return ContentKind::kZstd;
  if (HasPrefix(head, "\x04\x22\x4d\x18") || HasPrefix(head, "\x02\x21\x4c\x18")) {
    return ContentKind::kLz4;
  }
  if (HasPrefix(head, "PK\x03\x04") || HasPrefix(head, "PK\x05\x06")) return ContentKind::kZip;
  if (HasPrefix(head, "7z\xbc\xaf\x27\x1c")) return ContentKind::kSevenZip;
  if (head.size() >= 262 && head.substr(257, 5) == "ustar") return ContentKind::kTar;
  if (HasPrefix(head, "age-encryption.org/v1\n") ||
      HasPrefix(head, "-----BEGIN AGE ENCRYPTED FILE-----")) {
    return ContentKind::kAge;
  }
  if (HasPrefix(head, "-----BEGIN PGP MESSAGE-----") || LooksLikeOpenPgpBinary(head)) {
    return ContentKind::kOpenPgp;
  }
  if (HasPrefix(head, "PGDMP")) {
    if (head.size() > 10 && head[10] == 3) return ContentKind::kPgTocDat;
    return ContentKind::kPgCustom;
  }
  if (HasPrefix(head, "--\n-- PostgreSQL database dump\n--\n")) return ContentKind::kPlainDump;
  if (HasPrefix(head, "--\n-- PostgreSQL database cluster dump\n--\n")) {
    return ContentKind::kPlainDumpall;
  }
  if (HasPrefix(head, "--\n-- NOTE:\n")) return ContentKind::kTarRestoreScript;
  return IsText(head) ? ContentKind::kText : ContentKind::kBinary;
}

const char* ContentKindName(ContentKind kind) {
  switch (kind) {
    case ContentKind::kEmpty:
      return "empty";
    case ContentKind::kGzip:
      return "gzip";
    case ContentKind::kBzip2:
      return "bzip2";
    case ContentKind::kXz:
      return "xz";
    case ContentKind::kZstd:
      return "zstd";
    case ContentKind::kLz4:
      return "lz4";
    case ContentKind::kZip:
      return "zip";
    case ContentKind::kSevenZip:
      return "7z";
    case ContentKind::kTar:
      return "tar";
    case ContentKind::kAge:
      return "age";
    case ContentKind::kOpenPgp:
      return "openpgp";
    case ContentKind::kPgCustom:
      return "pg_dump custom archive";
    case ContentKind::kPgTocDat:
      return "pg_dump toc.dat";
    case ContentKind::kPlainDump:
      return "plain pg_dump";
    case ContentKind::kPlainDumpall:
      return "plain pg_dumpall";
    case ContentKind::kTarRestoreScript:
      return "pg_dump tar restore.sql";
    case ContentKind::kText:
      return "text";
    case ContentKind::kBinary:
      return "binary";
  }
  return "unknown";
}

bool IsCompression(ContentKind kind) {
  return kind == ContentKind::kGzip || kind == ContentKind::kBzip2 || kind == ContentKind::kXz ||
         kind == ContentKind::kZstd || kind == ContentKind::kLz4;
}

bool IsArchive(ContentKind kind) {
  return kind == ContentKind::kZip || kind == ContentKind::kSevenZip || kind == ContentKind::kTar;
}

}  // namespace mastodon_restore
