#include "tests/integration/k8s/emu_fixture.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "k8s/base64.h"
#include "tests/support/tls/test_tls.h"

namespace tsk::k8s::testing {
namespace {

namespace fs = std::filesystem;

std::string makeTempDir(const char* prefix) {
  std::string tmpl = (fs::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) std::abort();
  return tmpl;
}

// The PKI of the whole test binary, from test_tls; its temp dir is removed at exit.
EmuPki makePki(const tsk::testing::TestPki& certs) {
  using tsk::testing::TestPki;
  EmuPki pki;
  pki.dir = certs.dir();
  pki.ca_cert = certs.caCert();
  pki.ca_pem = certs.caPem();
  pki.server_cert = certs.serverCert();
  pki.server_key = certs.serverKey();
  pki.client_cert = certs.clientCert();
  pki.client_key = certs.clientKey();
  pki.client_cert_pem = TestPki::readFile(certs.clientCert());
  pki.client_key_pem = TestPki::readFile(certs.clientKey());
  pki.other_ca_pem = TestPki::readFile(certs.otherCaCert());
  pki.wrong_host_cert = certs.wrongHostCert();
  pki.wrong_host_key = certs.wrongHostKey();
  return pki;
}

}  // namespace

void RecordingObserver::onRequest(std::string_view verb, std::string_view resource, int code,
                                  std::chrono::duration<double> /*seconds*/) {
  std::lock_guard lock(mu_);
  requests_.push_back({std::string(verb), std::string(resource), code});
}

void RecordingObserver::onRetry(std::string_view verb, std::string_view resource, int code) {
  std::lock_guard lock(mu_);
  retries_.push_back({std::string(verb), std::string(resource), code});
}

std::vector<RecordingObserver::Call> RecordingObserver::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

std::vector<RecordingObserver::Call> RecordingObserver::retries() const {
  std::lock_guard lock(mu_);
  return retries_;
}

const EmuPki& testPki() {
  static const tsk::testing::TestPki certs;
  static const EmuPki pki = makePki(certs);
  return pki;
}

kube_emu::RbacPolicy agentPolicy(const std::vector<std::string>& verbs,
                                 const std::vector<std::string>& resource_names) {
  kube_emu::RbacPolicy policy;
  policy.admin_users = {"admin"};
  kube_emu::RbacRule rule;
  rule.users = {kAgentUser};
  rule.verbs = verbs;
  rule.resources = {"secrets", "configmaps"};
  rule.resource_names = resource_names;
  rule.namespaces = {kNamespace};
  policy.rules.push_back(rule);
  return policy;
}

kube_emu::KubeEmuOptions EmuFixture::defaultEmuOptions() const {
  kube_emu::KubeEmuOptions opts;
  opts.cert_file = testPki().server_cert;
  opts.key_file = testPki().server_key;
  opts.client_ca_file = testPki().ca_cert;
  opts.tokens = {{kAgentToken, kAgentUser, {}}, {kAdminToken, "admin", {}}};
  opts.rbac = agentPolicy({"get", "create", "patch", "update"});
  opts.threads = 4;
  return opts;
}

std::unique_ptr<kube_emu::KubeEmu> EmuFixture::startEmu(kube_emu::KubeEmuOptions opts) {
  auto emu = std::make_unique<kube_emu::KubeEmu>(std::move(opts));
  auto started = emu->start();
  EXPECT_TRUE(started.ok()) << started.error().message;
  return emu;
}

void EmuFixture::SetUp() {
  ASSERT_FALSE(testPki().ca_pem.empty());
  temp_dir_ = makeTempDir("tsk-k8s-it");
  token_file_ = temp_dir_ + "/token";
  writeTokenFile(kAgentToken);
  emu_ = startEmu(defaultEmuOptions());
}

void EmuFixture::TearDown() {
  if (emu_) emu_->stop();
  std::error_code ec;
  fs::remove_all(temp_dir_, ec);
}

ClientOptions EmuFixture::fastOptions() {
  ClientOptions opts;
  opts.qps = 0;  // unlimited
  opts.retry_after_cap = std::chrono::milliseconds(5'000);
  opts.connect_timeout = std::chrono::milliseconds(5'000);
  opts.request_timeout = std::chrono::milliseconds(10'000);
  return opts;
}

ClusterConfig EmuFixture::clusterConfig() const {
  ClusterConfig cfg;
  cfg.server = emu_->url();
  cfg.ca_pem = testPki().ca_pem;
  cfg.token_file = token_file_;
  cfg.namespace_name = kNamespace;
  return cfg;
}

std::unique_ptr<ApiClient> EmuFixture::makeClient(ClientOptions opts, ClusterConfig cfg) {
  if (cfg.server.empty()) cfg = clusterConfig();
  auto api =
      std::make_unique<ApiClient>(std::move(cfg), std::move(opts), &observer_, Logger::null());
  EXPECT_TRUE(api->configStatus().ok()) << api->configStatus().error().message;
  return api;
}

void EmuFixture::writeTokenFile(const std::string& token) {
  const std::string tmp = token_file_ + ".tmp";
  std::ofstream(tmp) << token << "\n";
  fs::rename(tmp, token_file_);
}

void EmuFixture::seedSecret(const std::string& name,
                            const std::map<std::string, std::string>& data) {
  nlohmann::json encoded = nlohmann::json::object();
  for (const auto& [k, v] : data) encoded[k] = base64Encode(v);
  nlohmann::json obj = {{"metadata", {{"name", name}}}, {"data", encoded}};
  auto r = emu_->store().create(kube_emu::Resource::kSecrets, kNamespace, obj.dump(), {"seed"});
  ASSERT_EQ(r.code, 201) << r.body.dump();
}

void EmuFixture::seedConfigMap(const std::string& name,
                               const std::map<std::string, std::string>& data) {
  nlohmann::json obj = {{"metadata", {{"name", name}}}, {"data", data}};
  auto r = emu_->store().create(kube_emu::Resource::kConfigMaps, kNamespace, obj.dump(), {"seed"});
  ASSERT_EQ(r.code, 201) << r.body.dump();
}

std::map<std::string, std::string> EmuFixture::storedSecretData(const std::string& name) {
  std::map<std::string, std::string> out;
  auto obj = emu_->store().find(kube_emu::Resource::kSecrets, kNamespace, name);
  if (!obj || !obj->contains("data")) return out;
  for (const auto& [k, v] : (*obj)["data"].items()) {
    out[k] = base64Decode(v.get<std::string>()).value_or("<bad base64>");
  }
  return out;
}

std::map<std::string, std::string> EmuFixture::storedConfigMapData(const std::string& name) {
  std::map<std::string, std::string> out;
  auto obj = emu_->store().find(kube_emu::Resource::kConfigMaps, kNamespace, name);
  if (!obj || !obj->contains("data")) return out;
  for (const auto& [k, v] : (*obj)["data"].items()) out[k] = v.get<std::string>();
  return out;
}

std::vector<kube_emu::RequestRecord> EmuFixture::apiRequests(const std::string& method) const {
  std::vector<kube_emu::RequestRecord> out;
  for (auto& r : emu_->requestLog()) {
    if (method.empty() || r.method == method) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace tsk::k8s::testing
