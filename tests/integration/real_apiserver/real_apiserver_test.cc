// The k8s client against a real kube-apiserver v1.20.2 + etcd (scripts/real-apiserver): the
// truth about semantics that kube-emu can only imitate. Each test works in a namespace of its own
// (namespaces are never deleted here: no namespace controller runs) with a ServiceAccount, a Role
// and a RoleBinding created by the real kubectl, and a real bound token from the TokenRequest API.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/log.h"
#include "k8s/client.h"
#include "tests/integration/real_apiserver/real_apiserver.h"

#ifndef TSK_REAL_APISERVER_ENV
#error "TSK_REAL_APISERVER_ENV (path of start.sh's env file) must be defined by the build"
#endif

namespace tsk {
namespace {

using testing::base64Decode;
using testing::CommandOutput;
using testing::Kubectl;
using testing::RealApiServer;
using testing::TempDir;

constexpr const char* kServiceAccount = "ts-kube-agent";

// get/update/patch on two names only, and create (which RBAC cannot restrict by name).
constexpr const char* kAgentRules = R"(
- apiGroups: [""]
  resources: ["secrets", "configmaps"]
  resourceNames: ["ts-state", "ts-config"]
  verbs: ["get", "update", "patch"]
- apiGroups: [""]
  resources: ["secrets", "configmaps"]
  verbs: ["create"]
)";

constexpr const char* kRulesWithoutCreate = R"(
- apiGroups: [""]
  resources: ["secrets", "configmaps"]
  resourceNames: ["ts-state", "ts-config"]
  verbs: ["get", "update", "patch"]
)";

struct ObservedRequest {
  std::string verb;
  std::string resource;
  int code;
};

class RecordingObserver : public k8s::RequestObserver {
 public:
  void onRequest(std::string_view verb, std::string_view resource, int code,
                 std::chrono::duration<double> /*seconds*/) override {
    std::lock_guard lock(mu_);
    requests_.push_back({std::string(verb), std::string(resource), code});
  }
  std::vector<ObservedRequest> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  bool saw(std::string_view verb, int code) const {
    const auto all = requests();
    return std::any_of(all.begin(), all.end(),
                       [&](const ObservedRequest& r) { return r.verb == verb && r.code == code; });
  }
  bool sawCode(int code) const {
    const auto all = requests();
    return std::any_of(all.begin(), all.end(),
                       [&](const ObservedRequest& r) { return r.code == code; });
  }

 private:
  mutable std::mutex mu_;
  std::vector<ObservedRequest> requests_;
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Every word must appear in a user-visible error message.
void expectMentions(const std::string& message, const std::vector<std::string>& words) {
  for (const auto& word : words) {
    EXPECT_NE(message.find(word), std::string::npos) << "missing '" << word << "' in: " << message;
  }
}

std::string describeRun(const std::vector<std::string>& args, const CommandOutput& out) {
  std::string cmd = "kubectl";
  for (const auto& a : args) cmd += " " + a;
  return cmd + " exited " + std::to_string(out.exit_code) + ": " + out.err + out.out;
}

class RealApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = RealApiServer::load(TSK_REAL_APISERVER_ENV);
    ASSERT_TRUE(loaded.ok()) << loaded.error().message;
    server_ = *loaded;
    kubectl_ = std::make_unique<Kubectl>(server_.admin_kubeconfig, server_.kubectl);
    ns_ = testing::uniqueNamespace(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }

  // Runs kubectl as cluster admin; throws (failing the test with kubectl's output) on error.
  std::string kubectl(const std::vector<std::string>& args,
                      const std::optional<std::string>& stdin_text = std::nullopt) const {
    const auto out = kubectl_->run(args, stdin_text);
    if (out.exit_code != 0) throw std::runtime_error(describeRun(args, out));
    return out.out;
  }

