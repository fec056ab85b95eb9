#include "agent/operations/operation.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "agent/common/logging.h"
#include "agent/operations/operation_manager.h"
#include "tests/harness/fake_env.h"

namespace mastodon_restore {
namespace {

namespace v1 = mastodon::restore::v1;
using Event = Operation::Event;

v1::OperationRecord NewRecord() {
  v1::OperationRecord record;
  record.mutable_operation()->set_id("op-test");
  record.mutable_operation()->set_state(v1::OPERATION_STATE_PENDING);
  return record;
}

// What one listener saw: the backlog at Subscribe, then the live events.
struct Seen {
  std::mutex mu;
  std::vector<int64_t> sequences;
  void Add(int64_t s) {
    std::lock_guard<std::mutex> lock(mu);
    sequences.push_back(s);
  }
};

TEST(OperationTest, ConcurrentEventsReachEveryListenerInOrderWithoutGapsOrDuplicates) {
  testing::FakeEnv env;
  Operation op(NewRecord(), &env, nullptr);
  op.DeclareSteps({{"a", "first"}, {"b", "second"}});
  op.MarkRunning();
  constexpr int kListeners = 6;
  std::vector<std::unique_ptr<Seen>> seen;
  auto subscribe = [&](Seen* s) {
    Operation::EventPage backlog;
    int64_t id = op.Subscribe(
        1, SIZE_MAX,
        [s](const Event& e, const v1::Operation& current) {
          // The operation handed over is the one as of this event.
          EXPECT_EQ(current.last_sequence(), e.sequence());
          s->Add(e.sequence());
        },
        &backlog);
    EXPECT_NE(id, 0);
    EXPECT_TRUE(backlog.complete);
    // Live events can only arrive after the backlog is recorded: they come
    // through this same mutex, which the listener takes too.
    std::lock_guard<std::mutex> lock(s->mu);
    std::vector<int64_t> all;
    for (const Event& e : backlog.events) all.push_back(e.sequence());
    all.insert(all.end(), s->sequences.begin(), s->sequences.end());
    s->sequences = all;
  };
  for (int i = 0; i < kListeners; ++i) {
    seen.push_back(std::make_unique<Seen>());
    subscribe(seen.back().get());
  }
  std::vector<std::thread> emitters;
  for (const char* step : {"a", "b"}) {
    emitters.emplace_back([&op, step] {
      for (int i = 0; i < 2000; ++i) op.StepProgress(step, i, 2000, "rows", "");
    });
  }
  // One more listener joins while events flow.
  seen.push_back(std::make_unique<Seen>());
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  subscribe(seen.back().get());
  for (std::thread& t : emitters) t.join();
  op.Finish(absl::OkStatus());
  const int64_t last = op.Snapshot().last_sequence();
  ASSERT_GT(last, 4000);
  for (const auto& s : seen) {
    std::lock_guard<std::mutex> lock(s->mu);
    ASSERT_EQ(static_cast<int64_t>(s->sequences.size()), last);
    for (int64_t i = 0; i < last; ++i) ASSERT_EQ(s->sequences[static_cast<size_t>(i)], i + 1);
  }
}

TEST(OperationTest, ReadsStoredEventsInPages) {
  testing::FakeEnv env;
  Operation op(NewRecord(), &env, nullptr);
  op.MarkRunning();                                                                 // 1
  for (int i = 0; i < 9; ++i) op.Log(v1::SEVERITY_INFO, absl::StrCat("line ", i));  // 2..10
  Operation::EventPage page = op.ReadEvents(1, 4);
  ASSERT_EQ(page.events.size(), 4u);
  EXPECT_EQ(page.events.front().sequence(), 1);
  EXPECT_EQ(page.events.back().sequence(), 4);
  EXPECT_FALSE(page.complete);
  EXPECT_EQ(page.last_sequence, 10);
  EXPECT_EQ(page.operation.id(), "");  // only with the last page
  page = op.ReadEvents(7, 4);
  ASSERT_EQ(page.events.size(), 4u);
  EXPECT_EQ(page.events.front().sequence(), 7);
  EXPECT_EQ(page.events.back().message(), "line 8");
  EXPECT_TRUE(page.complete);
  EXPECT_EQ(page.operation.id(), "op-test");
  EXPECT_EQ(page.operation.last_sequence(), 10);
  page = op.ReadEvents(11, 4);
  EXPECT_TRUE(page.events.empty());
  EXPECT_TRUE(page.complete);

  // Subscribe reads the same page and hands the listener only what follows
  // the read.
  std::vector<int64_t> live;
  int64_t id = op.Subscribe(
      3, 2, [&live](const Event& e, const v1::Operation&) { live.push_back(e.sequence()); }, &page);
  ASSERT_NE(id, 0);
  ASSERT_EQ(page.events.size(), 2u);
  EXPECT_EQ(page.events[0].sequence(), 3);
  EXPECT_FALSE(page.complete);
  op.Log(v1::SEVERITY_INFO, "after");
  op.Unsubscribe(id);
  EXPECT_THAT(live, ::testing::ElementsAre(11));
  // Once ended, nothing is subscribed; the record holds the rest.
  op.Finish(absl::OkStatus());
  EXPECT_EQ(op.Subscribe(
                1, 100, [](const Event&, const v1::Operation&) {}, &page),
            0);
  EXPECT_TRUE(page.complete);
  EXPECT_EQ(page.events.back().type(), v1::EVENT_TYPE_STATE);
}

TEST(OperationTest, SavesHappenOutsideTheLockSoReadersNeverWaitForTheDisk) {
  testing::FakeEnv env;
  std::shared_ptr<Operation> op;
  std::atomic<int> saves{0};
  std::atomic<int> blocked{0};
  op = std::make_shared<Operation>(NewRecord(), &env, [&](const v1::OperationRecord& record) {
    ++saves;
    if (record.events_size() > 0) {  // the plan is saved before any event
      EXPECT_EQ(record.operation().last_sequence(), record.events().rbegin()->sequence());
    }
    // A reader on another thread while the save runs: it must not wait for
    // it. (Were the save under the lock, this would never finish.)
    auto reader = std::make_shared<std::promise<int64_t>>();
    std::future<int64_t> got = reader->get_future();
    std::thread([op = op.get(), reader] {
      reader->set_value(op->Snapshot().last_sequence());
    }).detach();
    if (got.wait_for(std::chrono::seconds(5)) != std::future_status::ready) ++blocked;
  });
  op->DeclareSteps({{"load", "load"}});
  op->MarkRunning();
  op->StepStarted("load");
  op->StepFinished("load", v1::STEP_STATE_SUCCEEDED, "done");
  op->Finish(absl::OkStatus());
  EXPECT_EQ(saves.load(), 5);  // the plan, every state and step change
  EXPECT_EQ(blocked.load(), 0);
}

TEST(OperationTest, UnsubscribeWaitsForADeliveryInFlightAndNoCallFollows) {
  testing::FakeEnv env;
  Operation op(NewRecord(), &env, nullptr);
  op.MarkRunning();
  std::promise<void> entered;
  std::atomic<bool> first{true};
  std::atomic<bool> finished{false};
  std::atomic<int> calls{0};
  Operation::EventPage backlog;
  int64_t id = op.Subscribe(
      1, 16,
      [&](const Event&, const v1::Operation&) {
        ++calls;
        if (first.exchange(false)) {
          entered.set_value();
          std::this_thread::sleep_for(std::chrono::milliseconds(300));
          finished = true;
        }
      },
      &backlog);
  std::thread emitter([&] { op.Log(v1::SEVERITY_INFO, "hello"); });
  entered.get_future().wait();
  op.Unsubscribe(id);
  EXPECT_TRUE(finished.load());  // Unsubscribe returned only after the call ended
  emitter.join();
  op.Log(v1::SEVERITY_INFO, "after");
  EXPECT_EQ(calls.load(), 1);
}

}  // namespace
}  // namespace mastodon_restore

