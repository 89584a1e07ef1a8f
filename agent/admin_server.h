#pragma once
// AdminServer: the agent's HTTP endpoints, served by one thread of its own.
//   GET /metrics  Prometheus text 0.0.4
//   GET /livez    200 "ok" while the agent's loops run, else 503 + reason
//   GET /readyz   200 "ok" when connected, Running and in sync, else 503 + one-line reason
//   GET /healthz  upstream containerboot semantics: 200 "ok" when the node has a tailnet IP,
//                 else 503 "node currently has no tailscale IPs"
// HEAD is served like GET without the body. Other methods get 405, other paths 404. `Range` is
// ignored: the whole body, once.
//
// One thread polls the listening socket and every connection (non-blocking sockets, poll(2))
// and runs the handlers itself: they are quick (a probe reads a few atomics, /metrics
// serialises a small registry). An idle or slow client costs a socket and a few bytes, never a
// thread, and the limits (AdminLimits) bound what it can hold:
//   - a request head (line and headers) over 16 KiB is answered 431 and its connection closed;
//     a request body is never read (the endpoints take none): a request that announces one is
//     answered (405 for other methods) and its connection closed;
//   - a whole request head must arrive within 2 s of the server starting to wait for it, or the
//     connection is closed (408 when part of a request had arrived): idle and trickling
//     clients alike;
//   - a response must be written within 5 s;
//   - a connection serves at most 5 requests (the 5th answer says `Connection: close`);
//   - at most 256 connections are open. Beyond that, a new connection from the client address
//     that holds the most (or as many) is closed at once, and one from any other address takes
//     the place of the busiest address's longest-waiting connection: a flood of connections,
//     idle or trickling, cannot keep a probe from an address with fewer from being accepted and
//     answered.
// The HTTP/1.1 request head is parsed here (RFC 9112 section 3 and 5: request line, header
// fields, Host, Connection, Content-Length, Transfer-Encoding): cpp-httplib 0.11 cannot bound a
// request or a connection through its public API, and libmicrohttpd 0.9.75 has only an
// inactivity timeout and refuses new connections at its connection limit (see
// docs/OPERATIONS.md, "Probes").
//
//   AdminServer admin({.metrics = ..., .livez = ..., .readyz = ..., .healthz = ...}, log);
//   if (auto st = admin.start({"127.0.0.1", 0}); !st) ...;
//   int port = admin.port();
//   admin.stop();
#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <thread>

#include "agent/config.h"
#include "common/log.h"
#include "common/result.h"

namespace tsk::agent {

struct ProbeResult {
  bool ok = false;
  std::string reason;  // one line, shown in the 503 body
};

struct AdminHandlers {
  std::function<std::string()> metrics;
  std::function<ProbeResult()> livez;
  std::function<ProbeResult()> readyz;
  std::function<ProbeResult()> healthz;
};

struct AdminLimits {
  size_t max_request_bytes = 16 * 1024;                   // request line + headers, per request
  std::chrono::milliseconds request_read_timeout{2'000};  // from waiting to the whole head
  std::chrono::milliseconds response_write_timeout{5'000};
  size_t max_requests_per_connection = 5;
  size_t max_connections = 256;  // beyond it, one of the busiest client address's is closed
};

class AdminServer {
 public:
  AdminServer(AdminHandlers handlers, Logger& log, AdminLimits limits = {});
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds (an error names the address and the cause) and starts serving on a thread.
  Status start(const HostPort& addr);
  int port() const { return port_; }
  // Stops serving and closes every connection; idempotent.
  void stop();

 private:
  void serve();

  AdminHandlers handlers_;
  Logger& log_;
  const AdminLimits limits_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd: stop() wakes the serving thread through it
  std::thread thread_;
  int port_ = 0;
};

}  // namespace tsk::agent
