// Security properties of the real ts-kube-agent binary, against in-process kube-emu (real TLS)
// and tsbus-sim (a real unix socket):
//  - TLS: with a CA that did not sign the API server's certificate, or a certificate for another
//    host, the agent refuses to talk (a clear log line, /readyz 503, no request ever reaches the
//    server, so the token never leaves); only --insecure-skip-tls-verify (or its variable) turns
//    verification off, and then the agent warns at every start;
//  - the admin server binds to loopback when asked, shrugs off huge headers and bodies and
//    multi-range requests, and answers probes while many connections are held open;
//  - RBAC: the Role the deploy manifests grant is the least that works: the agent works with
//    exactly those verbs and resourceNames (kube-emu enforcing them) and fails clearly, naming
//    the missing rule, with any one of them removed.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "k8s/base64.h"
#include "tests/integration/soak/agent_harness.h"
#include "tests/support/net/held_connections.h"
#include "tests/support/tls/test_tls.h"
#include "tools/kube-emu/kube_emu.h"
#include "tools/tsbus-sim/bus_sim.h"

namespace tsk::testing {
namespace {

constexpr const char* kNamespace = "tailscale";
constexpr const char* kUser = "system:serviceaccount:tailscale:ts-kube-agent";
constexpr const char* kToken = "security-test-token-3b9d27";

const TestPki& pki() {
  static const TestPki p;
  return p;
}

std::map<std::string, std::string> secretData(kube_emu::KubeEmu& emu, const std::string& ns,
                                              const std::string& name) {
  std::map<std::string, std::string> out;
  auto obj = emu.store().find(kube_emu::Resource::kSecrets, ns, name);
  if (!obj || !obj->contains("data") || !(*obj)["data"].is_object()) return out;
  for (const auto& [k, v] : (*obj)["data"].items()) {
    out[k] = k8s::base64Decode(v.get<std::string>()).value_or("<bad base64>");
  }
  return out;
}

std::map<std::string, std::string> configMapData(kube_emu::KubeEmu& emu, const std::string& ns,
                                                 const std::string& name) {
  std::map<std::string, std::string> out;
  auto obj = emu.store().find(kube_emu::Resource::kConfigMaps, ns, name);
  if (!obj || !obj->contains("data") || !(*obj)["data"].is_object()) return out;
  for (const auto& [k, v] : (*obj)["data"].items()) out[k] = v.get<std::string>();
  return out;
}

kube_emu::RbacPolicy allowAll(const std::string& user) {
  kube_emu::RbacRule r;
  r.users = {user};
  r.verbs = {"*"};
  r.resources = {"*"};
  return {.rules = {r}, .admin_users = {}};
}

// One kube-emu, one tsbus-sim and a temp dir per test; agents started on demand.
class SecurityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tsbus_sim::SimOptions so;
    so.socket_path = dir_.file("tailscaled.sock");
    so.peers = 10;
    sim_ = std::make_unique<tsbus_sim::BusSim>(so);
    auto st = sim_->start();
    ASSERT_TRUE(st.ok()) << st.error().message;
  }

  void startEmu(const std::string& cert, const std::string& key,
                kube_emu::RbacPolicy rbac = allowAll(kUser)) {
    kube_emu::KubeEmuOptions o;
    o.cert_file = cert;
    o.key_file = key;
    o.tokens = {{kToken, kUser, {}}};
    o.rbac = std::move(rbac);
    o.threads = 4;
    emu_ = std::make_unique<kube_emu::KubeEmu>(o);
    auto st = emu_->start();
    ASSERT_TRUE(st.ok()) << st.error().message;
  }

  // Starts the agent in-cluster style against emu_, trusting `ca_pem`.
  std::unique_ptr<AgentProcess> startAgent(const std::string& ca_pem,
                                           std::vector<std::string> extra_args = {},
                                           std::map<std::string, std::string> extra_env = {},
                                           const std::string& ns = kNamespace) {
    sa_ = std::make_unique<ServiceAccountDir>(ca_pem, ns, kToken);
    AgentProcess::Options o;
    o.binary = TSK_AGENT_BIN;
    o.args = {"--socket",    dir_.file("tailscaled.sock"), "--admin-addr",
              "127.0.0.1:0", "--service-account-dir",      sa_->path()};
    o.args.insert(o.args.end(), extra_args.begin(), extra_args.end());
    o.env = inClusterEnv(emu_->port());
    for (auto& [k, v] : extra_env) o.env[k] = v;
    o.log_path = dir_.file("agent-") + std::to_string(++agents_started_) + ".log";
    return std::make_unique<AgentProcess>(o);
  }

