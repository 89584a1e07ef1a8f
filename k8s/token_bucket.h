#pragma once
// TokenBucket: the client-side rate limit in front of every API request (default 5 QPS, burst
// 10), so a fleet of restarting sidecars cannot hammer the API server. Reservation style: each
// call takes one token now, possibly going into debt, and says how long to wait before sending.
// Concurrent callers therefore queue in order without a second lock.
//
//   TokenBucket bucket(5.0, 10, clock);
//   if (auto wait = bucket.reserve(); wait > 0ns) stop.waitUntil(clock, clock.monotonicNow() +
//   wait); send();
#include <chrono>
#include <mutex>

#include "common/clock.h"

namespace tsk::k8s {

class TokenBucket {
 public:
  // qps <= 0 disables the limit; burst < 1 is treated as 1. The bucket starts full.
  TokenBucket(double qps, int burst, Clock& clock);

  // The longest wait reserve() returns (a qps so small the wait would be longer, or would not fit
  // in nanoseconds, is clamped to this).
  static constexpr std::chrono::nanoseconds kMaxWait = std::chrono::hours(24);

  // Takes one token; returns how long the caller must wait before using it (zero if one was
  // available; at most kMaxWait).
  std::chrono::nanoseconds reserve();
  // Tokens available now (negative while callers are queued); for tests and diagnostics.
  double available();

 private:
  void refillLocked();

  const double qps_;
  const double burst_;
  Clock& clock_;
  std::mutex mu_;
  double tokens_;
  Clock::Monotonic last_;
};

}  // namespace tsk::k8s
