#!/usr/bin/env python3
"""tailscaled's own cost per peer add+remove with and without a bus watcher, on a real daemon.

Upstream's giant-tailnet change measured tailscaled's CPU per peer add+remove with no IPN bus
watcher and with one. This reproduces that with the real tailscaled v1.102.5 of
scripts/real-tailscale and the project's control program (realts-control): control serves N
fake peers to one logged-in tailscaled, then sends K add+remove pairs, each as its own delta
MapResponse (a PeersChanged with one new node, then a PeersRemoved of it), and the harness reads
tailscaled's CPU (utime+stime of every thread, /proc/PID/task/*/schedstat) over those K pairs.

The configurations run one after the other on the same daemon, interleaved round by round:
  none     no bus watcher
  agent    ts-kube-agent watching (default mask), no Secret/ConfigMap target (watch-only)
  track    ts-kube-agent --track-peers
  dom      the DOM baseline (tools/bench-baselines/dom-agent), default mask
Per watcher it also reports the watcher's CPU per pair, per bus line (the agent's
ts_kube_agent_bus_lines_total) and its peak RSS (VmHWM).

What the figures contain: on a whole daemon at N=10k each delta that adds or removes a peer
makes tailscaled v1.102.5 run a full wgengine Reconfig (its log: "wgengine: Reconfig: configuring
router", "user dialer", "tsdial: bart table size: 10003", "configuring DNS"), O(N) per op (~88 ms
of CPU per pair); at N=1k that costs ~0.6 ms per pair; at N=50k the log showed the dialer with 4
prefixes and no Reconfig per delta, and ~0.5 ms per pair (not investigated further: run with
--keep-logs and read tailscaled-N.log). Upstream's 0.11-0.15 ms/op covers the bus side only. The bus side is what a watcher adds: with
the default mask (16384) tailscaled sends the watcher one empty Notify (~160 B) per op, with
--track-peers (53248) one PeersChanged or PeersRemoved delta.

A pair is done when tailscaled and the watcher have gone quiet (no CPU for a settle window):
nothing is asked of tailscaled during a measurement (no status call), so the figures are its
cost alone. Every process and temp dir is removed at exit; everything listens on 127.0.0.1.

    scripts/bench/real_tailscaled.py --build build --n 1000 10000 --pairs 500 --rounds 3
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from procstat import Proc, now, wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = ("none", "agent", "track", "dom")


class Admin:
    """A keep-alive HTTP client of realts-control's admin API."""

    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def post(self, path, body):
        data = json.dumps(body).encode()
        for attempt in range(2):
            try:
                self.conn.request("POST", path, body=data,
                                  headers={"Content-Type": "application/json"})
                r = self.conn.getresponse()
                return r.status, r.read()
            except (http.client.HTTPException, OSError):
                if attempt:
                    raise
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def must(self, path, body, retry_conflict_s=60.0):
        """POSTs; a 409 (the node's raw queue of 1024 is full) is retried for a while."""
        deadline = now() + retry_conflict_s
        sleep = 0.001
        while True:
            status, out = self.post(path, body)
            if status == 200:
                return json.loads(out)
            if status == 409 and now() < deadline:
                time.sleep(sleep)
                sleep = min(sleep * 2, 0.05)
                continue
            raise RuntimeError(f"admin {path}: {status} {out.decode(errors='replace').strip()}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settle(procs, quiet_s, max_s):
    """Waits until none of procs used more than 1% of a CPU over quiet_s; returns their CPU
    readings then. Raises TimeoutError after max_s."""
    deadline = now() + max_s
    last = [p.cpu_ns() for p in procs]
    while True:
        time.sleep(quiet_s)
        cur = [p.cpu_ns() for p in procs]
        if all(c - l <= quiet_s * 1e9 * 0.01 for c, l in zip(cur, last)):
            return cur
        if now() > deadline:
            raise TimeoutError(f"processes still busy after {max_s} s: "
                               + ", ".join(p.name for p in procs))
        for p in procs:
            p.check_alive()
        last = cur


def metric(admin_port, name):
    """The value of one unlabelled metric of the agent's /metrics; None when not (yet) served."""
    c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=10)
    try:
        c.request("GET", "/metrics")
        body = c.getresponse().read().decode()
    except OSError:
        return None
    finally:
        c.close()
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="realbench-")
        self.log_dir = os.path.join(self.work, "logs")
        os.makedirs(self.log_dir)
        self.procs = []
        self.fake = 0  # fake peers sent by this harness (PeersChanged), for unique IDs

    def log(self, *a):
        print(*a, file=sys.stderr, flush=True)

    def start(self, argv, name, **kw):
        p = Proc(argv, name=name, log_dir=self.log_dir, **kw)
        self.procs.append(p)
        return p

    def cleanup(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception as e:  # keep stopping the others
                self.log(f"stop {p.name}: {e}")
        if self.args.keep_logs:
            self.log(f"logs kept in {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def cli(self, *args):
        return subprocess.run([os.path.join(self.bin, "tailscale"), f"--socket={self.sock}",
                               *args], capture_output=True, text=True, timeout=120)

    def up(self, n):
        """Control and one logged-in tailscaled for a tailnet of n fake peers."""
        d = os.path.join(self.work, f"n{n}")
        os.makedirs(os.path.join(d, "state"))
        env_file = os.path.join(d, "control.env")
        self.control = self.start([os.path.join(self.bin, "realts-control"), "--env-file",
                                   env_file], name=f"control-{n}")
        wait_for(lambda: os.path.exists(env_file), 60, interval=0.05, what="control's env file")
        env = dict(line.strip().split("=", 1) for line in open(env_file) if "=" in line)
        url, self.admin_url = env["REALTS_CONTROL_URL"], env["REALTS_ADMIN_URL"]
        self.admin = Admin(self.admin_url)
        self.sock = os.path.join(d, "tailscaled.sock")
        # As tests/integration/real_tailscaled (and upstream's tstest/integration) start it.
        denv = dict(os.environ, HOME=d, TS_LOGS_DIR=d, TS_ASSUME_NETWORK_UP_FOR_TEST="1",
                    TS_DISABLE_PORTMAPPER="1", TS_PANIC_IF_HIT_MAIN_CONTROL="1",
                    TS_NETCHECK_GENERATE_204_URL=url + "/generate_204")
        self.tsd = self.start([os.path.join(self.bin, "tailscaled"), "--tun=userspace-networking",
                               f"--statedir={d}/state", f"--socket={self.sock}", "--port=0",
                               "--no-logs-no-support"], name=f"tailscaled-{n}", env=denv)
        wait_for(lambda: self.cli("status", "--json").returncode in (0, 1) and
                 os.path.exists(self.sock), 60, interval=0.1, what="tailscaled's socket")
        out = self.cli("up", f"--login-server={url}", "--hostname=bench-a", "--timeout=60s")
        if out.returncode != 0:
            raise RuntimeError(f"tailscale up: {out.stdout}{out.stderr}")
        st = json.loads(self.cli("status", "--json").stdout)
        self.self_id = st["Self"]["ID"]
        t0 = now()
        self.admin.must("/peers/add", {"count": n})

        def peers():
            s = json.loads(self.cli("status", "--json").stdout or "{}")
            return len(s.get("Peer") or {}) >= n
        wait_for(peers, 600, interval=0.5, what=f"{n} peers in tailscale status")
        self.log(f"N={n}: tailscaled has {n} peers after {now() - t0:.1f} s")
        settle([self.tsd], 0.5, 120)

    def fake_node(self):
        self.fake += 1
        i = self.fake
        nid = 5_000_000 + i
        v4 = f"100.{80 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}/32"
        v6 = f"fd7a:115c:a1e0:cd34::{i:x}/128"
        return {
            "ID": nid, "StableID": f"BENCHPEER{i:08d}", "Name": f"churn-{i}.tail-realts.ts.net.",
            "User": nid, "Key": "nodekey:" + os.urandom(32).hex(),
            "Machine": "mkey:" + os.urandom(32).hex(),
            "DiscoKey": "discokey:" + os.urandom(32).hex(),
            "Addresses": [v4, v6], "AllowedIPs": [v4, v6], "MachineAuthorized": True,
            "Online": False, "Hostinfo": {"Hostname": f"churn-{i}", "OS": "linux"},
        }

    def churn(self, k):
        """k add+remove pairs, each a delta MapResponse to the node's map stream."""
        for _ in range(k):
            node = self.fake_node()
            self.admin.must("/raw", {"node": self.self_id,
                                     "response": {"PeersChanged": [node]}})
            self.admin.must("/raw", {"node": self.self_id,
                                     "response": {"PeersRemoved": [node["ID"]]}})

    def watcher(self, cfg):
        if cfg == "none":
            return None, None
        if cfg in ("agent", "track"):
            port = free_port()
            argv = [os.path.join(self.args.build, "agent/ts-kube-agent"), "--socket", self.sock,
                    "--secret=", "--admin-addr", f"127.0.0.1:{port}", "--log-format", "text"]
            if cfg == "track":
                argv.append("--track-peers")
            p = self.start(argv, name=cfg)
            wait_for(lambda: (metric(port, "ts_kube_agent_bus_connected") or 0) >= 1
                     if p.alive() else p.check_alive(), 60, interval=0.05,
                     what=f"{cfg} connected to the bus")
            return p, port
        p = self.start([os.path.join(self.args.build, "tools/bench-baselines/dom-agent"),
                        "--socket", self.sock], name="dom", capture_stdout=True)
        p.wait_line(lambda t: t.startswith("identity "), 0, 60)
        return p, None

    def measure(self, n, cfg, k):
        w, port = self.watcher(cfg)
        procs = [self.tsd] + ([w] if w else [])
        try:
            i0 = settle(procs, self.args.quiet, 120)
            # Idle cost (timers, keep-alives) over a second, to tell it from the churn's: a
            # long churn window at large N carries more of it.
            time.sleep(1.0)
            c0 = [p.cpu_ns() for p in procs]
            idle = [(c - i) / 1e6 for c, i in zip(c0, i0)]
            lines0 = metric(port, "ts_kube_agent_bus_lines_total") if port else None
            bytes0 = metric(port, "ts_kube_agent_bus_bytes_total") if port else None
            t0 = now()
            self.churn(k)
            c1 = settle(procs, self.args.quiet, 600)
            wall = now() - t0 - self.args.quiet
            r = {"n": n, "config": cfg, "pairs": k, "wall_s": wall,
                 "tsd_ms_per_pair": (c1[0] - c0[0]) / k / 1e6, "tsd_idle_ms_per_s": idle[0]}
            if w:
                r["watcher_ms_per_pair"] = (c1[1] - c0[1]) / k / 1e6
                r["watcher_hwm_mib"] = w.hwm_kib() / 1024
                r["watcher_idle_ms_per_s"] = idle[1]
                if port:
                    lines = metric(port, "ts_kube_agent_bus_lines_total") - lines0
                    r["bus_lines"] = lines
                    r["bus_bytes"] = metric(port, "ts_kube_agent_bus_bytes_total") - bytes0
                    r["watcher_us_per_line"] = ((c1[1] - c0[1]) / lines / 1e3) if lines else None
            return r
        finally:
            if w:
                w.stop()
                self.procs.remove(w)

    def run(self):
        a = self.args
        self.bin = subprocess.run([os.path.join(ROOT, "scripts/real-tailscale/build.sh")],
                                  check=True, capture_output=True, text=True).stdout.strip()
        results = []
        deadline = now() + a.budget
        for n in a.n:
            if now() > deadline:
                self.log(f"budget of {a.budget} s spent: N={n} not run")
                break
            self.up(n)
            for rnd in range(a.rounds):
                for cfg in a.configs:
                    if now() > deadline:
                        self.log(f"budget spent: N={n} round {rnd + 1} {cfg} not run")
                        break
                    r = self.measure(n, cfg, a.pairs)
                    r["round"] = rnd + 1
                    results.append(r)
                    self.log(json.dumps(r))
            self.check_peers(n)
            self.control_down()
        return results

    def check_peers(self, n):
        """After the churn tailscaled must hold exactly the n served peers again: every add was
        followed by its remove (a missed delta would show here)."""
        st = json.loads(self.cli("status", "--json").stdout or "{}")
        peers = st.get("Peer") or {}
        churn = [p for p in peers.values() if p.get("HostName", "").startswith("churn-")]
        if len(peers) != n or churn:
            raise RuntimeError(f"N={n}: tailscaled has {len(peers)} peers after the churn "
                               f"({len(churn)} churn peers left), expected {n} and 0")

    def control_down(self):
        for p in (self.tsd, self.control):
            p.stop()
            self.procs.remove(p)


def med_of(rs, key):
    v = [r[key] for r in rs if key in r]
    return f"{statistics.median(v):.2f}" if v else "-"


def table(results, load):
    out = []
    out.append(f"load average at start/end: {load[0]} / {load[1]}")
    out.append("")
    out.append("| N | watcher | tailscaled ms/pair (median, min-max) | vs none | "
               "watcher ms/pair | watcher µs/bus line | watcher peak RSS MiB | "
               "idle CPU ms/s tailscaled, watcher | runs |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    ns = sorted({r["n"] for r in results})
    for n in ns:
        base = None
        for cfg in CONFIGS:
            rs = [r for r in results if r["n"] == n and r["config"] == cfg]
            if not rs:
                continue
            t = [r["tsd_ms_per_pair"] for r in rs]
            med = statistics.median(t)
            if cfg == "none":
                base = med
            vs = f"{(med / base - 1) * 100:+.1f}%" if base and cfg != "none" else "-"
            wm = [r["watcher_ms_per_pair"] for r in rs if "watcher_ms_per_pair" in r]
            wl = [r["watcher_us_per_line"] for r in rs if r.get("watcher_us_per_line")]
            hw = [r["watcher_hwm_mib"] for r in rs if "watcher_hwm_mib" in r]
            lines = [r["bus_lines"] for r in rs if "bus_lines" in r]
            bpl = [r["bus_bytes"] / r["bus_lines"] for r in rs if r.get("bus_lines")
                   and "bus_bytes" in r]
            name = {"none": "no watcher", "agent": "ts-kube-agent", "track":
                    "ts-kube-agent --track-peers", "dom": "DOM baseline"}[cfg]
            out.append(
                f"| {n} | {name} | {med:.3f} ({min(t):.3f}-{max(t):.3f}) | {vs} | "
                + (f"{statistics.median(wm):.4f}" if wm else "-") + " | "
                + (f"{statistics.median(wl):.1f} ({statistics.median(lines):.0f} lines"
                   + (f", {statistics.median(bpl):.0f} B/line)" if bpl else ")")
                   if wl else ("0 lines" if lines else "-")) + " | "
                + (f"{max(hw):.1f}" if hw else "-") + " | "
                + med_of(rs, "tsd_idle_ms_per_s") + ", " + med_of(rs, "watcher_idle_ms_per_s")
                + f" | {len(rs)} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"))
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--pairs", type=int, default=500, help="add+remove pairs per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per N")
    ap.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    ap.add_argument("--quiet", type=float, default=0.3,
                    help="settle window: a process is done when it used < 1%% CPU over it (s)")
    ap.add_argument("--budget", type=float, default=1800,
                    help="stop starting new measurements after this many seconds")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--keep-logs", action="store_true")
    a = ap.parse_args()
    a.build = os.path.abspath(a.build)
    for b in ("agent/ts-kube-agent", "tools/bench-baselines/dom-agent"):
        if not os.access(os.path.join(a.build, b), os.X_OK):
            sys.exit(f"real_tailscaled: {a.build}/{b} is missing: build it first "
                     f"(cmake --build {a.build} --target ts-kube-agent dom-agent)")
    bench = Bench(a)

    def on_signal(sig, _):
        raise KeyboardInterrupt(f"signal {sig}")
    signal.signal(signal.SIGTERM, on_signal)
    load0 = " ".join(open("/proc/loadavg").read().split()[:3])
    try:
        results = bench.run()
    finally:
        bench.cleanup()
    load1 = " ".join(open("/proc/loadavg").read().split()[:3])
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"load": [load0, load1], "results": results}, f, indent=1)
    print(table(results, (load0, load1)))


if __name__ == "__main__":
    main()
