#include "tools/statusgen/statusgen.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

#include "common/log.h"

namespace tsk::statusgen {
namespace {

constexpr size_t kFlushBytes = 64 * 1024;
constexpr std::string_view kZeroTime = "0001-01-01T00:00:00Z";
constexpr std::string_view kSuffix = ".tail3f9a2c.ts.net.";
constexpr char kHex[] = "0123456789abcdef";

// splitmix64: a cheap, well-mixed hash of (index, seed, salt) so every field of peer i is
// deterministic without keeping any state.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
uint64_t peerHash(uint64_t index, uint64_t seed, uint64_t salt) {
  return mix(index * 0x100000001b3ull ^ mix(seed + salt * 0x9e3779b97f4a7c15ull));
}

// An appending writer that hands ~64 KiB pieces to the sink (or keeps everything when the sink
// is null, for the one-string variants).
class Out {
 public:
  explicit Out(const Sink* sink) : sink_(sink) {
    if (sink_) buf_.reserve(kFlushBytes + 8192);  // small strings (peerAt) stay small
  }
  Out& lit(std::string_view s) {
    buf_.append(s);
    return *this;
  }
  Out& ch(char c) {
    buf_.push_back(c);
    return *this;
  }
  Out& num(int64_t v) {
    char tmp[24];
    auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
    buf_.append(tmp, static_cast<size_t>(r.ptr - tmp));
    return *this;
  }
  Out& unum(uint64_t v) {
    char tmp[24];
    auto r = std::to_chars(tmp, tmp + sizeof tmp, v);
    buf_.append(tmp, static_cast<size_t>(r.ptr - tmp));
    return *this;
  }
  Out& hex(uint64_t v, int digits) {
    char tmp[16];
    for (int i = digits - 1; i >= 0; --i) {
      tmp[i] = kHex[v & 0xf];
      v >>= 4;
    }
    buf_.append(tmp, static_cast<size_t>(digits));
    return *this;
  }
  Out& hexNoPad(uint64_t v) {  // for IPv6 groups
    char tmp[16];
    int n = 0;
    do {
      tmp[n++] = kHex[v & 0xf];
      v >>= 4;
    } while (v);
    while (n) buf_.push_back(tmp[--n]);
    return *this;
  }
  Out& str(std::string_view s) {  // a JSON string value with quotes
    buf_.push_back('"');
    appendJsonEscaped(buf_, s);
    buf_.push_back('"');
    return *this;
  }
  Out& key(std::string_view k) {  // ,"k": or "k": ; callers pass the comma in the literal
    buf_.push_back('"');
    buf_.append(k);
    buf_.append("\":");
    return *this;
  }
  Out& boolean(bool b) { return lit(b ? "true" : "false"); }
  void maybeFlush() {
    if (sink_ && buf_.size() >= kFlushBytes) flush();
  }
  void flush() {
    if (!sink_ || buf_.empty()) return;
    total_ += buf_.size();
    (*sink_)(buf_);
    buf_.clear();
  }
  uint64_t total() const { return total_ + buf_.size(); }
  std::string take() { return std::move(buf_); }

 private:
  const Sink* sink_;
  std::string buf_;
  uint64_t total_ = 0;
};

// 64 hex digits derived from (index, seed, salt). With `sorted_prefix` the first 10 digits grow
// with the index, so map keys come out sorted like Go's encoder sorts them.
void appendKeyHex(Out& o, uint64_t index, uint64_t seed, uint64_t salt, bool sorted_prefix) {
  uint64_t h = peerHash(index, seed, salt);
  if (sorted_prefix) {
    o.hex(index * 4099 + h % 4099, 10);
    o.hex(mix(h), 16).hex(mix(h + 1), 16).hex(mix(h + 2), 16).hex(mix(h + 3) >> 8, 6);
  } else {
    o.hex(h, 16).hex(mix(h), 16).hex(mix(h + 1), 16).hex(mix(h + 2), 16);
  }
}

// RFC 3339 UTC time within 2023-2026, with nanoseconds trimmed of trailing zeros like Go.
void appendTime(Out& o, uint64_t h, bool with_fraction) {
  const int year = 2023 + static_cast<int>(h % 4);
  const int month = 1 + static_cast<int>((h >> 4) % 12);
  const int day = 1 + static_cast<int>((h >> 8) % 28);
  const int hour = static_cast<int>((h >> 13) % 24);
  const int minute = static_cast<int>((h >> 18) % 60);
  const int second = static_cast<int>((h >> 24) % 60);
  char tmp[40];
  auto two = [&](int pos, int v) {
    tmp[pos] = static_cast<char>('0' + v / 10);
    tmp[pos + 1] = static_cast<char>('0' + v % 10);
  };
  tmp[0] = '"';
  two(1, year / 100);
  two(3, year % 100);
  tmp[5] = '-';
  two(6, month);
  tmp[8] = '-';
  two(9, day);
  tmp[11] = 'T';
  two(12, hour);
  tmp[14] = ':';
  two(15, minute);
  tmp[17] = ':';
  two(18, second);
  int n = 20;
  if (with_fraction) {
    uint64_t nanos = (h >> 30) % 1000000000ull;
    if (nanos != 0) {
      tmp[n++] = '.';
      char digits[9];
      for (int i = 8; i >= 0; --i) {
        digits[i] = static_cast<char>('0' + nanos % 10);
        nanos /= 10;
      }
      int len = 9;
      while (len > 1 && digits[len - 1] == '0') --len;
      std::memcpy(tmp + n, digits, static_cast<size_t>(len));
      n += len;
    }
  }
  tmp[n++] = 'Z';
  tmp[n++] = '"';
  o.lit(std::string_view(tmp, static_cast<size_t>(n)));
}

std::string_view versionOr(std::string_view v, std::string_view dflt) {
  return v.empty() ? dflt : v;
}

bool isV6(std::string_view ip) {
  return ip.find(':') != std::string_view::npos;
}

void appendStringArray(Out& o, const std::vector<std::string>& items, std::string_view suffix_v4,
                       std::string_view suffix_v6) {
  o.ch('[');
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) o.ch(',');
    o.ch('"');
    o.lit(items[i]);
    o.lit(isV6(items[i]) ? suffix_v6 : suffix_v4);
    o.ch('"');
  }
  o.ch(']');
}

