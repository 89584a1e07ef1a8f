#pragma once
// Text that leaves the process (log lines, metric label values) must be valid UTF-8 and bounded,
// whatever tailscaled or a server sent us: one invalid byte in a label makes Prometheus reject
// the whole scrape, and one in a JSON log line makes the line unparseable.
//
//   log.warn("...", {{"err_message", text}});   // the Logger applies displayText to every field
//   labels.push_back({"version", displayText(v, kMaxLabelBytes)});
//
// Invalid UTF-8 (a stray continuation byte, a truncated or overlong sequence, a surrogate, a
// code point over U+10FFFF) becomes U+FFFD, one per invalid byte, as Go's encoding/json and
// utf8.DecodeRune do. Text longer than the bound is cut at a character boundary and marked.
#include <cstddef>
#include <string>
#include <string_view>

namespace tsk {

// Bounds used by the Logger (per message and per field) and by the metrics (per label value).
inline constexpr size_t kMaxLogFieldBytes = 4096;
inline constexpr size_t kMaxLabelBytes = 256;

// Whether `s` is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
bool isValidUtf8(std::string_view s);

// Appends `s` to `out` as valid UTF-8 of at most `max_bytes` bytes (U+FFFD for each invalid
// byte). When `s` does not fit, it is cut at a character boundary and ends with
// "...(N bytes)" giving the original length; max_bytes below 32 simply cuts.
void appendDisplayText(std::string& out, std::string_view s, size_t max_bytes);
std::string displayText(std::string_view s, size_t max_bytes);

// ASCII case-insensitive equality (HTTP header names and tokens).
bool iequals(std::string_view a, std::string_view b);
// Without leading and trailing HTTP optional whitespace (space, tab).
std::string_view trimOws(std::string_view s);
// Without leading and trailing space, tab, CR and LF.
std::string_view trimSpace(std::string_view s);

}  // namespace tsk
