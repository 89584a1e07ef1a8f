#include "watcher/status_json.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

namespace tsk::watcher {
namespace {

using Json = nlohmann::json;

constexpr int kMaxDepth = 64;
constexpr size_t kMaxKeptString = 4096;
constexpr size_t kMaxKeptItems = 64;
constexpr std::string_view kZeroTime = "0001-01-01T00:00:00Z";

// A body that is JSON but not a Status by the shape rules.
struct Breach {
  std::string what;
};

// The objects whose keys are kept, found from their parent's key.
enum class Place { Status, Self, Tailnet, Other };

bool kept(Place p, const std::string& key) {
  static const std::vector<std::string> kStatus = {"BackendState", "Self", "MagicDNSSuffix",
                                                   "CurrentTailnet", "Peer"};
  static const std::vector<std::string> kSelf = {
      "ID",   "NodeID",   "DNSName", "TailscaleIPs", "KeyExpiry",
      "Tags", "HostName", "Online",  "UserID",       "InNetworkMap"};
  static const std::vector<std::string> kTailnet = {"Name", "MagicDNSSuffix"};
  const auto has = [&](const std::vector<std::string>& keys) {
    return std::find(keys.begin(), keys.end(), key) != keys.end();
  };
  switch (p) {
    case Place::Status:
      return has(kStatus);
    case Place::Self:
      return has(kSelf);
    case Place::Tailnet:
      return has(kTailnet);
    default:
      return false;
  }
}

// Follows the parse to enforce the depth and duplicate-key rules as it goes.
class ShapeCheck {
 public:
  bool operator()(int depth, Json::parse_event_t ev, Json& value) {
    using Ev = Json::parse_event_t;
    if (ev == Ev::object_start || ev == Ev::array_start) {
      if (depth >= kMaxDepth) throw Breach{"nested deeper than " + std::to_string(kMaxDepth)};
      frames_.push_back({placeOfChild(ev == Ev::array_start), {}, {}});
    } else if (ev == Ev::object_end || ev == Ev::array_end) {
      frames_.pop_back();
    } else if (ev == Ev::key && !frames_.empty()) {
      Frame& f = frames_.back();
      const auto& key = value.get_ref<const std::string&>();
      if (kept(f.place, key)) {
        if (std::find(f.keys.begin(), f.keys.end(), key) != f.keys.end()) {
          throw Breach{"the key \"" + key + "\" appears twice in one object"};
        }
        f.keys.push_back(key);
      }
      f.key = key;
    }
    return true;
  }

