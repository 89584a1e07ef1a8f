#include "agent/admin_server.h"
#include "agent/http_request.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tsk::agent {
namespace {

using Steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kTextContentType = "text/plain; charset=utf-8";
// After the last answer of a connection the server stops sending (FIN) and reads what the client
// still sends, for at most this long and this much, before closing: closing with unread input
// would reset the connection and could destroy the answer before the client reads it.
constexpr milliseconds kLingerTime{1'000};
constexpr size_t kLingerBytes = 64 * 1024;
// When accept() fails for want of descriptors and no connection can be closed to make room.
constexpr milliseconds kAcceptPause{100};

// ---- responses ------------------------------------------------------------------------------

const char* reasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string httpDate() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

std::string response(int status, std::string_view content_type, std::string_view body,
                     bool with_body, bool close, std::string_view extra_headers = {}) {
  std::string out;
  out.reserve(160 + (with_body ? body.size() : 0));
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reasonPhrase(status);
  out += "\r\nDate: ";
  out += httpDate();
  if (!content_type.empty()) {
    out += "\r\nContent-Type: ";
    out += content_type;
  }
  out += "\r\nContent-Length: ";
  out += std::to_string(body.size());
  out += "\r\n";
  out += extra_headers;
  if (close) out += "Connection: close\r\n";
  out += "\r\n";
  if (with_body) out += body;
  return out;
}

std::string errorResponse(int status) {
  return response(status, kTextContentType, std::string(reasonPhrase(status)) + "\n", true, true);
}

// ---- sockets --------------------------------------------------------------------------------

int millisUntil(Steady::time_point deadline, Steady::time_point now) {
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - now).count() + 1;
  return static_cast<int>(std::clamp<long long>(left, 0, 60'000));
}

// Plain SO_REUSEADDR (never SO_REUSEPORT: a second agent must not share the port silently),
// and dual-stack for "::". An empty host is "::", or "0.0.0.0" where IPv6 is off.
Result<int> listenOn(const HostPort& addr) {
  if (addr.host.empty()) {
    auto any6 = listenOn({"::", addr.port});
    return any6 ? any6 : listenOn({"0.0.0.0", addr.port});
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  const std::string port = std::to_string(addr.port);
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(addr.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Error{gai_strerror(rc)};
  }
  std::string cause = "address not usable";
  int fd = -1;
  for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      cause = std::strerror(errno);
      continue;
    }
    int yes = 1, no = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (ai->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &no, sizeof no);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) break;
    cause = std::strerror(errno);
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(found);
  if (fd < 0) return Error{cause};
  return fd;
}

int boundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return -1;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port);
  return ntohs(reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
}

// ---- connections ----------------------------------------------------------------------------

// The client's address (IPv4 as IPv4-mapped IPv6), to share connections fairly among clients.
using PeerAddress = std::array<unsigned char, 16>;

PeerAddress peerAddress(const sockaddr_storage& ss) {
  PeerAddress a{};
  if (ss.ss_family == AF_INET6) {
    std::memcpy(a.data(), &reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr, 16);
  } else if (ss.ss_family == AF_INET) {
    a[10] = a[11] = 0xff;
    std::memcpy(a.data() + 12, &reinterpret_cast<const sockaddr_in&>(ss).sin_addr, 4);
  }
  return a;
}

struct PeerAddressHash {
  size_t operator()(const PeerAddress& a) const {
    size_t h = 14695981039346656037ull;  // FNV-1a
    for (const unsigned char b : a) h = (h ^ b) * 1099511628211ull;
    return h;
  }
};

struct Connection {
  enum class Phase { Reading, Writing, Lingering, Closed };

  PeerAddress peer{};
  int fd = -1;
  Phase phase = Phase::Reading;
  std::string in;  // received and not yet answered: at most one request head's budget
  std::string out;
  size_t out_sent = 0;
  bool close_after_write = false;
  bool peer_closed = false;  // the client sent FIN: answer what is complete, then close
  size_t served = 0;
  size_t lingered = 0;
  Steady::time_point since;  // when the current phase began
  Steady::time_point deadline;
};

class Loop {
 public:
  Loop(const AdminHandlers& handlers, const AdminLimits& limits, Logger& log, int listen_fd,
       int wake_fd)
      : handlers_(handlers), limits_(limits), log_(log), listen_fd_(listen_fd), wake_fd_(wake_fd) {}

  ~Loop() {
    for (auto& c : conns_) close(c);
  }

