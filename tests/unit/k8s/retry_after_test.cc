// parseRetryAfter: what ApiClient reports from a Retry-After header for the publisher's backoff.
#include <gtest/gtest.h>

#include "k8s/client.h"

namespace tsk::k8s {
namespace {

using std::chrono::milliseconds;
constexpr milliseconds kCap{30'000};

TEST(RetryAfter, DeltaSecondsBecomeMilliseconds) {
  EXPECT_EQ(parseRetryAfter("0", kCap), milliseconds(0));
  EXPECT_EQ(parseRetryAfter("1", kCap), milliseconds(1'000));
  EXPECT_EQ(parseRetryAfter(" 7\t", kCap), milliseconds(7'000));
}

TEST(RetryAfter, IsBoundedByTheCapWhateverTheServerSays) {
  EXPECT_EQ(parseRetryAfter("3600", kCap), kCap);
  EXPECT_EQ(parseRetryAfter("99999999999999999999999999", kCap), kCap);  // no overflow
  EXPECT_EQ(parseRetryAfter("5", milliseconds(10)), milliseconds(10));
}

TEST(RetryAfter, AnythingButDeltaSecondsIsIgnored) {
  EXPECT_EQ(parseRetryAfter("", kCap), std::nullopt);
  EXPECT_EQ(parseRetryAfter("Wed, 21 Oct 2026 07:28:00 GMT", kCap), std::nullopt);
  EXPECT_EQ(parseRetryAfter("-1", kCap), std::nullopt);
  EXPECT_EQ(parseRetryAfter("1.5", kCap), std::nullopt);
  EXPECT_EQ(parseRetryAfter("10s", kCap), std::nullopt);
}

}  // namespace
}  // namespace tsk::k8s
