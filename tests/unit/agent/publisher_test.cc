// The publisher's logic against a fake ObjectStore (tests/unit/agent/fake_object_store.h): no
// HTTPS, no emulator. Time is a ManualClock: a test moves it (which wakes the publisher) and
// waits until the publisher has done everything then due (Publisher::waitIdle); nothing sleeps,
// nothing polls, every outcome below is exact. What the real stores put on the wire is tested
// against kube-emu in tests/integration/agent/publisher_emu_test.cc.
#include "agent/publisher.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "k8s/errors.h"
#include "tests/unit/agent/fake_object_store.h"

namespace tsk::agent {
namespace {

using std::chrono::milliseconds;
using testing::FakeObjectStore;
using Data = std::map<std::string, std::string>;

KeyValues identity(const std::string& id, const std::string& ips) {
  return {{"device_id", id}, {"device_fqdn", "node-0.tail1.ts.net."}, {"device_ips", ips}};
}
Data stored(const std::string& id, const std::string& ips) {
  return {{"device_id", id}, {"device_fqdn", "node-0.tail1.ts.net."}, {"device_ips", ips}};
}

Error unavailable() {
  return k8s::httpStatusError("patch", FakeObjectStore::ref(), 503, "etcd timeout");
}
Error tooManyRequests(milliseconds retry_after) {
  Error e = k8s::httpStatusError("patch", FakeObjectStore::ref(), 429, "slow down");
  e.retry_after = retry_after;
  return e;
}
Error forbidden(const std::string& verb) {
  return k8s::forbiddenError(verb, FakeObjectStore::ref(), "");
}
Error refused() {
  return Error{"PATCH https://k8s/x: could not connect", ErrorKind::Transport};
}

// Captures what a Logger writes.
class CapturedLog {
 public:
  CapturedLog() : file_(open_memstream(&buf_, &len_)), log_(file_) {}
  ~CapturedLog() {
    if (file_) std::fclose(file_);
    std::free(buf_);
  }
  Logger& logger() { return log_; }
  std::string text() {
    std::fflush(file_);
    return std::string(buf_, len_);
  }

