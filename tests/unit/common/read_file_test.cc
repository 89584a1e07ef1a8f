#include "common/read_file.h"
#include "tests/support/util/temp_dir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace tsk {
namespace {

namespace fs = std::filesystem;

// The limits the agent and the k8s module read with.
constexpr std::size_t kMaxConfigFileBytes = std::size_t{1} << 20;
constexpr std::size_t kMaxTokenFileBytes = std::size_t{64} << 10;

class ReadFileTest : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }
  static std::string failure(const std::string& path, std::size_t max_bytes) {
    auto r = readFileContents(path, max_bytes);
    return r.ok() ? "(read " + std::to_string(r->size()) + " bytes)" : r.error().message;
  }

  tsk::testing::TempDir tmp_{"tsk-read"};
  fs::path dir_ = tmp_.path();
};

TEST_F(ReadFileTest, ReadsARegularFileWhole) {
  const std::string content("line 1\n\0binary\n", 15);
  auto r = readFileContents(write("f", content), kMaxConfigFileBytes);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, content);
}

TEST_F(ReadFileTest, ReadsAnEmptyFile) {
  auto r = readFileContents(write("f", ""), kMaxTokenFileBytes);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "");
}

TEST_F(ReadFileTest, ReadsAFileOfExactlyTheLimit) {
  const std::string content(kMaxTokenFileBytes, 'x');
  auto r = readFileContents(write("f", content), kMaxTokenFileBytes);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->size(), kMaxTokenFileBytes);
}

TEST_F(ReadFileTest, FollowsSymlinksLikeKubeletsProjectedVolumes) {
  write("target", "tok");
  fs::create_symlink(dir_ / "target", dir_ / "token");
  auto r = readFileContents((dir_ / "token").string(), kMaxTokenFileBytes);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(*r, "tok");
}

TEST_F(ReadFileTest, RefusesAFileOverTheLimitNamingFileSizeAndLimit) {
  const std::string path = write("big", std::string(kMaxConfigFileBytes + 1, 'x'));
  EXPECT_EQ(failure(path, kMaxConfigFileBytes),
            "cannot read " + path + ": 1048577 bytes, over the 1 MiB limit");
  const std::string token = write("token", std::string(kMaxTokenFileBytes + 1, 'x'));
  EXPECT_EQ(failure(token, kMaxTokenFileBytes),
            "cannot read " + token + ": 65537 bytes, over the 64 KiB limit");
}

TEST_F(ReadFileTest, RefusesDevZeroWithoutReadingIt) {
  EXPECT_EQ(failure("/dev/zero", kMaxConfigFileBytes),
            "cannot read /dev/zero: a character device, not a regular file (only regular files "
            "of at most 1 MiB are read)");
}

TEST_F(ReadFileTest, RefusesADirectory) {
  const std::string path = (dir_ / "d").string();
  fs::create_directory(path);
  EXPECT_EQ(failure(path, kMaxTokenFileBytes),
            "cannot read " + path +
                ": a directory, not a regular file (only regular files of at most 64 KiB are "
                "read)");
}

TEST_F(ReadFileTest, RefusesAFifoWithoutBlocking) {
  const std::string path = (dir_ / "fifo").string();
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0);
  EXPECT_EQ(failure(path, kMaxTokenFileBytes),
            "cannot read " + path +
                ": a FIFO, not a regular file (only regular files of at most 64 KiB are read)");
}

TEST_F(ReadFileTest, MissingFileNamesThePathAndTheReason) {
  const std::string path = (dir_ / "missing").string();
  EXPECT_EQ(failure(path, kMaxTokenFileBytes),
            "cannot read " + path + ": No such file or directory");
}

TEST_F(ReadFileTest, StopsAtTheLimitWhenTheSizeIsNotKnownInAdvance) {
  // /proc files report size 0, so only the bounded read catches them.
  EXPECT_EQ(failure("/proc/self/status", 16),
            "cannot read /proc/self/status: over the 16 bytes limit");
}

}  // namespace
}  // namespace tsk
