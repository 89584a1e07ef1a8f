#include "watcher/self_validation.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/unit/watcher/notify_test_support.h"
#include "tests/unit/watcher/pipeline.h"
#include "watcher/node_state_reducer.h"
#include "watcher/notify_parser.h"

namespace tsk::watcher {
namespace {

SelfNode goodNode() {
  SelfNode s;
  s.stable_id = "nSdcr7Qx2CNTRL";
  s.name = "demo-0.tail3f9a2c.ts.net.";
  s.addresses = {"100.90.12.34/32", "fd7a:115c:a1e0::6a01:c22/128"};
  s.tags = {"tag:k8s"};
  s.host_name = "demo-0";
  s.key_expiry = "2026-07-08T12:00:41Z";
  return s;
}

std::string canon(std::string_view text) {
  return canonicalAddress(text).value_or("<invalid>");
}

TEST(ValidateSelf, AcceptsAGoodNodeAndStripsPrefixLengths) {
  const SelfCheck c = validateSelf(goodNode());
  ASSERT_TRUE(c.node) << c.detail;
  EXPECT_EQ(c.problem, SelfProblem::None);
  EXPECT_EQ(c.node->addresses,
            (std::vector<std::string>{"100.90.12.34", "fd7a:115c:a1e0::6a01:c22"}));
  EXPECT_EQ(c.node->name, "demo-0.tail3f9a2c.ts.net.");
}

TEST(CanonicalAddress, WritesIpv6AsNetipDoes) {
  // RFC 5952 section 4: lower case, no leading zeros, the longest run of >= 2 zero groups
  // compressed (the first on a tie), a single zero group not compressed.
  EXPECT_EQ(canon("FD7A:115C:A1E0:0000:0000:0000:6A01:0C22"), "fd7a:115c:a1e0::6a01:c22");
  EXPECT_EQ(canon("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  EXPECT_EQ(canon("2001:db8:0:0:0:1:0:0"), "2001:db8::1:0:0");
  EXPECT_EQ(canon("2001:0db8:0:1:1:1:1:1"), "2001:db8:0:1:1:1:1:1");
  EXPECT_EQ(canon("2001:db8::0:1"), "2001:db8::1");
  EXPECT_EQ(canon("0:0:0:0:0:0:0:0"), "::");
  EXPECT_EQ(canon("0::1/128"), "::1");
  EXPECT_EQ(canon("1::"), "1::");
  EXPECT_EQ(canon("::ffff:100.64.0.1"), "::ffff:100.64.0.1");  // IPv4-mapped, as netip
  EXPECT_EQ(canon("::ffff:6440:1"), "::ffff:100.64.0.1");
  EXPECT_EQ(canon("::1.2.3.4"), "::102:304");  // netip has no IPv4-compatible form
  EXPECT_EQ(canon("100.64.0.1/32"), "100.64.0.1");
  EXPECT_EQ(canon("100.64.0.1/0"), "100.64.0.1");
  EXPECT_EQ(canon("fd7a::1/0"), "fd7a::1");
}

TEST(CanonicalAddress, RejectsWhatNetipRejects) {
  for (const char* bad :
       {"not-an-ip", "", "/32", "100.64.0", "100.64.0.256", "100.064.0.1", "0x64.0.0.1",
        "100.64.0.1/", "100.64.0.1/032", "100.64.0.1/-1", "100.64.0.1/+8", "100.64.0.1/3 2",
        "100.64.0.1/32/32", "fe80::1%eth0", "fd7a::1::2", "fd7a:115c:a1e0:0:0:0:6a01:c22:1",
        " 100.64.0.1", "100.64.0.1 "}) {
    SelfProblem p = SelfProblem::None;
    EXPECT_FALSE(canonicalAddress(bad, &p)) << bad;
    EXPECT_EQ(p, SelfProblem::InvalidAddress) << bad;
  }
}

TEST(CanonicalAddress, APrefixLengthMustFitTheFamily) {
  SelfProblem p = SelfProblem::None;
  std::string why;
  EXPECT_FALSE(canonicalAddress("100.64.0.1/99", &p, &why));
  EXPECT_EQ(p, SelfProblem::AddressPrefixLength);
  EXPECT_EQ(why, "\"100.64.0.1/99\" has prefix length 99, over 32 for IPv4");
  EXPECT_FALSE(canonicalAddress("100.64.0.1/33", &p));
  EXPECT_FALSE(canonicalAddress("fd7a::1/129", &p));
  EXPECT_EQ(p, SelfProblem::AddressPrefixLength);
  EXPECT_TRUE(canonicalAddress("fd7a::1/128"));
}

TEST(ValidateSelf, AnInvalidAddressMakesTheNodeInvalid) {
  auto s = goodNode();
  s.addresses.push_back("100.64.0.1/99");
  auto c = validateSelf(s);
  EXPECT_FALSE(c.node);
  EXPECT_EQ(c.problem, SelfProblem::AddressPrefixLength);
  s = goodNode();
  s.addresses = {"not-an-ip"};
  c = validateSelf(s);
  EXPECT_FALSE(c.node);
  EXPECT_EQ(c.problem, SelfProblem::InvalidAddress);
  EXPECT_EQ(c.detail, "address \"not-an-ip\" is not an IP address");
}

TEST(ValidateSelf, NameMustBeNonEmpty) {
  auto s = goodNode();
  s.name.clear();
  EXPECT_EQ(validateSelf(s).problem, SelfProblem::EmptyName);
}

TEST(ValidateSelf, TextMustBeValidUtf8WithoutControlCharacters) {
  for (auto edit : std::initializer_list<void (*)(SelfNode&)>{
           [](SelfNode& s) { s.stable_id = "n\xff"; },
           [](SelfNode& s) { s.name = "a.ts.net.\xed\xa0\x80"; },
           [](SelfNode& s) { s.name = "a\nb.ts.net."; },
           [](SelfNode& s) { s.host_name = "h\x7f"; },
           [](SelfNode& s) { s.key_expiry = "\xc3"; },
           [](SelfNode& s) {
             s.tags = {"tag:ok", "tag:\xfe"};
           },
       }) {
    auto s = goodNode();
    edit(s);
    const auto c = validateSelf(s);
    EXPECT_FALSE(c.node);
    EXPECT_EQ(c.problem, SelfProblem::InvalidText) << c.detail;
  }
  auto s = goodNode();
  s.host_name = "caf\xc3\xa9";  // UTF-8 is fine
  EXPECT_TRUE(validateSelf(s).node);
}

// ---- the reducer applies only valid self nodes -------------------------------------------------

using testing::capturedLog;
using testing::occurrences;
using testing::Pipeline;

const std::string kNode =
    R"("ID":1,"StableID":"nSdcr7Qx2CNTRL","Name":"demo-0.tail3f9a2c.ts.net.",)";

std::string selfChange(const std::string& addresses) {
  return R"({"SelfChange":{)" + kNode + R"("Addresses":)" + addresses + "}}\n";
}

TEST(NodeStateReducer, PublishesAddressesAsCanonicalBareIps) {
  Pipeline p;
  EXPECT_TRUE(p.feed(selfChange(R"(["100.90.12.34/32","FD7A:115C:A1E0:0:0:0:6A01:0C22/128"])")));
  ASSERT_TRUE(p.state().self);
  EXPECT_EQ(p.state().self->addresses,
            (std::vector<std::string>{"100.90.12.34", "fd7a:115c:a1e0::6a01:c22"}));
}

// `100.64.0.1/99`, "not-an-ip" and an empty StableID used to be published verbatim.
TEST(NodeStateReducer, AnInvalidSelfNodeIsNotAppliedAndTheLastValidOneStays) {
  Pipeline p;
  ASSERT_TRUE(p.feed(selfChange(R"(["100.90.12.34/32"])")));
  const NodeState before = p.state();
  EXPECT_FALSE(p.feed(selfChange(R"(["100.64.0.1/99"])")));
  EXPECT_FALSE(p.feed(selfChange(R"(["not-an-ip"])")));
  EXPECT_FALSE(p.feed(R"({"SelfChange":{"ID":1,"StableID":"n1","Name":""}})"
                      "\n"));
  EXPECT_FALSE(p.feed("{\"SelfChange\":{\"ID\":1,\"StableID\":\"n\xff\",\"Name\":\"x.\"}}\n"));
  EXPECT_EQ(p.state(), before);
  EXPECT_EQ(p.malformed, 0);  // the lines are fine; the nodes are not
  EXPECT_EQ(p.invalid(SelfProblem::AddressPrefixLength), 1u);
  EXPECT_EQ(p.invalid(SelfProblem::InvalidAddress), 1u);
  EXPECT_EQ(p.invalid(SelfProblem::EmptyName), 1u);
  EXPECT_EQ(p.invalid(SelfProblem::InvalidText), 1u);
  EXPECT_EQ(p.reducer.selfChanges(), 1u);
}

TEST(NodeStateReducer, AnInitialStatusWithAnInvalidSelfKeepsTheLastIdentityButAppliesTheState) {
  Pipeline p;
  ASSERT_TRUE(p.feed(selfChange(R"(["100.90.12.34/32"])")));
  const auto self = p.state().self;
  EXPECT_TRUE(p.feed(R"({"InitialStatus":{"BackendState":"Running","Self":{"ID":"nSdcr7Qx2CNTRL",)"
                     R"("DNSName":"demo-0.tail3f9a2c.ts.net.","TailscaleIPs":["100.64.0.1/33"]},)"
                     R"("CurrentTailnet":{"Name":"example.com"}}})"
                     "\n"));
  EXPECT_EQ(p.state().state, BackendState::Running);
  EXPECT_EQ(p.state().tailnet_name, "");  // the tailnet comes with a valid identity only
  EXPECT_EQ(p.state().self, self);
  EXPECT_EQ(p.invalid(SelfProblem::AddressPrefixLength), 1u);
}

TEST(NodeStateReducer, EachDistinctProblemIsLoggedOnceAndAllAreCounted) {
  const std::string log = capturedLog([](Logger& l) {
    Pipeline p(false, l);
    for (int i = 0; i < 5; ++i) p.feed(selfChange(R"(["100.64.0.1/99"])"));
    for (int i = 0; i < 5; ++i) p.feed(selfChange(R"(["not-an-ip"])"));
    EXPECT_EQ(p.invalid(SelfProblem::AddressPrefixLength), 5u);
    EXPECT_EQ(p.invalid(SelfProblem::InvalidAddress), 5u);
  });
  EXPECT_EQ(occurrences(log, "not published"), 2u) << log;
  EXPECT_EQ(occurrences(log, "problem=address_prefix_length"), 1u) << log;
  EXPECT_NE(log.find("over 32 for IPv4"), std::string::npos) << log;
  EXPECT_EQ(occurrences(log, "problem=invalid_address"), 1u) << log;
}

// A second "SelfChange" on the line (empty, or null) used to replace the node or be ignored.
TEST(NodeStateReducer, ALineWithASecondSelfChangeChangesNothing) {
  Pipeline p;
  ASSERT_TRUE(p.feed(selfChange(R"(["100.90.12.34/32"])")));
  const NodeState before = p.state();
  EXPECT_FALSE(p.feed(R"({"SelfChange":{)" + kNode +
                      R"("Addresses":["100.64.0.9/32"]},"SelfChange":{}})" + "\n"));
  EXPECT_FALSE(p.feed(R"({"SelfChange":{)" + kNode +
                      R"("Addresses":["100.64.0.9/32"]},"SelfChange":null})" + "\n"));
  EXPECT_EQ(p.malformed, 2);
  EXPECT_EQ(p.state(), before);
}

}  // namespace
}  // namespace tsk::watcher
