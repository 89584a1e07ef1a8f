// The Watcher's loop (sessions, reconnects, backoff, the fell-behind closure, the status fetch)
// driven through a FakeTransport: no socket, no daemon. The same loop against tsbus-sim over a
// real socket is tests/integration/watcher/watcher_test.cc. Each test scripts the sessions, waits
// until the watcher blocks in the fake (FakeTransport::waitIdle), then checks what it did.
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/log.h"
#include "tests/unit/watcher/fake_transport.h"
#include "tools/statusgen/statusgen.h"
#include "watcher/watcher.h"

namespace tsk::watcher {
namespace {

using namespace std::chrono_literals;
using testing::FakeSession;
using testing::FakeTransport;

// Records everything the watcher reports. With a clock set, each scheduled retry moves that
// clock on by exactly its delay, so the watcher's backoff wait ends without real time passing.
class Recorder final : public WatcherObserver {
 public:
  explicit Recorder(ManualClock* advance_on_retry = nullptr) : clock_(advance_on_retry) {}
  void onStateChanged(const NodeSnapshotPtr& s) override {
    std::lock_guard lock(mu_);
    snapshots_.push_back(s);
  }
  void onDisconnected(std::string_view reason) override {
    std::lock_guard lock(mu_);
    disconnects_.emplace_back(reason);
  }
  void onRetryScheduled(std::chrono::milliseconds delay) override {
    {
      std::lock_guard lock(mu_);
      delays_.push_back(delay);
    }
    cv_.notify_all();
    if (clock_ != nullptr) clock_->advance(delay);
  }
  // Waits until `n` retries have been scheduled.
  bool waitDelays(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(20), [&] { return delays_.size() >= n; });
  }
  std::vector<NodeSnapshotPtr> snapshots() const {
    std::lock_guard lock(mu_);
    return snapshots_;
  }
  std::vector<std::string> disconnects() const {
    std::lock_guard lock(mu_);
    return disconnects_;
  }
  std::vector<std::chrono::milliseconds> delays() const {
    std::lock_guard lock(mu_);
    return delays_;
  }

 private:
  ManualClock* const clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<NodeSnapshotPtr> snapshots_;
  std::vector<std::string> disconnects_;
  std::vector<std::chrono::milliseconds> delays_;
};

std::string initialLine(std::string backend_state = "Running", uint64_t peers = 3) {
  statusgen::InitialStatusOptions o;
  o.peers = peers;
  o.backend_state = std::move(backend_state);
  return statusgen::initialStatusLine(o);
}

// The body GET /localapi/v0/status?peers=false answers: the Status of an InitialStatus line,
// indented as tailscaled writes it.
std::string statusBody(std::string backend_state = "Running") {
  statusgen::InitialStatusOptions o;
  o.backend_state = std::move(backend_state);
  return nlohmann::json::parse(statusgen::initialStatusLine(o))["InitialStatus"].dump(1, '\t');
}

size_t count(const std::vector<std::string>& calls, const std::string& prefix) {
  return static_cast<size_t>(std::count_if(
      calls.begin(), calls.end(), [&](const std::string& c) { return c.rfind(prefix, 0) == 0; }));
}

class WatcherLoop : public ::testing::Test {
 protected:
  WatcherOptions options() {
    WatcherOptions o;
    o.backoff_initial = 1ms;
    o.backoff_max = 4ms;
    return o;
  }
  // Starts a watcher reading through the fake, scripted with `sessions`, and waits until it blocks
  // in the fake (each backoff wait ended by the recorder moving the clock).
  void start(const std::vector<FakeSession>& sessions, WatcherOptions o) {
    launch(sessions, o, recorder_);
    ASSERT_TRUE(fake_->waitIdle());
  }
  void launch(const std::vector<FakeSession>& sessions, WatcherOptions o, Recorder& recorder) {
    auto fake = std::make_unique<FakeTransport>();
    for (const auto& s : sessions) fake->add(s);
    fake_ = fake.get();
    watcher_ = std::make_unique<Watcher>(o, std::move(fake), recorder, Logger::null(), clock_);
    watcher_->start();
  }
  void TearDown() override {
    if (watcher_) watcher_->stop();
  }

