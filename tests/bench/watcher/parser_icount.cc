// parser_icount: a fixed, deterministic amount of NotifyParser work per run, for counting
// instructions (not time) on a loaded machine:
//
//   valgrind --tool=callgrind --collect-atstart=no
//     --toggle-collect='tsk::watcher::NotifyParser::feed*'
//     build/tests/bench/watcher/parser_icount initial 10000 1   (one command line)
//
// Cases: initial <peers> (one InitialStatus line in 64 KiB pieces), selfchange, blank, health,
// peers (a PeersChanged line and a PeersRemoved line) (each fed <count> times, one feed() each). A
// trailing 1 turns peer tracking on. The handler only counts, so the figure is the parser's own
// work (lines are generated before the counted calls: only NotifyParser::feed is collected).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tools/statusgen/statusgen.h"
#include "watcher/notify_parser.h"

namespace {

using tsk::watcher::Notify;

class CountingHandler final : public tsk::watcher::NotifyHandler {
 public:
  void onNotify(const Notify& n) override {
    ++lines;
    kinds |= n.kinds;
    if (n.initial_status) peers += n.initial_status->peers_total;
  }
  void onMalformed(std::string_view, size_t) override { ++bad; }
  void onOversized(size_t) override { ++bad; }
  void onInitialPeer(std::optional<int64_t>, bool) override { ++peer_events; }
  void onPeerUpsert(int64_t, std::optional<bool>) override { ++peer_events; }
  void onPeerRemoved(int64_t) override { ++peer_events; }
  uint64_t lines = 0, bad = 0, peers = 0, peer_events = 0;
  uint32_t kinds = 0;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s initial|selfchange|blank|health <count> [track]\n", argv[0]);
    return 2;
  }
  const std::string kind = argv[1];
  const uint64_t count = std::strtoull(argv[2], nullptr, 10);
  const bool track = argc > 3 && std::atoi(argv[3]) != 0;
  namespace sg = tsk::statusgen;
  std::string line;
  uint64_t repeat = count;
  if (kind == "initial") {
    sg::InitialStatusOptions o;
    o.peers = count;
    line = sg::initialStatusLine(o);
    repeat = 1;
  } else if (kind == "selfchange") {
    line = sg::selfChangeLine({});
  } else if (kind == "blank") {
    line = sg::blankLine();
  } else if (kind == "health") {
    line = sg::healthLine();
  } else if (kind == "peers") {  // a PeersChanged line (one new peer), then its PeersRemoved
    const sg::PeerNode peer = sg::peerAt(1'000'000);
    const int64_t id[] = {peer.node_id};
    line = sg::peersChangedLine(peer) + sg::peersRemovedLine(id);
  } else {
    std::fprintf(stderr, "unknown case %s\n", kind.c_str());
    return 2;
  }
  CountingHandler h;
  tsk::watcher::NotifyParser parser(h, {.track_peers = track});
  constexpr size_t kChunk = 64 * 1024;
  for (uint64_t r = 0; r < repeat; ++r) {
    for (size_t off = 0; off < line.size(); off += kChunk) {
      parser.feed(std::string_view(line).substr(off, kChunk));
    }
  }
  std::printf(
      "%s count=%llu track=%d line_bytes=%zu lines=%llu bad=%llu peers=%llu "
      "peer_events=%llu kinds=%u\n",
      kind.c_str(), static_cast<unsigned long long>(count), track ? 1 : 0, line.size(),
      static_cast<unsigned long long>(h.lines), static_cast<unsigned long long>(h.bad),
      static_cast<unsigned long long>(h.peers), static_cast<unsigned long long>(h.peer_events),
      h.kinds);
  return h.bad == 0 && h.lines == repeat * (kind == "peers" ? 2 : 1) ? 0 : 1;
}
