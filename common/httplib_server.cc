#include "common/httplib_server.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>

namespace tsk {
namespace {

// A request held in memory; what the server writes back is dropped.
class MemoryStream final : public httplib::Stream {
 public:
  explicit MemoryStream(std::string_view request) : in_(request) {}

  bool is_readable() const override { return pos_ < in_.size(); }
  bool is_writable() const override { return true; }
  ssize_t read(char* ptr, size_t size) override {
    const size_t n = std::min(size, in_.size() - pos_);
    std::memcpy(ptr, in_.data() + pos_, n);
    pos_ += n;
    return static_cast<ssize_t>(n);
  }
  ssize_t write(const char*, size_t size) override { return static_cast<ssize_t>(size); }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 0;
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    ip = "127.0.0.1";
    port = 0;
  }
  socket_t socket() const override { return INVALID_SOCKET; }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

class WarmUpServer final : public httplib::Server {
 public:
  void parseOne() {
    MemoryStream strm(
        "GET /warm-up HTTP/1.1\r\nHost: localhost\r\nAccept-Encoding: gzip\r\n"
        "Connection: close\r\n\r\n");
    bool connection_closed = false;
    process_request(strm, true, connection_closed, nullptr);
  }
};

}  // namespace

std::thread serveInBackground(httplib::Server& server) {
  static std::once_flag warmed_up;
  std::call_once(warmed_up, [] { WarmUpServer().parseOne(); });
  std::thread thread([&server] { server.listen_after_bind(); });
  // cpp-httplib 0.11 has no readiness notification (wait_until_ready() came later), so this polls
  // is_running() in real time for at most a few milliseconds at startup; nothing else waits here.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!server.is_running() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return thread;
}

}  // namespace tsk
