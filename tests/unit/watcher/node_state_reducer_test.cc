#include "watcher/node_state_reducer.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/unit/watcher/notify_test_support.h"
#include "tests/unit/watcher/pipeline.h"
#include "tools/statusgen/statusgen.h"
#include "watcher/notify_parser.h"

namespace tsk::watcher {
namespace {

using testing::fixtureFile;
using testing::fixtureLines;

using testing::capturedLog;
using testing::occurrences;
using testing::Pipeline;

TEST(NodeStateReducer, InitialStatusSetsEverything) {
  Pipeline p(false);
  EXPECT_TRUE(p.reducer.onConnected("1.99.0"));
  EXPECT_TRUE(p.feed(fixtureFile("01-initial-status.jsonl")));
  const NodeState& s = p.state();
  EXPECT_TRUE(s.connected);
  EXPECT_TRUE(s.synced);
  EXPECT_EQ(s.state, BackendState::Running);
  ASSERT_TRUE(s.self);
  EXPECT_EQ(s.self->stable_id, "nSdcr7Qx2CNTRL");
  EXPECT_EQ(s.self->name, "demo-sidecar-0.tail3f9a2c.ts.net.");
  EXPECT_EQ(s.tailnet_name, "example.com");
  EXPECT_EQ(s.magic_dns_suffix, "tail3f9a2c.ts.net");
  EXPECT_EQ(s.daemon_version, "1.99.0");  // the header wins over Notify.Version
  EXPECT_EQ(s.peers_total, 3u);
  EXPECT_EQ(s.peers_online, 2u);
  EXPECT_TRUE(s.peers_known);
}

TEST(NodeStateReducer, RepeatedSelfChangeChangesNothingAndRenameChangesOnlyTheName) {
  Pipeline p(false);
  p.reducer.onConnected("1.103.0");
  p.feed(fixtureFile("08-initial-status-head.jsonl"));
  const auto lines = fixtureLines("02-selfchange.jsonl");
  const SelfNode before = *p.state().self;
  // Line 1 repeats the identity of 08 (as a Node: no Online, which the PeerStatus had).
  EXPECT_FALSE(p.feed(lines[0]));
  EXPECT_FALSE(p.feed(lines[0]));
  EXPECT_EQ(p.reducer.selfChanges(), 1u);  // the identity learnt from the InitialStatus
  EXPECT_TRUE(p.feed(lines[1]));
  EXPECT_EQ(p.reducer.selfChanges(), 2u);
  SelfNode expected = before;
  expected.name = "demo-sidecar-renamed.tail3f9a2c.ts.net.";
  EXPECT_EQ(*p.state().self, expected);
}

TEST(NodeStateReducer, SelfChangeAfterATEraInitialStatusOnlyAddsTheNodeId) {
  Pipeline p(false);
  p.reducer.onConnected("");
  p.feed(fixtureFile("01-initial-status.jsonl"));
  const auto lines = fixtureLines("02-selfchange.jsonl");
  SelfNode expected = *p.state().self;
  expected.node_id = 4815162342001;        // the Node carries the integer ID the T PeerStatus lacks
  EXPECT_TRUE(p.feed(lines[0]));           // NodeState learnt the ID...
  EXPECT_EQ(p.reducer.selfChanges(), 1u);  // ...but the identity did not change (1: the first)
  EXPECT_EQ(*p.state().self, expected);
  EXPECT_FALSE(p.feed(lines[0]));
  // A reconnect's InitialStatus (again without NodeID) does not forget it.
  p.reducer.onDisconnected();
  p.reducer.onConnected("");
  p.feed(fixtureFile("01-initial-status.jsonl"));
  EXPECT_EQ(p.state().self->node_id, 4815162342001);
  EXPECT_EQ(p.state().daemon_version, "1.99.0-t5e1f0a9c2-g7b3d2e8f1");  // from Notify.Version
}

TEST(NodeStateReducer, StateLinesFollowTheTransitions) {
  Pipeline p(false);
  std::vector<BackendState> seen;
  for (const auto& line : fixtureLines("03-state-change.jsonl")) {
    EXPECT_TRUE(p.feed(line));
    seen.push_back(p.state().state);
  }
  EXPECT_EQ(seen, (std::vector<BackendState>{BackendState::Stopped, BackendState::Starting,
                                             BackendState::Running}));
  EXPECT_FALSE(p.feed(fixtureLines("03-state-change.jsonl")[2]));  // Running again: no change
}

TEST(NodeStateReducer, HeadInitialStatusTakesStateFromBackendState) {
  Pipeline p(false);
  p.feed(statusgen::stateLine(2));
  p.feed(fixtureFile("08-initial-status-head.jsonl"));
  EXPECT_EQ(p.state().state, BackendState::Running);
  EXPECT_EQ(p.state().self->node_id, 4815162342001);
}

TEST(NodeStateReducer, BackgroundLinesChangeNothing) {
  Pipeline p(false);
  p.feed(fixtureFile("01-initial-status.jsonl"));
  for (const char* name : {"04-peers-changed-removed.jsonl", "05-health-only.jsonl"}) {
    for (const auto& line : fixtureLines(name)) EXPECT_FALSE(p.feed(line)) << name;
  }
  const auto noise = fixtureLines("07-background-noise.jsonl");
  EXPECT_FALSE(p.feed(noise[0]));
  EXPECT_FALSE(p.feed(noise[1]));
  EXPECT_EQ(p.state().self->name, "demo-sidecar-0.tail3f9a2c.ts.net.");
}

TEST(NodeStateReducer, InitialStatusReplacesEverythingOnResync) {
  Pipeline p(false);
  p.reducer.onConnected("");
  p.feed(fixtureFile("01-initial-status.jsonl"));
  p.feed(fixtureLines("02-selfchange.jsonl")[1]);  // renamed
  p.feed(statusgen::stateLine(4));
  EXPECT_TRUE(p.reducer.onDisconnected());
  EXPECT_FALSE(p.state().connected);
  EXPECT_FALSE(p.state().synced);
  EXPECT_TRUE(p.state().self);  // identity is not forgotten while disconnected
  p.reducer.onConnected("");
  statusgen::InitialStatusOptions o;
  o.peers = 5;
  o.self.name = "other.tail3f9a2c.ts.net.";
  EXPECT_TRUE(p.feed(statusgen::initialStatusLine(o)));
  EXPECT_TRUE(p.state().synced);
  EXPECT_EQ(p.state().state, BackendState::Running);
  EXPECT_EQ(p.state().self->name, "other.tail3f9a2c.ts.net.");
  EXPECT_EQ(p.state().peers_total, 5u);
}

// A daemon before its first netmap (first boot, and every restart) serves an empty Self.
std::string preNetmapInitial(std::string_view backend_state) {
  statusgen::InitialStatusOptions o;
  o.pre_netmap = true;
  o.backend_state = std::string(backend_state);
  return statusgen::initialStatusLine(o);
}

TEST(NodeStateReducer, EmptySelfAtFirstBootIsNoIdentity) {
  Pipeline p(false);
  p.reducer.onConnected("");
  p.feed(preNetmapInitial("NoState"));
  EXPECT_TRUE(p.state().synced);
  EXPECT_TRUE(p.state().identity_pending);
  EXPECT_FALSE(p.state().self);
  EXPECT_EQ(p.reducer.selfChanges(), 0u);
  // The first netmap: tailscaled sends a SelfChange with the node.
  EXPECT_TRUE(p.feed(statusgen::selfChangeLine(statusgen::Identity{})));
  EXPECT_FALSE(p.state().identity_pending);
  ASSERT_TRUE(p.state().self);
  EXPECT_EQ(p.state().self->stable_id, statusgen::Identity{}.stable_id);
}

TEST(NodeStateReducer, EmptySelfAfterARestartKeepsTheLastIdentity) {
  Pipeline p(false);
  p.reducer.onConnected("");
  p.feed(fixtureFile("01-initial-status.jsonl"));
  ASSERT_TRUE(p.state().self);
  const SelfNode before = *p.state().self;
  p.reducer.onDisconnected();
  p.reducer.onConnected("");
  EXPECT_TRUE(p.feed(preNetmapInitial("Starting")));
  EXPECT_TRUE(p.state().identity_pending);
  EXPECT_EQ(p.state().state, BackendState::Starting);
  ASSERT_TRUE(p.state().self);
  EXPECT_EQ(*p.state().self, before);  // not overwritten with "" / null
  EXPECT_EQ(p.state().tailnet_name, "example.com");
  // The netmap is back with the same node: only the pending flag changes, no self change.
  const uint64_t changes = p.reducer.selfChanges();
  EXPECT_TRUE(p.feed(fixtureLines("02-selfchange.jsonl")[0]));
  EXPECT_FALSE(p.state().identity_pending);
  EXPECT_EQ(p.reducer.selfChanges(), changes);
  EXPECT_FALSE(p.feed(fixtureLines("02-selfchange.jsonl")[0]));
}

TEST(NodeStateReducer, InitialStatusWithASelfOutsideTheNetworkMapIsNoIdentity) {
  Pipeline p(false);
  p.reducer.onConnected("");
  p.feed(fixtureFile("01-initial-status.jsonl"));
  const SelfNode before = *p.state().self;
  // A StableID but InNetworkMap false: still not an identity to publish.
  std::string line = fixtureFile("01-initial-status.jsonl");
  const std::string from = "\"InNetworkMap\":true";
  const size_t self_at = line.find("\"Self\":");
  ASSERT_NE(self_at, std::string::npos);
  const size_t at = line.find(from, self_at);
  ASSERT_NE(at, std::string::npos);
  line.replace(at, from.size(), "\"InNetworkMap\":false");
  p.reducer.onDisconnected();
  p.reducer.onConnected("");
  p.feed(line);
  EXPECT_TRUE(p.state().identity_pending);
  EXPECT_EQ(*p.state().self, before);
}

TEST(NodeStateReducer, SelfChangeWithoutAStableIdIsIgnored) {
  Pipeline p(false);
  p.reducer.onConnected("");
  p.feed(fixtureFile("01-initial-status.jsonl"));
  const SelfNode before = *p.state().self;
  statusgen::Identity empty;
  empty.stable_id = "";
  empty.name = "";
  empty.addresses = {};
  EXPECT_FALSE(p.feed(statusgen::selfChangeLine(empty)));
  EXPECT_EQ(*p.state().self, before);
  EXPECT_FALSE(p.state().identity_pending);
}

TEST(NodeStateReducer, KeyExpiryRoundedToTheSecondIsNotAChange) {
  NodeStateReducer r(Logger::null());
  Notify initial;
  initial.initial_status.emplace();
  SelfNode rounded;
  rounded.stable_id = "n1";
  rounded.name = "n1.tail3f9a2c.ts.net.";  // a publishable node has a name
  rounded.key_expiry = "2026-07-08T12:00:41Z";
  initial.initial_status->self = rounded;
  EXPECT_TRUE(r.apply(initial));
  Notify change;
  SelfNode precise = rounded;
  precise.node_id = 7;
  precise.key_expiry = "2026-07-08T12:00:41.250Z";
  change.self_change = precise;
  EXPECT_TRUE(r.apply(change));  // the node ID is new information
  EXPECT_EQ(r.state().self->key_expiry, "2026-07-08T12:00:41Z");
  EXPECT_FALSE(r.apply(change));
  change.self_change->key_expiry = "2026-08-08T12:00:41Z";
  EXPECT_TRUE(r.apply(change));
  EXPECT_EQ(r.selfChanges(), 2u);  // the first identity and the expiry; not the node ID
}

// Go's time.Round(time.Second) rounds halves up: the Node's 12:00:41.5 is the PeerStatus's
// 12:00:42, in any zone offset.
TEST(NodeStateReducer, KeyExpiryRoundsHalvesUpLikeGo) {
  NodeStateReducer r(Logger::null());
  Notify initial;
  initial.initial_status.emplace();
  SelfNode rounded;
  rounded.stable_id = "n1";
  rounded.name = "n1.tail3f9a2c.ts.net.";  // a publishable node has a name
  rounded.node_id = 7;
  rounded.key_expiry = "2026-07-08T12:00:42Z";
  initial.initial_status->self = rounded;
  EXPECT_TRUE(r.apply(initial));
  Notify change;
  change.self_change = rounded;
  for (const char* same : {"2026-07-08T12:00:41.5Z", "2026-07-08T12:00:41.999999999Z",
                           "2026-07-08T12:00:42.4Z", "2026-07-08T14:00:42+02:00"}) {
    change.self_change->key_expiry = same;
    EXPECT_FALSE(r.apply(change)) << same;
  }
  for (const char* other : {"2026-07-08T12:00:41.4999Z", "2026-07-08T12:00:42.5Z", "garbage"}) {
    change.self_change->key_expiry = other;
    EXPECT_TRUE(r.apply(change)) << other;
    change.self_change->key_expiry = rounded.key_expiry;
    r.apply(change);
  }
}

TEST(NodeStateReducer, TrackedPeerDeltasMoveTheCounts) {
  Pipeline p(true);
  statusgen::InitialStatusOptions o;
  o.peers = 100;
  o.online_fraction = 0.0;
  p.feed(statusgen::initialStatusLine(o));
  EXPECT_EQ(p.state().peers_total, 100u);
  EXPECT_EQ(p.state().peers_online, 0u);

  statusgen::PeerNode fresh = statusgen::peerAt(1000);
  fresh.online = true;
  EXPECT_TRUE(p.feed(statusgen::peersChangedLine(fresh)));  // a new ID adds one
  EXPECT_EQ(p.state().peers_total, 101u);
  EXPECT_EQ(p.state().peers_online, 1u);
  EXPECT_FALSE(p.feed(statusgen::peersChangedLine(fresh)));  // a known ID replaces
  EXPECT_EQ(p.state().peers_total, 101u);

  const int64_t known = statusgen::peerAt(3).node_id;
  EXPECT_TRUE(p.feed(statusgen::peerPatchLine(known, true)));
  EXPECT_EQ(p.state().peers_online, 2u);
  EXPECT_TRUE(p.feed(statusgen::peerPatchLine(known, false)));
  EXPECT_EQ(p.state().peers_online, 1u);
  EXPECT_FALSE(p.feed(statusgen::peerPatchLine(424242, true)));  // unknown: ignored

  const int64_t gone[] = {known, 424242};  // only the known one is removed
  EXPECT_TRUE(p.feed(statusgen::peersRemovedLine(gone)));
  EXPECT_EQ(p.state().peers_total, 100u);
  EXPECT_FALSE(p.feed(statusgen::peersRemovedLine(gone)));
  EXPECT_EQ(p.state().peers_total, 100u);
  EXPECT_EQ(p.reducer.peers().unknownRemovals(), 3u);

  o.peers = 10;  // resync from a new InitialStatus
  EXPECT_TRUE(p.feed(statusgen::initialStatusLine(o)));
  EXPECT_EQ(p.state().peers_total, 10u);
  EXPECT_EQ(p.state().peers_online, 0u);
}

TEST(NodeStateReducer, HeadPeerDeltaFixtureAfterHeadInitialStatus) {
  Pipeline p(true);
  p.reducer.onConnected("1.103.0");  // the fixtures mix daemon versions; pin it
  p.feed(fixtureFile("08-initial-status-head.jsonl"));
  const uint64_t total = p.state().peers_total;
  const uint64_t online = p.state().peers_online;
  ASSERT_EQ(total, 3u);
  ASSERT_EQ(online, 2u);
  // 04 line 2 adds carol (online) and removes the CI runner 5512345678901 (online in 08).
  EXPECT_FALSE(p.feed(fixtureLines("04-peers-changed-removed.jsonl")[1]));
  EXPECT_EQ(p.state().peers_total, 3u);
  EXPECT_EQ(p.state().peers_online, 2u);
  EXPECT_EQ(p.reducer.peers().unknownRemovals(), 0u);
  // 04 line 3: alice (2718281828459, online in 08) goes offline, as a full Node.
  EXPECT_TRUE(p.feed(fixtureLines("04-peers-changed-removed.jsonl")[2]));
  EXPECT_EQ(p.state().peers_total, 3u);
  EXPECT_EQ(p.state().peers_online, 1u);
}

TEST(NodeStateReducer, TEraDaemonIsSaidOnceAndCountsStaySane) {
  const std::string log = capturedLog([](Logger& logger) {
    Pipeline p(true, logger);
    p.feed(fixtureFile("01-initial-status.jsonl"));  // 3 peers, no NodeID
    EXPECT_EQ(p.state().peers_total, 3u);
    EXPECT_FALSE(p.reducer.peers().exact());
    for (const auto& line : fixtureLines("04-peers-changed-removed.jsonl")) p.feed(line);
    p.feed(fixtureFile("01-initial-status.jsonl"));  // a reconnect: no second warning
    for (int i = 0; i < 10; ++i) {
      const int64_t ids[] = {100 + i};
      p.feed(statusgen::peersRemovedLine(ids));
      p.feed(statusgen::peerPatchLine(200 + i, false));
    }
    EXPECT_EQ(p.state().peers_total, 0u);  // never below zero
    EXPECT_EQ(p.state().peers_online, 0u);
  });
  EXPECT_EQ(occurrences(log, "no peer NodeID"), 1u) << log;
  EXPECT_NE(log.find("WARN"), std::string::npos) << log;
}

TEST(NodeStateReducer, AbortedInitialStatusMakesPeerCountsUnknown) {
  Pipeline p(true);
  p.feed(fixtureFile("08-initial-status-head.jsonl"));
  EXPECT_TRUE(p.state().peers_known);
  const std::string line = fixtureFile("08-initial-status-head.jsonl");
  EXPECT_TRUE(p.feed(line.substr(0, line.size() - 10) + "\n"));  // truncated, then a newline
  EXPECT_EQ(p.malformed, 1);
  EXPECT_FALSE(p.state().peers_known);
  EXPECT_TRUE(p.feed(line));
  EXPECT_TRUE(p.state().peers_known);
}

TEST(NodeStateReducer, DeltasOfAMalformedLineStillReachTheCounts) {
  Pipeline p(true);
  p.feed(fixtureFile("08-initial-status-head.jsonl"));
  EXPECT_TRUE(p.feed("{\"PeersRemoved\":[3141592653589],\"State\":oops}\n"));
  EXPECT_EQ(p.malformed, 1);
  EXPECT_EQ(p.state().peers_total, 2u);
  EXPECT_TRUE(p.state().peers_known);
}

TEST(NodeStateReducer, WithoutTrackingCountsComeFromTheInitialStatus) {
  Pipeline p(false);
  p.feed(fixtureFile("08-initial-status-head.jsonl"));
  const uint64_t total = p.state().peers_total;
  for (const auto& line : fixtureLines("04-peers-changed-removed.jsonl")) p.feed(line);
  EXPECT_EQ(p.state().peers_total, total);
}

// Recorded from a real tailscaled v1.102.5 (tests/data/real-tailscaled): with a peer-bit watcher
// attached, every full netmap reaches watchers as SelfChange + PeersChanged with every peer
// (tailscale `ipn/ipnlocal/local.go`, setControlClientStatusLocked). That PeersChanged is the
// complete set: a peer missing from it has left, though no PeersRemoved ever names it.
TEST(NodeStateReducer, PeersChangedAfterSelfChangeIsTheCompletePeerSet) {
  Pipeline p(true);
  const auto lines =
      fixtureLines("real-tailscaled/01-first-boot-login-rename-readdress-peers.mask53248.jsonl");
  ASSERT_EQ(lines.size(), 25u);
  for (size_t i = 0; i < 21; ++i) p.feed(lines[i]);
  EXPECT_EQ(p.state().peers_total, 3u);  // line 21: full netmap with fake peers 1, 2, 3
  EXPECT_FALSE(p.feed(lines[21]));       // line 22: a Notify with every field null
  EXPECT_TRUE(p.feed(lines[22]));        // line 23: full netmap with 2 and 3 only
  EXPECT_EQ(p.state().peers_total, 2u);
  EXPECT_FALSE(p.reducer.peers().contains(1000001));
  EXPECT_TRUE(p.feed(lines[23]));  // line 24: PeersRemoved [2]
  EXPECT_EQ(p.state().peers_total, 1u);
  EXPECT_TRUE(p.feed(lines[24]));  // line 25: PeerChangedPatch 3 online
  EXPECT_EQ(p.state().peers_online, 1u);
  EXPECT_EQ(p.reducer.peers().unknownRemovals(), 0u);
}

// A PeersChanged without a SelfChange in the same line stays a delta (an upsert).
TEST(NodeStateReducer, PeersChangedWithoutSelfChangeIsADelta) {
  Pipeline p(true);
  statusgen::InitialStatusOptions o;
  o.peers = 5;
  p.feed(statusgen::initialStatusLine(o));
  EXPECT_TRUE(p.feed(statusgen::peersChangedLine(statusgen::peerAt(1000))));
  EXPECT_EQ(p.state().peers_total, 6u);
}

// ----- snapshots ------------------------------------------------------------------------

TEST(NodeStateReducer, PublishesOneImmutableSnapshotPerChangeWithWhatChanged) {
  Pipeline p(false);
  const NodeSnapshotPtr initial = p.reducer.latest();
  EXPECT_EQ(initial->seq, 0u);
  EXPECT_EQ(initial->state, NodeState{});
  EXPECT_FALSE(p.reducer.publish());  // nothing happened yet

  p.reducer.onConnected("1.103.0");
  const NodeSnapshotPtr connected = p.reducer.publish();
  ASSERT_TRUE(connected);
  EXPECT_EQ(connected->seq, 1u);
  EXPECT_EQ(connected->changes, kChangeConnected | kChangeDaemon);
  EXPECT_TRUE(connected->state.connected);

  p.feed(fixtureFile("08-initial-status-head.jsonl"));
  const NodeSnapshotPtr synced = p.reducer.publish();
  ASSERT_TRUE(synced);
  EXPECT_EQ(synced->seq, 2u);
  EXPECT_EQ(synced->changes &
                (kChangeSynced | kChangeState | kChangeIdentity | kChangeTailnet | kChangePeers),
            kChangeSynced | kChangeState | kChangeIdentity | kChangeTailnet | kChangePeers);
  EXPECT_EQ(synced->self_changes, 1u);
  EXPECT_EQ(synced->state, p.state());
  // Earlier snapshots are not touched by later events.
  EXPECT_FALSE(connected->state.synced);
  EXPECT_EQ(initial->state, NodeState{});

  const auto lines = fixtureLines("02-selfchange.jsonl");
  EXPECT_FALSE(p.feed(lines[0]));     // the same identity again
  EXPECT_FALSE(p.reducer.publish());  // so nothing to publish
  EXPECT_EQ(p.reducer.latest(), synced);
  EXPECT_TRUE(p.feed(lines[1]));  // a rename
  const NodeSnapshotPtr renamed = p.reducer.publish();
  ASSERT_TRUE(renamed);
  EXPECT_EQ(renamed->changes, kChangeIdentity);
  EXPECT_EQ(renamed->self_changes, 2u);
  EXPECT_EQ(renamed->seq, 3u);
}

TEST(NodeStateReducer, ChangesGatherUntilPublished) {
  Pipeline p(false);
  p.reducer.onConnected("");
  p.feed(statusgen::stateLine(2));
  p.feed(statusgen::stateLine(6));
  const NodeSnapshotPtr s = p.reducer.publish();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->seq, 1u);
  EXPECT_EQ(s->changes, kChangeConnected | kChangeState | kChangeDaemon);  // and Notify.Version
  EXPECT_EQ(s->state.state, BackendState::Running);
}

// One rule for "the identity changed", whatever message carried the node: a resync whose
// InitialStatus brings another identity counts like a SelfChange would; the integer ID that only
// a SelfChange carries is a detail, not a change.
TEST(NodeStateReducer, IdentityChangeIsTheSameRuleForInitialStatusAndSelfChange) {
  Pipeline p(false);
  p.reducer.onConnected("");
  p.feed(fixtureFile("01-initial-status.jsonl"));  // a T-era PeerStatus: no integer ID
  ASSERT_TRUE(p.reducer.publish());
  EXPECT_EQ(p.reducer.selfChanges(), 1u);
  p.feed(fixtureLines("02-selfchange.jsonl")[0]);  // the same node, as a Node with its ID
  const NodeSnapshotPtr detail = p.reducer.publish();
  ASSERT_TRUE(detail);
  EXPECT_EQ(detail->changes, kChangeSelfDetail);
  EXPECT_EQ(detail->self_changes, 1u);

  p.reducer.onDisconnected();
  p.reducer.onConnected("");
  statusgen::Identity other;
  other.name = "elsewhere.tail3f9a2c.ts.net.";
  statusgen::InitialStatusOptions o;
  o.self = other;
  p.feed(statusgen::initialStatusLine(o));
  const NodeSnapshotPtr resynced = p.reducer.publish();
  ASSERT_TRUE(resynced);
  EXPECT_TRUE(resynced->changes & kChangeIdentity);
  EXPECT_TRUE(resynced->changes & kChangeSynced);
  EXPECT_EQ(resynced->self_changes, 2u);
  EXPECT_EQ(resynced->state.self->name, "elsewhere.tail3f9a2c.ts.net.");
}

// GET /localapi/v0/status?peers=false has its own entry point: the snapshot applies like an
// InitialStatus, and the peer counts are unknown for the session, even if peer deltas arrive.
TEST(NodeStateReducer, AFetchedStatusAppliesWithPeerCountsUnknownForTheSession) {
  Pipeline p(true);
  p.reducer.onConnected("1.103.0");
  p.feed(fixtureFile("08-initial-status-head.jsonl"));
  ASSERT_TRUE(p.state().peers_known);
  p.reducer.onDisconnected();
  p.reducer.onConnected("1.103.0");
  p.reducer.publish();

  InitialStatus st;
  st.state = BackendState::Running;
  st.self.emplace();
  st.self->stable_id = "nSdcr7Qx2CNTRL";
  st.self->name = "demo-sidecar-0.tail3f9a2c.ts.net.";
  st.self->addresses = {"100.90.12.34"};
  st.self->in_network_map = true;
  st.tailnet_name = "example.com";
  st.magic_dns_suffix = "tail3f9a2c.ts.net";
  st.peers_total = 5;  // a body with peers still gives no counts: the mode is "no peers"
  EXPECT_TRUE(p.reducer.applyStatus(st));
  const NodeSnapshotPtr s = p.reducer.publish();
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->state.synced);
  EXPECT_EQ(s->state.state, BackendState::Running);
  ASSERT_TRUE(s->state.self);
  EXPECT_EQ(s->state.self->stable_id, "nSdcr7Qx2CNTRL");
  EXPECT_EQ(s->state.tailnet_name, "example.com");
  EXPECT_FALSE(s->state.peers_known);
  EXPECT_EQ(s->state.peers_total, 0u);

  // A full netmap (SelfChange and the complete PeersChanged), then a delta.
  p.feed(R"({"SelfChange":{"ID":1,"StableID":"nSdcr7Qx2CNTRL","Name":"a.ts.net."},)"
         R"("PeersChanged":[{"ID":7,"Online":true},{"ID":8}]})"
         "\n");
  p.feed(statusgen::peersChangedLine(statusgen::peerAt(0)));
  EXPECT_FALSE(p.state().peers_known);
  EXPECT_EQ(p.state().peers_total, 0u);
  // The next session starts over.
  p.reducer.onDisconnected();
  p.reducer.onConnected("1.103.0");
  p.feed(fixtureFile("08-initial-status-head.jsonl"));
  EXPECT_TRUE(p.state().peers_known);
}

}  // namespace
}  // namespace tsk::watcher
