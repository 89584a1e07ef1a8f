"""BusClient vs. libcurl: the measurement behind the decision in watcher/bus_client.h.

    python3 scripts/bench/curl_compare.py --build build [--runs 5] [--clients "hand multi easy"]

Runs tools/bench-baselines/curl-drain (the same NotifyParser behind either client) against
tsbus-sim, pinned to CPU 1 as the main benchmark does, and prints per client the medians and
ranges of: CPU per line in a batch (lines queued while the reader is stopped, then drained),
CPU and voluntary context switches per line paced (one line per write at 1k and 10k/s, queue
128 as tailscaled), peak RSS, and the stop latency (--stop-test). Syscalls per line: run with
--strace (strace -c -f around one batch and one paced 10k/s run; slows the reader).
Instructions per line, immune to the machine's load: --callgrind (each client under valgrind
--tool=callgrind once with an empty batch and once with the batch; the difference / lines).
"""
import argparse
import mmap
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from procstat import Proc, wait_for  # noqa: E402
from services import TsbusSim  # noqa: E402


class Drain:
    def __init__(self, build, client, sock, work, name, wrap=()):
        self.prog = os.path.join(work, f"{name}.progress")
        try:
            os.unlink(self.prog)
        except FileNotFoundError:
            pass
        argv = list(wrap) + [os.path.join(build, "tools/bench-baselines/curl-drain"),
                             "--client", client, "--socket", sock, "--progress-file", self.prog]
        self.proc = Proc(argv, name=name, cpu=1, log_dir=work)
        self._map = None

    def lines(self):
        if self._map is None:
            try:
                with open(self.prog, "rb") as f:
                    self._map = mmap.mmap(f.fileno(), 16, prot=mmap.PROT_READ)
            except (FileNotFoundError, ValueError):
                return 0
        return struct.unpack_from("<Q", self._map, 0)[0]

    def wait(self, target, timeout=120):
        wait_for(lambda: self.lines() >= target, timeout, what=f"{target} lines")

    def stop(self, timeout=10):
        self.proc.stop(timeout)


def batch(d, sim, k):
    """k SelfChange lines and k blank lines queued while the reader is stopped, then drained."""
    l0, c0, v0 = d.lines(), d.proc.cpu_ns(), d.proc.voluntary_switches()
    d.proc.pause()
    try:
        sim.post("/selfchange-same", count=k)
        sim.post("/blank", count=k)
        time.sleep(0.3)
    finally:
        d.proc.resume()
    d.wait(l0 + 2 * k)
    return ((d.proc.cpu_ns() - c0) / 1000 / (2 * k), (d.proc.voluntary_switches() - v0) / (2 * k))


def paced(d, sim, rate, kind="selfchange", seconds=1.0):
    count = max(300, int(rate * seconds))
    st0 = sim.stats()
    l0, c0, v0 = d.lines(), d.proc.cpu_ns(), d.proc.voluntary_switches()
    sim.post("/pace", rate=rate, kind=kind, count=count)
    wait_for(lambda: sim.stats()["pace_left"] == 0 or not d.proc.alive(), count / rate * 4 + 10,
             interval=0.02, what="the pace")
    st1 = sim.stats()
    sent = st1["pace_sent"] - st0["pace_sent"]
    if st1["closed_slow"] > st0["closed_slow"] or not d.proc.alive():
        # With room left in its socket the simulator's writer lagged, not the reader.
        lag = st1.get("closed_slow_writer_lag", 0) > st0.get("closed_slow_writer_lag", 0)
        return "writer-lag" if lag else None
    d.wait(l0 + sent, 10)
    time.sleep(0.05)
    return ((d.proc.cpu_ns() - c0) / 1000 / sent, (d.proc.voluntary_switches() - v0) / sent)


def strace_counts(path):
    calls = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                try:
                    calls[parts[-1]] = int(parts[3])
                except ValueError:
                    pass
    return calls


