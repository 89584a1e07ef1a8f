#include "agent/admin_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

namespace tsk::agent {
namespace {

// A raw TCP connection to the admin server; receives time out after `recv_timeout`.
class RawConnection {
 public:
  RawConnection(int port, std::chrono::seconds recv_timeout = std::chrono::seconds(30))
      : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
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
  // cpp-httplib answers 400 or drops the connection; either way the handler never runs.
  if (res) {
    EXPECT_NE(res->status, 200);
  }
}

TEST_F(AdminServerTest, IdleAndSlowConnectionsDoNotKeepLivezWaiting) {
  // Six hogs (fewer than the workers): half send nothing, half stall mid-request.
  std::vector<std::unique_ptr<RawConnection>> hogs;
  for (int i = 0; i < 6; ++i) {
    hogs.push_back(std::make_unique<RawConnection>(admin_->port()));
    ASSERT_TRUE(hogs.back()->connected());
    if (i % 2) hogs.back()->send("GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: ");
  }
  // The probe gets its answer (generous timeout: no timing is asserted; with too few workers
  // it would wait for the hogs' read timeouts one batch after another).
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

}  // namespace
}  // namespace tsk::agent
