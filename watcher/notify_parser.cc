// NotifyParser: the ipn.Notify schema on top of a schema-free JSON Lines tokenizer
// (common/json_stream.h, which splits lines, validates syntax, decodes strings and skips what it is
// told to skip without copying it).
//
// What the parser reads is one table, kRows: for each object it reads (the Notify, a SelfChange
// node, an InitialStatus, ...), the keys it keeps, how each value is read (a bounded string, an
// int, a bool, a bounded string list, a nested object or array) and where it goes. Every other
// key's value is skipped by the tokenizer, never copied. Adding a field is adding a row (and its
// member in watcher/events.h).
//  - Kept strings are bounded (kMaxKeptString) and kept arrays too (kMaxKeptItems), so the heap
//    the parser holds is a constant, whatever the line. A kept value over its bound makes the line
//    malformed rather than being cut: a cut identity would be published as if it were whole.
//  - The parser owns the shape of what it keeps: a key it reads may appear once per object in
//    the identity's path (encoding/json would let the last one win, but merge a second object
//    into the first; a line tailscaled's json.Marshal wrote never repeats a key, so a repeat is
//    refused), and a non-null State is an integer 0-6. Whether a self node is a publishable
//    identity is validateSelf's decision (watcher/self_validation.h), made by the reducer.
#include "watcher/notify_parser.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "common/json_stream.h"

namespace tsk::watcher {
namespace {

constexpr size_t kMaxKeptString = 4096;
constexpr size_t kMaxKeptItems = 64;
constexpr int kMaxDepth = 64;
constexpr size_t kMaxRowKey = 16;  // the longest key of kRows (longer keys match none)
constexpr std::string_view kZeroTime = "0001-01-01T00:00:00Z";

// The objects and arrays whose content the parser reads.
enum class Obj : uint8_t {
  kNotify,      // the line: ipn.Notify
  kNode,        // SelfChange: tailcfg.Node
  kHostinfo,    // SelfChange.Hostinfo
  kStatus,      // InitialStatus: ipnstate.Status
  kSelfStatus,  // InitialStatus.Self: ipnstate.PeerStatus
  kTailnet,     // InitialStatus.CurrentTailnet
  kPeerMap,     // InitialStatus.Peer: nodekey -> PeerStatus
  kPeer,        // one PeerStatus of InitialStatus.Peer
  kChanged,     // PeersChanged: [tailcfg.Node]
  kChangedNode,
  kRemoved,  // PeersRemoved: [NodeID]
  kPatches,  // PeerChangedPatch: [tailcfg.PeerChange]
  kPatch,
  kStrings,  // a kept array of strings (the self node's addresses or tags)
  kCount,
};
constexpr size_t kObjCount = static_cast<size_t>(Obj::kCount);

// How a kept value is read. A value of another JSON type is ignored (skipped), except where a
// row says the type is part of the shape (State).
enum class Read : uint8_t {
  kNothing,  // not read: the key only marks the Notify's kind (or counts as a key read, once)
  kString,   // decoded into the row's string, at most kMaxKeptString bytes
  kInt,      // an integer that fits int64 (other numbers are ignored)
  kBool,
  kStrings,   // an array of strings, at most kMaxKeptItems (null clears it)
  kObject,    // an object, read with the rows of `child`
  kArray,     // an array, each item read with the item row (key kItem) of `child`
  kListItem,  // an item of a kStrings array (internal: kStringsItem)
};

// What one line yields; the rows' actions fill it.
struct Built {
  NotifyHandler* handler;
  bool track_peers;
  Notify n{};
  SelfNode* self = nullptr;      // the self node being read (SelfChange or InitialStatus.Self)
  std::string status_suffix{};   // InitialStatus.MagicDNSSuffix
  std::string tailnet_suffix{};  // InitialStatus.CurrentTailnet.MagicDNSSuffix
  bool tailnet_suffix_seen = false;
  std::optional<int64_t> peer_id{};  // the peer being read (any of the peer objects)
  std::optional<bool> peer_online{};
  bool peer_callbacks_fired = false;

