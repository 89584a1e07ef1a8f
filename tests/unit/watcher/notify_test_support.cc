#include "tests/unit/watcher/notify_test_support.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace tsk::watcher::testing {
namespace {

using Json = nlohmann::ordered_json;

std::string optBool(const std::optional<bool>& b) {
  return b ? (*b ? "true" : "false") : "-";
}

std::string joined(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += ",";
    out += v[i];
  }
  return out + "]";
}

// An int64 from the DOM, as the parser reads it: integers only, within int64.
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
    if (!item.is_string()) continue;
    out.push_back(item.get<std::string>());  // as sent: validateSelf canonicalises
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
  normaliseExpiry(s);
  return s;
}

uint32_t kindOf(const std::string& key) {
  static const std::vector<std::pair<std::string, uint32_t>> kinds = {
      {"ErrMessage", kKindErrMessage},
      {"LoginFinished", kKindLoginFinished},
      {"State", kKindState},
      {"Prefs", kKindPrefs},
      {"SelfChange", kKindSelfChange},
      {"InitialStatus", kKindInitialStatus},
      {"NetMap", kKindNetMap},
      {"PeerChangedPatch", kKindPeerPatch},
      {"PeersChanged", kKindPeersChanged},
      {"PeersRemoved", kKindPeersRemoved},
      {"UserProfiles", kKindUserProfiles},
      {"Engine", kKindEngine},
      {"BrowseToURL", kKindBrowseToURL},
      {"Health", kKindHealth},
  };
  if (key == "Version" || key == "SessionID") return 0;
  for (const auto& [name, bit] : kinds) {
    if (name == key) return bit;
  }
  return kKindOther;
}

std::string peerEvent(const char* what, int64_t id, const std::optional<bool>& online) {
  return std::string(what) + " " + std::to_string(id) + " " + optBool(online);
}