 private:
  struct Frame {
    Place place;
    std::vector<std::string> keys;  // kept keys seen
    std::string key;                // the last key
  };
  Place placeOfChild(bool is_array) const {
    if (frames_.empty()) return is_array ? Place::Other : Place::Status;
    const Frame& parent = frames_.back();
    if (is_array || parent.place != Place::Status) return Place::Other;
    if (parent.key == "Self") return Place::Self;
    if (parent.key == "CurrentTailnet") return Place::Tailnet;
    return Place::Other;
  }
  std::vector<Frame> frames_;
};

const Json* member(const Json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

void keepString(const Json& obj, const char* key, std::string& out) {
  const Json* v = member(obj, key);
  if (!v || !v->is_string()) return;
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() > kMaxKeptString) {
    throw Breach{std::string(key) + " is longer than " + std::to_string(kMaxKeptString) + " bytes"};
  }
  out = s;
}

void keepStrings(const Json& obj, const char* key, std::vector<std::string>& out) {
  const Json* v = member(obj, key);
  if (!v || !(v->is_array() || v->is_null())) return;
  out.clear();
  if (v->is_null()) return;
  for (const Json& item : *v) {
    if (!item.is_string()) continue;
    if (out.size() == kMaxKeptItems) {
      throw Breach{std::string(key) + " has more than " + std::to_string(kMaxKeptItems) +
                   " strings"};
    }
    if (item.get_ref<const std::string&>().size() > kMaxKeptString) {
      throw Breach{std::string(key) + " holds a string longer than " +
                   std::to_string(kMaxKeptString) + " bytes"};
    }
    out.push_back(item.get<std::string>());
  }
}

std::optional<int64_t> asInt64(const Json& j) {
  if (j.is_number_unsigned()) {
    const auto u = j.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (j.is_number_integer()) return j.get<int64_t>();
  return std::nullopt;
}

void keepInt(const Json& obj, const char* key, int64_t& out) {
  if (const Json* v = member(obj, key)) {
    if (auto i = asInt64(*v)) out = *i;
  }
}

void keepBool(const Json& obj, const char* key, std::optional<bool>& out) {
  if (const Json* v = member(obj, key); v && v->is_boolean()) out = v->get<bool>();
}

// InitialStatus.Self, an ipnstate.PeerStatus.
SelfNode selfFrom(const Json& ps) {
  SelfNode s;
  keepString(ps, "ID", s.stable_id);
  keepInt(ps, "NodeID", s.node_id);
  keepString(ps, "DNSName", s.name);
  keepStrings(ps, "TailscaleIPs", s.addresses);
  keepString(ps, "KeyExpiry", s.key_expiry);
  if (s.key_expiry == kZeroTime) s.key_expiry.clear();
  keepStrings(ps, "Tags", s.tags);
  keepString(ps, "HostName", s.host_name);
  keepBool(ps, "Online", s.online);
  keepInt(ps, "UserID", s.user_id);
  keepBool(ps, "InNetworkMap", s.in_network_map);
  return s;
}

InitialStatus statusFrom(const Json& doc) {
  InitialStatus st;
  keepString(doc, "BackendState", st.backend_state_raw);
  if (const Json* bs = member(doc, "BackendState"); bs && bs->is_string()) {
    st.state = backendStateFromString(st.backend_state_raw);
  }
  if (const Json* self = member(doc, "Self"); self && self->is_object()) st.self = selfFrom(*self);
  if (const Json* peers = member(doc, "Peer"); peers && peers->is_object()) {
    for (const Json& peer : *peers) {
      if (!peer.is_object()) continue;
      ++st.peers_total;
      std::optional<bool> online;
      keepBool(peer, "Online", online);
      if (online.value_or(false)) ++st.peers_online;
      const Json* id = member(peer, "NodeID");
      if (!id || !asInt64(*id)) st.peers_have_node_id = false;
    }
  }
  std::string top_suffix, tailnet_suffix;
  keepString(doc, "MagicDNSSuffix", top_suffix);
  if (const Json* tn = member(doc, "CurrentTailnet"); tn && tn->is_object()) {
    keepString(*tn, "Name", st.tailnet_name);
    keepString(*tn, "MagicDNSSuffix", tailnet_suffix);
  }
  st.magic_dns_suffix = tailnet_suffix.empty() ? top_suffix : tailnet_suffix;
  return st;
}

// nlohmann's message without its "[json.exception.parse_error.101] " prefix.
std::string messageOf(const Json::exception& e) {
  std::string_view what = e.what();
  if (const auto end = what.find("] ");
      what.rfind("[json.exception.", 0) == 0 && end != what.npos) {
    what.remove_prefix(end + 2);
  }
  return std::string(what);
}

}  // namespace

std::optional<InitialStatus> parseStatusJson(std::string_view body, std::string* error) {
  const auto fail = [&](const std::string& what) -> std::optional<InitialStatus> {
    if (error) *error = what;
    return std::nullopt;
  };
  // nlohmann stops at a NUL as at the end of a C string; a raw NUL is never valid JSON.
  if (const auto nul = body.find('\0'); nul != body.npos) {
    return fail("status body is not valid JSON: a NUL byte at byte " + std::to_string(nul));
  }
  try {
    const Json doc = Json::parse(body, ShapeCheck());
    if (!doc.is_object()) {
      return fail(std::string("status body is not a JSON object but ") + doc.type_name());
    }
    return statusFrom(doc);
  } catch (const Breach& b) {
    return fail("status body breaks the Status shape: " + b.what);
  } catch (const Json::parse_error& e) {
    return fail("status body is not valid JSON at byte " +
                std::to_string(e.byte > 0 ? e.byte - 1 : 0) + ": " + messageOf(e));
  } catch (const Json::exception& e) {  // e.g. a number too large for a double
    return fail("status body is not valid JSON: " + messageOf(e));
  }
}

}  // namespace tsk::watcher
