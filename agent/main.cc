// ts-kube-agent: publishes this node's Tailscale identity into Kubernetes and serves metrics.
//
// Its options (flags, environment variables, config-file keys) are the options table in
// agent/config.cc: `ts-kube-agent --help` prints it, docs/OPERATIONS.md#configuration shows it.
//
// Signals: the first SIGTERM/SIGINT/SIGHUP stops watching and flushes the pending identity
// within --shutdown-timeout; a second one during that flush exits at once, logging which keys of
// which object were not written. SIGHUP is a shutdown like SIGTERM (the agent has no
// configuration to reload, and dying at once by the default action would lose the pending
// identity). SIGUSR1/SIGUSR2 are logged and ignored (their default action would kill the agent
// silently); SIGPIPE is ignored (a closed socket is an error return, not a death).
//
// Exit status: 0 after a clean shutdown (SIGTERM/SIGINT/SIGHUP), 1 when the agent cannot start,
// 2 for a configuration error (reported before anything is touched), 128 + the signal number
// (143 SIGTERM, 130 SIGINT, 129 SIGHUP) when a second signal cut the shutdown short.
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

// Blocks the signals main handles in every thread (threads inherit the mask), so they queue
// for main's signalfd; ignores SIGPIPE.
sigset_t blockHandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (const int sig : {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2}) sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return set;
}

const char* signalName(int sig) {
  switch (sig) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    case SIGUSR1:
      return "SIGUSR1";
    case SIGUSR2:
      return "SIGUSR2";
    default:
      return "signal";
  }
}

// One signal from `sfd` (blocking): the number of a shutdown signal (SIGTERM, SIGINT, SIGHUP);
// 0 for SIGUSR1/SIGUSR2, which are logged and ignored; -1 on a read error.
int takeSignal(int sfd, tsk::Logger& log) {
  signalfd_siginfo info{};
  ssize_t n = 0;
  while ((n = read(sfd, &info, sizeof info)) < 0 && errno == EINTR) {
  }
  if (n != static_cast<ssize_t>(sizeof info)) return -1;
  const int sig = static_cast<int>(info.ssi_signo);
  if (sig != SIGUSR1 && sig != SIGUSR2) return sig;
  log.info(
      "signal ignored: ts-kube-agent has no action for it (SIGTERM, SIGINT or SIGHUP shut it "
      "down)",
      {{"signal", signalName(sig)}, {"from_pid", std::to_string(info.ssi_pid)}});
  return 0;
}

// The next shutdown signal, blocking; 0 on a read error.
int readShutdownSignal(int sfd, tsk::Logger& log) {
  for (;;) {
    const int sig = takeSignal(sfd, log);
    if (sig != 0) return sig < 0 ? 0 : sig;
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
  int sig = 0;
  while (sig == 0) {
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[0].revents != 0) break;  // the shutdown finished
    // A signal is queued: a shutdown signal ends the wait; SIGUSR1/2 are logged and ignored.
    if (fds[1].revents != 0) sig = takeSignal(signal_fd, log);
  }
  if (sig > 0) {
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
  const sigset_t handled_signals = blockHandledSignals();
  const int signal_fd = signalfd(-1, &handled_signals, SFD_CLOEXEC);
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
    return st.error().kind == tsk::ErrorKind::Config ? 2 : 1;
  }

  const int sig = readShutdownSignal(signal_fd, log);
  log.info("signal received; shutting down (a second signal exits at once)",
           {{"signal", signalName(sig)}});
  return shutdownUnlessInterrupted(agent, signal_fd, log);
}
