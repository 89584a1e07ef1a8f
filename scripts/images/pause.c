// The project's pause image: waits for SIGTERM, SIGINT or SIGHUP and exits 0; as PID 1 it
// also reaps any orphan re-parented to it (what a pod sandbox's pause process does, after
// Kubernetes' build/pause/linux/pause.c). Built with `gcc -static` by scripts/images/build.sh
// into a FROM-scratch image; `pause --version` prints the version and exits.
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal = 0;

static void on_stop(int sig) {
  stop_signal = sig;
}

static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "--version") == 0) {
    puts("tsk-pause 1");
    return 0;
  }
  struct sigaction stop = {.sa_handler = on_stop};
  sigemptyset(&stop.sa_mask);
  struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
  sigemptyset(&child.sa_mask);
  if (sigaction(SIGTERM, &stop, NULL) != 0 || sigaction(SIGINT, &stop, NULL) != 0 ||
      sigaction(SIGHUP, &stop, NULL) != 0 || sigaction(SIGCHLD, &child, NULL) != 0) {
    perror("pause: sigaction");
    return 1;
  }
  // The stop signals stay blocked except inside sigsuspend, so one arriving between the test
  // and the wait is not lost.
  sigset_t block, wait_mask;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGHUP);
  sigprocmask(SIG_BLOCK, &block, &wait_mask);
  sigdelset(&wait_mask, SIGTERM);
  sigdelset(&wait_mask, SIGINT);
  sigdelset(&wait_mask, SIGHUP);
  while (stop_signal == 0) {
    sigsuspend(&wait_mask);
  }
  fprintf(stderr, "pause: signal %d, exiting\n", (int)stop_signal);
  return 0;
}
