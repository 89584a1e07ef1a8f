#include "common/rfc3339.h"

#include <gtest/gtest.h>

namespace tsk {
namespace {

TEST(Rfc3339, ParsesUtcFractionsAndOffsets) {
  EXPECT_EQ(parseRfc3339("2026-05-24T10:00:00Z")->seconds, 1779616800);
  EXPECT_DOUBLE_EQ(parseRfc3339("2026-05-24T10:00:00.5Z")->asDouble(), 1779616800.5);
  EXPECT_EQ(parseRfc3339("2026-05-24T10:00:00.123456789Z")->nanos, 123456789);
  EXPECT_EQ(parseRfc3339("2026-05-24T12:00:00+02:00")->seconds, 1779616800);
  EXPECT_FALSE(parseRfc3339("2026-05-24"));
  EXPECT_FALSE(parseRfc3339("yesterday"));
  EXPECT_FALSE(parseRfc3339("2026-05-24T10:00:00"));
  EXPECT_FALSE(parseRfc3339("2026-05-24T10:00:00Zjunk"));
}

TEST(Rfc3339, RoundsToTheSecondAsGoDoes) {
  EXPECT_EQ(parseRfc3339("2026-05-24T10:00:00.4999999999Z")->roundedSeconds(), 1779616800);
  EXPECT_EQ(parseRfc3339("2026-05-24T10:00:00.5Z")->roundedSeconds(), 1779616801);
  EXPECT_EQ(parseRfc3339("2026-05-24T10:00:00.999999999Z")->roundedSeconds(), 1779616801);
}

}  // namespace
}  // namespace tsk
