#pragma once
// RFC 3339 times as Go's encoding/json writes them (time.Time.MarshalJSON):
// "2026-05-24T10:00:00Z", "2026-05-24T10:00:00.123456789Z", "2026-05-24T12:00:00+02:00".
#include <cstdint>
#include <optional>
#include <string_view>

namespace tsk {

struct UnixTime {
  int64_t seconds = 0;  // since the epoch, UTC
  int32_t nanos = 0;    // 0-999'999'999 (digits past the ninth are ignored)
  double asDouble() const { return static_cast<double>(seconds) + nanos / 1e9; }
  // Go's t.Round(time.Second): halves round up (away from zero, after the epoch).
  int64_t roundedSeconds() const { return seconds + (nanos >= 500'000'000 ? 1 : 0); }
};

// nullopt for anything else (a date alone, no zone, garbage).
std::optional<UnixTime> parseRfc3339(std::string_view s);

}  // namespace tsk
