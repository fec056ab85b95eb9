#include "agent/app/rails_secrets.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace mastodon_restore {

namespace {

constexpr int kArIterations = 1 << 16;   // ActiveSupport::KeyGenerator's default
constexpr int kLegacyIterations = 2000;  // the encryptor gem's hmac_iterations
constexpr size_t kKeyLength = 32;        // aes-256-gcm
constexpr size_t kTagLength = 16;

struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* ctx) const { EVP_CIPHER_CTX_free(ctx); }
};

// Strict base64 (Ruby's strict_decode64): the whole text, padded.
bool StrictBase64(absl::string_view text, std::string* out) {
  if (text.size() % 4 != 0) return false;
  for (char c : text) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') {
      return false;
    }
  }
  return absl::Base64Unescape(text, out);
}

std::string DigestLabel(PbkdfDigest digest) {
  return digest == PbkdfDigest::kSha256 ? "PBKDF2-SHA256" : "PBKDF2-SHA1";
}

}  // namespace

std::string Pbkdf2(absl::string_view password, absl::string_view salt, int iterations, int length,
                   PbkdfDigest digest) {
  std::string out(static_cast<size_t>(length), '\0');
  PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                    reinterpret_cast<const unsigned char*>(salt.data()),
                    static_cast<int>(salt.size()), iterations,
                    digest == PbkdfDigest::kSha256 ? EVP_sha256() : EVP_sha1(), length,
                    reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

std::string LenientBase64Decode(absl::string_view text) {
  std::string clean;
  clean.reserve(text.size());
  for (char c : text) {
    if (c == '=') break;
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/') {
      clean.push_back(c);
    }
  }
  // A lone trailing sextet carries no whole byte (Ruby drops it).
  if (clean.size() % 4 == 1) clean.pop_back();
  std::string out;
  if (!absl::Base64Unescape(clean, &out)) return std::string();
  return out;
}

bool AesGcmAuthenticates(absl::string_view key, absl::string_view iv, absl::string_view ciphertext,
                         absl::string_view tag) {
  if (key.size() != kKeyLength || iv.empty() || tag.size() != kTagLength) return false;
  std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree> ctx(EVP_CIPHER_CTX_new());
  if (ctx == nullptr) return false;
  if (EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv.size()),
                          nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr,
                         reinterpret_cast<const unsigned char*>(key.data()),
                         reinterpret_cast<const unsigned char*>(iv.data())) != 1) {
    return false;
  }
  std::string plain(ciphertext.size() + kTagLength, '\0');
  int len = 0;
  int total = 0;
  bool ok = true;
  if (!ciphertext.empty()) {
    ok = EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &len,
                           reinterpret_cast<const unsigned char*>(ciphertext.data()),
                           static_cast<int>(ciphertext.size())) == 1;
    total = len;
  }
  std::string tag_copy(tag);
  ok = ok && EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagLength),
                                 tag_copy.data()) == 1;
  ok = ok && EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + total,
                                 &len) == 1;
  OPENSSL_cleanse(plain.data(), plain.size());
  return ok;
}

absl::StatusOr<RailsMessage> ParseRailsMessage(absl::string_view stored) {
  google::protobuf::Struct json;
  google::protobuf::util::JsonParseOptions options;
  if (!google::protobuf::util::JsonStringToMessage(std::string(stored), &json, options).ok()) {
    return absl::InvalidArgumentError("not a JSON object");
  }
  const auto& fields = json.fields();
  auto p = fields.find("p");
  auto h = fields.find("h");
  if (p == fields.end() || !p->second.has_string_value()) {
    return absl::InvalidArgumentError("no payload (\"p\")");
  }
  if (h == fields.end() || !h->second.has_struct_value()) {
    return absl::InvalidArgumentError("no headers (\"h\")");
  }
  const auto& headers = h->second.struct_value().fields();
  auto iv = headers.find("iv");
  auto at = headers.find("at");
  if (iv == headers.end() || !iv->second.has_string_value() || at == headers.end() ||
      !at->second.has_string_value()) {
    return absl::InvalidArgumentError("no iv or auth tag in the headers");
  }
  RailsMessage m;
  if (!StrictBase64(p->second.string_value(), &m.payload) ||
      !StrictBase64(iv->second.string_value(), &m.iv) ||
      !StrictBase64(at->second.string_value(), &m.auth_tag)) {
    return absl::InvalidArgumentError("a payload or header is not base64");
  }
  if (m.iv.empty() || m.auth_tag.size() != kTagLength) {
    return absl::InvalidArgumentError("no IV, or an auth tag that is not 16 bytes");
  }
  return m;
}

ActiveRecordKeyring ActiveRecordKeyring::FromEnv(const ParsedEnvFile& env) {
  auto value = [&](const char* key) -> absl::string_view {
    const std::string* v = env.Find(key);
    return v == nullptr ? absl::string_view() : absl::string_view(*v);
  };
  return FromValues(value(kArPrimaryKey), value(kArDeterministicKey), value(kArSalt));
}

