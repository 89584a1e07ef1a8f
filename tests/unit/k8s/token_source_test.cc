#include "k8s/token_source.h"
#include "tests/support/util/temp_dir.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace tsk::k8s {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

class TokenSourceTest : public ::testing::Test {
 protected:
  void SetUp() override { file_ = (dir_ / "token").string(); }
  void writeToken(const std::string& text) {
    std::ofstream(file_ + ".tmp") << text;
    fs::rename(file_ + ".tmp", file_);  // atomic, like kubelet's symlink swap
  }

  tsk::testing::TempDir tmp_{"tsk-token"};
  fs::path dir_ = tmp_.path();
  std::string file_;
  ManualClock clock_;
};

// A Logger whose output the test can read.
class CapturedLog {
 public:
  CapturedLog() : out_(open_memstream(&buf_, &len_)), log_(out_) {}
  ~CapturedLog() {
    std::fclose(out_);
    std::free(buf_);
  }
  CapturedLog(const CapturedLog&) = delete;
  CapturedLog& operator=(const CapturedLog&) = delete;
  Logger& logger() { return log_; }
  std::string text() {
    std::fflush(out_);
    return std::string(buf_, len_);
  }

 private:
  char* buf_ = nullptr;
  size_t len_ = 0;
  std::FILE* out_;
  Logger log_;
};

TEST_F(TokenSourceTest, StaticTokenIsReturnedAsIs) {
  TokenSource tokens("abc", "", seconds(60), clock_, Logger::null());
  EXPECT_FALSE(tokens.refreshable());
  EXPECT_EQ(tokens.token().value(), "abc");
}

TEST_F(TokenSourceTest, NoCredentialsGiveAnEmptyToken) {
  TokenSource tokens("", "", seconds(60), clock_, Logger::null());
  EXPECT_EQ(tokens.token().value(), "");
}

TEST_F(TokenSourceTest, FileTokenIsTrimmed) {
  writeToken("  tok-1\n");
  TokenSource tokens("", file_, seconds(60), clock_, Logger::null());
  EXPECT_TRUE(tokens.refreshable());
  EXPECT_EQ(tokens.token().value(), "tok-1");
}

TEST_F(TokenSourceTest, FileTakesPrecedenceOverStaticToken) {
  writeToken("from-file");
  TokenSource tokens("static", file_, seconds(60), clock_, Logger::null());
  EXPECT_EQ(tokens.token().value(), "from-file");
}

TEST_F(TokenSourceTest, RereadsTheFileOnlyAfterTheRefreshPeriod) {
  writeToken("tok-1");
  TokenSource tokens("", file_, seconds(60), clock_, Logger::null());
  EXPECT_EQ(tokens.token().value(), "tok-1");
  writeToken("tok-2");
  clock_.advance(seconds(59));
  EXPECT_EQ(tokens.token().value(), "tok-1");
  clock_.advance(seconds(1));
  EXPECT_EQ(tokens.token().value(), "tok-2");
}

TEST_F(TokenSourceTest, InvalidateRereadsAtOnce) {
  writeToken("tok-1");
  TokenSource tokens("", file_, seconds(60), clock_, Logger::null());
  EXPECT_EQ(tokens.token().value(), "tok-1");
  writeToken("tok-2");
  tokens.invalidate();
  EXPECT_EQ(tokens.token().value(), "tok-2");
}

TEST_F(TokenSourceTest, MissingFileIsAnErrorNamingThePath) {
  TokenSource tokens("", file_, seconds(60), clock_, Logger::null());
  auto token = tokens.token();
  ASSERT_FALSE(token.ok());
  EXPECT_NE(token.error().message.find(file_), std::string::npos) << token.error().message;
  EXPECT_NE(token.error().message.find("No such file"), std::string::npos);
}

TEST_F(TokenSourceTest, EmptyFileIsAnError) {
  writeToken("\n");
  TokenSource tokens("", file_, seconds(60), clock_, Logger::null());
  auto token = tokens.token();
  ASSERT_FALSE(token.ok());
  EXPECT_NE(token.error().message.find("is empty"), std::string::npos) << token.error().message;
}

TEST_F(TokenSourceTest, KeepsTheLastGoodTokenWhenTheFileVanishes) {
  writeToken("tok-1");
  TokenSource tokens("", file_, seconds(60), clock_, Logger::null());
  EXPECT_EQ(tokens.token().value(), "tok-1");
  fs::remove(file_);
  tokens.invalidate();
  EXPECT_EQ(tokens.token().value(), "tok-1");
}

TEST_F(TokenSourceTest, KeepsTheLastGoodTokenAndWarnsWhenTheFileGrowsTooLarge) {
  CapturedLog log;
  writeToken("tok-1");
  TokenSource tokens("", file_, seconds(60), clock_, log.logger());
  EXPECT_EQ(tokens.token().value(), "tok-1");
  writeToken(std::string(64 * 1024 + 1, 'x'));
  tokens.invalidate();
  EXPECT_EQ(tokens.token().value(), "tok-1");
  const std::string logged = log.text();
  EXPECT_NE(logged.find("WARN cannot re-read the bearer token file; keeping the previous token"),
            std::string::npos)
      << logged;
  EXPECT_NE(tokens.lastReadError().find(file_ + ": 65537 bytes, over the 64 KiB limit"),
            std::string::npos)
      << tokens.lastReadError();
  EXPECT_EQ(logged.find("xxxx"), std::string::npos) << "token content must not be logged";
}

