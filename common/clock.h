#pragma once
// Clock: the one source of time, and the one way to wait for a point in time. Production code
// takes a Clock& and waits through waitUntil(), so tests drive backoff, debounce and deadlines
// with a ManualClock: advancing it wakes every thread waiting on it, nothing sleeps in real time.
//
//   std::unique_lock lock(mu_);
//   clock_.waitUntil(lock, cv_, clock_.monotonicNow() + delay, [&] { return stopping_; });
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>
#include <vector>

namespace tsk {

class Clock {
 public:
  using Monotonic = std::chrono::steady_clock::time_point;
  using Wall = std::chrono::system_clock::time_point;
  virtual ~Clock() = default;
  virtual Monotonic monotonicNow() const = 0;
  virtual Wall wallNow() const = 0;

  // Blocks (releasing `lock`, which must hold the mutex guarding whatever `cv` signals) until
  // `cv` is notified or monotonicNow() reaches `deadline`; may return early (spuriously). Callers
  // loop, as with std::condition_variable.
  virtual void waitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                         Monotonic deadline) = 0;

  // Waits until `done()` holds (true) or the deadline passes (false, unless done() holds then).
  template <typename Pred>
  bool waitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 Monotonic deadline, Pred done) {
    while (!done()) {
      if (monotonicNow() >= deadline) return done();
      waitUntil(lock, cv, deadline);
    }
    return true;
  }
};

class RealClock final : public Clock {
 public:
  Monotonic monotonicNow() const override { return std::chrono::steady_clock::now(); }
  Wall wallNow() const override { return std::chrono::system_clock::now(); }
  void waitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 Monotonic deadline) override {
    cv.wait_until(lock, deadline);
  }
  using Clock::waitUntil;
  static RealClock& instance() {
    static RealClock clock;
    return clock;
  }
};

// ManualClock: time moves only when a test calls advance(), which wakes every thread blocked in
// waitUntil() so it sees the new time at once (no real-time polling).
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
    std::vector<Waiter> waiters;
    {
      std::lock_guard lock(mu_);
      mono_ += d;
      wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
      waiters = waiters_;
    }
    // A waiter holds its mutex from reading the time until cv.wait() releases it: taking that
    // mutex here means it either has not read the time yet (and sees the new one) or is waiting
    // (and gets this notification). Never called with a waiter's mutex held.
    for (const auto& w : waiters) {
      std::lock_guard wl(*w.mu);
      w.cv->notify_all();
    }
  }
  void waitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 Monotonic deadline) override {
    const Waiter me{lock.mutex(), &cv};
    {
      std::lock_guard cl(mu_);
      if (mono_ >= deadline) return;
      waiters_.push_back(me);
    }
    cv.wait(lock);
    std::lock_guard cl(mu_);
    waiters_.erase(std::find(waiters_.begin(), waiters_.end(), me));
  }
  using Clock::waitUntil;

 private:
  struct Waiter {
    std::mutex* mu;
    std::condition_variable* cv;
    bool operator==(const Waiter&) const = default;
  };
  mutable std::mutex mu_;
  Monotonic mono_{std::chrono::hours(1)};
  Wall wall_{std::chrono::seconds(1'800'000'000)};
  std::vector<Waiter> waiters_;
};

// StopToken-like flag with an interruptible wait on a Clock: loops wait on it instead of sleep_for,
// so shutdown wakes them at once and a ManualClock ends the wait without real time passing.
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
  // Waits until `deadline` on `clock`; returns true if stop() was called.
  bool waitUntil(Clock& clock, Clock::Monotonic deadline) {
    std::unique_lock lock(mu_);
    return clock.waitUntil(lock, cv_, deadline, [&] { return stopped_; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopped_ = false;
};

}  // namespace tsk
