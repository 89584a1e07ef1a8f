#include "watcher/peer_tracker.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

// mremap moves the pages of a growing table instead of copying them. ThreadSanitizer does not
// see an mremap (the moved range would keep stale shadow state), so its builds copy instead.
#if defined(__linux__) && !defined(__SANITIZE_THREAD__)
#if defined(__has_feature)
#if !__has_feature(thread_sanitizer)
#define TSK_PEER_TRACKER_MREMAP 1
#endif
#else
#define TSK_PEER_TRACKER_MREMAP 1
#endif
#endif

namespace tsk::watcher {
namespace {
constexpr uint64_t kEmpty = 0;
constexpr size_t kNpos = static_cast<size_t>(-1);
// Grow when more than 17/20 (85%) of the slots would be used, to 1.5 times the slots: the table
// is 57-85% full, 8-14 bytes per peer plus the online bit.
constexpr uint64_t kMaxLoadNum = 17;
constexpr uint64_t kMaxLoadDen = 20;

__extension__ typedef unsigned __int128 Uint128;

// A bijection of the 64-bit values (the murmur3 finalizer, which maps 0 to 0), after flipping
// the sign bit: INT64_MIN, and only it, hashes to kEmpty. As nothing is lost, the table stores
// hashes instead of IDs and never recomputes one when entries move.
uint64_t hashOf(int64_t id) {
  uint64_t x = static_cast<uint64_t>(id) ^ (uint64_t{1} << 63);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

size_t pageBytes() {
  static const size_t page = [] {
    const long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? static_cast<size_t>(p) : size_t{4096};
  }();
  return page;
}

size_t bitWords(size_t slots) {
  return (slots + 63) / 64;
}
bool bitAt(const std::vector<uint64_t>& bits, size_t i) {
  return (bits[i >> 6] >> (i & 63)) & 1u;
}
void setBit(std::vector<uint64_t>& bits, size_t i, bool on) {
  const uint64_t bit = uint64_t{1} << (i & 63);
  if (on) {
    bits[i >> 6] |= bit;
  } else {
    bits[i >> 6] &= ~bit;
  }
}

void* mapZeroed(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return p;
}
}  // namespace

// --- SlotArray ----------------------------------------------------------------------------------

PeerTracker::SlotArray::~SlotArray() {
  release();
}

PeerTracker::SlotArray::SlotArray(SlotArray&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

PeerTracker::SlotArray& PeerTracker::SlotArray::operator=(SlotArray&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

size_t PeerTracker::SlotArray::roundUp(size_t slots) {
  const size_t per_page = pageBytes() / sizeof(uint64_t);
  return std::max<size_t>(1, (slots + per_page - 1) / per_page) * per_page;
}

void PeerTracker::SlotArray::resize(size_t slots) {
  if (slots == size_) return;
  if (slots == 0) {
    release();
    return;
  }
  const size_t bytes = slots * sizeof(uint64_t);
  void* p = nullptr;
  if (data_ == nullptr) {
    p = mapZeroed(bytes);
  } else {
#if defined(TSK_PEER_TRACKER_MREMAP)
    p = mremap(data_, this->bytes(), bytes, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) throw std::bad_alloc();
#else
    p = mapZeroed(bytes);
    std::memcpy(p, data_, std::min(bytes, this->bytes()));
    munmap(data_, this->bytes());
#endif
  }
  data_ = static_cast<uint64_t*>(p);
  size_ = slots;
}

void PeerTracker::SlotArray::release() {
  if (data_ != nullptr) munmap(data_, bytes());
  data_ = nullptr;
  size_ = 0;
}

// --- PeerTracker --------------------------------------------------------------------------------

PeerTracker::PeerTracker(Logger& log) : log_(log) {}

// Multiply-shift range reduction: maps the hash onto [0, capacity) for any capacity, keeping
// the hash's order (the high bits decide).
size_t PeerTracker::homeOf(uint64_t h) const {
  return static_cast<size_t>((Uint128{h} * slots_.size()) >> 64);
}

bool PeerTracker::onlineAt(size_t i) const {
  return bitAt(online_bits_, i);
}

void PeerTracker::setOnlineAt(size_t i, bool online) {
  setBit(online_bits_, i, online);
}

void PeerTracker::clear() {
  slots_.release();
  online_bits_ = std::vector<uint64_t>();  // = {} would keep the capacity
  keyed_count_ = keyed_online_ = anonymous_total_ = anonymous_online_ = 0;
  degraded_ = false;
  known_ = false;
}

void PeerTracker::beginInitialStatus() {
  clear();
  known_ = true;
}

size_t PeerTracker::probe(uint64_t h) const {
  size_t i = homeOf(h);
  while (slots_[i] != h && slots_[i] != kEmpty) i = next(i);
  return i;
}

size_t PeerTracker::findSlot(uint64_t h) const {
  if (slots_.size() == 0) return kNpos;
  const size_t i = probe(h);
  return slots_[i] == h ? i : kNpos;
}

bool PeerTracker::contains(int64_t node_id) const {
  const uint64_t h = hashOf(node_id);
  return h != kEmpty && findSlot(h) != kNpos;
}

// Grows in place: the slots are extended (new ones empty), then every entry is moved to where an
// insertion into the bigger table would put it. `pending` marks entries not moved yet; an entry
// goes to the first slot from its home that is empty or still pending (swapping the pending one
// out, to be moved next). Entries already moved never move again, so each one ends with only
// moved entries between its home and its slot: the linear-probing invariant.
void PeerTracker::grow() {
  const size_t old_capacity = slots_.size();
  const size_t capacity = SlotArray::roundUp(std::max(old_capacity + old_capacity / 2, size_t{1}));
  slots_.resize(capacity);
  online_bits_.resize(bitWords(capacity), 0);
  std::vector<uint64_t> pending(bitWords(capacity), 0);
  for (size_t i = 0; i < old_capacity; ++i) {
    if (slots_[i] != kEmpty) setBit(pending, i, true);
  }
  for (size_t i = 0; i < old_capacity; ++i) {
    while (bitAt(pending, i)) {
      const uint64_t h = slots_[i];
      size_t j = homeOf(h);
      while (slots_[j] != kEmpty && !bitAt(pending, j)) j = next(j);  // stops at i at the latest
      if (j == i) {
        setBit(pending, i, false);
        break;
      }
      const bool online = onlineAt(i);
      if (slots_[j] == kEmpty) {
        slots_[j] = h;
        setOnlineAt(j, online);
        slots_[i] = kEmpty;
        setOnlineAt(i, false);
        setBit(pending, i, false);
        break;
      }
      slots_[i] = slots_[j];
      setOnlineAt(i, onlineAt(j));
      slots_[j] = h;
      setOnlineAt(j, online);
      setBit(pending, j, false);
    }
  }
}

void PeerTracker::insertAt(size_t empty, uint64_t h, bool online) {
  if ((keyed_count_ + 1) * kMaxLoadDen > slots_.size() * kMaxLoadNum) {
    grow();
    empty = probe(h);
  }
  slots_[empty] = h;
  setOnlineAt(empty, online);
  ++keyed_count_;
  if (online) ++keyed_online_;
}

// Backward-shift deletion: no tombstones, so probes stay short under churn.
void PeerTracker::eraseAt(size_t hole) {
  if (onlineAt(hole)) --keyed_online_;
  --keyed_count_;
  for (size_t j = next(hole); slots_[j] != kEmpty; j = next(j)) {
    const size_t home = homeOf(slots_[j]);
    const bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (stays) continue;
    slots_[hole] = slots_[j];
    setOnlineAt(hole, onlineAt(j));
    hole = j;
  }
  slots_[hole] = kEmpty;
  setOnlineAt(hole, false);
}

void PeerTracker::addInitialPeer(std::optional<int64_t> node_id, bool online) {
  known_ = true;
  if (!node_id || hashOf(*node_id) == kEmpty) {
    ++anonymous_total_;
    if (online) ++anonymous_online_;
    warnAnonymousOnce();
    return;
  }
  upsert(*node_id, online);
}

void PeerTracker::upsert(int64_t node_id, std::optional<bool> online) {
  const uint64_t h = hashOf(node_id);
  if (h == kEmpty) return;
  if (slots_.size() == 0) grow();
  const size_t i = probe(h);  // one walk finds the peer or the slot for a new one
  if (slots_[i] == kEmpty) {
    insertAt(i, h, online.value_or(false));
  } else if (online) {
    setKnownOnline(i, *online);
  }
}

void PeerTracker::setKnownOnline(size_t i, bool online) {
  if (online == onlineAt(i)) return;
  setOnlineAt(i, online);
  if (online) {
    ++keyed_online_;
  } else {
    --keyed_online_;
  }
}

void PeerTracker::remove(int64_t node_id) {
  const uint64_t h = hashOf(node_id);
  const size_t i = h == kEmpty ? kNpos : findSlot(h);
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
  const uint64_t h = hashOf(node_id);
  const size_t i = h == kEmpty ? kNpos : findSlot(h);
  if (i != kNpos) {
    if (online) setKnownOnline(i, *online);
    return;
  }
  if (!online || anonymous_total_ == 0) return;
  if (*online && anonymous_online_ < anonymous_total_) ++anonymous_online_;
  if (!*online && anonymous_online_ > 0) --anonymous_online_;
}

size_t PeerTracker::memoryBytes() const {
  return slots_.bytes() + online_bits_.capacity() * sizeof(uint64_t);
}

void PeerTracker::warnAnonymousOnce() {
  degraded_ = true;
  if (warned_) return;
  warned_ = true;
  log_.warn(
      "peer tracking: the daemon's InitialStatus has no peer NodeID (a pre-1.100 tailscaled); "
      "PeersRemoved and PeerChangedPatch cannot be matched to those peers, so peer counts "
      "are approximate until the daemon is upgraded",
      {{"what_to_do", "upgrade tailscaled, or run without --track-peers"}});
}

}  // namespace tsk::watcher
