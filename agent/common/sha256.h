// Incremental SHA-256 (OpenSSL EVP) for streams.
#ifndef MR_AGENT_COMMON_SHA256_H_
#define MR_AGENT_COMMON_SHA256_H_

#include <openssl/evp.h>

#include <string>

namespace mastodon_restore {

class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t n) { EVP_DigestUpdate(ctx_, data, n); }
  // The 32-byte digest; call once.
  std::string Final() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, digest, &len);
    return std::string(reinterpret_cast<char*>(digest), len);
  }

 private:
  EVP_MD_CTX* ctx_;
};

}  // namespace mastodon_restore

#endif  // MR_AGENT_COMMON_SHA256_H_
