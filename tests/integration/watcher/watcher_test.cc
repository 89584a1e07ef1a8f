// Watcher (its thread, reconnect loop, parser and reducer wiring) against tsbus-sim over a real
// unix socket. Backoffs are short; every wait polls for a condition with a generous deadline.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <future>
#include <sstream>

#include "tests/integration/watcher/test_support.h"
#include "tools/statusgen/statusgen.h"
#include "tools/tsbus-sim/bus_sim.h"
#include "watcher/watcher.h"

namespace tsk::watcher {
namespace {

using namespace std::chrono_literals;
using testing::eventually;
using testing::TempDir;
using tsbus_sim::BusSim;
using tsbus_sim::SimOptions;

// Records what the watcher reports.
class RecordingObserver final : public WatcherObserver {
 public:
  void onStateChanged(const NodeState& s) override {
    std::lock_guard lock(mu_);
    ++state_changes_;
    last_ = s;
  }
  void onNotify(uint32_t, size_t) override {
    std::lock_guard lock(mu_);
    ++notifies_;
  }
  void onDisconnected(std::string_view reason) override {
    std::lock_guard lock(mu_);
    disconnects_.emplace_back(reason);
  }
  std::vector<std::string> disconnects() const {
    std::lock_guard lock(mu_);
    return disconnects_;
  }
  uint64_t notifies() const {
    std::lock_guard lock(mu_);
    return notifies_;
  }

 private:
  mutable std::mutex mu_;
  NodeState last_;
  uint64_t state_changes_ = 0;
  uint64_t notifies_ = 0;
  std::vector<std::string> disconnects_;
};

// Expected online count of the first n generated peers (statusgen is deterministic).
uint64_t onlineOf(uint64_t n, uint64_t seed = 1, double fraction = 0.5) {
  uint64_t online = 0;
  for (uint64_t i = 0; i < n; ++i) online += statusgen::peerAt(i, seed, fraction).online ? 1 : 0;
  return online;
}

class WatcherTest : public ::testing::Test {
 protected:
  WatcherTest() : log_file_(dir_.file("watcher.log")) {
    log_out_ = std::fopen(log_file_.c_str(), "w");
    log_ = std::make_unique<Logger>(log_out_, LogFormat::Text, LogLevel::Debug);
  }
  ~WatcherTest() override {
    if (watcher_) watcher_->stop();
    if (sim_) sim_->stop();
    std::fclose(log_out_);
  }