  // The namespace, ServiceAccount ts-kube-agent, a Role with `rules` and its RoleBinding.
  void createServiceAccountWithRole(const std::string& rules) const {
    kubectl({"apply", "-f", "-"}, R"(apiVersion: v1
kind: Namespace
metadata: {name: )" + ns_ + R"(}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: ts-kube-agent, namespace: )" +
                                      ns_ + R"(}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: ts-kube-agent, namespace: )" +
                                      ns_ + R"(}
rules:)" + rules + R"(
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ts-kube-agent, namespace: )" +
                                      ns_ + R"(}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: ts-kube-agent}
subjects:
- {kind: ServiceAccount, name: ts-kube-agent, namespace: )" +
                                      ns_ + R"(}
)");
  }

  // A bound service-account token from the TokenRequest API.
  std::string mintToken() const {
    std::string token = kubectl({"create", "token", kServiceAccount, "-n", ns_, "--duration=1h"});
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) {
      token.pop_back();
    }
    if (token.empty()) throw std::runtime_error("kubectl create token printed no token");
    return token;
  }

  // What the kubelet mounts into a Pod, plus the service env vars; then loadInCluster.
  Result<k8s::ClusterConfig> inClusterConfig(const std::string& token) const {
    writeServiceAccountFile("token", token);
    writeServiceAccountFile("ca.crt", testing::readFile(server_.ca_file));
    writeServiceAccountFile("namespace", ns_);
    ::setenv("KUBERNETES_SERVICE_HOST", server_.host.c_str(), 1);
    ::setenv("KUBERNETES_SERVICE_PORT", server_.port.c_str(), 1);
    return k8s::loadInCluster(sa_dir_.path().string());
  }

  void writeServiceAccountFile(const std::string& name, const std::string& content) const {
    testing::writeFileAtomically(sa_dir_.path() / name, content);
  }

  std::unique_ptr<k8s::ApiClient> inClusterClient(const std::string& token) {
    auto cfg = inClusterConfig(token);
    if (!cfg.ok()) throw std::runtime_error("loadInCluster failed: " + cfg.error().message);
    return std::make_unique<k8s::ApiClient>(*cfg, clientOptions(), &observer_, Logger::null());
  }

  // Production's options (one attempt per request; retries are the publisher's).
  static k8s::ClientOptions clientOptions() { return k8s::ClientOptions{}; }

  nlohmann::json getObject(const std::string& kind, const std::string& name) const {
    return nlohmann::json::parse(
        kubectl({"get", kind, name, "-n", ns_, "-o", "json", "--show-managed-fields"}));
  }

  static bool managedBy(const nlohmann::json& object, const std::string& manager) {
    for (const auto& entry : object["metadata"].value("managedFields", nlohmann::json::array())) {
      if (entry.value("manager", "") == manager) return true;
    }
    return false;
  }

  RealApiServer server_;
  std::unique_ptr<Kubectl> kubectl_;
  std::string ns_;
  TempDir sa_dir_;
  RecordingObserver observer_;
};

TEST_F(RealApiServerTest, InClusterConfigReadsServiceAccountDirAndServiceEnv) {
  createServiceAccountWithRole(kAgentRules);
  const auto cfg = inClusterConfig(mintToken());
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  EXPECT_EQ(cfg->namespace_name, ns_);
  EXPECT_EQ(cfg->server, server_.url);
  EXPECT_EQ(cfg->ca_pem, testing::readFile(server_.ca_file));
  EXPECT_FALSE(cfg->insecure_skip_verify);
}

TEST_F(RealApiServerTest, SecretStoreWithBoundTokenCreatesGetsAndPatches) {
  createServiceAccountWithRole(kAgentRules);
  auto api = inClusterClient(mintToken());
  auto store = k8s::makeSecretStore(*api, ns_, "ts-state");

  const auto absent = store->get();
  ASSERT_TRUE(absent.ok()) << absent.error().message;
  EXPECT_FALSE(absent->has_value());

  ASSERT_TRUE(store->create({{"device_id", "nAAA"}}).ok());
  const std::string binary("\x00\x01\x7f\x80\xfe\xff", 6);
  const auto patched = store->patch({{"device_id", "nBBB"}, {"blob", binary}});
  ASSERT_TRUE(patched.ok()) << patched.error().message;

  const auto got = store->get();
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_TRUE(got->has_value());
  EXPECT_FALSE((*got)->resource_version.empty());
  EXPECT_EQ((*got)->data.at("device_id"), "nBBB");
  EXPECT_EQ((*got)->data.at("blob"), binary);

  const auto object = getObject("secret", "ts-state");
  EXPECT_EQ(base64Decode(object["data"]["blob"].get<std::string>()), binary);
  EXPECT_TRUE(managedBy(object, "ts-kube-agent")) << object["metadata"].dump();
  EXPECT_TRUE(observer_.saw("GET", 404));
  EXPECT_TRUE(observer_.saw("POST", 201));
  EXPECT_TRUE(observer_.saw("PATCH", 200));
}

