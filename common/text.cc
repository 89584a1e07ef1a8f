#include "common/text.h"

#include <cctype>

namespace tsk {
namespace {

constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD

// The length of the well-formed UTF-8 sequence at s[i], or 0 if the byte there does not start
// one (RFC 3629, table 3-7 of the Unicode standard).
size_t sequenceLength(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  const size_t left = s.size() - i;
  const auto cont = [&](size_t k) { return (b(k) & 0xc0) == 0x80; };
  if (c >= 0xc2 && c <= 0xdf) return left >= 2 && cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (left < 3 || !cont(1) || !cont(2)) return 0;
    if (c == 0xe0 && b(1) < 0xa0) return 0;  // overlong
    if (c == 0xed && b(1) > 0x9f) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (left < 4 || !cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xf0 && b(1) < 0x90) return 0;  // overlong
    if (c == 0xf4 && b(1) > 0x8f) return 0;  // over U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace

bool isValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = sequenceLength(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

void appendDisplayText(std::string& out, std::string_view s, size_t max_bytes) {
  // Pass 1: the length of the repaired text, to know whether it must be cut.
  size_t repaired = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t n = sequenceLength(s, i);
    repaired += n == 0 ? kReplacement.size() : n;
    i += n == 0 ? 1 : n;
  }
  std::string marker;
  size_t room = max_bytes;
  if (repaired > max_bytes && max_bytes >= 32) {
    marker = "...(" + std::to_string(s.size()) + " bytes)";
    room = max_bytes - marker.size();
  }
  size_t used = 0;
  for (size_t i = 0; i < s.size();) {
    const size_t n = sequenceLength(s, i);
    const std::string_view piece = n == 0 ? kReplacement : s.substr(i, n);
    if (used + piece.size() > room) break;
    out.append(piece);
    used += piece.size();
    i += n == 0 ? 1 : n;
  }
  out += marker;
}

std::string displayText(std::string_view s, size_t max_bytes) {
  std::string out;
  appendDisplayText(out, s, max_bytes);
  return out;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto x = static_cast<unsigned char>(a[i]);
    const auto y = static_cast<unsigned char>(b[i]);
    if (std::tolower(x) != std::tolower(y)) return false;
  }
  return true;
}

namespace {
std::string_view trimAny(std::string_view s, std::string_view chars) {
  const size_t first = s.find_first_not_of(chars);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(chars) - first + 1);
}
}  // namespace

std::string_view trimOws(std::string_view s) {
  return trimAny(s, " \t");
}

std::string_view trimSpace(std::string_view s) {
  return trimAny(s, " \t\r\n");
}

}  // namespace tsk
