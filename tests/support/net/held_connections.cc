#include "tests/support/net/held_connections.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

namespace tsk::testing {
namespace {

// A non-blocking connection to 127.0.0.1:port from 127.0.0.<source_octet>; -1 on failure.
int connectFrom(int port, int source_octet) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in src{};
  src.sin_family = AF_INET;
  src.sin_addr.s_addr = htonl((127u << 24) | static_cast<uint32_t>(source_octet));
  ::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src);  // else the kernel picks 127.0.0.1
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<uint16_t>(port));
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0 && errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

HeldConnections::HeldConnections(int port, size_t count, Mode mode)
    : thread_([this, port, count, mode] { run(port, count, mode); }) {}

HeldConnections::~HeldConnections() {
  stop_ = true;
  thread_.join();
}

void HeldConnections::run(int port, size_t count, Mode mode) {
  using Clock = std::chrono::steady_clock;
  static const std::string kHead = "GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  struct Held {
    int fd = -1;
    size_t sent = 0;
  };
  std::vector<Held> held(count);
  const auto source = [](size_t i) { return 2 + static_cast<int>(i % 32); };
  for (size_t i = 0; i < count; ++i) held[i].fd = connectFrom(port, source(i));
  std::vector<pollfd> fds;
  auto next_byte = Clock::now();
  while (!stop_) {
    fds.clear();
    for (const auto& h : held) fds.push_back({h.fd, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 50);
    const bool trickle = mode == Mode::Trickle && Clock::now() >= next_byte;
    if (trickle) next_byte = Clock::now() + std::chrono::milliseconds(500);
    for (size_t i = 0; i < count; ++i) {
      // Anything from the server (an answer, its FIN, a reset) ends the connection: reopen it.
      bool reopen = held[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0;
      if (!reopen && trickle) {
        const char c = kHead[held[i].sent % kHead.size()];
        if (::send(held[i].fd, &c, 1, MSG_NOSIGNAL) == 1) ++held[i].sent;
      }
      if (reopen) {
        if (held[i].fd >= 0) {
          ::close(held[i].fd);
          ++reopened_;
        }
        held[i] = {connectFrom(port, source(i)), 0};
      }
    }
    ++rounds_;
  }
  for (const auto& h : held) {
    if (h.fd >= 0) ::close(h.fd);
  }
}

size_t raiseFdLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  lim.rlim_cur = lim.rlim_max;
  setrlimit(RLIMIT_NOFILE, &lim);
  getrlimit(RLIMIT_NOFILE, &lim);
  return static_cast<size_t>(lim.rlim_cur);
}

}  // namespace tsk::testing
