// The ts-kube-agent binary end to end: a subprocess against tsbus-sim (unix socket) and kube-emu
// (HTTPS, token, RBAC), checked through the Secret, kube-emu's request log, /metrics, /readyz
// and the agent's own log.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>

#include <sys/stat.h>

#include "k8s/base64.h"
#include "tests/integration/agent/agent_fixture.h"

namespace tsk::agent::e2e {
namespace {

using Data = std::map<std::string, std::string>;
using std::chrono::milliseconds;

const Data kInitialIdentity = {{"device_id", "nSdcr7Qx2CNTRL"},
                               {"device_fqdn", "demo-sidecar-0.tail3f9a2c.ts.net."},
                               {"device_ips", R"(["100.90.12.34","fd7a:115c:a1e0::6a01:c22"])"},
                               {"pod_uid", "pod-uid-1234"}};

std::vector<std::string> patchedKeys(const kube_emu::RequestRecord& r) {
  std::vector<std::string> keys;
  const auto body = nlohmann::json::parse(r.body, nullptr, false);
  if (!body.is_object() || !body.contains("data")) return keys;
  for (const auto& [k, v] : body["data"].items()) keys.push_back(k);
  return keys;
}

class AgentE2E : public AgentFixture {
 protected:
  // Starts the agent (its first, in a fresh emulator) and waits until the initial identity is
  // written and logged, and /readyz is 200.
  AgentProcess& startSynced(const std::vector<std::string>& extra = {}) {
    auto& agent = startAgent(extra);
    EXPECT_GT(agent.adminPort(), 0) << agent.logs();
    EXPECT_TRUE(eventually([&] { return readyzStatus(agent) == 200; })) << agent.logs();
    awaitWrites(0, 1);
    return agent;
  }
  // Sends a SelfChange and waits until the agent has counted it as a change of the self node.
  void selfChangeSeenBy(AgentProcess& agent, const tsbus_sim::IdentityUpdate& update) {
    const double before = metric(agent, "ts_kube_agent_self_changes_total").value_or(0);
    sim().selfChange(update);
    ASSERT_TRUE(eventually([&] {
      return metric(agent, "ts_kube_agent_self_changes_total").value_or(0) >= before + 1;
    })) << before
        << "\n"
        << httpGet(agent.adminPort(), "/metrics").body;
  }
  // The writes logged after `seq`, once at least `n` are there (kube-emu logs a request just
  // after answering it, so the log may trail the object by a moment).
  std::vector<kube_emu::RequestRecord> awaitWrites(uint64_t seq, size_t n) {
    EXPECT_TRUE(eventually([&] { return writesAfter(seq).size() >= n; }));
    return writesAfter(seq);
  }
  double notifies(AgentProcess& agent, const std::string& kind) {
    return metric(agent, "ts_kube_agent_notifies_total{kind=\"" + kind + "\"}").value_or(-1);
  }
};

TEST_F(AgentE2E, InitialIdentityIsWrittenWithExactlyTheUpstreamKeysAndFormats) {
  auto& agent = startSynced();
  EXPECT_EQ(secretData(), kInitialIdentity);
  EXPECT_EQ(httpGet(agent.adminPort(), "/healthz").status, 200);
  EXPECT_EQ(httpGet(agent.adminPort(), "/healthz").body, "ok\n");
  EXPECT_EQ(httpGet(agent.adminPort(), "/livez").status, 200);
  const auto writes = awaitWrites(0, 1);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].method, "POST");  // the Secret did not exist: created with the identity
  EXPECT_EQ(writes[0].query, "fieldManager=ts-kube-agent");
  EXPECT_EQ(metric(agent, "ts_kube_agent_identity_in_sync{target=\"secret\"}"), 1);
  EXPECT_EQ(metric(agent, "ts_kube_agent_publishes_total{target=\"secret\",result=\"written\"}"),
            1);
}

TEST_F(AgentE2E, PromtoolAcceptsTheRunningAgentsMetrics) {
  if (std::string(TSK_PROMTOOL).empty()) GTEST_SKIP() << "promtool not installed (prometheus)";
  auto& agent = startSynced({"--track-peers"});
  sim().churn(3);
  const std::string path = temp_dir_ + "/metrics.txt";
  std::ofstream(path) << httpGet(agent.adminPort(), "/metrics").body;
  const std::string cmd = std::string(TSK_PROMTOOL) + " check metrics < " + path + " 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_EQ(out, "");
}

