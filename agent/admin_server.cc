#include "agent/admin_server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace tsk::agent {
namespace {

constexpr size_t kMaxBodyBytes = 1024;
constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

void probe(const ProbeResult& r, httplib::Response& res) {
  res.status = r.ok ? 200 : 503;
  res.set_content(r.ok ? std::string("ok\n") : r.reason + "\n", "text/plain; charset=utf-8");
}

// Plain SO_REUSEADDR (cpp-httplib's default SO_REUSEPORT would let a second agent share the
// port silently), and dual-stack for "::".
void socketOptions(int sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  int no = 0;
  setsockopt(sock, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof no);  // fails harmlessly on v4
}

}  // namespace

AdminServer::AdminServer(AdminHandlers handlers, Logger& log)
    : handlers_(std::move(handlers)), log_(log), server_(std::make_unique<httplib::Server>()) {}

AdminServer::~AdminServer() {
  stop();
}

Status AdminServer::start(const HostPort& addr) {
  auto& s = *server_;
  s.set_socket_options(socketOptions);
  s.set_payload_max_length(kMaxBodyBytes);
  s.set_read_timeout(5, 0);
  s.set_write_timeout(5, 0);
  s.set_keep_alive_max_count(100);
  s.new_task_queue = [] { return new httplib::ThreadPool(2); };
  s.set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
    if (req.method == "GET" || req.method == "HEAD")
      return httplib::Server::HandlerResponse::Unhandled;
    res.status = 405;
    res.set_header("Allow", "GET, HEAD");
    res.set_content("method not allowed\n", "text/plain; charset=utf-8");
    return httplib::Server::HandlerResponse::Handled;
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(handlers_.metrics ? handlers_.metrics() : std::string(), kMetricsContentType);
  });
  s.Get("/livez", [this](const httplib::Request&, httplib::Response& res) {
    probe(handlers_.livez ? handlers_.livez() : ProbeResult{true, ""}, res);
  });
  s.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
    probe(handlers_.readyz ? handlers_.readyz() : ProbeResult{true, ""}, res);
  });
  s.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    probe(handlers_.healthz ? handlers_.healthz() : ProbeResult{true, ""}, res);
  });

  const std::string where =
      (addr.host.find(':') != std::string::npos ? "[" + addr.host + "]" : addr.host) + ":" +
      std::to_string(addr.port);
  errno = 0;
  if (addr.port == 0) {
    port_ = s.bind_to_any_port(addr.host);
  } else {
    port_ = s.bind_to_port(addr.host, addr.port) ? addr.port : -1;
  }
  if (port_ <= 0) {
    const std::string cause = errno ? std::strerror(errno) : "address not usable";
    return Error{"cannot listen on admin address " + where + ": " + cause +
                 "; choose another with --admin-addr / TS_LOCAL_ADDR_PORT"};
  }
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // cpp-httplib's stop() does nothing until the loop has marked itself running; wait for that
  // so a stop() right after start() cannot leave the thread blocked in accept().
  for (int i = 0; i < 5000 && !server_->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  log_.info("admin server listening",
            {{"addr", where.substr(0, where.rfind(':')) + ":" + std::to_string(port_)}});
  return {};
}

void AdminServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace tsk::agent
