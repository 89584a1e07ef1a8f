// The agent against real tailscaled daemons and a real control server, writing into a real
// kube-apiserver: nothing simulated on either side. Built by scripts/real-tailscale/build.sh
// (tailscale.com v1.102.5) and scripts/real-apiserver (ctest fixtures real_tailscaled_bin and
// real_apiserver). Each test starts its own control server and daemons on loopback, so tests
// never see each other's nodes.
//
// Writes are counted with the agent's ts_kube_agent_api_requests_total (the real API server
// keeps no request log) and each write's keys come from the agent's "identity written" log line.
//
// With TSK_REALTS_RECORD_DIR set, every test also records node A's bus with the agent's mask
// (raw Notify lines, `curl --unix-socket`) into that dir: that is how the fixtures under
// tests/data/real-tailscaled were made.
#include <gtest/gtest.h>
#include <signal.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>

#include "tests/integration/real_tailscaled/real_tailscaled.h"

namespace tsk::testing::realts {
namespace {

using agent::e2e::eventually;
using agent::e2e::httpGet;
using agent::e2e::metricValue;
using Data = std::map<std::string, std::string>;
using namespace std::chrono_literals;

constexpr uint64_t kMaskDefault = 16384;                    // NotifyInitialStatus
constexpr uint64_t kMaskTrackPeers = 16384 | 4096 | 32768;  // + PeerChanges, PeerPatches
constexpr const char* kPodUid = "pod-uid-realts";

constexpr const char* kRules = R"(
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: ["ts-state"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
)";

// What upstream containerboot writes for a node, from `tailscale status --json`.
Data identityOf(const nlohmann::json& status) {
  const auto& self = status.at("Self");
  return {{"device_id", self.at("ID").get<std::string>()},
          {"device_fqdn", self.at("DNSName").get<std::string>()},
          {"device_ips", self.at("TailscaleIPs").dump()},
          {"pod_uid", kPodUid}};
}

class RealTailscaled : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto bins = RealTsBinaries::load(TSK_REALTS_BINDIR_FILE);
    if (!bins.skip_reason.empty()) GTEST_SKIP() << bins.skip_reason;
    ASSERT_TRUE(bins.error.empty()) << bins.error;
    bin_dir_ = bins.dir;
    auto loaded = RealApiServer::load(TSK_REAL_APISERVER_ENV);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    server_ = *loaded;
    kubectl_ = std::make_unique<Kubectl>(server_.admin_kubeconfig);
    ns_ = uniqueNamespace("realts");
    setUpServiceAccount();
    control_ = std::make_unique<RealTsControl>(bin_dir_, dir_.path() / "control");
    a_ = node("a");
  }

  void TearDown() override {
    recorders_.clear();
    for (auto& p : agents_) {
      if (p->running()) {
        ::kill(p->pid(), SIGCONT);
        EXPECT_EQ(p->terminate(), 0);
      }
      if (HasFailure()) std::cerr << "--- agent log ---\n" << p->logs();
    }
    agents_.clear();
    if (HasFailure() && control_) std::cerr << "--- control log ---\n" << control_->logs();
    if (HasFailure()) {
      for (auto& n : nodes_) {
        const auto logs = n->logs();
        std::cerr << "--- tailscaled " << n->dir() << " (last 4 KB) ---\n"
                  << logs.substr(logs.size() > 4096 ? logs.size() - 4096 : 0);
      }
    }
    nodes_.clear();
    control_.reset();
    saveRecordings();
  }

  RealTsNode* node(const std::string& name) {
    nodes_.push_back(
        std::make_unique<RealTsNode>(bin_dir_, dir_.path() / name, "node-" + name, control_->url));
    return nodes_.back().get();
  }

