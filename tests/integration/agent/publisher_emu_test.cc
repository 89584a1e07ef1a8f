// Publisher against the real ObjectStores talking HTTPS to an in-process kube-emu: what goes on
// the wire (verbs, bodies, content types, managedFields, RBAC and fault answers). The publisher's
// logic on its own is unit-tested against a fake store (tests/unit/agent/publisher_test.cc).
// Time in the publisher comes from a ManualClock: the tests move it and wait until the publisher
// is idle (Publisher::waitIdle), never sleep or poll.
#include "agent/publisher.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <functional>

#include "k8s/base64.h"
#include "k8s/client.h"
#include "tests/support/tls/test_tls.h"
#include "tools/kube-emu/kube_emu.h"

namespace tsk::agent {
namespace {

using std::chrono::milliseconds;
using Data = std::map<std::string, std::string>;

constexpr const char* kNs = "tailscale";
constexpr const char* kAgentUser = "system:serviceaccount:tailscale:agent";
constexpr const char* kToken = "agent-token";

const tsk::testing::TestPki& pki() {
  static const tsk::testing::TestPki p;
  return p;
}

kube_emu::RbacPolicy policyAllowing(std::vector<std::string> verbs) {
  kube_emu::RbacPolicy policy;
  policy.admin_users = {"admin"};
  kube_emu::RbacRule rule;
  rule.users = {kAgentUser};
  rule.verbs = std::move(verbs);
  rule.resources = {"secrets", "configmaps"};
  rule.namespaces = {kNs};
  policy.rules.push_back(rule);
  return policy;
}

KeyValues identity(const std::string& id, const std::string& ips) {
  return {{"device_id", id}, {"device_fqdn", "node-0.tail1.ts.net."}, {"device_ips", ips}};
}

class PublisherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kube_emu::KubeEmuOptions o;
    o.cert_file = pki().serverCert();
    o.key_file = pki().serverKey();
    o.tokens = {{kToken, kAgentUser, {}}};
    o.rbac = policyAllowing({"get", "create", "patch"});
    o.threads = 4;
    emu_ = std::make_unique<kube_emu::KubeEmu>(o);
    ASSERT_TRUE(emu_->start().ok());
    k8s::ClusterConfig cfg;
    cfg.server = emu_->url();
    cfg.ca_pem = pki().caPem();
    cfg.token = kToken;
    cfg.namespace_name = kNs;
    k8s::ClientOptions copts;
    copts.qps = 0;
    api_ = std::make_unique<k8s::ApiClient>(cfg, copts, nullptr, Logger::null());
  }
  void TearDown() override {
    publisher_.reset();
    emu_->stop();
  }

