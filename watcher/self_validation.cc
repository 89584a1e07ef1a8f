#include "watcher/self_validation.h"

#include <arpa/inet.h>

#include <array>
#include <cstdio>

#include "common/text.h"

namespace tsk::watcher {
namespace {

constexpr std::array<std::string_view, kSelfProblemCount> kProblemNames = {
    "none", "empty_name", "invalid_text", "invalid_address", "address_prefix_length"};

// How a value is quoted in a problem's detail: bounded, valid UTF-8.
std::string quoted(std::string_view v) {
  return "\"" + displayText(v, 128) + "\"";
}

bool hasControl(std::string_view s) {
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// A prefix length as netip.ParsePrefix reads it: decimal, no sign, no leading zero.
std::optional<int> prefixBits(std::string_view s) {
  if (s.empty() || s.size() > 3 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  int v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  return v;
}

// RFC 5952 text of an IPv6 address. inet_ntop (glibc) already writes it, except for the
// deprecated IPv4-compatible form ::a.b.c.d, which netip writes in hex (::102:304).
std::string ipv6Text(const in6_addr& a) {
  const uint8_t* b = a.s6_addr;
  bool compat = b[12] != 0 || b[13] != 0;  // word 6 nonzero, words 0-5 zero
  for (int i = 0; i < 12 && compat; ++i) compat = b[i] == 0;
  if (compat) {
    char out[32];
    std::snprintf(out, sizeof out, "::%x:%x", b[12] << 8 | b[13], b[14] << 8 | b[15]);
    return out;
  }
  char out[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, &a, out, sizeof out);
  return out;
}

}  // namespace

std::string_view selfProblemName(SelfProblem p) {
  const auto i = static_cast<size_t>(p);
  return i < kProblemNames.size() ? kProblemNames[i] : "unknown";
}

std::optional<std::string> canonicalAddress(std::string_view text, SelfProblem* problem,
                                            std::string* why) {
  const auto fail = [&](SelfProblem p, std::string w) -> std::optional<std::string> {
    if (problem) *problem = p;
    if (why) *why = std::move(w);
    return std::nullopt;
  };
  const size_t slash = text.find('/');
  const std::string_view ip = text.substr(0, slash);
  // INET6_ADDRSTRLEN bounds every IP text inet_pton accepts (an IPv4 tail included).
  if (ip.empty() || ip.size() >= INET6_ADDRSTRLEN) {
    return fail(SelfProblem::InvalidAddress, quoted(text) + " is not an IP address");
  }
  const std::string ip_z(ip);  // inet_pton wants a C string
  const bool v6 = ip.find(':') != std::string_view::npos;
  std::string canonical;
  if (v6) {
    in6_addr a{};
    if (inet_pton(AF_INET6, ip_z.c_str(), &a) != 1) {
      return fail(SelfProblem::InvalidAddress, quoted(text) + " is not an IP address");
    }
    canonical = ipv6Text(a);
  } else {
    in_addr a{};
    if (inet_pton(AF_INET, ip_z.c_str(), &a) != 1) {
      return fail(SelfProblem::InvalidAddress, quoted(text) + " is not an IP address");
    }
    char out[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &a, out, sizeof out);
    canonical = out;
  }
  if (slash != std::string_view::npos) {
    const auto bits = prefixBits(text.substr(slash + 1));
    if (!bits) {
      return fail(SelfProblem::InvalidAddress,
                  quoted(text) + " has no valid prefix length after the '/'");
    }
    const int max = v6 ? 128 : 32;
    if (*bits > max) {
      return fail(SelfProblem::AddressPrefixLength,
                  quoted(text) + " has prefix length " + std::to_string(*bits) + ", over " +
                      std::to_string(max) + " for " + (v6 ? "IPv6" : "IPv4"));
    }
  }
  return canonical;
}

SelfCheck validateSelf(const SelfNode& raw) {
  SelfCheck c;
  const auto fail = [&](SelfProblem p, std::string detail) {
    c.problem = p;
    c.detail = std::move(detail);
    return c;
  };
  const auto textProblem = [](std::string_view field, std::string_view v) -> std::string {
    if (!isValidUtf8(v)) return std::string(field) + " " + quoted(v) + " is not valid UTF-8";
    if (hasControl(v)) return std::string(field) + " " + quoted(v) + " holds a control character";
    return {};
  };
  if (raw.name.empty()) return fail(SelfProblem::EmptyName, "Name is empty");
  for (const auto& [field, value] :
       {std::pair<std::string_view, const std::string*>{"StableID", &raw.stable_id},
        {"Name", &raw.name},
        {"KeyExpiry", &raw.key_expiry},
        {"Hostname", &raw.host_name}}) {
    if (auto why = textProblem(field, *value); !why.empty()) {
      return fail(SelfProblem::InvalidText, std::move(why));
    }
  }
  for (const auto& tag : raw.tags) {
    if (auto why = textProblem("a tag", tag); !why.empty()) {
      return fail(SelfProblem::InvalidText, std::move(why));
    }
  }
  SelfNode node = raw;
  for (auto& addr : node.addresses) {
    SelfProblem p = SelfProblem::None;
    std::string why;
    auto canonical = canonicalAddress(addr, &p, &why);
    if (!canonical) return fail(p, "address " + why);
    addr = std::move(*canonical);
  }
  c.node = std::move(node);
  return c;
}

}  // namespace tsk::watcher
