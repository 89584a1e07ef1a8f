#pragma once
// AdminServer: the agent's HTTP endpoints on one cpp-httplib server.
//   GET /metrics  Prometheus text 0.0.4
//   GET /livez    200 "ok" while the agent's loops run, else 503 + reason
//   GET /readyz   200 "ok" when connected, Running and in sync, else 503 + one-line reason
//   GET /healthz  upstream containerboot semantics: 200 "ok" when the node has a tailnet IP,
//                 else 503 "node currently has no tailscale IPs"
// Other methods get 405, other paths 404. Request bodies over 1 KiB are refused; headers are
// capped by cpp-httplib (8 KiB). A small thread pool serves requests.
//
//   AdminServer admin({.metrics = ..., .livez = ..., .readyz = ..., .healthz = ...}, log);
//   if (auto st = admin.start({"127.0.0.1", 0}); !st) ...;
//   int port = admin.port();
//   admin.stop();
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

class AdminServer {
 public:
  AdminServer(AdminHandlers handlers, Logger& log);
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
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace tsk::agent
