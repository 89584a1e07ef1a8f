#pragma once
// BusClient: a small HTTP/1.1 client for tailscaled's LocalAPI over its unix socket
// (docs/PROTOCOL.md#transport-and-headers).
// cpp-httplib cannot speak AF_UNIX, and the bus needs a body streamed for hours, so this is
// hand-written: connect with a timeout, one request, a bounded response head, then a streaming
// body decoder (chunked, Content-Length or read-until-close) that hands decoded bytes to a
// callback straight out of one 64 KiB read buffer.
//
// Why not libcurl (Debian's 7.88, which can: CURLOPT_UNIX_SOCKET_PATH, its own chunked decoder,
// curl_multi_wakeup). Measured against tsbus-sim with the same NotifyParser behind both clients
// (tools/bench-baselines/curl-drain, scripts/bench/curl_compare.py; CPU: the range of the medians
// of 3 sessions of 3-5 runs on a loaded 2-core machine): libcurl costs more and gives nothing
// the agent lacks, so this client stays.
//  - Instructions per line (callgrind, 20k SelfChange + 20k blank lines drained): 14,535 here,
//    21,598 with libcurl (+49%). CPU per line drained: 1.7-2.1 us here, 2.1-2.4 us libcurl.
//  - Paced, one line per write: at 10k lines/s 3.6-4.2 us per line here, 4.8-5.4 us libcurl;
//    at 1k/s no difference shows through the noise (15-18 us both). Syscalls per line (strace
//    -c): 0.09 here, 0.24 libcurl at 10k/s (0.025 vs 0.055 drained): libcurl polls before its
//    recvs (and makes more of them); this client sleeps in recv itself.
//  - Wakeups match (0.05 per line at 10k/s, 0.48 at 1k/s) only because the read pacing
//    (watcher/read_pacer.h) was rebuilt around curl_multi: the delay holds back the next
//    curl_multi_perform. curl_easy_perform cannot be paced: 0.86 wakeups and 20 us per line at
//    10k/s.
//  - Stop from another thread: curl_multi_wakeup 0.07-0.08 ms (median), shutdown() here
//    0.03 ms; the CURLOPT_XFERINFOFUNCTION abort of curl_easy_perform waits for libcurl's idle
//    poll: 100 ms.
//  - Bounds: libcurl's response head may reach 300 KiB (a 100 KiB+ line fails as "Out of
//    memory"), here 64 KiB; chunk sizes are checked alike (bad hex, over 16 digits, missing
//    CRLF), but libcurl skips a chunk extension of any length where BodyDecoder stops at 4 KiB.
//    A truncated body (CURLE_PARTIAL_FILE) and the fell-behind close (its ErrMessage line, then
//    the end) reach the agent the same way with either.
//  - Peak RSS +0.5 MiB; 30 more shared libraries (16.7 MB: OpenSSL, nghttp2, libssh2, LDAP,
//    Kerberos, ...) to copy into the FROM-scratch image for one unix socket.
//
//   BusClient bus({.socket_path = "/var/run/tailscale/tailscaled.sock"});
//   auto head = bus.openWatch(16384);        // 200 or an Error naming status and body text
//   if (!head) { log(head.error().message); ... }
//   BodyEnd end = bus.readBody([&](std::string_view bytes) { parser.feed(bytes); return true; });
//   bus.close();
//
// stop() may be called from any thread: it interrupts a connect, a blocking read or a write at
// once (connects and one-shot GETs poll the socket together with an eventfd; the watch body is
// read with blocking recv()s, one syscall per wakeup, which stop() wakes by shutting the socket
// down; a read delay, see max_read_delay, waits on the eventfd) and is permanent: every later call
// fails fast with BodyEnd::Stopped / an Error. The body has no read timeout (the bus can be silent
// for hours); the response head and one-shot GETs do (request_timeout).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "common/tailscaled_socket.h"
#include "common/unique_fd.h"
#include "watcher/read_pacer.h"

