// The write-path scenarios of agent_e2e_tests against a real control plane (kube-apiserver and
// kube-controller-manager v1.37.2, etcd 3.6: scripts/real-apiserver, started once by the ctest
// fixture `real_apiserver`). The agent binary runs "in cluster": a service-account directory
// with a bound token from the TokenRequest API, the server's CA and the namespace, plus
// KUBERNETES_SERVICE_HOST/PORT. tailscaled is tsbus-sim.
// A real server has no request log, so writes are counted with the agent's own
// ts_kube_agent_api_requests_total and checked with resourceVersion and managedFields.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <filesystem>
#include <fstream>

#include "tests/integration/agent/agent_fixture.h"
#include "tests/integration/real_apiserver/real_apiserver.h"

namespace tsk::agent::e2e {
namespace {

using Data = std::map<std::string, std::string>;

constexpr const char* kRulesWithCreate = R"(
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: ["ts-state"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["create"]
)";

constexpr const char* kRulesGetOnly = R"(
- apiGroups: [""]
  resources: ["secrets"]
  resourceNames: ["ts-state"]
  verbs: ["get"]
)";

const Data kInitialIdentity = {{"device_id", "nSdcr7Qx2CNTRL"},
                               {"device_fqdn", "demo-sidecar-0.tail3f9a2c.ts.net."},
                               {"device_ips", R"(["100.90.12.34","fd7a:115c:a1e0::6a01:c22"])"},
                               {"pod_uid", "pod-uid-1234"}};

class AgentRealApiServer : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = tsk::testing::RealApiServer::load(TSK_REAL_APISERVER_ENV);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    server_ = *loaded;
    kubectl_ = std::make_unique<tsk::testing::Kubectl>(server_.admin_kubeconfig, server_.kubectl);
    ns_ = tsk::testing::uniqueNamespace("agent");
    socket_ = (dir_.path() / "tailscaled.sock").string();
    tsbus_sim::SimOptions o;
    o.socket_path = socket_;
    o.peers = 20;
    sim_ = std::make_unique<tsbus_sim::BusSim>(o);
    ASSERT_TRUE(sim_->start().ok());
  }
  void TearDown() override {
    for (auto& a : agents_) {
      if (a->running()) {
        EXPECT_EQ(a->terminate(), 0);
      }
      if (HasFailure()) std::cerr << "--- agent log ---\n" << a->logs();
    }
    agents_.clear();
    sim_->stop();
  }

  std::string kubectl(const std::vector<std::string>& args,
                      const std::optional<std::string>& stdin_text = std::nullopt) const {
    const auto out = kubectl_->run(args, stdin_text);
    if (out.exit_code != 0) throw std::runtime_error("kubectl failed: " + out.err);
    return out.out;
  }

  // Namespace, ServiceAccount, Role with `rules`, RoleBinding; then the service-account files
  // a Pod would see (a bound token, the CA, the namespace).
  void setUpServiceAccount(const std::string& rules) {
    kubectl({"apply", "-f", "-"}, "apiVersion: v1\nkind: Namespace\nmetadata: {name: " + ns_ +
                                      "}\n---\napiVersion: v1\nkind: ServiceAccount\n"
                                      "metadata: {name: ts-kube-agent, namespace: " +
                                      ns_ +
                                      "}\n---\napiVersion: rbac.authorization.k8s.io/v1\n"
                                      "kind: Role\nmetadata: {name: ts-kube-agent, namespace: " +
                                      ns_ + "}\nrules:" + rules +
                                      "\n---\napiVersion: rbac.authorization.k8s.io/v1\n"
                                      "kind: RoleBinding\nmetadata: {name: ts-kube-agent, "
                                      "namespace: " +
                                      ns_ +
                                      "}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: "
                                      "Role, name: ts-kube-agent}\nsubjects:\n- {kind: "
                                      "ServiceAccount, name: ts-kube-agent, namespace: " +
                                      ns_ + "}\n");
    const auto sa = dir_.path() / "sa";
    std::filesystem::create_directories(sa);
    std::ofstream(sa / "token") << mintToken();
    std::ofstream(sa / "ca.crt") << tsk::testing::readFile(server_.ca_file);
    std::ofstream(sa / "namespace") << ns_;
  }

  // A bound token for the agent's ServiceAccount from the TokenRequest API.
  std::string mintToken() const {
    std::string token = kubectl({"create", "token", "ts-kube-agent", "-n", ns_, "--duration=1h"});
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) {
      token.pop_back();
    }
    return token;
  }

  // The HTTP status the API server answers a GET of the Secret made with `token`, once, with no
  // retry (curl; kubectl would retry a 429 itself).
  std::string statusFor(const std::string& token) const {
    const auto out = tsk::testing::runCommand(
        {"curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "--cacert",
         server_.ca_file, "-H", "Authorization: Bearer " + token,
         server_.url + "/api/v1/namespaces/" + ns_ + "/secrets/ts-state"});
    return out.out + out.err;
  }

  AgentProcess& startAgent(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {
        "--socket=" + socket_, "--service-account-dir=" + (dir_.path() / "sa").string(),
        "--secret=ts-state",   "--admin-addr=127.0.0.1:0",
        "--log-format=json",   "--pod-uid=pod-uid-1234"};
    args.insert(args.end(), extra.begin(), extra.end());
    agents_.push_back(std::make_unique<AgentProcess>(
        TSK_AGENT_BIN, args,
        std::vector<std::string>{"KUBERNETES_SERVICE_HOST=" + server_.host,
                                 "KUBERNETES_SERVICE_PORT=" + server_.port}));
    return *agents_.back();
  }

  AgentProcess& startSynced(const std::vector<std::string>& extra = {}) {
    auto& agent = startAgent(extra);
    EXPECT_GT(agent.adminPort(), 0) << agent.logs();
    EXPECT_TRUE(eventually([&] { return readyz(agent) == 200; })) << agent.logs();
    return agent;
  }

  int readyz(AgentProcess& agent, std::string* body = nullptr) {
    const auto r = httpGet(agent.adminPort(), "/readyz");
    if (body) *body = r.body;
    return r.status;
  }
  double metric(AgentProcess& agent, const std::string& series) {
    return metricValue(httpGet(agent.adminPort(), "/metrics").body, series).value_or(0);
  }
  double writes(AgentProcess& agent) {
    return metric(agent, R"(ts_kube_agent_api_requests_total{code="200",verb="PATCH"})") +
           metric(agent, R"(ts_kube_agent_api_requests_total{code="201",verb="POST"})");
  }

  nlohmann::json secret() const {
    const auto out = kubectl_->run(
        {"get", "secret", "ts-state", "-n", ns_, "-o", "json", "--show-managed-fields"});
    if (out.exit_code != 0) return nullptr;
    return nlohmann::json::parse(out.out);
  }
  Data secretData() const {
    Data out;
    const auto s = secret();
    if (s.is_null() || !s.contains("data")) return out;
    for (const auto& [k, v] : s["data"].items()) {
      out[k] = tsk::testing::base64Decode(v.get<std::string>());
    }
    return out;
  }
  std::string resourceVersion() const {
    const auto s = secret();
    return s.is_null() ? "" : s["metadata"]["resourceVersion"].get<std::string>();
  }

  tsk::testing::RealApiServer server_;
  std::unique_ptr<tsk::testing::Kubectl> kubectl_;
  tsk::testing::TempDir dir_;
  std::string ns_;
  std::string socket_;
  std::unique_ptr<tsbus_sim::BusSim> sim_;
  std::vector<std::unique_ptr<AgentProcess>> agents_;
};

