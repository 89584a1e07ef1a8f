// SecretStore and ConfigMapStore against kube-emu over real TLS.
#include <gtest/gtest.h>

#include "tests/integration/k8s/emu_fixture.h"

namespace tsk::k8s::testing {
namespace {

using Data = std::map<std::string, std::string>;

class StoreTest : public EmuFixture {};

TEST_F(StoreTest, GetOfAMissingSecretIsNullopt) {
  auto api = makeClient();
  auto got = makeSecretStore(*api, kNamespace, "absent")->get();
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_FALSE(got->has_value());
}

TEST_F(StoreTest, GetDecodesSecretValues) {
  seedSecret("ts-state", {{"device_id", "nX1"}, {"_machinekey", "secret-bytes"}});
  auto api = makeClient();
  auto got = makeSecretStore(*api, kNamespace, "ts-state")->get();
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->data, (Data{{"device_id", "nX1"}, {"_machinekey", "secret-bytes"}}));
  EXPECT_FALSE((*got)->resource_version.empty());
}

// metadata.managedFields name each key's field manager(s); get() reports them for the keys asked
// for only, and a key changed by our PATCH becomes ours.
TEST_F(StoreTest, GetReportsTheFieldManagersOfTheKeysAskedFor) {
  seedSecret("ts-state", {{"device_id", "nX1"}, {"device_fqdn", "a."}, {"_machinekey", "mk"}});
  auto api = makeClient();
  auto secret = makeSecretStore(*api, kNamespace, "ts-state");
  ASSERT_TRUE(secret->patch({{"device_id", "nX2"}}).ok());
  auto got = secret->get({"device_id", "device_fqdn", "device_ips"});
  ASSERT_TRUE(got.ok()) << got.error().message;
  ASSERT_TRUE(got->has_value());
  using Managers = std::map<std::string, std::set<std::string>>;
  EXPECT_EQ((*got)->managers,
            (Managers{{"device_id", {"ts-kube-agent"}}, {"device_fqdn", {"seed"}}}));

  seedConfigMap("ts-info", {{"device_ips", "[]"}});
  auto cm = makeConfigMapStore(*api, kNamespace, "ts-info")->get({"device_ips"});
  ASSERT_TRUE(cm.ok()) << cm.error().message;
  EXPECT_EQ((*cm)->managers, (Managers{{"device_ips", {"seed"}}}));
}

TEST_F(StoreTest, CreateThenGetRoundTrips) {
  auto api = makeClient();
  auto secret = makeSecretStore(*api, kNamespace, "fresh");
  ASSERT_TRUE(secret->create({{"a", "1"}, {"b", "2"}}).ok());
  EXPECT_EQ(storedSecretData("fresh"), (Data{{"a", "1"}, {"b", "2"}}));
  const auto posts = apiRequests("POST");
  ASSERT_EQ(posts.size(), 1u);
  EXPECT_EQ(posts[0].path, "/api/v1/namespaces/tailscale/secrets");
  EXPECT_EQ(posts[0].query, "fieldManager=ts-kube-agent");
}

TEST_F(StoreTest, CreateOfAnExistingSecretIsAConflict) {
  seedSecret("taken", {{"k", "v"}});
  auto api = makeClient();
  auto created = makeSecretStore(*api, kNamespace, "taken")->create({{"k", "w"}});
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.error().http_status, 409);
  EXPECT_EQ(created.error().message,
            "secret tailscale/taken already exists (create answered 409 AlreadyExists)");
  EXPECT_EQ(storedSecretData("taken"), (Data{{"k", "v"}}));
}

TEST_F(StoreTest, PatchTouchesOnlyTheGivenKeys) {
  seedSecret("ts-state", {{"_machinekey", "mk"},
                          {"_current-profile", "pf"},
                          {"profile-abcd", "state"},
                          {"device_id", "old"},
                          {"https_endpoint", "x.ts.net"}});
  auto api = makeClient();
  auto secret = makeSecretStore(*api, kNamespace, "ts-state");
  ASSERT_TRUE(secret
                  ->patch({{"device_id", "new"},
                           {"device_fqdn", "node.tail.ts.net."},
                           {"https_endpoint", std::nullopt}})
                  .ok());
  EXPECT_EQ(storedSecretData("ts-state"), (Data{{"_machinekey", "mk"},
                                                {"_current-profile", "pf"},
                                                {"profile-abcd", "state"},
                                                {"device_id", "new"},
                                                {"device_fqdn", "node.tail.ts.net."}}));
}

