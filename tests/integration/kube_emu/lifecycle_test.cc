// kube-emu's lifecycle, its control API (plain HTTP on loopback) and the TLS identity it
// presents.
#include "tests/integration/kube_emu/emu_fixture.h"

namespace tsk::kube_emu {
namespace {

using nlohmann::json;

class KubeEmuLifecycle : public EmuTest {};

TEST_F(KubeEmuLifecycle, StopClosesIdleKeepAliveConnectionsAtOnce) {
  // With a one-minute keep-alive timeout, a stop() that waited for idle connections would run
  // into the test's timeout.
  options_.keep_alive_timeout = std::chrono::seconds(60);
  startEmu();
  auto cli = client();
  cli->set_keep_alive(true);
  ASSERT_TRUE(cli->Get("/version"));
  emu_->stop();
  EXPECT_FALSE(cli->Get("/version"));
}

TEST_F(KubeEmuLifecycle, StartFailsWithAClearErrorForAMissingCertificate) {
  options_.cert_file = "/nonexistent/server.crt";
  KubeEmu emu(options_);
  const auto st = emu.start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("/nonexistent/server.crt"), std::string::npos)
      << st.error().message;
}

TEST_F(KubeEmuLifecycle, ServerCertificateIsRejectedByAClientTrustingAnotherCa) {
  startEmu();
  httplib::SSLClient cli("127.0.0.1", emu_->port());
  cli.set_ca_cert_path(pki_->otherCaCert().c_str());
  cli.enable_server_certificate_verification(true);
  const auto r = cli.Get("/version");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), httplib::Error::SSLServerVerification);
}

TEST_F(KubeEmuLifecycle, AWrongHostCertificateFailsHostVerification) {
  options_.cert_file = pki_->wrongHostCert();
  options_.key_file = pki_->wrongHostKey();
  startEmu();
  auto cli = client();  // trusts the right CA, but the certificate names wrong.example
  const auto r = cli->Get("/version");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), httplib::Error::SSLServerVerification);
}

TEST_F(KubeEmuLifecycle, ServesOnIpv6Loopback) {
  // cpp-httplib 0.11.4's client compares 16 bytes against every IP SAN when it connects to an
  // IPv6 address, reading past a 4-byte IPv4 SAN; a certificate whose only IP SAN is ::1 avoids
  // that (see test_tls.h).
  const auto v6 = pki_->makeServerCert({"::1", "localhost"});
  options_.cert_file = v6.cert;
  options_.key_file = v6.key;
  options_.listen_host = "::1";
  startEmu();
  EXPECT_EQ(emu_->url(), "https://[::1]:" + std::to_string(emu_->port()));
  httplib::SSLClient cli("::1", emu_->port());
  cli.set_ca_cert_path(pki_->caCert().c_str());
  cli.enable_server_certificate_verification(true);
  const auto r = cli.Get("/version");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
}

class KubeEmuControlApi : public EmuTest {
 protected:
  void SetUp() override {
    EmuTest::SetUp();
    startEmu();
  }
  Reply control(const std::string& method, const std::string& path,
                const std::string& body = "") const {
    httplib::Client cli("127.0.0.1", emu_->controlPort());
    auto r = method == "GET"      ? cli.Get(path.c_str())
             : method == "DELETE" ? cli.Delete(path.c_str())
                                  : cli.Post(path.c_str(), body, "application/json");
    Reply reply;
    if (!r) return reply;
    reply.status = r->status;
    reply.raw = r->body;
    reply.body = json::parse(r->body, nullptr, false);
    return reply;
  }
};

TEST_F(KubeEmuControlApi, UrlsNameTheBoundPorts) {
  EXPECT_EQ(emu_->url(), "https://127.0.0.1:" + std::to_string(emu_->port()));
  EXPECT_EQ(emu_->controlUrl(), "http://127.0.0.1:" + std::to_string(emu_->controlPort()));
}

