// BusClient against tsbus-sim (and bare sockets) over real unix sockets.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "tests/integration/watcher/test_support.h"
#include "tools/statusgen/statusgen.h"
#include "tools/tsbus-sim/bus_sim.h"
#include "watcher/bus_client.h"
#include "watcher/notify_parser.h"
#include "watcher/status_json.h"

namespace tsk::watcher {
namespace {

using testing::eventually;
using testing::readLines;
using testing::TempDir;
using tsbus_sim::BusSim;
using tsbus_sim::SimOptions;

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

class BusClientTest : public ::testing::Test {
 protected:
  void startSim(uint64_t peers = 5, bool h_era = true) {
    SimOptions o;
    o.socket_path = dir_.file("tailscaled.sock");
    o.peers = peers;
    o.h_era = h_era;
    sim_ = std::make_unique<BusSim>(o);
    ASSERT_TRUE(sim_->start().ok());
  }
  BusClientOptions clientOptions() const {
    BusClientOptions o;
    o.socket_path = dir_.file("tailscaled.sock");
    return o;
  }

  TempDir dir_;
  std::unique_ptr<BusSim> sim_;
};

TEST(BusClientRequest, IsExactlyWhatTailscaledExpects) {
  EXPECT_EQ(BusClient::requestFor("/localapi/v0/watch-ipn-bus?mask=16384"),
            "GET /localapi/v0/watch-ipn-bus?mask=16384 HTTP/1.1\r\n"
            "Host: local-tailscaled.sock\r\n"
            "Tailscale-Cap: 138\r\n\r\n");
}

TEST_F(BusClientTest, StreamsTheInitialStatusByteForByte) {
  startSim(40);
  BusClient client(clientOptions());
  auto head = client.openWatch(16384);
  ASSERT_TRUE(head.ok()) << head.error().message;
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->tailscale_version, statusgen::kVersionH);
  EXPECT_EQ(head->content_type, "application/json");
  const auto lines = readLines(client, 1);
  ASSERT_EQ(lines.size(), 1u);
  statusgen::InitialStatusOptions o;
  o.peers = 40;
  o.version = std::string(statusgen::kVersionH);
  EXPECT_EQ(lines[0] + "\n", statusgen::initialStatusLine(o));
}

TEST_F(BusClientTest, ReportsABadMaskWithTheStatusAndBodyText) {
  startSim();
  BusClient client(clientOptions());
  auto r =
      client.get("/localapi/v0/watch-ipn-bus?mask=0x4000", [](std::string_view) { return true; });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().http_status, 400);
  EXPECT_TRUE(contains(r.error().message, "400 bad mask")) << r.error().message;
}

TEST_F(BusClientTest, ReportsARejectedMaskClearly) {
  startSim();
  BusClient client(clientOptions());
  auto r = client.openWatch(256 | 16384);  // NotifyRateLimit with InitialStatus: H says no
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().http_status, 400);
  EXPECT_TRUE(contains(r.error().message,
                       "tailscaled rejected the watch request: 400 NotifyRateLimit is "
                       "incompatible with new-style IPN bus subscription bits "
                       "ipn.NotifyInitialStatus"))
      << r.error().message;
}

TEST_F(BusClientTest, ReportsAccessDeniedWithAHint) {
  startSim();
  sim_->failWatches(403, "watch ipn bus access denied");
  BusClient client(clientOptions());
  auto r = client.openWatch(16384);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().http_status, 403);
  EXPECT_TRUE(contains(r.error().message,
                       "tailscaled rejected the watch request: 403 watch ipn bus access denied"))
      << r.error().message;
  EXPECT_TRUE(contains(r.error().message, "allowed to read the LocalAPI")) << r.error().message;
}

TEST_F(BusClientTest, ReportsAMissingSocket) {
  BusClient client(clientOptions());
  auto r = client.openWatch(16384);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error().message, "does not exist")) << r.error().message;
  EXPECT_TRUE(contains(r.error().message, dir_.file("tailscaled.sock"))) << r.error().message;
}

TEST_F(BusClientTest, ReportsARefusedConnection) {
  // A socket file that nothing listens on: what a dying tailscaled leaves behind.
  const std::string path = dir_.file("tailscaled.sock");
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  BusClient client(clientOptions());
  auto r = client.openWatch(16384);
  ::close(fd);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error().message, "connection refused")) << r.error().message;
}

TEST_F(BusClientTest, EndsTheSessionAtTheZeroChunkThoughTheConnectionStaysOpen) {
  startSim();
  BusClient client(clientOptions());
  ASSERT_TRUE(client.openWatch(16384).ok());
  ASSERT_EQ(readLines(client, 1).size(), 1u);  // the InitialStatus
  sim_->flood(200);                            // more than the 128-slot queue
  BodyEnd end;
  const auto lines = readLines(client, 1000, &end);
  EXPECT_EQ(end.kind, BodyEndKind::Complete) << end.message;
  ASSERT_FALSE(lines.empty());
  EXPECT_TRUE(contains(lines.back(), statusgen::kFellBehindMessage)) << lines.back();
  EXPECT_EQ(sim_->stats().closed_slow, 1u);
}

