#include "tools/kube-emu/kube_emu.h"
#include "common/httplib_server.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <mutex>
#include <set>

#include <httplib.h>

#include "tools/kube-emu/discovery.h"
#include "tools/kube-emu/object_rules.h"

namespace tsk::kube_emu {

using nlohmann::json;

// The open TLS connections, so that stop() can close idle keep-alive connections at once instead
// of waiting out httplib's keep-alive timeout. Connections register at handshake start (info
// callback) and leave when OpenSSL frees their SSL object, which httplib does before it closes
// the socket, so a descriptor in the set is always still ours.
class ConnectionTracker {
 public:
  void add(int fd) {
    std::lock_guard lock(mu_);
    if (closing_) {
      ::shutdown(fd, SHUT_RDWR);
      return;
    }
    fds_.insert(fd);
  }
  void remove(int fd) {
    std::lock_guard lock(mu_);
    fds_.erase(fd);
  }
  void shutdownAll() {
    std::lock_guard lock(mu_);
    closing_ = true;
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
  }

  static void attach(SSL_CTX* ctx, ConnectionTracker* tracker) {
    SSL_CTX_set_ex_data(ctx, ctxIndex(), tracker);
    SSL_CTX_set_info_callback(ctx, &onInfo);
  }

 private:
  struct Connection {
    ConnectionTracker* tracker;
    int fd;
  };

  static int ctxIndex() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
  }
  static int sslIndex() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, &onFree);
    return index;
  }
  static void onInfo(const SSL* ssl, int where, int /*ret*/) {
    if ((where & SSL_CB_HANDSHAKE_START) == 0 || SSL_get_ex_data(ssl, sslIndex()) != nullptr) {
      return;
    }
    auto* tracker =
        static_cast<ConnectionTracker*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctxIndex()));
    const int fd = SSL_get_fd(ssl);
    if (tracker == nullptr || fd < 0) return;
    tracker->add(fd);
    SSL_set_ex_data(const_cast<SSL*>(ssl), sslIndex(), new Connection{tracker, fd});
  }
  static void onFree(void* /*parent*/, void* ptr, CRYPTO_EX_DATA* /*ad*/, int /*idx*/,
                     long /*argl*/, void* /*argp*/) {
    auto* conn = static_cast<Connection*>(ptr);
    if (conn == nullptr) return;
    conn->tracker->remove(conn->fd);
    delete conn;
  }

  std::mutex mu_;
  std::set<int> fds_;
  bool closing_ = false;
};

struct KubeEmu::RequestContext {
  std::optional<UserInfo> user;  // nullopt until authenticated
};

namespace {

constexpr size_t kLoggedBodyBytes = 16 * 1024;

std::string formatMillis(Clock::Wall t) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
  std::string s = formatRfc3339(t);
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03d", static_cast<int>(ms));
  s.insert(s.size() - 1, frac);
  return s;
}

std::vector<std::string> splitPath(const std::string& path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (slash > start) out.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string mediaType(const std::string& content_type) {
  std::string media = lower(content_type.substr(0, content_type.find(';')));
  media.erase(std::remove(media.begin(), media.end(), ' '), media.end());
  return media;
}

// The Status an injected fault answers: what kube-apiserver sends for that code, naming the
// object of the request where the code is about one (409 Conflict, 404 NotFound).
ApiResponse injectedStatus(int code, const std::string& path) {
  const std::string msg = "kube-emu injected fault (HTTP " + std::to_string(code) + ")";
  const auto segments = splitPath(path);
  std::string resource = "objects";
  std::string name;
  if (segments.size() >= 5 && segments[2] == "namespaces") {
    resource = segments[4];
    if (segments.size() >= 6) name = segments[5];
  }
  switch (code) {
    case 400:
      return badRequest(msg);
    case 401:
      return unauthorized();
    case 404:
      return notFound(resource, name);
    case 409:
      return conflict(resource, name);
    case 422:
      return statusResponse(422, "Invalid", msg, json::object());
    case 429:
      return tooManyRequests(1);
    case 500:
      return internalError(msg);
    case 503:
      return serviceUnavailable(msg);
    case 504:
      return statusResponse(504, "Timeout", msg, {{"retryAfterSeconds", 1}});
    default:
      return statusResponse(code, code >= 500 ? "InternalError" : "BadRequest", msg);
  }
}

ApiResponse textResponse(int code, const std::string& text) {
  return ApiResponse{code, json(text), {{"Content-Type", "text/plain; charset=utf-8"}}};
}

ApiResponse controlError(const std::string& message) {
  return ApiResponse{400, json{{"error", message}}, {}};
}

std::string certField(X509_NAME* name, int nid, int index) {
  X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, index);
  if (entry == nullptr) return {};
  unsigned char* utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
  if (len < 0) return {};
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  (void)nid;
  return out;
}