void appendNotifyHead(Out& o, std::string_view version) {
  o.lit("{\"Version\":").str(version).lit(",\"ErrMessage\":null,\"LoginFinished\":null");
}
constexpr std::string_view kTail = "\"Engine\":null,\"BrowseToURL\":null,\"DriveShares\":null}\n";

// Fixed user table: a handful of humans plus the tagged-devices pseudo-user; one ID > 2^53.
constexpr std::array<int64_t, 8> kUserIds = {6412345678901234, 7701234567890123, 7801234567890124,
                                             9007199254740993, 1234567890123,    2345678901234,
                                             3456789012345,    4567890123456};
constexpr std::array<std::string_view, 8> kUserNames = {
    "tagged-devices", "alice", "carol", "bob", "dave", "erin", "frank", "grace"};

constexpr std::array<std::string_view, 6> kOS = {"linux", "linux",   "linux",
                                                 "macOS", "windows", "iOS"};
constexpr std::array<std::string_view, 6> kRelay = {"fra", "nyc", "sfo", "lhr", "sin", "syd"};
constexpr std::array<std::string_view, 5> kHostPrefix = {"ci-runner", "web", "db", "laptop",
                                                         "edge-router"};

// Peer i gets 100.64.0.0/10 and fd7a:115c:a1e0::/48 addresses numbered i + 1, in canonical form.
void appendIpv4(Out& o, uint64_t index) {
  const uint64_t n = index + 1;
  o.lit("100.").unum(64 + ((n >> 16) & 63)).ch('.').unum((n >> 8) & 255).ch('.').unum(n & 255);
}
void appendIpv6(Out& o, uint64_t index) {
  const uint64_t n = index + 1;
  o.lit("fd7a:115c:a1e0::");
  if ((n >> 16) & 0xffff) o.hexNoPad((n >> 16) & 0xffff).ch(':');
  o.hexNoPad(n & 0xffff);
}

