// verify-backup's machine-readable report (--json).
#ifndef MR_CLI_BACKUP_REPORT_H_
#define MR_CLI_BACKUP_REPORT_H_

#include <google/protobuf/message.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <string>

#include "absl/status/statusor.h"
#include "mastodon/restore/v1/operation.pb.h"

namespace mastodon_restore {

// The report of verify-backup: the backup `source`, the scratch `database`,
// `passed` (exit_code 0), the `exit_code`, and both operations as they ended:
// `restore`, and `verify` (null when the restore failed and nothing was
// verified). Its JSON:
//   {"database": ..., "exit_code": 1, "passed": false, "restore": {...},
//    "source": ..., "verify": {...}}
// The operations are in their own JSON mapping with proto field names, so a
// script reads "verify" back as a mastodon.restore.v1.Operation.
//
// A google.protobuf.Struct, because proto/ has no message for this report (a
// CLI-side aggregate of two operations, not part of the agent's API) and an
// Operation alone would lose the source, the database and the exit code that
// scripts and docs/ci.md rely on.
google::protobuf::Struct BackupCheckReport(const std::string& source, const std::string& database,
                                           const mastodon::restore::v1::Operation& restore,
                                           const mastodon::restore::v1::Operation* verify,
                                           int exit_code);

// `message` in protobuf's JSON mapping (what MessageToJsonString prints) with
// map entries, and so a Struct's keys, in sorted order: MessageToJsonString
// serializes maps in hash order, which differs from run to run.
absl::StatusOr<std::string> SortedJson(const google::protobuf::Message& message,
                                       const google::protobuf::util::JsonPrintOptions& options);

}  // namespace mastodon_restore

#endif  // MR_CLI_BACKUP_REPORT_H_
