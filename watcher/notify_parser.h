#pragma once
// NotifyParser: a push parser for the body of watch-ipn-bus (one ipn.Notify JSON object per
// '\n'-terminated line). Feed it bytes as they arrive, split anywhere; it yields one
// NotifyHandler::onNotify per line. Memory stays below a small constant however long a line is:
// no whole-line buffer and no DOM. Subtrees the agent does not need (Prefs, Engine, NetMap,
// Health, every PeerStatus field but NodeID/Online, ...) are skipped without being copied, but
// still validated: a malformed line is reported (onMalformed) and the next line parses normally.
// Besides JSON syntax, a line is malformed when it breaks the shape of what the parser keeps:
//   - a key the parser reads appears twice in one object (the Notify, SelfChange and its
//     Hostinfo, InitialStatus, its Self and CurrentTailnet), e.g. a second "SelfChange";
//   - a kept string (Version, ErrMessage, the self node's strings, BackendState, the tailnet
//     name and suffix) is over 4,096 bytes once decoded, or a kept array (the self node's
//     Addresses/TailscaleIPs and Tags) has over 64 strings: never cut, since a cut identity
//     would be published as if whole;
//   - a non-null State is not an integer 0-6 (ipn.State; -0 is 0, as Go's decoder reads it).
// Self nodes are yielded as sent (addresses with their prefix length): whether one is a
// publishable identity is validateSelf's decision (watcher/self_validation.h).
//
//   MyHandler h;
//   NotifyParser p(h, {.track_peers = false, .max_line_bytes = 1 << 30});
//   p.feed(chunk);           // any number of times, any split
//   p.reset();               // on reconnect: drop any partial line
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "watcher/events.h"

namespace tsk::watcher {

struct ParserOptions {
  bool track_peers = false;              // deliver PeersChanged/PeersRemoved/patches/initial peers
  uint64_t max_line_bytes = 1ull << 30;  // longer lines: onOversized, skipped without buffering
};

class NotifyParser {
 public:
  NotifyParser(NotifyHandler& handler, ParserOptions opts = {});
  ~NotifyParser();
  NotifyParser(const NotifyParser&) = delete;
  NotifyParser& operator=(const NotifyParser&) = delete;

  void feed(std::string_view bytes);
  // Drops a partial line (a truncated stream). Returns true if one was dropped.
  bool reset();
  // The most bytes of heap the parser held at once (its state, scratch strings, the Notify being
  // built): the figure the bounded-memory test checks. Independent of line length: kept strings
  // are at most 4 KiB and kept arrays (self addresses, tags) at most 64 items.
  size_t highWaterBytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tsk::watcher
