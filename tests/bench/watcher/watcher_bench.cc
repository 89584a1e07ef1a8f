// watcher_bench: the cost of the NotifyParser and the reducer on realistic bus lines from
// statusgen, next to the nlohmann DOM baseline on the same bytes.
//
//   build-x/tests/bench/watcher/watcher_bench --benchmark_counters_tabular=true
//
// InitialStatus/N feeds the whole line in 64 KiB chunks (what BusClient hands over); the per-line
// benchmarks feed one line per call and include the NodeStateReducer.
#include <benchmark/benchmark.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#if defined(TSK_BENCH_SIMDJSON)
#include <simdjson.h>
#endif

#include "common/log.h"
#include "tools/statusgen/statusgen.h"
#include "watcher/node_state_reducer.h"
#include "watcher/notify_parser.h"
#include "watcher/peer_tracker.h"

namespace tsk::watcher {
namespace {

constexpr size_t kChunk = 64 * 1024;

// The handler the watcher uses, reduced to its work: parse -> reduce.
class BenchHandler final : public ReducingHandler {
 public:
  explicit BenchHandler(bool track) : ReducingHandler(Logger::null(), {.track_peers = track}) {}
  void onNotify(const Notify& n) override {
    changes += reducer.apply(n);
    ++lines;
  }
  void onMalformed(std::string_view, size_t) override { ++malformed; }
  void onOversized(size_t) override { ++malformed; }
  void onLineAborted() override { reducer.onLineAborted(); }