  PublisherOptions options() const {
    PublisherOptions o;
    o.wait_min = milliseconds(20);
    o.wait_max = milliseconds(1'000);
    o.retry_initial = milliseconds(1'000);
    o.retry_max = milliseconds(4'000);
    return o;
  }

  Publisher& startPublisher(PublisherOptions o, Clock& clock, Logger& log = Logger::null(),
                            bool with_configmap = false) {
    std::vector<PublishTarget> targets;
    targets.push_back({"secret", k8s::makeSecretStore(*api_, kNs, "ts-state"), {}});
    if (with_configmap) {
      targets.push_back({"configmap", k8s::makeConfigMapStore(*api_, kNs, "ts-id"), {}});
    }
    publisher_ = std::make_unique<Publisher>(std::move(targets), o, log, clock);
    publisher_->start();
    return *publisher_;
  }

  // Starts a publisher and waits for its first (immediate) write, of identity n0.
  void startSynced(PublisherOptions o) {
    startPublisher(o, clock_).submitIdentities({identity("n0", R"(["100.64.0.0"])")});
    ASSERT_TRUE(settled([&] { return secretStatus().written == 1; }));
    writes_before_ = writes();
  }

  // Moves the publisher's clock and waits until it did everything then due.
  void advance(milliseconds d) {
    clock_.advance(d);
    publisher_->waitIdle();
  }
  // Every publisher call in these tests is synchronous on its thread: once it is idle, the
  // outcome is final.
  bool settled(const std::function<bool()>& cond) {
    publisher_->waitIdle();
    return cond();
  }

  // `manager` owns the seeded keys (metadata.managedFields); by default a previous run of the
  // agent.
  void seedSecret(const Data& data, const std::string& manager = "ts-kube-agent") {
    nlohmann::json encoded = nlohmann::json::object();
    for (const auto& [k, v] : data) encoded[k] = k8s::base64Encode(v);
    const nlohmann::json obj = {{"metadata", {{"name", "ts-state"}}}, {"data", encoded}};
    ASSERT_EQ(emu_->store().create(kube_emu::Resource::kSecrets, kNs, obj.dump(), {manager}).code,
              201);
  }

  Data storedSecret() {
    Data out;
    auto obj = emu_->store().find(kube_emu::Resource::kSecrets, kNs, "ts-state");
    if (!obj || !obj->contains("data")) return out;
    for (const auto& [k, v] : (*obj)["data"].items()) {
      out[k] = k8s::base64Decode(v.get<std::string>()).value_or("<bad base64>");
    }
    return out;
  }
  // Requests that changed the object (2xx PATCH, POST or PUT).
  size_t writes() const {
    size_t n = 0;
    for (auto& r : emu_->requestLog()) {
      if (r.method != "GET" && r.status >= 200 && r.status < 300) ++n;
    }
    return n;
  }

  std::vector<kube_emu::RequestRecord> requests(const std::string& method) const {
    std::vector<kube_emu::RequestRecord> out;
    for (auto& r : emu_->requestLog()) {
      if (r.method == method) out.push_back(r);
    }
    return out;
  }

  TargetStatus secretStatus() const { return publisher_->status().at(0); }

  ManualClock clock_;
  size_t writes_before_ = 0;
  std::unique_ptr<kube_emu::KubeEmu> emu_;
  std::unique_ptr<k8s::ApiClient> api_;
  std::unique_ptr<Publisher> publisher_;
};

TEST_F(PublisherTest, CreatesTheSecretWithTheFirstIdentityWithoutWaiting) {
  auto& pub = startPublisher(options(), clock_);
  pub.submitIdentities({identity("n1", R"(["100.64.0.1"])")});
  // The clock does not move: the first sync after start skips the quiet window.
  ASSERT_TRUE(settled([&] { return secretStatus().written == 1; }));
  EXPECT_EQ(storedSecret(), (Data{{"device_id", "n1"},
                                  {"device_fqdn", "node-0.tail1.ts.net."},
                                  {"device_ips", R"(["100.64.0.1"])"}}));
  EXPECT_TRUE(secretStatus().in_sync);
  EXPECT_TRUE(pub.allInSync());
  // The GET said the Secret is absent, so it is created directly: one POST, no PATCH.
  EXPECT_EQ(requests("GET").size(), 1u);
  EXPECT_EQ(requests("POST").size(), 1u);
  EXPECT_EQ(requests("PATCH").size(), 0u);
}

TEST_F(PublisherTest, SkipsWriteWhenIdentityUnchanged) {
  seedSecret({{"device_id", "n1"},
              {"device_fqdn", "node-0.tail1.ts.net."},
              {"device_ips", R"(["100.64.0.1"])"},
              {"_machinekey", "mk"}});
  auto& pub = startPublisher(options(), clock_);
  pub.submitIdentities({identity("n1", R"(["100.64.0.1"])")});
  advance(milliseconds(20));
  ASSERT_TRUE(settled([&] { return secretStatus().unchanged == 1; }));
  EXPECT_EQ(requests("GET").size(), 1u);
  EXPECT_EQ(requests("PATCH").size(), 0u);
  EXPECT_EQ(requests("POST").size(), 0u);
  EXPECT_TRUE(secretStatus().in_sync);
}

TEST_F(PublisherTest, RestartWithUnchangedIdentityMakesNoWrite) {
  {
    auto& pub = startPublisher(options(), clock_);
    pub.submitIdentities({identity("n1", R"(["100.64.0.1"])")});
    advance(milliseconds(20));
    ASSERT_TRUE(settled([&] { return secretStatus().written == 1; }));
    publisher_.reset();
  }
  emu_->clearRequestLog();
  auto& pub = startPublisher(options(), clock_);
  pub.submitIdentities({identity("n1", R"(["100.64.0.1"])")});
  advance(milliseconds(20));
  ASSERT_TRUE(settled([&] { return secretStatus().unchanged == 1; }));
  EXPECT_EQ(requests("PATCH").size(), 0u);
  EXPECT_EQ(requests("POST").size(), 0u);
  // Nothing written by this process, yet the object is confirmed in sync: the dashboard's
  // identity-age panels read last_in_sync, which a restart must not leave empty.
  const auto st = secretStatus();
  EXPECT_FALSE(st.last_write.has_value());
  ASSERT_TRUE(st.last_in_sync.has_value());
  EXPECT_EQ(*st.last_in_sync, clock_.wallNow());
}

TEST_F(PublisherTest, WritesOnlyTheKeysThatChanged) {
  seedSecret({{"device_id", "n1"},
              {"device_fqdn", "node-0.tail1.ts.net."},
              {"device_ips", R"(["100.64.0.1"])"},
              {"_machinekey", "mk"},
              {"profile-a1", "state"}});
  auto& pub = startPublisher(options(), clock_);
  pub.submitIdentities({identity("n1", R"(["100.64.0.2","fd7a:115c:a1e0::2"])")});
  advance(milliseconds(20));
  ASSERT_TRUE(settled([&] { return secretStatus().written == 1; }));
  const auto patches = requests("PATCH");
  ASSERT_EQ(patches.size(), 1u);
  const auto body = nlohmann::json::parse(patches[0].body);
  ASSERT_EQ(body["data"].size(), 1u) << patches[0].body;
  EXPECT_TRUE(body["data"].contains("device_ips"));
  EXPECT_EQ(patches[0].content_type, "application/strategic-merge-patch+json");
  const auto stored = storedSecret();
  EXPECT_EQ(stored.at("device_ips"), R"(["100.64.0.2","fd7a:115c:a1e0::2"])");
  EXPECT_EQ(stored.at("_machinekey"), "mk");
  EXPECT_EQ(stored.at("profile-a1"), "state");
}

TEST_F(PublisherTest, CoalescesABurstIntoOneWriteOfTheLatest) {
  ASSERT_NO_FATAL_FAILURE(startSynced(options()));
  auto& pub = *publisher_;
  for (int i = 1; i <= 10; ++i) {
    pub.submitIdentities({identity("n1", "[\"100.64.0." + std::to_string(i) + "\"]")});
    advance(milliseconds(10));  // each change within wait_min of the last
  }
  advance(milliseconds(20));
  ASSERT_TRUE(settled([&] { return secretStatus().written >= 2; }));
  EXPECT_EQ(secretStatus().written, 2u);
  EXPECT_EQ(writes(), writes_before_ + 1);
  EXPECT_EQ(storedSecret().at("device_ips"), R"(["100.64.0.10"])");
}

TEST_F(PublisherTest, MaxWaitBoundsTheDelayOfAContinuousBurst) {
  auto o = options();
  o.wait_max = milliseconds(100);
  ASSERT_NO_FATAL_FAILURE(startSynced(o));
  auto& pub = *publisher_;
  // A change every 10 ms for 200 ms: the quiet window never closes, wait_max forces a write.
  for (int i = 1; i <= 20; ++i) {
    pub.submitIdentities({identity("n1", "[\"100.64.1." + std::to_string(i) + "\"]")});
    advance(milliseconds(10));
    if (i == 10) {
      ASSERT_TRUE(settled([&] { return secretStatus().written == 2; }));
    }
  }
  EXPECT_GE(writes(), writes_before_ + 1);
}

TEST_F(PublisherTest, SameIdentityAgainDoesNotReopenTheWindow) {
  auto& pub = startPublisher(options(), clock_);
  pub.submitIdentities({identity("n1", R"(["100.64.0.1"])")});
  advance(milliseconds(20));
  ASSERT_TRUE(settled([&] { return secretStatus().written == 1; }));
  for (int i = 0; i < 100; ++i) pub.submitIdentities({identity("n1", R"(["100.64.0.1"])")});
  advance(milliseconds(2'000));
  // Another identity afterwards proves the thread ran past the no-op submissions.
  pub.submitIdentities({identity("n2", R"(["100.64.0.1"])")});
  advance(milliseconds(20));
  ASSERT_TRUE(settled([&] { return secretStatus().written == 2; }));
  EXPECT_EQ(secretStatus().unchanged, 0u);
  EXPECT_EQ(writes(), 2u);
}

TEST_F(PublisherTest, RetriesAFailedWriteUntilItSucceedsWithTheLatestIdentity) {
  kube_emu::FaultRule fault;
  fault.kind = kube_emu::FaultKind::kStatus;
  fault.status = 503;
  fault.count = 3;
  emu_->injectFault(fault);
  auto& pub = startPublisher(options(), clock_);
  pub.submitIdentities({identity("n1", R"(["100.64.0.1"])")});
  advance(milliseconds(20));
  ASSERT_TRUE(settled([&] { return secretStatus().failed == 1; }));
  EXPECT_FALSE(secretStatus().in_sync);
  EXPECT_NE(secretStatus().last_error.find("503"), std::string::npos) << secretStatus().last_error;
  // A newer identity arrives while the write is failing: it is the one finally written.
  pub.submitIdentities({identity("n1", R"(["100.64.0.9"])")});
  for (int i = 0; i < 10 && secretStatus().written == 0; ++i) {
    const auto failed = secretStatus().failed;
    advance(milliseconds(4'000));  // past any backoff
    ASSERT_TRUE(
        settled([&] { return secretStatus().failed > failed || secretStatus().written > 0; }));
  }
  EXPECT_EQ(secretStatus().written, 1u);
  EXPECT_TRUE(secretStatus().in_sync);
  EXPECT_EQ(secretStatus().last_error, "");
  EXPECT_EQ(storedSecret().at("device_ips"), R"(["100.64.0.9"])");
}

TEST_F(PublisherTest, ForbiddenPatchKeepsItOutOfSyncWithTheRbacReason) {
  seedSecret({{"device_id", "old"}});
  emu_->setRbac(policyAllowing({"get"}));
  auto& pub = startPublisher(options(), clock_);
  pub.submitIdentities({identity("n1", R"(["100.64.0.1"])")});
  advance(milliseconds(20));
  ASSERT_TRUE(settled([&] { return secretStatus().failed == 1; }));
  const auto st = secretStatus();
  EXPECT_FALSE(st.in_sync);
  EXPECT_NE(st.last_error.find("patch"), std::string::npos) << st.last_error;
  EXPECT_NE(st.last_error.find("Role rule"), std::string::npos) << st.last_error;
  // RBAC fixed: the next retry converges.
  emu_->setRbac(policyAllowing({"get", "patch"}));
  advance(milliseconds(4'000));
  ASSERT_TRUE(settled([&] { return secretStatus().in_sync; }));
  EXPECT_EQ(storedSecret().at("device_id"), "n1");
}

TEST_F(PublisherTest, MissingObjectWithoutCreateIsAnErrorNamingTheRule) {
  auto o = options();
  o.create_objects = false;
  auto& pub = startPublisher(o, clock_);
  pub.submitIdentities({identity("n1", R"(["100.64.0.1"])")});
  advance(milliseconds(20));
  ASSERT_TRUE(settled([&] { return secretStatus().failed == 1; }));
  EXPECT_NE(secretStatus().last_error.find("ts-state"), std::string::npos)
      << secretStatus().last_error;
  EXPECT_EQ(requests("POST").size(), 0u);
}

TEST_F(PublisherTest, FlushWritesThePendingIdentityAtOnce) {
  auto& pub = startPublisher(options(), clock_);
  pub.submitIdentities({identity("n1", R"(["100.64.0.1"])")});
  // No clock movement: the quiet window is still open when the flush starts.
  EXPECT_TRUE(pub.flush(clock_.monotonicNow() + milliseconds(10'000)));
  EXPECT_EQ(storedSecret().at("device_id"), "n1");
}

TEST_F(PublisherTest, FlushGivesUpAtOnceOnAnErrorTimeWillNotFix) {
  emu_->setRbac(policyAllowing({"get"}));
  auto& pub = startPublisher(options(), clock_);
  pub.submitIdentities({identity("n1", R"(["100.64.0.1"])")});
  // The ManualClock never reaches this deadline: flush returns only because 403 is final.
  EXPECT_FALSE(pub.flush(clock_.monotonicNow() + std::chrono::minutes(10)));
  EXPECT_NE(secretStatus().last_error.find("forbidden"), std::string::npos);
}

TEST_F(PublisherTest, FlushThatCannotWriteLogsPlainlyWhatWasLost) {
  emu_->setRbac(policyAllowing({"get"}));
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  Logger log(f);
  auto& pub = startPublisher(options(), RealClock::instance(), log);
  pub.submitIdentities({identity("n1", R"(["100.64.0.1"])")});
  EXPECT_FALSE(pub.flush(RealClock::instance().monotonicNow() + milliseconds(300)));
  publisher_.reset();
  std::fclose(f);
  const std::string out(buf, len);
  std::free(buf);
  EXPECT_NE(out.find("NOT written"), std::string::npos) << out;
  EXPECT_NE(out.find("secret tailscale/ts-state"), std::string::npos) << out;
  EXPECT_NE(out.find("device_id"), std::string::npos) << out;  // key names, never values
  EXPECT_EQ(out.find("100.64.0.1"), std::string::npos) << out;
}

TEST_F(PublisherTest, ConfigMapTargetHoldsPlainStrings) {
  auto& pub = startPublisher(options(), clock_, Logger::null(), /*with_configmap=*/true);
  pub.submitIdentities({identity("n1", R"(["100.64.0.1"])"), identity("n1", R"(["100.64.0.1"])")});
  advance(milliseconds(20));
  ASSERT_TRUE(settled([&] { return pub.allInSync(); }));
  auto cm = emu_->store().find(kube_emu::Resource::kConfigMaps, kNs, "ts-id");
  ASSERT_TRUE(cm);
  EXPECT_EQ((*cm)["data"]["device_ips"], R"(["100.64.0.1"])");
}

// Drift: the object changed behind the publisher's back. The checks run on the publisher's
// clock: a test moves it past the interval plus the largest jitter (10 %).
constexpr milliseconds kPastDriftCheck{66'001};

TEST_F(PublisherTest, DeletedSecretIsRecreatedAtTheNextDriftCheck) {
  startSynced(options());
  ASSERT_TRUE(emu_->store().remove(kube_emu::Resource::kSecrets, kNs, "ts-state").code < 300);
  ASSERT_TRUE(storedSecret().empty());
  advance(kPastDriftCheck);
  ASSERT_TRUE(settled([&] { return secretStatus().drift_repairs == 1; }));
  EXPECT_EQ(storedSecret(), (Data{{"device_id", "n0"},
                                  {"device_fqdn", "node-0.tail1.ts.net."},
                                  {"device_ips", R"(["100.64.0.0"])"}}));
  EXPECT_TRUE(secretStatus().in_sync);
  EXPECT_EQ(secretStatus().written, 2u);
  EXPECT_EQ(requests("POST").size(), 2u);
}

TEST_F(PublisherTest, KeysOverwrittenBySomeoneElseAreRewrittenAndOnlyThose) {
  auto o = options();
  o.write_policy.foreign = ForeignKeyPolicy::Overwrite;  // the key is then someone else's
  startSynced(o);
  // Another client (its own field manager) changes one of our keys and adds one of its own.
  const auto patched =
      emu_->store().patch(kube_emu::Resource::kSecrets, kNs, "ts-state",
                          R"({"data":{"device_id":")" + k8s::base64Encode("evil") +
                              R"(","theirs":")" + k8s::base64Encode("x") + R"("}})",
                          {"someone-else"});
  ASSERT_LT(patched.code, 300) << patched.body;
  const size_t patches_before = requests("PATCH").size();
  advance(kPastDriftCheck);
  ASSERT_TRUE(settled([&] { return secretStatus().drift_repairs == 1; }));
  EXPECT_EQ(storedSecret().at("device_id"), "n0");
  EXPECT_EQ(storedSecret().at("theirs"), "x");  // not ours: left alone
  const auto patches = requests("PATCH");
  ASSERT_EQ(patches.size(), patches_before + 1);
  const auto body = nlohmann::json::parse(patches.back().body);
  EXPECT_EQ(body["data"].size(), 1u) << body.dump();  // only the key that differed
  EXPECT_TRUE(body["data"].contains("device_id")) << body.dump();
}

// Another writer (upstream containerboot's storeDeviceEndpoints, say) owns device_fqdn: by
// default the agent writes its other keys, leaves that one alone, says so once, and N drift
// checks make no write at all (the two writers never fight).
TEST_F(PublisherTest, KeyAnotherFieldManagerOwnsIsSkippedAndNeverFoughtOver) {
  seedSecret({{"device_fqdn", "routed.tail1.ts.net."}}, "containerboot");
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  Logger log(f);
  auto& pub = startPublisher(options(), clock_, log);
  pub.submitIdentities({identity("n0", R"(["100.64.0.0"])")});
  ASSERT_TRUE(settled([&] { return secretStatus().written == 1; }));
  EXPECT_EQ(storedSecret().at("device_fqdn"), "routed.tail1.ts.net.");
  EXPECT_EQ(storedSecret().at("device_id"), "n0");
  const auto patches = requests("PATCH");
  ASSERT_EQ(patches.size(), 1u);
  EXPECT_FALSE(nlohmann::json::parse(patches[0].body)["data"].contains("device_fqdn"));
  EXPECT_TRUE(secretStatus().in_sync);  // for the keys it may write
  EXPECT_EQ(secretStatus().foreign_keys,
            (KeyManagers{{"device_fqdn", std::set<std::string>{"containerboot"}}}));

  const uint64_t written = writes();
  for (uint64_t i = 1; i <= 5; ++i) {
    advance(kPastDriftCheck);
    ASSERT_TRUE(settled([&] { return secretStatus().drift_checks == i; })) << i;
  }
  EXPECT_EQ(writes(), written);
  EXPECT_EQ(secretStatus().drift_repairs, 0u);
  EXPECT_EQ(storedSecret().at("device_fqdn"), "routed.tail1.ts.net.");
  publisher_.reset();
  std::fclose(f);
  const std::string out(buf, len);
  std::free(buf);
  size_t warnings = 0;
  for (size_t at = out.find("another field manager owns this key"); at != std::string::npos;
       at = out.find("another field manager owns this key", at + 1)) {
    ++warnings;
  }
  EXPECT_EQ(warnings, 1u) << out;  // once per key and manager, not per check
  EXPECT_NE(out.find("containerboot"), std::string::npos) << out;
}

TEST_F(PublisherTest, OverwritePolicyTakesAKeyAnotherFieldManagerOwns) {
  seedSecret({{"device_fqdn", "routed.tail1.ts.net."}}, "containerboot");
  auto o = options();
  o.write_policy.foreign = ForeignKeyPolicy::Overwrite;
  auto& pub = startPublisher(o, clock_);
  pub.submitIdentities({identity("n0", R"(["100.64.0.0"])")});
  ASSERT_TRUE(settled([&] { return secretStatus().written == 1; }));
  EXPECT_EQ(storedSecret().at("device_fqdn"), "node-0.tail1.ts.net.");
  // The next read finds the agent the key's owner: nothing foreign any more.
  advance(kPastDriftCheck);
  ASSERT_TRUE(settled([&] { return secretStatus().drift_checks == 1; }));
  EXPECT_TRUE(secretStatus().foreign_keys.empty());
}

TEST_F(PublisherTest, DriftChecksWithNothingChangedReadButNeverWrite) {
  startSynced(options());
  const size_t gets_before = requests("GET").size();
  for (uint64_t i = 1; i <= 3; ++i) {
    advance(kPastDriftCheck);
    ASSERT_TRUE(settled([&] { return secretStatus().drift_checks == i; })) << i;
  }
  ASSERT_TRUE(settled([&] { return requests("GET").size() == gets_before + 3; }));
  EXPECT_EQ(writes(), writes_before_);
  const auto st = secretStatus();
  EXPECT_TRUE(st.in_sync);
  EXPECT_EQ(st.drift_repairs, 0u);
  EXPECT_EQ(st.written, 1u);
  EXPECT_EQ(st.unchanged, 0u);  // a check is not a publish attempt
  // Each check that finds the identity confirms it: last_in_sync moves, last_write does not.
  ASSERT_TRUE(st.last_in_sync.has_value() && st.last_write.has_value());
  EXPECT_GT(*st.last_in_sync, *st.last_write);
  EXPECT_EQ(*st.last_in_sync, clock_.wallNow());
}

TEST_F(PublisherTest, DriftThatCannotBeRepairedKeepsItOutOfSyncSayingWhy) {
  auto o = options();
  o.create_objects = false;
  seedSecret({});
  startSynced(o);
  ASSERT_TRUE(emu_->store().remove(kube_emu::Resource::kSecrets, kNs, "ts-state").code < 300);
  advance(kPastDriftCheck);
  ASSERT_TRUE(settled([&] { return !secretStatus().in_sync; }));
  EXPECT_NE(secretStatus().last_error.find("does not exist"), std::string::npos)
      << secretStatus().last_error;
  EXPECT_FALSE(publisher_->allInSync());
  // Someone recreates it: the retry (with backoff, not waiting for the next check) repairs it.
  seedSecret({{"other", "v"}});
  advance(milliseconds(4'000));
  ASSERT_TRUE(settled([&] { return secretStatus().in_sync; })) << secretStatus().last_error;
  EXPECT_EQ(secretStatus().drift_repairs, 1u);
  EXPECT_EQ(storedSecret().at("device_id"), "n0");
  EXPECT_EQ(storedSecret().at("other"), "v");
}

TEST_F(PublisherTest, CheckSoonRepairsWithoutWaitingForTheInterval) {
  startSynced(options());
  ASSERT_TRUE(emu_->store().remove(kube_emu::Resource::kSecrets, kNs, "ts-state").code < 300);
  publisher_->checkSoon();  // what the agent calls after a bus reconnect; the clock stays put
  ASSERT_TRUE(settled([&] { return secretStatus().drift_repairs == 1; }));
  EXPECT_EQ(storedSecret().at("device_id"), "n0");
}

TEST_F(PublisherTest, ZeroIntervalMeansNoPeriodicCheck) {
  auto o = options();
  o.drift_check_interval = milliseconds(0);
  startSynced(o);
  const size_t gets = requests("GET").size();
  advance(std::chrono::hours(48));
  // A second, different identity is the barrier: anything a check would do comes before it.
  publisher_->submitIdentities({identity("n1", R"(["100.64.0.0"])")});
  advance(milliseconds(20));
  ASSERT_TRUE(settled([&] { return secretStatus().written == 2; }));
  EXPECT_EQ(requests("GET").size(), gets);
}

}  // namespace
}  // namespace tsk::agent
