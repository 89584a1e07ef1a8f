// Transport security against kube-emu: only the configured CA is trusted, the host name is
// checked (also through tls-server-name), client certificates authenticate, and TLS failures are
// reported clearly without retries.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "k8s/base64.h"
#include "tests/integration/k8s/emu_fixture.h"

namespace tsk::k8s::testing {
namespace {

namespace fs = std::filesystem;

class TlsTest : public EmuFixture {};

TEST_F(TlsTest, CaThatDidNotSignTheServerIsRejectedAndNotRetried) {
  ClusterConfig cfg = clusterConfig();
  cfg.ca_pem = testPki().other_ca_pem;
  auto api = makeClient(fastOptions(), cfg);
  auto got = makeSecretStore(*api, kNamespace, "s")->get();
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("TLS verification of " + emu().url() +
                                     " failed: certificate signed by unknown authority"),
            std::string::npos)
      << got.error().message;
  EXPECT_NE(got.error().message.find("check that the CA"), std::string::npos);
  EXPECT_EQ(observer_.requests().size(), 1u);
  EXPECT_TRUE(observer_.retries().empty());
  EXPECT_TRUE(apiRequests().empty());  // the request never reached the server
}

TEST_F(TlsTest, CertificateForAnotherHostIsRejected) {
  auto opts = defaultEmuOptions();
  opts.cert_file = testPki().wrong_host_cert;
  opts.key_file = testPki().wrong_host_key;
  auto wrong = startEmu(opts);
  ClusterConfig cfg = clusterConfig();
  cfg.server = wrong->url();
  auto api = makeClient(fastOptions(), cfg);
  auto got = makeSecretStore(*api, kNamespace, "s")->get();
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("TLS verification of " + wrong->url() +
                                     " failed: host name mismatch: the server certificate is not "
                                     "valid for \"127.0.0.1\""),
            std::string::npos)
      << got.error().message;
  EXPECT_EQ(observer_.requests().size(), 1u);
  EXPECT_TRUE(wrong->requestLog().empty());
}

TEST_F(TlsTest, TlsServerNameSelectsTheNameToVerify) {
  auto opts = defaultEmuOptions();
  opts.cert_file = testPki().wrong_host_cert;
  opts.key_file = testPki().wrong_host_key;
  auto wrong = startEmu(opts);
  ClusterConfig cfg = clusterConfig();
  cfg.server = wrong->url();
  cfg.tls_server_name = "wrong.example";  // connect to 127.0.0.1, expect this name
  auto api = makeClient(fastOptions(), cfg);
  auto got = makeSecretStore(*api, kNamespace, "s")->get();
  ASSERT_TRUE(got.ok()) << got.error().message;

  ClusterConfig mismatched = clusterConfig();
  mismatched.tls_server_name = "wrong.example";  // the normal server has no such name
  auto api2 = makeClient(fastOptions(), mismatched);
  auto got2 = makeSecretStore(*api2, kNamespace, "s")->get();
  ASSERT_FALSE(got2.ok());
  EXPECT_NE(got2.error().message.find("host name mismatch: the server certificate is not valid "
                                      "for \"wrong.example\""),
            std::string::npos)
      << got2.error().message;
}

TEST_F(TlsTest, DnsNameInTheServerUrlIsVerified) {
  ClusterConfig cfg = clusterConfig();
  cfg.server = "https://localhost:" + std::to_string(emu().port());
  auto api = makeClient(fastOptions(), cfg);
  auto got = makeSecretStore(*api, kNamespace, "s")->get();
  ASSERT_TRUE(got.ok()) << got.error().message;
}

TEST_F(TlsTest, Ipv6ServerInBrackets) {
  auto opts = defaultEmuOptions();
  opts.listen_host = "::1";
  kube_emu::KubeEmu v6(opts);
  if (auto started = v6.start(); !started.ok()) {
    GTEST_SKIP() << "no IPv6 loopback here: " << started.error().message;
  }
  ClusterConfig cfg = clusterConfig();
  cfg.server = "https://[::1]:" + std::to_string(v6.port());
  auto api = makeClient(fastOptions(), cfg);
  auto got = makeSecretStore(*api, kNamespace, "s")->get();
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(v6.requestLog().size(), 1u);
}

