#include "k8s/token_bucket.h"

#include <algorithm>
#include <cmath>

namespace tsk::k8s {

TokenBucket::TokenBucket(double qps, int burst, Clock& clock)
    : qps_(qps),
      burst_(static_cast<double>(std::max(burst, 1))),
      clock_(clock),
      tokens_(burst_),
      last_(clock.monotonicNow()) {}

void TokenBucket::refillLocked() {
  const auto now = clock_.monotonicNow();
  if (now <= last_) return;
  const std::chrono::duration<double> elapsed = now - last_;
  tokens_ = std::min(burst_, tokens_ + elapsed.count() * qps_);
  last_ = now;
}

std::chrono::nanoseconds TokenBucket::reserve() {
  if (qps_ <= 0) return std::chrono::nanoseconds(0);
  std::lock_guard lock(mu_);
  refillLocked();
  tokens_ -= 1.0;
  if (tokens_ >= 0) return std::chrono::nanoseconds(0);
  // Clamped before the conversion: a tiny qps (or a long queue) would otherwise give a double
  // past int64 nanoseconds, whose conversion is undefined behaviour.
  const double wait_ns = std::ceil(-tokens_ / qps_ * 1e9);
  if (!(wait_ns < static_cast<double>(kMaxWait.count()))) return kMaxWait;
  return std::chrono::nanoseconds(static_cast<int64_t>(wait_ns));
}

double TokenBucket::available() {
  std::lock_guard lock(mu_);
  refillLocked();
  return tokens_;
}

}  // namespace tsk::k8s