TEST_F(StoreTest, PatchSendsAStrategicMergePatchWithTheFieldManager) {
  seedSecret("ts-state", {{"keep", "me"}});
  auto api = makeClient();
  ASSERT_TRUE(makeSecretStore(*api, kNamespace, "ts-state")
                  ->patch({{"device_id", "abc"}, {"gone", std::nullopt}})
                  .ok());
  const auto patches = apiRequests("PATCH");
  ASSERT_EQ(patches.size(), 1u);
  EXPECT_EQ(patches[0].path, "/api/v1/namespaces/tailscale/secrets/ts-state");
  EXPECT_EQ(patches[0].query, "fieldManager=ts-kube-agent");
  EXPECT_EQ(patches[0].content_type, "application/strategic-merge-patch+json");
  EXPECT_EQ(nlohmann::json::parse(patches[0].body),
            nlohmann::json::parse(R"({"data":{"device_id":"YWJj","gone":null}})"));
  EXPECT_EQ(patches[0].user, kAgentUser);
}

TEST_F(StoreTest, BinarySecretValuesRoundTrip) {
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(255 - i));
  binary += std::string("\0\0\xff\n", 4);
  auto api = makeClient();
  auto secret = makeSecretStore(*api, kNamespace, "bin");
  ASSERT_TRUE(secret->create({{"blob", binary}, {"text", "plain"}}).ok());
  EXPECT_EQ(storedSecretData("bin").at("blob"), binary);
  auto got = secret->get();
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->data.at("blob"), binary);
  EXPECT_EQ((*got)->data.at("text"), "plain");
}

TEST_F(StoreTest, CreateSendsOnePostWithTheFieldManager) {
  auto api = makeClient();
  auto secret = makeSecretStore(*api, kNamespace, "new-one");
  ASSERT_TRUE(secret->create({{"device_id", "n1"}}).ok());
  EXPECT_EQ(storedSecretData("new-one"), (Data{{"device_id", "n1"}}));
  const auto log = apiRequests();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].method, "POST");
  EXPECT_EQ(log[0].query, "fieldManager=ts-kube-agent");
  EXPECT_EQ(log[0].status, 201);
}

// The store never falls back from one verb to another (creating a missing object is the
// publisher's decision): a PATCH of a missing Secret is one request and a clear 404.
TEST_F(StoreTest, PatchOfAMissingSecretIsOneRequestAndSaysWhatToDo) {
  auto api = makeClient();
  auto patched = makeSecretStore(*api, kNamespace, "missing")->patch({{"k", "v"}});
  ASSERT_FALSE(patched.ok());
  EXPECT_EQ(patched.error().kind, ErrorKind::Http);
  EXPECT_EQ(patched.error().http_status, 404);
  EXPECT_EQ(patched.error().message,
            "secret tailscale/missing does not exist and the agent may not create it: create it, "
            "or allow \"create\" on \"secrets\" in namespace tailscale");
  std::vector<std::string> sequence;
  for (const auto& r : apiRequests()) sequence.push_back(r.method + " " + std::to_string(r.status));
  EXPECT_EQ(sequence, (std::vector<std::string>{"PATCH 404"}));
}

