#pragma once
// PeerTracker: live peer counts (total, online) from the opt-in peer stream, O(1) per delta and
// about 16 bytes per peer. Peers are keyed by their integer NodeID in a flat open-addressing
// table holding one online bit per peer; nothing else about a peer is kept.
//
//   PeerTracker peers(log);
//   peers.beginInitialStatus();              // a new InitialStatus: forget everything
//   peers.addInitialPeer(node_id, online);   // per InitialStatus.Peer entry
//   peers.upsert(id, online);                // PeersChanged: new ID adds one, known ID replaces
//   peers.remove(id);                        // PeersRemoved: only known IDs are removed
//   peers.patch(id, online);                 // PeerChangedPatch: Online of a known peer
//   peers.total(); peers.online();
//
// A T-era daemon (spec §5.3) sends InitialStatus peers without NodeID. Such peers are counted
// as "anonymous": they are in total()/online() but cannot be matched by later deltas. The tracker
// then logs once what it cannot do and keeps the counts approximate but sane: a removal or patch
// of an unknown ID is charged to the anonymous peers (never below zero).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "common/log.h"

namespace tsk::watcher {

class PeerTracker {
 public:
  explicit PeerTracker(Logger& log);

  // Starts a fresh snapshot (every InitialStatus, and after a reconnect).
  void beginInitialStatus();
  void addInitialPeer(std::optional<int64_t> node_id, bool online);

  // Peer deltas. An absent `online` leaves a known peer's online bit as it was (a new peer is
  // then counted offline).
  void upsert(int64_t node_id, std::optional<bool> online);
  void remove(int64_t node_id);
  void patch(int64_t node_id, std::optional<bool> online);

  // Forget everything (disconnect); counts become 0 and known() false.
  void clear();

  uint64_t total() const { return keyed_count_ + anonymous_total_; }
  uint64_t online() const { return keyed_online_ + anonymous_online_; }
  // Whether every peer could be keyed by NodeID (false with a T-era InitialStatus).
  bool exact() const { return anonymous_total_ == 0 && !degraded_; }
  // Whether a snapshot has been started since construction/clear().
  bool known() const { return known_; }
  // Heap bytes held by the table (the "~16 bytes per peer" figure).
  size_t memoryBytes() const;
  // Test/metric counters.
  uint64_t unknownRemovals() const { return unknown_removals_; }

 private:
  size_t findSlot(int64_t id) const;  // index of id, or npos
  void insertNew(int64_t id, bool online);
  void eraseAt(size_t i);
  void grow();
  bool onlineAt(size_t i) const;
  void setOnlineAt(size_t i, bool online);
  void warnAnonymousOnce();
  static uint64_t hash(int64_t id);

  Logger& log_;
  std::vector<int64_t> ids_;           // linear-probing slots; INT64_MIN = empty
  std::vector<uint64_t> online_bits_;  // one online bit per slot
  size_t mask_ = 0;                    // ids_.size() - 1 (a power of two)
  uint64_t keyed_count_ = 0;
  uint64_t keyed_online_ = 0;
  uint64_t anonymous_total_ = 0;
  uint64_t anonymous_online_ = 0;
  uint64_t unknown_removals_ = 0;
  bool degraded_ = false;
  bool warned_ = false;
  bool known_ = false;
};

}  // namespace tsk::watcher
