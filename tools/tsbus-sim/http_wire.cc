#include "tools/tsbus-sim/http_wire.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <ctime>

#include "common/text.h"

namespace tsk::tsbus_sim {
namespace {

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && hexDigit(s[i + 1]) >= 0 &&
               hexDigit(s[i + 2]) >= 0) {
      out += static_cast<char>(hexDigit(s[i + 1]) * 16 + hexDigit(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

// ipn.NotifyWatchOpt names by bit (H).
constexpr std::array<std::string_view, 19> kWatchOptNames = {
    "NotifyWatchEngineUpdates",
    "NotifyInitialState",
    "NotifyInitialPrefs",
    "NotifyInitialNetMap",
    "NotifyNoPrivateKeys",
    "NotifyInitialDriveShares",
    "NotifyInitialOutgoingFiles",
    "NotifyInitialHealthState",
    "NotifyRateLimit",
    "NotifyHealthActions",
    "NotifyInitialSuggestedExitNode",
    "NotifyInitialClientVersion",
    "NotifyPeerChanges",
    "NotifyNoNetMap",
    "NotifyInitialStatus",
    "NotifyPeerPatches",
    "NotifyInProcessNoDisconnect",
    "NotifySysPolicyChanges",
    "NotifyPeerWireGuardState",
};

}  // namespace

std::optional<std::string_view> HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return std::string_view(v);
  }
  return std::nullopt;
}

std::optional<HttpRequest> parseRequestHead(std::string_view head) {
  HttpRequest req;
  size_t eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || sp1 == 0) {
    return std::nullopt;
  }
  req.method = std::string(line.substr(0, sp1));
  req.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  const std::string_view proto = line.substr(sp2 + 1);
  if (proto == "HTTP/1.1") {
    req.minor_version = 1;
  } else if (proto == "HTTP/1.0") {
    req.minor_version = 0;
  } else {
    return std::nullopt;
  }
  if (req.target.empty()) return std::nullopt;
  const size_t q = req.target.find('?');
  req.path = req.target.substr(0, q);
  if (q != std::string::npos) req.query = req.target.substr(q + 1);
  while (eol != std::string_view::npos) {
    const size_t start = eol + 2;
    eol = head.find("\r\n", start);
    const std::string_view h =
        head.substr(start, eol == std::string_view::npos ? std::string_view::npos : eol - start);
    if (h.empty()) continue;
    const size_t colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    const std::string_view name = h.substr(0, colon);
    if (name.find_first_of(" \t") != std::string_view::npos) return std::nullopt;
    req.headers.emplace_back(std::string(name), std::string(trimOws(h.substr(colon + 1))));
  }
  return req;
}

std::optional<std::string> queryValue(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const size_t amp = query.find_first_of("&;");
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    const size_t eq = pair.find('=');
    const std::string key = percentDecode(pair.substr(0, eq));
    if (key != name) continue;
    return eq == std::string_view::npos ? std::string{} : percentDecode(pair.substr(eq + 1));
  }
  return std::nullopt;
}

std::optional<uint64_t> parseGoUint64(std::string_view s) {
  if (s.empty()) return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    const auto d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  return v;
}

std::optional<bool> parseGoBool(std::string_view s) {
  if (s == "1" || s == "t" || s == "T" || s == "TRUE" || s == "true" || s == "True") return true;
  if (s == "0" || s == "f" || s == "F" || s == "FALSE" || s == "false" || s == "False") {
    return false;
  }
  return std::nullopt;
}

std::string notifyWatchOptString(uint64_t bits) {
  std::vector<std::string> names;
  for (size_t i = 0; i < 64; ++i) {
    if ((bits & (1ull << i)) == 0) continue;
    if (i < kWatchOptNames.size()) {
      names.push_back("ipn." + std::string(kWatchOptNames[i]));
    } else {
      names.push_back("ipn.NotifyWatchOpt(" + std::to_string(1ull << i) + ")");
    }
  }
  if (names.empty()) return "0";
  if (names.size() == 1) return names[0];
  std::string out = "(";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) out += " | ";
    out += names[i];
  }
  return out + ")";
}

