#include "agent/metrics.h"

#include "common/rfc3339.h"

#include <dirent.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <charconv>
#include <ctime>
#include <fstream>
#include <sstream>

#include <prometheus/gauge.h>
#include <prometheus/text_serializer.h>

#include "common/text.h"

namespace tsk::agent {
namespace {

namespace pm = prometheus;

const pm::Histogram::BucketBoundaries kDurationBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                          0.5,   1,    2.5,   5,    10};

std::string readFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Builds one MetricFamily at a time: family(...), then sample(...) for each series.
class FamilyList {
 public:
  void family(std::string name, std::string help, pm::MetricType type) {
    out_.push_back({std::move(name), std::move(help), type, {}});
  }
  // Every label value is made valid UTF-8 and bounded (common/text.h): some come from the bus
  // (the tailscaled version), and one invalid byte makes Prometheus reject the whole scrape.
  void sample(double value, std::vector<pm::ClientMetric::Label> labels = {}) {
    pm::ClientMetric m;
    for (auto& l : labels) l.value = displayText(l.value, kMaxLabelBytes);
    m.label = std::move(labels);
    switch (out_.back().type) {
      case pm::MetricType::Counter:
        m.counter.value = value;
        break;
      case pm::MetricType::Gauge:
        m.gauge.value = value;
        break;
      default:
        m.untyped.value = value;
    }
    out_.back().metric.push_back(std::move(m));
  }
  // A family with one unlabelled sample.
  void single(std::string name, std::string help, pm::MetricType type, double value) {
    family(std::move(name), std::move(help), type);
    sample(value);
  }
  std::vector<pm::MetricFamily> take() { return std::move(out_); }

 private:
  std::vector<pm::MetricFamily> out_;
};

constexpr auto kCounter = pm::MetricType::Counter;
constexpr auto kGauge = pm::MetricType::Gauge;

}  // namespace

