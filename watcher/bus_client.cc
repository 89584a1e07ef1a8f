#include "watcher/bus_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>

#include "common/text.h"
#include "watcher/read_pacer.h"

namespace tsk::watcher {

// ---------------------------------------------------------------------------------------------
// BodyDecoder

namespace {
constexpr size_t kMaxChunkLineBytes = 4096;  // chunk extensions, trailers: never needed, bounded
constexpr int kMaxHexDigits = 16;            // a 64-bit chunk size

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string byteName(char c) {
  const auto u = static_cast<unsigned char>(c);
  char buf[16];
  if (u >= 0x21 && u < 0x7f) {
    std::snprintf(buf, sizeof buf, "'%c'", c);
  } else {
    std::snprintf(buf, sizeof buf, "0x%02x", u);
  }
  return buf;
}
}  // namespace

BodyDecoder::BodyDecoder(Framing framing, uint64_t content_length)
    : framing_(framing), remaining_(content_length) {
  if (framing_ == Framing::Length && remaining_ == 0) state_ = State::Done;
}

BodyDecoder::State BodyDecoder::fail(std::string message) {
  error_ = std::move(message);
  state_ = State::Error;
  return state_;
}

void BodyDecoder::endOfSizeLine() {
  line_bytes_ = 0;
  if (remaining_ == 0) {
    step_ = Step::TrailerStart;  // the zero-size chunk: only the trailer section is left
  } else {
    step_ = Step::Data;
  }
}

// One framing byte (everything but chunk data). Returns More, Done or Error.
BodyDecoder::State BodyDecoder::controlByte(char c) {
  switch (step_) {
    case Step::SizeHex: {
      const int v = hexValue(c);
      if (v >= 0) {
        if (++size_digits_ > kMaxHexDigits) return fail("chunk size has more than 16 hex digits");
        remaining_ = remaining_ * 16 + static_cast<uint64_t>(v);
        return state_;
      }
      if (size_digits_ == 0) return fail("expected a chunk size, got " + byteName(c));
      if (c == ';' || c == ' ' || c == '\t') {
        step_ = Step::SizeExt;
      } else if (c == '\r') {
        step_ = Step::SizeLf;
      } else if (c == '\n') {
        endOfSizeLine();
      } else {
        return fail("invalid byte " + byteName(c) + " in a chunk size");
      }
      return state_;
    }
    case Step::SizeExt:
      if (++line_bytes_ > kMaxChunkLineBytes) return fail("chunk extension longer than 4 KiB");
      if (c == '\r') step_ = Step::SizeLf;
      if (c == '\n') endOfSizeLine();
      return state_;
    case Step::SizeLf:
      if (c != '\n') return fail("expected LF after a chunk size, got " + byteName(c));
      endOfSizeLine();
      return state_;
    case Step::DataCr:
      if (c == '\r') {
        step_ = Step::DataLf;
      } else if (c == '\n') {
        step_ = Step::SizeHex;
        size_digits_ = 0;
      } else {
        return fail("expected CRLF after chunk data, got " + byteName(c));
      }
      return state_;
    case Step::DataLf:
      if (c != '\n') return fail("expected LF after chunk data, got " + byteName(c));
      step_ = Step::SizeHex;
      size_digits_ = 0;
      return state_;
    case Step::TrailerStart:
      if (c == '\r') {
        step_ = Step::LastLf;
      } else if (c == '\n') {
        step_ = Step::End;
        state_ = State::Done;
      } else {
        step_ = Step::TrailerLine;
        ++line_bytes_;
      }
      return state_;
    case Step::TrailerLine:
      if (++line_bytes_ > kMaxChunkLineBytes) return fail("chunked trailer longer than 4 KiB");
      if (c == '\n') step_ = Step::TrailerStart;
      return state_;
    case Step::LastLf:
      if (c != '\n') return fail("expected LF at the end of the chunked body, got " + byteName(c));
      step_ = Step::End;
      state_ = State::Done;
      return state_;
    case Step::Data:
    case Step::End:
      break;
  }
  return state_;
}

BodyDecoder::State BodyDecoder::feed(std::string_view raw, const BodyCallback& on_bytes,
                                     size_t* consumed) {
  if (state_ == State::Stopped) state_ = State::More;  // the reader paused; resume where it was
  size_t pos = 0;
  const auto deliver = [&](size_t n) {
    const std::string_view piece = raw.substr(pos, n);
    pos += n;
    decoded_ += n;
    if (!on_bytes(piece)) state_ = State::Stopped;
  };
  if (framing_ == Framing::UntilClose) {
    if (state_ == State::More && !raw.empty()) deliver(raw.size());
  } else if (framing_ == Framing::Length) {
    if (state_ == State::More && !raw.empty()) {
      const auto n = static_cast<size_t>(std::min<uint64_t>(remaining_, raw.size()));
      remaining_ -= n;
      if (remaining_ == 0) state_ = State::Done;
      deliver(n);
    }
  } else {
    while (state_ == State::More && pos < raw.size()) {
      if (step_ == Step::Data) {
        const auto n = static_cast<size_t>(std::min<uint64_t>(remaining_, raw.size() - pos));
        remaining_ -= n;
        if (remaining_ == 0) step_ = Step::DataCr;
        deliver(n);
      } else {
        controlByte(raw[pos++]);
      }
    }
  }
  if (consumed != nullptr) *consumed = pos;
  return state_;
}

BodyDecoder::State BodyDecoder::finish() {
  if (state_ != State::More) return state_;
  if (framing_ == Framing::UntilClose) {
    state_ = State::Done;
    return state_;
  }
  if (framing_ == Framing::Length) {
    return fail("connection closed with " + std::to_string(remaining_) +
                " bytes of the body missing");
  }
  return fail("connection closed before the end of the chunked body");
}

// ---------------------------------------------------------------------------------------------
// Connection plumbing

namespace {

using SteadyClock = std::chrono::steady_clock;
using Deadline = std::optional<SteadyClock::time_point>;

constexpr size_t kReadBufferBytes = 64 * 1024;
constexpr std::string_view kHost = "local-tailscaled.sock";
constexpr std::string_view kCapVersion = "138";

enum class Wait { Ready, Stopped, Timeout, Failed };

std::string errnoText(int err) {
  return std::strerror(err);
}

// The error text of a non-200 reply: Go's client tries {"error":"..."} first, then the text.
std::string errorTextFromBody(std::string_view body) {
  const std::string_view t = trimSpace(body);
  constexpr std::string_view kJsonPrefix = "{\"error\":\"";
  if (t.substr(0, kJsonPrefix.size()) == kJsonPrefix) {
    std::string out;
    for (size_t i = kJsonPrefix.size(); i < t.size(); ++i) {
      if (t[i] == '"') return out;
      if (t[i] == '\\' && i + 1 < t.size()) ++i;
      out += t[i];
    }
  }
  std::string out;
  for (char c : t) out += (static_cast<unsigned char>(c) < 0x20 && c != '\t') ? ' ' : c;
  return out;
}

std::string hintFor(int status) {
  switch (status) {
    case 401:
    case 403:
      return " (tailscaled refused this client: the agent must reach the socket directly, "
             "without a proxy adding Origin/Referer, as a user allowed to read the LocalAPI)";
    case 404:
      return " (this tailscaled has no such LocalAPI endpoint: it is too old or built without "
             "the IPN bus)";
    case 503:
      return " (tailscaled's backend is not ready yet; the agent retries)";
    default:
      return "";
  }
}

// Newlines in `bytes`: memchr (vectorised in libc) rather than a byte loop, as lines are
// ~100-2,000 bytes long.
uint64_t countNewlines(std::string_view bytes) {
  uint64_t n = 0;
  const char* p = bytes.data();
  const char* const end = p + bytes.size();
  while (p < end) {
    const void* hit = std::memchr(p, '\n', static_cast<size_t>(end - p));
    if (hit == nullptr) break;
    ++n;
    p = static_cast<const char*>(hit) + 1;
  }
  return n;
}

int pollTimeoutMs(const Deadline& deadline) {
  if (!deadline) return -1;
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - SteadyClock::now());
  if (left.count() <= 0) return 0;
  return static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30));
}

}  // namespace

