#include "common/log.h"

#include <chrono>
#include <ctime>

#include "common/text.h"

namespace tsk {
namespace {

std::string timestamp() {
  const auto now = std::chrono::system_clock::now();
  const auto t = std::chrono::system_clock::to_time_t(now);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

const char* levelName(LogLevel l, bool upper) {
  switch (l) {
    case LogLevel::Debug:
      return upper ? "DEBUG" : "debug";
    case LogLevel::Info:
      return upper ? "INFO" : "info";
    case LogLevel::Warn:
      return upper ? "WARN" : "warn";
    case LogLevel::Error:
      return upper ? "ERROR" : "error";
  }
  return "?";
}

bool needsQuotes(std::string_view v) {
  if (v.empty()) return true;
  for (char c : v) {
    if (c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20) return true;
  }
  return false;
}

}  // namespace

void appendJsonEscaped(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += ch;
        }
    }
  }
}

void Logger::log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
  if (level < min_ || out_ == nullptr) return;
  // Every message and field value is made valid UTF-8 and bounded first (common/text.h): a
  // field may hold text from the bus or a server.
  const std::string text = displayText(msg, kMaxLogFieldBytes);
  std::string line;
  line.reserve(128);
  if (format_ == LogFormat::Json) {
    line += "{\"ts\":\"" + timestamp() + "\",\"level\":\"";
    line += levelName(level, false);
    line += "\",\"msg\":\"";
    appendJsonEscaped(line, text);
    line += '"';
    for (const auto& [k, v] : fields) {
      line += ",\"";
      appendJsonEscaped(line, displayText(k, kMaxLogFieldBytes));
      line += "\":\"";
      appendJsonEscaped(line, displayText(v, kMaxLogFieldBytes));
      line += '"';
    }
    line += "}\n";
  } else {
    line += timestamp();
    line += ' ';
    line += levelName(level, true);
    line += ' ';
    line += text;
    for (const auto& [k, raw] : fields) {
      const std::string v = displayText(raw, kMaxLogFieldBytes);
      line += ' ';
      line += displayText(k, kMaxLogFieldBytes);
      line += '=';
      if (needsQuotes(v)) {
        line += '"';
        appendJsonEscaped(line, v);
        line += '"';
      } else {
        line += v;
      }
    }
    line += '\n';
  }
  std::lock_guard lock(mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

Logger& Logger::null() {
  static Logger logger(nullptr);
  return logger;
}

}  // namespace tsk
