// The daemon in-process on a temp unix socket, called through real stubs.
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <future>

#include "absl/strings/str_cat.h"
#include "agent/common/subprocess.h"
#include "agent/daemon.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "mastodon/restore/v1/agent_service.grpc.pb.h"
#include "tests/harness/daemon_fixture.h"
#include "tests/harness/status_matchers.h"
#include "tests/harness/test_postgres.h"

namespace mastodon_restore {
namespace {

namespace v1 = mastodon::restore::v1;
using ::mastodon_restore::testing::DaemonFixture;
using ::mastodon_restore::testing::StatusIs;
using ::testing::HasSubstr;

class AgentServiceTest : public DaemonFixture {};

TEST_F(AgentServiceTest, GetAgentInfoDescribesThisAgent) {
  StartDaemon();
  auto stub = v1::RestoreAgentService::NewStub(Channel());
  grpc::ClientContext ctx;
  v1::GetAgentInfoResponse info;
  grpc::Status status = stub->GetAgentInfo(&ctx, v1::GetAgentInfoRequest(), &info);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(info.host().state_dir(), config_.state_dir);
  EXPECT_GT(info.host().state_dir_free_bytes(), 0);
  EXPECT_EQ(info.host().allowed_roots(0), dir_ + "/backups");
  EXPECT_EQ(info.runtime().kind(), v1::RUNTIME_KIND_NONE);
  EXPECT_EQ(info.runtime().requested(), "auto");
  EXPECT_THAT(info.postgres().client_version(), HasSubstr("15."));
  EXPECT_THAT(info.postgres().pg_restore_versions(), ::testing::Contains(15));
}

TEST_F(AgentServiceTest, CreatesStateDirPrivateAndSocketGroupWritable) {
  StartDaemon();
  struct stat st;
  ASSERT_EQ(::stat(config_.state_dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700);
  ASSERT_EQ(::stat(config_.socket_path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0660);
}

TEST_F(AgentServiceTest, AppTasksWithoutARuntimeAreRefusedNamingWhatWasLookedAt) {
  StartDaemon();
  auto stub = v1::RestoreAgentService::NewStub(Channel());
  auto expect_no_runtime = [](const grpc::Status& s, const std::string& task) {
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << task;
    EXPECT_THAT(s.error_message(), HasSubstr(task + " needs a Mastodon runtime"));
    EXPECT_THAT(s.error_message(), HasSubstr("no /snap/bin/mastodon-server.tootctl"));
  };
  {
    grpc::ClientContext c;
    v1::StartDbMigrateResponse r;
    expect_no_runtime(stub->StartDbMigrate(&c, {}, &r), "db migrate");
  }
  {
    grpc::ClientContext c;
    v1::StartMediaRefreshRequest req;
    req.mutable_options()->set_days(1);
    v1::StartMediaRefreshResponse r;
    expect_no_runtime(stub->StartMediaRefresh(&c, req, &r), "media refresh");
  }
  {
    // Bad options are refused before anything else, as tootctl would.
    grpc::ClientContext c;
    v1::StartMediaRefreshResponse r;
    grpc::Status s = stub->StartMediaRefresh(&c, {}, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("needs a source"));
  }
  {
    grpc::ClientContext c;
    v1::StartCleanupResponse r;
    expect_no_runtime(stub->StartCleanup(&c, {}, &r), "cleanup");
  }
}

TEST_F(AgentServiceTest, OperationRpcsAnswerForUnknownIdsAndMissingTargets) {
  StartDaemon();
  auto stub = v1::RestoreAgentService::NewStub(Channel());
  {
    grpc::ClientContext c;
    v1::GetOperationRequest req;
    req.set_id("op-nope");
    v1::GetOperationResponse r;
    EXPECT_EQ(stub->GetOperation(&c, req, &r).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext c;
    v1::WatchOperationRequest req;
    req.set_id("op-nope");
    auto reader = stub->WatchOperation(&c, req);
    v1::WatchOperationResponse r;
    EXPECT_FALSE(reader->Read(&r));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    // WatchOperation reads its request as bytes: bytes that are no
    // WatchOperationRequest (field 1 claims 127 bytes, 2 follow) are refused.
    grpc::GenericStub generic(Channel());
    grpc::ClientContext c;
    grpc::Slice slice(std::string("\x0a\x7fop"));
    grpc::ByteBuffer request(&slice, 1), response;
    std::promise<grpc::Status> done;
    generic.UnaryCall(&c, "/mastodon.restore.v1.RestoreAgentService/WatchOperation",
                      grpc::StubOptions(), &request, &response,
                      [&done](grpc::Status s) { done.set_value(std::move(s)); });
    grpc::Status s = done.get_future().get();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("malformed WatchOperationRequest"));
  }
  {
    grpc::ClientContext c;
    v1::ListOperationsResponse r;
    EXPECT_TRUE(stub->ListOperations(&c, {}, &r).ok());
    EXPECT_EQ(r.operations_size(), 0);
  }
  {
    // No --target-conninfo on the agent and none in the request.
    grpc::ClientContext c;
    v1::StartRollbackRequest req;
    req.mutable_options()->mutable_target()->set_database("mastodon_production");
    v1::StartRollbackResponse r;
    grpc::Status s = stub->StartRollback(&c, req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_THAT(s.error_message(), HasSubstr("no target PostgreSQL server"));
  }
  // A server but no database name, or a hostile one: refused before any
  // operation is recorded.
  const std::string conninfo = "host=/nonexistent dbname=postgres";
  {
    grpc::ClientContext c;
    v1::StartRollbackRequest req;
    req.mutable_options()->mutable_target()->set_conninfo(conninfo);
    v1::StartRollbackResponse r;
    grpc::Status s = stub->StartRollback(&c, req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("rollback needs the database name"));
  }
  {
    grpc::ClientContext c;
    v1::StartVerifyRequest req;
    req.mutable_options()->mutable_target()->set_conninfo(conninfo);
    req.mutable_options()->mutable_target()->set_database("x\"; DROP DATABASE y; --");
    v1::StartVerifyResponse r;
    grpc::Status s = stub->StartVerify(&c, req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("target.database"));
  }
  {
    grpc::ClientContext c;
    v1::ListOperationsResponse r;
    EXPECT_TRUE(stub->ListOperations(&c, {}, &r).ok());
    EXPECT_EQ(r.operations_size(), 0);
  }
}

TEST_F(AgentServiceTest, DetectAndInspectValidateTheSource) {
  StartDaemon();
  auto stub = v1::RestoreAgentService::NewStub(Channel());
  {
    grpc::ClientContext c;
    v1::DetectDumpResponse r;
    grpc::Status s = stub->DetectDump(&c, {}, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(), HasSubstr("source.path is required"));
  }
  {
    grpc::ClientContext c;
    v1::InspectBackupRequest req;
    req.mutable_source()->set_path("/etc");
    v1::InspectBackupResponse r;
    grpc::Status s = stub->InspectBackup(&c, req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(s.error_message(), HasSubstr(dir_ + "/backups"));
  }
  {
    // A password file outside the allowed roots is refused too.
    ASSERT_OK(env_->CreateDirs(dir_ + "/backups", 0755, false));
    std::ofstream(dir_ + "/backups/x.sql") << "--\n-- PostgreSQL database dump\n--\n\n";
    grpc::ClientContext c;
    v1::DetectDumpRequest req;
    req.mutable_source()->set_path(dir_ + "/backups/x.sql");
    req.mutable_source()->mutable_passphrase()->set_file("/etc/shadow");
    v1::DetectDumpResponse r;
    grpc::Status s = stub->DetectDump(&c, req, &r);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  }
}

TEST_F(AgentServiceTest, HealthServingForAgentAndService) {
  StartDaemon();
  auto health = grpc::health::v1::Health::NewStub(Channel());
  for (const std::string service : {"", "mastodon.restore.v1.RestoreAgentService"}) {
    grpc::ClientContext c;
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(health->Check(&c, req, &resp).ok()) << service;
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
  grpc::ClientContext c;
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("no.such.Service");
  grpc::health::v1::HealthCheckResponse resp;
  EXPECT_EQ(health->Check(&c, req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

// Reflection through a generic stub with hand-encoded requests: the generated
// reflection stubs cannot be linked beside libgrpc++_reflection.
TEST_F(AgentServiceTest, ReflectionListsAndDescribesHealth) {
  StartDaemon();
  // Encoded grpc.reflection.v1alpha.ServerReflectionRequest messages.
  auto call = [&](int field, const std::string& value) -> std::string {
    std::string req;
    req.push_back(static_cast<char>((field << 3) | 2));
    req.push_back(static_cast<char>(value.size()));
    req += value;
    grpc::GenericStub stub(Channel());
    grpc::ClientContext ctx;
    grpc::CompletionQueue cq;
    void* tag;
    bool ok;
    auto rw = stub.PrepareCall(
        &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
    rw->StartCall(reinterpret_cast<void*>(1));
    EXPECT_TRUE(cq.Next(&tag, &ok) && ok);
    grpc::Slice slice(req);
    grpc::ByteBuffer out(&slice, 1);
    rw->Write(out, reinterpret_cast<void*>(2));
    EXPECT_TRUE(cq.Next(&tag, &ok) && ok);
    grpc::ByteBuffer in;
    rw->Read(&in, reinterpret_cast<void*>(3));
    EXPECT_TRUE(cq.Next(&tag, &ok) && ok);
    rw->WritesDone(reinterpret_cast<void*>(4));
    cq.Next(&tag, &ok);
    grpc::Status status;
    rw->Finish(&status, reinterpret_cast<void*>(5));
    cq.Next(&tag, &ok);
    std::vector<grpc::Slice> slices;
    in.Dump(&slices);
    std::string bytes;
    for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    return bytes;
  };
  std::string services = call(7, "*");  // list_services
  EXPECT_THAT(services, HasSubstr("grpc.health.v1.Health"));
  EXPECT_THAT(services, HasSubstr("mastodon.restore.v1.RestoreAgentService"));
  // file_containing_symbol: the health service must be describable.
  std::string health = call(4, "grpc.health.v1.Health");
  EXPECT_THAT(health, HasSubstr("grpc/health/v1/health.proto"));
  std::string agent = call(4, "mastodon.restore.v1.RestoreAgentService");
  EXPECT_THAT(agent, HasSubstr("mastodon/restore/v1/agent_service.proto"));
}

TEST_F(AgentServiceTest, RefusesASocketAnotherAgentListensOn) {
  StartDaemon();
  Daemon second(config_, env_.get(), runner_.get(), &logger_);
  EXPECT_THAT(second.Start(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                       HasSubstr("another process is listening")));
  // The first agent still serves.
  auto health = grpc::health::v1::Health::NewStub(Channel());
  grpc::ClientContext c;
  grpc::health::v1::HealthCheckResponse resp;
  EXPECT_TRUE(health->Check(&c, {}, &resp).ok());
}

TEST_F(AgentServiceTest, RefusesARegularFileAtTheSocketPathAndReplacesAStaleSocket) {
  ASSERT_OK(env_->CreateDirs(dir_ + "/run", 0755, false));
  std::ofstream(config_.socket_path) << "not a socket";
  Daemon blocked(config_, env_.get(), runner_.get(), &logger_);
  EXPECT_THAT(blocked.Start(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                        HasSubstr("exists and is not a socket")));
  ::unlink(config_.socket_path.c_str());
}

TEST_F(AgentServiceTest, ShutdownRemovesTheSocket) {
  StartDaemon();
  daemon_->Shutdown();
  daemon_->Wait();
  struct stat st;
  EXPECT_NE(::stat(config_.socket_path.c_str(), &st), 0);
  EXPECT_THAT(AllLogs(), HasSubstr("agent shutting down"));
}

TEST_F(AgentServiceTest, LoopbackTcpInTestModeServesOnAPickedPort) {
  config_.listen = {"127.0.0.1:0"};
  config_.insecure_loopback_tcp = true;
  StartDaemon();
  ASSERT_EQ(daemon_->tcp_ports().size(), 1u);
  int port = daemon_->tcp_ports()[0];
  ASSERT_GT(port, 0);
  auto channel =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials());
  auto stub = v1::RestoreAgentService::NewStub(channel);
  grpc::ClientContext ctx;
  v1::GetAgentInfoResponse info;
  EXPECT_TRUE(stub->GetAgentInfo(&ctx, {}, &info).ok());
}

}  // namespace
}  // namespace mastodon_restore