  bool startPeer() {
    peer_id.reset();
    peer_online.reset();
    return true;
  }
  NotifyHandler& peerEvent() {
    peer_callbacks_fired = true;
    return *handler;
  }
};

constexpr std::string_view kItem = "";  // the key of an item row

struct Row {
  Obj in;                // the object (or array) the key belongs to
  std::string_view key;  // kItem: each item of the array (or member of the map) `in`
  Read read;
  Obj child = Obj::kCount;     // kObject/kArray: how the content is read
  uint32_t kind = 0;           // a Notify key: the NotifyKind bit a non-null value sets
  std::string_view name = {};  // in error messages; empty: the key
  int int_max = -1;            // >= 0: a non-null value must be an integer 0..int_max
  // The action for `read` (the others stay null).
  std::string* (*str)(Built&) = nullptr;  // kString: where it goes
  void (*str_done)(Built&) = nullptr;     // kString: after the whole string
  void (*set_int)(Built&, int64_t) = nullptr;
  void (*set_bool)(Built&, bool) = nullptr;
  std::vector<std::string>* (*strings)(Built&) = nullptr;
  bool (*open)(Built&) = nullptr;  // kObject/kArray: starts it (false: it is skipped)
};

// The self node's fields, shared by tailcfg.Node (SelfChange) and ipnstate.PeerStatus
// (InitialStatus.Self) under their own keys.
constexpr auto kSelfNodeId = +[](Built& b, int64_t v) { b.self->node_id = v; };
constexpr auto kSelfUser = +[](Built& b, int64_t v) { b.self->user_id = v; };
constexpr auto kSelfStableId = +[](Built& b) { return &b.self->stable_id; };
constexpr auto kSelfName = +[](Built& b) { return &b.self->name; };
constexpr auto kSelfKeyExpiry = +[](Built& b) { return &b.self->key_expiry; };
constexpr auto kSelfKeyExpiryDone = +[](Built& b) {
  if (b.self->key_expiry == kZeroTime) b.self->key_expiry.clear();
};
constexpr auto kSelfHostName = +[](Built& b) { return &b.self->host_name; };
constexpr auto kSelfAddresses = +[](Built& b) { return &b.self->addresses; };
constexpr auto kSelfTags = +[](Built& b) { return &b.self->tags; };
constexpr auto kSelfOnline = +[](Built& b, bool v) { b.self->online = v; };
constexpr auto kPeerId = +[](Built& b, int64_t v) { b.peer_id = v; };
constexpr auto kPeerOnline = +[](Built& b, bool v) { b.peer_online = v; };
constexpr auto kStartPeer = +[](Built& b) { return b.startPeer(); };

// Everything the parser reads (docs/PROTOCOL.md#notify-fields-the-agent-reads), grouped by `in`.
// A row's index is its bit in the per-object set of keys read (the duplicate-key rule).
constexpr Row kRows[] = {
    // ipn.Notify. Version and SessionID set no kind: a line with nothing else is blank.
    {.in = Obj::kNotify,
     .key = "Version",
     .read = Read::kString,
     .str = [](Built& b) { return &b.n.version; }},
    {.in = Obj::kNotify, .key = "SessionID", .read = Read::kNothing},
    {.in = Obj::kNotify,
     .key = "ErrMessage",
     .read = Read::kString,
     .kind = kKindErrMessage,
     .str = [](Built& b) { return &b.n.err_message.emplace(); }},
    {.in = Obj::kNotify,
     .key = "LoginFinished",
     .read = Read::kNothing,
     .kind = kKindLoginFinished},
    // ipn.State is an int: encoding/json refuses anything else, and 0-6 are the states.
    {.in = Obj::kNotify,
     .key = "State",
     .read = Read::kInt,
     .kind = kKindState,
     .int_max = 6,
     .set_int =
         [](Built& b, int64_t v) {
           b.n.state = backendStateFromInt(v);
           b.n.state_raw = v;
         }},
    {.in = Obj::kNotify, .key = "Prefs", .read = Read::kNothing, .kind = kKindPrefs},
    {.in = Obj::kNotify,
     .key = "SelfChange",
     .read = Read::kObject,
     .child = Obj::kNode,
     .kind = kKindSelfChange,
     .open =
         [](Built& b) {
           b.self = &b.n.self_change.emplace();
           return true;
         }},
    {.in = Obj::kNotify,
     .key = "InitialStatus",
     .read = Read::kObject,
     .child = Obj::kStatus,
     .kind = kKindInitialStatus,
     .open =
         [](Built& b) {
           b.n.initial_status.emplace();
           if (b.track_peers) b.peerEvent().onInitialStatusBegin();
           return true;
         }},
    {.in = Obj::kNotify, .key = "NetMap", .read = Read::kNothing, .kind = kKindNetMap},
    {.in = Obj::kNotify,
     .key = "PeerChangedPatch",
     .read = Read::kArray,
     .child = Obj::kPatches,
     .kind = kKindPeerPatch,
     .open = [](Built& b) { return b.track_peers; }},
    // A PeersChanged after a SelfChange in one line is the full netmap: the complete peer set.
    {.in = Obj::kNotify,
     .key = "PeersChanged",
     .read = Read::kArray,
     .child = Obj::kChanged,
     .kind = kKindPeersChanged,
     .open =
         [](Built& b) {
           if (!b.track_peers) return false;
           if (b.n.self_change) b.peerEvent().onPeerSetBegin();
           return true;
         }},
    {.in = Obj::kNotify,
     .key = "PeersRemoved",
     .read = Read::kArray,
     .child = Obj::kRemoved,
     .kind = kKindPeersRemoved,
     .open = [](Built& b) { return b.track_peers; }},
    {.in = Obj::kNotify, .key = "UserProfiles", .read = Read::kNothing, .kind = kKindUserProfiles},
    {.in = Obj::kNotify, .key = "Engine", .read = Read::kNothing, .kind = kKindEngine},
    {.in = Obj::kNotify, .key = "BrowseToURL", .read = Read::kNothing, .kind = kKindBrowseToURL},
    {.in = Obj::kNotify, .key = "Health", .read = Read::kNothing, .kind = kKindHealth},

    // SelfChange: tailcfg.Node.
    {.in = Obj::kNode, .key = "ID", .read = Read::kInt, .set_int = kSelfNodeId},
    {.in = Obj::kNode, .key = "StableID", .read = Read::kString, .str = kSelfStableId},
    {.in = Obj::kNode, .key = "Name", .read = Read::kString, .str = kSelfName},
    {.in = Obj::kNode, .key = "User", .read = Read::kInt, .set_int = kSelfUser},
    {.in = Obj::kNode,
     .key = "KeyExpiry",
     .read = Read::kString,
     .str = kSelfKeyExpiry,
     .str_done = kSelfKeyExpiryDone},
    {.in = Obj::kNode, .key = "Addresses", .read = Read::kStrings, .strings = kSelfAddresses},
    {.in = Obj::kNode, .key = "Tags", .read = Read::kStrings, .strings = kSelfTags},
    {.in = Obj::kNode, .key = "Hostinfo", .read = Read::kObject, .child = Obj::kHostinfo},
    {.in = Obj::kNode, .key = "Online", .read = Read::kBool, .set_bool = kSelfOnline},
    {.in = Obj::kHostinfo, .key = "Hostname", .read = Read::kString, .str = kSelfHostName},

    // InitialStatus: ipnstate.Status.
    {.in = Obj::kStatus,
     .key = "BackendState",
     .read = Read::kString,
     .str = [](Built& b) { return &b.n.initial_status->backend_state_raw; },
     .str_done =
         [](Built& b) {
           InitialStatus& s = *b.n.initial_status;
           s.state = backendStateFromString(s.backend_state_raw);
         }},
    {.in = Obj::kStatus,
     .key = "Self",
     .read = Read::kObject,
     .child = Obj::kSelfStatus,
     .open =
         [](Built& b) {
           b.self = &b.n.initial_status->self.emplace();
           return true;
         }},
    {.in = Obj::kStatus,
     .key = "MagicDNSSuffix",
     .read = Read::kString,
     .str = [](Built& b) { return &b.status_suffix; }},
    {.in = Obj::kStatus, .key = "CurrentTailnet", .read = Read::kObject, .child = Obj::kTailnet},
    {.in = Obj::kStatus, .key = "Peer", .read = Read::kObject, .child = Obj::kPeerMap},

    // InitialStatus.Self: ipnstate.PeerStatus.
    {.in = Obj::kSelfStatus,
     .key = "ID",
     .read = Read::kString,
     .name = "StableID",
     .str = kSelfStableId},
    {.in = Obj::kSelfStatus, .key = "NodeID", .read = Read::kInt, .set_int = kSelfNodeId},
    {.in = Obj::kSelfStatus, .key = "DNSName", .read = Read::kString, .str = kSelfName},
    {.in = Obj::kSelfStatus,
     .key = "TailscaleIPs",
     .read = Read::kStrings,
     .strings = kSelfAddresses},
    {.in = Obj::kSelfStatus,
     .key = "KeyExpiry",
     .read = Read::kString,
     .str = kSelfKeyExpiry,
     .str_done = kSelfKeyExpiryDone},
    {.in = Obj::kSelfStatus, .key = "Tags", .read = Read::kStrings, .strings = kSelfTags},
    {.in = Obj::kSelfStatus, .key = "HostName", .read = Read::kString, .str = kSelfHostName},
    {.in = Obj::kSelfStatus, .key = "Online", .read = Read::kBool, .set_bool = kSelfOnline},
    {.in = Obj::kSelfStatus, .key = "UserID", .read = Read::kInt, .set_int = kSelfUser},
    {.in = Obj::kSelfStatus,
     .key = "InNetworkMap",
     .read = Read::kBool,
     .set_bool = [](Built& b, bool v) { b.self->in_network_map = v; }},

    // InitialStatus.CurrentTailnet (its MagicDNSSuffix, when non-empty, wins over Status's).
    {.in = Obj::kTailnet,
     .key = "Name",
     .read = Read::kString,
     .name = "CurrentTailnet.Name",
     .str = [](Built& b) { return &b.n.initial_status->tailnet_name; }},
    {.in = Obj::kTailnet,
     .key = "MagicDNSSuffix",
     .read = Read::kString,
     .str =
         [](Built& b) {
           b.tailnet_suffix_seen = true;
           return &b.tailnet_suffix;
         }},

    // Peers: counted in InitialStatus.Peer, streamed to the handler with peer tracking.
    {.in = Obj::kPeerMap,
     .key = kItem,
     .read = Read::kObject,
     .child = Obj::kPeer,
     .open = kStartPeer},
    {.in = Obj::kPeer, .key = "NodeID", .read = Read::kInt, .set_int = kPeerId},
    {.in = Obj::kPeer, .key = "Online", .read = Read::kBool, .set_bool = kPeerOnline},
    {.in = Obj::kChanged,
     .key = kItem,
     .read = Read::kObject,
     .child = Obj::kChangedNode,
     .open = kStartPeer},
    {.in = Obj::kChangedNode, .key = "ID", .read = Read::kInt, .set_int = kPeerId},
    {.in = Obj::kChangedNode, .key = "Online", .read = Read::kBool, .set_bool = kPeerOnline},
    {.in = Obj::kRemoved,
     .key = kItem,
     .read = Read::kInt,
     .set_int = [](Built& b, int64_t v) { b.peerEvent().onPeerRemoved(v); }},
    {.in = Obj::kPatches,
     .key = kItem,
     .read = Read::kObject,
     .child = Obj::kPatch,
     .open = kStartPeer},
    {.in = Obj::kPatch, .key = "NodeID", .read = Read::kInt, .set_int = kPeerId},
    {.in = Obj::kPatch, .key = "Online", .read = Read::kBool, .set_bool = kPeerOnline},
};
constexpr size_t kRowCount = std::size(kRows);
static_assert(kRowCount <= 64, "a row's index is its bit in Frame::seen");

// Any other key of the Notify: its non-null value marks the line kKindOther.
constexpr Row kOtherNotifyKey{
    .in = Obj::kNotify, .key = kItem, .read = Read::kNothing, .kind = kKindOther};
// An item of a kStrings array.
constexpr Row kStringsItem{.in = Obj::kStrings, .key = kItem, .read = Read::kListItem};

// What each object is.
struct ObjSpec {
  // A key of its rows may appear only once (the identity's path; peer objects follow
  // encoding/json's last-wins, and exist only with peer tracking).
  bool unique_keys = false;
  void (*close)(Built&) = nullptr;  // when the object or array ends
};

constexpr auto kEndSelf = +[](Built& b) { b.self = nullptr; };

constexpr std::array<ObjSpec, kObjCount> kObjs = [] {
  std::array<ObjSpec, kObjCount> o{};
  for (Obj u :
       {Obj::kNotify, Obj::kNode, Obj::kHostinfo, Obj::kStatus, Obj::kSelfStatus, Obj::kTailnet}) {
    o[static_cast<size_t>(u)].unique_keys = true;
  }
  o[static_cast<size_t>(Obj::kNode)].close = kEndSelf;
  o[static_cast<size_t>(Obj::kSelfStatus)].close = kEndSelf;
  o[static_cast<size_t>(Obj::kStatus)].close = [](Built& b) {
    InitialStatus& s = *b.n.initial_status;
    s.magic_dns_suffix =
        b.tailnet_suffix_seen && !b.tailnet_suffix.empty() ? b.tailnet_suffix : b.status_suffix;
  };
  o[static_cast<size_t>(Obj::kPeer)].close = [](Built& b) {
    InitialStatus& s = *b.n.initial_status;
    ++s.peers_total;
    const bool online = b.peer_online.value_or(false);
    if (online) ++s.peers_online;
    if (!b.peer_id) s.peers_have_node_id = false;
    if (b.track_peers) b.peerEvent().onInitialPeer(b.peer_id, online);
  };
  o[static_cast<size_t>(Obj::kChangedNode)].close = [](Built& b) {
    if (b.peer_id) b.peerEvent().onPeerUpsert(*b.peer_id, b.peer_online);
  };
  o[static_cast<size_t>(Obj::kPatch)].close = [](Built& b) {
    if (b.peer_id) b.peerEvent().onPeerPatch(*b.peer_id, b.peer_online);
  };
  return o;
}();

// Each object's item row, if any: every member of that map, or item of that array, is read with
// it.
constexpr std::array<const Row*, kObjCount> kItemRow = [] {
  std::array<const Row*, kObjCount> item{};
  for (const Row& row : kRows) {
    if (row.key.empty()) item[static_cast<size_t>(row.in)] = &row;
  }
  item[static_cast<size_t>(Obj::kStrings)] = &kStringsItem;
  return item;
}();

// A key as two machine words, its first and last 8 bytes (4 for a shorter key, the bytes
// themselves under 4): two keys of at most 16 bytes are equal when these and their lengths are.
// Finding a key costs a few compares per row, no memcmp call.
struct KeyWords {
  uint64_t head = 0;
  uint64_t tail = 0;
  size_t len = 0;
  bool operator==(const KeyWords&) const = default;
};

constexpr uint64_t littleEndian(std::string_view s, size_t at, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t{static_cast<uint8_t>(s[at + i])} << (8 * i);
  return v;
}

constexpr KeyWords keyWords(std::string_view k) {
  const size_t n = k.size();
  if (n >= 8) return {littleEndian(k, 0, 8), littleEndian(k, n - 8, 8), n};
  if (n >= 4) return {littleEndian(k, 0, 4), littleEndian(k, n - 4, 4), n};
  return {littleEndian(k, 0, n), 0, n};
}

// keyWords at run time: plain loads on a little-endian machine.
KeyWords keyWordsOf(std::string_view k) {
  if constexpr (std::endian::native != std::endian::little) return keyWords(k);
  const size_t n = k.size();
  if (n >= 8) {
    KeyWords w{0, 0, n};
    std::memcpy(&w.head, k.data(), 8);
    std::memcpy(&w.tail, k.data() + n - 8, 8);
    return w;
  }
  if (n >= 4) {
    uint32_t head;
    uint32_t tail;
    std::memcpy(&head, k.data(), 4);
    std::memcpy(&tail, k.data() + n - 4, 4);
    return {head, tail, n};
  }
  return keyWords(k);
}

constexpr std::array<KeyWords, kRowCount> kRowKeys = [] {
  std::array<KeyWords, kRowCount> w{};
  for (size_t i = 0; i < kRowCount; ++i) {
    if (kRows[i].key.size() > kMaxRowKey) throw "a key of kRows is over kMaxRowKey bytes";
    w[i] = keyWords(kRows[i].key);
  }
  return w;
}();

// The keyed rows of each object by key length: kByLength[obj][len] is the range of kRowOrder
// holding the indexes of obj's rows whose key has len bytes (usually one or two).
struct Span {
  uint8_t begin = 0;
  uint8_t end = 0;
};
constexpr size_t kKeyedRows = [] {
  size_t n = 0;
  for (const Row& row : kRows) n += row.key.empty() ? 0 : 1;
  return n;
}();
constexpr std::array<uint8_t, kKeyedRows> kRowOrder = [] {
  std::array<uint8_t, kKeyedRows> order{};
  size_t k = 0;
  for (size_t o = 0; o < kObjCount; ++o) {
    for (size_t len = 1; len <= kMaxRowKey; ++len) {
      for (size_t i = 0; i < kRowCount; ++i) {
        if (static_cast<size_t>(kRows[i].in) == o && kRows[i].key.size() == len) {
          order[k++] = static_cast<uint8_t>(i);
        }
      }
    }
  }
  return order;
}();
constexpr std::array<std::array<Span, kMaxRowKey + 1>, kObjCount> kByLength = [] {
  std::array<std::array<Span, kMaxRowKey + 1>, kObjCount> spans{};
  for (size_t k = 0; k < kKeyedRows; ++k) {
    const Row& row = kRows[kRowOrder[k]];
    Span& span = spans[static_cast<size_t>(row.in)][row.key.size()];
    if (span.end == 0) span.begin = static_cast<uint8_t>(k);
    span.end = static_cast<uint8_t>(k + 1);
  }
  return spans;
}();

const Row* findRow(Obj in, std::string_view key) {
  if (key.size() <= kMaxRowKey) {
    const Span span = kByLength[static_cast<size_t>(in)][key.size()];
    if (span.begin != span.end) {
      const KeyWords w = keyWordsOf(key);
      for (size_t k = span.begin; k < span.end; ++k) {
        if (kRowKeys[kRowOrder[k]] == w) return &kRows[kRowOrder[k]];
      }
    }
  }
  return in == Obj::kNotify ? &kOtherNotifyKey : nullptr;
}

std::string_view nameOf(const Row& r) {
  return r.name.empty() ? r.key : r.name;
}

size_t selfNodeHeap(const SelfNode& s) {
  size_t bytes =
      s.stable_id.capacity() + s.name.capacity() + s.key_expiry.capacity() + s.host_name.capacity();
  bytes += s.addresses.capacity() * sizeof(std::string) + s.tags.capacity() * sizeof(std::string);
  for (const auto& a : s.addresses) bytes += a.capacity();
  for (const auto& t : s.tags) bytes += t.capacity();
  return bytes;
}

// The sink of the tokenizer: reads kRows' values into a Notify and yields it per line.
class NotifyReader {
 public:
  NotifyReader(NotifyHandler& h, ParserOptions o)
      : stream(*this, {.max_line_bytes = o.max_line_bytes,
                       .max_depth = kMaxDepth,
                       .max_key_bytes = kMaxRowKey}),
        b_{.handler = &h, .track_peers = o.track_peers} {
    resetLine();
  }

