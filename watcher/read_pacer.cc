#include "watcher/read_pacer.h"

#include <algorithm>

namespace tsk::watcher {

ReadPacer::Duration ReadPacer::next(Clock::time_point now, uint64_t lines, bool filled) {
  const bool had_last = have_last_;
  const bool after_backlog = last_filled_;
  const Duration since = now - last_;
  last_ = now;
  have_last_ = true;
  last_filled_ = filled;
  delay_ = Duration::zero();
  if (opts_.max_delay <= Duration::zero() || opts_.target_lines == 0) return delay_;
  if (filled || after_backlog || !had_last || lines == 0) return delay_;
  const Duration max_delay = opts_.max_delay;
  // Lines per max_delay at the rate just seen: lines * max_delay / since; quiet below
  // kMinLinesPerDelay. (Compared as products: `since` can be 0 on a coarse clock.)
  if (static_cast<double>(lines) * static_cast<double>(max_delay.count()) <
      kMinLinesPerDelay * static_cast<double>(since.count())) {
    return delay_;
  }
  // The time target_lines take at that rate: target_lines * since / lines.
  const double want = static_cast<double>(opts_.target_lines) * static_cast<double>(since.count()) /
                      static_cast<double>(lines);
  const Duration d = want >= static_cast<double>(max_delay.count())
                         ? max_delay
                         : Duration(static_cast<Duration::rep>(want));
  if (d >= kMinDelay) delay_ = d;
  return delay_;
}

void ReadPacer::reset() {
  have_last_ = false;
  last_filled_ = false;
  delay_ = Duration::zero();
}

}  // namespace tsk::watcher