ActiveRecordKeyring ActiveRecordKeyring::FromValues(absl::string_view primary_key,
                                                    absl::string_view deterministic_key,
                                                    absl::string_view salt) {
  ActiveRecordKeyring ring;
  if (salt.empty()) return ring;
  std::vector<std::string> primaries;
  if (!primary_key.empty()) {
    primaries.emplace_back(primary_key);
    if (primary_key.find(',') != absl::string_view::npos) {
      for (absl::string_view part : absl::StrSplit(primary_key, ',', absl::SkipWhitespace())) {
        primaries.emplace_back(absl::StripAsciiWhitespace(part));
      }
    }
  }
  for (size_t i = 0; i < primaries.size(); ++i) {
    const std::string which = i == 0 ? "" : absl::StrCat(" part ", i);
    for (PbkdfDigest d : {PbkdfDigest::kSha256, PbkdfDigest::kSha1}) {
      ring.keys_.push_back(
          {absl::StrCat(kArPrimaryKey, which, " (", DigestLabel(d), ")"),
           Pbkdf2(primaries[i], salt, kArIterations, static_cast<int>(kKeyLength), d)});
    }
  }
  if (!deterministic_key.empty()) {
    ring.keys_.push_back({absl::StrCat(kArDeterministicKey, " (PBKDF2-SHA256)"),
                          Pbkdf2(deterministic_key, salt, kArIterations,
                                 static_cast<int>(kKeyLength), PbkdfDigest::kSha256)});
  }
  return ring;
}

absl::StatusOr<std::string> ActiveRecordKeyring::Decrypts(absl::string_view stored) const {
  absl::StatusOr<RailsMessage> m = ParseRailsMessage(stored);
  if (!m.ok()) return m.status();
  for (const Key& key : keys_) {
    if (AesGcmAuthenticates(key.secret, m->iv, m->payload, m->auth_tag)) return key.label;
  }
  return absl::NotFoundError("no key of the env decrypts the value");
}

absl::Status DecryptsLegacyOtpSecret(absl::string_view otp_secret, const LegacyOtpSecret& value) {
  const std::string raw = LenientBase64Decode(value.encrypted);
  const std::string iv = LenientBase64Decode(value.iv);
  const std::string salt = LenientBase64Decode(value.salt);
  if (raw.size() < kTagLength || iv.empty() || salt.empty()) {
    return absl::InvalidArgumentError("malformed encrypted_otp_secret, _iv or _salt");
  }
  if (otp_secret.empty()) return absl::NotFoundError("no OTP_SECRET");
  const std::string key =
      Pbkdf2(otp_secret, salt, kLegacyIterations, static_cast<int>(kKeyLength), PbkdfDigest::kSha1);
  const absl::string_view all(raw);
  if (!AesGcmAuthenticates(key, iv, all.substr(0, all.size() - kTagLength),
                           all.substr(all.size() - kTagLength))) {
    return absl::NotFoundError("OTP_SECRET does not decrypt the value");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> EncryptForActiveRecord(absl::string_view primary_key,
                                                   absl::string_view salt,
                                                   absl::string_view plaintext,
                                                   PbkdfDigest digest) {
  const std::string key =
      Pbkdf2(primary_key, salt, kArIterations, static_cast<int>(kKeyLength), digest);
  unsigned char iv[12];
  if (RAND_bytes(iv, sizeof(iv)) != 1) return absl::InternalError("no random bytes for an IV");
  std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree> ctx(EVP_CIPHER_CTX_new());
  std::string out(plaintext.size() + kTagLength, '\0');
  unsigned char tag[kTagLength];
  int len = 0;
  int total = 0;
  bool ok = ctx != nullptr &&
            EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr,
                               reinterpret_cast<const unsigned char*>(key.data()), iv) == 1;
  if (ok && !plaintext.empty()) {
    ok = EVP_EncryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len,
                           reinterpret_cast<const unsigned char*>(plaintext.data()),
                           static_cast<int>(plaintext.size())) == 1;
    total = len;
  }
  ok = ok && EVP_EncryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + total,
                                 &len) == 1;
  total += len;
  ok = ok &&
       EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagLength), tag) == 1;
  if (!ok) return absl::InternalError("AES-256-GCM encryption failed");
  out.resize(static_cast<size_t>(total));
  return absl::StrCat(
      "{\"p\":\"", absl::Base64Escape(out), "\",\"h\":{\"iv\":\"",
      absl::Base64Escape(absl::string_view(reinterpret_cast<char*>(iv), sizeof(iv))),
      "\",\"at\":\"",
      absl::Base64Escape(absl::string_view(reinterpret_cast<char*>(tag), sizeof(tag))), "\"}}");
}

}  // namespace mastodon_restore
