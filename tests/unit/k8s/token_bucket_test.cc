#include "k8s/token_bucket.h"

#include <gtest/gtest.h>

namespace tsk::k8s {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

TEST(TokenBucket, AllowsABurstWithoutWaiting) {
  ManualClock clock;
  TokenBucket bucket(5.0, 10, clock);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(bucket.reserve(), nanoseconds(0)) << i;
}

TEST(TokenBucket, MakesTheCallAfterTheBurstWaitOneInterval) {
  ManualClock clock;
  TokenBucket bucket(4.0, 2, clock);  // 4 QPS: one token every 250 ms
  EXPECT_EQ(bucket.reserve(), nanoseconds(0));
  EXPECT_EQ(bucket.reserve(), nanoseconds(0));
  EXPECT_EQ(bucket.reserve(), milliseconds(250));
}

TEST(TokenBucket, QueuesCallersOneIntervalApart) {
  ManualClock clock;
  TokenBucket bucket(4.0, 1, clock);
  EXPECT_EQ(bucket.reserve(), nanoseconds(0));
  EXPECT_EQ(bucket.reserve(), milliseconds(250));
  EXPECT_EQ(bucket.reserve(), milliseconds(500));
  EXPECT_EQ(bucket.reserve(), milliseconds(750));
}

TEST(TokenBucket, RefillsAtTheConfiguredRate) {
  ManualClock clock;
  TokenBucket bucket(4.0, 10, clock);
  for (int i = 0; i < 10; ++i) (void)bucket.reserve();
  EXPECT_DOUBLE_EQ(bucket.available(), 0.0);
  clock.advance(milliseconds(500));
  EXPECT_DOUBLE_EQ(bucket.available(), 2.0);
  EXPECT_EQ(bucket.reserve(), nanoseconds(0));
  EXPECT_EQ(bucket.reserve(), nanoseconds(0));
  EXPECT_EQ(bucket.reserve(), milliseconds(250));
}

TEST(TokenBucket, NeverHoldsMoreThanTheBurst) {
  ManualClock clock;
  TokenBucket bucket(5.0, 10, clock);
  clock.advance(std::chrono::hours(1));
  EXPECT_DOUBLE_EQ(bucket.available(), 10.0);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(bucket.reserve(), nanoseconds(0));
  EXPECT_GT(bucket.reserve(), nanoseconds(0));
}

TEST(TokenBucket, WaitingOutTheDebtMakesTheNextCallFree) {
  ManualClock clock;
  TokenBucket bucket(4.0, 1, clock);
  (void)bucket.reserve();
  const auto wait = bucket.reserve();
  clock.advance(wait);  // the caller sleeps, then sends
  EXPECT_DOUBLE_EQ(bucket.available(), 0.0);
  clock.advance(milliseconds(250));
  EXPECT_EQ(bucket.reserve(), nanoseconds(0));
}

TEST(TokenBucket, ZeroQpsMeansUnlimited) {
  ManualClock clock;
  TokenBucket bucket(0.0, 1, clock);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(bucket.reserve(), nanoseconds(0));
}

TEST(TokenBucket, TreatsABurstBelowOneAsOne) {
  ManualClock clock;
  TokenBucket bucket(2.0, 0, clock);
  EXPECT_EQ(bucket.reserve(), nanoseconds(0));
  EXPECT_EQ(bucket.reserve(), milliseconds(500));
}

TEST(TokenBucket, ClampsTheWaitOfATinyRate) {
  ManualClock clock;
  // One token every ~3e10 years: the unclamped wait does not fit in int64 nanoseconds.
  TokenBucket bucket(1e-18, 1, clock);
  EXPECT_EQ(bucket.reserve(), nanoseconds(0));
  EXPECT_EQ(bucket.reserve(), TokenBucket::kMaxWait);
  EXPECT_EQ(bucket.reserve(), TokenBucket::kMaxWait);
}

TEST(TokenBucket, ClampsTheWaitOfALongQueue) {
  ManualClock clock;
  TokenBucket bucket(1.0, 1, clock);  // one token a second
  (void)bucket.reserve();
  std::chrono::nanoseconds last{0};
  for (int i = 0; i < 100'000; ++i) last = bucket.reserve();  // 100000 s of debt > 24 h
  EXPECT_EQ(last, TokenBucket::kMaxWait);
}

}  // namespace
}  // namespace tsk::k8s
