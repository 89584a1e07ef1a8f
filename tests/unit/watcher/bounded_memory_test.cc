// The parser's memory does not grow with the line: a 250k-peer (~250 MB) InitialStatus is
// streamed from statusgen straight into the parser in ~64 KiB pieces, and the parser's heap
// high-water mark must stay under a small constant and equal the figure at 10k peers.
#include <gtest/gtest.h>

#include "tests/unit/watcher/notify_test_support.h"
#include "tools/statusgen/statusgen.h"
#include "watcher/notify_parser.h"

namespace tsk::watcher {
namespace {

struct Measured {
  size_t high_water = 0;
  uint64_t bytes = 0;
  uint64_t peers_total = 0;
  uint64_t peers_online = 0;
  size_t initial_peer_events = 0;
};

class CountingHandler final : public testing::RecordingHandler {
 public:
  void onInitialPeer(std::optional<int64_t>, bool) override { ++initial_peers; }
  size_t initial_peers = 0;
};

Measured streamInitialStatus(uint64_t peers, bool track) {
  CountingHandler h;
  NotifyParser parser(h, {.track_peers = track});
  statusgen::InitialStatusOptions o;
  o.peers = peers;
  Measured m;
  m.bytes = statusgen::writeInitialStatus([&](std::string_view piece) { parser.feed(piece); }, o);
  parser.feed(statusgen::selfChangeLine(o.self));
  EXPECT_EQ(h.malformed, 0u);
  EXPECT_EQ(h.notifies.size(), 2u);
  if (!h.notifies.empty() && h.notifies[0].initial_status) {
    m.peers_total = h.notifies[0].initial_status->peers_total;
    m.peers_online = h.notifies[0].initial_status->peers_online;
  }
  m.high_water = parser.highWaterBytes();
  m.initial_peer_events = h.initial_peers;
  return m;
}

TEST(BoundedMemory, ParserHeapIsTheSameAt10kAnd250kPeers) {
  for (bool track : {false, true}) {
    const Measured small = streamInitialStatus(10'000, track);
    const Measured large = streamInitialStatus(250'000, track);
    EXPECT_GT(large.bytes, 200'000'000u);
    EXPECT_EQ(large.peers_total, 250'000u);
    EXPECT_GT(large.peers_online, 100'000u);
    EXPECT_EQ(large.initial_peer_events, track ? 250'000u : 0u);
    EXPECT_LT(large.high_water, 64u * 1024) << "track=" << track;
    EXPECT_EQ(large.high_water, small.high_water) << "track=" << track;
    RecordProperty(track ? "parser_heap_bytes_tracking" : "parser_heap_bytes",
                   std::to_string(large.high_water));
  }
}

}  // namespace
}  // namespace tsk::watcher
