#include "common/clock.h"

#include <gtest/gtest.h>

#include <future>
#include <thread>

namespace tsk {
namespace {

using std::chrono::seconds;

// One thread blocked in ManualClock::waitUntil on a predicate that never holds.
struct Waiter {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
};

TEST(ManualClock, AdvancingPastTheDeadlineWakesAWaiter) {
  ManualClock clock;
  Waiter w;
  const auto deadline = clock.monotonicNow() + seconds(10);
  auto result = std::async(std::launch::async, [&] {
    std::unique_lock lock(w.mu);
    return clock.waitUntil(lock, w.cv, deadline, [&] { return w.done; });
  });
  // Whether the waiter is already blocked or not yet started, it sees the new time.
  clock.advance(seconds(10));
  EXPECT_FALSE(result.get());  // woken by the clock: the deadline passed, done() never held
  EXPECT_GE(clock.monotonicNow(), deadline);
}

TEST(ManualClock, AdvancingShortOfTheDeadlineKeepsWaiting) {
  ManualClock clock;
  Waiter w;
  const auto deadline = clock.monotonicNow() + seconds(10);
  auto result = std::async(std::launch::async, [&] {
    std::unique_lock lock(w.mu);
    const bool done = clock.waitUntil(lock, w.cv, deadline, [&] { return w.done; });
    return std::make_pair(done, clock.monotonicNow());
  });
  clock.advance(seconds(9));
  {
    std::lock_guard lock(w.mu);
    w.done = true;
  }
  w.cv.notify_all();
  const auto [done, at] = result.get();
  EXPECT_TRUE(done);  // it returned for the predicate, not the (unreached) deadline
  EXPECT_LT(at, deadline);
}

TEST(ManualClock, ADeadlineAlreadyPassedDoesNotBlock) {
  ManualClock clock;
  Waiter w;
  std::unique_lock lock(w.mu);
  EXPECT_FALSE(clock.waitUntil(lock, w.cv, clock.monotonicNow(), [&] { return w.done; }));
}

TEST(StopSignal, WaitUntilOnAManualClockReturnsOnStopOrDeadline) {
  ManualClock clock;
  StopSignal stop;
  const auto first = clock.monotonicNow() + seconds(5);
  auto stopped = std::async(std::launch::async, [&] { return stop.waitUntil(clock, first); });
  clock.advance(seconds(5));
  EXPECT_FALSE(stopped.get());
  const auto second = clock.monotonicNow() + seconds(5);
  auto woken = std::async(std::launch::async, [&] { return stop.waitUntil(clock, second); });
  stop.stop();
  EXPECT_TRUE(woken.get());
}

TEST(RealClock, WaitUntilAPassedDeadlineReturnsAtOnce) {
  Waiter w;
  std::unique_lock lock(w.mu);
  auto& clock = RealClock::instance();
  EXPECT_FALSE(clock.waitUntil(lock, w.cv, clock.monotonicNow(), [&] { return w.done; }));
}

}  // namespace
}  // namespace tsk
