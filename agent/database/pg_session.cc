#include "agent/database/pg_session.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace mastodon_restore {

std::string PgRows::Scalar() const {
  if (rows.empty() || rows[0].empty() || !rows[0][0].has_value()) return "";
  return *rows[0][0];
}

std::vector<std::string> PgRows::FirstColumn() const {
  std::vector<std::string> out;
  for (const auto& row : rows) {
    if (!row.empty() && row[0].has_value()) out.push_back(*row[0]);
  }
  return out;
}

int64_t IntOrZero(const std::optional<std::string>& value) {
  int64_t n = 0;
  if (value.has_value() && absl::SimpleAtoi(*value, &n)) return n;
  return 0;
}

absl::Status SessionError(PgSession* session, const absl::Status& status, const std::string& what) {
  const std::string message = session->last_error().message.empty() ? std::string(status.message())
                                                                    : session->last_error().message;
  return absl::Status(status.code(), absl::StrCat("unable to ", what, ": ", message));
}

}  // namespace mastodon_restore
