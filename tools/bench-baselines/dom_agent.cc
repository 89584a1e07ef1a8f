// dom-agent: the DOM baseline of the benchmark. The same program logic as ts-kube-agent's watcher
// path (BusClient for the socket, HTTP and chunked decoding; NodeStateReducer and PeerTracker for
// reduce and compare), but each line is buffered whole and parsed with nlohmann::json::parse,
// then the DOM is walked into the same watcher::Notify. Only the JSON handling differs.
//
//   dom-agent --socket /tmp/ts.sock [--track-peers] [--progress-file /tmp/p]
//
// Prints "identity <StableID> <Name> <ips JSON>" on stdout (flushed) whenever the identity the
// agent would publish changes; that is its "write". Exits when the stream ends.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/log.h"
#include "tools/bench-baselines/progress_counter.h"
#include "watcher/bus_client.h"
#include "watcher/events.h"
#include "watcher/node_state_reducer.h"

namespace {

using nlohmann::json;
using tsk::watcher::BackendState;
using tsk::watcher::InitialStatus;
using tsk::watcher::NodeStateReducer;
using tsk::watcher::Notify;
using tsk::watcher::SelfNode;

struct DomOptions {
  std::string socket_path = "/var/run/tailscale/tailscaled.sock";
  bool track_peers = false;
  std::string progress_file;
};

constexpr const char* kUsage =
    "usage: dom-agent --socket PATH [--track-peers] [--progress-file PATH]\n"
    "  The DOM baseline: watches the bus, nlohmann::json::parse of every whole line, then the\n"
    "  agent's own reducer. Prints 'identity ...' on stdout when the identity changes.\n";

bool parseArgs(int argc, char** argv, DomOptions& out) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (arg == "--track-peers") {
      out.track_peers = true;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "dom-agent: %s needs a value\n%s", argv[i], kUsage);
      return false;
    }
    const char* value = argv[++i];
    if (arg == "--socket") {
      out.socket_path = value;
    } else if (arg == "--progress-file") {
      out.progress_file = value;
    } else {
      std::fprintf(stderr, "dom-agent: unknown flag %s\n%s", argv[i - 1], kUsage);
      return false;
    }
  }
  return true;
}

// --- DOM -> the watcher's typed events ----------------------------------------------------------

std::string stringAt(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t intAt(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

std::optional<bool> boolAt(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_boolean()) return std::nullopt;
  return it->get<bool>();
}

std::vector<std::string> stringsAt(const json& obj, const char* key, bool strip_prefix_len) {
  std::vector<std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (!v.is_string()) continue;
    std::string s = v.get<std::string>();
    if (strip_prefix_len) s = s.substr(0, s.find('/'));
    out.push_back(std::move(s));
  }
  return out;
}

std::string keyExpiryAt(const json& obj) {
  std::string v = stringAt(obj, "KeyExpiry");
  return v.starts_with("0001-01-01") ? std::string() : v;
}

// tailcfg.Node (SelfChange).
SelfNode selfFromNode(const json& node) {
  SelfNode s;
  s.stable_id = stringAt(node, "StableID");
  s.node_id = intAt(node, "ID");
  s.name = stringAt(node, "Name");
  s.addresses = stringsAt(node, "Addresses", true);
  s.key_expiry = keyExpiryAt(node);
  s.tags = stringsAt(node, "Tags", false);
  if (auto hi = node.find("Hostinfo"); hi != node.end() && hi->is_object()) {
    s.host_name = stringAt(*hi, "Hostname");
  }
  s.online = boolAt(node, "Online");
  s.user_id = intAt(node, "User");
  return s;
}

// ipnstate.PeerStatus (InitialStatus.Self).
SelfNode selfFromPeerStatus(const json& ps) {
  SelfNode s;
  s.stable_id = stringAt(ps, "ID");
  s.node_id = intAt(ps, "NodeID");
  s.name = stringAt(ps, "DNSName");
  s.addresses = stringsAt(ps, "TailscaleIPs", true);
  s.key_expiry = keyExpiryAt(ps);
  s.tags = stringsAt(ps, "Tags", false);
  s.host_name = stringAt(ps, "HostName");
  s.online = boolAt(ps, "Online");
  s.user_id = intAt(ps, "UserID");
  return s;
}

