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
// Signals: the first SIGTERM/SIGINT stops watching and flushes the pending identity within
// --shutdown-timeout; a second one during that flush exits at once, logging which keys of which
// object were not written.
//
// Exit status: 0 after a clean shutdown (SIGTERM/SIGINT), 1 when the agent cannot start,
// 2 for a configuration error (reported before anything is touched), 128 + the signal number
// (143 SIGTERM, 130 SIGINT) when a second signal cut the shutdown short.
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "agent/agent.h"
#include "agent/config.h"
#include "common/log.h"

namespace {

// Blocks the shutdown signals in every thread (threads inherit the mask), so they queue for
// main's signalfd.
sigset_t blockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return set;
}

const char* signalName(int sig) {
  return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal";
}

// The next shutdown signal queued on `sfd` (blocking); 0 on error.
int readSignal(int sfd) {
  signalfd_siginfo info{};
  for (;;) {
    const ssize_t n = read(sfd, &info, sizeof info);
    if (n == static_cast<ssize_t>(sizeof info)) return static_cast<int>(info.ssi_signo);
    if (n < 0 && errno == EINTR) continue;
    return 0;
  }
}

// Runs agent.shutdown() on its own thread while watching for a second signal. Returns the
// exit status: 0 once the shutdown is done, or, on a second signal, does not return: it logs
// what was not written and exits with 128 + the signal at once.
int shutdownUnlessInterrupted(tsk::agent::Agent& agent, int signal_fd, tsk::Logger& log) {
  const int done_fd = eventfd(0, EFD_CLOEXEC);
  if (done_fd < 0) {  // cannot watch for a second signal: shut down without that
    agent.shutdown();
    return 0;
  }
  std::thread stopper([&] {
    agent.shutdown();
    const uint64_t one = 1;
    while (write(done_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
  });
  std::array<pollfd, 2> fds{{{done_fd, POLLIN, 0}, {signal_fd, POLLIN, 0}}};
  while (poll(fds.data(), fds.size(), -1) < 0 && errno == EINTR) {
  }
  if (fds[0].revents == 0 && fds[1].revents != 0) {
    const int sig = readSignal(signal_fd);
    log.error("second signal received; exiting now without finishing the shutdown",
              {{"signal", signalName(sig)}});
    if (!agent.reportUnwritten()) {
      log.info("nothing was pending: every target already held the latest identity");
    }
    std::fflush(stderr);
    std::_Exit(128 + (sig ? sig : SIGTERM));
  }
  stopper.join();
  close(done_fd);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const sigset_t shutdown_signals = blockShutdownSignals();
  const int signal_fd = signalfd(-1, &shutdown_signals, SFD_CLOEXEC);
  if (signal_fd < 0) {
    std::cerr << "ts-kube-agent: cannot watch for signals (signalfd): " << std::strerror(errno)
              << "\n";
    return 1;
  }
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

  const int sig = readSignal(signal_fd);
  log.info("signal received; shutting down (a second signal exits at once)",
           {{"signal", signalName(sig)}});
  return shutdownUnlessInterrupted(agent, signal_fd, log);
}
