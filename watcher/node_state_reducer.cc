#include "watcher/node_state_reducer.h"

#include <utility>

namespace tsk::watcher {
namespace {

// "2026-07-08T12:00:41.5Z" and "2026-07-08T12:00:41Z" name the same second: PeerStatus rounds
// KeyExpiry to the second while the Node carries full precision
// (docs/PROTOCOL.md#the-self-node-node-and-peerstatus).
std::string withoutFraction(std::string_view t) {
  const size_t dot = t.find('.');
  if (dot == std::string_view::npos) return std::string(t);
  size_t end = dot + 1;
  while (end < t.size() && t[end] >= '0' && t[end] <= '9') ++end;
  return std::string(t.substr(0, dot)) + std::string(t.substr(end));
}
bool sameSecond(std::string_view a, std::string_view b) {
  if (a == b) return true;
  if (a.empty() || b.empty()) return false;
  return withoutFraction(a) == withoutFraction(b);
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
  if (st.self) {
    next.self = mergeGaps(state_.self, *st.self);
  } else {
    next.self.reset();
  }
  next.tailnet_name = st.tailnet_name;
  next.magic_dns_suffix = st.magic_dns_suffix;
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

bool NodeStateReducer::applySelf(const SelfNode& self) {
  SelfNode next = mergeGaps(state_.self, self);
  if (state_.self && *state_.self == next) return false;
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
