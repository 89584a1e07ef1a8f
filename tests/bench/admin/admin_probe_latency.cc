// admin_probe_latency: how long a probe (GET /livez on a fresh connection) takes while other
// clients hold connections to the admin server open. Prints p50 / p99 / max and the probes that
// got no answer within 30 s, for each number of held connections. A measurement, never a test.
//
//   admin_probe_latency PORT [SAMPLES=50] [HELD=0,16,64,1000] [MODE=idle|slow]
//
// The held connections are tests/support/net's HeldConnections: `idle` ones send nothing, `slow`
// ones a request head one byte every 500 ms, each reopened as soon as the server closes it. Run it
// against any server on 127.0.0.1:PORT, e.g. the agent started with
// --admin-addr 127.0.0.1:9002.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/net/held_connections.h"

namespace {

using Clock = std::chrono::steady_clock;

// One GET /livez on a fresh connection; milliseconds, or -1 without an answer in 30 s.
double probeOnce(int port) {
  const auto start = Clock::now();
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<uint16_t>(port));
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  const std::string req = "GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  std::string reply;
  if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
    char buf[1024];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) reply.append(buf, n);
  }
  ::close(fd);
  if (reply.rfind("HTTP/1.1 200", 0) != 0) return -1;
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::vector<int> parseList(const char* s) {
  std::vector<int> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::atoi(item.c_str()));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PORT [SAMPLES=50] [HELD=0,16,64,1000] [idle|slow]\n", argv[0]);
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const int samples = argc > 2 ? std::atoi(argv[2]) : 50;
  const std::vector<int> helds = parseList(argc > 3 ? argv[3] : "0,16,64,1000");
  const bool slow = argc > 4 && std::strcmp(argv[4], "slow") == 0;
  tsk::testing::raiseFdLimit();

  std::printf("%-6s %-5s %8s %8s %8s %s\n", "held", "mode", "p50_ms", "p99_ms", "max_ms",
              "no_answer");
  for (const int held : helds) {
    auto hogs = std::make_unique<tsk::testing::HeldConnections>(
        port, held,
        slow ? tsk::testing::HeldConnections::Mode::Trickle
             : tsk::testing::HeldConnections::Mode::Idle);
    std::this_thread::sleep_for(std::chrono::milliseconds(held > 0 ? 500 : 0));
    std::vector<double> ms;
    int failed = 0;
    for (int i = 0; i < samples; ++i) {
      const double t = probeOnce(port);
      if (t < 0) {
        ++failed;
      } else {
        ms.push_back(t);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    hogs.reset();
    std::sort(ms.begin(), ms.end());
    const auto pct = [&](double p) {
      return ms.empty() ? -1.0 : ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))];
    };
    std::printf("%-6d %-5s %8.2f %8.2f %8.2f %d/%d\n", held, slow ? "slow" : "idle", pct(0.50),
                pct(0.99), ms.empty() ? -1.0 : ms.back(), failed, samples);
    std::fflush(stdout);
  }
  return 0;
}