  std::string expectedFqdn() const { return sim_->stats().identity.name; }

  bool published(const std::string& secret, const std::string& ns = kNamespace) {
    const auto d = secretData(*emu_, ns, secret);
    auto it = d.find("device_fqdn");
    return it != d.end() && it->second == expectedFqdn();
  }

  TempDir dir_{"tsk-security"};
  std::unique_ptr<tsbus_sim::BusSim> sim_;
  std::unique_ptr<kube_emu::KubeEmu> emu_;
  std::unique_ptr<ServiceAccountDir> sa_;
  int agents_started_ = 0;
};

// ---- TLS ---------------------------------------------------------------------------------------

TEST_F(SecurityTest, AgentRefusesAnApiServerSignedByAnotherCaAndNeverSendsTheToken) {
  startEmu(pki().serverCert(), pki().serverKey());
  auto agent = startAgent(TestPki::readFile(pki().otherCaCert()), {"--secret", "ts-state"});
  const int admin = agent->adminPort();
  ASSERT_GT(admin, 0) << agent->log();
  ASSERT_TRUE(eventually([&] { return agent->log().find("TLS verification") != std::string::npos; },
                         30s, 50ms))
      << "no clear TLS error in the log:\n"
      << agent->log();
  const std::string log = agent->log();
  EXPECT_NE(log.find("certificate"), std::string::npos) << log;
  EXPECT_EQ(log.find("DISABLED"), std::string::npos) << "a warning about insecure TLS appeared";
  const auto ready = httpGet(admin, "/readyz");
  EXPECT_EQ(ready.status, 503) << ready.body;
  EXPECT_TRUE(agent->running()) << "the agent should keep running and report, not crash";
  EXPECT_TRUE(emu_->requestLog().empty())
      << "a request reached the API server over an unverified connection";
  EXPECT_EQ(log.find(kToken), std::string::npos) << "the token was printed";
  EXPECT_FALSE(published("ts-state"));
}

TEST_F(SecurityTest, AgentRefusesACertificateForAnotherHostName) {
  startEmu(pki().wrongHostCert(), pki().wrongHostKey());
  auto agent = startAgent(pki().caPem(), {"--secret", "ts-state"});
  ASSERT_GT(agent->adminPort(), 0) << agent->log();
  ASSERT_TRUE(eventually([&] { return agent->log().find("TLS verification") != std::string::npos; },
                         30s, 50ms))
      << agent->log();
  EXPECT_NE(agent->log().find("127.0.0.1"), std::string::npos)
      << "the error should name the host that did not match:\n"
      << agent->log();
  EXPECT_TRUE(emu_->requestLog().empty());
}

TEST_F(SecurityTest, InsecureSkipTlsVerifyWorksOnlyWhenAskedAndWarnsAtEveryStart) {
  startEmu(pki().serverCert(), pki().serverKey());
  const std::string wrong_ca = TestPki::readFile(pki().otherCaCert());
  for (int start = 1; start <= 2; ++start) {
    auto agent = startAgent(wrong_ca, {"--secret", "ts-state", "--insecure-skip-tls-verify"});
    const int admin = agent->adminPort();
    ASSERT_GT(admin, 0) << agent->log();
    ASSERT_TRUE(eventually([&] { return published("ts-state"); }, 30s, 50ms))
        << "start " << start << ": nothing published with verification off:\n"
        << agent->log();
    const std::string log = agent->log();
    EXPECT_NE(log.find("WARN"), std::string::npos) << log;
    EXPECT_NE(log.find("insecure-skip-tls-verify"), std::string::npos)
        << "start " << start << ": no warning naming the flag:\n"
        << log;
    // One warning line (the API client's), not one per part that knows of the switch.
    size_t warnings = 0;
    for (size_t at = 0, end = 0; at < log.size(); at = end + 1) {
      end = log.find('\n', at);
      if (end == std::string::npos) end = log.size();
      const std::string_view line(log.data() + at, end - at);
      if (line.find("WARN") != line.npos && line.find("TLS verification") != line.npos) {
        ++warnings;
      }
    }
    EXPECT_EQ(warnings, 1u) << "start " << start << ":\n" << log;
    agent->signal(SIGTERM);
    EXPECT_EQ(agent->waitExit(30s), 0) << agent->log();
  }
  // The variable is the same explicit switch, with the same warning.
  auto agent = startAgent(wrong_ca, {"--secret", "ts-state-env"},
                          {{"TS_KUBE_INSECURE_SKIP_TLS_VERIFY", "true"}});
  ASSERT_TRUE(eventually([&] { return published("ts-state-env"); }, 30s, 50ms)) << agent->log();
  EXPECT_NE(agent->log().find("insecure-skip-tls-verify"), std::string::npos) << agent->log();
}

