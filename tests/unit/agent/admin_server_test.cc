#include "agent/admin_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "tests/support/net/held_connections.h"
#include "tests/support/util/eventually.h"

namespace tsk::agent {
namespace {

// A raw TCP connection to the admin server; receives time out after `recv_timeout`.
class RawConnection {
 public:
  // `source_octet`: connect from 127.0.0.<source_octet>.
  explicit RawConnection(int port, std::chrono::seconds recv_timeout = std::chrono::seconds(30),
                         int source_octet = 1)
      : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl((127u << 24) | static_cast<uint32_t>(source_octet));
    ::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof src);
    timeval tv{static_cast<time_t>(recv_timeout.count()), 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawConnection() { ::close(fd_); }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const { return connected_; }
  int fd() const { return fd_; }
  // Sends what the server takes; stops at the first error (the server may stop reading).
  void send(const std::string& bytes) {
    for (size_t off = 0; off < bytes.size();) {
      const ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return;
      off += static_cast<size_t>(n);
    }
  }
  // Everything until the server closes (or an error, or the receive timeout).
  std::string receiveAll(bool* closed_by_server = nullptr) {
    std::string out;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        out.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (closed_by_server) *closed_by_server = n == 0 || errno == ECONNRESET;
      return out;
    }
  }

 private:
  int fd_;
  bool connected_ = false;
};

int statusOf(const std::string& reply) {
  if (reply.rfind("HTTP/1.", 0) != 0 || reply.size() < 12) return 0;
  return std::atoi(reply.substr(9, 3).c_str());
}

class AdminServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    admin_ = std::make_unique<AdminServer>(
        AdminHandlers{
            .metrics = [] { return std::string("x_total 1\n"); },
            .livez =
                [] {
                  return ProbeResult{true, ""};
                },
            .readyz =
                [this] {
                  return ProbeResult{ready_.load(),
                                     "tailscaled backend state is NeedsLogin, not Running"};
                },
            .healthz =
                [] {
                  return ProbeResult{false, "node currently has no tailscale IPs"};
                },
        },
        Logger::null());
    ASSERT_TRUE(admin_->start({"127.0.0.1", 0}).ok());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", admin_->port());
  }
  std::atomic<bool> ready_{false};
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(AdminServerTest, ReadyzIs503WithOneLineReasonThen200) {
  auto res = client_->Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->body, "tailscaled backend state is NeedsLogin, not Running\n");
  ready_ = true;
  res = client_->Get("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok\n");
}

TEST_F(AdminServerTest, HealthzUsesUpstreamMessage) {
  const auto res = client_->Get("/healthz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->body, "node currently has no tailscale IPs\n");
}

TEST_F(AdminServerTest, LivezAndMetrics) {
  auto res = client_->Get("/livez");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = client_->Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->body, "x_total 1\n");
}

TEST_F(AdminServerTest, OtherMethodsGet405AndUnknownPaths404) {
  auto res = client_->Post("/readyz", "x", "text/plain");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);
  res = client_->Get("/debug/pprof");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

TEST_F(AdminServerTest, OversizedHeadersAreRefused) {
  httplib::Headers headers{{"X-Big", std::string(64 * 1024, 'a')}};
  const auto res = client_->Get("/livez", headers);
  // 431, or the connection is reset while the client still sends; either way no handler runs.
  if (res) {
    EXPECT_NE(res->status, 200);
  }
}

TEST_F(AdminServerTest, IdleAndSlowConnectionsDoNotKeepLivezWaiting) {
  // Six hogs: half send nothing, half stall mid-request.
  std::vector<std::unique_ptr<RawConnection>> hogs;
  for (int i = 0; i < 6; ++i) {
    hogs.push_back(std::make_unique<RawConnection>(admin_->port()));
    ASSERT_TRUE(hogs.back()->connected());
    if (i % 2) hogs.back()->send("GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ");
  }
  // The probe gets its answer (generous timeout: no timing is asserted).
  httplib::Client probe("127.0.0.1", admin_->port());
  probe.set_connection_timeout(10, 0);
  probe.set_read_timeout(10, 0);
  const auto res = probe.Get("/livez");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
}

TEST_F(AdminServerTest, IdleAndStalledConnectionsAreClosedByTheServer) {
  RawConnection idle(admin_->port());
  RawConnection stalled(admin_->port());
  ASSERT_TRUE(idle.connected() && stalled.connected());
  stalled.send("GET /livez HTTP/1.1\r\nHost: x\r\n");
  bool closed = false;
  EXPECT_EQ(idle.receiveAll(&closed), "");
  EXPECT_TRUE(closed) << "an idle connection was kept open";
  const std::string reply = stalled.receiveAll(&closed);
  EXPECT_TRUE(closed) << "a stalled request kept its connection";
  EXPECT_NE(statusOf(reply), 200) << reply;
}

