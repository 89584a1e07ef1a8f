#pragma once
// Agent: wires the watcher (Tailscale side) to the publisher and stores (Kubernetes side), with
// metrics and the admin server. The only place that knows both worlds.
//
//   Agent agent(config, log);
//   if (auto st = agent.start(); !st) { log.error(st.error().message); return 1; }
//   wait_for_sigterm();
//   agent.shutdown();      // stop watching, flush the pending identity, stop serving
//   // a second signal meanwhile: agent.reportUnwritten(), then exit without waiting
//
// Threads: the watcher's (bus reads), the publisher's (API writes), the admin server's pool,
// and the caller's (signals). Nothing here blocks the watcher thread: onStateChanged only maps
// the reducer's snapshot (and what it says changed) to metrics and logs, and hands the state to
// the publisher. The node state has one owner, the watcher's NodeStateReducer: nothing here
// keeps a copy of it to tell what changed.
#include <memory>

#include "agent/admin_server.h"
#include "agent/config.h"
#include "agent/metrics.h"
#include "agent/publisher.h"
#include "common/clock.h"
#include "common/log.h"
#include "k8s/client.h"
#include "watcher/watcher.h"

namespace tsk::agent {

class Agent final : public watcher::WatcherObserver {
 public:
  Agent(AgentConfig cfg, Logger& log, Clock& clock = RealClock::instance());
  ~Agent() override;
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Loads the cluster configuration, binds the admin server and starts the loops. An Error
  // with code 2 is a configuration problem (bad kubeconfig, no namespace); others are runtime.
  Status start();
  // Stops watching, flushes the pending identity within the shutdown timeout, stops serving.
  // Returns true when every target holds the latest identity.
  bool shutdown();
  // For a second signal during shutdown(): logs, per target, the identity keys not written yet;
  // returns whether anything was pending. Safe while shutdown() runs on another thread.
  bool reportUnwritten() const;

  int adminPort() const;
  ProbeResult livez() const;
  ProbeResult readyz() const;
  ProbeResult healthz() const;

  // watcher::WatcherObserver
  void onStateChanged(const watcher::NodeSnapshotPtr& snapshot) override;
  void onDisconnected(std::string_view reason) override;

 private:
  Status buildPublisher();

  AgentConfig cfg_;
  Logger& log_;
  Clock& clock_;
  AgentMetrics metrics_;
  std::unique_ptr<k8s::ApiClient> api_;
  std::unique_ptr<Publisher> publisher_;
  std::unique_ptr<watcher::Watcher> watcher_;
  std::unique_ptr<AdminServer> admin_;
  bool started_ = false;
  bool shut_down_ = false;
};

}  // namespace tsk::agent
