// The retry policy of ApiClient against kube-emu's fault injection: 409, 429 with Retry-After,
// 5xx bursts, dropped connections, bounded attempts, cancellation, the token bucket.
#include <gtest/gtest.h>

#include <ctime>
#include <future>
#include <thread>

#include "tests/integration/k8s/emu_fixture.h"

namespace tsk::k8s::testing {
namespace {

using kube_emu::FaultKind;
using kube_emu::FaultRule;
using std::chrono::milliseconds;

// Milliseconds since the epoch of a request-log time ("2026-11-26T15:04:05.123Z").
int64_t logMillis(const std::string& t) {
  std::tm tm{};
  int ms = 0;
  if (sscanf(t.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
             &tm.tm_min, &tm.tm_sec, &ms) != 7) {
    ADD_FAILURE() << "unexpected log time " << t;
    return 0;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

FaultRule fault(FaultKind kind, int count, const std::string& method, int status = 503) {
  FaultRule r;
  r.kind = kind;
  r.count = count;
  r.method = method;
  r.status = status;
  return r;
}

std::vector<int> codes(const std::vector<RecordingObserver::Call>& calls) {
  std::vector<int> out;
  for (const auto& c : calls) out.push_back(c.code);
  return out;
}

class RetryTest : public EmuFixture {};

TEST_F(RetryTest, ConflictOnPatchIsRetriedUntilSuccess) {
  seedSecret("s", {{"k", "v"}});
  emu().injectFault(fault(FaultKind::kStatus, 2, "PATCH", 409));
  auto api = makeClient();
  ASSERT_TRUE(makeSecretStore(*api, kNamespace, "s")->patch({{"k", "w"}}, false).ok());
  EXPECT_EQ(storedSecretData("s").at("k"), "w");
  EXPECT_EQ(codes(observer_.requests()), (std::vector<int>{409, 409, 200}));
  EXPECT_EQ(codes(observer_.retries()), (std::vector<int>{409, 409}));
}

TEST_F(RetryTest, ConflictOnCreateIsNotRetried) {
  seedSecret("s", {{"k", "v"}});
  auto api = makeClient();
  EXPECT_EQ(makeSecretStore(*api, kNamespace, "s")->create({{"k", "w"}}).error().code, 409);
  EXPECT_EQ(apiRequests("POST").size(), 1u);
  EXPECT_TRUE(observer_.retries().empty());
}

TEST_F(RetryTest, TooManyRequestsWaitsForRetryAfter) {
  seedSecret("s", {{"k", "v"}});
  FaultRule rule = fault(FaultKind::k429, 1, "PATCH");
  rule.retry_after_seconds = 1;
  emu().injectFault(rule);
  auto api = makeClient();  // backoff 1-2 ms: only Retry-After can explain a 1 s gap
  ASSERT_TRUE(makeSecretStore(*api, kNamespace, "s")->patch({{"k", "w"}}, false).ok());
  const auto patches = apiRequests("PATCH");
  ASSERT_EQ(patches.size(), 2u);
  EXPECT_EQ(patches[0].status, 429);
  EXPECT_EQ(patches[1].status, 200);
  // The log stamps arrival in milliseconds; allow one tick of rounding.
  EXPECT_GE(logMillis(patches[1].time) - logMillis(patches[0].time), 999);
}

TEST_F(RetryTest, RetryAfterIsCapped) {
  seedSecret("s", {{"k", "v"}});
  FaultRule rule = fault(FaultKind::k429, 1, "PATCH");
  rule.retry_after_seconds = 3600;
  emu().injectFault(rule);
  ClientOptions opts = fastOptions();
  opts.retry_after_cap = milliseconds(10);
  auto api = makeClient(opts);
  ASSERT_TRUE(makeSecretStore(*api, kNamespace, "s")->patch({{"k", "w"}}, false).ok());
  EXPECT_EQ(codes(observer_.requests()), (std::vector<int>{429, 200}));
}

TEST_F(RetryTest, ServerErrorBurstIsRiddenOut) {
  seedSecret("s", {{"k", "v"}});
  emu().injectFault(fault(FaultKind::kStatus, 2, "PATCH", 503));
  emu().injectFault(fault(FaultKind::kStatus, 1, "PATCH", 500));
  auto api = makeClient();
  ASSERT_TRUE(makeSecretStore(*api, kNamespace, "s")->patch({{"k", "w"}}, false).ok());
  EXPECT_EQ(codes(observer_.requests()), (std::vector<int>{503, 503, 500, 200}));
  EXPECT_EQ(storedSecretData("s").at("k"), "w");
}

TEST_F(RetryTest, GivesUpAfterMaxAttemptsWithTheLastStatus) {
  seedSecret("s", {{"k", "v"}});
  emu().injectFault(fault(FaultKind::kStatus, -1, "PATCH", 503));
  ClientOptions opts = fastOptions();
  opts.max_attempts = 3;
  auto api = makeClient(opts);
  auto patched = makeSecretStore(*api, kNamespace, "s")->patch({{"k", "w"}}, false);
  ASSERT_FALSE(patched.ok());
  EXPECT_EQ(patched.error().code, 503);
  EXPECT_NE(patched.error().message.find("cannot patch secrets \"s\" in namespace \"tailscale\": "
                                         "the API server answered 503 Service Unavailable after 3 "
                                         "attempts"),
            std::string::npos)
      << patched.error().message;
  EXPECT_EQ(apiRequests("PATCH").size(), 3u);
  EXPECT_EQ(storedSecretData("s").at("k"), "v");
}

TEST_F(RetryTest, NotImplementedIsNotRetried) {
  seedSecret("s", {{"k", "v"}});
  emu().injectFault(fault(FaultKind::kStatus, 1, "PATCH", 501));
  auto api = makeClient();
  EXPECT_EQ(makeSecretStore(*api, kNamespace, "s")->patch({{"k", "w"}}, false).error().code, 501);
  EXPECT_EQ(apiRequests("PATCH").size(), 1u);
}

TEST_F(RetryTest, DroppedConnectionIsRetried) {
  seedSecret("s", {{"k", "v"}});
  emu().injectFault(fault(FaultKind::kDrop, 1, "PATCH"));
  auto api = makeClient();
  ASSERT_TRUE(makeSecretStore(*api, kNamespace, "s")->patch({{"k", "w"}}, false).ok());
  EXPECT_EQ(codes(observer_.requests()), (std::vector<int>{0, 200}));
  EXPECT_EQ(codes(observer_.retries()), (std::vector<int>{0}));
  EXPECT_EQ(storedSecretData("s").at("k"), "w");
}

TEST_F(RetryTest, DroppedKeepAliveConnectionBetweenRequestsIsRecovered) {
  seedSecret("s", {{"k", "v"}});
  auto api = makeClient();
  auto secret = makeSecretStore(*api, kNamespace, "s");
  ASSERT_TRUE(secret->get().ok());
  emu().injectFault(fault(FaultKind::kDrop, 2, "GET"));
  auto got = secret->get();
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ((*got)->data.at("k"), "v");
}

TEST_F(RetryTest, UnreachableServerFailsAfterMaxAttemptsWithAClearError) {
  ClusterConfig cfg = clusterConfig();
  const std::string url = emu().url();
  emu().stop();  // nothing listens on the port any more
  ClientOptions opts = fastOptions();
  opts.max_attempts = 3;
  auto api = makeClient(opts, cfg);
  auto got = makeSecretStore(*api, kNamespace, "s")->get();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code, 0);
  EXPECT_NE(got.error().message.find("cannot get secret tailscale/s: GET " + url +
                                     "/api/v1/namespaces/tailscale/secrets/s: could not connect"),
            std::string::npos)
      << got.error().message;
  EXPECT_NE(got.error().message.find("(3 attempts)"), std::string::npos);
  EXPECT_EQ(codes(observer_.requests()), (std::vector<int>{0, 0, 0}));
}

TEST_F(RetryTest, CancelWakesARetrySleepAtOnce) {
  seedSecret("s", {{"k", "v"}});
  emu().injectFault(fault(FaultKind::kStatus, -1, "PATCH", 503));
  ClientOptions opts = fastOptions();
  opts.backoff_initial = std::chrono::minutes(10);
  opts.backoff_max = std::chrono::minutes(10);
  auto api = makeClient(opts);
  auto secret = makeSecretStore(*api, kNamespace, "s");
  auto done = std::async(std::launch::async, [&] { return secret->patch({{"k", "w"}}, false); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (observer_.retries().empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_FALSE(observer_.retries().empty());
  api->cancel();
  ASSERT_EQ(done.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  auto patched = done.get();
  ASSERT_FALSE(patched.ok());
  EXPECT_NE(patched.error().message.find("cancelled (shutting down)"), std::string::npos)
      << patched.error().message;
  // Further requests fail fast without touching the network.
  const size_t before = apiRequests().size();
  EXPECT_FALSE(secret->get().ok());
  EXPECT_EQ(apiRequests().size(), before);
}

TEST_F(RetryTest, TokenBucketSpacesRequestsAtTheConfiguredRate) {
  seedSecret("s", {{"k", "v"}});
  ClientOptions opts = fastOptions();
  opts.qps = 10;
  opts.burst = 1;
  auto api = makeClient(opts);
  auto secret = makeSecretStore(*api, kNamespace, "s");
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(secret->get().ok());
  const auto gets = apiRequests("GET");
  ASSERT_EQ(gets.size(), 4u);
  // Burst 1 at 10 QPS: the 2nd, 3rd and 4th request leave 100 ms, 200 ms and 300 ms after the
  // first one's reservation (which preceded its TLS handshake). Without the limiter the gap
  // would be a few milliseconds; the slack covers latency differences between requests.
  EXPECT_GE(logMillis(gets[3].time) - logMillis(gets[1].time), 190);
}

TEST_F(RetryTest, PublisherAndReadinessCallsCanRunConcurrently) {
  seedSecret("s", {{"k", "v"}});
  kube_emu::RandomFaults random;
  random.enabled = true;
  random.seed = 3;
  random.p_status = 0.1;
  random.p_drop = 0.05;
  emu().setRandomFaults(random);
  ClientOptions opts = fastOptions();
  opts.max_attempts = 20;
  auto api = makeClient(opts);
  auto publisher = std::async(std::launch::async, [&] {
    auto secret = makeSecretStore(*api, kNamespace, "s");
    for (int i = 0; i < 20; ++i) {
      if (!secret->patch({{"n", std::to_string(i)}}, false).ok()) return false;
    }
    return true;
  });
  auto readiness = std::async(std::launch::async, [&] {
    auto secret = makeSecretStore(*api, kNamespace, "s");
    for (int i = 0; i < 20; ++i) {
      if (!secret->get().ok()) return false;
    }
    return true;
  });
  EXPECT_TRUE(publisher.get());
  EXPECT_TRUE(readiness.get());
  EXPECT_EQ(storedSecretData("s").at("n"), "19");
}

}  // namespace
}  // namespace tsk::k8s::testing
