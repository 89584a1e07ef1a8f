// The parser's memory does not grow with the line: a 250k-peer (~250 MB) InitialStatus is
// streamed from statusgen straight into the parser in ~64 KiB pieces, and the parser's heap must
// stay under a small constant and equal the figure at 10k peers. Two measures of that heap:
//   - the parser's own bookkeeping (highWaterBytes, what the agent's metrics report);
//   - the real heap: every block operator new hands out while the parser is constructed and fed,
//     counted by this binary's replacement of operator new/delete (heap_counter.h), so an
//     allocation the bookkeeping forgets cannot hide.
#include <gtest/gtest.h>

#include <memory>

#include "tests/unit/watcher/heap_counter.h"
#include "tools/statusgen/statusgen.h"
#include "watcher/notify_parser.h"

namespace tsk::watcher {
namespace {

using testing::counted;
using testing::HeapCounter;

constexpr size_t kBound = 64 * 1024;

struct Measured {
  size_t high_water = 0;       // NotifyParser::highWaterBytes
  size_t heap_peak = 0;        // the most bytes of real heap live at once while parsing
  size_t heap_live_after = 0;  // still live once the parser is destroyed (0: nothing leaked)
  size_t allocations = 0;
  uint64_t bytes = 0;
  uint64_t lines = 0;
  uint64_t bad = 0;
  uint64_t peers_total = 0;
  uint64_t peers_online = 0;
  bool self_change = false;
  size_t initial_peer_events = 0;
};

// Counts what it is told and allocates nothing, so the heap counted while feeding is the
// parser's own.
class CountingHandler final : public NotifyHandler {
 public:
  explicit CountingHandler(Measured& m) : m_(m) {}
  void onNotify(const Notify& n) override {
    ++m_.lines;
    if (n.initial_status) {
      m_.peers_total = n.initial_status->peers_total;
      m_.peers_online = n.initial_status->peers_online;
    }
    if (n.self_change) m_.self_change = true;
  }
  void onMalformed(std::string_view, size_t) override { ++m_.bad; }
  void onOversized(size_t) override { ++m_.bad; }
  void onInitialPeer(std::optional<int64_t>, bool) override { ++m_.initial_peer_events; }

 private:
  Measured& m_;
};

Measured streamInitialStatus(uint64_t peers, bool track) {
  Measured m;
  CountingHandler h(m);
  statusgen::InitialStatusOptions o;
  o.peers = peers;
  const std::string self_change = statusgen::selfChangeLine(o.self);
  {
    HeapCounter heap;
    auto parser = counted(heap, [&] {
      return std::make_unique<NotifyParser>(h, ParserOptions{.track_peers = track});
    });
    m.bytes = statusgen::writeInitialStatus(
        [&](std::string_view piece) { counted(heap, [&] { parser->feed(piece); }); }, o);
    counted(heap, [&] { parser->feed(self_change); });
    m.high_water = parser->highWaterBytes();
    counted(heap, [&] { parser.reset(); });
    m.heap_peak = heap.peak();
    m.heap_live_after = heap.live();
    m.allocations = heap.allocations();
  }
  EXPECT_EQ(m.bad, 0u);
  EXPECT_EQ(m.lines, 2u);
  EXPECT_TRUE(m.self_change);
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
    EXPECT_LT(large.high_water, kBound) << "track=" << track;
    EXPECT_EQ(large.high_water, small.high_water) << "track=" << track;
    if (HeapCounter::available()) {
      EXPECT_GT(large.heap_peak, 0u) << "the counter saw no allocation: is it linked in?";
      EXPECT_LT(large.heap_peak, kBound) << "track=" << track;
      EXPECT_EQ(large.heap_peak, small.heap_peak) << "track=" << track;
      // Allocations happen per kept value, not per peer or per byte.
      EXPECT_EQ(large.allocations, small.allocations) << "track=" << track;
      EXPECT_EQ(large.heap_live_after, 0u) << "track=" << track;
    }
    RecordProperty(track ? "parser_heap_bytes_tracking" : "parser_heap_bytes",
                   std::to_string(large.high_water));
    RecordProperty(track ? "real_heap_peak_bytes_tracking" : "real_heap_peak_bytes",
                   std::to_string(large.heap_peak));
    RecordProperty(track ? "real_heap_allocations_tracking" : "real_heap_allocations",
                   std::to_string(large.allocations));
  }
}

// The counter itself: it sees what is allocated while it runs, and only that.
TEST(BoundedMemory, HeapCounterCountsWhatIsAllocatedWhileItRuns) {
  if (!HeapCounter::available()) GTEST_SKIP() << "a sanitizer owns operator new in this build";
  auto before = std::make_unique<std::string>(1000, 'b');  // not counted
  HeapCounter heap;
  auto block = counted(heap, [] { return std::make_unique<char[]>(5000); });
  EXPECT_GE(heap.live(), 5000u);
  const size_t with_block = heap.live();
  before.reset();  // freeing an uncounted block changes nothing
  EXPECT_EQ(heap.live(), with_block);
  auto unseen = std::make_unique<char[]>(7000);  // paused: not counted
  EXPECT_EQ(heap.live(), with_block);
  block.reset();  // freed while paused: still uncounted
  EXPECT_EQ(heap.live(), 0u);
  EXPECT_EQ(heap.peak(), with_block);
  EXPECT_EQ(heap.allocations(), 1u);
}

}  // namespace
}  // namespace tsk::watcher
