#pragma once
// eventually: waits for a condition by polling it (never a fixed sleep), with a generous deadline
// so that a slow machine does not fail a test that would pass. The one such helper of the tests.
//
//   ASSERT_TRUE(eventually([&] { return secretData().count("device_id"); }));
//   ASSERT_TRUE(eventually([&] { return httpGet(port, "/readyz").status == 200; }, 30s, 50ms));
#include <chrono>
#include <thread>

namespace tsk::testing {

// Polls `cond` every `poll` until it holds (true) or `timeout` passed (false, after a last look).
// A costly condition (an HTTP request, a file read) wants a longer `poll`.
template <typename F>
bool eventually(F&& cond, std::chrono::milliseconds timeout = std::chrono::seconds(20),
                std::chrono::milliseconds poll = std::chrono::milliseconds(2)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(poll);
  }
  return static_cast<bool>(cond());
}

}  // namespace tsk::testing