// A tailscaled version with invalid UTF-8 (in the Tailscale-Version header and every Notify's
// Version) used to become a label value promtool rejects: the whole scrape failed.
TEST_F(AgentE2E, PromtoolAcceptsTheMetricsAfterAnInvalidUtf8Version) {
  if (std::string(TSK_PROMTOOL).empty()) GTEST_SKIP() << "promtool not installed (prometheus)";
  auto opts = defaultSimOptions();
  opts.version = "1.102.0\xff\xfe";
  restartSim(opts);
  auto& agent = startSynced();
  sim().errMessage("bad \xff byte");
  ASSERT_TRUE(agent.waitForLog("tailscaled reported an error")) << agent.logs();
  const std::string body = httpGet(agent.adminPort(), "/metrics").body;
  EXPECT_NE(body.find("ts_kube_agent_tailscaled_info{version=\"1.102.0\xef\xbf\xbd\xef\xbf\xbd\"}"),
            std::string::npos)
      << body;
  const std::string path = temp_dir_ + "/metrics.txt";
  std::ofstream(path) << body;
  const std::string cmd = std::string(TSK_PROMTOOL) + " check metrics < " + path + " 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  EXPECT_EQ(pclose(p), 0) << out;
  EXPECT_EQ(out, "");
  // Every log line the agent wrote (JSON) parses, the ErrMessage one included.
  std::istringstream lines(agent.logs());
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{') continue;
    EXPECT_FALSE(nlohmann::json::parse(line, nullptr, false).is_discarded()) << line;
  }
}

// Malformed or invalid self nodes from the bus used to be written verbatim (a prefix length of
// 99, "not-an-ip"), or as empty values (a second, empty "SelfChange" object on the line). Now
// none of them reaches the API server and the last valid identity stays.
TEST_F(AgentE2E, InvalidSelfChangesWriteNothingAndTheLastIdentityStays) {
  auto& agent = startSynced();
  const auto seq = lastSeq();
  const std::string node =
      R"("ID":1,"StableID":"nSdcr7Qx2CNTRL","Name":"demo-sidecar-0.tail3f9a2c.ts.net.",)";
  // Invalid self nodes (the line itself is fine): counted by problem.
  sim().malformed(R"({"SelfChange":{)" + node + R"("Addresses":["100.64.0.1/99"]}})");
  sim().malformed(R"({"SelfChange":{)" + node + R"("Addresses":["not-an-ip"]}})");
  sim().malformed(R"({"SelfChange":{"ID":1,"StableID":"n1","Name":"","Addresses":[]}})");
  // Malformed lines (the parser's schema): counted as malformed.
  sim().malformed(R"({"SelfChange":{)" + node +
                  R"("Addresses":["100.64.0.9/32"]},"SelfChange":{}})");
  sim().malformed(R"({"SelfChange":{)" + node +
                  R"("Addresses":["100.64.0.9/32"]},"SelfChange":null})");
  sim().malformed(R"({"SelfChange":{"ID":1,"StableID":"nSdcr7Qx2CNTRL","Name":")" +
                  std::string(5000, 'n') + R"("}})");
  ASSERT_TRUE(eventually([&] {
    return metric(agent,
                  "ts_kube_agent_bus_invalid_self_nodes_total{problem=\"address_prefix_length\"}")
                   .value_or(0) == 1 &&
           metric(agent, "ts_kube_agent_bus_invalid_self_nodes_total{problem=\"invalid_address\"}")
                   .value_or(0) == 1 &&
           metric(agent, "ts_kube_agent_bus_invalid_self_nodes_total{problem=\"empty_name\"}")
                   .value_or(0) == 1 &&
           metric(agent, "ts_kube_agent_bus_malformed_lines_total").value_or(0) == 3;
  })) << httpGet(agent.adminPort(), "/metrics").body;
  EXPECT_TRUE(agent.logContains("not published")) << agent.logs();
  // A valid change after them is a barrier: whatever the invalid ones caused came before it.
  tsbus_sim::IdentityUpdate rename;
  rename.name = "demo-sidecar-1.tail3f9a2c.ts.net.";
  sim().selfChange(rename);
  ASSERT_TRUE(eventually([&] {
    return secretData()["device_fqdn"] == "demo-sidecar-1.tail3f9a2c.ts.net.";
  })) << agent.logs();
  const auto writes = awaitWrites(seq, 1);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(patchedKeys(writes[0]), std::vector<std::string>{"device_fqdn"});
  auto want = kInitialIdentity;
  want["device_fqdn"] = "demo-sidecar-1.tail3f9a2c.ts.net.";
  EXPECT_EQ(secretData(), want);
  EXPECT_EQ(readyzStatus(agent), 200);
}

TEST_F(AgentE2E, ExistingSecretKeepsTailscaledKeysAndGetsOnePatch) {
  seedSecret({{"_machinekey", "mk"}, {"_current-profile", "p"}, {"profile-1a2b", "state"}});
  startSynced();
  const auto writes = awaitWrites(0, 1);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(writes[0].method, "PATCH");
  EXPECT_EQ(writes[0].content_type, "application/strategic-merge-patch+json");
  auto data = secretData();
  EXPECT_EQ(data.at("_machinekey"), "mk");
  EXPECT_EQ(data.at("profile-1a2b"), "state");
  EXPECT_EQ(data.at("device_id"), "nSdcr7Qx2CNTRL");
}

