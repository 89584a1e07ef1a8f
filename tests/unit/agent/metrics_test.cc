#include "agent/metrics.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

#include "agent/admin_server.h"
#include "common/text.h"

namespace tsk::agent {
namespace {

watcher::NodeState sampleState() {
  watcher::NodeState st;
  st.connected = true;
  st.synced = true;
  st.state = watcher::BackendState::Running;
  st.peers_known = true;
  st.peers_total = 42;
  st.peers_online = 17;
  st.daemon_version = "1.90.0-t1234";
  watcher::SelfNode self;
  self.stable_id = "n1";
  self.name = "a.b.ts.net.";
  self.addresses = {"100.64.0.1"};
  self.key_expiry = "2026-05-24T10:00:00Z";
  st.self = self;
  return st;
}

AgentMetrics::Sources sampleSources() {
  return {
      .watcher_stats =
          [] {
            watcher::WatcherStats s;
            s.notifies_by_kind[0] = 5;
            s.notifies_by_kind[2] = 3;
            s.bytes_read = 12345;
            s.lines = 9;
            s.connects = 3;
            s.self_changes = 2;
            return s;
          },
      .node_state = [] { return sampleState(); },
      .targets =
          [] {
            TargetStatus t;
            t.label = "secret";
            t.object = "secret ns/tailscale";
            t.in_sync = true;
            t.written = 4;
            t.unchanged = 1;
            t.last_write = Clock::Wall(std::chrono::seconds(1'800'000'000));
            t.last_in_sync = Clock::Wall(std::chrono::seconds(1'800'000'060));
            t.foreign_keys = {{"device_fqdn", {"containerboot"}}};
            return std::vector<TargetStatus>{t};
          },
  };
}

// Runs promtool on `text`; returns its exit status and output.
std::pair<int, std::string> promtoolCheck(const std::string& text) {
  char tmpl[] = "/tmp/agent-metrics-XXXXXX";
  const int fd = mkstemp(tmpl);
  EXPECT_GE(fd, 0);
  const std::string path = tmpl;
  ::write(fd, text.data(), text.size());
  ::close(fd);
  const std::string cmd = std::string(TSK_PROMTOOL) + " check metrics < " + path + " 2>&1";
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[512];
  while (p && fgets(buf, sizeof buf, p)) out += buf;
  const int status = p ? pclose(p) : -1;
  std::filesystem::remove(path);
  return {status, out};
}

double sampleValue(const std::string& text, const std::string& series) {
  const auto pos = text.find("\n" + series + " ");
  if (pos == std::string::npos) return -1;
  return std::stod(text.substr(pos + series.size() + 2));
}

TEST(Metrics, EveryRequiredFamilyIsPresent) {
  AgentMetrics m("1.2.3");
  m.setSources(sampleSources());
  m.recordSelfChange(Clock::Wall(std::chrono::seconds(1'800'000'100)));
  m.onRequest("PATCH", "secrets", 200, std::chrono::milliseconds(12));
  m.onRequest("GET", "secrets", 0, std::chrono::milliseconds(5000));
  const std::string text = m.serialize();
  for (const char* name : {"ts_kube_agent_build_info",
                           "ts_kube_agent_notifies_total",
                           "ts_kube_agent_bus_bytes_total",
                           "ts_kube_agent_bus_malformed_lines_total",
                           "ts_kube_agent_bus_oversized_lines_total",
                           "ts_kube_agent_bus_connected",
                           "ts_kube_agent_bus_reconnects_total",
                           "ts_kube_agent_peers",
                           "ts_kube_agent_peers_online",
                           "ts_kube_agent_backend_state",
                           "ts_kube_agent_self_changes_total",
                           "ts_kube_agent_last_self_change_timestamp_seconds",
                           "ts_kube_agent_publishes_total",
                           "ts_kube_agent_identity_in_sync",
                           "ts_kube_agent_foreign_owned_keys",
                           "ts_kube_agent_api_requests_total",
                           "ts_kube_agent_api_request_duration_seconds",
                           "ts_kube_agent_last_successful_write_timestamp_seconds",
                           "ts_kube_agent_last_in_sync_timestamp_seconds",
                           "ts_kube_agent_node_key_expiry_timestamp_seconds",
                           "ts_kube_agent_process_cpu_seconds_total",
                           "ts_kube_agent_process_resident_memory_bytes",
                           "ts_kube_agent_process_open_fds",
                           "ts_kube_agent_process_start_time_seconds"}) {
    EXPECT_NE(text.find(std::string("# TYPE ") + name + " "), std::string::npos) << name;
  }
  EXPECT_NE(text.find(R"(ts_kube_agent_build_info{version="1.2.3"} 1)"), std::string::npos);
  EXPECT_NE(text.find(R"(ts_kube_agent_last_in_sync_timestamp_seconds{target="secret"} )"),
            std::string::npos);
  EXPECT_NE(text.find(R"(ts_kube_agent_foreign_owned_keys{target="secret",key="device_fqdn"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(ts_kube_agent_notifies_total{kind="self_change"} 3)"), std::string::npos);
  EXPECT_NE(text.find(R"(ts_kube_agent_backend_state{state="Running"} 1)"), std::string::npos);
  EXPECT_NE(text.find(R"(ts_kube_agent_publishes_total{target="secret",result="written"} 4)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(ts_kube_agent_api_requests_total{code="error",verb="GET"} 1)"),
            std::string::npos)
      << text;
  EXPECT_EQ(sampleValue(text, "ts_kube_agent_peers"), 42);
  EXPECT_EQ(sampleValue(text, "ts_kube_agent_peers_online"), 17);
  EXPECT_EQ(sampleValue(text, "ts_kube_agent_bus_reconnects_total"), 2);
  EXPECT_EQ(sampleValue(text, "ts_kube_agent_node_key_expiry_timestamp_seconds"), 1779616800);
  EXPECT_GT(sampleValue(text, "ts_kube_agent_process_open_fds"), 0);
  EXPECT_GT(sampleValue(text, "ts_kube_agent_process_resident_memory_bytes"), 0);
}

TEST(Metrics, PromtoolAcceptsTheMetricsEndpoint) {
  if (std::string(TSK_PROMTOOL).empty()) GTEST_SKIP() << "promtool not installed (prometheus)";
  AgentMetrics m;
  m.setSources(sampleSources());
  m.recordSelfChange(Clock::Wall(std::chrono::seconds(1'800'000'100)));
  m.onRequest("PATCH", "secrets", 503, std::chrono::milliseconds(3));
  AdminHandlers handlers;
  handlers.metrics = [&] { return m.serialize(); };
  AdminServer admin(handlers, Logger::null());
  ASSERT_TRUE(admin.start({"127.0.0.1", 0}).ok());
  httplib::Client client("127.0.0.1", admin.port());
  const auto res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  const auto [status, out] = promtoolCheck(res->body);
  EXPECT_EQ(status, 0) << out << "\n--- metrics ---\n" << res->body;
  EXPECT_EQ(out, "") << out;
}

TEST(Metrics, PromtoolAcceptsTheOutputBeforeAnythingHappened) {
  if (std::string(TSK_PROMTOOL).empty()) GTEST_SKIP() << "promtool not installed (prometheus)";
  AgentMetrics m;
  m.setSources({.watcher_stats = [] { return watcher::WatcherStats{}; },
                .node_state = [] { return watcher::NodeState{}; },
                .targets = [] { return std::vector<TargetStatus>{}; }});
  const auto [status, out] = promtoolCheck(m.serialize());
  EXPECT_EQ(status, 0) << out;
}

// A Version (or Tailscale-Version header) with invalid UTF-8 used to become a label value that
// Prometheus rejects, failing the whole scrape.
TEST(Metrics, InvalidUtf8FromTheBusBecomesAValidBoundedLabel) {
  AgentMetrics m;
  AgentMetrics::Sources src;
  src.node_state = [] {
    auto st = sampleState();
    st.daemon_version = "1.80\xff\xfe";
    return st;
  };
  m.setSources(src);
  const std::string text = m.serialize();
  EXPECT_NE(text.find("ts_kube_agent_tailscaled_info{version=\"1.80\xef\xbf\xbd\xef\xbf\xbd\"} 1"),
            std::string::npos)
      << text;
  src.node_state = [] {
    auto st = sampleState();
    st.daemon_version = std::string(5000, 'v');
    return st;
  };
  m.setSources(src);
  const std::string longer = m.serialize();
  const auto at = longer.find("version=\"vvv");
  ASSERT_NE(at, std::string::npos);
  const auto close = longer.find('"', at + 9);
  EXPECT_LE(close - (at + 9), kMaxLabelBytes);
  EXPECT_NE(longer.find("...(5000 bytes)\"}"), std::string::npos);
  if (std::string(TSK_PROMTOOL).empty()) GTEST_SKIP() << "promtool not installed (prometheus)";
  const auto [status, out] = promtoolCheck(text);
  EXPECT_EQ(status, 0) << out << "\n--- metrics ---\n" << text;
}

// Self nodes the reducer refused (not published) are counted by problem, every problem listed.
TEST(Metrics, InvalidSelfNodesAreCountedByProblem) {
  AgentMetrics m;
  AgentMetrics::Sources src;
  src.watcher_stats = [] {
    watcher::WatcherStats s;
    s.invalid_self_nodes[static_cast<int>(watcher::SelfProblem::AddressPrefixLength)] = 3;
    s.invalid_self_nodes[static_cast<int>(watcher::SelfProblem::EmptyName)] = 1;
    return s;
  };
  m.setSources(src);
  const std::string text = m.serialize();
  EXPECT_NE(
      text.find("ts_kube_agent_bus_invalid_self_nodes_total{problem=\"address_prefix_length\"} 3"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("ts_kube_agent_bus_invalid_self_nodes_total{problem=\"empty_name\"} 1"),
            std::string::npos);
  for (const char* p : {"invalid_text", "invalid_address"}) {
    EXPECT_NE(text.find("ts_kube_agent_bus_invalid_self_nodes_total{problem=\"" + std::string(p) +
                        "\"} 0"),
              std::string::npos)
        << p;
  }
  EXPECT_EQ(text.find("problem=\"none\""), std::string::npos);
}

TEST(Metrics, PeerCountsAbsentWhenNotKnown) {
  AgentMetrics m;
  AgentMetrics::Sources src;
  src.node_state = [] {
    auto st = sampleState();
    st.peers_known = false;
    return st;
  };
  m.setSources(src);
  EXPECT_EQ(m.serialize().find("ts_kube_agent_peers "), std::string::npos);
}

TEST(ProcessStats, ReadsAFakeProcTree) {
  char tmpl[] = "/tmp/agent-proc-XXXXXX";
  const std::string root = mkdtemp(tmpl);
  std::filesystem::create_directories(root + "/self/fd");
  for (int i = 0; i < 4; ++i) std::ofstream(root + "/self/fd/" + std::to_string(900 + i)) << "";
  // pid (comm with ) spaces) state ppid ... utime=14 stime=15 ... starttime=22 vsize rss=24
  std::string stat = "123 (ts kube) agent) S";
  for (int field = 4; field <= 52; ++field) {
    std::string v = "0";
    if (field == 14) v = "250";   // utime ticks
    if (field == 15) v = "50";    // stime ticks
    if (field == 22) v = "1000";  // starttime ticks
    if (field == 24) v = "10";    // rss pages
    stat += " " + v;
  }
  std::ofstream(root + "/self/stat") << stat << "\n";
  std::ofstream(root + "/stat") << "cpu 1 2 3\nbtime 1700000000\n";
  const auto p = readProcessStats(root);
  ASSERT_TRUE(p);
  const double hz = static_cast<double>(sysconf(_SC_CLK_TCK));
  EXPECT_DOUBLE_EQ(p->cpu_seconds, 300 / hz);
  EXPECT_DOUBLE_EQ(p->resident_bytes, 10.0 * static_cast<double>(sysconf(_SC_PAGESIZE)));
  EXPECT_DOUBLE_EQ(p->start_time_seconds, 1700000000 + 1000 / hz);
  EXPECT_EQ(p->open_fds, 4);
  std::filesystem::remove_all(root);
}

TEST(ProcessStats, MissingProcIsNotAnError) {
  EXPECT_FALSE(readProcessStats("/nonexistent"));
}

}  // namespace
}  // namespace tsk::agent