  uint64_t lines = 0;
  uint64_t changes = 0;
  uint64_t malformed = 0;
};

const std::string& initialStatus(uint64_t peers, bool with_node_id = true) {
  static std::map<std::pair<uint64_t, bool>, std::string> cache;
  auto& line = cache[{peers, with_node_id}];
  if (line.empty()) {
    statusgen::InitialStatusOptions o;
    o.peers = peers;
    o.with_node_id = with_node_id;
    line.reserve(peers * 1100 + 8192);
    statusgen::writeInitialStatus([&](std::string_view piece) { line.append(piece); }, o);
  }
  return line;
}

void feedChunked(NotifyParser& p, const std::string& bytes) {
  for (size_t off = 0; off < bytes.size(); off += kChunk) {
    p.feed(std::string_view(bytes).substr(off, kChunk));
  }
}

void BM_InitialStatus(benchmark::State& state) {
  const bool track = state.range(1) != 0;
  const std::string& line = initialStatus(static_cast<uint64_t>(state.range(0)));
  BenchHandler h(track);
  NotifyParser parser(h, {.track_peers = track});
  for (auto _ : state) feedChunked(parser, line);
  if (h.malformed != 0 || h.reducer.state().peers_total != uint64_t(state.range(0))) {
    state.SkipWithError("wrong result");
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(line.size()));
  state.counters["line_MB"] = double(line.size()) / 1e6;
  state.counters["parser_heap_B"] = double(parser.highWaterBytes());
  state.counters["tracker_B_per_peer"] =
      track ? double(h.reducer.peers().memoryBytes()) / double(state.range(0)) : 0.0;
}
BENCHMARK(BM_InitialStatus)
    ->ArgsProduct({{10'000, 50'000, 100'000, 250'000}, {0, 1}})
    ->ArgNames({"N", "track"})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);

// The DOM baseline: nlohmann::json::parse of the same line.
void BM_InitialStatusNlohmannDom(benchmark::State& state) {
  const std::string& line = initialStatus(static_cast<uint64_t>(state.range(0)));
  for (auto _ : state) {
    auto doc = nlohmann::json::parse(line);
    benchmark::DoNotOptimize(doc["InitialStatus"]["Peer"].size());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(line.size()));
}
BENCHMARK(BM_InitialStatusNlohmannDom)
    ->Arg(10'000)
    ->Arg(50'000)
    ->Arg(100'000)
    ->Arg(250'000)
    ->ArgName("N")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

// nlohmann's SAX parser (constant memory, no skipping) on the same line.
void BM_InitialStatusNlohmannSax(benchmark::State& state) {
  const std::string& line = initialStatus(static_cast<uint64_t>(state.range(0)));
  for (auto _ : state) {
    nlohmann::json_sax<nlohmann::json>* none = nullptr;
    benchmark::DoNotOptimize(none);
    struct Counter : nlohmann::json_sax<nlohmann::json> {
      size_t keys = 0;
      bool null() override { return true; }
      bool boolean(bool) override { return true; }
      bool number_integer(number_integer_t) override { return true; }
      bool number_unsigned(number_unsigned_t) override { return true; }
      bool number_float(number_float_t, const string_t&) override { return true; }
      bool string(string_t&) override { return true; }
      bool binary(binary_t&) override { return true; }
      bool start_object(std::size_t) override { return true; }
      bool key(string_t&) override {
        ++keys;
        return true;
      }
      bool end_object() override { return true; }
      bool start_array(std::size_t) override { return true; }
      bool end_array() override { return true; }
      bool parse_error(std::size_t, const std::string&,
                       const nlohmann::detail::exception&) override {
        return false;
      }
    } counter;
    nlohmann::json::sax_parse(line, &counter);
    benchmark::DoNotOptimize(counter.keys);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(line.size()));
}
BENCHMARK(BM_InitialStatusNlohmannSax)
    ->Arg(10'000)
    ->Arg(250'000)
    ->ArgName("N")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

// Per-line costs, parse + reduce. Two alternating lines so the reducer sees real changes
// (SelfChange) or none (blank).
void perLine(benchmark::State& state, const std::vector<std::string>& lines, bool track,
             uint64_t peers) {
  BenchHandler h(track);
  NotifyParser parser(h, {.track_peers = track});
  if (peers > 0) parser.feed(initialStatus(peers));
  size_t i = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string& line = lines[i];
    parser.feed(line);
    bytes += line.size();
    if (++i == lines.size()) i = 0;
  }
  if (h.malformed != 0) state.SkipWithError("malformed line");
  state.SetBytesProcessed(int64_t(bytes));
  state.SetItemsProcessed(int64_t(state.iterations()));
}

void BM_BlankLine(benchmark::State& state) {
  const std::vector<std::string> lines = {statusgen::blankLine()};
  perLine(state, lines, false, 0);
  state.counters["line_B"] = double(lines[0].size());
}
BENCHMARK(BM_BlankLine);

void BM_SelfChange(benchmark::State& state) {
  statusgen::Identity renamed;
  renamed.name = "demo-sidecar-renamed.tail3f9a2c.ts.net.";
  const std::vector<std::string> lines = {statusgen::selfChangeLine({}),
                                          statusgen::selfChangeLine({}),
                                          statusgen::selfChangeLine(renamed)};
  perLine(state, lines, false, 0);
  state.counters["line_B"] = double(lines[0].size());
}
BENCHMARK(BM_SelfChange);

// One PeersChanged (a new peer) plus one PeersRemoved (that peer), with tracking on, on top of a
// tailnet of N peers: the cost must not grow with N.
void BM_PeerAddRemovePair(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  std::vector<std::string> lines;
  for (uint64_t k = 0; k < 256; ++k) {
    const statusgen::PeerNode peer = statusgen::peerAt(n + k);
    const int64_t id[] = {peer.node_id};
    lines.push_back(statusgen::peersChangedLine(peer) + statusgen::peersRemovedLine(id));
  }
  perLine(state, lines, true, n);
  state.counters["pair_B"] = double(lines[0].size());
}
BENCHMARK(BM_PeerAddRemovePair)->Arg(10'000)->Arg(50'000)->Arg(100'000)->Arg(250'000)->ArgName("N");

// The PeerTracker alone (no parsing): a tailnet of N peers that churns, each iteration adding a
// new peer and removing the oldest one, so the table stays at N and the touched slots spread
// over all of it. The table's share of BM_PeerAddRemovePair.
void BM_PeerTrackerChurnPair(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  // statusgen's NodeIDs on a ring: the live peers are always the n after `oldest`.
  std::vector<int64_t> ring(n + 65'536);
  for (size_t k = 0; k < ring.size(); ++k) ring[k] = statusgen::peerAt(k).node_id;
  PeerTracker tracker(Logger::null());
  tracker.beginInitialStatus();
  for (size_t k = 0; k < n; ++k) tracker.addInitialPeer(ring[k], k % 3 == 0);
  size_t oldest = 0;
  for (auto _ : state) {
    tracker.upsert(ring[(oldest + n) % ring.size()], true);
    tracker.remove(ring[oldest]);
    if (++oldest == ring.size()) oldest = 0;
  }
  if (tracker.total() != n) state.SkipWithError("wrong count");
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.counters["B_per_peer"] = double(tracker.memoryBytes()) / double(n);
}
BENCHMARK(BM_PeerTrackerChurnPair)
    ->Arg(10'000)
    ->Arg(50'000)
    ->Arg(100'000)
    ->Arg(250'000)
    ->Arg(500'000)
    ->ArgName("N");

void BM_BlankLineNlohmannDom(benchmark::State& state) {
  const std::string line = statusgen::blankLine();
  for (auto _ : state) benchmark::DoNotOptimize(nlohmann::json::parse(line));
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_BlankLineNlohmannDom);

void BM_SelfChangeNlohmannDom(benchmark::State& state) {
  const std::string line = statusgen::selfChangeLine({});
  for (auto _ : state) benchmark::DoNotOptimize(nlohmann::json::parse(line));
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_SelfChangeNlohmannDom);

#if defined(TSK_BENCH_SIMDJSON)
// simdjson's On-Demand API reading the same identity fields from a SelfChange line (it needs the
// whole line in a padded buffer, so it could only ever serve small lines).
void BM_SelfChangeSimdjsonOnDemand(benchmark::State& state) {
  const simdjson::padded_string line(statusgen::selfChangeLine({}));
  simdjson::ondemand::parser parser;
  for (auto _ : state) {
    auto doc = parser.iterate(line);
    auto node = doc["SelfChange"];
    int64_t id = node["ID"].get_int64();
    std::string_view stable = node["StableID"].get_string();
    std::string_view name = node["Name"].get_string();
    size_t addresses = 0;
    for (auto a : node["Addresses"].get_array()) {
      std::string_view s = a.get_string();
      addresses += s.size();
    }
    benchmark::DoNotOptimize(id);
    benchmark::DoNotOptimize(stable);
    benchmark::DoNotOptimize(name);
    benchmark::DoNotOptimize(addresses);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_SelfChangeSimdjsonOnDemand);

void BM_BlankLineSimdjsonDom(benchmark::State& state) {
  const simdjson::padded_string line(statusgen::blankLine());
  simdjson::dom::parser parser;
  for (auto _ : state) {
    simdjson::dom::element doc = parser.parse(line);
    benchmark::DoNotOptimize(doc);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_BlankLineSimdjsonDom);
#endif

// How fast statusgen produces the line (benchmarks and tsbus-sim depend on it).
void BM_StatusgenInitialStatus(benchmark::State& state) {
  statusgen::InitialStatusOptions o;
  o.peers = static_cast<uint64_t>(state.range(0));
  uint64_t bytes = 0;
  for (auto _ : state) {
    bytes +=
        statusgen::writeInitialStatus([](std::string_view p) { benchmark::DoNotOptimize(p); }, o);
  }
  state.SetBytesProcessed(int64_t(bytes));
}
BENCHMARK(BM_StatusgenInitialStatus)->Arg(50'000)->ArgName("N")->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tsk::watcher

BENCHMARK_MAIN();
