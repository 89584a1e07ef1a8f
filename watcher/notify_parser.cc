// NotifyParser implementation: a resumable, validating JSON state machine specialised for
// ipn.Notify. How it stays fast and small:
//  - The input is cut into lines with memchr; each line segment is parsed in place. Nothing of a
//    line is buffered: a token split across feed() calls is carried in a few scalar fields.
//  - Every container gets a context (what it is: the Notify, a SelfChange node, a PeerStatus, or
//    "skip"). Keys are matched only where a context has fields we keep; elsewhere they are
//    scanned, never copied. Strings are scanned 16 bytes at a time for '"', '\\' or a control
//    byte. Skipped subtrees are still fully validated, so a malformed line is always detected.
//  - Kept strings are bounded (kMaxKeptString) and kept arrays too (kMaxKeptItems), so the heap
//    the parser holds is a constant, whatever the line. A kept value over its bound makes the line
//    malformed rather than being cut: a cut identity would be published as if it were whole.
//  - The parser owns the shape of what it keeps: a key it reads may appear once per object
//    (encoding/json would let the last one win, but merge a second object into the first; a
//    line tailscaled's json.Marshal wrote never repeats a key, so a repeat is refused), and a
//    non-null State is an integer 0-6. Whether a self node is a publishable identity is
//    validateSelf's decision (watcher/self_validation.h), made by the reducer.
#include "watcher/notify_parser.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tsk::watcher {
namespace {

constexpr int kMaxDepth = 64;
constexpr size_t kMaxKeptString = 4096;
constexpr size_t kMaxKeptItems = 64;
constexpr size_t kMaxKey = 64;
constexpr std::string_view kZeroTime = "0001-01-01T00:00:00Z";

// What a container is.
enum Ctx : uint8_t {
  kCtxSkip,
  kCtxRoot,
  kCtxNode,        // SelfChange: tailcfg.Node
  kCtxHostinfo,    // SelfChange.Hostinfo
  kCtxStatus,      // InitialStatus: ipnstate.Status
  kCtxSelfStatus,  // InitialStatus.Self: ipnstate.PeerStatus
  kCtxTailnet,     // InitialStatus.CurrentTailnet
  kCtxPeerMap,     // InitialStatus.Peer: nodekey -> PeerStatus
  kCtxPeerEntry,   // one peer's PeerStatus
  kCtxChangedArray,
  kCtxChangedNode,
  kCtxRemovedArray,
  kCtxPatchArray,
  kCtxPatchEntry,
  kCtxAddrArray,  // self Addresses / TailscaleIPs
  kCtxTagArray,
};

// What a value is for.
enum Field : uint8_t {
  kFSkip,
  // Notify keys
  kFVersion,
  kFSessionID,
  kFErrMessage,
  kFLoginFinished,
  kFState,
  kFPrefs,
  kFSelfChange,
  kFInitialStatus,
  kFNetMap,
  kFPeerChangedPatch,
  kFPeersChanged,
  kFPeersRemoved,
  kFUserProfiles,
  kFEngine,
  kFBrowseToURL,
  kFHealth,
  kFRootOther,
  // self node fields (Node or PeerStatus)
  kFSelfNodeId,
  kFSelfStableId,
  kFSelfName,
  kFSelfUser,
  kFSelfKeyExpiry,
  kFSelfAddresses,
  kFSelfTags,
  kFSelfHostname,
  kFSelfOnline,
  kFSelfInNetworkMap,  // PeerStatus only
  kFHostinfo,
  // Status fields
  kFBackendState,
  kFStatusSelf,
  kFStatusMagicDNSSuffix,
  kFCurrentTailnet,
  kFPeerMap,
  kFTailnetName,
  kFTailnetMagicDNSSuffix,
  // peers
  kFPeerEntry,
  kFPeerNodeId,  // NodeID of a PeerStatus, ID of a Node, NodeID of a PeerChange
  kFPeerOnline,
  kFChangedNode,
  kFRemovedId,
  kFPatchEntry,
  // array items
  kFAddrItem,
  kFTagItem,
};

// NotifyKind bit set by a non-null value of each Notify key.
constexpr uint32_t rootKind(Field f) {
  switch (f) {
    case kFErrMessage:
      return kKindErrMessage;
    case kFLoginFinished:
      return kKindLoginFinished;
    case kFState:
      return kKindState;
    case kFPrefs:
      return kKindPrefs;
    case kFSelfChange:
      return kKindSelfChange;
    case kFInitialStatus:
      return kKindInitialStatus;
    case kFNetMap:
      return kKindNetMap;
    case kFPeerChangedPatch:
      return kKindPeerPatch;
    case kFPeersChanged:
      return kKindPeersChanged;
    case kFPeersRemoved:
      return kKindPeersRemoved;
    case kFUserProfiles:
      return kKindUserProfiles;
    case kFEngine:
      return kKindEngine;
    case kFBrowseToURL:
      return kKindBrowseToURL;
    case kFHealth:
      return kKindHealth;
    case kFRootOther:
      return kKindOther;
    default:
      return 0;
  }
}

struct KeyEntry {
  std::string_view name;
  Field field;
};

constexpr KeyEntry kRootKeys[] = {
    {"Version", kFVersion},
    {"SessionID", kFSessionID},
    {"ErrMessage", kFErrMessage},
    {"LoginFinished", kFLoginFinished},
    {"State", kFState},
    {"Prefs", kFPrefs},
    {"SelfChange", kFSelfChange},
    {"InitialStatus", kFInitialStatus},
    {"NetMap", kFNetMap},
    {"PeerChangedPatch", kFPeerChangedPatch},
    {"PeersChanged", kFPeersChanged},
    {"PeersRemoved", kFPeersRemoved},
    {"UserProfiles", kFUserProfiles},
    {"Engine", kFEngine},
    {"BrowseToURL", kFBrowseToURL},
    {"Health", kFHealth},
};
constexpr KeyEntry kNodeKeys[] = {
    {"ID", kFSelfNodeId}, {"StableID", kFSelfStableId},   {"Name", kFSelfName},
    {"User", kFSelfUser}, {"KeyExpiry", kFSelfKeyExpiry}, {"Addresses", kFSelfAddresses},
    {"Tags", kFSelfTags}, {"Hostinfo", kFHostinfo},       {"Online", kFSelfOnline},
};
constexpr KeyEntry kHostinfoKeys[] = {{"Hostname", kFSelfHostname}};
constexpr KeyEntry kStatusKeys[] = {
    {"BackendState", kFBackendState},
    {"Self", kFStatusSelf},
    {"MagicDNSSuffix", kFStatusMagicDNSSuffix},
    {"CurrentTailnet", kFCurrentTailnet},
    {"Peer", kFPeerMap},
};
constexpr KeyEntry kSelfStatusKeys[] = {
    {"ID", kFSelfStableId},         {"NodeID", kFSelfNodeId},
    {"DNSName", kFSelfName},        {"TailscaleIPs", kFSelfAddresses},
    {"KeyExpiry", kFSelfKeyExpiry}, {"Tags", kFSelfTags},
    {"HostName", kFSelfHostname},   {"Online", kFSelfOnline},
    {"UserID", kFSelfUser},         {"InNetworkMap", kFSelfInNetworkMap},
};
constexpr KeyEntry kTailnetKeys[] = {
    {"Name", kFTailnetName},
    {"MagicDNSSuffix", kFTailnetMagicDNSSuffix},
};
constexpr KeyEntry kPeerEntryKeys[] = {{"NodeID", kFPeerNodeId}, {"Online", kFPeerOnline}};
constexpr KeyEntry kChangedNodeKeys[] = {{"ID", kFPeerNodeId}, {"Online", kFPeerOnline}};

template <size_t N>
Field findKey(const KeyEntry (&table)[N], std::string_view key, Field unknown = kFSkip) {
  for (const KeyEntry& e : table) {
    if (e.name.size() == key.size() && std::memcmp(e.name.data(), key.data(), key.size()) == 0) {
      return e.field;
    }
  }
  return unknown;
}

Field lookupKey(Ctx ctx, std::string_view key) {
  switch (ctx) {
    case kCtxRoot:
      return findKey(kRootKeys, key, kFRootOther);
    case kCtxNode:
      return findKey(kNodeKeys, key);
    case kCtxHostinfo:
      return findKey(kHostinfoKeys, key);
    case kCtxStatus:
      return findKey(kStatusKeys, key);
    case kCtxSelfStatus:
      return findKey(kSelfStatusKeys, key);
    case kCtxTailnet:
      return findKey(kTailnetKeys, key);
    case kCtxPeerEntry:
      return findKey(kPeerEntryKeys, key);
    case kCtxChangedNode:
      return findKey(kChangedNodeKeys, key);
    case kCtxPatchEntry:
      return findKey(kPeerEntryKeys, key);
    default:
      return kFSkip;
  }
}

// Contexts whose keys are never looked at.
bool keysIgnored(Ctx ctx) {
  return ctx == kCtxSkip || ctx == kCtxPeerMap;
}

Field elementField(Ctx ctx) {
  switch (ctx) {
    case kCtxChangedArray:
      return kFChangedNode;
    case kCtxRemovedArray:
      return kFRemovedId;
    case kCtxPatchArray:
      return kFPatchEntry;
    case kCtxAddrArray:
      return kFAddrItem;
    case kCtxTagArray:
      return kFTagItem;
    default:
      return kFSkip;
  }
}

bool isWs(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}

// The first '"', '\\' or control byte (< 0x20) in [p, end), or end.
const char* findStringSpecial(const char* p, const char* end) {
#if defined(__SSE2__)
  const __m128i quote = _mm_set1_epi8('"');
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i ctl = _mm_set1_epi8(0x1f);
  while (end - p >= 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i hit =
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                     _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v));
    const int mask = _mm_movemask_epi8(hit);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  while (p < end) {
    const auto c = static_cast<unsigned char>(*p);
    if (c == '"' || c == '\\' || c < 0x20) return p;
    ++p;
  }
  return end;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void appendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

size_t utf8Length(uint32_t cp) {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

// The JSON name of a field the parser keeps, for error messages.
const char* fieldName(Field f) {
  switch (f) {
    case kFVersion:
      return "Version";
    case kFErrMessage:
      return "ErrMessage";
    case kFSelfStableId:
      return "StableID";
    case kFSelfName:
      return "Name";
    case kFSelfKeyExpiry:
      return "KeyExpiry";
    case kFSelfHostname:
      return "Hostname";
    case kFSelfAddresses:
    case kFAddrItem:
      return "Addresses";
    case kFSelfTags:
    case kFTagItem:
      return "Tags";
    case kFBackendState:
      return "BackendState";
    case kFStatusMagicDNSSuffix:
    case kFTailnetMagicDNSSuffix:
      return "MagicDNSSuffix";
    case kFTailnetName:
      return "CurrentTailnet.Name";
    case kFState:
      return "State";
    case kFSelfChange:
      return "SelfChange";
    case kFInitialStatus:
      return "InitialStatus";
    case kFStatusSelf:
      return "Self";
    default:
      return "a key the agent reads";
  }
}

// Contexts where a key the parser reads may appear only once (the identity's path; peer entries
// follow encoding/json's last-wins, and their contexts exist only with peer tracking).
bool uniqueKeys(Ctx ctx) {
  switch (ctx) {
    case kCtxRoot:
    case kCtxNode:
    case kCtxHostinfo:
    case kCtxStatus:
    case kCtxSelfStatus:
    case kCtxTailnet:
      return true;
    default:
      return false;
  }
}

size_t selfNodeHeap(const SelfNode& s) {
  size_t bytes =
      s.stable_id.capacity() + s.name.capacity() + s.key_expiry.capacity() + s.host_name.capacity();
  bytes += s.addresses.capacity() * sizeof(std::string) + s.tags.capacity() * sizeof(std::string);
  for (const auto& a : s.addresses) bytes += a.capacity();
  for (const auto& t : s.tags) bytes += t.capacity();
  return bytes;
}

}  // namespace

struct NotifyParser::Impl {
  // Where the machine is within a line.
  enum class St : uint8_t {
    LineStart,     // before the first non-blank byte
    KeyOrEnd,      // after '{'
    Key,           // after ',' in an object
    Colon,         // after a key
    Value,         // after ':' or ',' in an array
    ValueOrEnd,    // after '['
    Str,           // inside a string (key or value)
    Esc,           // after '\\' in a string
    Hex,           // inside \uXXXX
    LowBackslash,  // after a high surrogate: expect '\\'
    LowU,          // then 'u'
    Num,
    Lit,
    AfterValue,
    Trailer,  // after the top-level object
    Discard,  // malformed or oversized: drop bytes until '\n'
  };
  enum NumPart : uint8_t {
    kNumSign,
    kNumZero,
    kNumInt,
    kNumFracStart,
    kNumFrac,
    kNumExpStart,
    kNumExpSign,
    kNumExp
  };
  struct Level {
    Ctx ctx;
    bool is_array;
    uint64_t seen = 0;  // Field bits of the keys read so far (uniqueKeys contexts)
  };
  static_assert(kFTagItem < 64, "Level::seen holds one bit per Field");

