// ApiClient's handling of configurations it cannot use: it never sends anything, and every
// request returns the same clear error.
#include <gtest/gtest.h>

#include "k8s/client.h"
#include "tests/unit/k8s/test_pki.h"

namespace tsk::k8s {
namespace {

class CountingObserver final : public RequestObserver {
 public:
  void onRequest(std::string_view, std::string_view, int, std::chrono::duration<double>) override {
    ++requests;
  }
  int requests = 0;
};

ClusterConfig validConfig() {
  ClusterConfig cfg;
  cfg.server = "https://127.0.0.1:1";
  cfg.ca_pem = testPki().ca_pem;
  cfg.token = "t";
  return cfg;
}

std::string configError(const ClusterConfig& cfg) {
  CountingObserver observer;
  ApiClient api(cfg, {}, &observer, Logger::null());
  if (api.configStatus().ok()) return "(accepted)";
  auto r = api.request("GET", "/api/v1/namespaces/ns/secrets/s", "secrets");
  EXPECT_FALSE(r.ok());
  if (!r.ok()) {
    EXPECT_EQ(r.error().message, api.configStatus().error().message);
    EXPECT_EQ(r.error().kind, ErrorKind::Config);  // final: the publisher does not wait for it
  }
  EXPECT_EQ(observer.requests, 0);
  return api.configStatus().error().message;
}

TEST(ApiClientConfig, AcceptsAValidConfiguration) {
  EXPECT_EQ(configError(validConfig()), "(accepted)");
  ClusterConfig with_client_cert = validConfig();
  with_client_cert.client_cert_pem = testPki().client_cert_pem;
  with_client_cert.client_key_pem = testPki().client_key_pem;
  EXPECT_EQ(configError(with_client_cert), "(accepted)");
}

TEST(ApiClientConfig, RejectsAServerUrlThatIsNotHttps) {
  ClusterConfig cfg = validConfig();
  cfg.server = "http://127.0.0.1:8080";
  EXPECT_EQ(configError(cfg),
            "API server URL \"http://127.0.0.1:8080\" is not https://; expected "
            "https://HOST[:PORT][/PATH] (IPv6 hosts in brackets)");
}

TEST(ApiClientConfig, RequiresACaUnlessInsecureIsExplicit) {
  ClusterConfig cfg = validConfig();
  cfg.ca_pem.clear();
  EXPECT_EQ(configError(cfg),
            "no CA certificate for https://127.0.0.1:1: the agent verifies the API server with the "
            "cluster CA only (ca.crt, or certificate-authority in the kubeconfig)");
  cfg.insecure_skip_verify = true;
  EXPECT_EQ(configError(cfg), "(accepted)");
}

TEST(ApiClientConfig, RejectsAClientCertificateWithoutItsKey) {
  ClusterConfig cfg = validConfig();
  cfg.client_cert_pem = testPki().client_cert_pem;
  EXPECT_EQ(configError(cfg),
            "a client certificate needs both the certificate and its key; one is missing");
  cfg.client_key_pem = testPki().other_key_pem;
  EXPECT_EQ(configError(cfg), "the client key does not belong to the client certificate");
}

TEST(ApiClientConfig, RejectsAnInvalidTlsServerName) {
  ClusterConfig cfg = validConfig();
  cfg.tls_server_name = std::string("bad\0name", 8);
  EXPECT_NE(configError(cfg).find("not a valid host name"), std::string::npos);
}

TEST(ApiClientConfig, ExposesConfigAndOptions) {
  ClientOptions opts;
  opts.field_manager = "fm";
  ApiClient api(validConfig(), opts, nullptr, Logger::null());
  EXPECT_EQ(api.config().server, "https://127.0.0.1:1");
  EXPECT_EQ(api.options().field_manager, "fm");
}

}  // namespace
}  // namespace tsk::k8s
