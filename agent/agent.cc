#include "agent/agent.h"

#include <algorithm>

namespace tsk::agent {
namespace {

Error configError(std::string message) {
  return Error{std::move(message), ErrorKind::Config};
}

}  // namespace

Agent::Agent(AgentConfig cfg, Logger& log, Clock& clock)
    : cfg_(std::move(cfg)), log_(log), clock_(clock) {}

Agent::~Agent() {
  shutdown();
}

Status Agent::buildPublisher() {
  std::vector<PublishTarget> targets;
  if (!cfg_.secret.empty() || !cfg_.configmap.empty()) {
    auto cluster = cfg_.kubeconfig.empty()
                       ? k8s::loadInCluster(cfg_.service_account_dir)
                       : k8s::loadKubeconfig(cfg_.kubeconfig, cfg_.kube_context);
    if (!cluster) return configError(cluster.error().message);
    if (!cfg_.namespace_name.empty()) cluster->namespace_name = cfg_.namespace_name;
    if (cluster->namespace_name.empty()) {
      return configError(
          "no namespace: set --namespace / POD_NAMESPACE, or a namespace in the kubeconfig "
          "context");
    }
    if (auto st = checkDns1123Label(cluster->namespace_name); !st) {
      const char* where = !cfg_.namespace_name.empty() ? ""
                          : cfg_.kubeconfig.empty()    ? " (from the service account's files)"
                                                       : " (from the kubeconfig context)";
      return configError(st.error().message + where + "; set --namespace / POD_NAMESPACE");
    }
    // The ApiClient logs the warning (one wording, for every way of turning it off).
    if (cfg_.insecure_skip_tls_verify) cluster->insecure_skip_verify = true;
    k8s::ClientOptions opts;
    opts.qps = cfg_.api_qps;
    opts.burst = cfg_.api_burst;
    const std::string ns = cluster->namespace_name;
    log_.info("kubernetes API",
              {{"server", cluster->server}, {"namespace", ns}, {"config", cluster->source}});
    api_ = std::make_unique<k8s::ApiClient>(std::move(*cluster), opts, &metrics_, log_, clock_);
    if (auto st = api_->configStatus(); !st) return configError(st.error().message);
    IdentitySettings base{
        .keys = {}, .pod_uid = cfg_.pod_uid, .clear_on_logout = cfg_.clear_on_logout};
    if (!cfg_.secret.empty()) {
      auto s = base;
      s.keys = cfg_.secret_keys;
      targets.push_back({"secret", k8s::makeSecretStore(*api_, ns, cfg_.secret), s});
    }
    if (!cfg_.configmap.empty()) {
      auto s = base;
      s.keys = cfg_.configmap_keys;
      targets.push_back({"configmap", k8s::makeConfigMapStore(*api_, ns, cfg_.configmap), s});
    }
  } else {
    log_.warn("no Secret and no ConfigMap configured: watching and serving metrics only");
  }
  PublisherOptions popts;
  popts.wait_min = cfg_.publish_wait_min;
  popts.wait_max = cfg_.publish_wait_max;
  popts.create_objects = cfg_.create_objects;
  popts.drift_check_interval = cfg_.drift_check_interval;
  if (api_) popts.write_policy.field_manager = api_->options().field_manager;
  popts.write_policy.foreign = cfg_.foreign_keys;
  publisher_ = std::make_unique<Publisher>(std::move(targets), popts, log_, clock_);
  return {};
}

Status Agent::start() {
  if (auto st = buildPublisher(); !st) return st;

  watcher::WatcherOptions wopts;
  wopts.socket_path = cfg_.socket;
  wopts.track_peers = cfg_.track_peers;
  wopts.start_mode = cfg_.start_mode;
  wopts.max_line_bytes = cfg_.max_line_bytes;
  wopts.max_read_delay = cfg_.bus_read_delay;
  watcher_ = std::make_unique<watcher::Watcher>(wopts, *this, log_, clock_);

  metrics_.setSources({
      .watcher_stats = [this] { return watcher_->stats(); },
      .node_state = [this] { return watcher_->state(); },
      .targets = [this] { return publisher_->status(); },
  });

  auto addr = parseHostPort(cfg_.admin_addr);
  if (!addr) return configError("--admin-addr: " + addr.error().message);
  admin_ = std::make_unique<AdminServer>(AdminHandlers{
                                             .metrics = [this] { return metrics_.serialize(); },
                                             .livez = [this] { return livez(); },
                                             .readyz = [this] { return readyz(); },
                                             .healthz = [this] { return healthz(); },
                                         },
                                         log_);
  if (auto st = admin_->start(*addr); !st) return st;

  publisher_->start();
  watcher_->start();
  started_ = true;
  log_.info("ts-kube-agent started",
            {{"version", TSK_VERSION},
             {"socket", cfg_.socket},
             {"mask", std::to_string(watcher_->mask())},
             {"secret", cfg_.secret.empty() ? "-" : cfg_.secret},
             {"configmap", cfg_.configmap.empty() ? "-" : cfg_.configmap}});
  return {};
}

bool Agent::shutdown() {
  if (shut_down_) return true;
  shut_down_ = true;
  if (!started_) {  // start() failed part-way: release what exists, quietly
    if (admin_) admin_->stop();
    return true;
  }
  if (watcher_) watcher_->stop();
  bool written = true;
  if (publisher_) {
    log_.info("shutting down: flushing the pending identity",
              {{"timeout", std::to_string(cfg_.shutdown_timeout.count()) + "ms"}});
    written = publisher_->flush(clock_.monotonicNow() + cfg_.shutdown_timeout);
    if (!written && api_) api_->cancel();  // cut short the request in flight, if any
    publisher_->stop();
  }
  if (admin_) admin_->stop();
  log_.info(written ? "shutdown complete: identity in sync"
                    : "shutdown complete: the latest identity was NOT fully written");
  return written;
}

bool Agent::reportUnwritten() const {
  return publisher_ && publisher_->reportUnwritten();
}

int Agent::adminPort() const {
  return admin_ ? admin_->port() : 0;
}

void Agent::onStateChanged(const watcher::NodeSnapshotPtr& snapshot) {
  const watcher::NodeState& state = snapshot->state;
  // The same decision as ts_kube_agent_self_changes_total (NodeSnapshot::self_changes).
  if (snapshot->changes & watcher::kChangeIdentity) metrics_.recordSelfChange(clock_.wallNow());
  // The bus (re)connected and tailscaled's state was read again.
  const bool resynced = state.synced && (snapshot->changes & watcher::kChangeSynced);
  if (state.synced && (snapshot->changes & watcher::kChangeState)) {
    log_.info("tailscaled backend state",
              {{"state", std::string(watcher::backendStateName(state.state))}});
  }
  if (!publisher_) return;
  publisher_->submit(state);
  // Whatever happened to the objects while the bus was away is caught now, not at the next
  // periodic check.
  if (resynced) publisher_->checkSoon();
}

void Agent::onDisconnected(std::string_view reason) {
  log_.debug("bus disconnected", {{"reason", std::string(reason)}});
}

ProbeResult Agent::livez() const {
  if (!watcher_ || !watcher_->alive()) return {false, "the bus watcher loop is not running"};
  if (!publisher_ || !publisher_->alive()) return {false, "the publisher loop is not running"};
  return {true, ""};
}

ProbeResult Agent::readyz() const {
  if (!watcher_) return {false, "not started"};
  const auto snapshot = watcher_->snapshot();
  const watcher::NodeState& st = snapshot->state;
  if (!st.connected) return {false, "not connected to tailscaled's bus at " + cfg_.socket};
  if (st.synced && st.identity_pending) {
    return {false,
            "tailscaled has no node identity yet (no network map from control since it "
            "started; backend state " +
                std::string(watcher::backendStateName(st.state)) +
                "); the last identity is kept until it has one"};
  }
  if (st.daemon_without_selfchange) {
    return {false, "tailscaled " + st.daemon_version +
                       " is older than 1.98 and sends no SelfChange: identity changes would go "
                       "unseen; upgrade tailscaled (1.100 or later)"};
  }
  if (st.state != watcher::BackendState::Running) {
    return {false, "tailscaled backend state is " +
                       std::string(watcher::backendStateName(st.state)) + ", not Running"};
  }
  if (!st.self) return {false, "the self node is not known yet"};
  for (const auto& t : publisher_->status()) {
    if (t.in_sync) continue;
    if (!t.last_error.empty()) return {false, t.object + " not in sync: " + t.last_error};
    return {false, t.object + " not written yet"};
  }
  return {true, ""};
}

ProbeResult Agent::healthz() const {
  if (!watcher_) return {false, "node currently has no tailscale IPs"};
  const auto snapshot = watcher_->snapshot();
  const watcher::NodeState& st = snapshot->state;
  if (st.identity_pending) return {false, "node has no tailscale IPs yet (no network map)"};
  if (st.self && !st.self->addresses.empty()) return {true, ""};
  return {false, "node currently has no tailscale IPs"};
}

}  // namespace tsk::agent