  json::JsonLineStream<NotifyReader> stream;

  bool reset() {
    const bool partial = stream.reset();
    if (partial && b_.peer_callbacks_fired) b_.handler->onLineAborted();
    noteHighWater();
    resetLine();
    return partial;
  }

  size_t highWater() const { return std::max(high_water_, heapBytes()); }

  // ---- the tokenizer's events ---------------------------------------------------------------

  json::Action onKey(std::string_view key) {
    Frame& f = frames_[depth_ - 1];
    const Row* row = f.is_map ? kItemRow[static_cast<size_t>(f.obj)] : findRow(f.obj, key);
    if (!row) return json::Action::kSkip;
    if (f.unique_keys && row != &kOtherNotifyKey) {
      const uint64_t bit = uint64_t{1} << (row - kRows);
      if ((f.seen & bit) != 0) {
        char what[128];
        std::snprintf(what, sizeof what, "a second \"%.*s\" key in one object",
                      static_cast<int>(row->key.size()), row->key.data());
        stream.fail(what);
        return json::Action::kSkip;
      }
      f.seen |= bit;
    }
    if (row->read == Read::kNothing && row->kind == 0) return json::Action::kSkip;
    key_row_ = row;
    return json::Action::kRead;
  }

  json::Action onBeginObject() {
    if (depth_ == 0) {
      push(Obj::kNotify, false);
      return json::Action::kRead;
    }
    const Row& r = valueRow();
    if (!startNonNumber(r) || r.read != Read::kObject || (r.open && !r.open(b_))) {
      return json::Action::kSkip;
    }
    push(r.child, false);
    return json::Action::kRead;
  }

