// The pure pieces of kube-emu, without a server: patch semantics, base64 and key validation,
// selectors, RBAC and token files, protobuf decoding, human durations.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tools/kube-emu/access.h"
#include "tools/kube-emu/discovery.h"
#include "tools/kube-emu/object_rules.h"
#include "tools/kube-emu/patch.h"
#include "tools/kube-emu/protobuf.h"

namespace tsk::kube_emu {
namespace {

using nlohmann::json;

json smp(const json& original, const json& patch) {
  auto r = applyStrategicMergePatch(original, patch);
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  return r.ok() ? *r : json();
}

TEST(StrategicMergePatch, MergesMapsRecursivelyAndNullDeletes) {
  const json original = {{"data", {{"a", "1"}, {"b", "2"}}}, {"metadata", {{"name", "x"}}}};
  EXPECT_EQ(smp(original, {{"data", {{"b", nullptr}, {"c", "3"}}}}),
            json({{"data", {{"a", "1"}, {"c", "3"}}}, {"metadata", {{"name", "x"}}}}));
}

TEST(StrategicMergePatch, ReplaceDirectiveReplacesTheMap) {
  const json original = {{"data", {{"a", "1"}, {"b", "2"}}}};
  EXPECT_EQ(smp(original, {{"data", {{"$patch", "replace"}, {"c", "3"}}}}),
            json({{"data", {{"c", "3"}}}}));
}

TEST(StrategicMergePatch, DeleteDirectiveRemovesTheMap) {
  const json original = {{"data", {{"a", "1"}}}, {"type", "Opaque"}};
  EXPECT_EQ(smp(original, {{"data", {{"$patch", "delete"}}}}), json({{"type", "Opaque"}}));
}

TEST(StrategicMergePatch, FinalizersMergeAsASetAndOwnerReferencesByUid) {
  const json original = {
      {"metadata",
       {{"finalizers", {"a"}},
        {"ownerReferences", {{{"uid", "1"}, {"name", "one"}}, {{"uid", "2"}, {"name", "two"}}}}}}};
  const json patched = smp(
      original, {{"metadata",
                  {{"finalizers", {"a", "b"}},
                   {"ownerReferences",
                    {{{"uid", "2"}, {"name", "TWO"}}, {{"uid", "1"}, {"$patch", "delete"}}}}}}});
  EXPECT_EQ(patched["metadata"]["finalizers"], json({"a", "b"}));
  EXPECT_EQ(patched["metadata"]["ownerReferences"], json({{{"uid", "2"}, {"name", "TWO"}}}));
}

TEST(StrategicMergePatch, OtherListsAreReplaced) {
  EXPECT_EQ(smp({{"l", {1, 2}}}, {{"l", {3}}}), json({{"l", {3}}}));
}

TEST(StrategicMergePatch, NonObjectPatchIsABadRequest) {
  auto r = applyStrategicMergePatch(json::object(), json::array());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, 400);
}

TEST(JsonPatch, MissingValueAndUnknownOpAreUnprocessable) {
  auto r = applyJsonPatch(json::object(), json::parse(R"([{"op":"add","path":"/a"}])"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, 422);
  auto u = applyJsonPatch(json::object(), json::parse(R"([{"op":"frob","path":"/a"}])"));
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().message, "Unexpected kind: frob");
  auto bad = applyJsonPatch(json::object(), json::parse(R"({"op":"add"})"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, 400);
}

TEST(JsonPatch, ReplacingAMissingObjectKeyAddsItLikeKubeApiserver) {
  auto r = applyJsonPatch(json({{"data", json::object()}}),
                          json::parse(R"([{"op":"replace","path":"/data/k","value":"v"}])"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)["data"]["k"], "v");
}

TEST(PatchType, ComesFromTheContentTypeIgnoringParameters) {
  EXPECT_EQ(patchTypeFromContentType("application/strategic-merge-patch+json; charset=utf-8"),
            PatchType::kStrategicMerge);
  EXPECT_EQ(patchTypeFromContentType("application/merge-patch+json"), PatchType::kMerge);
  EXPECT_EQ(patchTypeFromContentType("application/json-patch+json"), PatchType::kJson);
  EXPECT_FALSE(patchTypeFromContentType("application/json").has_value());
}

TEST(Base64Validation, ReportsTheOffsetOfTheFirstBadByteLikeGo) {
  EXPECT_EQ(invalidBase64Offset(""), -1);
  EXPECT_EQ(invalidBase64Offset("YQ=="), -1);
  EXPECT_EQ(invalidBase64Offset("YWJj"), -1);
  EXPECT_EQ(invalidBase64Offset("YWI="), -1);
  EXPECT_EQ(invalidBase64Offset("abc!"), 3);
  EXPECT_EQ(invalidBase64Offset("YQ"), 0);
  EXPECT_EQ(invalidBase64Offset("YQ==="), 4);
  EXPECT_EQ(invalidBase64Offset("YQ==YQ=="), 4);
  EXPECT_EQ(base64Encode(std::string("\x00\xff\x10", 3)), "AP8Q");
  EXPECT_EQ(base64Encode("a"), "YQ==");
}

TEST(Names, FollowRfc1123) {
  EXPECT_TRUE(isValidDnsSubdomain("ts-state.v1"));
  EXPECT_FALSE(isValidDnsSubdomain("TS"));
  EXPECT_FALSE(isValidDnsSubdomain("-x"));
  EXPECT_FALSE(isValidDnsSubdomain("a..b"));
  EXPECT_TRUE(isValidDnsLabel("tailscale"));
  EXPECT_FALSE(isValidDnsLabel("a.b"));
}

TEST(LabelSelector, SupportsEqualityExistenceAndSets) {
  auto sel = parseLabelSelector("app=ts,tier!=db,owner,!legacy,zone in (a, b)");
  ASSERT_TRUE(sel.ok()) << sel.error().message;
  const auto obj = [](json labels) { return json{{"metadata", {{"labels", labels}}}}; };
  EXPECT_TRUE(sel->matches(obj({{"app", "ts"}, {"owner", "x"}, {"zone", "b"}})));
  EXPECT_FALSE(sel->matches(obj({{"app", "ts"}, {"owner", "x"}, {"zone", "c"}})));
  EXPECT_FALSE(sel->matches(obj({{"app", "ts"}, {"owner", "x"}, {"zone", "a"}, {"legacy", ""}})));
  EXPECT_FALSE(sel->matches(obj({{"app", "ts"}, {"zone", "a"}})));
}

TEST(FieldSelector, RejectsUnknownFields) {
  auto bad = parseFieldSelector(Resource::kConfigMaps, "spec.x=y");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "field label not supported: spec.x");
  auto good = parseFieldSelector(Resource::kSecrets, "metadata.name=a");
  ASSERT_TRUE(good.ok());
  EXPECT_TRUE(good->matches({{"metadata", {{"name", "a"}}}}));
}

TEST(TokenFile, ParsesKubeApiserverCsvWithQuotedGroups) {
  auto t = parseTokenFile("# comment\ntok1,alice,uid1,\"g1,g2\"\n\ntok2,bob\n");
  ASSERT_TRUE(t.ok()) << t.error().message;
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0].user, "alice");
  EXPECT_EQ((*t)[0].groups, (std::vector<std::string>{"g1", "g2"}));
  EXPECT_EQ((*t)[1].token, "tok2");
  auto bad = parseTokenFile("onlyonecolumn\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("line 1"), std::string::npos);
}

