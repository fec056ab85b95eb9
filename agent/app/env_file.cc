#include "agent/app/env_file.h"

#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace mastodon_restore {
namespace {

bool IsKeyChar(char c) { return absl::ascii_isalnum(c) || c == '_' || c == '.'; }

const char* const kDatabaseKeys[] = {"DB_HOST",    "DB_PORT", "DB_NAME",     "DB_USER",
                                     "DB_SSLMODE", "DB_POOL", "DATABASE_URL"};

bool IsMediaKey(absl::string_view key) {
  return key == "PAPERCLIP_ROOT_PATH" || key == "PAPERCLIP_ROOT_URL" || key == "CDN_HOST" ||
         (absl::StartsWith(key, "S3_") && !IsSecretKey(key));
}

}  // namespace

const std::string* ParsedEnvFile::Find(absl::string_view key) const {
  const std::string* found = nullptr;
  for (const EnvEntry& e : entries) {
    if (e.key == key) found = &e.value;
  }
  return found;
}

ParsedEnvFile ParseEnvFile(absl::string_view text) {
  ParsedEnvFile out;
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == absl::string_view::npos) eol = text.size();
    absl::string_view line = text.substr(pos, eol - pos);
    ++line_no;
    const int start_line = line_no;
    size_t next = eol + 1;
    absl::string_view s = absl::StripLeadingAsciiWhitespace(line);
    if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
    if (s.empty() || s[0] == '#') {
      pos = next;
      continue;
    }
    if (absl::StartsWith(s, "export ")) s = absl::StripLeadingAsciiWhitespace(s.substr(7));
    size_t k = 0;
    while (k < s.size() && IsKeyChar(s[k])) ++k;
    absl::string_view key = s.substr(0, k);
    absl::string_view rest = absl::StripLeadingAsciiWhitespace(s.substr(k));
    if (key.empty() || rest.empty() || (rest[0] != '=' && rest[0] != ':')) {
      out.warnings.push_back(absl::StrCat("line ", start_line, ": not KEY=VALUE"));
      pos = next;
      continue;
    }
    rest = absl::StripLeadingAsciiWhitespace(rest.substr(1));
    std::string value;
    if (!rest.empty() && (rest[0] == '\'' || rest[0] == '"' || rest[0] == '`')) {
      const char quote = rest[0];
      // The value may continue over the following lines until the quote.
      size_t abs_start = (rest.data() - text.data()) + 1;
      size_t i = abs_start;
      bool closed = false;
      while (i < text.size()) {
        char c = text[i];
        if (c == '\\' && quote == '"' && i + 1 < text.size()) {
          char n = text[i + 1];
          value += n == 'n' ? '\n' : n == 'r' ? '\r' : n == 't' ? '\t' : n;
          i += 2;
          continue;
        }
        if (c == '\\' && quote == '\'' && i + 1 < text.size() && text[i + 1] == '\'') {
          value += '\'';
          i += 2;
          continue;
        }
        if (c == quote) {
          closed = true;
          ++i;
          break;
        }
        if (c == '\n') ++line_no;
        value += c;
        ++i;
      }
      if (!closed) {
        out.warnings.push_back(absl::StrCat("line ", start_line, ": unterminated quote for ", key));
        break;
      }
      size_t after = text.find('\n', i);
      next = after == absl::string_view::npos ? text.size() : after + 1;
    } else {
      size_t hash = absl::string_view::npos;
      for (size_t i = 0; i < rest.size(); ++i) {
        if (rest[i] == '#' && (i == 0 || rest[i - 1] == ' ' || rest[i - 1] == '\t')) {
          hash = i;
          break;
        }
      }
      value = std::string(absl::StripTrailingAsciiWhitespace(rest.substr(0, hash)));
    }
    out.entries.push_back(EnvEntry{std::string(key), std::move(value), start_line});
    pos = next;
  }
  return out;
}

