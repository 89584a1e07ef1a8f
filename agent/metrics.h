#pragma once
// AgentMetrics: every ts_kube_agent_* metric, in Prometheus text format 0.0.4.
//
//   AgentMetrics metrics(clock);
//   k8s::ApiClient api(cfg, opts, &metrics, log);          // API requests by verb and code
//   metrics.setSources({.watcher_stats = [&] { return watcher.stats(); }, ...});
//   std::string body = metrics.serialize();                 // GET /metrics
//
// Only the API request counters and the duration histogram live in the prometheus-cpp Registry
// (they are events with labels). Everything the watcher and publisher already count is read at
// scrape time through Sources, so a bus line costs no metric update at all. Process metrics
// (CPU, RSS, fds, start time) come from /proc, since prometheus-cpp has no process collector.
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "agent/publisher.h"
#include "common/clock.h"
#include "k8s/client.h"
#include "watcher/watcher.h"

namespace tsk::agent {

// /proc figures for the process metrics.
struct ProcessStats {
  double cpu_seconds = 0;
  double resident_bytes = 0;
  double open_fds = 0;
  double start_time_seconds = 0;  // since the Unix epoch
};
// proc_root is "/proc" in production; a test can point it at a fake tree.
std::optional<ProcessStats> readProcessStats(const std::string& proc_root = "/proc");

class AgentMetrics final : public k8s::RequestObserver {
 public:
  struct Sources {
    std::function<watcher::WatcherStats()> watcher_stats;
    std::function<watcher::NodeState()> node_state;
    std::function<std::vector<TargetStatus>()> targets;
  };

  explicit AgentMetrics(std::string version = TSK_VERSION, std::string proc_root = "/proc");

  void setSources(Sources s);
  // The self node changed (value compare, not every SelfChange line).
  void recordSelfChange(Clock::Wall when);

  // k8s::RequestObserver
  void onRequest(std::string_view verb, std::string_view resource, int code,
                 std::chrono::duration<double> seconds) override;

  std::string serialize() const;

 private:
  std::vector<prometheus::MetricFamily> collectScrapeTime() const;

  std::string version_;
  std::string proc_root_;
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* api_requests_;
  prometheus::Family<prometheus::Histogram>* api_duration_;
  mutable std::mutex sources_mu_;
  Sources sources_;
  std::atomic<int64_t> last_self_change_ms_{0};
};

}  // namespace tsk::agent
