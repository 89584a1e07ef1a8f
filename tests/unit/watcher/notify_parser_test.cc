#include "watcher/notify_parser.h"
#include "watcher/status_json.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/unit/watcher/notify_test_support.h"
#include "tools/statusgen/statusgen.h"

namespace tsk::watcher {
namespace {

using testing::describe;
using testing::fixtureFile;
using testing::fixtureLines;
using testing::oracleEvents;
using testing::RecordingHandler;

const std::vector<std::string> kFixtures = {
    "01-initial-status.jsonl",   "02-selfchange.jsonl",
    "03-state-change.jsonl",     "04-peers-changed-removed.jsonl",
    "05-health-only.jsonl",      "06-unknown-future-field.jsonl",
    "07-background-noise.jsonl", "08-initial-status-head.jsonl",
};

std::vector<Notify> parseAll(std::string_view bytes, bool track = false) {
  RecordingHandler h;
  NotifyParser p(h, {.track_peers = track});
  p.feed(bytes);
  EXPECT_EQ(h.malformed, 0u) << (h.malformed_reasons.empty() ? "" : h.malformed_reasons[0]);
  return h.notifies;
}

std::vector<std::string> eventsOf(std::string_view bytes, bool track, size_t chunk = 0) {
  RecordingHandler h;
  NotifyParser p(h, {.track_peers = track});
  if (chunk == 0) chunk = bytes.size();
  for (size_t off = 0; off < bytes.size(); off += chunk) p.feed(bytes.substr(off, chunk));
  return h.events;
}

std::vector<std::string> oracleOfAll(std::string_view bytes, bool track) {
  std::vector<std::string> all;
  size_t start = 0;
  while (start < bytes.size()) {
    const size_t nl = bytes.find('\n', start);
    auto ev = oracleEvents(bytes.substr(start, nl - start + 1), track);
    all.insert(all.end(), ev.begin(), ev.end());
    start = nl + 1;
  }
  return all;
}

const std::vector<std::string> kSelfIps = {"100.90.12.34", "fd7a:115c:a1e0::6a01:c22"};
// tailcfg.Node.Addresses are prefixes; the parser keeps them as sent (validateSelf strips them).
const std::vector<std::string> kSelfPrefixes = {"100.90.12.34/32", "fd7a:115c:a1e0::6a01:c22/128"};

// ---- the fixtures, as the fixtures README describes them ----------------------------------

TEST(NotifyParser, InitialStatusFixtureYieldsIdentityStateAndPeerCounts) {
  const auto n = parseAll(fixtureFile("01-initial-status.jsonl"));
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].kinds, kKindInitialStatus | kKindState);
  EXPECT_EQ(n[0].state, BackendState::Running);
  EXPECT_EQ(n[0].version, "1.99.0-t5e1f0a9c2-g7b3d2e8f1");
  ASSERT_TRUE(n[0].initial_status);
  const InitialStatus& st = *n[0].initial_status;
  EXPECT_EQ(st.state, BackendState::Running);
  ASSERT_TRUE(st.self);
  EXPECT_EQ(st.self->stable_id, "nSdcr7Qx2CNTRL");
  EXPECT_EQ(st.self->node_id, 0);  // T: no NodeID in PeerStatus
  EXPECT_EQ(st.self->name, "demo-sidecar-0.tail3f9a2c.ts.net.");
  EXPECT_EQ(st.self->addresses, kSelfIps);
  EXPECT_EQ(st.self->tags, std::vector<std::string>{"tag:k8s"});
  EXPECT_EQ(st.self->host_name, "demo-sidecar-0");
  EXPECT_EQ(st.self->user_id, 6412345678901234);
  EXPECT_EQ(st.tailnet_name, "example.com");
  EXPECT_EQ(st.magic_dns_suffix, "tail3f9a2c.ts.net");
  EXPECT_EQ(st.peers_total, 3u);
  EXPECT_FALSE(st.peers_have_node_id);
  EXPECT_EQ(n[0].bytes, fixtureFile("01-initial-status.jsonl").size());
}

TEST(NotifyParser, SelfChangeFixtureYieldsTheNodeWithAddressesAsSent) {
  const auto n = parseAll(fixtureFile("02-selfchange.jsonl"));
  ASSERT_EQ(n.size(), 2u);
  for (const auto& line : n) {
    EXPECT_EQ(line.kinds, kKindSelfChange);
    ASSERT_TRUE(line.self_change);
    EXPECT_EQ(line.self_change->stable_id, "nSdcr7Qx2CNTRL");
    EXPECT_EQ(line.self_change->node_id, 4815162342001);
    EXPECT_EQ(line.self_change->addresses, kSelfPrefixes);
    EXPECT_EQ(line.self_change->host_name, "demo-sidecar-0");
    EXPECT_EQ(line.self_change->user_id, 6412345678901234);
    EXPECT_EQ(line.self_change->key_expiry, "");
    EXPECT_FALSE(line.state);
  }
  EXPECT_EQ(n[0].self_change->name, "demo-sidecar-0.tail3f9a2c.ts.net.");
  EXPECT_EQ(n[1].self_change->name, "demo-sidecar-renamed.tail3f9a2c.ts.net.");
}

