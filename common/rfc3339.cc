#include "common/rfc3339.h"

#include <ctime>

namespace tsk {
namespace {

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

std::optional<int> digits(std::string_view s, size_t pos, size_t n) {
  if (pos + n > s.size()) return std::nullopt;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (!isDigit(s[i])) return std::nullopt;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

}  // namespace

std::optional<UnixTime> parseRfc3339(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)
  const auto y = digits(s, 0, 4), mo = digits(s, 5, 2), d = digits(s, 8, 2);
  const auto h = digits(s, 11, 2), mi = digits(s, 14, 2), se = digits(s, 17, 2);
  if (!y || !mo || !d || !h || !mi || !se || s[4] != '-' || s[7] != '-' ||
      (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  std::tm tm{};
  tm.tm_year = *y - 1900;
  tm.tm_mon = *mo - 1;
  tm.tm_mday = *d;
  tm.tm_hour = *h;
  tm.tm_min = *mi;
  tm.tm_sec = *se;
  UnixTime t;
  t.seconds = static_cast<int64_t>(timegm(&tm));
  size_t pos = 19;
  if (pos < s.size() && s[pos] == '.') {
    int32_t scale = 100'000'000;
    for (++pos; pos < s.size() && isDigit(s[pos]); ++pos) {
      t.nanos += (s[pos] - '0') * scale;
      scale /= 10;
    }
  }
  if (pos >= s.size()) return std::nullopt;
  if (s[pos] == 'Z' || s[pos] == 'z') {
    return pos + 1 == s.size() ? std::optional(t) : std::nullopt;
  }
  if (s[pos] != '+' && s[pos] != '-') return std::nullopt;
  const auto oh = digits(s, pos + 1, 2), om = digits(s, pos + 4, 2);
  if (!oh || !om || pos + 6 != s.size() || s[pos + 3] != ':') return std::nullopt;
  const int64_t offset = (*oh * 3600 + *om * 60) * (s[pos] == '+' ? 1 : -1);
  t.seconds -= offset;
  return t;
}

}  // namespace tsk