  void setUpServiceAccount() {
    kubectl({"apply", "-f", "-"},
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + ns_ +
                "}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: ts-kube-agent, "
                "namespace: " +
                ns_ +
                "}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: "
                "ts-kube-agent, namespace: " +
                ns_ + "}\nrules:" + kRules +
                "\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: "
                "{name: ts-kube-agent, namespace: " +
                ns_ +
                "}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: "
                "ts-kube-agent}\nsubjects:\n- {kind: ServiceAccount, name: ts-kube-agent, "
                "namespace: " +
                ns_ + "}\n");
    std::string token = kubectl({"create", "token", "ts-kube-agent", "-n", ns_, "--duration=1h"});
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) {
      token.pop_back();
    }
    const auto sa = dir_.path() / "sa";
    fs::create_directories(sa);
    std::ofstream(sa / "token") << token;
    std::ofstream(sa / "ca.crt") << readFile(server_.ca_file);
    std::ofstream(sa / "namespace") << ns_;
  }

  std::string kubectl(const std::vector<std::string>& args,
                      const std::optional<std::string>& stdin_text = std::nullopt) const {
    const auto out = kubectl_->run(args, stdin_text);
    if (out.exit_code != 0) throw std::runtime_error("kubectl failed: " + out.err);
    return out.out;
  }

  // The agent watching node A, writing Secret ts-state in the test's namespace.
  AgentProcess& startAgent(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {
        "--socket=" + a_->socket(), "--service-account-dir=" + (dir_.path() / "sa").string(),
        "--secret=ts-state",        "--admin-addr=127.0.0.1:0",
        "--log-format=json",        "--pod-uid=" + std::string(kPodUid)};
    args.insert(args.end(), extra.begin(), extra.end());
    agents_.push_back(std::make_unique<AgentProcess>(
        TSK_AGENT_BIN, args,
        std::vector<std::string>{"KUBERNETES_SERVICE_HOST=" + server_.host,
                                 "KUBERNETES_SERVICE_PORT=" + server_.port}));
    auto& agent = *agents_.back();
    EXPECT_GT(agent.adminPort(), 0) << agent.logs();
    return agent;
  }

  // Records node A's bus with `mask` for this test (only with TSK_REALTS_RECORD_DIR).
  void record(uint64_t mask, const std::string& tag = "") {
    const char* dir = std::getenv("TSK_REALTS_RECORD_DIR");
    if (!dir || !*dir) return;
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info->name();  // "LogoutThenLoginAgain/Keep" for a TEST_P
    std::replace(name.begin(), name.end(), '/', '-');
    const auto path = dir_.path() / (name + (tag.empty() ? "" : "." + tag) + ".mask" +
                                     std::to_string(mask) + ".jsonl");
    recorders_.push_back(std::make_unique<BusRecorder>(a_->socket(), mask, path));
    recorded_.push_back(path);
  }
  void saveRecordings() {
    const char* dir = std::getenv("TSK_REALTS_RECORD_DIR");
    if (!dir || !*dir) return;
    fs::create_directories(dir);
    for (const auto& p : recorded_) {
      if (fs::exists(p))
        fs::copy_file(p, fs::path(dir) / p.filename(), fs::copy_options::overwrite_existing);
    }
  }

  double metric(AgentProcess& agent, const std::string& series) {
    return metricValue(httpGet(agent.adminPort(), "/metrics").body, series).value_or(-1);
  }
  // Requests that changed the Secret (the agent's own count: PATCH 200 and POST 201).
  double writes(AgentProcess& agent) {
    const auto text = httpGet(agent.adminPort(), "/metrics").body;
    return metricValue(text, R"(ts_kube_agent_api_requests_total{code="200",verb="PATCH"})")
               .value_or(0) +
           metricValue(text, R"(ts_kube_agent_api_requests_total{code="201",verb="POST"})")
               .value_or(0);
  }
  int readyz(AgentProcess& agent, std::string* body = nullptr) {
    const auto r = httpGet(agent.adminPort(), "/readyz");
    if (body) *body = r.body;
    return r.status;
  }
  // The keys of each "identity written" log line, in order.
  std::vector<std::string> writtenKeys(AgentProcess& agent) {
    std::vector<std::string> out;
    std::istringstream in(agent.logs());
    std::string line;
    while (std::getline(in, line)) {
      if (line.find("identity written") == std::string::npos) continue;
      const auto j = nlohmann::json::parse(line, nullptr, false);
      out.push_back(j.is_object() ? j.value("keys", std::string("?")) : line);
    }
    return out;
  }

  Data secretData() const {
    Data out;
    const auto r = kubectl_->run({"get", "secret", "ts-state", "-n", ns_, "-o", "json"});
    if (r.exit_code != 0) return out;
    const auto s = nlohmann::json::parse(r.out);
    if (!s.contains("data")) return out;
    for (const auto& [k, v] : s["data"].items()) out[k] = base64Decode(v.get<std::string>());
    return out;
  }
  bool secretExists() const {
    return kubectl_->run({"get", "secret", "ts-state", "-n", ns_}).exit_code == 0;
  }

  std::string backendState(RealTsNode& n) {
    const auto st = n.status();
    return st.is_null() ? "" : st.value("BackendState", std::string());
  }
  // Node A logged in, with a netmap; answers its status.
  nlohmann::json upAndRunning(RealTsNode& n) {
    n.up();
    EXPECT_TRUE(eventually([&] { return backendState(n) == "Running"; }, 60s));
    return n.status();
  }
  // The agent synced with node A: Secret == A's identity, /readyz 200.
  void expectSynced(AgentProcess& agent, const Data& want) {
    ASSERT_TRUE(eventually([&] { return secretData() == want; }, 60s))
        << "Secret: " << nlohmann::json(secretData()).dump()
        << "\nwant: " << nlohmann::json(want).dump();
    ASSERT_TRUE(eventually([&] { return readyz(agent) == 200; }, 30s));
  }

  std::string bin_dir_;
  RealApiServer server_;
  std::unique_ptr<Kubectl> kubectl_;
  TempDir dir_;
  std::string ns_;
  std::unique_ptr<RealTsControl> control_;
  std::vector<std::unique_ptr<RealTsNode>> nodes_;
  RealTsNode* a_ = nullptr;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
  std::vector<std::unique_ptr<BusRecorder>> recorders_;
  std::vector<fs::path> recorded_;
};

