// tsbus-sim speaks the LocalAPI the way tailscaled does: checked over real sockets with raw
// requests and with BusClient.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "tests/integration/watcher/test_support.h"
#include "tools/statusgen/statusgen.h"
#include "tools/tsbus-sim/bus_sim.h"
#include "tools/tsbus-sim/control_server.h"
#include "watcher/bus_client.h"

namespace tsk::tsbus_sim {
namespace {

using testing::eventually;
using testing::readLines;
using testing::TempDir;
using watcher::BusClient;
using watcher::BusClientOptions;

bool contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

// Sends `request` on a fresh connection to `fd_connect` and reads until the server closes.
std::string exchange(int fd, const std::string& request) {
  std::string response;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return response;
  }
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return response;
}

std::string unixExchange(const std::string& path, const std::string& request) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "connect failed";
  }
  return exchange(fd, request);
}

std::string tcpExchange(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "connect failed";
  }
  return exchange(fd, request);
}

class TsbusSimTest : public ::testing::Test {
 protected:
  void start(SimOptions o = {}) {
    o.socket_path = dir_.file("tailscaled.sock");
    if (o.peers == SimOptions{}.peers) o.peers = 4;
    sim_ = std::make_unique<BusSim>(o);
    ASSERT_TRUE(sim_->start().ok());
  }
  std::string raw(const std::string& target, const std::string& extra_headers = "",
                  const std::string& host = "local-tailscaled.sock") {
    return unixExchange(sim_->socketPath(), "GET " + target + " HTTP/1.1\r\nHost: " + host +
                                                "\r\n" + extra_headers +
                                                "Connection: close\r\n\r\n");
  }
  std::unique_ptr<BusClient> watch(uint64_t mask) {
    BusClientOptions o;
    o.socket_path = sim_->socketPath();
    auto c = std::make_unique<BusClient>(o);
    auto head = c->openWatch(mask);
    EXPECT_TRUE(head.ok()) << head.error().message;
    return c;
  }

  TempDir dir_;
  std::unique_ptr<BusSim> sim_;
};

TEST_F(TsbusSimTest, RejectsAForeignHostWith403) {
  start();
  const std::string r = raw("/localapi/v0/watch-ipn-bus?mask=16384", "", "evil.example.com");
  EXPECT_TRUE(contains(r, "HTTP/1.1 403 Forbidden\r\n")) << r;
  EXPECT_TRUE(contains(r, "\r\n\r\ninvalid localapi request\n")) << r;
}

TEST_F(TsbusSimTest, RejectsOriginAndRefererWith403) {
  start();
  EXPECT_TRUE(contains(raw("/localapi/v0/status", "Origin: http://x\r\n"), " 403 "));
  EXPECT_TRUE(contains(raw("/localapi/v0/status", "Referer: http://x/\r\n"), " 403 "));
  EXPECT_TRUE(contains(raw("/localapi/v0/status", "Origin: \r\n"), " 200 "));  // empty is fine
}

