"""Shared helpers for the deploy tests (Python 3 and Debian's python3-yaml).

The tests get their tools from the environment, which tests/integration/deploy/CMakeLists.txt
sets: TSK_SOURCE_DIR (the repository), TSK_PROMTOOL, TSK_YAMLLINT (empty when not found). A
missing Debian tool makes the test exit 77, which ctest reports as Skipped with the reason.
Helm and kubectl are the pinned builds of scripts/real-apiserver/build.sh (helm v4.3.2, kubectl
v1.37.2; the real_apiserver_binary fixture builds them first): a missing build fails the test
with build.sh's message, it never skips. TSK_HELM / TSK_KUBECTL override them.

YAML is parsed with python3-yaml (safe_load, YAML 1.1 like the yaml.v2/sigs.k8s.io/yaml decoding
Helm and kubectl apply use).
"""

import json
import os
import subprocess
import sys
import unittest

import yaml

SKIP = 77

SOURCE_DIR = os.environ.get("TSK_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", ".."))
CHART_DIR = os.path.join(SOURCE_DIR, "deploy", "helm", "ts-kube-agent")
KUSTOMIZE_DIR = os.path.join(SOURCE_DIR, "deploy", "kustomize")
PROMETHEUS_DIR = os.path.join(SOURCE_DIR, "deploy", "prometheus")
GRAFANA_DIR = os.path.join(SOURCE_DIR, "deploy", "grafana")
TESTDATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata")

AGENT_UID = 65532
AGENT_CONTAINER = "ts-kube-agent"


def read_text(path):
    with open(path) as f:
        return f.read()


# The real API server's env file (KEY=VALUE lines) that ctest's real_apiserver fixture writes and
# names in TSK_REAL_APISERVER_ENV; without it the calling suite is skipped (exit 77).
def read_env():
    path = os.environ.get("TSK_REAL_APISERVER_ENV", "")
    if not path or not os.path.exists(path):
        print(f"SKIP: no real API server env file ({path!r}); run through ctest, which starts "
              "it (real_apiserver fixture)")
        raise SystemExit(SKIP)
    env = {}
    for line in read_text(path).splitlines():
        k, _, v = line.strip().partition("=")
        env[k] = v
    return env


def tool(env_name, what):
    """Path of a tool from the environment, or exit 77 (skip) saying what is missing."""
    path = os.environ.get(env_name, "")
    if not path or not os.access(path, os.X_OK):
        print(f"SKIP: {what} not available ({env_name}={path!r}); run scripts/install-deps.sh",
              file=sys.stderr)
        sys.exit(SKIP)
    return path


_BIN_DIR = None


def control_plane_bin_dir():
    """The bin dir of scripts/real-apiserver/build.sh's cache (helm, kubectl, kube-apiserver...).

    $TSK_CONTROL_PLANE_BIN_DIR, else build.sh --check, which never builds; fails (not skips)
    saying how to build."""
    global _BIN_DIR
    if _BIN_DIR is None and os.environ.get("TSK_CONTROL_PLANE_BIN_DIR"):
        _BIN_DIR = os.environ["TSK_CONTROL_PLANE_BIN_DIR"]
    if _BIN_DIR is None:
        script = os.path.join(SOURCE_DIR, "scripts", "real-apiserver", "build.sh")
        p = subprocess.run([script, "--check"], capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"FAIL: the pinned Helm/kubectl are not built: {p.stderr.strip()}")
        _BIN_DIR = p.stdout.strip().splitlines()[-1]
    return _BIN_DIR


def helm_bin():
    return os.environ.get("TSK_HELM") or os.path.join(control_plane_bin_dir(), "helm")


def kubectl_bin():
    return os.environ.get("TSK_KUBECTL") or os.path.join(control_plane_bin_dir(), "kubectl")


def run(cmd, check=True, stdin=None, cwd=None, env=None):
    """Runs cmd, returns CompletedProcess with text output; raises with stderr on failure."""
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, cwd=cwd, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr}{p.stdout}")
    return p


def helm_template_cmd(*args, chart=CHART_DIR, kube="1.30.0", apis=(), name="rel",
                      namespace="ns1", values=None):
    """`helm template NAME CHART` for a cluster of version `kube` serving `apis`."""
    cmd = [helm_bin(), "template", name, chart, "--namespace", namespace, "--kube-version", kube]
    for a in apis:
        cmd += ["--api-versions", a]
    for k, v in (values or {}).items():
        cmd += ["--set", f"{k}={v}"]
    return cmd + list(args)


def split_rendered(stream):
    """`helm template`'s YAML stream as a list of (source, object): source is the template
    named by each document's "# Source: <chart>/templates/<file>" line."""
    out = []
    for doc in stream.split("\n---\n"):
        source = ""
        for line in doc.splitlines():
            if line.startswith("# Source: "):
                source = line[len("# Source: "):]
                break
        obj = yaml.safe_load(doc)
        if obj is not None:
            out.append((source, obj))
    return out


def helm_render(*args, chart=CHART_DIR, kube="1.30.0", apis=(), name="rel", namespace="ns1",
                values=None, check=True):
    """Renders the chart with `helm template`; returns a list of (source, object), or the
    failed process."""
    p = run(helm_template_cmd(*args, chart=chart, kube=kube, apis=apis, name=name,
                              namespace=namespace, values=values), check=check)
    if p.returncode != 0:
        return p
    return split_rendered("\n" + p.stdout)