TEST(RbacPolicy, ParsesYamlAndNamesUnknownKeys) {
  auto p = RbacPolicy::parse(
      "rules:\n- users: [u]\n  verbs: [get]\n  resources: [secrets]\n  resourceNames: [s]\n");
  ASSERT_TRUE(p.ok()) << p.error().message;
  const UserInfo u{"u", {}};
  EXPECT_TRUE(p->allows(u, "get", "secrets", "any", "s"));
  EXPECT_FALSE(p->allows(u, "get", "secrets", "any", "t"));
  EXPECT_FALSE(p->allows(u, "get", "secrets", "any", ""));  // list: no name, no match
  auto bad = RbacPolicy::parse("rules:\n- users: [u]\n  verbs: [get]\n  resourcez: [x]\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("rules[0]: unknown key \"resourcez\""), std::string::npos)
      << bad.error().message;
  auto broken = RbacPolicy::parse("rules: [\n  - {\n");
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.error().message.find("line"), std::string::npos) << broken.error().message;
}

TEST(RbacPolicy, SystemMastersAndAdminUsersMayDoAnything) {
  RbacPolicy p;
  p.admin_users = {"root"};
  EXPECT_TRUE(p.allows({"root", {}}, "delete", "secrets", "ns", "x"));
  EXPECT_TRUE(p.allows({"cert-user", {"system:masters"}}, "delete", "secrets", "ns", "x"));
  EXPECT_FALSE(p.allows({"nobody", {}}, "get", "secrets", "ns", "x"));
}