TEST_F(TsbusSimTest, RequiresAHostHeaderLikeGo) {
  start();
  const std::string r =
      unixExchange(sim_->socketPath(), "GET /localapi/v0/status HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(contains(r, "400 Bad Request: missing required Host header")) << r;
}

TEST_F(TsbusSimTest, Answers404ForUnknownPaths) {
  start();
  const std::string r = raw("/localapi/v0/no-such-thing");
  EXPECT_TRUE(contains(r, "HTTP/1.1 404 Not Found\r\n")) << r;
  EXPECT_TRUE(contains(r, "Tailscale-Version: ")) << r;
  EXPECT_TRUE(contains(r, "404 page not found\n")) << r;
}

TEST_F(TsbusSimTest, RejectsNonDecimalMasksWithBadMask) {
  start();
  for (const char* mask : {"0x4000", "-1", "abc", "18446744073709551616"}) {
    const std::string r = raw(std::string("/localapi/v0/watch-ipn-bus?mask=") + mask);
    EXPECT_TRUE(contains(r, "HTTP/1.1 400 Bad Request\r\n")) << mask;
    EXPECT_TRUE(contains(r, "\r\n\r\nbad mask\n")) << mask << ": " << r;
  }
}

TEST_F(TsbusSimTest, RejectsRateLimitWithNewStyleBitsNamingThem) {
  start();
  const std::string r =
      raw("/localapi/v0/watch-ipn-bus?mask=" + std::to_string(256 | 4096 | 16384));
  EXPECT_TRUE(contains(r,
                       "NotifyRateLimit is incompatible with new-style IPN bus subscription "
                       "bits (ipn.NotifyPeerChanges | ipn.NotifyInitialStatus)\n"))
      << r;
}

TEST_F(TsbusSimTest, AcceptsRateLimitCombinationsInTEraMode) {
  SimOptions o;
  o.h_era = false;
  start(o);
  auto c = watch(256 | 16384);
  const auto lines = readLines(*c, 1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_FALSE(contains(lines[0], "\"NodeID\""));  // a T-era PeerStatus has no NodeID
  EXPECT_TRUE(contains(lines[0], statusgen::kVersionT));
}

TEST_F(TsbusSimTest, StreamsWatchResponsesChunkedWithGoHeaders) {
  start();
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, sim_->socketPath().c_str(), sim_->socketPath().size());
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string req = BusClient::requestFor("/localapi/v0/watch-ipn-bus?mask=16384");
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  std::string got;
  char buf[4096];
  while (!contains(got, "\r\n\r\n")) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  const std::string head = got.substr(0, got.find("\r\n\r\n"));
  EXPECT_EQ(head.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << head;
  for (const char* h : {"Content-Type: application/json", "Transfer-Encoding: chunked",
                        "Tailscale-Version: ", "Tailscale-Cap: ", "X-Frame-Options: DENY",
                        "X-Content-Type-Options: nosniff", "Content-Security-Policy: ", "Date: "}) {
    EXPECT_TRUE(contains(head, h)) << h;
  }
  EXPECT_FALSE(contains(head, "Content-Length"));
}

TEST_F(TsbusSimTest, InitialStateAddsSessionIdAndTheCurrentState) {
  start();
  sim_->setState(4);
  auto c = watch(2 | 16384);
  const auto lines = readLines(*c, 1);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_TRUE(contains(lines[0], "\"SessionID\":\"")) << lines[0].substr(0, 200);
  EXPECT_TRUE(contains(lines[0], "\"State\":4,")) << lines[0].substr(0, 200);
  EXPECT_TRUE(contains(lines[0], "\"BackendState\":\"Stopped\""));

  auto plain = watch(16384);
  const auto plain_lines = readLines(*plain, 1);
  ASSERT_EQ(plain_lines.size(), 1u);
  EXPECT_FALSE(contains(plain_lines[0], "SessionID"));
  EXPECT_TRUE(contains(plain_lines[0], "\"State\":null,"));
}

TEST_F(TsbusSimTest, FiltersPeerDeltasPerMask) {
  start();
  auto plain = watch(16384);
  auto changes = watch(16384 | 4096);
  auto patches = watch(16384 | 32768);
  for (auto* c : {plain.get(), changes.get(), patches.get()})
    ASSERT_EQ(readLines(*c, 1).size(), 1u);
  ASSERT_TRUE(eventually([&] { return sim_->watcherCount() == 3; }));
  sim_->patch(1);
  sim_->churn(1);  // PeersRemoved then PeersChanged

  const auto p = readLines(*plain, 3);
  ASSERT_EQ(p.size(), 3u);
  for (const auto& line : p) {  // blanks: docs/PROTOCOL.md#blank-messages
    EXPECT_EQ(line + "\n", statusgen::blankLine(statusgen::kVersionH));
  }
  const auto c = readLines(*changes, 3);
  ASSERT_EQ(c.size(), 3u);
  // The patch, promoted (docs/PROTOCOL.md#peer-deltas).
  EXPECT_TRUE(contains(c[0], "\"PeersChanged\":[{"));
  EXPECT_FALSE(contains(c[0], "PeerChangedPatch"));
  EXPECT_TRUE(contains(c[1], "\"PeersRemoved\":["));
  EXPECT_TRUE(contains(c[2], "\"PeersChanged\":[{"));
  const auto x = readLines(*patches, 3);
  ASSERT_EQ(x.size(), 3u);
  EXPECT_TRUE(contains(x[0], "\"PeerChangedPatch\":[{"));
  EXPECT_TRUE(contains(x[1], "\"PeersRemoved\":["));
}

TEST_F(TsbusSimTest, SaysWhetherAFellBehindCloseFoundTheSocketFull) {
  // A watcher that stops reading: the socket fills, then the queue, then the close; the
  // consumer's lag, not the simulator's writer's.
  start();
  auto stalled = watch(16384);
  ASSERT_EQ(readLines(*stalled, 1).size(), 1u);
  sim_->pace(2'000, "blank", 1'000);  // more than the socket (~280 blank lines) and 128
  ASSERT_TRUE(eventually([&] { return sim_->stats().closed_slow == 1; }));
  EXPECT_EQ(sim_->stats().closed_slow_writer_lag, 0u);
  sim_->pace(0, "blank", 0);  // the rest of the pace is not for the next watcher
  stalled.reset();
  // A flood queues 200 lines at once, faster than any writer: the close finds room.
  auto flooded = watch(16384);
  ASSERT_EQ(readLines(*flooded, 1).size(), 1u);
  sim_->flood(200);
  ASSERT_TRUE(eventually([&] { return sim_->stats().closed_slow == 2; }));
  EXPECT_EQ(sim_->stats().closed_slow_writer_lag, 1u);
}

TEST_F(TsbusSimTest, DropsSilentlyForASlowWatcherInTEraMode) {
  SimOptions o;
  o.h_era = false;
  start(o);
  auto c = watch(16384);
  ASSERT_EQ(readLines(*c, 1).size(), 1u);
  sim_->flood(200);
  // The queue took 128 of the 200; the rest were dropped without a word, and the watch goes on.
  EXPECT_EQ(readLines(*c, 128).size(), 128u);
  const auto s = sim_->stats();
  EXPECT_EQ(s.closed_slow, 0u);
  EXPECT_EQ(s.dropped_slow, 72u);
  sim_->setState(4);
  const auto next = readLines(*c, 1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_TRUE(contains(next[0], "\"State\":4"));
}

TEST_F(TsbusSimTest, PacesExactlyCountLinesOfTheKindAskedFor) {
  start();
  auto c = watch(16384);
  ASSERT_EQ(readLines(*c, 1).size(), 1u);
  ASSERT_TRUE(eventually([&] { return sim_->watcherCount() == 1; }));
  sim_->pace(2000, "selfchange", 5);
  const auto sc = readLines(*c, 5);
  ASSERT_EQ(sc.size(), 5u);
  for (const auto& line : sc) EXPECT_TRUE(contains(line, "\"SelfChange\":{")) << line;
  ASSERT_TRUE(eventually([&] { return sim_->stats().pace_left == 0; }));
  sim_->pace(2000, "blank", 3);
  const auto b = readLines(*c, 3);
  ASSERT_EQ(b.size(), 3u);
  for (const auto& line : b) EXPECT_EQ(line + "\n", statusgen::blankLine(statusgen::kVersionH));
  ASSERT_TRUE(eventually([&] { return sim_->stats().pace_left == 0; }));
  const auto s = sim_->stats();
  EXPECT_EQ(s.pace_sent, 8u);
  EXPECT_EQ(s.pace_rate, 0.0);  // nothing left: no pace running
  // A marker sent after the pace is the next line: the pace sent no more than it was asked.
  sim_->setState(4);
  const auto next = readLines(*c, 1);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_TRUE(contains(next[0], "\"State\":4")) << next[0];
}

TEST_F(TsbusSimTest, ControlServerRefusesAnUnknownPaceKind) {
  start();
  ControlServer control(*sim_);
  auto port = control.start("127.0.0.1", 0);
  ASSERT_TRUE(port.ok()) << port.error().message;
  const std::string bad = tcpExchange(
      *port, "POST /pace?rate=10&kind=peers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(contains(bad, "HTTP/1.1 400")) << bad;
  EXPECT_TRUE(contains(bad, "kind must be 'blank' or 'selfchange'")) << bad;
  EXPECT_EQ(sim_->stats().pace_sent, 0u);
  control.stop();
}

TEST_F(TsbusSimTest, ControlServerTakesBodilessPostsLikeCurl) {
  start();
  ControlServer control(*sim_);
  auto port = control.start("127.0.0.1", 0);
  ASSERT_TRUE(port.ok()) << port.error().message;
  // `curl -XPOST url` sends no Content-Length at all.
  const std::string r =
      tcpExchange(*port, "POST /state?value=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(contains(r, "HTTP/1.1 200")) << r;
  EXPECT_EQ(sim_->stats().state, 3);
  const std::string bad =
      tcpExchange(*port, "POST /blank?count=x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(contains(bad, "HTTP/1.1 400")) << bad;
  EXPECT_TRUE(contains(bad, "parameter 'count' must be a non-negative integer")) << bad;
  const std::string body = "{\"name\":\"renamed.tail3f9a2c.ts.net.\"}";
  const std::string sc = tcpExchange(
      *port, "POST /selfchange HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_TRUE(contains(sc, "\"name\":\"renamed.tail3f9a2c.ts.net.\"")) << sc;
  const std::string stats =
      tcpExchange(*port, "GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(contains(stats, "\"watchers\":0")) << stats;
  control.stop();
}

std::vector<nlohmann::json> readJson(BusClient& c, size_t n) {
  std::vector<nlohmann::json> out;
  for (const auto& l : readLines(c, n)) out.push_back(nlohmann::json::parse(l));
  return out;
}

std::vector<int64_t> peerIds(const nlohmann::json& j) {
  std::vector<int64_t> ids;
  for (const auto& n : j.at("PeersChanged")) ids.push_back(n.at("ID").get<int64_t>());
  return ids;
}

// docs/PROTOCOL.md#peer-deltas: the full-netmap resend.
TEST_F(TsbusSimTest, FullNetmapCarriesEveryPeerToPeerWatchersAndProfilesOncePerWatch) {
  SimOptions o;
  o.peers = 4;
  o.full_netmap = true;
  start(o);
  auto plain = watch(16384);
  auto changes = watch(16384 | 4096);
  auto patches = watch(16384 | 32768);
  for (auto* c : {plain.get(), changes.get(), patches.get()}) {
    ASSERT_EQ(readLines(*c, 1).size(), 1u);
  }
  ASSERT_TRUE(eventually([&] { return sim_->watcherCount() == 3; }));
  sim_->selfChange();  // a full netmap in this mode
  sim_->fullNetmap();
  sim_->userProfiles();
  sim_->setFullNetmap(false);
  sim_->selfChange();  // SelfChange alone again

  std::vector<int64_t> all;
  for (uint64_t i = 0; i < 4; ++i) all.push_back(statusgen::peerAt(i).node_id);
  for (auto* c : {changes.get(), patches.get()}) {
    const auto l = readJson(*c, 4);
    ASSERT_EQ(l.size(), 4u);
    EXPECT_TRUE(l[0].at("SelfChange").is_object());
    EXPECT_EQ(peerIds(l[0]), all);
    ASSERT_TRUE(l[0].contains("UserProfiles"));  // the first full netmap of the watch
    EXPECT_FALSE(l[0].at("UserProfiles").empty());
    EXPECT_EQ(peerIds(l[1]), all);
    EXPECT_FALSE(l[1].contains("UserProfiles"));  // each profile once per watch
    EXPECT_FALSE(l[2].contains("SelfChange"));
    EXPECT_FALSE(l[2].at("UserProfiles").empty());
    EXPECT_TRUE(l[3].at("SelfChange").is_object());
    EXPECT_FALSE(l[3].contains("PeersChanged"));
  }
  const auto p = readJson(*plain, 4);
  ASSERT_EQ(p.size(), 4u);
  for (size_t i : {0, 1, 3}) {
    EXPECT_TRUE(p[i].at("SelfChange").is_object()) << i;
    EXPECT_FALSE(p[i].contains("PeersChanged")) << i;
    EXPECT_FALSE(p[i].contains("UserProfiles")) << i;
  }
  EXPECT_EQ(p[2], nlohmann::json::parse(statusgen::blankLine(statusgen::kVersionH)));
  ASSERT_TRUE(eventually([&] { return sim_->stats().sent["full_netmap"] == 4; }));
}

TEST_F(TsbusSimTest, FullNetmapWithoutPeersGivesEveryWatcherAnEmptyPeersChanged) {
  SimOptions o;
  o.peers = 0;
  start(o);
  auto plain = watch(16384);
  auto changes = watch(16384 | 4096);
  for (auto* c : {plain.get(), changes.get()}) ASSERT_EQ(readLines(*c, 1).size(), 1u);
  ASSERT_TRUE(eventually([&] { return sim_->watcherCount() == 2; }));
  sim_->fullNetmap();
  const auto p = readJson(*plain, 1);
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].at("PeersChanged"), nlohmann::json::array());  // as 01.mask16384 shows
  EXPECT_FALSE(p[0].contains("UserProfiles"));
  const auto c = readJson(*changes, 1);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].at("PeersChanged"), nlohmann::json::array());
  EXPECT_TRUE(c[0].contains("UserProfiles"));

  changes.reset();  // no peer-bit watcher left: no peer list at all (as 02 shows)
  ASSERT_TRUE(eventually([&] { return sim_->watcherCount() == 1; }));
  sim_->fullNetmap();
  const auto q = readJson(*plain, 1);
  ASSERT_EQ(q.size(), 1u);
  EXPECT_TRUE(q[0].at("SelfChange").is_object());
  EXPECT_FALSE(q[0].contains("PeersChanged"));
}