TEST(NotifyParser, StateFixtureYieldsStoppedStartingRunning) {
  const auto n = parseAll(fixtureFile("03-state-change.jsonl"));
  ASSERT_EQ(n.size(), 3u);
  EXPECT_EQ(n[0].state, BackendState::Stopped);
  EXPECT_EQ(n[1].state, BackendState::Starting);
  EXPECT_EQ(n[2].state, BackendState::Running);
  EXPECT_EQ(n[2].state_raw, 6);
  EXPECT_EQ(n[2].kinds, kKindState);
}

TEST(NotifyParser, PeerDeltaFixtureStreamsPeersOnlyWhenTracking) {
  const std::string bytes = fixtureFile("04-peers-changed-removed.jsonl");
  const auto n = parseAll(bytes);
  ASSERT_EQ(n.size(), 3u);
  EXPECT_EQ(n[0].kinds, kKindUserProfiles);
  EXPECT_EQ(n[1].kinds, kKindPeersChanged | kKindPeersRemoved);
  EXPECT_EQ(n[2].kinds, kKindPeersChanged);
  EXPECT_FALSE(n[1].self_change);

  const auto quiet = eventsOf(bytes, false);
  EXPECT_EQ(quiet.size(), 3u);  // only the three notifies
  const auto tracked = eventsOf(bytes, true);
  const std::vector<std::string> peer_events = {tracked[1], tracked[2], tracked[4]};
  EXPECT_EQ(peer_events,
            (std::vector<std::string>{"upsert 6626070150001 true", "removed 5512345678901",
                                      "upsert 2718281828459 false"}));
}

TEST(NotifyParser, HealthAndBackgroundNoiseAreCountedByKind) {
  const auto health = parseAll(fixtureFile("05-health-only.jsonl"));
  ASSERT_EQ(health.size(), 2u);
  EXPECT_EQ(health[0].kinds, kKindHealth);
  EXPECT_EQ(health[1].kinds, kKindHealth);
  const auto noise = parseAll(fixtureFile("07-background-noise.jsonl"));
  ASSERT_EQ(noise.size(), 3u);
  EXPECT_EQ(noise[0].kinds, kKindBlank);
  EXPECT_EQ(noise[1].kinds, kKindEngine);
  EXPECT_EQ(noise[2].kinds, kKindErrMessage);
  EXPECT_EQ(noise[2].err_message, "IPN bus consumer fell behind; closing watch");
  EXPECT_EQ(noise[2].version, "1.103.0-t8c2d4e6f1-g3a5b7c9d2");
}

TEST(NotifyParser, UnknownFieldsAtAnyDepthAreIgnored) {
  const auto n = parseAll(fixtureFile("06-unknown-future-field.jsonl"));
  ASSERT_EQ(n.size(), 2u);
  EXPECT_EQ(n[0].kinds, kKindOther);
  const auto selfchange = parseAll(fixtureLines("02-selfchange.jsonl")[0]);
  ASSERT_TRUE(n[1].self_change);
  EXPECT_EQ(*n[1].self_change, *selfchange[0].self_change);
}

TEST(NotifyParser, HeadInitialStatusTakesStateFromBackendState) {
  const auto n = parseAll(fixtureFile("08-initial-status-head.jsonl"));
  ASSERT_EQ(n.size(), 1u);
  EXPECT_FALSE(n[0].state);  // "State":null without NotifyInitialState
  ASSERT_TRUE(n[0].initial_status);
  EXPECT_EQ(n[0].initial_status->state, BackendState::Running);
  EXPECT_EQ(n[0].initial_status->backend_state_raw, "Running");
  EXPECT_TRUE(n[0].initial_status->peers_have_node_id);
  ASSERT_TRUE(n[0].initial_status->self);
  EXPECT_EQ(n[0].initial_status->self->node_id, 4815162342001);
  const auto t = parseAll(fixtureFile("01-initial-status.jsonl"));
  SelfNode t_self = *t[0].initial_status->self;
  t_self.node_id = 4815162342001;
  EXPECT_EQ(*n[0].initial_status->self, t_self);
}

TEST(NotifyParser, InitialPeersCarryNodeIdOnlyAtHead) {
  const auto t = eventsOf(fixtureFile("01-initial-status.jsonl"), true);
  const auto h = eventsOf(fixtureFile("08-initial-status-head.jsonl"), true);
  ASSERT_GE(t.size(), 2u);
  EXPECT_EQ(t[0], "initial_status_begin");
  EXPECT_EQ(t[1].rfind("initial_peer - ", 0), 0u) << t[1];
  EXPECT_EQ(h[1], "initial_peer 3141592653589 false");
}

