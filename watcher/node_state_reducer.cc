#include "watcher/node_state_reducer.h"

#include "common/rfc3339.h"
#include "watcher/daemon_version.h"

#include <utility>

namespace tsk::watcher {
namespace {

// The same instant to the second: PeerStatus carries KeyExpiry rounded to the second (tailscale
// `ipn/ipnlocal/local.go` `peerStatusFromNode`: `t.Round(time.Second)`), while the Node carries
// full precision, so "12:00:41.5Z" and "12:00:42Z" are the same expiry
// (docs/PROTOCOL.md#the-self-node-node-and-peerstatus).
bool sameSecond(std::string_view a, std::string_view b) {
  if (a == b) return true;
  if (a.empty() || b.empty()) return false;
  const auto x = parseRfc3339(a);
  const auto y = parseRfc3339(b);
  return x && y && x->roundedSeconds() == y->roundedSeconds();
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
    : log_(log), opts_(opts), latest_(std::make_shared<const NodeSnapshot>()), peers_(log) {}

NodeSnapshotPtr NodeStateReducer::publish() {
  if (pending_ == 0) return nullptr;
  latest_ = std::make_shared<const NodeSnapshot>(NodeSnapshot{.state = state_,
                                                              .changes = pending_,
                                                              .seq = latest_->seq + 1,
                                                              .self_changes = self_changes_});
  pending_ = 0;
  return latest_;
}

bool NodeStateReducer::onConnected(std::string_view daemon_version) {
  const uint64_t before = edits_;
  set(state_.connected, true, kChangeConnected);
  set(state_.synced, false, kChangeSynced);
  version_from_header_ = !daemon_version.empty();
  if (version_from_header_) set(state_.daemon_version, std::string(daemon_version), kChangeDaemon);
  const auto v = parseDaemonVersion(daemon_version);
  set(state_.daemon_without_selfchange, v && !v->atLeast(kFirstWithSelfChange), kChangeDaemon);
  return edits_ != before;
}

bool NodeStateReducer::onDisconnected() {
  const uint64_t before = edits_;
  set(state_.connected, false, kChangeConnected);
  set(state_.synced, false, kChangeSynced);
  set(state_.peers_known, false, kChangePeers);
  initial_in_progress_ = false;
  peers_unknown_session_ = false;
  peers_.clear();
  return edits_ != before;
}

bool NodeStateReducer::apply(const Notify& n) {
  const uint64_t before = edits_;
  if (!version_from_header_ && !n.version.empty()) {
    set(state_.daemon_version, n.version, kChangeDaemon);
  }
  if (n.initial_status) {
    applyInitialStatus(*n.initial_status, n.state, /*with_peers=*/true);
  } else if (n.state) {
    set(state_.state, *n.state, kChangeState);
  }
  if (n.self_change) applySelf(*n.self_change);
  if (opts_.track_peers &&
      (n.kinds & (kKindPeersChanged | kKindPeersRemoved | kKindPeerPatch)) != 0) {
    refreshPeerCounts();
  }
  initial_in_progress_ = false;
  return edits_ != before;
}

bool NodeStateReducer::applyStatus(const InitialStatus& status) {
  const uint64_t before = edits_;
  peers_unknown_session_ = true;
  applyInitialStatus(status, std::nullopt, /*with_peers=*/false);
  initial_in_progress_ = false;
  return edits_ != before;
}

void NodeStateReducer::applyInitialStatus(const InitialStatus& st,
                                          const std::optional<BackendState>& state,
                                          bool with_peers) {
  set(state_.synced, true, kChangeSynced);
  set(state_.state, state ? *state : st.state, kChangeState);
  if (st.self && st.self->hasIdentity()) {
    // A Self that fails validation changes nothing of the identity: the last valid one stays,
    // with its tailnet; the rest of the snapshot (state, peers) still applies.
    if (auto self = validated(*st.self)) {
      setSelf(std::move(*self));
      set(state_.identity_pending, false, kChangeIdentityPending);
      set(state_.tailnet_name, st.tailnet_name, kChangeTailnet);
      set(state_.magic_dns_suffix, st.magic_dns_suffix, kChangeTailnet);
    }
  } else {
    // The empty Self of a daemon without a netmap (or none at all): no identity yet. The last
    // one stays, and so does the tailnet it is in (CurrentTailnet is null without a netmap), so
    // nothing is overwritten with empty values meanwhile.
    set(state_.identity_pending, true, kChangeIdentityPending);
  }
  if (!with_peers) {
    set(state_.peers_total, uint64_t{0}, kChangePeers);
    set(state_.peers_online, uint64_t{0}, kChangePeers);
    set(state_.peers_known, false, kChangePeers);
    return;
  }
  const bool tracked = opts_.track_peers && initial_in_progress_;
  set(state_.peers_total, tracked ? peers_.total() : st.peers_total, kChangePeers);
  set(state_.peers_online, tracked ? peers_.online() : st.peers_online, kChangePeers);
  set(state_.peers_known, true, kChangePeers);
}

void NodeStateReducer::setSelf(SelfNode next) {
  next = mergeGaps(state_.self, std::move(next));
  next.in_network_map.reset();
  if (state_.self && *state_.self == next) return;
  if (!state_.self || identityDiffers(*state_.self, next)) {
    ++self_changes_;
    mark(kChangeIdentity);
  } else {
    mark(kChangeSelfDetail);
  }
  state_.self = std::move(next);
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

void NodeStateReducer::applySelf(const SelfNode& raw) {
  if (!raw.hasIdentity()) {
    // tailscale `ipn/ipnlocal` sends SelfChange only for a netmap with a valid self node.
    if (!warned_selfchange_without_id_) {
      warned_selfchange_without_id_ = true;
      log_.warn("ignoring a SelfChange without a StableID: not a node identity (logged once)");
    }
    return;
  }
  auto self = validated(raw);
  if (!self) return;
  set(state_.identity_pending, false, kChangeIdentityPending);
  setSelf(std::move(*self));
}

void NodeStateReducer::refreshPeerCounts() {
  if (peers_unknown_session_ || !peers_.known()) return;
  set(state_.peers_total, peers_.total(), kChangePeers);
  set(state_.peers_online, peers_.online(), kChangePeers);
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
  const uint64_t before = edits_;
  // Deltas of a malformed line that were already applied stay applied (they came from the
  // daemon); publish the counts they produced.
  if (!initial_in_progress_) {
    if (opts_.track_peers) refreshPeerCounts();
    return edits_ != before;
  }
  // A half-read InitialStatus: the peer table is incomplete. Forget it until the next resync.
  initial_in_progress_ = false;
  peers_.clear();
  log_.warn(
      "peer tracking: an InitialStatus line was malformed; peer counts unknown until the "
      "next reconnect");
  set(state_.peers_known, false, kChangePeers);
  return edits_ != before;
}

}  // namespace tsk::watcher