TEST_F(AgentE2E, SelfChangeWithNewAddressesGivesOnePatchWithOnlyTheChangedKey) {
  auto& agent = startSynced();
  const auto seq = lastSeq();
  tsbus_sim::IdentityUpdate update;
  update.addresses = std::vector<std::string>{"100.90.12.35", "fd7a:115c:a1e0::6a01:c23"};
  sim().selfChange(update);
  ASSERT_TRUE(eventually([&] {
    return secretData()["device_ips"] == R"(["100.90.12.35","fd7a:115c:a1e0::6a01:c23"])";
  })) << agent.logs();
  // A second, different change acts as a barrier: anything the first caused came before it.
  tsbus_sim::IdentityUpdate rename;
  rename.name = "demo-sidecar-1.tail3f9a2c.ts.net.";
  sim().selfChange(rename);
  ASSERT_TRUE(eventually(
      [&] { return secretData()["device_fqdn"] == "demo-sidecar-1.tail3f9a2c.ts.net."; }));
  const auto writes = awaitWrites(seq, 2);
  ASSERT_EQ(writes.size(), 2u);
  EXPECT_EQ(writes[0].method, "PATCH");
  EXPECT_EQ(patchedKeys(writes[0]), std::vector<std::string>{"device_ips"});
  EXPECT_EQ(patchedKeys(writes[1]), std::vector<std::string>{"device_fqdn"});
  EXPECT_GE(metric(agent, "ts_kube_agent_self_changes_total").value_or(0), 2);
  EXPECT_GT(metric(agent, "ts_kube_agent_last_self_change_timestamp_seconds").value_or(0), 0);
}

TEST_F(AgentE2E, HundredNotificationsThatChangeNothingGiveZeroWrites) {
  auto& agent = startSynced();
  const auto seq = lastSeq();
  const double self_before = notifies(agent, "self_change");
  const double blank_before = notifies(agent, "blank");
  // One decision behind both metrics: the first identity learnt is the one change so far.
  const auto changes_before = metric(agent, "ts_kube_agent_self_changes_total");
  const auto stamp_before = metric(agent, "ts_kube_agent_last_self_change_timestamp_seconds");
  EXPECT_EQ(changes_before, 1);
  ASSERT_TRUE(stamp_before);
  sim().selfChange({}, 50);  // the same identity again, as tailscaled does on each netmap
  sim().blank(50);           // what a peer delta looks like without peer tracking
  ASSERT_TRUE(eventually([&] {
    return notifies(agent, "self_change") >= self_before + 50 &&
           notifies(agent, "blank") >= blank_before + 50;
  })) << agent.logs();
  EXPECT_EQ(writesAfter(seq).size(), 0u);
  EXPECT_EQ(secretData(), kInitialIdentity);
  // Nor did they move either metric (not even a SelfChange that adds the integer node ID an
  // InitialStatus PeerStatus may lack).
  EXPECT_EQ(metric(agent, "ts_kube_agent_self_changes_total"), changes_before);
  EXPECT_EQ(metric(agent, "ts_kube_agent_last_self_change_timestamp_seconds"), stamp_before);
}

TEST_F(AgentE2E, TailscaledRestartReconnectsResyncsAndWritesNothing) {
  auto& agent = startSynced();
  const auto seq = lastSeq();
  const double initials = notifies(agent, "initial_status");
  tsbus_sim::RestartOptions restart;
  restart.down = milliseconds(300);
  restart.remove_socket = true;
  sim().restart(restart);
  ASSERT_TRUE(eventually([&] {
    return metric(agent, "ts_kube_agent_bus_reconnects_total").value_or(0) >= 1 &&
           notifies(agent, "initial_status") >= initials + 1 &&
           metric(agent, "ts_kube_agent_bus_connected") == 1;
  })) << agent.logs();
  EXPECT_TRUE(eventually([&] { return readyzStatus(agent) == 200; }));
  EXPECT_EQ(writesAfter(seq).size(), 0u);
}

// tailscaled restarted: until its first netmap it serves an empty Self (ID "", no addresses,
// InNetworkMap false). The Secret keeps the identity, /readyz says why it is not ready, and the
// netmap coming back with the same node writes nothing.
TEST_F(AgentE2E, TailscaledRestartBeforeItsNetmapKeepsTheIdentityAndWritesNothing) {
  auto& agent = startSynced();
  const auto seq = lastSeq();
  const double initials = notifies(agent, "initial_status");
  tsbus_sim::RestartOptions restart;
  restart.down = milliseconds(100);
  restart.pre_netmap = true;
  sim().setState(5);  // Starting, as a restarted daemon reports until control answers
  sim().restart(restart);
  std::string reason;
  ASSERT_TRUE(eventually([&] {
    return notifies(agent, "initial_status") >= initials + 1 && readyzStatus(agent, &reason) == 503;
  })) << agent.logs();
  EXPECT_NE(reason.find("tailscaled has no node identity yet"), std::string::npos) << reason;
  EXPECT_NE(reason.find("Starting"), std::string::npos) << reason;
  EXPECT_EQ(httpGet(agent.adminPort(), "/healthz").status, 503);
  EXPECT_EQ(secretData(), kInitialIdentity);
  sim().netmapArrived();
  sim().setState(6);
  ASSERT_TRUE(eventually([&] { return readyzStatus(agent) == 200; })) << agent.logs();
  EXPECT_EQ(writesAfter(seq).size(), 0u);
  EXPECT_EQ(secretData(), kInitialIdentity);
}