TEST_F(StoreTest, TooManyRequestsIsReportedWithItsRetryAfter) {
  seedSecret("s", {{"k", "v"}});
  kube_emu::FaultRule rule;
  rule.kind = kube_emu::FaultKind::k429;
  rule.count = 1;
  rule.method = "PATCH";
  rule.retry_after_seconds = 3;
  emu().injectFault(rule);
  auto api = makeClient();
  auto patched = makeSecretStore(*api, kNamespace, "s")->patch({{"k", "w"}});
  ASSERT_FALSE(patched.ok());
  EXPECT_EQ(patched.error().http_status, 429);
  EXPECT_EQ(patched.error().retry_after, std::chrono::milliseconds(3'000));
  EXPECT_EQ(apiRequests("PATCH").size(), 1u);  // not retried underneath the caller
  EXPECT_EQ(storedSecretData("s").at("k"), "v");
}

TEST_F(StoreTest, InvalidKeyIsRejectedWithTheApiServersReason) {
  seedSecret("s", {{"k", "v"}});
  auto api = makeClient();
  auto patched = makeSecretStore(*api, kNamespace, "s")->patch({{"bad key!", "v"}});
  ASSERT_FALSE(patched.ok());
  EXPECT_EQ(patched.error().http_status, 422);
  EXPECT_NE(patched.error().message.find("cannot patch secrets \"s\" in namespace \"tailscale\": "
                                         "the API server answered 422 Unprocessable Entity"),
            std::string::npos)
      << patched.error().message;
  EXPECT_NE(patched.error().message.find("check key names"), std::string::npos);
  EXPECT_EQ(apiRequests("PATCH").size(), 1u);
}

TEST_F(StoreTest, EmptyChangesSendNothing) {
  auto api = makeClient();
  ASSERT_TRUE(makeSecretStore(*api, kNamespace, "x")->patch({}).ok());
  EXPECT_TRUE(apiRequests().empty());
}

TEST_F(StoreTest, ConfigMapValuesArePlainStrings) {
  seedConfigMap("ts-info", {{"other", "kept"}});
  auto api = makeClient();
  auto cm = makeConfigMapStore(*api, kNamespace, "ts-info");
  EXPECT_EQ(cm->describe(), "configmap tailscale/ts-info");
  ASSERT_TRUE(cm->patch({{"device_ips", R"(["100.64.0.1"])"}}).ok());
  EXPECT_EQ(storedConfigMapData("ts-info"),
            (Data{{"other", "kept"}, {"device_ips", R"(["100.64.0.1"])"}}));
  EXPECT_EQ(nlohmann::json::parse(apiRequests("PATCH").at(0).body),
            nlohmann::json::parse(R"({"data":{"device_ips":"[\"100.64.0.1\"]"}})"));
  auto got = cm->get();
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->data.at("device_ips"), R"(["100.64.0.1"])");
}

TEST_F(StoreTest, ConfigMapIsCreated) {
  auto api = makeClient();
  ASSERT_TRUE(makeConfigMapStore(*api, kNamespace, "made")->create({{"a", "b"}}).ok());
  EXPECT_EQ(storedConfigMapData("made"), (Data{{"a", "b"}}));
}

TEST_F(StoreTest, ConfigMapRefusesValuesThatAreNotUtf8) {
  auto api = makeClient();
  auto patched =
      makeConfigMapStore(*api, kNamespace, "cm")->patch({{"blob", std::string("\xff\xfe")}});
  ASSERT_FALSE(patched.ok());
  EXPECT_NE(patched.error().message.find("the value for key \"blob\" is not valid UTF-8"),
            std::string::npos);
  EXPECT_TRUE(apiRequests().empty());
}

TEST_F(StoreTest, ObserverSeesVerbsResourcesAndCodes) {
  auto api = makeClient();
  auto secret = makeSecretStore(*api, kNamespace, "obs");
  EXPECT_FALSE(secret->patch({{"k", "v"}}).ok());
  ASSERT_TRUE(secret->create({{"k", "v"}}).ok());
  ASSERT_TRUE(secret->get().ok());
  const auto calls = observer_.requests();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].verb, "PATCH");
  EXPECT_EQ(calls[0].resource, "secrets");
  EXPECT_EQ(calls[0].code, 404);
  EXPECT_EQ(calls[1].verb, "POST");
  EXPECT_EQ(calls[1].code, 201);
  EXPECT_EQ(calls[2].verb, "GET");
  EXPECT_EQ(calls[2].code, 200);
}

}  // namespace
}  // namespace tsk::k8s::testing
