// Fault injection of kube-emu: scripted 5xx, 429 with Retry-After, latency and dropped
// connections, matching by verb and path, the seeded random mode, and the request log.
#include <future>

#include "tests/integration/kube_emu/emu_fixture.h"

namespace tsk::kube_emu {
namespace {

using nlohmann::json;

class KubeEmuFaults : public EmuTest {
 protected:
  void SetUp() override {
    EmuTest::SetUp();
    startEmu();
    ASSERT_EQ(createSecret("ts-state", {{"a", "MQ=="}}).status, 201);
    emu_->clearRequestLog();
  }

  FaultRule rule(FaultKind kind, int count) const {
    FaultRule r;
    r.kind = kind;
    r.count = count;
    return r;
  }
};

TEST_F(KubeEmuFaults, ScriptedServerErrorsAnswerTheNextRequestsThenStop) {
  FaultRule r = rule(FaultKind::kStatus, 2);
  r.status = 503;
  emu_->injectFault(r);
  const Reply first = call("GET", secretPath("ts-state"), kAgentToken);
  EXPECT_EQ(first.status, 503);
  EXPECT_EQ(first.body["kind"], "Status");
  EXPECT_EQ(first.body["reason"], "ServiceUnavailable");
  EXPECT_EQ(call("GET", secretPath("ts-state"), kAgentToken).status, 503);
  EXPECT_EQ(call("GET", secretPath("ts-state"), kAgentToken).status, 200);

  const auto log = emu_->requestLog();
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[0].fault, "status");
  EXPECT_EQ(log[0].status, 503);
  EXPECT_EQ(log[2].fault, "");
  EXPECT_EQ(log[2].user, kAgentUser);
}

TEST_F(KubeEmuFaults, InjectedConflictIsTheRealConflictStatusForTheObject) {
  FaultRule r = rule(FaultKind::kStatus, 1);
  r.status = 409;
  emu_->injectFault(r);
  const Reply conflicted = call("PATCH", secretPath("ts-state"), kAgentToken, R"({"data":{}})",
                                "application/strategic-merge-patch+json");
  EXPECT_EQ(conflicted.status, 409);
  EXPECT_EQ(conflicted.body["reason"], "Conflict");
  EXPECT_EQ(conflicted.body["details"], json({{"name", "ts-state"}, {"kind", "secrets"}}));
}

TEST_F(KubeEmuFaults, TooManyRequestsCarriesRetryAfter) {
  FaultRule r = rule(FaultKind::k429, 1);
  r.retry_after_seconds = 3;
  emu_->injectFault(r);
  const Reply throttled = call("GET", secretPath("ts-state"), kAgentToken);
  EXPECT_EQ(throttled.status, 429);
  EXPECT_EQ(throttled.body["reason"], "TooManyRequests");
  EXPECT_EQ(throttled.body["details"]["retryAfterSeconds"], 3);
  const auto it = throttled.headers.find("Retry-After");
  ASSERT_NE(it, throttled.headers.end());
  EXPECT_EQ(it->second, "3");
}

TEST_F(KubeEmuFaults, FaultsMatchOnlyTheirVerbAndPath) {
  FaultRule r = rule(FaultKind::kStatus, 1);
  r.status = 500;
  r.method = "PATCH";
  r.path_prefix = secretPath("ts-state");
  emu_->injectFault(r);
  EXPECT_EQ(call("GET", secretPath("ts-state"), kAgentToken).status, 200);
  const Reply patched = call("PATCH", secretPath("ts-state"), kAgentToken, R"({"data":{}})",
                             "application/strategic-merge-patch+json");
  EXPECT_EQ(patched.status, 500);
  EXPECT_EQ(patched.body["reason"], "InternalError");
  EXPECT_EQ(call("PATCH", secretPath("ts-state"), kAgentToken, R"({"data":{}})",
                 "application/strategic-merge-patch+json")
                .status,
            200);
}

TEST_F(KubeEmuFaults, DroppedConnectionGetsNoResponseAndTheNextRequestSucceeds) {
  emu_->injectFault(rule(FaultKind::kDrop, 1));
  const Reply dropped = call("GET", secretPath("ts-state"), kAgentToken);
  EXPECT_EQ(dropped.status, 0);
  EXPECT_NE(dropped.error, httplib::Error::Success);
  EXPECT_EQ(call("GET", secretPath("ts-state"), kAgentToken).status, 200);
  const auto log = emu_->requestLog();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].fault, "drop");
  EXPECT_EQ(log[0].status, 0);
}

