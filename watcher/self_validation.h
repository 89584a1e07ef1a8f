#pragma once
// validateSelf: the one check a self node passes before it can become the identity the agent
// publishes. The NotifyParser owns syntax and the shape of what it keeps (a State that is an
// integer 0-6, no duplicate keys, strings within 4 KiB, arrays within 64 items); this owns
// whether the node it yields is a publishable identity, and puts its addresses in canonical form.
// The NodeStateReducer calls it on every SelfChange and InitialStatus.Self: an invalid node is
// counted and logged there, never stored, so the last valid identity stays published.
//
//   const SelfCheck c = validateSelf(raw);
//   if (c.node) use(*c.node); else log(selfProblemName(c.problem), c.detail);
//
// Rules (a node without a StableID, or outside the network map, is no identity at all:
// SelfNode::hasIdentity decides that before this is asked):
//   - Name is non-empty;
//   - every kept string (StableID, Name, KeyExpiry, Hostname, Tags) is valid UTF-8 without
//     control characters;
//   - each address is an IP (ipnstate.PeerStatus.TailscaleIPs) or an IP prefix
//     (tailcfg.Node.Addresses) whose prefix length fits the family (0-32 for IPv4, 0-128 for
//     IPv6), as netip.ParseAddr / ParsePrefix accept it, without an IPv6 zone. It is kept as the
//     bare IP in canonical text: IPv4 dotted decimal, IPv6 per RFC 5952 (what netip.Addr.String
//     writes: lower case, the longest run of two or more zero groups as "::", an IPv4-mapped
//     address as ::ffff:a.b.c.d).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "watcher/events.h"

namespace tsk::watcher {

enum class SelfProblem : uint8_t {
  None,
  EmptyName,
  InvalidText,          // a string that is not valid UTF-8 or holds a control character
  InvalidAddress,       // not an IP or IP prefix
  AddressPrefixLength,  // a prefix length that does not fit the address family
};
inline constexpr int kSelfProblemCount = 5;
// "empty_name", "invalid_text", "invalid_address", "address_prefix_length"
// (metric label values); "none".
std::string_view selfProblemName(SelfProblem p);

struct SelfCheck {
  std::optional<SelfNode> node;  // the node to publish (addresses canonical), when valid
  SelfProblem problem = SelfProblem::None;
  std::string detail;  // what exactly is wrong, for the log (the value shown bounded)
};

SelfCheck validateSelf(const SelfNode& raw);

// One address as validateSelf keeps it: the canonical bare IP of "ip" or "ip/bits", or nullopt
// with `problem` (and `why`) set.
std::optional<std::string> canonicalAddress(std::string_view text, SelfProblem* problem = nullptr,
                                            std::string* why = nullptr);

}  // namespace tsk::watcher
