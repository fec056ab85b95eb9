// What a restored database must have kept, as text that compares equal
// between servers of different majors (14 to 18): per user table its row
// count and a checksum of its rows, sequences' values, owners and ACLs of
// schemas, relations and functions, column types/defaults/NOT NULL,
// constraints and indexes, comments, and large objects (owner, ACL,
// checksum of the content). Version-dependent defaults (the public schema,
// 17's MAINTAIN privilege, 18's NOT NULL constraint rows) are left out.
#ifndef MR_TESTS_HARNESS_DB_SNAPSHOT_H_
#define MR_TESTS_HARNESS_DB_SNAPSHOT_H_

#include <string>

#include "absl/status/statusor.h"

namespace mastodon_restore {
namespace testing {

// The snapshot of the database `conninfo` connects to.
absl::StatusOr<std::string> DatabaseSnapshot(const std::string& conninfo);

}  // namespace testing
}  // namespace mastodon_restore

#endif  // MR_TESTS_HARNESS_DB_SNAPSHOT_H_