struct BusClient::Impl {
  BusClientOptions opts;
  UniqueFd wake;  // eventfd, readable once stop() was called
  std::atomic<bool> stop_requested{false};

  // One HTTP/1.1 connection with its read buffer.
  struct Conn {
    UniqueFd fd;
    std::unique_ptr<char[]> buf = std::make_unique<char[]>(kReadBufferBytes);
    size_t begin = 0;  // unread bytes are buf[begin, end)
    size_t end = 0;
    // The watch body is read with blocking recv()s: one syscall per wakeup instead of
    // recv (EAGAIN) + poll + recv. stop() wakes such a read with shutdown(); see blocking_fd.
    bool blocking = false;
  };
  Conn watch;
  std::optional<BodyDecoder> watch_body;
  // The watch socket while it is in blocking mode, for stop() to shut down; guarded by
  // blocking_mu so stop() never shuts down a number close() has already given back.
  std::mutex blocking_mu;
  int blocking_fd = -1;
  // Read pacing of the watch body (watcher/read_pacer.h). Watch thread only.
  ReadPacer pacer;
  bool sample_pending = false;           // a recv() returned data the pacer has not been told about
  ReadPacer::Clock::time_point read_at;  // when it returned
  bool read_filled = false;              // it filled the read buffer
  uint64_t read_lines = 0;               // newlines in its body bytes (counted unless filled)
  uint64_t watch_reads = 0;              // recv()s that brought watch body bytes

