// Object semantics of kube-emu over real TLS: create, get, list, replace, patch, delete, and
// the Status bodies of the errors, as kube-apiserver answers them.
#include "tests/integration/kube_emu/emu_fixture.h"

namespace tsk::kube_emu {
namespace {

using nlohmann::json;

class KubeEmuObjects : public EmuTest {
 protected:
  void SetUp() override {
    EmuTest::SetUp();
    startEmu();
  }
};

TEST_F(KubeEmuObjects, CreateThenGetReturnsTheObjectWithServerFields) {
  const Reply created = createSecret("ts-state", {{"a", "MQ=="}});
  ASSERT_EQ(created.status, 201) << created.raw;
  const json& meta = created.body["metadata"];
  EXPECT_EQ(meta["name"], "ts-state");
  EXPECT_EQ(meta["namespace"], "tailscale");
  EXPECT_FALSE(meta["uid"].get<std::string>().empty());
  EXPECT_FALSE(meta["resourceVersion"].get<std::string>().empty());
  EXPECT_FALSE(meta["creationTimestamp"].get<std::string>().empty());
  EXPECT_EQ(created.body["type"], "Opaque");

  const Reply got = call("GET", secretPath("ts-state"), kAgentToken);
  ASSERT_EQ(got.status, 200) << got.raw;
  EXPECT_EQ(got.body["kind"], "Secret");
  EXPECT_EQ(got.body["apiVersion"], "v1");
  EXPECT_EQ(got.body["data"], json({{"a", "MQ=="}}));
  EXPECT_EQ(got.body["metadata"]["uid"], meta["uid"]);
}

TEST_F(KubeEmuObjects, SecondCreateIsAlreadyExists) {
  ASSERT_EQ(createSecret("ts-state", json::object()).status, 201);
  const Reply again = createSecret("ts-state", json::object());
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.body["kind"], "Status");
  EXPECT_EQ(again.body["status"], "Failure");
  EXPECT_EQ(again.body["reason"], "AlreadyExists");
  EXPECT_EQ(again.body["message"], "secrets \"ts-state\" already exists");
  EXPECT_EQ(again.body["details"], json({{"name", "ts-state"}, {"kind", "secrets"}}));
  EXPECT_EQ(again.body["code"], 409);
}

TEST_F(KubeEmuObjects, GetOfAMissingObjectIsNotFoundStatus) {
  const Reply got = call("GET", secretPath("ts-state"), kAgentToken);
  EXPECT_EQ(got.status, 404);
  EXPECT_EQ(got.body["reason"], "NotFound");
  EXPECT_EQ(got.body["message"], "secrets \"ts-state\" not found");
  EXPECT_EQ(got.body["details"]["kind"], "secrets");
}

TEST_F(KubeEmuObjects, StrategicMergePatchKeepsOtherKeysAndNullDeletes) {
  ASSERT_EQ(
      createSecret("ts-state", {{"_machinekey", "bWs="}, {"old", "b2xk"}, {"a", "MQ=="}}).status,
      201);
  const Reply patched = call("PATCH", secretPath("ts-state") + "?fieldManager=ts-kube-agent",
                             kAgentToken, R"({"data":{"a":"Mg==","device_id":"ZGV2","old":null}})",
                             "application/strategic-merge-patch+json");
  ASSERT_EQ(patched.status, 200) << patched.raw;
  EXPECT_EQ(patched.body["data"],
            json({{"_machinekey", "bWs="}, {"a", "Mg=="}, {"device_id", "ZGV2"}}));
  const auto managers = patched.body["metadata"]["managedFields"];
  bool agent_owns_device_id = false;
  for (const auto& m : managers) {
    if (m["manager"] == "ts-kube-agent") {
      agent_owns_device_id = m["fieldsV1"]["f:data"].contains("f:device_id");
    }
  }
  EXPECT_TRUE(agent_owns_device_id) << managers.dump();
}

TEST_F(KubeEmuObjects, EveryChangeIncrementsResourceVersionAndNoOpDoesNot) {
  const Reply created = createSecret("ts-state", {{"a", "MQ=="}});
  const long rv1 = std::stol(created.body["metadata"]["resourceVersion"].get<std::string>());
  const Reply changed = call("PATCH", secretPath("ts-state"), kAgentToken,
                             R"({"data":{"a":"Mg=="}})", "application/strategic-merge-patch+json");
  const long rv2 = std::stol(changed.body["metadata"]["resourceVersion"].get<std::string>());
  EXPECT_GT(rv2, rv1);
  const Reply same = call("PATCH", secretPath("ts-state"), kAgentToken, R"({"data":{"a":"Mg=="}})",
                          "application/strategic-merge-patch+json");
  EXPECT_EQ(same.body["metadata"]["resourceVersion"], changed.body["metadata"]["resourceVersion"]);
}

TEST_F(KubeEmuObjects, StringDataIsFoldedIntoBase64Data) {
  const json body = {{"metadata", {{"name", "ts-state"}}}, {"stringData", {{"k", "hello"}}}};
  const Reply created = call("POST", secretPath(), kAdminToken, body.dump());
  ASSERT_EQ(created.status, 201) << created.raw;
  EXPECT_EQ(created.body["data"]["k"], "aGVsbG8=");
  EXPECT_FALSE(created.body.contains("stringData"));
}

TEST_F(KubeEmuObjects, InvalidBase64IsABadRequest) {
  const Reply created = createSecret("ts-state", {{"a", "not base64!"}});
  EXPECT_EQ(created.status, 400);
  EXPECT_EQ(created.body["reason"], "BadRequest");
  EXPECT_EQ(created.body["message"],
            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input "
            "byte 3");
}

TEST_F(KubeEmuObjects, InvalidKeyIsUnprocessableWithCauses) {
  const Reply created = createSecret("ts-state", {{"bad/key", "MQ=="}});
  EXPECT_EQ(created.status, 422);
  EXPECT_EQ(created.body["reason"], "Invalid");
  EXPECT_EQ(created.body["details"]["kind"], "Secret");
  EXPECT_EQ(created.body["details"]["causes"][0]["field"], "data[bad/key]");
  EXPECT_TRUE(created.body["message"].get<std::string>().starts_with(
      "Secret \"ts-state\" is invalid: data[bad/key]: Invalid value: \"bad/key\""));
}

TEST_F(KubeEmuObjects, StalePutIsConflictAndCurrentPutSucceeds) {
  const Reply created = createSecret("ts-state", {{"a", "MQ=="}});
  json obj = created.body;
  ASSERT_EQ(call("PATCH", secretPath("ts-state"), kAgentToken, R"({"data":{"b":"Mg=="}})",
                 "application/strategic-merge-patch+json")
                .status,
            200);
  obj["data"]["c"] = "Mw==";
  const Reply stale = call("PUT", secretPath("ts-state"), kAgentToken, obj.dump());
  EXPECT_EQ(stale.status, 409);
  EXPECT_EQ(stale.body["reason"], "Conflict");
  EXPECT_EQ(stale.body["message"],
            "Operation cannot be fulfilled on secrets \"ts-state\": the object has been modified; "
            "please apply your changes to the latest version and try again");

  const Reply current = call("GET", secretPath("ts-state"), kAgentToken);
  obj = current.body;
  obj["data"]["c"] = "Mw==";
  const Reply put = call("PUT", secretPath("ts-state"), kAgentToken, obj.dump());
  ASSERT_EQ(put.status, 200) << put.raw;
  EXPECT_EQ(put.body["data"], json({{"a", "MQ=="}, {"b", "Mg=="}, {"c", "Mw=="}}));
}

TEST_F(KubeEmuObjects, StrategicPatchWithBadBase64IsInvalidNamingThePatch) {
  ASSERT_EQ(createSecret("ts-state", json::object()).status, 201);
  const Reply patched = call("PATCH", secretPath("ts-state"), kAgentToken, R"({"data":{"z":"!!"}})",
                             "application/strategic-merge-patch+json");
  EXPECT_EQ(patched.status, 422);
  EXPECT_EQ(patched.body["message"],
            " \"\" is invalid: patch: Invalid value: \"map[data:map[z:!!]]\": error decoding from "
            "json: illegal base64 data at input byte 0");
  EXPECT_EQ(patched.body["details"]["causes"][0]["field"], "patch");
}

TEST_F(KubeEmuObjects, PatchOfAMissingObjectIsNotFound) {
  const Reply patched = call("PATCH", secretPath("ts-state"), kAgentToken, R"({"data":{}})",
                             "application/strategic-merge-patch+json");
  EXPECT_EQ(patched.status, 404);
  EXPECT_EQ(patched.body["reason"], "NotFound");
}

TEST_F(KubeEmuObjects, PatchWithAnUnknownContentTypeIsUnsupportedMediaType) {
  ASSERT_EQ(createSecret("ts-state", json::object()).status, 201);
  // JSON merge patch and JSON patch too: kube-emu serves only the strategic merge the agent sends.
  for (const char* type :
       {"application/json", "application/merge-patch+json", "application/json-patch+json"}) {
    const Reply patched =
        call("PATCH", secretPath("ts-state"), kAgentToken, R"({"data":{}})", type);
    EXPECT_EQ(patched.status, 415) << type;
    EXPECT_EQ(patched.body["reason"], "UnsupportedMediaType") << type;
  }
}

TEST_F(KubeEmuObjects, PatchWithAStaleResourceVersionIsConflict) {
  ASSERT_EQ(createSecret("ts-state", json::object()).status, 201);
  const Reply patched = call("PATCH", secretPath("ts-state"), kAgentToken,
                             R"({"metadata":{"resourceVersion":"1"},"data":{"a":"MQ=="}})",
                             "application/strategic-merge-patch+json");
  EXPECT_EQ(patched.status, 409);
  EXPECT_EQ(patched.body["reason"], "Conflict");
}

TEST_F(KubeEmuObjects, ConfigMapsSupportTheSameVerbs) {
  const json body = {{"metadata", {{"name", "ts-state"}}}, {"data", {{"a", "1"}, {"b", "2"}}}};
  ASSERT_EQ(call("POST", configMapPath(), kAdminToken, body.dump()).status, 201);
  const Reply patched =
      call("PATCH", configMapPath("ts-state"), kAgentToken, R"({"data":{"a":"one","b":null}})",
           "application/strategic-merge-patch+json");
  ASSERT_EQ(patched.status, 200) << patched.raw;
  EXPECT_EQ(patched.body["kind"], "ConfigMap");
  EXPECT_EQ(patched.body["data"], json({{"a", "one"}}));
}

TEST_F(KubeEmuObjects, ListFiltersByNamespaceAndRefusesSelectors) {
  const json labelled = {{"metadata", {{"name", "one"}, {"labels", {{"app", "ts"}}}}}};
  ASSERT_EQ(call("POST", secretPath(), kAdminToken, labelled.dump()).status, 201);
  ASSERT_EQ(createSecret("two", json::object()).status, 201);
  ASSERT_EQ(createSecret("three", json::object(), "other").status, 201);

  const Reply all = call("GET", "/api/v1/secrets", kAdminToken);
  ASSERT_EQ(all.status, 200);
  EXPECT_EQ(all.body["kind"], "SecretList");
  EXPECT_EQ(all.body["items"].size(), 3u);
  const Reply ns = call("GET", secretPath(), kAdminToken);
  EXPECT_EQ(ns.body["items"].size(), 2u);
  // Not filtered silently: a selector (or a dry run) is refused, naming what is not implemented.
  for (const std::string query :
       {"?labelSelector=app%3Dts", "?fieldSelector=metadata.name%3Done"}) {
    const Reply by_selector = call("GET", secretPath() + query, kAdminToken);
    EXPECT_EQ(by_selector.status, 400) << query;
    EXPECT_NE(by_selector.body.value("message", "").find("does not implement"), std::string::npos)
        << by_selector.raw;
  }
  EXPECT_EQ(call("POST", secretPath() + "?dryRun=All", kAdminToken, labelled.dump()).status, 400);
}

TEST_F(KubeEmuObjects, DeleteAnswersSuccessStatusThenNotFound) {
  ASSERT_EQ(createSecret("ts-state", json::object()).status, 201);
  const Reply deleted = call("DELETE", secretPath("ts-state"), kAdminToken);
  ASSERT_EQ(deleted.status, 200);
  EXPECT_EQ(deleted.body["status"], "Success");
  EXPECT_EQ(call("GET", secretPath("ts-state"), kAdminToken).status, 404);
}

}  // namespace
}  // namespace tsk::kube_emu
