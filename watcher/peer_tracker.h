#pragma once
// PeerTracker: live peer counts (total, online) from the opt-in peer stream, O(1) per delta
// (amortized) and 8-14 bytes per peer (about 12 at 250k peers). Peers are keyed by their integer
// NodeID in a flat open-addressing table holding one online bit per peer; nothing else about a
// peer is kept.
//
//   PeerTracker peers(log);
//   peers.beginInitialStatus();              // a new InitialStatus: forget everything
//   peers.addInitialPeer(node_id, online);   // per InitialStatus.Peer entry
//   peers.upsert(id, online);                // PeersChanged: new ID adds one, known ID replaces
//   peers.remove(id);                        // PeersRemoved: only known IDs are removed
//   peers.patch(id, online);                 // PeerChangedPatch: Online of a known peer
//   peers.total(); peers.online();
//
// A T-era daemon (docs/PROTOCOL.md#released-versions) sends InitialStatus peers without NodeID.
// Such peers are counted as "anonymous": they are in total()/online() but cannot be matched by
// later deltas. The tracker then logs once what it cannot do and keeps the counts approximate but
// sane: a removal or patch of an unknown ID is charged to the anonymous peers (never below zero).
//
// The table: linear probing over a capacity that is any multiple of a page of slots (the home
// slot is a multiply-shift of the hash, not a mask), at most 85% full, growing by 1.5x in place
// (the slots live in their own mapping, which grows with mremap, so the old and the new table are
// never resident together). Removal shifts the following entries back: there are no tombstones.
// A NodeID of INT64_MIN cannot be tracked (its hash marks an empty slot); it is ignored.
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

  // Forget everything (disconnect); counts become 0, known() false, and the table is released.
  void clear();

  uint64_t total() const { return keyed_count_ + anonymous_total_; }
  uint64_t online() const { return keyed_online_ + anonymous_online_; }
  // Whether every peer could be keyed by NodeID (false with a T-era InitialStatus).
  bool exact() const { return anonymous_total_ == 0 && !degraded_; }
  // Whether a snapshot has been started since construction/clear().
  bool known() const { return known_; }
  // Whether a peer with this NodeID is tracked.
  bool contains(int64_t node_id) const;
  // Heap and mapped bytes held by the table (the "8-14 bytes per peer" figure).
  size_t memoryBytes() const;
  // Slots in the table (0 before the first keyed peer); the table is at most 85% full.
  size_t capacity() const { return slots_.size(); }
  // Test/metric counters.
  uint64_t unknownRemovals() const { return unknown_removals_; }

 private:
  // Zero-filled uint64_t slots in an anonymous mapping of whole pages. resize() keeps the first
  // slots and zero-fills the rest; on Linux it is an mremap, which moves pages instead of copying.
  class SlotArray {
   public:
    SlotArray() = default;
    ~SlotArray();
    SlotArray(SlotArray&& other) noexcept;
    SlotArray& operator=(SlotArray&& other) noexcept;
    SlotArray(const SlotArray&) = delete;
    SlotArray& operator=(const SlotArray&) = delete;

    // `slots` rounded up to fill whole pages.
    static size_t roundUp(size_t slots);
    void resize(size_t slots);  // slots must be a roundUp() result
    void release();
    uint64_t& operator[](size_t i) { return data_[i]; }
    uint64_t operator[](size_t i) const { return data_[i]; }
    size_t size() const { return size_; }
    size_t bytes() const { return size_ * sizeof(uint64_t); }

   private:
    uint64_t* data_ = nullptr;
    size_t size_ = 0;
  };

  size_t homeOf(uint64_t h) const;
  size_t next(size_t i) const { return i + 1 == slots_.size() ? 0 : i + 1; }
  size_t probe(uint64_t h) const;     // the slot of h, or the empty slot where it would go
  size_t findSlot(uint64_t h) const;  // index of h, or npos
  void insertAt(size_t empty, uint64_t h, bool online);  // `empty` from probe(h)
  void eraseAt(size_t i);
  void grow();
  bool onlineAt(size_t i) const;
  void setOnlineAt(size_t i, bool online);
  void setKnownOnline(size_t i, bool online);  // the bit and keyed_online_
  void warnAnonymousOnce();

  Logger& log_;
  SlotArray slots_;                    // hashes of NodeIDs (a bijection); 0 = empty
  std::vector<uint64_t> online_bits_;  // one online bit per slot
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