TEST_F(BusClientTest, GetsTheStatusWithoutPeers) {
  startSim(1000);
  BusClient client(clientOptions());
  std::string body;
  auto head = client.get("/localapi/v0/status?peers=false", [&](std::string_view b) {
    body.append(b);
    return true;
  });
  ASSERT_TRUE(head.ok()) << head.error().message;
  EXPECT_TRUE(contains(body, "\n\t\"BackendState\": \"Running\"")) << body.substr(0, 200);
  std::string error;
  const auto st = parseStatusJson(body, &error);
  ASSERT_TRUE(st.has_value()) << error;
  ASSERT_TRUE(st->self.has_value());
  EXPECT_EQ(st->self->name, "demo-sidecar-0.tail3f9a2c.ts.net.");
  EXPECT_EQ(st->peers_total, 0u);
}

TEST_F(BusClientTest, BoundsAOneShotBody) {
  startSim(200);
  BusClient client(clientOptions());
  auto r = client.get(
      "/localapi/v0/status", [](std::string_view) { return true; }, 10'000);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.error().message, "larger than 10000 bytes")) << r.error().message;
}

TEST_F(BusClientTest, StopInterruptsABlockedRead) {
  startSim();
  BusClient client(clientOptions());
  ASSERT_TRUE(client.openWatch(16384).ok());
  ASSERT_EQ(readLines(client, 1).size(), 1u);
  auto reading = std::async(std::launch::async,
                            [&] { return client.readBody([](std::string_view) { return true; }); });
  client.stop();  // whether readBody is already blocked or not, it must return
  ASSERT_EQ(reading.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_EQ(reading.get().kind, BodyEndKind::Stopped);
  EXPECT_FALSE(client.openWatch(16384).ok());  // stop() is permanent
}

// The state letter of a thread of this process (/proc/self/task/TID/stat): 'S' = asleep.
char threadState(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
}

TEST_F(BusClientTest, StopWakesAReadAsleepInTheKernel) {
  // The watch body is read with blocking recv()s (one syscall per wakeup); stop() must still
  // wake a reader that is asleep inside recv(), not only one about to poll.
  startSim();
  BusClient client(clientOptions());
  ASSERT_TRUE(client.openWatch(16384).ok());
  ASSERT_EQ(readLines(client, 1).size(), 1u);
  std::atomic<pid_t> tid{0};
  auto reading = std::async(std::launch::async, [&] {
    tid = static_cast<pid_t>(::syscall(SYS_gettid));
    return client.readBody([](std::string_view) { return true; });
  });
  // Asleep twice in a row, well apart: in recv() on the silent bus.
  ASSERT_TRUE(eventually([&] {
    if (tid == 0 || threadState(tid) != 'S') return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return threadState(tid) == 'S';
  }));
  ASSERT_NE(reading.wait_for(std::chrono::milliseconds(0)), std::future_status::ready);
  client.stop();
  ASSERT_EQ(reading.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  const BodyEnd end = reading.get();
  EXPECT_EQ(end.kind, BodyEndKind::Stopped) << end.message;
}

TEST_F(BusClientTest, StopAfterCloseLeavesAReusedDescriptorAlone) {
  // stop() shuts down the watch socket only while it is open: a later socket that got the same
  // descriptor number after close() must keep working.
  startSim();
  BusClient client(clientOptions());
  ASSERT_TRUE(client.openWatch(16384).ok());
  ASSERT_EQ(readLines(client, 1).size(), 1u);  // the socket is in blocking mode now
  client.close();
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  client.stop();
  ASSERT_EQ(::send(pair[0], "x", 1, MSG_NOSIGNAL), 1);
  char c = 0;
  EXPECT_EQ(::recv(pair[1], &c, 1, 0), 1);
  EXPECT_EQ(::send(pair[1], "y", 1, MSG_NOSIGNAL), 1);
  EXPECT_EQ(::recv(pair[0], &c, 1, 0), 1);
  EXPECT_EQ(c, 'y');
  ::close(pair[0]);
  ::close(pair[1]);
}

TEST_F(BusClientTest, ReadsEveryLineSentOnItsOwnWrite) {
  // tailscaled flushes each Notify on its own: lines arrive one recv() at a time.
  startSim();
  BusClient client(clientOptions());
  ASSERT_TRUE(client.openWatch(16384).ok());
  ASSERT_EQ(readLines(client, 1).size(), 1u);
  sim_->pace(2000, "blank", 200);
  const auto lines = readLines(client, 200);
  ASSERT_EQ(lines.size(), 200u);
  for (const auto& line : lines) {
    EXPECT_EQ(line + "\n", statusgen::blankLine(statusgen::kVersionH));
  }
  EXPECT_EQ(sim_->stats().closed_slow, 0u);
}

// Reads the open watch until `n` lines arrived; counts the recv()s that brought them.
struct Counted {
  uint64_t lines = 0;
  uint64_t reads = 0;
  BodyEnd end;
};
Counted countLines(BusClient& client, uint64_t n) {
  Counted r;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, std::chrono::seconds(60), [&] { return done; })) client.stop();
  });
  const uint64_t reads0 = client.watchReads();
  r.end = client.readBody([&](std::string_view bytes) {
    r.lines += static_cast<uint64_t>(std::count(bytes.begin(), bytes.end(), '\n'));
    return r.lines < n;
  });
  {
    std::lock_guard lock(mu);
    done = true;
  }
  cv.notify_all();
  watchdog.join();
  r.reads = client.watchReads() - reads0;
  return r;
}