TEST_F(TsbusSimTest, SendsPrefsLoginFinishedAndDriveSharesToEveryWatcher) {
  start();
  auto plain = watch(16384);
  auto changes = watch(16384 | 4096);
  for (auto* c : {plain.get(), changes.get()}) ASSERT_EQ(readLines(*c, 1).size(), 1u);
  ASSERT_TRUE(eventually([&] { return sim_->watcherCount() == 2; }));
  sim_->prefs(false);
  sim_->loginFinished();
  sim_->prefs(true);
  sim_->driveShares();
  for (auto* c : {plain.get(), changes.get()}) {
    const auto l = readJson(*c, 4);
    ASSERT_EQ(l.size(), 4u);
    EXPECT_TRUE(l[0].at("Prefs").at("LoggedOut").get<bool>());
    EXPECT_TRUE(l[0].at("Prefs").at("Config").is_null());
    EXPECT_EQ(l[1].at("LoginFinished"), nlohmann::json::object());
    EXPECT_TRUE(l[2].at("Prefs").at("WantRunning").get<bool>());
    EXPECT_EQ(l[2].at("Prefs").at("Config").at("NodeID"), "nSdcr7Qx2CNTRL");
    EXPECT_EQ(l[3].at("DriveShares"), nlohmann::json::array());
  }
}

