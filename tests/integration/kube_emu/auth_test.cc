// Authentication (tokens, client certificates) and RBAC of kube-emu, with the Status bodies
// kube-apiserver sends.
#include "tests/integration/kube_emu/emu_fixture.h"

namespace tsk::kube_emu {
namespace {

using nlohmann::json;

class KubeEmuAuth : public EmuTest {
 protected:
  void SetUp() override {
    EmuTest::SetUp();
    startEmu();
  }
};

TEST_F(KubeEmuAuth, UnknownTokenIsUnauthorized) {
  const Reply r = call("GET", secretPath("ts-state"), "not-a-token");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body, json({{"kind", "Status"},
                          {"apiVersion", "v1"},
                          {"metadata", json::object()},
                          {"status", "Failure"},
                          {"message", "Unauthorized"},
                          {"reason", "Unauthorized"},
                          {"code", 401}}));
}

TEST_F(KubeEmuAuth, NoTokenIsForbiddenForAnonymous) {
  const Reply r = call("GET", secretPath("ts-state"));
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body["message"],
            "secrets \"ts-state\" is forbidden: User \"system:anonymous\" cannot get resource "
            "\"secrets\" in API group \"\" in the namespace \"tailscale\"");
}

TEST_F(KubeEmuAuth, PatchOutsideResourceNamesIsForbiddenNamingUserVerbAndNamespace) {
  ASSERT_EQ(createSecret("someone-else", json::object()).status, 201);
  const Reply r = call("PATCH", secretPath("someone-else"), kAgentToken, R"({"data":{}})",
                       "application/strategic-merge-patch+json");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body["reason"], "Forbidden");
  EXPECT_EQ(r.body["message"],
            "secrets \"someone-else\" is forbidden: User \"system:serviceaccount:tailscale:agent\" "
            "cannot patch resource \"secrets\" in API group \"\" in the namespace \"tailscale\"");
  EXPECT_EQ(r.body["details"], json({{"name", "someone-else"}, {"kind", "secrets"}}));
}

TEST_F(KubeEmuAuth, CreateIsGrantedByARuleWithoutResourceNames) {
  const json body = {{"metadata", {{"name", "ts-state"}}}};
  EXPECT_EQ(call("POST", secretPath(), kAgentToken, body.dump()).status, 201);
  // ... and not by a rule restricted to names, like Kubernetes.
  RbacPolicy policy = emu_->rbac();
  policy.rules = {agentRule({"get", "create"}, {"ts-state"})};
  emu_->setRbac(policy);
  const json other = {{"metadata", {{"name", "ts-state"}}}};
  const Reply r = call("POST", configMapPath(), kAgentToken, other.dump());
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body["message"],
            "configmaps is forbidden: User \"system:serviceaccount:tailscale:agent\" cannot create "
            "resource \"configmaps\" in API group \"\" in the namespace \"tailscale\"");
}

TEST_F(KubeEmuAuth, RulesAreScopedToTheirNamespaces) {
  ASSERT_EQ(createSecret("ts-state", json::object(), "elsewhere").status, 201);
  const Reply r = call("GET", secretPath("ts-state", "elsewhere"), kAgentToken);
  EXPECT_EQ(r.status, 403);
}

TEST_F(KubeEmuAuth, RevokedTokenIsUnauthorizedAndAddedTokenWorks) {
  ASSERT_EQ(createSecret("ts-state", json::object()).status, 201);
  emu_->addToken({"rotated-token", kAgentUser, {}});
  EXPECT_TRUE(emu_->revokeToken(kAgentToken));
  EXPECT_EQ(call("GET", secretPath("ts-state"), kAgentToken).status, 401);
  EXPECT_EQ(call("GET", secretPath("ts-state"), "rotated-token").status, 200);
}

TEST_F(KubeEmuAuth, ClientCertificateAuthenticatesAsItsCommonName) {
  ASSERT_EQ(createSecret("ts-state", json::object()).status, 201);
  const auto cert = pki_->makeClientCert(kAgentUser);
  httplib::SSLClient cli("127.0.0.1", emu_->port(), cert.cert, cert.key);
  cli.set_ca_cert_path(pki_->caCert().c_str());
  cli.enable_server_certificate_verification(true);
  auto ok = cli.Get(secretPath("ts-state").c_str());
  ASSERT_TRUE(ok) << httplib::to_string(ok.error());
  EXPECT_EQ(ok->status, 200) << ok->body;
  auto denied = cli.Get(secretPath("other").c_str());
  ASSERT_TRUE(denied);
  EXPECT_EQ(denied->status, 403);
  EXPECT_NE(denied->body.find(std::string("User \\\"") + kAgentUser), std::string::npos)
      << denied->body;
}

TEST_F(KubeEmuAuth, DiscoveryNeedsAuthenticationButVersionDoesNot) {
  EXPECT_EQ(call("GET", "/version").status, 200);
  const Reply api = call("GET", "/api");
  EXPECT_EQ(api.status, 403);
  EXPECT_EQ(api.body["message"], "forbidden: User \"system:anonymous\" cannot get path \"/api\"");
  EXPECT_EQ(call("GET", "/api", kAgentToken).status, 200);
}

}  // namespace
}  // namespace tsk::kube_emu