std::optional<ProcessStats> readProcessStats(const std::string& proc_root) {
  const std::string stat = readFile(proc_root + "/self/stat");
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(stat.substr(close + 1));
  std::vector<std::string> f;  // f[0] is field 3 (state)
  for (std::string tok; fields >> tok;) f.push_back(tok);
  if (f.size() < 22) return std::nullopt;
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  ProcessStats out;
  try {
    out.cpu_seconds = (std::stod(f[11]) + std::stod(f[12])) / ticks;  // utime, stime
    out.resident_bytes = std::stod(f[21]) * page;                     // rss
    const double start_ticks = std::stod(f[19]);                      // starttime
    std::istringstream proc_stat(readFile(proc_root + "/stat"));
    for (std::string line; std::getline(proc_stat, line);) {
      if (line.starts_with("btime ")) {
        out.start_time_seconds = std::stod(line.substr(6)) + start_ticks / ticks;
      }
    }
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (DIR* dir = opendir((proc_root + "/self/fd").c_str())) {
    const std::string own = std::to_string(dirfd(dir));  // not counted: opendir's own fd
    while (const dirent* e = readdir(dir)) {
      if (e->d_name[0] != '.' && e->d_name != own) out.open_fds += 1;
    }
    closedir(dir);
  }
  return out;
}

AgentMetrics::AgentMetrics(std::string version, std::string proc_root)
    : version_(std::move(version)),
      proc_root_(std::move(proc_root)),
      registry_(std::make_shared<pm::Registry>()),
      api_requests_(&pm::BuildCounter()
                         .Name("ts_kube_agent_api_requests_total")
                         .Help("Kubernetes API requests, by HTTP verb and status code "
                               "(code=\"error\" for a transport failure).")
                         .Register(*registry_)),
      api_duration_(&pm::BuildHistogram()
                         .Name("ts_kube_agent_api_request_duration_seconds")
                         .Help("Duration of Kubernetes API requests, by HTTP verb.")
                         .Register(*registry_)) {}

void AgentMetrics::setSources(Sources s) {
  std::lock_guard lock(sources_mu_);
  sources_ = std::move(s);
}

void AgentMetrics::recordSelfChange(Clock::Wall when) {
  last_self_change_ms_.store(
      std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count());
}

void AgentMetrics::onRequest(std::string_view verb, std::string_view /*resource*/, int code,
                             std::chrono::duration<double> seconds) {
  const std::string v = displayText(verb, kMaxLabelBytes);
  const std::string c = code > 0 ? std::to_string(code) : "error";
  api_requests_->Add({{"verb", v}, {"code", c}}).Increment();
  api_duration_->Add({{"verb", v}}, kDurationBuckets).Observe(seconds.count());
}

std::vector<pm::MetricFamily> AgentMetrics::collectScrapeTime() const {
  Sources src;
  {
    std::lock_guard lock(sources_mu_);
    src = sources_;
  }
  FamilyList fl;
  fl.family("ts_kube_agent_build_info", "Build information; the value is always 1.", kGauge);
  fl.sample(1, {{"version", version_}});

  if (src.watcher_stats) {
    const auto st = src.watcher_stats();
    fl.family("ts_kube_agent_notifies_total",
              "Notify messages read from the IPN bus, by content kind (a message may count "
              "under several kinds).",
              kCounter);
    for (int i = 0; i < watcher::kNotifyKindCount; ++i) {
      fl.sample(static_cast<double>(st.notifies_by_kind[i]),
                {{"kind", std::string(watcher::notifyKindName(i))}});
    }
    fl.single("ts_kube_agent_bus_bytes_total", "Bytes of Notify lines read from the IPN bus.",
              kCounter, static_cast<double>(st.bytes_read));
    fl.single("ts_kube_agent_bus_lines_total", "Notify lines read from the IPN bus.", kCounter,
              static_cast<double>(st.lines));
    fl.single("ts_kube_agent_bus_malformed_lines_total",
              "Bus lines skipped because they were not a valid Notify.", kCounter,
              static_cast<double>(st.malformed_lines));
    fl.single("ts_kube_agent_bus_oversized_lines_total",
              "Bus lines skipped because they exceeded --max-line-bytes.", kCounter,
              static_cast<double>(st.oversized_lines));
    fl.single("ts_kube_agent_bus_largest_line_bytes", "The longest bus line seen, in bytes.",
              kGauge, static_cast<double>(st.largest_line));
    fl.single("ts_kube_agent_bus_reconnects_total",
              "Connections to the IPN bus after the first one.", kCounter,
              static_cast<double>(st.connects > 0 ? st.connects - 1 : 0));
    fl.family("ts_kube_agent_bus_invalid_self_nodes_total",
              "Self nodes from the bus that failed validation and were not published, by "
              "problem (the last valid identity stays published).",
              kCounter);
    for (int i = 1; i < watcher::kSelfProblemCount; ++i) {
      fl.sample(static_cast<double>(st.invalid_self_nodes[i]),
                {{"problem",
                  std::string(watcher::selfProblemName(static_cast<watcher::SelfProblem>(i)))}});
    }
    fl.single("ts_kube_agent_self_changes_total",
              "Changes of the self node's identity by value: the first identity learnt, then "
              "each different one (from a SelfChange or a resync's InitialStatus); repeats and "
              "filling in the ID or Online of the same node do not count.",
              kCounter, static_cast<double>(st.self_changes));
  }

  if (src.node_state) {
    const auto ns = src.node_state();
    fl.single("ts_kube_agent_bus_connected", "1 while connected to tailscaled's IPN bus.", kGauge,
              ns.connected ? 1 : 0);
    fl.family("ts_kube_agent_backend_state",
              "tailscaled's backend state: 1 for the current state, 0 for the others.", kGauge);
    for (int i = -1; i <= 6; ++i) {
      const auto s = i < 0 ? watcher::BackendState::Unknown : static_cast<watcher::BackendState>(i);
      fl.sample(ns.state == s ? 1 : 0, {{"state", std::string(watcher::backendStateName(s))}});
    }
    if (ns.peers_known) {
      fl.single("ts_kube_agent_peers", "Peers in the tailnet as seen by this node.", kGauge,
                static_cast<double>(ns.peers_total));
      fl.single("ts_kube_agent_peers_online", "Peers that are online.", kGauge,
                static_cast<double>(ns.peers_online));
    }
    if (ns.self && !ns.self->key_expiry.empty()) {
      if (const auto t = parseRfc3339(ns.self->key_expiry)) {
        fl.single("ts_kube_agent_node_key_expiry_timestamp_seconds",
                  "When this node's key expires (absent when expiry is disabled).", kGauge,
                  t->asDouble());
      }
    }
    if (!ns.daemon_version.empty()) {
      fl.family("ts_kube_agent_tailscaled_info",
                "tailscaled as seen on the bus; the value is always 1.", kGauge);
      fl.sample(1, {{"version", ns.daemon_version}});
    }
  }

  if (const auto ms = last_self_change_ms_.load(); ms != 0) {
    fl.single("ts_kube_agent_last_self_change_timestamp_seconds",
              "When the self node last changed.", kGauge, static_cast<double>(ms) / 1000.0);
  }

  if (src.targets) {
    const auto targets = src.targets();
    fl.family("ts_kube_agent_publishes_total",
              "Identity publish attempts per target, by result (written, unchanged, failed).",
              kCounter);
    for (const auto& t : targets) {
      fl.sample(static_cast<double>(t.written), {{"target", t.label}, {"result", "written"}});
      fl.sample(static_cast<double>(t.unchanged), {{"target", t.label}, {"result", "unchanged"}});
      fl.sample(static_cast<double>(t.failed), {{"target", t.label}, {"result", "failed"}});
    }
    fl.family("ts_kube_agent_drift_checks_total",
              "Re-reads of a target object believed in sync, to find external changes "
              "(periodic and after each bus reconnect).",
              kCounter);
    for (const auto& t : targets) {
      fl.sample(static_cast<double>(t.drift_checks), {{"target", t.label}});
    }
    fl.family("ts_kube_agent_drift_repairs_total",
              "Writes that restored the identity after the target object was deleted or its keys "
              "were changed by someone else (found by the periodic or reconnect re-read).",
              kCounter);
    for (const auto& t : targets) {
      fl.sample(static_cast<double>(t.drift_repairs), {{"target", t.label}});
    }
    fl.family("ts_kube_agent_foreign_owned_keys",
              "1 for each of the agent's keys that another field manager owned at the last read "
              "of the target (metadata.managedFields); --foreign-keys says whether the agent "
              "skips or overwrites it.",
              kGauge);
    for (const auto& t : targets) {
      for (const auto& [key, managers] : t.foreign_keys) {
        fl.sample(1, {{"target", t.label}, {"key", key}});
      }
    }
    fl.family("ts_kube_agent_identity_in_sync",
              "1 when the target object holds the latest identity.", kGauge);
    for (const auto& t : targets) fl.sample(t.in_sync ? 1 : 0, {{"target", t.label}});
    fl.family("ts_kube_agent_last_successful_write_timestamp_seconds",
              "When the agent last wrote to the target object.", kGauge);
    for (const auto& t : targets) {
      if (!t.last_write) continue;
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(t.last_write->time_since_epoch())
              .count();
      fl.sample(static_cast<double>(ms) / 1000.0, {{"target", t.label}});
    }
    fl.family("ts_kube_agent_last_in_sync_timestamp_seconds",
              "When the target object was last confirmed to hold the identity: written, or read "
              "back unchanged (the first sync after a start, every drift check).",
              kGauge);
    for (const auto& t : targets) {
      if (!t.last_in_sync) continue;
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(t.last_in_sync->time_since_epoch())
              .count();
      fl.sample(static_cast<double>(ms) / 1000.0, {{"target", t.label}});
    }
  }

  if (const auto p = readProcessStats(proc_root_)) {
    fl.single("ts_kube_agent_process_cpu_seconds_total", "User and system CPU time spent.",
              kCounter, p->cpu_seconds);
    fl.single("ts_kube_agent_process_resident_memory_bytes", "Resident memory size.", kGauge,
              p->resident_bytes);
    fl.single("ts_kube_agent_process_open_fds", "Open file descriptors.", kGauge, p->open_fds);
    fl.single("ts_kube_agent_process_start_time_seconds",
              "Start time of the process since the Unix epoch.", kGauge, p->start_time_seconds);
  }
  auto out = fl.take();
  // A family with no samples (e.g. no write yet) is dropped rather than serialized empty.
  std::erase_if(out, [](const pm::MetricFamily& f) { return f.metric.empty(); });
  return out;
}

std::string AgentMetrics::serialize() const {
  auto families = registry_->Collect();
  auto more = collectScrapeTime();
  families.insert(families.end(), std::make_move_iterator(more.begin()),
                  std::make_move_iterator(more.end()));
  return pm::TextSerializer().Serialize(families);
}

}  // namespace tsk::agent
