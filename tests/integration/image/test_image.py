#!/usr/bin/env python3
"""The images of scripts/images/build.sh, built with the local Docker Engine and run.

Usage: test_image.py agent|pause|tailscaled
Exit 77 (skipped) when build.sh exits 77: no Docker Engine, no debootstrap, or (tailscaled)
the real-tailscale cache is not ready."""

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

SOURCE_DIR = os.environ.get("TSK_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BUILD_SH = os.path.join(SOURCE_DIR, "scripts", "images", "build.sh")
SKIP = 77
AGENT_UID = 65532
# The size the agent image aims at (a FROM-scratch image: binary + its libraries).
AGENT_IMAGE_BUDGET = 40e6
IMAGES = {}


def docker(*args, check=True, timeout=120):
    r = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
    return r


def inspect(ref):
    return json.loads(docker("image", "inspect", ref).stdout)[0]


def wait_for(what, predicate, timeout=60.0):
    """Polls predicate() until it returns a true value; fails naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def proc_uids(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(x) for x in line.split()[1:]]
    raise AssertionError(f"no Uid line for pid {pid}")


class Container:
    """docker run -d; removed on exit."""

    def __init__(self, *args):
        self.id = docker("run", "-d", *args).stdout.strip()

    def state(self):
        return json.loads(docker("inspect", self.id).stdout)[0]["State"]

    def logs(self):
        r = docker("logs", self.id)
        return r.stdout + r.stderr

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        docker("rm", "-f", self.id, check=False)


def hardened(image):
    """The flags of the chart's restricted securityContext, as docker run flags."""
    return ["--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges", image]


class Agent(unittest.TestCase):
    def setUp(self):
        self.image = IMAGES["TSK_IMAGE_AGENT"]

    def test_image_is_scratch_based_runs_as_65532_and_fits_the_budget(self):
        info = inspect(self.image)
        cfg = info["Config"]
        self.assertEqual(cfg["User"], f"{AGENT_UID}:{AGENT_UID}")
        self.assertEqual(cfg["Entrypoint"], ["/usr/local/bin/ts-kube-agent"])
        self.assertEqual(cfg["Labels"]["org.opencontainers.image.base.name"], "scratch")
        print(f"agent image {self.image}: {info['Size'] / 1e6:.1f} MB, "
              f"{len(info['RootFS']['Layers'])} layer(s)")
        self.assertEqual(len(info["RootFS"]["Layers"]), 1, "one COPY layer on scratch")
        self.assertLess(info["Size"], AGENT_IMAGE_BUDGET)

    def test_version_in_a_read_only_container_without_capabilities(self):
        r = docker("run", "--rm", *hardened(self.image), "--version")
        self.assertRegex(r.stdout, r"^ts-kube-agent \d+\.\d+\.\d+")
        r = docker("run", "--rm", *hardened(self.image), "--help")
        self.assertIn("--socket PATH", r.stdout)

    def test_runs_as_65532_serves_livez_and_exits_0_on_sigterm(self):
        # A kubeconfig for an API server that is not there and no tailscaled socket: the agent
        # starts, serves its admin endpoints and retries; that is enough to see it run.
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", f"{tmp}/ca.key", "-out", f"{tmp}/ca.crt", "-days", "1",
                            "-subj", "/CN=tsk-image-test"], check=True, capture_output=True)
            with open(f"{tmp}/kubeconfig", "w") as f:
                f.write(f"""apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:1", certificate-authority: /cfg/ca.crt}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u, namespace: default}}}}]
current-context: x
""")
            os.chmod(tmp, 0o755)
            os.chmod(f"{tmp}/kubeconfig", 0o644)
            os.chmod(f"{tmp}/ca.crt", 0o644)
            with Container("-v", f"{tmp}:/cfg:ro", *hardened(self.image),
                           "--kubeconfig=/cfg/kubeconfig", "--socket=/cfg/none.sock",
                           "--admin-addr=0.0.0.0:9002") as c:
                wait_for("the agent's 'started' log line",
                         lambda: "ts-kube-agent started" in c.logs() or not c.state()["Running"])
                state = c.state()
                self.assertTrue(state["Running"], c.logs())
                uids = proc_uids(state["Pid"])
                self.assertEqual(uids, [AGENT_UID] * 4)
                ip = json.loads(docker("inspect", c.id).stdout)[0]["NetworkSettings"]["IPAddress"]
                if ip:
                    with urllib.request.urlopen(f"http://{ip}:9002/livez", timeout=10) as resp:
                        self.assertEqual(resp.status, 200)
                else:
                    print("NOTE: the container has no bridge address; /livez not fetched")
                r = docker("stop", "-t", "30", c.id)
                state = c.state()
                self.assertEqual(state["ExitCode"], 0, c.logs())
                self.assertIn("signal received; shutting down", c.logs())