  json::Action onBeginArray() {
    const Row& r = valueRow();
    if (!startNonNumber(r)) return json::Action::kSkip;
    if (r.read == Read::kStrings) {
      list_ = r.strings(b_);
      list_->clear();
      list_row_ = &r;
      push(Obj::kStrings, true);
      return json::Action::kRead;
    }
    if (r.read != Read::kArray || (r.open && !r.open(b_))) return json::Action::kSkip;
    push(r.child, true);
    return json::Action::kRead;
  }

  void onEndObject() { pop(); }
  void onEndArray() { pop(); }

  json::StringSlot onString() {
    const Row& r = valueRow();
    if (r.read == Read::kListItem) {
      if (list_->size() == kMaxKeptItems) {
        const std::string_view name = nameOf(*list_row_);
        char what[128];
        std::snprintf(what, sizeof what, "%.*s with more than %zu items",
                      static_cast<int>(name.size()), name.data(), kMaxKeptItems);
        stream.fail(what);
        return {};
      }
      str_row_ = nullptr;
      return {&list_->emplace_back(), kMaxKeptString, nameOf(*list_row_)};
    }
    if (!startNonNumber(r) || r.read != Read::kString) return {};
    str_row_ = &r;
    return {r.str(b_), kMaxKeptString, nameOf(r)};
  }

