#pragma once
// FakeTransport: a scripted BusTransport for driving the Watcher's loop without a socket. Each
// FakeSession is one openWatch(): its answer, the status body a get() returns, the body chunks
// readBody() hands over, and how the body then ends. Once the script is used up (or a session
// says `hold`), the call blocks until stop(), as a silent bus would; the test waits for that
// point with waitIdle() and then checks what the watcher did. Every call is recorded.
//
//   auto fake = std::make_unique<FakeTransport>();
//   fake->add(FakeSession::streaming({initial_line}).endingWith(BodyEndKind::Eof, "closed"));
//   fake->add(FakeSession::streaming({initial_line}).held());
//   FakeTransport& f = *fake;
//   Watcher w(opts, std::move(fake), observer, log);
//   w.start();
//   ASSERT_TRUE(f.waitIdle());
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "watcher/bus_client.h"

namespace tsk::watcher::testing {

inline ResponseHead okHead(std::string tailscale_version = "1.103.0") {
  ResponseHead h;
  h.status = 200;
  h.tailscale_version = std::move(tailscale_version);
  return h;
}

struct FakeSession {
  // openWatch's answer: the head (status 200), or an Error (the attempt failed).
  Result<ResponseHead> head = okHead();
  // get()'s answer: the body, or an Error. Unset: get() fails.
  std::optional<Result<std::string>> status;
  std::vector<std::string> body;  // chunks, in order; the callback may stop them (returns false)
  BodyEnd end{BodyEndKind::Eof, "connection closed by the fake", 0};
  bool hold = false;              // after the chunks, block until stop() instead of `end`
  std::function<void()> on_read;  // runs when readBody starts (e.g. advance a ManualClock)

  // A session that opens and streams `chunks`, then ends with EOF.
  static FakeSession streaming(std::vector<std::string> chunks) {
    FakeSession s;
    s.body = std::move(chunks);
    return s;
  }
  // An attempt that fails before any session (openWatch gives the Error).
  static FakeSession refused(std::string why) {
    FakeSession s;
    s.head = Error{std::move(why)};
    return s;
  }
  FakeSession& held() {
    hold = true;
    return *this;
  }
  FakeSession& version(std::string v) {
    head = okHead(std::move(v));
    return *this;
  }
  FakeSession& statusReply(Result<std::string> reply) {
    status = std::move(reply);
    return *this;
  }
  FakeSession& endingWith(BodyEndKind kind, std::string message) {
    end = {kind, std::move(message), 0};
    return *this;
  }
  FakeSession& whileReading(std::function<void()> fn) {
    on_read = std::move(fn);
    return *this;
  }
};

class FakeTransport final : public BusTransport {
 public:
  void add(FakeSession s) {
    std::lock_guard lock(mu_);
    script_.push_back(std::move(s));
  }

  Result<ResponseHead> openWatch(uint64_t mask) override {
    std::unique_lock lock(mu_);
    calls_.push_back("open " + std::to_string(mask));
    if (script_.empty()) {
      blockUntilStopped(lock);
      return Error{"stopped"};
    }
    current_ = std::move(script_.front());
    script_.pop_front();
    ++sessions_;
    return current_.head;
  }

  BodyEnd readBody(const BodyCallback& on_bytes) override {
    std::unique_lock lock(mu_);
    calls_.push_back("read");
    if (stopped_) return {BodyEndKind::Stopped, "stopped", 0};
    const FakeSession s = current_;
    lock.unlock();
    if (s.on_read) s.on_read();
    uint64_t bytes = 0;
    for (const std::string& chunk : s.body) {
      bytes += chunk.size();
      ++chunks_delivered_;
      if (!on_bytes(chunk)) return {BodyEndKind::Stopped, "the callback stopped reading", bytes};
    }
    lock.lock();
    if (s.hold) {
      blockUntilStopped(lock);
      return {BodyEndKind::Stopped, "stopped", bytes};
    }
    BodyEnd end = s.end;
    end.bytes = bytes;
    return end;
  }

  void close() override {
    std::lock_guard lock(mu_);
    calls_.push_back("close");
  }

  Result<ResponseHead> get(std::string_view path_and_query, const BodyCallback& on_bytes,
                           uint64_t max_body) override {
    std::unique_lock lock(mu_);
    calls_.push_back("get " + std::string(path_and_query) + " max " + std::to_string(max_body));
    if (!current_.status) return Error{"the fake has no status body for this session"};
    const Result<std::string> status = *current_.status;
    lock.unlock();
    if (!status) return status.error();
    on_bytes(*status);
    return okHead(current_.head->tailscale_version);
  }

  void stop() override {
    std::lock_guard lock(mu_);
    stopped_ = true;
    cv_.notify_all();
  }

  // Waits until the watcher blocks in the fake (script used up, or a `hold` session read out).
  bool waitIdle(std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return idle_; });
  }

  std::vector<std::string> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  size_t sessions() const {
    std::lock_guard lock(mu_);
    return sessions_;
  }
  size_t chunksDelivered() const { return chunks_delivered_; }

 private:
  void blockUntilStopped(std::unique_lock<std::mutex>& lock) {
    idle_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return stopped_; });
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<FakeSession> script_;
  FakeSession current_;
  std::vector<std::string> calls_;
  size_t sessions_ = 0;
  std::atomic<size_t> chunks_delivered_{0};
  bool stopped_ = false;
  bool idle_ = false;
};

}  // namespace tsk::watcher::testing
