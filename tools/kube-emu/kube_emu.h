#pragma once
// KubeEmu: an HTTPS Kubernetes API-server emulator for tests and demos (README.md#layout).
// Core/v1 Secrets and ConfigMaps in namespaces (GET, list, POST, PUT, PATCH strategic-merge,
// DELETE), resourceVersion and 409, managedFields, bearer tokens and client certificates (401),
// per-name RBAC (403), the discovery kubectl needs, fault injection and a request log: what the
// agent's fast tests, the soak and reliability tests and the demo use. Errors are kube-apiserver
// `Status` bodies with the same reasons and messages. Everything else (protobuf, Tables,
// selectors, other patch types, dry runs, access reviews) is tested on a real kube-apiserver.
//
//   KubeEmu emu({.cert_file = pki.serverCert(), .key_file = pki.serverKey(),
//                .tokens = {{"t0k", "system:serviceaccount:ns:agent", {}}},
//                .rbac = {.rules = {{.users = {"system:serviceaccount:ns:agent"},
//                                    .verbs = {"get", "patch"}, .resources = {"secrets"},
//                                    .resource_names = {"ts-state"}}}}});
//   ASSERT_TRUE(emu.start().ok());
//   ... client talks to emu.url() ("https://127.0.0.1:PORT") ...
//   emu.injectFault({.kind = FaultKind::k429, .count = 1, .retry_after_seconds = 1});
//   for (const auto& r : emu.requestLog()) ...
//   emu.stop();  // also in the destructor
//
// The optional control listener (plain HTTP, loopback) exposes the same run-time controls to
// other processes: see README.md in this directory.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/log.h"
#include "common/result.h"
#include "tools/kube-emu/access.h"
#include "tools/kube-emu/faults.h"
#include "tools/kube-emu/request_log.h"
#include "tools/kube-emu/resource_store.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace tsk::kube_emu {

struct KubeEmuOptions {
  std::string listen_host = "127.0.0.1";
  int listen_port = 0;         // 0: any free port (see port())
  std::string cert_file;       // server certificate chain (PEM)
  std::string key_file;        // its private key (PEM)
  std::string client_ca_file;  // optional: accept client certificates (CN = user, O = groups)
  std::vector<TokenEntry> tokens;
  RbacPolicy rbac;
  bool control_api = false;  // also serve the plain-HTTP control API
  std::string control_host = "127.0.0.1";
  int control_port = 0;
  int threads = 16;  // concurrent connections served (each keep-alive connection holds one)
  std::chrono::seconds keep_alive_timeout{5};
  size_t max_body_bytes = 8 * 1024 * 1024;
  Clock* clock = nullptr;  // default: RealClock
  Logger* log = nullptr;   // default: Logger::null()
};

class KubeEmu {
 public:
  explicit KubeEmu(KubeEmuOptions opts);
  ~KubeEmu();
  KubeEmu(const KubeEmu&) = delete;
  KubeEmu& operator=(const KubeEmu&) = delete;

  // Loads the certificate, binds the listeners and serves on background threads. Returns an
  // error naming the file or address that failed. Call once. Sets SIGPIPE to ignored for the
  // process (OpenSSL writes without MSG_NOSIGNAL; a client that hangs up must not kill us).
  Status start();
  // Stops serving and joins the threads; requests waiting in injected latency end at once.
  void stop();

  int port() const { return port_; }
  int controlPort() const { return control_port_; }
  std::string url() const;         // "https://127.0.0.1:PORT" ("https://[::1]:PORT")
  std::string controlUrl() const;  // "http://127.0.0.1:PORT"; "" without the control API

  // Run-time controls (thread-safe; also reachable through the control API).
  void addToken(const TokenEntry& entry) { tokens_.add(entry); }
  bool revokeToken(const std::string& token) { return tokens_.revoke(token); }
  void setRbac(RbacPolicy policy) { authz_.setPolicy(std::move(policy)); }
  RbacPolicy rbac() const { return authz_.policy(); }
  void injectFault(FaultRule rule) { faults_.add(std::move(rule)); }
  void setRandomFaults(RandomFaults random) { faults_.setRandom(std::move(random)); }
  void clearFaults() { faults_.clear(); }
  // {"rules":[...not yet used up...],"random":{...}}
  nlohmann::json faults() const { return faults_.toJson(); }
  std::vector<RequestRecord> requestLog(uint64_t after_seq = 0) const {
    return log_.entries(after_seq);
  }
  void clearRequestLog() { log_.clear(); }
  // The objects, for seeding and reading back without going through HTTP.
  ResourceStore& store() { return store_; }
  // Objects, faults and the log cleared; tokens and RBAC back to the options given.
  void reset();

 private:
  struct RequestContext;

  void handleApi(const httplib::Request& req, httplib::Response& res);
  void handleControl(const httplib::Request& req, httplib::Response& res);
  ApiResponse serve(const httplib::Request& req, RequestContext& ctx);
  ApiResponse serveResource(const httplib::Request& req, RequestContext& ctx,
                            const std::vector<std::string>& segments);
  std::optional<UserInfo> authenticate(const httplib::Request& req) const;
  void dropConnection(const httplib::Request& req) const;
  ApiResponse controlFaults(const httplib::Request& req);
  ApiResponse controlTokens(const httplib::Request& req);
  ApiResponse controlRbac(const httplib::Request& req);
  ApiResponse controlObjects(const httplib::Request& req);

  KubeEmuOptions opts_;
  Clock& clock_;
  Logger& logger_;
  TokenRegistry tokens_;
  Authorizer authz_;
  FaultInjector faults_;
  RequestLog log_;
  ResourceStore store_;
  StopSignal stopping_;
  std::shared_ptr<class ConnectionTracker> connections_;
  std::unique_ptr<httplib::Server> api_server_;
  std::unique_ptr<httplib::Server> control_server_;
  std::thread api_thread_;
  std::thread control_thread_;
  int port_ = 0;
  int control_port_ = 0;
  std::atomic<bool> started_{false};
};

}  // namespace tsk::kube_emu