  void onStringEnd() {
    if (str_row_ && str_row_->str_done) str_row_->str_done(b_);
  }

  void onNumber(const json::Number& num) {
    const Row& r = valueRow();
    b_.n.kinds |= r.kind;
    if (r.int_max >= 0 &&
        (!num.integer || num.overflow || num.magnitude > static_cast<uint64_t>(r.int_max) ||
         (num.negative && num.magnitude != 0))) {
      failNotInt(r);
      return;
    }
    if (r.read != Read::kInt) return;
    if (const auto v = num.asInt64()) r.set_int(b_, *v);
  }

  void onLiteral(json::Literal lit) {
    const Row& r = valueRow();
    if (lit == json::Literal::kNull) {
      if (r.read == Read::kStrings) r.strings(b_)->clear();
      return;
    }
    if (!startNonNumber(r)) return;
    if (r.read == Read::kBool) r.set_bool(b_, lit == json::Literal::kTrue);
  }

  void onLineEnd(const json::LineEnd& e) {
    noteHighWater();
    switch (e.kind) {
      case json::LineEnd::kBlank:
        break;
      case json::LineEnd::kComplete:
        b_.n.bytes = e.bytes;
        if (b_.n.kinds == 0) b_.n.kinds = kKindBlank;
        b_.handler->onNotify(b_.n);
        break;
      case json::LineEnd::kOversized:
        b_.handler->onOversized(e.bytes);
        if (b_.peer_callbacks_fired) b_.handler->onLineAborted();
        break;
      case json::LineEnd::kMalformed:
        b_.handler->onMalformed(e.reason, e.bytes);
        if (b_.peer_callbacks_fired) b_.handler->onLineAborted();
        break;
    }
    resetLine();
  }

