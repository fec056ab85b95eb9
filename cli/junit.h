// The JUnit XML report of verify-backup: one test case for the restore and
// one per verification check, as CI systems (GitHub Actions, GitLab) show.
#ifndef MR_CLI_JUNIT_H_
#define MR_CLI_JUNIT_H_

#include <string>

#include "mastodon/restore/v1/operation.pb.h"

namespace mastodon_restore {

// `restore` is the restore operation as it ended; `verify` the verification
// (null when the restore failed and nothing was verified).
std::string JUnitReport(const std::string& source, const mastodon::restore::v1::Operation& restore,
                        const mastodon::restore::v1::Operation* verify);

// `text` escaped for XML attributes and text.
std::string XmlEscape(const std::string& text);

}  // namespace mastodon_restore

#endif  // MR_CLI_JUNIT_H_