def helm_render_yaml(*args, chart=CHART_DIR, kube="1.30.0", apis=(), values=None):
    """Renders the chart as the YAML stream `helm template` prints."""
    return run(helm_template_cmd(*args, chart=chart, kube=kube, apis=apis, values=values)).stdout


def helm_notes(chart=CHART_DIR, name="rel", namespace="ns1", values=None):
    """NOTES.txt as `helm install` prints it (a client-side dry run: no cluster needed, and
    the capabilities are Helm's defaults, so no monitoring.coreos.com/v1)."""
    cmd = [helm_bin(), "install", name, chart, "--namespace", namespace, "--dry-run=client",
           "-o", "json"]
    for k, v in (values or {}).items():
        cmd += ["--set", f"{k}={v}"]
    return json.loads(run(cmd).stdout)["info"]["notes"]


def yaml_to_json(path_or_text, is_text=False):
    """Parses a multi-document YAML file (or text) into a list of objects."""
    text = path_or_text if is_text else read_text(path_or_text)
    return [d for d in yaml.safe_load_all(text) if d is not None]


def objects(rendered):
    return [o for _, o in rendered]


def find(objs, kind, name=None):
    found = [o for o in objs if o.get("kind") == kind and
             (name is None or o["metadata"]["name"] == name)]
    return found


def one(objs, kind, name=None):
    found = find(objs, kind, name)
    if len(found) != 1:
        raise AssertionError(f"expected one {kind} {name or ''}, found {len(found)}: "
                             f"{[o['metadata']['name'] for o in found]}")
    return found[0]


def pod_spec(deployment):
    return deployment["spec"]["template"]["spec"]


def all_containers(spec):
    return (spec.get("initContainers") or []) + (spec.get("containers") or [])


def container(spec, name):
    for c in all_containers(spec):
        if c["name"] == name:
            return c
    raise AssertionError(f"no container {name!r} in the pod spec")


def env_of(c):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c.get("env") or []}


def restricted_violations(spec):
    """Everything in a pod spec that the restricted Pod Security Standard (v1.30) forbids."""
    bad = []
    psc = spec.get("securityContext") or {}
    for f in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(f):
            bad.append(f"pod: {f}")
    allowed_volumes = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                       "persistentVolumeClaim", "projected", "secret"}
    for v in spec.get("volumes") or []:
        kinds = set(v) - {"name"}
        if not kinds <= allowed_volumes:
            bad.append(f"volume {v['name']}: type {sorted(kinds - allowed_volumes)}")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    if pod_seccomp not in (None, "RuntimeDefault", "Localhost"):
        bad.append(f"pod: seccompProfile {pod_seccomp}")
    if psc.get("runAsUser") == 0:
        bad.append("pod: runAsUser 0")
    for c in all_containers(spec):
        sc = c.get("securityContext") or {}
        where = f"container {c['name']}"
        if sc.get("privileged"):
            bad.append(f"{where}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{where}: allowPrivilegeEscalation is not false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            bad.append(f"{where}: capabilities.drop lacks ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"{where}: capabilities.add {caps.get('add')}")
        if not (sc.get("runAsNonRoot") is True or
                (psc.get("runAsNonRoot") is True and sc.get("runAsNonRoot") is not False)):
            bad.append(f"{where}: runAsNonRoot is not true")
        if sc.get("runAsUser") == 0:
            bad.append(f"{where}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{where}: seccompProfile {seccomp}")
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                bad.append(f"{where}: hostPort")
    return bad


def agent_container_problems(c, port=9002):
    """What is wrong with the agent container: restricted context, probes, admin port."""
    bad = []
    sc = c.get("securityContext") or {}
    expect = {"runAsNonRoot": True, "runAsUser": AGENT_UID, "runAsGroup": AGENT_UID,
              "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True}
    for k, v in expect.items():
        if sc.get(k) != v:
            bad.append(f"securityContext.{k} = {sc.get(k)!r}, want {v!r}")
    if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
        bad.append(f"capabilities.drop = {(sc.get('capabilities') or {}).get('drop')}")
    if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        bad.append("seccompProfile is not RuntimeDefault on the container")
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
    if ports.get("metrics") != port:
        bad.append(f"container port 'metrics' = {ports.get('metrics')}, want {port}")
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        get = (c.get(probe) or {}).get("httpGet") or {}
        if get.get("path") != path or get.get("port") not in (port, "metrics"):
            bad.append(f"{probe} = {get}, want path {path} on port {port}")
    env = env_of(c)
    if not str(env.get("TS_LOCAL_ADDR_PORT", "")).endswith(f":{port}"):
        bad.append(f"TS_LOCAL_ADDR_PORT = {env.get('TS_LOCAL_ADDR_PORT')!r}, want ...:{port}")
    return bad


STANDARD_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance",
                   "app.kubernetes.io/version", "app.kubernetes.io/managed-by", "helm.sh/chart")


def selector_matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def main():
    """unittest.main, with exit code 77 when every test was skipped."""
    prog = unittest.main(exit=False, verbosity=2)
    r = prog.result
    if r.testsRun and len(r.skipped) == r.testsRun:
        sys.exit(SKIP)
    sys.exit(0 if r.wasSuccessful() else 1)
