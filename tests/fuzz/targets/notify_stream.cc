// Fuzz target: the Notify stream as the agent reads it, chunked HTTP framing included.
//
// The input is a watch-ipn-bus body (JSON lines). It is parsed four ways that must agree:
//   A  one feed() of the whole body;
//   B  feed() in random pieces (split points derived from the input);
//   C  wrapped in HTTP chunked framing (random chunk sizes, extensions, trailers) and decoded by
//      BusClient's BodyDecoder in random pieces, the decoded bytes fed to the parser;
//   D  with a small max_line_bytes: longer lines must be reported oversized, the rest as in A.
// Every complete line is also checked against nlohmann::json::parse (the oracle):
//   - blank (whitespace-only) lines yield nothing;
//   - a JSON object (nesting <= 64) that keeps the parser's schema yields onNotify with the same
//     version, state, err_message, kinds, SelfChange node, InitialStatus (state, self, tailnet,
//     peer counts) and, with peer tracking, the same peer events in the same order;
//   - the schema (notify_parser.h), each breach of which yields onMalformed: no key the parser
//     keeps appears twice in its object; a kept string is at most 4 KiB and a kept array (self
//     addresses, tags) at most 64 strings; a non-null State is an integer 0-6;
//   - valid JSON that is not an object, or nests deeper than 64, yields onMalformed;
//   - valid UTF-8 that nlohmann rejects yields onMalformed (the parser validates what it skips).
// Duplicates of keys the parser does not keep are accepted; such lines are not compared field by
// field (JSON leaves their meaning open). Every self node a line yields is also given to
// validateSelf, whose verdict and canonical addresses must match the oracle's own IP parser and
// RFC 5952 formatter (written here, independently of inet_pton/inet_ntop).
// The body is also given to parseStatusJson when nlohmann reads it as one JSON object.
#include <algorithm>
#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tests/fuzz/targets/fuzz_targets.h"
#include "watcher/bus_client.h"
#include "watcher/notify_parser.h"
#include "watcher/self_validation.h"
#include "watcher/status_json.h"

namespace tsk::fuzz {
namespace {

using watcher::BackendState;
using watcher::InitialStatus;
using watcher::Notify;
using watcher::NotifyParser;
using watcher::ParserOptions;
using watcher::SelfNode;
using Json = nlohmann::ordered_json;

constexpr size_t kMaxKeptString = 4096;
constexpr size_t kMaxKeptItems = 64;
constexpr int kMaxDepth = 64;
constexpr size_t kHighWaterBound = 4u << 20;

std::string optBool(const std::optional<bool>& b) {
  return b ? (*b ? "true" : "false") : "-";
}

std::string describeSelf(const SelfNode& s) {
  std::string out =
      "{id=" + s.stable_id + " node=" + std::to_string(s.node_id) + " name=" + s.name + " addrs=[";
  for (const auto& a : s.addresses) out += a + ",";
  out += "] expiry=" + s.key_expiry + " tags=[";
  for (const auto& t : s.tags) out += t + ",";
  out += "] host=" + s.host_name + " online=" + optBool(s.online) +
         " user=" + std::to_string(s.user_id) + "}";
  return out;
}

std::string describeNotify(const Notify& n) {
  std::string out = "notify kinds=" + std::to_string(n.kinds) + " version=" + n.version;
  if (n.state) out += " state=" + std::string(watcher::backendStateName(*n.state));
  if (n.state_raw) out += " state_raw=" + std::to_string(*n.state_raw);
  if (n.err_message) out += " err=" + *n.err_message;
  if (n.self_change) out += " self_change=" + describeSelf(*n.self_change);
  if (n.initial_status) {
    const InitialStatus& s = *n.initial_status;
    out += " status={" + std::string(watcher::backendStateName(s.state)) +
           " raw=" + s.backend_state_raw + " self=" + (s.self ? describeSelf(*s.self) : "-") +
           " tailnet=" + s.tailnet_name + " suffix=" + s.magic_dns_suffix +
           " peers=" + std::to_string(s.peers_total) + "/" + std::to_string(s.peers_online) +
           " have_ids=" + (s.peers_have_node_id ? "1" : "0") + "}";
  }
  return out + " bytes=" + std::to_string(n.bytes);
}

// What the parser said about one line, with the peer events that came before it.
struct LineOutcome {
  enum Kind { kNotify, kMalformed, kOversized } kind = kNotify;
  Notify notify;
  size_t bytes = 0;
  std::vector<std::string> peer_events;
  bool aborted = false;
};

class Recorder final : public watcher::NotifyHandler {
 public:
  void onNotify(const Notify& n) override {
    events.push_back(describeNotify(n));
    finish(LineOutcome::kNotify, n.bytes).notify = n;
  }
  void onMalformed(std::string_view, size_t line_bytes) override {
    events.push_back("malformed " + std::to_string(line_bytes));
    finish(LineOutcome::kMalformed, line_bytes);
  }
  void onOversized(size_t line_bytes) override {
    events.push_back("oversized " + std::to_string(line_bytes));
    finish(LineOutcome::kOversized, line_bytes);
  }
  void onInitialStatusBegin() override { peer("initial_status_begin"); }
  void onInitialPeer(std::optional<int64_t> id, bool online) override {
    peer("initial_peer " + (id ? std::to_string(*id) : "-") + " " + (online ? "true" : "false"));
  }
  void onPeerUpsert(int64_t id, std::optional<bool> online) override {
    peer("upsert " + std::to_string(id) + " " + optBool(online));
  }
  void onPeerRemoved(int64_t id) override { peer("removed " + std::to_string(id)); }
  void onPeerPatch(int64_t id, std::optional<bool> online) override {
    peer("patch " + std::to_string(id) + " " + optBool(online));
  }
  void onLineAborted() override {
    events.push_back("aborted");
    if (resetting) {  // reset() dropped a partial line that had fired peer callbacks
      partial_aborted = true;
      return;
    }
    if (outcomes.empty()) fuzzFailure("onLineAborted before any line outcome");
    outcomes.back().aborted = true;
  }