  SimOptions simOptions(uint64_t peers = 25) const {
    SimOptions o;
    o.socket_path = socketPath();
    o.peers = peers;
    return o;
  }
  void startSim(SimOptions o) {
    sim_ = std::make_unique<BusSim>(std::move(o));
    ASSERT_TRUE(sim_->start().ok());
  }
  WatcherOptions watcherOptions() const {
    WatcherOptions o;
    o.socket_path = socketPath();
    o.backoff_initial = 10ms;
    o.backoff_max = 50ms;
    return o;
  }
  void startWatcher(WatcherOptions o) {
    watcher_ = std::make_unique<Watcher>(std::move(o), observer_, *log_);
    watcher_->start();
  }
  std::string socketPath() const { return dir_.file("tailscaled.sock"); }
  bool synced() const {
    const NodeState s = watcher_->state();
    return s.connected && s.synced;
  }
  std::string logText() const {
    std::ifstream in(log_file_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  uint64_t kindCount(NotifyKind kind) const {
    int bit = 0;
    while ((1u << bit) != static_cast<uint32_t>(kind)) ++bit;
    return watcher_->stats().notifies_by_kind[bit];
  }

  TempDir dir_;
  std::string log_file_;
  std::FILE* log_out_ = nullptr;
  std::unique_ptr<Logger> log_;
  RecordingObserver observer_;
  std::unique_ptr<BusSim> sim_;
  std::unique_ptr<Watcher> watcher_;
};

TEST(WatchMask, IsInitialStatusByDefaultAndNeverNetMapOrRateLimit) {
  WatcherOptions o;
  EXPECT_EQ(watchMask(o), 16384u);
  o.track_peers = true;
  EXPECT_EQ(watchMask(o), 16384u | 4096u | 32768u);
  o.start_mode = StartMode::StatusFetch;
  EXPECT_EQ(watchMask(o), 2u | 4096u | 32768u);
  o.track_peers = false;
  EXPECT_EQ(watchMask(o), 2u);
  for (bool peers : {false, true}) {
    for (auto mode : {StartMode::InitialStatus, StartMode::StatusFetch}) {
      o.track_peers = peers;
      o.start_mode = mode;
      EXPECT_EQ(watchMask(o) & (8u | 256u), 0u);
    }
  }
}

TEST_F(WatcherTest, ReadsIdentityStateAndPeerCountsFromTheInitialStatus) {
  startSim(simOptions(25));
  startWatcher(watcherOptions());
  ASSERT_TRUE(eventually([&] { return synced(); }));
  const NodeState s = watcher_->state();
  EXPECT_EQ(s.state, BackendState::Running);
  ASSERT_TRUE(s.self.has_value());
  EXPECT_EQ(s.self->stable_id, "nSdcr7Qx2CNTRL");
  EXPECT_EQ(s.self->name, "demo-sidecar-0.tail3f9a2c.ts.net.");
  EXPECT_EQ(s.self->addresses,
            (std::vector<std::string>{"100.90.12.34", "fd7a:115c:a1e0::6a01:c22"}));
  EXPECT_EQ(s.tailnet_name, "example.com");
  EXPECT_EQ(s.daemon_version, statusgen::kVersionH);
  EXPECT_TRUE(s.peers_known);
  EXPECT_EQ(s.peers_total, 25u);
  EXPECT_EQ(s.peers_online, onlineOf(25));
  EXPECT_EQ(watcher_->mask(), 16384u);
  EXPECT_TRUE(watcher_->alive());
  const WatcherStats st = watcher_->stats();
  EXPECT_EQ(st.connects, 1u);
  EXPECT_EQ(st.lines, 1u);
  EXPECT_GT(st.bytes_read, 25u * 700);
}

TEST_F(WatcherTest, AppliesASelfChangeAndIgnoresAnUnchangedOne) {
  startSim(simOptions());
  startWatcher(watcherOptions());
  ASSERT_TRUE(eventually([&] { return synced(); }));
  sim_->selfChange({.name = std::string("renamed.tail3f9a2c.ts.net."),
                    .addresses = std::vector<std::string>{"100.64.0.9"}});
  ASSERT_TRUE(eventually([&] {
    const auto s = watcher_->state();
    return s.self && s.self->name == "renamed.tail3f9a2c.ts.net.";
  }));
  EXPECT_EQ(watcher_->state().self->addresses, std::vector<std::string>{"100.64.0.9"});
  const uint64_t changes = watcher_->stats().self_changes;
  EXPECT_GE(changes, 1u);

  sim_->selfChange();  // the same node again, as every full netmap sends it
  ASSERT_TRUE(eventually([&] { return kindCount(kKindSelfChange) == 2; }));
  EXPECT_EQ(watcher_->stats().self_changes, changes);
}

TEST_F(WatcherTest, AppliesStateChanges) {
  startSim(simOptions());
  startWatcher(watcherOptions());
  ASSERT_TRUE(eventually([&] { return synced(); }));
  sim_->setState(2);
  ASSERT_TRUE(eventually([&] { return watcher_->state().state == BackendState::NeedsLogin; }));
  // Not an ipn.State (0-6): the line is malformed and skipped, not fatal; the state stays.
  sim_->setState(42);
  ASSERT_TRUE(eventually([&] { return watcher_->stats().malformed_lines == 1; }));
  EXPECT_EQ(watcher_->state().state, BackendState::NeedsLogin);
  sim_->setState(6);
  ASSERT_TRUE(eventually([&] { return watcher_->state().state == BackendState::Running; }));
}

TEST_F(WatcherTest, ResyncsFromAFreshInitialStatusAfterADaemonRestart) {
  startSim(simOptions(10));
  startWatcher(watcherOptions());
  ASSERT_TRUE(eventually([&] { return synced(); }));
  sim_->restart({.down = 150ms, .remove_socket = true});
  ASSERT_TRUE(eventually([&] { return watcher_->stats().disconnects >= 1; }));
  // While the daemon is away the node is renamed and the tailnet grows.
  sim_->setPeers(12);
  sim_->selfChange({.name = std::string("after-restart.tail3f9a2c.ts.net.")});
  ASSERT_TRUE(eventually([&] {
    const auto s = watcher_->state();
    return s.connected && s.synced && s.self && s.self->name == "after-restart.tail3f9a2c.ts.net.";
  }));
  EXPECT_EQ(watcher_->state().peers_total, 12u);
  EXPECT_GE(watcher_->stats().connects, 2u);
  ASSERT_FALSE(observer_.disconnects().empty());
}

TEST_F(WatcherTest, ReconnectsAfterTheFellBehindClosure) {
  startSim(simOptions());
  startWatcher(watcherOptions());
  ASSERT_TRUE(eventually([&] { return synced(); }));
  sim_->flood(200);  // overflows the 128-slot queue: tailscaled (H) closes the watch
  ASSERT_TRUE(eventually([&] { return watcher_->stats().connects >= 2 && synced(); }));
  EXPECT_EQ(sim_->stats().closed_slow, 1u);
  EXPECT_GE(kindCount(kKindErrMessage), 1u);
  const auto reasons = observer_.disconnects();
  ASSERT_FALSE(reasons.empty());
  EXPECT_NE(reasons[0].find("fell behind"), std::string::npos) << reasons[0];
  EXPECT_TRUE(eventually([&] { return logText().find("fell behind") != std::string::npos; }));
}

TEST_F(WatcherTest, ReportsARejectedWatchWithStatusAndBodyThenRecovers) {
  startSim(simOptions());
  sim_->failWatches(403, "watch ipn bus access denied");
  startWatcher(watcherOptions());
  ASSERT_TRUE(eventually([&] {
    return logText().find(
               "tailscaled rejected the watch request: 403 watch ipn bus access denied") !=
           std::string::npos;
  })) << logText();
  EXPECT_FALSE(watcher_->state().connected);
  sim_->failWatches(0);
  ASSERT_TRUE(eventually([&] { return synced(); }));
}

TEST_F(WatcherTest, LogsARepeatedFailureOnce) {
  startWatcher(watcherOptions());  // no daemon at all
  ASSERT_TRUE(eventually([&] {
    const std::string log = logText();
    return log.find("bus still unavailable") != std::string::npos;  // a debug-level repeat
  }));
  const std::string log = logText();
  size_t warns = 0;
  for (size_t at = log.find("WARN cannot watch the bus"); at != std::string::npos;
       at = log.find("WARN cannot watch the bus", at + 1)) {
    ++warns;
  }
  EXPECT_EQ(warns, 1u) << log;
  EXPECT_NE(log.find("does not exist"), std::string::npos) << log;
}

TEST_F(WatcherTest, ConnectsWhenTheSocketAppearsLater) {
  startWatcher(watcherOptions());
  ASSERT_TRUE(
      eventually([&] { return logText().find("cannot watch the bus") != std::string::npos; }));
  EXPECT_FALSE(watcher_->state().connected);
  EXPECT_TRUE(watcher_->alive());
  startSim(simOptions(3));
  ASSERT_TRUE(eventually([&] { return synced(); }));
  EXPECT_EQ(watcher_->state().peers_total, 3u);
}

TEST_F(WatcherTest, StopInterruptsABlockingRead) {
  startSim(simOptions());
  startWatcher(watcherOptions());
  ASSERT_TRUE(eventually([&] { return synced(); }));  // now blocked reading a silent bus
  auto stopping = std::async(std::launch::async, [&] { watcher_->stop(); });
  ASSERT_EQ(stopping.wait_for(20s), std::future_status::ready);
  EXPECT_FALSE(watcher_->alive());
}

TEST_F(WatcherTest, StopInterruptsTheBackoffWait) {
  WatcherOptions o = watcherOptions();
  o.backoff_initial = std::chrono::hours(1);
  o.backoff_max = std::chrono::hours(1);
  startWatcher(o);  // no daemon: the first attempt fails, then it waits about an hour
  ASSERT_TRUE(
      eventually([&] { return logText().find("cannot watch the bus") != std::string::npos; }));
  auto stopping = std::async(std::launch::async, [&] { watcher_->stop(); });
  ASSERT_EQ(stopping.wait_for(20s), std::future_status::ready);
  EXPECT_FALSE(watcher_->alive());
}

TEST_F(WatcherTest, SkipsAMalformedLineAndTheNextEventStillArrives) {
  startSim(simOptions());
  startWatcher(watcherOptions());
  ASSERT_TRUE(eventually([&] { return synced(); }));
  sim_->malformed();
  sim_->malformed("{\"Version\":\"x\",\"State\":");  // truncated JSON on one line
  sim_->setState(4);
  ASSERT_TRUE(eventually([&] { return watcher_->state().state == BackendState::Stopped; }));
  EXPECT_EQ(watcher_->stats().malformed_lines, 2u);
  EXPECT_EQ(watcher_->stats().connects, 1u);  // the stream went on
  EXPECT_TRUE(
      eventually([&] { return logText().find("skipped a malformed line") != std::string::npos; }));
}

TEST_F(WatcherTest, DropsTheStreamOnBrokenFramingAndResyncs) {
  startSim(simOptions());
  startWatcher(watcherOptions());
  ASSERT_TRUE(eventually([&] { return synced(); }));
  sim_->badFraming();
  ASSERT_TRUE(eventually([&] { return watcher_->stats().connects >= 2 && synced(); }));
  const auto reasons = observer_.disconnects();
  ASSERT_FALSE(reasons.empty());
  EXPECT_NE(reasons[0].find("malformed HTTP framing"), std::string::npos) << reasons[0];
}

TEST_F(WatcherTest, SkipsAnOversizedLineAndKeepsGoing) {
  startSim(simOptions());
  WatcherOptions o = watcherOptions();
  o.max_line_bytes = 64 * 1024 * 1024;  // the 25-peer InitialStatus fits; 100 MB does not
  startWatcher(o);
  ASSERT_TRUE(eventually([&] { return synced(); }));
  sim_->oversized(100ull << 20);
  sim_->setState(5);
  ASSERT_TRUE(eventually([&] { return watcher_->state().state == BackendState::Starting; }));
  EXPECT_EQ(watcher_->stats().oversized_lines, 1u);
  EXPECT_EQ(watcher_->stats().connects, 1u);
}

TEST_F(WatcherTest, StatusFetchModeTakesTheIdentityFromTheStatusEndpoint) {
  startSim(simOptions(500));
  WatcherOptions o = watcherOptions();
  o.start_mode = StartMode::StatusFetch;
  startWatcher(o);
  ASSERT_TRUE(eventually([&] {
    const auto s = watcher_->state();
    return s.connected && s.self && s.state == BackendState::Running;
  }));
  const NodeState s = watcher_->state();
  EXPECT_EQ(s.self->stable_id, "nSdcr7Qx2CNTRL");
  EXPECT_FALSE(s.peers_known);
  EXPECT_EQ(watcher_->mask(), 2u);
  EXPECT_LT(watcher_->stats().bytes_read, 10'000u);  // no 500-peer InitialStatus on the bus
  sim_->selfChange({.name = std::string("fetched.tail3f9a2c.ts.net.")});
  ASSERT_TRUE(eventually([&] {
    const auto st = watcher_->state();
    return st.self && st.self->name == "fetched.tail3f9a2c.ts.net.";
  }));
}

TEST_F(WatcherTest, TracksPeerCountsThroughChurnAndPatches) {
  startSim(simOptions(30));
  WatcherOptions o = watcherOptions();
  o.track_peers = true;
  startWatcher(o);
  ASSERT_TRUE(eventually([&] { return synced(); }));
  const uint64_t online = onlineOf(30);
  EXPECT_EQ(watcher_->state().peers_total, 30u);
  EXPECT_EQ(watcher_->state().peers_online, online);
  sim_->churn(5);
  ASSERT_TRUE(eventually([&] { return kindCount(kKindPeersChanged) >= 5; }));
  EXPECT_EQ(watcher_->state().peers_total, 30u);
  sim_->patch(1);  // peer 0 toggles Online
  const bool peer0_online = statusgen::peerAt(0).online;
  ASSERT_TRUE(eventually(
      [&] { return watcher_->state().peers_online == (peer0_online ? online - 1 : online + 1); }));
  EXPECT_EQ(watcher_->mask(), 16384u | 4096u | 32768u);
}

TEST_F(WatcherTest, BlankDeltaLinesAreCountedAndChangeNothing) {
  startSim(simOptions());
  startWatcher(watcherOptions());
  ASSERT_TRUE(eventually([&] { return synced(); }));
  const NodeState before = watcher_->state();
  sim_->churn(10);  // 20 blank lines for a watcher without peer bits
  ASSERT_TRUE(eventually([&] { return kindCount(kKindBlank) == 20; }));
  EXPECT_EQ(watcher_->state(), before);
}

TEST_F(WatcherTest, WorksWithATEraDaemonWithoutPeerNodeIds) {
  SimOptions so = simOptions(7);
  so.h_era = false;
  startSim(so);
  startWatcher(watcherOptions());
  ASSERT_TRUE(eventually([&] { return synced(); }));
  EXPECT_EQ(watcher_->state().peers_total, 7u);
  EXPECT_EQ(watcher_->state().daemon_version, statusgen::kVersionT);
}

// docs/PROTOCOL.md#peer-deltas: every full netmap lists every peer; one dropped by control is
// just not in the list (tests/data/real-tailscaled 01 and 04).
TEST_F(WatcherTest, AFullNetmapReplacesThePeerSet) {
  SimOptions so = simOptions(30);
  so.full_netmap = true;
  startSim(so);
  WatcherOptions o = watcherOptions();
  o.track_peers = true;
  startWatcher(o);
  ASSERT_TRUE(eventually([&] { return synced(); }));
  EXPECT_EQ(watcher_->state().peers_total, 30u);
  const auto self = watcher_->state().self;
  const uint64_t changes = watcher_->stats().self_changes;
  sim_->setPeers(20);  // control dropped peers 20..29
  sim_->fullNetmap();
  ASSERT_TRUE(eventually([&] { return watcher_->state().peers_total == 20; }));
  EXPECT_EQ(watcher_->state().peers_online, onlineOf(20));
  EXPECT_EQ(watcher_->state().self, self);
  EXPECT_EQ(watcher_->stats().self_changes, changes);
  sim_->setPeers(25);  // and came back
  sim_->selfChange();  // a full netmap too, in this mode
  ASSERT_TRUE(eventually([&] { return watcher_->state().peers_total == 25; }));
  EXPECT_EQ(watcher_->state().peers_online, onlineOf(25));
}

TEST_F(WatcherTest, IgnoresPrefsLoginFinishedDriveSharesAndUserProfiles) {
  startSim(simOptions());
  WatcherOptions o = watcherOptions();
  o.track_peers = true;
  startWatcher(o);
  ASSERT_TRUE(eventually([&] { return synced(); }));
  const NodeState before = watcher_->state();
  const uint64_t changes = watcher_->stats().self_changes;
  sim_->prefs(false);
  sim_->loginFinished();
  sim_->prefs(true);
  sim_->driveShares();
  sim_->userProfiles();
  ASSERT_TRUE(eventually([&] {
    return kindCount(kKindPrefs) == 2 && kindCount(kKindLoginFinished) == 1 &&
           kindCount(kKindOther) == 1 && kindCount(kKindUserProfiles) == 1;
  }));
  EXPECT_EQ(watcher_->state(), before);
  EXPECT_EQ(watcher_->stats().self_changes, changes);
  EXPECT_EQ(watcher_->stats().malformed_lines, 0u);
}

}  // namespace
}  // namespace tsk::watcher
