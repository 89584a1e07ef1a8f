#!/usr/bin/env python3
"""A fleet of ts-kube-agent processes against one real kube-apiserver (Python 3 stdlib only).

Starts the cached Kubernetes control plane (scripts/real-apiserver/start.sh: etcd,
kube-apiserver, kube-controller-manager on 127.0.0.1), a namespace, one ServiceAccount with a
Role for Secrets and a kubeconfig holding a TokenRequest token for it (so the agents' requests go
through API Priority and Fairness as a workload's would; the admin user is exempt from it). Then,
for each profile (a set of agent flags):

  1. start --sims tsbus-sim processes (no peers) and N agents, agent i watching sim i % sims and
     writing its own Secret fleet-<profile>-<i>; sim k's Self is node-<k>.<old suffix>.
  2. wait until every Secret holds its node's old name (the fleet's start-up).
  3. the event: every node's name changes at once, as when a tailnet's MagicDNS suffix changes.
     Each sim gets --storm SelfChanges --storm-gap apart (the last one carries the final name
     node-<k>.<new suffix>; storm > 1 models a flapping control plane).
  4. poll `kubectl get secrets -o json` once a second until every Secret's device_fqdn is the
     final name; meanwhile sample the API server's /metrics once a second.
  5. read the API server's and every agent's /metrics, stop the agents and sims, delete the
     Secrets.

Figures per profile: the API server's secret writes (PATCH/POST/PUT) during the event and their
peak per second, its 429s (request codes and APF rejections), its p99 PATCH latency (from the
apiserver_request_duration_seconds histogram delta), the agents' request counts and p99 (from
ts_kube_agent_api_request_duration_seconds), the time until every Secret is right (kubectl poll
at 1 s resolution, and the last agent's "identity written" log time at 1 ms), the agents' total
CPU and the API server's CPU over the event, and its peak RSS. Prints a markdown table.

Everything runs on loopback; every process started here is stopped and the temp dir removed on
exit (also on SIGINT/SIGTERM and at --deadline).

    scripts/bench/fleet.py --agents 50
    scripts/bench/fleet.py --agents 200 --sims 20 \
        --profile default: --profile unlimited:--api-qps=1000000,--api-burst=100000,--publish-wait=0s:0s
"""
import argparse
import base64
import concurrent.futures
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NS = "fleet"
OLD_SUFFIX = "tailold1.ts.net"
NEW_SUFFIX = "tailnew2.ts.net"
CLK_TCK = os.sysconf("SC_CLK_TCK")
WRITE_VERBS = ("PATCH", "POST", "PUT", "APPLY")


class Deadline(Exception):
    pass


def log(msg):
    print(f"fleet: {msg}", file=sys.stderr, flush=True)


def now():
    return time.monotonic()


# --- Prometheus text ----------------------------------------------------------------------------
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prom(text, names):
    """[(name, {labels}, value)] for the samples whose name is in names."""
    out = []
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = SAMPLE.match(line)
        if not m or m.group(1) not in names:
            continue
        labels = dict(LABEL.findall(m.group(3) or ""))
        try:
            out.append((m.group(1), labels, float(m.group(4))))
        except ValueError:
            pass
    return out


def total(samples, name, **want):
    return sum(v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in want.items()))


def buckets(samples, name, **want):
    """{le: cumulative count} summed over the samples matching want."""
    b = {}
    for n, l, v in samples:
        if n == name and all(l.get(k) == x for k, x in want.items()):
            le = float(l["le"])
            b[le] = b.get(le, 0.0) + v
    return b


def quantile(q, before, after):
    """histogram_quantile over the delta of two cumulative bucket maps (linear in a bucket)."""
    delta = {le: after.get(le, 0.0) - before.get(le, 0.0) for le in after}
    les = sorted(delta)
    if not les or delta[les[-1]] <= 0:
        return None
    rank = q * delta[les[-1]]
    prev_le, prev_c = 0.0, 0.0
    for le in les:
        c = delta[le]
        if c >= rank:
            if le == float("inf"):
                return prev_le  # above the last finite bound: report that bound
            return prev_le + (le - prev_le) * ((rank - prev_c) / (c - prev_c) if c > prev_c else 1)
        prev_le, prev_c = le, c
    return les[-1]


