#include "watcher/self_validation.h"

#include <gtest/gtest.h>

#include <string>

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

TEST(ValidateSelf, StableIdAndNameMustBeNonEmpty) {
  auto s = goodNode();
  s.stable_id.clear();
  EXPECT_EQ(validateSelf(s).problem, SelfProblem::EmptyStableId);
  s = goodNode();
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

}  // namespace
}  // namespace tsk::watcher