TEST_F(BusClientTest, APacedReadWithTheLargestDelayGathersLinesWithoutAFellBehindClose) {
  // 10k lines/s, one write each, against tailscaled's queue of 128, with the largest read delay
  // bound the agent accepts: lines gather in the socket between reads (far fewer reads than
  // lines) and all 10,000 are read without a fell-behind close. That no rate can fill the queue
  // during a delay (50k/s and a jump from 1k/s to 50k/s included) is shown on the pacer's own
  // clock by ReadPacerModel.BatchesBusyStreamsAndNeverLetsTheQueueFill; here, real sockets at a
  // rate a loaded 2-core machine sustains. A stall of the simulator's writer thread or of this
  // reader on a busy machine can still get one watch closed with or without a read delay; such
  // an attempt is repeated, a few times at most.
  startSim();
  BusClientOptions o = clientOptions();
  o.max_read_delay = kMaxReadDelayLimit;
  BusClient client(o);
  constexpr uint64_t kLines = 10'000;
  bool read_all = false;
  for (int attempt = 0; attempt < 5 && !read_all; ++attempt) {
    const uint64_t closed0 = sim_->stats().closed_slow;
    ASSERT_TRUE(client.openWatch(16384).ok());
    ASSERT_EQ(readLines(client, 1).size(), 1u);
    sim_->pace(10'000, "blank", kLines);
    const Counted got = countLines(client, kLines);
    client.close();
    if (got.lines == kLines) {
      read_all = true;
      EXPECT_EQ(sim_->stats().closed_slow, closed0);
      // The delay did gather lines: far fewer reads than lines.
      EXPECT_LT(got.reads, kLines / 4);
    } else {
      // Only a fell-behind close may cut the body short.
      EXPECT_GT(sim_->stats().closed_slow, closed0) << got.end.message;
      sim_->pace(0, "blank", 0);
    }
  }
  EXPECT_TRUE(read_all) << "every attempt was closed as fell-behind";
}

TEST_F(BusClientTest, WithoutAReadDelayEveryLineIsStillRead) {
  // max_read_delay 0 switches pacing off; the body is read the same.
  startSim();
  BusClientOptions o = clientOptions();
  o.max_read_delay = std::chrono::microseconds(0);
  BusClient client(o);
  ASSERT_TRUE(client.openWatch(16384).ok());
  ASSERT_EQ(readLines(client, 1).size(), 1u);
  sim_->pace(2000, "selfchange", 200);
  const Counted got = countLines(client, 200);
  EXPECT_EQ(got.lines, 200u);
  EXPECT_EQ(sim_->stats().closed_slow, 0u);
}

TEST_F(BusClientTest, StopEndsAPacedRead) {
  // While lines flow fast the reader alternates read delays and recv()s; stop() must end it
  // either way (a delay waits on the stop eventfd, a recv() is shut down).
  startSim();
  BusClientOptions o = clientOptions();
  o.max_read_delay = kMaxReadDelayLimit;
  BusClient client(o);
  ASSERT_TRUE(client.openWatch(16384).ok());
  ASSERT_EQ(readLines(client, 1).size(), 1u);
  sim_->pace(20'000, "blank", 1'000'000);
  std::atomic<uint64_t> lines{0};
  auto reading = std::async(std::launch::async, [&] {
    return client.readBody([&](std::string_view bytes) {
      lines += static_cast<uint64_t>(std::count(bytes.begin(), bytes.end(), '\n'));
      return true;
    });
  });
  ASSERT_TRUE(eventually([&] { return lines.load() >= 2'000; }));
  client.stop();
  ASSERT_EQ(reading.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  EXPECT_EQ(reading.get().kind, BodyEndKind::Stopped);
  sim_->pace(0, "blank", 0);
}

}  // namespace
}  // namespace tsk::watcher
