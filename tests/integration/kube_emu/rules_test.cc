// The pure pieces of kube-emu, without a server: strategic merge patch semantics, base64 and key
// validation, RBAC.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tools/kube-emu/access.h"
#include "tools/kube-emu/object_rules.h"
#include "tools/kube-emu/patch.h"

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
  EXPECT_EQ(r.error().http_status, 400);
}

TEST(PatchType, OnlyStrategicMergeIsServedIgnoringParameters) {
  EXPECT_TRUE(isStrategicMergePatch("application/strategic-merge-patch+json; charset=utf-8"));
  EXPECT_FALSE(isStrategicMergePatch("application/merge-patch+json"));
  EXPECT_FALSE(isStrategicMergePatch("application/json-patch+json"));
  EXPECT_FALSE(isStrategicMergePatch("application/json"));
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

}  // namespace
}  // namespace tsk::kube_emu