TEST_F(SecurityTest, KubeconfigInsecureSkipTlsVerifyAloneIsRefused) {
  startEmu(pki().serverCert(), pki().serverKey());
  const std::string kubeconfig = dir_.file("kubeconfig");
  std::ofstream(kubeconfig) << "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                               "clusters:\n- name: k\n  cluster:\n    server: "
                            << emu_->url()
                            << "\n    insecure-skip-tls-verify: true\n"
                               "users:\n- name: u\n  user:\n    token: "
                            << kToken
                            << "\ncontexts:\n- name: c\n  context: {cluster: k, user: u, "
                               "namespace: tailscale}\n";
  AgentProcess::Options o;
  o.binary = TSK_AGENT_BIN;
  o.args = {"--socket",     dir_.file("tailscaled.sock"),
            "--admin-addr", "127.0.0.1:0",
            "--kubeconfig", kubeconfig,
            "--secret",     "s"};
  o.env = inClusterEnv(emu_->port());
  o.log_path = dir_.file("kubeconfig-agent.log");
  AgentProcess agent(o);
  const auto code = agent.waitExit(30s);
  ASSERT_TRUE(code.has_value()) << "the agent ran with an unverifiable kubeconfig:\n"
                                << agent.log();
  EXPECT_EQ(*code, 2) << agent.log();
  EXPECT_NE(agent.log().find("insecure-skip-tls-verify"), std::string::npos) << agent.log();
  EXPECT_EQ(agent.log().find(kToken), std::string::npos) << "the token was printed";
  EXPECT_TRUE(emu_->requestLog().empty());
}

// ---- the admin server
// ----------------------------------------------------------------------------

// The listening sockets on `port` from /proc/net/tcp{,6}: local address as hex, e.g. 0100007F.
std::vector<std::string> listenersOn(int port) {
  std::vector<std::string> out;
  char port_hex[8];
  std::snprintf(port_hex, sizeof port_hex, "%04X", port);
  for (const char* file : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(file);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream f(line);
      std::string slot, local, remote, state;
      f >> slot >> local >> remote >> state;
      const auto colon = local.rfind(':');
      if (state == "0A" && local.substr(colon + 1) == port_hex)
        out.push_back(local.substr(0, colon));
    }
  }
  return out;
}

// A non-loopback IPv4 address of this host, if it has one.
std::string nonLoopbackIpv4() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* i = list; i && found.empty(); i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET) continue;
    char buf[INET_ADDRSTRLEN];
    const auto* sin = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
    inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
    if (std::string(buf).rfind("127.", 0) != 0) found = buf;
  }
  freeifaddrs(list);
  return found;
}

// Whether `reply` holds one whole response (its head and Content-Length bytes of body).
bool responseComplete(const std::string& reply) {
  const auto head_end = reply.find("\r\n\r\n");
  if (head_end == std::string::npos) return false;
  const auto cl = reply.find("Content-Length: ");
  if (cl == std::string::npos || cl > head_end) return false;
  const size_t length = std::strtoull(reply.c_str() + cl + 16, nullptr, 10);
  return reply.size() >= head_end + 4 + length;
}