 private:
  // An object or array being read (16 bytes: 64 of them are most of the parser's heap).
  struct Frame {
    uint64_t seen;  // bits (row indexes) of the keys read so far (unique_keys)
    Obj obj;
    bool is_array;     // its items are read with kItemRow[obj]
    bool is_map;       // an object whose every member is read with kItemRow[obj]
    bool unique_keys;  // kObjs[obj].unique_keys
  };
  static_assert(sizeof(Frame) == 16);

  Built b_;
  Frame frames_[kMaxDepth] = {};
  int depth_ = 0;
  const Row* key_row_ = nullptr;  // the row of the value after the current key
  const Row* str_row_ = nullptr;  // the row of the string being decoded
  std::vector<std::string>* list_ = nullptr;
  const Row* list_row_ = nullptr;
  size_t high_water_ = 0;

  void push(Obj o, bool is_array) {
    const auto i = static_cast<size_t>(o);
    frames_[depth_++] = {0, o, is_array, !is_array && kItemRow[i] != nullptr, kObjs[i].unique_keys};
  }
  void pop() {
    const Obj o = frames_[--depth_].obj;
    if (const auto close = kObjs[static_cast<size_t>(o)].close) close(b_);
  }

  // The row of the value starting now: the current key's, or the current array's item row.
  const Row& valueRow() const {
    const Frame& f = frames_[depth_ - 1];
    return f.is_array ? *kItemRow[static_cast<size_t>(f.obj)] : *key_row_;
  }