// First boot: tailscaled without a login, then `tailscale up` (Starting with the empty Self
// until the first netmap). Not one device key is ever written empty; the first write is the
// whole identity, byte for byte what `tailscale status --json` says.
TEST_F(RealTailscaled, FirstBootBeforeLoginWritesNothingThenLoginWritesTheIdentityOnce) {
  a_->start();
  record(kMaskDefault);
  auto& agent = startAgent();
  ASSERT_TRUE(eventually([&] { return metric(agent, "ts_kube_agent_bus_connected") == 1; }));
  std::string reason;
  ASSERT_TRUE(eventually([&] { return readyz(agent, &reason) == 503 && !reason.empty(); }));
  EXPECT_NE(reason.find("NeedsLogin"), std::string::npos) << reason;
  // Give the agent every chance to write something wrong before login.
  ASSERT_TRUE(eventually([&] {
    return metric(agent, R"(ts_kube_agent_notifies_total{kind="initial_status"})") >= 1;
  })) << agent.logs();
  EXPECT_EQ(writes(agent), 0);
  EXPECT_FALSE(secretExists());

  const auto st = upAndRunning(*a_);
  const auto want = identityOf(st);
  EXPECT_NE(want.at("device_id"), "");
  EXPECT_NE(want.at("device_fqdn"), "");
  expectSynced(agent, want);
  EXPECT_EQ(writes(agent), 1) << agent.logs();
  EXPECT_EQ(writtenKeys(agent),
            std::vector<std::string>{"device_fqdn,device_id,device_ips,pod_uid"});
}

// Renames and address changes in control reach the Secret as one PATCH of the one key.
TEST_F(RealTailscaled, RenameIsOnePatchOfFqdnAndAddressChangeOnePatchOfIps) {
  a_->start();
  const auto id = identityOf(upAndRunning(*a_));
  record(kMaskDefault);
  auto& agent = startAgent();
  expectSynced(agent, id);
  ASSERT_EQ(writes(agent), 1);

  control_->admin("POST", "/rename", {{"node", id.at("device_id")}, {"name", "renamed-a"}});
  ASSERT_TRUE(eventually(
      [&] {
        const auto st = a_->status();
        return !st.is_null() && st["Self"]["DNSName"] == "renamed-a.tail-realts.ts.net.";
      },
      30s));
  auto want = identityOf(a_->status());
  expectSynced(agent, want);
  EXPECT_EQ(writes(agent), 2);

  control_->admin("POST", "/addresses",
                  {{"node", id.at("device_id")},
                   {"addresses", {"100.64.77.7/32", "fd7a:115c:a1e0::77:7/128"}}});
  ASSERT_TRUE(eventually(
      [&] {
        const auto st = a_->status();
        return !st.is_null() &&
               st["Self"]["TailscaleIPs"].dump() == R"(["100.64.77.7","fd7a:115c:a1e0::77:7"])";
      },
      30s));
  want = identityOf(a_->status());
  expectSynced(agent, want);
  EXPECT_EQ(writes(agent), 3);
  EXPECT_EQ(writtenKeys(agent),
            (std::vector<std::string>{"device_fqdn,device_id,device_ips,pod_uid", "device_fqdn",
                                      "device_ips"}));
}