  explicit Impl(BusClientOptions o)
      : opts(std::move(o)),
        pacer(ReadPacerOptions{.max_delay =
                                   std::clamp(opts.max_read_delay, std::chrono::microseconds(0),
                                              kMaxReadDelayLimit)}) {
    wake = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  }

  bool stopped() const { return stop_requested.load(std::memory_order_acquire); }

  // The watch's read delay: sleeps `d` on the eventfd, so stop() cuts it short. Returns false
  // once stopped. An interrupted sleep (EINTR) just ends early.
  bool readDelay(std::chrono::nanoseconds d) {
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(d);
    const timespec ts{static_cast<time_t>(secs.count()), static_cast<long>((d - secs).count())};
    pollfd p{wake.get(), POLLIN, 0};
    ::ppoll(&p, 1, &ts, nullptr);
    return !stopped();
  }

  void resetPacing() {
    pacer.reset();
    watch_reads = 0;
    sample_pending = false;
    read_lines = 0;
  }

  // Waits for `events` on fd or for stop(), until the deadline (none: forever).
  Wait waitFor(int fd, short events, const Deadline& deadline) {
    for (;;) {
      if (stopped()) return Wait::Stopped;
      pollfd fds[2] = {{fd, events, 0}, {wake.get(), POLLIN, 0}};
      const int n = ::poll(fds, 2, pollTimeoutMs(deadline));
      if (n < 0) {
        if (errno == EINTR) continue;
        return Wait::Failed;
      }
      if (fds[1].revents != 0 || stopped()) return Wait::Stopped;
      if (n == 0) return Wait::Timeout;
      return Wait::Ready;  // includes POLLHUP/POLLERR: the next read/write reports it
    }
  }