  ManualClock clock_;
  Recorder recorder_{&clock_};
  Recorder still_clock_recorder_;  // leaves the clock to the test
  FakeTransport* fake_ = nullptr;
  std::unique_ptr<Watcher> watcher_;
};

TEST_F(WatcherLoop, ReconnectsAfterEofAndResyncsFromTheFreshInitialStatus) {
  start({FakeSession::streaming({initialLine("Running")})
             .endingWith(BodyEndKind::Eof, "the connection closed before the body was complete"),
         FakeSession::streaming({initialLine("Stopped")}).held()},
        options());

  EXPECT_EQ(fake_->sessions(), 2u);
  EXPECT_EQ(count(fake_->calls(), "open 16384"), 2u);
  EXPECT_EQ(count(fake_->calls(), "close"), 1u);
  ASSERT_EQ(recorder_.disconnects().size(), 1u);
  EXPECT_EQ(recorder_.disconnects()[0], "the connection closed before the body was complete");
  EXPECT_EQ(recorder_.delays().size(), 1u);

  const auto snaps = recorder_.snapshots();
  ASSERT_FALSE(snaps.empty());
  // Snapshots arrive in order, one per change, each saying what changed.
  for (size_t i = 1; i < snaps.size(); ++i) EXPECT_EQ(snaps[i]->seq, snaps[i - 1]->seq + 1);
  const auto resyncs = std::count_if(snaps.begin(), snaps.end(), [](const NodeSnapshotPtr& s) {
    return s->state.synced && (s->changes & kChangeSynced);
  });
  EXPECT_EQ(resyncs, 2);
  const NodeSnapshotPtr last = snaps.back();
  EXPECT_EQ(watcher_->snapshot(), last);  // the watcher hands on the reducer's snapshot itself
  EXPECT_TRUE(last->state.connected);
  EXPECT_TRUE(last->state.synced);
  EXPECT_EQ(last->state.state, BackendState::Stopped);
  ASSERT_TRUE(last->state.self);
  EXPECT_EQ(last->state.self->stable_id, statusgen::Identity{}.stable_id);
  EXPECT_EQ(last->state.peers_total, 3u);
  // The same identity read again on the resync is not a change.
  EXPECT_EQ(last->self_changes, 1u);
  const auto st = watcher_->stats();
  EXPECT_EQ(st.self_changes, 1u);
  EXPECT_EQ(st.connects, 2u);
  EXPECT_EQ(st.disconnects, 1u);
  EXPECT_EQ(st.lines, 2u);
}

TEST_F(WatcherLoop, TheFellBehindMessageEndsTheSessionAndTheRestOfTheBodyIsNotRead) {
  start({FakeSession::streaming({initialLine(),
                                 statusgen::errMessageLine(statusgen::kFellBehindMessage),
                                 statusgen::stateLine(2)}),
         FakeSession::streaming({initialLine()}).held()},
        options());

  ASSERT_EQ(recorder_.disconnects().size(), 1u);
  EXPECT_EQ(recorder_.disconnects()[0],
            "tailscaled closed the watch: " + std::string(statusgen::kFellBehindMessage));
  EXPECT_EQ(fake_->chunksDelivered(), 3u);  // 2 of the first session, 1 of the second
  for (const auto& s : recorder_.snapshots()) {
    EXPECT_NE(s->state.state, BackendState::NeedsLogin) << "a line after the closure was applied";
  }
  EXPECT_EQ(fake_->sessions(), 2u);
  EXPECT_TRUE(watcher_->state().synced);
  EXPECT_EQ(watcher_->stats().notifies_by_kind[4], 1u);  // kKindErrMessage's bit
}

TEST_F(WatcherLoop, StatusFetchModeAppliesTheFetchedStatusWithPeerCountsUnknown) {
  auto o = options();
  o.start_mode = StartMode::StatusFetch;
  start({FakeSession::streaming({statusgen::stateLine(4)}).statusReply(statusBody()).held()}, o);

  const auto calls = fake_->calls();
  ASSERT_GE(calls.size(), 3u);
  EXPECT_EQ(calls[0], "open 2");
  EXPECT_EQ(calls[1], "get /localapi/v0/status?peers=false max " + std::to_string(4u << 20));
  EXPECT_EQ(calls[2], "read");
  const auto snaps = recorder_.snapshots();
  const auto fetched = std::find_if(snaps.begin(), snaps.end(),
                                    [](const NodeSnapshotPtr& x) { return x->state.synced; });
  ASSERT_NE(fetched, snaps.end());
  EXPECT_EQ((*fetched)->state.state, BackendState::Running);
  ASSERT_TRUE((*fetched)->state.self);
  EXPECT_EQ((*fetched)->state.self->name, statusgen::Identity{}.name);
  EXPECT_EQ((*fetched)->state.tailnet_name, "example.com");
  EXPECT_TRUE((*fetched)->changes & kChangeIdentity);
  EXPECT_FALSE((*fetched)->state.peers_known);
  EXPECT_EQ(watcher_->state().state, BackendState::Stopped);  // the bus line that followed
  EXPECT_FALSE(watcher_->state().peers_known);
  EXPECT_EQ(watcher_->stats().lines, 1u);  // the fetched status is not a bus line
}

TEST_F(WatcherLoop, ADaemonWithoutTheInitialStatusBitGetsTheStatusFetched) {
  start({FakeSession::streaming({}).version("1.98.0").statusReply(statusBody("Starting")).held()},
        options());
  EXPECT_EQ(count(fake_->calls(), "get /localapi/v0/status?peers=false"), 1u);
  const auto st = watcher_->state();
  EXPECT_TRUE(st.synced);
  EXPECT_EQ(st.state, BackendState::Starting);
  EXPECT_TRUE(st.self);
  EXPECT_FALSE(st.peers_known);
}

TEST_F(WatcherLoop, AFailedOrInvalidStatusFetchEndsTheSessionAndTheNextOneRetries) {
  auto o = options();
  o.start_mode = StartMode::StatusFetch;
  start({FakeSession::streaming({}).statusReply(Error{"500 internal error"}),
         FakeSession::streaming({}).statusReply(std::string("{\"Self\":")),
         FakeSession::streaming({}).statusReply(statusBody()).held()},
        o);

  const auto reasons = recorder_.disconnects();
  ASSERT_EQ(reasons.size(), 2u);
  EXPECT_EQ(reasons[0], "cannot read the initial status: 500 internal error");
  EXPECT_NE(reasons[1].find("tailscaled's /localapi/v0/status reply is not a Status: "),
            std::string::npos)
      << reasons[1];
  EXPECT_EQ(count(fake_->calls(), "read"), 1u);  // no body read without a snapshot
  EXPECT_EQ(count(fake_->calls(), "close"), 2u);
  EXPECT_TRUE(watcher_->state().synced);
  EXPECT_TRUE(watcher_->state().self);
}

TEST_F(WatcherLoop, AFailedAttemptIsRetriedWithoutADisconnect) {
  const auto refused = FakeSession::refused("connect: connection refused");
  start({refused, refused, FakeSession::streaming({initialLine()}).held()}, options());
  EXPECT_TRUE(recorder_.disconnects().empty());  // never connected, so never disconnected
  EXPECT_EQ(recorder_.delays().size(), 2u);
  EXPECT_EQ(watcher_->stats().connects, 1u);
  EXPECT_EQ(watcher_->stats().disconnects, 0u);
  EXPECT_TRUE(watcher_->state().synced);
}

// Delays are jittered in [base/2, base]; base doubles per attempt up to the maximum, and starts
// over only after a session that stayed up for healthy_reset (the fake moves the ManualClock
// forward while it "reads" that session).
TEST_F(WatcherLoop, BackoffDoublesAndResetsOnlyAfterAHealthySession) {
  auto o = options();
  o.backoff_initial = 8ms;
  o.backoff_max = 32ms;
  o.healthy_reset = 60s;
  const auto refused = FakeSession::refused("connect: connection refused");
  const auto brief = FakeSession::streaming({initialLine()});
  const auto healthy =
      FakeSession::streaming({initialLine()}).whileReading([this] { clock_.advance(61s); });
  const auto start_time = clock_.monotonicNow();
  start({refused, refused, brief, refused, healthy, refused}, o);

  const auto d = recorder_.delays();
  ASSERT_EQ(d.size(), 6u);
  const auto within = [](std::chrono::milliseconds v, int lo, int hi) {
    return v.count() >= lo && v.count() <= hi;
  };
  EXPECT_TRUE(within(d[0], 4, 8)) << d[0].count();
  EXPECT_TRUE(within(d[1], 8, 16)) << d[1].count();
  EXPECT_TRUE(within(d[2], 16, 32)) << d[2].count();  // a brief session does not reset
  EXPECT_TRUE(within(d[3], 16, 32)) << d[3].count();  // capped at backoff_max
  EXPECT_TRUE(within(d[4], 4, 8)) << d[4].count();    // after the healthy session
  EXPECT_TRUE(within(d[5], 8, 16)) << d[5].count();
  // The watcher's clock moved by the healthy session's 61s and by each delay it waited out.
  std::chrono::nanoseconds waited{0};
  for (const auto delay : d) waited += delay;
  EXPECT_EQ(clock_.monotonicNow() - start_time, 61s + waited);
}

// The retry waits for the backoff delay on the watcher's clock: the next attempt starts only once
// that clock reaches it.
TEST_F(WatcherLoop, TheRetryWaitsForItsDelayOnTheWatchersClock) {
  auto o = options();
  o.backoff_initial = 8ms;  // a delay of at least 4 ms after jitter
  o.backoff_max = 32ms;
  Recorder& manual = still_clock_recorder_;
  const auto began = clock_.monotonicNow();
  launch({FakeSession::refused("connect: connection refused"),
          FakeSession::streaming({initialLine()}).held()},
         o, manual);
  ASSERT_TRUE(manual.waitDelays(1));
  const auto delay = manual.delays()[0];
  ASSERT_GT(delay, 0ms);
  EXPECT_EQ(fake_->sessions(), 1u);
  clock_.advance(delay - 1ns);
  EXPECT_EQ(fake_->sessions(), 1u);  // still waiting
  clock_.advance(1ns);
  ASSERT_TRUE(fake_->waitIdle());
  EXPECT_EQ(fake_->sessions(), 2u);
  EXPECT_EQ(clock_.monotonicNow() - began, std::chrono::nanoseconds(delay));
  EXPECT_TRUE(watcher_->state().synced);
}

TEST_F(WatcherLoop, StopEndsAHeldSessionAndTheThread) {
  start({FakeSession::streaming({initialLine()}).held()}, options());
  EXPECT_TRUE(watcher_->alive());
  watcher_->stop();
  EXPECT_FALSE(watcher_->alive());
}

}  // namespace
}  // namespace tsk::watcher
