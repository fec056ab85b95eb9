#include "tests/harness/daemon_fixture.h"

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace testing {

void DaemonFixture::SetUp() {
  auto dir = MakeTempDir("mr-daemon-");
  ASSERT_OK(dir);
  dir_ = *dir;
  config_.socket_path = dir_ + "/run/agent.sock";
  config_.state_dir = dir_ + "/state";
  config_.allowed_roots = {dir_ + "/backups"};
  config_.shutdown_grace = absl::Seconds(1);
}

void DaemonFixture::TearDown() {
  daemon_.reset();
  if (!dir_.empty()) RemoveTree(dir_);
}

void DaemonFixture::StartDaemon() {
  daemon_ = std::make_unique<Daemon>(config_, env_.get(), runner_.get(), &logger_);
  ASSERT_OK(daemon_->Start());
}

std::shared_ptr<grpc::Channel> DaemonFixture::Channel() {
  return grpc::CreateChannel("unix:" + config_.socket_path,
                             grpc::experimental::LocalCredentials(UDS));
}

std::string DaemonFixture::AllLogs() {
  std::lock_guard<std::mutex> lock(log_mu_);
  std::string all;
  for (const std::string& l : log_lines_) absl::StrAppend(&all, l, "\n");
  return all;
}

}  // namespace testing
}  // namespace mastodon_restore
