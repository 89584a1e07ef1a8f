#pragma once
// The Kubernetes client: configuration discovery, a verified-HTTPS API client, and stores that
// publish string key/value data into one Secret or ConfigMap. Knows nothing of Tailscale.
//
//   auto cfg = k8s::loadInCluster();                       // or loadKubeconfig(path)
//   k8s::ApiClient api(*cfg, {}, observer, log);
//   auto secret = k8s::makeSecretStore(api, cfg->namespace_name, "tailscale");
//   secret->patch({{"device_id", "nX"}, {"stale_key", std::nullopt}});
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/log.h"
#include "common/result.h"

namespace tsk::k8s {

inline constexpr std::string_view kServiceAccountDir =
    "/var/run/secrets/kubernetes.io/serviceaccount";

// The most a response body may hold; the agent stops reading past it and fails the request. A
// Secret's or ConfigMap's data is at most 1 MiB (Kubernetes validation, MaxSecretSize), which is
// ~1.4 MiB as base64 in JSON, and etcd stores no object over 1.5 MiB (--max-request-bytes); with
// metadata, managedFields and annotations (at most 256 KiB) every valid answer for one object
// fits in 3 MiB with room to spare, while a broken or hostile server cannot make the agent hold
// more than this per request.
inline constexpr size_t kMaxResponseBodyBytes = 3 * 1024 * 1024;

struct ClusterConfig {
  std::string server;           // "https://host:port" (IPv6 hosts in brackets)
  std::string ca_pem;           // PEM bundle: the only trust roots
  std::string token;            // a static bearer token (kubeconfig `token`), or
  std::string token_file;       // a file re-read at most every 60 s and after a 401
  std::string client_cert_pem;  // client certificate auth (kubeconfig)
  std::string client_key_pem;
  std::string namespace_name;         // service-account namespace or the context's namespace
  std::string tls_server_name;        // override for SNI/host verification; "" = host of `server`
  bool insecure_skip_verify = false;  // only from an explicit flag; warns at every start
  std::string source;  // where this came from, for the start-up log: "kubeconfig /path", ...
};

// In-cluster: KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT and the service-account dir
// (token_file = <dir>/token, re-read; ca.crt the only trust root; namespace trimmed, "" if the
// namespace file is missing so the caller needs one from elsewhere). Files that are not regular
// or are too large (see common/read_file.h) are errors naming the file.
Result<ClusterConfig> loadInCluster(std::string_view sa_dir = kServiceAccountDir);
// Out of cluster: a kubeconfig file; `context` empty = current-context. `path` may be a
// ':'-separated list as in KUBECONFIG: empty entries and files that do not exist are skipped (as
// kubectl does) and exactly one existing file must remain (the agent does not merge; the error
// names the files). Supported: cluster
// server, certificate-authority(-data) (relative paths against the file's directory),
// tls-server-name; user token, tokenFile, client-certificate/client-key(-data); the context's
// namespace ("default" if unset). exec/auth-provider/basic auth are rejected with a clear error.
// insecure-skip-tls-verify is refused unless `allow_insecure_skip_verify` (an explicit flag).
Result<ClusterConfig> loadKubeconfig(const std::string& path, const std::string& context = "",
                                     bool allow_insecure_skip_verify = false);
// The one file a KUBECONFIG-style list names (see loadKubeconfig), or what is wrong with it.
Result<std::string> pickKubeconfig(std::string_view list);

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{5'000};
  // The deadline of one HTTP attempt as a whole: connect, TLS handshake, request, response
  // headers and body (not per read: a server trickling bytes cannot stretch it). The re-try
  // after a 401 gets a fresh deadline.
  std::chrono::milliseconds request_timeout{10'000};
  double qps = 5.0;  // client-side token bucket
  int burst = 10;
  // The most of a Retry-After the client reports (HttpResponse::retry_after).
  std::chrono::milliseconds retry_after_cap{30'000};
  std::chrono::seconds token_refresh{60};
  std::string field_manager = "ts-kube-agent";
  std::string user_agent = "ts-kube-agent";
};

// Observes every HTTP request the client makes (the agent turns this into metrics).
class RequestObserver {
 public:
  virtual ~RequestObserver() = default;
  // verb: "GET", "PATCH", ...; resource: "secrets" / "configmaps"; code: HTTP status or 0 for a
  // transport error.
  virtual void onRequest(std::string_view verb, std::string_view resource, int code,
                         std::chrono::duration<double> seconds) = 0;
  // The request is sent again at once after a 401 with a re-read token (code 401).
  virtual void onRetry(std::string_view /*verb*/, std::string_view /*resource*/, int /*code*/) {}
};

struct HttpResponse {
  int status = 0;
  std::string body;
  // The Retry-After header in seconds, capped at ClientOptions::retry_after_cap; nullopt when
  // absent or not delta-seconds (an HTTP-date is ignored: the caller's backoff applies).
  std::optional<std::chrono::milliseconds> retry_after;
  int attempts = 1;  // HTTP attempts: 2 when a 401 made the client re-read the token and re-send
};

// Retry-After as the API server sends it (delta-seconds, surrounding blanks allowed), at most
// `cap`; nullopt for anything else.
std::optional<std::chrono::milliseconds> parseRetryAfter(std::string_view value,
                                                         std::chrono::milliseconds cap);

// Thread-safe: one publisher thread plus readiness checks may call request() concurrently
// (HTTP attempts are serialized on one keep-alive connection; token-bucket waits are not). The
// observer is called from the calling threads. Server certificate and host name are always
// verified against cfg.ca_pem only (never the system roots), unless cfg.insecure_skip_verify.
// With cfg.insecure_skip_verify the client logs, once per client, that verification is off.
class ApiClient {
 public:
  ApiClient(ClusterConfig cfg, ClientOptions opts, RequestObserver* observer, Logger& log,
            Clock& clock = RealClock::instance());
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  // One request: the token bucket (its wait on the client's Clock), one HTTPS attempt, and, on a
  // 401 with a token file, one more at once with the re-read token. No other retry: 409, 429,
  // 5xx and transport errors are the caller's to retry (with its own backoff and newest data);
  // a Retry-After comes back parsed in the response. Returns the response (any status but 3xx),
  // or an Error: Transport/Timeout (the attempt failed), Tls (certificate verification),
  // Parse (a body over kMaxResponseBodyBytes, or a 2xx whose body is not JSON, named with its
  // Content-Type and an excerpt), Http (a redirect, named with its Location and never followed;
  // a 401 after a failed token-file re-read), Cancelled. The body of a non-2xx response has the
  // tokens sent redacted (redactCredentials in errors.h), so it is safe to put into errors and
  // logs. `path` is relative to the server URL (which may carry a path prefix), query included.
  Result<HttpResponse> request(std::string_view verb, const std::string& path,
                               std::string_view resource, const std::string& body = "",
                               const std::string& content_type = "");
  // Whether the configuration could be turned into a client (server URL, CA and client
  // certificate PEM). If not, every request() returns this error.
  Status configStatus() const;
  const ClusterConfig& config() const;
  const ClientOptions& options() const;
  // Wakes a token-bucket wait, interrupts an attempt in flight (also one still receiving data)
  // and makes further requests fail fast (shutdown).
  void cancel();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct ObjectData {
  std::string resource_version;
  std::map<std::string, std::string> data;  // decoded values (Secret base64 is undone)
  // Keys present whose value cannot be decoded (not a string, or not valid base64 in a Secret's
  // `data` / a ConfigMap's `binaryData`). Such a key is reported here, not in `data`, and does
  // not fail the read: a bad value in a key someone else owns must not stop the owner of other
  // keys, and the owner of this key can treat it as "differs" and rewrite it.
  std::set<std::string> undecodable;
  // For each key get() was asked for, the field managers that own it according to
  // metadata.managedFields (fieldsV1 `f:data` -> `f:<key>`, also `f:binaryData` for a
  // ConfigMap), whatever their operation (Update or Apply). A key no entry names is absent
  // (e.g. an object written before server-side field tracking, or a server without it).
  std::map<std::string, std::set<std::string>> managers;
};

// The keys get() decodes; empty = all of them. Values of other keys are neither decoded nor
// kept (a shared Secret also holds tailscaled's private state, which is none of the caller's
// business).
using KeyFilter = std::set<std::string>;

using DataChanges = std::map<std::string, std::optional<std::string>>;  // nullopt = delete key

// A Secret or ConfigMap: get, create, and a strategic-merge PATCH of `data` touching only the
// given keys, with fieldManager. Each is one API request (ApiClient::request): no retry and no
// fallback from one verb to another; deciding to create a missing object, and retrying, is the
// caller's (the publisher's). Errors name verb, resource, namespace and name, carry the HTTP
// status (kind Http) and the server's Retry-After; a 403 also names the Role rule that would
// allow it.
// get() checks that the answer is the object asked for (kind, metadata.name and
// metadata.namespace) and refuses anything else: a 200 for another object is an error.
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  // nullopt: the object does not exist. Decodes only the keys in `only` (all when empty).
  virtual Result<std::optional<ObjectData>> get(const KeyFilter& only) = 0;
  Result<std::optional<ObjectData>> get() { return get(KeyFilter{}); }
  // Errors: 409 "already exists", 404 "namespace does not exist".
  virtual Status create(const std::map<std::string, std::string>& data) = 0;
  // Errors: 404 "does not exist" (missingObjectError in errors.h), 409 conflict, ...
  virtual Status patch(const DataChanges& changes) = 0;
  virtual std::string describe() const = 0;  // e.g. "secret tailscale/ts-state"
};

std::unique_ptr<ObjectStore> makeSecretStore(ApiClient& api, std::string ns, std::string name);
std::unique_ptr<ObjectStore> makeConfigMapStore(ApiClient& api, std::string ns, std::string name);

}  // namespace tsk::k8s