TEST_F(RealApiServerTest, ConfigMapStoreCreatesAndDeletesKeys) {
  createServiceAccountWithRole(kAgentRules);
  auto api = inClusterClient(mintToken());
  auto store = k8s::makeConfigMapStore(*api, ns_, "ts-config");

  const auto created = store->create({{"ipv4", "100.64.0.1"}, {"stale", "x"}});
  ASSERT_TRUE(created.ok()) << created.error().message;
  const auto deleted = store->patch({{"stale", std::nullopt}, {"ipv6", "fd7a::1"}});
  ASSERT_TRUE(deleted.ok()) << deleted.error().message;

  const auto got = store->get();
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_TRUE(got->has_value());
  const std::map<std::string, std::string> expected = {{"ipv4", "100.64.0.1"}, {"ipv6", "fd7a::1"}};
  EXPECT_EQ((*got)->data, expected);
  const auto object = getObject("configmap", "ts-config");
  EXPECT_FALSE(object["data"].contains("stale"));
  EXPECT_EQ(object["data"]["ipv6"], "fd7a::1");
}

TEST_F(RealApiServerTest, SecretPatchPreservesKeysAndLabelsWrittenByOthers) {
  createServiceAccountWithRole(kAgentRules);
  kubectl({"create", "secret", "generic", "ts-state", "-n", ns_,
           "--from-literal=tailscaled-state=opaque-blob", "--from-literal=_machinekey=mk"});
  kubectl({"label", "secret", "ts-state", "-n", ns_, "owner=tailscaled"});
  auto api = inClusterClient(mintToken());
  auto store = k8s::makeSecretStore(*api, ns_, "ts-state");

  ASSERT_TRUE(store->patch({{"device_id", "n1"}, {"device_fqdn", "a.ts.net"}}).ok());
  kubectl({"patch", "secret", "ts-state", "-n", ns_, "--type=merge", "-p",
           R"({"stringData":{"written-later":"by-kubectl"}})"});
  const auto second = store->patch({{"device_id", "n2"}});
  ASSERT_TRUE(second.ok()) << second.error().message;

  const auto object = getObject("secret", "ts-state");
  const auto& data = object["data"];
  EXPECT_EQ(base64Decode(data["tailscaled-state"].get<std::string>()), "opaque-blob");
  EXPECT_EQ(base64Decode(data["_machinekey"].get<std::string>()), "mk");
  EXPECT_EQ(base64Decode(data["written-later"].get<std::string>()), "by-kubectl");
  EXPECT_EQ(base64Decode(data["device_id"].get<std::string>()), "n2");
  EXPECT_EQ(base64Decode(data["device_fqdn"].get<std::string>()), "a.ts.net");
  EXPECT_EQ(object["metadata"]["labels"]["owner"], "tailscaled");
  EXPECT_TRUE(managedBy(object, "ts-kube-agent")) << object["metadata"].dump();
}

TEST_F(RealApiServerTest, ConfigMapPatchPreservesKeysWrittenByOthers) {
  createServiceAccountWithRole(kAgentRules);
  kubectl({"create", "configmap", "ts-config", "-n", ns_, "--from-literal=operator-key=keep"});
  auto api = inClusterClient(mintToken());
  auto store = k8s::makeConfigMapStore(*api, ns_, "ts-config");

  const auto patched = store->patch({{"hostname", "node-a"}});
  ASSERT_TRUE(patched.ok()) << patched.error().message;

  const auto object = getObject("configmap", "ts-config");
  EXPECT_EQ(object["data"]["operator-key"], "keep");
  EXPECT_EQ(object["data"]["hostname"], "node-a");
}

