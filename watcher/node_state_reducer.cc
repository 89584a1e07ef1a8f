#include "watcher/node_state_reducer.h"

#include "watcher/daemon_version.h"

#include <cstdio>
#include <ctime>
#include <utility>

namespace tsk::watcher {
namespace {

// RFC 3339 time -> Unix seconds rounded to the nearest second, halves away from zero, as Go's
// time.Round(time.Second) does; nullopt if it is not of the form Go's encoder writes.
std::optional<int64_t> roundedUnixSeconds(std::string_view t) {
  std::tm tm{};
  const std::string text(t);
  const char* p = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (p == nullptr) return std::nullopt;
  int64_t secs = static_cast<int64_t>(timegm(&tm));
  if (*p == '.') {
    ++p;
    if (*p < '0' || *p > '9') return std::nullopt;
    if (*p >= '5') ++secs;  // the first fractional digit decides: .5 and more round up
    while (*p >= '0' && *p <= '9') ++p;
  }
  if (*p == 'Z') return p[1] == '\0' ? std::optional<int64_t>(secs) : std::nullopt;
  int hh = 0;
  int mm = 0;
  char sign = 0;
  if (std::sscanf(p, "%c%2d:%2d", &sign, &hh, &mm) != 3 || (sign != '+' && sign != '-')) {
    return std::nullopt;
  }
  const int64_t offset = (hh * 60 + mm) * 60;
  return sign == '+' ? secs - offset : secs + offset;
}

// The same instant to the second: PeerStatus carries KeyExpiry rounded to the second (tailscale
// `ipn/ipnlocal/local.go` `peerStatusFromNode`: `t.Round(time.Second)`), while the Node carries
// full precision, so "12:00:41.5Z" and "12:00:42Z" are the same expiry
// (docs/PROTOCOL.md#the-self-node-node-and-peerstatus).
bool sameSecond(std::string_view a, std::string_view b) {
  if (a == b) return true;
  if (a.empty() || b.empty()) return false;
  const auto x = roundedUnixSeconds(a);
  return x && x == roundedUnixSeconds(b);
}

// A SelfChange (Node) and an InitialStatus.Self (PeerStatus) describe the same node with
// different gaps: the PeerStatus has no integer ID at T, the Node usually has no Online. When
// both describe the same StableID, fill the gaps of the new value from the old one so that a
// mere change of source is not reported as a change.
SelfNode mergeGaps(const std::optional<SelfNode>& old, SelfNode next) {
  if (!old || old->stable_id != next.stable_id) return next;
  if (next.node_id == 0) next.node_id = old->node_id;
  if (!next.online) next.online = old->online;
  if (sameSecond(next.key_expiry, old->key_expiry)) next.key_expiry = old->key_expiry;
  return next;
}

// Whether `next` says something new about the node, beyond filling gaps `old` had (an integer
// ID or Online that the other message kind does not carry).
bool identityDiffers(const SelfNode& old, const SelfNode& next) {
  SelfNode filled = old;
  if (filled.node_id == 0) filled.node_id = next.node_id;
  if (!filled.online) filled.online = next.online;
  return !(filled == next);
}

}  // namespace

NodeStateReducer::NodeStateReducer(Logger& log, ReducerOptions opts)
    : log_(log), opts_(opts), peers_(log) {}

bool NodeStateReducer::onConnected(std::string_view daemon_version) {
  NodeState before = state_;
  state_.connected = true;
  state_.synced = false;
  version_from_header_ = !daemon_version.empty();
  if (version_from_header_) state_.daemon_version = std::string(daemon_version);
  const auto v = parseDaemonVersion(daemon_version);
  state_.daemon_without_selfchange = v && !v->atLeast(kFirstWithSelfChange);
  return !(before == state_);
}

bool NodeStateReducer::onDisconnected() {
  NodeState before = state_;
  state_.connected = false;
  state_.synced = false;
  state_.peers_known = false;
  initial_in_progress_ = false;
  peers_.clear();
  return !(before == state_);
}

bool NodeStateReducer::apply(const Notify& n) {
  bool changed = false;
  if (!version_from_header_ && !n.version.empty() && n.version != state_.daemon_version) {
    state_.daemon_version = n.version;
    changed = true;
  }
  if (n.initial_status) {
    changed |= applyInitialStatus(*n.initial_status, n.state);
  } else if (n.state && *n.state != state_.state) {
    state_.state = *n.state;
    changed = true;
  }
  if (n.self_change) {
    changed |= applySelf(*n.self_change);
  }
  if (opts_.track_peers &&
      (n.kinds & (kKindPeersChanged | kKindPeersRemoved | kKindPeerPatch)) != 0) {
    changed |= refreshPeerCounts();
  }
  initial_in_progress_ = false;
  return changed;
}

bool NodeStateReducer::applyInitialStatus(const InitialStatus& st,
                                          const std::optional<BackendState>& state) {
  NodeState next = state_;
  next.synced = true;
  next.state = state ? *state : st.state;
  if (st.self && st.self->hasIdentity()) {
    // A Self that fails validation changes nothing of the identity: the last valid one stays,
    // with its tailnet; the rest of the snapshot (state, peers) still applies.
    if (auto self = validated(*st.self)) {
      self->in_network_map.reset();
      next.self = mergeGaps(state_.self, std::move(*self));
      next.identity_pending = false;
      next.tailnet_name = st.tailnet_name;
      next.magic_dns_suffix = st.magic_dns_suffix;
    }
  } else {
    // The empty Self of a daemon without a netmap (or none at all): no identity yet. The last
    // one stays, and so does the tailnet it is in (CurrentTailnet is null without a netmap), so
    // nothing is overwritten with empty values meanwhile.
    next.identity_pending = true;
  }
  if (opts_.track_peers && initial_in_progress_) {
    next.peers_total = peers_.total();
    next.peers_online = peers_.online();
  } else {
    next.peers_total = st.peers_total;
    next.peers_online = st.peers_online;
  }
  next.peers_known = true;
  const bool changed = !(next == state_);
  state_ = std::move(next);
  return changed;
}

std::optional<SelfNode> NodeStateReducer::validated(const SelfNode& raw) {
  SelfCheck check = validateSelf(raw);
  if (check.node) return std::move(check.node);
  const auto i = static_cast<size_t>(check.problem);
  ++invalid_self_nodes_[i];
  ++invalid_total_;
  if ((logged_problems_ & (1u << i)) == 0) {
    logged_problems_ |= 1u << i;
    log_.warn(
        "bus: a self node failed validation and is not published; the last valid identity "
        "stays (later ones with this problem are counted in "
        "ts_kube_agent_bus_invalid_self_nodes_total, not logged)",
        {{"problem", std::string(selfProblemName(check.problem))}, {"detail", check.detail}});
  }
  return std::nullopt;
}

bool NodeStateReducer::applySelf(const SelfNode& raw) {
  if (!raw.hasIdentity()) {
    // tailscale `ipn/ipnlocal` sends SelfChange only for a netmap with a valid self node.
    if (!warned_selfchange_without_id_) {
      warned_selfchange_without_id_ = true;
      log_.warn("ignoring a SelfChange without a StableID: not a node identity (logged once)");
    }
    return false;
  }
  auto self = validated(raw);
  if (!self) return false;
  const bool was_pending = state_.identity_pending;
  state_.identity_pending = false;
  SelfNode next = mergeGaps(state_.self, std::move(*self));
  next.in_network_map.reset();
  if (state_.self && *state_.self == next) return was_pending;
  if (!state_.self || identityDiffers(*state_.self, next)) ++self_changes_;
  state_.self = std::move(next);
  return true;
}

bool NodeStateReducer::refreshPeerCounts() {
  if (!peers_.known()) return false;
  const uint64_t total = peers_.total();
  const uint64_t online = peers_.online();
  if (total == state_.peers_total && online == state_.peers_online) return false;
  state_.peers_total = total;
  state_.peers_online = online;
  return true;
}

void NodeStateReducer::onInitialStatusBegin() {
  initial_in_progress_ = true;
  peers_.beginInitialStatus();
}

void NodeStateReducer::onInitialPeer(std::optional<int64_t> node_id, bool online) {
  peers_.addInitialPeer(node_id, online);
}

void NodeStateReducer::onPeerSetBegin() {
  // As for an InitialStatus: if the line turns out malformed, the half-read set is forgotten.
  initial_in_progress_ = true;
  peers_.beginInitialStatus();
}

void NodeStateReducer::onPeerUpsert(int64_t node_id, std::optional<bool> online) {
  peers_.upsert(node_id, online);
}

void NodeStateReducer::onPeerRemoved(int64_t node_id) {
  peers_.remove(node_id);
}

void NodeStateReducer::onPeerPatch(int64_t node_id, std::optional<bool> online) {
  peers_.patch(node_id, online);
}

bool NodeStateReducer::onLineAborted() {
  // Deltas of a malformed line that were already applied stay applied (they came from the
  // daemon); publish the counts they produced.
  if (!initial_in_progress_) return opts_.track_peers && refreshPeerCounts();
  // A half-read InitialStatus: the peer table is incomplete. Forget it until the next resync.
  initial_in_progress_ = false;
  peers_.clear();
  log_.warn(
      "peer tracking: an InitialStatus line was malformed; peer counts unknown until the "
      "next reconnect");
  if (!state_.peers_known) return false;
  state_.peers_known = false;
  return true;
}

}  // namespace tsk::watcher