  Status connectSocket(Conn& c) {
    const std::string& path = opts.socket_path;
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
      return Error{"tailscaled socket path '" + path + "' is empty or longer than " +
                   std::to_string(sizeof(addr.sun_path) - 1) + " bytes: set a shorter --socket"};
    }
    std::memcpy(addr.sun_path, path.data(), path.size());
    c.fd = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!c.fd.valid()) return Error{"cannot create a unix socket: " + errnoText(errno)};
    c.begin = c.end = 0;
    const Deadline deadline = SteadyClock::now() + opts.connect_timeout;
    for (;;) {
      if (stopped()) return Error{"stopped"};
      if (::connect(c.fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
        return {};
      }
      const int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN) {  // the listen backlog is full: tailscaled is busy; retry shortly
        const auto w = waitFor(
            wake.get(), 0, std::min(*deadline, SteadyClock::now() + std::chrono::milliseconds(10)));
        if (w == Wait::Stopped) return Error{"stopped"};
        if (SteadyClock::now() >= *deadline) return connectTimeout();
        continue;
      }
      if (err == EINPROGRESS) return finishConnect(c, deadline);
      return connectError(err);
    }
  }

  Status finishConnect(Conn& c, const Deadline& deadline) {
    const Wait w = waitFor(c.fd.get(), POLLOUT, deadline);
    if (w == Wait::Stopped) return Error{"stopped"};
    if (w == Wait::Timeout) return connectTimeout();
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(c.fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) return connectError(err);
    return {};
  }

  Error connectTimeout() const {
    return Error{"connecting to tailscaled at " + opts.socket_path + " timed out after " +
                 std::to_string(opts.connect_timeout.count()) +
                 " ms: tailscaled is overloaded or hung"};
  }

  // What is at `path` when it is not a socket ("a directory", ...); nullopt for a socket or
  // when it cannot be told (connect() says ECONNREFUSED for all of these).
  static std::optional<std::string> notASocket(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::nullopt;
    if (S_ISSOCK(st.st_mode)) return std::nullopt;
    if (S_ISDIR(st.st_mode)) return "a directory";
    if (S_ISREG(st.st_mode)) return "a regular file";
    if (S_ISFIFO(st.st_mode)) return "a FIFO (named pipe)";
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return "a device file";
    return "a special file";
  }

  Error connectError(int err) const {
    const std::string& p = opts.socket_path;
    switch (err) {
      case ENOENT:
        return Error{"tailscaled socket " + p +
                     " does not exist: is tailscaled running, and is its socket directory "
                     "shared with this container (--socket)?"};
      case ECONNREFUSED:
        if (auto what = notASocket(p)) {
          return Error{p + " is " + *what +
                       ", not a unix socket, so the agent can never connect to it: --socket "
                       "(TS_SOCKET) must name the socket tailscaled creates (tailscaled "
                       "--socket), e.g. " +
                       std::string(kDefaultTailscaledSocket) +
                       "; remove what is there or fix the path"};
        }
        return Error{"connection refused on " + p +
                     ": nothing is listening (tailscaled is stopped or restarting)"};
      case EACCES:
      case EPERM:
        return Error{"permission denied connecting to " + p +
                     ": the agent's user needs write access to the socket file and search "
                     "access to its directory"};
      case ENOTSOCK:
      case ENOTDIR:
        return Error{p + " is not a unix socket: check --socket"};
      default:
        return Error{"cannot connect to tailscaled at " + p + ": " + errnoText(err)};
    }
  }

  Status writeAll(Conn& c, std::string_view data, const Deadline& deadline) {
    while (!data.empty()) {
      const ssize_t n = ::send(c.fd.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        const Wait w = waitFor(c.fd.get(), POLLOUT, deadline);
        if (w == Wait::Stopped) return Error{"stopped"};
        if (w == Wait::Timeout) return Error{"timed out sending the request to tailscaled"};
        continue;
      }
      return Error{"sending the request to tailscaled failed: " + errnoText(errno)};
    }
    return {};
  }

  // Reads more bytes into c.buf[c.end...]. Returns bytes read; 0 = EOF. Errors: message set.
  struct ReadResult {
    size_t n = 0;
    Wait wait = Wait::Ready;
    int err = 0;
  };
  ReadResult readMore(Conn& c, const Deadline& deadline) {
    if (c.begin == c.end) c.begin = c.end = 0;
    for (;;) {
      if (c.blocking && stopped()) return {0, Wait::Stopped, 0};
      const ssize_t n = ::recv(c.fd.get(), c.buf.get() + c.end, kReadBufferBytes - c.end, 0);
      // A blocking read woken by stop()'s shutdown() sees an end of file (or an error).
      if (c.blocking && n <= 0 && stopped()) return {0, Wait::Stopped, 0};
      if (n >= 0) {
        c.end += static_cast<size_t>(n);
        return {static_cast<size_t>(n), Wait::Ready, 0};
      }
      if (errno == EINTR) continue;
      if (errno != EAGAIN) return {0, Wait::Failed, errno};
      const Wait w = waitFor(c.fd.get(), POLLIN, deadline);
      if (w != Wait::Ready) return {0, w, 0};
    }
  }

  struct Head {
    ResponseHead head;
    BodyDecoder::Framing framing = BodyDecoder::Framing::UntilClose;
    uint64_t content_length = 0;
  };

  Result<Head> readHead(Conn& c, const Deadline& deadline) {
    size_t scanned = 0;
    for (;;) {
      const std::string_view have(c.buf.get() + c.begin, c.end - c.begin);
      const size_t at = have.find("\r\n\r\n", scanned > 3 ? scanned - 3 : 0);
      if (at != std::string_view::npos) {
        c.begin += at + 4;
        return parseHead(have.substr(0, at));
      }
      scanned = have.size();
      if (c.end == kReadBufferBytes) {
        return Error{"tailscaled's response head is larger than 64 KiB: not a LocalAPI socket?"};
      }
      const ReadResult r = readMore(c, deadline);
      if (r.wait == Wait::Stopped) return Error{"stopped"};
      if (r.wait == Wait::Timeout) {
        return Error{"tailscaled accepted the connection but sent no response within " +
                     std::to_string(opts.request_timeout.count()) + " ms"};
      }
      if (r.wait == Wait::Failed) {
        return Error{"reading tailscaled's response failed: " + errnoText(r.err)};
      }
      if (r.n == 0) {
        return Error{"tailscaled closed the connection before sending a response"};
      }
    }
  }

  static Result<Head> parseHead(std::string_view text) {
    Head h;
    size_t eol = text.find("\r\n");
    const std::string_view status_line = text.substr(0, eol);
    if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || status_line[8] != ' ') {
      return Error{"tailscaled sent a malformed HTTP status line: '" +
                   std::string(status_line.substr(0, 80)) + "'"};
    }
    int status = 0;
    for (size_t i = 9; i < 12; ++i) {
      if (status_line[i] < '0' || status_line[i] > '9') {
        return Error{"tailscaled sent a malformed HTTP status line: '" +
                     std::string(status_line.substr(0, 80)) + "'"};
      }
      status = status * 10 + (status_line[i] - '0');
    }
    h.head.status = status;
    h.head.reason = std::string(trimSpace(status_line.substr(12)));
    bool chunked = false;
    std::optional<uint64_t> length;
    while (eol != std::string_view::npos) {
      const size_t start = eol + 2;
      eol = text.find("\r\n", start);
      const std::string_view line =
          text.substr(start, eol == std::string_view::npos ? std::string_view::npos : eol - start);
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        return Error{"tailscaled sent a malformed HTTP header line"};
      }
      const std::string_view name = line.substr(0, colon);
      const std::string_view value = trimSpace(line.substr(colon + 1));
      if (iequals(name, "Transfer-Encoding")) {
        const size_t comma = value.rfind(',');
        const std::string_view last =
            trimSpace(comma == std::string_view::npos ? value : value.substr(comma + 1));
        if (!iequals(last, "chunked")) {
          return Error{"tailscaled sent an unsupported Transfer-Encoding: " + std::string(value)};
        }
        chunked = true;
      } else if (iequals(name, "Content-Length")) {
        uint64_t v = 0;
        if (value.empty() || value.size() > 18) {
          return Error{"tailscaled sent an invalid Content-Length"};
        }
        for (char ch : value) {
          if (ch < '0' || ch > '9') return Error{"tailscaled sent an invalid Content-Length"};
          v = v * 10 + static_cast<uint64_t>(ch - '0');
        }
        length = v;
      } else if (iequals(name, "Tailscale-Version")) {
        h.head.tailscale_version = std::string(value.substr(0, 256));
      } else if (iequals(name, "Tailscale-Cap")) {
        h.head.tailscale_cap = std::string(value.substr(0, 32));
      } else if (iequals(name, "Content-Type")) {
        h.head.content_type = std::string(value.substr(0, 256));
      }
    }
    if (chunked) {
      h.framing = BodyDecoder::Framing::Chunked;
    } else if (length) {
      h.framing = BodyDecoder::Framing::Length;
      h.content_length = *length;
    } else if (status == 204 || status == 304 || status / 100 == 1) {
      h.framing = BodyDecoder::Framing::Length;
    }
    return h;
  }

  // Streams the body of `c` through `decoder` to `on_bytes` until it ends.
  BodyEnd pumpBody(Conn& c, BodyDecoder& decoder, const BodyCallback& on_bytes,
                   const Deadline& deadline, uint64_t max_body) {
    BodyEnd end;
    // Only the watch body is paced (watcher/read_pacer.h); one-shot GETs read at once.
    const bool paced = c.blocking && pacer.options().max_delay.count() > 0;
    const auto over = [&](std::string_view bytes) {
      if (decoder.decodedBytes() > max_body) return false;
      if (paced && sample_pending && !read_filled) read_lines += countNewlines(bytes);
      return on_bytes(bytes);
    };
    for (;;) {
      if (c.begin < c.end) {
        size_t used = 0;
        const auto st =
            decoder.feed(std::string_view(c.buf.get() + c.begin, c.end - c.begin), over, &used);
        c.begin += used;
        end.bytes = decoder.decodedBytes();
        if (st == BodyDecoder::State::Done) return end;
        if (st == BodyDecoder::State::Error) {
          return {BodyEndKind::Error, "malformed HTTP framing from tailscaled: " + decoder.error(),
                  end.bytes};
        }
        if (st == BodyDecoder::State::Stopped) {
          if (decoder.decodedBytes() > max_body) {
            return {BodyEndKind::Error,
                    "response body larger than " + std::to_string(max_body) + " bytes", end.bytes};
          }
          return {BodyEndKind::Stopped, "stopped by the reader", end.bytes};
        }
      }
      if (paced && sample_pending) {
        sample_pending = false;
        const auto delay = pacer.next(read_at, read_lines, read_filled);
        if (delay.count() > 0 && !readDelay(delay)) {
          return {BodyEndKind::Stopped, "stopped", end.bytes};
        }
      }
      const ReadResult r = readMore(c, deadline);
      if (r.wait == Wait::Stopped) return {BodyEndKind::Stopped, "stopped", end.bytes};
      if (r.wait == Wait::Timeout) {
        return {BodyEndKind::Error, "timed out reading the response body", end.bytes};
      }
      if (c.blocking && r.n > 0) ++watch_reads;
      if (paced && r.n > 0) {
        sample_pending = true;
        read_at = ReadPacer::Clock::now();
        read_filled = c.end == kReadBufferBytes;
        read_lines = 0;
      }
      if (r.wait == Wait::Failed) {
        if (r.err == ECONNRESET || r.err == EPIPE) {
          return {BodyEndKind::Eof, "tailscaled reset the connection", end.bytes};
        }
        return {BodyEndKind::Error, "reading from tailscaled failed: " + errnoText(r.err),
                end.bytes};
      }
      if (r.n == 0) {
        if (decoder.finish() == BodyDecoder::State::Done) return end;
        return {BodyEndKind::Eof, "tailscaled closed the connection (" + decoder.error() + ")",
                end.bytes};
      }
    }
  }

  // Reads at most opts.max_error_body bytes of an error reply's body (bounded in time too).
  std::string readErrorBody(Conn& c, const Head& h) {
    std::string body;
    BodyDecoder decoder(h.framing, h.content_length);
    const auto keep = [&](std::string_view bytes) {
      body.append(
          bytes.substr(0, opts.max_error_body - std::min(body.size(), opts.max_error_body)));
      return body.size() < opts.max_error_body;
    };
    const Deadline deadline = SteadyClock::now() + opts.request_timeout;
    pumpBody(c, decoder, keep, deadline, UINT64_MAX);
    return body;
  }

  Result<Head> request(Conn& c, std::string_view path) {
    if (stopped()) return Error{"stopped"};
    if (auto st = connectSocket(c); !st) return st.error();
    const Deadline deadline = SteadyClock::now() + opts.request_timeout;
    if (auto st = writeAll(c, requestFor(path), deadline); !st) return st.error();
    return readHead(c, deadline);
  }
};

