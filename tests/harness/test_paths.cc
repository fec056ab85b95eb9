#include "tests/harness/test_paths.h"

// The MR_P_* definitions come from tests/CMakeLists.txt (mr_test_paths).
namespace mastodon_restore {
namespace testing {
namespace paths {

const char* SourceDir() { return MR_P_SOURCE_DIR; }
const char* FakesDir() { return MR_P_FAKES_DIR; }
const char* FixtureDir() { return MR_P_FIXTURE_DIR; }
const char* ArchiveFixtureDir() { return MR_P_ARCHIVE_FIXTURE_DIR; }
const char* PgClient17Dir() { return MR_P_PG_CLIENT17_DIR; }
const char* PgliteDir() { return MR_P_PGLITE_DIR; }
const char* PgliteDump() { return MR_P_PGLITE_DUMP; }
const char* GeneratedDir() { return MR_P_GENERATED_DIR; }
const char* AgentBin() { return MR_P_AGENT_BIN; }
const char* CliBin() { return MR_P_CLI_BIN; }
const char* BufBin() { return MR_P_BUF_BIN; }
const char* AnsibleDir() { return MR_P_ANSIBLE_DIR; }
const char* AnsiblePlaybook() { return MR_P_ANSIBLE_PLAYBOOK; }
const char* Protoc() { return MR_P_PROTOC; }
const char* GrpcPythonPlugin() { return MR_P_GRPC_PYTHON_PLUGIN; }

}  // namespace paths
}  // namespace testing
}  // namespace mastodon_restore
