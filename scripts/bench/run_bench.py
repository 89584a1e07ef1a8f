#!/usr/bin/env python3
"""The giant-tailnet benchmark, end to end. Run through scripts/bench.sh.

For each N, two tsbus-sim processes serve the bus: one with an unbounded per-watcher queue for
the back-to-back batches (so a burst of 20k events is measured, not refused), and one with
tailscaled's queue of 128 for the sustained-rate ladders (where falling behind gets the watcher
closed; docs/PROTOCOL.md#framing-and-the-fell-behind-close). kube-emu serves HTTPS for the agent
and the Python sidecar. The consumer under test is pinned to CPU 1; the simulators and this
harness share CPU 0.

Runs go run-major (run 1 at every N, then run 2, ...), so a busy spell on a shared machine
spreads over all N. Per consumer, N and run:
  default mode:  start-up (spawn -> identity written; the drain: -> InitialStatus read), idle
                 CPU, K SelfChanges (identity unchanged) + 1 marker, K blanks + 1 marker, 3 real
                 identity changes; peak and final RSS
  --track-peers: start-up, K add+remove pairs + 1 marker, peak RSS
Each batch is queued in the simulator while the consumer is stopped (SIGSTOP), then the
consumer is resumed, so it reads the batch back-to-back at its own speed. The batch ends with a
"marker": one SelfChange with a new name, whose write (for the drain: the line count) tells when
everything before it was consumed. CPU per event = the consumer's CPU delta over the batch /
events in it (marker included, nothing subtracted); wall per event = (time from resume to the
marker's write - the same time for a lone marker) / K.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from consumers import make_consumer  # noqa: E402
from procstat import now, wait_for  # noqa: E402
from services import KubeEmu, TsbusSim  # noqa: E402
import aims  # noqa: E402
import report  # noqa: E402

IMPL_ORDER = ["agent", "dom", "drain", "python"]
PACED_KINDS = ["selfchange", "blank"]
PACED_METRICS = ["cpu_us", "cpu_pct", "vcs", "rate"]


class Config:
    def __init__(self, quick):
        env = os.environ
        self.quick = quick
        default_ns = "1000" if quick else "10000 50000 100000 250000 500000"
        self.ns = [int(x) for x in env.get("BENCH_N", default_ns).split()]
        self.runs = int(env.get("BENCH_RUNS", "2" if quick else "5"))
        self.impls = env.get("BENCH_IMPLS", " ".join(IMPL_ORDER)).split()
        # Which sessions run per consumer and N: "default" (identity only) and/or "track"
        # (--track-peers). One of them alone is for a quick look at one figure.
        self.modes = env.get("BENCH_MODES", "default track").split()
        self.k_selfchange = int(env.get("BENCH_K_SELFCHANGE", "500" if quick else "20000"))
        self.k_blank = int(env.get("BENCH_K_BLANK", "2000" if quick else "100000"))
        self.k_pairs = int(env.get("BENCH_K_PAIRS", "500" if quick else "20000"))
        self.real_changes = 3
        self.ladder_seconds = float(env.get("BENCH_LADDER_SECONDS", "0.5" if quick else "2"))
        # Rate ladders (slow: a fresh start-up per consumer and mode) at the smallest and the
        # 250k (or largest) N by default; BENCH_LADDER_N="all" or a list overrides.
        ladder_env = env.get("BENCH_LADDER_N", "")
        if ladder_env == "none":
            self.ladder_ns = []
        elif ladder_env == "all":
            self.ladder_ns = list(self.ns)
        elif ladder_env:
            self.ladder_ns = [int(x) for x in ladder_env.split()]
        else:
            big = 250000 if 250000 in self.ns else max(self.ns)
            self.ladder_ns = sorted({min(self.ns), big})
        self.python_max_n = int(env.get("BENCH_PYTHON_MAX_N", "250000"))
        self.python_big_runs = int(env.get("BENCH_PYTHON_BIG_RUNS", "3"))
        self.python_big_n = 100000  # at and above this N Python and DOM get fewer runs
        self.dom_max_n = int(env.get("BENCH_DOM_MAX_N", "250000"))
        self.python_max_bytes = 8 << 30
        self.budget_s = float(env.get("BENCH_BUDGET_SECONDS", "1680"))  # stop before 30 min
        # Paced runs: one line per write at fixed rates (tsbus-sim POST /pace), the way a real
        # tailscaled flushes each Notify, so every line is a wakeup of the consumer.
        self.paced_only = env.get("BENCH_PACED_ONLY", "") not in ("", "0")
        self.paced = self.paced_only or env.get("BENCH_PACED", "1") not in ("", "0")
        self.paced_n = int(env.get("BENCH_PACED_N", "1000"))
        self.paced_rates = [int(x) for x in env.get(
            "BENCH_PACED_RATES", "100 1000 10000" if quick else "100 1000 10000 50000").split()]
        self.paced_kinds = env.get("BENCH_PACED_KINDS", " ".join(PACED_KINDS)).split()
        self.paced_modes = env.get("BENCH_PACED_MODES", "default track").split()
        self.paced_impls = env.get("BENCH_PACED_IMPLS", " ".join(self.impls)).split()
        self.paced_runs = int(env.get("BENCH_PACED_RUNS", "1" if quick else "3"))
        self.paced_seconds = float(env.get("BENCH_PACED_SECONDS", "1"))
        self.paced_min_lines = int(env.get("BENCH_PACED_MIN_LINES", "300"))

    def runs_for(self, impl, n):
        if impl in ("python", "dom") and n >= self.python_big_n:
            return min(self.runs, self.python_big_runs)
        return self.runs

    def wants(self, impl, n):
        if impl == "python" and n > self.python_max_n:
            return False
        if impl == "dom" and n > self.dom_max_n:
            return False
        return True


class Context:
    """What the consumers need: paths, the API server, CPUs."""

    def __init__(self, build, work_dir, cfg):
        self.build = build
        self.work_dir = work_dir
        self.log_dir = os.path.join(work_dir, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        ncpu = os.cpu_count() or 1
        self.consumer_cpu = 1 if ncpu > 1 else 0
        self.service_cpu = 0
        self.python_max_bytes = cfg.python_max_bytes
        self.emu = None


class Results:
    def __init__(self):
        self.measurements = {}
        self.notes = []

    def add(self, impl, n, metric, value):
        if value is None:
            return
        self.measurements.setdefault((impl, n, metric), []).append(value)

    def values(self, impl, n, metric):
        return self.measurements.get((impl, n, metric), [])

    def to_json(self, meta, aim_rows):
        return {"meta": meta, "notes": self.notes, "aims": aim_rows,
                "measurements": [{"impl": i, "n": n, "metric": m, "values": v}
                                 for (i, n, m), v in sorted(self.measurements.items())]}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Bench:
    def __init__(self, cfg, ctx):
        self.cfg, self.ctx = cfg, ctx
        self.res = Results()
        self.marker_seq = 0
        self.paced_restarts = 0
        self.t_start = now()

    # --- simulator helpers ----------------------------------------------------------------

    def marker(self, sim):
        self.marker_seq += 1
        sim.post("/selfchange", body={"name": f"bench-{self.marker_seq}.tail3f9a2c.ts.net."})

    def startup_timeout(self, n):
        return 60 + n / 2000  # the Python sidecar at 500k needs minutes

    def start_consumer(self, impl, sim, n, run, track):
        secret = f"bench-{impl.replace('_', '-')}-{n}-{run}-{'track' if track else 'default'}"
        c = make_consumer(impl, self.ctx, sim.socket_path, secret, track)
        t0 = c.start()
        t1 = c.wait_progress(1, self.startup_timeout(n))
        return c, t1 - t0

    def batch(self, c, sim, send, lines, events):
        """Queues `lines` bus lines with send(), then a marker, while the consumer is stopped
        (SIGSTOP), so the batch is ready back-to-back and the simulator's own speed does not
        count; resumes it and waits until it consumed them all."""
        p0, cpu0 = c.progress(), c.proc.cpu_ns()
        c.proc.pause()
        try:
            send()
            self.marker(sim)
        finally:
            t0 = now()
            c.proc.resume()
        target = p0 + lines + 1 if c.counts_lines else p0 + 1
        t1 = c.wait_progress(target, 120 + lines / 2000)
        cpu1 = c.proc.cpu_ns()
        return {"cpu_us": (cpu1 - cpu0) / 1000 / (events + 1), "wall_s": t1 - t0,
                "writes": 0 if c.counts_lines else c.progress() - p0 - 1}

    def marker_latency(self, c, sim):
        """Seconds from a lone marker to its write being seen (subtracted from batch walls)."""
        samples = []
        for _ in range(3):
            samples.append(self.batch(c, sim, lambda: None, 0, 0)["wall_s"])
        return statistics.median(samples)

    # --- sessions -----------------------------------------------------------------------

    def default_session(self, impl, n, run, sim):
        c, startup = self.start_consumer(impl, sim, n, run, track=False)
        R = self.res
        try:
            R.add(impl, n, "startup_s", startup)
            R.add(impl, n, "startup_cpu_s", c.proc.cpu_ns() / 1e9)
            R.add(impl, n, "startup_hwm_mib", c.proc.hwm_kib() / 1024)
            cpu0 = c.proc.cpu_ns()
            time.sleep(0.5)
            R.add(impl, n, "idle_cpu_pct", (c.proc.cpu_ns() - cpu0) / 0.5e9 * 100)
            lat = self.marker_latency(c, sim)
            k = self.cfg.k_selfchange
            b = self.batch(c, sim, lambda: sim.post("/selfchange-same", count=k), k, k)
            R.add(impl, n, "selfchange_cpu_us", b["cpu_us"])
            R.add(impl, n, "selfchange_wall_us", max(b["wall_s"] - lat, 0) / k * 1e6)
            if not c.counts_lines:
                R.add(impl, n, "writes_per_1k_selfchange", b["writes"] / k * 1000)
            k = self.cfg.k_blank
            b = self.batch(c, sim, lambda: sim.post("/blank", count=k), k, k)
            R.add(impl, n, "blank_cpu_us", b["cpu_us"])
            R.add(impl, n, "blank_wall_us", max(b["wall_s"] - lat, 0) / k * 1e6)
            if not c.counts_lines:
                R.add(impl, n, "writes_per_1k_blank", b["writes"] / k * 1000)
                p0 = c.progress()
                for _ in range(self.cfg.real_changes):
                    before = c.progress()
                    self.marker(sim)
                    c.wait_progress(before + 1, 60)
                time.sleep(0.2)  # a duplicate write would show up by now
                R.add(impl, n, "writes_per_real_change",
                      (c.progress() - p0) / self.cfg.real_changes)
            R.add(impl, n, "peak_hwm_mib", c.proc.hwm_kib() / 1024)
            R.add(impl, n, "end_rss_mib", c.proc.rss_kib() / 1024)
        finally:
            c.stop()

    def track_session(self, impl, n, run, sim):
        c, startup = self.start_consumer(impl, sim, n, run, track=True)
        R = self.res
        try:
            R.add(impl, n, "track_startup_s", startup)
            lat = self.marker_latency(c, sim)
            k = self.cfg.k_pairs
            b = self.batch(c, sim, lambda: sim.post("/churn", count=k), 2 * k, k)
            R.add(impl, n, "pair_cpu_us", b["cpu_us"])
            R.add(impl, n, "pair_wall_us", max(b["wall_s"] - lat, 0) / k * 1e6)
            if not c.counts_lines:
                R.add(impl, n, "writes_per_1k_pair", b["writes"] / (2 * k) * 1000)
            R.add(impl, n, "track_hwm_mib", c.proc.hwm_kib() / 1024)
        finally:
            c.stop()

    def ladder(self, impl, n, sim, track, rates):
        """Raises the churn rate step by step; returns the highest rate (pairs/s) the consumer
        kept up with before tsbus-sim closed it as fell-behind, CPU per line at that rate, and
        why the ladder stopped. A closed step is tried up to twice more with a fresh consumer
        (five retries per ladder at most): on a shared machine a few-ms stall of the simulator
        itself can overflow the queue once."""
        c, _ = self.start_consumer(impl, sim, n, "ladder", track)
        best, best_cpu, limit, retries = 0, None, None, 5
        step_tries = 0
        try:
            i = 0
            while i < len(rates):
                rate = rates[i]
                st0, cpu0, t0 = sim.stats(), c.proc.cpu_ns(), now()
                sim.post("/churn", rate=rate)
                time.sleep(self.cfg.ladder_seconds)
                sim.post("/churn", rate=0)
                t1 = now()
                time.sleep(0.3)  # let it drain what is queued
                st1 = sim.stats()
                closed = st1["closed_slow"] > st0["closed_slow"] or not c.proc.alive()
                pairs = st1["churn_pairs"] - st0["churn_pairs"]
                achieved = pairs / (t1 - t0)
                if closed:
                    if retries > 0 and step_tries < 2:
                        retries -= 1
                        step_tries += 1
                        c.stop()
                        c, _ = self.start_consumer(impl, sim, n, f"ladder-retry{retries}", track)
                        continue
                    limit = rate
                    break
                cpu1 = c.proc.cpu_ns()
                if achieved < 0.85 * rate:  # the simulator lost time on a busy machine
                    if retries > 0 and step_tries < 2:
                        retries -= 1
                        step_tries += 1
                        continue
                    limit = f"tsbus-sim reached only {achieved:,.0f} of {rate:,} pairs/s"
                    break
                best, best_cpu = rate, (cpu1 - cpu0) / 1000 / max(2 * pairs, 1)
                i += 1
                step_tries = 0
        finally:
            c.stop()
        return best, best_cpu, limit

    # --- paced runs ----------------------------------------------------------------------

    def paced_session(self, impl, n, run, sim, track):
        """One consumer, every paced kind and rate: tsbus-sim sends `count` lines one per write
        at the rate (queue 128, no coalescing, as tailscaled's per-Notify Flush). CPU and
        voluntary context switches are the consumer's deltas from the pace's start until the
        last line is sent (the drain: read) plus 50 ms, per line sent."""
        mode = "track" if track else "default"
        c, _ = self.start_consumer(impl, sim, n, f"paced-{mode}-{run}", track)
        R = self.res
        try:
            time.sleep(0.3)  # start-up's tail (the first write's reply) is not measured
            for kind in self.cfg.paced_kinds:
                for rate in self.cfg.paced_rates:
                    count = max(self.cfg.paced_min_lines, int(rate * self.cfg.paced_seconds))
                    st0 = sim.stats()
                    p0 = c.progress()
                    cpu0, vcs0, t0 = c.proc.cpu_ns(), c.proc.voluntary_switches(), now()
                    sim.post("/pace", rate=rate, kind=kind, count=count)
                    wait_for(lambda: sim.stats()["pace_left"] == 0 or not c.proc.alive(),
                             count / rate * 4 + 10, interval=0.02, what="the pace to end")
                    t_sent = now()
                    st1 = sim.stats()
                    sent = st1["pace_sent"] - st0["pace_sent"]
                    if c.counts_lines and c.proc.alive():
                        try:
                            c.wait_progress(p0 + sent, 10)
                        except TimeoutError:
                            pass
                    time.sleep(0.05)
                    alive = c.proc.alive()
                    closed = st1["closed_slow"] > st0["closed_slow"] or not alive
                    key = f"paced:{mode}:{kind}:{rate}"
                    if closed or sent == 0:
                        sim.post("/pace", rate=0, count=0)  # the rest of it, if it died
                        self.paced_restarts += 1
                        # A close while the socket had room: tsbus-sim's writer lagged.
                        lag = (st1.get("closed_slow_writer_lag", 0) >
                               st0.get("closed_slow_writer_lag", 0))
                        why = ("; its socket had room: the simulator's writer lagged"
                               if lag else "")
                        R.notes.append(f"Paced {impl} {mode} {kind} at {rate:,}/s (run "
                                       f"{run + 1}): closed as fell-behind by tsbus-sim "
                                       f"(queue 128{why}); no figure")
                        c.stop()
                        c, _ = self.start_consumer(impl, sim, n, f"paced-{mode}-{run}-r{self.paced_restarts}",
                                                   track)
                        time.sleep(0.3)
                        continue
                    cpu1, vcs1, t1 = c.proc.cpu_ns(), c.proc.voluntary_switches(), now()
                    R.add(impl, n, key + ":cpu_us", (cpu1 - cpu0) / 1000 / sent)
                    R.add(impl, n, key + ":cpu_pct", (cpu1 - cpu0) / (t1 - t0) / 1e7)
                    R.add(impl, n, key + ":vcs", (vcs1 - vcs0) / sent)
                    R.add(impl, n, key + ":rate", sent / max(t_sent - t0, 1e-6))
        finally:
            c.stop()

    def run_paced(self):
        cfg = self.cfg
        n = cfg.paced_n
        sock_dir = os.path.join(self.ctx.work_dir, "paced")
        os.makedirs(sock_dir, exist_ok=True)
        sim = TsbusSim(self.ctx.build, os.path.join(sock_dir, "paced.sock"), n, 128,
                       self.ctx.log_dir, f"tsbus-sim-paced-{n}", cpu=None,
                       coalesce_writes=False)
        self.sims.append(sim)
        sim.start()
        # Run-major, consumers interleaved, so a busy spell spreads over all of them.
        for run in range(cfg.paced_runs):
            for mode in cfg.paced_modes:
                for impl in cfg.paced_impls:
                    log(f"paced N={n} run {run + 1}/{cfg.paced_runs} {mode} {impl}")
                    self.guarded(self.paced_session, impl, n, run, sim, mode == "track")

    # --- the whole run ----------------------------------------------------------------------

    def over_budget(self):
        return now() - self.t_start > self.cfg.budget_s

    def start_sims(self, n):
        """The two simulators of one N (idle ones cost next to nothing)."""
        ctx = self.ctx
        sock_dir = os.path.join(ctx.work_dir, f"n{n}")
        os.makedirs(sock_dir, exist_ok=True)
        batch_sim = TsbusSim(ctx.build, os.path.join(sock_dir, "batch.sock"), n, 10_000_000,
                             ctx.log_dir, f"tsbus-sim-batch-{n}", cpu=ctx.service_cpu,
                             coalesce_writes=True)
        # Not pinned: a writer thread stalled for 2-3 ms behind another thread on a busy core
        # would overflow the queue of 128 at these rates by itself.
        rate_sim = TsbusSim(ctx.build, os.path.join(sock_dir, "rate.sock"), n, 128,
                            ctx.log_dir, f"tsbus-sim-rate-{n}", cpu=None, coalesce_writes=True)
        self.sims.extend([batch_sim, rate_sim])
        batch_sim.start()
        rate_sim.start()
        return batch_sim, rate_sim

    def run_sessions(self, sims):
        """Run-major: run 1 at every N, then run 2, ... so that a busy spell on the shared
        machine spreads over all N instead of biasing one of them."""
        cfg = self.cfg
        for run in range(cfg.runs):
            for n in cfg.ns:
                for impl in cfg.impls:
                    if not cfg.wants(impl, n) or run >= cfg.runs_for(impl, n):
                        continue
                    if self.over_budget():
                        self.note_budget(n, impl, run)
                        return
                    log(f"N={n} run {run + 1}/{cfg.runs_for(impl, n)} {impl}")
                    if "default" in cfg.modes:
                        self.guarded(self.default_session, impl, n, run, sims[n][0])
                    if "track" in cfg.modes:
                        self.guarded(self.track_session, impl, n, run, sims[n][0])

    def ladders(self, impl, n, sim):
        base = [5000, 10000, 20000, 35000, 50000, 70000, 100000]
        if self.cfg.quick:
            base = [1000, 5000]
        blank_best, blank_cpu, blank_limit = self.ladder(impl, n, sim, False, base)
        self.res.add(impl, n, "max_blank_rate", 2 * blank_best)
        self.res.add(impl, n, "ladder_blank_cpu_us", blank_cpu)
        pair_best, pair_cpu, pair_limit = self.ladder(impl, n, sim, True, base)
        self.res.add(impl, n, "max_pair_rate", pair_best)
        self.res.add(impl, n, "ladder_pair_cpu_us", pair_cpu)
        self.ladder_limits[(impl, n)] = (blank_limit, pair_limit)
        for mode, limit in (("default mode (blanks)", blank_limit),
                            ("--track-peers (pairs)", pair_limit)):
            if isinstance(limit, (int, float)):
                limit = f"closed as fell-behind at {limit:,} pairs/s"
            self.res.notes.append(f"Rate ladder {impl} N={n:,} {mode}: "
                                  + (limit or "kept up with every rate tried"))

    def guarded(self, fn, impl, n, *args):
        try:
            fn(impl, n, *args)
        except Exception as e:  # one failed session must not lose the whole run
            msg = f"{fn.__name__} {impl} N={n}: {type(e).__name__}: {e}"
            log("FAILED " + msg)
            traceback.print_exc(file=sys.stderr)
            self.res.notes.append("A session failed and is missing from the tables: " + msg)

    def note_budget(self, n, impl, run):
        msg = (f"Stopped at N={n} ({impl}, run {run + 1}) to stay inside the time budget of "
               f"{self.cfg.budget_s / 60:.0f} minutes.")
        if msg not in self.res.notes:
            self.res.notes.append(msg)
        log(msg)

    def run(self):
        self.ladder_limits = {}
        self.sims = []
        try:
            if self.cfg.paced:
                self.load_before = os.getloadavg()
                self.run_paced()
                self.load_after = os.getloadavg()
            if self.cfg.paced_only:
                return
            sims = {n: self.start_sims(n) for n in self.cfg.ns}
            self.run_sessions(sims)
            for n in self.cfg.ladder_ns:
                for impl in self.cfg.impls:
                    if not self.cfg.wants(impl, n):
                        continue
                    if self.over_budget():
                        self.note_budget(n, f"{impl} rate ladders", 0)
                        return
                    log(f"N={n} rate ladders {impl}")
                    self.guarded(self.ladders, impl, n, sims[n][1])
        finally:
            for sim in self.sims:
                sim.stop()


def machine_meta(build, cfg, elapsed, bench_ref=None):
    def sh(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""
    model = next((line.split(":", 1)[1].strip() for line in sh("lscpu").splitlines()
                  if line.startswith("Model name")), platform.processor())
    mem_kib = next((int(line.split()[1]) for line in open("/proc/meminfo")
                    if line.startswith("MemTotal")), 0)
    build_type = next((line.split("=", 1)[1] for line in
                       open(os.path.join(build, "CMakeCache.txt"))
                       if line.startswith("CMAKE_BUILD_TYPE:")), "?").strip()
    dirty = bool(sh("git", "status", "--porcelain", "--untracked-files=no"))
    return {
        "cpu_model": model, "cores": os.cpu_count(), "mem_gib": round(mem_kib / 1048576, 1),
        "kernel": platform.release(), "commit": sh("git", "rev-parse", "--short=12", "HEAD"),
        "dirty": dirty, "build_type": build_type, "quick": cfg.quick,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_s": elapsed,
        "paced_n": cfg.paced_n if cfg.paced else None,
        "paced_runs": cfg.paced_runs,
        "loadavg_start": getattr(bench_ref, "load_before", None),
        "loadavg_end": getattr(bench_ref, "load_after", None),
        "method_runs": (f"{cfg.runs} runs per figure (median [min-max]); the Python sidecar and "
                        f"the DOM baseline {cfg.python_big_runs} runs at N >= "
                        f"{cfg.python_big_n:,}, the Python sidecar none above "
                        f"{cfg.python_max_n:,} and the DOM baseline none above "
                        f"{cfg.dom_max_n:,}; rate ladders 1 run, at N = "
                        + ", ".join(f"{n:,}" for n in cfg.ladder_ns)),
        "method": (__doc__.split("\n", 2)[2].strip()
                   + f"\n\nBatch sizes: K = {cfg.k_selfchange:,} SelfChanges, {cfg.k_blank:,} "
                     f"blanks, {cfg.k_pairs:,} add+remove pairs (each pair is two bus lines, a "
                     f"PeersRemoved then a PeersChanged; a plain watcher gets two blanks). Rate "
                     f"ladders: churn at 5k, 10k, 20k, 35k, 50k, 70k, 100k pairs/s for {cfg.ladder_seconds:g} s "
                     f"each against the queue-128 simulator, until it closes the watcher as "
                     f"fell-behind (docs/PROTOCOL.md#framing-and-the-fell-behind-close) three times at one rate (a fresh consumer each try). Both simulators write what is queued for a watcher "
                     f"in one send (up to 16 KiB; tailscaled writes one Notify per send, which one "
                     f"shared core cannot do at 100k lines/s), so the slack before a closure is "
                     f"the socket buffer, 16 KiB and the queue of 128."),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--plots", required=True)
    ap.add_argument("--work", help="keep logs and results.json here")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    cfg = Config(os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    work = args.work or tempfile.mkdtemp(prefix="tsk-bench-")
    os.makedirs(work, exist_ok=True)
    ctx = Context(build, work, cfg)
    log(f"N={cfg.ns} runs={cfg.runs} impls={cfg.impls} work={work}")
    bench = Bench(cfg, ctx)
    ctx.emu = KubeEmu(build, work, ctx.log_dir, cpu=ctx.service_cpu)
    ctx.emu.start()
    try:
        bench.run()
    finally:
        ctx.emu.stop()
    meta = machine_meta(build, cfg, now() - bench.t_start, bench)
    aim_rows = [] if cfg.paced_only else aims.evaluate(bench.res, cfg, bench.ladder_limits)
    data = bench.res.to_json(meta, aim_rows)
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(data, f, indent=1)
    res = report.Results(data)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    plot_files = [] if cfg.paced_only else report.draw_plots(res, args.plots)
    rel = os.path.relpath(args.plots, os.path.dirname(os.path.abspath(args.out)))
    if cfg.paced_only:
        # Only the paced section, to stdout and to --out (never over the full report by
        # default: scripts/bench.sh --paced-only points --out into the work dir).
        text = report.paced_section(res)
        print(text)
        with open(args.out, "w") as f:
            f.write(text)
    else:
        report.write_keeping(args.out, report.render(res, plot_files, rel))
    log(f"wrote {args.out} and {args.plots}/ in {(now() - bench.t_start) / 60:.1f} min; "
        f"logs in {work}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