void appendPeerStatus(Out& o, uint64_t i, const InitialStatusOptions& opt) {
  const uint64_t seed = opt.seed;
  const uint64_t h = peerHash(i, seed, 1);
  const PeerNode p = peerAt(i, seed, opt.online_fraction);
  const bool rich = (h % 10) == 0;  // subnet router / exit node
  const bool tagged = (h % 3) == 0;
  const bool with_ssh = (h % 7) == 0 || rich;
  const bool active = p.online && (h % 4) == 0;
  const std::string_view os = kOS[(h >> 8) % kOS.size()];
  const uint64_t port = 1024 + (h >> 20) % 60000;

  o.lit("\"nodekey:");
  appendKeyHex(o, i, seed, 2, true);
  o.lit("\":{\"ID\":").str(p.stable_id);
  if (opt.with_node_id) o.lit(",\"NodeID\":").num(p.node_id);
  o.lit(",\"PublicKey\":\"nodekey:");
  appendKeyHex(o, i, seed, 2, true);
  o.lit("\",\"HostName\":").str(p.host_name);
  o.lit(",\"DNSName\":").str(p.name);
  o.lit(",\"OS\":\"").lit(os).lit("\",\"UserID\":").num(p.user_id);
  o.lit(",\"TailscaleIPs\":[\"").lit(p.ipv4).lit("\",\"").lit(p.ipv6).lit("\"]");
  o.lit(",\"AllowedIPs\":[\"").lit(p.ipv4).lit("/32\",\"").lit(p.ipv6).lit("/128\"");
  if (rich) o.lit(",\"10.").unum((h >> 12) & 255).lit(".0.0/16\",\"0.0.0.0/0\",\"::/0\"");
  o.ch(']');
  if (tagged) o.lit(",\"Tags\":[\"tag:ci\",\"tag:prod\"]");
  if (rich) o.lit(",\"PrimaryRoutes\":[\"10.").unum((h >> 12) & 255).lit(".0.0/16\"]");
  o.lit(",\"Addrs\":null,\"CurAddr\":");
  if (active) {
    o.lit("\"198.51.100.").unum((h >> 28) & 255).lit(":41641\"");
  } else {
    o.lit("\"\"");
  }
  o.lit(",\"Relay\":\"").lit(kRelay[(h >> 16) % kRelay.size()]);
  o.lit("\",\"PeerRelay\":\"\",\"RxBytes\":").unum(active ? (h >> 12) % 100000000 : 0);
  o.lit(",\"TxBytes\":").unum(active ? (h >> 22) % 10000000 : 0);
  o.lit(",\"Created\":");
  appendTime(o, mix(h + 11), true);
  o.lit(",\"LastWrite\":");
  if (active) {
    appendTime(o, mix(h + 12), true);
  } else {
    o.ch('"').lit(kZeroTime).ch('"');
  }
  o.lit(",\"LastSeen\":");
  if (!p.online) {
    appendTime(o, mix(h + 13), false);
  } else {
    o.ch('"').lit(kZeroTime).ch('"');
  }
  o.lit(",\"LastHandshake\":");
  if (active) {
    appendTime(o, mix(h + 14), true);
  } else {
    o.ch('"').lit(kZeroTime).ch('"');
  }
  o.lit(",\"Online\":").boolean(p.online);
  o.lit(",\"ExitNode\":false,\"ExitNodeOption\":").boolean(rich);
  o.lit(",\"Active\":").boolean(active);
  if (opt.peer_api) {
    o.lit(",\"PeerAPIURL\":[\"http://").lit(p.ipv4).ch(':').unum(port);
    o.lit("\",\"http://[").lit(p.ipv6).lit("]:").unum(port).lit("\"]");
  } else {
    o.lit(",\"PeerAPIURL\":null");
  }
  o.lit(",\"TaildropTarget\":").unum(p.online ? 4 : 5).lit(",\"NoFileSharingReason\":\"\"");
  if (rich) {
    o.lit(
        ",\"CapMap\":{\"funnel\":null,\"https\":null,"
        "\"https://tailscale.com/cap/file-sharing\":null,\"probe-udp-lifetime\":null}");
  }
  if (with_ssh) {
    o.lit(",\"sshHostKeys\":[\"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI");
    o.hex(mix(h + 21), 16).hex(mix(h + 22), 16).hex(mix(h + 23), 12);
    o.lit(" root@").lit(p.host_name).lit("\"]");
  }
  o.lit(",\"InNetworkMap\":true,\"InMagicSock\":true,\"InEngine\":").boolean(active);
  if (!tagged) {
    o.lit(",\"KeyExpiry\":");
    appendTime(o, mix(h + 15), false);
  }
  if (rich) {
    o.lit(
        ",\"Location\":{\"Country\":\"Germany\",\"CountryCode\":\"DE\",\"City\":\"Frankfurt\","
        "\"CityCode\":\"FRA\",\"Priority\":10}");
  }
  o.ch('}');
}

constexpr std::string_view kZeroNodeKey =
    "nodekey:0000000000000000000000000000000000000000000000000000000000000000";

// The Self of a daemon that has no netmap yet (InitialStatusOptions::pre_netmap).
void appendEmptySelfPeerStatus(Out& o, const InitialStatusOptions& opt) {
  o.lit("{\"ID\":\"\"");
  if (opt.with_node_id) o.lit(",\"NodeID\":0");
  o.lit(",\"PublicKey\":").str(kZeroNodeKey);
  o.lit(",\"HostName\":").str(opt.self.host_name).lit(",\"DNSName\":\"\"");
  o.lit(
      ",\"OS\":\"linux\",\"UserID\":0,\"TailscaleIPs\":null,\"AllowedIPs\":null,\"Addrs\":[],"
      "\"CurAddr\":\"\",\"Relay\":\"\",\"PeerRelay\":\"\",\"RxBytes\":0,\"TxBytes\":0,\"Created\":"
      "\"0001-01-01T00:00:00Z\",\"LastWrite\":\"0001-01-01T00:00:00Z\",\"LastSeen\":\"0001-01-"
      "01T00:"
      "00:00Z\",\"LastHandshake\":\"0001-01-01T00:00:00Z\",\"Online\":false,\"ExitNode\":false,"
      "\"ExitNodeOption\":false,\"Active\":false,\"PeerAPIURL\":null,\"TaildropTarget\":0,"
      "\"NoFileSharingReason\":\"\",\"InNetworkMap\":false,\"InMagicSock\":false,\"InEngine\":"
      "false}");
}

