#include "watcher/peer_tracker.h"

#include <gtest/gtest.h>

#include <random>
#include <unordered_map>

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

TEST(PeerTracker, UsesAboutSixteenBytesPerPeer) {
  PeerTracker t(Logger::null());
  t.beginInitialStatus();
  for (int64_t i = 0; i < 250'000; ++i) t.addInitialPeer(5'000'000'000'000 + i * 7919, i % 3 == 0);
  EXPECT_EQ(t.total(), 250'000u);
  const double per_peer = double(t.memoryBytes()) / 250'000.0;
  RecordProperty("bytes_per_peer_at_250k", std::to_string(per_peer));
  EXPECT_LE(per_peer, 20.0);  // 8-byte slots + 1 bit, load factor 0.375-0.75
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
