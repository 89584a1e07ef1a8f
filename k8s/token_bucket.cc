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
  const double wait_seconds = -tokens_ / qps_;
  return std::chrono::nanoseconds(static_cast<int64_t>(std::ceil(wait_seconds * 1e9)));
}

double TokenBucket::available() {
  std::lock_guard lock(mu_);
  refillLocked();
  return tokens_;
}

}  // namespace tsk::k8s
