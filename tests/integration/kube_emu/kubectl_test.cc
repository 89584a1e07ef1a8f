// kubectl, a real Kubernetes client, against kube-emu, as the demo uses it: discovery, get (JSON,
// jsonpath, a plain list), strategic-merge patch and the Forbidden message. (kube-emu serves no
// protobuf, Tables, OpenAPI or access reviews: kubectl create/apply and auth can-i are tested on
// a real kube-apiserver.) kubectl must be installed (/usr/bin/kubectl); its absence fails the
// suite.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/integration/kube_emu/child_process.h"
#include "tests/integration/kube_emu/emu_fixture.h"
#include "tools/kube-emu/object_rules.h"

namespace tsk::kube_emu {
namespace {

using nlohmann::json;

constexpr const char* kKubectl = "/usr/bin/kubectl";

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

CommandResult runCommand(const std::vector<std::string>& args, const std::string& home) {
  // A clean environment: no KUBECONFIG of the user, a HOME of the test's own.
  const char* path = std::getenv("PATH");
  ChildProcess child(
      args, {"HOME=" + home, std::string("PATH=") + (path != nullptr ? path : "/usr/bin:/bin")});
  if (!child.started()) return {-1, child.error()};
  const int code = child.wait();
  return {code, child.output()};
}

class KubectlAgainstKubeEmu : public EmuTest {
 protected:
  void SetUp() override {
    ASSERT_EQ(::access(kKubectl, X_OK), 0)
        << kKubectl << " is missing: install kubectl (Debian package `kubectl`, see "
        << "scripts/install-deps.sh); the kubectl tests do not skip";
    EmuTest::SetUp();
    startEmu();
    home_ = pki_->dir() + "/kubectl-home-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(home_);
    admin_kubeconfig_ = writeKubeconfig("admin", kAdminToken);
    agent_kubeconfig_ = writeKubeconfig("agent", kAgentToken);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(home_, ec);
  }

  std::string writeKubeconfig(const std::string& name, const std::string& token) const {
    const std::string path = home_ + "/" + name + ".kubeconfig";
    std::ofstream out(path);
    out << "apiVersion: v1\nkind: Config\n"
        << "clusters:\n- name: emu\n  cluster:\n    server: " << emu_->url()
        << "\n    certificate-authority-data: " << base64Encode(pki_->caPem()) << "\n"
        << "users:\n- name: " << name << "\n  user:\n    token: " << token << "\n"
        << "contexts:\n- name: emu\n  context:\n    cluster: emu\n    user: " << name
        << "\n    namespace: tailscale\n"
        << "current-context: emu\n";
    return path;
  }

  CommandResult kubectl(const std::vector<std::string>& args, bool as_agent = false) const {
    std::vector<std::string> full = {
        kKubectl,      "--kubeconfig",   as_agent ? agent_kubeconfig_ : admin_kubeconfig_,
        "--cache-dir", home_ + "/cache", "--request-timeout",
        "20s"};
    full.insert(full.end(), args.begin(), args.end());
    return runCommand(full, home_);
  }

  std::string home_;
  std::string admin_kubeconfig_;
  std::string agent_kubeconfig_;
};

TEST_F(KubectlAgainstKubeEmu, GetsASecretAsJson) {
  ASSERT_EQ(createSecret("ts-state", {{"a", "MQ=="}, {"b", "Mg=="}}).status, 201);
  const auto r = kubectl({"get", "secret", "ts-state", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json obj = json::parse(r.output, nullptr, false);
  ASSERT_FALSE(obj.is_discarded()) << r.output;
  EXPECT_EQ(obj["kind"], "Secret");
  EXPECT_EQ(obj["metadata"]["namespace"], "tailscale");
  EXPECT_EQ(obj["data"], json({{"a", "MQ=="}, {"b", "Mg=="}}));
}

TEST_F(KubectlAgainstKubeEmu, PatchesASecretWithStrategicMergeKeepingOtherKeys) {
  ASSERT_EQ(createSecret("ts-state", {{"a", "MQ=="}, {"keep", "a2VlcA=="}}).status, 201);
  emu_->clearRequestLog();
  const auto r =
      kubectl({"patch", "secret", "ts-state", "-p", R"({"data":{"b":"Mg==","a":null}})"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("secret/ts-state patched"), std::string::npos) << r.output;

  const Reply got = call("GET", secretPath("ts-state"), kAdminToken);
  EXPECT_EQ(got.body["data"], json({{"b", "Mg=="}, {"keep", "a2VlcA=="}}));
  bool saw_patch = false;
  for (const auto& rec : emu_->requestLog()) {
    if (rec.method != "PATCH") continue;
    saw_patch = true;
    EXPECT_EQ(rec.content_type, "application/strategic-merge-patch+json");
    EXPECT_NE(rec.query.find("fieldManager=kubectl-patch"), std::string::npos) << rec.query;
    EXPECT_EQ(rec.status, 200);
  }
  EXPECT_TRUE(saw_patch);

  const auto round_trip = kubectl({"get", "secret", "ts-state", "-o", "jsonpath={.data.b}"});
  EXPECT_EQ(round_trip.output, "Mg==");
}

TEST_F(KubectlAgainstKubeEmu, ListsSecretsByName) {
  ASSERT_EQ(createSecret("ts-state", {{"a", "MQ=="}, {"b", "Mg=="}}).status, 201);
  const auto r = kubectl({"get", "secrets"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("NAME"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ts-state"), std::string::npos) << r.output;
}

TEST_F(KubectlAgainstKubeEmu, GetsAConfigMapAsJson) {
  const json body = {{"metadata", {{"name", "ts-info"}}}, {"data", {{"ip", "100.64.0.1"}}}};
  ASSERT_EQ(call("POST", configMapPath(), kAdminToken, body.dump()).status, 201);
  const auto r = kubectl({"get", "configmap", "ts-info", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(json::parse(r.output)["data"]["ip"], "100.64.0.1");
}

TEST_F(KubectlAgainstKubeEmu, ShowsTheForbiddenMessageForAnUnauthorizedName) {
  ASSERT_EQ(createSecret("other", json::object()).status, 201);
  const auto r = kubectl({"get", "secret", "other"}, /*as_agent=*/true);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("Error from server (Forbidden): secrets \"other\" is forbidden: User "
                          "\"system:serviceaccount:tailscale:agent\" cannot get resource "
                          "\"secrets\" in API group \"\" in the namespace \"tailscale\""),
            std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace tsk::kube_emu