TEST_F(AgentRealApiServer, InitialIdentityIsCreatedWithExactlyTheUpstreamKeys) {
  setUpServiceAccount(kRulesWithCreate);
  auto& agent = startSynced();
  EXPECT_EQ(secretData(), kInitialIdentity);
  const auto object = secret();
  bool ours = false;
  for (const auto& m : object["metadata"].value("managedFields", nlohmann::json::array())) {
    ours |= m.value("manager", "") == "ts-kube-agent";
  }
  EXPECT_TRUE(ours) << object.dump();
  EXPECT_EQ(writes(agent), 1);
}

TEST_F(AgentRealApiServer, NoOpNotificationsWriteNothingAndAChangeWritesOnce) {
  setUpServiceAccount(kRulesWithCreate);
  auto& agent = startSynced();
  const std::string rv = resourceVersion();
  const double notifies_before =
      metric(agent, R"(ts_kube_agent_notifies_total{kind="self_change"})");
  sim_->selfChange({}, 100);
  ASSERT_TRUE(eventually([&] {
    return metric(agent, R"(ts_kube_agent_notifies_total{kind="self_change"})") >=
           notifies_before + 100;
  }));
  EXPECT_EQ(writes(agent), 1);
  EXPECT_EQ(resourceVersion(), rv);

  tsbus_sim::IdentityUpdate update;
  update.addresses = std::vector<std::string>{"100.90.12.35", "fd7a:115c:a1e0::6a01:c23"};
  sim_->selfChange(update);
  ASSERT_TRUE(eventually([&] {
    return secretData()["device_ips"] == R"(["100.90.12.35","fd7a:115c:a1e0::6a01:c23"])";
  })) << agent.logs();
  EXPECT_EQ(writes(agent), 2);
  EXPECT_EQ(secretData()["device_id"], "nSdcr7Qx2CNTRL");
}

