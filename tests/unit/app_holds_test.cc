// The old host's side of a live migration: holds on the app (stop, keep,
// release, refusals, what survives an agent restart), the peers file, and
// the recovery of a migration's hold from its record.
#include "agent/service/app_holds.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "agent/common/peer_agent.h"
#include "agent/jobs/recovery.h"
#include "tests/harness/fake_command_runner.h"
#include "tests/harness/status_matchers.h"

namespace mastodon_restore {
namespace {

namespace v1 = ::mastodon::restore::v1;
using ::mastodon_restore::testing::FakeCommandRunner;
using ::mastodon_restore::testing::FakeReply;
using ::mastodon_restore::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

// The value of `s`, failing the test (and a default value) when not OK.
template <typename T>
T Value(absl::StatusOr<T> s) {
  EXPECT_OK(s.status());
  return s.ok() ? *std::move(s) : T();
}

// A systemd-like app: two services, stopped and started by systemctl.
class TwoServiceRuntime : public Runtime {
 public:
  v1::RuntimeKind kind() const override { return v1::RUNTIME_KIND_SYSTEMD; }
  std::string name() const override { return "systemd"; }
  absl::StatusOr<AppDatabase> Database() const override {
    return absl::UnimplementedError("Database");
  }
  absl::StatusOr<MediaLocation> Media() const override { return absl::UnimplementedError("Media"); }
  std::vector<std::string> Services() const override {
    return {"mastodon-web", "mastodon-sidekiq"};
  }
  std::vector<CommandSpec> ServiceCommands(bool start) const override {
    CommandSpec spec;
    spec.argv = {"systemctl", start ? "start" : "stop", "mastodon-web", "mastodon-sidekiq"};
    return {spec};
  }
  absl::StatusOr<CommandSpec> Tootctl(const std::vector<std::string>&) const override {
    return absl::UnimplementedError("Tootctl");
  }
  absl::StatusOr<CommandSpec> DbMigrate(bool) const override {
    return absl::UnimplementedError("DbMigrate");
  }
  std::string EnvFilePath() const override { return ""; }
  std::string MastodonVersion() const override { return "4.3.2"; }
  std::string CodeDir() const override { return ""; }
};

class AppHoldsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/mr-holds-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    context_.runtime = &runtime_;
    runner_.OnPrefix({"systemctl"}, FakeReply());
  }
  void TearDown() override { std::system(absl::StrCat("rm -rf ", dir_).c_str()); }

  std::unique_ptr<AppHolds> NewHolds() {
    auto holds = std::make_unique<AppHolds>(path(), env_.get(), &runner_, &context_, &logger_);
    EXPECT_OK(holds->Load());
    return holds;
  }
  std::string path() const { return dir_ + "/app-holds.pb"; }

  std::vector<std::string> Systemctl() {
    std::vector<std::string> out;
    for (const auto& argv : runner_.argvs()) out.push_back(argv[1]);
    return out;
  }

  static v1::HoldAppRequest Hold(const std::string& id) {
    v1::HoldAppRequest r;
    r.set_id(id);
    r.set_holder(absl::StrCat("migration ", id, " on new-host"));
    return r;
  }
  static v1::ReleaseAppRequest Release(const std::string& id, bool keep_stopped) {
    v1::ReleaseAppRequest r;
    r.set_id(id);
    r.set_keep_stopped(keep_stopped);
    return r;
  }

  std::string dir_;
  std::unique_ptr<Env> env_ = NewPosixEnv();
  FakeCommandRunner runner_;
  TwoServiceRuntime runtime_;
  RuntimeContext context_;
  Logger logger_{LogLevel::kError, false, [](const std::string&) {}};
};