BusClient::BusClient(BusClientOptions opts) : impl_(std::make_unique<Impl>(std::move(opts))) {}
BusClient::~BusClient() = default;

std::string BusClient::requestFor(std::string_view path_and_query) {
  std::string req;
  req.reserve(128);
  req += "GET ";
  req += path_and_query;
  req += " HTTP/1.1\r\nHost: ";
  req += kHost;
  req += "\r\nTailscale-Cap: ";
  req += kCapVersion;
  req += "\r\n\r\n";
  return req;
}

Result<ResponseHead> BusClient::openWatch(uint64_t mask) {
  close();
  auto& c = impl_->watch;
  auto head = impl_->request(c, "/localapi/v0/watch-ipn-bus?mask=" + std::to_string(mask));
  if (!head) {
    close();
    return head.error();
  }
  if (head->head.status != 200) {
    const std::string body = impl_->readErrorBody(c, *head);
    const int status = head->head.status;
    std::string text = errorTextFromBody(body);
    if (text.empty()) text = head->head.reason;
    close();
    return Error{"tailscaled rejected the watch request: " + std::to_string(status) + " " + text +
                     hintFor(status),
                 status};
  }
  impl_->watch_body.emplace(head->framing, head->content_length);
  impl_->resetPacing();
  return head->head;
}

