#include "tools/tsbus-sim/bus_sim.h"

#include <linux/sockios.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/unique_fd.h"
#include "tools/tsbus-sim/http_wire.h"
#include "watcher/daemon_version.h"

namespace tsk::tsbus_sim {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Mask bits (docs/PROTOCOL.md#the-watch-request-and-mask-bits).
constexpr uint64_t kInitialState = 2;
constexpr uint64_t kInitialBitsT = 2 | 4 | 8 | 32 | 1024 | 2048 | 16384;
constexpr uint64_t kInitialBitsH = kInitialBitsT | 131072 | 262144;
constexpr uint64_t kRateLimit = 256;
constexpr uint64_t kPeerChanges = 4096;
constexpr uint64_t kPeerPatches = 32768;
constexpr uint64_t kInitialStatus = 16384;
constexpr uint64_t kInProcessNoDisconnect = 65536;
constexpr uint64_t kRateLimitIncompatible = 4096 | 8192 | 16384 | 32768;

constexpr size_t kMaxRequestHead = 1 << 20;  // Go's DefaultMaxHeaderBytes
constexpr size_t kGoBufferBeforeChunking = 2048;
constexpr std::string_view kCsp =
    "default-src 'none'; frame-ancestors 'none'; script-src 'none'; script-src-elem 'none'; "
    "script-src-attr 'none'";

constexpr std::array<std::string_view, static_cast<size_t>(MsgKind::kCount)> kKindNames = {
    "initial",       "self_change", "state",          "blank",       "peers_changed",
    "peers_removed", "peer_patch",  "health",         "engine",      "err_message",
    "fell_behind",   "malformed",   "oversized",      "bad_framing", "full_netmap",
    "user_profiles", "prefs",       "login_finished", "drive_shares"};

constexpr std::array<std::string_view, 7> kStateNames = {
    "NoState", "InUseOtherUser", "NeedsLogin", "NeedsMachineAuth",
    "Stopped", "Starting",       "Running"};

std::string_view statusText(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 412:
      return "Precondition Failed";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

std::string stateName(int s) {
  if (s >= 0 && s < static_cast<int>(kStateNames.size())) {
    return std::string(kStateNames[static_cast<size_t>(s)]);
  }
  return "Unknown";
}

// Thrown by a sink when the connection died mid-message, to abandon a streamed generator.
struct WriteAborted {};

struct Message {
  MsgKind kind = MsgKind::Blank;
  std::string line;              // the whole line with '\n' (empty for generated oversized)
  uint64_t oversized_bytes = 0;  // > 0: generate a valid line of this many bytes on the fly
  bool raw = false;              // write `line` as is, outside the chunked framing (a fault)
  // Set: a full netmap, generated while it is written (a 250k-peer one is ~170 MB; it is never
  // held whole). The options hold a snapshot of the peers' patched Online states.
  std::shared_ptr<const statusgen::FullNetmapOptions> full_netmap;
  bool special() const { return oversized_bytes > 0 || raw || full_netmap; }
};
using MessagePtr = std::shared_ptr<const Message>;

MessagePtr makeMessage(MsgKind kind, std::string line) {
  auto m = std::make_shared<Message>();
  m->kind = kind;
  m->line = std::move(line);
  return m;
}

// What each kind of watcher receives for one event (docs/PROTOCOL.md#blank-messages,
// docs/PROTOCOL.md#peer-deltas).
struct Fanout {
  MessagePtr plain;    // no NotifyPeerChanges/NotifyPeerPatches
  MessagePtr changes;  // NotifyPeerChanges without NotifyPeerPatches
  MessagePtr patches;  // NotifyPeerPatches
  // If set: what a peer-bit watcher gets instead the first time in its watch (a full netmap
  // with UserProfiles: tailscaled sends each profile once per watch).
  MessagePtr peers_first = nullptr;
  static Fanout same(MessagePtr m) { return {m, m, m}; }
  const MessagePtr& forMask(uint64_t mask) const {
    if (mask & kPeerPatches) return patches;
    if (mask & kPeerChanges) return changes;
    return plain;
  }
};

struct Session {
  uint64_t id = 0;
  uint64_t mask = 0;
  std::deque<MessagePtr> queue;
  bool ending = false;         // no more messages: write what is queued, then the zero-size chunk
  bool profiles_sent = false;  // a full netmap with UserProfiles went into the queue
  std::condition_variable cv;
};

struct Connection {
  uint64_t id = 0;
  UniqueFd fd;
  std::thread thread;
  std::atomic<bool> done{false};
  bool killed = false;               // guarded by Impl::mu
  std::shared_ptr<Session> session;  // guarded by Impl::mu
};

}  // namespace

std::string_view msgKindName(MsgKind k) {
  const auto i = static_cast<size_t>(k);
  return i < kKindNames.size() ? kKindNames[i] : "unknown";
}

struct BusSim::Impl {
  SimOptions opts;
  std::string version;

  mutable std::mutex mu;
  std::condition_variable cv;  // schedule changes, stop
  bool stopping = false;
  bool started = false;
  statusgen::Identity identity;
  int state = 6;
  bool pre_netmap = false;  // serving the empty Self until netmapArrived()
  uint64_t peers = 0;
  std::unordered_map<uint64_t, bool> online_override;  // peer index -> Online after patches
  uint64_t churn_cursor = 0;
  uint64_t patch_cursor = 0;
  uint64_t churn_pairs = 0;
  double churn_rate = 0;
  SteadyClock::time_point churn_epoch;
  uint64_t churn_since_epoch = 0;
  std::chrono::milliseconds selfchange_every{0};
  SteadyClock::time_point next_selfchange;
  double pace_rate = 0;
  bool pace_selfchange = false;
  uint64_t pace_left = 0;
  uint64_t pace_sent = 0;
  uint64_t pace_since_epoch = 0;
  SteadyClock::time_point pace_epoch;
  bool full_netmap = false;  // SimOptions::full_netmap, setFullNetmap()
  int fail_status = 0;       // failWatches()
  std::string fail_message;

  std::map<uint64_t, std::unique_ptr<Connection>> conns;
  uint64_t next_conn_id = 1;
  uint64_t watchers = 0;
  uint64_t connections_total = 0;
  uint64_t watch_sessions_total = 0;
  uint64_t closed_slow = 0;
  uint64_t closed_slow_writer_lag = 0;
  uint64_t dropped_slow = 0;
  uint64_t restarts = 0;
  std::map<int, uint64_t> rejected;
  std::array<std::atomic<uint64_t>, static_cast<size_t>(MsgKind::kCount)> sent{};
  std::atomic<uint64_t> bytes_sent{0};

  // Listener (guarded by listener_mu; opened/closed by start, restart and stop).
  std::mutex listener_mu;
  UniqueFd listen_fd;
  UniqueFd accept_wake;
  std::thread accept_thread;
  std::atomic<bool> listening{false};

  std::thread ticker;
  std::thread restart_thread;
  bool restarting = false;

  std::mt19937_64 rng{0x5eed};
  MessagePtr blank_msg;  // the one blank line of this version, shared by every broadcast

  explicit Impl(SimOptions o) : opts(std::move(o)) {
    version = opts.version.empty()
                  ? std::string(opts.h_era ? statusgen::kVersionH : statusgen::kVersionT)
                  : opts.version;
    identity = opts.self;
    state = opts.state;
    pre_netmap = opts.pre_netmap;
    peers = opts.peers;
    churn_rate = opts.churn_rate;
    selfchange_every = opts.selfchange_every;
    full_netmap = opts.full_netmap;
    if (opts.queue_capacity == 0) opts.queue_capacity = 1;
    if (opts.chunk_bytes == 0) opts.chunk_bytes = 64 * 1024;
    blank_msg = makeMessage(MsgKind::Blank, statusgen::blankLine(version));
  }

  // Whether any open watcher gets peer deltas as such (else they are blank lines for everyone
  // and the peer lines need not be generated at all).
  bool anyPeerWatcherLocked() const {
    for (const auto& [id, c] : conns) {
      if (c->session && (c->session->mask & (kPeerChanges | kPeerPatches))) return true;
    }
    return false;
  }

  void event(const std::string& line) const {
    if (opts.on_event) opts.on_event(line);
  }

  // ----- listener -------------------------------------------------------------------------

  Status openListener() {
    namespace fs = std::filesystem;
    const std::string& path = opts.socket_path;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
      return Error{"socket path '" + path + "' is empty or longer than " +
                   std::to_string(sizeof(addr.sun_path) - 1) + " bytes"};
    }
    std::memcpy(addr.sun_path, path.data(), path.size());
    std::error_code ec;
    const fs::path parent = fs::path(path).parent_path();
    if (!parent.empty()) fs::create_directories(parent, ec);
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        return Error{path + " exists and is not a socket: choose another --socket"};
      }
      UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
        return Error{"something is already listening on " + path +
                     ": stop it or choose another --socket"};
      }
      ::unlink(path.c_str());  // a stale socket, as tailscaled does
    }
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd.valid()) return Error{std::string("socket: ") + std::strerror(errno)};
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      return Error{"cannot bind " + path + ": " + std::strerror(errno)};
    }
    ::chmod(path.c_str(), 0666);
    if (::listen(fd.get(), SOMAXCONN) != 0) {
      return Error{"cannot listen on " + path + ": " + std::strerror(errno)};
    }
    std::lock_guard lock(listener_mu);
    listen_fd = std::move(fd);
    accept_wake = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    listening = true;
    accept_thread = std::thread([this] { acceptLoop(); });
    return {};
  }

  void closeListener() {
    std::lock_guard lock(listener_mu);
    if (!accept_thread.joinable()) return;
    const uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(accept_wake.get(), &one, sizeof one);
    accept_thread.join();
    listen_fd.reset();
    accept_wake.reset();
    listening = false;
  }

  void acceptLoop() {
    for (;;) {
      pollfd fds[2] = {{listen_fd.get(), POLLIN, 0}, {accept_wake.get(), POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;
      const int cfd = ::accept4(listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC);
      if (cfd < 0) continue;  // EAGAIN, ECONNABORTED, EMFILE: keep serving
      reapConnections();
      std::lock_guard lock(mu);
      if (stopping) {
        ::close(cfd);
        return;
      }
      auto conn = std::make_unique<Connection>();
      conn->id = next_conn_id++;
      conn->fd = UniqueFd(cfd);
      Connection* c = conn.get();
      ++connections_total;
      conns.emplace(c->id, std::move(conn));
      c->thread = std::thread([this, c] {
        serveConnection(*c);
        // The peer sees EOF now; the fd itself is closed when the connection is reaped, so a
        // concurrent killAll() never touches a reused descriptor.
        ::shutdown(c->fd.get(), SHUT_RDWR);
        c->done = true;
      });
    }
  }

  void reapConnections() {
    std::vector<std::unique_ptr<Connection>> finished;
    {
      std::lock_guard lock(mu);
      for (auto it = conns.begin(); it != conns.end();) {
        if (it->second->done) {
          finished.push_back(std::move(it->second));
          it = conns.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& c : finished) c->thread.join();
  }

  // Drops every connection like a dying daemon: no zero chunk, the sockets just close.
  void killAll() {
    std::lock_guard lock(mu);
    for (auto& [id, c] : conns) {
      c->killed = true;
      ::shutdown(c->fd.get(), SHUT_RDWR);
      if (c->session) {
        c->session->ending = true;
        c->session->cv.notify_all();
      }
    }
  }

  // ----- one connection -------------------------------------------------------------------

  bool writeAll(Connection& c, std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = ::send(c.fd.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        bytes_sent += static_cast<uint64_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    return true;
  }

  bool writeChunked(Connection& c, std::string_view data) {
    while (!data.empty()) {
      const std::string_view piece = data.substr(0, opts.chunk_bytes);
      data.remove_prefix(piece.size());
      char hdr[24];
      const int n = std::snprintf(hdr, sizeof hdr, "%zx\r\n", piece.size());
      if (piece.size() <= 16 * 1024) {
        std::string buf(hdr, static_cast<size_t>(n));
        buf.append(piece).append("\r\n");
        if (!writeAll(c, buf)) return false;
      } else if (!writeAll(c, std::string_view(hdr, static_cast<size_t>(n))) ||
                 !writeAll(c, piece) || !writeAll(c, "\r\n")) {
        return false;
      }
    }
    return true;
  }

  // Reads one request head (up to the blank line). nullopt: EOF, error or killed.
  std::optional<std::string> readHead(Connection& c, std::string& pending, bool* too_big) {
    for (;;) {
      const size_t at = pending.find("\r\n\r\n");
      if (at != std::string::npos) {
        std::string head = pending.substr(0, at);
        pending.erase(0, at + 4);
        return head;
      }
      if (pending.size() > kMaxRequestHead) {
        *too_big = true;
        return std::nullopt;
      }
      char buf[4096];
      const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      pending.append(buf, static_cast<size_t>(n));
    }
  }

  // Discards a request body with a Content-Length (tailscaled ignores it for these paths).
  bool skipBody(Connection& c, std::string& pending, uint64_t length) {
    while (length > 0) {
      if (!pending.empty()) {
        const auto n = static_cast<size_t>(std::min<uint64_t>(length, pending.size()));
        pending.erase(0, n);
        length -= n;
        continue;
      }
      char buf[4096];
      const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      pending.append(buf, static_cast<size_t>(n));
    }
    return true;
  }

  void serveConnection(Connection& c) {
    std::string pending;
    for (;;) {
      bool too_big = false;
      const auto head = readHead(c, pending, &too_big);
      if (!head) {
        if (too_big) {
          writeAll(c,
                   "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; "
                   "charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large");
        }
        return;
      }
      const auto req = parseRequestHead(*head);
      if (!req) {
        countRejected(400);
        writeAll(c,
                 "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Connection: close\r\n\r\n400 Bad Request");
        return;
      }
      const auto host = req->header("Host");
      if (req->minor_version == 1 && !host) {
        countRejected(400);
        writeAll(c,
                 "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Connection: close\r\n\r\n400 Bad Request: missing required Host header");
        return;
      }
      if (const auto cl = req->header("Content-Length")) {
        const auto len = parseGoUint64(*cl);
        if (!len || !skipBody(c, pending, *len)) return;
      }
      if (!route(c, *req)) return;
      const auto conn_hdr = req->header("Connection");
      if (req->minor_version == 0 || (conn_hdr && *conn_hdr == "close")) return;
    }
  }

  HeaderList localApiHeaders() const {
    return {{"Tailscale-Version", version},
            {"Tailscale-Cap", opts.h_era ? "145" : "138"},
            {"Content-Security-Policy", std::string(kCsp)},
            {"X-Frame-Options", "DENY"},
            {"X-Content-Type-Options", "nosniff"}};
  }

  void countRejected(int status) {
    std::lock_guard lock(mu);
    ++rejected[status];
  }

  // http.Error: text/plain, body = message + "\n".
  bool replyError(Connection& c, int status, std::string_view reason, std::string_view message,
                  bool localapi_headers) {
    countRejected(status);
    HeaderList h = localapi_headers ? localApiHeaders() : HeaderList{};
    h.emplace_back("Content-Type", "text/plain; charset=utf-8");
    if (!localapi_headers) h.emplace_back("X-Content-Type-Options", "nosniff");
    const std::string body = std::string(message) + "\n";
    event("reject " + std::to_string(status) + " " + std::string(message));
    return writeAll(
        c, responseHead(status, reason, h, false, static_cast<int64_t>(body.size())) + body);
  }

  // Returns whether the connection may serve another request.
  bool route(Connection& c, const HttpRequest& req) {
    if (req.path.rfind("/localapi/", 0) != 0) {
      if (req.path == "/") {
        const std::string body = "<html><body><h1>Hello</h1>This is Tailscale (tsbus-sim).\n";
        return writeAll(c, responseHead(200, "OK", {{"Content-Type", "text/html; charset=utf-8"}},
                                        false, static_cast<int64_t>(body.size())) +
                               body);
      }
      return replyError(c, 404, "Not Found", "404 page not found", false);
    }
    const auto host = req.header("Host").value_or("");
    const bool bad_host = !host.empty() && host != "local-tailscaled.sock";
    const bool csrf =
        !req.header("Referer").value_or("").empty() || !req.header("Origin").value_or("").empty();
    if (bad_host || csrf) {
      return replyError(c, 403, "Forbidden", "invalid localapi request", false);
    }
    if (req.path == "/localapi/v0/watch-ipn-bus") return serveWatch(c, req);
    if (req.path == "/localapi/v0/status") return serveStatus(c, req);
    return replyError(c, 404, "Not Found", "404 page not found", true);
  }

  // ----- /localapi/v0/status --------------------------------------------------------------

  statusgen::InitialStatusOptions initialOptionsLocked(uint64_t npeers, bool with_state) const {
    statusgen::InitialStatusOptions o;
    o.peers = npeers;
    o.with_node_id = opts.h_era;
    o.online_fraction = opts.online_fraction;
    o.self = identity;
    o.seed = opts.seed;
    o.version = version;
    o.backend_state = stateName(state);
    o.with_state = with_state;
    o.tailnet_name = opts.tailnet_name;
    o.magic_dns_suffix = opts.magic_dns_suffix;
    o.pre_netmap = pre_netmap;
    o.cert_domains = opts.cert_domains;
    o.extra_records = opts.extra_records;
    o.peer_api = opts.peer_api;
    return o;
  }

  bool serveStatus(Connection& c, const HttpRequest& req) {
    const auto peers_param = queryValue(req.query, "peers");
    const bool with_peers = !(peers_param && parseGoBool(*peers_param) == false);
    statusgen::InitialStatusOptions o;
    {
      std::lock_guard lock(mu);
      o = initialOptionsLocked(with_peers ? peers : 0, false);
    }
    HeaderList h = localApiHeaders();
    h.emplace_back("Content-Type", "application/json");
    // Go's json.Encoder with SetIndent("", "\t"), via an indenting filter over the generator.
    std::string body;
    bool chunked = false;
    bool ok = true;
    const auto emit = [&](std::string_view piece) {
      if (!ok) return;
      body.append(piece);
      if (body.size() < opts.chunk_bytes) return;
      if (!chunked) {
        chunked = true;
        ok = writeAll(c, responseHead(200, "OK", h, true));
      }
      ok = ok && writeChunked(c, body);
      body.clear();
    };
    JsonTabIndenter indent(emit);
    JsonMemberExtractor extract("InitialStatus", [&](std::string_view v) { indent.feed(v); });
    statusgen::writeInitialStatus([&](std::string_view piece) { extract.feed(piece); }, o);
    indent.flush();
    body += '\n';
    if (!ok) return false;
    if (chunked) return writeChunked(c, body) && writeAll(c, kLastChunk);
    if (body.size() <= kGoBufferBeforeChunking) {
      return writeAll(c,
                      responseHead(200, "OK", h, false, static_cast<int64_t>(body.size())) + body);
    }
    return writeAll(c, responseHead(200, "OK", h, true)) && writeChunked(c, body) &&
           writeAll(c, kLastChunk);
  }

  // ----- /localapi/v0/watch-ipn-bus -------------------------------------------------------

  bool serveWatch(Connection& c, const HttpRequest& req) {
    int forced_status = 0;
    std::string forced_message;
    {
      std::lock_guard lock(mu);
      forced_status = fail_status;
      forced_message = fail_message;
    }
    if (forced_status != 0) {
      return replyError(c, forced_status, statusText(forced_status), forced_message, true);
    }
    const std::string mask_text = queryValue(req.query, "mask").value_or("");
    uint64_t mask = 0;
    if (!mask_text.empty()) {
      const auto m = parseGoUint64(mask_text);
      if (!m) return replyError(c, 400, "Bad Request", "bad mask", true);
      mask = *m;
    }
    if (opts.h_era && (mask & kInProcessNoDisconnect)) {
      return replyError(
          c, 400, "Bad Request",
          "NotifyInProcessNoDisconnect is only valid for in-process IPN bus subscribers", true);
    }
    if (opts.h_era && (mask & kRateLimit) && (mask & kRateLimitIncompatible)) {
      return replyError(c, 400, "Bad Request",
                        "NotifyRateLimit is incompatible with new-style IPN bus subscription "
                        "bits " +
                            notifyWatchOptString(mask & kRateLimitIncompatible),
                        true);
    }
    // Register and snapshot in one critical section: nothing after the snapshot is missed,
    // nothing before it is replayed (docs/PROTOCOL.md#framing-and-the-fell-behind-close).
    auto session = std::make_shared<Session>();
    statusgen::InitialStatusOptions initial;
    int initial_state = 0;
    {
      std::lock_guard lock(mu);
      if (c.killed || stopping) return false;
      session->id = ++watch_sessions_total;
      session->mask = mask;
      c.session = session;
      ++watchers;
      initial = initialOptionsLocked(peers, (mask & kInitialState) != 0);
      initial_state = state;
    }
    event("watcher #" + std::to_string(session->id) + " connected mask=" + std::to_string(mask) +
          ((mask & kInitialStatus) ? " (InitialStatus, " + std::to_string(initial.peers) + " peers)"
                                   : ""));
    HeaderList h = localApiHeaders();
    h.emplace_back("Content-Type", "application/json");
    bool ok = writeAll(c, responseHead(200, "OK", h, true));
    const uint64_t initial_bits = opts.h_era ? kInitialBitsH : kInitialBitsT;
    // A daemon before 1.100 does not know the InitialStatus bit and ignores it.
    const auto v = watcher::parseDaemonVersion(version);
    const uint64_t known =
        v && !v->atLeast(watcher::kFirstWithInitialStatus) ? mask & ~kInitialStatus : mask;
    if (ok && (known & initial_bits)) ok = writeInitial(c, known, initial, initial_state);
    const bool keep_alive = ok && pump(c, *session);
    {
      std::lock_guard lock(mu);
      c.session.reset();
      --watchers;
    }
    event("watcher #" + std::to_string(session->id) + " gone");
    return keep_alive;
  }

  bool writeInitial(Connection& c, uint64_t mask, const statusgen::InitialStatusOptions& o,
                    int initial_state) {
    if ((mask & kInitialStatus) == 0) {
      std::string line = "{\"Version\":\"" + version + "\"";
      if (mask & kInitialState) line += ",\"SessionID\":\"" + randomHex16() + "\"";
      line += ",\"ErrMessage\":null,\"LoginFinished\":null,\"State\":";
      line += (mask & kInitialState) ? std::to_string(initial_state) : "null";
      line +=
          ",\"Prefs\":null,\"NetMap\":null,\"Engine\":null,\"BrowseToURL\":null,"
          "\"DriveShares\":null}\n";
      return writeMessage(c, *makeMessage(MsgKind::Initial, std::move(line)));
    }
    bool first = true;
    try {
      statusgen::writeInitialStatus(
          [&](std::string_view piece) {
            std::string fixed;
            if (first && (mask & kInitialState) && initial_state != 6) {
              // statusgen writes "State":6 with NotifyInitialState; send the real state.
              fixed = std::string(piece);
              const size_t at = fixed.find("\"State\":6,");
              if (at != std::string::npos) {
                fixed.replace(at, 10, "\"State\":" + std::to_string(initial_state) + ",");
              }
              piece = fixed;
            }
            first = false;
            if (!writeChunked(c, piece)) throw WriteAborted{};
          },
          o);
    } catch (const WriteAborted&) {
      return false;
    }
    ++sent[static_cast<size_t>(MsgKind::Initial)];
    return true;
  }

  std::string randomHex16() {
    std::lock_guard lock(mu);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string s(16, '0');
    uint64_t v = rng();
    for (auto& ch : s) {
      ch = kHex[v & 15];
      v >>= 4;
    }
    return s;
  }

  bool writeMessage(Connection& c, const Message& m) {
    bool ok;
    if (m.full_netmap) {
      try {
        statusgen::writeFullNetmap(
            [&](std::string_view piece) {
              if (!writeChunked(c, piece)) throw WriteAborted{};
            },
            *m.full_netmap);
        ok = true;
      } catch (const WriteAborted&) {
        ok = false;
      }
    } else if (m.oversized_bytes > 0) {
      ok = writeOversized(c, m.oversized_bytes);
    } else if (m.raw) {
      ok = writeAll(c, m.line);
    } else {
      ok = writeChunked(c, m.line);
    }
    if (ok) ++sent[static_cast<size_t>(m.kind)];
    return ok;
  }

  // A valid Notify line of exactly `total` bytes (when total is at least the minimal line):
  // the padding goes into an unknown key, which a client must skip.
  bool writeOversized(Connection& c, uint64_t total) {
    const std::string head = "{\"Version\":\"" + version +
                             "\",\"ErrMessage\":null,\"LoginFinished\":null,\"State\":null,"
                             "\"Prefs\":null,\"NetMap\":null,\"Engine\":null,\"BrowseToURL\":"
                             "null,\"DriveShares\":null,\"SimPadding\":\"";
    const std::string tail = "\"}\n";
    uint64_t pad = total > head.size() + tail.size() ? total - head.size() - tail.size() : 0;
    if (!writeChunked(c, head)) return false;
    const std::string block(std::min<size_t>(opts.chunk_bytes, 64 * 1024), 'x');
    while (pad > 0) {
      const auto n = static_cast<size_t>(std::min<uint64_t>(pad, block.size()));
      if (!writeChunked(c, std::string_view(block).substr(0, n))) return false;
      pad -= n;
    }
    return writeChunked(c, tail);
  }

  // Writes queued messages until the session ends. Returns whether the connection is still
  // usable (the zero-size chunk was written and the client did not go away).
  bool pump(Connection& c, Session& s) {
    std::vector<MessagePtr> batch;
    for (;;) {
      bool end = false;
      {
        std::unique_lock lock(mu);
        while (s.queue.empty() && !s.ending && !c.killed && !stopping) {
          if (s.cv.wait_for(lock, std::chrono::milliseconds(50)) == std::cv_status::timeout &&
              peerClosed(c)) {
            return false;
          }
        }
        if (c.killed || stopping) return false;
        if (!s.queue.empty()) {
          takeBatchLocked(s, batch);
        } else {
          end = true;
        }
      }
      if (end) return writeAll(c, kLastChunk);
      if (!writeBatch(c, batch)) return false;
      batch.clear();
    }
  }

  // One message; with coalesce_writes, the plain messages queued (up to ~16 KiB).
  void takeBatchLocked(Session& s, std::vector<MessagePtr>& batch) {
    constexpr size_t kCoalesceBytes = 16 * 1024;  // little slack beyond the queue of 128
    size_t bytes = 0;
    do {
      bytes += s.queue.front()->line.size();
      batch.push_back(std::move(s.queue.front()));
      s.queue.pop_front();
    } while (opts.coalesce_writes && !s.queue.empty() && bytes < kCoalesceBytes &&
             !batch.back()->special() && !s.queue.front()->special());
  }

  bool writeBatch(Connection& c, const std::vector<MessagePtr>& batch) {
    if (batch.size() == 1) return writeMessage(c, *batch.front());
    std::string buf;
    for (const auto& m : batch) appendChunk(buf, m->line);
    if (!writeAll(c, buf)) return false;
    for (const auto& m : batch) ++sent[static_cast<size_t>(m->kind)];
    return true;
  }

  static bool peerClosed(const Connection& c) {
    pollfd p{c.fd.get(), POLLRDHUP, 0};
    return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
  }

  // ----- broadcasts -----------------------------------------------------------------------

  // Queues one event for every watcher. Called with `mu` held.
  void enqueueLocked(const Fanout& f) {
    for (auto& [id, c] : conns) {
      const auto& s = c->session;
      if (!s || s->ending) continue;
      if (s->queue.size() >= opts.queue_capacity) {
        if (!opts.h_era) {
          ++dropped_slow;  // T: silently dropped for this watcher
          continue;
        }
        // H: the watcher is removed; its queue becomes one final ErrMessage
        // (docs/PROTOCOL.md#framing-and-the-fell-behind-close).
        s->queue.clear();
        s->queue.push_back(
            makeMessage(MsgKind::FellBehind,
                        statusgen::errMessageLine(statusgen::kFellBehindMessage, version)));
        s->ending = true;
        ++closed_slow;
        // Whose lag was it: a full socket means the consumer did not read; a socket with room
        // means this simulator's writer thread did not write (a busy machine), not the consumer.
        int charged = 0;
        int sndbuf = 0;
        socklen_t len = sizeof sndbuf;
        const bool known = ::ioctl(c->fd.get(), SIOCOUTQ, &charged) == 0 &&
                           ::getsockopt(c->fd.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) == 0;
        if (known && charged < sndbuf / 2) ++closed_slow_writer_lag;
        s->cv.notify_all();
        if (opts.on_event) {
          opts.on_event("watcher #" + std::to_string(s->id) +
                        " fell behind: closing it with the ErrMessage (its socket held " +
                        (known ? std::to_string(charged) + " of " + std::to_string(sndbuf)
                               : std::string("?")) +
                        " bytes)");
        }
        continue;
      }
      if (f.peers_first && (s->mask & (kPeerChanges | kPeerPatches)) && !s->profiles_sent) {
        s->profiles_sent = true;
        s->queue.push_back(f.peers_first);
      } else {
        s->queue.push_back(f.forMask(s->mask));
      }
      s->cv.notify_all();
    }
  }

  void broadcast(const Fanout& f) {
    std::lock_guard lock(mu);
    enqueueLocked(f);
  }

  Fanout blankFanout() const { return Fanout::same(blank_msg); }

  // The current peer i as a PeersChanged node (generated, with patched Online states).
  statusgen::PeerNode currentPeerLocked(uint64_t index) const {
    statusgen::PeerNode node = statusgen::peerAt(index, opts.seed, opts.online_fraction);
    if (auto it = online_override.find(index); it != online_override.end()) {
      node.online = it->second;
    }
    return node;
  }

  // A full netmap with the current identity (docs/PROTOCOL.md#peer-deltas). Without a peer-bit
  // watcher tailscaled builds no peer list: everyone gets the plain SelfChange.
  Fanout fullNetmapFanoutLocked() const {
    const auto plain_self =
        makeMessage(MsgKind::SelfChange, statusgen::selfChangeLine(identity, version));
    if (!anyPeerWatcherLocked()) return Fanout::same(plain_self);
    auto f = std::make_shared<statusgen::FullNetmapOptions>();
    f->self = identity;
    f->peers = peers;
    f->version = version;
    if (!online_override.empty()) {
      f->peer_at = [seed = opts.seed, fraction = opts.online_fraction,
                    patched = online_override](uint64_t i) {
        statusgen::PeerNode node = statusgen::peerAt(i, seed, fraction);
        if (auto it = patched.find(i); it != patched.end()) node.online = it->second;
        return node;
      };
    } else {
      f->seed = opts.seed;
      f->online_fraction = opts.online_fraction;
    }
    auto with_profiles = std::make_shared<statusgen::FullNetmapOptions>(*f);
    with_profiles->with_profiles = true;
    const auto generated = [](std::shared_ptr<const statusgen::FullNetmapOptions> o) {
      auto m = std::make_shared<Message>();
      m->kind = MsgKind::FullNetmap;
      m->full_netmap = std::move(o);
      return MessagePtr(std::move(m));
    };
    const MessagePtr full = generated(f);
    const MessagePtr first = generated(with_profiles);
    // notifyForSessionLocked strips PeersChanged for a watcher without the bits only when it
    // has entries: with no peers such a watcher gets "PeersChanged":[] too.
    MessagePtr plain = plain_self;
    if (peers == 0) {
      statusgen::FullNetmapOptions empty;
      empty.self = identity;
      empty.version = version;
      plain = makeMessage(MsgKind::SelfChange, statusgen::fullNetmapLine(empty));
    }
    Fanout out{plain, full, full};
    out.peers_first = first;
    return out;
  }

  // What a SelfChange event sends: the full netmap in full_netmap mode, else SelfChange alone.
  Fanout selfChangeFanoutLocked() const {
    if (full_netmap) return fullNetmapFanoutLocked();
    return Fanout::same(
        makeMessage(MsgKind::SelfChange, statusgen::selfChangeLine(identity, version)));
  }

  // One churn pair: the peer leaves and comes back under the same NodeID, so the tailnet stays
  // the N generated peers and a later InitialStatus is exact. With N = 0 a fresh peer is added
  // and removed instead.
  void churnPairLocked() {
    const MessagePtr& blank = blank_msg;
    uint64_t index;
    bool add_first = false;
    if (peers == 0) {
      index = 1'000'000'000 + churn_cursor++;
      add_first = true;
    } else {
      index = churn_cursor++ % peers;
    }
    if (!anyPeerWatcherLocked()) {  // every watcher gets two blank lines
      enqueueLocked(Fanout::same(blank));
      enqueueLocked(Fanout::same(blank));
      ++churn_pairs;
      return;
    }
    const statusgen::PeerNode node = currentPeerLocked(index);
    const int64_t id = node.node_id;
    const auto removed_msg =
        makeMessage(MsgKind::PeersRemoved, statusgen::peersRemovedLine({&id, 1}, version));
    const auto added_msg =
        makeMessage(MsgKind::PeersChanged, statusgen::peersChangedLine(node, version));
    const Fanout removed_all{blank, removed_msg, removed_msg};
    const Fanout added{blank, added_msg, added_msg};
    if (add_first) {
      enqueueLocked(added);
      enqueueLocked(removed_all);
    } else {
      enqueueLocked(removed_all);
      enqueueLocked(added);
    }
    ++churn_pairs;
  }

  // ----- schedules ------------------------------------------------------------------------

  void tickerLoop() {
    std::unique_lock lock(mu);
    while (!stopping) {
      const auto now = SteadyClock::now();
      auto wake = now + std::chrono::seconds(1);
      if (selfchange_every.count() > 0) {
        if (now >= next_selfchange) {
          enqueueLocked(selfChangeFanoutLocked());
          next_selfchange = now + selfchange_every;
          event("selfchange (scheduled) -> " + std::to_string(watchers) + " watchers");
        }
        wake = std::min(wake, next_selfchange);
      }
      if (churn_rate > 0) {
        const double elapsed = std::chrono::duration<double>(now - churn_epoch).count();
        const auto due = static_cast<uint64_t>(elapsed * churn_rate);
        // Never a burst: at most kMaxPairsPerTick pairs per wake (tailscaled applies deltas one
        // at a time), so a burst alone cannot fill a queue of 128. Time the ticker lost on a
        // busy core is skipped, not caught up: stats().churn_pairs shows the rate achieved.
        constexpr uint64_t kMaxPairsPerTick = 16;
        constexpr double kPairsPerWake = 8;
        uint64_t todo = due > churn_since_epoch ? due - churn_since_epoch : 0;
        if (todo > kMaxPairsPerTick) {
          churn_since_epoch += todo - kMaxPairsPerTick;
          todo = kMaxPairsPerTick;
        }
        for (uint64_t i = 0; i < todo; ++i) churnPairLocked();
        churn_since_epoch += todo;
        const auto step = std::chrono::duration_cast<SteadyClock::duration>(
            std::chrono::duration<double>(kPairsPerWake / churn_rate));
        wake = std::min(
            wake, now + std::clamp<SteadyClock::duration>(step, std::chrono::microseconds(100),
                                                          std::chrono::milliseconds(1000)));
      }
      if (pace_rate > 0 && pace_left > 0) {
        const double elapsed = std::chrono::duration<double>(now - pace_epoch).count();
        const auto due = static_cast<uint64_t>(elapsed * pace_rate);
        // One line per wake when on time; at most 4 after a stall (the rest is skipped), so a
        // stall of this thread does not turn into a burst.
        constexpr uint64_t kMaxLinesPerTick = 4;
        uint64_t todo = due > pace_since_epoch ? due - pace_since_epoch : 0;
        if (todo > kMaxLinesPerTick) {
          pace_since_epoch += todo - kMaxLinesPerTick;
          todo = kMaxLinesPerTick;
        }
        todo = std::min(todo, pace_left);
        for (uint64_t i = 0; i < todo; ++i) {
          enqueueLocked(pace_selfchange ? selfChangeFanoutLocked() : blankFanout());
        }
        pace_since_epoch += todo;
        pace_left -= todo;
        pace_sent += todo;
        const auto next =
            pace_epoch +
            std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double>(
                static_cast<double>(pace_since_epoch + 1) / pace_rate));
        if (pace_left > 0) wake = std::min(wake, std::max(next, now));
      }
      cv.wait_until(lock, wake);
    }
  }

  void restartBody(RestartOptions ro) {
    closeListener();
    killAll();
    if (ro.pre_netmap) {
      std::lock_guard lock(mu);
      pre_netmap = true;
    }
    if (ro.remove_socket) ::unlink(opts.socket_path.c_str());
    event("restart: all watchers dropped" +
          std::string(ro.remove_socket ? ", socket removed" : ", socket not listening") + " for " +
          std::to_string(ro.down.count()) + " ms");
    {
      std::unique_lock lock(mu);
      cv.wait_for(lock, ro.down, [&] { return stopping; });
      if (stopping) {
        restarting = false;
        return;
      }
    }
    const Status st = openListener();
    std::lock_guard lock(mu);
    ++restarts;
    restarting = false;
    event(st ? "restart: listening again on " + opts.socket_path
             : "restart: cannot listen again: " + st.error().message);
  }
};

BusSim::BusSim(SimOptions opts) : impl_(std::make_unique<Impl>(std::move(opts))) {}

BusSim::~BusSim() {
  stop();
}

Status BusSim::start() {
  auto& d = *impl_;
  {
    std::lock_guard lock(d.mu);
    if (d.started) return Error{"tsbus-sim already started"};
  }
  if (auto st = d.openListener(); !st) return st;
  std::lock_guard lock(d.mu);
  d.started = true;
  d.churn_epoch = SteadyClock::now();
  d.next_selfchange = SteadyClock::now() + d.selfchange_every;
  d.ticker = std::thread([&d] { d.tickerLoop(); });
  d.event("listening on " + d.opts.socket_path + " peers=" + std::to_string(d.peers) +
          " version=" + d.version);
  return {};
}

void BusSim::stop() {
  auto& d = *impl_;
  {
    std::lock_guard lock(d.mu);
    if (!d.started || d.stopping) return;
    d.stopping = true;
    d.cv.notify_all();
  }
  if (d.restart_thread.joinable()) d.restart_thread.join();
  d.closeListener();
  d.killAll();
  if (d.ticker.joinable()) d.ticker.join();
  std::map<uint64_t, std::unique_ptr<Connection>> conns;
  {
    std::lock_guard lock(d.mu);
    conns.swap(d.conns);
  }
  for (auto& [id, c] : conns) c->thread.join();
  ::unlink(d.opts.socket_path.c_str());
}

void BusSim::selfChange(const IdentityUpdate& u, uint64_t count) {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  auto& id = d.identity;
  if (u.stable_id) id.stable_id = *u.stable_id;
  if (u.node_id) id.node_id = *u.node_id;
  if (u.name) id.name = *u.name;
  if (u.addresses) id.addresses = *u.addresses;
  if (u.host_name) id.host_name = *u.host_name;
  if (u.tags) id.tags = *u.tags;
  if (u.user_id) id.user_id = *u.user_id;
  if (u.key_expiry) id.key_expiry = *u.key_expiry;
  if (u.node_key) id.node_key = *u.node_key;
  const Fanout f = d.selfChangeFanoutLocked();
  for (uint64_t i = 0; i < count; ++i) d.enqueueLocked(f);
  d.event("selfchange name=" + id.name + (count != 1 ? " x" + std::to_string(count) : "") + " -> " +
          std::to_string(d.watchers) + " watchers");
}

void BusSim::netmapArrived() {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  d.pre_netmap = false;
  d.enqueueLocked(d.selfChangeFanoutLocked());
  d.event("netmap arrived: selfchange name=" + d.identity.name + " -> " +
          std::to_string(d.watchers) + " watchers");
}

void BusSim::dropNetmap() {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  d.pre_netmap = true;
  d.event("netmap dropped: initial messages carry the empty Self");
}

void BusSim::setState(int state) {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  d.state = state;
  d.enqueueLocked(
      Fanout::same(makeMessage(MsgKind::State, statusgen::stateLine(state, d.version))));
  d.event("state " + std::to_string(state) + " (" + stateName(state) + ") -> " +
          std::to_string(d.watchers) + " watchers");
}

void BusSim::churn(uint64_t pairs) {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  for (uint64_t i = 0; i < pairs; ++i) d.churnPairLocked();
  d.event("churn " + std::to_string(pairs) + " add+remove pairs");
}

void BusSim::setChurnRate(double pairs_per_second) {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  d.churn_rate = std::max(0.0, pairs_per_second);
  d.churn_epoch = SteadyClock::now();
  d.churn_since_epoch = 0;
  d.cv.notify_all();
  d.event("churn rate " + std::to_string(d.churn_rate) + " pairs/s");
}

void BusSim::setSelfChangeEvery(std::chrono::milliseconds every) {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  d.selfchange_every = every;
  d.next_selfchange = SteadyClock::now() + every;
  d.cv.notify_all();
}

void BusSim::pace(double lines_per_second, std::string_view kind, uint64_t count) {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  d.pace_rate = std::max(0.0, lines_per_second);
  d.pace_selfchange = kind == "selfchange";
  d.pace_left = d.pace_rate > 0 ? count : 0;
  d.pace_epoch = SteadyClock::now();
  d.pace_since_epoch = 0;
  d.cv.notify_all();
  d.event("pace " + std::string(kind) + " x" + std::to_string(count) + " at " +
          std::to_string(d.pace_rate) + " lines/s");
}

void BusSim::patch(uint64_t count) {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  if (d.peers == 0) return;
  const MessagePtr& blank = d.blank_msg;
  for (uint64_t i = 0; i < count; ++i) {
    const uint64_t index = d.patch_cursor++ % d.peers;
    statusgen::PeerNode node = statusgen::peerAt(index, d.opts.seed, d.opts.online_fraction);
    auto it = d.online_override.find(index);
    const bool online = !(it != d.online_override.end() ? it->second : node.online);
    d.online_override[index] = online;
    node.online = online;
    d.enqueueLocked(
        {blank, makeMessage(MsgKind::PeersChanged, statusgen::peersChangedLine(node, d.version)),
         makeMessage(MsgKind::PeerPatch,
                     statusgen::peerPatchLine(node.node_id, online, d.version))});
  }
  d.event("patch " + std::to_string(count) + " peers (Online toggled)");
}

void BusSim::blank(uint64_t count) {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  const Fanout f = d.blankFanout();
  for (uint64_t i = 0; i < count; ++i) d.enqueueLocked(f);
  d.event("blank x" + std::to_string(count));
}

void BusSim::flood(uint64_t count) {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  const Fanout f = d.blankFanout();
  for (uint64_t i = 0; i < count; ++i) d.enqueueLocked(f);
  d.event("flood: " + std::to_string(count) + " blank lines queued at once");
}

void BusSim::health(bool warning) {
  auto& d = *impl_;
  d.broadcast(
      Fanout::same(makeMessage(MsgKind::Health, statusgen::healthLine(warning, d.version))));
  d.event(warning ? "health warning" : "health ok");
}

void BusSim::engine() {
  auto& d = *impl_;
  d.broadcast(Fanout::same(makeMessage(MsgKind::Engine, statusgen::engineLine(d.version))));
  d.event("engine");
}

void BusSim::errMessage(std::string_view text) {
  auto& d = *impl_;
  d.broadcast(
      Fanout::same(makeMessage(MsgKind::ErrMessage, statusgen::errMessageLine(text, d.version))));
  d.event("errmessage " + std::string(text));
}

void BusSim::malformed(std::string_view line) {
  auto& d = *impl_;
  std::string l =
      line.empty() ? "{\"Version\":\"" + d.version + "\",\"State\":6,,oops}}" : std::string(line);
  for (auto& ch : l) {
    if (ch == '\n') ch = ' ';  // one line, whatever the caller sent
  }
  l += '\n';
  d.broadcast(Fanout::same(makeMessage(MsgKind::Malformed, std::move(l))));
  d.event("malformed line");
}

void BusSim::oversized(uint64_t bytes) {
  auto& d = *impl_;
  auto m = std::make_shared<Message>();
  m->kind = MsgKind::Oversized;
  m->oversized_bytes = std::max<uint64_t>(bytes, 1);
  d.broadcast(Fanout::same(m));
  d.event("oversized line of " + std::to_string(bytes) + " bytes");
}

void BusSim::badFraming() {
  auto& d = *impl_;
  auto m = std::make_shared<Message>();
  m->kind = MsgKind::BadFraming;
  m->raw = true;
  m->line = "this is not a chunk header\r\n";
  d.broadcast(Fanout::same(m));
  d.event("bad chunked framing");
}

void BusSim::setPeers(uint64_t n) {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  d.peers = n;
  d.online_override.clear();
  d.event("peers " + std::to_string(n) + " (for the next initial messages)");
}

void BusSim::fullNetmap() {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  d.enqueueLocked(d.fullNetmapFanoutLocked());
  d.event("full netmap: selfchange + " + std::to_string(d.peers) + " peers -> " +
          std::to_string(d.watchers) + " watchers");
}

void BusSim::setFullNetmap(bool on) {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  d.full_netmap = on;
  d.event(on ? "full-netmap mode on: every selfchange carries every peer for peer watchers"
             : "full-netmap mode off");
}

void BusSim::userProfiles() {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  const auto m = makeMessage(MsgKind::UserProfiles, statusgen::userProfilesLine(d.version));
  d.enqueueLocked({d.blank_msg, m, m});
  d.event("user profiles -> " + std::to_string(d.watchers) + " watchers");
}

void BusSim::prefs(bool logged_in) {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  d.enqueueLocked(Fanout::same(
      makeMessage(MsgKind::Prefs, statusgen::prefsLine(d.identity, logged_in, d.version))));
  d.event(logged_in ? "prefs (logged in)" : "prefs (logged out)");
}

void BusSim::loginFinished() {
  auto& d = *impl_;
  d.broadcast(
      Fanout::same(makeMessage(MsgKind::LoginFinished, statusgen::loginFinishedLine(d.version))));
  d.event("login finished");
}

void BusSim::driveShares() {
  auto& d = *impl_;
  d.broadcast(
      Fanout::same(makeMessage(MsgKind::DriveShares, statusgen::driveSharesLine(d.version))));
  d.event("drive shares");
}

void BusSim::failWatches(int status, std::string message) {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  d.fail_status = status;
  d.fail_message = message.empty() ? "simulated failure" : std::move(message);
  d.event(status == 0
              ? "watch requests served again"
              : "watch requests now fail with " + std::to_string(status) + " " + d.fail_message);
}

void BusSim::restart(const RestartOptions& ro) {
  auto& d = *impl_;
  std::lock_guard lock(d.mu);
  if (!d.started || d.stopping || d.restarting) return;
  d.restarting = true;
  if (d.restart_thread.joinable()) d.restart_thread.join();  // the previous one has finished
  d.restart_thread = std::thread([&d, ro] { d.restartBody(ro); });
}

SimStats BusSim::stats() const {
  const auto& d = *impl_;
  SimStats s;
  s.listening = d.listening;
  for (size_t i = 0; i < d.sent.size(); ++i) {
    s.sent[std::string(kKindNames[i])] = d.sent[i].load();
  }
  s.bytes_sent = d.bytes_sent;
  std::lock_guard lock(d.mu);
  s.watchers = d.watchers;
  s.connections_total = d.connections_total;
  s.watch_sessions_total = d.watch_sessions_total;
  s.closed_slow = d.closed_slow;
  s.closed_slow_writer_lag = d.closed_slow_writer_lag;
  s.dropped_slow = d.dropped_slow;
  s.restarts = d.restarts;
  s.rejected = d.rejected;
  s.identity = d.identity;
  s.state = d.state;
  s.peers = d.peers;
  s.churn_rate = d.churn_rate;
  s.churn_pairs = d.churn_pairs;
  s.pace_rate = d.pace_left > 0 ? d.pace_rate : 0;
  s.pace_left = d.pace_left;
  s.pace_sent = d.pace_sent;
  s.full_netmap = d.full_netmap;
  s.version = d.version;
  return s;
}

uint64_t BusSim::watcherCount() const {
  std::lock_guard lock(impl_->mu);
  return impl_->watchers;
}

const std::string& BusSim::socketPath() const {
  return impl_->opts.socket_path;
}
const SimOptions& BusSim::options() const {
  return impl_->opts;
}

}  // namespace tsk::tsbus_sim