TEST_F(AgentRealApiServer, AgentRestartWithUnchangedIdentityMakesZeroWrites) {
  setUpServiceAccount(kRulesWithCreate);
  auto& first = startSynced();
  ASSERT_EQ(first.terminate(), 0);
  const std::string rv = resourceVersion();
  auto& second = startSynced();
  EXPECT_GE(metric(second, R"(ts_kube_agent_publishes_total{target="secret",result="unchanged"})"),
            1);
  EXPECT_EQ(writes(second), 0);
  EXPECT_EQ(resourceVersion(), rv);
}

TEST_F(AgentRealApiServer, RbacDeniesPatchReadyzSaysWhyAndTheLogNamesTheRule) {
  setUpServiceAccount(kRulesGetOnly);
  kubectl({"create", "secret", "generic", "ts-state", "-n", ns_, "--from-literal=device_id=stale"});
  auto& agent = startAgent();
  std::string reason;
  ASSERT_TRUE(eventually([&] {
    return readyz(agent, &reason) == 503 && reason.find("forbidden") != std::string::npos;
  })) << reason
      << agent.logs();
  EXPECT_NE(reason.find("patch"), std::string::npos) << reason;
  EXPECT_TRUE(agent.waitForLog(R"(verbs: [\"patch\"])")) << agent.logs();
  EXPECT_EQ(secretData()["device_id"], "stale");
}

// Drift against a real API server: the Secret is deleted, then one of the agent's keys is
// overwritten by another client under its own field manager; each time the agent's drift check
// restores exactly what differs, and /readyz and identity_in_sync follow. Taking back a key
// another field manager now owns needs --foreign-keys=overwrite (ForeignOwnedKey... below shows
// the default).
TEST_F(AgentRealApiServer, DeletedSecretAndOverwrittenKeysAreRepairedByTheDriftCheck) {
  setUpServiceAccount(kRulesWithCreate);
  auto& agent = startSynced({"--drift-check-interval=1s", "--foreign-keys=overwrite"});
  kubectl({"delete", "secret", "ts-state", "-n", ns_});
  ASSERT_TRUE(eventually([&] { return secretData() == kInitialIdentity; })) << agent.logs();
  ASSERT_TRUE(eventually([&] {
    return metric(agent, R"(ts_kube_agent_drift_repairs_total{target="secret"})") == 1;
  })) << agent.logs();
  EXPECT_TRUE(eventually([&] { return readyz(agent) == 200; }));

  const double patches_before =
      metric(agent, R"(ts_kube_agent_api_requests_total{code="200",verb="PATCH"})");
  kubectl({"patch", "secret", "ts-state", "-n", ns_, "--field-manager=someone-else", "-p",
           R"({"stringData":{"device_fqdn":"evil.example."}})"});
  // No read of the overwritten value here: with a 1 s interval the repair can come before it.
  ASSERT_TRUE(eventually([&] { return secretData() == kInitialIdentity; })) << agent.logs();
  ASSERT_TRUE(eventually([&] {
    return metric(agent, R"(ts_kube_agent_drift_repairs_total{target="secret"})") == 2;
  })) << agent.logs();
  EXPECT_EQ(metric(agent, R"(ts_kube_agent_api_requests_total{code="200",verb="PATCH"})"),
            patches_before + 1);
  EXPECT_EQ(metric(agent, R"(ts_kube_agent_identity_in_sync{target="secret"})"), 1);
  EXPECT_TRUE(agent.logContains(R"("keys":"device_fqdn")")) << agent.logs();
}