// --- protobuf: a tiny encoder to build what kubectl sends -----------------------------------

std::string varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
  return out;
}
std::string field(uint32_t num, const std::string& bytes) {
  return varint((num << 3) | 2) + varint(bytes.size()) + bytes;
}
std::string entry(const std::string& k, const std::string& v) {
  return field(1, k) + field(2, v);
}

TEST(KubernetesProtobuf, DecodesASecretEnvelope) {
  const std::string meta = field(1, "s") + field(3, "ns") + field(11, entry("app", "ts"));
  const std::string secret = field(1, meta) + field(2, entry("bin", std::string("\x00\x01", 2))) +
                             field(3, "Opaque") + field(4, entry("plain", "hi"));
  const std::string type_meta = field(1, "v1") + field(2, "Secret");
  const std::string body = std::string("k8s\0", 4) + field(1, type_meta) + field(2, secret);
  auto j = decodeKubernetesProtobuf(body);
  ASSERT_TRUE(j.ok()) << j.error().message;
  EXPECT_EQ((*j)["kind"], "Secret");
  EXPECT_EQ((*j)["metadata"],
            json({{"name", "s"}, {"namespace", "ns"}, {"labels", {{"app", "ts"}}}}));
  EXPECT_EQ((*j)["data"], json({{"bin", "AAE="}}));
  EXPECT_EQ((*j)["stringData"], json({{"plain", "hi"}}));
  EXPECT_EQ((*j)["type"], "Opaque");
}

TEST(KubernetesProtobuf, RejectsGarbageWithAReason) {
  EXPECT_FALSE(decodeKubernetesProtobuf("not protobuf").ok());
  EXPECT_FALSE(decodeKubernetesProtobuf(std::string("k8s\0\x0a\xff", 6)).ok());
  const std::string pod = std::string("k8s\0", 4) + field(1, field(1, "v1") + field(2, "Pod"));
  auto r = decodeKubernetesProtobuf(pod);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("\"Pod\""), std::string::npos);
}

TEST(HumanDuration, MatchesKubernetesFormatting) {
  using std::chrono::seconds;
  EXPECT_EQ(humanDuration(seconds(5)), "5s");
  EXPECT_EQ(humanDuration(seconds(119)), "119s");
  EXPECT_EQ(humanDuration(seconds(200)), "3m20s");
  EXPECT_EQ(humanDuration(seconds(3600 * 5 + 60 * 7)), "5h7m");
  EXPECT_EQ(humanDuration(seconds(86400 * 3)), "3d");
}

}  // namespace
}  // namespace tsk::kube_emu