// tailscaled SIGKILLed and restarted on its state dir: it comes back with the empty Self until
// its first netmap. The Secret keeps the identity the whole time, and there is no write.
TEST_F(RealTailscaled, SigkillAndRestartKeepsTheIdentityAndWritesNothing) {
  a_->start();
  const auto id = identityOf(upAndRunning(*a_));
  auto& agent = startAgent();
  expectSynced(agent, id);
  ASSERT_EQ(writes(agent), 1);
  const double reconnects = metric(agent, "ts_kube_agent_bus_reconnects_total");

  a_->kill9();
  ASSERT_TRUE(eventually([&] { return metric(agent, "ts_kube_agent_bus_connected") == 0; }));
  a_->start();
  record(kMaskDefault, "restart");
  // Sample the Secret through the pre-netmap window until A is Running again.
  bool always_kept = true;
  ASSERT_TRUE(eventually(
      [&] {
        always_kept &= secretData() == id;
        return backendState(*a_) == "Running";
      },
      60s));
  ASSERT_TRUE(
      eventually([&] { return metric(agent, "ts_kube_agent_bus_reconnects_total") > reconnects; }));
  ASSERT_TRUE(eventually([&] { return readyz(agent) == 200; }, 30s)) << agent.logs();
  EXPECT_TRUE(always_kept);
  EXPECT_EQ(identityOf(a_->status()), id);
  EXPECT_EQ(secretData(), id);
  EXPECT_EQ(writes(agent), 1) << agent.logs();
}

// `tailscale logout` then login again, without and with --clear-on-logout.
class RealTailscaledLogout : public RealTailscaled, public ::testing::WithParamInterface<bool> {};

TEST_P(RealTailscaledLogout, LogoutThenLoginAgain) {
  const bool clear = GetParam();
  a_->start();
  const auto first = identityOf(upAndRunning(*a_));
  record(kMaskDefault);
  auto& agent = startAgent(clear ? std::vector<std::string>{"--clear-on-logout"}
                                 : std::vector<std::string>{});
  expectSynced(agent, first);

  const auto out = a_->cli({"logout"});
  ASSERT_EQ(out.exit_code, 0) << out.out << out.err;
  ASSERT_TRUE(eventually([&] { return backendState(*a_) == "NeedsLogin"; }, 30s));
  std::string reason;
  ASSERT_TRUE(eventually([&] {
    return readyz(agent, &reason) == 503 && reason.find("NeedsLogin") != std::string::npos;
  })) << reason;
  if (clear) {
    ASSERT_TRUE(eventually([&] {
      return secretData() == Data{{"pod_uid", kPodUid}};
    })) << nlohmann::json(secretData()).dump();
    EXPECT_EQ(writes(agent), 2);
  } else {
    EXPECT_EQ(secretData(), first);
    EXPECT_EQ(writes(agent), 1);
  }

  const auto second = identityOf(upAndRunning(*a_));
  expectSynced(agent, second);
  EXPECT_EQ(writes(agent), clear ? 3 : (second == first ? 1 : 2)) << agent.logs();
}

INSTANTIATE_TEST_SUITE_P(ClearOnLogout, RealTailscaledLogout, ::testing::Bool(),
                         [](const auto& p) { return p.param ? "Clear" : "Keep"; });

