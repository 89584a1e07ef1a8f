#pragma once
// AdminServer: the agent's HTTP endpoints on one cpp-httplib server.
//   GET /metrics  Prometheus text 0.0.4
//   GET /livez    200 "ok" while the agent's loops run, else 503 + reason
//   GET /readyz   200 "ok" when connected, Running and in sync, else 503 + one-line reason
//   GET /healthz  upstream containerboot semantics: 200 "ok" when the node has a tailnet IP,
//                 else 503 "node currently has no tailscale IPs"
// Other methods get 405, other paths 404. The limits (AdminLimits) bound what one client can
// cost: a request (line, headers, body) over 16 KiB is refused (431 or 400) and its connection
// closed, a body over 1 KiB gets 413, a request must arrive whole within 2 s of the server
// waiting for it (idle and slow connections are closed), and a connection serves at most 5
// requests. 8 worker threads serve connections, so a few idle or slow clients cannot keep
// kubelet's probes waiting. cpp-httplib 0.11 bounds none of this itself (no header count
// limit), so the server replaces its per-connection loop.
//
//   AdminServer admin({.metrics = ..., .livez = ..., .readyz = ..., .healthz = ...}, log);
//   if (auto st = admin.start({"127.0.0.1", 0}); !st) ...;
//   int port = admin.port();
//   admin.stop();
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "agent/config.h"
#include "common/log.h"
#include "common/result.h"

namespace httplib {
class Server;
}

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
  size_t max_request_bytes = 16 * 1024;  // request line + headers + body, per request
  size_t max_body_bytes = 1024;
  std::chrono::milliseconds request_read_timeout{2'000};  // from waiting to the whole request
  std::chrono::milliseconds response_write_timeout{5'000};
  size_t max_requests_per_connection = 5;
  size_t worker_threads = 8;
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
  void stop();

 private:
  AdminHandlers handlers_;
  Logger& log_;
  const AdminLimits limits_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace tsk::agent
