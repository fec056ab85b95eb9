#include "tests/harness/rails_vectors.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "agent/common/subprocess.h"
#include "tests/harness/test_paths.h"

namespace mastodon_restore {
namespace testing {

namespace {

// Runs the script with `request`; its answer's string fields.
absl::StatusOr<std::map<std::string, std::string>> Run(
    const std::map<std::string, google::protobuf::Value>& request) {
  google::protobuf::Struct in;
  for (const auto& [k, v] : request) (*in.mutable_fields())[k] = v;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(in, &json).ok()) {
    return absl::InternalError("unable to write the request");
  }
  std::unique_ptr<CommandRunner> runner = NewPosixCommandRunner();
  CommandSpec spec;
  spec.argv = {"/usr/bin/ruby", std::string(MR_SOURCE_DIR) + "/tests/fixtures/rails_secrets.rb"};
  spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
  spec.stdin_data = json;
  spec.timeout = absl::Seconds(60);
  absl::StatusOr<CommandResult> r = runner->Run(spec, nullptr);
  if (!r.ok()) return r.status();
  if (!r->success()) {
    return absl::InternalError(
        absl::StrCat("rails_secrets.rb ", r->Describe(), ": ", r->stderr_text));
  }
  google::protobuf::Struct out;
  if (!google::protobuf::util::JsonStringToMessage(r->stdout_text, &out).ok()) {
    return absl::InternalError(absl::StrCat("unexpected answer: ", r->stdout_text));
  }
  std::map<std::string, std::string> fields;
  for (const auto& [k, v] : out.fields()) fields[k] = v.string_value();
  return fields;
}

google::protobuf::Value Str(const std::string& s) {
  google::protobuf::Value v;
  v.set_string_value(s);
  return v;
}

}  // namespace

absl::StatusOr<std::string> RubyArEncrypt(const std::string& key, const std::string& salt,
                                          const std::string& plaintext, const std::string& digest,
                                          bool deterministic) {
  google::protobuf::Value det;
  det.set_bool_value(deterministic);
  auto r = Run({{"op", Str("ar_encrypt")},
                {"key", Str(key)},
                {"salt", Str(salt)},
                {"digest", Str(digest)},
                {"plaintext", Str(plaintext)},
                {"deterministic", det}});
  if (!r.ok()) return r.status();
  return (*r)["stored"];
}

absl::StatusOr<std::string> RubyArDecrypt(const std::string& key, const std::string& salt,
                                          const std::string& stored, const std::string& digest) {
  auto r = Run({{"op", Str("ar_decrypt")},
                {"key", Str(key)},
                {"salt", Str(salt)},
                {"digest", Str(digest)},
                {"stored", Str(stored)}});
  if (!r.ok()) return r.status();
  if (r->count("error") > 0) return absl::NotFoundError((*r)["error"]);
  return (*r)["plaintext"];
}

absl::StatusOr<LegacyOtpVector> RubyLegacyEncrypt(const std::string& otp_secret,
                                                  const std::string& plaintext) {
  auto r = Run({{"op", Str("legacy_encrypt")},
                {"otp_secret", Str(otp_secret)},
                {"plaintext", Str(plaintext)}});
  if (!r.ok()) return r.status();
  return LegacyOtpVector{(*r)["encrypted_otp_secret"], (*r)["encrypted_otp_secret_iv"],
                         (*r)["encrypted_otp_secret_salt"]};
}

}  // namespace testing
}  // namespace mastodon_restore