std::string httpDateNow() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::string responseHead(int status, std::string_view reason, HeaderList headers, bool chunked,
                         int64_t content_length) {
  std::sort(headers.begin(), headers.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  for (const auto& [k, v] : headers) out += k + ": " + v + "\r\n";
  out += "Date: " + httpDateNow() + "\r\n";
  if (chunked) {
    out += "Transfer-Encoding: chunked\r\n";
  } else if (content_length >= 0) {
    out += "Content-Length: " + std::to_string(content_length) + "\r\n";
  }
  out += "\r\n";
  return out;
}

void appendChunk(std::string& out, std::string_view data) {
  if (data.empty()) return;  // an empty chunk would end the body
  char hex[20];
  const int n = std::snprintf(hex, sizeof hex, "%zx\r\n", data.size());
  out.append(hex, static_cast<size_t>(n));
  out.append(data);
  out.append("\r\n");
}

// ---------------------------------------------------------------------------------------------

void JsonTabIndenter::newline(int depth) {
  buf_ += '\n';
  buf_.append(static_cast<size_t>(std::max(depth, 0)), '\t');
}

void JsonTabIndenter::put(char c) {
  if (in_string_) {
    buf_ += c;
    if (escape_) {
      escape_ = false;
    } else if (c == '\\') {
      escape_ = true;
    } else if (c == '"') {
      in_string_ = false;
    }
    return;
  }
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return;
  const bool closer = c == '}' || c == ']';
  if (open_pending_) {
    open_pending_ = false;
    if (closer) {  // an empty {} or []
      --depth_;
      buf_ += c;
      return;
    }
    newline(depth_);
  }
  switch (c) {
    case '{':
    case '[':
      buf_ += c;
      ++depth_;
      open_pending_ = true;
      break;
    case '}':
    case ']':
      --depth_;
      newline(depth_);
      buf_ += c;
      break;
    case ',':
      buf_ += c;
      newline(depth_);
      break;
    case ':':
      buf_ += ": ";
      break;
    case '"':
      in_string_ = true;
      buf_ += c;
      break;
    default:
      buf_ += c;
  }
}

void JsonTabIndenter::feed(std::string_view in) {
  for (char c : in) put(c);
  if (buf_.size() >= 64 * 1024) flush();
}

void JsonTabIndenter::flush() {
  if (!buf_.empty()) out_(buf_);
  buf_.clear();
}

void JsonMemberExtractor::feed(std::string_view in) {
  size_t emit_from = (state_ == State::InValue && value_started_) ? 0 : std::string_view::npos;
  for (size_t i = 0; i < in.size() && state_ != State::Done; ++i) {
    const char c = in[i];
    if (state_ == State::InValue) {
      if (!value_started_) {
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
        value_started_ = true;
        emit_from = i;
      }
      if (in_string_) {
        if (escape_) {
          escape_ = false;
        } else if (c == '\\') {
          escape_ = true;
        } else if (c == '"') {
          in_string_ = false;
          if (value_depth_ == 0) {  // a string value ends here
            out_(in.substr(emit_from, i + 1 - emit_from));
            state_ = State::Done;
          }
        }
        continue;
      }
      if (c == '"') {
        in_string_ = true;
      } else if (c == '{' || c == '[') {
        ++value_depth_;
      } else if (c == '}' || c == ']') {
        if (value_depth_ == 0) {  // a scalar value ended by the enclosing object
          out_(in.substr(emit_from, i - emit_from));
          state_ = State::Done;
        } else if (--value_depth_ == 0) {
          out_(in.substr(emit_from, i + 1 - emit_from));
          state_ = State::Done;
        }
      } else if (c == ',' && value_depth_ == 0) {
        out_(in.substr(emit_from, i - emit_from));
        state_ = State::Done;
      }
      continue;
    }
    // Outside the wanted value: track depth and depth-1 strings (key candidates).
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
        collecting_ = false;
      } else if (collecting_ && last_key_.size() <= key_.size()) {
        last_key_ += c;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string_ = true;
        collecting_ = depth_ == 1;
        if (collecting_) last_key_.clear();
        break;
      case '{':
      case '[':
        ++depth_;
        break;
      case '}':
      case ']':
        --depth_;
        break;
      case ':':
        if (depth_ == 1 && last_key_ == key_) {
          state_ = State::InValue;
          value_started_ = false;
          value_depth_ = 0;
        }
        break;
      default:
        break;
    }
  }
  if (state_ == State::InValue && value_started_ && emit_from != std::string_view::npos) {
    out_(in.substr(emit_from));
  }
}

}  // namespace tsk::tsbus_sim