TEST(NotifyParser, IdsAboveTwoToThe53AreExact) {
  const std::string line =
      R"({"Version":"v","SelfChange":{"ID":9007199254740993,"StableID":"s","User":9223372036854775807},)"
      R"("PeersRemoved":[9007199254740993,9223372036854775807,-9223372036854775808,1.5,18446744073709551615],)"
      R"("PeerChangedPatch":[{"NodeID":9007199254740995,"Online":true}]})"
      "\n";
  RecordingHandler h;
  NotifyParser p(h, {.track_peers = true});
  p.feed(line);
  ASSERT_EQ(h.notifies.size(), 1u);
  EXPECT_EQ(h.notifies[0].self_change->node_id, 9007199254740993);
  EXPECT_EQ(h.notifies[0].self_change->user_id, INT64_MAX);
  EXPECT_EQ(h.events, oracleEvents(line, true));
  EXPECT_EQ(h.events[0], "removed 9007199254740993");
  EXPECT_EQ(h.events[1], "removed 9223372036854775807");
  EXPECT_EQ(h.events[2], "removed -9223372036854775808");
  EXPECT_EQ(h.events[3], "patch 9007199254740995 true");
}

// ipn.State is an int: encoding/json refuses "Running", 2.0 or 1e999 for it, and 7 or -1 is no
// state at all. These used to become Unknown (and -0 NoState, which Go's decoder also gives).
TEST(NotifyParser, StateThatIsNotAnIntegerZeroToSixMakesTheLineMalformed) {
  for (const char* bad : {"7", "-1", "\"Running\"", "2.0", "1e0", "1e999", "true", "[6]", "{}",
                          "99999999999999999999999"}) {
    RecordingHandler h;
    NotifyParser p(h);
    p.feed(std::string("{\"State\":") + bad + "}\n");
    EXPECT_EQ(h.malformed, 1u) << bad;
    EXPECT_TRUE(h.notifies.empty()) << bad;
    ASSERT_FALSE(h.malformed_reasons.empty());
    EXPECT_NE(h.malformed_reasons[0].find("State is not an integer 0-6"), std::string::npos)
        << h.malformed_reasons[0];
  }
  const auto n = parseAll("{\"State\":0}\n{\"State\":6}\n{\"State\":-0}\n{\"State\":null}\n");
  ASSERT_EQ(n.size(), 4u);
  EXPECT_EQ(n[0].state, BackendState::NoState);
  EXPECT_EQ(n[1].state, BackendState::Running);
  EXPECT_EQ(n[1].state_raw, 6);
  EXPECT_EQ(n[2].state, BackendState::NoState);  // strconv.ParseInt("-0") is 0, as in Go
  EXPECT_FALSE(n[3].state);
  EXPECT_EQ(n[3].kinds, kKindBlank);
}

// A repeated key used to replace the first value ("SelfChange":{} after the node made the agent
// write empty values) or be ignored ("SelfChange":null after it still applied the node).
TEST(NotifyParser, ASecondKeyTheParserReadsMakesTheLineMalformed) {
  const std::string node =
      R"({"ID":1,"StableID":"n1","Name":"a.ts.net.","Addresses":["100.64.0.1/32"]})";
  for (const std::string& bad : std::vector<std::string>{
           R"({"SelfChange":)" + node + R"(,"SelfChange":{}})",
           R"({"SelfChange":)" + node + R"(,"SelfChange":null})",
           R"({"SelfChange":{"StableID":"n1","StableID":"n2"}})",
           R"({"SelfChange":{"Hostinfo":{"Hostname":"a","Hostname":"b"}}})",
           R"({"State":6,"State":2})",
           R"({"Version":"1","Version":"2"})",  // an escaped key is the same key
           R"({"InitialStatus":{"Self":{"ID":"n1"},"Self":null}})",
           R"({"InitialStatus":{"Self":{"ID":"n1","TailscaleIPs":[],"TailscaleIPs":["1.2.3.4"]}}})",
           R"({"InitialStatus":{"CurrentTailnet":{"Name":"a","Name":"b"}}})",
       }) {
    RecordingHandler h;
    NotifyParser p(h);
    p.feed(bad + "\n");
    EXPECT_EQ(h.malformed, 1u) << bad;
    EXPECT_TRUE(h.notifies.empty()) << bad;
    ASSERT_FALSE(h.malformed_reasons.empty()) << bad;
    EXPECT_NE(h.malformed_reasons[0].find("a second \""), std::string::npos)
        << h.malformed_reasons[0];
  }
  // Keys the parser does not read may repeat (encoding/json: the last wins), in any object.
  const auto n =
      parseAll(R"({"Future":1,"Future":2,"SelfChange":{"Cap":1,"Cap":2,"StableID":"n1"},)"
               R"("InitialStatus":{"Peer":{"k":{"NodeID":1,"NodeID":2},"k":{}}}})"
               "\n");
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].self_change->stable_id, "n1");
}