void appendSelfPeerStatus(Out& o, const InitialStatusOptions& opt) {
  if (opt.pre_netmap) return appendEmptySelfPeerStatus(o, opt);
  const Identity& s = opt.self;
  o.lit("{\"ID\":").str(s.stable_id);
  if (opt.with_node_id) o.lit(",\"NodeID\":").num(s.node_id);
  o.lit(",\"PublicKey\":").str(s.node_key);
  o.lit(",\"HostName\":").str(s.host_name).lit(",\"DNSName\":").str(s.name);
  o.lit(",\"OS\":\"linux\",\"UserID\":").num(s.user_id);
  o.lit(",\"TailscaleIPs\":");
  appendStringArray(o, s.addresses, "", "");
  o.lit(",\"AllowedIPs\":");
  appendStringArray(o, s.addresses, "/32", "/128");
  if (!s.tags.empty()) {
    o.lit(",\"Tags\":[");
    for (size_t i = 0; i < s.tags.size(); ++i) {
      if (i) o.ch(',');
      o.str(s.tags[i]);
    }
    o.ch(']');
  }
  o.lit(
      ",\"Addrs\":[\"203.0.113.10:41641\",\"10.244.1.17:41641\"],\"CurAddr\":\"\",\"Relay\":"
      "\"fra\",\"PeerRelay\":\"\",\"RxBytes\":0,\"TxBytes\":0,\"Created\":\"2026-03-02T17:03:11."
      "402199123Z\",\"LastWrite\":\"0001-01-01T00:00:00Z\",\"LastSeen\":\"0001-01-01T00:00:00Z\","
      "\"LastHandshake\":\"0001-01-01T00:00:00Z\",\"Online\":true,\"ExitNode\":false,"
      "\"ExitNodeOption\":false,\"Active\":false,\"PeerAPIURL\":[");
  for (size_t i = 0; i < s.addresses.size(); ++i) {
    if (i) o.ch(',');
    if (isV6(s.addresses[i])) {
      o.lit("\"http://[").lit(s.addresses[i]).lit("]:36111\"");
    } else {
      o.lit("\"http://").lit(s.addresses[i]).lit(":36111\"");
    }
  }
  o.lit(
      "],\"TaildropTarget\":0,\"NoFileSharingReason\":\"\",\"Capabilities\":[\"HTTPS://"
      "TAILSCALE.COM/s/DEPRECATED-NODE-CAPS#see-https://github.com/tailscale/tailscale/issues/"
      "11508\",\"funnel\",\"https\"],\"CapMap\":{\"funnel\":null,\"https\":null},"
      "\"InNetworkMap\":true,\"InMagicSock\":false,\"InEngine\":false");
  if (!s.key_expiry.empty()) o.lit(",\"KeyExpiry\":").str(s.key_expiry);
  o.ch('}');
}

void appendNode(Out& o, const PeerNode& p) {
  const uint64_t h = mix(static_cast<uint64_t>(p.node_id));
  o.lit("{\"ID\":").num(p.node_id).lit(",\"StableID\":").str(p.stable_id);
  o.lit(",\"Name\":").str(p.name).lit(",\"User\":").num(p.user_id);
  o.lit(",\"Key\":").str(p.node_key);
  o.lit(",\"KeyExpiry\":");
  appendTime(o, mix(h + 1), false);
  o.lit(",\"Machine\":\"mkey:").hex(mix(h + 2), 16).hex(mix(h + 3), 16).hex(mix(h + 4), 16);
  o.hex(mix(h + 5), 16).lit("\",\"DiscoKey\":\"discokey:").hex(mix(h + 6), 16);
  o.hex(mix(h + 7), 16).hex(mix(h + 8), 16).hex(mix(h + 9), 16);
  o.lit("\",\"Addresses\":[\"").lit(p.ipv4).lit("/32\",\"").lit(p.ipv6).lit("/128\"]");
  o.lit(",\"AllowedIPs\":[\"").lit(p.ipv4).lit("/32\",\"").lit(p.ipv6).lit("/128\"]");
  o.lit(",\"Endpoints\":[\"192.0.2.").unum(h % 250 + 1).lit(":41641\"],\"HomeDERP\":4");
  o.lit(",\"Hostinfo\":{\"OS\":\"linux\",\"Hostname\":").str(p.host_name);
  o.lit(",\"Services\":[{\"Proto\":\"peerapi4\",\"Port\":61203}]},\"Created\":");
  appendTime(o, mix(h + 10), true);
  o.lit(",\"Cap\":137");
  if (!p.online) {
    o.lit(",\"LastSeen\":");
    appendTime(o, mix(h + 11), false);
  }
  o.lit(",\"Online\":").boolean(p.online);
  o.lit(",\"MachineAuthorized\":true,\"ComputedName\":").str(p.host_name);
  o.lit(",\"ComputedNameWithHost\":").str(p.host_name).ch('}');
}

