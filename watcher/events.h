#pragma once
// The typed events the NotifyParser yields for each line of the watch-ipn-bus stream (one
// ipn.Notify per line, docs/PROTOCOL.md#notify-fields-the-agent-reads). Only what the agent needs
// is kept; everything else is skipped without being materialised. Nothing here knows about
// Kubernetes.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tsk::watcher {

// ipn.State (docs/PROTOCOL.md#backend-states). A Notify.State that is not an integer 0-6 makes
// the line malformed (NotifyParser); Unknown is an InitialStatus.BackendState string the agent
// does not know.
enum class BackendState : int {
  NoState = 0,
  InUseOtherUser = 1,
  NeedsLogin = 2,
  NeedsMachineAuth = 3,
  Stopped = 4,
  Starting = 5,
  Running = 6,
  Unknown = -1,
};
std::string_view backendStateName(BackendState s);        // "Running", ..., "Unknown"
BackendState backendStateFromInt(int64_t v);              // out of range -> Unknown
BackendState backendStateFromString(std::string_view s);  // unknown -> Unknown

// The self node, from SelfChange (tailcfg.Node) or InitialStatus.Self (ipnstate.PeerStatus),
// normalised (docs/PROTOCOL.md#the-self-node-node-and-peerstatus).
struct SelfNode {
  std::string stable_id;               // Node.StableID / PeerStatus.ID
  int64_t node_id = 0;                 // Node.ID / PeerStatus.NodeID (H); 0 when absent
  std::string name;                    // Node.Name / PeerStatus.DNSName, trailing dot kept
  std::vector<std::string> addresses;  // as sent, in tailscaled's order: IP prefixes (Node) or IPs
                                       // (PeerStatus); validateSelf makes them canonical bare IPs
  std::string key_expiry;              // RFC 3339 as sent; "" when absent or the zero time
  std::vector<std::string> tags;       // e.g. "tag:k8s"
  std::string host_name;               // Hostinfo.Hostname / PeerStatus.HostName
  std::optional<bool> online;          // absent on most self nodes
  int64_t user_id = 0;                 // Node.User / PeerStatus.UserID
  // PeerStatus.InNetworkMap (a Node has none): false in the empty Self a daemon serves before
  // its first netmap. Read by the reducer to decide whether this is an identity at all; the
  // self node it keeps has it cleared, so it never counts as a change.
  std::optional<bool> in_network_map;
  bool operator==(const SelfNode&) const = default;

  // Whether this describes a node with a tailnet identity: a StableID, and not a PeerStatus
  // outside the network map. tailscale `ipn/ipnlocal` `updateStatusLocked` fills an empty Self
  // (ID "", InNetworkMap false) from the daemon's start until its first netmap.
  bool hasIdentity() const { return !stable_id.empty() && in_network_map != false; }
};

// InitialStatus (an ipnstate.Status, docs/PROTOCOL.md#notify-fields-the-agent-reads): the
// whole-state snapshot at the start of every watch session.
struct InitialStatus {
  BackendState state = BackendState::NoState;  // from BackendState (string)
  std::string backend_state_raw;               // the string as sent
  std::optional<SelfNode> self;
  std::string tailnet_name;        // CurrentTailnet.Name, "" when null
  std::string magic_dns_suffix;    // CurrentTailnet.MagicDNSSuffix or MagicDNSSuffix
  uint64_t peers_total = 0;        // entries in Status.Peer
  uint64_t peers_online = 0;       // of those, Online == true
  bool peers_have_node_id = true;  // false if any peer lacked NodeID (T-era daemon)
};

// The kinds of content a Notify line can carry, as bits (one line may carry several).
enum NotifyKind : uint32_t {
  // nothing but Version and the always-present nulls (docs/PROTOCOL.md#blank-messages)
  kKindBlank = 1u << 0,
  kKindInitialStatus = 1u << 1,
  kKindSelfChange = 1u << 2,
  kKindState = 1u << 3,
  kKindErrMessage = 1u << 4,
  kKindPeersChanged = 1u << 5,
  kKindPeersRemoved = 1u << 6,
  kKindPeerPatch = 1u << 7,
  kKindUserProfiles = 1u << 8,
  kKindHealth = 1u << 9,
  kKindEngine = 1u << 10,
  kKindPrefs = 1u << 11,
  kKindLoginFinished = 1u << 12,
  kKindBrowseToURL = 1u << 13,
  kKindNetMap = 1u << 14,
  kKindOther = 1u << 15,  // any other non-null key (Taildrop, ClientVersion, future fields...)
};
inline constexpr int kNotifyKindCount = 16;
std::string_view notifyKindName(int bit);  // "blank", "initial_status", ... (metric label values)

// One parsed line. Peer arrays are NOT here: they are streamed to the handler one peer at a time
// so that a 250k-peer PeersChanged (docs/PROTOCOL.md#peer-deltas) costs no memory.
struct Notify {
  uint32_t kinds = 0;                 // NotifyKind bits
  std::string version;                // Notify.Version
  std::optional<BackendState> state;  // Notify.State when non-null
  std::optional<int64_t> state_raw;
  std::optional<std::string> err_message;  // Notify.ErrMessage when non-null
  std::optional<SelfNode> self_change;     // Notify.SelfChange
  std::optional<InitialStatus> initial_status;
  size_t bytes = 0;  // line length including '\n'
};

// Receives parser output. Peer callbacks fire while the line is being parsed; onNotify fires
// once the line is complete and valid. If the line then turns out malformed, onMalformed fires
// instead of onNotify (peer callbacks already delivered for that line are then followed by
// onLineAborted, so a tracker can roll back or resync).
class NotifyHandler {
 public:
  virtual ~NotifyHandler() = default;
  virtual void onNotify(const Notify& n) = 0;
  virtual void onMalformed(std::string_view reason, size_t line_bytes) = 0;
  virtual void onOversized(size_t line_bytes) = 0;
  // Opt-in peer stream (only called when the parser was built with peer tracking on).
  // onInitialStatusBegin fires when a non-null InitialStatus object starts, before its peers.
  virtual void onInitialStatusBegin() {}
  virtual void onInitialPeer(std::optional<int64_t> /*node_id*/, bool /*online*/) {}
  // onPeerSetBegin fires when a PeersChanged array starts in a line that already carried a
  // SelfChange: tailscaled's full netmap, whose PeersChanged lists every peer (tailscale
  // `ipn/ipnlocal/local.go`, setControlClientStatusLocked). The upserts that follow are the
  // complete peer set. (ipn.Notify declares SelfChange before PeersChanged, so Go's encoder
  // always writes it first.)
  virtual void onPeerSetBegin() {}
  virtual void onPeerUpsert(int64_t /*node_id*/, std::optional<bool> /*online*/) {}
  virtual void onPeerRemoved(int64_t /*node_id*/) {}
  virtual void onPeerPatch(int64_t /*node_id*/, std::optional<bool> /*online*/) {}
  virtual void onLineAborted() {}
};

}  // namespace tsk::watcher