  // A non-null value of row r that is not a number starts: marks the Notify's kind. False when
  // the line is refused (the row's value must be an integer).
  bool startNonNumber(const Row& r) {
    b_.n.kinds |= r.kind;
    if (r.int_max >= 0) {
      failNotInt(r);
      return false;
    }
    return true;
  }

  void failNotInt(const Row& r) {
    const std::string_view name = nameOf(r);
    char what[128];
    std::snprintf(what, sizeof what, "%.*s is not an integer 0-%d", static_cast<int>(name.size()),
                  name.data(), r.int_max);
    stream.fail(what);
  }

  void resetLine() {
    depth_ = 0;
    b_.self = nullptr;
    b_.peer_callbacks_fired = false;
    Notify& n = b_.n;
    n.kinds = 0;
    n.version.clear();
    n.state.reset();
    n.state_raw.reset();
    n.err_message.reset();
    n.self_change.reset();
    n.initial_status.reset();
    n.bytes = 0;
    b_.status_suffix.clear();
    b_.tailnet_suffix.clear();
    b_.tailnet_suffix_seen = false;
  }

  size_t heapBytes() const {
    const Notify& n = b_.n;
    size_t bytes = sizeof(*this) + stream.heapBytes() + b_.status_suffix.capacity() +
                   b_.tailnet_suffix.capacity() + n.version.capacity();
    if (n.err_message) bytes += n.err_message->capacity();
    if (n.self_change) bytes += selfNodeHeap(*n.self_change);
    if (n.initial_status) {
      const InitialStatus& s = *n.initial_status;
      bytes += s.backend_state_raw.capacity() + s.tailnet_name.capacity() +
               s.magic_dns_suffix.capacity();
      if (s.self) bytes += selfNodeHeap(*s.self);
    }
    return bytes;
  }
  void noteHighWater() { high_water_ = std::max(high_water_, heapBytes()); }
};

}  // namespace

struct NotifyParser::Impl : NotifyReader {
  using NotifyReader::NotifyReader;
};

NotifyParser::NotifyParser(NotifyHandler& handler, ParserOptions opts)
    : impl_(std::make_unique<Impl>(handler, opts)) {}

NotifyParser::~NotifyParser() = default;

void NotifyParser::feed(std::string_view bytes) {
  impl_->stream.feed(bytes);
}

bool NotifyParser::reset() {
  return impl_->reset();
}

size_t NotifyParser::highWaterBytes() const {
  return impl_->highWater();
}

}  // namespace tsk::watcher