  // Around NotifyParser::reset(): peer events of the dropped partial line must be followed by
  // exactly one onLineAborted.
  void checkReset(watcher::NotifyParser& p, bool* dropped) {
    resetting = true;
    *dropped = p.reset();
    resetting = false;
    if (partial_aborted == pending_.empty()) {
      fuzzFailure(
          "reset(): onLineAborted must follow the dropped line's peer events (and only "
          "them)");
    }
    pending_.clear();
    partial_aborted = false;
  }

  std::vector<std::string> events;  // everything, in order (compared between runs)
  std::vector<LineOutcome> outcomes;

 private:
  bool resetting = false;
  bool partial_aborted = false;
  void peer(std::string e) {
    events.push_back(e);
    pending_.push_back(std::move(e));
  }
  LineOutcome& finish(LineOutcome::Kind kind, size_t bytes) {
    LineOutcome& o = outcomes.emplace_back();
    o.kind = kind;
    o.bytes = bytes;
    o.peer_events = std::move(pending_);
    pending_.clear();
    return o;
  }
  std::vector<std::string> pending_;
};

// ---- the oracle ------------------------------------------------------------------------------

std::optional<int64_t> asInt64(const Json& j) {
  if (j.is_number_unsigned()) {
    const auto u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (j.is_number_integer()) return j.get<int64_t>();
  return std::nullopt;
}

const Json* member(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

void setString(const Json& obj, const char* key, std::string& out) {
  if (const Json* v = member(obj, key); v && v->is_string()) out = v->get<std::string>();
}
void setInt(const Json& obj, const char* key, int64_t& out) {
  if (const Json* v = member(obj, key)) {
    if (auto i = asInt64(*v)) out = *i;
  }
}
void setBool(const Json& obj, const char* key, std::optional<bool>& out) {
  if (const Json* v = member(obj, key); v && v->is_boolean()) out = v->get<bool>();
}
void setStrings(const Json& obj, const char* key, std::vector<std::string>& out) {
  const Json* v = member(obj, key);
  if (!v || !(v->is_array() || v->is_null())) return;
  out.clear();
  if (v->is_null()) return;
  for (const Json& item : *v) {
    if (item.is_string()) out.push_back(item.get<std::string>());
  }
}

void normaliseExpiry(SelfNode& s) {
  if (s.key_expiry == "0001-01-01T00:00:00Z") s.key_expiry.clear();
}

SelfNode selfFromNode(const Json& node) {
  SelfNode s;
  setInt(node, "ID", s.node_id);
  setString(node, "StableID", s.stable_id);
  setString(node, "Name", s.name);
  setInt(node, "User", s.user_id);
  setString(node, "KeyExpiry", s.key_expiry);
  setStrings(node, "Addresses", s.addresses);
  setStrings(node, "Tags", s.tags);
  if (const Json* hi = member(node, "Hostinfo"); hi && hi->is_object()) {
    setString(*hi, "Hostname", s.host_name);
  }
  setBool(node, "Online", s.online);
  normaliseExpiry(s);
  return s;
}

SelfNode selfFromPeerStatus(const Json& ps) {
  SelfNode s;
  setString(ps, "ID", s.stable_id);
  setInt(ps, "NodeID", s.node_id);
  setString(ps, "DNSName", s.name);
  setStrings(ps, "TailscaleIPs", s.addresses);
  setString(ps, "KeyExpiry", s.key_expiry);
  setStrings(ps, "Tags", s.tags);
  setString(ps, "HostName", s.host_name);
  setBool(ps, "Online", s.online);
  setInt(ps, "UserID", s.user_id);
  setBool(ps, "InNetworkMap", s.in_network_map);
  normaliseExpiry(s);
  return s;
}

uint32_t kindOf(const std::string& key) {
  static const std::pair<const char*, uint32_t> kKinds[] = {
      {"ErrMessage", watcher::kKindErrMessage},
      {"LoginFinished", watcher::kKindLoginFinished},
      {"State", watcher::kKindState},
      {"Prefs", watcher::kKindPrefs},
      {"SelfChange", watcher::kKindSelfChange},
      {"InitialStatus", watcher::kKindInitialStatus},
      {"NetMap", watcher::kKindNetMap},
      {"PeerChangedPatch", watcher::kKindPeerPatch},
      {"PeersChanged", watcher::kKindPeersChanged},
      {"PeersRemoved", watcher::kKindPeersRemoved},
      {"UserProfiles", watcher::kKindUserProfiles},
      {"Engine", watcher::kKindEngine},
      {"BrowseToURL", watcher::kKindBrowseToURL},
      {"Health", watcher::kKindHealth},
  };
  if (key == "Version" || key == "SessionID") return 0;
  for (const auto& [name, bit] : kKinds) {
    if (key == name) return bit;
  }
  return watcher::kKindOther;
}

InitialStatus statusFromJson(const Json& value, bool track, std::vector<std::string>& events) {
  if (track) events.emplace_back("initial_status_begin");
  InitialStatus st;
  if (const Json* bs = member(value, "BackendState"); bs && bs->is_string()) {
    st.backend_state_raw = bs->get<std::string>();
    st.state = watcher::backendStateFromString(st.backend_state_raw);
  }
  if (const Json* self = member(value, "Self"); self && self->is_object()) {
    st.self = selfFromPeerStatus(*self);
  }
  if (const Json* peers = member(value, "Peer"); peers && peers->is_object()) {
    for (const auto& [key, peer] : peers->items()) {
      if (!peer.is_object()) continue;
      ++st.peers_total;
      std::optional<bool> online;
      setBool(peer, "Online", online);
      if (online.value_or(false)) ++st.peers_online;
      std::optional<int64_t> id;
      if (const Json* v = member(peer, "NodeID")) id = asInt64(*v);
      if (!id) st.peers_have_node_id = false;
      if (track) {
        events.push_back("initial_peer " + (id ? std::to_string(*id) : "-") + " " +
                         (online.value_or(false) ? "true" : "false"));
      }
    }
  }
  std::string top_suffix, tailnet_suffix;
  setString(value, "MagicDNSSuffix", top_suffix);
  if (const Json* tn = member(value, "CurrentTailnet"); tn && tn->is_object()) {
    setString(*tn, "Name", st.tailnet_name);
    setString(*tn, "MagicDNSSuffix", tailnet_suffix);
  }
  st.magic_dns_suffix = tailnet_suffix.empty() ? top_suffix : tailnet_suffix;
  return st;
}

void peerArrayEvents(const std::string& key, const Json& value, std::vector<std::string>& events) {
  if (!value.is_array()) return;
  for (const Json& item : value) {
    if (key == "PeersRemoved") {
      if (auto id = asInt64(item)) events.push_back("removed " + std::to_string(*id));
      continue;
    }
    if (!item.is_object() || (key != "PeersChanged" && key != "PeerChangedPatch")) continue;
    std::optional<int64_t> id;
    if (const Json* v = member(item, key == "PeersChanged" ? "ID" : "NodeID")) id = asInt64(*v);
    std::optional<bool> online;
    setBool(item, "Online", online);
    if (id) {
      events.push_back((key == "PeersChanged" ? "upsert " : "patch ") + std::to_string(*id) + " " +
                       optBool(online));
    }
  }
}

// The Notify (and the peer events, in order) a correct parser yields for a JSON object line.
Notify oracleNotify(const Json& doc, size_t line_bytes, bool track,
                    std::vector<std::string>& events) {
  Notify n;
  n.bytes = line_bytes;
  for (const auto& [key, value] : doc.items()) {
    if (!value.is_null()) n.kinds |= kindOf(key);
    if (key == "Version" && value.is_string()) n.version = value.get<std::string>();
    if (key == "ErrMessage" && value.is_string()) n.err_message = value.get<std::string>();
    if (key == "State" && !value.is_null()) {
      const int64_t i = asInt64(value).value();  // the schema check let only 0-6 through
      n.state = watcher::backendStateFromInt(i);
      n.state_raw = i;
    }
    if (key == "SelfChange" && value.is_object()) n.self_change = selfFromNode(value);
    if (key == "InitialStatus" && value.is_object()) {
      n.initial_status = statusFromJson(value, track, events);
    }
    if (track) peerArrayEvents(key, value, events);
  }
  if (n.kinds == 0) n.kinds = watcher::kKindBlank;
  return n;
}

// Where an object or array sits, as far as the parser's schema is concerned (the contexts of
// notify_parser.cc, seen from the document).
enum class Place { Root, Node, Hostinfo, Status, SelfStatus, Tailnet, KeptArray, Other };

bool oneOf(const std::string& k, std::initializer_list<std::string_view> names) {
  return std::find(names.begin(), names.end(), k) != names.end();
}

// Keys the parser keeps (or counts, at the root) in an object at `p`.
bool keptKey(Place p, const std::string& k) {
  switch (p) {
    case Place::Root:
      return oneOf(k, {"Version", "SessionID", "ErrMessage", "LoginFinished", "State", "Prefs",
                       "SelfChange", "InitialStatus", "NetMap", "PeerChangedPatch", "PeersChanged",
                       "PeersRemoved", "UserProfiles", "Engine", "BrowseToURL", "Health"});
    case Place::Node:
      return oneOf(k, {"ID", "StableID", "Name", "User", "KeyExpiry", "Addresses", "Tags",
                       "Hostinfo", "Online"});
    case Place::Hostinfo:
      return k == "Hostname";
    case Place::Status:
      return oneOf(k, {"BackendState", "Self", "MagicDNSSuffix", "CurrentTailnet", "Peer"});
    case Place::SelfStatus:
      return oneOf(k, {"ID", "NodeID", "DNSName", "TailscaleIPs", "KeyExpiry", "Tags", "HostName",
                       "Online", "UserID"});
    case Place::Tailnet:
      return oneOf(k, {"Name", "MagicDNSSuffix"});
    default:
      return false;
  }
}

// Keys whose string value the parser keeps.
bool keptStringKey(Place p, const std::string& k) {
  switch (p) {
    case Place::Root:
      return oneOf(k, {"Version", "ErrMessage"});
    case Place::Node:
      return oneOf(k, {"StableID", "Name", "KeyExpiry"});
    case Place::Hostinfo:
      return k == "Hostname";
    case Place::Status:
      return oneOf(k, {"BackendState", "MagicDNSSuffix"});
    case Place::SelfStatus:
      return oneOf(k, {"ID", "DNSName", "KeyExpiry", "HostName"});
    case Place::Tailnet:
      return oneOf(k, {"Name", "MagicDNSSuffix"});
    default:
      return false;
  }
}

struct Frame {
  Place place;
  bool is_array;
  std::vector<std::string> keys;
  std::string key;  // the last key (objects)
  size_t kept_items = 0;
};

Place childPlace(const Frame& parent, bool is_array) {
  if (parent.is_array) return Place::Other;
  const std::string& k = parent.key;
  switch (parent.place) {
    case Place::Root:
      if (!is_array && k == "SelfChange") return Place::Node;
      if (!is_array && k == "InitialStatus") return Place::Status;
      break;
    case Place::Node:
      if (!is_array && k == "Hostinfo") return Place::Hostinfo;
      if (is_array && (k == "Addresses" || k == "Tags")) return Place::KeptArray;
      break;
    case Place::Status:
      if (!is_array && k == "Self") return Place::SelfStatus;
      if (!is_array && k == "CurrentTailnet") return Place::Tailnet;
      break;
    case Place::SelfStatus:
      if (is_array && (k == "TailscaleIPs" || k == "Tags")) return Place::KeptArray;
      break;
    default:
      break;
  }
  return Place::Other;
}

// How nlohmann sees a line: valid or not, and if valid its nesting depth, whether it breaks the
// parser's schema, and whether an object repeats a key the parser does not keep.
struct OracleView {
  bool valid = false;
  bool undecided = false;  // grammatical JSON nlohmann will not hold (a number overflowing double)
  bool duplicate_keys = false;
  std::string schema_breach;  // "" when none
  int depth = 0;
  Json doc;
};

OracleView viewOf(std::string_view text) {
  OracleView v;
  std::vector<Frame> stack;
  const auto breach = [&](std::string what) {
    if (v.schema_breach.empty()) v.schema_breach = std::move(what);
  };
  Json::parser_callback_t cb = [&](int, Json::parse_event_t ev, Json& parsed) {
    switch (ev) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start: {
        const bool is_array = ev == Json::parse_event_t::array_start;
        Place place = Place::Other;
        if (stack.empty()) {
          place = is_array ? Place::Other : Place::Root;
        } else {
          place = childPlace(stack.back(), is_array);
          if (stack.back().place == Place::Root && stack.back().key == "State") {
            breach("State is not an integer");
          }
        }
        stack.push_back({place, is_array, {}, {}, 0});
        v.depth = std::max(v.depth, static_cast<int>(stack.size()));
        break;
      }
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        stack.pop_back();
        break;
      case Json::parse_event_t::key: {
        Frame& f = stack.back();
        const auto& k = parsed.get_ref<const std::string&>();
        if (std::find(f.keys.begin(), f.keys.end(), k) != f.keys.end()) {
          if (keptKey(f.place, k)) {
            breach("duplicate key " + k);
          } else {
            v.duplicate_keys = true;
          }
        }
        f.keys.push_back(k);
        f.key = k;
        break;
      }
      case Json::parse_event_t::value: {
        if (stack.empty()) break;
        Frame& f = stack.back();
        if (f.is_array) {
          if (f.place == Place::KeptArray && parsed.is_string()) {
            if (++f.kept_items > kMaxKeptItems) breach("over 64 items");
            if (parsed.get_ref<const std::string&>().size() > kMaxKeptString) {
              breach("an item over 4 KiB");
            }
          }
          break;
        }
        if (parsed.is_string() && keptStringKey(f.place, f.key) &&
            parsed.get_ref<const std::string&>().size() > kMaxKeptString) {
          breach(f.key + " over 4 KiB");
        }
        if (f.place == Place::Root && f.key == "State" && !parsed.is_null()) {
          const auto i = asInt64(parsed);
          if (!i || *i < 0 || *i > 6) breach("State is not an integer 0-6");
        }
        break;
      }
      default:
        break;
    }
    return true;
  };
  // nlohmann's lexer takes a NUL byte for the end of the input (C strings), so it accepts
  // `{}\0junk`; a raw NUL is never valid JSON (not whitespace, and a control byte in strings).
  if (text.find('\0') != std::string_view::npos) return v;
  try {
    v.doc = Json::parse(text, cb);
    v.valid = true;
  } catch (const Json::out_of_range&) {
    v.undecided = true;  // e.g. 1E400: valid JSON text, but "number overflow" to nlohmann
  } catch (const Json::exception&) {
    v.valid = false;
  }
  return v;
}

bool isBlank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

std::string excerpt(std::string_view line) {
  return std::string(line.substr(0, 200)) + (line.size() > 200 ? "..." : "");
}

// The schema breach of a Status body, seen as the InitialStatus of a Notify ("" when none).
std::string statusSchemaBreach(std::string_view body) {
  return viewOf("{\"InitialStatus\":" + std::string(body) + "}").schema_breach;
}

// ---- the publishability oracle ----------------------------------------------------------------

// Decimal without leading zeros, at most `max`.
std::optional<unsigned> decimal(std::string_view s, unsigned max) {
  if (s.empty() || s.size() > 3 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  unsigned v = 0;
  for (const char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  return v <= max ? std::optional(v) : std::nullopt;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    const size_t at = s.find(sep, start);
    out.push_back(s.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

std::optional<std::array<uint8_t, 4>> ipv4(std::string_view s) {
  const auto parts = split(s, '.');
  if (parts.size() != 4) return std::nullopt;
  std::array<uint8_t, 4> out{};
  for (size_t i = 0; i < 4; ++i) {
    const auto v = decimal(parts[i], 255);
    if (!v) return std::nullopt;
    out[i] = static_cast<uint8_t>(*v);
  }
  return out;
}

// Groups of an IPv6 address written without "::" ("" is no group); nullopt if one is not 1-4 hex
// digits. An IPv4 tail counts as two groups when allowed.
std::optional<std::vector<uint16_t>> hexGroups(std::string_view s, bool v4_tail_allowed) {
  std::vector<uint16_t> out;
  if (s.empty()) return out;
  const auto parts = split(s, ':');
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string_view g = parts[i];
    if (i + 1 == parts.size() && v4_tail_allowed && g.find('.') != std::string_view::npos) {
      const auto v4 = ipv4(g);
      if (!v4) return std::nullopt;
      out.push_back(static_cast<uint16_t>((*v4)[0] << 8 | (*v4)[1]));
      out.push_back(static_cast<uint16_t>((*v4)[2] << 8 | (*v4)[3]));
      continue;
    }
    if (g.empty() || g.size() > 4) return std::nullopt;
    unsigned v = 0;
    for (const char c : g) {
      const int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (d < 0) return std::nullopt;
      v = v << 4 | static_cast<unsigned>(d);
    }
    out.push_back(static_cast<uint16_t>(v));
  }
  return out;
}

std::optional<std::array<uint16_t, 8>> ipv6(std::string_view s) {
  const size_t ell = s.find("::");
  std::array<uint16_t, 8> out{};
  if (ell == std::string_view::npos) {
    const auto g = hexGroups(s, true);
    if (!g || g->size() != 8) return std::nullopt;
    std::copy(g->begin(), g->end(), out.begin());
    return out;
  }
  if (s.find("::", ell + 1) != std::string_view::npos) return std::nullopt;
  const auto left = hexGroups(s.substr(0, ell), false);
  const auto right = hexGroups(s.substr(ell + 2), true);
  if (!left || !right || left->size() + right->size() > 7) return std::nullopt;
  std::copy(left->begin(), left->end(), out.begin());
  std::copy(right->begin(), right->end(), out.end() - static_cast<long>(right->size()));
  return out;
}

// RFC 5952, as netip.Addr.String writes it.
std::string rfc5952(const std::array<uint16_t, 8>& w) {
  char buf[64];
  if (w[0] == 0 && w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 && w[5] == 0xffff) {
    std::snprintf(buf, sizeof buf, "::ffff:%u.%u.%u.%u", w[6] >> 8, w[6] & 0xff, w[7] >> 8,
                  w[7] & 0xff);
    return buf;
  }
  int best = -1, best_len = 0;
  for (int i = 0; i < 8;) {
    if (w[static_cast<size_t>(i)] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && w[static_cast<size_t>(j)] == 0) ++j;
    if (j - i > best_len) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  if (best_len < 2) best = -1;
  std::string out;
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    std::snprintf(buf, sizeof buf, "%x", w[static_cast<size_t>(i)]);
    out += buf;
  }
  return out;
}

std::optional<std::string> oracleAddress(std::string_view text) {
  const auto parts = split(text, '/');
  if (parts.size() > 2) return std::nullopt;
  const bool v6 = parts[0].find(':') != std::string_view::npos;
  if (parts.size() == 2 && !decimal(parts[1], v6 ? 128 : 32)) return std::nullopt;
  if (v6) {
    const auto a = ipv6(parts[0]);
    return a ? std::optional(rfc5952(*a)) : std::nullopt;
  }
  const auto a = ipv4(parts[0]);
  if (!a) return std::nullopt;
  return std::to_string((*a)[0]) + "." + std::to_string((*a)[1]) + "." + std::to_string((*a)[2]) +
         "." + std::to_string((*a)[3]);
}

bool oracleText(std::string_view s) {
  if (!isValidUtf8(s)) return false;
  return std::none_of(s.begin(), s.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return c < 0x20 || c == 0x7f;
  });
}

// What validateSelf must answer for `s`: the canonical addresses, or nullopt (not publishable).
std::optional<std::vector<std::string>> oraclePublishable(const SelfNode& s) {
  if (s.name.empty()) return std::nullopt;
  for (const std::string* t : {&s.stable_id, &s.name, &s.key_expiry, &s.host_name}) {
    if (!oracleText(*t)) return std::nullopt;
  }
  for (const auto& t : s.tags) {
    if (!oracleText(t)) return std::nullopt;
  }
  std::vector<std::string> out;
  for (const auto& a : s.addresses) {
    auto c = oracleAddress(a);
    if (!c) return std::nullopt;
    out.push_back(std::move(*c));
  }
  return out;
}

void checkPublishable(const std::optional<SelfNode>& self, std::string_view line) {
  if (!self || !self->hasIdentity()) return;  // no identity at all: the reducer never asks
  const watcher::SelfCheck got = watcher::validateSelf(*self);
  const auto want = oraclePublishable(*self);
  if (got.node.has_value() != want.has_value()) {
    fuzzFailure(std::string("validateSelf ") + (got.node ? "accepted" : "rejected") +
                " a self node the oracle " + (want ? "accepts" : "rejects") + " (" + got.detail +
                "): " + describeSelf(*self) + " in " + excerpt(line));
  }
  if (got.node && got.node->addresses != *want) {
    std::string detail;
    for (const auto& a : got.node->addresses) detail += " " + a;
    detail += " vs oracle";
    for (const auto& a : *want) detail += " " + a;
    fuzzFailure("validateSelf canonical addresses differ:" + detail + " in " + excerpt(line));
  }
}

bool keptStringMatches(const std::string& got, const std::string& want) {
  return got == want;  // a kept string over the bound makes the line malformed: never cut
}

bool keptListMatches(const std::vector<std::string>& got, const std::vector<std::string>& want) {
  return got == want;
}

bool selfMatches(const SelfNode& got, const SelfNode& want) {
  return keptStringMatches(got.stable_id, want.stable_id) && got.node_id == want.node_id &&
         keptStringMatches(got.name, want.name) && keptListMatches(got.addresses, want.addresses) &&
         keptStringMatches(got.key_expiry, want.key_expiry) &&
         keptListMatches(got.tags, want.tags) && keptStringMatches(got.host_name, want.host_name) &&
         got.online == want.online && got.user_id == want.user_id &&
         got.in_network_map == want.in_network_map;
}

bool optSelfMatches(const std::optional<SelfNode>& got, const std::optional<SelfNode>& want) {
  if (got.has_value() != want.has_value()) return false;
  return !got || selfMatches(*got, *want);
}

bool statusMatches(const InitialStatus& got, const InitialStatus& want) {
  return got.state == want.state &&
         keptStringMatches(got.backend_state_raw, want.backend_state_raw) &&
         optSelfMatches(got.self, want.self) &&
         keptStringMatches(got.tailnet_name, want.tailnet_name) &&
         keptStringMatches(got.magic_dns_suffix, want.magic_dns_suffix) &&
         got.peers_total == want.peers_total && got.peers_online == want.peers_online &&
         got.peers_have_node_id == want.peers_have_node_id;
}

bool notifyMatches(const Notify& got, const Notify& want) {
  if (got.kinds != want.kinds || got.state != want.state || got.state_raw != want.state_raw ||
      got.bytes != want.bytes || !keptStringMatches(got.version, want.version)) {
    return false;
  }
  if (got.err_message.has_value() != want.err_message.has_value()) return false;
  if (got.err_message && !keptStringMatches(*got.err_message, *want.err_message)) return false;
  if (!optSelfMatches(got.self_change, want.self_change)) return false;
  if (got.initial_status.has_value() != want.initial_status.has_value()) return false;
  return !got.initial_status || statusMatches(*got.initial_status, *want.initial_status);
}

// Checks one complete line's outcome (run A, peer tracking on) against the oracle.
void checkLine(std::string_view line, const LineOutcome& got) {
  const size_t bytes = line.size() + 1;
  if (got.bytes != bytes) {
    fuzzFailure("line of " + std::to_string(bytes) + " bytes reported as " +
                std::to_string(got.bytes) + ": " + excerpt(line));
  }
  if (got.kind == LineOutcome::kMalformed && got.aborted != !got.peer_events.empty()) {
    fuzzFailure(
        "a malformed line with peer events must be followed by onLineAborted (and only "
        "then): " +
        excerpt(line));
  }
  const OracleView view = viewOf(line);
  if (view.undecided) return;  // RFC 8259 lets a parser accept or refuse it
  if (!view.valid) {
    if (isValidUtf8(line) && got.kind != LineOutcome::kMalformed) {
      fuzzFailure("nlohmann rejects this valid-UTF-8 line but the parser accepted it: " +
                  excerpt(line));
    }
    return;  // invalid UTF-8: the parser need not validate encodings
  }
  if (!view.doc.is_object() || view.depth > kMaxDepth) {
    if (got.kind != LineOutcome::kMalformed) {
      fuzzFailure("a line that is not a JSON object (or nests deeper than 64) was accepted: " +
                  excerpt(line));
    }
    return;
  }
  if (!view.schema_breach.empty()) {
    if (got.kind != LineOutcome::kMalformed) {
      fuzzFailure("a line that breaks the parser's schema (" + view.schema_breach +
                  ") was accepted: " + excerpt(line));
    }
    return;
  }
  if (got.kind != LineOutcome::kNotify) {
    fuzzFailure("a valid JSON object line was reported malformed: " + excerpt(line));
  }
  checkPublishable(got.notify.self_change, line);
  if (got.notify.initial_status) checkPublishable(got.notify.initial_status->self, line);
  if (view.duplicate_keys) return;
  std::vector<std::string> want_events;
  const Notify want = oracleNotify(view.doc, bytes, /*track=*/true, want_events);
  if (!notifyMatches(got.notify, want)) {
    fuzzFailure("parser and nlohmann disagree on " + excerpt(line) + "\n  parser: " +
                describeNotify(got.notify) + "\n  oracle: " + describeNotify(want));
  }
  if (got.peer_events != want_events) {
    std::string detail;
    for (const auto& e : got.peer_events) detail += "\n  parser: " + e;
    for (const auto& e : want_events) detail += "\n  oracle: " + e;
    fuzzFailure("peer events differ for " + excerpt(line) + detail);
  }
}

// The complete lines of a body (without their '\n') and the partial tail.
struct Lines {
  std::vector<std::string_view> complete;
  std::string_view tail;
};

Lines splitLines(std::string_view body) {
  Lines out;
  size_t start = 0;
  for (;;) {
    const size_t nl = body.find('\n', start);
    if (nl == std::string_view::npos) break;
    out.complete.push_back(body.substr(start, nl - start));
    start = nl + 1;
  }
  out.tail = body.substr(start);
  return out;
}

// ---- the runs ---------------------------------------------------------------------------------

Recorder parseWhole(std::string_view body, ParserOptions opts, bool* dropped_partial) {
  Recorder r;
  NotifyParser p(r, opts);
  p.feed(body);
  r.checkReset(p, dropped_partial);
  if (p.highWaterBytes() > kHighWaterBound) {
    fuzzFailure("parser held " + std::to_string(p.highWaterBytes()) + " bytes of heap");
  }
  return r;
}

Recorder parseSplit(std::string_view body, SplitRandom& rng) {
  Recorder r;
  NotifyParser p(r, {.track_peers = true});
  size_t off = 0;
  while (off < body.size()) {
    const size_t n = 1 + rng.below(std::min<size_t>(body.size() - off, 97));
    p.feed(body.substr(off, n));
    off += n;
  }
  bool dropped = false;
  r.checkReset(p, &dropped);
  return r;
}

std::string hexSize(size_t n, SplitRandom& rng) {
  static constexpr char kLower[] = "0123456789abcdef";
  static constexpr char kUpper[] = "0123456789ABCDEF";
  const char* digits = rng.below(2) ? kUpper : kLower;
  std::string s;
  do {
    s.insert(s.begin(), digits[n % 16]);
    n /= 16;
  } while (n != 0);
  return std::string(rng.below(4) == 0 ? 1 : 0, '0') + s;
}

std::string chunkExtension(SplitRandom& rng) {
  switch (rng.below(6)) {
    case 0:
      return ";name=value";
    case 1:
      return "; q=\"x\"";
    default:
      return "";
  }
}

// The body as Go's HTTP/1.1 server would frame it (plus extensions and a trailer sometimes).
std::string chunked(std::string_view body, SplitRandom& rng) {
  std::string out;
  size_t off = 0;
  while (off < body.size()) {
    const size_t n = 1 + rng.below(std::min<size_t>(body.size() - off, 300));
    out += hexSize(n, rng) + chunkExtension(rng) + "\r\n";
    out.append(body.substr(off, n));
    out += "\r\n";
    off += n;
  }
  out += "0" + chunkExtension(rng) + "\r\n";
  if (rng.below(4) == 0) out += "X-Trailer: t\r\n";
  out += "\r\n";
  return out;
}

Recorder parseChunked(std::string_view body, SplitRandom& rng) {
  const std::string framed = chunked(body, rng);
  const std::string after = "HTTP/1.1 200 OK\r\n";  // the next response must not be consumed
  const std::string wire = framed + after;
  Recorder r;
  NotifyParser p(r, {.track_peers = true});
  watcher::BodyDecoder decoder(watcher::BodyDecoder::Framing::Chunked);
  const watcher::BodyCallback deliver = [&](std::string_view bytes) {
    p.feed(bytes);
    return true;
  };
  size_t off = 0;
  auto state = watcher::BodyDecoder::State::More;
  while (off < wire.size() && state == watcher::BodyDecoder::State::More) {
    const size_t n = 1 + rng.below(std::min<size_t>(wire.size() - off, 211));
    size_t used = 0;
    state = decoder.feed(std::string_view(wire).substr(off, n), deliver, &used);
    if (used > n) fuzzFailure("BodyDecoder consumed more than it was given");
    if (state == watcher::BodyDecoder::State::More && used != n) {
      fuzzFailure("BodyDecoder left bytes unconsumed while wanting more");
    }
    off += used;
  }
  if (state != watcher::BodyDecoder::State::Done) {
    fuzzFailure("BodyDecoder did not finish a well-formed chunked body: " + decoder.error());
  }
  if (off != framed.size()) {
    fuzzFailure("BodyDecoder consumed " + std::to_string(off) + " bytes of a " +
                std::to_string(framed.size()) + "-byte chunked body");
  }
  if (decoder.decodedBytes() != body.size()) fuzzFailure("BodyDecoder decoded byte count is off");
  bool dropped = false;
  r.checkReset(p, &dropped);
  return r;
}

void expectSameEvents(const Recorder& a, const Recorder& b, const char* what) {
  if (a.events == b.events) return;
  size_t i = 0;
  while (i < a.events.size() && i < b.events.size() && a.events[i] == b.events[i]) ++i;
  fuzzFailure(std::string(what) + " gives different events at #" + std::to_string(i) +
              "\n  whole: " + (i < a.events.size() ? a.events[i] : "(end)") +
              "\n  other: " + (i < b.events.size() ? b.events[i] : "(end)"));
}

void checkOversizedRun(std::string_view body, const Lines& lines, const Recorder& whole,
                       SplitRandom& rng) {
  const uint64_t limit = 1 + rng.below(256);
  bool dropped = false;
  const Recorder r = parseWhole(body, {.track_peers = false, .max_line_bytes = limit}, &dropped);
  size_t k = 0;  // index into whole.outcomes (non-blank lines)
  size_t j = 0;  // index into r.outcomes
  for (std::string_view line : lines.complete) {
    const bool blank = isBlank(line);
    if (line.size() > limit) {
      if (j >= r.outcomes.size() || r.outcomes[j].kind != LineOutcome::kOversized ||
          r.outcomes[j].bytes != line.size() + 1) {
        fuzzFailure("a line over max_line_bytes was not reported oversized");
      }
      ++j;
      if (!blank) ++k;
      continue;
    }
    if (blank) continue;
    if (j >= r.outcomes.size() || k >= whole.outcomes.size() ||
        r.outcomes[j].kind != whole.outcomes[k].kind) {
      fuzzFailure("max_line_bytes changed the outcome of a line within the limit");
    }
    ++j;
    ++k;
  }
  if (j != r.outcomes.size()) fuzzFailure("extra outcomes with a small max_line_bytes");
  const bool tail_partial =
      !lines.tail.empty() && (lines.tail.size() > limit || !isBlank(lines.tail));
  if (dropped != tail_partial) fuzzFailure("reset() misreported the partial line (small limit)");
}

}  // namespace

void checkStatusJson(std::string_view body, bool must_reject_invalid) {
  std::string error;
  const auto got = watcher::parseStatusJson(body, &error);
  const OracleView view = viewOf(body);
  if (view.undecided) return;
  if (!view.valid) {
    if (got && isValidUtf8(body) && must_reject_invalid) {
      fuzzFailure("parseStatusJson accepted a body nlohmann rejects: " + excerpt(body));
    }
    return;
  }
  if (!view.doc.is_object() || view.depth >= kMaxDepth || view.duplicate_keys) return;
  if (!statusSchemaBreach(body).empty()) {
    if (got) fuzzFailure("parseStatusJson accepted a Status that breaks the schema");
    return;
  }
  if (!got) fuzzFailure("parseStatusJson rejected a JSON object: " + error);
  std::vector<std::string> unused;
  const InitialStatus want = statusFromJson(view.doc, false, unused);
  if (!statusMatches(*got, want)) fuzzFailure("parseStatusJson and nlohmann disagree");
}

int notifyStreamOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  SplitRandom rng(body);
  const Lines lines = splitLines(body);

  bool dropped = false;
  const Recorder whole = parseWhole(body, {.track_peers = true}, &dropped);
  const bool tail_partial = !lines.tail.empty() && !isBlank(lines.tail);
  if (dropped != tail_partial) fuzzFailure("reset() misreported the partial last line");

  size_t k = 0;
  for (std::string_view line : lines.complete) {
    if (isBlank(line)) continue;
    if (k >= whole.outcomes.size()) fuzzFailure("a non-blank line produced no outcome");
    checkLine(line, whole.outcomes[k++]);
  }
  if (k != whole.outcomes.size()) fuzzFailure("more outcomes than non-blank lines");

  bool unused = false;
  const Recorder untracked = parseWhole(body, {.track_peers = false}, &unused);
  if (untracked.outcomes.size() != whole.outcomes.size()) {
    fuzzFailure("peer tracking changed the number of line outcomes");
  }
  for (size_t i = 0; i < whole.outcomes.size(); ++i) {
    if (untracked.outcomes[i].kind != whole.outcomes[i].kind ||
        !untracked.outcomes[i].peer_events.empty()) {
      fuzzFailure("peer tracking changed a line's outcome, or peer events fired without it");
    }
  }

  expectSameEvents(whole, parseSplit(body, rng), "feeding in random pieces");
  expectSameEvents(whole, parseChunked(body, rng), "chunked framing through BodyDecoder");
  checkOversizedRun(body, lines, whole, rng);
  checkStatusJson(body, /*must_reject_invalid=*/true);
  return 0;
}

}  // namespace tsk::fuzz