  void run() {
    std::vector<pollfd> fds;
    for (;;) {
      auto now = Steady::now();
      Steady::time_point next = now + std::chrono::seconds(60);
      fds.clear();
      fds.push_back({wake_fd_, POLLIN, 0});
      const bool accepting = now >= accept_paused_until_;
      fds.push_back({accepting ? listen_fd_ : -1, POLLIN, 0});
      if (!accepting) next = std::min(next, accept_paused_until_);
      for (const auto& c : conns_) {
        fds.push_back({c.fd,
                       static_cast<short>(c.phase == Connection::Phase::Writing ? POLLOUT : POLLIN),
                       0});
        next = std::min(next, c.deadline);
      }
      const int n = ::poll(fds.data(), fds.size(), millisUntil(next, now));
      if (n < 0 && errno != EINTR) {
        log_.error("admin server: poll failed", {{"error", std::strerror(errno)}});
        return;
      }
      if (fds[0].revents != 0) return;  // stop()
      // Existing connections first: accepting may close one of them (fds[i + 2] is conns_[i]).
      const size_t existing = conns_.size();
      for (size_t i = 0; i < existing; ++i) {
        if (fds[i + 2].revents == 0) continue;
        Connection& c = conns_[i];
        if (c.phase == Connection::Phase::Writing) {
          flush(c);
        } else if (c.phase == Connection::Phase::Reading) {
          receive(c);
        } else if (c.phase == Connection::Phase::Lingering) {
          linger(c);
        }
      }
      if (fds[1].revents != 0) acceptAll();
      now = Steady::now();
      for (auto& c : conns_) {
        if (c.phase != Connection::Phase::Closed && c.deadline <= now) expire(c);
      }
      std::erase_if(conns_,
                    [](const Connection& c) { return c.phase == Connection::Phase::Closed; });
    }
  }

 private:
  void acceptAll() {
    for (;;) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len,
                               SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) &&
            closeOldestOf(busiestPeer().first)) {
          continue;
        }
        const auto now = Steady::now();
        accept_paused_until_ = now + kAcceptPause;
        if (now >= next_accept_warning_) {
          next_accept_warning_ = now + std::chrono::minutes(1);
          log_.warn("admin server cannot accept connections", {{"error", std::strerror(errno)}});
        }
        return;
      }
      const PeerAddress peer = peerAddress(ss);
      if (open_ >= limits_.max_connections) {
        // Full. A newcomer from the busiest address (or one as busy) is turned away at once;
        // anyone else takes the place of one of the busiest address's connections.
        const auto [busiest, most] = busiestPeer();
        const auto mine = per_peer_.find(peer);
        if ((mine != per_peer_.end() && mine->second >= most) || !closeOldestOf(busiest)) {
          ::close(fd);
          continue;
        }
      }
      Connection c;
      c.fd = fd;
      c.peer = peer;
      c.since = Steady::now();
      c.deadline = c.since + limits_.request_read_timeout;
      conns_.push_back(std::move(c));
      ++open_;
      ++per_peer_[peer];
    }
  }

  std::pair<PeerAddress, size_t> busiestPeer() const {
    std::pair<PeerAddress, size_t> out{};
    for (const auto& [peer, n] : per_peer_) {
      if (n > out.second) out = {peer, n};
    }
    return out;
  }

  // Closes `peer`'s connection whose current wait began first; false when it has none.
  bool closeOldestOf(const PeerAddress& peer) {
    Connection* victim = nullptr;
    for (auto& c : conns_) {
      if (c.phase != Connection::Phase::Closed && c.peer == peer &&
          (!victim || c.since < victim->since)) {
        victim = &c;
      }
    }
    if (!victim) return false;
    close(*victim);
    return true;
  }

  void close(Connection& c) {
    if (c.phase == Connection::Phase::Closed) return;
    --open_;
    if (const auto it = per_peer_.find(c.peer); it != per_peer_.end() && --it->second == 0) {
      per_peer_.erase(it);
    }
    ::close(c.fd);
    c.fd = -1;
    c.phase = Connection::Phase::Closed;
    c.in = std::string();
    c.out = std::string();
  }

  void expire(Connection& c) {
    if (c.phase == Connection::Phase::Reading && !c.in.empty()) {
      // Part of a request arrived: say why it ends, if the socket takes it at once.
      const std::string timeout = errorResponse(408);
      [[maybe_unused]] ssize_t n = ::send(c.fd, timeout.data(), timeout.size(), MSG_NOSIGNAL);
    }
    close(c);
  }

  void receive(Connection& c) {
    char buf[4096];
    const size_t room =
        limits_.max_request_bytes - std::min(c.in.size(), limits_.max_request_bytes);
    ssize_t n;
    do {
      n = ::recv(c.fd, buf, std::min(sizeof buf, std::max<size_t>(room, 1)), 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) close(c);
      return;
    }
    if (n == 0) {
      c.peer_closed = true;
    } else {
      c.in.append(buf, static_cast<size_t>(n));
    }
    serveBuffered(c);
  }

  // Answers the requests whose heads are buffered, one at a time: the next one only once the
  // previous answer is written.
  void serveBuffered(Connection& c) {
    while (c.phase == Connection::Phase::Reading) {
      const size_t end = requestHeadEnd(c.in);
      if (end == std::string::npos || end > limits_.max_request_bytes) {
        if (c.in.size() >= limits_.max_request_bytes || end != std::string::npos) {
          answer(c, errorResponse(431), true);
        } else if (c.peer_closed) {
          close(c);
        }
        return;
      }
      RequestHead req;
      const int bad = parseRequestHead(std::string_view(c.in).substr(0, end), req);
      if (bad != 0) {
        answer(c, errorResponse(bad), true);
        return;
      }
      ++c.served;
      const bool close_after = !req.keep_alive || req.has_body || c.peer_closed ||
                               c.served >= limits_.max_requests_per_connection;
      std::string reply = route(req, close_after);
      c.in.erase(0, end);
      answer(c, std::move(reply), close_after);
    }
  }

  std::string route(const RequestHead& req, bool close) {
    if (req.method != "GET" && req.method != "HEAD") {
      return response(405, kTextContentType, "method not allowed\n", true, close,
                      "Allow: GET, HEAD\r\n");
    }
    const bool with_body = req.method == "GET";
    const auto probe = [&](const std::function<ProbeResult()>& handler) {
      const ProbeResult r = handler ? handler() : ProbeResult{true, ""};
      return response(r.ok ? 200 : 503, kTextContentType,
                      r.ok ? std::string("ok\n") : r.reason + "\n", with_body, close);
    };
    try {
      if (req.path == "/livez") return probe(handlers_.livez);
      if (req.path == "/readyz") return probe(handlers_.readyz);
      if (req.path == "/healthz") return probe(handlers_.healthz);
      if (req.path == "/metrics") {
        return response(200, kMetricsContentType,
                        handlers_.metrics ? handlers_.metrics() : std::string(), with_body, close);
      }
    } catch (const std::exception& e) {
      log_.error("admin handler failed", {{"path", std::string(req.path)}, {"error", e.what()}});
      return response(500, kTextContentType, "internal error\n", with_body, close);
    }
    return response(404, kTextContentType, "not found\n", with_body, close);
  }

  void answer(Connection& c, std::string reply, bool close_after) {
    c.out = std::move(reply);
    c.out_sent = 0;
    c.close_after_write = close_after;
    c.phase = Connection::Phase::Writing;
    c.since = Steady::now();
    c.deadline = c.since + limits_.response_write_timeout;
    flush(c);
  }

  void flush(Connection& c) {
    while (c.out_sent < c.out.size()) {
      const ssize_t n =
          ::send(c.fd, c.out.data() + c.out_sent, c.out.size() - c.out_sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // wait for POLLOUT
      if (n <= 0) {
        close(c);
        return;
      }
      c.out_sent += static_cast<size_t>(n);
    }
    c.out = std::string();
    c.out_sent = 0;
    c.since = Steady::now();
    if (c.close_after_write) {
      ::shutdown(c.fd, SHUT_WR);
      c.in = std::string();
      c.phase = Connection::Phase::Lingering;
      c.deadline = c.since + kLingerTime;
      return;
    }
    c.phase = Connection::Phase::Reading;
    c.deadline = c.since + limits_.request_read_timeout;
    serveBuffered(c);  // a pipelined request may be waiting
  }

  void linger(Connection& c) {
    char buf[4096];
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return;
    c.lingered += n > 0 ? static_cast<size_t>(n) : 0;
    if (n <= 0 || c.lingered > kLingerBytes) close(c);
  }

  const AdminHandlers& handlers_;
  const AdminLimits& limits_;
  Logger& log_;
  const int listen_fd_;
  const int wake_fd_;
  std::vector<Connection> conns_;
  size_t open_ = 0;  // connections not Closed
  // Open connections per client address: at the limit, the busiest address gives one up.
  std::unordered_map<PeerAddress, size_t, PeerAddressHash> per_peer_;
  Steady::time_point accept_paused_until_{};
  Steady::time_point next_accept_warning_{};
};

}  // namespace

