#include "agent/admin_server.h"
#include "common/httplib_server.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>

namespace tsk::agent {
namespace {

using Steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

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

int millisUntil(Steady::time_point deadline) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - Steady::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, 60'000));
}

// Waits until `sock` is ready for `events` or `deadline` passes.
bool waitReady(int sock, short events, Steady::time_point deadline) {
  for (;;) {
    pollfd p{sock, events, 0};
    const int n = ::poll(&p, 1, millisUntil(deadline));
    if (n > 0) return true;
    if (n == 0 || errno != EINTR) return false;
  }
}

void ipAndPort(const sockaddr_storage& ss, std::string& ip, int& port) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
    inet_ntop(AF_INET, &a.sin_addr, buf, sizeof buf);
    port = ntohs(a.sin_port);
  } else if (ss.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
    inet_ntop(AF_INET6, &a.sin6_addr, buf, sizeof buf);
    port = ntohs(a.sin6_port);
  }
  ip = buf;
}

// One accepted connection as cpp-httplib's Stream, with the limits httplib 0.11 lacks: each
// request (line, headers and body together) may read at most `max_request_bytes`, and must
// arrive whole before its read deadline; each response must be written before its write
// deadline. Reads are buffered (httplib reads the head one byte at a time).
class BoundedStream final : public httplib::Stream {
 public:
  BoundedStream(int sock, const AdminLimits& limits) : sock_(sock), limits_(limits) {}

  // Resets the budget and the deadlines: the server now waits for the next request.
  void beginRequest() {
    read_budget_ = limits_.max_request_bytes;
    read_deadline_ = Steady::now() + limits_.request_read_timeout;
    write_deadline_.reset();
    written_ = 0;
  }
  bool budgetExhausted() const { return exhausted_; }
  // A read failed (budget, deadline, error or end of stream): the connection cannot go on.
  bool readFailed() const { return read_failed_; }
  bool wroteResponse() const { return written_ > 0; }

  bool is_readable() const override {
    return buffered() > 0 || waitReady(sock_, POLLIN, read_deadline_);
  }
  bool is_writable() const override {
    return waitReady(sock_, POLLOUT,
                     write_deadline_.value_or(Steady::now() + limits_.response_write_timeout));
  }

  ssize_t read(char* ptr, size_t size) override {
    if (read_budget_ == 0) {
      exhausted_ = read_failed_ = true;
      return -1;
    }
    if (buffered() == 0 && !fill()) {
      read_failed_ = true;
      return eof_ ? 0 : -1;
    }
    const size_t n = std::min({size, buffered(), read_budget_});
    std::memcpy(ptr, buf_.data() + off_, n);
    off_ += n;
    read_budget_ -= n;
    return static_cast<ssize_t>(n);
  }

  // All of it or -1: httplib writes a response head with a single call.
  ssize_t write(const char* ptr, size_t size) override {
    if (!write_deadline_) write_deadline_ = Steady::now() + limits_.response_write_timeout;
    size_t sent = 0;
    while (sent < size) {
      if (!waitReady(sock_, POLLOUT, *write_deadline_)) return -1;
      const ssize_t n = ::send(sock_, ptr + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) continue;
      if (n < 0) return -1;
      sent += static_cast<size_t>(n);
      written_ += static_cast<size_t>(n);
    }
    return static_cast<ssize_t>(size);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getpeername(sock_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) ipAndPort(ss, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (getsockname(sock_, reinterpret_cast<sockaddr*>(&ss), &len) == 0) ipAndPort(ss, ip, port);
  }
  int socket() const override { return sock_; }

 private:
  size_t buffered() const { return len_ - off_; }

  // Reads what the socket has (up to the buffer size) once it is readable before the deadline.
  bool fill() {
    if (eof_ || !waitReady(sock_, POLLIN, read_deadline_)) return false;
    ssize_t n;
    do {
      n = ::recv(sock_, buf_.data(), buf_.size(), 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
      eof_ = n == 0;
      return false;
    }
    off_ = 0;
    len_ = static_cast<size_t>(n);
    return true;
  }

  const int sock_;
  const AdminLimits& limits_;
  std::array<char, 4096> buf_{};
  size_t off_ = 0;
  size_t len_ = 0;
  bool eof_ = false;
  size_t read_budget_ = 0;
  bool exhausted_ = false;
  bool read_failed_ = false;
  Steady::time_point read_deadline_{};
  std::optional<Steady::time_point> write_deadline_;
  size_t written_ = 0;
};

// cpp-httplib's Server with its per-connection loop replaced: the same request processing
// (routing, handlers, responses), read through a BoundedStream, at most
// `max_requests_per_connection` requests per connection.
class BoundedServer final : public httplib::Server {
 public:
  explicit BoundedServer(const AdminLimits& limits) : limits_(limits) {}

 private:
  bool process_and_close_socket(int sock) override {
    BoundedStream strm(sock, limits_);
    bool ok = false;
    for (size_t n = 1; n <= limits_.max_requests_per_connection; ++n) {
      if (svr_sock_ == -1) break;  // stopping
      strm.beginRequest();
      bool connection_closed = false;
      ok = process_request(strm, n == limits_.max_requests_per_connection, connection_closed,
                           nullptr);
      if (strm.budgetExhausted() && !strm.wroteResponse()) {
        static constexpr std::string_view kTooLarge =
            "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n";
        strm.write(kTooLarge.data(), kTooLarge.size());
      }
      if (!ok || connection_closed || strm.readFailed()) break;
    }
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
    return ok;
  }

  const AdminLimits limits_;
};

}  // namespace

AdminServer::AdminServer(AdminHandlers handlers, Logger& log, AdminLimits limits)
    : handlers_(std::move(handlers)),
      log_(log),
      limits_(limits),
      server_(std::make_unique<BoundedServer>(limits_)) {}

AdminServer::~AdminServer() {
  stop();
}

Status AdminServer::start(const HostPort& addr) {
  auto& s = *server_;
  s.set_socket_options(socketOptions);
  s.set_payload_max_length(limits_.max_body_bytes);
  // httplib sets these on each accepted socket; BoundedStream polls before every recv/send and
  // enforces the deadlines itself.
  s.set_read_timeout(limits_.request_read_timeout);
  s.set_write_timeout(limits_.response_write_timeout);
  const size_t workers = limits_.worker_threads;
  s.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
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
  thread_ = serveInBackground(*server_);
  log_.info("admin server listening",
            {{"addr", where.substr(0, where.rfind(':')) + ":" + std::to_string(port_)}});
  return {};
}

void AdminServer::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace tsk::agent
