#include "agent/http_request.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <vector>

#include "common/text.h"

namespace tsk::agent {
namespace {

bool isTchar(char c) {  // RFC 9110 section 5.6.2
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
bool isToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), isTchar);
}
// Whether the comma-separated list `value` holds `token` (case-insensitive).
bool listHas(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    if (iequals(trimOws(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

size_t requestHeadEnd(std::string_view in) {
  size_t start = 0;
  // Empty lines before the request line are skipped (RFC 9112 section 2.2).
  while (start < in.size() && (in[start] == '\r' || in[start] == '\n')) ++start;
  for (size_t nl = in.find('\n', start); nl != std::string_view::npos; nl = in.find('\n', nl + 1)) {
    if (nl + 1 < in.size() && in[nl + 1] == '\n') return nl + 2;
    if (nl + 2 < in.size() && in[nl + 1] == '\r' && in[nl + 2] == '\n') return nl + 3;
  }
  return std::string_view::npos;
}

int parseRequestHead(std::string_view head, RequestHead& out) {
  std::vector<std::string_view> lines;
  while (!head.empty()) {
    const size_t nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\r') != std::string_view::npos) return 400;  // a bare CR
    lines.push_back(line);
    head.remove_prefix(nl == std::string_view::npos ? head.size() : nl + 1);
  }
  while (!lines.empty() && lines.front().empty()) lines.erase(lines.begin());
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.empty()) return 400;

  // request-line = method SP request-target SP HTTP-version
  const std::string_view line = lines.front();
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return 400;
  }
  out.method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!isToken(out.method) || target.empty()) return 400;
  for (const char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return 400;
  }
  bool http10 = false;
  if (version == "HTTP/1.0") {
    http10 = true;
  } else if (version != "HTTP/1.1") {
    const bool looks_like_http = version.size() == 8 && version.starts_with("HTTP/") &&
                                 std::isdigit(static_cast<unsigned char>(version[5])) &&
                                 version[6] == '.' &&
                                 std::isdigit(static_cast<unsigned char>(version[7]));
    return looks_like_http ? 505 : 400;
  }
  // origin-form, or absolute-form (RFC 9112 section 3.2.2: a server must accept it).
  if (target.size() > 8 &&
      (iequals(target.substr(0, 7), "http://") || iequals(target.substr(0, 8), "https://"))) {
    const size_t authority = target.find("//") + 2;
    const size_t slash = target.find('/', authority);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  if (target.front() != '/' && !(target == "*" && out.method == "OPTIONS")) return 400;
  out.path = target.substr(0, target.find('?'));

  size_t hosts = 0;
  bool close = http10;  // HTTP/1.0: one request per connection
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string_view field = lines[i];
    const size_t colon = field.find(':');
    // No obs-fold, no whitespace between the name and the colon (RFC 9112 section 5).
    if (colon == std::string_view::npos || !isToken(field.substr(0, colon))) return 400;
    const std::string_view name = field.substr(0, colon);
    const std::string_view value = trimOws(field.substr(colon + 1));
    for (const char c : value) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return 400;
    }
    if (iequals(name, "Host")) {
      ++hosts;
    } else if (iequals(name, "Connection")) {
      if (listHas(value, "close")) close = true;
    } else if (iequals(name, "Content-Length")) {
      uint64_t n = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || ec != std::errc() || end != value.data() + value.size()) return 400;
      if (n > 0) out.has_body = true;
    } else if (iequals(name, "Transfer-Encoding")) {
      out.has_body = true;
    }
  }
  if (!http10 && hosts != 1) return 400;  // RFC 9112 section 3.2
  out.keep_alive = !close;
  return 0;
}

}  // namespace tsk::agent
