#pragma once
// A running KubeEmu over real TLS with a throwaway PKI, and an httplib client that verifies the
// server certificate, for the kube-emu integration tests.
#include <httplib.h>

#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/support/tls/test_tls.h"
#include "tools/kube-emu/kube_emu.h"

namespace tsk::kube_emu {

inline constexpr const char* kAdminToken = "admin-token";
inline constexpr const char* kAgentToken = "agent-token";
inline constexpr const char* kAgentUser = "system:serviceaccount:tailscale:agent";

struct Reply {
  int status = 0;  // 0: no HTTP response (connection failed or dropped)
  nlohmann::json body;
  std::string raw;
  httplib::Headers headers;
  httplib::Error error = httplib::Error::Success;
};

class EmuTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { pki_ = new testing::TestPki(); }
  static void TearDownTestSuite() {
    delete pki_;
    pki_ = nullptr;
  }

  // Tests may adjust options_ before calling startEmu(); SetUp starts with the defaults.
  void SetUp() override {
    options_.cert_file = pki_->serverCert();
    options_.key_file = pki_->serverKey();
    options_.client_ca_file = pki_->caCert();
    options_.tokens = {{kAdminToken, "admin", {}}, {kAgentToken, kAgentUser, {}}};
    options_.rbac.admin_users = {"admin"};
    options_.rbac.rules = {agentRule({"get", "update", "patch"}, {"ts-state"}),
                           agentRule({"create"}, {})};
    options_.control_api = true;
  }

  static RbacRule agentRule(std::vector<std::string> verbs, std::vector<std::string> names) {
    RbacRule r;
    r.users = {kAgentUser};
    r.verbs = std::move(verbs);
    r.resources = {"secrets", "configmaps"};
    r.resource_names = std::move(names);
    r.namespaces = {"tailscale"};
    return r;
  }

  void startEmu() {
    emu_ = std::make_unique<KubeEmu>(options_);
    auto st = emu_->start();
    ASSERT_TRUE(st.ok()) << st.error().message;
  }

  std::unique_ptr<httplib::SSLClient> client() const {
    auto cli = std::make_unique<httplib::SSLClient>("127.0.0.1", emu_->port());
    cli->set_ca_cert_path(pki_->caCert().c_str());
    cli->enable_server_certificate_verification(true);
    cli->set_connection_timeout(5);
    cli->set_read_timeout(10);
    return cli;
  }

  Reply call(const std::string& method, const std::string& path, const std::string& token = "",
             const std::string& body = "", const std::string& content_type = "application/json",
             httplib::Headers headers = {}) const {
    auto cli = client();
    if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
    httplib::Result r = [&] {
      if (method == "GET") return cli->Get(path.c_str(), headers);
      if (method == "POST") return cli->Post(path.c_str(), headers, body, content_type.c_str());
      if (method == "PUT") return cli->Put(path.c_str(), headers, body, content_type.c_str());
      if (method == "PATCH") return cli->Patch(path.c_str(), headers, body, content_type.c_str());
      return cli->Delete(path.c_str(), headers);
    }();
    Reply reply;
    reply.error = r.error();
    if (!r) return reply;
    reply.status = r->status;
    reply.raw = r->body;
    reply.headers = r->headers;
    reply.body = nlohmann::json::parse(r->body, nullptr, false);
    return reply;
  }

  static std::string secretPath(const std::string& name = "", const std::string& ns = "tailscale") {
    return "/api/v1/namespaces/" + ns + "/secrets" + (name.empty() ? "" : "/" + name);
  }
  static std::string configMapPath(const std::string& name = "",
                                   const std::string& ns = "tailscale") {
    return "/api/v1/namespaces/" + ns + "/configmaps" + (name.empty() ? "" : "/" + name);
  }

  Reply createSecret(const std::string& name, const nlohmann::json& data,
                     const std::string& ns = "tailscale") const {
    nlohmann::json body = {{"apiVersion", "v1"},
                           {"kind", "Secret"},
                           {"metadata", {{"name", name}, {"namespace", ns}}},
                           {"data", data}};
    return call("POST", secretPath("", ns), kAdminToken, body.dump());
  }

  static inline testing::TestPki* pki_ = nullptr;
  KubeEmuOptions options_;
  std::unique_ptr<KubeEmu> emu_;
};

}  // namespace tsk::kube_emu