TEST_F(KubeEmuControlApi, FaultsPostedOverHttpApply) {
  ASSERT_EQ(control("POST", "/faults", R"({"kind":"429","count":1,"retryAfter":2})").status, 200);
  EXPECT_EQ(control("GET", "/faults").body["rules"].size(), 1u);
  EXPECT_EQ(call("GET", "/api/v1/namespaces/tailscale/secrets/x", kAdminToken).status, 429);
  ASSERT_EQ(control("POST", "/faults", R"({"rules":[{"kind":"status","status":502}]})").status,
            200);
  EXPECT_EQ(call("GET", "/api/v1/namespaces/tailscale/secrets/x", kAdminToken).status, 502);
  ASSERT_EQ(control("POST", "/faults", R"({"kind":"latency","latencyMs":1,"count":-1})").status,
            200);
  ASSERT_EQ(control("DELETE", "/faults").status, 200);
  EXPECT_TRUE(control("GET", "/faults").body["rules"].empty());
}

TEST_F(KubeEmuControlApi, BadFaultIsRejectedWithAReason) {
  const Reply r = control("POST", "/faults", R"({"kind":"explode"})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body["error"].get<std::string>().find("unknown kind"), std::string::npos);
}

TEST_F(KubeEmuControlApi, TokensAreAddedAndRevokedAtRunTime) {
  ASSERT_EQ(control("POST", "/tokens", R"({"add":{"token":"new-token","user":"admin"}})").status,
            200);
  EXPECT_EQ(call("GET", "/api/v1/namespaces/tailscale/secrets", "new-token").status, 200);
  ASSERT_EQ(control("POST", "/tokens", R"({"revoke":"new-token"})").status, 200);
  EXPECT_EQ(call("GET", "/api/v1/namespaces/tailscale/secrets", "new-token").status, 401);
}

TEST_F(KubeEmuControlApi, RbacIsReplacedFromYaml) {
  ASSERT_EQ(createSecret("other", json::object()).status, 201);
  EXPECT_EQ(call("GET", secretPath("other"), kAgentToken).status, 403);
  const std::string yaml =
      "adminUsers: [admin]\n"
      "rules:\n"
      "- users: [\"system:serviceaccount:tailscale:agent\"]\n"
      "  verbs: [get]\n"
      "  resources: [secrets]\n"
      "  namespaces: [tailscale]\n";
  const Reply r = control("POST", "/rbac", yaml);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(call("GET", secretPath("other"), kAgentToken).status, 200);
}

TEST_F(KubeEmuControlApi, BadRbacNamesTheProblem) {
  const Reply r = control("POST", "/rbac", R"({"rules":[{"users":["u"],"verbz":["get"]}]})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body["error"].get<std::string>().find("unknown key \"verbz\""), std::string::npos)
      << r.raw;
}

TEST_F(KubeEmuControlApi, LogObjectsAndResetAreReadable) {
  ASSERT_EQ(createSecret("ts-state", {{"a", "MQ=="}}).status, 201);
  const Reply log = control("GET", "/log");
  ASSERT_EQ(log.body["entries"].size(), 1u);
  EXPECT_EQ(log.body["entries"][0]["method"], "POST");
  EXPECT_EQ(log.body["entries"][0]["status"], 201);
  const uint64_t seq = log.body["entries"][0]["seq"];
  call("GET", secretPath("ts-state"), kAdminToken);
  EXPECT_EQ(control("GET", "/log?after=" + std::to_string(seq)).body["entries"].size(), 1u);

  const Reply objects = control("GET", "/objects");
  ASSERT_EQ(objects.body["secrets"].size(), 1u);
  EXPECT_EQ(objects.body["secrets"][0]["data"]["a"], "MQ==");

  const Reply seeded = control(
      "POST", "/objects",
      R"({"resource":"configmaps","namespace":"tailscale","object":{"metadata":{"name":"cm"},"data":{"k":"v"}}})");
  EXPECT_EQ(seeded.status, 201) << seeded.raw;
  EXPECT_EQ(call("GET", configMapPath("cm"), kAdminToken).body["data"]["k"], "v");

  ASSERT_EQ(control("POST", "/reset").status, 200);
  EXPECT_TRUE(control("GET", "/objects").body["secrets"].empty());
  EXPECT_TRUE(control("GET", "/log").body["entries"].empty());
}

}  // namespace
}  // namespace tsk::kube_emu