// Names over 4,096 bytes and Addresses over 64 entries used to be cut silently, and the cut
// identity published.
TEST(NotifyParser, AKeptValueOverItsBoundMakesTheLineMalformed) {
  const auto lineWithName = [](const std::string& name) {
    return R"({"SelfChange":{"StableID":"n1","Name":")" + name + "\"}}\n";
  };
  const auto addresses = [](int count) {
    std::string out = R"({"SelfChange":{"StableID":"n1","Addresses":[)";
    for (int i = 0; i < count; ++i)
      out += (i ? ",\"100.64.0." : "\"100.64.0.") + std::to_string(i) + "\"";
    return out + "]}}\n";
  };
  struct Case {
    std::string line;
    bool malformed;
  };
  const std::string euro = "\\u20ac";  // 3 bytes once decoded
  for (const auto& [line, malformed] : std::initializer_list<Case>{
           {lineWithName(std::string(4096, 'n')), false},
           {lineWithName(std::string(4097, 'n')), true},
           {lineWithName(std::string(4093, 'n') + euro), false},
           {lineWithName(std::string(4094, 'n') + euro), true},
           {lineWithName(std::string(5000, 'n')), true},
           {addresses(64), false},
           {addresses(65), true},
           {R"({"Version":")" + std::string(4097, 'v') + "\"}\n", true},
           {R"({"ErrMessage":")" + std::string(4097, 'e') + "\"}\n", true},
           {R"({"Unread":")" + std::string(100000, 'u') + "\"}\n", false},
       }) {
    RecordingHandler h;
    NotifyParser p(h);
    // In pieces too: the bound holds across feed() calls.
    for (size_t off = 0; off < line.size(); off += 1000)
      p.feed(std::string_view(line).substr(off, 1000));
    EXPECT_EQ(h.malformed, malformed ? 1u : 0u) << line.substr(0, 60) << " (" << line.size() << ")";
    if (malformed && !h.malformed_reasons.empty()) {
      EXPECT_TRUE(h.malformed_reasons[0].find("over 4096 bytes") != std::string::npos ||
                  h.malformed_reasons[0].find("more than 64 items") != std::string::npos)
          << h.malformed_reasons[0];
    }
    if (!malformed && line.find("\"Name\"") != std::string::npos) {
      ASSERT_EQ(h.notifies.size(), 1u);
      EXPECT_LE(h.notifies[0].self_change->name.size(), 4096u);
      EXPECT_GE(h.notifies[0].self_change->name.size(), 4096u);
    }
  }
}

TEST(NotifyParser, DecodesEscapesInKeptStrings) {
  const std::string line =
      R"({"ErrMessage":"a\"b\\c\/d\b\f\n\r\t \u0041\u00e9\u20ac \ud83d\ude00 \u003c\u003e\u0026",)"
      R"("SelfChange":{"Name":"caf\u00e9.ts.net.","StableID":"n\u0031"},"Ver\u0073ion":"x"})"
      "\n";
  const auto n = parseAll(line);
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(*n[0].err_message, "a\"b\\c/d\b\f\n\r\t A\xc3\xa9\xe2\x82\xac \xf0\x9f\x98\x80 <>&");
  EXPECT_EQ(n[0].self_change->name, "caf\xc3\xa9.ts.net.");
  EXPECT_EQ(n[0].self_change->stable_id, "n1");
  EXPECT_EQ(n[0].version, "x");  // an escaped key still matches
  EXPECT_EQ(describe(n[0]), describe(testing::oracleNotify(line)));
}

TEST(NotifyParser, KeyExpiryZeroTimeIsEmptyAndAddressesAreKeptAsSent) {
  const auto n = parseAll(
      R"({"SelfChange":{"KeyExpiry":"0001-01-01T00:00:00Z","Addresses":["100.1.2.3/32","fd7a::1/128",7]}})"
      "\n"
      R"({"SelfChange":{"KeyExpiry":"2026-07-08T12:00:41.123Z","Addresses":null,"Tags":null}})"
      "\n");
  ASSERT_EQ(n.size(), 2u);
  EXPECT_EQ(n[0].self_change->key_expiry, "");
  EXPECT_EQ(n[0].self_change->addresses, (std::vector<std::string>{"100.1.2.3/32", "fd7a::1/128"}));
  EXPECT_EQ(n[1].self_change->key_expiry, "2026-07-08T12:00:41.123Z");
  EXPECT_TRUE(n[1].self_change->addresses.empty());
}

TEST(NotifyParser, MagicDnsSuffixFallsBackToTheTopLevelField) {
  const auto n = parseAll(
      R"({"InitialStatus":{"MagicDNSSuffix":"old.ts.net","CurrentTailnet":null,"Peer":null}})"
      "\n");
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].initial_status->magic_dns_suffix, "old.ts.net");
  EXPECT_EQ(n[0].initial_status->tailnet_name, "");
  EXPECT_EQ(n[0].initial_status->peers_total, 0u);
}

// ---- the oracle: the same fields as a DOM parse ------------------------------------------

TEST(NotifyParser, EveryFixtureMatchesTheDomOracle) {
  for (const auto& name : kFixtures) {
    for (bool track : {false, true}) {
      const std::string bytes = fixtureFile(name);
      EXPECT_EQ(eventsOf(bytes, track), oracleOfAll(bytes, track)) << name << " track=" << track;
    }
  }
}

