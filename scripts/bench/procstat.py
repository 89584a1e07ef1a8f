"""Launching and measuring the processes of the benchmark (Python 3 stdlib only).

Proc starts a program (optionally pinned to one CPU, at a raised priority, with an
address-space cap), captures its
stdout lines with timestamps, and reads its cost from /proc without disturbing it:
  cpu_ns()   utime+stime of every live thread, in ns (/proc/PID/task/*/schedstat: exact, unlike
             the 10 ms ticks of /proc/PID/stat)
  hwm_kib()  peak RSS (VmHWM), rss_kib() current RSS (VmRSS)

    p = Proc(["./bus-drain", "--socket", s], name="drain", cpu=1, log_dir=d)
    c0 = p.cpu_ns(); ...; per_event = (p.cpu_ns() - c0) / k
    p.stop()
"""
import os
import resource
import signal
import subprocess
import threading
import time


# Every measured process (simulators, API server, consumers) runs at this nice value when the
# harness may raise priority, so background jobs on a shared machine disturb the figures less.
BENCH_PRIORITY = -10


def now():
    return time.monotonic()


def wait_for(predicate, timeout, interval=0.002, what="condition"):
    """Polls predicate() until it returns a truthy value; raises TimeoutError after timeout s."""
    deadline = now() + timeout
    sleep = min(interval, 0.0005)
    while True:
        value = predicate()
        if value:
            return value
        if now() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(sleep)
        sleep = min(sleep * 2, interval)


class Proc:
    def __init__(self, argv, name, cpu=None, log_dir=None, env=None, max_address_space=None,
                 capture_stdout=False, priority=BENCH_PRIORITY):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.lines = []  # (monotonic time, text) of stdout lines when capture_stdout
        self._cond = threading.Condition()
        self._log = open(os.path.join(log_dir, f"{name}.log"), "ab") if log_dir else None
        if self._log:
            self._log.write(("\n=== " + " ".join(self.argv) + "\n").encode())
            self._log.flush()

        def setup_child():
            os.setsid()  # its own group, so stop() can never reach the harness
            if priority:
                try:
                    os.setpriority(os.PRIO_PROCESS, 0, priority)
                    # setsid() made a new scheduler autogroup: raise it too, or the nice
                    # value counts only inside the group.
                    with open("/proc/self/autogroup", "w") as f:
                        f.write(str(priority))
                except OSError:
                    pass  # not permitted (no CAP_SYS_NICE): run at the default priority
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})
            if max_address_space:
                resource.setrlimit(resource.RLIMIT_AS, (max_address_space, max_address_space))

        self.started_at = now()
        self.popen = subprocess.Popen(
            self.argv, env=env, preexec_fn=setup_child,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture_stdout else (self._log or subprocess.DEVNULL),
            stderr=self._log or subprocess.DEVNULL)
        self.pid = self.popen.pid
        self._reader = None
        if capture_stdout:
            self._reader = threading.Thread(target=self._read_stdout, daemon=True)
            self._reader.start()

    def _read_stdout(self):
        for raw in self.popen.stdout:
            t = now()
            if self._log:
                self._log.write(raw)
                self._log.flush()
            with self._cond:
                self.lines.append((t, raw.decode(errors="replace").rstrip("\n")))
                self._cond.notify_all()

    def wait_line(self, predicate, start_index, timeout):
        """Waits for a stdout line (at index >= start_index) matching predicate; returns
        (index, time, text)."""
        deadline = now() + timeout
        with self._cond:
            i = start_index
            while True:
                while i < len(self.lines):
                    t, text = self.lines[i]
                    if predicate(text):
                        return i, t, text
                    i += 1
                left = deadline - now()
                if left <= 0 or not self.alive():
                    raise TimeoutError(f"{self.name}: no matching stdout line within {timeout} s"
                                       f" (alive={self.alive()})")
                self._cond.wait(min(left, 0.05))

    def pause(self):
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.pid, signal.SIGCONT)

    def alive(self):
        return self.popen.poll() is None

    def check_alive(self):
        if not self.alive():
            raise RuntimeError(f"{self.name} exited with status {self.popen.returncode}; "
                               f"see its log")

    def cpu_ns(self):
        total = 0
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except FileNotFoundError:
            raise RuntimeError(f"{self.name} (pid {self.pid}) is gone")
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass  # a thread ended between listdir and open
        return total

    def voluntary_switches(self):
        """Voluntary context switches of all threads (each is a sleep: a wakeup later)."""
        total = 0
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except FileNotFoundError:
            raise RuntimeError(f"{self.name} (pid {self.pid}) is gone")
        for tid in tids:
            try:
                with open(f"/proc/{self.pid}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            total += int(line.split()[1])
                            break
            except (FileNotFoundError, ProcessLookupError):
                pass
        return total

    def _status_kib(self, field):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return 0

    def hwm_kib(self):
        return self._status_kib("VmHWM")

    def rss_kib(self):
        return self._status_kib("VmRSS")

    def stop(self, timeout=10):
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait()
        if self._reader:
            self._reader.join(timeout=2)
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
