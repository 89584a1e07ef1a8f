#include "agent/admin_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>

namespace tsk::agent {
namespace {

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
