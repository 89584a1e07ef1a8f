#pragma once
// Logger: structured log lines to a stream (stderr in production), as text
//   2026-11-26T15:04:05.123Z INFO bus connected socket=/tmp/ts.sock
// or as one JSON object per line ({"ts":...,"level":"info","msg":...,"socket":...}).
// Thread-safe. Callers never pass tokens, keys or Secret values as fields. The message and every
// field value are written as valid UTF-8 of at most kMaxLogFieldBytes (common/text.h), so text
// from the bus or a server can neither break a JSON line nor make it unbounded.
#include <cstdio>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace tsk {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };
enum class LogFormat { Text, Json };

using LogField = std::pair<std::string_view, std::string>;

class Logger {
 public:
  explicit Logger(std::FILE* out = stderr, LogFormat format = LogFormat::Text,
                  LogLevel min = LogLevel::Info)
      : out_(out), format_(format), min_(min) {}

  void setFormat(LogFormat f) { format_ = f; }
  void setLevel(LogLevel l) { min_ = l; }

  void log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});
  void debug(std::string_view m, std::initializer_list<LogField> f = {}) {
    log(LogLevel::Debug, m, f);
  }
  void info(std::string_view m, std::initializer_list<LogField> f = {}) {
    log(LogLevel::Info, m, f);
  }
  void warn(std::string_view m, std::initializer_list<LogField> f = {}) {
    log(LogLevel::Warn, m, f);
  }
  void error(std::string_view m, std::initializer_list<LogField> f = {}) {
    log(LogLevel::Error, m, f);
  }

  // A logger that drops everything (tests, benchmarks).
  static Logger& null();

 private:
  std::FILE* out_;
  LogFormat format_;
  LogLevel min_;
  std::mutex mu_;
};

// Appends `s` to `out` as the inside of a JSON string (quotes not included). The one JSON
// escaping path of the project.
void appendJsonEscaped(std::string& out, std::string_view s);

}  // namespace tsk