TEST_F(RealApiServerTest, ForbiddenNameGivesErrorNamingVerbResourceNamespaceAndName) {
  createServiceAccountWithRole(kAgentRules);
  auto api = inClusterClient(mintToken());

  auto secret = k8s::makeSecretStore(*api, ns_, "someone-elses");
  const auto get = secret->get();
  ASSERT_FALSE(get.ok());
  EXPECT_EQ(get.error().http_status, 403);
  RecordProperty("error_on_forbidden_get", get.error().message);
  expectMentions(get.error().message, {"get", "secrets", ns_, "someone-elses"});

  auto config = k8s::makeConfigMapStore(*api, ns_, "not-ours");
  const auto patch = config->patch({{"k", "v"}});
  ASSERT_FALSE(patch.ok());
  EXPECT_EQ(patch.error().http_status, 403);
  RecordProperty("error_on_forbidden_patch", patch.error().message);
  expectMentions(patch.error().message, {"patch", "configmaps", ns_, "not-ours"});
  EXPECT_TRUE(observer_.saw("GET", 403));
  EXPECT_TRUE(observer_.saw("PATCH", 403));
}

TEST_F(RealApiServerTest, MissingObjectWithoutCreateRightSaysWhatIsMissing) {
  createServiceAccountWithRole(kRulesWithoutCreate);
  auto api = inClusterClient(mintToken());
  auto store = k8s::makeSecretStore(*api, ns_, "ts-state");

  const auto no_create = store->patch({{"device_id", "n1"}});
  ASSERT_FALSE(no_create.ok());
  RecordProperty("error_on_missing_object", no_create.error().message);
  expectMentions(no_create.error().message, {"ts-state", ns_, "create"});

  const auto denied_create = store->create({{"device_id", "n1"}});
  ASSERT_FALSE(denied_create.ok());
  EXPECT_EQ(denied_create.error().http_status, 403);
  RecordProperty("error_on_forbidden_create", denied_create.error().message);
  expectMentions(denied_create.error().message, {"create", "secrets", ns_});
  EXPECT_TRUE(observer_.saw("POST", 403));
}

TEST_F(RealApiServerTest, RecoversWhenInvalidTokenFileIsReplacedByFreshlyMintedToken) {
  createServiceAccountWithRole(kAgentRules);
  kubectl({"create", "secret", "generic", "ts-state", "-n", ns_, "--from-literal=k=v"});
  auto api = inClusterClient("not-a-valid-token");
  auto store = k8s::makeSecretStore(*api, ns_, "ts-state");

  const auto rejected = store->get();
  ASSERT_FALSE(rejected.ok());
  EXPECT_EQ(rejected.error().http_status, 401) << rejected.error().message;
  RecordProperty("error_on_invalid_token", rejected.error().message);

  writeServiceAccountFile("token", mintToken());
  const auto recovered = store->get();
  ASSERT_TRUE(recovered.ok()) << recovered.error().message;
  ASSERT_TRUE(recovered->has_value());
  EXPECT_EQ((*recovered)->data.at("k"), "v");
}

TEST_F(RealApiServerTest, RecoversWhenTokenIsRevokedAndTokenFileRotatedWhileRunning) {
  createServiceAccountWithRole(kAgentRules);
  const std::string first_token = mintToken();
  auto api = inClusterClient(first_token);
  auto store = k8s::makeSecretStore(*api, ns_, "ts-state");
  ASSERT_TRUE(store->create({{"device_id", "n1"}}).ok());

  // Recreating the ServiceAccount gives it a new UID: tokens bound to the old one stop working
  // once the API server's short authentication cache lets go of them.
  kubectl({"delete", "serviceaccount", kServiceAccount, "-n", ns_});
  kubectl({"create", "serviceaccount", kServiceAccount, "-n", ns_});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  for (;;) {
    const std::vector<std::string> probe = {
        "--token=" + first_token, "get", "secret", "ts-state", "-n", ns_};
    const auto out = kubectl_->run(probe);
    if (out.exit_code != 0 && out.err.find("Unauthorized") != std::string::npos) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << "the revoked token was still accepted after 60 s: " << describeRun(probe, out);
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }

  writeServiceAccountFile("token", mintToken());
  const auto patched = store->patch({{"device_id", "n2"}});
  ASSERT_TRUE(patched.ok()) << patched.error().message;
  EXPECT_TRUE(observer_.sawCode(401));
  EXPECT_EQ(base64Decode(getObject("secret", "ts-state")["data"]["device_id"].get<std::string>()),
            "n2");
}