std::optional<UserInfo> userFromClientCert(const SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return std::nullopt;
  std::optional<UserInfo> user;
  if (SSL_get_verify_result(ssl) == X509_V_OK) {
    X509_NAME* subject = X509_get_subject_name(cert);
    UserInfo u;
    for (int i = X509_NAME_get_index_by_NID(subject, NID_commonName, -1); i >= 0;
         i = X509_NAME_get_index_by_NID(subject, NID_commonName, i)) {
      u.name = certField(subject, NID_commonName, i);
    }
    for (int i = X509_NAME_get_index_by_NID(subject, NID_organizationName, -1); i >= 0;
         i = X509_NAME_get_index_by_NID(subject, NID_organizationName, i)) {
      u.groups.push_back(certField(subject, NID_organizationName, i));
    }
    u.groups.push_back("system:authenticated");
    if (!u.name.empty()) user = std::move(u);
  }
  X509_free(cert);
  return user;
}

}  // namespace

KubeEmu::KubeEmu(KubeEmuOptions opts)
    : opts_(std::move(opts)),
      clock_(opts_.clock != nullptr ? *opts_.clock : RealClock::instance()),
      logger_(opts_.log != nullptr ? *opts_.log : Logger::null()),
      authz_(opts_.rbac),
      store_(clock_),
      connections_(std::make_shared<ConnectionTracker>()) {
  tokens_.replaceAll(opts_.tokens);
}

KubeEmu::~KubeEmu() {
  stop();
}

std::string KubeEmu::url() const {
  const bool v6 = opts_.listen_host.find(':') != std::string::npos;
  return "https://" + (v6 ? "[" + opts_.listen_host + "]" : opts_.listen_host) + ":" +
         std::to_string(port_);
}

std::string KubeEmu::controlUrl() const {
  if (!control_server_) return "";
  const bool v6 = opts_.control_host.find(':') != std::string::npos;
  return "http://" + (v6 ? "[" + opts_.control_host + "]" : opts_.control_host) + ":" +
         std::to_string(control_port_);
}