// One writer per key: another client (as upstream containerboot does in its own state Secret)
// wrote device_fqdn under its own field manager before the agent started. By default the agent
// writes its other keys, leaves that one to its owner, says so in the log and in
// ts_kube_agent_foreign_owned_keys, stays ready, and its drift checks never fight the owner.
TEST_F(AgentRealApiServer, ForeignOwnedKeyIsLeftToItsOwnerAndDriftChecksNeverWriteIt) {
  setUpServiceAccount(kRulesWithCreate);
  kubectl({"create", "secret", "generic", "ts-state", "-n", ns_, "--field-manager=containerboot",
           "--from-literal=device_fqdn=routed.example."});
  auto& agent = startSynced({"--drift-check-interval=1s"});
  ASSERT_TRUE(eventually([&] { return secretData()["device_id"] == "nSdcr7Qx2CNTRL"; }))
      << agent.logs();
  EXPECT_EQ(secretData()["device_fqdn"], "routed.example.");
  EXPECT_EQ(metric(agent, R"(ts_kube_agent_foreign_owned_keys{target="secret",key="device_fqdn"})"),
            1)
      << httpGet(agent.adminPort(), "/metrics").body;
  EXPECT_TRUE(agent.waitForLog("another field manager owns this key")) << agent.logs();
  EXPECT_TRUE(agent.logContains(R"("field_manager":"containerboot")")) << agent.logs();

  const double before = writes(agent);
  const double checks = metric(agent, R"(ts_kube_agent_drift_checks_total{target="secret"})");
  ASSERT_TRUE(eventually(
      [&] {
        return metric(agent, R"(ts_kube_agent_drift_checks_total{target="secret"})") >= checks + 3;
      },
      std::chrono::seconds(30)))
      << agent.logs();
  EXPECT_EQ(writes(agent), before);
  EXPECT_EQ(metric(agent, R"(ts_kube_agent_drift_repairs_total{target="secret"})"), 0);
  EXPECT_EQ(secretData()["device_fqdn"], "routed.example.");
  EXPECT_EQ(readyz(agent), 200);
}

// --foreign-keys=overwrite: the agent takes the key; the API server then names the agent as
// its field manager.
TEST_F(AgentRealApiServer, OverwritePolicyTakesTheForeignOwnedKey) {
  setUpServiceAccount(kRulesWithCreate);
  kubectl({"create", "secret", "generic", "ts-state", "-n", ns_, "--field-manager=containerboot",
           "--from-literal=device_fqdn=routed.example."});
  auto& agent = startSynced({"--foreign-keys=overwrite"});
  ASSERT_TRUE(eventually([&] { return secretData() == kInitialIdentity; })) << agent.logs();
  EXPECT_TRUE(agent.logContains("overwriting it")) << agent.logs();
  bool agent_owns_fqdn = false;
  const auto object = secret();
  for (const auto& entry : object["metadata"]["managedFields"]) {
    const auto fields = entry.value("fieldsV1", nlohmann::json::object());
    if (entry.value("manager", "") == "ts-kube-agent" && fields.contains("f:data") &&
        fields["f:data"].contains("f:device_fqdn")) {
      agent_owns_fqdn = true;
    }
  }
  EXPECT_TRUE(agent_owns_fqdn) << object["metadata"]["managedFields"].dump();
}

// The kubelet rotates the projected token by swapping the file; after the old token is revoked
// (the ServiceAccount recreated: a new UID), the agent's next write gets 401, re-reads the file
// and succeeds with the new token, without a restart.
TEST_F(AgentRealApiServer, RevokedTokenAndRotatedFileKeepTheAgentWriting) {
  setUpServiceAccount(kRulesWithCreate);
  const std::string first_token = tsk::testing::readFile(dir_.path() / "sa" / "token");
  auto& agent = startSynced();
  kubectl({"delete", "serviceaccount", "ts-kube-agent", "-n", ns_});
  kubectl({"create", "serviceaccount", "ts-kube-agent", "-n", ns_});
  ASSERT_TRUE(eventually([&] { return statusFor(first_token) == "401"; }, std::chrono::seconds(60)))
      << "the revoked token was still accepted after 60 s: " << statusFor(first_token);
  tsk::testing::writeFileAtomically(dir_.path() / "sa" / "token", mintToken());

  tsbus_sim::IdentityUpdate update;
  update.addresses = std::vector<std::string>{"100.90.12.36", "fd7a:115c:a1e0::6a01:c24"};
  sim_->selfChange(update);
  ASSERT_TRUE(eventually([&] {
    return secretData()["device_ips"] == R"(["100.90.12.36","fd7a:115c:a1e0::6a01:c24"])";
  })) << agent.logs();
  EXPECT_GE(metric(agent, R"(ts_kube_agent_api_requests_total{code="401",verb="PATCH"})"), 1)
      << "the write after the revocation was not first answered 401";
  EXPECT_TRUE(eventually([&] { return readyz(agent) == 200; })) << agent.logs();
}

}  // namespace
}  // namespace tsk::agent::e2e
