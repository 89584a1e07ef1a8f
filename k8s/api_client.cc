// ApiClient: one API request = token bucket, bearer token, one HTTPS attempt, and one immediate
// re-try after a 401 with a re-read token. Nothing else is retried here: the caller (the
// publisher) owns retries and backoff, so it can always retry with its newest data. A 429/503's
// Retry-After is parsed, bounded and handed back in the response for the caller's backoff.
//
// Bounds of one attempt (docs/OPERATIONS.md, "Kubernetes API client bounds"): the response body
// goes through a content receiver that stops at kMaxResponseBodyBytes, and a watchdog thread
// shuts the socket down when the attempt outlives ClientOptions.request_timeout (connect + TLS +
// headers + body; cpp-httplib 0.11's own timeouts are per read, so a server that trickles a byte
// at a time would otherwise hold the attempt forever). The receiver also returns false once the
// deadline fired or cancel() was called: shutting a TCP socket down does not stop Linux from
// handing out data that keeps arriving, so a read loop fed by a fast sender is stopped there.
#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>

#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "k8s/client.h"
#include "k8s/errors.h"
#include "k8s/server_address.h"
#include "k8s/tls_material.h"
#include "k8s/token_bucket.h"
#include "k8s/token_source.h"

namespace tsk::k8s {
namespace {

using std::chrono::milliseconds;

bool isIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

// cpp-httplib connects to a mapped host only by numeric address, so a DNS name is resolved here
// (once per attempt, to follow DNS changes) when tls-server-name differs from the server host.
std::optional<std::string> resolveNumeric(const std::string& host) {
  if (isIpLiteral(host)) return host;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &result) != 0 || result == nullptr) {
    return std::nullopt;
  }
  char buf[INET6_ADDRSTRLEN] = {};
  const void* addr =
      result->ai_family == AF_INET6
          ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(result->ai_addr)->sin6_addr)
          : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(result->ai_addr)->sin_addr);
  const bool ok = inet_ntop(result->ai_family, addr, buf, sizeof buf) != nullptr;
  freeaddrinfo(result);
  if (!ok) return std::nullopt;
  return std::string(buf);
}

std::string describeTransportError(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection:
      return "could not connect (connection refused, unreachable or DNS failure)";
    case httplib::Error::ConnectionTimeout:
      return "connect timed out";
    case httplib::Error::Read:
      return "the connection was closed or timed out while reading the response";
    case httplib::Error::Write:
      return "the connection was closed while sending the request";
    case httplib::Error::SSLConnection:
      return "the TLS handshake failed (connection closed, or the server rejected the client "
             "certificate or protocol)";
    case httplib::Error::Canceled:
      return "cancelled";
    default:
      return "transport error (" + httplib::to_string(e) + ")";
  }
}

std::string seconds(std::chrono::milliseconds ms) {
  if (ms.count() % 1000 == 0) return std::to_string(ms.count() / 1000) + " s";
  return std::to_string(ms.count()) + " ms";
}

