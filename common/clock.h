#pragma once
// Clock: the one source of time. Production code takes a Clock& so tests can drive backoff,
// debounce and deadlines with a ManualClock instead of sleeping.
#include <chrono>
#include <condition_variable>
#include <mutex>

namespace tsk {

class Clock {
 public:
  using Monotonic = std::chrono::steady_clock::time_point;
  using Wall = std::chrono::system_clock::time_point;
  virtual ~Clock() = default;
  virtual Monotonic monotonicNow() const = 0;
  virtual Wall wallNow() const = 0;
};

class RealClock final : public Clock {
 public:
  Monotonic monotonicNow() const override { return std::chrono::steady_clock::now(); }
  Wall wallNow() const override { return std::chrono::system_clock::now(); }
  static RealClock& instance() {
    static RealClock clock;
    return clock;
  }
};

// ManualClock: time moves only when a test calls advance().
class ManualClock final : public Clock {
 public:
  Monotonic monotonicNow() const override {
    std::lock_guard lock(mu_);
    return mono_;
  }
  Wall wallNow() const override {
    std::lock_guard lock(mu_);
    return wall_;
  }
  void advance(std::chrono::nanoseconds d) {
    std::lock_guard lock(mu_);
    mono_ += d;
    wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
  }

 private:
  mutable std::mutex mu_;
  Monotonic mono_{std::chrono::hours(1)};
  Wall wall_{std::chrono::seconds(1'800'000'000)};
};

// StopToken-like flag with an interruptible sleep: loops wait on it instead of sleep_for, so
// shutdown wakes them at once.
class StopSignal {
 public:
  void stop() {
    {
      std::lock_guard lock(mu_);
      stopped_ = true;
    }
    cv_.notify_all();
  }
  bool stopped() const {
    std::lock_guard lock(mu_);
    return stopped_;
  }
  // Waits up to `d`; returns true if stop() was called.
  template <typename Rep, typename Period>
  bool waitFor(std::chrono::duration<Rep, Period> d) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, d, [&] { return stopped_; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
};

}  // namespace tsk
