// Incremental digests (OpenSSL EVP) for streams: SHA-256 (what the media
// restore compares files by), MD5 (what S3 ETags are made of); and the
// lower-case hex of bytes.
#ifndef MR_AGENT_COMMON_DIGEST_H_
#define MR_AGENT_COMMON_DIGEST_H_

#include <openssl/evp.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "absl/strings/string_view.h"

namespace mastodon_restore {

class EvpDigest {
 public:
  explicit EvpDigest(const EVP_MD* md) : ctx_(EVP_MD_CTX_new()) {
    EVP_DigestInit_ex(ctx_, md, nullptr);
  }
  ~EvpDigest() { EVP_MD_CTX_free(ctx_); }
  EvpDigest(const EvpDigest&) = delete;
  EvpDigest& operator=(const EvpDigest&) = delete;
  void Update(const void* data, size_t n) { EVP_DigestUpdate(ctx_, data, n); }
  void Update(absl::string_view data) { Update(data.data(), data.size()); }
  // The raw digest; call once.
  std::string Final() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, digest, &len);
    return std::string(reinterpret_cast<char*>(digest), len);
  }

 private:
  EVP_MD_CTX* ctx_;
};

class Sha256 : public EvpDigest {
 public:
  Sha256() : EvpDigest(EVP_sha256()) {}
};

class Md5 : public EvpDigest {
 public:
  Md5() : EvpDigest(EVP_md5()) {}
};

// The raw SHA-256 of what `fd` reads from its position to its end; "" on a
// read error.
inline std::string Sha256OfFd(int fd) {
  Sha256 hash;
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return "";
    if (n == 0) break;
    hash.Update(buf, static_cast<size_t>(n));
  }
  return hash.Final();
}

// "0a1b..." for the bytes of `raw`.
inline std::string HexOf(absl::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_DIGEST_H_
