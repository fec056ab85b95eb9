// Archives made by real pg_dump 15 and 17 of PostgreSQL 14, 15, 16 and 17
// servers (custom, directory and tar formats; no compression, gzip, lz4,
// zstd; a custom archive streamed out of a .tar.gz), cluster dumps by real
// pg_dumpall 15 and 17 (their Mastodon database), and plain dumps made by
// a real pg_dump 18 (PGlite's, of the same database in PGlite; and its custom
// and tar archives), restored by the
// agent's own archive reader into real PostgreSQL 14, 15, 16, 17 and 18
// servers: each restored database must equal its source (rows, sequences,
// owners, ACLs, comments, large objects, constraints, indexes), and no
// command may run (no pg_restore anywhere: the runner refuses every command
// and the pg_restore root does not exist).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/common/status_macros.h"
#include "agent/database/database_restore.h"
#include "agent/dump/archive_script.h"
#include "agent/inventory/inspector.h"
#include "tests/harness/db_snapshot.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_paths.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

using ::mastodon_restore::testing::DatabaseSnapshot;
using ::mastodon_restore::testing::TestPostgres;
using ::testing::IsEmpty;

const std::string kDir = MR_ARCHIVE_FIXTURE_DIR;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A runner that runs nothing: any command the restore tries is recorded and
// fails.
class RefusingRunner : public CommandRunner {
 public:
  absl::StatusOr<CommandResult> Run(const CommandSpec& spec, const CancelToken*) override {
    return Refuse(spec);
  }
  absl::StatusOr<std::unique_ptr<Process>> Start(const CommandSpec& spec) override {
    return Refuse(spec);
  }
  absl::StatusOr<std::unique_ptr<ByteStream>> StartReading(const CommandSpec& spec,
                                                           const std::string&) override {
    return Refuse(spec);
  }
  std::vector<std::string> refused() {
    std::lock_guard<std::mutex> lock(mu_);
    return refused_;
  }

 private:
  absl::Status Refuse(const CommandSpec& spec) {
    std::lock_guard<std::mutex> lock(mu_);
    refused_.push_back(spec.argv.empty() ? "" : spec.argv[0]);
    return absl::FailedPreconditionError(absl::StrCat("no command may run: ", refused_.back()));
  }
  std::mutex mu_;
  std::vector<std::string> refused_;
};

struct ManifestEntry {
  std::string source, path, member, format;
};

