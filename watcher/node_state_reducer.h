#pragma once
// NodeStateReducer: the one owner of the node's state. It folds parsed bus events (and a status
// fetch) into NodeState and publishes it as immutable NodeSnapshots that say what changed; the
// watcher hands them on and the agent maps them to identity and metrics without keeping a copy.
// Pure (no I/O, no clock), O(1) per event whatever the tailnet size. It does not deduplicate
// SelfChange on the wire (tailscaled does not either, docs/PROTOCOL.md#selfchange-semantics); it
// compares values and records what really changed.
//
//   NodeStateReducer reducer(log, {.track_peers = true});
//   reducer.onConnected(tailscale_version_header);
//   // from the NotifyHandler the parser calls (ReducingHandler below forwards the peer events):
//   //   onInitialStatusBegin/onInitialPeer/onPeerUpsert/... -> reducer.onInitialStatusBegin()...
//   //   onNotify(n) -> reducer.apply(n); if (auto snap = reducer.publish()) observer(snap);
//   // or, for GET /localapi/v0/status: reducer.applyStatus(status)
//   reducer.onDisconnected();
//
// Rules: an InitialStatus (or a fetched status) replaces everything (the resync) except a self
// node with an identity, which only a self node with an identity replaces (see
// NodeState::identity_pending); a SelfChange replaces the self node only if it differs and has an
// identity; a self node with an identity that validateSelf refuses (from either message) is
// counted, logged once per distinct problem and not applied, so the last valid identity stays;
// Notify.State sets the state, and with no State the InitialStatus's BackendState does
// (containerboot's rule: tailscale cmd/containerboot/main.go notifyState). With peer tracking, the
// peer counts come from the PeerTracker fed by the peer callbacks; without it, from the
// InitialStatus snapshot; a fetched status has no peers, so counts are unknown for that session.
// "The identity changed" (kChangeIdentity, NodeSnapshot::self_changes) has one rule, whatever
// message carried the node: the first identity learnt, then every value change that is more than
// filling in the integer ID or Online one message kind lacks and the other carries
// (docs/PROTOCOL.md#the-self-node-node-and-peerstatus).
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/log.h"
#include "watcher/events.h"
#include "watcher/peer_tracker.h"
#include "watcher/self_validation.h"

namespace tsk::watcher {

// The reduced state of the node. O(1) to update per event, independent of tailnet size.
struct NodeState {
  bool connected = false;
  bool synced = false;  // an initial message has been applied on the current connection
  BackendState state = BackendState::NoState;
  // The last self node that had an identity (SelfNode::hasIdentity). Never replaced by the empty
  // Self a daemon serves before its first netmap, nor cleared by a reconnect: that is
  // `identity_pending` instead.
  std::optional<SelfNode> self;
  // The daemon's current Self has no identity (no StableID, or not in the network map: from its
  // start until its first netmap, at first boot and after every restart). `self`, if set, is
  // what it was before.
  bool identity_pending = false;
  std::string tailnet_name;
  std::string magic_dns_suffix;
  std::string daemon_version;  // Tailscale-Version header, or Notify.Version
  uint64_t peers_total = 0;
  uint64_t peers_online = 0;
  bool peers_known = false;  // peer counts are meaningful (InitialStatus start mode)
  // The daemon (Tailscale-Version header) predates SelfChange (1.98): identity changes after the
  // initial snapshot would go unseen.
  bool daemon_without_selfchange = false;
  bool operator==(const NodeState&) const = default;
};

// What a snapshot changed, relative to the snapshot before it (bits of NodeSnapshot::changes).
enum NodeChange : uint32_t {
  kChangeConnected = 1u << 0,   // `connected` flipped
  kChangeSynced = 1u << 1,      // `synced` flipped (to true: tailscaled's state was read again)
  kChangeState = 1u << 2,       // the backend state
  kChangeIdentity = 1u << 3,    // the self node's identity (the rule above)
  kChangeSelfDetail = 1u << 4,  // the integer ID or Online of the same identity filled in
  kChangeIdentityPending = 1u << 5,
  kChangeTailnet = 1u << 6,  // tailnet name or MagicDNS suffix
  kChangePeers = 1u << 7,    // peer counts or whether they are known
  kChangeDaemon = 1u << 8,   // daemon version or daemon_without_selfchange
};

// One published state of the node: immutable, shared by everyone who reads it.
struct NodeSnapshot {
  NodeState state;
  uint32_t changes = 0;       // NodeChange bits since the previous snapshot
  uint64_t seq = 0;           // 0 for the initial (default) snapshot, then 1, 2, ...
  uint64_t self_changes = 0;  // snapshots so far with kChangeIdentity
};
using NodeSnapshotPtr = std::shared_ptr<const NodeSnapshot>;

struct ReducerOptions {
  bool track_peers = false;  // peer counts follow the peer deltas (PeerTracker)
};

class NodeStateReducer {
 public:
  explicit NodeStateReducer(Logger& log, ReducerOptions opts = {});