// --track-peers: after every change ts_kube_agent_peers equals the peer count of
// `tailscale status --json`, including a peer that vanishes from a full netmap (no
// PeersRemoved) and one removed by PeersRemoved.
TEST_F(RealTailscaled, TrackPeersFollowsJoinsAndLeaves) {
  a_->start();
  const auto id = identityOf(upAndRunning(*a_));
  auto* b = node("b");
  b->start();
  upAndRunning(*b);
  record(kMaskTrackPeers);
  auto& agent = startAgent({"--track-peers"});
  expectSynced(agent, id);

  auto agentPeersMatch = [&](size_t want) {
    return eventually(
        [&] {
          return a_->statusPeerCount() == want && metric(agent, "ts_kube_agent_peers") == want;
        },
        30s);
  };
  EXPECT_TRUE(agentPeersMatch(1)) << metric(agent, "ts_kube_agent_peers");

  const auto added = control_->admin("POST", "/peers/add", {{"count", 3}});
  const auto fakes = added["ids"];
  EXPECT_TRUE(agentPeersMatch(4)) << "after adding 3 peers: agent "
                                  << metric(agent, "ts_kube_agent_peers") << ", status "
                                  << a_->statusPeerCount();

  control_->admin("POST", "/peers/remove", {{"ids", {fakes[0]}}, {"mode", "full"}});
  EXPECT_TRUE(agentPeersMatch(3)) << "after a peer vanished from a full netmap: agent "
                                  << metric(agent, "ts_kube_agent_peers") << ", status "
                                  << a_->statusPeerCount();

  control_->admin("POST", "/peers/remove", {{"ids", {fakes[1]}}, {"mode", "delta"}});
  EXPECT_TRUE(agentPeersMatch(2)) << "after PeersRemoved: agent "
                                  << metric(agent, "ts_kube_agent_peers") << ", status "
                                  << a_->statusPeerCount();

  auto* c = node("c");
  c->start();
  upAndRunning(*c);
  EXPECT_TRUE(agentPeersMatch(3)) << "after node C joined: agent "
                                  << metric(agent, "ts_kube_agent_peers") << ", status "
                                  << a_->statusPeerCount();

  const auto b_id = b->status()["Self"]["ID"].get<std::string>();
  control_->admin("POST", "/peers/remove", {{"ids", {b_id}}, {"mode", "full"}});
  EXPECT_TRUE(agentPeersMatch(2)) << "after node B left: agent "
                                  << metric(agent, "ts_kube_agent_peers") << ", status "
                                  << a_->statusPeerCount();
  EXPECT_EQ(secretData(), id);
  EXPECT_EQ(writes(agent), 1);
}

// A real fell-behind close: the agent is stopped (SIGSTOP) while tailscaled floods it, so
// tailscaled's per-watcher queue overflows and it closes the stream. After SIGCONT the agent
// reconnects and resyncs without a write.
TEST_F(RealTailscaled, FellBehindCloseThenReconnectWithoutWrite) {
  a_->start();
  const auto id = identityOf(upAndRunning(*a_));
  control_->admin("POST", "/peers/add", {{"count", 200}});
  ASSERT_TRUE(eventually([&] { return a_->statusPeerCount() == 200; }, 60s));
  auto& agent = startAgent({"--track-peers"});
  expectSynced(agent, id);
  ASSERT_TRUE(eventually([&] { return metric(agent, "ts_kube_agent_peers") == 200; }));
  const double reconnects = metric(agent, "ts_kube_agent_bus_reconnects_total");
  const auto fakes = control_->admin("GET", "/nodes")["nodes"];
  std::vector<std::string> fake_ids;
  for (const auto& n : fakes) {
    if (n.value("fake", false)) fake_ids.push_back(n["id"]);
  }

  ASSERT_EQ(::kill(agent.pid(), SIGSTOP), 0);
  // Each toggle is one MapResponse of 200 PeerChangedPatch entries: one Notify for the agent.
  bool online = true;
  for (int i = 0; i < 400; ++i, online = !online) {
    control_->admin("POST", "/peers/online", {{"ids", fake_ids}, {"online", online}});
  }
  // Wait until tailscaled has taken all of them (the last state is visible in its status).
  const bool last = !online;
  ASSERT_TRUE(eventually(
      [&] {
        const auto st = a_->status();
        if (st.is_null() || !st.contains("Peer")) return false;
        for (const auto& [k, p] : st["Peer"].items()) {
          if (p.value("Online", !last) != last) return false;
        }
        return true;
      },
      60s));
  ASSERT_EQ(::kill(agent.pid(), SIGCONT), 0);

  ASSERT_TRUE(eventually(
      [&] { return metric(agent, "ts_kube_agent_bus_reconnects_total") > reconnects; }, 60s))
      << agent.logs();
  EXPECT_TRUE(agent.logContains("fell behind")) << agent.logs();
  ASSERT_TRUE(eventually([&] { return readyz(agent) == 200; }, 30s));
  EXPECT_TRUE(eventually([&] {
    return metric(agent, "ts_kube_agent_peers") == 200 &&
           metric(agent, "ts_kube_agent_peers_online") == (last ? 200 : 0);
  }));
  EXPECT_EQ(secretData(), id);
  EXPECT_EQ(writes(agent), 1);
}

}  // namespace
}  // namespace tsk::testing::realts