TEST_F(TokenSourceTest, KeepsTheLastGoodTokenWhenTheFileBecomesADirectory) {
  writeToken("tok-1");
  TokenSource tokens("", file_, seconds(60), clock_, Logger::null());
  EXPECT_EQ(tokens.token().value(), "tok-1");
  fs::remove(file_);
  fs::create_directory(file_);
  clock_.advance(seconds(61));
  EXPECT_EQ(tokens.token().value(), "tok-1");
  EXPECT_NE(tokens.lastReadError().find("a directory, not a regular file"), std::string::npos)
      << tokens.lastReadError();
  // Once the file is good again, the next refresh picks it up.
  fs::remove(file_);
  writeToken("tok-2");
  clock_.advance(seconds(61));
  EXPECT_EQ(tokens.token().value(), "tok-2");
}

TEST_F(TokenSourceTest, ATokenWithCrLfInsideIsRefusedWithoutShowingIt) {
  writeToken("tok-1\r\nImpersonate-User: system:admin\n");
  TokenSource tokens("", file_, seconds(60), clock_, Logger::null());
  auto token = tokens.token();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.error().message,
            "the bearer token from the token file " + file_ +
                " holds a carriage return (CR) at byte 6, which cannot be sent in an HTTP header "
                "(it would end the Authorization header and start others); the agent refuses it: "
                "write the token alone, on one line");
  EXPECT_EQ(tokens.lastReadError(), token.error().message);
}

TEST_F(TokenSourceTest, AStaticTokenWithAControlCharacterIsRefused) {
  TokenSource tokens("tok\x01", "", seconds(60), clock_, Logger::null());
  auto token = tokens.token();
  ASSERT_FALSE(token.ok());
  EXPECT_NE(token.error().message.find("holds a control character at byte 4"), std::string::npos)
      << token.error().message;
  TokenSource tab("tok\tx", "", seconds(60), clock_, Logger::null());  // as Go, a tab is allowed
  EXPECT_TRUE(tab.token().ok());
}

TEST_F(TokenSourceTest, ARereadThatGainsALineFeedKeepsTheGoodTokenAndSaysWhy) {
  CapturedLog log;
  writeToken("tok-1");
  TokenSource tokens("", file_, seconds(60), clock_, log.logger());
  EXPECT_EQ(tokens.token().value(), "tok-1");
  EXPECT_EQ(tokens.lastReadError(), "");
  writeToken("tok-2\nImpersonate-User: system:admin");
  tokens.invalidate();
  EXPECT_EQ(tokens.token().value(), "tok-1");
  EXPECT_NE(tokens.lastReadError().find("holds a line feed (LF) at byte 6"), std::string::npos)
      << tokens.lastReadError();
  EXPECT_NE(log.text().find("cannot re-read the bearer token file"), std::string::npos);
  EXPECT_EQ(log.text().find("system:admin"), std::string::npos) << log.text();
  writeToken("tok-3");
  tokens.invalidate();
  EXPECT_EQ(tokens.token().value(), "tok-3");
  EXPECT_EQ(tokens.lastReadError(), "");
}

TEST_F(TokenSourceTest, OversizedFileIsAnErrorNamingTheFileAndTheLimit) {
  writeToken(std::string(64 * 1024 + 1, 'x'));
  TokenSource tokens("", file_, seconds(60), clock_, Logger::null());
  auto token = tokens.token();
  ASSERT_FALSE(token.ok());
  EXPECT_EQ(token.error().message,
            "bearer token: cannot read " + file_ +
                ": 65537 bytes, over the 64 KiB limit; check the service-account token mount (or "
                "the kubeconfig tokenFile path)");
}

TEST_F(TokenSourceTest, DeviceIsAnErrorAndDoesNotHang) {
  TokenSource tokens("", "/dev/zero", seconds(60), clock_, Logger::null());
  auto token = tokens.token();
  ASSERT_FALSE(token.ok());
  EXPECT_NE(token.error().message.find("cannot read /dev/zero: a character device, not a regular "
                                       "file (only regular files of at most 64 KiB are read)"),
            std::string::npos)
      << token.error().message;
}

TEST_F(TokenSourceTest, DirectoryIsAnError) {
  fs::create_directory(file_);
  TokenSource tokens("", file_, seconds(60), clock_, Logger::null());
  auto token = tokens.token();
  ASSERT_FALSE(token.ok());
  EXPECT_NE(token.error().message.find(file_ + ": a directory, not a regular file"),
            std::string::npos)
      << token.error().message;
}

}  // namespace
}  // namespace tsk::k8s