// First boot: nothing is written from the empty Self, whatever the start mode; the identity is
// written once the netmap arrives.
class AgentE2EFirstBoot : public AgentE2E, public ::testing::WithParamInterface<const char*> {};

TEST_P(AgentE2EFirstBoot, NoDeviceKeyIsWrittenBeforeTheFirstNetmap) {
  auto opts = defaultSimOptions();
  opts.pre_netmap = true;
  opts.state = 5;  // Starting
  restartSim(opts);
  auto& agent = startAgent({std::string("--start-mode=") + GetParam()});
  std::string reason;
  ASSERT_TRUE(eventually([&] {
    return readyzStatus(agent, &reason) == 503 &&
           reason.find("no node identity yet") != std::string::npos;
  })) << reason
      << agent.logs();
  EXPECT_EQ(writesAfter(0).size(), 0u);
  EXPECT_EQ(secretData().count("device_id"), 0u);
  sim().netmapArrived();
  sim().setState(6);
  ASSERT_TRUE(eventually([&] { return readyzStatus(agent) == 200; })) << agent.logs();
  EXPECT_EQ(secretData(), kInitialIdentity);
}

INSTANTIATE_TEST_SUITE_P(StartModes, AgentE2EFirstBoot,
                         ::testing::Values("initial-status", "status-fetch"));

TEST_F(AgentE2E, AgentRestartWithUnchangedIdentityMakesZeroWrites) {
  auto& first = startSynced();
  ASSERT_EQ(first.terminate(), 0);
  const auto seq = lastSeq();
  auto& second = startAgent();
  ASSERT_TRUE(eventually([&] {
    return metric(second, "ts_kube_agent_publishes_total{target=\"secret\",result=\"unchanged\"}")
               .value_or(0) >= 1;
  })) << second.logs();
  EXPECT_EQ(readyzStatus(second), 200);
  EXPECT_EQ(writesAfter(seq).size(), 0u);
  bool read_once = false;
  for (const auto& r : emu().requestLog(seq)) read_once |= r.method == "GET";
  EXPECT_TRUE(read_once);
}

TEST_F(AgentE2E, ApiServerUnavailableThenRecoveredConvergesAndReadyzFollows) {
  kube_emu::FaultRule outage;
  outage.kind = kube_emu::FaultKind::kStatus;
  outage.status = 503;
  outage.count = -1;  // until cleared
  emu().injectFault(outage);
  auto& agent = startAgent();
  std::string reason;
  ASSERT_TRUE(eventually([&] {
    return readyzStatus(agent, &reason) == 503 && reason.find("503") != std::string::npos;
  })) << reason
      << agent.logs();
  // The identity changes during the outage: the latest one must win.
  tsbus_sim::IdentityUpdate update;
  update.addresses = std::vector<std::string>{"100.90.12.99"};
  sim().selfChange(update);
  ASSERT_TRUE(eventually([&] {
    return metric(agent, "ts_kube_agent_publishes_total{target=\"secret\",result=\"failed\"}")
               .value_or(0) >= 1;
  }));
  EXPECT_EQ(metric(agent, "ts_kube_agent_identity_in_sync{target=\"secret\"}"), 0);
  emu().clearFaults();
  ASSERT_TRUE(eventually([&] { return readyzStatus(agent) == 200; }, std::chrono::seconds(60)))
      << agent.logs();
  EXPECT_EQ(secretData()["device_ips"], R"(["100.90.12.99"])");
  EXPECT_EQ(metric(agent, "ts_kube_agent_identity_in_sync{target=\"secret\"}"), 1);
}

TEST_F(AgentE2E, RbacDeniesPatchReadyzSaysWhyAndTheLogNamesTheRule) {
  seedSecret({{"device_id", "stale"}});
  emu().setRbac(agentPolicy({"get"}));
  auto& agent = startAgent();
  std::string reason;
  ASSERT_TRUE(eventually([&] {
    return readyzStatus(agent, &reason) == 503 && reason.find("forbidden") != std::string::npos;
  })) << reason
      << agent.logs();
  EXPECT_NE(reason.find("patch"), std::string::npos) << reason;
  EXPECT_EQ(std::count(reason.begin(), reason.end(), '\n'), 1) << "one line: " << reason;
  EXPECT_TRUE(agent.waitForLog(R"(verbs: [\"patch\"])")) << agent.logs();
  EXPECT_EQ(secretData()["device_id"], "stale");
}