Status KubeEmu::start() {
  if (started_.exchange(true)) return Error{"kube-emu: start() called twice"};
  // A client that goes away mid-response must not kill the process: OpenSSL writes to the socket
  // without MSG_NOSIGNAL.
  ::signal(SIGPIPE, SIG_IGN);

  std::string tls_error;
  auto server = std::make_unique<httplib::SSLServer>([&](SSL_CTX& ctx) {
    SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(&ctx, opts_.cert_file.c_str()) != 1) {
      tls_error = "cannot load the server certificate " + opts_.cert_file;
      return false;
    }
    if (SSL_CTX_use_PrivateKey_file(&ctx, opts_.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(&ctx) != 1) {
      tls_error = "cannot load the private key " + opts_.key_file + " (or it does not match " +
                  opts_.cert_file + ")";
      return false;
    }
    ConnectionTracker::attach(&ctx, connections_.get());
    if (!opts_.client_ca_file.empty()) {
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(opts_.client_ca_file.c_str());
      if (names == nullptr ||
          SSL_CTX_load_verify_locations(&ctx, opts_.client_ca_file.c_str(), nullptr) != 1) {
        if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
        tls_error = "cannot load the client CA " + opts_.client_ca_file;
        return false;
      }
      SSL_CTX_set_client_CA_list(&ctx, names);
      // Like kube-apiserver: a client certificate is verified if given, never required.
      SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);
    }
    return true;
  });
  if (!server->is_valid()) {
    ERR_clear_error();
    return Error{"kube-emu: " + (tls_error.empty() ? "cannot set up TLS" : tls_error) +
                 " (check --cert/--key/--client-ca; --gen-certs DIR makes a set)"};
  }
  const int threads = std::max(2, opts_.threads);
  server->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server->set_tcp_nodelay(true);  // headers and body go out as separate writes
  server->set_keep_alive_max_count(1000);
  server->set_tcp_nodelay(true);  // like kube-apiserver (Go): no Nagle delay on split writes
  server->set_keep_alive_timeout(opts_.keep_alive_timeout.count());
  server->set_payload_max_length(opts_.max_body_bytes);
  const auto handler = [this](const httplib::Request& req, httplib::Response& res) {
    handleApi(req, res);
  };
  for (const char* pattern : {".*"}) {
    server->Get(pattern, handler);
    server->Post(pattern, handler);
    server->Put(pattern, handler);
    server->Patch(pattern, handler);
    server->Delete(pattern, handler);
  }
  server->set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        res.status = 500;
        res.set_content(internalError(what).body.dump(), "application/json");
      });
  if (opts_.listen_port == 0) {
    port_ = server->bind_to_any_port(opts_.listen_host);
  } else if (server->bind_to_port(opts_.listen_host, opts_.listen_port)) {
    port_ = opts_.listen_port;
  } else {
    port_ = -1;
  }
  if (port_ <= 0) {
    return Error{"kube-emu: cannot listen on " + opts_.listen_host + ":" +
                 std::to_string(opts_.listen_port) + " (address in use or not local?)"};
  }
  api_server_ = std::move(server);

  if (opts_.control_api) {
    auto control = std::make_unique<httplib::Server>();
    control->new_task_queue = [] { return new httplib::ThreadPool(4); };
    control->set_keep_alive_max_count(1);  // one request per connection: stop() never waits
    const auto control_handler = [this](const httplib::Request& req, httplib::Response& res) {
      handleControl(req, res);
    };
    control->Get(".*", control_handler);
    control->Post(".*", control_handler);
    control->Put(".*", control_handler);
    control->Delete(".*", control_handler);
    control_port_ =
        opts_.control_port == 0
            ? control->bind_to_any_port(opts_.control_host)
            : (control->bind_to_port(opts_.control_host, opts_.control_port) ? opts_.control_port
                                                                             : -1);
    if (control_port_ <= 0) {
      api_server_.reset();
      return Error{"kube-emu: cannot listen on control address " + opts_.control_host + ":" +
                   std::to_string(opts_.control_port)};
    }
    control_server_ = std::move(control);
    control_thread_ = serveInBackground(*control_server_);
  }
  api_thread_ = serveInBackground(*api_server_);
  logger_.info("kube-emu serving", {{"api", url()}, {"control", controlUrl()}});
  return {};
}

void KubeEmu::stop() {
  stopping_.stop();
  if (api_server_) api_server_->stop();
  connections_->shutdownAll();
  if (control_server_) control_server_->stop();
  if (api_thread_.joinable()) api_thread_.join();
  if (control_thread_.joinable()) control_thread_.join();
}

void KubeEmu::reset() {
  store_.clear();
  faults_.clear();
  log_.clear();
  tokens_.replaceAll(opts_.tokens);
  authz_.setPolicy(opts_.rbac);
}

std::optional<UserInfo> KubeEmu::authenticate(const httplib::Request& req) const {
  if (req.ssl != nullptr && !opts_.client_ca_file.empty()) {
    if (auto user = userFromClientCert(req.ssl)) return user;
  }
  const std::string auth = req.get_header_value("Authorization");
  if (!auth.empty()) {
    if (lower(auth.substr(0, 7)) != "bearer ") return std::nullopt;
    std::string token = auth.substr(7);
    token.erase(0, token.find_first_not_of(' '));
    while (!token.empty() && token.back() == ' ') token.pop_back();
    return tokens_.lookup(token);
  }
  return anonymousUser();
}

void KubeEmu::dropConnection(const httplib::Request& req) const {
  if (req.ssl == nullptr) return;
  const int fd = SSL_get_fd(req.ssl);
  if (fd < 0) return;
  // Close the TCP connection now, and put /dev/null in place of the descriptor so that the
  // response httplib still writes goes nowhere (no SIGPIPE, no fd reuse race).
  ::shutdown(fd, SHUT_RDWR);
  const int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (devnull >= 0) {
    ::dup2(devnull, fd);
    ::close(devnull);
  }
}