namespace tsk::watcher {

struct BusClientOptions {
  std::string socket_path{kDefaultTailscaledSocket};
  std::chrono::milliseconds connect_timeout{5'000};
  // Deadline for the response head and for one-shot GET bodies (not for the watch body).
  std::chrono::milliseconds request_timeout{30'000};
  size_t max_error_body = 4096;  // bytes of a non-200 body kept for the error message
  // The watch body's read pacing (watcher/read_pacer.h): when lines come close together, wait
  // up to this long before the next recv() so that a burst costs one wakeup; 0 = read at once.
  std::chrono::microseconds max_read_delay{kDefaultMaxReadDelay};  // at most kMaxReadDelayLimit
};

// The parsed response head of a request.
struct ResponseHead {
  int status = 0;
  std::string reason;
  std::string tailscale_version;  // Tailscale-Version header, "" if absent
  std::string tailscale_cap;      // Tailscale-Cap header, "" if absent
  std::string content_type;
};

// Why a body stream ended.
enum class BodyEndKind {
  Complete,  // the zero-size chunk, the Content-Length reached, or EOF of a read-until-close body
  Eof,       // the connection closed (or reset) before the body was complete
  Stopped,   // stop() was called, or the callback asked to stop
  Error,     // malformed framing or a socket error
};

struct BodyEnd {
  BodyEndKind kind = BodyEndKind::Complete;
  std::string message;  // human-readable reason
  uint64_t bytes = 0;   // decoded body bytes handed to the callback
};

// Receives decoded body bytes. Return false to pause reading (BodyEndKind::Stopped); a later
// readBody() resumes right after the bytes already handed over.
using BodyCallback = std::function<bool(std::string_view)>;

// BodyDecoder: the streaming HTTP/1.1 body decoder BusClient uses (exposed for tests). Feed it
// raw bytes split anywhere; it hands the decoded body to the callback without copying and says
// when the body is complete. Chunked framing ends at the zero-size chunk and its empty trailer,
// whether or not the server then closes the connection.
//
//   BodyDecoder d(BodyDecoder::Framing::Chunked);
//   size_t used = 0;
//   auto st = d.feed(raw, on_bytes, &used);   // More, Done (used <= raw.size()), Error, Stopped
//   if (at_eof) st = d.finish();              // Done only for a read-until-close body
class BodyDecoder {
 public:
  enum class Framing { Chunked, Length, UntilClose };
  enum class State { More, Done, Error, Stopped };

  explicit BodyDecoder(Framing framing, uint64_t content_length = 0);

  State feed(std::string_view raw, const BodyCallback& on_bytes, size_t* consumed);
  State finish();  // the connection ended: Done for read-until-close, else Error (truncated)

  State state() const { return state_; }
  const std::string& error() const { return error_; }
  uint64_t decodedBytes() const { return decoded_; }
  Framing framing() const { return framing_; }

 private:
  enum class Step {
    SizeHex,
    SizeExt,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    TrailerLine,
    LastLf,
    End
  };
  State fail(std::string message);
  State controlByte(char c);
  void endOfSizeLine();

  Framing framing_;
  State state_ = State::More;
  Step step_ = Step::SizeHex;
  uint64_t remaining_ = 0;  // bytes left in the current chunk / of the Content-Length
  int size_digits_ = 0;
  size_t line_bytes_ = 0;  // bytes of the current chunk-extension / trailer section
  uint64_t decoded_ = 0;
  std::string error_;
};

// What the Watcher needs of a LocalAPI client: BusClient over the socket, or a fake in tests
// (tests/unit/watcher/fake_transport.h). The methods mean what BusClient's below say.
class BusTransport {
 public:
  virtual ~BusTransport() = default;
  virtual Result<ResponseHead> openWatch(uint64_t mask) = 0;
  virtual BodyEnd readBody(const BodyCallback& on_bytes) = 0;
  virtual void close() = 0;
  virtual Result<ResponseHead> get(std::string_view path_and_query, const BodyCallback& on_bytes,
                                   uint64_t max_body) = 0;
  virtual void stop() = 0;  // from any thread
};

class BusClient final : public BusTransport {
 public:
  explicit BusClient(BusClientOptions opts);
  ~BusClient() override;
  BusClient(const BusClient&) = delete;
  BusClient& operator=(const BusClient&) = delete;

  // Connects and sends GET /localapi/v0/watch-ipn-bus?mask=<decimal>. On 200 the head is returned
  // and the body is read with readBody(). Any other status closes the connection and gives an
  // Error whose message carries the status and the body text, e.g.
  // "tailscaled rejected the watch request: 400 bad mask" (Error::code = the status).
  Result<ResponseHead> openWatch(uint64_t mask) override;

  // Streams the body of the open watch to `on_bytes` until it ends (see BodyEndKind). Blocks
  // without a timeout; stop() interrupts it.
  BodyEnd readBody(const BodyCallback& on_bytes) override;

  // recv() calls that brought bytes of the open watch's body since openWatch(): the reader's
  // wakeups (with read pacing, fewer than the lines). Read it on the thread that reads the body.
  uint64_t watchReads() const;

  // Closes the watch connection (safe when none is open).
  void close() override;

  // A one-shot GET on a fresh connection (the watch stays open), e.g.
  // "/localapi/v0/status?peers=false". The body is streamed to `on_bytes`; more than `max_body`
  // bytes, a non-200 status, a timeout or a framing error give an Error.
  Result<ResponseHead> get(std::string_view path_and_query, const BodyCallback& on_bytes,
                           uint64_t max_body = 64ull << 20) override;

  // Interrupts any blocking call now and fails every later one. Thread-safe, idempotent.
  void stop() override;
  bool stopped() const;

  const std::string& socketPath() const;

  // The exact request bytes BusClient sends for a path (exposed for tests and documentation).
  static std::string requestFor(std::string_view path_and_query);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tsk::watcher
