#include "agent/database/pg_session.h"

namespace mastodon_restore {

std::string PgRows::Scalar() const {
  if (rows.empty() || rows[0].empty() || !rows[0][0].has_value()) return "";
  return *rows[0][0];
}

}  // namespace mastodon_restore
