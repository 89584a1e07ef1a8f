#pragma once
// Helpers for the watcher integration tests: a temporary directory for sockets, polling with a
// generous deadline (never a fixed sleep), and reading whole lines from a bus body with a
// watchdog so a missing line fails the test instead of hanging it.
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "watcher/bus_client.h"

namespace tsk::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/tsk-bus-XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Polls `done` until it holds or `limit` passes. Returns whether it held.
inline bool eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return done();
}

// Reads the open watch body of `client` until `n` complete lines arrived (or the body ended, or
// `limit` passed: then the client is stopped). Returns the lines without their '\n'.
inline std::vector<std::string> readLines(
    watcher::BusClient& client, size_t n, watcher::BodyEnd* end_out = nullptr,
    std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  std::vector<std::string> lines;
  std::string partial;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, limit, [&] { return done; })) client.stop();
  });
  const watcher::BodyEnd end = client.readBody([&](std::string_view bytes) {
    for (char c : bytes) {
      if (c == '\n') {
        lines.push_back(std::move(partial));
        partial.clear();
      } else {
        partial += c;
      }
    }
    return lines.size() < n;
  });
  {
    std::lock_guard lock(mu);
    done = true;
  }
  cv.notify_all();
  watchdog.join();
  if (end_out != nullptr) *end_out = end;
  return lines;
}

}  // namespace tsk::testing
