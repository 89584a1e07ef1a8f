#include "common/backoff.h"

#include <gtest/gtest.h>

namespace tsk {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, DoublesFromInitialToCapWithJitterInUpperHalf) {
  Backoff b(milliseconds(500), milliseconds(30'000), /*seed=*/42);
  int64_t expected_ceiling = 500;
  for (int i = 0; i < 12; ++i) {
    const auto d = b.next();
    EXPECT_LE(d.count(), expected_ceiling) << "attempt " << i;
    EXPECT_GE(d.count(), expected_ceiling / 2) << "attempt " << i;
    expected_ceiling = std::min<int64_t>(expected_ceiling * 2, 30'000);
  }
  EXPECT_EQ(b.current().count(), 30'000);
}

TEST(Backoff, ResetStartsOverAtInitial) {
  Backoff b(milliseconds(500), milliseconds(30'000), 7);
  for (int i = 0; i < 5; ++i) (void)b.next();
  b.reset();
  EXPECT_EQ(b.current().count(), 500);
  EXPECT_LE(b.next().count(), 500);
}

TEST(Backoff, ManyAttemptsNeverOverflow) {
  Backoff b(milliseconds(1), milliseconds(1000), 1);
  for (int i = 0; i < 200; ++i) EXPECT_LE(b.next().count(), 1000);
}

}  // namespace
}  // namespace tsk