AdminServer::AdminServer(AdminHandlers handlers, Logger& log, AdminLimits limits)
    : handlers_(std::move(handlers)), log_(log), limits_(limits) {}

AdminServer::~AdminServer() {
  stop();
}

Status AdminServer::start(const HostPort& addr) {
  const std::string where =
      (addr.host.find(':') != std::string::npos ? "[" + addr.host + "]" : addr.host) + ":" +
      std::to_string(addr.port);
  auto fd = listenOn(addr);
  if (!fd) {
    return Error{"cannot listen on admin address " + where + ": " + fd.error().message +
                 "; choose another with --admin-addr / TS_LOCAL_ADDR_PORT"};
  }
  listen_fd_ = *fd;
  port_ = boundPort(listen_fd_);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) {
    const std::string cause = std::strerror(errno);
    ::close(listen_fd_);
    listen_fd_ = -1;
    return Error{"admin server: eventfd: " + cause};
  }
  thread_ = std::thread([this] { Loop(handlers_, limits_, log_, listen_fd_, wake_fd_).run(); });
  log_.info("admin server listening",
            {{"addr", where.substr(0, where.rfind(':')) + ":" + std::to_string(port_)}});
  return {};
}

void AdminServer::stop() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  listen_fd_ = wake_fd_ = -1;
}

}  // namespace tsk::agent