class Pause(unittest.TestCase):
    def test_runs_as_65532_and_exits_0_on_sigterm(self):
        image = IMAGES["TSK_IMAGE_PAUSE"]
        info = inspect(image)
        print(f"pause image {image}: {info['Size'] / 1e6:.2f} MB")
        self.assertEqual(info["Config"]["User"], f"{AGENT_UID}:{AGENT_UID}")
        r = docker("run", "--rm", *hardened(image), "--version")
        self.assertEqual(r.stdout.strip(), "tsk-pause 1")
        with Container(*hardened(image)) as c:
            pid = wait_for("the pause process", lambda: c.state()["Pid"])
            self.assertEqual(proc_uids(pid), [AGENT_UID] * 4)
            # docker stop sends SIGKILL after -t seconds: exit code 137 would mean SIGTERM was
            # ignored; 0 means pause handled it.
            docker("stop", "-t", "30", c.id)
            self.assertEqual(c.state()["ExitCode"], 0, c.logs())
            self.assertIn("signal 15", c.logs())


class Tailscaled(unittest.TestCase):
    def test_binaries_and_version(self):
        image = IMAGES["TSK_IMAGE_TAILSCALED"]
        info = inspect(image)
        print(f"tailscaled image {image}: {info['Size'] / 1e6:.1f} MB")
        self.assertEqual(info["Config"]["Entrypoint"], ["/usr/local/bin/containerboot"])
        r = docker("run", "--rm", "--entrypoint", "/usr/local/bin/tailscale", image, "version")
        self.assertEqual(r.stdout.splitlines()[0], "1.102.5")
        r = docker("run", "--rm", "--entrypoint", "/usr/local/bin/tailscaled", image, "--version")
        self.assertEqual(r.stdout.splitlines()[0], "1.102.5")

    def test_tailscaled_runs_userspace_as_65532_on_a_read_only_root(self):
        image = IMAGES["TSK_IMAGE_TAILSCALED"]
        with Container("--tmpfs", "/run/ts:uid=65532,gid=65532,mode=0755", "--user", "65532:65532",
                       "--entrypoint", "/usr/local/bin/tailscaled", *hardened(image),
                       "--tun=userspace-networking", "--statedir=/run/ts/state",
                       "--socket=/run/ts/tailscaled.sock", "--no-logs-no-support") as c:
            def answered():
                if not c.state()["Running"]:
                    return True
                r = docker("exec", c.id, "/usr/local/bin/tailscale",
                           "--socket=/run/ts/tailscaled.sock", "status", "--json", check=False)
                return '"BackendState"' in r.stdout

            wait_for("tailscaled's LocalAPI to answer `tailscale status --json`", answered)
            self.assertTrue(c.state()["Running"], c.logs())
            self.assertEqual(proc_uids(c.state()["Pid"]), [AGENT_UID] * 4)


def build(kind):
    with tempfile.NamedTemporaryFile("r", suffix=".env") as env:
        r = subprocess.run([BUILD_SH, "--only", kind, "--print-env", env.name],
                           stderr=subprocess.PIPE, text=True)
        sys.stderr.write(r.stderr)
        if r.returncode == SKIP:
            m = re.findall(r"SKIP: (.*)", r.stderr)
            print(f"SKIP: {m[-1] if m else 'build.sh exited 77'}")
            sys.exit(SKIP)
        if r.returncode != 0:
            print(f"FAIL: {BUILD_SH} --only {kind}: exit {r.returncode}")
            sys.exit(1)
        for line in env.read().splitlines():
            k, _, v = line.partition("=")
            IMAGES[k] = v


def main():
    kinds = {"agent": Agent, "pause": Pause, "tailscaled": Tailscaled}
    if len(sys.argv) != 2 or sys.argv[1] not in kinds:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(kinds)}")
    build(sys.argv[1])
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(kinds[sys.argv[1]])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)


if __name__ == "__main__":
    main()