void oracleLine(std::string_view line, bool track, Notify& n, std::vector<std::string>* events) {
  const Json doc = Json::parse(line);
  if (!doc.is_object()) throw std::runtime_error("not an object");
  n.bytes = line.size();
  for (const auto& [key, value] : doc.items()) {
    if (!value.is_null()) n.kinds |= kindOf(key);
    if (key == "Version" && value.is_string()) n.version = value.get<std::string>();
    if (key == "ErrMessage" && value.is_string()) n.err_message = value.get<std::string>();
    if (key == "State" && !value.is_null()) {
      // Only an integer 0-6 gets here: anything else makes the line malformed.
      const auto i = asInt64(value);
      if (!i || *i < 0 || *i > 6) throw std::runtime_error("State is not an integer 0-6");
      n.state = backendStateFromInt(*i);
      n.state_raw = *i;
    }
    if (key == "SelfChange" && value.is_object()) n.self_change = selfFromNode(value);
    if (key == "InitialStatus" && value.is_object()) {
      if (track && events) events->push_back("initial_status_begin");
      InitialStatus st;
      setString(value, "BackendState", st.backend_state_raw);
      if (member(value, "BackendState") && member(value, "BackendState")->is_string()) {
        st.state = backendStateFromString(st.backend_state_raw);
      }
      for (const auto& [skey, sval] : value.items()) {
        if (skey == "Self" && sval.is_object()) st.self = selfFromPeerStatus(sval);
        if (skey == "Self" && !sval.is_object()) st.self.reset();
        if (skey == "Peer" && sval.is_object()) {
          for (const auto& [pkey, peer] : sval.items()) {
            if (!peer.is_object()) continue;
            ++st.peers_total;
            std::optional<bool> online;
            setBool(peer, "Online", online);
            if (online.value_or(false)) ++st.peers_online;
            std::optional<int64_t> id;
            if (const Json* v = member(peer, "NodeID")) id = asInt64(*v);
            if (!id) st.peers_have_node_id = false;
            if (track && events) {
              events->push_back(std::string("initial_peer ") + (id ? std::to_string(*id) : "-") +
                                " " + (online.value_or(false) ? "true" : "false"));
            }
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
      n.initial_status = std::move(st);
    }
    if (!track || !events || !value.is_array()) continue;
    for (const Json& item : value) {
      if (key == "PeersRemoved") {
        if (auto id = asInt64(item)) events->push_back("removed " + std::to_string(*id));
        continue;
      }
      if (!item.is_object() || (key != "PeersChanged" && key != "PeerChangedPatch")) continue;
      std::optional<int64_t> id;
      if (const Json* v = member(item, key == "PeersChanged" ? "ID" : "NodeID")) id = asInt64(*v);
      std::optional<bool> online;
      setBool(item, "Online", online);
      if (id) events->push_back(peerEvent(key == "PeersChanged" ? "upsert" : "patch", *id, online));
    }
  }
  if (n.kinds == 0) n.kinds = kKindBlank;
}

}  // namespace

std::string describe(const SelfNode& s) {
  std::ostringstream o;
  o << "{stable_id=" << s.stable_id << " node_id=" << s.node_id << " name=" << s.name
    << " addresses=" << joined(s.addresses) << " key_expiry=" << s.key_expiry
    << " tags=" << joined(s.tags) << " host_name=" << s.host_name << " online=" << optBool(s.online)
    << " user_id=" << s.user_id << "}";
  return o.str();
}

std::string describe(const Notify& n) {
  std::ostringstream o;
  o << "notify kinds=0x" << std::hex << n.kinds << std::dec << " version=" << n.version;
  if (n.state) o << " state=" << backendStateName(*n.state);
  if (n.state_raw) o << " state_raw=" << *n.state_raw;
  if (n.err_message) o << " err=\"" << *n.err_message << "\"";
  if (n.self_change) o << " self_change=" << describe(*n.self_change);
  if (n.initial_status) {
    const InitialStatus& s = *n.initial_status;
    o << " initial_status={state=" << backendStateName(s.state) << " raw=" << s.backend_state_raw
      << " self=" << (s.self ? describe(*s.self) : "-") << " tailnet=" << s.tailnet_name
      << " suffix=" << s.magic_dns_suffix << " peers=" << s.peers_total << "/" << s.peers_online
      << " have_node_id=" << s.peers_have_node_id << "}";
  }
  o << " bytes=" << n.bytes;
  return o.str();
}

void RecordingHandler::onNotify(const Notify& n) {
  events.push_back(describe(n));
  if (keep_notifies) notifies.push_back(n);
}
void RecordingHandler::onMalformed(std::string_view reason, size_t line_bytes) {
  ++malformed;
  malformed_reasons.emplace_back(reason);
  events.push_back("malformed " + std::to_string(line_bytes));
}
void RecordingHandler::onOversized(size_t line_bytes) {
  ++oversized;
  events.push_back("oversized " + std::to_string(line_bytes));
}
void RecordingHandler::onInitialStatusBegin() {
  events.push_back("initial_status_begin");
}
void RecordingHandler::onInitialPeer(std::optional<int64_t> id, bool online) {
  events.push_back(std::string("initial_peer ") + (id ? std::to_string(*id) : "-") + " " +
                   (online ? "true" : "false"));
}
void RecordingHandler::onPeerUpsert(int64_t id, std::optional<bool> online) {
  events.push_back(peerEvent("upsert", id, online));
}
void RecordingHandler::onPeerRemoved(int64_t id) {
  events.push_back("removed " + std::to_string(id));
}
void RecordingHandler::onPeerPatch(int64_t id, std::optional<bool> online) {
  events.push_back(peerEvent("patch", id, online));
}
void RecordingHandler::onLineAborted() {
  ++aborted;
  events.push_back("aborted");
}

std::vector<std::string> oracleEvents(std::string_view line, bool track_peers) {
  std::vector<std::string> events;
  Notify n;
  oracleLine(line, track_peers, n, &events);
  events.push_back(describe(n));
  return events;
}

Notify oracleNotify(std::string_view line) {
  Notify n;
  oracleLine(line, false, n, nullptr);
  return n;
}

std::string fixtureFile(const std::string& name) {
  std::ifstream in(std::string(TSK_TEST_DATA_DIR) + "/" + name, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open fixture " + name);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> fixtureLines(const std::string& name) {
  const std::string all = fixtureFile(name);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < all.size()) {
    size_t nl = all.find('\n', start);
    if (nl == std::string::npos) nl = all.size() - 1;
    lines.push_back(all.substr(start, nl - start + 1));
    start = nl + 1;
  }
  return lines;
}

}  // namespace tsk::watcher::testing