# --- processes --------------------------------------------------------------------------------
def proc_cpu_s(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_hwm_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Fleet:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="tsk-fleet.")
        self.cp_dir = os.path.join(self.tmp, "cp")
        self.procs = []  # every Popen we started that is still ours
        self.env = {}

    # -- control plane
    def start_control_plane(self):
        log(f"starting the control plane in {self.cp_dir}")
        env = dict(os.environ, TSK_APISERVER_EXTRA_ARGS=" ".join(self.args.apiserver_arg))
        subprocess.run([os.path.join(ROOT, "scripts/real-apiserver/start.sh"), self.cp_dir],
                       check=True, env=env)
        with open(os.path.join(self.cp_dir, "env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                self.env[k] = v
        with open(self.env["TSK_APISERVER_ADMIN_TOKEN_FILE"]) as f:
            self.admin_token = f.read().strip()
        self.ssl = ssl.create_default_context(cafile=self.env["TSK_APISERVER_CA"])
        self.apiserver_pid = int(self.env["TSK_APISERVER_PID"])
        self.etcd_pid = int(self.env["TSK_ETCD_PID"])

    def kubectl(self, *a, stdin=None):
        return subprocess.run([self.env["TSK_KUBECTL"], "--kubeconfig",
                               self.env["TSK_APISERVER_KUBECONFIG"], *a],
                              input=stdin, capture_output=True, text=True, check=True).stdout

    def setup_namespace(self):
        self.kubectl("create", "namespace", NS)
        self.kubectl("-n", NS, "create", "serviceaccount", "agent")
        self.kubectl("-n", NS, "create", "role", "agent", "--verb=get,create,patch,update",
                     "--resource=secrets")
        self.kubectl("-n", NS, "create", "rolebinding", "agent", "--role=agent",
                     f"--serviceaccount={NS}:agent")
        token = self.kubectl("-n", NS, "create", "token", "agent", "--duration=2h").strip()
        self.agent_kubeconfig = os.path.join(self.tmp, "agent.kubeconfig")
        with open(self.agent_kubeconfig, "w") as f:
            f.write(f"""apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: {self.env['TSK_APISERVER_URL']}
    certificate-authority: {self.env['TSK_APISERVER_CA']}
users:
- name: agent
  user:
    token: {token}
contexts:
- name: c
  context: {{cluster: c, user: agent, namespace: {NS}}}
current-context: c
""")
        os.chmod(self.agent_kubeconfig, 0o600)

    def apiserver_metrics(self):
        req = urllib.request.Request(self.env["TSK_APISERVER_URL"] + "/metrics",
                                     headers={"Authorization": f"Bearer {self.admin_token}"})
        with urllib.request.urlopen(req, context=self.ssl, timeout=10) as r:
            text = r.read().decode()
        return parse_prom(text, {"apiserver_request_total",
                                 "apiserver_request_duration_seconds_bucket",
                                 "apiserver_flowcontrol_rejected_requests_total",
                                 "apiserver_flowcontrol_current_inqueue_requests"})

    def secret_names(self, prefix):
        """{secret name: device_fqdn} for the Secrets whose name starts with prefix."""
        out = {}
        items = json.loads(self.kubectl("-n", NS, "get", "secrets", "-o", "json"))["items"]
        for s in items:
            name = s["metadata"]["name"]
            if name.startswith(prefix):
                raw = (s.get("data") or {}).get("device_fqdn")
                out[name] = base64.b64decode(raw).decode() if raw else None
        return out

    # -- processes
    def spawn(self, argv, logfile):
        f = open(logfile, "wb")
        p = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)
        f.close()
        self.procs.append(p)
        return p

    def stop_procs(self, procs, timeout=15):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        end = now() + timeout
        for p in procs:
            try:
                p.wait(max(0.1, end - now()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs = [p for p in self.procs if p not in procs]

    def cleanup(self):
        self.stop_procs(list(self.procs), timeout=5)
        # stop.sh works from DIR/pids, which start.sh writes before each process is up: an
        # interrupted start is stopped too.
        if os.path.isdir(self.cp_dir):
            subprocess.run([os.path.join(ROOT, "scripts/real-apiserver/stop.sh"), self.cp_dir])
        if self.args.keep_logs:
            log(f"logs kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- one profile
    def run_profile(self, pname, flags):
        a = self.args
        d = os.path.join(self.tmp, pname)
        os.makedirs(d)
        prefix = f"fleet-{pname}-"
        sims, ports = [], []
        for k in range(a.sims):
            portfile = os.path.join(d, f"sim{k}.port")
            sims.append(self.spawn([a.sim_bin, "--socket", os.path.join(d, f"s{k}.sock"),
                                    "--peers", "0", "--quiet", "--control-port-file", portfile,
                                    "--self-name", f"node-{k}.{OLD_SUFFIX}.",
                                    "--self-hostname", f"node-{k}",
                                    "--self-stable-id", f"nFleet{k}CNTRL",
                                    "--magic-dns-suffix", OLD_SUFFIX],
                                   os.path.join(d, f"sim{k}.log")))
            ports.append(portfile)
        end = now() + 20
        while not all(os.path.exists(p) for p in ports):
            if now() > end:
                raise RuntimeError(f"tsbus-sim did not start; see {d}/sim*.log")
            time.sleep(0.05)
        ports = [int(open(p).read()) for p in ports]

        api0 = self.apiserver_metrics()
        t_spawn = now()
        agents = []
        for i in range(a.agents):
            agents.append(self.spawn([a.agent_bin, f"--socket={d}/s{i % a.sims}.sock",
                                      f"--secret={prefix}{i}", f"--namespace={NS}",
                                      f"--kubeconfig={self.agent_kubeconfig}",
                                      "--admin-addr=127.0.0.1:0", "--log-format=json",
                                      "--drift-check-interval=0", *flags],
                                     os.path.join(d, f"agent{i}.log")))
        old = {f"{prefix}{i}": f"node-{i % a.sims}.{OLD_SUFFIX}." for i in range(a.agents)}
        new = {f"{prefix}{i}": f"node-{i % a.sims}.{NEW_SUFFIX}." for i in range(a.agents)}
        startup_s = self.wait_secrets(prefix, old, a.timeout, agents)
        if startup_s is None:
            raise RuntimeError(f"profile {pname}: the fleet did not write every Secret within "
                               f"{a.timeout} s; see {d}/agent*.log")
        startup_s = now() - t_spawn
        log(f"{pname}: {a.agents} agents wrote their Secrets {startup_s:.1f} s after spawn")
        startup_api = self.apiserver_metrics()
        time.sleep(1.5)  # let the start-up writes drain out of the histograms' window

        # The event.
        api_before = self.apiserver_metrics()
        cpu_before = sum(proc_cpu_s(p.pid) for p in agents)
        api_cpu_before = proc_cpu_s(self.apiserver_pid)
        t0_wall = time.time()
        t0 = now()
        # One thread per sim, so every node's changes start together and keep their pace.
        def storm(k, port):
            for c in range(a.storm):
                last = c == a.storm - 1
                name = f"node-{k}.{NEW_SUFFIX}." if last else f"node-{k}-flap{c}.{NEW_SUFFIX}."
                req = urllib.request.Request(f"http://127.0.0.1:{port}/selfchange", method="POST",
                                             data=json.dumps({"name": name}).encode())
                urllib.request.urlopen(req, timeout=10).read()
                if not last:
                    time.sleep(a.storm_gap)

        with concurrent.futures.ThreadPoolExecutor(max_workers=len(ports)) as pool:
            for f in [pool.submit(storm, k, port) for k, port in enumerate(ports)]:
                f.result()
        storm_s = now() - t0
        # Poll: kubectl once a second, apiserver /metrics once a second.
        peak_writes_per_s, last_writes, last_t = 0.0, self.writes(api_before), t0
        converged_s = None
        while now() - t0 < a.timeout:
            time.sleep(max(0.0, 1.0 - (now() - last_t)))
            m = self.apiserver_metrics()
            w, t = self.writes(m), now()
            peak_writes_per_s = max(peak_writes_per_s, (w - last_writes) / (t - last_t))
            last_writes, last_t = w, t
            got = self.secret_names(prefix)
            if all(got.get(k) == v for k, v in new.items()):
                converged_s = now() - t0
                break
        time.sleep(1.0)  # writes still in flight after the poll saw the last one
        api_after = self.apiserver_metrics()
        cpu_s = sum(proc_cpu_s(p.pid) for p in agents) - cpu_before
        api_cpu_s = proc_cpu_s(self.apiserver_pid) - api_cpu_before
        agent_m = self.agent_metrics(d, agents)
        last_write_s = self.last_write_s(d, a.agents, t0_wall)
        dead = sum(1 for p in agents if p.poll() is not None)
        self.stop_procs(agents + sims)
        self.kubectl("-n", NS, "delete", "secrets", "--all", "--wait=false")

        def count(ms, b, **w):
            return total(ms, "apiserver_request_total", **w) - total(b, "apiserver_request_total", **w)

        codes = {}
        for n, l, v in api_after:
            if n == "apiserver_request_total" and l.get("resource") == "secrets" and l.get("verb") in WRITE_VERBS:
                codes[l.get("code")] = codes.get(l.get("code"), 0) + v
        for n, l, v in api_before:
            if n == "apiserver_request_total" and l.get("resource") == "secrets" and l.get("verb") in WRITE_VERBS:
                codes[l.get("code")] = codes.get(l.get("code"), 0) - v
        writes = self.writes(api_after) - self.writes(api_before)
        rejected = (total(api_after, "apiserver_flowcontrol_rejected_requests_total") -
                    total(api_before, "apiserver_flowcontrol_rejected_requests_total"))
        p99 = quantile(0.99, buckets(api_before, "apiserver_request_duration_seconds_bucket",
                                     verb="PATCH", resource="secrets"),
                       buckets(api_after, "apiserver_request_duration_seconds_bucket",
                               verb="PATCH", resource="secrets"))
        p99_startup = quantile(0.99, buckets(api0, "apiserver_request_duration_seconds_bucket",
                                             resource="secrets"),
                               buckets(startup_api, "apiserver_request_duration_seconds_bucket",
                                       resource="secrets"))
        startup_429 = (count(startup_api, api0, resource="secrets", code="429"))
        return {
            "profile": pname, "flags": " ".join(flags) or "(defaults)", "agents": a.agents,
            "sims": a.sims, "storm": a.storm, "storm_s": storm_s, "startup_s": startup_s,
            "startup_p99_ms": None if p99_startup is None else p99_startup * 1000,
            "startup_429": startup_429,
            "converged_s": converged_s, "last_write_s": last_write_s,
            "writes": writes, "writes_per_s": writes / last_write_s if last_write_s else None,
            "peak_writes_per_s": peak_writes_per_s,
            "codes": {k: int(v) for k, v in sorted(codes.items()) if v},
            "code_429": int(codes.get("429", 0)), "apf_rejected": int(rejected),
            "apiserver_patch_p99_ms": None if p99 is None else p99 * 1000,
            "agent_requests": agent_m["requests"],
            "agent_patch_p99_ms": agent_m["patch_p99_ms"],
            "agents_cpu_s": cpu_s, "apiserver_cpu_s": api_cpu_s,
            "apiserver_hwm_mib": proc_hwm_mib(self.apiserver_pid),
            "etcd_hwm_mib": proc_hwm_mib(self.etcd_pid), "agents_dead": dead,
        }

    def wait_secrets(self, prefix, want, timeout, agents):
        t0 = now()
        while now() - t0 < timeout:
            got = self.secret_names(prefix)
            if all(got.get(k) == v for k, v in want.items()):
                return now() - t0
            dead = [p for p in agents if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{len(dead)} agents exited during start-up (status "
                                   f"{dead[0].returncode}); see their logs")
            time.sleep(1.0)
        return None

    @staticmethod
    def writes(ms):
        return sum(v for n, l, v in ms if n == "apiserver_request_total" and
                   l.get("resource") == "secrets" and l.get("verb") in WRITE_VERBS)

    def agent_metrics(self, d, agents):
        requests, b_patch = {}, {}
        for i in range(len(agents)):
            port = None
            with open(os.path.join(d, f"agent{i}.log")) as f:
                for line in f:
                    if '"admin server listening"' in line:
                        port = json.loads(line)["addr"].rsplit(":", 1)[1]
                        break
            if port is None:
                continue
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    ms = parse_prom(r.read().decode(), {"ts_kube_agent_api_requests_total",
                                                        "ts_kube_agent_api_request_duration_seconds_bucket"})
            except OSError:
                continue
            for n, l, v in ms:
                if n == "ts_kube_agent_api_requests_total":
                    key = f"{l.get('verb')} {l.get('code')}"
                    requests[key] = requests.get(key, 0) + int(v)
                elif l.get("verb") == "PATCH":
                    le = float(l["le"])
                    b_patch[le] = b_patch.get(le, 0.0) + v
        p99 = quantile(0.99, {}, b_patch)
        return {"requests": dict(sorted(requests.items())),
                "patch_p99_ms": None if p99 is None else p99 * 1000}

    def last_write_s(self, d, n, t0_wall):
        """Seconds from the event to the last 'identity written' log line of any agent."""
        last = None
        for i in range(n):
            with open(os.path.join(d, f"agent{i}.log")) as f:
                for line in f:
                    if '"identity written"' not in line:
                        continue
                    ts = json.loads(line)["ts"]
                    t = time.mktime(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
                    t += float("0" + ts[19:-1])
                    if t >= t0_wall and (last is None or t > last):
                        last = t
        return None if last is None else last - t0_wall


def fmt(v, spec="{:.1f}"):
    return "-" if v is None else spec.format(v)


def table(results):
    rows = [
        ("agents / sims / SelfChanges per node", lambda r: f"{r['agents']} / {r['sims']} / {r['storm']}"),
        ("agent flags", lambda r: f"`{r['flags']}`"),
        ("the event's SelfChanges sent in (s)", lambda r: fmt(r["storm_s"], "{:.2f}")),
        ("start-up: spawn -> every Secret written (s)", lambda r: fmt(r["startup_s"])),
        ("start-up: API p99 secrets request (ms) / 429s", lambda r: f"{fmt(r['startup_p99_ms'])} / {r['startup_429']:.0f}"),
        ("event -> every Secret right, kubectl poll (s)", lambda r: fmt(r["converged_s"])),
        ("event -> last agent write, agent logs (s)", lambda r: fmt(r["last_write_s"], "{:.3f}")),
        ("API server secret writes during the event (per agent)", lambda r: f"{r['writes']:.0f} ({r['writes'] / r['agents']:.1f})"),
        ("API server writes/s: mean over event -> last write / peak 1-s sample", lambda r: f"{fmt(r['writes_per_s'])} / {fmt(r['peak_writes_per_s'])}"),
        ("API server 429s on secret writes / APF rejections (all)", lambda r: f"{r['code_429']} / {r['apf_rejected']}"),
        ("API server secret write codes", lambda r: ", ".join(f"{k}: {v}" for k, v in r["codes"].items())),
        ("API server p99 PATCH secrets (ms)", lambda r: fmt(r["apiserver_patch_p99_ms"])),
        ("agents: p99 PATCH (ms, whole run)", lambda r: fmt(r["agent_patch_p99_ms"])),
        ("agents: requests (whole run)", lambda r: ", ".join(f"{k}: {v}" for k, v in r["agent_requests"].items())),
        ("agents' total CPU during the event (s)", lambda r: fmt(r["agents_cpu_s"], "{:.2f}")),
        ("API server CPU during the event (s)", lambda r: fmt(r["apiserver_cpu_s"], "{:.2f}")),
        ("API server / etcd peak RSS (MiB)", lambda r: f"{fmt(r['apiserver_hwm_mib'], '{:.0f}')} / {fmt(r['etcd_hwm_mib'], '{:.0f}')}"),
        ("agents exited early", lambda r: str(r["agents_dead"])),
    ]
    out = ["| figure | " + " | ".join(r["profile"] for r in results) + " |",
           "|---|" + "---|" * len(results)]
    for label, f in rows:
        out.append(f"| {label} | " + " | ".join(f(r) for r in results) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=50)
    ap.add_argument("--sims", type=int, default=0, help="tsbus-sim processes (default agents/10)")
    ap.add_argument("--storm", type=int, default=1,
                    help="SelfChanges per node in the event (the last has the new name)")
    ap.add_argument("--storm-gap", type=float, default=0.05, help="seconds between them")
    ap.add_argument("--profile", action="append", default=[],
                    help="NAME:FLAG,FLAG,... agent flags per profile (default: 'default:')")
    ap.add_argument("--timeout", type=float, default=60, help="per wait for the Secrets (s)")
    ap.add_argument("--deadline", type=float, default=600, help="whole run (s)")
    ap.add_argument("--agent-bin", default=os.path.join(ROOT, "build/agent/ts-kube-agent"))
    ap.add_argument("--sim-bin", default=os.path.join(ROOT, "build/tools/tsbus-sim/tsbus-sim"))
    ap.add_argument("--apiserver-arg", action="append", default=[],
                    help="extra kube-apiserver flag (repeatable), e.g. "
                         "--apiserver-arg=--max-mutating-requests-inflight=5")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--keep-logs", action="store_true")
    a = ap.parse_args()
    if not 1 <= a.agents <= 1000:
        ap.error("--agents must be 1 to 1000")
    a.sims = a.sims or max(1, a.agents // 10)
    if not 1 <= a.sims <= a.agents:
        ap.error("--sims must be 1 to --agents")
    for f in a.apiserver_arg:
        if not re.fullmatch(r"--[a-z0-9-]+(=[^\s]*)?", f):
            ap.error(f"--apiserver-arg '{f}': one kube-apiserver flag like --name=value, no spaces")
    if a.storm < 1:
        ap.error("--storm must be at least 1")
    for b in (a.agent_bin, a.sim_bin):
        if not os.access(b, os.X_OK):
            ap.error(f"{b} is not built: cmake --build build --target ts-kube-agent tsbus-sim")
    profiles = []
    for p in a.profile or ["default:"]:
        name, _, flags = p.partition(":")
        if not re.fullmatch(r"[a-z0-9-]{1,20}", name):
            ap.error(f"profile name '{name}': use 1-20 of a-z, 0-9, '-'")
        profiles.append((name, [f for f in flags.split(",") if f]))

    def on_signal(sig, _):
        raise Deadline(f"signal {sig}")

    def on_alarm(_sig, _frame):
        raise Deadline(f"--deadline {a.deadline:.0f} s reached")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(a.deadline))
    fleet = Fleet(a)
    results = []
    load0 = " ".join(open("/proc/loadavg").read().split()[:3])
    try:
        fleet.start_control_plane()
        fleet.setup_namespace()
        for name, flags in profiles:
            log(f"profile {name}: {a.agents} agents, {a.sims} sims, flags {flags}")
            r = fleet.run_profile(name, flags)
            log(json.dumps(r))
            results.append(r)
    except Deadline as e:
        log(f"stopped: {e}")
    finally:
        signal.alarm(0)
        fleet.cleanup()
    if results:
        print(f"kube-apiserver extra flags: {' '.join(a.apiserver_arg) or 'none'}; storm gap "
              f"{a.storm_gap} s; {os.cpu_count()} CPUs, load average {load0} at start, "
              f"{' '.join(open('/proc/loadavg').read().split()[:3])} at end\n")
        print(table(results))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(results, f, indent=1)
    return 0 if len(results) == len(profiles) else 1


if __name__ == "__main__":
    sys.exit(main())