InitialStatus initialStatusFrom(const json& st, NodeStateReducer& reducer, bool track_peers) {
  InitialStatus out;
  out.backend_state_raw = stringAt(st, "BackendState");
  out.state = tsk::watcher::backendStateFromString(out.backend_state_raw);
  if (auto self = st.find("Self"); self != st.end() && self->is_object()) {
    out.self = selfFromPeerStatus(*self);
  }
  if (auto tn = st.find("CurrentTailnet"); tn != st.end() && tn->is_object()) {
    out.tailnet_name = stringAt(*tn, "Name");
    out.magic_dns_suffix = stringAt(*tn, "MagicDNSSuffix");
  }
  if (out.magic_dns_suffix.empty()) out.magic_dns_suffix = stringAt(st, "MagicDNSSuffix");
  if (track_peers) reducer.onInitialStatusBegin();
  if (auto peers = st.find("Peer"); peers != st.end() && peers->is_object()) {
    for (const auto& [key, ps] : peers->items()) {
      if (!ps.is_object()) continue;
      bool online = boolAt(ps, "Online").value_or(false);
      ++out.peers_total;
      if (online) ++out.peers_online;
      auto id = ps.find("NodeID");
      bool has_id = id != ps.end() && id->is_number_integer();
      if (!has_id) out.peers_have_node_id = false;
      if (track_peers) {
        reducer.onInitialPeer(has_id ? std::optional<int64_t>(id->get<int64_t>()) : std::nullopt,
                              online);
      }
    }
  }
  return out;
}

void applyPeerDeltas(const json& n, NodeStateReducer& reducer, uint32_t& kinds) {
  if (auto changed = n.find("PeersChanged"); changed != n.end() && changed->is_array()) {
    kinds |= tsk::watcher::kKindPeersChanged;
    for (const auto& node : *changed) {
      if (node.is_object()) reducer.onPeerUpsert(intAt(node, "ID"), boolAt(node, "Online"));
    }
  }
  if (auto removed = n.find("PeersRemoved"); removed != n.end() && removed->is_array()) {
    kinds |= tsk::watcher::kKindPeersRemoved;
    for (const auto& id : *removed) {
      if (id.is_number_integer()) reducer.onPeerRemoved(id.get<int64_t>());
    }
  }
  if (auto patches = n.find("PeerChangedPatch"); patches != n.end() && patches->is_array()) {
    kinds |= tsk::watcher::kKindPeerPatch;
    for (const auto& p : *patches) {
      if (p.is_object()) reducer.onPeerPatch(intAt(p, "NodeID"), boolAt(p, "Online"));
    }
  }
}

uint32_t kindOfKey(std::string_view key) {
  using namespace tsk::watcher;
  if (key == "InitialStatus") return kKindInitialStatus;
  if (key == "SelfChange") return kKindSelfChange;
  if (key == "State") return kKindState;
  if (key == "ErrMessage") return kKindErrMessage;
  if (key == "PeersChanged") return kKindPeersChanged;
  if (key == "PeersRemoved") return kKindPeersRemoved;
  if (key == "PeerChangedPatch") return kKindPeerPatch;
  if (key == "UserProfiles") return kKindUserProfiles;
  if (key == "Health") return kKindHealth;
  if (key == "Engine") return kKindEngine;
  if (key == "Prefs") return kKindPrefs;
  if (key == "LoginFinished") return kKindLoginFinished;
  if (key == "BrowseToURL") return kKindBrowseToURL;
  if (key == "NetMap") return kKindNetMap;
  return kKindOther;
}

Notify notifyFrom(const json& n, NodeStateReducer& reducer, bool track_peers, size_t bytes) {
  Notify out;
  out.bytes = bytes;
  for (const auto& [key, value] : n.items()) {
    if (value.is_null() || key == "Version") continue;
    out.kinds |= kindOfKey(key);
  }
  if (out.kinds == 0) out.kinds = tsk::watcher::kKindBlank;
  out.version = stringAt(n, "Version");
  if (auto st = n.find("State"); st != n.end() && st->is_number_integer()) {
    out.state_raw = st->get<int64_t>();
    out.state = tsk::watcher::backendStateFromInt(*out.state_raw);
  }
  if (auto err = n.find("ErrMessage"); err != n.end() && err->is_string()) {
    out.err_message = err->get<std::string>();
  }
  if (auto self = n.find("SelfChange"); self != n.end() && self->is_object()) {
    out.self_change = selfFromNode(*self);
  }
  if (auto st = n.find("InitialStatus"); st != n.end() && st->is_object()) {
    out.initial_status = initialStatusFrom(*st, reducer, track_peers);
  }
  if (track_peers) applyPeerDeltas(n, reducer, out.kinds);
  return out;
}

