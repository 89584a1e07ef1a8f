#include "common/text.h"

#include <gtest/gtest.h>

#include <string>

namespace tsk {
namespace {

const std::string kFffd = "\xef\xbf\xbd";

TEST(Utf8, AcceptsWellFormedText) {
  EXPECT_TRUE(isValidUtf8(""));
  EXPECT_TRUE(isValidUtf8("1.80.0-t1234"));
  EXPECT_TRUE(isValidUtf8("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf"));
}

TEST(Utf8, RejectsEveryKindOfIllFormedSequence) {
  for (const std::string bad : {
           "\xff", "\xfe", "\x80",          // never valid / a stray continuation byte
           "\xc3",                          // truncated
           "\xc0\xaf", "\xe0\x80\xaf",      // overlong
           "\xed\xa0\x80",                  // UTF-16 surrogate
           "\xf4\x90\x80\x80", "\xf5\x80",  // over U+10FFFF
       }) {
    EXPECT_FALSE(isValidUtf8("a" + bad + "b")) << bad.size();
  }
}

TEST(DisplayText, ReplacesEachInvalidByteWithUfffd) {
  EXPECT_EQ(displayText("1.80\xff\xfe", 256), "1.80" + kFffd + kFffd);
  EXPECT_EQ(displayText("a\xc3", 256), "a" + kFffd);
  EXPECT_EQ(displayText("\xe2\x82\xac ok", 256), "\xe2\x82\xac ok");
  EXPECT_TRUE(isValidUtf8(displayText("\xed\xa0\x80\xf0\x9f", 256)));
}

TEST(DisplayText, CutsLongTextAtACharacterBoundaryAndSaysHowLong) {
  std::string euros;
  for (int i = 0; i < 100; ++i) euros += "\xe2\x82\xac";  // 300 bytes
  const std::string out = displayText(euros, 64);
  EXPECT_LE(out.size(), 64u);
  EXPECT_TRUE(out.ends_with("...(300 bytes)")) << out;
  EXPECT_TRUE(isValidUtf8(out));
  EXPECT_EQ(displayText(std::string(64, 'a'), 64), std::string(64, 'a'));  // fits: unchanged
  EXPECT_EQ(displayText("abcdef", 4), "abcd");                             // a tiny bound just cuts
}

}  // namespace
}  // namespace tsk

namespace tsk {
namespace {

TEST(HttpText, IequalsIgnoresAsciiCaseOnly) {
  EXPECT_TRUE(iequals("Content-Length", "content-length"));
  EXPECT_FALSE(iequals("Content-Length", "Content-Lengt"));
  EXPECT_FALSE(iequals("caf\xc3\xa9", "CAF\xc3\x89"));
}

TEST(HttpText, TrimOwsKeepsCrLfAndTrimSpaceDoesNot) {
  EXPECT_EQ(trimOws(" \tchunked\t "), "chunked");
  EXPECT_EQ(trimOws("\r\nx\r\n"), "\r\nx\r\n");
  EXPECT_EQ(trimSpace("\r\n x \r\n"), "x");
  EXPECT_EQ(trimSpace(" \t\r\n"), "");
  EXPECT_EQ(trimOws(""), "");
}

}  // namespace
}  // namespace tsk