TEST_F(AgentE2E, SigtermWithAWritePendingFlushesIt) {
  auto& agent = startSynced({"--publish-wait=30s:60s"});  // the window would hold it for 30 s
  tsbus_sim::IdentityUpdate update;
  update.addresses = std::vector<std::string>{"100.90.12.77"};
  ASSERT_NO_FATAL_FAILURE(selfChangeSeenBy(agent, update));
  EXPECT_NE(secretData()["device_ips"], R"(["100.90.12.77"])");
  EXPECT_EQ(agent.terminate(), 0);
  EXPECT_EQ(secretData()["device_ips"], R"(["100.90.12.77"])") << agent.logs();
  EXPECT_TRUE(agent.logContains("shutdown complete: identity in sync")) << agent.logs();
}

TEST_F(AgentE2E, SigtermWhenTheWriteCannotHappenSaysSoPlainly) {
  auto& agent = startSynced({"--publish-wait=30s:60s", "--shutdown-timeout=1s"});
  kube_emu::FaultRule outage;
  outage.kind = kube_emu::FaultKind::kStatus;
  outage.status = 503;
  outage.count = -1;
  emu().injectFault(outage);
  tsbus_sim::IdentityUpdate update;
  update.addresses = std::vector<std::string>{"100.90.12.78"};
  ASSERT_NO_FATAL_FAILURE(selfChangeSeenBy(agent, update));
  EXPECT_EQ(agent.terminate(), 0);
  EXPECT_TRUE(agent.logContains("the latest identity was NOT written")) << agent.logs();
  EXPECT_TRUE(agent.logContains("device_ips")) << agent.logs();
  EXPECT_FALSE(agent.logContains("100.90.12.78")) << "values never appear in logs";
}

TEST_F(AgentE2E, SecondSigtermExitsAtOnceNamingWhatWasNotWritten) {
  // The flush would go on for two minutes against a failing API server.
  auto& agent = startSynced({"--publish-wait=30s:60s", "--shutdown-timeout=120s"});
  kube_emu::FaultRule outage;
  outage.kind = kube_emu::FaultKind::kStatus;
  outage.status = 503;
  outage.count = -1;
  emu().injectFault(outage);
  tsbus_sim::IdentityUpdate update;
  update.addresses = std::vector<std::string>{"100.90.12.79"};
  ASSERT_NO_FATAL_FAILURE(selfChangeSeenBy(agent, update));
  ASSERT_EQ(kill(agent.pid(), SIGTERM), 0);
  ASSERT_TRUE(agent.waitForLog("flushing the pending identity")) << agent.logs();
  // terminate() sends the second SIGTERM; the agent must not wait out --shutdown-timeout.
  const int status = agent.terminate(std::chrono::seconds(60));
  ASSERT_NE(status, -1) << "still running after a second SIGTERM:\n" << agent.logs();
  EXPECT_EQ(status, 128 + SIGTERM) << agent.logs();
  EXPECT_TRUE(agent.logContains("second signal")) << agent.logs();
  EXPECT_TRUE(agent.logContains("the latest identity was NOT written")) << agent.logs();
  EXPECT_TRUE(agent.logContains("device_ips")) << agent.logs();
  EXPECT_FALSE(agent.logContains("100.90.12.79")) << "values never appear in logs";
  EXPECT_NE(secretData()["device_ips"], R"(["100.90.12.79"])");
}

TEST_F(AgentE2E, NodeWithoutAddressesGetsDeviceIpsNullLikeUpstream) {
  auto& agent = startSynced();
  tsbus_sim::IdentityUpdate update;
  update.addresses = std::vector<std::string>{};
  sim().selfChange(update);
  ASSERT_TRUE(eventually([&] { return secretData()["device_ips"] == "null"; })) << agent.logs();
  EXPECT_EQ(secretData()["device_id"], kInitialIdentity.at("device_id"));
  EXPECT_EQ(httpGet(agent.adminPort(), "/healthz").status, 503);
}

TEST_F(AgentE2E, PeerCountsMatchTheSimulatorAndFollowChurn) {
  auto& agent = startSynced({"--track-peers"});
  EXPECT_EQ(metric(agent, "ts_kube_agent_peers"), 20);
  const double before_online = metric(agent, "ts_kube_agent_peers_online").value_or(-1);
  EXPECT_GE(before_online, 0);
  EXPECT_LE(before_online, 20);
  const auto seq = lastSeq();
  sim().churn(15);  // 15 × (remove one peer, add another)
  sim().patch(10);  // 10 online flips
  ASSERT_TRUE(eventually([&] {
    return notifies(agent, "peers_removed") >= 15 && notifies(agent, "peers_changed") >= 15;
  })) << agent.logs();
  EXPECT_TRUE(eventually([&] { return metric(agent, "ts_kube_agent_peers") == 20; }));
  EXPECT_EQ(writesAfter(seq).size(), 0u);  // peers are not identity
}

