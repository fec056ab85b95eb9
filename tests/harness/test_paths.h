// Where the tests find the build's programs, the source tree's files and the
// fixtures generated at test time. The absolute paths are compiled into one
// small translation unit (test_paths.cc, definitions from tests/CMakeLists.txt)
// instead of into every test's: a command line that holds a checkout's path
// misses ccache in every other checkout, so a clean clone (CI) would rebuild
// every test translation unit that used them.
#ifndef MR_TESTS_HARNESS_TEST_PATHS_H_
#define MR_TESTS_HARNESS_TEST_PATHS_H_

namespace mastodon_restore {
namespace testing {
namespace paths {

const char* SourceDir();          // the checkout
const char* FakesDir();           // tests/fakes
const char* FixtureDir();         // BUILD/fixtures (DumpFixtures.Generate)
const char* ArchiveFixtureDir();  // BUILD/archive-fixtures (ArchiveFixtures.Generate)
const char* PgClient17Dir();      // .tools/postgres/client-17/bin
const char* PgliteDir();          // .tools/pglite
const char* PgliteDump();         // tests/fixtures/pglite_dump.mjs
const char* GeneratedDir();       // BUILD/generated (completions, manual pages)
const char* AgentBin();           // mastodon-restore-agent
const char* CliBin();             // mastodon-restore
const char* BufBin();             // .tools/buf/node_modules/.bin/buf
const char* AnsibleDir();         // ansible/
const char* AnsiblePlaybook();    // ansible-playbook
const char* Protoc();             // protoc
const char* GrpcPythonPlugin();   // grpc_python_plugin

}  // namespace paths
}  // namespace testing
}  // namespace mastodon_restore

// The names the tests use.
#define MR_SOURCE_DIR (::mastodon_restore::testing::paths::SourceDir())
#define MR_FAKES_DIR (::mastodon_restore::testing::paths::FakesDir())
#define MR_FIXTURE_DIR (::mastodon_restore::testing::paths::FixtureDir())
#define MR_ARCHIVE_FIXTURE_DIR (::mastodon_restore::testing::paths::ArchiveFixtureDir())
#define MR_PG_CLIENT17_DIR (::mastodon_restore::testing::paths::PgClient17Dir())
#define MR_PGLITE_DIR (::mastodon_restore::testing::paths::PgliteDir())
#define MR_PGLITE_DUMP (::mastodon_restore::testing::paths::PgliteDump())
#define MR_GENERATED_DIR (::mastodon_restore::testing::paths::GeneratedDir())
#define MR_AGENT_BIN (::mastodon_restore::testing::paths::AgentBin())
#define MR_CLI_BIN (::mastodon_restore::testing::paths::CliBin())
#define MR_BUF_BIN (::mastodon_restore::testing::paths::BufBin())
#define MR_ANSIBLE_DIR (::mastodon_restore::testing::paths::AnsibleDir())
#define MR_ANSIBLE_PLAYBOOK (::mastodon_restore::testing::paths::AnsiblePlaybook())
#define MR_PROTOC (::mastodon_restore::testing::paths::Protoc())
#define MR_GRPC_PYTHON_PLUGIN (::mastodon_restore::testing::paths::GrpcPythonPlugin())

#endif  // MR_TESTS_HARNESS_TEST_PATHS_H_
