"""The two simulators the benchmark drives: tsbus-sim (the bus) and kube-emu (the API server).

    emu = KubeEmu(build, work_dir, log_dir); emu.start()
    emu.mutations("bench-agent-10000-0")   # PATCH/PUT/POST requests on that Secret so far
    sim = TsbusSim(build, socket, peers=10000, queue=128, log_dir=d); sim.start()
    sim.post("/blank", count=1000); sim.stats()["sent"]["blank"]
"""
import http.client
import json
import os
import ssl
import urllib.parse
import urllib.request

from procstat import Proc, wait_for

NAMESPACE = "default"
ADMIN_TOKEN = "bench-admin-token"


class ControlClient:
    """A keep-alive HTTP client for a loopback control API."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.conn = None

    def request(self, method, path, params=None, body=None):
        if params:
            path += "?" + urllib.parse.urlencode(params)
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                self.conn.request(method, path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.status >= 300:
                    raise RuntimeError(f"{method} {path}: HTTP {resp.status}: {data[:300]!r}")
                return json.loads(data) if data.strip() else None
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 1:
                    raise
        return None


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def read_port_file(path):
    def ready():
        try:
            with open(path) as f:
                text = f.read().strip()
            return int(text) if text else None
        except (FileNotFoundError, ValueError):
            return None
    return ready


class KubeEmu:
    def __init__(self, build, work_dir, log_dir, cpu=None):
        self.build, self.work_dir, self.log_dir, self.cpu = build, work_dir, log_dir, cpu
        self.pki = os.path.join(work_dir, "pki")
        self.kubeconfig = os.path.join(work_dir, "kubeconfig")
        self.token_file = os.path.join(work_dir, "token")
        self.proc = None
        self.control = None
        self.api_port = None
        self._seq = 0
        self._mutations = {}  # secret name -> count of PATCH/PUT/POST answered 2xx

    def start(self):
        port_file = os.path.join(self.work_dir, "emu.port")
        control_file = os.path.join(self.work_dir, "emu.control")
        for stale in (port_file, control_file, self.kubeconfig):
            remove(stale)
        with open(self.token_file, "w") as f:
            f.write(ADMIN_TOKEN + "\n")
        self.proc = Proc([os.path.join(self.build, "tools/kube-emu/kube-emu"),
                          "--gen-certs", self.pki, "--token", f"{ADMIN_TOKEN}=bench",
                          "--allow-all-user", "bench", "--kubeconfig-out", self.kubeconfig,
                          "--control-addr", "127.0.0.1:0", "--port-file", port_file,
                          "--control-port-file", control_file, "--threads", "8"],
                         name="kube-emu", cpu=self.cpu, log_dir=self.log_dir)
        self.api_port = wait_for(read_port_file(port_file), 30, what="kube-emu API port")
        control_port = wait_for(read_port_file(control_file), 30, what="kube-emu control port")
        wait_for(lambda: os.path.exists(self.kubeconfig), 30, what="kube-emu kubeconfig")
        self.control = ControlClient("127.0.0.1", control_port)

    @property
    def server(self):
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def ca_file(self):
        return os.path.join(self.pki, "ca.crt")

    def poll(self):
        """Reads new request-log entries; counts successful writes per Secret name."""
        entries = self.control.request("GET", "/log", {"after": self._seq}) or []
        if isinstance(entries, dict):
            entries = entries.get("entries", entries.get("items", []))
        for e in entries:
            self._seq = max(self._seq, int(e.get("seq", 0)))
            if e.get("method") not in ("PATCH", "PUT", "POST"):
                continue
            if not 200 <= int(e.get("status", 0)) < 300:
                continue
            path = e.get("path", "")
            if "/secrets" not in path:
                continue
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if e.get("method") == "POST":  # create: the name is in the body
                try:
                    name = json.loads(e.get("body", "{}"))["metadata"]["name"]
                except (ValueError, KeyError, TypeError):
                    pass
            self._mutations[name] = self._mutations.get(name, 0) + 1

    def create_secret(self, name):
        """Creates an empty Secret as the admin (over HTTPS, like any client)."""
        body = {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": NAMESPACE}}
        req = urllib.request.Request(
            f"{self.server}/api/v1/namespaces/{NAMESPACE}/secrets",
            data=json.dumps(body).encode(), method="POST",
            headers={"Authorization": "Bearer " + ADMIN_TOKEN,
                     "Content-Type": "application/json"})
        ctx = ssl.create_default_context(cafile=self.ca_file)
        urllib.request.urlopen(req, context=ctx, timeout=30).read()

    def mutations(self, secret):
        self.poll()
        return self._mutations.get(secret, 0)

    def stop(self):
        if self.proc:
            self.proc.stop()


class TsbusSim:
    def __init__(self, build, socket_path, peers, queue, log_dir, name, cpu=None,
                 coalesce_writes=False):
        self.build, self.socket_path, self.peers, self.queue = build, socket_path, peers, queue
        self.coalesce_writes = coalesce_writes
        self.log_dir, self.name, self.cpu = log_dir, name, cpu
        self.proc = None
        self.control = None

    def start(self):
        port_file = self.socket_path + ".control"
        remove(port_file)
        self.proc = Proc([os.path.join(self.build, "tools/tsbus-sim/tsbus-sim"),
                          "--socket", self.socket_path, "--peers", self.peers,
                          "--queue", self.queue, "--control-addr", "127.0.0.1:0",
                          "--control-port-file", port_file, "--quiet"]
                         + (["--coalesce-writes"] if self.coalesce_writes else []),
                         name=self.name, cpu=self.cpu, log_dir=self.log_dir)
        port = wait_for(read_port_file(port_file), 30, what=f"{self.name} control port")
        self.control = ControlClient("127.0.0.1", port)
        wait_for(lambda: os.path.exists(self.socket_path), 30, what=f"{self.name} socket")

    def post(self, path, body=None, **params):
        return self.control.request("POST", path, params or None,
                                    json.dumps(body) if body is not None else None)

    def stats(self):
        return self.control.request("GET", "/stats")

    def sent(self, kind):
        return int(self.stats().get("sent", {}).get(kind, 0))

    def stop(self):
        if self.proc:
            self.proc.stop()
