#include "watcher/peer_tracker.h"

#include <gtest/gtest.h>

#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace tsk::watcher {
namespace {

TEST(PeerTracker, UpsertAddsNewIdsAndReplacesKnownOnes) {
  PeerTracker t(Logger::null());
  t.beginInitialStatus();
  t.upsert(1, true);
  t.upsert(2, std::nullopt);  // a new peer without Online counts as offline
  EXPECT_EQ(t.total(), 2u);
  EXPECT_EQ(t.online(), 1u);
  t.upsert(1, false);
  t.upsert(2, std::nullopt);  // known, Online absent: unchanged
  EXPECT_EQ(t.total(), 2u);
  EXPECT_EQ(t.online(), 0u);
  EXPECT_TRUE(t.exact());
}

TEST(PeerTracker, RemovesOnlyKnownIds) {
  PeerTracker t(Logger::null());
  t.beginInitialStatus();
  t.addInitialPeer(10, true);
  t.addInitialPeer(11, false);
  t.remove(99);
  EXPECT_EQ(t.total(), 2u);
  EXPECT_EQ(t.unknownRemovals(), 1u);
  t.remove(10);
  t.remove(10);
  EXPECT_EQ(t.total(), 1u);
  EXPECT_EQ(t.online(), 0u);
}

TEST(PeerTracker, PatchesTrackOnlineOfKnownPeers) {
  PeerTracker t(Logger::null());
  t.beginInitialStatus();
  t.addInitialPeer(5, false);
  t.patch(5, true);
  EXPECT_EQ(t.online(), 1u);
  t.patch(5, true);
  EXPECT_EQ(t.online(), 1u);
  t.patch(6, true);  // unknown: ignored
  EXPECT_EQ(t.total(), 1u);
  EXPECT_EQ(t.online(), 1u);
}

TEST(PeerTracker, InitialStatusResetsEverything) {
  PeerTracker t(Logger::null());
  t.beginInitialStatus();
  for (int64_t i = 0; i < 1000; ++i) t.addInitialPeer(i, i % 2 == 0);
  t.beginInitialStatus();
  EXPECT_EQ(t.total(), 0u);
  t.addInitialPeer(3, true);
  EXPECT_EQ(t.total(), 1u);
  EXPECT_EQ(t.online(), 1u);
  t.clear();
  EXPECT_FALSE(t.known());
  EXPECT_EQ(t.total(), 0u);
}

TEST(PeerTracker, AgreesWithAHashMapUnderRandomChurn) {
  PeerTracker t(Logger::null());
  std::unordered_map<int64_t, bool> ref;
  std::mt19937_64 rng(42);
  t.beginInitialStatus();
  for (int step = 0; step < 200'000; ++step) {
    // A small ID space forces collisions, long probe chains and backward shifts.
    const int64_t id = static_cast<int64_t>(rng() % 5000) * 1'000'003 - 2'000'000'000;
    const bool online = rng() % 2;
    switch (rng() % 3) {
      case 0:
        t.upsert(id, online);
        ref[id] = online;
        break;
      case 1:
        t.remove(id);
        ref.erase(id);
        break;
      default:
        t.patch(id, online);
        if (auto it = ref.find(id); it != ref.end()) it->second = online;
    }
    if (step % 997 == 0) {
      uint64_t ref_online = 0;
      for (const auto& [k, v] : ref) ref_online += v;
      ASSERT_EQ(t.total(), ref.size()) << "step " << step;
      ASSERT_EQ(t.online(), ref_online) << "step " << step;
    }
  }
}

// A reference the tracker must agree with: the same operations on a std::unordered_map.
struct Reference {
  std::unordered_map<int64_t, bool> peers;
  uint64_t online() const {
    uint64_t n = 0;
    for (const auto& [id, on] : peers) n += on;
    return n;
  }
};

void expectAgrees(const PeerTracker& t, const Reference& ref, const std::string& where) {
  ASSERT_EQ(t.total(), ref.peers.size()) << where;
  ASSERT_EQ(t.online(), ref.online()) << where;
  for (const auto& [id, on] : ref.peers) ASSERT_TRUE(t.contains(id)) << where << " id " << id;
}

TEST(PeerTracker, UsesEightToFourteenBytesPerPeer) {
  for (const int64_t n : {10'000, 100'000, 250'000, 500'000}) {
    PeerTracker t(Logger::null());
    t.beginInitialStatus();
    for (int64_t i = 0; i < n; ++i) t.addInitialPeer(5'000'000'000'000 + i * 7919, i % 3 == 0);
    ASSERT_EQ(t.total(), uint64_t(n));
    const double load = double(n) / double(t.capacity());
    const double per_peer = double(t.memoryBytes()) / double(n);
    EXPECT_LE(load, 0.85) << n;
    EXPECT_GE(load, 0.5) << n;       // grows by 1.5x from at most 85%, rounded up to whole pages
    EXPECT_LE(per_peer, 14.5) << n;  // 8-byte slots + 1 bit at 57-85% load
    if (n == 250'000) RecordProperty("bytes_per_peer_at_250k", std::to_string(per_peer));
  }
}

TEST(PeerTracker, KeepsEveryPeerAndItsOnlineBitThroughGrowth) {
  PeerTracker t(Logger::null());
  t.beginInitialStatus();
  std::mt19937_64 rng(7);
  std::vector<int64_t> ids;
  size_t capacity = t.capacity();
  int grows = 0;
  for (int i = 0; i < 300'000; ++i) {
    const int64_t id = static_cast<int64_t>(rng());  // any sign, any magnitude
    if (id == std::numeric_limits<int64_t>::min() || t.contains(id)) continue;
    t.upsert(id, ids.size() % 3 == 0);
    ids.push_back(id);
    if (t.capacity() == capacity) continue;
    capacity = t.capacity();
    ++grows;
    for (const int64_t known : ids)
      ASSERT_TRUE(t.contains(known)) << "after growing to " << capacity;
  }
  EXPECT_GE(grows, 15);
  EXPECT_EQ(t.total(), ids.size());
  EXPECT_EQ(t.online(), (ids.size() + 2) / 3);
  // Each online bit moved with its peer: turning every peer offline drops online() by one
  // exactly for the peers added online.
  for (size_t k = 0; k < ids.size(); ++k) {
    const uint64_t before = t.online();
    t.patch(ids[k], false);
    ASSERT_EQ(before - t.online(), k % 3 == 0 ? 1u : 0u) << k;
  }
  EXPECT_EQ(t.online(), 0u);
  EXPECT_FALSE(t.contains(12345));
}

TEST(PeerTracker, RemovesAndReinsertsWithoutStaleEntries) {
  PeerTracker t(Logger::null());
  t.beginInitialStatus();
  constexpr int64_t kPeers = 100'000;
  for (int64_t i = 0; i < kPeers; ++i) t.addInitialPeer(i * 1'000'003, i % 2 == 0);
  for (int64_t i = 0; i < kPeers; i += 2) t.remove(i * 1'000'003);  // every online peer
  EXPECT_EQ(t.total(), uint64_t(kPeers / 2));
  EXPECT_EQ(t.online(), 0u);
  for (int64_t i = 0; i < kPeers; ++i) ASSERT_EQ(t.contains(i * 1'000'003), i % 2 == 1) << i;
  // Removing them again is removing unknown IDs: counted, nothing else changes.
  for (int64_t i = 0; i < 10; i += 2) t.remove(i * 1'000'003);
  EXPECT_EQ(t.unknownRemovals(), 5u);
  EXPECT_EQ(t.total(), uint64_t(kPeers / 2));
  // Reinserted, they come back with their new online bit, once each.
  for (int64_t i = 0; i < kPeers; i += 2) {
    t.upsert(i * 1'000'003, false);
    t.upsert(i * 1'000'003, true);
  }
  EXPECT_EQ(t.total(), uint64_t(kPeers));
  EXPECT_EQ(t.online(), uint64_t(kPeers / 2));
  for (int64_t i = 0; i < kPeers; ++i) ASSERT_TRUE(t.contains(i * 1'000'003)) << i;
}

TEST(PeerTracker, EndlessAddRemoveChurnDoesNotGrowTheTable) {
  PeerTracker t(Logger::null());
  t.beginInitialStatus();
  for (int64_t i = 0; i < 1000; ++i) t.addInitialPeer(i, true);
  const size_t capacity = t.capacity();
  for (int64_t i = 0; i < 1'000'000; ++i) {
    const int64_t id = 1'000'000 + i;  // a new peer every time, as a tailnet churns
    t.upsert(id, true);
    t.remove(id);
  }
  EXPECT_EQ(t.capacity(), capacity);  // removal leaves no tombstone to fill the table
  EXPECT_EQ(t.total(), 1000u);
  EXPECT_EQ(t.online(), 1000u);
  for (int64_t i = 0; i < 1000; ++i) ASSERT_TRUE(t.contains(i)) << i;
  EXPECT_FALSE(t.contains(1'000'000));
}

TEST(PeerTracker, AgreesWithAHashMapAtFullLoadAndWhileGrowing) {
  PeerTracker t(Logger::null());
  Reference ref;
  std::mt19937_64 rng(1);
  t.beginInitialStatus();
  t.upsert(-1, false);
  ref.peers[-1] = false;
  // Phase 1: one table held between 75% and its 85% limit, so that clusters are long and some
  // run across the end of the table and on from slot 0.
  const size_t slots = t.capacity();
  const size_t high = slots * 17 / 20;
  const size_t low = slots * 3 / 4;
  for (int step = 0; step < 100'000; ++step) {
    const int64_t id = static_cast<int64_t>(rng() % (4 * slots));
    const bool add = ref.peers.size() < low || (ref.peers.size() < high && rng() % 2 == 0);
    if (add) {
      const bool online = rng() % 2;
      t.upsert(id, online);
      ref.peers[id] = online;
    } else if (ref.peers.empty() || rng() % 8 == 0) {
      t.remove(id);
      ref.peers.erase(id);
    } else {  // a known peer, found by walking from a random bucket
      auto it = ref.peers.begin();
      std::advance(it, static_cast<long>(rng() % ref.peers.size()));
      t.remove(it->first);
      ref.peers.erase(it);
    }
    if (step % 101 == 0) expectAgrees(t, ref, "phase 1 step " + std::to_string(step));
  }
  EXPECT_EQ(t.capacity(), slots);
  // Phase 2: more additions than removals, through many in-place growths.
  for (int step = 0; step < 200'000; ++step) {
    const int64_t id = static_cast<int64_t>(rng() % 400'000) - 200'000;
    const bool online = rng() % 2;
    switch (rng() % 5) {
      case 0:
        t.remove(id);
        ref.peers.erase(id);
        break;
      case 1:
        t.patch(id, online);
        if (auto it = ref.peers.find(id); it != ref.peers.end()) it->second = online;
        break;
      default:
        t.upsert(id, online);
        ref.peers[id] = online;
    }
    if (step % 10'007 == 0) expectAgrees(t, ref, "phase 2 step " + std::to_string(step));
  }
  expectAgrees(t, ref, "end");
  EXPECT_GT(t.capacity(), 10 * slots);
}

TEST(PeerTracker, ClearReleasesTheTable) {
  PeerTracker t(Logger::null());
  t.beginInitialStatus();
  for (int64_t i = 0; i < 50'000; ++i) t.addInitialPeer(i, true);
  EXPECT_GT(t.memoryBytes(), 50'000u * 8);
  t.clear();
  EXPECT_EQ(t.memoryBytes(), 0u);
  EXPECT_EQ(t.capacity(), 0u);
  EXPECT_FALSE(t.contains(1));
  t.beginInitialStatus();
  t.upsert(1, true);
  EXPECT_EQ(t.total(), 1u);
  EXPECT_TRUE(t.contains(1));
}

TEST(PeerTracker, IgnoresTheOneUntrackableNodeId) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  PeerTracker t(Logger::null());
  t.beginInitialStatus();
  t.upsert(kMin, true);
  t.patch(kMin, true);
  EXPECT_EQ(t.total(), 0u);
  EXPECT_FALSE(t.contains(kMin));
  t.upsert(0, true);
  t.upsert(kMin + 1, true);
  t.upsert(std::numeric_limits<int64_t>::max(), true);
  EXPECT_EQ(t.total(), 3u);
  EXPECT_TRUE(t.exact());
}

TEST(PeerTracker, AnonymousPeersKeepCountsSane) {
  PeerTracker t(Logger::null());
  t.beginInitialStatus();
  t.addInitialPeer(std::nullopt, true);
  t.addInitialPeer(std::nullopt, false);
  EXPECT_FALSE(t.exact());
  EXPECT_EQ(t.total(), 2u);
  t.patch(77, false);  // charged to the anonymous peers
  EXPECT_EQ(t.online(), 0u);
  t.remove(77);
  t.remove(78);
  t.remove(79);
  EXPECT_EQ(t.total(), 0u);
  EXPECT_EQ(t.online(), 0u);
  t.upsert(80, true);
  EXPECT_EQ(t.total(), 1u);
}

}  // namespace
}  // namespace tsk::watcher