  Impl(NotifyHandler& h, ParserOptions o) : handler(h), opts(o) {
    key_scratch.reserve(kMaxKey);
    resetLine();
  }

  NotifyHandler& handler;
  ParserOptions opts;

  // Line state.
  St st = St::LineStart;
  uint64_t line_bytes = 0;  // bytes of the current line before the current segment
  const char* seg_begin = nullptr;
  bool oversized = false;
  bool peer_callbacks_fired = false;
  char reason[192] = {};
  // Error offsets are counted from this byte of the line, and name what they count in.
  // parseStatusJson sets them to the end of its {"InitialStatus": wrapper and "body".
  uint64_t offset_origin = 0;
  const char* offset_unit = "line";

  // Nesting.
  Level stack[kMaxDepth] = {};
  int depth = 0;

  // The value or key being scanned.
  Field field = kFSkip;  // what the current value is for
  bool str_is_key = false;
  bool key_copy = false;  // the key is collected into key_scratch (split or escaped)
  std::string* str_target = nullptr;
  size_t str_cap = 0;
  std::string key_scratch;
  uint32_t esc_code = 0;
  uint32_t esc_high = 0;  // pending high surrogate, 0 if none
  uint8_t esc_digits = 0;
  NumPart num_part = kNumSign;
  bool num_neg = false;
  bool num_int = true;
  bool num_overflow = false;
  uint64_t num_value = 0;
  const char* lit = nullptr;
  uint8_t lit_len = 0;
  uint8_t lit_pos = 0;