namespace tsk::watcher {
namespace {
class StatusCapture final : public NotifyHandler {
 public:
  void onNotify(const Notify& n) override {
    if (n.initial_status) status = n.initial_status;
  }
  void onMalformed(std::string_view reason, size_t) override { error = std::string(reason); }
  void onOversized(size_t) override { oversized = true; }
  std::optional<InitialStatus> status;
  std::string error;
  bool oversized = false;
};

constexpr std::string_view kStatusWrapper = "{\"InitialStatus\":";
constexpr size_t kNone = std::string_view::npos;

bool isBodyWs(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string describeByte(char ch) {
  const auto c = static_cast<unsigned char>(ch);
  char out[16];
  if (c >= 0x20 && c < 0x7f) {
    std::snprintf(out, sizeof out, "'%c'", c);
  } else {
    std::snprintf(out, sizeof out, "byte 0x%02x", c);
  }
  return out;
}

// Where a Status body's top-level value starts and ends, found by following only strings and
// brackets. The parser sees the body wrapped as {"InitialStatus":<body>} with its newlines turned
// into spaces; the outline catches what that would hide: a second member after the value
// (`1,"InitialStatus":{...}`), anything after the object, and a raw newline inside a string. Past
// the body's first syntax error the outline may be wrong, but the parser reports that error first.
struct StatusOutline {
  size_t start = kNone;        // the first byte that is not whitespace
  size_t end = kNone;          // one past the '}' that closes the top-level object
  size_t trailing = kNone;     // the first byte after `end` that is not whitespace
  size_t raw_newline = kNone;  // a '\n' inside a string (the outline stops there)
  bool ends_in_string = false;
};

StatusOutline outlineStatus(std::string_view body) {
  StatusOutline o;
  size_t depth = 0;
  bool in_string = false;
  bool escaped = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (c == '\n') {
        o.raw_newline = i;
        break;
      }
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (isBodyWs(c)) continue;
    if (o.end != kNone) {
      o.trailing = i;
      break;
    }
    if (o.start == kNone) {
      o.start = i;
      if (c != '{') break;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if ((c == '}' || c == ']') && depth > 0 && --depth == 0) {
      o.end = i + 1;
    }
  }
  o.ends_in_string = in_string;
  return o;
}
}  // namespace

std::optional<InitialStatus> parseStatusJson(std::string_view body, std::string* error) {
  const auto fail = [&](const std::string& what) -> std::optional<InitialStatus> {
    if (error) *error = what;
    return std::nullopt;
  };
  const std::string invalid = "status body is not valid JSON: ";
  const StatusOutline o = outlineStatus(body);
  if (o.start == kNone) return fail("status body is empty: expected a JSON object");
  if (body[o.start] != '{') {
    return fail("status body is not a JSON object: " + describeByte(body[o.start]) + " at byte " +
                std::to_string(o.start) + ", expected '{'");
  }

  StatusCapture capture;
  NotifyParser parser(capture);
  parser.impl_->stream.setErrorOrigin(kStatusWrapper.size(), "body");
  parser.feed(kStatusWrapper);
  // Up to the first error the outline found (the parser may find an earlier one), or the end of
  // the object. Newlines before that point are between tokens: whitespace, not line ends.
  const size_t stop = std::min({o.raw_newline, o.end, body.size()});
  std::string piece;
  constexpr size_t kPiece = 64 * 1024;
  for (size_t off = 0; off < stop; off += kPiece) {
    piece.assign(body.substr(off, std::min(kPiece, stop - off)));
    std::replace(piece.begin(), piece.end(), '\n', ' ');
    parser.feed(piece);
    if (parser.impl_->stream.failure()) break;
  }
  if (const auto why = parser.impl_->stream.failure()) return fail(invalid + std::string(*why));
  if (stop == o.raw_newline) {
    return fail(invalid + "a raw newline inside a string at byte " + std::to_string(stop) +
                " (a JSON string writes it as \\n)");
  }
  if (o.end == kNone) {
    return fail(
        invalid +
        (o.ends_in_string ? "it ends inside a string" : "it ends before the object is closed") +
        " (" + std::to_string(body.size()) + " bytes)");
  }
  if (o.trailing != kNone) {
    return fail(invalid + describeByte(body[o.trailing]) + " at byte " +
                std::to_string(o.trailing) + " after the object, which ends at byte " +
                std::to_string(o.end - 1) + ": the body must be one JSON object");
  }
  parser.feed("}\n");
  if (capture.status) return capture.status;
  if (capture.oversized) return fail("status body is too large: over the parser's 1 GiB limit");
  return fail(capture.error.empty() ? "status body is not a JSON object" : invalid + capture.error);
}

}  // namespace tsk::watcher