TEST_F(TlsTest, ClientCertificateAuthenticates) {
  ClusterConfig cfg = clusterConfig();
  cfg.token_file.clear();
  cfg.client_cert_pem = testPki().client_cert_pem;
  cfg.client_key_pem = testPki().client_key_pem;
  auto api = makeClient(fastOptions(), cfg);
  ASSERT_TRUE(makeSecretStore(*api, "elsewhere", "s")->create({{"k", "v"}}).ok());
  const auto log = apiRequests();
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back().user, "admin");
}

TEST_F(TlsTest, InsecureSkipVerifyWorksOnlyWhenSetAndWarns) {
  char* buf = nullptr;
  size_t len = 0;
  FILE* out = open_memstream(&buf, &len);
  ASSERT_NE(out, nullptr);
  {
    Logger log(out);
    ClusterConfig cfg = clusterConfig();
    cfg.ca_pem.clear();
    cfg.insecure_skip_verify = true;
    ApiClient api(cfg, fastOptions(), &observer_, log);
    ASSERT_TRUE(api.configStatus().ok());
    EXPECT_TRUE(makeSecretStore(api, kNamespace, "s")->get().ok());
  }
  std::fclose(out);
  const std::string logged(buf, len);
  std::free(buf);
  EXPECT_NE(logged.find("TLS verification of the API server is DISABLED"), std::string::npos)
      << logged;
}

TEST_F(TlsTest, MissingOrBrokenCaIsAConfigurationError) {
  ClusterConfig cfg = clusterConfig();
  cfg.ca_pem.clear();
  ApiClient no_ca(cfg, fastOptions(), &observer_, Logger::null());
  ASSERT_FALSE(no_ca.configStatus().ok());
  EXPECT_NE(no_ca.configStatus().error().message.find("no CA certificate for"), std::string::npos);
  auto got = makeSecretStore(no_ca, kNamespace, "s")->get();
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("no CA certificate"), std::string::npos);

  cfg.ca_pem = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
  ApiClient broken(cfg, fastOptions(), &observer_, Logger::null());
  ASSERT_FALSE(broken.configStatus().ok());
  EXPECT_NE(broken.configStatus().error().message.find("CA certificate: malformed PEM"),
            std::string::npos)
      << broken.configStatus().error().message;
  EXPECT_TRUE(observer_.requests().empty());
}

// The configuration loaders end to end: the files they read drive a working client.
TEST_F(TlsTest, KubeconfigWithClientCertificateFilesWorks) {
  const fs::path dir = temp_dir_;
  fs::copy_file(testPki().ca_cert, dir / "ca.crt");
  std::ofstream(dir / "kubeconfig") << "apiVersion: v1\n"
                                       "current-context: emu\n"
                                       "clusters:\n"
                                       "- name: emu\n"
                                       "  cluster:\n"
                                       "    server: "
                                    << emu().url()
                                    << "\n"
                                       "    certificate-authority: ca.crt\n"
                                       "users:\n"
                                       "- name: admin\n"
                                       "  user:\n"
                                       "    client-certificate: "
                                    << testPki().client_cert
                                    << "\n"
                                       "    client-key: "
                                    << testPki().client_key
                                    << "\n"
                                       "contexts:\n"
                                       "- name: emu\n"
                                       "  context: {cluster: emu, user: admin, namespace: "
                                       "tailscale}\n";
  auto cfg = loadKubeconfig((dir / "kubeconfig").string());
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  auto api = makeClient(fastOptions(), *cfg);
  ASSERT_TRUE(makeSecretStore(*api, cfg->namespace_name, "kc")->create({{"a", "b"}}).ok());
  EXPECT_EQ(storedSecretData("kc").at("a"), "b");
}

TEST_F(TlsTest, InClusterConfigWorks) {
  const fs::path sa = fs::path(temp_dir_) / "sa";
  fs::create_directories(sa);
  fs::copy_file(testPki().ca_cert, sa / "ca.crt");
  std::ofstream(sa / "token") << kAgentToken << "\n";
  std::ofstream(sa / "namespace") << kNamespace;
  setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
  setenv("KUBERNETES_SERVICE_PORT", std::to_string(emu().port()).c_str(), 1);
  auto cfg = loadInCluster(sa.string());
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  ASSERT_TRUE(cfg.ok()) << cfg.error().message;
  auto api = makeClient(fastOptions(), *cfg);
  ASSERT_TRUE(makeSecretStore(*api, cfg->namespace_name, "ic")->create({{"a", "b"}}).ok());
  EXPECT_EQ(apiRequests().back().user, kAgentUser);
}

}  // namespace
}  // namespace tsk::k8s::testing