def callgrind_ir(build, client, sim, work, k):
    """Instructions (Ir) of a start + batch(k) + stop under callgrind."""
    out = os.path.join(work, f"callgrind-{client}-{k}.out")
    d = Drain(build, client, sim.socket_path, work, f"{client}-cg-{k}",
              wrap=["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"])
    d.wait(1, 120)
    if k:
        batch(d, sim, k)
    d.stop(timeout=60)
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def fmt(xs, digits=2):
    xs = [x for x in xs if x is not None]
    if not xs:
        return "closed"
    return f"{statistics.median(xs):.{digits}f} ({min(xs):.{digits}f}-{max(xs):.{digits}f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--clients", default="hand multi easy")
    ap.add_argument("--k", type=int, default=20000)
    ap.add_argument("--strace", action="store_true")
    ap.add_argument("--callgrind", action="store_true")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="curl-compare-")
    bsim = TsbusSim(a.build, os.path.join(work, "b.sock"), 1000, 10_000_000, work, "sim-batch")
    psim = TsbusSim(a.build, os.path.join(work, "p.sock"), 1000, 128, work, "sim-paced")
    bsim.start()
    psim.start()
    clients = a.clients.split()
    res = {c: {} for c in clients}

    def add(c, key, v):
        res[c].setdefault(key, []).append(v)

    try:
        if a.callgrind:
            for c in clients:
                for _ in range(a.runs):
                    ir0 = callgrind_ir(a.build, c, bsim, work, 0)
                    ir1 = callgrind_ir(a.build, c, bsim, work, a.k)
                    add(c, "ir_per_line", (ir1 - ir0) / (2 * a.k))
            keys = ["ir_per_line"]
            print(f"callgrind runs={a.runs} k={a.k}")
            for c in clients:
                print(f"{c}: Ir/line {fmt(res[c]['ir_per_line'], 0)}")
            return
        for run in range(a.runs):
            for c in clients:  # interleaved, so a busy spell spreads over all of them
                d = Drain(a.build, c, bsim.socket_path, work, f"{c}-b{run}")
                d.wait(1, 30)
                cpu, vcs = batch(d, bsim, a.k)
                add(c, "batch_cpu_us", cpu)
                add(c, "batch_vcs", vcs)
                add(c, "hwm_kib", d.proc.hwm_kib())
                d.stop()
                d = Drain(a.build, c, psim.socket_path, work, f"{c}-p{run}")
                d.wait(1, 30)
                time.sleep(0.3)
                for rate in (1000, 10000):
                    r = paced(d, psim, rate)
                    if r is None or r == "writer-lag":
                        add(c, f"p{rate}_closed", r or "reader")
                        d.stop()
                        d = Drain(a.build, c, psim.socket_path, work, f"{c}-p{run}-{rate}")
                        d.wait(1, 30)
                        time.sleep(0.3)
                        continue
                    add(c, f"p{rate}_cpu_us", r[0])
                    add(c, f"p{rate}_vcs", r[1])
                d.stop()
        for c in clients:
            out = subprocess.run([os.path.join(a.build, "tools/bench-baselines/curl-drain"),
                                  "--client", c, "--socket", bsim.socket_path,
                                  "--stop-test", "20"], capture_output=True, text=True,
                                 timeout=120)
            res[c]["stop"] = out.stdout.strip()
        if a.strace:
            for c in clients:
                for what in ("batch", "p10000"):
                    sim = bsim if what == "batch" else psim
                    path = os.path.join(work, f"strace-{c}-{what}.txt")
                    d = Drain(a.build, c, sim.socket_path, work, f"{c}-strace-{what}",
                              wrap=["strace", "-c", "-f", "-o", path])
                    d.wait(1, 60)
                    time.sleep(0.3)
                    base = d.lines()
                    if what == "batch":
                        batch(d, bsim, a.k)
                        n = 2 * a.k
                    else:
                        n = 10000 if isinstance(paced(d, psim, 10000), tuple) else None
                    # strace -c counts from the start: subtract a start-up-only run below.
                    d.stop()
                    time.sleep(0.3)
                    res[c][f"strace_{what}"] = (strace_counts(path), n, base)
                path = os.path.join(work, f"strace-{c}-idle.txt")
                d = Drain(a.build, c, bsim.socket_path, work, f"{c}-strace-idle",
                          wrap=["strace", "-c", "-f", "-o", path])
                d.wait(1, 60)
                time.sleep(0.3)
                d.stop()
                time.sleep(0.3)
                res[c]["strace_idle"] = strace_counts(path)
    finally:
        bsim.stop()
        psim.stop()

    keys = ["batch_cpu_us", "batch_vcs", "p1000_cpu_us", "p1000_vcs", "p10000_cpu_us",
            "p10000_vcs", "hwm_kib"]
    print(f"runs={a.runs} k={a.k} (work dir {work})")
    print("| figure | " + " | ".join(clients) + " |")
    print("|---" * (len(clients) + 1) + "|")
    for k in keys:
        digits = 0 if k == "hwm_kib" else (3 if "vcs" in k else 2)
        print(f"| {k} | " + " | ".join(fmt(res[c].get(k, []), digits) for c in clients) + " |")
    print("| paced closes (1k; 10k) | " + " | ".join(
        f"{res[c].get('p1000_closed', [])}; {res[c].get('p10000_closed', [])}"
        for c in clients) + " |")
    for c in clients:
        print(f"{c}: {res[c]['stop']}")
    if a.strace:
        for c in clients:
            idle = res[c]["strace_idle"]
            for what in ("batch", "p10000"):
                calls, n, _ = res[c][f"strace_{what}"]
                if not n:
                    print(f"{c} {what}: closed under strace")
                    continue
                per = {s: (v - idle.get(s, 0)) / n for s, v in calls.items()}
                per = {s: v for s, v in per.items() if v > 0.001}
                total = sum(per.values())
                print(f"{c} {what} syscalls/line {total:.3f}: " + ", ".join(
                    f"{s} {v:.3f}" for s, v in sorted(per.items(), key=lambda x: -x[1])))


if __name__ == "__main__":
    main()