TEST_F(AdminServerTest, ManySmallHeadersAreRefusedAndTheServerKeepsServing) {
  std::string request = "GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
  for (int i = 0; request.size() < (4u << 20); ++i) {
    request += "X-H" + std::to_string(i) + ": vvvvvvvvvvvvvvvvvvvv\r\n";
  }
  RawConnection conn(admin_->port());
  ASSERT_TRUE(conn.connected());
  conn.send(request + "\r\n");
  const int status = statusOf(conn.receiveAll());
  EXPECT_TRUE(status == 0 || status == 431 || status == 400) << status;
  const auto res = client_->Get("/livez");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(AdminServerTest, TooLongRequestLineIsAnsweredWith431) {
  RawConnection conn(admin_->port());
  ASSERT_TRUE(conn.connected());
  conn.send("GET /" + std::string(AdminLimits{}.max_request_bytes, 'u'));  // no line end yet
  EXPECT_EQ(statusOf(conn.receiveAll()), 431);
}

TEST_F(AdminServerTest, RequestsWithinTheLimitAreServed) {
  httplib::Headers headers;
  for (int i = 0; i < 40; ++i) headers.emplace("X-H" + std::to_string(i), std::string(200, 'v'));
  const auto res = client_->Get("/livez", headers);  // ~9 KiB of headers
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST_F(AdminServerTest, KeepAliveServesAFewRequestsPerConnection) {
  client_->set_keep_alive(true);
  for (size_t i = 0; i < 2 * AdminLimits{}.max_requests_per_connection + 1; ++i) {
    const auto res = client_->Get("/livez");
    ASSERT_TRUE(res) << "request " << i;
    EXPECT_EQ(res->status, 200);
  }
  // Two pipelined requests in one write: both answered.
  RawConnection conn(admin_->port());
  conn.send(
      "GET /livez HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n"
      "Connection: close\r\n\r\n");
  const std::string replies = conn.receiveAll();
  EXPECT_EQ(statusOf(replies), 200) << replies;
  EXPECT_NE(replies.find("HTTP/1.1 503"), std::string::npos) << replies;
}

// Probes on fresh connections, each given a generous 10 s to be answered (a failure condition,
// not a latency assertion: they take well under a millisecond).
void expectProbesAnswered(int port, int probes = 5) {
  for (int i = 0; i < probes; ++i) {
    httplib::Client probe("127.0.0.1", port);
    probe.set_connection_timeout(10, 0);
    probe.set_read_timeout(10, 0);
    for (const char* path : {"/livez", "/readyz"}) {
      const auto res = probe.Get(path);
      ASSERT_TRUE(res) << path << " probe " << i << ": " << httplib::to_string(res.error());
      EXPECT_NE(res->status, 0);
    }
  }
}

size_t boundedByFds(size_t wanted) {
  const size_t limit = testing::raiseFdLimit();
  return std::min(wanted, limit > 256 ? limit - 128 : size_t{64});
}

// Clients that reopen every connection the server closes: a server that spends a thread (or a
// queue slot) per waiting connection keeps the probes waiting behind them, round after round.
class HeldConnectionsTest
    : public AdminServerTest,
      public ::testing::WithParamInterface<std::tuple<size_t, testing::HeldConnections::Mode>> {};

TEST_P(HeldConnectionsTest, ProbesOnFreshConnectionsAreAnswered) {
  const auto [wanted, mode] = GetParam();
  const size_t count = boundedByFds(wanted);
  testing::HeldConnections hogs(admin_->port(), count, mode);
  // Let the hogs connect (and, trickling, start their requests) before probing.
  ASSERT_TRUE(testing::eventually([&] { return hogs.rounds() >= 1; }));
  ready_ = true;
  expectProbesAnswered(admin_->port());
}

INSTANTIATE_TEST_SUITE_P(
    IdleAndTrickling, HeldConnectionsTest,
    ::testing::Combine(::testing::Values(16, 64, 1000),
                       ::testing::Values(testing::HeldConnections::Mode::Idle,
                                         testing::HeldConnections::Mode::Trickle)),
    [](const auto& param_info) {
      return std::to_string(std::get<0>(param_info.param)) +
             (std::get<1>(param_info.param) == testing::HeldConnections::Mode::Idle ? "Idle"
                                                                                    : "Trickling");
    });

// A client trickling a request one byte at a time is cut off by the whole-request deadline, not
// kept while each byte comes within an inactivity timeout.
TEST_F(AdminServerTest, TricklingRequestIsCutOffByTheRequestDeadline) {
  RawConnection conn(admin_->port());
  ASSERT_TRUE(conn.connected());
  const std::string head = "GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: " + std::string(64, 'v');
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  bool cut_off = false;
  for (size_t i = 0; std::chrono::steady_clock::now() < give_up; ++i) {
    const char c = head[i % head.size()];
    if (::send(conn.fd(), &c, 1, MSG_NOSIGNAL) != 1) {
      cut_off = true;
      break;
    }
    pollfd p{conn.fd(), POLLIN, 0};
    if (::poll(&p, 1, 200) == 1) {  // the server answered (408) or closed
      cut_off = true;
      break;
    }
  }
  EXPECT_TRUE(cut_off) << "a request trickled for 30 s was never cut off";
}

// At the limit, a new connection from the address that holds the most is closed at once (the
// kernel accepts connections in order, so the first four fill the server).
TEST(AdminServer, AtTheLimitANewcomerFromTheBusiestAddressIsTurnedAway) {
  AdminHandlers handlers;
  handlers.livez = [] { return ProbeResult{true, ""}; };
  AdminLimits limits;
  limits.max_connections = 4;
  limits.request_read_timeout = std::chrono::seconds(60);  // only the limit closes them here
  AdminServer admin(handlers, Logger::null(), limits);
  ASSERT_TRUE(admin.start({"127.0.0.1", 0}).ok());
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < 4; ++i) {
    idle.push_back(std::make_unique<RawConnection>(admin.port(), std::chrono::seconds(30), 2));
    ASSERT_TRUE(idle.back()->connected());
  }
  RawConnection newcomer(admin.port(), std::chrono::seconds(30), 2);
  bool closed = false;
  EXPECT_EQ(newcomer.receiveAll(&closed), "");
  EXPECT_TRUE(closed) << "a fifth connection from the same address was kept";
  RawConnection probe(admin.port());
  probe.send("GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(statusOf(probe.receiveAll()), 200);
}

// At the limit, the connection closed to make room belongs to the client holding the most: a
// client with a single connection keeps it even when it is the oldest.
TEST(AdminServer, AtTheLimitTheBusiestClientLosesAConnection) {
  AdminHandlers handlers;
  handlers.livez = [] { return ProbeResult{true, ""}; };
  AdminLimits limits;
  limits.max_connections = 4;
  limits.request_read_timeout = std::chrono::seconds(60);
  AdminServer admin(handlers, Logger::null(), limits);
  ASSERT_TRUE(admin.start({"127.0.0.1", 0}).ok());
  // Accepted in this order (the kernel queues connections in order): lone is the oldest.
  RawConnection lone(admin.port(), std::chrono::seconds(2), 3);  // alone on 127.0.0.3
  ASSERT_TRUE(lone.connected());
  std::vector<std::unique_ptr<RawConnection>> busy;
  for (int i = 0; i < 3; ++i) {
    busy.push_back(std::make_unique<RawConnection>(admin.port(), std::chrono::seconds(30), 2));
    ASSERT_TRUE(busy.back()->connected());
  }
  RawConnection probe(admin.port());
  probe.send("GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(statusOf(probe.receiveAll()), 200);
  bool closed = false;
  EXPECT_EQ(busy.front()->receiveAll(&closed), "");
  EXPECT_TRUE(closed) << "the busiest client's oldest connection was kept";
  closed = false;
  lone.receiveAll(&closed);  // times out after 2 s: the server keeps it
  EXPECT_FALSE(closed) << "the lone client's connection was closed";
}

TEST(AdminServer, MultiRangeRequestGetsTheWholeBodyOnce) {
  std::string metrics;
  for (int i = 0; metrics.size() < 4096; ++i)
    metrics += "x_total{n=\"" + std::to_string(i) + "\"} 1\n";
  AdminHandlers handlers;
  handlers.metrics = [&] { return metrics; };
  AdminServer admin(handlers, Logger::null());
  ASSERT_TRUE(admin.start({"127.0.0.1", 0}).ok());
  std::string ranges = "bytes=0-";
  for (int i = 1; i < 2700; ++i) ranges += ",0-";  // ~8 KiB, within the request limit
  for (const std::string& range : {ranges, std::string("bytes=0-9"), std::string("bytes=10-")}) {
    RawConnection conn(admin.port());
    conn.send("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nRange: " + range +
              "\r\n\r\n");
    const std::string reply = conn.receiveAll();
    const int status = statusOf(reply);
    ASSERT_TRUE(status == 200 || status == 416) << reply.substr(0, 300);
    EXPECT_LE(reply.size(), metrics.size() + 512) << "Range amplified the answer";
    EXPECT_EQ(reply.find("multipart/byteranges"), std::string::npos);
    if (status == 200) {
      EXPECT_EQ(reply.substr(reply.find("\r\n\r\n") + 4), metrics) << range.substr(0, 20);
    }
  }
}

TEST_F(AdminServerTest, HeadAnswersTheHeadersWithoutTheBody) {
  const auto res = client_->Head("/readyz");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(
      res->get_header_value("Content-Length"),
      std::to_string(std::string("tailscaled backend state is NeedsLogin, not Running\n").size()));
  EXPECT_EQ(res->body, "");
}

TEST_F(AdminServerTest, MalformedRequestsAre400AndClosed) {
  for (const std::string& request : {
           std::string("GET /livez HTTP/1.1\r\n\r\n"),                        // no Host
           std::string("GET /livez HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),  // two
           std::string("GET  /livez HTTP/1.1\r\nHost: x\r\n\r\n"),
           std::string("GET /livez HTTP/1.1\r\nHost : x\r\n\r\n"),
           std::string("GET /livez HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"),
           std::string("GET /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n"),
           std::string("GET livez HTTP/1.1\r\nHost: x\r\n\r\n"),
       }) {
    RawConnection conn(admin_->port());
    conn.send(request);
    bool closed = false;
    EXPECT_EQ(statusOf(conn.receiveAll(&closed)), 400) << request;
    EXPECT_TRUE(closed) << request;
  }
  RawConnection conn(admin_->port());
  conn.send("GET /livez HTTP/2.0\r\nHost: x\r\n\r\n");
  EXPECT_EQ(statusOf(conn.receiveAll()), 505);
}

TEST_F(AdminServerTest, Http10AndAbsoluteFormAreServed) {
  RawConnection conn(admin_->port());
  conn.send("GET /livez?verbose HTTP/1.0\r\n\r\n");
  bool closed = false;
  const std::string reply = conn.receiveAll(&closed);
  EXPECT_EQ(statusOf(reply), 200) << reply;
  EXPECT_TRUE(closed) << "an HTTP/1.0 request without keep-alive kept its connection";
  RawConnection absolute(admin_->port());
  absolute.send(
      "GET http://agent:9002/livez HTTP/1.1\r\nHost: agent:9002\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(statusOf(absolute.receiveAll()), 200);
}

TEST_F(AdminServerTest, AGetWithABodyIsAnsweredAndItsConnectionClosed) {
  RawConnection conn(admin_->port());
  conn.send("GET /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  bool closed = false;
  EXPECT_EQ(statusOf(conn.receiveAll(&closed)), 200);
  EXPECT_TRUE(closed);
}

TEST(AdminServer, BindFailureNamesTheAddress) {
  AdminServer first({}, Logger::null());
  ASSERT_TRUE(first.start({"127.0.0.1", 0}).ok());
  AdminServer second({}, Logger::null());
  const auto st = second.start({"127.0.0.1", first.port()});
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message.find("127.0.0.1:" + std::to_string(first.port())), std::string::npos)
      << st.error().message;
  EXPECT_NE(st.error().message.find("--admin-addr"), std::string::npos);
}

TEST(AdminServer, DualStackAnyAddressAcceptsIpv4) {
  AdminHandlers handlers;
  handlers.livez = [] { return ProbeResult{true, ""}; };
  AdminServer admin(handlers, Logger::null());
  ASSERT_TRUE(admin.start({"::", 0}).ok());
  httplib::Client client("127.0.0.1", admin.port());
  const auto res = client.Get("/livez");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

TEST(AdminServer, EmptyHostListensOnEveryAddress) {  // --admin-addr :PORT
  AdminHandlers handlers;
  handlers.livez = [] { return ProbeResult{true, ""}; };
  AdminServer admin(handlers, Logger::null());
  ASSERT_TRUE(admin.start({"", 0}).ok());
  httplib::Client client("127.0.0.1", admin.port());
  const auto res = client.Get("/livez");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
}

}  // namespace
}  // namespace tsk::agent