// Sends raw bytes on a fresh connection; returns what came back until the server closed the
// connection or `timeout` passed ("" when nothing came).
std::string rawExchange(int port, const std::string& request, std::chrono::seconds timeout = 10s) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{static_cast<time_t>(timeout.count()), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string reply;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    size_t off = 0;
    while (off < request.size()) {  // the server may stop reading early: that is fine
      const ssize_t n = ::send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      reply.append(buf, static_cast<size_t>(n));
      if (responseComplete(reply)) break;  // a kept-alive connection would not close
    }
  }
  ::close(fd);
  return reply;
}

int statusOf(const std::string& reply) {
  if (reply.rfind("HTTP/1.", 0) != 0 || reply.size() < 12) return 0;
  return std::atoi(reply.substr(9, 3).c_str());
}

class AdminServerTest : public SecurityTest {
 protected:
  void SetUp() override {
    SecurityTest::SetUp();
    startEmu(pki().serverCert(), pki().serverKey());
    agent_ = startAgent(pki().caPem(), {"--secret", "ts-state"});
    admin_ = agent_->adminPort();
    ASSERT_GT(admin_, 0) << agent_->log();
    ASSERT_TRUE(eventually([&] { return httpGet(admin_, "/livez").status == 200; }, 30s, 50ms));
  }
  std::unique_ptr<AgentProcess> agent_;
  int admin_ = -1;
};

TEST_F(AdminServerTest, BindsToLoopbackOnlyWhenAsked) {
  const auto listeners = listenersOn(admin_);
  ASSERT_FALSE(listeners.empty()) << "no listener on port " << admin_;
  for (const auto& l : listeners) {
    EXPECT_EQ(l, "0100007F") << "the admin port listens on " << l << ", not only 127.0.0.1";
  }
  const std::string ip = nonLoopbackIpv4();
  if (!ip.empty()) {
    httplib::Client c(ip, admin_);
    c.set_connection_timeout(2s);
    EXPECT_FALSE(c.Get("/livez")) << "reachable on " << ip;
  }
}

TEST_F(AdminServerTest, HugeHeaderIsRefusedAndTheServerKeepsServing) {
  const uint64_t rss_before = agent_->rssBytes();
  const std::string huge(1 << 20, 'a');
  const std::string reply = rawExchange(
      admin_,
      "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: " + huge + "\r\n\r\n");
  const int status = statusOf(reply);
  EXPECT_TRUE(status == 0 || (status >= 400 && status < 500))
      << "a 1 MiB header was answered " << reply.substr(0, 200);
  const std::string long_uri(1 << 20, 'u');
  const int uri_status = statusOf(rawExchange(admin_, "GET /" + long_uri + " HTTP/1.1\r\n\r\n"));
  EXPECT_TRUE(uri_status == 0 || (uri_status >= 400 && uri_status < 500)) << uri_status;
  EXPECT_EQ(httpGet(admin_, "/livez").status, 200);
  EXPECT_EQ(httpGet(admin_, "/metrics").status, 200);
  EXPECT_TRUE(agent_->running());
  EXPECT_LT(agent_->rssBytes(), rss_before + (64ull << 20)) << "the agent kept a huge header";
}

// The admin server caps a whole request head at 16 KiB (agent/admin_server.h), so ~60 MB of
// small headers cost nothing.
TEST_F(AdminServerTest, ManySmallHeadersDoNotGrowMemory) {
  const uint64_t rss_before = agent_->rssBytes();
  std::string block;
  for (int i = 0; i < 10000; ++i) block += "X-H" + std::to_string(i) + ": vvvvvvvvvvvvvvvvvvvv\r\n";
  std::string request = "GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
  for (int i = 0; i < 200; ++i) request += block;  // ~60 MB of headers
  const int status = statusOf(rawExchange(admin_, request + "\r\n", 60s));
  EXPECT_TRUE(status == 0 || (status >= 400 && status < 500)) << status;
  EXPECT_LT(agent_->rssBytes(), rss_before + (64ull << 20))
      << "RSS grew from " << (rss_before >> 20) << " MiB to " << (agent_->rssBytes() >> 20)
      << " MiB on one request's headers";
  EXPECT_EQ(httpGet(admin_, "/livez").status, 200);
  EXPECT_TRUE(agent_->running());
}

