// Latency of one ApiClient GET (token bucket off, keep-alive connection warm) against kube-emu
// over TLS on loopback: what the per-attempt bounds (deadline watchdog, capped body receiver)
// cost on the path every request takes. Prints median, p90 and p99 of N sequential GETs.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tests/integration/k8s/emu_fixture.h"

namespace tsk::k8s::testing {
namespace {

class ApiClientBench : public EmuFixture {};

TEST_F(ApiClientBench, DISABLED_KeepAliveGetLatency) {
  const char* env = std::getenv("K8S_BENCH_REQUESTS");
  const int n = env ? std::max(10, std::atoi(env)) : 2000;
  seedSecret("s", {{"device_id", "nX"}, {"device_fqdn", "node.tailnet.ts.net"}});
  auto api = makeClient();
  const std::string path = "/api/v1/namespaces/tailscale/secrets/s";
  ASSERT_TRUE(api->request("GET", path, "secrets").ok());  // connect + handshake once
  std::vector<double> us;
  us.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto got = api->request("GET", path, "secrets");
    const auto end = std::chrono::steady_clock::now();
    ASSERT_TRUE(got.ok() && got->status == 200);
    us.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  std::sort(us.begin(), us.end());
  auto at = [&](double q) { return us[static_cast<size_t>(q * (us.size() - 1))]; };
  std::printf("keep-alive GET latency over %d requests: median %.1f us, p90 %.1f us, p99 %.1f us\n",
              n, at(0.5), at(0.9), at(0.99));
}

}  // namespace
}  // namespace tsk::k8s::testing