TEST(NotifyParser, GeneratedLinesMatchTheDomOracle) {
  statusgen::InitialStatusOptions h;
  h.peers = 300;
  h.online_fraction = 0.3;
  h.with_state = true;
  statusgen::InitialStatusOptions t = h;
  t.with_node_id = false;
  t.seed = 7;
  t.self.key_expiry = "2026-09-01T10:11:12Z";
  t.self.tags = {};
  const int64_t removed[] = {statusgen::peerAt(3).node_id, 9007199254740993};
  const std::vector<std::string> lines = {
      statusgen::initialStatusLine(h),
      statusgen::initialStatusLine(t),
      statusgen::selfChangeLine(t.self),
      statusgen::stateLine(2),
      statusgen::blankLine(),
      statusgen::peersChangedLine(statusgen::peerAt(5)),
      statusgen::peersChangedLine(statusgen::peerAt(10)),
      statusgen::peersRemovedLine(removed),
      statusgen::peerPatchLine(statusgen::peerAt(6).node_id, true),
      statusgen::peerPatchLine(statusgen::peerAt(6).node_id, false),
      statusgen::errMessageLine(statusgen::kFellBehindMessage),
      statusgen::healthLine(true),
      statusgen::healthLine(false),
      statusgen::engineLine(),
  };
  for (const auto& line : lines) {
    ASSERT_TRUE(nlohmann::json::accept(line)) << line.substr(0, 200);
    for (bool track : {false, true}) {
      EXPECT_EQ(eventsOf(line, track), oracleEvents(line, track))
          << line.substr(0, 200) << " track=" << track;
    }
  }
}

TEST(NotifyParser, GeneratedInitialStatusCountsMatchTheGenerator) {
  statusgen::InitialStatusOptions o;
  o.peers = 2000;
  o.online_fraction = 0.25;
  uint64_t online = 0;
  for (uint64_t i = 0; i < o.peers; ++i) online += statusgen::peerAt(i, o.seed, 0.25).online;
  const auto n = parseAll(statusgen::initialStatusLine(o));
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].initial_status->peers_total, 2000u);
  EXPECT_EQ(n[0].initial_status->peers_online, online);
  EXPECT_TRUE(n[0].initial_status->peers_have_node_id);
  EXPECT_EQ(n[0].initial_status->self->stable_id, o.self.stable_id);
}

// ---- chunking -----------------------------------------------------------------------------

TEST(NotifyParser, EveryChunkSizeYieldsTheSameEvents) {
  for (const auto& name : kFixtures) {
    const std::string bytes = fixtureFile(name);
    const auto whole = eventsOf(bytes, true);
    for (size_t chunk = 1; chunk <= bytes.size(); ++chunk) {
      ASSERT_EQ(eventsOf(bytes, true, chunk), whole) << name << " chunk=" << chunk;
    }
  }
}

TEST(NotifyParser, EscapesAndNumbersSplitAnywhereYieldTheSameEvents) {
  const std::string line =
      R"({"Version":"\ud83d\ude00\u00e9x","State":-0,"SelfChange":{"ID":9007199254740993,)"
      R"("Online":false,"Name":"a\\b\"c","X":[1.5e-3,-2E+7,true,null,{}]}})"
      " \r\n";
  const auto whole = eventsOf(line, true);
  ASSERT_EQ(whole.size(), 1u);
  EXPECT_EQ(whole, oracleEvents(line, true));
  for (size_t chunk = 1; chunk < line.size(); ++chunk) {
    ASSERT_EQ(eventsOf(line, true, chunk), whole) << "chunk=" << chunk;
  }
}

// ---- bad input ----------------------------------------------------------------------------

TEST(NotifyParser, MalformedLinesAreReportedAndTheNextLineParses) {
  const std::vector<std::string> bad = {
      R"({"Version":"x")",
      R"([1,2])",
      R"("just a string")",
      R"(42)",
      R"({"a":tru})",
      R"({"a":nul})",
      R"({"a":1}})",
      R"({"a":1} x)",
      R"({"a":"unterminated)",
      R"({"a":01})",
      R"({"a":-})",
      R"({"a":1.})",
      R"({"a":1e})",
      R"({"a":"\x"})",
      R"({"a":"\u12G4"})",
      R"({"a":"\ud800"})",
      R"({"a":"\udc00"})",
      R"({"a":"\ud800\u0041"})",
      R"({"a" 1})",
      R"({a:1})",
      R"({"a":1,})",
      R"({"a":[1,]})",
      R"({"a":[1})",
      R"({"a":{"b":1]})",
      "{\"a\":\"ctl\x01\"}",
      R"(})",
      R"({"State":6 "Prefs":null})",
      R"({"PeersRemoved":[1,2,x]})",
      R"({,})",
      R"({"a":})",
  };
  const std::string good = statusgen::stateLine(6);
  for (const auto& b : bad) {
    ASSERT_FALSE(nlohmann::json::accept(b) && b.front() == '{') << b;  // bad for everyone
    RecordingHandler h;
    NotifyParser p(h, {.track_peers = true});
    p.feed(b + "\n" + good);
    EXPECT_EQ(h.malformed, 1u) << b;
    ASSERT_EQ(h.notifies.size(), 1u) << b;
    EXPECT_EQ(h.notifies[0].state, BackendState::Running) << b;
    EXPECT_FALSE(h.malformed_reasons.empty() || h.malformed_reasons[0].empty());
  }
}