 private:
  char* buf_ = nullptr;
  size_t len_ = 0;
  std::FILE* file_;
  Logger log_;
};

size_t occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class PublisherTest : public ::testing::Test {
 protected:
  PublisherOptions options() const {
    PublisherOptions o;
    o.wait_min = milliseconds(20);
    o.wait_max = milliseconds(1'000);
    o.retry_initial = milliseconds(1'000);
    o.retry_max = milliseconds(4'000);
    o.retry_after_jitter = milliseconds(1'000);
    o.drift_check_interval = milliseconds(60'000);
    return o;
  }

  Publisher& start() { return startWith(options()); }
  Publisher& startWith(PublisherOptions o, Logger& log = Logger::null()) {
    std::vector<PublishTarget> targets;
    targets.push_back({"secret", std::make_unique<FakeObjectStore>(store_), {}});
    publisher_ = std::make_unique<Publisher>(std::move(targets), o, log, clock_);
    publisher_->start();
    return *publisher_;
  }

  // Submits and waits until the publisher did everything then due.
  void submit(const KeyValues& id) {
    publisher_->submitIdentities({id});
    publisher_->waitIdle();
  }
  void advance(milliseconds d) {
    clock_.advance(d);
    publisher_->waitIdle();
  }
  // Starts, writes n0 (the first sync does not wait) and checks it landed.
  void startSynced(PublisherOptions o) {
    startWith(o);
    submit(identity("n0", "[1]"));
    ASSERT_EQ(status().written, 1u);
    ASSERT_EQ(store_->object(), stored("n0", "[1]"));
  }

  TargetStatus status() const { return publisher_->status().at(0); }

  ManualClock clock_;
  std::shared_ptr<FakeObjectStore::State> store_ = std::make_shared<FakeObjectStore::State>();
  std::unique_ptr<Publisher> publisher_;
};

// ---- first sync, changed keys, coalescing ----

TEST_F(PublisherTest, CreatesTheMissingObjectWithTheFirstIdentityWithoutWaiting) {
  start();
  submit(identity("n1", "[1]"));  // the clock does not move
  EXPECT_EQ(store_->object(), stored("n1", "[1]"));
  // The read said it is absent: created directly, one POST, no PATCH first.
  EXPECT_EQ(store_->count("get"), 1u);
  EXPECT_EQ(store_->count("create"), 1u);
  EXPECT_EQ(store_->count("patch"), 0u);
  EXPECT_TRUE(status().in_sync);
  EXPECT_TRUE(publisher_->allInSync());
  EXPECT_EQ(status().last_write, clock_.wallNow());
}

TEST_F(PublisherTest, UnchangedIdentityIsReadButNotWritten) {
  store_->put({{"device_id", "n1"},
               {"device_fqdn", "node-0.tail1.ts.net."},
               {"device_ips", "[1]"},
               {"_machinekey", "mk"}},
              "ts-kube-agent");
  start();
  submit(identity("n1", "[1]"));
  EXPECT_EQ(store_->count("get"), 1u);
  EXPECT_EQ(store_->writes(), 0u);
  EXPECT_EQ(status().unchanged, 1u);
  EXPECT_TRUE(status().in_sync);
  // Confirmed in sync without writing: last_in_sync set, last_write not.
  EXPECT_EQ(status().last_in_sync, clock_.wallNow());
  EXPECT_FALSE(status().last_write.has_value());
}

TEST_F(PublisherTest, WritesOnlyTheKeysThatDifferAndLeavesOthersAlone) {
  store_->put({{"device_id", "n1"},
               {"device_fqdn", "node-0.tail1.ts.net."},
               {"device_ips", "[1]"},
               {"_machinekey", "mk"}},
              "ts-kube-agent");
  store_->putUndecodable("device_fqdn", "ts-kube-agent");
  start();
  submit(identity("n1", "[2]"));
  const auto calls = store_->calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[1].verb, "patch");
  // device_ips changed; device_fqdn could not be decoded so it counts as differing.
  EXPECT_EQ(calls[1].changes,
            (k8s::DataChanges{{"device_fqdn", "node-0.tail1.ts.net."}, {"device_ips", "[2]"}}));
  EXPECT_EQ(store_->object()->at("_machinekey"), "mk");
}

TEST_F(PublisherTest, ABurstWithinTheQuietWindowIsOneWriteOfTheLatest) {
  startSynced(options());
  for (int i = 1; i <= 10; ++i) {
    submit(identity("n1", "[" + std::to_string(i) + "]"));
    advance(milliseconds(10));  // each change within wait_min (20 ms) of the last
  }
  EXPECT_EQ(store_->writes(), 1u);  // only the first sync so far
  advance(milliseconds(10));        // 20 ms after the last change
  EXPECT_EQ(store_->writes(), 2u);
  EXPECT_EQ(store_->object(), stored("n1", "[10]"));
  EXPECT_EQ(status().written, 2u);
}

TEST_F(PublisherTest, WaitMaxBoundsTheDelayOfAContinuousBurst) {
  auto o = options();
  o.wait_max = milliseconds(100);
  startSynced(o);
  // A change every 10 ms: the quiet window never closes; wait_max (100 ms after the first
  // change) forces a write of whatever is newest then.
  for (int i = 1; i <= 10; ++i) {
    submit(identity("n1", "[" + std::to_string(i) + "]"));
    EXPECT_EQ(store_->writes(), 1u) << i;
    advance(milliseconds(10));
  }
  EXPECT_EQ(store_->writes(), 2u);
  EXPECT_EQ(store_->object(), stored("n1", "[10]"));
}

TEST_F(PublisherTest, TheSameIdentityAgainDoesNotReopenTheWindow) {
  startSynced(options());
  for (int i = 0; i < 100; ++i) submit(identity("n0", "[1]"));
  advance(milliseconds(2'000));
  EXPECT_EQ(store_->calls().size(), 2u);  // the first GET and POST only
  EXPECT_EQ(status().unchanged, 0u);
}

// ---- the one retry layer ----

TEST_F(PublisherTest, AFailedWriteIsRetriedWithBackoffAndTheLatestIdentity) {
  store_->failNext("create", unavailable());
  store_->failNext("create", unavailable());
  start();
  submit(identity("n1", "[1]"));
  EXPECT_EQ(status().failed, 1u);
  EXPECT_FALSE(status().in_sync);
  EXPECT_NE(status().last_error.find("503"), std::string::npos) << status().last_error;
  // A newer identity arrives while the write is failing; the quiet window does not override
  // the backoff: nothing happens before the first delay's lower bound (retry_initial / 2).
  submit(identity("n1", "[9]"));
  advance(milliseconds(499));
  EXPECT_EQ(store_->count("create"), 1u);
  advance(milliseconds(501));  // retry_initial: past the first delay
  EXPECT_EQ(store_->count("create"), 2u);
  EXPECT_EQ(status().failed, 2u);
  // The second delay is in [1 s, 2 s].
  advance(milliseconds(999));
  EXPECT_EQ(store_->count("create"), 2u);
  advance(milliseconds(1'001));
  EXPECT_EQ(status().written, 1u);
  EXPECT_TRUE(status().in_sync);
  EXPECT_EQ(status().last_error, "");
  // Every attempt sent the newest identity there was; the last one wrote it.
  const auto calls = store_->calls();
  EXPECT_EQ(calls.back().created, stored("n1", "[9]"));
  EXPECT_EQ(store_->object(), stored("n1", "[9]"));
}

TEST_F(PublisherTest, BackoffIsResetBySuccess) {
  startSynced(options());
  store_->failAlways("patch", unavailable());
  submit(identity("n1", "[1]"));
  advance(milliseconds(20));
  for (int i = 0; i < 4; ++i) advance(milliseconds(4'000));  // grows to retry_max
  const size_t before = store_->count("patch");
  store_->clearFaults();
  advance(milliseconds(4'000));
  EXPECT_EQ(store_->count("patch"), before + 1);
  EXPECT_TRUE(status().in_sync);
  // A later failure starts again at retry_initial: retried within 1 s.
  store_->failNext("patch", unavailable());
  submit(identity("n2", "[1]"));
  advance(milliseconds(20));
  EXPECT_EQ(status().failed, before + 1) << "one failure per attempt";
  advance(milliseconds(1'000));
  EXPECT_EQ(store_->object(), stored("n2", "[1]"));
}

TEST_F(PublisherTest, TransportErrorsAreRetriedLikeAnyOther) {
  store_->failNext("get", refused());
  start();
  submit(identity("n1", "[1]"));
  EXPECT_EQ(status().failed, 1u);
  EXPECT_NE(status().last_error.find("could not connect"), std::string::npos);
  advance(milliseconds(1'000));
  EXPECT_EQ(store_->object(), stored("n1", "[1]"));
}

TEST_F(PublisherTest, RetryAfterIsHonouredPlusBoundedJitter) {
  startSynced(options());
  store_->failNext("patch", tooManyRequests(milliseconds(5'000)));
  submit(identity("n1", "[1]"));
  advance(milliseconds(20));
  ASSERT_EQ(status().failed, 1u);
  // Not before Retry-After (although the backoff alone would allow 500 ms)...
  advance(milliseconds(4'999));
  EXPECT_EQ(store_->count("patch"), 1u);
  // ...and at most retry_after_jitter after it.
  advance(milliseconds(1'001));
  EXPECT_EQ(store_->count("patch"), 2u);
  EXPECT_EQ(store_->object(), stored("n1", "[1]"));
}

TEST_F(PublisherTest, TheBackoffStillAppliesWhenItIsLongerThanRetryAfter) {
  startSynced(options());
  // Two ordinary failures make the backoff [2 s, 4 s]; then a 429 asking for 0 s.
  store_->failNext("patch", unavailable());
  store_->failNext("patch", unavailable());
  store_->failNext("patch", tooManyRequests(milliseconds(0)));
  submit(identity("n1", "[1]"));
  advance(milliseconds(20));
  advance(milliseconds(1'000));
  advance(milliseconds(2'000));
  ASSERT_EQ(status().failed, 3u);
  advance(milliseconds(1'999));
  EXPECT_EQ(store_->count("patch"), 3u);
  advance(milliseconds(2'001));
  EXPECT_EQ(store_->count("patch"), 4u);
  EXPECT_TRUE(status().in_sync);
}

TEST_F(PublisherTest, ANewerIdentityArrivingDuringAWriteIsWrittenNext) {
  startSynced(options());
  // While the PATCH of n1 is in flight, n2 arrives: the store call is not retried with n1 and
  // nothing waits for it; the next write (after the quiet window) is n2.
  store_->beforeNext("patch", [&] { publisher_->submitIdentities({identity("n2", "[1]")}); });
  submit(identity("n1", "[1]"));
  advance(milliseconds(20));
  EXPECT_EQ(store_->object(), stored("n1", "[1]"));
  advance(milliseconds(20));
  EXPECT_EQ(store_->object(), stored("n2", "[1]"));
  EXPECT_EQ(status().written, 3u);
}

// ---- create-if-missing, here only ----

TEST_F(PublisherTest, AnObjectDeletedBetweenReadAndWriteIsReadAgainAndCreatedAtOnce) {
  store_->put({{"device_id", "old"}}, "ts-kube-agent");
  store_->beforeNext("patch", [&] { store_->remove(); });
  start();
  submit(identity("n1", "[1]"));  // the clock never moves
  std::vector<std::string> verbs;
  for (const auto& c : store_->calls()) verbs.push_back(c.verb);
  EXPECT_EQ(verbs, (std::vector<std::string>{"get", "patch", "get", "create"}));
  EXPECT_EQ(store_->object(), stored("n1", "[1]"));
  EXPECT_TRUE(status().in_sync);
  EXPECT_EQ(status().failed, 1u);
}

TEST_F(PublisherTest, AnObjectCreatedBetweenReadAndWriteIsReadAgainAndPatchedAtOnce) {
  store_->beforeNext("create", [&] { store_->put({{"theirs", "x"}}, "someone-else"); });
  start();
  submit(identity("n1", "[1]"));
  std::vector<std::string> verbs;
  for (const auto& c : store_->calls()) verbs.push_back(c.verb);
  EXPECT_EQ(verbs, (std::vector<std::string>{"get", "create", "get", "patch"}));
  auto expected = stored("n1", "[1]");
  expected["theirs"] = "x";
  EXPECT_EQ(store_->object(), expected);
}

TEST_F(PublisherTest, ASecondChangedObjectInARowWaitsForTheBackoff) {
  store_->put({{"device_id", "old"}}, "ts-kube-agent");
  store_->beforeNext("patch", [&] { store_->remove(); });
  store_->beforeNext("create", [&] { store_->put({{"theirs", "x"}}, "someone-else"); });
  start();
  submit(identity("n1", "[1]"));
  EXPECT_EQ(store_->calls().size(), 4u);  // get, patch 404, get, create 409: then backoff
  EXPECT_EQ(status().failed, 2u);
  advance(milliseconds(1'000));
  EXPECT_TRUE(status().in_sync);
  EXPECT_EQ(store_->object()->at("device_id"), "n1");
}

TEST_F(PublisherTest, WithoutCreateAMissingObjectIsAnErrorNamingIt) {
  auto o = options();
  o.create_objects = false;
  startWith(o);
  submit(identity("n1", "[1]"));
  EXPECT_EQ(store_->count("create"), 0u);
  EXPECT_EQ(store_->count("patch"), 1u);  // no immediate re-read: reading will not create it
  EXPECT_EQ(status().failed, 1u);
  EXPECT_NE(status().last_error.find("ts-state"), std::string::npos) << status().last_error;
  EXPECT_NE(status().last_error.find("does not exist"), std::string::npos);
  // Someone creates it: the retry writes into it.
  store_->put({{"other", "v"}}, "admin");
  advance(milliseconds(1'000));
  EXPECT_TRUE(status().in_sync);
  EXPECT_EQ(store_->object()->at("other"), "v");
}

TEST_F(PublisherTest, ForbiddenKeepsItOutOfSyncSayingWhichRuleIsMissing) {
  store_->put({{"device_id", "old"}}, "ts-kube-agent");
  store_->failAlways("patch", forbidden("patch"));
  start();
  submit(identity("n1", "[1]"));
  EXPECT_FALSE(status().in_sync);
  EXPECT_NE(status().last_error.find("Role rule"), std::string::npos) << status().last_error;
  store_->clearFaults();  // RBAC fixed: the next retry converges
  advance(milliseconds(1'000));
  EXPECT_TRUE(status().in_sync);
  EXPECT_EQ(store_->object()->at("device_id"), "n1");
}

// ---- flush at shutdown ----

TEST_F(PublisherTest, FlushWritesThePendingIdentityIgnoringTheQuietWindow) {
  startSynced(options());
  publisher_->submitIdentities({identity("n1", "[1]")});
  // No clock movement: the window is still open when the flush starts.
  EXPECT_TRUE(publisher_->flush(clock_.monotonicNow() + milliseconds(10'000)));
  EXPECT_EQ(store_->object(), stored("n1", "[1]"));
}

TEST_F(PublisherTest, FlushIgnoresAPendingBackoff) {
  startSynced(options());
  store_->failNext("patch", tooManyRequests(milliseconds(30'000)));
  submit(identity("n1", "[1]"));
  advance(milliseconds(20));
  ASSERT_EQ(status().failed, 1u);
  EXPECT_TRUE(publisher_->flush(clock_.monotonicNow() + milliseconds(10'000)));
  EXPECT_EQ(store_->object(), stored("n1", "[1]"));
}

TEST_F(PublisherTest, FlushGivesUpAtOnceOnErrorsTimeWillNotFix) {
  for (const Error& e : {forbidden("create"), Error{"TLS verification failed", ErrorKind::Tls},
                         Error{"bad value", ErrorKind::Config},
                         k8s::httpStatusError("create", FakeObjectStore::ref(), 422, "invalid")}) {
    store_ = std::make_shared<FakeObjectStore::State>();
    store_->failAlways("create", e);
    start();
    publisher_->submitIdentities({identity("n1", "[1]")});
    // The ManualClock never reaches this deadline: flush returns because the error is final.
    EXPECT_FALSE(publisher_->flush(clock_.monotonicNow() + std::chrono::minutes(10))) << e.message;
    EXPECT_EQ(status().last_error, e.message);
    publisher_.reset();
  }
}

TEST_F(PublisherTest, AFlushThatCannotWriteLogsPlainlyWhatWasLost) {
  CapturedLog log;
  store_->failAlways("create", forbidden("create"));
  startWith(options(), log.logger());
  publisher_->submitIdentities({identity("n1", "[100.64.0.1]")});
  EXPECT_FALSE(publisher_->flush(clock_.monotonicNow() + std::chrono::minutes(10)));
  publisher_.reset();
  const std::string out = log.text();
  EXPECT_NE(out.find("NOT written"), std::string::npos) << out;
  EXPECT_NE(out.find("secret tailscale/ts-state"), std::string::npos) << out;
  EXPECT_NE(out.find("device_id"), std::string::npos) << out;  // key names, never values
  EXPECT_EQ(out.find("100.64.0.1"), std::string::npos) << out;
}

TEST_F(PublisherTest, StopDuringABackoffDoesNotWaitForIt) {
  store_->failAlways("create", tooManyRequests(milliseconds(30'000)));
  start();
  submit(identity("n1", "[1]"));
  ASSERT_EQ(status().failed, 1u);
  publisher_->stop();  // the clock never reaches the retry: stop must not wait for it
  EXPECT_FALSE(publisher_->alive());
  EXPECT_EQ(store_->count("create"), 1u);
}

// ---- drift ----

// Past the interval (60 s) plus the largest jitter (10 %).
constexpr milliseconds kPastDriftCheck{66'001};

TEST_F(PublisherTest, ADeletedObjectIsRecreatedAtTheNextDriftCheck) {
  startSynced(options());
  store_->remove();
  advance(kPastDriftCheck);
  EXPECT_EQ(store_->object(), stored("n0", "[1]"));
  EXPECT_EQ(status().drift_repairs, 1u);
  EXPECT_EQ(status().written, 2u);
  EXPECT_EQ(store_->count("create"), 2u);
  EXPECT_TRUE(status().in_sync);
}

TEST_F(PublisherTest, KeysOverwrittenBySomeoneElseAreRewrittenAndOnlyThose) {
  auto o = options();
  o.write_policy.foreign = ForeignKeyPolicy::Overwrite;  // the key is then someone else's
  startSynced(o);
  store_->put({{"device_id", "evil"}, {"theirs", "x"}}, "someone-else");
  advance(kPastDriftCheck);
  EXPECT_EQ(status().drift_repairs, 1u);
  EXPECT_EQ(store_->calls().back().changes, (k8s::DataChanges{{"device_id", "n0"}}));
  EXPECT_EQ(store_->object()->at("device_id"), "n0");
  EXPECT_EQ(store_->object()->at("theirs"), "x");
}

TEST_F(PublisherTest, AKeyAnotherFieldManagerOwnsIsSkippedAndNeverFoughtOver) {
  store_->put({{"device_fqdn", "routed.tail1.ts.net."}}, "containerboot");
  CapturedLog log;
  startWith(options(), log.logger());
  submit(identity("n0", "[1]"));
  EXPECT_EQ(store_->calls().back().changes,
            (k8s::DataChanges{{"device_id", "n0"}, {"device_ips", "[1]"}}));
  EXPECT_EQ(store_->object()->at("device_fqdn"), "routed.tail1.ts.net.");
  EXPECT_TRUE(status().in_sync);  // for the keys it may write
  EXPECT_EQ(status().foreign_keys,
            (KeyManagers{{"device_fqdn", std::set<std::string>{"containerboot"}}}));
  for (uint64_t i = 1; i <= 5; ++i) {
    advance(kPastDriftCheck);
    EXPECT_EQ(status().drift_checks, i);
  }
  EXPECT_EQ(store_->writes(), 1u);
  EXPECT_EQ(status().drift_repairs, 0u);
  publisher_.reset();
  const std::string out = log.text();
  EXPECT_EQ(occurrences(out, "another field manager owns this key"), 1u) << out;
  EXPECT_NE(out.find("containerboot"), std::string::npos) << out;
}

TEST_F(PublisherTest, TheOverwritePolicyTakesAKeyAnotherFieldManagerOwns) {
  store_->put({{"device_fqdn", "routed.tail1.ts.net."}}, "containerboot");
  auto o = options();
  o.write_policy.foreign = ForeignKeyPolicy::Overwrite;
  startWith(o);
  submit(identity("n0", "[1]"));
  EXPECT_EQ(store_->object()->at("device_fqdn"), "node-0.tail1.ts.net.");
  advance(kPastDriftCheck);  // the next read finds the agent the owner
  EXPECT_EQ(status().drift_checks, 1u);
  EXPECT_TRUE(status().foreign_keys.empty());
}

TEST_F(PublisherTest, DriftChecksWithNothingChangedReadButNeverWrite) {
  startSynced(options());
  for (uint64_t i = 1; i <= 3; ++i) {
    advance(kPastDriftCheck);
    EXPECT_EQ(status().drift_checks, i);
  }
  EXPECT_EQ(store_->count("get"), 4u);
  EXPECT_EQ(store_->writes(), 1u);
  const auto st = status();
  EXPECT_TRUE(st.in_sync);
  EXPECT_EQ(st.written, 1u);
  EXPECT_EQ(st.unchanged, 0u);  // a check is not a publish attempt
  ASSERT_TRUE(st.last_in_sync.has_value() && st.last_write.has_value());
  EXPECT_GT(*st.last_in_sync, *st.last_write);
  EXPECT_EQ(*st.last_in_sync, clock_.wallNow());
}

TEST_F(PublisherTest, NoDriftCheckBeforeTheInterval) {
  startSynced(options());
  advance(milliseconds(59'999));
  EXPECT_EQ(store_->count("get"), 1u);
}

TEST_F(PublisherTest, DriftThatCannotBeRepairedKeepsItOutOfSyncAndIsRetriedWithBackoff) {
  auto o = options();
  o.create_objects = false;
  store_->put({}, "admin");
  startSynced(o);
  store_->remove();
  advance(kPastDriftCheck);
  EXPECT_FALSE(status().in_sync);
  EXPECT_NE(status().last_error.find("does not exist"), std::string::npos) << status().last_error;
  store_->put({{"other", "v"}}, "admin");  // someone recreates it
  advance(milliseconds(1'000));            // the retry, not the next check, repairs it
  EXPECT_TRUE(status().in_sync) << status().last_error;
  EXPECT_EQ(status().drift_repairs, 1u);
  EXPECT_EQ(store_->object()->at("device_id"), "n0");
  EXPECT_EQ(store_->object()->at("other"), "v");
}

TEST_F(PublisherTest, CheckSoonRereadsWithoutWaitingForTheInterval) {
  startSynced(options());
  store_->remove();
  publisher_->checkSoon();  // what the agent calls after a bus reconnect; the clock stays put
  publisher_->waitIdle();
  EXPECT_EQ(status().drift_repairs, 1u);
  EXPECT_EQ(store_->object(), stored("n0", "[1]"));
}

TEST_F(PublisherTest, ZeroIntervalMeansNoPeriodicCheck) {
  auto o = options();
  o.drift_check_interval = milliseconds(0);
  startSynced(o);
  advance(std::chrono::hours(48));
  EXPECT_EQ(store_->count("get"), 1u);
}

TEST(KeysToWrite, OnlyKeysThatDifferAndUndecodableOnesCountAsDiffering) {
  const KeyValues desired = {{"device_id", "n1"},          {"device_fqdn", "a.ts.net."},
                             {"device_ips", "[]"},         {"pod_uid", std::nullopt},  // to delete
                             {"tags", std::nullopt},          // to delete, absent already
                             {"_machinekey", "never ours"}};  // reserved
  const ObservedKeys observed = {{"device_id", "n1"},
                                 {"device_fqdn", std::nullopt},  // present, not decodable
                                 {"pod_uid", std::nullopt}};     // present, not decodable
  const k8s::DataChanges want = {
      {"device_fqdn", "a.ts.net."}, {"device_ips", "[]"}, {"pod_uid", std::nullopt}};
  EXPECT_EQ(keysToWrite(desired, observed).changes, want);
  EXPECT_TRUE(keysToWrite({{"device_id", "n1"}}, {{"device_id", "n1"}}).changes.empty());
}

TEST(KeysToWrite, KeysAnotherFieldManagerOwnsAreSkippedByDefaultAndTakenWithOverwrite) {
  const KeyValues desired = {{"device_id", "n1"},
                             {"device_fqdn", "a.ts.net."},
                             {"device_ips", "[]"},
                             {"pod_uid", std::nullopt}};  // to delete
  const ObservedKeys observed = {{"device_fqdn", "routed.ts.net."}, {"pod_uid", "u"}};
  const KeyManagers managers = {
      {"device_id", {"ts-kube-agent"}},                   // ours
      {"device_fqdn", {"containerboot"}},                 // someone else's
      {"device_ips", {"ts-kube-agent", "kubectl-edit"}},  // shared: someone else's too
      {"pod_uid", {"containerboot"}}};                    // not ours to delete either
  const KeyManagers foreign = {{"device_fqdn", {"containerboot"}},
                               {"device_ips", {"kubectl-edit"}},
                               {"pod_uid", {"containerboot"}}};

  const auto skip = keysToWrite(desired, observed, managers, {});
  EXPECT_EQ(skip.changes, (k8s::DataChanges{{"device_id", "n1"}}));
  EXPECT_EQ(skip.foreign, foreign);

  const auto take =
      keysToWrite(desired, observed, managers,
                  {.field_manager = "ts-kube-agent", .foreign = ForeignKeyPolicy::Overwrite});
  EXPECT_EQ(take.changes, (k8s::DataChanges{{"device_id", "n1"},
                                            {"device_fqdn", "a.ts.net."},
                                            {"device_ips", "[]"},
                                            {"pod_uid", std::nullopt}}));
  EXPECT_EQ(take.foreign, foreign);

  // Our manager name is whatever the client uses.
  const auto renamed =
      keysToWrite({{"device_id", "n1"}}, {}, {{"device_id", {"mine"}}}, {.field_manager = "mine"});
  EXPECT_EQ(renamed.changes, (k8s::DataChanges{{"device_id", "n1"}}));
  EXPECT_TRUE(renamed.foreign.empty());
}

TEST(QuietWindow, DueAtMinAfterTheLastChangeCappedAtMaxAfterTheFirst) {
  QuietWindow w(milliseconds(20), milliseconds(100));
  const Clock::Monotonic t0{std::chrono::seconds(10)};
  EXPECT_FALSE(w.due());
  w.onChange(t0);
  EXPECT_EQ(*w.due(), t0 + milliseconds(20));
  w.onChange(t0 + milliseconds(15));
  EXPECT_EQ(*w.due(), t0 + milliseconds(35));
  w.onChange(t0 + milliseconds(95));
  EXPECT_EQ(*w.due(), t0 + milliseconds(100));
  w.clear();
  EXPECT_FALSE(w.due());
}

}  // namespace
}  // namespace tsk::agent