// "application/json; charset=utf-8" -> "application/json"
std::string mediaType(const std::string& content_type) {
  std::string out = content_type.substr(0, content_type.find(';'));
  while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.pop_back();
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool isJsonMediaType(const std::string& content_type) {
  const std::string type = mediaType(content_type);
  return type == "application/json" ||
         (type.size() > 5 && type.compare(type.size() - 5, 5, "+json") == 0);
}

std::string statusLine(int status, const std::string& reason) {
  return std::to_string(status) + (reason.empty() ? "" : " " + sanitizedExcerpt(reason, 40));
}

// Fires `on_expiry` once when an armed deadline passes before disarm(). One thread per client,
// asleep unless a deadline is armed.
class Watchdog {
 public:
  explicit Watchdog(std::function<void()> on_expiry)
      : on_expiry_(std::move(on_expiry)), thread_([this] { run(); }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void arm(std::chrono::steady_clock::time_point deadline) {
    bool wake = false;
    {
      std::lock_guard lock(mu_);
      deadline_ = deadline;
      fired_.store(false);
      // Back-to-back requests push the deadline later: the thread, asleep until an earlier one,
      // finds the new one when it wakes, so the common path costs no thread wake-up.
      wake = !sleeping_until_ || deadline < *sleeping_until_;
    }
    if (wake) cv_.notify_all();
  }
  // Returns whether the deadline fired since arm(); on_expiry has finished if it did.
  bool disarm() {
    std::lock_guard lock(mu_);
    deadline_.reset();
    return fired_.load();
  }
  bool fired() const { return fired_.load(); }

 private:
  void run() {
    std::unique_lock lock(mu_);
    while (!quit_) {
      if (!deadline_) {
        sleeping_until_.reset();
        cv_.wait(lock);
        continue;
      }
      sleeping_until_ = *deadline_;
      cv_.wait_until(lock, *sleeping_until_);
      if (deadline_ && std::chrono::steady_clock::now() >= *deadline_) {
        fired_.store(true);
        deadline_.reset();
        on_expiry_();  // under mu_: disarm() returns only after it finished
      }
    }
  }

  const std::function<void()> on_expiry_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  std::optional<std::chrono::steady_clock::time_point> sleeping_until_;  // the thread's wait
  std::atomic<bool> fired_{false};
  bool quit_ = false;
  std::thread thread_;
};

}  // namespace

struct ApiClient::Impl {
  Impl(ClusterConfig c, ClientOptions o, RequestObserver* obs, Logger& l, Clock& clk)
      : cfg(std::move(c)),
        opts(std::move(o)),
        observer(obs),
        log(l),
        clock(clk),
        tokens(cfg.token, cfg.token_file, opts.token_refresh, clk, l),
        bucket(opts.qps, opts.burst, clk) {
    config_status = setUp();
    if (!config_status) {
      log.error("cannot set up the Kubernetes API client",
                {{"server", cfg.server}, {"error", config_status.error().message}});
    }
  }

  Status setUp();
  struct Attempt {
    int status = 0;
    std::string reason;  // the status line's reason phrase
    std::string body;
    std::string retry_after;
    std::string content_type;
    std::string location;
    httplib::Error error = httplib::Error::Success;
    long verify_error = 0;           // X509_V_ERR_*: the handshake failed on the server certificate
    bool deadline_exceeded = false;  // the watchdog ended the attempt
    bool body_too_large = false;     // the body passed kMaxResponseBodyBytes (reading stopped)
    uint64_t declared_length = 0;    // Content-Length, when the server sent one
  };
  Attempt send(std::string_view verb, const std::string& path, const std::string& body,
               const std::string& content_type, const std::string& token);
  Error transportError(std::string_view verb, const std::string& path, const Attempt& a) const;
  void report(std::string_view verb, std::string_view resource, int code,
              Clock::Monotonic start) const {
    if (observer) observer->onRequest(verb, resource, code, clock.monotonicNow() - start);
  }
  Error cancelledError(std::string_view verb, const std::string& path) const {
    return Error{std::string(verb) + " " + cfg.server + path + ": cancelled (shutting down)",
                 ErrorKind::Cancelled};
  }
  // The final answer of a logical request that is not a usable API response: a redirect, a 2xx
  // that is not JSON, a body over the cap. Empty if the answer is usable.
  std::optional<Error> unusableAnswer(std::string_view verb, const std::string& path,
                                      const Attempt& a, const std::vector<std::string>& sent) const;

  const ClusterConfig cfg;
  const ClientOptions opts;
  RequestObserver* const observer;
  Logger& log;
  Clock& clock;
  TokenSource tokens;
  TokenBucket bucket;
  StopSignal stop;  // cancel(): wakes a token-bucket wait, fails further requests
  Status config_status;
  ServerAddress address;
  std::string verify_name;  // the name the certificate must carry
  std::string mapped_host;  // non-empty: tls-server-name differs, connect to this host
  TlsMaterial tls;          // must outlive `http` (its SSL_CTX points at it)
  std::mutex http_mu;       // one attempt at a time on the keep-alive connection
  std::unique_ptr<httplib::SSLClient> http;
  // Declared after `http`, so destroyed (joined) before it. Shuts the socket down when the
  // attempt in flight passes its deadline.
  std::unique_ptr<Watchdog> watchdog;
};

Status ApiClient::Impl::setUp() {
  auto addr = parseServerAddress(cfg.server);
  if (!addr) return addr.error();
  address = std::move(addr).value();
  if (cfg.ca_pem.empty() && !cfg.insecure_skip_verify) {
    return Error{"no CA certificate for " + cfg.server +
                 ": the agent verifies the API server with the cluster CA only (ca.crt, or "
                 "certificate-authority in the kubeconfig)"};
  }
  auto material = TlsMaterial::fromPem(cfg.insecure_skip_verify ? "" : cfg.ca_pem,
                                       cfg.client_cert_pem, cfg.client_key_pem);
  if (!material) return material.error();
  tls = std::move(material).value();

  verify_name = cfg.tls_server_name.empty() ? address.host : cfg.tls_server_name;
  if (verify_name != address.host) mapped_host = address.host;
  http = tls.hasClientCertificate()
             ? std::make_unique<httplib::SSLClient>(verify_name, address.port,
                                                    tls.clientCertificate(), tls.clientKey())
             : std::make_unique<httplib::SSLClient>(verify_name, address.port);
  if (!http->is_valid()) return Error{"cannot set up TLS for " + cfg.server + " (OpenSSL)"};
  // Verification is done by OpenSSL inside the handshake (TlsMaterial::install), not by
  // cpp-httplib's post-handshake check: httplib 0.11's verify_host reads past the end of IPv4
  // SAN entries when the host is an IPv6 literal (ASan heap-buffer-overflow) and falls back to
  // the CN even when SANs are present, and with its check enabled httplib would also load the
  // system roots into the context. So httplib's own switch stays off; the peer is still always
  // verified, except with an explicit insecure_skip_verify.
  http->enable_server_certificate_verification(false);
  if (cfg.insecure_skip_verify) {
    log.warn(
        "TLS verification of the API server is DISABLED (insecure-skip-tls-verify): anyone on the "
        "path can read and change what the agent sends; use only for testing, use a CA instead",
        {{"server", cfg.server}});
  } else if (auto installed = tls.install(http->ssl_context(), verify_name); !installed) {
    return installed.error();
  }
  http->set_keep_alive(true);
  http->set_tcp_nodelay(true);  // headers and body go out as separate writes: no Nagle delay
  http->set_connection_timeout(opts.connect_timeout);
  http->set_read_timeout(opts.request_timeout);
  http->set_write_timeout(opts.request_timeout);
  http->set_follow_location(false);  // a redirect is reported (naming its Location), not followed
  watchdog = std::make_unique<Watchdog>([this] { http->stop(); });
  return {};
}

ApiClient::Impl::Attempt ApiClient::Impl::send(std::string_view verb, const std::string& path,
                                               const std::string& body,
                                               const std::string& content_type,
                                               const std::string& token) {
  Attempt a;
  std::lock_guard lock(http_mu);
  (void)tls.takeVerifyError();
  if (!mapped_host.empty()) {
    auto ip = resolveNumeric(mapped_host);
    if (!ip) {
      a.error = httplib::Error::Connection;
      return a;
    }
    http->set_hostname_addr_map({{verify_name, *ip}});
  }
  httplib::Request req;
  req.method = std::string(verb);
  req.path = address.prefix + path;
  req.headers.emplace("Accept", "application/json");
  req.headers.emplace("User-Agent", opts.user_agent);
  if (!token.empty()) req.headers.emplace("Authorization", "Bearer " + token);
  if (!content_type.empty()) req.headers.emplace("Content-Type", content_type);
  req.body = body;
  httplib::Response res;
  // The body is collected here, not by httplib (which appends without a limit). Returning false
  // makes httplib stop reading and fail the attempt with Error::Canceled.
  req.response_handler = [&](const httplib::Response& head) {
    if (head.has_header("Content-Length")) {
      const std::string declared = head.get_header_value("Content-Length");
      if (!declared.empty() && declared.size() < 20 &&
          declared.find_first_not_of("0123456789") == std::string::npos) {
        a.declared_length = std::stoull(declared);
      }
    }
    if (a.declared_length > kMaxResponseBodyBytes) {
      a.body_too_large = true;  // no need to read a byte of it
      return false;
    }
    return !stop.stopped() && !watchdog->fired();
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    if (stop.stopped() || watchdog->fired()) return false;
    if (a.body.size() + n > kMaxResponseBodyBytes) {
      a.body_too_large = true;
      return false;
    }
    a.body.append(data, n);
    return true;
  };
  watchdog->arm(std::chrono::steady_clock::now() + opts.request_timeout);
  const bool sent = http->send(req, res, a.error);
  a.deadline_exceeded = watchdog->disarm();
  if (!sent || a.body_too_large) {
    if (a.error == httplib::Error::Success) a.error = httplib::Error::Unknown;
    a.verify_error = tls.takeVerifyError();
    if (a.body_too_large) {  // an answer whose status is known but whose body was cut off
      a.status = res.status;
      a.reason = res.reason;
      a.content_type = res.get_header_value("Content-Type");
      a.body.clear();
      // The rest of it may still be on the connection: drop the connection with it.
      http->stop();
    } else {
      a.body.clear();
    }
    return a;
  }
  a.deadline_exceeded = false;  // complete before the watchdog fired
  a.status = res.status;
  a.reason = res.reason;
  a.retry_after = res.get_header_value("Retry-After");
  a.content_type = res.get_header_value("Content-Type");
  a.location = res.get_header_value("Location");
  return a;
}

Error ApiClient::Impl::transportError(std::string_view verb, const std::string& path,
                                      const Attempt& a) const {
  if (a.verify_error != X509_V_OK) {
    return Error{"TLS verification of " + cfg.server +
                     " failed: " + describeVerifyFailure(a.verify_error, verify_name),
                 ErrorKind::Tls};
  }
  const std::string what = std::string(verb) + " " + cfg.server + path + ": ";
  if (a.deadline_exceeded) {
    return Error{what + "no complete answer within the request deadline of " +
                     seconds(opts.request_timeout) +
                     " (connect, TLS handshake, response headers and body together); the API "
                     "server, or a proxy or load balancer in front of it, is stalled or sending "
                     "very slowly: check its health and the network path to " +
                     cfg.server,
                 ErrorKind::Timeout};
  }
  return Error{what + describeTransportError(a.error) +
                   "; check that the API server is reachable at " + cfg.server,
               ErrorKind::Transport};
}

std::optional<Error> ApiClient::Impl::unusableAnswer(std::string_view verb, const std::string& path,
                                                     const Attempt& a,
                                                     const std::vector<std::string>& sent) const {
  const std::string what = std::string(verb) + " " + cfg.server + path + ": ";
  if (a.body_too_large) {
    const std::string size = a.declared_length > 0
                                 ? "a body of " + std::to_string(a.declared_length) + " bytes"
                                 : "a body larger than that";
    return Error{what + "the API server answered " + statusLine(a.status, a.reason) + " with " +
                     size + "; the agent reads at most " +
                     std::to_string(kMaxResponseBodyBytes / (1024 * 1024)) +
                     " MiB (a Secret or ConfigMap holds at most 1 MiB of data) and stopped "
                     "reading: check what answers at " +
                     cfg.server + " (a proxy in the way?) and the object's size",
                 ErrorKind::Parse};
  }
  if (a.status >= 300 && a.status < 400) {
    const std::string location =
        a.location.empty() ? "no Location header"
                           : "Location: " + sanitizedExcerpt(redactCredentials(a.location, sent),
                                                             kMaxExcerptBytes);
    return Error{what + "the API server answered " + statusLine(a.status, a.reason) + " (" +
                     location +
                     "); the agent does not follow redirects: point the server URL at the API "
                     "server itself, not at a proxy or login page",
                 a.status};
  }
  if (a.status >= 200 && a.status < 300 && !a.body.empty() && !isJsonMediaType(a.content_type)) {
    const std::string type = a.content_type.empty()
                                 ? "no Content-Type"
                                 : "Content-Type \"" + sanitizedExcerpt(a.content_type, 100) + "\"";
    return Error{what + "the API server answered " + statusLine(a.status, a.reason) + " with " +
                     type + ", not JSON: \"" +
                     sanitizedExcerpt(redactCredentials(a.body, sent), kMaxExcerptBytes) +
                     "\"; something other than the Kubernetes API server answered (a proxy's "
                     "login or error page?): check the server URL " +
                     cfg.server,
                 ErrorKind::Parse};
  }
  return std::nullopt;
}

ApiClient::ApiClient(ClusterConfig cfg, ClientOptions opts, RequestObserver* observer, Logger& log,
                     Clock& clock)
    : impl_(std::make_unique<Impl>(std::move(cfg), std::move(opts), observer, log, clock)) {}

ApiClient::~ApiClient() = default;

const ClusterConfig& ApiClient::config() const {
  return impl_->cfg;
}
const ClientOptions& ApiClient::options() const {
  return impl_->opts;
}
Status ApiClient::configStatus() const {
  return impl_->config_status;
}

void ApiClient::cancel() {
  impl_->stop.stop();
  // Aborts an attempt in flight (thread-safe in httplib: it shuts the socket down); the content
  // receiver stops a body that keeps arriving at its next chunk.
  if (impl_->http) impl_->http->stop();
}

Result<HttpResponse> ApiClient::request(std::string_view verb, const std::string& path,
                                        std::string_view resource, const std::string& body,
                                        const std::string& content_type) {
  Impl& d = *impl_;
  if (!d.config_status) {
    Error e = d.config_status.error();
    e.kind = ErrorKind::Config;  // a client that cannot be set up will not become one by retrying
    return e;
  }
  bool token_retried = false;
  std::vector<std::string> sent_tokens;  // redacted from anything the server says
  for (int attempts = 1;; ++attempts) {
    if (d.stop.stopped()) return d.cancelledError(verb, path);
    if (const auto wait = d.bucket.reserve();
        wait.count() > 0 && d.stop.waitUntil(d.clock, d.clock.monotonicNow() + wait)) {
      return d.cancelledError(verb, path);
    }
    auto token = d.tokens.token();
    if (!token) return token.error();
    if (!token->empty() &&
        std::find(sent_tokens.begin(), sent_tokens.end(), *token) == sent_tokens.end()) {
      sent_tokens.push_back(*token);
    }

    const auto start = d.clock.monotonicNow();
    Impl::Attempt a = d.send(verb, path, body, content_type, *token);
    d.report(verb, resource, a.status, start);

    if (a.body_too_large) return *d.unusableAnswer(verb, path, a, sent_tokens);
    if (a.status == 0) {
      if (d.stop.stopped()) return d.cancelledError(verb, path);
      return d.transportError(verb, path, a);
    }
    if (a.status == 401 && d.tokens.refreshable() && !token_retried) {
      // The token may have been rotated: re-read it and send the request once more, at once.
      token_retried = true;
      d.tokens.invalidate();
      if (d.observer) d.observer->onRetry(verb, resource, a.status);
      d.log.info("the API server rejected the token (401): re-reading the token file",
                 {{"verb", std::string(verb)}, {"resource", std::string(resource)}});
      continue;
    }
    if (auto unusable = d.unusableAnswer(verb, path, a, sent_tokens)) return *unusable;
    if (a.status == 401 && token_retried && !d.tokens.lastReadError().empty()) {
      return tokenRereadFailedError(verb, d.cfg.server + path, d.tokens.tokenFile(),
                                    d.tokens.lastReadError(),
                                    redactCredentials(a.body, sent_tokens));
    }
    // Anything a server says outside a success body ends up in errors, logs and /readyz: the
    // credentials it may echo are taken out here, where every answer passes.
    if (a.status < 200 || a.status >= 300) a.body = redactCredentials(a.body, sent_tokens);
    return HttpResponse{a.status, std::move(a.body),
                        parseRetryAfter(a.retry_after, d.opts.retry_after_cap), attempts};
  }
}

std::optional<milliseconds> parseRetryAfter(std::string_view value, milliseconds cap) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos) {
    return std::nullopt;
  }
  int64_t secs = 0;
  for (char c : value) {
    secs = secs * 10 + (c - '0');
    if (secs > 86'400) break;  // past any cap worth having: stop before overflow
  }
  return std::clamp<milliseconds>(std::chrono::seconds(secs), milliseconds(0),
                                  std::max(cap, milliseconds(0)));
}

}  // namespace tsk::k8s
