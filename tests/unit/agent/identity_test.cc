#include "agent/identity.h"

#include <gtest/gtest.h>

namespace tsk::agent {
namespace {

watcher::NodeState runningNode() {
  watcher::NodeState st;
  st.connected = true;
  st.synced = true;
  st.state = watcher::BackendState::Running;
  st.tailnet_name = "example.com";
  watcher::SelfNode self;
  self.stable_id = "nSdcr7Qx2CNTRL";
  self.name = "demo-sidecar-0.tail3f9a2c.ts.net.";
  self.addresses = {"100.90.12.34", "fd7a:115c:a1e0::6a01:c22"};
  self.tags = {"tag:k8s"};
  self.key_expiry = "2026-05-24T10:00:00Z";
  self.host_name = "demo-sidecar-0";
  st.self = self;
  return st;
}

TEST(Identity, UpstreamKeysAndFormats) {
  const auto kv =
      identityFor(runningNode(), {.keys = upstreamKeys(), .pod_uid = "", .clear_on_logout = false});
  ASSERT_TRUE(kv);
  EXPECT_EQ(*kv, (KeyValues{{"device_id", "nSdcr7Qx2CNTRL"},
                            {"device_fqdn", "demo-sidecar-0.tail3f9a2c.ts.net."},
                            {"device_ips", R"(["100.90.12.34","fd7a:115c:a1e0::6a01:c22"])"}}));
}

TEST(Identity, PodUidOnlyWhenSet) {
  const auto kv = identityFor(
      runningNode(), {.keys = upstreamKeys(), .pod_uid = "uid-7", .clear_on_logout = false});
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->at("pod_uid"), "uid-7");
}

TEST(Identity, NothingToPublishUntilTheSelfNodeIsKnown) {
  auto st = runningNode();
  st.self.reset();
  EXPECT_FALSE(identityFor(st, {}));
}

TEST(Identity, ExtraKeysWhenConfigured) {
  const auto kv = identityFor(
      runningNode(), {.keys = {IdentityKey::BackendState, IdentityKey::TailnetName,
                               IdentityKey::Tags, IdentityKey::KeyExpiry, IdentityKey::HostName},
                      .pod_uid = "",
                      .clear_on_logout = false});
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->at("backend_state"), "Running");
  EXPECT_EQ(kv->at("tailnet_name"), "example.com");
  EXPECT_EQ(kv->at("tags"), R"(["tag:k8s"])");
  EXPECT_EQ(kv->at("key_expiry"), "2026-05-24T10:00:00Z");
  EXPECT_EQ(kv->at("host_name"), "demo-sidecar-0");
}

// Upstream containerboot builds device_ips with `var ips []string` + append and json.Marshal,
// so a node without addresses gets the text `null`, not `[]`
// (docs/PROTOCOL.md#keys-containerboot-writes). Readers of the key (Go's json.Unmarshal into a
// []string) accept both.
TEST(Identity, NoAddressesIsJsonNullLikeUpstream) {
  auto st = runningNode();
  st.self->addresses.clear();
  const auto kv = identityFor(st, {});
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->at("device_ips"), "null");
  EXPECT_EQ(kv->at("device_id"), "nSdcr7Qx2CNTRL");  // the rest of the identity is still there
}

TEST(Identity, OurOwnListKeysStayJsonArraysWhenEmpty) {
  auto st = runningNode();
  st.self->tags.clear();
  const auto kv =
      identityFor(st, {.keys = {IdentityKey::Tags}, .pod_uid = "", .clear_on_logout = false});
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->at("tags"), "[]");
}

TEST(Identity, LogoutKeepsTheLastIdentityByDefault) {
  auto st = runningNode();
  st.state = watcher::BackendState::NeedsLogin;
  const auto kv = identityFor(st, {});
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->at("device_id"), "nSdcr7Qx2CNTRL");
}

TEST(Identity, LogoutDeletesDeviceKeysOnlyWhenConfigured) {
  auto st = runningNode();
  st.state = watcher::BackendState::NeedsLogin;
  st.self.reset();
  const auto kv =
      identityFor(st, {.keys = upstreamKeys(), .pod_uid = "u", .clear_on_logout = true});
  ASSERT_TRUE(kv);
  EXPECT_EQ(kv->at("device_id"), std::nullopt);
  EXPECT_EQ(kv->at("device_ips"), std::nullopt);
  EXPECT_EQ(kv->at("pod_uid"), "u");
}

TEST(Identity, JsonArrayEscapesStrings) {
  EXPECT_EQ(jsonStringArray({"a\"b", "c\\d"}), R"(["a\"b","c\\d"])");
  EXPECT_EQ(jsonStringArray({}), "[]");
}

TEST(Identity, ReservedKeysAreTailscaledState) {
  EXPECT_TRUE(isReservedKey("_machinekey"));
  EXPECT_TRUE(isReservedKey("profile-abcd"));
  EXPECT_FALSE(isReservedKey("device_id"));
  for (int i = 0; i <= static_cast<int>(IdentityKey::HostName); ++i) {
    EXPECT_FALSE(isReservedKey(identityKeyName(static_cast<IdentityKey>(i))));
  }
}

}  // namespace
}  // namespace tsk::agent
