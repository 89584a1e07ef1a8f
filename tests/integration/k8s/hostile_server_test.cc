// The API client against answers a broken or hostile server (or a proxy in the way) gives, over
// real TLS from RawTlsServer: bytes trickled to dodge per-read timeouts, bodies of gigabytes,
// redirects, HTML login pages, error pages that echo the bearer token, and tokens that would
// inject headers. Each test asserts the request's outcome and its error text; none measures time
// (deadlines are set short so the tests end quickly, and every server gives up after a bound).
#include <gtest/gtest.h>

#include <fstream>
#include <future>

#include "k8s/base64.h"
#include "k8s/errors.h"
#include "tests/integration/k8s/emu_fixture.h"
#include "tests/integration/k8s/raw_tls_server.h"

namespace tsk::k8s::testing {
namespace {

using std::chrono::milliseconds;

class HostileServerTest : public EmuFixture {
 protected:
  std::unique_ptr<RawTlsServer> serve(RawTlsServer::Behaviour b) {
    return std::make_unique<RawTlsServer>(testPki().server_cert, testPki().server_key,
                                          std::move(b));
  }
  std::unique_ptr<ApiClient> clientFor(const RawTlsServer& server, ClientOptions opts,
                                       ClusterConfig cfg = {}) {
    if (cfg.server.empty()) cfg = clusterConfig();
    cfg.server = server.url();
    return makeClient(std::move(opts), std::move(cfg));
  }
  static ClientOptions oneShot(milliseconds deadline = milliseconds(10'000)) {
    ClientOptions opts = fastOptions();
    opts.request_timeout = deadline;
    return opts;
  }
  static constexpr const char* kPath = "/api/v1/namespaces/tailscale/secrets/s";
};

constexpr uint64_t kFloodLimit = 256ull * 1024 * 1024;  // the server gives up after 256 MiB

// Sends `prefix`, then `byte` every `gap` for at most `total`: never idle long enough for a
// per-read timeout, never done.
RawTlsServer::Behaviour trickle(std::string prefix, milliseconds gap, milliseconds total) {
  return [=](RawTlsServer::Conn& c) {
    if (!c.write(prefix)) return;
    for (auto spent = milliseconds(0); spent < total; spent += gap) {
      if (!c.pause(gap) || !c.write("x")) return;
    }
  };
}

TEST_F(HostileServerTest, ATrickleInTheHeadersEndsAtTheRequestDeadline) {
  // One header byte every 300 ms, for up to 30 s; the per-read timeout (= the deadline, 1 s) is
  // never reached, only the overall deadline ends the attempt.
  auto server =
      serve(trickle("HTTP/1.1 200 OK\r\nX-Slow: ", milliseconds(300), milliseconds(30'000)));
  auto api = clientFor(*server, oneShot(milliseconds(1'000)));
  auto got = api->request("GET", kPath, "secrets");
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("GET " + server->url() + kPath +
                                     ": no complete answer within the request deadline of 1 s "
                                     "(connect, TLS handshake, response headers and body "
                                     "together)"),
            std::string::npos)
      << got.error().message;
  EXPECT_NE(got.error().message.find("check its health and the network path"), std::string::npos);
}

TEST_F(HostileServerTest, ATrickleInTheBodyEndsAtTheRequestDeadlineOfEachRequest) {
  auto server = serve(trickle(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
      milliseconds(300), milliseconds(30'000)));
  auto api = clientFor(*server, oneShot(milliseconds(1'000)));
  for (int i = 0; i < 2; ++i) {  // the caller's retry gets a deadline of its own
    auto got = api->request("GET", kPath, "secrets");
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.error().kind, ErrorKind::Timeout);
    EXPECT_NE(got.error().message.find("no complete answer within the request deadline of 1 s"),
              std::string::npos)
        << got.error().message;
  }
  EXPECT_EQ(server->requestHeads().size(), 2u);  // one attempt per request, no retry underneath
}

// Streams zeros after `head` until `limit` bytes or the client hangs up.
RawTlsServer::Behaviour flood(std::string head, bool chunked, uint64_t limit) {
  return [=](RawTlsServer::Conn& c) {
    if (!c.write(head)) return;
    const std::string block(64 * 1024, '0');
    char size_line[32];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", block.size());
    for (uint64_t sent = 0; sent < limit; sent += block.size()) {
      if (chunked && !c.write(size_line)) return;
      if (!c.write(block)) return;
      if (chunked && !c.write("\r\n")) return;
    }
    if (chunked) c.write("0\r\n\r\n");
  };
}

TEST_F(HostileServerTest, AnEndlessFloodOfHeadersEndsAtTheRequestDeadline) {
  // Headers as fast as the client takes them, never the blank line that ends them.
  auto server = serve([](RawTlsServer::Conn& c) {
    if (!c.write("HTTP/1.1 200 OK\r\n")) return;
    const std::string line = "X-Flood: " + std::string(1000, 'f') + "\r\n";
    std::string block;
    for (int i = 0; i < 64; ++i) block += line;
    for (uint64_t sent = 0; sent < kFloodLimit; sent += block.size()) {
      if (!c.write(block)) return;
    }
  });
  auto api = clientFor(*server, oneShot(milliseconds(1'000)));
  auto got = api->request("GET", kPath, "secrets");
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("no complete answer within the request deadline of 1 s"),
            std::string::npos)
      << got.error().message;
  EXPECT_LT(server->bytesSent(), kFloodLimit);
}

TEST_F(HostileServerTest, ADeclaredHugeBodyIsRefusedBeforeReadingIt) {
  auto server = serve(flood(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2147483648\r\n\r\n",
      false, kFloodLimit));
  auto api = clientFor(*server, oneShot());
  auto got = api->request("GET", kPath, "secrets");
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("the API server answered 200 OK with a body of 2147483648 "
                                     "bytes; the agent reads at most 3 MiB"),
            std::string::npos)
      << got.error().message;
  EXPECT_EQ(server->requestHeads().size(), 1u);  // not retried: it would not get smaller
}

TEST_F(HostileServerTest, AnEndlessChunkedBodyStopsAtTheCap) {
  auto server =
      serve(flood("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: "
                  "chunked\r\n\r\n",
                  true, kFloodLimit));
  auto api = clientFor(*server, oneShot());
  auto got = api->request("GET", kPath, "secrets");
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("the API server answered 200 OK with a body larger than "
                                     "that; the agent reads at most 3 MiB"),
            std::string::npos)
      << got.error().message;
  // The client hung up near the cap instead of reading the 256 MiB (kernel buffers aside).
  EXPECT_LT(server->bytesSent(), kFloodLimit);
}

TEST_F(HostileServerTest, ABodyJustUnderTheCapIsAccepted) {
  const std::string body = "{\"pad\":\"" + std::string(kMaxResponseBodyBytes - 10, 'a') + "\"}";
  ASSERT_EQ(body.size(), kMaxResponseBodyBytes);
  auto server = serve([&](RawTlsServer::Conn& c) {
    c.write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n" + body);
  });
  auto api = clientFor(*server, oneShot());
  auto got = api->request("GET", kPath, "secrets");
  ASSERT_TRUE(got.ok()) << got.error().message;
  EXPECT_EQ(got->body.size(), kMaxResponseBodyBytes);
}

TEST_F(HostileServerTest, CancelInterruptsAnAttemptThatKeepsReceiving) {
  // A body that never ends and never stays quiet (a byte every 20 ms), well under the cap: only
  // cancel() can end the attempt before the (long) deadline.
  auto server = serve(trickle(
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
      "100000\r\n",
      milliseconds(20), milliseconds(60'000)));
  auto api = clientFor(*server, oneShot(milliseconds(120'000)));
  auto done = std::async(std::launch::async, [&] { return api->request("GET", kPath, "secrets"); });
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (server->bytesSent() < 200 && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_GE(server->bytesSent(), 200u);
  api->cancel();
  ASSERT_EQ(done.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  auto got = done.get();
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("cancelled (shutting down)"), std::string::npos)
      << got.error().message;
}

TEST_F(HostileServerTest, ARedirectNamesItsLocationAndIsNotFollowed) {
  auto server = serve([](RawTlsServer::Conn& c) {
    c.write(
        "HTTP/1.1 302 Found\r\nLocation: https://login.example/sso?next=%2Fapi\r\n"  // httplib
                                                                                     // decodes it
        "Content-Length: 0\r\n\r\n");
  });
  auto api = clientFor(*server, oneShot());
  auto got = makeSecretStore(*api, kNamespace, "s")->get();
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find(
                "GET " + server->url() + kPath +
                ": the API server answered 302 Found (Location: https://login.example/sso?next="
                "/api); the agent does not follow redirects"),
            std::string::npos)
      << got.error().message;
  EXPECT_EQ(server->requestHeads().size(), 1u);
}

TEST_F(HostileServerTest, AnHtmlPageIsNamedWithItsContentTypeAndAnExcerpt) {
  auto server = serve([](RawTlsServer::Conn& c) {
    const std::string page =
        "<!DOCTYPE html>\n<html><head><title>Sign in - Corp Proxy</title></head>\n"
        "<body>\x01\xff Please sign in</body></html>\n";
    c.write("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: " +
            std::to_string(page.size()) + "\r\n\r\n" + page);
  });
  auto api = clientFor(*server, oneShot());
  auto got = makeSecretStore(*api, kNamespace, "s")->get();
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find(
                "the API server answered 200 OK with Content-Type \"text/html; charset=utf-8\", "
                "not JSON: \"<!DOCTYPE html> <html><head><title>Sign in - Corp Proxy</title>"
                "</head> <body> Please sign in</body></html>\"; something other than the "
                "Kubernetes API server answered"),
            std::string::npos)
      << got.error().message;
}

// Answers `status` with a Status whose message echoes the request's Authorization header, raw
// and base64-encoded (as some proxies' debug pages and misconfigured servers do).
RawTlsServer::Behaviour echoAuthorization(int status, std::string reason) {
  return [=](RawTlsServer::Conn& c) {
    std::string auth;
    const auto at = c.head().find("Authorization: ");
    if (at != std::string::npos) {
      auth = c.head().substr(at, c.head().find("\r\n", at) - at);
    }
    const std::string body = "{\"kind\":\"Status\",\"message\":\"rejected " + auth + " (b64 " +
                             base64Encode(auth) + ")\"}";
    c.write("HTTP/1.1 " + std::to_string(status) + " " + reason +
            "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n\r\n" + body);
  };
}

TEST_F(HostileServerTest, AnEchoedTokenIsRedactedFromA500Error) {
  writeTokenFile("s3cr3t-token-abcdefghijklmnop");
  auto server = serve(echoAuthorization(500, "Internal Server Error"));
  auto api = clientFor(*server, oneShot());
  auto got = makeSecretStore(*api, kNamespace, "s")->get();
  ASSERT_FALSE(got.ok());
  const std::string& m = got.error().message;
  EXPECT_NE(m.find("rejected Authorization: Bearer [REDACTED] (b64 "), std::string::npos) << m;
  EXPECT_EQ(m.find("s3cr3t"), std::string::npos) << m;
  EXPECT_EQ(m.find(base64Encode("s3cr3t-token-abcdefghijklmnop").substr(0, 12)), std::string::npos)
      << m;
  const std::string b64 = base64Encode("Authorization: Bearer s3cr3t-token-abcdefghijklmnop");
  EXPECT_EQ(m.find(b64.substr(24, 24)), std::string::npos) << m;  // the token's part of it
}

TEST_F(HostileServerTest, AnEchoedStaticTokenIsRedactedFromA401Error) {
  ClusterConfig cfg = clusterConfig();
  cfg.token_file.clear();
  cfg.token = "static-kubeconfig-token-0123456789";
  auto server = serve(echoAuthorization(401, "Unauthorized"));
  auto api = clientFor(*server, oneShot(), cfg);
  auto got = makeSecretStore(*api, kNamespace, "s")->get();
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().http_status, 401);
  EXPECT_NE(got.error().message.find("Bearer [REDACTED]"), std::string::npos)
      << got.error().message;
  EXPECT_EQ(got.error().message.find("static-kubeconfig-token"), std::string::npos)
      << got.error().message;
}

TEST_F(HostileServerTest, ATokenFileWithCrLfIsRefusedAndNothingIsInjected) {
  writeTokenFile("good-token\r\nImpersonate-User: system:admin");
  auto server = serve(echoAuthorization(200, "OK"));
  auto api = clientFor(*server, oneShot());
  auto got = api->request("GET", kPath, "secrets");
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message.find("the bearer token from the token file " + token_file_ +
                                     " holds a carriage return (CR) at byte 11, which cannot be "
                                     "sent in an HTTP header"),
            std::string::npos)
      << got.error().message;
  for (const auto& head : server->requestHeads()) {
    EXPECT_EQ(head.find("Impersonate-User"), std::string::npos) << head;
  }
}

TEST_F(HostileServerTest, ATokenFileThatGainsALineFeedOnRereadKeepsTheGoodToken) {
  auto server = serve(echoAuthorization(200, "OK"));
  ClientOptions opts = oneShot();
  opts.token_refresh = std::chrono::seconds(0);  // re-read before every request
  auto api = clientFor(*server, opts);
  ASSERT_TRUE(api->request("GET", kPath, "secrets").ok());
  writeTokenFile(std::string(kAgentToken) + "\nImpersonate-User: system:admin");
  auto again = api->request("GET", kPath, "secrets");
  ASSERT_TRUE(again.ok()) << again.error().message;
  const auto heads = server->requestHeads();
  ASSERT_EQ(heads.size(), 2u);
  EXPECT_EQ(heads[1].find("Impersonate-User"), std::string::npos) << heads[1];
  EXPECT_NE(heads[1].find(std::string("Authorization: Bearer ") + kAgentToken + "\r\n"),
            std::string::npos)
      << heads[1];
}

}  // namespace
}  // namespace tsk::k8s::testing