TEST_F(AgentE2E, PeerCountsWithoutTrackingComeFromTheInitialStatus) {
  auto& agent = startSynced();
  EXPECT_EQ(metric(agent, "ts_kube_agent_peers"), 20);
  sim().churn(5);
  ASSERT_TRUE(eventually([&] { return notifies(agent, "blank") >= 10; })) << agent.logs();
  EXPECT_EQ(metric(agent, "ts_kube_agent_peers"), 20);
}

TEST_F(AgentE2E, StatusFetchStartModePublishesTheSameIdentityWithoutPeerCounts) {
  auto& agent = startSynced({"--start-mode=status-fetch"});
  EXPECT_EQ(secretData(), kInitialIdentity);
  EXPECT_EQ(metric(agent, "ts_kube_agent_peers"), std::nullopt);
  EXPECT_EQ(notifies(agent, "initial_status"), 0);
  const auto seq = lastSeq();
  tsbus_sim::IdentityUpdate update;
  update.addresses = std::vector<std::string>{"100.90.12.36"};
  sim().selfChange(update);
  ASSERT_TRUE(eventually([&] { return secretData()["device_ips"] == R"(["100.90.12.36"])"; }));
  EXPECT_EQ(awaitWrites(seq, 1).size(), 1u);
}

// tailscaled 1.98-1.99 ignores the InitialStatus bit (no first message): the agent reads the
// snapshot from /localapi/v0/status instead, says so once, and follows SelfChanges as usual.
TEST_F(AgentE2E, DaemonBefore1100FallsBackToTheStatusEndpoint) {
  auto opts = defaultSimOptions();
  opts.version = "1.98.3-t0123456789-gabcdef0123";
  opts.h_era = false;
  restartSim(opts);
  auto& agent = startSynced();
  EXPECT_EQ(secretData(), kInitialIdentity);
  EXPECT_EQ(notifies(agent, "initial_status"), 0);
  EXPECT_EQ(metric(agent, "ts_kube_agent_peers"), std::nullopt);
  EXPECT_TRUE(agent.logContains("older than 1.100")) << agent.logs();
  const auto seq = lastSeq();
  tsbus_sim::IdentityUpdate update;
  update.addresses = std::vector<std::string>{"100.90.12.37"};
  sim().selfChange(update);
  ASSERT_TRUE(eventually([&] { return secretData()["device_ips"] == R"(["100.90.12.37"])"; }));
  EXPECT_EQ(awaitWrites(seq, 1).size(), 1u);
}

// Before 1.98 there is no SelfChange: the identity of the status snapshot is published, but
// /readyz refuses, naming the version and what to do.
TEST_F(AgentE2E, DaemonBefore198IsPublishedButNotReady) {
  auto opts = defaultSimOptions();
  opts.version = "1.96.4-t0123456789-gabcdef0123";
  opts.h_era = false;
  restartSim(opts);
  auto& agent = startAgent();
  ASSERT_TRUE(eventually([&] { return secretData() == kInitialIdentity; })) << agent.logs();
  std::string reason;
  EXPECT_EQ(readyzStatus(agent, &reason), 503);
  EXPECT_NE(reason.find("1.96.4"), std::string::npos) << reason;
  EXPECT_NE(reason.find("older than 1.98"), std::string::npos) << reason;
}

TEST_F(AgentE2E, LogoutKeepsTheIdentityAndReadyzSaysWhy) {
  auto& agent = startSynced();
  const auto seq = lastSeq();
  sim().setState(2);  // NeedsLogin
  std::string reason;
  ASSERT_TRUE(eventually([&] { return readyzStatus(agent, &reason) == 503; })) << agent.logs();
  EXPECT_EQ(reason, "tailscaled backend state is NeedsLogin, not Running\n");
  EXPECT_EQ(metric(agent, "ts_kube_agent_backend_state{state=\"NeedsLogin\"}"), 1);
  EXPECT_EQ(writesAfter(seq).size(), 0u);
  EXPECT_EQ(secretData(), kInitialIdentity);
}

TEST_F(AgentE2E, ClearOnLogoutDeletesTheDeviceKeysOnly) {
  seedSecret({{"_machinekey", "mk"}});
  auto& agent = startSynced({"--clear-on-logout"});
  sim().setState(2);  // NeedsLogin
  ASSERT_TRUE(eventually([&] { return !secretData().contains("device_id"); })) << agent.logs();
  EXPECT_EQ(secretData(), (Data{{"_machinekey", "mk"}, {"pod_uid", "pod-uid-1234"}}));
}

