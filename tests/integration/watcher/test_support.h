#pragma once
// Helpers for the watcher integration tests: reading whole lines from a bus body with a watchdog
// so a missing line fails the test instead of hanging it; and the shared TempDir and eventually
// (tests/support/util).
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/util/eventually.h"
#include "tests/support/util/temp_dir.h"
#include "watcher/bus_client.h"

namespace tsk::testing {

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