TEST(NotifyParser, NestingUpToTheLimitIsAcceptedAndDeeperIsMalformed) {
  const std::string ok = "{\"a\":" + std::string(63, '[') + std::string(63, ']') + "}\n";
  ASSERT_TRUE(nlohmann::json::accept(ok));
  const auto n = parseAll(ok);
  ASSERT_EQ(n.size(), 1u);
  EXPECT_EQ(n[0].kinds, kKindOther);

  RecordingHandler h;
  NotifyParser p(h);
  p.feed("{\"a\":" + std::string(64, '[') + std::string(64, ']') + "}\n" + ok);
  EXPECT_EQ(h.malformed, 1u);
  ASSERT_EQ(h.malformed_reasons.size(), 1u);
  EXPECT_NE(h.malformed_reasons[0].find("deeper than 64"), std::string::npos);
  EXPECT_EQ(h.notifies.size(), 1u);
}

TEST(NotifyParser, MalformedReasonSaysWhatAndWhere) {
  RecordingHandler h;
  NotifyParser p(h);
  const std::string line = "{\"Version\":\"x\",\"Health\":tru}\n";
  p.feed(line);
  ASSERT_EQ(h.malformed_reasons.size(), 1u);
  const std::string& reason = h.malformed_reasons[0];
  EXPECT_NE(reason.find("literal"), std::string::npos) << reason;
  EXPECT_NE(reason.find("byte " + std::to_string(line.find("tru"))), std::string::npos) << reason;
  EXPECT_EQ(h.events.back(), "malformed " + std::to_string(line.size()));
}

TEST(NotifyParser, MalformedLineAfterPeerCallbacksIsAborted) {
  RecordingHandler h;
  NotifyParser p(h, {.track_peers = true});
  const std::string line = R"({"PeersRemoved":[1,2],"State":)"
                           "\n";
  p.feed(line);
  EXPECT_EQ(h.events,
            (std::vector<std::string>{"removed 1", "removed 2",
                                      "malformed " + std::to_string(line.size()), "aborted"}));
}

TEST(NotifyParser, EmptyLinesAreIgnored) {
  RecordingHandler h;
  NotifyParser p(h);
  p.feed("\n\n  \r\n" + statusgen::blankLine() + "\n");
  EXPECT_EQ(h.malformed, 0u);
  ASSERT_EQ(h.notifies.size(), 1u);
  EXPECT_EQ(h.notifies[0].kinds, kKindBlank);
}

TEST(NotifyParser, ResetDropsATruncatedLine) {
  const std::string line = fixtureFile("08-initial-status-head.jsonl");
  RecordingHandler h;
  NotifyParser p(h, {.track_peers = true});
  p.feed(std::string_view(line).substr(0, line.size() / 2));
  EXPECT_TRUE(p.reset());
  EXPECT_EQ(h.aborted, 1u);  // peers of the half line were already delivered
  EXPECT_FALSE(p.reset());   // nothing left to drop
  h.events.clear();
  p.feed(line);
  EXPECT_EQ(h.events, oracleOfAll(line, true));
  EXPECT_EQ(h.malformed, 0u);
  EXPECT_EQ(h.notifies.size(), 1u);
}