// "UserProfiles":{...} / "User":{...}: the fixed user table keyed by decimal UserID string,
// sorted as strings like Go's encoder sorts map keys.
void appendUserMap(Out& o) {
  std::array<size_t, kUserIds.size()> order{};
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [](size_t a, size_t b) {
    return std::to_string(kUserIds[a]) < std::to_string(kUserIds[b]);
  });
  o.ch('{');
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    if (k) o.ch(',');
    o.ch('"').num(kUserIds[i]).lit("\":{\"ID\":").num(kUserIds[i]);
    if (i == 0) {
      o.lit(",\"LoginName\":\"tagged-devices\",\"DisplayName\":\"Tagged Devices\"}");
    } else {
      o.lit(",\"LoginName\":\"").lit(kUserNames[i]).lit("@example.com\",\"DisplayName\":\"");
      o.lit(kUserNames[i]).lit(" Example\",\"ProfilePicURL\":\"https://example.com/pic/");
      o.lit(kUserNames[i]).lit(".png\"}");
    }
  }
  o.ch('}');
}

}  // namespace

PeerNode peerAt(uint64_t index, uint64_t seed, double online_fraction) {
  const uint64_t h = peerHash(index, seed, 1);
  PeerNode p;
  // Unique per index; every fifth ID is above 2^53
  // (docs/PROTOCOL.md#notify-fields-the-agent-reads, Scalars).
  p.node_id = (index % 5 == 0) ? static_cast<int64_t>(9007199254740993ull + index * 7919)
                               : static_cast<int64_t>(5000000000000ull + index * 7919 + h % 7919);
  Out o(nullptr);
  o.ch('n').hex(mix(h + 3), 10).lit("CNTRL");
  p.stable_id = o.take();
  Out hn(nullptr);
  hn.lit(kHostPrefix[(h >> 5) % kHostPrefix.size()]).ch('-').unum(index);
  p.host_name = hn.take();
  p.name = p.host_name;
  p.name += kSuffix;
  Out key(nullptr);
  key.lit("nodekey:");
  appendKeyHex(key, index, seed, 2, true);
  p.node_key = key.take();
  Out v4(nullptr);
  appendIpv4(v4, index);
  p.ipv4 = v4.take();
  Out v6(nullptr);
  appendIpv6(v6, index);
  p.ipv6 = v6.take();
  p.user_id = kUserIds[(h >> 40) % kUserIds.size()];
  const double u = static_cast<double>(mix(h + 99) >> 11) * (1.0 / 9007199254740992.0);
  p.online = u < online_fraction;
  return p;
}

uint64_t writeInitialStatus(const Sink& sink, const InitialStatusOptions& opt) {
  if (!sink) return 0;
  Out o(&sink);
  const std::string_view version = versionOr(opt.version, opt.with_node_id ? kVersionH : kVersionT);
  o.lit("{\"Version\":").str(version);
  if (opt.with_state) o.lit(",\"SessionID\":\"").hex(mix(opt.seed), 16).ch('"');
  o.lit(",\"ErrMessage\":null,\"LoginFinished\":null,\"State\":");
  if (opt.with_state) {
    o.num(6);
  } else {
    o.lit("null");
  }
  o.lit(",\"Prefs\":null,\"InitialStatus\":{\"Version\":").str(version);
  o.lit(",\"TUN\":false,\"BackendState\":").str(opt.backend_state);
  o.lit(",\"HaveNodeKey\":true,\"AuthURL\":\"\",\"TailscaleIPs\":");
  if (opt.pre_netmap) {
    o.lit("null");
  } else {
    appendStringArray(o, opt.self.addresses, "", "");
  }
  o.lit(",\"Self\":");
  appendSelfPeerStatus(o, opt);
  if (opt.pre_netmap) {
    // The health tracker's one warning of a daemon that is not running yet (tailscale
    // `health` `Tracker.Strings`): "stopped" while it needs a login, else "starting".
    const bool stopped = opt.backend_state == "NeedsLogin" || opt.backend_state == "Stopped" ||
                         opt.backend_state == "NoState";
    o.lit(",\"Health\":[")
        .str(stopped ? "Tailscale is stopped." : "Tailscale is starting. Please wait.");
    o.lit("],\"MagicDNSSuffix\":\"\",\"CurrentTailnet\":null,\"CertDomains\":null");
  } else {
    o.lit(",\"Health\":[],\"MagicDNSSuffix\":").str(opt.magic_dns_suffix);
    o.lit(",\"CurrentTailnet\":{\"Name\":").str(opt.tailnet_name);
    o.lit(",\"MagicDNSSuffix\":").str(opt.magic_dns_suffix).lit(",\"MagicDNSEnabled\":true}");
    if (opt.cert_domains) {
      std::string cert = opt.self.name;
      if (!cert.empty() && cert.back() == '.') cert.pop_back();
      o.lit(",\"CertDomains\":[").str(cert).ch(']');
    } else {
      o.lit(",\"CertDomains\":null");
    }
  }
  if (opt.with_node_id) {
    if (opt.extra_records && !opt.pre_netmap) {
      o.lit(",\"ExtraRecords\":[{\"Name\":\"web-svc.").lit(opt.magic_dns_suffix);
      o.lit("\",\"Value\":\"100.100.50.7\"}]");
    } else {
      o.lit(",\"ExtraRecords\":null");
    }
  }
  o.lit(",\"Peer\":");
  if (opt.peers == 0 || opt.pre_netmap) {
    o.lit("null");
  } else {
    o.ch('{');
    for (uint64_t i = 0; i < opt.peers; ++i) {
      if (i) o.ch(',');
      appendPeerStatus(o, i, opt);
      o.maybeFlush();
    }
    o.ch('}');
  }
  // The User map (no netmap, no profiles: null), then ClientVersion, null unless the daemon
  // checked for updates (tailscale `ipn/ipnlocal` `StatusBuilder` always writes it).
  o.lit(",\"User\":");
  if (opt.pre_netmap) {
    o.lit("null");
  } else {
    appendUserMap(o);
  }
  o.lit(",\"ClientVersion\":null},\"NetMap\":null,").lit(kTail);
  o.flush();
  return o.total();
}