// Kubelet's probes are answered while idle and stalled clients hold connections open.
TEST_F(AdminServerTest, IdleAndStalledConnectionsDoNotStarveTheProbes) {
  std::vector<int> hogs;
  for (int i = 0; i < 6; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(admin_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    if (i % 2) {
      const std::string partial = "GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ";
      ASSERT_GT(::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL), 0);
    }
    hogs.push_back(fd);
  }
  httplib::Client probe("127.0.0.1", admin_);
  probe.set_connection_timeout(10s);
  probe.set_read_timeout(10s);  // generous; no timing is asserted
  const auto res = probe.Get("/livez");
  for (const int fd : hogs) ::close(fd);
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
}

// Many clients holding connections open, idle or trickling a request, from 32 source addresses
// and reopening whatever the server closes: fresh probes are still answered (each given a
// generous 10 s: a failure condition, not a latency assertion).
TEST_F(AdminServerTest, HeldConnectionsDoNotStarveTheProbes) {
  const size_t fds = raiseFdLimit();
  const size_t idle = std::min<size_t>(1000, fds > 512 ? fds - 256 : 64);
  HeldConnections idle_hogs(admin_, idle, HeldConnections::Mode::Idle);
  HeldConnections trickling_hogs(admin_, 64, HeldConnections::Mode::Trickle);
  std::this_thread::sleep_for(500ms);  // let them connect and start their requests
  for (int i = 0; i < 5; ++i) {
    for (const char* path : {"/livez", "/readyz", "/metrics"}) {
      httplib::Client probe("127.0.0.1", admin_);
      probe.set_connection_timeout(10s);
      probe.set_read_timeout(10s);
      const auto res = probe.Get(path);
      ASSERT_TRUE(res) << path << " probe " << i << " with " << idle
                       << " idle and 64 trickling connections held: "
                       << httplib::to_string(res.error());
    }
  }
  EXPECT_TRUE(agent_->running());
}

