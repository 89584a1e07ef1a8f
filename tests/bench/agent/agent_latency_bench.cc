// Figures for the agent's write path, measured on the real binary (reported, never asserted):
//   1. latency from one SelfChange written on the bus (tsbus-sim) to the PATCH arriving at
//      kube-emu, median / p90 / p99 / max over N changes, with the default quiet window and
//      with --publish-wait=0ms:0ms (the floor: socket + parse + HTTPS PATCH);
//   2. API writes per identity change while peers churn (--track-peers), with changes spaced
//      beyond the quiet window (aim: exactly 1.0) and in bursts inside it (coalesced: < 1).
// The tests are disabled so ctest never runs them:
//   build/tests/bench/agent/agent_bench --gtest_also_run_disabled_tests
//   AGENT_BENCH_CHANGES=1000 (default) sets N.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>

#include "tests/integration/agent/agent_fixture.h"

namespace tsk::agent::e2e {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::microseconds;
using std::chrono::milliseconds;

int changesToMeasure() {
  const char* v = std::getenv("AGENT_BENCH_CHANGES");
  return v ? std::max(1, std::atoi(v)) : 1000;
}

tsbus_sim::IdentityUpdate addressUpdate(int i) {
  tsbus_sim::IdentityUpdate u;
  u.addresses = std::vector<std::string>{"100.100." + std::to_string((i >> 8) & 0xff) + "." +
                                         std::to_string(i & 0xff)};
  return u;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const auto idx = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(idx, v.size() - 1)];
}

class AgentBench : public AgentFixture {
 protected:
  // Waits for the first 2xx write logged after `after`; returns its sequence number.
  uint64_t waitForWrite(uint64_t after) {
    while (true) {
      for (const auto& r : emu().requestLog(after)) {
        if (r.method == "PATCH" && r.status >= 200 && r.status < 300) return r.seq;
      }
      std::this_thread::sleep_for(microseconds(20));
    }
  }

  void measureLatency(const std::string& label, const std::vector<std::string>& extra,
                      int max_changes = 1'000'000) {
    auto& agent = startAgent(extra);
    ASSERT_TRUE(eventually([&] { return readyzStatus(agent) == 200; })) << agent.logs();
    const int n = std::min(changesToMeasure(), max_changes);
    std::vector<double> ms;
    ms.reserve(static_cast<size_t>(n));
    uint64_t seq = lastSeq();
    for (int i = 1; i <= n; ++i) {
      const auto t0 = Clock::now();
      sim().selfChange(addressUpdate(i));
      seq = waitForWrite(seq);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    const double mean = std::accumulate(ms.begin(), ms.end(), 0.0) / static_cast<double>(n);
    std::printf(
        "latency SelfChange->PATCH [%s] n=%d  median=%.2f ms  p90=%.2f ms  p99=%.2f ms  "
        "max=%.2f ms  mean=%.2f ms\n",
        label.c_str(), n, percentile(ms, 0.5), percentile(ms, 0.9), percentile(ms, 0.99),
        percentile(ms, 1.0), mean);
    ASSERT_EQ(agent.terminate(), 0);
  }

  // Identity changes with peer churn going on; returns PATCHes per change.
  double writesPerChange(int changes, int burst, milliseconds gap,
                         const std::vector<std::string>& extra) {
    auto args = extra;
    args.push_back("--track-peers");
    auto& agent = startAgent(args);
    EXPECT_TRUE(eventually([&] { return readyzStatus(agent) == 200; })) << agent.logs();
    sim().setChurnRate(500);  // peer add+remove pairs per second
    const uint64_t seq = lastSeq();
    int sent = 0;
    for (int c = 0; c < changes; ++c) {
      for (int b = 0; b < burst; ++b) sim().selfChange(addressUpdate(10'000 + ++sent));
      std::this_thread::sleep_for(gap);
    }
    const std::string last = "[\"100.100." + std::to_string(((10'000 + sent) >> 8) & 0xff) + "." +
                             std::to_string((10'000 + sent) & 0xff) + "\"]";
    EXPECT_TRUE(eventually([&] { return secretData()["device_ips"] == last; }));
    sim().setChurnRate(0);
    size_t patches = 0;
    for (const auto& r : writesAfter(seq)) patches += r.method == "PATCH";
    const double churn = static_cast<double>(sim().stats().churn_pairs);
    std::printf(
        "writes per identity change [%s; %d changes, burst %d, gap %lld ms, %.0f churn pairs]: "
        "%zu PATCHes for %d bus changes = %.3f per change, %.3f per spaced change\n",
        extra.empty() ? "defaults" : extra[0].c_str(), changes, burst,
        static_cast<long long>(gap.count()), churn, patches, sent,
        static_cast<double>(patches) / sent, static_cast<double>(patches) / changes);
    EXPECT_EQ(agent.terminate(), 0);
    return static_cast<double>(patches) / changes;
  }
};

// Back-to-back changes would be paced by the client-side rate limit (default 5 QPS: one PATCH
// per 200 ms once the burst of 10 is spent), so the latency runs lift it to see the path itself.
const std::vector<std::string> kNoRateLimit = {"--api-qps=100000", "--api-burst=100000"};

std::vector<std::string> withNoRateLimit(std::vector<std::string> extra) {
  extra.insert(extra.end(), kNoRateLimit.begin(), kNoRateLimit.end());
  return extra;
}

TEST_F(AgentBench, DISABLED_SelfChangeToPatchLatencyDefaultWindow) {
  measureLatency("--publish-wait=20ms:1s (default)", withNoRateLimit({}));
}

TEST_F(AgentBench, DISABLED_SelfChangeToPatchLatencyNoWindow) {
  measureLatency("--publish-wait=0ms:0ms", withNoRateLimit({"--publish-wait=0ms:0ms"}));
}

TEST_F(AgentBench, DISABLED_SelfChangeToPatchLatencyAllDefaults) {
  // Everything default, including 5 QPS: sustained back-to-back changes are paced at 200 ms.
  measureLatency("all defaults, back-to-back changes", {}, 100);
}

TEST_F(AgentBench, DISABLED_WritesPerIdentityChangeUnderChurn) {
  // Spaced beyond the 20 ms window (and, with the rate limit lifted, beyond 5 QPS): aim 1.0.
  writesPerChange(200, 1, milliseconds(60), kNoRateLimit);
  TearDown();
  SetUp();
  // Bursts of 5 changes within a millisecond: coalesced into one write each.
  writesPerChange(200, 5, milliseconds(60), kNoRateLimit);
  TearDown();
  SetUp();
  // All defaults: at 16 changes/s the 5 QPS limit makes latest-wins coalesce further.
  writesPerChange(200, 1, milliseconds(60), {});
}

}  // namespace
}  // namespace tsk::agent::e2e
