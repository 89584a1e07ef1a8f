// ts-kube-agent: publishes this node's Tailscale identity into Kubernetes and serves metrics.
//
// Environment (flags win over these; a YAML file named by TS_AGENT_CONFIG is below both):
//   TS_SOCKET            tailscaled LocalAPI socket   (/var/run/tailscale/tailscaled.sock)
//   TS_KUBE_SECRET       Secret name, "" for none      (tailscale)
//   TS_KUBE_CONFIGMAP    ConfigMap name                (none)
//   POD_NAMESPACE        namespace                     (service account's / context's)
//   KUBECONFIG           kubeconfig for out-of-cluster (none: in-cluster)
//   TS_LOCAL_ADDR_PORT   admin server address          ([::]:9002)
//   TS_TRACK_PEERS       live peer counts              (false)
//   POD_UID              written as pod_uid            (none)
//   TS_AGENT_CONFIG      YAML config file              (none)
//   TS_LOG_FORMAT        text | json                   (text)
//   TS_SHUTDOWN_TIMEOUT  flush deadline on SIGTERM     (10s)
// and more: `ts-kube-agent --help` lists every option.
//
// Exit status: 0 after a clean shutdown (SIGTERM/SIGINT), 1 when the agent cannot start,
// 2 for a configuration error (reported before anything is touched).
#include <signal.h>

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "agent/config.h"
#include "common/log.h"

namespace {

// Blocks the shutdown signals in every thread (threads inherit the mask), so only sigwait in
// main receives them.
sigset_t blockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return set;
}

}  // namespace

int main(int argc, char** argv) {
  const sigset_t shutdown_signals = blockShutdownSignals();
  const std::vector<std::string> args(argv + 1, argv + argc);
  auto parsed = tsk::agent::parseConfig(args, tsk::agent::systemEnv());
  if (!parsed) {
    std::cerr << "ts-kube-agent: configuration error: " << parsed.error().message << "\n";
    return 2;
  }
  if (parsed->action == tsk::agent::ConfigAction::Help) {
    std::cout << tsk::agent::helpText();
    return 0;
  }
  if (parsed->action == tsk::agent::ConfigAction::Version) {
    std::cout << tsk::agent::versionText();
    return 0;
  }

  const auto& cfg = parsed->config;
  tsk::Logger log(stderr, cfg.log_format, cfg.log_level);
  tsk::agent::Agent agent(cfg, log);
  if (auto st = agent.start(); !st) {
    log.error("cannot start", {{"error", st.error().message}});
    return st.error().code == 2 ? 2 : 1;
  }

  int sig = 0;
  sigwait(&shutdown_signals, &sig);
  log.info("signal received; shutting down", {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  agent.shutdown();
  return 0;
}