std::vector<ManifestEntry> Manifest() {
  std::vector<ManifestEntry> out;
  for (absl::string_view line :
       absl::StrSplit(ReadFile(kDir + "/manifest.txt"), '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    if (f.size() != 4) continue;
    out.push_back({f[0], f[1], f[2] == "-" ? "" : f[2], f[3]});
  }
  return out;
}

class ArchiveMatrixTest : public ::testing::TestWithParam<int> {};

TEST_P(ArchiveMatrixTest, EveryDumpRestoresEqualToItsSource) {
  const std::vector<ManifestEntry> dumps = Manifest();
  ASSERT_GE(dumps.size(), 20u) << "archive fixtures missing: " << kDir;
  auto pg = TestPostgres::Start(GetParam());
  ASSERT_OK(pg);
  ASSERT_OK((*pg)->Exec("CREATE ROLE mastodon; CREATE ROLE reader"));
  auto env = NewPosixEnv();
  RefusingRunner runner;
  int n = 0;
  for (const ManifestEntry& d : dumps) {
    SCOPED_TRACE(absl::StrCat(d.path, " ", d.member, " into PostgreSQL ", GetParam()));
    DatabaseRestoreRequest r;
    r.source_path = kDir + "/" + d.path;
    r.source.allowed_roots = {kDir};
    r.conninfo = (*pg)->ConnInfo();
    r.database = absl::StrCat("restored_", n++);
    r.owner = "mastodon";
    r.operation_id = "op1";
    r.postgres_root = "/nonexistent/no-pg_restore-here";
    r.jobs = 2;
    r.chunk_bytes = 64 << 10;
    InspectOptions inspect;
    inspect.target_major = GetParam();
    auto dump = DetectDumpToRestore(r.source_path, d.member, "", r.source, inspect, &runner);
    ASSERT_OK(dump);
    EXPECT_EQ(absl::AsciiStrToLower(mastodon::restore::v1::DumpFormat_Name(dump->dump.format())),
              "dump_format_" + d.format);
    r.dump = dump->dump;
    r.cluster_database = dump->cluster_database;
    auto result = RestoreDatabase(r, &runner, env.get());
    ASSERT_OK(result);
    EXPECT_TRUE(result->verification.passed());
    auto snapshot = DatabaseSnapshot((*pg)->ConnInfo(r.database));
    ASSERT_OK(snapshot);
    EXPECT_EQ(*snapshot, ReadFile(kDir + "/expected-" + d.source + ".txt"));
  }
  EXPECT_THAT(runner.refused(), IsEmpty());
}

// The script the reader renders is the one pg_restore --file=- writes for
// the same archive (pg_restore 17 reads every fixture; 15 the 1.14 ones),
// but for the \restrict lines of newer pg_restore (a psql safeguard the
// loader does not need), and for pg_restore 15 the SET transaction_timeout
// it does not know and its ALTER TABLE for the owner of views and sequences.
TEST(ArchiveScriptTest, RendersWhatPgRestoreRenders) {
  const std::vector<ManifestEntry> dumps = Manifest();
  ASSERT_GE(dumps.size(), 20u) << "archive fixtures missing: " << kDir;
  auto runner = NewPosixCommandRunner();
  auto strip = [](const std::string& script, bool timeout) {
    std::string out;
    bool after_restrict = false;
    for (absl::string_view line : absl::StrSplit(script, '\n')) {
      // pg_restore writes "\\restrict KEY\n\n" and "\\unrestrict KEY\n\n".
      if (absl::StartsWith(line, "\\restrict ") || absl::StartsWith(line, "\\unrestrict ")) {
        after_restrict = true;
        continue;
      }
      if (after_restrict && line.empty()) {
        after_restrict = false;
        continue;
      }
      after_restrict = false;
      if (!timeout && line == "SET transaction_timeout = 0;") continue;
      // pg_restore <= 16 changes the owner of views and sequences with ALTER
      // TABLE; 17 (and the reader) name the kind.
      std::string text(line);
      for (const char* kind : {"ALTER SEQUENCE ", "ALTER VIEW ", "ALTER MATERIALIZED VIEW "}) {
        if (!timeout && absl::StartsWith(text, kind) && absl::StrContains(text, " OWNER TO ")) {
          text = "ALTER TABLE " + text.substr(std::strlen(kind));
        }
      }
      absl::StrAppend(&out, text, "\n");
    }
    return out;
  };
  int compared = 0;
  for (const ManifestEntry& d : dumps) {
    if (!d.member.empty() || d.format == "plain") continue;
    SCOPED_TRACE(d.path);
    const std::string path = kDir + "/" + d.path;
    absl::StatusOr<std::unique_ptr<ArchiveScript>> script;
    std::unique_ptr<FileStream> file;
    if (d.format == "directory") {
      script = ArchiveScript::OpenDirectory(path);
    } else {
      auto opened = FileStream::Open(path);
      ASSERT_OK(opened);
      file = std::move(*opened);
      script = d.format == "tar" ? ArchiveScript::OpenTar(file.get())
                                 : ArchiveScript::OpenCustom(file.get());
    }
    ASSERT_OK(script);
    std::string mine;
    char buf[4096];  // small reads: the renderer's buffering is exercised
    while (true) {
      auto got = (*script)->Read(buf, sizeof(buf));
      ASSERT_OK(got);
      if (*got == 0) break;
      mine.append(buf, *got);
    }
    const bool v116 = (*script)->header().vmin >= 15;
    for (const std::string& pg_restore : {std::string(MR_PG_CLIENT17_DIR) + "/pg_restore",
                                          std::string("/usr/lib/postgresql/15/bin/pg_restore")}) {
      const bool is15 = absl::StrContains(pg_restore, "/15/");
      if (is15 && v116) continue;
      const std::string out = kDir + "/pg_restore-output.sql";
      CommandSpec spec;
      spec.argv = {pg_restore, "--file=" + out, path};
      spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C.UTF-8"};
      auto r = runner->Run(spec, nullptr);
      ASSERT_OK(r);
      ASSERT_EQ(r->exit_code, 0) << r->stderr_text;
      const std::string theirs = strip(ReadFile(out), !is15);
      if (strip(mine, !is15) != theirs) {
        std::ofstream(kDir + "/mismatch-mine.sql") << strip(mine, !is15);
        std::ofstream(kDir + "/mismatch-theirs.sql") << theirs;
        ADD_FAILURE() << "the script differs from " << pg_restore << "'s (diff " << kDir
                      << "/mismatch-{mine,theirs}.sql)";
        return;
      }
      ++compared;
    }
  }
  EXPECT_GE(compared, 20);
}

INSTANTIATE_TEST_SUITE_P(Targets, ArchiveMatrixTest, ::testing::ValuesIn(TestPostgres::AllMajors()),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return absl::StrCat("PostgreSQL", info.param);
                         });

}  // namespace
}  // namespace mastodon_restore