TEST(NotifyParser, OversizedLineIsSkippedWithoutBufferingAndTheNextParses) {
  statusgen::InitialStatusOptions o;
  o.peers = 50;
  const std::string big = statusgen::initialStatusLine(o);
  RecordingHandler h;
  NotifyParser p(h, {.track_peers = true, .max_line_bytes = 10'000});
  for (size_t off = 0; off < big.size(); off += 4096)
    p.feed(std::string_view(big).substr(off, 4096));
  p.feed(statusgen::stateLine(4));
  EXPECT_EQ(h.oversized, 1u);
  EXPECT_EQ(h.malformed, 0u);
  EXPECT_EQ(h.aborted, 1u);  // the first chunks were parsed before the limit was known
  ASSERT_EQ(h.notifies.size(), 1u);
  EXPECT_EQ(h.notifies[0].state, BackendState::Stopped);
  EXPECT_NE(std::find(h.events.begin(), h.events.end(), "oversized " + std::to_string(big.size())),
            h.events.end());
  EXPECT_LT(p.highWaterBytes(), 64u * 1024);
}

TEST(NotifyParser, LineOfExactlyTheLimitIsAccepted) {
  const std::string line = statusgen::blankLine();
  RecordingHandler h;
  NotifyParser p(h, {.max_line_bytes = line.size() - 1});  // the '\n' does not count
  p.feed(line);
  p.feed(line);
  EXPECT_EQ(h.notifies.size(), 2u);
  NotifyParser tight(h, {.max_line_bytes = line.size() - 2});
  tight.feed(line);
  EXPECT_EQ(h.oversized, 1u);
}

TEST(NotifyParser, StatusBodyParsesIndentedOrCompact) {
  const auto doc = nlohmann::json::parse(fixtureFile("08-initial-status-head.jsonl"));
  const std::string indented = doc["InitialStatus"].dump(1, '\t');
  std::string error;
  const auto st = parseStatusJson(indented, &error);
  ASSERT_TRUE(st) << error;
  const auto expected = parseAll(fixtureFile("08-initial-status-head.jsonl"));
  Notify got;
  got.initial_status = st;
  Notify want;
  want.initial_status = expected[0].initial_status;
  EXPECT_EQ(describe(got), describe(want));
  EXPECT_FALSE(parseStatusJson("{\"Self\":", &error));
  EXPECT_NE(error.find("not valid JSON"), std::string::npos) << error;
  EXPECT_FALSE(parseStatusJson("null", &error));
}

std::string repeated(std::string_view piece, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += piece;
  return out;
}

TEST(NotifyParser, StatusBodyMustBeExactlyOneObject) {
  struct Case {
    std::string body;
    std::string error;  // a part of the error: what is wrong and where (a byte of the body)
  };
  const Case cases[] = {
      // The fuzzer's two findings against the former parser, which saw {"InitialStatus":<body>}
      // with newlines made spaces and accepted both.
      {"{\"Self\":{\"ID\":\"a\nb\"}}", "at byte 16: parse error"},
      {"1,\"InitialStatus\":{\"BackendState\":\"Running\"}", "at byte 1:"},
      {"{\"BackendState\":\"Running\"},\"InitialStatus\":{}", "at byte 26:"},
      {"{\"BackendState\":\"Running\"} {}", "at byte 27:"},
      {"  null", "not a JSON object but null"},
      {"[]", "not a JSON object but array"},
      {"", "unexpected end of input"},
      {" \n\t", "unexpected end of input"},
      {"{\"Self\":", "unexpected end of input"},
      {"{\"Self\":\"ab", "missing closing quote"},
      {"{\"Self\":[1,}", "at byte 11:"},
      {"{\"Self\":\"a\rb\"}", "at byte 10:"},
      {"{\"a\":x,\"b\":\"c\nd\"}", "at byte 5:"},
      {"{\"b\":\"c\nd\",\"a\":x}", "at byte 7:"},
      {std::string("{\"a\":1}\0junk", 12), "a NUL byte at byte 7"},
      // The shape rules of Notify.InitialStatus.
      {"{\"Self\":{\"ID\":\"a\"},\"Self\":{\"ID\":\"b\"}}", "\"Self\" appears twice"},
      {"{\"Self\":{\"DNSName\":\"a.\",\"DNSName\":\"b.\"}}", "\"DNSName\" appears twice"},
      {"{\"CurrentTailnet\":{\"Name\":\"a\",\"Name\":\"b\"}}", "\"Name\" appears twice"},
      {"{\"Self\":{\"HostName\":\"" + std::string(4097, 'h') + "\"}}",
       "HostName is longer than 4096"},
      {"{\"MagicDNSSuffix\":\"" + std::string(4097, 's') + "\"}", "MagicDNSSuffix is longer"},
      {std::string(65, '[') + std::string(65, ']'), "nested deeper than 64"},
      {"{\"Self\":{\"Tags\":[\"t\"" + repeated(",\"t\"", 64) + "]}}",
       "Tags has more than 64 strings"},
  };
  for (const Case& c : cases) {
    std::string error;
    EXPECT_FALSE(parseStatusJson(c.body, &error)) << c.body;
    EXPECT_NE(error.find(c.error), std::string::npos) << c.body << "\n  error: " << error;
  }
}

TEST(NotifyParser, StatusBodyKeepsWhatTheParserKeepsAndIgnoresTheRest) {
  std::string tags;
  for (int i = 0; i < 64; ++i)
    tags += std::string(i ? "," : "") + "\"tag:t" + std::to_string(i) + "\"";
  const std::string body =
      R"({"BackendState":"Starting","Version":"x","Version":"y",)"
      R"("Self":{"ID":"n1","NodeID":7,"DNSName":"a.ts.net.","UserID":"9",)"
      R"("TailscaleIPs":["100.64.0.1",3,"fd7a::1"],"Tags":[)" +
      tags +
      R"(],"KeyExpiry":"0001-01-01T00:00:00Z","Online":"yes",)"
      R"("InNetworkMap":true,"Unknown":{"Deep":[[[{}]]]}},)"
      R"("Peer":{"k1":{"NodeID":1,"Online":true},"k2":{"Online":false},"k3":5},)"
      R"("MagicDNSSuffix":"top.ts.net","CurrentTailnet":null})";
  std::string error;
  const auto st = parseStatusJson(body, &error);
  ASSERT_TRUE(st) << error;  // a key the parser does not keep may repeat
  EXPECT_EQ(st->state, BackendState::Starting);
  EXPECT_EQ(st->backend_state_raw, "Starting");
  ASSERT_TRUE(st->self);
  EXPECT_EQ(st->self->stable_id, "n1");
  EXPECT_EQ(st->self->node_id, 7);
  EXPECT_EQ(st->self->user_id, 0);  // a string, not a number: ignored
  EXPECT_EQ(st->self->addresses, (std::vector<std::string>{"100.64.0.1", "fd7a::1"}));
  EXPECT_EQ(st->self->tags.size(), 64u);
  EXPECT_EQ(st->self->key_expiry, "");  // Go's zero time: no expiry
  EXPECT_FALSE(st->self->online);
  EXPECT_EQ(st->self->in_network_map, true);
  EXPECT_EQ(st->peers_total, 2u);  // "k3" is not a PeerStatus
  EXPECT_EQ(st->peers_online, 1u);
  EXPECT_FALSE(st->peers_have_node_id);
  EXPECT_EQ(st->magic_dns_suffix, "top.ts.net");
  EXPECT_EQ(st->tailnet_name, "");
}

TEST(NotifyParser, StatusBodyMayEndInWhitespaceAndHoldBracketsInStrings) {
  const std::string body =
      "{\"BackendState\":\"Running\",\n\"CurrentTailnet\":{\"Name\":\"a}\\\"{[b\",\n"
      "\"MagicDNSSuffix\":\"x.ts.net\"}}\n\r\n  \t";
  std::string error;
  const auto st = parseStatusJson(body, &error);
  ASSERT_TRUE(st) << error;
  EXPECT_EQ(st->tailnet_name, "a}\"{[b");
  EXPECT_EQ(st->magic_dns_suffix, "x.ts.net");
}

}  // namespace
}  // namespace tsk::watcher