std::string initialStatusLine(const InitialStatusOptions& opts) {
  std::string line;
  writeInitialStatus([&](std::string_view piece) { line.append(piece); }, opts);
  return line;
}

namespace {

// The self node as SelfChange carries it (tailcfg.Node), with every field tailscaled 1.102.5
// writes for a Linux container node: Hostinfo's DistroCodeName, Desktop, NoLogsNoSupport,
// AppConnector and StateEncrypted, Capabilities, and CapMap values as [] (a node capability
// without arguments).
void appendSelfNode(Out& o, const Identity& s, std::string_view version) {
  o.lit("{\"ID\":").num(s.node_id);
  o.lit(",\"StableID\":").str(s.stable_id).lit(",\"Name\":").str(s.name);
  o.lit(",\"User\":").num(s.user_id).lit(",\"Key\":").str(s.node_key);
  if (!s.key_expiry.empty()) o.lit(",\"KeyExpiry\":").str(s.key_expiry);
  o.lit(
      ",\"Machine\":\"mkey:3a082d5a981b1fa55da7c2057c5d34bd1a081727d2666f98b44d29cfb7e67a42\","
      "\"DiscoKey\":\"discokey:2dbe5d0941a6b318d3bd3529d0cd513715086e8e05b8daa398d5b2837994fb24\","
      "\"Addresses\":");
  appendStringArray(o, s.addresses, "/32", "/128");
  o.lit(",\"AllowedIPs\":");
  appendStringArray(o, s.addresses, "/32", "/128");
  o.lit(
      ",\"Endpoints\":[\"203.0.113.10:41641\",\"10.244.1.17:41641\"],\"HomeDERP\":4,"
      "\"Hostinfo\":{\"IPNVersion\":");
  o.str(versionOr(version, kVersionT));
  o.lit(
      ",\"BackendLogID\":\"c684d8ceec1baeab98bb948a396720512c649aaa7000704573d766b2ecc3e14b\","
      "\"OS\":\"linux\",\"OSVersion\":\"6.8.0-1019-aws\",\"Container\":true,\"Env\":\"k8s\","
      "\"Distro\":\"debian\",\"DistroVersion\":\"12.11\",\"DistroCodeName\":\"bookworm\","
      "\"Desktop\":false,\"Hostname\":");
  o.str(s.host_name);
  o.lit(
      ",\"NoLogsNoSupport\":false,\"Machine\":\"x86_64\",\"GoArch\":\"amd64\",\"GoArchVar\":\"v1\","
      "\"GoVersion\":"
      "\"go1.26.3\",\"Services\":[{\"Proto\":\"peerapi4\",\"Port\":36111},{\"Proto\":"
      "\"peerapi6\",\"Port\":36111},{\"Proto\":\"peerapi-dns-proxy\",\"Port\":1}],\"Userspace\":"
      "true,\"UserspaceRouter\":true,\"AppConnector\":false,\"StateEncrypted\":false},\"Created\":"
      "\"2026-03-02T17:03:11.402199123Z\",\"Cap\":138");
  if (!s.tags.empty()) {
    o.lit(",\"Tags\":[");
    for (size_t i = 0; i < s.tags.size(); ++i) {
      if (i) o.ch(',');
      o.str(s.tags[i]);
    }
    o.ch(']');
  }
  std::string computed = s.name.substr(0, s.name.find('.'));
  o.lit(
      ",\"MachineAuthorized\":true,\"Capabilities\":[\"https\",\"funnel\","
      "\"https://tailscale.com/cap/funnel-ports?ports=443,8443,10000\",\"magicdns-aaaa\","
      "\"probe-udp-lifetime\"],\"CapMap\":{\"funnel\":[],\"https\":[],"
      "\"https://tailscale.com/cap/funnel-ports?ports=443,8443,10000\":[],\"magicdns-aaaa\":[],"
      "\"probe-udp-lifetime\":[]},\"ComputedName\":");
  o.str(computed).lit(",\"ComputedNameWithHost\":");
  if (computed == s.host_name) {
    o.str(computed);
  } else {
    o.str(computed + " (" + s.host_name + ")");
  }
  o.ch('}');
}

void writeFullNetmapTo(Out& o, const FullNetmapOptions& f) {
  appendNotifyHead(o, versionOr(f.version, kVersionT));
  o.lit(",\"State\":null,\"Prefs\":null,\"SelfChange\":");
  appendSelfNode(o, f.self, versionOr(f.version, kVersionT));
  o.lit(",\"NetMap\":null,\"PeersChanged\":[");
  for (uint64_t i = 0; i < f.peers; ++i) {
    if (i) o.ch(',');
    appendNode(o, f.peer_at ? f.peer_at(i) : peerAt(i, f.seed, f.online_fraction));
    o.maybeFlush();
  }
  o.ch(']');
  if (f.with_profiles) {
    o.lit(",\"UserProfiles\":");
    appendUserMap(o);
  }
  o.ch(',').lit(kTail);
}

}  // namespace

