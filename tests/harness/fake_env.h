// An in-memory Env for unit tests: files in a map, fixed host facts, and
// failure injection.
#ifndef MR_TESTS_HARNESS_FAKE_ENV_H_
#define MR_TESTS_HARNESS_FAKE_ENV_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/common/env.h"

namespace mastodon_restore {
namespace testing {

class FakeEnv : public Env {
 public:
  absl::Time now = absl::FromUnixSeconds(1795000000);
  std::string hostname = "fakehost";
  int cpus = 2;
  MemoryInfo memory = {24LL << 30, 20LL << 30};
  // Free bytes by path; missing paths give NOT_FOUND.
  std::map<std::string, int64_t> free_bytes;
  std::map<std::string, std::string> files;
  std::set<std::string> dirs;
  std::set<std::string> executables;
  // Paths passed to CreateDirs with their modes.
  std::map<std::string, mode_t> created_dirs;
  // Owners by path, and the user database.
  std::map<std::string, FileOwner> owners;
  std::map<std::string, uid_t> users;

  absl::Time Now() override { return now; }
  std::string Hostname() override { return hostname; }
  int Cpus() override { return cpus; }
  MemoryInfo Memory() override { return memory; }
  absl::StatusOr<int64_t> FreeBytes(const std::string& path) override {
    auto it = free_bytes.find(path);
    if (it == free_bytes.end()) return absl::NotFoundError(absl::StrCat("no such path ", path));
    return it->second;
  }
  absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override {
    std::set<std::string> names;
    std::string prefix = dir + "/";
    auto add = [&](const std::string& path) {
      if (!absl::StartsWith(path, prefix)) return;
      std::string rest = path.substr(prefix.size());
      names.insert(rest.substr(0, rest.find('/')));
    };
    for (const auto& d : dirs) add(d);
    for (const auto& f : files) add(f.first);
    for (const auto& e : executables) add(e);
    if (names.empty() && dirs.count(dir) == 0) {
      return absl::NotFoundError(absl::StrCat("unable to list directory '", dir, "'"));
    }
    return std::vector<std::string>(names.begin(), names.end());
  }
  bool IsExecutable(const std::string& path) override { return executables.count(path) > 0; }
  bool Exists(const std::string& path) override {
    return files.count(path) > 0 || dirs.count(path) > 0 || executables.count(path) > 0;
  }
  absl::Status CreateDirs(const std::string& dir, mode_t mode, bool) override {
    dirs.insert(dir);
    created_dirs[dir] = mode;
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> ReadFile(const std::string& path) override {
    auto it = files.find(path);
    if (it == files.end()) {
      return absl::NotFoundError(absl::StrCat("unable to open '", path, "': No such file"));
    }
    return it->second;
  }
  absl::StatusOr<FileOwner> OwnerOf(const std::string& path) override {
    auto it = owners.find(path);
    if (it == owners.end()) {
      return absl::NotFoundError(absl::StrCat("unable to stat '", path, "': No such file"));
    }
    return it->second;
  }
  absl::Status RemoveFile(const std::string& path) override {
    files.erase(path);
    return absl::OkStatus();
  }
  absl::Status SetOwner(const std::string& path, uid_t uid, gid_t gid) override {
    owners[path] = FileOwner{uid, gid};
    return absl::OkStatus();
  }
  absl::StatusOr<uid_t> UserId(const std::string& name) override {
    auto it = users.find(name);
    if (it == users.end()) return absl::NotFoundError(absl::StrCat("no user '", name, "'"));
    return it->second;
  }
  absl::Status WriteFileAtomic(const std::string& path, const std::string& data, mode_t) override {
    files[path] = data;
    return absl::OkStatus();
  }
};

}  // namespace testing
}  // namespace mastodon_restore

#endif  // MR_TESTS_HARNESS_FAKE_ENV_H_
