#pragma once
// Backoff: exponential backoff with full jitter, the one backoff used everywhere (bus reconnects,
// API retries). next() returns the delay before the next attempt: a random value in
// [base/2, base], where base doubles from `initial` up to `max`. reset() starts over; the watcher
// calls it after a connection stayed healthy for a while.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace tsk {

class Backoff {
 public:
  using ms = std::chrono::milliseconds;
  Backoff(ms initial, ms max, uint64_t seed = std::random_device{}())
      : initial_(initial), max_(max), rng_(seed) {}

  ms next() {
    const auto base = current();
    if (attempt_ < 62) ++attempt_;
    std::uniform_int_distribution<int64_t> dist(base.count() / 2, base.count());
    return ms(dist(rng_));
  }
  void reset() { attempt_ = 0; }
  int attempts() const { return attempt_; }

  // The un-jittered ceiling of the next delay.
  ms current() const {
    int64_t v = initial_.count();
    for (int i = 0; i < attempt_ && v < max_.count(); ++i) v *= 2;
    return ms(std::min<int64_t>(v, max_.count()));
  }

 private:
  ms initial_;
  ms max_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace tsk