std::string selfChangeLine(const Identity& s, std::string_view version) {
  Out o(nullptr);
  appendNotifyHead(o, versionOr(version, kVersionT));
  o.lit(",\"State\":null,\"Prefs\":null,\"SelfChange\":");
  appendSelfNode(o, s, versionOr(version, kVersionT));
  o.lit(",\"NetMap\":null,").lit(kTail);
  return o.take();
}

uint64_t writeFullNetmap(const Sink& sink, const FullNetmapOptions& opts) {
  if (!sink) return 0;
  Out o(&sink);
  writeFullNetmapTo(o, opts);
  o.flush();
  return o.total();
}

std::string fullNetmapLine(const FullNetmapOptions& opts) {
  Out o(nullptr);
  writeFullNetmapTo(o, opts);
  return o.take();
}

std::string userProfilesLine(std::string_view version) {
  Out o(nullptr);
  appendNotifyHead(o, versionOr(version, kVersionT));
  o.lit(",\"State\":null,\"Prefs\":null,\"NetMap\":null,\"UserProfiles\":");
  appendUserMap(o);
  o.ch(',').lit(kTail);
  return o.take();
}

std::string prefsLine(const Identity& self, bool logged_in, std::string_view version) {
  Out o(nullptr);
  appendNotifyHead(o, versionOr(version, kVersionT));
  o.lit(
      ",\"State\":null,\"Prefs\":{\"ControlURL\":\"https://controlplane.tailscale.com\","
      "\"RouteAll\":false,\"ExitNodeID\":\"\",\"ExitNodeIP\":\"\",\"InternalExitNodePrior\":"
      "\"\",\"ExitNodeAllowLANAccess\":false,\"CorpDNS\":true,\"RunSSH\":false,"
      "\"RunWebClient\":false,\"WantRunning\":");
  o.boolean(logged_in).lit(",\"LoggedOut\":").boolean(!logged_in);
  // AdvertiseTags null: a sidecar's tags come with its auth key, not from --advertise-tags.
  o.lit(",\"ShieldsUp\":false,\"AdvertiseTags\":null,\"Hostname\":").str(self.host_name);
  o.lit(
      ",\"NotepadURLs\":false,\"AdvertiseRoutes\":null,\"AdvertiseServices\":null,\"Sync\":"
      "null,\"NoSNAT\":false,\"NoStatefulFiltering\":true,\"NetfilterMode\":2,\"AutoUpdate\":{"
      "\"Check\":true,\"Apply\":null},\"AppConnector\":{\"Advertise\":false},"
      "\"PostureChecking\":false,\"NetfilterKind\":\"\",\"RemoteConfig\":false,\"DriveShares\":"
      "null,\"Config\":");
  if (logged_in) {
    // ipn.Prefs.Persist as the bus shows it: private keys zeroed (tailscale `types/key`
    // MarshalText of a redacted key), the profile and StableID of the node.
    constexpr std::string_view kZeroPriv =
        "\"privkey:0000000000000000000000000000000000000000000000000000000000000000\"";
    o.lit("{\"PrivateNodeKey\":").lit(kZeroPriv).lit(",\"OldPrivateNodeKey\":").lit(kZeroPriv);
    o.lit(",\"UserProfile\":{\"ID\":").num(self.user_id);
    o.lit(
        ",\"LoginName\":\"tagged-devices\",\"DisplayName\":\"Tagged Devices\"},"
        "\"NetworkLockKey\":\"nlpriv:");
    for (int i = 0; i < 8; ++i) o.lit("0000000000000000");
    o.lit("\",\"NodeID\":").str(self.stable_id).ch('}');
  } else {
    o.lit("null");
  }
  o.lit("},\"NetMap\":null,").lit(kTail);
  return o.take();
}

std::string loginFinishedLine(std::string_view version) {
  Out o(nullptr);
  o.lit("{\"Version\":").str(versionOr(version, kVersionT));
  o.lit(",\"ErrMessage\":null,\"LoginFinished\":{},\"State\":null,\"Prefs\":null,\"NetMap\":null,");
  o.lit(kTail);
  return o.take();
}

