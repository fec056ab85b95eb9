#include "agent/app/secrets_check.h"

#include <set>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/app/rails_secrets.h"
#include "agent/common/status_macros.h"
#include "agent/database/app_queries.h"

namespace mastodon_restore {

namespace v1 = ::mastodon::restore::v1;

namespace {

// One column's tally.
struct ColumnTally {
  v1::EncryptedColumnCheck check;
  std::set<std::string> keys;

  // Records one tried value; true when it decrypted.
  bool Add(const absl::Status& result, const std::string& key) {
    check.set_sampled(check.sampled() + 1);
    if (result.ok()) {
      check.set_decrypted(check.decrypted() + 1);
      keys.insert(key);
      return true;
    }
    check.set_failed(check.failed() + 1);
    if (absl::IsInvalidArgument(result)) check.set_malformed(check.malformed() + 1);
    return false;
  }
  v1::EncryptedColumnCheck Done() {
    for (const std::string& k : keys) check.add_keys_used(k);
    return check;
  }
};

bool Present(const ParsedEnvFile* env, const char* key) {
  const std::string* v = env == nullptr ? nullptr : env->Find(key);
  return v != nullptr && !v->empty();
}

std::string ColumnLine(const v1::EncryptedColumnCheck& c) {
  std::string line = absl::StrCat(c.column(), ": ", c.decrypted(), " of ", c.sampled(), " decrypt");
  if (c.sampled() < c.rows()) absl::StrAppend(&line, " (", c.rows(), " rows, the first tried)");
  if (c.malformed() > 0) absl::StrAppend(&line, ", ", c.malformed(), " malformed");
  return line;
}

}  // namespace

absl::StatusOr<v1::SecretsCheck> CheckAppSecrets(PgSession* db, const ParsedEnvFile* env,
                                                 const std::string& env_source, int sample_limit) {
  v1::SecretsCheck out;
  out.set_env_source(env_source);
  ASSIGN_OR_RETURN(UsersOtpColumns columns, ReadUsersOtpColumns(db));
  ASSIGN_OR_RETURN(UserOtpSample sample, SampleUserOtpSecrets(db, columns, sample_limit));
  out.set_two_factor_users(sample.two_factor_users);
  const int64_t encrypted = sample.otp_secret_rows + sample.legacy_rows;
  if (encrypted == 0) {
    out.set_checked(env != nullptr);
    out.set_summary(!columns.users_table
                        ? "no users table: nothing encrypted to check"
                        : "no encrypted two-factor secrets in the database: nothing to check");
    return out;
  }
  if (env == nullptr) {
    const std::tuple<const char*, const char*, int64_t> found[] = {
        {"users.otp_secret", "active_record", sample.otp_secret_rows},
        {"users.encrypted_otp_secret", "devise_two_factor", sample.legacy_rows}};
    for (const auto& [column, scheme, rows] : found) {
      if (rows == 0) continue;
      v1::EncryptedColumnCheck* c = out.add_columns();
      c->set_column(column);
      c->set_scheme(scheme);
      c->set_rows(rows);
    }
    out.set_summary(absl::StrCat(encrypted,
                                 " encrypted two-factor secrets, and no env file to check them "
                                 "with: not checked"));
    return out;
  }
  out.set_checked(true);

  // The keys the data needs (Mastodon 4.3+ refuses to start without any of
  // the three ACTIVE_RECORD_ENCRYPTION_* keys).
  if (sample.otp_secret_rows > 0) {
    for (const char* key : {kArPrimaryKey, kArDeterministicKey, kArSalt}) {
      if (!Present(env, key)) out.add_missing_keys(key);
    }
  }
  const bool legacy_used = columns.legacy;
  const ActiveRecordKeyring ring =
      sample.otp_secret_rows > 0 ? ActiveRecordKeyring::FromEnv(*env) : ActiveRecordKeyring();
  const std::string* otp_secret = env->Find(kOtpSecret);

  ColumnTally ar;
  ar.check.set_column("users.otp_secret");
  ar.check.set_scheme("active_record");
  ar.check.set_rows(sample.otp_secret_rows);
  ColumnTally legacy;
  legacy.check.set_column("users.encrypted_otp_secret");
  legacy.check.set_scheme("devise_two_factor");
  legacy.check.set_rows(sample.legacy_rows);
  bool legacy_needed = false;
  for (const UserOtpSecret& row : sample.rows) {
    bool ok = false;
    if (row.otp_secret.has_value()) {
      absl::StatusOr<std::string> key =
          ring.empty() ? absl::StatusOr<std::string>(absl::NotFoundError("no keys"))
                       : ring.Decrypts(*row.otp_secret);
      ok = ar.Add(key.status(), key.ok() ? *key : std::string());
    } else if (legacy_used && row.encrypted_otp_secret.has_value()) {
      // The app reads the old column only while otp_secret is unset.
      legacy_needed = true;
      LegacyOtpSecret value{*row.encrypted_otp_secret, row.encrypted_otp_secret_iv.value_or(""),
                            row.encrypted_otp_secret_salt.value_or("")};
      ok = legacy.Add(DecryptsLegacyOtpSecret(otp_secret == nullptr ? "" : *otp_secret, value),
                      kOtpSecret);
    } else {
      continue;
    }
    if (row.two_factor) {
      out.set_two_factor_users_sampled(out.two_factor_users_sampled() + 1);
      if (!ok) out.set_two_factor_users_broken(out.two_factor_users_broken() + 1);
    }
  }
  if (legacy_needed && !Present(env, kOtpSecret)) out.add_missing_keys(kOtpSecret);

  std::vector<std::string> lines;
  int64_t failed = 0;
  if (ar.check.rows() > 0) {
    failed += ar.check.failed();
    *out.add_columns() = ar.Done();
    lines.push_back(ColumnLine(out.columns(out.columns_size() - 1)));
  }
  if (legacy.check.sampled() > 0) {
    failed += legacy.check.failed();
    *out.add_columns() = legacy.Done();
    lines.push_back(ColumnLine(out.columns(out.columns_size() - 1)));
  }
  out.set_mismatch(failed > 0 || out.missing_keys_size() > 0);
  std::string summary = absl::StrJoin(lines, "; ");
  if (out.missing_keys_size() > 0) {
    absl::StrAppend(&summary, "; the env lacks ", absl::StrJoin(out.missing_keys(), ", "));
  }
  if (out.mismatch()) {
    absl::StrAppend(&summary, "; ", out.two_factor_users_broken(), " of ",
                    out.two_factor_users_sampled(),
                    " users with two-factor login tried would be locked out");
  }
  out.set_summary(absl::StrCat(summary, " (", env_source, ")"));
  return out;
}

}  // namespace mastodon_restore