void KubeEmu::handleApi(const httplib::Request& req, httplib::Response& res) {
  const auto started = clock_.monotonicNow();
  RequestRecord rec;
  rec.time = formatMillis(clock_.wallNow());
  rec.method = req.method;
  rec.path = req.path;
  if (const size_t q = req.target.find('?'); q != std::string::npos) {
    rec.query = req.target.substr(q + 1);
  }
  rec.content_type = req.get_header_value("Content-Type");
  rec.accept = req.get_header_value("Accept");
  rec.request_bytes = req.body.size();
  rec.body = req.body.substr(0, kLoggedBodyBytes);

  RequestContext ctx;
  ApiResponse out;
  bool answered = false;
  if (auto fault = faults_.next(req.method, req.path)) {
    rec.fault = faultKindName(fault->kind);
    switch (fault->kind) {
      case FaultKind::kLatency:
        stopping_.waitUntil(clock_, clock_.monotonicNow() + fault->latency);
        break;
      case FaultKind::kDrop:
        dropConnection(req);
        rec.duration_ms =
            std::chrono::duration<double, std::milli>(clock_.monotonicNow() - started).count();
        log_.append(std::move(rec));
        res.status = 500;
        return;
      case FaultKind::kStatus:
        out = injectedStatus(fault->status, req.path);
        answered = true;
        break;
      case FaultKind::k429:
        out = tooManyRequests(fault->retry_after_seconds);
        answered = true;
        break;
    }
  }
  if (!answered) out = serve(req, ctx);
  if (ctx.user) rec.user = ctx.user->name;

  res.status = out.code;
  for (const auto& [k, v] : out.headers) {
    if (k != "Content-Type") res.set_header(k, v);
  }
  if (out.body.is_string()) {
    const auto ct = out.headers.find("Content-Type");
    res.set_content(out.body.get<std::string>(),
                    ct != out.headers.end() ? ct->second : "text/plain; charset=utf-8");
  } else {
    res.set_content(out.body.dump(), "application/json");
  }
  rec.status = out.code;
  rec.response_bytes = res.body.size();
  rec.duration_ms =
      std::chrono::duration<double, std::milli>(clock_.monotonicNow() - started).count();
  logger_.debug("api request", {{"method", rec.method},
                                {"path", rec.path},
                                {"user", rec.user},
                                {"status", std::to_string(rec.status)}});
  log_.append(std::move(rec));
}

ApiResponse KubeEmu::serve(const httplib::Request& req, RequestContext& ctx) {
  ctx.user = authenticate(req);
  if (!ctx.user) return unauthorized();
  const UserInfo& user = *ctx.user;
  const std::string& path = req.path;
  if (path == "/healthz" || path == "/livez" || path == "/readyz") return textResponse(200, "ok");
  if (path == "/version" || path == "/version/") {
    return req.method == "GET" ? ApiResponse{200, versionInfo(), {}} : methodNotAllowed();
  }
  const auto segments = splitPath(path);
  const bool is_core = !segments.empty() && segments[0] == "api";
  const bool is_groups = !segments.empty() && segments[0] == "apis";
  const bool is_resource = is_core && segments.size() >= 3 && segments[1] == "v1";
  if (is_resource) return serveResource(req, ctx, segments);
  if (!is_core && !is_groups) {
    if (user.anonymous()) return forbiddenPath(user.name, lower(req.method), path);
    return pathNotFound();
  }
  if (user.anonymous()) return forbiddenPath(user.name, lower(req.method), path);
  if (req.method != "GET") return methodNotAllowed();
  const std::string server_address = opts_.listen_host + ":" + std::to_string(port_);
  if (is_core && segments.size() == 1) return {200, apiVersions(server_address), {}};
  if (is_core && segments.size() == 2 && segments[1] == "v1") {
    return {200, coreV1ResourceList(), {}};
  }
  if (is_groups && segments.size() == 1) return {200, apiGroupList(), {}};
  return pathNotFound();
}