  // What the line yields.
  Notify n;
  SelfNode* cur_self = nullptr;
  std::string status_suffix;
  std::string tailnet_suffix;
  bool tailnet_suffix_seen = false;
  std::optional<int64_t> peer_id;
  std::optional<bool> peer_online;

  size_t high_water = 0;

  // ---- line lifecycle ----------------------------------------------------------------------

  void resetLine() {
    st = St::LineStart;
    line_bytes = 0;
    oversized = false;
    peer_callbacks_fired = false;
    depth = 0;
    cur_self = nullptr;
    n.kinds = 0;
    n.version.clear();
    n.state.reset();
    n.state_raw.reset();
    n.err_message.reset();
    n.self_change.reset();
    n.initial_status.reset();
    n.bytes = 0;
    status_suffix.clear();
    tailnet_suffix.clear();
    tailnet_suffix_seen = false;
  }

  size_t heapBytes() const {
    size_t bytes = sizeof(Impl) + key_scratch.capacity() + status_suffix.capacity() +
                   tailnet_suffix.capacity() + n.version.capacity();
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

  void noteHighWater() { high_water = std::max(high_water, heapBytes()); }

  void fail(const char* p, const char* what) {
    std::snprintf(reason, sizeof reason, "%s at byte %llu of the %s", what, errorOffset(p),
                  offset_unit);
    st = St::Discard;
  }
  void failChar(const char* p, const char* expected) {
    const auto c = static_cast<unsigned char>(*p);
    if (c >= 0x20 && c < 0x7f) {
      std::snprintf(reason, sizeof reason, "unexpected '%c' at byte %llu of the %s: expected %s", c,
                    errorOffset(p), offset_unit, expected);
    } else {
      std::snprintf(reason, sizeof reason,
                    "unexpected byte 0x%02x at byte %llu of the %s: expected %s", c, errorOffset(p),
                    offset_unit, expected);
    }
    st = St::Discard;
  }
  unsigned long long errorOffset(const char* p) const {
    return line_bytes + static_cast<uint64_t>(p - seg_begin) - offset_origin;
  }
  // The reason the current line is malformed, once the parser has found it (before the line ends).
  std::optional<std::string_view> failure() const {
    if (st != St::Discard || oversized) return std::nullopt;
    return std::string_view(reason);
  }

  void feed(std::string_view bytes) {
    const char* p = bytes.data();
    const char* const end = p + bytes.size();
    while (p < end) {
      const auto* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
      const char* seg_end = nl ? nl : end;
      const uint64_t seg_len = static_cast<uint64_t>(seg_end - p);
      if (st != St::Discard) {
        if (line_bytes + seg_len > opts.max_line_bytes) {
          oversized = true;
          st = St::Discard;
        } else {
          seg_begin = p;
          parse(p, seg_end);
        }
      }
      line_bytes += seg_len;
      if (!nl) break;
      endLine();
      p = nl + 1;
    }
  }

  void endLine() {
    const size_t bytes = static_cast<size_t>(line_bytes + 1);
    noteHighWater();
    if (oversized) {
      handler.onOversized(bytes);
      if (peer_callbacks_fired) handler.onLineAborted();
    } else if (st == St::LineStart) {
      // blank line: ignored
    } else if (st == St::Trailer) {
      finishNotify(bytes);
    } else {
      if (st != St::Discard) {
        const bool in_string = st == St::Str || st == St::Esc || st == St::Hex ||
                               st == St::LowBackslash || st == St::LowU;
        std::snprintf(reason, sizeof reason, "%s (line of %zu bytes)",
                      in_string ? "the line ended inside a string"
                                : "the line ended before the JSON object was complete",
                      bytes);
      }
      handler.onMalformed(reason, bytes);
      if (peer_callbacks_fired) handler.onLineAborted();
    }
    resetLine();
  }

  bool reset() {
    const bool partial = st != St::LineStart || oversized;
    if (partial && peer_callbacks_fired) handler.onLineAborted();
    noteHighWater();
    resetLine();
    return partial;
  }

  void finishNotify(size_t bytes) {
    n.bytes = bytes;
    if (n.kinds == 0) n.kinds = kKindBlank;
    handler.onNotify(n);
  }

  // ---- the machine --------------------------------------------------------------------------

  void parse(const char* p, const char* end) {
    while (p < end) {
      switch (st) {
        case St::LineStart:
          p = onLineStart(p, end);
          break;
        case St::KeyOrEnd:
          p = onKeyOrEnd(p, end);
          break;
        case St::Key:
          p = onKey(p, end);
          break;
        case St::Colon:
          p = onColon(p, end);
          break;
        case St::Value:
          p = onValue(p, end, false);
          break;
        case St::ValueOrEnd:
          p = onValue(p, end, true);
          break;
        case St::Str:
          p = onStr(p, end);
          break;
        case St::Esc:
          p = onEsc(p);
          break;
        case St::Hex:
          p = onHex(p, end);
          break;
        case St::LowBackslash:
          if (*p != '\\') {
            fail(p, "a lone UTF-16 high surrogate in a \\u escape");
            return;
          }
          st = St::LowU;
          ++p;
          break;
        case St::LowU:
          if (*p != 'u') {
            fail(p, "a lone UTF-16 high surrogate in a \\u escape");
            return;
          }
          st = St::Hex;
          esc_code = 0;
          esc_digits = 0;
          ++p;
          break;
        case St::Num:
          p = onNum(p, end);
          break;
        case St::Lit:
          p = onLit(p, end);
          break;
        case St::AfterValue:
          p = onAfterValue(p, end);
          break;
        case St::Trailer:
          p = onTrailer(p, end);
          break;
        case St::Discard:
          return;
      }
    }
  }

  static const char* skipWs(const char* p, const char* end) {
    while (p < end && isWs(*p)) ++p;
    return p;
  }

  const char* onLineStart(const char* p, const char* end) {
    p = skipWs(p, end);
    if (p == end) return p;
    if (*p != '{') {
      failChar(p, "'{': every line of the bus must be one JSON object");
      return end;
    }
    stack[0] = {kCtxRoot, false};
    depth = 1;
    st = St::KeyOrEnd;
    return p + 1;
  }

  const char* onKeyOrEnd(const char* p, const char* end) {
    p = skipWs(p, end);
    if (p == end) return p;
    if (*p == '}') return closeContainer(p, false);
    return onKey(p, end);
  }

  const char* onKey(const char* p, const char* end) {
    p = skipWs(p, end);
    if (p == end) return p;
    if (*p != '"') {
      failChar(p, "a '\"' starting an object key");
      return end;
    }
    ++p;
    str_is_key = true;
    const Ctx ctx = stack[depth - 1].ctx;
    if (keysIgnored(ctx)) {
      field = ctx == kCtxPeerMap ? kFPeerEntry : kFSkip;
      key_copy = false;
      str_target = nullptr;
      st = St::Str;
      return p;
    }
    // Fast path: the whole key is in this segment and has no escapes.
    const char* q = findStringSpecial(p, end);
    if (q < end && *q == '"') {
      field = lookupKey(ctx, std::string_view(p, static_cast<size_t>(q - p)));
      if (!noteKey(p)) return end;
      st = St::Colon;
      return q + 1;
    }
    key_copy = true;
    key_scratch.clear();
    str_target = &key_scratch;
    str_cap = kMaxKey + 1;  // one more than any key we know: a longer key matches nothing
    st = St::Str;
    return p;
  }

  // The key just read is `field`: refuses a second occurrence of a key the parser reads.
  bool noteKey(const char* at) {
    Level& level = stack[depth - 1];
    if (field == kFSkip || field == kFRootOther || !uniqueKeys(level.ctx)) return true;
    const uint64_t bit = uint64_t{1} << field;
    if ((level.seen & bit) == 0) {
      level.seen |= bit;
      return true;
    }
    char what[96];
    std::snprintf(what, sizeof what, "a second \"%s\" key in one object", fieldName(field));
    fail(at, what);
    return false;
  }

  const char* onColon(const char* p, const char* end) {
    p = skipWs(p, end);
    if (p == end) return p;
    if (*p != ':') {
      failChar(p, "':' after an object key");
      return end;
    }
    st = St::Value;
    return p + 1;
  }

  const char* onValue(const char* p, const char* end, bool may_close) {
    p = skipWs(p, end);
    if (p == end) return p;
    const char c = *p;
    if (may_close && c == ']') return closeContainer(p, true);
    if (st == St::ValueOrEnd || stack[depth - 1].is_array) {
      field = elementField(stack[depth - 1].ctx);
    }
    if (depth == 1 && c != 'n') {
      n.kinds |= rootKind(field);
      // ipn.State is an int: encoding/json refuses anything else (finishNumber checks the range).
      if (field == kFState && c != '-' && (c < '0' || c > '9')) {
        fail(p, "State is not an integer 0-6 (ipn.State)");
        return end;
      }
    }
    switch (c) {
      case '"':
        if (!startValueString(p)) return end;
        st = St::Str;
        return p + 1;
      case '{':
        return openContainer(p, false);
      case '[':
        return openContainer(p, true);
      case 't':
        return startLit(p, end, "true", 4);
      case 'f':
        return startLit(p, end, "false", 5);
      case 'n':
        return startLit(p, end, "null", 4);
      case '-':
      case '0':
      case '1':
      case '2':
      case '3':
      case '4':
      case '5':
      case '6':
      case '7':
      case '8':
      case '9':
        num_part = kNumSign;
        num_neg = false;
        num_int = true;
        num_overflow = false;
        num_value = 0;
        st = St::Num;
        return p;
      default:
        failChar(p, "a JSON value");
        return end;
    }
  }

  const char* onAfterValue(const char* p, const char* end) {
    p = skipWs(p, end);
    if (p == end) return p;
    switch (*p) {
      case ',':
        st = stack[depth - 1].is_array ? St::Value : St::Key;
        return p + 1;
      case '}':
        return closeContainer(p, false);
      case ']':
        return closeContainer(p, true);
      default:
        failChar(p, stack[depth - 1].is_array ? "',' or ']'" : "',' or '}'");
        return end;
    }
  }

  const char* onTrailer(const char* p, const char* end) {
    p = skipWs(p, end);
    if (p == end) return p;
    failChar(p, "the end of the line after the JSON object");
    return end;
  }

  // ---- containers ---------------------------------------------------------------------------

  const char* openContainer(const char* p, bool is_array) {
    if (depth >= kMaxDepth) {
      fail(p, "JSON nested deeper than 64 levels");
      return p + 1;
    }
    stack[depth++] = {is_array ? openArray() : openObject(), is_array};
    st = is_array ? St::ValueOrEnd : St::KeyOrEnd;
    return p + 1;
  }

  Ctx openObject() {
    switch (field) {
      case kFSelfChange:
        cur_self = &n.self_change.emplace();
        return kCtxNode;
      case kFHostinfo:
        return cur_self ? kCtxHostinfo : kCtxSkip;
      case kFInitialStatus:
        n.initial_status.emplace();
        if (opts.track_peers) {
          peer_callbacks_fired = true;
          handler.onInitialStatusBegin();
        }
        return kCtxStatus;
      case kFStatusSelf:
        cur_self = &n.initial_status->self.emplace();
        return kCtxSelfStatus;
      case kFCurrentTailnet:
        return kCtxTailnet;
      case kFPeerMap:
        return kCtxPeerMap;
      case kFPeerEntry:
      case kFChangedNode:
      case kFPatchEntry:
        peer_id.reset();
        peer_online.reset();
        return field == kFPeerEntry ? kCtxPeerEntry
                                    : (field == kFChangedNode ? kCtxChangedNode : kCtxPatchEntry);
      default:
        return kCtxSkip;
    }
  }

  Ctx openArray() {
    switch (field) {
      case kFSelfAddresses:
        cur_self->addresses.clear();
        return kCtxAddrArray;
      case kFSelfTags:
        cur_self->tags.clear();
        return kCtxTagArray;
      case kFPeersChanged:
        if (!opts.track_peers) return kCtxSkip;
        if (n.self_change) {
          peer_callbacks_fired = true;
          handler.onPeerSetBegin();
        }
        return kCtxChangedArray;
      case kFPeersRemoved:
        return opts.track_peers ? kCtxRemovedArray : kCtxSkip;
      case kFPeerChangedPatch:
        return opts.track_peers ? kCtxPatchArray : kCtxSkip;
      default:
        return kCtxSkip;
    }
  }

  const char* closeContainer(const char* p, bool is_array) {
    if (stack[depth - 1].is_array != is_array) {
      failChar(p, is_array ? "'}' closing an object" : "']' closing an array");
      return p + 1;
    }
    const Ctx ctx = stack[--depth].ctx;
    switch (ctx) {
      case kCtxNode:
      case kCtxSelfStatus:
        cur_self = nullptr;
        break;
      case kCtxStatus:
        finishStatus();
        break;
      case kCtxPeerEntry:
        finishInitialPeer();
        break;
      case kCtxChangedNode:
        if (peer_id) {
          peer_callbacks_fired = true;
          handler.onPeerUpsert(*peer_id, peer_online);
        }
        break;
      case kCtxPatchEntry:
        if (peer_id) {
          peer_callbacks_fired = true;
          handler.onPeerPatch(*peer_id, peer_online);
        }
        break;
      default:
        break;
    }
    st = depth == 0 ? St::Trailer : St::AfterValue;
    return p + 1;
  }

  void finishStatus() {
    InitialStatus& s = *n.initial_status;
    s.magic_dns_suffix =
        tailnet_suffix_seen && !tailnet_suffix.empty() ? tailnet_suffix : status_suffix;
  }

  void finishInitialPeer() {
    InitialStatus& s = *n.initial_status;
    ++s.peers_total;
    const bool online = peer_online.value_or(false);
    if (online) ++s.peers_online;
    if (!peer_id) s.peers_have_node_id = false;
    if (opts.track_peers) {
      peer_callbacks_fired = true;
      handler.onInitialPeer(peer_id, online);
    }
  }

  // ---- strings ------------------------------------------------------------------------------

  // Returns false (the line is malformed) for a kept array's item over its bound.
  bool startValueString(const char* at) {
    str_is_key = false;
    str_target = nullptr;
    str_cap = kMaxKeptString;
    switch (field) {
      case kFVersion:
        str_target = &n.version;
        break;
      case kFErrMessage:
        str_target = &n.err_message.emplace();
        break;
      case kFSelfStableId:
        str_target = &cur_self->stable_id;
        break;
      case kFSelfName:
        str_target = &cur_self->name;
        break;
      case kFSelfKeyExpiry:
        str_target = &cur_self->key_expiry;
        break;
      case kFSelfHostname:
        str_target = &cur_self->host_name;
        break;
      case kFBackendState:
        str_target = &n.initial_status->backend_state_raw;
        break;
      case kFStatusMagicDNSSuffix:
        str_target = &status_suffix;
        break;
      case kFTailnetName:
        str_target = &n.initial_status->tailnet_name;
        break;
      case kFTailnetMagicDNSSuffix:
        tailnet_suffix_seen = true;
        str_target = &tailnet_suffix;
        break;
      case kFAddrItem:
      case kFTagItem: {
        auto& items = field == kFAddrItem ? cur_self->addresses : cur_self->tags;
        if (items.size() == kMaxKeptItems) {
          char what[96];
          std::snprintf(what, sizeof what, "%s with more than %zu items", fieldName(field),
                        kMaxKeptItems);
          fail(at, what);
          return false;
        }
        str_target = &items.emplace_back();
        break;
      }
      default:
        break;
    }
    if (str_target) str_target->clear();
    return true;
  }

  void failOverLong(const char* at) {
    char what[96];
    std::snprintf(what, sizeof what, "a %s value over %zu bytes", fieldName(field), kMaxKeptString);
    fail(at, what);
  }

  // Keys are cut silently (a cut key matches nothing); a kept value that does not fit makes the
  // line malformed. Returns false then.
  bool appendKept(const char* p, size_t len) {
    const size_t room = str_cap - std::min(str_cap, str_target->size());
    if (len > room && !str_is_key) {
      failOverLong(p + room);
      return false;
    }
    str_target->append(p, std::min(room, len));
    return true;
  }

  const char* onStr(const char* p, const char* end) {
    const char* q = findStringSpecial(p, end);
    if (str_target && q > p && !appendKept(p, static_cast<size_t>(q - p))) return end;
    if (q == end) return end;
    if (*q == '"') {
      finishString(q);
      return q + 1;
    }
    if (*q == '\\') {
      st = St::Esc;
      return q + 1;
    }
    fail(q, "a raw control character inside a string");
    return end;
  }

  bool appendDecoded(uint32_t cp, const char* at) {
    if (!str_target) return true;
    if (str_target->size() + utf8Length(cp) > str_cap) {
      if (str_is_key) return true;
      failOverLong(at);
      return false;
    }
    appendUtf8(*str_target, cp);
    return true;
  }

  const char* onEsc(const char* p) {
    char out;
    switch (*p) {
      case '"':
        out = '"';
        break;
      case '\\':
        out = '\\';
        break;
      case '/':
        out = '/';
        break;
      case 'b':
        out = '\b';
        break;
      case 'f':
        out = '\f';
        break;
      case 'n':
        out = '\n';
        break;
      case 'r':
        out = '\r';
        break;
      case 't':
        out = '\t';
        break;
      case 'u':
        st = St::Hex;
        esc_code = 0;
        esc_digits = 0;
        esc_high = 0;
        return p + 1;
      default:
        fail(p, "an invalid escape sequence in a string");
        return p + 1;
    }
    if (!appendDecoded(static_cast<unsigned char>(out), p)) return p + 1;
    st = St::Str;
    return p + 1;
  }

  const char* onHex(const char* p, const char* end) {
    while (p < end && esc_digits < 4) {
      const int v = hexValue(*p);
      if (v < 0) {
        fail(p, "an invalid \\u escape in a string");
        return end;
      }
      esc_code = esc_code << 4 | static_cast<uint32_t>(v);
      ++esc_digits;
      ++p;
    }
    if (esc_digits < 4) return p;
    if (esc_high != 0) {
      if (esc_code < 0xdc00 || esc_code > 0xdfff) {
        fail(p, "a lone UTF-16 high surrogate in a \\u escape");
        return end;
      }
      const uint32_t cp = 0x10000 + ((esc_high - 0xd800) << 10) + (esc_code - 0xdc00);
      esc_high = 0;
      if (!appendDecoded(cp, p)) return end;
      st = St::Str;
      return p;
    }
    if (esc_code >= 0xd800 && esc_code <= 0xdbff) {
      esc_high = esc_code;
      esc_code = 0;
      esc_digits = 0;
      st = St::LowBackslash;
      return p;
    }
    if (esc_code >= 0xdc00 && esc_code <= 0xdfff) {
      fail(p, "a lone UTF-16 low surrogate in a \\u escape");
      return end;
    }
    if (!appendDecoded(esc_code, p)) return end;
    st = St::Str;
    return p;
  }

  void finishString(const char* at) {
    if (str_is_key) {
      if (key_copy) {
        // A key longer than kMaxKey was cut at kMaxKey + 1 bytes: it matches no known key.
        field = lookupKey(stack[depth - 1].ctx, key_scratch);
      }
      key_copy = false;
      str_target = nullptr;
      if (!noteKey(at)) return;
      st = St::Colon;
      return;
    }
    switch (field) {
      case kFSelfKeyExpiry:
        if (cur_self->key_expiry == kZeroTime) cur_self->key_expiry.clear();
        break;
      case kFBackendState:
        n.initial_status->state = backendStateFromString(n.initial_status->backend_state_raw);
        break;
      default:
        break;
    }
    str_target = nullptr;
    st = St::AfterValue;
  }

  // ---- numbers and literals -----------------------------------------------------------------

  const char* onNum(const char* p, const char* end) {
    for (; p < end; ++p) {
      const char c = *p;
      const bool digit = c >= '0' && c <= '9';
      switch (num_part) {
        case kNumSign:
          if (c == '-' && !num_neg) {
            num_neg = true;
            continue;
          }
          if (!digit) return numError(p);
          num_part = c == '0' ? kNumZero : kNumInt;
          num_value = static_cast<uint64_t>(c - '0');
          continue;
        case kNumZero:
          if (c == '.') {
            num_part = kNumFracStart;
            num_int = false;
            continue;
          }
          if (c == 'e' || c == 'E') {
            num_part = kNumExpStart;
            num_int = false;
            continue;
          }
          if (digit) {
            failChar(p, "no digit after a leading 0 in a number");
            return p + 1;
          }
          return finishNumber(p);
        case kNumInt:
          if (digit) {
            const auto d = static_cast<uint64_t>(c - '0');
            if (num_value > (UINT64_MAX - d) / 10) num_overflow = true;
            num_value = num_value * 10 + d;
            continue;
          }
          if (c == '.') {
            num_part = kNumFracStart;
            num_int = false;
            continue;
          }
          if (c == 'e' || c == 'E') {
            num_part = kNumExpStart;
            num_int = false;
            continue;
          }
          return finishNumber(p);
        case kNumFracStart:
          if (!digit) return numError(p);
          num_part = kNumFrac;
          continue;
        case kNumFrac:
          if (digit) continue;
          if (c == 'e' || c == 'E') {
            num_part = kNumExpStart;
            continue;
          }
          return finishNumber(p);
        case kNumExpStart:
          if (c == '+' || c == '-') {
            num_part = kNumExpSign;
            continue;
          }
          if (!digit) return numError(p);
          num_part = kNumExp;
          continue;
        case kNumExpSign:
          if (!digit) return numError(p);
          num_part = kNumExp;
          continue;
        case kNumExp:
          if (digit) continue;
          return finishNumber(p);
      }
    }
    return p;
  }

  const char* numError(const char* p) {
    failChar(p, "a digit in a number");
    return p + 1;
  }

  // The number ended just before p (p is not consumed).
  const char* finishNumber(const char* p) {
    st = St::AfterValue;
    if (field == kFState && depth == 1 &&
        (!num_int || num_overflow || num_value > 6 || (num_neg && num_value != 0))) {
      fail(p, "State is not an integer 0-6 (ipn.State)");
      return p;
    }
    if (!num_int || num_overflow) return p;
    int64_t v;
    if (num_neg) {
      if (num_value > uint64_t{1} << 63) return p;
      v = static_cast<int64_t>(0 - num_value);
    } else {
      if (num_value > static_cast<uint64_t>(INT64_MAX)) return p;
      v = static_cast<int64_t>(num_value);
    }
    onInt(v);
    return p;
  }

  void onInt(int64_t v) {
    switch (field) {
      case kFState:
        n.state = backendStateFromInt(v);
        n.state_raw = v;
        break;
      case kFSelfNodeId:
        cur_self->node_id = v;
        break;
      case kFSelfUser:
        cur_self->user_id = v;
        break;
      case kFPeerNodeId:
        peer_id = v;
        break;
      case kFRemovedId:
        peer_callbacks_fired = true;
        handler.onPeerRemoved(v);
        break;
      default:
        break;
    }
  }

  const char* startLit(const char* p, const char* end, const char* word, uint8_t len) {
    if (end - p >= len) {
      if (std::memcmp(p, word, len) != 0) {
        fail(p, "an invalid literal (expected true, false or null)");
        return end;
      }
      onLiteral(word[0]);
      st = St::AfterValue;
      return p + len;
    }
    lit = word;
    lit_len = len;
    lit_pos = 0;
    st = St::Lit;
    return p;
  }

  const char* onLit(const char* p, const char* end) {
    while (p < end && lit_pos < lit_len) {
      if (*p != lit[lit_pos]) {
        fail(p, "an invalid literal (expected true, false or null)");
        return end;
      }
      ++lit_pos;
      ++p;
    }
    if (lit_pos == lit_len) {
      onLiteral(lit[0]);
      st = St::AfterValue;
    }
    return p;
  }

  void onLiteral(char first) {
    if (first == 'n') {
      switch (field) {
        case kFSelfAddresses:
          cur_self->addresses.clear();
          break;
        case kFSelfTags:
          cur_self->tags.clear();
          break;
        default:
          break;
      }
      return;
    }
    const bool b = first == 't';
    switch (field) {
      case kFSelfOnline:
        cur_self->online = b;
        break;
      case kFSelfInNetworkMap:
        cur_self->in_network_map = b;
        break;
      case kFPeerOnline:
        peer_online = b;
        break;
      default:
        break;
    }
  }
};

NotifyParser::NotifyParser(NotifyHandler& handler, ParserOptions opts)
    : impl_(std::make_unique<Impl>(handler, opts)) {}

NotifyParser::~NotifyParser() = default;

void NotifyParser::feed(std::string_view bytes) {
  impl_->feed(bytes);
}

bool NotifyParser::reset() {
  return impl_->reset();
}

size_t NotifyParser::highWaterBytes() const {
  return std::max(impl_->high_water, impl_->heapBytes());
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
  parser.impl_->offset_origin = kStatusWrapper.size();
  parser.impl_->offset_unit = "body";
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
    if (parser.impl_->failure()) break;
  }
  if (const auto why = parser.impl_->failure()) return fail(invalid + std::string(*why));
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
