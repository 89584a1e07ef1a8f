// ApiClient makes one attempt per request and leaves every retry to its caller (the publisher):
// against kube-emu's fault injection, 409, 429 (with its Retry-After reported), 5xx and dropped
// connections each come back after one request; cancellation; the token bucket.
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

class RequestTest : public EmuFixture {};

TEST_F(RequestTest, ConflictOnPatchIsReportedNotRetried) {
  seedSecret("s", {{"k", "v"}});
  emu().injectFault(fault(FaultKind::kStatus, 1, "PATCH", 409));
  auto api = makeClient();
  auto secret = makeSecretStore(*api, kNamespace, "s");
  auto patched = secret->patch({{"k", "w"}});
  ASSERT_FALSE(patched.ok());
  EXPECT_EQ(patched.error().kind, ErrorKind::Http);
  EXPECT_EQ(patched.error().http_status, 409);
  EXPECT_EQ(codes(observer_.requests()), (std::vector<int>{409}));
  EXPECT_TRUE(observer_.retries().empty());
  // The caller's retry goes through.
  ASSERT_TRUE(secret->patch({{"k", "w"}}).ok());
  EXPECT_EQ(storedSecretData("s").at("k"), "w");
}

TEST_F(RequestTest, ConflictOnCreateIsNotRetried) {
  seedSecret("s", {{"k", "v"}});
  auto api = makeClient();
  EXPECT_EQ(makeSecretStore(*api, kNamespace, "s")->create({{"k", "w"}}).error().http_status, 409);
  EXPECT_EQ(apiRequests("POST").size(), 1u);
  EXPECT_TRUE(observer_.retries().empty());
}

TEST_F(RequestTest, TooManyRequestsComesBackWithItsRetryAfter) {
  seedSecret("s", {{"k", "v"}});
  FaultRule rule = fault(FaultKind::k429, 1, "PATCH");
  rule.retry_after_seconds = 1;
  emu().injectFault(rule);
  auto api = makeClient();
  auto resp = api->request("PATCH", "/api/v1/namespaces/tailscale/secrets/s", "secrets",
                           R"({"data":{"k":"dw=="}})", "application/strategic-merge-patch+json");
  ASSERT_TRUE(resp.ok()) << resp.error().message;
  EXPECT_EQ(resp->status, 429);
  EXPECT_EQ(resp->retry_after, milliseconds(1'000));
  EXPECT_EQ(resp->attempts, 1);
  EXPECT_EQ(apiRequests("PATCH").size(), 1u);
  EXPECT_EQ(storedSecretData("s").at("k"), "v");
}

TEST_F(RequestTest, RetryAfterIsCapped) {
  seedSecret("s", {{"k", "v"}});
  FaultRule rule = fault(FaultKind::k429, 1, "PATCH");
  rule.retry_after_seconds = 3600;
  emu().injectFault(rule);
  ClientOptions opts = fastOptions();
  opts.retry_after_cap = milliseconds(10);
  auto api = makeClient(opts);
  auto patched = makeSecretStore(*api, kNamespace, "s")->patch({{"k", "w"}});
  ASSERT_FALSE(patched.ok());
  EXPECT_EQ(patched.error().http_status, 429);
  EXPECT_EQ(patched.error().retry_after, milliseconds(10));
}

TEST_F(RequestTest, ServerErrorsComeBackAfterOneAttempt) {
  seedSecret("s", {{"k", "v"}});
  emu().injectFault(fault(FaultKind::kStatus, 1, "PATCH", 503));
  emu().injectFault(fault(FaultKind::kStatus, 1, "PATCH", 500));
  auto api = makeClient();
  auto secret = makeSecretStore(*api, kNamespace, "s");
  auto first = secret->patch({{"k", "w"}});
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().http_status, 503);
  EXPECT_EQ(first.error().retry_after, std::nullopt);
  EXPECT_NE(first.error().message.find("cannot patch secrets \"s\" in namespace \"tailscale\": "
                                       "the API server answered 503 Service Unavailable"),
            std::string::npos)
      << first.error().message;
  EXPECT_EQ(secret->patch({{"k", "w"}}).error().http_status, 500);
  ASSERT_TRUE(secret->patch({{"k", "w"}}).ok());
  EXPECT_EQ(codes(observer_.requests()), (std::vector<int>{503, 500, 200}));
  EXPECT_EQ(storedSecretData("s").at("k"), "w");
}

TEST_F(RequestTest, NotImplementedIsNotRetried) {
  seedSecret("s", {{"k", "v"}});
  emu().injectFault(fault(FaultKind::kStatus, 1, "PATCH", 501));
  auto api = makeClient();
  EXPECT_EQ(makeSecretStore(*api, kNamespace, "s")->patch({{"k", "w"}}).error().http_status, 501);
  EXPECT_EQ(apiRequests("PATCH").size(), 1u);
}

TEST_F(RequestTest, ADroppedConnectionIsATransportErrorAndTheNextRequestReconnects) {
  seedSecret("s", {{"k", "v"}});
  emu().injectFault(fault(FaultKind::kDrop, 1, "PATCH"));
  auto api = makeClient();
  auto secret = makeSecretStore(*api, kNamespace, "s");
  auto dropped = secret->patch({{"k", "w"}});
  ASSERT_FALSE(dropped.ok());
  EXPECT_EQ(dropped.error().kind, ErrorKind::Transport);
  EXPECT_EQ(dropped.error().http_status, 0);
  ASSERT_TRUE(secret->patch({{"k", "w"}}).ok());
  EXPECT_EQ(codes(observer_.requests()), (std::vector<int>{0, 200}));
  EXPECT_TRUE(observer_.retries().empty());
  EXPECT_EQ(storedSecretData("s").at("k"), "w");
}

TEST_F(RequestTest, DroppedKeepAliveConnectionsAreRecoveredByTheNextRequest) {
  seedSecret("s", {{"k", "v"}});
  auto api = makeClient();
  auto secret = makeSecretStore(*api, kNamespace, "s");
  ASSERT_TRUE(secret->get().ok());
  emu().injectFault(fault(FaultKind::kDrop, 2, "GET"));
  EXPECT_FALSE(secret->get().ok());
  EXPECT_FALSE(secret->get().ok());
  auto got = secret->get();
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ((*got)->data.at("k"), "v");
}

TEST_F(RequestTest, AnUnreachableServerFailsAtOnceWithAClearError) {
  ClusterConfig cfg = clusterConfig();
  const std::string url = emu().url();
  emu().stop();  // nothing listens on the port any more
  auto api = makeClient(fastOptions(), cfg);
  auto got = makeSecretStore(*api, kNamespace, "s")->get();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().kind, ErrorKind::Transport);
  EXPECT_EQ(got.error().http_status, 0);
  EXPECT_NE(got.error().message.find("cannot get secret tailscale/s: GET " + url +
                                     "/api/v1/namespaces/tailscale/secrets/s: could not connect"),
            std::string::npos)
      << got.error().message;
  EXPECT_EQ(codes(observer_.requests()), (std::vector<int>{0}));
}

