#pragma once
// TempDir: a fresh directory under $TMPDIR (or /tmp), removed with everything in it on
// destruction. The one temporary directory of the tests.
//
//   TempDir dir("tsk-bus");
//   o.socket_path = dir.file("tailscaled.sock");   // a std::string
//   const auto sa = dir.path() / "sa";              // path() is a std::filesystem::path
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace tsk::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "tsk-test") {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      throw std::runtime_error("mkdtemp " + pattern + " failed");
    }
    path_ = pattern;
    text_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return text_ + "/" + name; }

 private:
  std::filesystem::path path_;
  std::string text_;
};

}  // namespace tsk::testing