const std::vector<std::string>& RequiredSecretKeys() {
  static const std::vector<std::string>* keys = new std::vector<std::string>{
      "SECRET_KEY_BASE",
      "OTP_SECRET",
      "VAPID_PRIVATE_KEY",
      "VAPID_PUBLIC_KEY",
      "ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY",
      "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT",
      "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY",
  };
  return *keys;
}

bool IsSecretKey(absl::string_view key) {
  for (const std::string& k : RequiredSecretKeys()) {
    if (key == k) return true;
  }
  for (absl::string_view part : {"PASS", "SECRET", "TOKEN", "PRIVATE", "_KEY", "CREDENTIAL"}) {
    if (absl::StrContains(key, part)) return true;
  }
  return key == "DB_PASS" || key == "AWS_ACCESS_KEY_ID" || key == "SMTP_LOGIN";
}

std::string SecretFingerprint(absl::string_view value) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(value.data()), value.size(), digest);
  return absl::StrFormat("%02x%02x%02x%02x", digest[0], digest[1], digest[2], digest[3]);
}

std::string RedactUrlPassword(absl::string_view url) {
  size_t scheme = url.find("://");
  if (scheme == absl::string_view::npos) return std::string(url);
  const size_t host_start = scheme + 3;
  // The authority ends at the path, the query or the fragment; the user
  // info is what precedes its last '@' (a password may hold '@').
  size_t authority_end = url.find_first_of("/?#", host_start);
  if (authority_end == absl::string_view::npos) authority_end = url.size();
  std::string out(url.substr(0, host_start));
  const absl::string_view authority = url.substr(host_start, authority_end - host_start);
  const size_t at = authority.rfind('@');
  const size_t colon = authority.find(':');
  if (at != absl::string_view::npos && colon != absl::string_view::npos && colon < at) {
    absl::StrAppend(&out, authority.substr(0, colon + 1), "***", authority.substr(at));
  } else {
    absl::StrAppend(&out, authority);
  }
  // Query parameters that carry a password (libpq reads password= and
  // sslpassword= there too).
  absl::string_view rest = url.substr(authority_end);
  const size_t query = rest.find('?');
  if (query == absl::string_view::npos) return absl::StrCat(out, rest);
  absl::StrAppend(&out, rest.substr(0, query + 1));
  absl::string_view params = rest.substr(query + 1);
  std::string fragment;
  if (size_t hash = params.find('#'); hash != absl::string_view::npos) {
    fragment = std::string(params.substr(hash));
    params = params.substr(0, hash);
  }
  std::vector<std::string> kept;
  for (absl::string_view param : absl::StrSplit(params, '&')) {
    const size_t eq = param.find('=');
    const std::string key = absl::AsciiStrToLower(param.substr(0, eq));
    if (eq != absl::string_view::npos && absl::StrContains(key, "password")) {
      kept.push_back(absl::StrCat(param.substr(0, eq + 1), "***"));
    } else {
      kept.push_back(std::string(param));
    }
  }
  return absl::StrCat(out, absl::StrJoin(kept, "&"), fragment);
}

mastodon::restore::v1::EnvFileInfo SummarizeEnvFile(const ParsedEnvFile& env,
                                                    const std::string& path) {
  mastodon::restore::v1::EnvFileInfo info;
  info.set_path(path);
  for (const EnvEntry& e : env.entries) info.add_keys(e.key);
  for (const char* key : kDatabaseKeys) {
    if (const std::string* v = env.Find(key)) {
      (*info.mutable_database_settings())[key] =
          std::string(key) == "DATABASE_URL" ? RedactUrlPassword(*v) : *v;
    }
  }
  for (const EnvEntry& e : env.entries) {
    if (IsMediaKey(e.key)) (*info.mutable_media_settings())[e.key] = *env.Find(e.key);
  }
  for (const std::string& key : RequiredSecretKeys()) {
    auto* s = info.add_secrets();
    s->set_key(key);
    const std::string* v = env.Find(key);
    s->set_present(v != nullptr && !v->empty());
    if (s->present()) s->set_fingerprint(SecretFingerprint(*v));
  }
  for (const std::string& w : env.warnings) info.add_warnings(w);
  return info;
}

}  // namespace mastodon_restore
