// A throwaway PostgreSQL cluster for tests: initdb in a temp dir, a free port,
// a private socket dir, fast unsafe settings. Works when the suite runs as
// root (the server runs as the `postgres` user) and as a normal user.
//
// There is no skip: if the server cannot start, Start() returns the reason and
// the test fails with it.
#ifndef MR_TESTS_HARNESS_TEST_POSTGRES_H_
#define MR_TESTS_HARNESS_TEST_POSTGRES_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/common/env.h"
#include "agent/common/subprocess.h"
#include "agent/database/local_cluster.h"

namespace mastodon_restore {
namespace testing {

class TestPostgres {
 public:
  // Starts a new cluster of PostgreSQL `major`: 15 is the distribution's
  // (/usr/lib/postgresql/15), 13 (a dump source only), 14, 16, 17 and 18
  // are the ones scripts/install-postgres puts under .tools/postgres/<major> (server
  // binaries only: no pg_dump, psql or pg_restore there). A major that is not
  // installed is FAILED_PRECONDITION naming the install command. The server
  // stops when the object is destroyed (or when the starting thread exits,
  // should the test crash). `settings` ("name=value") are given to the
  // server on its command line (e.g. wal_level=logical).
  static absl::StatusOr<std::unique_ptr<TestPostgres>> Start(
      int major = 15, const std::vector<std::string>& settings = {});

  // The majors the suite restores into (14 to 18).
  static std::vector<int> AllMajors() { return {14, 15, 16, 17, 18}; }
  // Directory with initdb/pg_ctl/postgres of `major`.
  static std::string ServerBinDir(int major);

  ~TestPostgres();

  // Superuser conninfo over the private socket.
  std::string ConnInfo(const std::string& dbname = "postgres") const {
    return cluster_->ConnInfo(dbname);
  }
  // Superuser conninfo over TCP on 127.0.0.1.
  std::string TcpConnInfo(const std::string& dbname = "postgres") const {
    return cluster_->TcpConnInfo(dbname);
  }
  const std::string& superuser() const { return superuser_; }
  LocalCluster* cluster() { return cluster_.get(); }
  const std::string& base_dir() const { return base_dir_; }
  // Directory with the server's binaries (for 15 also pg_dump, psql, ...).
  const std::string& bin_dir() const { return cluster_->bin_dir(); }
  int major() const { return cluster_->major_version(); }

  // Runs SQL (one or more statements) as the superuser in `dbname`.
  absl::Status Exec(const std::string& sql, const std::string& dbname = "postgres") const;
  // First column of the first row of a query ("" for NULL).
  absl::StatusOr<std::string> QueryValue(const std::string& sql,
                                         const std::string& dbname = "postgres") const;

 private:
  TestPostgres() = default;
  std::unique_ptr<Env> env_;
  std::unique_ptr<CommandRunner> runner_;
  std::unique_ptr<LocalCluster> cluster_;
  std::string base_dir_;
  std::string superuser_ = "postgres";
};

// Creates a temp directory (mode 0755) under $TMPDIR or /tmp; when
// `owner_uid`/`owner_gid` are >= 0 it is handed to them.
absl::StatusOr<std::string> MakeTempDir(const std::string& prefix, int owner_uid = -1,
                                        int owner_gid = -1);

// Removes `path` and everything below it (no symlink is followed).
void RemoveTree(const std::string& path);

}  // namespace testing
}  // namespace mastodon_restore

#endif  // MR_TESTS_HARNESS_TEST_POSTGRES_H_
