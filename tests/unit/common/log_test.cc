#include "common/log.h"
#include "common/text.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>

namespace tsk {
namespace {

std::string capture(LogFormat format, LogLevel min, auto&& body) {
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* f = open_memstream(&buf, &len);
  {
    Logger log(f, format, min);
    body(log);
  }
  std::fclose(f);
  std::string out(buf, len);
  std::free(buf);
  return out;
}

TEST(Logger, JsonLinesAreValidJsonWithEscapedFields) {
  const auto out = capture(LogFormat::Json, LogLevel::Info, [](Logger& log) {
    log.info("bus connected", {{"socket", "/tmp/a \"b\"\n"}});
  });
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["msg"], "bus connected");
  EXPECT_EQ(j["socket"], "/tmp/a \"b\"\n");
}

// An ErrMessage with a 0xff byte used to make the JSON log line invalid.
TEST(Logger, InvalidUtf8InAFieldStillGivesAValidJsonLine) {
  const auto out = capture(LogFormat::Json, LogLevel::Info, [](Logger& log) {
    log.warn("tailscaled reported an error\xc3", {{"err_message", "bad \xff byte \xed\xa0\x80"}});
  });
  const auto j = nlohmann::json::parse(out);  // throws on invalid UTF-8
  EXPECT_EQ(j["err_message"], "bad \xef\xbf\xbd byte \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(j["msg"], "tailscaled reported an error\xef\xbf\xbd");
  const auto text = capture(LogFormat::Text, LogLevel::Info, [](Logger& log) {
    log.warn("x", {{"err_message", "\xff"}});
  });
  EXPECT_TRUE(isValidUtf8(text)) << text;
}

TEST(Logger, EveryFieldIsBounded) {
  const auto out = capture(LogFormat::Json, LogLevel::Info, [](Logger& log) {
    log.warn(std::string(100000, 'm'), {{"err_message", std::string(100000, 'x')}});
  });
  const auto j = nlohmann::json::parse(out);
  EXPECT_LE(j["msg"].get<std::string>().size(), kMaxLogFieldBytes);
  EXPECT_LE(j["err_message"].get<std::string>().size(), kMaxLogFieldBytes);
  EXPECT_TRUE(j["err_message"].get<std::string>().ends_with("...(100000 bytes)"));
}

TEST(Logger, TextQuotesValuesWithSpaces) {
  const auto out = capture(LogFormat::Text, LogLevel::Info, [](Logger& log) {
    log.warn("write failed", {{"reason", "connection refused"}, {"code", "503"}});
  });
  EXPECT_NE(out.find(" WARN write failed reason=\"connection refused\" code=503\n"),
            std::string::npos)
      << out;
}

TEST(Logger, DropsLinesBelowMinimumLevel) {
  const auto out = capture(LogFormat::Text, LogLevel::Warn, [](Logger& log) {
    log.info("hidden");
    log.error("shown");
  });
  EXPECT_EQ(out.find("hidden"), std::string::npos);
  EXPECT_NE(out.find("shown"), std::string::npos);
}

}  // namespace
}  // namespace tsk
