#include "k8s/token_source.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace tsk::k8s {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

class TokenSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "tsk-token-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    file_ = (dir_ / "token").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  void writeToken(const std::string& text) {
    std::ofstream(file_ + ".tmp") << text;
    fs::rename(file_ + ".tmp", file_);  // atomic, like kubelet's symlink swap
  }

  fs::path dir_;
  std::string file_;
  ManualClock clock_;
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

}  // namespace
}  // namespace tsk::k8s