  // Every entry point below returns whether NodeState changed; the changes gather until the next
  // publish().
  // Connection lifecycle.
  bool onConnected(std::string_view daemon_version);
  bool onDisconnected();  // keeps the last self/state (identity is not forgotten), clears synced

  // One parsed line.
  bool apply(const Notify& n);
  // The body of GET /localapi/v0/status?peers=false (StartMode::StatusFetch, or a daemon that
  // ignores the InitialStatus bit): applied as an InitialStatus, except that it carries no peers,
  // so the peer counts are unknown until the next connection.
  bool applyStatus(const InitialStatus& status);

  // Peer stream (forward the NotifyHandler callbacks of the same names). Counts reach NodeState
  // at the next apply() of that line, so "changed" is reported once per line.
  void onInitialStatusBegin();
  void onInitialPeer(std::optional<int64_t> node_id, bool online);
  // A full netmap's PeersChanged starts: the upserts that follow replace every peer.
  void onPeerSetBegin();
  void onPeerUpsert(int64_t node_id, std::optional<bool> online);
  void onPeerRemoved(int64_t node_id);
  void onPeerPatch(int64_t node_id, std::optional<bool> online);
  // A line whose peers were partly applied turned out malformed. Returns whether NodeState
  // changed (a half-read InitialStatus makes the peer counts unknown).
  bool onLineAborted();

  // A new snapshot of NodeState with what changed since the last publish(), or null when
  // nothing did.
  NodeSnapshotPtr publish();
  // The last snapshot published (seq 0, a default NodeState, before the first publish()).
  const NodeSnapshotPtr& latest() const { return latest_; }

  // The state as of the last event, published or not.
  const NodeState& state() const { return state_; }
  // Changes of the self node's identity so far (kChangeIdentity), published or not.
  uint64_t selfChanges() const { return self_changes_; }
  const PeerTracker& peers() const { return peers_; }
  // Self nodes refused by validateSelf, by SelfProblem (index), and their sum.
  const uint64_t (&invalidSelfNodes() const)[kSelfProblemCount] { return invalid_self_nodes_; }
  uint64_t invalidSelfNodesTotal() const { return invalid_total_; }

 private:
  void applyInitialStatus(const InitialStatus& st, const std::optional<BackendState>& state,
                          bool with_peers);
  void applySelf(const SelfNode& self);
  // Sets the self node and the bit its change deserves (kChangeIdentity or kChangeSelfDetail).
  void setSelf(SelfNode next);
  // Sets a field of state_ and marks `bit` when its value changes.
  template <typename T, typename V>
  void set(T& field, V&& value, uint32_t bit) {
    if (field == value) return;
    field = std::forward<V>(value);
    mark(bit);
  }
  void mark(uint32_t bit) {
    pending_ |= bit;
    ++edits_;
  }
  // The node to apply, or nullopt (counted and logged) when validateSelf refuses it.
  std::optional<SelfNode> validated(const SelfNode& raw);
  void refreshPeerCounts();

  Logger& log_;
  ReducerOptions opts_;
  NodeState state_;
  uint32_t pending_ = 0;  // NodeChange bits not yet published
  uint64_t edits_ = 0;    // changes made to state_ (an entry point changed it if this moved)
  NodeSnapshotPtr latest_;
  PeerTracker peers_;
  uint64_t self_changes_ = 0;
  uint64_t invalid_self_nodes_[kSelfProblemCount] = {};
  uint64_t invalid_total_ = 0;
  uint32_t logged_problems_ = 0;      // SelfProblem bits already logged
  bool initial_in_progress_ = false;  // onInitialStatusBegin seen, apply not yet
  bool version_from_header_ = false;  // the Tailscale-Version header wins over Notify.Version
  bool warned_selfchange_without_id_ = false;
  bool peers_unknown_session_ = false;  // this session's snapshot came from applyStatus
};

// A NotifyHandler that owns a NodeStateReducer and hands it the parser's peer events: the part
// that is the same wherever a parser feeds a reducer (the watcher, tests, benchmarks). What a
// line means (onNotify, onMalformed, onOversized, onLineAborted) stays with the subclass.
class ReducingHandler : public NotifyHandler {
 public:
  void onInitialStatusBegin() override { reducer.onInitialStatusBegin(); }
  void onInitialPeer(std::optional<int64_t> id, bool online) override {
    reducer.onInitialPeer(id, online);
  }
  void onPeerSetBegin() override { reducer.onPeerSetBegin(); }
  void onPeerUpsert(int64_t id, std::optional<bool> online) override {
    reducer.onPeerUpsert(id, online);
  }
  void onPeerRemoved(int64_t id) override { reducer.onPeerRemoved(id); }
  void onPeerPatch(int64_t id, std::optional<bool> online) override {
    reducer.onPeerPatch(id, online);
  }

  NodeStateReducer reducer;

 protected:
  ReducingHandler(Logger& log, ReducerOptions opts) : reducer(log, opts) {}
};

}  // namespace tsk::watcher