std::string driveSharesLine(std::string_view version) {
  Out o(nullptr);
  appendNotifyHead(o, versionOr(version, kVersionT));
  o.lit(
      ",\"State\":null,\"Prefs\":null,\"NetMap\":null,\"Engine\":null,\"BrowseToURL\":null,"
      "\"DriveShares\":[]}\n");
  return o.take();
}

std::string stateLine(int state, std::string_view version) {
  Out o(nullptr);
  appendNotifyHead(o, versionOr(version, kVersionT));
  o.lit(",\"State\":").num(state).lit(",\"Prefs\":null,\"NetMap\":null,").lit(kTail);
  return o.take();
}

std::string blankLine(std::string_view version) {
  Out o(nullptr);
  appendNotifyHead(o, versionOr(version, kVersionT));
  o.lit(",\"State\":null,\"Prefs\":null,\"NetMap\":null,").lit(kTail);
  return o.take();
}

std::string peersChangedLine(const PeerNode& peer, std::string_view version) {
  Out o(nullptr);
  appendNotifyHead(o, versionOr(version, kVersionT));
  o.lit(",\"State\":null,\"Prefs\":null,\"NetMap\":null,\"PeersChanged\":[");
  appendNode(o, peer);
  o.lit("],").lit(kTail);
  return o.take();
}

std::string peersRemovedLine(std::span<const int64_t> node_ids, std::string_view version) {
  Out o(nullptr);
  appendNotifyHead(o, versionOr(version, kVersionT));
  o.lit(",\"State\":null,\"Prefs\":null,\"NetMap\":null,\"PeersRemoved\":[");
  for (size_t i = 0; i < node_ids.size(); ++i) {
    if (i) o.ch(',');
    o.num(node_ids[i]);
  }
  o.lit("],").lit(kTail);
  return o.take();
}

std::string peerPatchLine(int64_t node_id, bool online, std::string_view version) {
  Out o(nullptr);
  appendNotifyHead(o, versionOr(version, kVersionT));
  o.lit(",\"State\":null,\"Prefs\":null,\"NetMap\":null,\"PeerChangedPatch\":[{\"NodeID\":");
  o.num(node_id).lit(",\"Online\":").boolean(online);
  if (!online) {
    o.lit(",\"LastSeen\":");
    appendTime(o, mix(static_cast<uint64_t>(node_id)), false);
  }
  o.lit("}],").lit(kTail);
  return o.take();
}

std::string errMessageLine(std::string_view text, std::string_view version) {
  Out o(nullptr);
  o.lit("{\"Version\":").str(versionOr(version, kVersionT)).lit(",\"ErrMessage\":").str(text);
  o.lit(",\"LoginFinished\":null,\"State\":null,\"Prefs\":null,\"NetMap\":null,").lit(kTail);
  return o.take();
}

std::string healthLine(bool warning, std::string_view version) {
  Out o(nullptr);
  appendNotifyHead(o, versionOr(version, kVersionT));
  o.lit(
      ",\"State\":null,\"Prefs\":null,\"NetMap\":null,\"Engine\":null,\"BrowseToURL\":null,"
      "\"DriveShares\":null,\"Health\":{\"Warnings\":");
  if (warning) {
    o.lit(
        "{\"no-derp-home\":{\"WarnableCode\":\"no-derp-home\",\"Severity\":\"medium\",\"Title\":"
        "\"No home relay server\",\"Text\":\"Tailscale could not connect to any relay server. "
        "Check your Internet connection.\",\"BrokenSince\":\"2026-04-30T04:25:13.004417293Z\","
        "\"DependsOn\":[\"network-status\",\"warming-up\"],\"ImpactsConnectivity\":true,\"ETag\":"
        "\"82529aed79b1afb629453922be1bfd82463a25ab89cb315013287715ffa33f84\"}}");
  } else {
    o.lit("null");
  }
  o.lit("}}\n");
  return o.take();
}

std::string engineLine(std::string_view version) {
  Out o(nullptr);
  appendNotifyHead(o, versionOr(version, kVersionT));
  o.lit(
      ",\"State\":null,\"Prefs\":null,\"NetMap\":null,\"Engine\":{\"RBytes\":1848213,\"WBytes\":"
      "612904,\"NumLive\":1,\"LiveDERPs\":1,\"LivePeers\":{\"nodekey:"
      "a5daa8600065c0a5aa1bc8d52199f3f3b5a555c496569827bf34d3f3869cb742\":{\"NodeKey\":\"nodekey:"
      "a5daa8600065c0a5aa1bc8d52199f3f3b5a555c496569827bf34d3f3869cb742\",\"TxBytes\":612904,"
      "\"RxBytes\":1848213,\"LastHandshake\":\"2026-04-30T04:18:02.987654321Z\"}}},"
      "\"BrowseToURL\":null,\"DriveShares\":null}\n");
  return o.take();
}

}  // namespace tsk::statusgen