ApiResponse KubeEmu::serveResource(const httplib::Request& req, RequestContext& ctx,
                                   const std::vector<std::string>& segments) {
  // segments: api v1 <resource> (every namespace) | api v1 namespaces <ns> <resource> [<name>]
  const UserInfo& user = *ctx.user;
  std::string ns;
  std::string name;
  std::string plural;
  if (segments[2] == "namespaces" && segments.size() >= 5) {
    ns = segments[3];
    plural = segments[4];
    if (segments.size() >= 6) name = segments[5];
    if (segments.size() > 6) return pathNotFound();
  } else {
    plural = segments[2];
    if (segments.size() > 3) return pathNotFound();
  }
  const auto resource = resourceFromPlural(plural);
  if (!resource) return pathNotFound();

  const bool collection = name.empty();
  std::string verb;
  const std::string& m = req.method;
  if (m == "GET") {
    const std::string watch = req.get_param_value("watch");
    verb = collection ? (watch == "true" || watch == "1" ? "watch" : "list") : "get";
  } else if (m == "POST" && collection && !ns.empty()) {
    verb = "create";
  } else if (m == "PUT" && !collection) {
    verb = "update";
  } else if (m == "PATCH" && !collection) {
    verb = "patch";
  } else if (m == "DELETE" && !collection) {
    verb = "delete";
  } else {
    return methodNotAllowed();
  }
  if (!authz_.allows(user, verb, plural, ns, name)) {
    return forbidden(user.name, verb, plural, ns, name);
  }
  if (verb == "watch") {
    return statusResponse(405, "MethodNotAllowed",
                          "kube-emu does not implement watch; use list (kubectl get without -w)",
                          json::object());
  }

  WriteOptions wopts;
  wopts.field_manager = req.get_param_value("fieldManager");
  if (wopts.field_manager.empty()) {
    const std::string agent = req.get_header_value("User-Agent");
    wopts.field_manager = agent.substr(0, agent.find('/'));
  }
  for (const char* unserved : {"dryRun", "labelSelector", "fieldSelector"}) {
    if (req.has_param(unserved)) {
      return badRequest(std::string("kube-emu does not implement ?") + unserved +
                        "; test that against a real kube-apiserver");
    }
  }

  if (verb == "get") return store_.get(*resource, ns, name);
  if (verb == "list") return store_.list(*resource, ns);
  if (verb == "delete") return store_.remove(*resource, ns, name);
  if (verb == "patch") {
    if (!isStrategicMergePatch(req.get_header_value("Content-Type"))) {
      return unsupportedMediaType();
    }
    return store_.patch(*resource, ns, name, req.body, wopts);
  }
  const std::string media = mediaType(req.get_header_value("Content-Type"));
  if (!media.empty() && media != "application/json") return unsupportedMediaType();
  if (verb == "create") return store_.create(*resource, ns, req.body, wopts);
  return store_.replace(*resource, ns, name, req.body, wopts);
}

// ---- control API --------------------------------------------------------------------------

void KubeEmu::handleControl(const httplib::Request& req, httplib::Response& res) {
  ApiResponse out;
  const std::string& path = req.path;
  if (path == "/healthz") {
    out = ApiResponse{200, json{{"ok", true}}, {}};
  } else if (path == "/faults") {
    out = controlFaults(req);
  } else if (path == "/tokens") {
    out = controlTokens(req);
  } else if (path == "/rbac") {
    out = controlRbac(req);
  } else if (path == "/log") {
    if (req.method == "DELETE") {
      log_.clear();
      out = ApiResponse{200, json{{"ok", true}}, {}};
    } else {
      uint64_t after = 0;
      try {
        if (req.has_param("after")) after = std::stoull(req.get_param_value("after"));
      } catch (const std::exception&) {
        out = controlError("log: ?after= must be a sequence number");
      }
      if (out.code == 200) {
        json entries = json::array();
        for (const auto& r : log_.entries(after)) entries.push_back(r.toJson());
        out = ApiResponse{200, json{{"entries", entries}}, {}};
      }
    }
  } else if (path == "/objects") {
    out = controlObjects(req);
  } else if (path == "/reset" && req.method == "POST") {
    reset();
    out = ApiResponse{200, json{{"ok", true}}, {}};
  } else {
    out = ApiResponse{404,
                      json{{"error", "unknown control endpoint " + path +
                                         "; try /faults, /tokens, /rbac, /log, /objects, /reset"}},
                      {}};
  }
  res.status = out.code;
  res.set_content(out.body.dump(), "application/json");
}