BodyEnd BusClient::readBody(const BodyCallback& on_bytes) {
  if (!impl_->watch.fd.valid() || !impl_->watch_body) {
    return {BodyEndKind::Error, "no watch is open", 0};
  }
  auto& c = impl_->watch;
  if (!c.blocking) {
    // From here on a read waits in recv() itself (no timeout: the bus can be silent for hours).
    // stop() sets the flag before it takes the lock, so either it sees blocking_fd and shuts
    // the socket down, or this sees the flag.
    std::lock_guard lock(impl_->blocking_mu);
    if (impl_->stopped()) return {BodyEndKind::Stopped, "stopped", 0};
    const int flags = ::fcntl(c.fd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(c.fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) {
      return {BodyEndKind::Error, "cannot make the watch socket blocking: " + errnoText(errno), 0};
    }
    c.blocking = true;
    impl_->blocking_fd = c.fd.get();
  }
  if (impl_->stopped()) return {BodyEndKind::Stopped, "stopped", 0};
  return impl_->pumpBody(c, *impl_->watch_body, on_bytes, std::nullopt, UINT64_MAX);
}

void BusClient::close() {
  {
    std::lock_guard lock(impl_->blocking_mu);
    impl_->blocking_fd = -1;
    impl_->watch.blocking = false;
    impl_->watch.fd.reset();
  }
  impl_->watch.begin = impl_->watch.end = 0;
  impl_->watch_body.reset();
  impl_->resetPacing();
}

Result<ResponseHead> BusClient::get(std::string_view path_and_query, const BodyCallback& on_bytes,
                                    uint64_t max_body) {
  Impl::Conn c;
  auto head = impl_->request(c, path_and_query);
  if (!head) return head.error();
  if (head->head.status != 200) {
    const std::string body = impl_->readErrorBody(c, *head);
    std::string text = errorTextFromBody(body);
    if (text.empty()) text = head->head.reason;
    return Error{"tailscaled answered GET " + std::string(path_and_query) + " with " +
                     std::to_string(head->head.status) + " " + text + hintFor(head->head.status),
                 head->head.status};
  }
  BodyDecoder decoder(head->framing, head->content_length);
  const Deadline deadline = SteadyClock::now() + impl_->opts.request_timeout;
  const BodyEnd end = impl_->pumpBody(c, decoder, on_bytes, deadline, max_body);
  if (end.kind != BodyEndKind::Complete) {
    return Error{"reading the reply to GET " + std::string(path_and_query) +
                 " failed: " + end.message};
  }
  return head->head;
}

void BusClient::stop() {
  impl_->stop_requested.store(true, std::memory_order_release);
  const uint64_t one = 1;
  // The eventfd stays readable from now on, so every later poll returns at once.
  [[maybe_unused]] const ssize_t n = ::write(impl_->wake.get(), &one, sizeof one);
  // A watch read blocked in recv() does not poll the eventfd: shutting the socket down wakes it
  // with an end of file, which readMore() reports as Stopped.
  std::lock_guard lock(impl_->blocking_mu);
  if (impl_->blocking_fd >= 0) ::shutdown(impl_->blocking_fd, SHUT_RDWR);
}

uint64_t BusClient::watchReads() const {
  return impl_->watch_reads;
}

bool BusClient::stopped() const {
  return impl_->stopped();
}

const std::string& BusClient::socketPath() const {
  return impl_->opts.socket_path;
}

}  // namespace tsk::watcher
