#include "tests/harness/test_postgres.h"

#include <ftw.h>
#include <libpq-fe.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/common/errors.h"
#include "agent/common/status_macros.h"
#include "tests/harness/ports.h"
#include "tests/harness/test_paths.h"

namespace mastodon_restore {
namespace testing {
namespace {

int RemoveEntry(const char* path, const struct stat*, int, struct FTW*) {
  ::remove(path);
  return 0;
}

// Connects or returns the libpq error.
absl::StatusOr<PGconn*> Connect(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string error = PQerrorMessage(conn);
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("unable to connect to test PostgreSQL: ", error));
  }
  return conn;
}

}  // namespace

absl::StatusOr<std::string> MakeTempDir(const std::string& prefix, int owner_uid, int owner_gid) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = absl::StrCat(tmp != nullptr && *tmp ? tmp : "/tmp", "/", prefix, "XXXXXX");
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) return ErrnoError(errno, "create temp dir", templ);
  std::string dir = buf.data();
  if (::chmod(dir.c_str(), 0755) != 0) return ErrnoError(errno, "set mode of", dir);
  if (owner_uid >= 0 && ::chown(dir.c_str(), owner_uid, owner_gid) != 0) {
    return ErrnoError(errno, "change owner of", dir);
  }
  return dir;
}

void RemoveTree(const std::string& path) {
  if (path.empty() || path == "/") return;
  ::nftw(path.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
}

std::string TestPostgres::ServerBinDir(int major) {
  if (major == 15) return absl::StrCat(kDefaultPostgresRoot, "/15/bin");
  return absl::StrCat(MR_SOURCE_DIR, "/.tools/postgres/", major, "/bin");
}

absl::StatusOr<std::unique_ptr<TestPostgres>> TestPostgres::Start(
    int major, const std::vector<std::string>& settings) {
  std::unique_ptr<TestPostgres> pg(new TestPostgres());
  pg->env_ = NewPosixEnv();
  pg->runner_ = NewPosixCommandRunner();
  LocalClusterOptions options;
  options.bin_dir = ServerBinDir(major);
  options.settings = settings;
  // Tests stop and start servers again on their ports.
  ASSIGN_OR_RETURN(options.port, FreeServerPort());
  const std::string postgres = absl::StrCat(options.bin_dir, "/postgres");
  if (::access(postgres.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL ", major, " is not installed (no ", postgres, "): run ",
        major == 15 ? "apt-get install postgresql-15 (scripts/install-deps)"
                    : absl::StrCat("scripts/install-postgres ", major, " (or make deps)")));
  }
  RETURN_IF_ERROR(RunAsUnprivilegedUserIfRoot(&options));
  const char* tmp = std::getenv("TMPDIR");
  ASSIGN_OR_RETURN(pg->base_dir_, CreateClusterBaseDir(tmp != nullptr && *tmp ? tmp : "/tmp",
                                                       "mr-test-pg-", options));
  options.base_dir = pg->base_dir_;
  options.fast_unsafe = true;
  options.stop_with_parent = true;
  options.superuser = pg->superuser_;
  auto cluster = LocalCluster::Start(options, pg->runner_.get(), pg->env_.get());
  if (!cluster.ok()) {
    RemoveTree(pg->base_dir_);
    return cluster.status();
  }
  pg->cluster_ = std::move(*cluster);
  if (pg->cluster_->major_version() != major) {
    return absl::InternalError(absl::StrCat("PostgreSQL in ", options.bin_dir, " is ",
                                            pg->cluster_->major_version(), ", not ", major));
  }
  return pg;
}

TestPostgres::~TestPostgres() {
  if (cluster_ != nullptr) cluster_->Stop().IgnoreError();
  cluster_.reset();
  RemoveTree(base_dir_);
}

absl::Status TestPostgres::Exec(const std::string& sql, const std::string& dbname) const {
  ASSIGN_OR_RETURN(PGconn * conn, Connect(ConnInfo(dbname)));
  PGresult* res = PQexec(conn, sql.c_str());
  absl::Status status;
  ExecStatusType st = PQresultStatus(res);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    status = absl::InternalError(absl::StrCat("SQL failed: ", PQerrorMessage(conn)));
  }
  PQclear(res);
  PQfinish(conn);
  return status;
}

absl::StatusOr<std::string> TestPostgres::QueryValue(const std::string& sql,
                                                     const std::string& dbname) const {
  ASSIGN_OR_RETURN(PGconn * conn, Connect(ConnInfo(dbname)));
  PGresult* res = PQexec(conn, sql.c_str());
  absl::StatusOr<std::string> out;
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    out = absl::InternalError(absl::StrCat("query failed: ", PQerrorMessage(conn)));
  } else if (PQntuples(res) < 1 || PQnfields(res) < 1) {
    out = absl::NotFoundError(absl::StrCat("query returned no rows: ", sql));
  } else {
    out = std::string(PQgetvalue(res, 0, 0));
  }
  PQclear(res);
  PQfinish(conn);
  return out;
}

}  // namespace testing
}  // namespace mastodon_restore