// --- the watcher path ---------------------------------------------------------------------------

// Buffers whole lines (the DOM approach), parses each and reduces it; prints identity changes.
class DomPipeline {
 public:
  DomPipeline(NodeStateReducer& reducer, bool track_peers)
      : reducer_(reducer), track_peers_(track_peers) {}

  // Returns the number of complete lines in `bytes`.
  uint64_t feed(std::string_view bytes) {
    uint64_t lines = 0;
    while (!bytes.empty()) {
      size_t nl = bytes.find('\n');
      if (nl == std::string_view::npos) {
        line_.append(bytes);
        break;
      }
      line_.append(bytes.substr(0, nl));
      processLine();
      line_.clear();
      ++lines;
      bytes.remove_prefix(nl + 1);
    }
    return lines;
  }

  uint64_t malformed() const { return malformed_; }
  bool sawErrMessage() const { return saw_err_; }

 private:
  void processLine() {
    std::optional<Notify> notify = parseLine();
    if (!notify) {
      ++malformed_;
      return;
    }
    if (notify->err_message) saw_err_ = true;
    if (reducer_.apply(*notify)) publishIfChanged();
  }

  // The DOM lives only here, so a huge one is freed before the identity is "written" (its
  // destruction is part of the cost of the line, not of the next batch).
  std::optional<Notify> parseLine() {
    json n = json::parse(line_, nullptr, /*allow_exceptions=*/false);
    if (n.is_discarded() || !n.is_object()) return std::nullopt;
    return notifyFrom(n, reducer_, track_peers_, line_.size() + 1);
  }

  // The agent's "skip the write when the identity is unchanged".
  void publishIfChanged() {
    const auto& self = reducer_.state().self;
    if (!self) return;
    if (published_ && published_->stable_id == self->stable_id && published_->name == self->name &&
        published_->addresses == self->addresses) {
      return;
    }
    published_ = *self;
    std::string ips = "[";
    for (size_t i = 0; i < self->addresses.size(); ++i) {
      if (i > 0) ips += ',';
      ips += '"' + self->addresses[i] + '"';
    }
    ips += ']';
    std::printf("identity %s %s %s\n", self->stable_id.c_str(), self->name.c_str(), ips.c_str());
    std::fflush(stdout);
  }

  NodeStateReducer& reducer_;
  bool track_peers_;
  std::string line_;
  std::optional<SelfNode> published_;
  uint64_t malformed_ = 0;
  bool saw_err_ = false;
};

int run(const DomOptions& opts) {
  tsk::bench::ProgressCounter progress(opts.progress_file);
  NodeStateReducer reducer(tsk::Logger::null(), {.track_peers = opts.track_peers});
  DomPipeline pipeline(reducer, opts.track_peers);
  tsk::watcher::BusClient bus({.socket_path = opts.socket_path});
  uint64_t mask = 16384 | (opts.track_peers ? (4096 | 32768) : 0);
  auto head = bus.openWatch(mask);
  if (!head) {
    std::fprintf(stderr, "dom-agent: %s\n", head.error().message.c_str());
    return 1;
  }
  reducer.onConnected(head->tailscale_version);
  auto end = bus.readBody([&](std::string_view bytes) {
    progress.add(pipeline.feed(bytes), bytes.size());
    return true;
  });
  std::fprintf(stderr,
               "dom-agent: stream ended (%s): %llu lines, %llu malformed, peers %llu/%llu%s\n",
               end.message.empty() ? "complete" : end.message.c_str(),
               static_cast<unsigned long long>(progress.lines()),
               static_cast<unsigned long long>(pipeline.malformed()),
               static_cast<unsigned long long>(reducer.state().peers_online),
               static_cast<unsigned long long>(reducer.state().peers_total),
               pipeline.sawErrMessage() ? " after an ErrMessage" : "");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  DomOptions opts;
  if (!parseArgs(argc, argv, opts)) return 2;
  try {
    return run(opts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dom-agent: %s\n", e.what());
    return 1;
  }
}