// A multi-range request (~8 KiB of `0-,` ranges) gets the metrics once, not a multipart body of
// thousands of copies.
TEST_F(AdminServerTest, MultiRangeRequestDoesNotAmplifyMetrics) {
  const uint64_t rss_before = agent_->rssBytes();
  const HttpResult plain = httpGet(admin_, "/metrics");
  ASSERT_EQ(plain.status, 200);
  std::string ranges = "bytes=0-";
  for (int i = 1; i < 2700; ++i) ranges += ",0-";
  for (int i = 0; i < 4; ++i) {
    const std::string reply = rawExchange(
        admin_,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nRange: " + ranges + "\r\n\r\n");
    const int status = statusOf(reply);
    ASSERT_TRUE(status == 200 || status == 416) << reply.substr(0, 300);
    EXPECT_LT(reply.size(), plain.body.size() + 4096) << "Range amplified /metrics";
    EXPECT_EQ(reply.find("multipart/byteranges"), std::string::npos);
  }
  EXPECT_LT(agent_->rssBytes(), rss_before + (32ull << 20));
  EXPECT_EQ(httpGet(admin_, "/livez").status, 200);
}

TEST_F(AdminServerTest, HugeBodyIsRefusedAndTheServerKeepsServing) {
  const uint64_t rss_before = agent_->rssBytes();
  const std::string body(8 << 20, 'b');
  for (const char* method : {"POST", "PUT"}) {
    const std::string reply = rawExchange(
        admin_, std::string(method) +
                    " /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body);
    const int status = statusOf(reply);
    EXPECT_TRUE(status == 0 || (status >= 400 && status < 500))
        << method << " with an 8 MiB body was answered " << reply.substr(0, 200);
  }
  // A GET's body is not read (the GET is answered, the rest of the stream is then garbage and
  // the connection is closed): fine, as long as it is not buffered.
  rawExchange(admin_, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body);
  // A Content-Length far beyond anything, with no body behind it.
  const int lying = statusOf(rawExchange(admin_,
                                         "POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: "
                                         "close\r\nContent-Length: 99999999999999\r\n\r\n",
                                         10s));
  EXPECT_TRUE(lying == 0 || (lying >= 400 && lying < 500)) << lying;
  // Chunked, 8 MiB.
  std::string chunked =
      "POST /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 2048; ++i) chunked += "1000\r\n" + std::string(4096, 'c') + "\r\n";
  const int chunked_status = statusOf(rawExchange(admin_, chunked));
  EXPECT_TRUE(chunked_status == 0 || (chunked_status >= 400 && chunked_status < 500))
      << chunked_status;
  EXPECT_EQ(httpGet(admin_, "/livez").status, 200);
  EXPECT_TRUE(agent_->running());
  EXPECT_LT(agent_->rssBytes(), rss_before + (64ull << 20)) << "the agent buffered a huge body";
}

// ---- RBAC: the Role the deploy manifests grant -----------------------------------------------

// A Role's rules, one (resource, verb, resourceName) per entry ("" name: any name).
struct Grant {
  std::string resource, verb, name;
  bool operator<(const Grant& o) const {
    return std::tie(resource, verb, name) < std::tie(o.resource, o.verb, o.name);
  }
  bool operator==(const Grant&) const = default;
};

std::string describe(const Grant& g) {
  return g.verb + " " + g.resource + (g.name.empty() ? "" : " \"" + g.name + "\"");
}

// What a rendered manifest set says about the agent: its Role and its container's environment.
struct Rendered {
  std::vector<Grant> grants;
  std::map<std::string, std::string> env;  // plain `value:` entries of the agent container
  std::string pre_created_secret;          // the agent's Secret, if the manifests create it
  std::string pre_created_configmap;       // the agent's ConfigMap, likewise
  std::string config_file;  // the agent's config.yaml from the chart's config ConfigMap, if any
};

Rendered parseManifests(const std::string& yaml_text) {
  Rendered out;
  // Every Secret/ConfigMap the manifests create: tailscaled's state Secret (layout (a)) is one
  // of them, and not the agent's.
  std::set<std::string> secrets, configmaps;
  for (const YAML::Node& doc : YAML::LoadAll(yaml_text)) {
    if (!doc.IsMap() || !doc["kind"]) continue;
    const std::string kind = doc["kind"].as<std::string>();
    const std::string name = doc["metadata"]["name"].as<std::string>("");
    if (kind == "Role" && name.find("tailscaled") == std::string::npos) {
      for (const auto& rule : doc["rules"]) {
        for (const auto& res : rule["resources"]) {
          for (const auto& verb : rule["verbs"]) {
            if (!rule["resourceNames"] || rule["resourceNames"].size() == 0) {
              out.grants.push_back({res.as<std::string>(), verb.as<std::string>(), ""});
            }
            for (const auto& n : rule["resourceNames"]) {
              out.grants.push_back(
                  {res.as<std::string>(), verb.as<std::string>(), n.as<std::string>()});
            }
          }
        }
      }
    } else if (kind == "Secret") {
      secrets.insert(name);
    } else if (kind == "ConfigMap" && doc["data"] && doc["data"]["config.yaml"]) {
      out.config_file = doc["data"]["config.yaml"].as<std::string>();
    } else if (kind == "ConfigMap") {
      configmaps.insert(name);
    } else if (kind == "Deployment" || kind == "StatefulSet" || kind == "DaemonSet") {
      const YAML::Node spec = doc["spec"]["template"]["spec"];
      for (const char* list : {"containers", "initContainers"}) {
        for (const auto& c : spec[list]) {
          bool is_agent = false;
          for (const auto& e : c["env"]) {
            if (e["name"].as<std::string>() == "TS_KUBE_CREATE_OBJECTS") is_agent = true;
          }
          if (!is_agent) continue;
          for (const auto& e : c["env"]) {
            if (e["value"]) out.env[e["name"].as<std::string>()] = e["value"].as<std::string>();
          }
        }
      }
    }
  }
  std::sort(out.grants.begin(), out.grants.end());
  if (const auto it = out.env.find("TS_KUBE_SECRET");
      it != out.env.end() && secrets.count(it->second)) {
    out.pre_created_secret = it->second;
  }
  if (const auto it = out.env.find("TS_KUBE_CONFIGMAP");
      it != out.env.end() && configmaps.count(it->second)) {
    out.pre_created_configmap = it->second;
  }
  return out;
}

std::string readRepoFile(const std::string& rel) {
  return readWholeFile(std::string(TSK_SOURCE_DIR) + "/" + rel);
}

kube_emu::RbacPolicy policyOf(const std::vector<Grant>& grants, const std::string& ns) {
  kube_emu::RbacPolicy p;
  for (const auto& g : grants) {
    kube_emu::RbacRule r;
    r.users = {kUser};
    r.verbs = {g.verb};
    r.resources = {g.resource};
    if (!g.name.empty()) r.resource_names = {g.name};
    r.namespaces = {ns};
    p.rules.push_back(r);
  }
  return p;
}

class LeastPrivilegeTest : public SecurityTest {
 protected:
  // Runs the agent as the manifests configure it (their env; our socket, admin address and
  // service-account dir), with exactly `grants` enforced. Returns the agent and waits until it
  // has either published (true) or logged a forbidden error (false).
  struct Outcome {
    bool worked = false;
    std::string log;
    std::string readyz;
    std::vector<kube_emu::RequestRecord> requests;
  };

  Outcome runWith(const Rendered& r, const std::vector<Grant>& grants, const std::string& ns) {
    emu_->setRbac(policyOf(grants, ns));
    emu_->store().clear();
    emu_->clearRequestLog();
    if (!r.pre_created_secret.empty()) seed(kube_emu::Resource::kSecrets, ns, r.pre_created_secret);
    if (!r.pre_created_configmap.empty()) {
      seed(kube_emu::Resource::kConfigMaps, ns, r.pre_created_configmap);
    }
    auto env = r.env;
    env["POD_NAMESPACE"] = ns;
    env["POD_UID"] = "0d6c1c2e-5b1e-4b8f-9a39-000000000001";
    if (env.count("TS_AGENT_CONFIG")) {  // mounted from the chart's ConfigMap in a pod
      env["TS_AGENT_CONFIG"] = dir_.file("config.yaml");
      writeFileAtomically(env["TS_AGENT_CONFIG"], r.config_file);
    }
    auto agent = startAgent(pki().caPem(), {}, env, ns);
    const int admin = agent->adminPort();
    Outcome o;
    const std::string secret = env.count("TS_KUBE_SECRET") ? env["TS_KUBE_SECRET"] : "";
    const std::string cm = env.count("TS_KUBE_CONFIGMAP") ? env["TS_KUBE_CONFIGMAP"] : "";
    const auto done = [&] {
      const bool secret_ok = secret.empty() || published(secret, ns);
      const bool cm_ok = cm.empty() || configMapData(*emu_, ns, cm).count("device_fqdn") > 0;
      return secret_ok && cm_ok && httpGet(admin, "/readyz").status == 200;
    };
    const auto failed = [&] {
      const std::string log = agent->log();
      return log.find("forbidden") != std::string::npos ||
             log.find("may not create") != std::string::npos;
    };
    eventually([&] { return done() || failed(); }, 30s, 50ms);
    if (done()) {
      // Restart from what the server holds, and follow an identity change.
      tsbus_sim::IdentityUpdate u;
      u.name = "least-privilege-" + std::to_string(++changes_) + ".ts.net.";
      sim_->selfChange(u);
      eventually([&] { return done() || failed(); }, 30s, 50ms);
      o.worked = done();
    }
    o.log = agent->log();
    o.readyz = httpGet(admin, "/readyz").body;
    o.requests = emu_->requestLog();
    return o;
  }

  void seed(kube_emu::Resource r, const std::string& ns, const std::string& name) {
    const std::string body = "{\"metadata\":{\"name\":\"" + name + "\"}}";
    auto res = emu_->store().create(r, ns, body, {"helm"});
    ASSERT_EQ(res.code, 201) << res.body.dump();
  }

  void proveLeastPrivilege(const Rendered& r, const std::string& ns) {
    ASSERT_FALSE(r.grants.empty()) << "no Role rules found in the manifests";
    ASSERT_FALSE(r.env.empty()) << "no agent container env found in the manifests";
    startEmu(pki().serverCert(), pki().serverKey());

    const Outcome all = runWith(r, r.grants, ns);
    ASSERT_TRUE(all.worked) << "the agent does not work with exactly the Role's rules; readyz: "
                            << all.readyz << "\n"
                            << all.log;
    for (const auto& req : all.requests) {
      EXPECT_NE(req.status, 403) << "with the full Role the agent still tried " << req.method << " "
                                 << req.path << ", which the Role does not allow";
    }
    std::cout << "with the Role's " << r.grants.size() << " grants the agent works:";
    for (const auto& g : r.grants) std::cout << " [" << describe(g) << "]";
    std::cout << "\n";

    for (size_t i = 0; i < r.grants.size(); ++i) {
      std::vector<Grant> fewer = r.grants;
      const Grant removed = fewer[i];
      fewer.erase(fewer.begin() + static_cast<long>(i));
      const Outcome o = runWith(r, fewer, ns);
      EXPECT_FALSE(o.worked) << "the agent still works without [" << describe(removed)
                             << "]: the Role grants more than it needs";
      if (o.worked) continue;
      EXPECT_NE(o.log.find(removed.verb), std::string::npos)
          << "without [" << describe(removed) << "] the log does not name the verb:\n"
          << o.log;
      EXPECT_NE(o.log.find(removed.resource), std::string::npos)
          << "without [" << describe(removed) << "] the log does not name the resource:\n"
          << o.log;
      // The rule as the log gives it (quotes escaped in a quoted log field, or not).
      const std::string rule = "resourceNames: [\"" + removed.name + "\"]";
      const std::string escaped = "resourceNames: [\\\"" + removed.name + "\\\"]";
      if (!removed.name.empty()) {
        EXPECT_TRUE(o.log.find(rule) != std::string::npos ||
                    o.log.find(escaped) != std::string::npos)
            << "without [" << describe(removed) << "] the log does not give the Role rule:\n"
            << o.log;
      }
      std::cout << "without [" << describe(removed) << "] the agent fails clearly\n";
    }
  }

  int changes_ = 0;
};

TEST_F(LeastPrivilegeTest, KustomizeBaseRoleIsTheLeastThatWorks) {
  std::string manifests;
  for (const char* f : {"role.yaml", "deployment.yaml", "secret.yaml"}) {
    manifests += readRepoFile(std::string("deploy/kustomize/base/") + f) + "\n---\n";
  }
  proveLeastPrivilege(parseManifests(manifests), "default");
}

// The chart rendered by `helm template` (the pinned Helm of scripts/real-apiserver/build.sh,
// fixture real_apiserver_binary) with a ConfigMap target the chart does not create (so the Role
// also grants configmaps create).
TEST_F(LeastPrivilegeTest, HelmChartRoleWithCreatedConfigMapIsTheLeastThatWorks) {
  // $TSK_CONTROL_PLANE_BIN_DIR, else the cache build.sh --check names (it never builds).
  const char* bin_dir_env = std::getenv("TSK_CONTROL_PLANE_BIN_DIR");
  std::string bin_dir = bin_dir_env != nullptr ? bin_dir_env : "";
  if (bin_dir.empty()) {
    const std::string bin_dir_file = dir_.file("bin-dir");
    const std::string check =
        std::string(TSK_SOURCE_DIR) + "/scripts/real-apiserver/build.sh --check > " + bin_dir_file;
    ASSERT_EQ(std::system(check.c_str()), 0)
        << "the pinned Helm is not built; run scripts/real-apiserver/build.sh";
    bin_dir = readWholeFile(bin_dir_file);
    while (!bin_dir.empty() && std::isspace(static_cast<unsigned char>(bin_dir.back()))) {
      bin_dir.pop_back();
    }
  }
  const std::string out = dir_.file("rendered.yaml");
  const std::string cmd = bin_dir + "/helm template ts-kube-agent " + TSK_SOURCE_DIR +
                          "/deploy/helm/ts-kube-agent --namespace tailscale" +
                          " --set targets.configMap.enabled=true" +
                          " --set targets.configMap.create=false > " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const Rendered r = parseManifests(readWholeFile(out));
  EXPECT_TRUE(std::any_of(r.grants.begin(), r.grants.end(), [](const Grant& g) {
    return g.verb == "create";
  })) << "the chart did not grant create for the ConfigMap it does not pre-create";
  proveLeastPrivilege(r, "tailscale");
}

}  // namespace
}  // namespace tsk::testing
