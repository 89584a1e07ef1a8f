#include "common/log.h"

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