TEST_F(RequestTest, CancelEndsATokenBucketWaitAndFailsLaterRequestsFast) {
  seedSecret("s", {{"k", "v"}});
  ClientOptions opts = fastOptions();
  opts.qps = 0.001;  // after the first request, the next token is 1000 s away
  opts.burst = 1;
  auto api = makeClient(opts);
  auto secret = makeSecretStore(*api, kNamespace, "s");
  ASSERT_TRUE(secret->get().ok());
  auto waiting = std::async(std::launch::async, [&] { return secret->patch({{"k", "w"}}); });
  api->cancel();  // whether the patch is already waiting for its token or not yet
  auto patched = waiting.get();
  ASSERT_FALSE(patched.ok());
  EXPECT_EQ(patched.error().kind, ErrorKind::Cancelled);
  EXPECT_NE(patched.error().message.find("cancelled (shutting down)"), std::string::npos)
      << patched.error().message;
  // Further requests fail fast without touching the network.
  const size_t before = apiRequests().size();
  EXPECT_FALSE(secret->get().ok());
  EXPECT_EQ(apiRequests().size(), before);
  EXPECT_EQ(storedSecretData("s").at("k"), "v");
}

TEST_F(RequestTest, TokenBucketSpacesRequestsAtTheConfiguredRate) {
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

// Two callers at once (the publisher thread and readiness checks) on one client, through random
// faults, each retrying on its own: every request completes or fails on its own.
TEST_F(RequestTest, ConcurrentCallersEachRetryingThroughRandomFaults) {
  seedSecret("s", {{"k", "v"}});
  kube_emu::RandomFaults random;
  random.enabled = true;
  random.seed = 3;
  random.p_status = 0.1;
  random.p_drop = 0.05;
  emu().setRandomFaults(random);
  auto api = makeClient();
  const auto untilOk = [](auto call) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (call().ok()) return true;
    }
    return false;
  };
  auto publisher = std::async(std::launch::async, [&] {
    auto secret = makeSecretStore(*api, kNamespace, "s");
    for (int i = 0; i < 20; ++i) {
      if (!untilOk([&] { return secret->patch({{"n", std::to_string(i)}}); })) return false;
    }
    return true;
  });
  auto readiness = std::async(std::launch::async, [&] {
    auto secret = makeSecretStore(*api, kNamespace, "s");
    for (int i = 0; i < 20; ++i) {
      if (!untilOk([&] { return secret->get(); })) return false;
    }
    return true;
  });
  EXPECT_TRUE(publisher.get());
  EXPECT_TRUE(readiness.get());
  EXPECT_EQ(storedSecretData("s").at("n"), "19");
}

}  // namespace
}  // namespace tsk::k8s::testing
