#include "watcher/peer_tracker.h"

#include <algorithm>
#include <limits>

namespace tsk::watcher {
namespace {
// No NodeID is INT64_MIN, so it marks an empty slot and keeps a slot at 8 bytes.
constexpr int64_t kEmpty = std::numeric_limits<int64_t>::min();
constexpr size_t kNpos = static_cast<size_t>(-1);
constexpr size_t kMinCapacity = 16;
}  // namespace

PeerTracker::PeerTracker(Logger& log) : log_(log) {}

uint64_t PeerTracker::hash(int64_t id) {
  uint64_t x = static_cast<uint64_t>(id) + 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

bool PeerTracker::onlineAt(size_t i) const {
  return (online_bits_[i >> 6] >> (i & 63)) & 1u;
}

void PeerTracker::setOnlineAt(size_t i, bool online) {
  const uint64_t bit = uint64_t{1} << (i & 63);
  if (online) {
    online_bits_[i >> 6] |= bit;
  } else {
    online_bits_[i >> 6] &= ~bit;
  }
}

void PeerTracker::clear() {
  ids_ = {};
  online_bits_ = {};
  mask_ = 0;
  keyed_count_ = keyed_online_ = anonymous_total_ = anonymous_online_ = 0;
  degraded_ = false;
  known_ = false;
}

void PeerTracker::beginInitialStatus() {
  clear();
  known_ = true;
}

size_t PeerTracker::findSlot(int64_t id) const {
  if (ids_.empty()) return kNpos;
  for (size_t i = hash(id) & mask_;; i = (i + 1) & mask_) {
    if (ids_[i] == id) return i;
    if (ids_[i] == kEmpty) return kNpos;
  }
}

void PeerTracker::grow() {
  const size_t capacity = ids_.empty() ? kMinCapacity : ids_.size() * 2;
  std::vector<int64_t> old_ids = std::move(ids_);
  std::vector<uint64_t> old_bits = std::move(online_bits_);
  ids_.assign(capacity, kEmpty);
  online_bits_.assign((capacity + 63) / 64, 0);
  mask_ = capacity - 1;
  for (size_t j = 0; j < old_ids.size(); ++j) {
    if (old_ids[j] == kEmpty) continue;
    size_t i = hash(old_ids[j]) & mask_;
    while (ids_[i] != kEmpty) i = (i + 1) & mask_;
    ids_[i] = old_ids[j];
    setOnlineAt(i, (old_bits[j >> 6] >> (j & 63)) & 1u);
  }
}

void PeerTracker::insertNew(int64_t id, bool online) {
  // Load factor at most 3/4: short linear probes, ~14 bytes per peer on average.
  if ((keyed_count_ + 1) * 4 > ids_.size() * 3) grow();
  size_t i = hash(id) & mask_;
  while (ids_[i] != kEmpty) i = (i + 1) & mask_;
  ids_[i] = id;
  setOnlineAt(i, online);
  ++keyed_count_;
  if (online) ++keyed_online_;
}

// Backward-shift deletion: no tombstones, so probes stay short under churn.
void PeerTracker::eraseAt(size_t hole) {
  if (onlineAt(hole)) --keyed_online_;
  --keyed_count_;
  for (size_t j = (hole + 1) & mask_; ids_[j] != kEmpty; j = (j + 1) & mask_) {
    const size_t home = hash(ids_[j]) & mask_;
    const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) continue;
    ids_[hole] = ids_[j];
    setOnlineAt(hole, onlineAt(j));
    hole = j;
  }
  ids_[hole] = kEmpty;
  setOnlineAt(hole, false);
}

void PeerTracker::addInitialPeer(std::optional<int64_t> node_id, bool online) {
  known_ = true;
  if (!node_id || *node_id == kEmpty) {
    ++anonymous_total_;
    if (online) ++anonymous_online_;
    warnAnonymousOnce();
    return;
  }
  upsert(*node_id, online);
}

void PeerTracker::upsert(int64_t node_id, std::optional<bool> online) {
  if (node_id == kEmpty) return;
  const size_t i = findSlot(node_id);
  if (i == kNpos) {
    insertNew(node_id, online.value_or(false));
    return;
  }
  if (!online || *online == onlineAt(i)) return;
  setOnlineAt(i, *online);
  if (*online) {
    ++keyed_online_;
  } else {
    --keyed_online_;
  }
}

void PeerTracker::remove(int64_t node_id) {
  const size_t i = node_id == kEmpty ? kNpos : findSlot(node_id);
  if (i != kNpos) {
    eraseAt(i);
    return;
  }
  ++unknown_removals_;
  // With anonymous (T-era) peers, an unknown ID is most likely one of them.
  if (anonymous_total_ > 0) {
    --anonymous_total_;
    anonymous_online_ = std::min(anonymous_online_, anonymous_total_);
  }
}

void PeerTracker::patch(int64_t node_id, std::optional<bool> online) {
  const size_t i = node_id == kEmpty ? kNpos : findSlot(node_id);
  if (i != kNpos) {
    upsert(node_id, online);
    return;
  }
  if (!online || anonymous_total_ == 0) return;
  if (*online && anonymous_online_ < anonymous_total_) ++anonymous_online_;
  if (!*online && anonymous_online_ > 0) --anonymous_online_;
}

size_t PeerTracker::memoryBytes() const {
  return ids_.capacity() * sizeof(int64_t) + online_bits_.capacity() * sizeof(uint64_t);
}

void PeerTracker::warnAnonymousOnce() {
  degraded_ = true;
  if (warned_) return;
  warned_ = true;
  log_.warn(
      "peer tracking: the daemon's InitialStatus has no peer NodeID (a pre-1.100 tailscaled, spec "
      "§5.3); PeersRemoved and PeerChangedPatch cannot be matched to those peers, so peer counts "
      "are approximate until the daemon is upgraded",
      {{"what_to_do", "upgrade tailscaled, or run without --track-peers"}});
}

}  // namespace tsk::watcher