ApiResponse KubeEmu::controlFaults(const httplib::Request& req) {
  if (req.method == "GET") return {200, faults_.toJson(), {}};
  if (req.method == "DELETE") {
    faults_.clear();
    return {200, json{{"ok", true}}, {}};
  }
  const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return controlError(
        "faults: the body must be a JSON object (a rule, {\"rules\":[...]} or "
        "{\"random\":{...}})");
  }
  if (body.contains("random")) {
    auto random = RandomFaults::fromJson(body["random"]);
    if (!random) return controlError(random.error().message);
    faults_.setRandom(*random);
    return {200, faults_.toJson(), {}};
  }
  std::vector<FaultRule> rules;
  const json list = body.contains("rules") ? body["rules"] : json::array({body});
  if (!list.is_array()) return controlError("faults: \"rules\" must be a list");
  for (const auto& j : list) {
    auto rule = FaultRule::fromJson(j);
    if (!rule) return controlError(rule.error().message);
    rules.push_back(*rule);
  }
  for (auto& r : rules) faults_.add(std::move(r));
  return {200, faults_.toJson(), {}};
}

ApiResponse KubeEmu::controlTokens(const httplib::Request& req) {
  const auto listing = [this] {
    json out = json::array();
    for (const auto& e : tokens_.entries()) {
      out.push_back({{"token", e.token}, {"user", e.user}, {"groups", e.groups}});
    }
    return ApiResponse{200, json{{"tokens", out}}, {}};
  };
  if (req.method == "GET") return listing();
  const json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return controlError(
        "tokens: the body must be {\"add\":{\"token\":..,\"user\":..,\"groups\":[..]}}, "
        "{\"revoke\":\"TOKEN\"} or {\"replace\":[...]}");
  }
  const auto entry = [](const json& j) -> Result<TokenEntry> {
    if (!j.is_object() || !j.contains("token") || !j.contains("user") || !j["token"].is_string() ||
        !j["user"].is_string()) {
      return Error{"tokens: an entry needs string \"token\" and \"user\""};
    }
    TokenEntry e{j["token"], j["user"], {}};
    if (j.contains("groups") && j["groups"].is_array()) {
      for (const auto& g : j["groups"]) {
        if (g.is_string()) e.groups.push_back(g);
      }
    }
    return e;
  };
  if (body.contains("revoke")) {
    if (!body["revoke"].is_string()) return controlError("tokens: \"revoke\" must be a string");
    if (!tokens_.revoke(body["revoke"])) return controlError("tokens: no such token to revoke");
    return listing();
  }
  if (body.contains("replace")) {
    if (!body["replace"].is_array()) return controlError("tokens: \"replace\" must be a list");
    std::vector<TokenEntry> all;
    for (const auto& j : body["replace"]) {
      auto e = entry(j);
      if (!e) return controlError(e.error().message);
      all.push_back(*e);
    }
    tokens_.replaceAll(all);
    return listing();
  }
  auto e = entry(body.contains("add") ? body["add"] : body);
  if (!e) return controlError(e.error().message);
  tokens_.add(*e);
  return listing();
}

ApiResponse KubeEmu::controlRbac(const httplib::Request& req) {
  if (req.method == "GET") return {200, authz_.policy().toJson(), {}};
  auto policy = RbacPolicy::parse(req.body);
  if (!policy) return controlError(policy.error().message);
  authz_.setPolicy(*policy);
  return {200, policy->toJson(), {}};
}

ApiResponse KubeEmu::controlObjects(const httplib::Request& req) {
  if (req.method == "GET") return {200, store_.dump(), {}};
  if (req.method == "DELETE") {
    store_.clear();
    return {200, json{{"ok", true}}, {}};
  }
  json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object() || !body.contains("object") ||
      !body["object"].is_object()) {
    return controlError(
        "objects: the body must be {\"resource\":\"secrets\",\"namespace\":\"ns\","
        "\"object\":{...}}");
  }
  const auto resource = resourceFromPlural(body.value("resource", ""));
  if (!resource) {
    return controlError("objects: \"resource\" must be secrets or configmaps");
  }
  const std::string ns = body.value("namespace", "");
  json obj = body["object"];
  if (obj.contains("metadata") && obj["metadata"].is_object()) {
    obj["metadata"].erase("resourceVersion");
  }
  const WriteOptions wopts{"kube-emu-control"};
  ApiResponse r = store_.create(*resource, ns, obj.dump(), wopts);
  if (r.code == 409 && obj.contains("metadata")) {
    r = store_.replace(*resource, ns, obj["metadata"].value("name", ""), obj.dump(), wopts);
  }
  return r;
}

}  // namespace tsk::kube_emu
