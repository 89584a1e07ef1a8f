#include "agent/admin_server.h"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <string_view>
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

// ---- the request head (RFC 9112) ------------------------------------------------------------

struct RequestHead {
  std::string_view method;
  std::string_view path;  // without the query
  bool keep_alive = true;
  bool has_body = false;  // Content-Length other than 0, or any Transfer-Encoding
};

bool isTchar(char c) {  // RFC 9110 section 5.6.2
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}
bool isToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), isTchar);
}
bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}
std::string_view trimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
// Whether the comma-separated list `value` holds `token` (case-insensitive).
bool listHas(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    if (iequals(trimOws(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

// The end of the head in `in` (the offset just past its empty line), or npos when it has not
// all arrived. Lines end in CRLF or a bare LF (RFC 9112 section 2.2).
size_t headEnd(std::string_view in) {
  size_t start = 0;
  // Empty lines before the request line are skipped (RFC 9112 section 2.2).
  while (start < in.size() && (in[start] == '\r' || in[start] == '\n')) ++start;
  for (size_t nl = in.find('\n', start); nl != std::string_view::npos; nl = in.find('\n', nl + 1)) {
    if (nl + 1 < in.size() && in[nl + 1] == '\n') return nl + 2;
    if (nl + 2 < in.size() && in[nl + 1] == '\r' && in[nl + 2] == '\n') return nl + 3;
  }
  return std::string_view::npos;
}

// Parses a whole head; 0, or the status to answer a malformed one with (400, 505).
int parseHead(std::string_view head, RequestHead& out) {
  std::vector<std::string_view> lines;
  while (!head.empty()) {
    const size_t nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find('\r') != std::string_view::npos) return 400;  // a bare CR
    lines.push_back(line);
    head.remove_prefix(nl == std::string_view::npos ? head.size() : nl + 1);
  }
  while (!lines.empty() && lines.front().empty()) lines.erase(lines.begin());
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.empty()) return 400;

  // request-line = method SP request-target SP HTTP-version
  const std::string_view line = lines.front();
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return 400;
  }
  out.method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!isToken(out.method) || target.empty()) return 400;
  for (const char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return 400;
  }
  bool http10 = false;
  if (version == "HTTP/1.0") {
    http10 = true;
  } else if (version != "HTTP/1.1") {
    const bool looks_like_http = version.size() == 8 && version.starts_with("HTTP/") &&
                                 std::isdigit(static_cast<unsigned char>(version[5])) &&
                                 version[6] == '.' &&
                                 std::isdigit(static_cast<unsigned char>(version[7]));
    return looks_like_http ? 505 : 400;
  }
  // origin-form, or absolute-form (RFC 9112 section 3.2.2: a server must accept it).
  if (target.size() > 8 &&
      (iequals(target.substr(0, 7), "http://") || iequals(target.substr(0, 8), "https://"))) {
    const size_t authority = target.find("//") + 2;
    const size_t slash = target.find('/', authority);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  if (target.front() != '/' && !(target == "*" && out.method == "OPTIONS")) return 400;
  out.path = target.substr(0, target.find('?'));

  size_t hosts = 0;
  bool close = http10, keep_alive = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::string_view field = lines[i];
    const size_t colon = field.find(':');
    // No obs-fold, no whitespace between the name and the colon (RFC 9112 section 5).
    if (colon == std::string_view::npos || !isToken(field.substr(0, colon))) return 400;
    const std::string_view name = field.substr(0, colon);
    const std::string_view value = trimOws(field.substr(colon + 1));
    for (const char c : value) {
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return 400;
    }
    if (iequals(name, "Host")) {
      ++hosts;
    } else if (iequals(name, "Connection")) {
      if (listHas(value, "close")) close = true;
      if (listHas(value, "keep-alive")) keep_alive = true;
    } else if (iequals(name, "Content-Length")) {
      uint64_t n = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || ec != std::errc() || end != value.data() + value.size()) return 400;
      if (n > 0) out.has_body = true;
    } else if (iequals(name, "Transfer-Encoding")) {
      out.has_body = true;
    }
  }
  if (!http10 && hosts != 1) return 400;  // RFC 9112 section 3.2
  out.keep_alive = !close && (!http10 || keep_alive);
  return 0;
}

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
// and dual-stack for "::".
Result<int> listenOn(const HostPort& addr) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  const std::string port = std::to_string(addr.port);
  const std::string host = addr.host.empty() ? "::" : addr.host;
  addrinfo* found = nullptr;
  if (const int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
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

struct Connection {
  enum class Phase { Reading, Writing, Lingering, Closed };

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
      const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return;
        if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) &&
            closeLongestWaiting()) {
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
      if (openCount() >= limits_.max_connections) closeLongestWaiting();
      Connection c;
      c.fd = fd;
      c.since = Steady::now();
      c.deadline = c.since + limits_.request_read_timeout;
      conns_.push_back(std::move(c));
    }
  }

  size_t openCount() const {
    return static_cast<size_t>(std::count_if(conns_.begin(), conns_.end(), [](const auto& c) {
      return c.phase != Connection::Phase::Closed;
    }));
  }

  // Closes the open connection whose current wait began first; false when none is open.
  bool closeLongestWaiting() {
    Connection* oldest = nullptr;
    for (auto& c : conns_) {
      if (c.phase != Connection::Phase::Closed && (!oldest || c.since < oldest->since)) {
        oldest = &c;
      }
    }
    if (!oldest) return false;
    close(*oldest);
    return true;
  }

  void close(Connection& c) {
    if (c.phase == Connection::Phase::Closed) return;
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
      const size_t end = headEnd(c.in);
      if (end == std::string::npos || end > limits_.max_request_bytes) {
        if (c.in.size() >= limits_.max_request_bytes || end != std::string::npos) {
          answer(c, errorResponse(431), true);
        } else if (c.peer_closed) {
          close(c);
        }
        return;
      }
      RequestHead req;
      const int bad = parseHead(std::string_view(c.in).substr(0, end), req);
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