TEST_F(AgentE2E, ConfigFileChoosesTheKeysOfEachTarget) {
  const std::string config = temp_dir_ + "/agent.yaml";
  std::ofstream(config) << "configmap: ts-identity\n"
                        << "secret-keys: [device_id]\n"
                        << "configmap-keys: [device_fqdn, backend_state, tailnet_name, tags,\n"
                        << "                 key_expiry, host_name]\n";
  startSynced({"--config=" + config});
  EXPECT_EQ(secretData(), (Data{{"device_id", "nSdcr7Qx2CNTRL"}}));
  std::optional<nlohmann::json> cm;
  ASSERT_TRUE(eventually([&] {
    cm = emu().store().find(kube_emu::Resource::kConfigMaps, kNs, "ts-identity");
    return cm.has_value();
  }));
  EXPECT_EQ((*cm)["data"], nlohmann::json({{"device_fqdn", "demo-sidecar-0.tail3f9a2c.ts.net."},
                                           {"backend_state", "Running"},
                                           {"tailnet_name", "example.com"},
                                           {"tags", R"(["tag:k8s"])"},
                                           {"key_expiry", ""},
                                           {"host_name", "demo-sidecar-0"}}));
}

TEST_F(AgentE2E, ConfigurationErrorExitsTwoBeforeTouchingAnything) {
  auto& agent = startAgent({"--publish-wait=soon"});
  EXPECT_TRUE(eventually([&] { return !agent.running(); }));
  EXPECT_EQ(agent.terminate(), 2);
  EXPECT_TRUE(agent.logContains("--publish-wait")) << agent.logs();
  EXPECT_EQ(emu().requestLog().size(), 0u);
  EXPECT_EQ(sim().stats().connections_total, 0u);
}

// Someone deletes the Secret. While the agent may not recreate it, /readyz and
// identity_in_sync say so (they used to stay 200 and 1); once it may, the next drift check
// recreates it, and the repair is counted.
TEST_F(AgentE2E, DeletedSecretMakesTheAgentUnreadyUntilTheDriftCheckRecreatesIt) {
  auto& agent = startSynced({"--drift-check-interval=1s"});
  emu().setRbac(agentPolicy({"get", "patch"}));  // no create for now
  ASSERT_LT(emu().store().remove(kube_emu::Resource::kSecrets, kNs, kSecret).code, 300);
  std::string reason;
  ASSERT_TRUE(eventually([&] {
    return readyzStatus(agent, &reason) == 503 &&
           reason.find("cannot create secrets \"ts-state\"") != std::string::npos;
  })) << reason
      << agent.logs();
  EXPECT_EQ(metric(agent, "ts_kube_agent_identity_in_sync{target=\"secret\"}"), 0);
  EXPECT_TRUE(secretData().empty());
  emu().setRbac(agentPolicy({"get", "create", "patch"}));
  ASSERT_TRUE(eventually([&] { return secretData() == kInitialIdentity; })) << agent.logs();
  EXPECT_TRUE(eventually([&] { return readyzStatus(agent) == 200; }));
  EXPECT_EQ(metric(agent, "ts_kube_agent_identity_in_sync{target=\"secret\"}"), 1);
  EXPECT_EQ(metric(agent, "ts_kube_agent_drift_repairs_total{target=\"secret\"}"), 1);
  EXPECT_TRUE(agent.logContains("no longer holds the latest identity")) << agent.logs();
}

// Someone overwrites one of the agent's keys. Repeated identical SelfChanges do not repair it
// (they cost nothing, by design); the bus reconnect does, at once (periodic checks are off
// here), and writes only that key. The other writer's field manager then owns the key, so this
// needs --foreign-keys=overwrite (by default the key is left to it).
TEST_F(AgentE2E, KeyOverwrittenBySomeoneElseIsRepairedAfterABusReconnect) {
  auto& agent = startSynced({"--drift-check-interval=0", "--foreign-keys=overwrite"});
  const auto overwritten = emu().store().patch(
      kube_emu::Resource::kSecrets, kNs, kSecret,
      R"({"data":{"device_fqdn":")" + k8s::base64Encode("evil.example.") + R"("}})",
      {"someone-else"});
  ASSERT_LT(overwritten.code, 300);
  const auto seq = lastSeq();
  const double reconnects = metric(agent, "ts_kube_agent_bus_reconnects_total").value_or(0);
  tsbus_sim::RestartOptions restart;
  restart.down = milliseconds(100);
  sim().restart(restart);
  ASSERT_TRUE(eventually([&] {
    return metric(agent, "ts_kube_agent_bus_reconnects_total").value_or(0) >= reconnects + 1;
  }));
  ASSERT_TRUE(eventually([&] { return secretData() == kInitialIdentity; })) << agent.logs();
  const auto writes = awaitWrites(seq, 1);
  ASSERT_EQ(writes.size(), 1u);
  EXPECT_EQ(patchedKeys(writes[0]), std::vector<std::string>{"device_fqdn"});
  EXPECT_TRUE(eventually(
      [&] { return metric(agent, "ts_kube_agent_drift_repairs_total{target=\"secret\"}") == 1; }));
  EXPECT_EQ(readyzStatus(agent), 200);
}

