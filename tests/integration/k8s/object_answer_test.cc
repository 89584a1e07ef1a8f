// What the object store accepts as the answer to its GET, against an HTTPS server that answers
// with a fixed body (kube-emu validates what it stores, so it cannot hold a bad base64 value or
// answer for another object): the answer must be the object asked for, and only the keys asked
// for are decoded, a bad value in one of them being reported instead of failing the read.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <mutex>
#include <thread>

#include "common/httplib_server.h"
#include "k8s/base64.h"
#include "tests/integration/k8s/emu_fixture.h"

namespace tsk::k8s::testing {
namespace {

using json = nlohmann::json;

class ObjectAnswerTest : public EmuFixture {
 protected:
  void SetUp() override {
    EmuFixture::SetUp();
    server_ = std::make_unique<httplib::SSLServer>(testPki().server_cert.c_str(),
                                                   testPki().server_key.c_str());
    server_->Get(".*", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard lock(mu_);
      res.set_content(body_, "application/json");
    });
    port_ = server_->bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = serveInBackground(*server_);
  }
  void TearDown() override {
    server_->stop();
    if (thread_.joinable()) thread_.join();
    EmuFixture::TearDown();
  }
  void answer(const json& body) {
    std::lock_guard lock(mu_);
    body_ = body.dump();
  }
  std::unique_ptr<ApiClient> client() {
    ClusterConfig cfg = clusterConfig();
    cfg.server = "https://127.0.0.1:" + std::to_string(port_);
    return makeClient(fastOptions(), cfg);
  }
  static json secret(const std::string& ns, const std::string& name, const json& data) {
    return {{"apiVersion", "v1"},
            {"kind", "Secret"},
            {"metadata", {{"name", name}, {"namespace", ns}, {"resourceVersion", "7"}}},
            {"data", data}};
  }

  std::unique_ptr<httplib::SSLServer> server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::string body_;
};

TEST_F(ObjectAnswerTest, TheObjectAskedForIsAccepted) {
  answer(secret(kNamespace, "ts-state", {{"device_id", base64Encode("n1")}}));
  auto api = client();
  auto got = makeSecretStore(*api, kNamespace, "ts-state")->get();
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->data.at("device_id"), "n1");
  EXPECT_EQ((*got)->resource_version, "7");
}

TEST_F(ObjectAnswerTest, AnAnswerForAnotherObjectIsRefusedNamingWhatCame) {
  auto api = client();
  auto store = makeSecretStore(*api, kNamespace, "ts-state");
  const json data = {{"device_id", base64Encode("someone-elses")}};
  for (const json& other : {secret("kube-system", "ts-state", data),  // other namespace
                            secret(kNamespace, "other", data),        // other name
                            secret("kube-system", "other", data)}) {
    answer(other);
    auto got = store->get();
    ASSERT_FALSE(got.ok()) << other.dump();
    EXPECT_NE(got.error().message.find("another object"), std::string::npos) << got.error().message;
    EXPECT_NE(got.error().message.find("secret tailscale/ts-state"), std::string::npos)
        << got.error().message;
  }
  json configmap = secret(kNamespace, "ts-state", data);
  configmap["kind"] = "ConfigMap";
  answer(configmap);
  auto got = store->get();
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("kind \"ConfigMap\""), std::string::npos)
      << got.error().message;
  json no_meta = secret(kNamespace, "ts-state", data);
  no_meta.erase("metadata");
  answer(no_meta);
  EXPECT_FALSE(store->get().ok());
}

TEST_F(ObjectAnswerTest, ABadValueInAnUnrelatedKeyDoesNotFailTheRead) {
  // tailscaled's own key in a shared Secret holding something that is not base64.
  answer(secret(kNamespace, "ts-state",
                {{"_machinekey", "not base64 !!"},
                 {"profile-1", 42},
                 {"device_id", base64Encode("n1")},
                 {"device_fqdn", "also not base64 !!"}}));
  auto api = client();
  auto got = makeSecretStore(*api, kNamespace, "ts-state")->get({"device_id", "device_fqdn"});
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_TRUE(got->has_value());
  // Only the keys asked for: tailscaled's keys are neither decoded nor kept.
  EXPECT_EQ((*got)->data, (std::map<std::string, std::string>{{"device_id", "n1"}}));
  EXPECT_EQ((*got)->undecodable, (std::set<std::string>{"device_fqdn"}));
  // Without a filter every key is looked at; bad values are still reported, not fatal.
  auto all = makeSecretStore(*api, kNamespace, "ts-state")->get();
  ASSERT_TRUE(all.ok()) << all.error().message;
  EXPECT_EQ((*all)->undecodable,
            (std::set<std::string>{"_machinekey", "device_fqdn", "profile-1"}));
}

}  // namespace
}  // namespace tsk::k8s::testing