TEST_F(AppHoldsTest, HoldsStopTheAppOnceAndReleaseStartsItAgain) {
  auto holds = NewHolds();
  v1::AppHold held = Value(holds->Hold(Hold("op-1"), "token:new-host"));
  EXPECT_EQ(held.state(), v1::APP_HOLD_STATE_HELD);
  EXPECT_EQ(held.caller(), "token:new-host");
  EXPECT_THAT(held.services(), ElementsAre("mastodon-web", "mastodon-sidekiq"));
  EXPECT_EQ(held.mastodon_version(), "4.3.2");
  // The same id again (a retried call) stops nothing more.
  ASSERT_OK(holds->Hold(Hold("op-1"), "token:new-host").status());
  EXPECT_THAT(Systemctl(), ElementsAre("stop"));
  // While held, nothing that changes the instance starts; another
  // migration cannot hold it too.
  EXPECT_THAT(holds->CheckNotHeld("a restore"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("held stopped by migration op-1 on new-host")));
  EXPECT_THAT(holds->Hold(Hold("op-2"), "token:other").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already held")));
  v1::AppHold released = Value(holds->Release(Release("op-1", false), "token:new-host"));
  EXPECT_EQ(released.state(), v1::APP_HOLD_STATE_RELEASED);
  EXPECT_THAT(Systemctl(), ElementsAre("stop", "start"));
  EXPECT_OK(holds->CheckNotHeld("a restore"));
  EXPECT_THAT(holds->Current(), IsEmpty());
  // Released twice: as it is, nothing started again.
  ASSERT_OK(holds->Release(Release("op-1", false), "token:new-host").status());
  EXPECT_THAT(Systemctl(), ElementsAre("stop", "start"));
  EXPECT_THAT(holds->Release(Release("op-9", false), "x").status(),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(holds->Hold(Hold("../x"), "x").status(),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST_F(AppHoldsTest, AHoldSurvivesTheAgentAndAKeptHoldNeverStartsTheApp) {
  {
    auto holds = NewHolds();
    ASSERT_OK(holds->Hold(Hold("op-1"), "token:new-host").status());
  }
  struct stat st;
  ASSERT_EQ(::stat(path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A restarted agent does not start the app by itself, and still refuses.
  auto holds = NewHolds();
  EXPECT_THAT(Systemctl(), ElementsAre("stop"));
  ASSERT_EQ(holds->Current().size(), 1u);
  EXPECT_EQ(holds->Current()[0].state(), v1::APP_HOLD_STATE_HELD);
  EXPECT_FALSE(holds->CheckNotHeld("a restore").ok());
  // The migration cut over: kept stopped, nothing refused any more, listed.
  v1::AppHold kept = Value(holds->Release(Release("op-1", true), "token:new-host"));
  EXPECT_EQ(kept.state(), v1::APP_HOLD_STATE_KEPT_STOPPED);
  EXPECT_THAT(Systemctl(), ElementsAre("stop"));
  EXPECT_OK(holds->CheckNotHeld("a restore"));
  ASSERT_EQ(NewHolds()->Current().size(), 1u);
  // The admin's way back: releasing the kept hold starts the app.
  ASSERT_OK(holds->Release(Release("op-1", false), "uid:0").status());
  EXPECT_THAT(Systemctl(), ElementsAre("stop", "start"));
}

TEST_F(AppHoldsTest, AFailedStopStartsTheAppAgainAndAFailedStartKeepsTheHold) {
  runner_.OnPrefix({"systemctl", "stop"}, FakeReply::Fails(1, "Job for mastodon-web failed"));
  auto holds = NewHolds();
  EXPECT_THAT(holds->Hold(Hold("op-1"), "t").status(),
              StatusIs(absl::StatusCode::kUnknown,
                       ::testing::AllOf(HasSubstr("Job for mastodon-web failed"),
                                        HasSubstr("the app was started again"))));
  EXPECT_THAT(Systemctl(), ElementsAre("stop", "start"));
  EXPECT_OK(holds->CheckNotHeld("a restore"));

  runner_.OnPrefix({"systemctl", "stop"}, FakeReply());
  runner_.OnPrefix({"systemctl", "start"}, FakeReply::Fails(1, "no"));
  ASSERT_OK(holds->Hold(Hold("op-2"), "t").status());
  EXPECT_FALSE(holds->Release(Release("op-2", false), "t").ok());
  EXPECT_FALSE(holds->CheckNotHeld("a restore").ok());
}

TEST_F(AppHoldsTest, AHostWithoutAnAppHasNothingToHoldAndABrokenFileStopsTheAgent) {
  RuntimeContext none;
  AppHolds holds(path(), env_.get(), &runner_, &none, &logger_);
  EXPECT_THAT(holds.Hold(Hold("op-1"), "t").status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("runs no Mastodon app")));
  std::ofstream(path()) << "not a hold list \xff\xff\xff";
  AppHolds broken(path(), env_.get(), &runner_, &context_, &logger_);
  EXPECT_THAT(broken.Load(), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(PeersFileTest, ParsesNamesAddressesAndTokensAndSaysWhatIsWrongWithoutTheToken) {
  auto peers =
      Value(ParsePeersFile("# old hosts\n"
                           "old-host 192.0.2.10:7443 s3cr3t\n"
                           "\n"
                           "other [2001:db8::1]:7443\ttok2\n",
                           "peers"));
  ASSERT_EQ(peers.size(), 2u);
  EXPECT_EQ(peers["old-host"].address, "192.0.2.10:7443");
  EXPECT_EQ(peers["old-host"].token, "s3cr3t");
  EXPECT_EQ(peers["other"].token, "tok2");
  auto bad = ParsePeersFile("old-host 192.0.2.10 s3cr3t\n", "peers");
  EXPECT_THAT(bad.status(), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("peers:1")));
  EXPECT_THAT(bad.status().message(), Not(HasSubstr("s3cr3t")));
  EXPECT_THAT(ParsePeersFile("a h:1 t\na h:2 u\n", "peers").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("named twice")));
  EXPECT_THAT(ParsePeersFile("a h:1\n", "peers").status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NAME HOST:PORT TOKEN")));
}

TEST_F(AppHoldsTest, APeersFileOthersCanReadIsRefused) {
  const std::string file = dir_ + "/peers";
  std::ofstream(file) << "old-host 127.0.0.1:1 tok\n";
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  EXPECT_THAT(LoadPeersFile(file, env_.get()).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("chmod 600")));
  ASSERT_EQ(::chmod(file.c_str(), 0600), 0);
  auto peers = Value(LoadPeersFile(file, env_.get()));
  EXPECT_EQ(peers.size(), 1u);
  auto connector = NewGrpcPeerConnector(peers, PeerTls(), absl::Seconds(1));
  EXPECT_THAT(connector->Open("nobody").status(), StatusIs(absl::StatusCode::kNotFound));
}

// A peer that records what recovery asks of it.
class RecordingPeer : public PeerAgent, public PeerConnector {
 public:
  absl::Status answer;
  std::vector<std::string> calls;
  absl::StatusOr<v1::GetAgentInfoResponse> Info() override { return v1::GetAgentInfoResponse(); }
  absl::StatusOr<v1::AppHold> HoldApp(const v1::HoldAppRequest&) override {
    return absl::UnimplementedError("HoldApp");
  }
  absl::StatusOr<v1::AppHold> ReleaseApp(const v1::ReleaseAppRequest& r) override {
    calls.push_back(absl::StrCat(r.id(), r.keep_stopped() ? " keep" : " start"));
    if (!answer.ok()) return answer;
    return v1::AppHold();
  }
  absl::StatusOr<v1::ListMediaResponse> ListMedia(const v1::ListMediaRequest&) override {
    return absl::UnimplementedError("ListMedia");
  }
  absl::StatusOr<v1::ReadMediaResponse> ReadMedia(const v1::ReadMediaRequest&) override {
    return absl::UnimplementedError("ReadMedia");
  }
  absl::StatusOr<std::unique_ptr<PeerAgent>> Open(const std::string& name) override {
    if (name != "old-host") return absl::NotFoundError(name);
    struct Forward : PeerAgent {
      RecordingPeer* p;
      absl::StatusOr<v1::GetAgentInfoResponse> Info() override { return p->Info(); }
      absl::StatusOr<v1::AppHold> HoldApp(const v1::HoldAppRequest& r) override {
        return p->HoldApp(r);
      }
      absl::StatusOr<v1::AppHold> ReleaseApp(const v1::ReleaseAppRequest& r) override {
        return p->ReleaseApp(r);
      }
      absl::StatusOr<v1::ListMediaResponse> ListMedia(const v1::ListMediaRequest& r) override {
        return p->ListMedia(r);
      }
      absl::StatusOr<v1::ReadMediaResponse> ReadMedia(const v1::ReadMediaRequest& r) override {
        return p->ReadMedia(r);
      }
    };
    auto f = std::make_unique<Forward>();
    f->p = this;
    return std::unique_ptr<PeerAgent>(std::move(f));
  }
};

TEST(PeerHoldRecoveryTest, TheOldAppStartsAgainUnlessTheSwapCommittedAndAnUnreachablePeerWaits) {
  RecordingPeer peer;
  RecoveryContext ctx;
  ctx.peers = &peer;
  std::unique_ptr<Env> env = NewPosixEnv();
  ctx.env = env.get();
  v1::OperationRecord record;
  record.mutable_peer_hold()->set_peer("old-host");
  record.mutable_peer_hold()->set_hold_id("op-1");
  // Killed before the staging database existed: nothing was swapped.
  RecoveryOutcome out = RecoverFromJournal(record, ctx);
  EXPECT_TRUE(out.peer_hold_resolved);
  EXPECT_THAT(peer.calls, ElementsAre("op-1 start"));
  EXPECT_THAT(out.done, ElementsAre(HasSubstr("was started again")));
  ApplyRecovery(out, &record);
  EXPECT_FALSE(record.has_peer_hold());
  EXPECT_TRUE(record.recovered());

  // The peer does not answer: the part stays (with its decision) for the
  // next start, and says what to run on the old host.
  v1::OperationRecord kept;
  kept.mutable_peer_hold()->set_peer("old-host");
  kept.mutable_peer_hold()->set_hold_id("op-2");
  kept.mutable_peer_hold()->set_keep_stopped(true);
  peer.answer = absl::UnavailableError("connection refused");
  out = RecoverFromJournal(kept, ctx);
  EXPECT_FALSE(out.peer_hold_resolved);
  EXPECT_THAT(out.failed,
              ElementsAre(::testing::AllOf(HasSubstr("must stay stopped"),
                                           HasSubstr("app-hold release op-2 --keep-stopped"))));
  ApplyRecovery(out, &kept);
  EXPECT_TRUE(kept.peer_hold().keep_stopped());
  EXPECT_FALSE(kept.recovered());
  peer.answer = absl::OkStatus();
  out = RecoverFromJournal(kept, ctx);
  EXPECT_TRUE(out.peer_hold_resolved);
  EXPECT_EQ(peer.calls.back(), "op-2 keep");

  // No peers configured now: left, said.
  ctx.peers = nullptr;
  out = RecoverFromJournal(kept, ctx);
  EXPECT_THAT(out.failed, ElementsAre(HasSubstr("--peers-file")));
}

}  // namespace
}  // namespace mastodon_restore