namespace mastodon_restore {
namespace {

// Starts an operation that succeeds at once and waits until it has ended.
std::string RunToEnd(OperationManager* manager) {
  OperationSpec spec;
  spec.kind = mastodon::restore::v1::OPERATION_KIND_VERIFY;
  spec.work = [](Operation*) { return absl::OkStatus(); };
  auto op = manager->Start(std::move(spec));
  EXPECT_TRUE(op.ok());
  if (!op.ok()) return "";
  for (int i = 0; i < 2000 && !(*op)->done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE((*op)->done());
  return (*op)->id();
}

TEST(OperationTest, AMigrationFollowsCountsCutOverRequestsAndRefusesThemOnceEnded) {
  testing::FakeEnv env;
  Operation restore(NewRecord(), &env, nullptr);
  EXPECT_THAT(restore.RequestCutOver().message(), ::testing::HasSubstr("is not a migration"));
  EXPECT_EQ(restore.cutover_requests(), 0);

  v1::OperationRecord record = NewRecord();
  record.mutable_operation()->set_kind(v1::OPERATION_KIND_MIGRATE);
  Operation op(record, &env, nullptr);
  op.MarkRunning();
  op.MarkFollowing("following");
  EXPECT_EQ(op.Snapshot().state(), v1::OPERATION_STATE_FOLLOWING);
  EXPECT_FALSE(op.done());
  EXPECT_TRUE(op.RequestCutOver().ok());
  EXPECT_TRUE(op.RequestCutOver().ok());  // asked again after a refusal
  EXPECT_EQ(op.cutover_requests(), 2);
  op.MarkCutOverBegun("cut-over");
  EXPECT_EQ(op.Snapshot().state(), v1::OPERATION_STATE_RUNNING);
  op.Finish(absl::OkStatus());
  EXPECT_EQ(op.RequestCutOver().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(op.cutover_requests(), 2);
  // Each state change is an event, in order.
  std::vector<v1::OperationState> states;
  const v1::OperationRecord ended = op.Record();
  for (const Event& e : ended.events()) {
    if (e.type() == v1::EVENT_TYPE_STATE) states.push_back(e.state());
  }
  EXPECT_THAT(states,
              ::testing::ElementsAre(v1::OPERATION_STATE_RUNNING, v1::OPERATION_STATE_FOLLOWING,
                                     v1::OPERATION_STATE_RUNNING, v1::OPERATION_STATE_SUCCEEDED));
}

// A cut-over that failed and went back to following runs its steps again:
// each starts afresh, without the failed run's end, progress or message.
TEST(OperationTest, AStepStartedAgainStartsAfresh) {
  testing::FakeEnv env;
  Operation op(NewRecord(), &env, nullptr);
  op.DeclareSteps({{"catch_up", "wait"}});
  op.MarkRunning();
  op.StepStarted("catch_up");
  op.StepProgress("catch_up", 5, 10, "bytes", "half");
  op.StepFinished("catch_up", v1::STEP_STATE_FAILED, "timed out");
  v1::Step failed = op.Snapshot().steps(0);
  EXPECT_TRUE(failed.has_end_time());
  EXPECT_EQ(failed.message(), "timed out");
  env.now += absl::Seconds(30);
  op.StepStarted("catch_up");
  const v1::Step again = op.Snapshot().steps(0);
  EXPECT_EQ(again.state(), v1::STEP_STATE_RUNNING);
  EXPECT_FALSE(again.has_end_time());
  EXPECT_FALSE(again.has_progress());
  EXPECT_EQ(again.message(), "");
  EXPECT_EQ(again.start_time().seconds(), failed.start_time().seconds() + 30);
}

TEST(OperationManagerTest, KeepsFinishedRecordsByCountAndAge) {
  testing::FakeEnv env;
  Logger logger(LogLevel::kError, false, [](const std::string&) {});
  OperationManager manager("/state", &env, &logger, /*retain=*/2, /*max_age=*/absl::Hours(24));
  const std::string old = RunToEnd(&manager);
  // Two days later the next start prunes what ended more than a day ago.
  env.now += absl::Hours(48);
  const std::string a = RunToEnd(&manager);
  EXPECT_FALSE(manager.Get(old).ok());
  EXPECT_EQ(env.files.count("/state/operations/" + old + ".pb"), 0u);
  // And never more than two finished ones.
  env.now += absl::Seconds(1);
  const std::string b = RunToEnd(&manager);
  env.now += absl::Seconds(1);
  const std::string c = RunToEnd(&manager);
  EXPECT_TRUE(manager.Get(a).ok());  // pruned at the next start, not before
  env.now += absl::Seconds(1);
  RunToEnd(&manager);
  EXPECT_FALSE(manager.Get(a).ok());
  EXPECT_TRUE(manager.Get(b).ok());
  EXPECT_TRUE(manager.Get(c).ok());
}

// An operation whose work waits for `release`.
absl::StatusOr<std::shared_ptr<Operation>> StartHeld(OperationManager* manager,
                                                     absl::Notification* release,
                                                     const std::string& target,
                                                     std::vector<std::string> locks = {}) {
  OperationSpec spec;
  spec.kind = mastodon::restore::v1::OPERATION_KIND_RESTORE;
  spec.target = target;
  spec.locks = std::move(locks);
  spec.work = [release](Operation*) {
    release->WaitForNotification();
    return absl::OkStatus();
  };
  return manager->Start(std::move(spec));
}

void WaitDone(const std::shared_ptr<Operation>& op) {
  for (int i = 0; i < 5000 && !op->done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(op->done());
}

TEST(OperationManagerTest, RefusesOperationsOverTheRunningCap) {
  testing::FakeEnv env;
  Logger logger(LogLevel::kError, false, [](const std::string&) {});
  OperationManager manager("/state", &env, &logger);
  manager.set_max_running(2);
  absl::Notification release;
  auto a = StartHeld(&manager, &release, "");
  auto b = StartHeld(&manager, &release, "");
  ASSERT_TRUE(a.ok() && b.ok());
  auto c = StartHeld(&manager, &release, "");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(std::string(c.status().message()), ::testing::HasSubstr("--max-running-operations"));
  release.Notify();
  WaitDone(*a);
  WaitDone(*b);
  // The slots come back once the operations have ended (their threads
  // give them back just after the state changes).
  absl::Notification again;
  absl::StatusOr<std::shared_ptr<Operation>> d = absl::UnknownError("not started");
  for (int i = 0; i < 5000 && !d.ok(); ++i) {
    d = StartHeld(&manager, &again, "");
    if (!d.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_TRUE(d.ok()) << d.status();
  again.Notify();
  WaitDone(*d);
}

TEST(OperationManagerTest, EveryLockOfAnOperationConflicts) {
  testing::FakeEnv env;
  Logger logger(LogLevel::kError, false, [](const std::string&) {});
  OperationManager manager("/state", &env, &logger);
  absl::Notification release;
  // A whole restore holds its database and its media directory.
  auto whole = StartHeld(&manager, &release, "database:live", {"database:live", "media:/srv/m"});
  ASSERT_TRUE(whole.ok());
  auto media = StartHeld(&manager, &release, "media:/srv/m");
  ASSERT_FALSE(media.ok());
  EXPECT_EQ(media.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(media.status().message()), ::testing::HasSubstr("media:/srv/m"));
  auto db = StartHeld(&manager, &release, "database:live");
  EXPECT_EQ(db.status().code(), absl::StatusCode::kAborted);
  // A directory inside the held one is held too; a name that only starts
  // the same is not.
  auto inside = StartHeld(&manager, &release, "media:/srv/m/cache");
  EXPECT_EQ(inside.status().code(), absl::StatusCode::kAborted);
  auto other = StartHeld(&manager, &release, "media:/srv/mm");
  EXPECT_TRUE(other.ok());
  release.Notify();
  WaitDone(*whole);
  if (other.ok()) WaitDone(*other);
}

}  // namespace
}  // namespace mastodon_restore