TEST_F(RealApiServerTest, KubeconfigWithTokenOrClientCertificateReachesServer) {
  kubectl({"create", "namespace", ns_});
  for (const auto& path : {server_.admin_kubeconfig, server_.admin_cert_kubeconfig}) {
    SCOPED_TRACE(path);
    const auto cfg = k8s::loadKubeconfig(path);
    ASSERT_TRUE(cfg.ok()) << cfg.error().message;
    EXPECT_EQ(cfg->server, server_.url);
    EXPECT_EQ(cfg->namespace_name, "default");
    k8s::ApiClient api(*cfg, clientOptions(), &observer_, Logger::null());
    auto store = k8s::makeConfigMapStore(api, ns_, "from-kubeconfig");
    // The first kubeconfig creates the ConfigMap, the second patches it (the store does one
    // request per call; deciding to create is its caller's).
    const auto existing = store->get();
    ASSERT_TRUE(existing.ok()) << existing.error().message;
    const auto written = existing->has_value() ? store->patch({{"source", path}})
                                               : store->create({{"source", path}});
    ASSERT_TRUE(written.ok()) << written.error().message;
    const auto got = store->get();
    ASSERT_TRUE(got.ok()) << got.error().message;
    ASSERT_TRUE(got->has_value());
    EXPECT_EQ((*got)->data.at("source"), path);
  }
}

TEST_F(RealApiServerTest, VerifiesServerCertificateAgainstCaAndHostName) {
  kubectl({"create", "namespace", ns_});
  auto cfg = k8s::loadKubeconfig(server_.admin_kubeconfig);
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;

  const auto getWith = [&](const k8s::ClusterConfig& c) {
    k8s::ApiClient api(c, clientOptions(), &observer_, Logger::null());
    return k8s::makeSecretStore(api, ns_, "absent")->get();
  };

  auto by_service_name = *cfg;
  by_service_name.tls_server_name = "kubernetes.default.svc";
  const auto ok = getWith(by_service_name);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_FALSE(ok->has_value());

  auto wrong_name = *cfg;
  wrong_name.tls_server_name = "not-in-the-certificate.example";
  const auto name_rejected = getWith(wrong_name);
  ASSERT_FALSE(name_rejected.ok());
  EXPECT_EQ(name_rejected.error().http_status, 0) << name_rejected.error().message;

  TempDir other;
  const auto ca = testing::runCommand({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                                       "-keyout", (other.path() / "ca.key").string(), "-out",
                                       (other.path() / "ca.crt").string(), "-days", "1", "-subj",
                                       "/CN=unrelated-ca"});
  ASSERT_EQ(ca.exit_code, 0) << ca.err;
  auto wrong_ca = *cfg;
  wrong_ca.ca_pem = testing::readFile(other.path() / "ca.crt");
  const auto ca_rejected = getWith(wrong_ca);
  ASSERT_FALSE(ca_rejected.ok());
  EXPECT_EQ(ca_rejected.error().http_status, 0) << ca_rejected.error().message;
  RecordProperty("error_on_unknown_ca", ca_rejected.error().message);
  RecordProperty("error_on_wrong_host_name", name_rejected.error().message);
  const auto text = lower(ca_rejected.error().message);
  EXPECT_TRUE(text.find("certificate") != std::string::npos ||
              text.find("tls") != std::string::npos)
      << ca_rejected.error().message;
}

}  // namespace
}  // namespace tsk
