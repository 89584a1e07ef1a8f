// ApiClient: one logical API request = token bucket, bearer token, one HTTPS attempt, and the
// retry policy (409 for writes, 429, 5xx and connection errors, with backoff and Retry-After;
// one immediate retry after a 401 with a re-read token). TLS verification failures are final.
#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>

#include <arpa/inet.h>

#include <map>
#include <mutex>
#include <optional>

#include "common/backoff.h"
#include "k8s/client.h"
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

bool isRetryableStatus(int status, std::string_view verb, ConflictRetry conflict_retry) {
  if (status == 409) {
    switch (conflict_retry) {
      case ConflictRetry::Always:
        return true;
      case ConflictRetry::Never:
        return false;
      case ConflictRetry::ForWrites:
        return verb == "PATCH" || verb == "PUT";
    }
  }
  return status == 429 || (status >= 500 && status != 501 && status != 505);
}

// Retry-After in seconds (the form the API server sends); HTTP dates fall back to backoff.
std::optional<milliseconds> parseRetryAfter(const std::string& value, milliseconds cap) {
  if (value.empty() || value.size() > 9 ||
      value.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::min<milliseconds>(std::chrono::seconds(std::stol(value)), cap);
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
    std::string body;
    std::string retry_after;
    httplib::Error error = httplib::Error::Success;
    long verify_error = 0;  // X509_V_ERR_*: the handshake failed on the server certificate
  };
  Attempt send(std::string_view verb, const std::string& path, const std::string& body,
               const std::string& content_type, const std::string& token);
  Error transportError(std::string_view verb, const std::string& path, const Attempt& a,
                       int attempts) const;
  void report(std::string_view verb, std::string_view resource, int code,
              Clock::Monotonic start) const {
    if (observer) observer->onRequest(verb, resource, code, clock.monotonicNow() - start);
  }
  Error cancelledError(std::string_view verb, const std::string& path) const {
    return Error{std::string(verb) + " " + cfg.server + path + ": cancelled (shutting down)"};
  }

  const ClusterConfig cfg;
  const ClientOptions opts;
  RequestObserver* const observer;
  Logger& log;
  Clock& clock;
  TokenSource tokens;
  TokenBucket bucket;
  StopSignal stop;
  Status config_status;
  ServerAddress address;
  std::string verify_name;  // the name the certificate must carry
  std::string mapped_host;  // non-empty: tls-server-name differs, connect to this host
  TlsMaterial tls;          // must outlive `http` (its SSL_CTX points at it)
  std::mutex http_mu;       // one attempt at a time on the keep-alive connection
  std::unique_ptr<httplib::SSLClient> http;
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
        "path can read and change what the agent sends; use a CA instead",
        {{"server", cfg.server}});
  } else if (auto installed = tls.install(http->ssl_context(), verify_name); !installed) {
    return installed.error();
  }
  http->set_keep_alive(true);
  http->set_tcp_nodelay(true);  // headers and body go out as separate writes: no Nagle delay
  http->set_connection_timeout(opts.connect_timeout);
  http->set_read_timeout(opts.request_timeout);
  http->set_write_timeout(opts.request_timeout);
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
  if (!http->send(req, res, a.error)) {
    if (a.error == httplib::Error::Success) a.error = httplib::Error::Unknown;
    a.verify_error = tls.takeVerifyError();
    return a;
  }
  a.status = res.status;
  a.body = std::move(res.body);
  a.retry_after = res.get_header_value("Retry-After");
  return a;
}

Error ApiClient::Impl::transportError(std::string_view verb, const std::string& path,
                                      const Attempt& a, int attempts) const {
  if (a.verify_error != X509_V_OK) {
    return Error{"TLS verification of " + cfg.server +
                 " failed: " + describeVerifyFailure(a.verify_error, verify_name)};
  }
  std::string msg =
      std::string(verb) + " " + cfg.server + path + ": " + describeTransportError(a.error);
  if (attempts > 1) msg += " (" + std::to_string(attempts) + " attempts)";
  return Error{msg + "; check that the API server is reachable at " + cfg.server};
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
  if (impl_->http) impl_->http->stop();  // aborts an attempt in flight; thread-safe in httplib
}

Result<HttpResponse> ApiClient::request(std::string_view verb, const std::string& path,
                                        std::string_view resource, const std::string& body,
                                        const std::string& content_type,
                                        ConflictRetry conflict_retry) {
  Impl& d = *impl_;
  if (!d.config_status) return d.config_status.error();
  Backoff backoff(d.opts.backoff_initial, d.opts.backoff_max);
  const int max_attempts = std::max(1, d.opts.max_attempts);
  int attempts = 0;           // HTTP attempts made
  int retry_budget_used = 0;  // attempts that count against max_attempts
  bool token_retried = false;
  for (;;) {
    if (d.stop.stopped()) return d.cancelledError(verb, path);
    if (const auto wait = d.bucket.reserve(); wait.count() > 0 && d.stop.waitFor(wait)) {
      return d.cancelledError(verb, path);
    }
    auto token = d.tokens.token();
    if (!token) return token.error();

    const auto start = d.clock.monotonicNow();
    Impl::Attempt a = d.send(verb, path, body, content_type, *token);
    ++attempts;
    ++retry_budget_used;
    d.report(verb, resource, a.status, start);

    milliseconds delay{0};
    if (a.status == 0) {
      if (d.stop.stopped()) return d.cancelledError(verb, path);
      // A certificate that fails verification will fail again: report it at once.
      if (a.verify_error != X509_V_OK || retry_budget_used >= max_attempts) {
        return d.transportError(verb, path, a, attempts);
      }
      delay = backoff.next();
    } else if (a.status == 401 && d.tokens.refreshable() && !token_retried) {
      // The token may have been rotated: re-read it and retry at once, outside the budget.
      token_retried = true;
      --retry_budget_used;
      d.tokens.invalidate();
    } else if (isRetryableStatus(a.status, verb, conflict_retry) &&
               retry_budget_used < max_attempts) {
      const auto retry_after = parseRetryAfter(a.retry_after, d.opts.retry_after_cap);
      delay = backoff.next();
      if (retry_after) delay = *retry_after;
    } else {
      return HttpResponse{a.status, std::move(a.body), std::move(a.retry_after), attempts};
    }

    if (d.observer) d.observer->onRetry(verb, resource, a.status);
    d.log.info("retrying Kubernetes API request",
               {{"verb", std::string(verb)},
                {"resource", std::string(resource)},
                {"code", std::to_string(a.status)},
                {"error", a.status == 0 ? describeTransportError(a.error) : std::string()},
                {"attempt", std::to_string(attempts)},
                {"delay_ms", std::to_string(delay.count())}});
    if (delay.count() > 0 && d.stop.waitFor(delay)) return d.cancelledError(verb, path);
  }
}

}  // namespace tsk::k8s