TEST_F(AgentE2E, SighupShutsDownLikeSigtermFlushingThePendingIdentity) {
  auto& agent = startSynced({"--publish-wait=30s:60s"});  // the window would hold it for 30 s
  tsbus_sim::IdentityUpdate update;
  update.addresses = std::vector<std::string>{"100.90.12.80"};
  ASSERT_NO_FATAL_FAILURE(selfChangeSeenBy(agent, update));
  ASSERT_EQ(kill(agent.pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually([&] { return !agent.running(); })) << agent.logs();
  EXPECT_EQ(agent.terminate(), 0) << agent.logs();  // used to die by the signal (129)
  EXPECT_TRUE(agent.logContains("SIGHUP")) << agent.logs();
  EXPECT_EQ(secretData()["device_ips"], R"(["100.90.12.80"])") << agent.logs();
  EXPECT_TRUE(agent.logContains("shutdown complete: identity in sync")) << agent.logs();
}

TEST_F(AgentE2E, Sigusr1AndSigusr2AreLoggedAndIgnored) {
  auto& agent = startSynced();
  for (const int sig : {SIGUSR1, SIGUSR2}) ASSERT_EQ(kill(agent.pid(), sig), 0);
  ASSERT_TRUE(agent.waitForLog("SIGUSR2")) << agent.logs();
  EXPECT_TRUE(agent.logContains("signal ignored")) << agent.logs();
  EXPECT_TRUE(agent.logContains("SIGUSR1")) << agent.logs();
  EXPECT_TRUE(agent.running());
  EXPECT_EQ(readyzStatus(agent), 200);
  EXPECT_EQ(agent.terminate(), 0);  // SIGTERM still shuts it down
}

TEST_F(AgentE2E, InvalidObjectNamesAndAnOverlongSocketPathExitTwoSayingTheRule) {
  struct Case {
    std::vector<std::string> flags;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"--secret", "Bad_Name"}, "DNS-1123 subdomain"},
      {{"--secret=a/b"}, "DNS-1123 subdomain"},
      {{"--namespace=a/b"}, "DNS-1123 label"},
      {{"--socket=/" + std::string(107, 's')}, "at most 107 bytes"},
  };
  for (const auto& c : cases) {
    auto& agent = startAgent(c.flags);
    EXPECT_TRUE(eventually([&] { return !agent.running(); })) << c.flags[0];
    EXPECT_EQ(agent.terminate(), 2) << agent.logs();
    EXPECT_TRUE(agent.logContains(c.says)) << agent.logs();
  }
  // A namespace from the kubeconfig context is checked the same way.
  std::ifstream in(kubeconfig_path_);
  std::string kubeconfig((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto at = kubeconfig.find("namespace: tailscale");
  ASSERT_NE(at, std::string::npos);
  kubeconfig.replace(at, std::string("namespace: tailscale").size(), "namespace: Bad_NS");
  const std::string bad_kubeconfig = temp_dir_ + "/bad-ns.kubeconfig";
  std::ofstream(bad_kubeconfig) << kubeconfig;
  auto& agent = startAgent({"--kubeconfig=" + bad_kubeconfig, "--namespace="});
  EXPECT_TRUE(eventually([&] { return !agent.running(); }));
  EXPECT_EQ(agent.terminate(), 2) << agent.logs();
  EXPECT_TRUE(agent.logContains("kubeconfig context")) << agent.logs();
  EXPECT_TRUE(agent.logContains("DNS-1123 label")) << agent.logs();
  EXPECT_EQ(emu().requestLog().size(), 0u);
  EXPECT_EQ(sim().stats().connections_total, 0u);
}

TEST_F(AgentE2E, SocketPathThatIsNotASocketSaysWhatItIs) {
  const std::string dir = temp_dir_ + "/dir.sock";
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  const std::string file = temp_dir_ + "/file.sock";
  std::ofstream(file) << "x";
  const std::string fifo = temp_dir_ + "/fifo.sock";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const auto& [path, what] : std::vector<std::pair<std::string, std::string>>{
           {dir, "is a directory"}, {file, "is a regular file"}, {fifo, "is a FIFO"}}) {
    auto& agent = startAgent({"--socket=" + path});
    ASSERT_TRUE(agent.waitForLog(what)) << agent.logs();
    EXPECT_TRUE(agent.logContains("not a unix socket")) << agent.logs();
    EXPECT_FALSE(agent.logContains("nothing is listening")) << agent.logs();
    EXPECT_EQ(agent.terminate(), 0);
  }
}

}  // namespace
}  // namespace tsk::agent::e2e