namespace tsk::watcher {
namespace {

// Whether some object of the line repeats a key. Go never sends one; the parser then keeps the
// last value of the right type where a DOM keeps the last value, so such lines are not compared.
bool hasDuplicateKeys(const std::string& line) {
  bool duplicate = false;
  std::vector<size_t> keys;
  const auto doc =
      nlohmann::json::parse(line, [&](int, nlohmann::json::parse_event_t ev, nlohmann::json& j) {
        using Ev = nlohmann::json::parse_event_t;
        if (ev == Ev::object_start) keys.push_back(0);
        if (ev == Ev::key) ++keys.back();
        if (ev == Ev::object_end) {
          duplicate |= j.size() != keys.back();
          keys.pop_back();
        }
        return true;
      });
  return duplicate && !doc.is_discarded();
}

// Whether a JSON object line's State is null, absent or an integer 0-6 (else it is malformed).
bool stateInSchema(const std::string& line) {
  const auto doc = nlohmann::json::parse(line);
  const auto it = doc.find("State");
  if (it == doc.end() || it->is_null()) return true;
  return it->is_number_integer() && it->get<int64_t>() >= 0 && it->get<int64_t>() <= 6;
}

// Random ASCII corruptions of every fixture line: the parser never crashes, rejects exactly the
// lines nlohmann rejects (or that are not objects), extracts the same fields from the ones it
// accepts, and always parses the next line.
TEST(NotifyParser, RandomCorruptionsAgreeWithNlohmann) {
  std::vector<std::string> lines;
  for (const auto& name : kFixtures) {
    for (auto& l : fixtureLines(name)) lines.push_back(l.substr(0, l.size() - 1));
  }
  const std::string next = statusgen::stateLine(5);
  const std::string alphabet = "{}[]\":,\\ tfnu0123456789.-eE+abcAZ/\t\r\x01";
  uint64_t seed = 0x2545f4914f6cdd1dull;
  auto rnd = [&seed](uint64_t bound) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return static_cast<size_t>(seed % bound);
  };
  size_t accepted = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string line = lines[rnd(lines.size())];
    for (size_t edits = 1 + rnd(3); edits > 0; --edits) {
      const size_t pos = rnd(line.size() + 1);
      const char c = alphabet[rnd(alphabet.size())];
      switch (rnd(3)) {
        case 0:
          if (pos < line.size()) line[pos] = c;
          break;
        case 1:
          line.insert(pos, 1, c);
          break;
        default:
          if (pos < line.size()) line.erase(pos, 1 + rnd(8));
      }
    }
    bool valid = false;
    try {
      valid = nlohmann::json::parse(line).is_object();
    } catch (const nlohmann::json::exception& e) {
      // A number beyond double range (1e999) is valid JSON that nlohmann refuses; the parser
      // reads numbers only as int64 and accepts it. Skip those lines.
      if (std::string(e.what()).find("number overflow") != std::string::npos) continue;
    }
    RecordingHandler h;
    NotifyParser p(h, {.track_peers = true});
    p.feed(line + "\n" + next);
    ASSERT_FALSE(h.notifies.empty()) << line;
    EXPECT_EQ(h.notifies.back().state, BackendState::Starting) << line;
    if (valid && hasDuplicateKeys(line)) continue;
    if (valid && !stateInSchema(line)) {
      EXPECT_EQ(h.malformed, 1u) << line;
      continue;
    }
    if (valid) {
      ++accepted;
      EXPECT_EQ(h.malformed, 0u) << line << "\n" << h.malformed_reasons[0];
      auto expected = oracleEvents(line + "\n", true);
      expected.push_back(describe(h.notifies.back()));
      EXPECT_EQ(h.events, expected) << line;
    } else if (line.find_first_not_of(" \t\r") != std::string::npos) {
      EXPECT_EQ(h.malformed, 1u) << line;
      EXPECT_EQ(h.notifies.size(), 1u) << line;
    }
  }
  RecordProperty("accepted_corruptions", std::to_string(accepted));
  EXPECT_GT(accepted, 100u);  // the test also exercises valid-but-unusual lines
}

}  // namespace
}  // namespace tsk::watcher
