#!/usr/bin/env python3
"""SelfChange -> PATCH latency of ts-kube-agent on a quiet bus and on a busy one (blank lines
at fixed rates, one per write, as tailscaled sends them), optionally beside another agent
binary (BENCH_AGENT_BEFORE, e.g. a wrapper adding --bus-read-delay=0).

    python3 scripts/bench/paced_latency.py --build build [--rates "0 1000 10000"]
        [--samples 15] [--rounds 3] [--impls "agent_before agent"]

Latency = the time kube-emu logged the PATCH (millisecond resolution) - the wall time just
before POST /selfchange (a new name each time). It includes the publish quiet window
(--publish-wait, 20 ms by default). Consumers run in turn (round-major) against one tsbus-sim
(queue 128, one write per line) and one kube-emu.
"""
import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from consumers import make_consumer  # noqa: E402
from procstat import wait_for  # noqa: E402
from services import KubeEmu, TsbusSim  # noqa: E402


class Ctx:
    def __init__(self, build, work):
        self.build, self.work_dir = build, work
        self.log_dir = os.path.join(work, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.consumer_cpu = 1 if (os.cpu_count() or 1) > 1 else 0
        self.service_cpu = 0
        self.python_max_bytes = 8 << 30
        self.emu = None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--rates", default="0 1000 10000", help="blank lines/s; 0 = a quiet bus")
    ap.add_argument("--samples", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--impls", default="agent_before agent" if os.environ.get(
        "BENCH_AGENT_BEFORE") else "agent")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    rates = [int(x) for x in args.rates.split()]
    work = tempfile.mkdtemp(prefix="tsk-latency-")
    ctx = Ctx(build, work)
    ctx.emu = KubeEmu(build, work, ctx.log_dir, cpu=ctx.service_cpu)
    ctx.emu.start()
    sim = TsbusSim(build, os.path.join(work, "sim.sock"), 1000, 128, ctx.log_dir, "tsbus-sim")
    sim.start()
    seq = [0]

    def patch_times(secret):
        entries = ctx.emu.control.request("GET", "/log", {"after": seq[0]}) or []
        if isinstance(entries, dict):
            entries = entries.get("entries", entries.get("items", []))
        out = []
        for e in entries:
            seq[0] = max(seq[0], int(e.get("seq", 0)))
            if (e.get("method") == "PATCH" and f"/secrets/{secret}" in e.get("path", "")
                    and 200 <= int(e.get("status", 0)) < 300):
                t = datetime.datetime.fromisoformat(e["time"].replace("Z", "+00:00"))
                out.append(t.timestamp())
        return out

    results, closes, n = {}, {}, 0
    try:
        for rnd in range(args.rounds):
            for impl in args.impls.split():
                secret = f"lat-{impl.replace('_', '-')}-{rnd}"
                c = make_consumer(impl, ctx, sim.socket_path, secret, False)
                c.start()
                c.wait_progress(1, 60)
                time.sleep(0.5)
                patch_times(secret)
                for rate in rates:
                    closed0 = sim.stats().get("closed_slow", 0)
                    if rate:
                        sim.post("/pace", rate=rate, kind="blank", count=rate * 600)
                        time.sleep(0.3)
                    for _ in range(args.samples):
                        n += 1
                        t0 = time.time()
                        sim.post("/selfchange", body={"name": f"lat-{n}.tail3f9a2c.ts.net."})
                        got = wait_for(lambda: patch_times(secret) or None, 10, interval=0.002,
                                       what="the PATCH")
                        results.setdefault((impl, rate), []).append((got[0] - t0) * 1000)
                        time.sleep(0.12)  # past the quiet window
                    if rate:
                        sim.post("/pace", rate=0, count=0)
                    closes[(impl, rate)] = (closes.get((impl, rate), 0)
                                            + sim.stats().get("closed_slow", 0) - closed0)
                    time.sleep(0.3)
                c.stop()
    finally:
        sim.stop()
        ctx.emu.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("| consumer | bus | p50 ms | p90 ms | max ms | samples | fell-behind closes |")
    print("|---|---|---|---|---|---|---|")
    for (impl, rate), v in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        v = sorted(v)
        bus = "quiet" if rate == 0 else f"{rate:,} blank/s"
        print(f"| {impl} | {bus} | {statistics.median(v):.1f} | {v[int(len(v) * 0.9) - 1]:.1f} | "
              f"{v[-1]:.1f} | {len(v)} | {closes.get((impl, rate), 0)} |")


if __name__ == "__main__":
    main()