TEST_F(TsbusSimTest, ControlServerSendsTheLineKindsTheAgentIgnores) {
  start();
  ControlServer control(*sim_);
  auto port = control.start("127.0.0.1", 0);
  ASSERT_TRUE(port.ok()) << port.error().message;
  auto plain = watch(16384);
  ASSERT_EQ(readLines(*plain, 1).size(), 1u);
  ASSERT_TRUE(eventually([&] { return sim_->watcherCount() == 1; }));
  const auto post = [&](const std::string& target) {
    return tcpExchange(*port,
                       "POST " + target + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  };
  for (const char* t : {"/prefs?logged_in=0", "/login-finished", "/drive-shares", "/user-profiles",
                        "/full-netmap-mode?on=1", "/full-netmap"}) {
    const std::string r = post(t);
    EXPECT_TRUE(contains(r, "HTTP/1.1 200")) << t << ": " << r;
  }
  EXPECT_TRUE(contains(post("/full-netmap-mode"), "missing parameter 'on'"));
  EXPECT_TRUE(sim_->stats().full_netmap);
  EXPECT_TRUE(contains(post("/prefs?logged_in=maybe"), "HTTP/1.1 400"));
  const auto l = readJson(*plain, 5);
  ASSERT_EQ(l.size(), 5u);
  EXPECT_TRUE(l[0].at("Prefs").is_object());
  EXPECT_TRUE(l[1].at("LoginFinished").is_object());
  EXPECT_TRUE(l[2].at("DriveShares").is_array());
  EXPECT_EQ(l[3],
            nlohmann::json::parse(statusgen::blankLine(statusgen::kVersionH)));  // user profiles
  EXPECT_TRUE(l[4].at("SelfChange").is_object());  // no peer watcher: SelfChange alone
  EXPECT_FALSE(l[4].contains("PeersChanged"));
  control.stop();
}

}  // namespace
}  // namespace tsk::tsbus_sim