TEST_F(KubeEmuFaults, DroppedConnectionOnAKeepAliveClientLeavesTheServerServing) {
  auto cli = client();
  cli->set_keep_alive(true);
  const httplib::Headers auth = {{"Authorization", std::string("Bearer ") + kAgentToken}};
  ASSERT_EQ(cli->Get(secretPath("ts-state").c_str(), auth)->status, 200);
  emu_->injectFault(rule(FaultKind::kDrop, 1));
  EXPECT_FALSE(cli->Get(secretPath("ts-state").c_str(), auth));
  auto after = cli->Get(secretPath("ts-state").c_str(), auth);
  ASSERT_TRUE(after) << httplib::to_string(after.error());
  EXPECT_EQ(after->status, 200);
}

TEST_F(KubeEmuFaults, LatencyDelaysThenServesNormally) {
  FaultRule r = rule(FaultKind::kLatency, 1);
  r.latency = std::chrono::milliseconds(200);
  emu_->injectFault(r);
  EXPECT_EQ(call("GET", secretPath("ts-state"), kAgentToken).status, 200);
  const auto log = emu_->requestLog();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].fault, "latency");
  EXPECT_GE(log[0].duration_ms, 200.0);  // a lower bound: the wait is at least this long
}

TEST_F(KubeEmuFaults, StopEndsAnInjectedLatencyAtOnce) {
  FaultRule r = rule(FaultKind::kLatency, 1);
  r.latency = std::chrono::minutes(10);
  emu_->injectFault(r);
  auto pending = std::async(std::launch::async,
                            [&] { return call("GET", secretPath("ts-state"), kAgentToken); });
  // Wait until the request is inside the emulator, then stop: the test's own timeout (far less
  // than ten minutes) is what would catch a stop() that waits out the latency.
  while (!emu_->faults()["rules"].empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));  // polling interval
  }
  emu_->stop();
  pending.get();
}

TEST_F(KubeEmuFaults, RandomModeWithTheSameSeedRepeatsTheSameFaults) {
  const auto run = [&] {
    RandomFaults random;
    random.enabled = true;
    random.seed = 42;
    random.p_status = 0.3;
    random.p_429 = 0.2;
    emu_->setRandomFaults(random);
    std::vector<int> statuses;
    for (int i = 0; i < 20; ++i) {
      statuses.push_back(call("GET", secretPath("ts-state"), kAgentToken).status);
    }
    emu_->clearFaults();
    return statuses;
  };
  const auto first = run();
  const auto second = run();
  EXPECT_EQ(first, second);
  const auto count = [&](int code) { return std::count(first.begin(), first.end(), code); };
  EXPECT_GT(count(200), 0);
  EXPECT_GT(count(503) + count(429), 0);
}

TEST_F(KubeEmuFaults, RequestLogRecordsMethodPathQueryContentTypeUserAndSizes) {
  const std::string body = R"({"data":{"b":"Mg=="}})";
  call("PATCH", secretPath("ts-state") + "?fieldManager=ts-kube-agent", kAgentToken, body,
       "application/strategic-merge-patch+json");
  const auto log = emu_->requestLog();
  ASSERT_EQ(log.size(), 1u);
  const RequestRecord& r = log[0];
  EXPECT_EQ(r.method, "PATCH");
  EXPECT_EQ(r.path, secretPath("ts-state"));
  EXPECT_EQ(r.query, "fieldManager=ts-kube-agent");
  EXPECT_EQ(r.content_type, "application/strategic-merge-patch+json");
  EXPECT_EQ(r.user, kAgentUser);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.request_bytes, body.size());
  EXPECT_EQ(r.body, body);
  EXPECT_GT(r.response_bytes, 0u);
  EXPECT_FALSE(r.time.empty());
  EXPECT_GT(r.seq, 0u);
}

}  // namespace
}  // namespace tsk::kube_emu
